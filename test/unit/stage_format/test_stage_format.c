/*
 * test_stage_format.c
 *		Table-driven unit tests of src/stage_format.c: CSV fields, JSON
 *		strings, date and timestamp texts, the 1023 classifier, VARCHAR
 *		widths and retry delays.
 *
 * Prints one line per failure and a summary "stage_format: N passed, M
 * failed"; exits non-zero if anything failed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stage_format.h"

static int passed;
static int failed;

/* Count one check, printing what failed. */
static void
check(bool ok, const char *what, const char *input)
{
	if (ok)
		passed++;
	else
	{
		failed++;
		printf("FAIL %s: [%s]\n", what, input);
	}
}

/* A value and the CSV field it must become. */
typedef struct CsvCase
{
	const char *value;
	const char *field;
} CsvCase;

static const CsvCase csv_cases[] = {
	{"", "\"\""},
	{"plain", "\"plain\""},
	{"a,b", "\"a,b\""},
	{"say \"hi\"", "\"say \"\"hi\"\"\""},
	{"\"", "\"\"\"\""},
	{"line\nbreak\r\n", "\"line\nbreak\r\n\""},
	{"back\\slash", "\"back\\slash\""},
	{"ünïcødé ✓", "\"ünïcødé ✓\""},
};

/* Values that go bare, and values that need their quotes. */
static const CsvCase field_cases[] = {
	{"123", "123"},
	{"-1.5e+300", "-1.5e+300"},
	{"2024-01-01 00:00:00+00", "2024-01-01 00:00:00+00"},
	{"back\\slash", "back\\slash"},
	{"ünïcødé ✓", "ünïcødé ✓"},
	{"", "\"\""},
	{"a,b", "\"a,b\""},
	{"say \"hi\"", "\"say \"\"hi\"\"\""},
	{"line\nbreak", "\"line\nbreak\""},
	{"cr\r", "\"cr\r\""},
	{" lead", "\" lead\""},
	{"trail ", "\"trail \""},
	{"\ttab", "\"\ttab\""},
	{"tab\t", "\"tab\t\""},
	{"in side", "in side"},
};

static void
test_csv(void)
{
	size_t i;
	char out[256];

	for (i = 0; i < sizeof(csv_cases) / sizeof(csv_cases[0]); i++)
	{
		const CsvCase *c = &csv_cases[i];
		size_t len = strlen(c->value);
		size_t want = csv_quoted_length(c->value, len);
		size_t n = csv_quote(out, c->value, len);

		check(n == want, "csv length", c->value);
		check(n == strlen(c->field) && memcmp(out, c->field, n) == 0,
			  "csv field", c->value);
	}
	for (i = 0; i < sizeof(field_cases) / sizeof(field_cases[0]); i++)
	{
		const CsvCase *c = &field_cases[i];
		size_t len = strlen(c->value);
		bool quoted;
		size_t want = csv_field_length(c->value, len, &quoted);
		size_t n = csv_field(out, c->value, len, quoted);

		check(n == want, "field length", c->value);
		check(quoted == (c->field[0] == '"'), "field quoted", c->value);
		check(n == strlen(c->field) && memcmp(out, c->field, n) == 0,
			  "field", c->value);
	}
	check(csv_value_reads_as_null("\\N", 2), "null text", "\\N");
	check(!csv_value_reads_as_null("\\N ", 3), "not null text", "\\N ");
	check(!csv_value_reads_as_null("N", 1), "not null text", "N");
	check(!csv_value_reads_as_null("", 0), "empty is not null", "");
}

/* A string and its JSON escape. */
typedef struct JsonCase
{
	const char *in;
	const char *out;
} JsonCase;

static const JsonCase json_cases[] = {
	{"s3://bucket/p/k-0001.csv.gz", "s3://bucket/p/k-0001.csv.gz"},
	{"a\"b\\c", "a\\\"b\\\\c"},
	{"tab\tnl\n", "tab\\tnl\\n"},
	{"\x01", "\\u0001"},
	{"\x1f", "\\u001f"},
	{"é", "é"},
};

static void
test_json(void)
{
	size_t i;
	char out[256];

	for (i = 0; i < sizeof(json_cases) / sizeof(json_cases[0]); i++)
	{
		size_t n = json_escape(out, json_cases[i].in);

		check(n == json_escaped_length(json_cases[i].in), "json length",
			  json_cases[i].in);
		check(n == strlen(json_cases[i].out) &&
				  memcmp(out, json_cases[i].out, n) == 0,
			  "json escape", json_cases[i].in);
	}
}

static void
test_conflict(void)
{
	check(redshift_error_is_serialization_conflict(
			  "XX000", "1023", "Serializable isolation violation on table"),
		  "1023 message", "1023");
	check(redshift_error_is_serialization_conflict(
			  "XX000", "ERROR: 1023 DETAIL: Serializable isolation violation",
			  NULL),
		  "marker in message", "marker");
	check(redshift_error_is_serialization_conflict(
			  NULL, "something", "Serializable isolation violation on table - 100167"),
		  "marker in detail", "detail");
	check(!redshift_error_is_serialization_conflict(
			  "XX000", "Load into table 't' failed.", NULL),
		  "load error is not 1023", "load");
	check(!redshift_error_is_serialization_conflict("42P01", "1023", NULL),
		  "other sqlstate", "42P01");
	check(!redshift_error_is_serialization_conflict(NULL, NULL, NULL),
		  "nothing", "NULL");
}

static void
test_widths(void)
{
	check(stage_varchar_width(0) == 256, "width 0", "0");
	check(stage_varchar_width(256) == 256, "width 256", "256");
	check(stage_varchar_width(257) == 512, "width 257", "257");
	check(stage_varchar_width(40000) == 65535, "width 40000", "40000");
	check(stage_varchar_width(65535) == 65535, "width max", "65535");
	check(stage_varchar_width(65536) == 0, "width over", "65536");
	check(stage_retry_delay_ms(1, 0) == 500, "delay 1", "1");
	check(stage_retry_delay_ms(2, 0) == 1000, "delay 2", "2");
	check(stage_retry_delay_ms(10, 0) == 8000, "delay capped", "10");
	check(stage_retry_delay_ms(1, 0.999) < 500 * 1.25 + 1, "jitter bound",
		  "j");
	check(stage_retry_delay_ms(0, 2.0) >= 500, "bad input", "0");
}

/* A date (days since 2000-01-01) and its text, as PostgreSQL writes it. */
typedef struct DateCase
{
	int32_t days;
	const char *text;
} DateCase;

static const DateCase date_cases[] = {
	{-730119, "0001-01-01"}, {-730060, "0001-03-01"}, {-728965, "0004-02-29"},
	{-152384, "1582-10-15"}, {-36466, "1900-02-28"},  {-36465, "1900-03-01"},
	{-10958, "1969-12-31"},	 {-10957, "1970-01-01"},  {-1, "1999-12-31"},
	{0, "2000-01-01"},		 {59, "2000-02-29"},	  {9131, "2024-12-31"},
	{36584, "2100-03-01"},	 {2921939, "9999-12-31"},
};

/* A timestamp (microseconds since 2000-01-01) and its text. */
typedef struct TimestampCase
{
	int64_t usecs;
	const char *text;
} TimestampCase;

static const TimestampCase timestamp_cases[] = {
	{INT64_C(-63082281600000000), "0001-01-01 00:00:00"},
	{INT64_C(-946684800000001), "1969-12-31 23:59:59.999999"},
	{-500000, "1999-12-31 23:59:59.5"},
	{INT64_C(-86399990000), "1999-12-31 00:00:00.01"},
	{0, "2000-01-01 00:00:00"},
	{1, "2000-01-01 00:00:00.000001"},
	{INT64_C(762525296123450), "2024-02-29 12:34:56.12345"},
	{INT64_C(252455615999999999), "9999-12-31 23:59:59.999999"},
};

/* Dates and timestamps in 1..9999 AD, and the ones left to the caller. */
static void
test_datetime(void)
{
	char out[STAGE_DATETIME_TEXT_MAX];
	char with_zone[STAGE_DATETIME_TEXT_MAX];
	size_t i;
	size_t n;

	for (i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]); i++)
	{
		n = stage_date_text(date_cases[i].days, out);
		check(n == strlen(date_cases[i].text) &&
				  memcmp(out, date_cases[i].text, n) == 0,
			  "date text", date_cases[i].text);
	}
	for (i = 0; i < sizeof(timestamp_cases) / sizeof(timestamp_cases[0]); i++)
	{
		const char *text = timestamp_cases[i].text;

		n = stage_timestamp_text(timestamp_cases[i].usecs, false, out);
		check(n == strlen(text) && memcmp(out, text, n) == 0,
			  "timestamp text", text);
		snprintf(with_zone, sizeof(with_zone), "%s+00", text);
		n = stage_timestamp_text(timestamp_cases[i].usecs, true, out);
		check(n == strlen(with_zone) && memcmp(out, with_zone, n) == 0,
			  "timestamptz text", with_zone);
	}
	/* BC, past 9999 and infinity go through the output function */
	check(stage_date_text(-730120, out) == 0, "date before 0001", "-730120");
	check(stage_date_text(2921940, out) == 0, "date after 9999", "2921940");
	check(stage_date_text(INT32_MIN, out) == 0, "-infinity date", "INT32_MIN");
	check(stage_date_text(INT32_MAX, out) == 0, "infinity date", "INT32_MAX");
	check(stage_timestamp_text(INT64_C(-63082281600000001), true, out) == 0,
		  "timestamp before 0001", "-63082281600000001");
	check(stage_timestamp_text(INT64_C(252455616000000000), true, out) == 0,
		  "timestamp after 9999", "252455616000000000");
	check(stage_timestamp_text(INT64_MIN, false, out) == 0,
		  "-infinity timestamp", "INT64_MIN");
	check(stage_timestamp_text(INT64_MAX, false, out) == 0,
		  "infinity timestamp", "INT64_MAX");
	/* every day of 1..9999 follows the day before, with no gap */
	{
		int32_t day;
		char prev[STAGE_DATETIME_TEXT_MAX];
		bool in_order = true;

		stage_date_text(-730119, prev);
		for (day = -730118; day <= 2921939 && in_order; day++)
		{
			n = stage_date_text(day, out);
			in_order = n == 10 && memcmp(prev, out, 10) < 0 &&
					   out[4] == '-' && out[7] == '-' &&
					   (memcmp(out + 5, prev + 5, 2) == 0
							? atoi(out + 8) == atoi(prev + 8) + 1
							: atoi(out + 8) == 1);
			memcpy(prev, out, 10);
		}
		check(in_order && memcmp(prev, "9999-12-31", 10) == 0,
			  "consecutive days", prev);
	}
}

/* Whether text parses as an image's date of that day. */
static bool
image_date_is(const char *text, int32_t days)
{
	int32_t got = INT32_MIN;

	return stage_parse_image_date(text, strlen(text), &got) && got == days;
}

/* Whether text parses as an image's timestamp (or not) at usecs. */
static bool
image_timestamp_is(const char *text, bool with_zone, int64_t usecs)
{
	int64_t got = INT64_MIN;

	return stage_parse_image_timestamp(text, strlen(text), with_zone, &got) &&
		   got == usecs;
}

/* Whether text is left to the input function. */
static bool
image_refused(const char *text)
{
	int32_t days;
	int64_t usecs;

	return !stage_parse_image_date(text, strlen(text), &days) &&
		   !stage_parse_image_timestamp(text, strlen(text), false, &usecs) &&
		   !stage_parse_image_timestamp(text, strlen(text), true, &usecs);
}

/*
 * to_jsonb's dates and timestamps (XSD: a "T", offsets as "+HH:MM") read
 * back to the days and microseconds of the cases above; every other form
 * is left to the input function.
 */
static void
test_image_datetime(void)
{
	static const char *const refused[] = {
		"", "2024-01-01 ", "2024-1-01", "2024-13-01", "2024-00-10",
		"2024-04-31", "2023-02-29", "1900-02-29", "0000-01-01",
		"10000-01-01", "0044-03-15 BC", "infinity", "-infinity",
		"2024-01-01 00:00:00", "2024-01-01T24:00:00", "2024-01-01T23:60:00",
		"2024-01-01T23:59:60", "2024-01-01T00:00:00.", "2024-01-01T00:00:00.1234567",
		"2024-01-01T00:00:00+00:00:00", "2024-01-01T00:00:00+00",
		"2024-01-01T00:00:00+16:00", "2024-01-01T00:00:00+05:60",
		"2024-01-01T00:00:00Z", "2024-01-01T00:00:00+0a:00",
		"2024-01-01T00:00:00.5x", "2024-01-01T00:00:00 BC", "+024-01-01",
	};
	size_t i;
	char text[STAGE_DATETIME_TEXT_MAX + 8];

	for (i = 0; i < sizeof(date_cases) / sizeof(date_cases[0]); i++)
		check(image_date_is(date_cases[i].text, date_cases[i].days),
			  "image date", date_cases[i].text);
	check(image_date_is("2000-02-29", 59) &&
			  image_date_is("2400-02-29", 146156),
		  "leap centuries", "2000, 2400");
	for (i = 0; i < sizeof(timestamp_cases) / sizeof(timestamp_cases[0]); i++)
	{
		int64_t usecs = timestamp_cases[i].usecs;

		snprintf(text, sizeof(text), "%s", timestamp_cases[i].text);
		text[10] = 'T';
		check(image_timestamp_is(text, false, usecs), "image timestamp", text);
		snprintf(text + strlen(text), 8, "+00:00");
		check(image_timestamp_is(text, true, usecs), "image timestamptz",
			  text);
	}
	/* east of UTC the local time is ahead: 10:00+05:30 is 04:30 UTC */
	check(image_timestamp_is("2000-01-01T10:00:00+05:30", true,
							 INT64_C(16200000000)),
		  "offset east", "+05:30");
	check(image_timestamp_is("1999-12-31T19:00:00.25-05:00", true, 250000),
		  "offset west", "-05:00");
	check(image_timestamp_is("9999-12-31T23:59:59.999999-15:59", true,
							 INT64_C(252455615999999999) +
								 INT64_C(57540000000)),
		  "past 9999 in UTC", "-15:59");
	check(image_timestamp_is("2000-01-01T00:00:00.1", false, 100000),
		  "one fraction digit", ".1");
	check(!image_timestamp_is("2000-01-01T00:00:00+00:00", false, 0),
		  "an offset is no timestamp", "+00:00");
	check(!image_timestamp_is("2000-01-01T00:00:00", true, 0),
		  "a timestamptz has an offset", "no offset");
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		check(image_refused(refused[i]), "left to the input", refused[i]);
}

static void
test_compression(void)
{
	StageCompression c = STAGE_COMPRESS_NONE;

	check(stage_compression_parse("zstd", &c) && c == STAGE_COMPRESS_ZSTD,
		  "zstd", "zstd");
	check(stage_compression_parse("GZip", &c) && c == STAGE_COMPRESS_GZIP,
		  "gzip any case", "GZip");
	check(stage_compression_parse("none", &c) && c == STAGE_COMPRESS_NONE,
		  "none", "none");
	check(!stage_compression_parse("zst", &c), "a prefix is no name", "zst");
	check(!stage_compression_parse("zstdx", &c), "longer is no name", "zstdx");
	check(!stage_compression_parse("", &c), "empty", "");
	check(!stage_compression_parse("lzop", &c), "lzop", "lzop");
	check(!stage_compression_parse("GZIP\x01", &c), "control char", "x01");
	check(strcmp(stage_compression_suffix(STAGE_COMPRESS_ZSTD), ".csv.zst") ==
			  0,
		  "zstd suffix", ".csv.zst");
	check(strcmp(stage_compression_suffix(STAGE_COMPRESS_NONE), ".csv") == 0,
		  "plain suffix", ".csv");
	check(strcmp(stage_compression_copy_option(STAGE_COMPRESS_GZIP), "GZIP") ==
			  0,
		  "gzip option", "GZIP");
	check(stage_compression_copy_option(STAGE_COMPRESS_NONE)[0] == '\0',
		  "no option for none", "none");
}

int
main(void)
{
	test_csv();
	test_compression();
	test_json();
	test_conflict();
	test_widths();
	test_datetime();
	test_image_datetime();
	printf("stage_format: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
