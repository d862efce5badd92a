/*
 * redact.c
 *		Secrets out of messages: known values, and values named by a
 *		secret keyword.  See redact.h.
 */
#include "redact.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * Keywords whose value is a secret, in connection strings, AWS COPY
 * clauses, shared credential files and HTTP headers.  Matched without
 * regard to case, and only when followed by '=', ':' or a quote.
 */
static const char *const secret_keywords[] = {
	"password",		  "secret_access_key", "session_token", "security_token",
	"security-token", "credentials",	   "signature",
};

/* A growable output buffer; a failed allocation leaves data NULL. */
typedef struct Output
{
	char *data;
	size_t len;
	size_t cap;
} Output;

/* Append len bytes, growing the buffer geometrically. */
static void
output_append(Output *out, const char *bytes, size_t len)
{
	if (out->data == NULL)
		return;
	if (out->len + len + 1 > out->cap)
	{
		size_t cap = out->cap * 2;
		char *grown;

		if (cap < out->len + len + 1)
			cap = out->len + len + 1;
		grown = realloc(out->data, cap);
		if (grown == NULL)
		{
			free(out->data);
			out->data = NULL;
			return;
		}
		out->data = grown;
		out->cap = cap;
	}
	memcpy(out->data + out->len, bytes, len);
	out->len += len;
	out->data[out->len] = '\0';
}

static char
lower_ascii(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
}

/* Whether text at pos starts with keyword, ignoring ASCII case. */
static bool
keyword_at(const char *text, size_t len, size_t pos, const char *keyword)
{
	size_t klen = strlen(keyword);
	size_t i;

	if (klen > len - pos)
		return false;
	for (i = 0; i < klen; i++)
		if (lower_ascii(text[pos + i]) != keyword[i])
			return false;
	return true;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Where an unquoted value ends. */
static bool
ends_bare_value(char c)
{
	return is_space(c) || c == ';' || c == ',' || c == '&' || c == ')' ||
		   c == '"' || c == '\'' || c == '\0';
}

/*
 * If a secret keyword starts at pos and is followed by a value, the
 * offsets of that value (quotes excluded) in *vstart / *vend and the end
 * of the whole construct (closing quote included) in *after.
 */
static bool
keyword_value_at(const char *text, size_t len, size_t pos, size_t *vstart,
				 size_t *vend, size_t *after)
{
	size_t k;

	for (k = 0; k < sizeof(secret_keywords) / sizeof(secret_keywords[0]); k++)
	{
		size_t p = pos + strlen(secret_keywords[k]);
		bool separated = false;

		if (!keyword_at(text, len, pos, secret_keywords[k]))
			continue;
		while (p < len && is_space(text[p]))
			p++;
		if (p < len && (text[p] == '=' || text[p] == ':'))
		{
			separated = true;
			p++;
			while (p < len && is_space(text[p]))
				p++;
		}
		if (p < len && (text[p] == '\'' || text[p] == '"'))
		{
			char quote = text[p];
			size_t q = p + 1;

			/* a doubled quote is part of the value */
			while (q < len && !(text[q] == quote &&
								(q + 1 >= len || text[q + 1] != quote)))
				q += text[q] == quote ? 2 : 1;
			*vstart = p + 1;
			*vend = q < len ? q : len;
			*after = q < len ? q + 1 : len;
			return true;
		}
		if (separated)
		{
			size_t q = p;

			while (q < len && !ends_bare_value(text[q]))
				q++;
			if (q == p)
				return false;
			*vstart = p;
			*vend = q;
			*after = q;
			return true;
		}
	}
	return false;
}

/* The length of the longest known secret starting at pos, or 0. */
static size_t
secret_at(const char *text, size_t len, size_t pos, const char *const *secrets,
		  size_t nsecrets)
{
	size_t best = 0;
	size_t i;

	for (i = 0; i < nsecrets; i++)
	{
		size_t slen;

		if (secrets[i] == NULL)
			continue;
		slen = strlen(secrets[i]);
		if (slen < REDACT_MIN_SECRET || slen > len - pos || slen <= best)
			continue;
		if (memcmp(text + pos, secrets[i], slen) == 0)
			best = slen;
	}
	return best;
}

/*
 * Replace known secrets first (so a keyword pass cannot split one), then
 * keyword-named values in the result.
 */
char *
redact_secrets(const char *text, const char *const *secrets, size_t nsecrets)
{
	Output pass1 = {malloc(64), 0, 64};
	Output pass2 = {malloc(64), 0, 64};
	size_t len = text ? strlen(text) : 0;
	size_t pos = 0;
	size_t start = 0;

	if (pass1.data)
		pass1.data[0] = '\0';
	if (pass2.data)
		pass2.data[0] = '\0';
	while (pos < len)
	{
		size_t slen = secret_at(text, len, pos, secrets, nsecrets);

		if (slen == 0)
		{
			pos++;
			continue;
		}
		output_append(&pass1, text + start, pos - start);
		output_append(&pass1, REDACTED_TEXT, strlen(REDACTED_TEXT));
		pos += slen;
		start = pos;
	}
	output_append(&pass1, text + start, len - start);
	if (pass1.data == NULL)
	{
		free(pass2.data);
		return NULL;
	}

	len = pass1.len;
	pos = 0;
	start = 0;
	while (pos < len)
	{
		size_t vstart;
		size_t vend;
		size_t after;
		bool word_start =
			pos == 0 ||
			!((pass1.data[pos - 1] >= 'a' && pass1.data[pos - 1] <= 'z') ||
			  (pass1.data[pos - 1] >= 'A' && pass1.data[pos - 1] <= 'Z'));

		if (!word_start ||
			!keyword_value_at(pass1.data, len, pos, &vstart, &vend, &after))
		{
			pos++;
			continue;
		}
		output_append(&pass2, pass1.data + start, vstart - start);
		output_append(&pass2, REDACTED_TEXT, strlen(REDACTED_TEXT));
		output_append(&pass2, pass1.data + vend, after - vend);
		pos = after;
		start = after;
	}
	output_append(&pass2, pass1.data + start, len - start);
	free(pass1.data);
	return pass2.data;
}
