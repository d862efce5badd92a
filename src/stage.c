/*
 * stage.c
 *		StageWriter: rows (CSV lines the caller builds) compressed with
 *		gzip into a temporary file, uploaded to S3 as
 *		<prefix>-NNNN.csv.gz whenever the file reaches
 *		redshift_fdw.staging_file_size, and a <prefix>.manifest naming
 *		every file for COPY ... MANIFEST.
 *
 * Temporary files are PostgreSQL's (removed at transaction end, also on
 * error); memory is one row plus the compressor's buffers.
 */
#include "postgres.h"

#include <zlib.h>

#include "miscadmin.h"
#include "utils/wait_event.h"

#include "stage.h"
#include "stage_format.h"

int stage_file_size_mb = 64;

/* Compressed output is written to the file in pieces of this size. */
#define STAGE_OUT_CHUNK (256 * 1024)

struct StageWriter
{
	S3Client *client;
	char *key_prefix;
	StringInfoData row; /* the row being built */
	File file;			/* current temporary file, or -1 */
	off_t file_offset;
	z_stream zs;
	int nfiles;
	List *keys; /* uploaded keys, manifest last */
	int64 rows;
	int64 bytes; /* compressed bytes uploaded */
	char *out;	 /* STAGE_OUT_CHUNK bytes */
};

/* A writer for files under key_prefix (relative to the server's prefix). */
StageWriter *
stage_writer_create(S3Client *client, const char *key_prefix)
{
	StageWriter *writer = palloc0(sizeof(StageWriter));

	writer->client = client;
	writer->key_prefix = pstrdup(key_prefix);
	initStringInfo(&writer->row);
	writer->file = -1;
	writer->out = palloc(STAGE_OUT_CHUNK);
	return writer;
}

/* The buffer the caller builds the next row in (one CSV line). */
StringInfo
stage_row_buffer(StageWriter *writer)
{
	resetStringInfo(&writer->row);
	return &writer->row;
}

/* Write out what deflate produced; flush: the stream is finishing. */
static void
drain(StageWriter *writer, int flush)
{
	int rc;

	do
	{
		size_t have;

		writer->zs.next_out = (Bytef *) writer->out;
		writer->zs.avail_out = STAGE_OUT_CHUNK;
		rc = deflate(&writer->zs, flush);
		if (rc == Z_STREAM_ERROR)
			elog(ERROR, "redshift_fdw: gzip compression failed");
		have = STAGE_OUT_CHUNK - writer->zs.avail_out;
		if (have > 0)
		{
			int written = FileWrite(writer->file, writer->out, have,
									writer->file_offset, PG_WAIT_EXTENSION);

			if (written != (int) have)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not write staging file \"%s\": %m",
								FilePathName(writer->file))));
			writer->file_offset += have;
		}
	} while (writer->zs.avail_out == 0 ||
			 (flush == Z_FINISH && rc != Z_STREAM_END));
}

/*
 * zlib's allocations come from the current memory context, so an error
 * mid-stream leaks nothing.
 */
static voidpf
stage_zalloc(voidpf opaque, uInt items, uInt size)
{
	return palloc((Size) items * size);
}

static void
stage_zfree(voidpf opaque, voidpf address)
{
	pfree(address);
}

/* Start a new temporary file and gzip stream. */
static void
open_file(StageWriter *writer)
{
	writer->file = OpenTemporaryFile(false);
	writer->file_offset = 0;
	memset(&writer->zs, 0, sizeof(writer->zs));
	writer->zs.zalloc = stage_zalloc;
	writer->zs.zfree = stage_zfree;
	/* 15 + 16: a gzip wrapper; level 1: staging is CPU-bound, not I/O */
	if (deflateInit2(&writer->zs, 1, Z_DEFLATED, 15 + 16, 8,
					 Z_DEFAULT_STRATEGY) != Z_OK)
		elog(ERROR, "redshift_fdw: could not start gzip compression");
}

/* End the gzip stream, upload the file, and remove it. */
static void
close_and_upload(StageWriter *writer)
{
	char *key;

	writer->zs.next_in = NULL;
	writer->zs.avail_in = 0;
	drain(writer, Z_FINISH);
	deflateEnd(&writer->zs);
	key = psprintf("%s-%04d.csv.gz", writer->key_prefix, ++writer->nfiles);
	writer->bytes +=
		s3_put_file(writer->client, key, FilePathName(writer->file));
	writer->keys = lappend(writer->keys, key);
	FileClose(writer->file);
	writer->file = -1;
}

/* Append the row built in the row buffer (with its newline added here). */
void
stage_write_row(StageWriter *writer)
{
	appendStringInfoChar(&writer->row, '\n');
	if (writer->file < 0)
		open_file(writer);
	writer->zs.next_in = (Bytef *) writer->row.data;
	writer->zs.avail_in = writer->row.len;
	drain(writer, Z_NO_FLUSH);
	writer->rows++;
	if (writer->file_offset >= (off_t) stage_file_size_mb * 1024 * 1024)
		close_and_upload(writer);
}

/*
 * Upload the last file and the manifest; returns the manifest's key, or
 * NULL when no row was written (nothing to load).
 */
const char *
stage_writer_finish(StageWriter *writer)
{
	StringInfoData manifest;
	ListCell *lc;
	char *key;
	bool first = true;

	if (writer->file >= 0)
		close_and_upload(writer);
	if (writer->rows == 0)
		return NULL;
	initStringInfo(&manifest);
	appendStringInfoString(&manifest, "{\"entries\":[");
	foreach (lc, writer->keys)
	{
		const char *url = s3_client_location(writer->client, lfirst(lc));

		enlargeStringInfo(&manifest, json_escaped_length(url) + 40);
		appendStringInfoString(&manifest,
							   first ? "{\"url\":\"" : ",{\"url\":\"");
		manifest.len += json_escape(manifest.data + manifest.len, url);
		manifest.data[manifest.len] = '\0';
		appendStringInfoString(&manifest, "\",\"mandatory\":true}");
		first = false;
	}
	appendStringInfoString(&manifest, "]}");
	key = psprintf("%s.manifest", writer->key_prefix);
	s3_put(writer->client, key, manifest.data, manifest.len);
	writer->bytes += manifest.len;
	writer->keys = lappend(writer->keys, key);
	pfree(manifest.data);
	return key;
}

int64
stage_writer_rows(StageWriter *writer)
{
	return writer->rows;
}

int64
stage_writer_bytes(StageWriter *writer)
{
	return writer->bytes;
}

/* Every key uploaded so far (data files, then the manifest). */
List *
stage_writer_keys(StageWriter *writer)
{
	return writer->keys;
}
