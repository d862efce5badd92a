/*
 * stage.c
 *		StageWriter: rows (CSV lines the caller builds) compressed with
 *		zstd or gzip (or not at all) into a temporary file, uploaded to S3
 *		as <prefix>-NNNN.csv.zst (.gz, none) whenever the file reaches
 *		redshift_fdw.staging_file_size or the caller rolls it over, and
 *		manifests naming files for COPY ... MANIFEST.
 *
 * Temporary files are PostgreSQL's (removed at transaction end, also on
 * error); memory is one row plus the compressor's buffers, allocated in
 * (or released with) the writer's memory context so an error mid-stream
 * leaks nothing.
 */
#include "postgres.h"

#include <zlib.h>
#include <zstd.h>

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "stage.h"

int stage_file_size_mb = 64;

/* Compressed output is written to the file in pieces of this size. */
#define STAGE_OUT_CHUNK (256 * 1024)

/* zstd's level: its fastest regular one compresses CSV better than gzip's. */
#define STAGE_ZSTD_LEVEL 1

struct StageWriter
{
	S3Client *client;
	MemoryContext cxt;
	char *key_prefix;
	StageCompression compression;
	StringInfoData row; /* the row being built */
	File file;			/* current temporary file, or -1 */
	off_t file_offset;
	z_stream zs;	 /* gzip */
	ZSTD_CCtx *zstd; /* zstd (kept for the next file) */
	MemoryContextCallback zstd_cleanup;
	int nfiles;	 /* data files uploaded */
	List *keys;	 /* uploaded keys: data files, manifests */
	List *files; /* uploaded data files */
	int64 rows;
	int64 bytes; /* compressed bytes uploaded */
	char *out;	 /* STAGE_OUT_CHUNK bytes */
};

/* Free a zstd context (it is malloc'd) with the writer's memory context. */
static void
zstd_release(void *arg)
{
	ZSTD_freeCCtx((ZSTD_CCtx *) arg);
}

/* A writer for files under key_prefix (relative to the server's prefix). */
StageWriter *
stage_writer_create(S3Client *client, const char *key_prefix,
					StageCompression compression)
{
	StageWriter *writer = palloc0(sizeof(StageWriter));

	writer->client = client;
	writer->cxt = CurrentMemoryContext;
	writer->key_prefix = pstrdup(key_prefix);
	writer->compression = compression;
	initStringInfo(&writer->row);
	writer->file = -1;
	writer->out = palloc(STAGE_OUT_CHUNK);
	if (compression == STAGE_COMPRESS_ZSTD)
	{
		writer->zstd = ZSTD_createCCtx();
		if (writer->zstd == NULL)
			elog(ERROR, "redshift_fdw: could not start zstd compression");
		/* freed with the memory context, on error too */
		writer->zstd_cleanup.func = zstd_release;
		writer->zstd_cleanup.arg = writer->zstd;
		MemoryContextRegisterResetCallback(writer->cxt, &writer->zstd_cleanup);
		if (ZSTD_isError(ZSTD_CCtx_setParameter(
				writer->zstd, ZSTD_c_compressionLevel, STAGE_ZSTD_LEVEL)) ||
			ZSTD_isError(
				ZSTD_CCtx_setParameter(writer->zstd, ZSTD_c_checksumFlag, 1)))
			elog(ERROR, "redshift_fdw: could not start zstd compression");
	}
	return writer;
}

/* The buffer the caller builds the next row in (one CSV line). */
StringInfo
stage_row_buffer(StageWriter *writer)
{
	resetStringInfo(&writer->row);
	return &writer->row;
}

/* Append bytes to the current temporary file. */
static void
write_out(StageWriter *writer, const char *data, size_t len)
{
	int written;

	if (len == 0)
		return;
	written = FileWrite(writer->file, (char *) data, len, writer->file_offset,
						PG_WAIT_EXTENSION);
	if (written != (int) len)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("could not write staging file \"%s\": %m",
							   FilePathName(writer->file))));
	writer->file_offset += len;
}

/* Write out what deflate produced; flush: the stream is finishing. */
static void
gzip_drain(StageWriter *writer, int flush)
{
	int rc;

	do
	{
		writer->zs.next_out = (Bytef *) writer->out;
		writer->zs.avail_out = STAGE_OUT_CHUNK;
		rc = deflate(&writer->zs, flush);
		if (rc == Z_STREAM_ERROR)
			elog(ERROR, "redshift_fdw: gzip compression failed");
		write_out(writer, writer->out, STAGE_OUT_CHUNK - writer->zs.avail_out);
	} while (writer->zs.avail_out == 0 ||
			 (flush == Z_FINISH && rc != Z_STREAM_END));
}

/* Compress data (or, with end, finish the frame) into the file. */
static void
zstd_write(StageWriter *writer, const char *data, size_t len, bool end)
{
	ZSTD_inBuffer in = {data, len, 0};
	size_t remaining;

	do
	{
		ZSTD_outBuffer out = {writer->out, STAGE_OUT_CHUNK, 0};

		remaining = ZSTD_compressStream2(writer->zstd, &out, &in,
										 end ? ZSTD_e_end : ZSTD_e_continue);
		if (ZSTD_isError(remaining))
			elog(ERROR, "redshift_fdw: zstd compression failed: %s",
				 ZSTD_getErrorName(remaining));
		write_out(writer, writer->out, out.pos);
	} while (end ? remaining != 0 : in.pos < in.size);
}

/* zlib's allocations come from the writer's memory context. */
static voidpf
gzip_alloc(voidpf opaque, uInt items, uInt size)
{
	return MemoryContextAlloc((MemoryContext) opaque, (Size) items * size);
}

static void
gzip_free(voidpf opaque, voidpf address)
{
	pfree(address);
}

/* Start a new temporary file (and gzip stream). */
static void
open_file(StageWriter *writer)
{
	writer->file = OpenTemporaryFile(false);
	writer->file_offset = 0;
	if (writer->compression == STAGE_COMPRESS_GZIP)
	{
		memset(&writer->zs, 0, sizeof(writer->zs));
		writer->zs.zalloc = gzip_alloc;
		writer->zs.zfree = gzip_free;
		writer->zs.opaque = writer->cxt;
		/* 15 + 16: a gzip wrapper; level 1: staging is CPU-bound */
		if (deflateInit2(&writer->zs, 1, Z_DEFLATED, 15 + 16, 8,
						 Z_DEFAULT_STRATEGY) != Z_OK)
			elog(ERROR, "redshift_fdw: could not start gzip compression");
	}
}

/* End the compressed stream, upload the file, and remove it. */
static void
close_and_upload(StageWriter *writer)
{
	char *key;
	MemoryContext old;

	if (writer->compression == STAGE_COMPRESS_GZIP)
	{
		writer->zs.next_in = NULL;
		writer->zs.avail_in = 0;
		gzip_drain(writer, Z_FINISH);
		deflateEnd(&writer->zs);
	}
	else if (writer->compression == STAGE_COMPRESS_ZSTD)
		zstd_write(writer, NULL, 0, true);
	old = MemoryContextSwitchTo(writer->cxt);
	key = psprintf("%s-%04d%s", writer->key_prefix, ++writer->nfiles,
				   stage_compression_suffix(writer->compression));
	writer->bytes +=
		s3_put_file(writer->client, key, FilePathName(writer->file));
	writer->keys = lappend(writer->keys, key);
	writer->files = lappend(writer->files, key);
	MemoryContextSwitchTo(old);
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
	switch (writer->compression)
	{
		case STAGE_COMPRESS_GZIP:
			writer->zs.next_in = (Bytef *) writer->row.data;
			writer->zs.avail_in = writer->row.len;
			gzip_drain(writer, Z_NO_FLUSH);
			break;
		case STAGE_COMPRESS_ZSTD:
			zstd_write(writer, writer->row.data, writer->row.len, false);
			break;
		case STAGE_COMPRESS_NONE:
			write_out(writer, writer->row.data, writer->row.len);
			break;
	}
	writer->rows++;
	if (writer->file_offset >= (off_t) stage_file_size_mb * 1024 * 1024)
		close_and_upload(writer);
}

/*
 * Upload the current file now when it holds at least min_bytes (written
 * so far, compressed); true when it did.  Lets a loader waiting for work
 * have what is staged without waiting for the size limit.
 */
bool
stage_writer_rollover(StageWriter *writer, off_t min_bytes)
{
	if (writer->file < 0 || writer->file_offset < min_bytes)
		return false;
	close_and_upload(writer);
	return true;
}

/*
 * Upload a manifest named <prefix><suffix>.manifest listing the data
 * files from index first (0-based) to the last uploaded; returns its key.
 */
const char *
stage_writer_manifest(StageWriter *writer, const char *suffix, int first)
{
	StringInfoData manifest;
	ListCell *lc;
	char *key;
	bool comma = false;
	MemoryContext old;

	initStringInfo(&manifest);
	appendStringInfoString(&manifest, "{\"entries\":[");
	for_each_from(lc, writer->files, first)
	{
		const char *url = s3_client_location(writer->client, lfirst(lc));

		enlargeStringInfo(&manifest, json_escaped_length(url) + 40);
		appendStringInfoString(&manifest,
							   comma ? ",{\"url\":\"" : "{\"url\":\"");
		manifest.len += json_escape(manifest.data + manifest.len, url);
		manifest.data[manifest.len] = '\0';
		appendStringInfoString(&manifest, "\",\"mandatory\":true}");
		comma = true;
	}
	appendStringInfoString(&manifest, "]}");
	key = MemoryContextStrdup(
		writer->cxt, psprintf("%s%s.manifest", writer->key_prefix, suffix));
	s3_put(writer->client, key, manifest.data, manifest.len);
	old = MemoryContextSwitchTo(writer->cxt);
	writer->keys = lappend(writer->keys, key);
	MemoryContextSwitchTo(old);
	writer->bytes += manifest.len;
	pfree(manifest.data);
	return key;
}

/*
 * Upload the last file and the manifest of every file; returns the
 * manifest's key, or NULL when no row was written (nothing to load).
 */
const char *
stage_writer_finish(StageWriter *writer)
{
	if (writer->file >= 0)
		close_and_upload(writer);
	if (writer->rows == 0)
		return NULL;
	return stage_writer_manifest(writer, "", 0);
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

/* Data files uploaded so far. */
int
stage_writer_files(StageWriter *writer)
{
	return writer->nfiles;
}

/* Every key uploaded so far (data files and manifests). */
List *
stage_writer_keys(StageWriter *writer)
{
	return writer->keys;
}
