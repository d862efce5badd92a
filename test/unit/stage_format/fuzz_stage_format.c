/*
 * fuzz_stage_format.c
 *		libFuzzer harness for src/stage_format.c: a quoted CSV field must
 *		parse back (RFC 4180) to the value; a JSON-escaped string must hold
 *		no raw control character, quote or lone backslash and unescape back;
 *		a timestamp's text must read back to the same microsecond, and so
 *		must a row image's date or timestamp text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stage_format.h"
#include "../civil_days.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parse one quoted CSV field back; returns its length or -1. */
static long
csv_unquote(const char *field, size_t len, char *out)
{
	size_t i;
	size_t n = 0;

	if (len < 2 || field[0] != '"' || field[len - 1] != '"')
		return -1;
	for (i = 1; i < len - 1; i++)
	{
		if (field[i] == '"')
		{
			if (i + 1 >= len - 1 || field[i + 1] != '"')
				return -1;
			i++;
		}
		out[n++] = field[i];
	}
	return (long) n;
}

/* Undo json_escape for what it produces; -1 on anything else. */
static long
json_unescape(const char *s, size_t len, char *out)
{
	size_t i;
	size_t n = 0;

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == '"')
			return -1;
		if (c != '\\')
		{
			out[n++] = (char) c;
			continue;
		}
		if (++i >= len)
			return -1;
		switch (s[i])
		{
			case '"':
			case '\\':
				out[n++] = s[i];
				break;
			case 'n':
				out[n++] = '\n';
				break;
			case 'r':
				out[n++] = '\r';
				break;
			case 't':
				out[n++] = '\t';
				break;
			case 'b':
				out[n++] = '\b';
				break;
			case 'f':
				out[n++] = '\f';
				break;
			case 'u':
				if (i + 4 >= len || strncmp(s + i + 1, "00", 2) != 0)
					return -1;
				out[n++] =
					(char) strtol((char[]){s[i + 3], s[i + 4], 0}, NULL, 16);
				i += 4;
				break;
			default:
				return -1;
		}
	}
	return (long) n;
}

/* 1970-01-01 to 2000-01-01, in days */
#define DAYS_1970_TO_2000 10957

/*
 * A timestamp's text reads back to it, or is left to the output function
 * exactly outside 0001-01-01 .. 9999-12-31.
 */
static void
check_timestamp(int64_t usecs)
{
	char out[STAGE_DATETIME_TEXT_MAX];
	char text[STAGE_DATETIME_TEXT_MAX];
	size_t n = stage_timestamp_text(usecs, true, out);
	int64_t first = INT64_C(-63082281600000000);
	int64_t last = INT64_C(252455615999999999);
	int y, mo, d, h, mi, s, used = 0;
	int64_t back;
	int64_t fraction = 0;

	if ((n == 0) != (usecs < first || usecs > last))
		__builtin_trap();
	if (n == 0)
		return;
	if (n >= sizeof(text) || n < 22 || memcmp(out + n - 3, "+00", 3) != 0)
		__builtin_trap();
	memcpy(text, out, n - 3);
	text[n - 3] = '\0';
	if (sscanf(text, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s,
			   &used) != 6 ||
		used != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
		mi > 59 || s > 59)
		__builtin_trap();
	if (text[19] != '\0')
	{
		size_t digits = strlen(text + 20);

		if (text[19] != '.' || digits < 1 || digits > 6 ||
			text[19 + digits] == '0')
			__builtin_trap();
		fraction = strtol(text + 20, NULL, 10);
		while (digits++ < 6)
			fraction *= 10;
	}
	back = ((days_from_civil(y, mo, d) - DAYS_1970_TO_2000) * 86400 +
			h * 3600 + mi * 60 + s) *
			   INT64_C(1000000) +
		   fraction;
	if (back != usecs)
		__builtin_trap();
}

/*
 * Text that parses as an image's date or timestamp is that day by the
 * independent reckoning, and the timestamp's own text ("T" for the space)
 * parses back to the same microsecond; the offset moves it by its amount.
 */
static void
check_image(const char *text, size_t size)
{
	int32_t days;
	int64_t usecs;
	int64_t local;
	char out[STAGE_DATETIME_TEXT_MAX];
	size_t n;
	int y, mo, d;

	if (stage_parse_image_date(text, size, &days))
	{
		if (size != 10 || sscanf(text, "%4d-%2d-%2d", &y, &mo, &d) != 3 ||
			days_from_civil(y, mo, d) - DAYS_1970_TO_2000 != days ||
			stage_date_text(days, out) != 10 || memcmp(out, text, 10) != 0)
			__builtin_trap();
	}
	if (stage_parse_image_timestamp(text, size, false, &usecs))
	{
		check_timestamp(usecs);
		n = stage_timestamp_text(usecs, false, out);
		if (n < 19 || memcmp(out, text, 10) != 0 || text[10] != 'T')
			__builtin_trap();
		out[10] = 'T';
		if (!stage_parse_image_timestamp(out, n, false, &local) ||
			local != usecs)
			__builtin_trap();
	}
	if (size > 6 && stage_parse_image_timestamp(text, size, true, &usecs))
	{
		int hours = (text[size - 5] - '0') * 10 + (text[size - 4] - '0');
		int minutes = (text[size - 2] - '0') * 10 + (text[size - 1] - '0');
		int64_t offset = (int64_t) (hours * 60 + minutes) * 60000000;

		if (!stage_parse_image_timestamp(text, size - 6, false, &local) ||
			usecs != local - (text[size - 6] == '-' ? -offset : offset))
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *value = (const char *) data;
	size_t qlen = csv_quoted_length(value, size);
	char *quoted = malloc(qlen + 1);
	char *back = malloc(size + 1);
	char *str = malloc(size + 1);
	char *escaped;
	size_t elen;
	long n;

	if (quoted == NULL || back == NULL || str == NULL)
		abort();
	if (csv_quote(quoted, value, size) != qlen)
		__builtin_trap();
	n = csv_unquote(quoted, qlen, back);
	if (n != (long) size || memcmp(back, value, size) != 0)
		__builtin_trap();
	/* a field goes bare only when a CSV reader reads it back unchanged */
	{
		bool in_quotes;
		size_t flen = csv_field_length(value, size, &in_quotes);
		char *field = malloc(flen + 1);

		if (field == NULL)
			abort();
		if (csv_field(field, value, size, in_quotes) != flen)
			__builtin_trap();
		if (in_quotes)
		{
			n = csv_unquote(field, flen, back);
			if (n != (long) size || memcmp(back, value, size) != 0)
				__builtin_trap();
		}
		else if (size == 0 || flen != size ||
				 memcmp(field, value, size) != 0 || memchr(value, '"', size) ||
				 memchr(value, ',', size) || memchr(value, '\n', size) ||
				 memchr(value, '\r', size) || value[0] == ' ' ||
				 value[0] == '\t' || value[size - 1] == ' ' ||
				 value[size - 1] == '\t')
			__builtin_trap();
		free(field);
	}

	/* JSON works on C strings: up to the first NUL */
	memcpy(str, data, size);
	str[size] = '\0';
	elen = json_escaped_length(str);
	escaped = malloc(elen + 1);
	if (escaped == NULL)
		abort();
	if (json_escape(escaped, str) != elen)
		__builtin_trap();
	n = json_unescape(escaped, elen, back);
	if (n != (long) strlen(str) || memcmp(back, str, (size_t) n) != 0)
		__builtin_trap();
	/* a compression parses from its own name (any case) and nothing else */
	{
		static const char *const names[] = {"zstd", "gzip", "none"};
		StageCompression c;
		bool parsed = stage_compression_parse(str, &c);
		int match = -1;
		int i;

		for (i = 0; i < 3; i++)
			if (strcasecmp(str, names[i]) == 0)
				match = i;
		if (parsed != (match >= 0) || (parsed && (int) c != match))
			__builtin_trap();
	}
	check_image(value, size);
	/* the first bytes as a timestamp, and scaled into 1..9999 AD */
	if (size >= sizeof(int64_t))
	{
		int64_t usecs;

		memcpy(&usecs, data, sizeof(usecs));
		check_timestamp(usecs);
		check_timestamp(
			INT64_C(-63082281600000000) +
			(int64_t) ((uint64_t) usecs % UINT64_C(315537897600000000)));
	}
	free(escaped);
	free(quoted);
	free(back);
	free(str);
	return 0;
}
