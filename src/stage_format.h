/*
 * stage_format.h
 *		The text of staging files and of the statements that load them:
 *		CSV fields as Redshift's COPY reads them, manifests, and which
 *		Redshift errors mean "retry the transaction".
 *
 * Plain C (standard library only) so it can be unit-tested and fuzzed.
 */
#ifndef REDSHIFT_FDW_STAGE_FORMAT_H
#define REDSHIFT_FDW_STAGE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a NULL is written as (COPY ... NULL AS '\\N'), never quoted. */
#define STAGE_NULL_TEXT "\\N"

/* Redshift's limit on one input row of COPY, in bytes. */
#define STAGE_MAX_ROW_BYTES (4 * 1024 * 1024)

/* Redshift's largest VARCHAR, in bytes. */
#define STAGE_MAX_VARCHAR 65535

/* How staging files are compressed (server option staging_compression). */
typedef enum StageCompression
{
	STAGE_COMPRESS_ZSTD, /* the default: fastest, and the smallest files */
	STAGE_COMPRESS_GZIP,
	STAGE_COMPRESS_NONE
} StageCompression;

/*
 * The compression a staging_compression value names ("zstd", "gzip",
 * "none", any case); false when it names none.
 */
extern bool stage_compression_parse(const char *name, StageCompression *out);

/* The file name suffix of staging files so compressed (".csv.zst" ...). */
extern const char *stage_compression_suffix(StageCompression compression);

/* COPY's option for it ("ZSTD", "GZIP", or "" for none). */
extern const char *stage_compression_copy_option(StageCompression compression);

/* Bytes csv_quote writes for a value of len bytes (quotes included). */
extern size_t csv_quoted_length(const char *value, size_t len);

/*
 * Write value (len bytes, no NUL needed) as one quoted CSV field into
 * out, which has room for csv_quoted_length(value, len) bytes; returns
 * the bytes written.
 */
extern size_t csv_quote(char *out, const char *value, size_t len);

/*
 * Bytes csv_field writes for a value of len bytes; *quoted says whether it
 * goes in quotes: when it is empty, holds a comma, quote or line end, or
 * begins or ends with white space (which readers of CSV may trim).  Other
 * values (numbers, dates, most words) go bare: less to write and to read.
 */
extern size_t csv_field_length(const char *value, size_t len, bool *quoted);

/*
 * Write value as one CSV field, quoted as csv_field_length said, into out
 * (room for that many bytes); returns the bytes written.
 */
extern size_t csv_field(char *out, const char *value, size_t len, bool quoted);

/* Room stage_date_text and stage_timestamp_text need (NUL included). */
#define STAGE_DATETIME_TEXT_MAX 32

/*
 * The ISO text PostgreSQL writes (DateStyle ISO) for a date given as days
 * since 2000-01-01 (a DateADT): "YYYY-MM-DD".  Returns the bytes written
 * (no NUL), or 0 when the year is outside 1..9999 (and infinity): the
 * caller writes those through the output function.
 */
extern size_t stage_date_text(int32_t days, char *out);

/*
 * The same for a timestamp given as microseconds since 2000-01-01 (a
 * Timestamp, or a TimestampTz in UTC): "YYYY-MM-DD HH:MM:SS", then the
 * fraction without trailing zeros when there is one, then "+00" when
 * utc_offset (timestamptz_out's text with TimeZone UTC).
 */
extern size_t stage_timestamp_text(int64_t usecs, bool utc_offset, char *out);

/*
 * A date as to_jsonb writes it ("YYYY-MM-DD", 1..9999 AD) as days since
 * 2000-01-01 (a DateADT); false for any other text (BC, infinity, a year
 * past 9999, not a real day), which the caller reads with date_in.
 */
extern bool stage_parse_image_date(const char *text, size_t len,
								   int32_t *days);

/*
 * A timestamp as to_jsonb writes it ("YYYY-MM-DDTHH:MM:SS", a fraction of
 * up to six digits when there is one, and with_zone an offset "+HH:MM" or
 * "-HH:MM") as microseconds since 2000-01-01 (UTC with_zone); false for
 * any other text (BC, infinity, offsets with seconds ...), which the
 * caller reads with the type's input function.
 */
extern bool stage_parse_image_timestamp(const char *text, size_t len,
										bool with_zone, int64_t *usecs);

/* Whether a non-NULL value would read back as NULL (it is the NULL text). */
extern bool csv_value_reads_as_null(const char *value, size_t len);

/*
 * Bytes json_escape writes for a string (without the surrounding quotes).
 */
extern size_t json_escaped_length(const char *s);

/* Write s escaped for a JSON string into out; returns the bytes written. */
extern size_t json_escape(char *out, const char *s);

/*
 * Whether a Redshift error is a serializable isolation violation (error
 * 1023), after which the whole transaction is to be retried.  Any of the
 * arguments may be NULL.
 */
extern bool redshift_error_is_serialization_conflict(const char *sqlstate,
													 const char *message,
													 const char *detail);

/*
 * The VARCHAR width a column is widened to so a value of len bytes fits:
 * the next power of two from 256, at most STAGE_MAX_VARCHAR; 0 when no
 * width fits.
 */
extern int stage_varchar_width(size_t len);

/*
 * Milliseconds to wait before attempt (1-based) of a transaction retried
 * after error 1023: 500 ms doubling, capped at 8 s, plus up to 25% of
 * jitter (jitter in [0,1)).
 */
extern long stage_retry_delay_ms(int attempt, double jitter);

#endif /* REDSHIFT_FDW_STAGE_FORMAT_H */
