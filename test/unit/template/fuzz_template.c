/*
 * fuzz_template.c
 *		libFuzzer harness for src/template.c.
 *
 * Any byte string (NUL bytes cut it short, as in a C string) is a
 * template.  It is parsed; if it parses it is rendered with a few data
 * sets: no cursor, one, three, awkward names with quotes and NULLs.
 * Beyond "no crash, no undefined behaviour, no leak" (the sanitizers'
 * job) it traps when the module breaks its contract: an error must leave
 * a NUL-terminated "template: query..." message that is valid UTF-8 (it
 * goes to the server log), also when cut short by a small buffer; a failed
 * render must leave *out NULL, and a successful one a string within the
 * output limit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* Fail the fuzz run on a broken property. */
static void
require(bool condition)
{
	if (!condition)
		__builtin_trap();
}

/* Is the text valid UTF-8 (no overlongs, surrogates or truncation)? */
static bool
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p != '\0')
	{
		uint32_t r;
		int need;
		int i;

		if (*p < 0x80)
		{
			p++;
			continue;
		}
		if (*p < 0xc2 || *p > 0xf4)
			return false;
		need = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : 1;
		r = *p & (0x3f >> need);
		for (i = 1; i <= need; i++)
		{
			if ((p[i] & 0xc0) != 0x80)
				return false;
			r = (r << 6) | (p[i] & 0x3f);
		}
		if ((need == 2 && r < 0x800) || (need == 3 && r < 0x10000) ||
			r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
			return false;
		p += need + 1;
	}
	return true;
}

/* A message of this module: terminated, in Go's shape, valid UTF-8. */
static void
require_message(const char *err)
{
	require(memchr(err, '\0', TEMPLATE_ERROR_MAX) != NULL);
	require(strncmp(err, "template: query", 15) == 0);
	require(valid_utf8(err));
}

/* Render once and check the contract of template_render. */
static void
render_with(const Template *tmpl, const TemplateContext *ctx)
{
	char err[TEMPLATE_ERROR_MAX];
	char *out = (char *) "unset";

	if (template_render(tmpl, ctx, &out, err, sizeof(err)))
	{
		require(out != NULL);
		require(strlen(out) <= TEMPLATE_MAX_OUTPUT);
		free(out);
	}
	else
	{
		require(out == NULL);
		require_message(err);
	}
}

/* One fuzz input: parse it as a template, render it with several data. */
int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static const char *const plain[] = {"\"ka\"", "\"kb\"", "\"kc\""};
	static const char *const awkward[] = {"\"we\"\"ird\"", NULL, ""};
	char *text = malloc(size + 1);
	char err[TEMPLATE_ERROR_MAX];
	Template *tmpl;
	TemplateContext ctx;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	tmpl = template_parse(text, err, sizeof(err));
	if (tmpl == NULL)
	{
		char small[48];
		size_t small_len = 1 + size % sizeof(small);

		require_message(err);
		require(template_parse(text, small, small_len) == NULL);
		require(strlen(small) < small_len && valid_utf8(small));
		free(text);
		return 0;
	}
	free(text);

	ctx.is_first_query = true;
	ctx.cursor_fields = plain;
	ctx.n_cursor_fields = 0;
	ctx.schema_name = "s";
	ctx.table_name = "t";
	render_with(tmpl, &ctx);
	ctx.n_cursor_fields = 1;
	render_with(tmpl, &ctx);
	ctx.is_first_query = false;
	ctx.n_cursor_fields = 3;
	render_with(tmpl, &ctx);
	ctx.cursor_fields = awkward;
	ctx.schema_name = "my\"schema";
	ctx.table_name = NULL;
	render_with(tmpl, &ctx);
	template_free(tmpl);
	return 0;
}
