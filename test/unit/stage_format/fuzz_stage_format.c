/*
 * fuzz_stage_format.c
 *		libFuzzer harness for src/stage_format.c: a quoted CSV field must
 *		parse back (RFC 4180) to the value; a JSON-escaped string must hold
 *		no raw control character, quote or lone backslash and unescape back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stage_format.h"

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
				out[n++] = (char) strtol((char[]){s[i + 3], s[i + 4], 0},
										 NULL, 16);
				i += 4;
				break;
			default:
				return -1;
		}
	}
	return (long) n;
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
		else if (size == 0 || flen != size || memcmp(field, value, size) != 0 ||
				 memchr(value, '"', size) || memchr(value, ',', size) ||
				 memchr(value, '\n', size) || memchr(value, '\r', size) ||
				 value[0] == ' ' || value[0] == '\t' || value[size - 1] == ' ' ||
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
	free(escaped);
	free(quoted);
	free(back);
	free(str);
	return 0;
}
