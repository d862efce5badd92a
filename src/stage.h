/*
 * stage.h
 *		Staging files for COPY: rows written as zstd (or gzip, or plain)
 *		CSV into temporary files, each uploaded to S3 when it reaches the
 *		size limit or is rolled over, and manifests listing them.  Nothing
 *		is held whole in memory.
 */
#ifndef REDSHIFT_FDW_STAGE_H
#define REDSHIFT_FDW_STAGE_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"

#include "s3.h"
#include "stage_format.h"

typedef struct StageWriter StageWriter;

/* Size a staging file is rolled over at (GUC redshift_fdw.staging_file_size). */
extern int stage_file_size_mb;

extern StageWriter *stage_writer_create(S3Client *client,
										const char *key_prefix,
										StageCompression compression);
extern StringInfo stage_row_buffer(StageWriter *writer);
extern void stage_write_row(StageWriter *writer);
extern bool stage_writer_rollover(StageWriter *writer, off_t min_bytes);
extern const char *stage_writer_manifest(StageWriter *writer,
										 const char *suffix, int first);
extern const char *stage_writer_finish(StageWriter *writer);
extern int stage_writer_files(StageWriter *writer);
extern int64 stage_writer_rows(StageWriter *writer);
extern int64 stage_writer_bytes(StageWriter *writer);
extern List *stage_writer_keys(StageWriter *writer);

#endif /* REDSHIFT_FDW_STAGE_H */
