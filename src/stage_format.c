/*
 * stage_format.c
 *		CSV fields, JSON strings and Redshift error classes for staging
 *		(see stage_format.h).  Standard C only.
 */
#include <string.h>

#include "stage_format.h"

/* Quotes doubled, the field in quotes: RFC 4180, as COPY ... CSV reads. */
size_t
csv_quoted_length(const char *value, size_t len)
{
	size_t n = len + 2;
	size_t i;

	for (i = 0; i < len; i++)
		if (value[i] == '"')
			n++;
	return n;
}

size_t
csv_quote(char *out, const char *value, size_t len)
{
	char *p = out;
	const char *q;
	const char *end = value + len;

	*p++ = '"';
	while (value < end &&
		   (q = memchr(value, '"', (size_t) (end - value))) != NULL)
	{
		size_t run = (size_t) (q - value) + 1;

		memcpy(p, value, run);
		p += run;
		*p++ = '"';
		value = q + 1;
	}
	memcpy(p, value, (size_t) (end - value));
	p += end - value;
	*p++ = '"';
	return (size_t) (p - out);
}

/* The characters that put a CSV field in quotes, wherever they are. */
static const bool csv_needs_quotes[256] = {
	['"'] = true, [','] = true, ['\n'] = true, ['\r'] = true};

size_t
csv_field_length(const char *value, size_t len, bool *quoted)
{
	const unsigned char *p = (const unsigned char *) value;
	bool special = false;
	size_t i;

	/* one pass with no branch per byte: most values are bare */
	for (i = 0; i < len; i++)
		special |= csv_needs_quotes[p[i]];
	*quoted = special || len == 0 || p[0] == ' ' || p[0] == '\t' ||
			  p[len - 1] == ' ' || p[len - 1] == '\t';
	return *quoted ? csv_quoted_length(value, len) : len;
}

size_t
csv_field(char *out, const char *value, size_t len, bool quoted)
{
	if (quoted)
		return csv_quote(out, value, len);
	memcpy(out, value, len);
	return len;
}

/*
 * COPY compares a field with the NULL text after removing its quotes, so
 * a value equal to it cannot be told from a NULL.
 */
bool
csv_value_reads_as_null(const char *value, size_t len)
{
	return len == strlen(STAGE_NULL_TEXT) &&
		   memcmp(value, STAGE_NULL_TEXT, len) == 0;
}

/* Characters JSON needs escaped: quote, backslash, control characters. */
static size_t
json_char_length(unsigned char c)
{
	if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ||
		c == '\b' || c == '\f')
		return 2;
	if (c < 0x20)
		return 6;
	return 1;
}

size_t
json_escaped_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += json_char_length((unsigned char) *s);
	return n;
}

size_t
json_escape(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		switch (c)
		{
			case '"':
			case '\\':
				*p++ = '\\';
				*p++ = (char) c;
				break;
			case '\n':
				*p++ = '\\';
				*p++ = 'n';
				break;
			case '\r':
				*p++ = '\\';
				*p++ = 'r';
				break;
			case '\t':
				*p++ = '\\';
				*p++ = 't';
				break;
			case '\b':
				*p++ = '\\';
				*p++ = 'b';
				break;
			case '\f':
				*p++ = '\\';
				*p++ = 'f';
				break;
			default:
				if (c < 0x20)
				{
					memcpy(p, "\\u00", 4);
					p[4] = hex[c >> 4];
					p[5] = hex[c & 15];
					p += 6;
				}
				else
					*p++ = (char) c;
		}
	}
	return (size_t) (p - out);
}

/*
 * Redshift reports 1023 as SQLSTATE XX000 with the number leading the
 * message, or "Serializable isolation violation" in message or detail.
 */
bool
redshift_error_is_serialization_conflict(const char *sqlstate,
										 const char *message,
										 const char *detail)
{
	static const char marker[] = "Serializable isolation violation";

	if (sqlstate != NULL && strcmp(sqlstate, "XX000") != 0 &&
		strcmp(sqlstate, "40001") != 0)
		return false;
	if (message != NULL &&
		(strncmp(message, "1023", 4) == 0 || strstr(message, marker) != NULL))
		return true;
	return detail != NULL && strstr(detail, marker) != NULL;
}

int
stage_varchar_width(size_t len)
{
	size_t width = 256;

	if (len > STAGE_MAX_VARCHAR)
		return 0;
	while (width < len)
		width *= 2;
	return width > STAGE_MAX_VARCHAR ? STAGE_MAX_VARCHAR : (int) width;
}

long
stage_retry_delay_ms(int attempt, double jitter)
{
	long delay = 500;

	if (attempt < 1)
		attempt = 1;
	while (--attempt > 0 && delay < 8000)
		delay *= 2;
	if (delay > 8000)
		delay = 8000;
	if (jitter < 0)
		jitter = 0;
	if (jitter >= 1)
		jitter = 0.999;
	return delay + (long) (delay * 0.25 * jitter);
}

/* staging_compression's values, in StageCompression order. */
static const struct
{
	const char *name;
	const char *suffix;
	const char *copy_option;
} compressions[] = {
	{"zstd", ".csv.zst", "ZSTD"},
	{"gzip", ".csv.gz", "GZIP"},
	{"none", ".csv", ""},
};

/* The compression a staging_compression value names. */
bool
stage_compression_parse(const char *name, StageCompression *out)
{
	size_t i;

	for (i = 0; i < sizeof(compressions) / sizeof(compressions[0]); i++)
	{
		const char *a = name;
		const char *b = compressions[i].name;

		while (*a && *b && (*a | 0x20) == *b)
			a++, b++;
		if (*a == '\0' && *b == '\0')
		{
			*out = (StageCompression) i;
			return true;
		}
	}
	return false;
}

/* The suffix of a staging file's name. */
const char *
stage_compression_suffix(StageCompression compression)
{
	return compressions[compression].suffix;
}

/* The COPY option that reads it. */
const char *
stage_compression_copy_option(StageCompression compression)
{
	return compressions[compression].copy_option;
}
