/*
 * test_template.c
 *		Table-driven unit tests of src/template.c.
 *
 * Expected outputs are what Go's text/template produces for the same
 * template and data (Estuary passes the data as a map[string]any).
 * Prints one line per failure and a summary "template: N passed, M
 * failed"; exits non-zero if anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

/* Tallies of the whole run; passed between checks explicitly. */
typedef struct Tally
{
	int passed;
	int failed;
} Tally;

static const char *const cursor_fields[] = {"\"ka\"", "\"kb\"", "\"kc\""};

/* Data for a test: first query or not, how many cursor columns. */
static TemplateContext
context(bool first, size_t n_fields)
{
	TemplateContext ctx;

	ctx.is_first_query = first;
	ctx.cursor_fields = cursor_fields;
	ctx.n_cursor_fields = n_fields;
	ctx.schema_name = "s";
	ctx.table_name = "t";
	return ctx;
}

/* Is the message valid UTF-8, as PostgreSQL requires of a log line? */
static bool
valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *) s;

	while (*p != '\0')
	{
		int need = *p < 0x80	? 0
				   : *p >= 0xf0 ? 3
				   : *p >= 0xe0 ? 2
				   : *p >= 0xc2 ? 1
								: -1;
		int i;

		if (need < 0 || *p > 0xf4)
			return false;
		for (i = 1; i <= need; i++)
		{
			if ((p[i] & 0xc0) != 0x80)
				return false;
		}
		p += need + 1;
	}
	return true;
}

/* Record one check, printing the details when it failed. */
static void
check(Tally *tally, bool ok, const char *name, const char *detail)
{
	if (ok)
	{
		tally->passed++;
		return;
	}
	tally->failed++;
	printf("FAIL %s\n     %s\n", name, detail);
}

/*
 * Parse and render; returns the output (caller frees) or NULL with the
 * error of whichever step failed in err.
 */
static char *
parse_and_render(const char *text, const TemplateContext *ctx, char *err,
				 size_t errlen)
{
	Template *tmpl = template_parse(text, err, errlen);
	char *out = NULL;

	if (tmpl == NULL)
		return NULL;
	if (!template_render(tmpl, ctx, &out, err, errlen))
		out = NULL;
	template_free(tmpl);
	return out;
}

/* A template, the data to render it with, and the exact output. */
typedef struct RenderCase
{
	const char *name;
	const char *text;
	bool first;
	size_t n_fields;
	const char *expect;
} RenderCase;

/* Run render cases, comparing the output byte for byte. */
static void
run_render_cases(Tally *tally, const RenderCase *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
	{
		TemplateContext ctx = context(cases[i].first, cases[i].n_fields);
		char err[TEMPLATE_ERROR_MAX] = "";
		char detail[2048];
		char *out = parse_and_render(cases[i].text, &ctx, err, sizeof(err));

		snprintf(detail, sizeof(detail),
				 "got [%s] (error: %s)\n     want [%s]", out ? out : "(null)",
				 err, cases[i].expect);
		check(tally, out != NULL && strcmp(out, cases[i].expect) == 0,
			  cases[i].name, detail);
		free(out);
	}
}

/* The built-in template, byte for byte, for 0 to 3 cursor columns. */
static const RenderCase default_cases[] = {
	{"default, no cursor, first", TEMPLATE_DEFAULT, true, 0,
	 "SELECT * FROM \"s\".\"t\";"},
	{"default, no cursor, later", TEMPLATE_DEFAULT, false, 0,
	 "SELECT * FROM \"s\".\"t\";"},
	{"default, [ka], first", TEMPLATE_DEFAULT, true, 1,
	 "SELECT * FROM \"s\".\"t\" ORDER BY \"ka\";"},
	{"default, [ka, kb], first", TEMPLATE_DEFAULT, true, 2,
	 "SELECT * FROM \"s\".\"t\" ORDER BY \"ka\", \"kb\";"},
	{"default, [ka, kb, kc], first", TEMPLATE_DEFAULT, true, 3,
	 "SELECT * FROM \"s\".\"t\" ORDER BY \"ka\", \"kb\", \"kc\";"},
	{"default, [ka], later", TEMPLATE_DEFAULT, false, 1,
	 "SELECT * FROM \"s\".\"t\" WHERE (\"ka\" > $1) ORDER BY \"ka\";"},
	{"default, [ka, kb], later", TEMPLATE_DEFAULT, false, 2,
	 "SELECT * FROM \"s\".\"t\" WHERE (\"ka\" > $1) OR (\"ka\" = $1 AND "
	 "\"kb\" > $2) ORDER BY \"ka\", \"kb\";"},
	{"default, [ka, kb, kc], later", TEMPLATE_DEFAULT, false, 3,
	 "SELECT * FROM \"s\".\"t\" WHERE (\"ka\" > $1) OR (\"ka\" = $1 AND "
	 "\"kb\" > $2) OR (\"ka\" = $1 AND \"kb\" = $2 AND \"kc\" > $3) ORDER BY "
	 "\"ka\", \"kb\", \"kc\";"},
};

#define OVERRIDE                                                              \
	"SELECT * FROM t {{if not .IsFirstQuery}} WHERE updated_at > $1 {{end}} " \
	"ORDER BY updated_at"

/*
 * A template in the dense style Estuary writes (trim markers on both
 * sides, tabs and newlines everywhere) exercising Go's trimming rules.
 */
#define DENSE                                                                 \
	"{{if .CursorFields -}}\n"                                                \
	"\t{{- if .IsFirstQuery -}}\n"                                            \
	"\t\tSELECT * FROM x\n"                                                   \
	"\t{{- else -}}\n"                                                        \
	"\t\tSELECT * FROM x\n"                                                   \
	"\t\t{{- range $i, $k := $.CursorFields -}}\n"                            \
	"\t\t\t{{- if eq $i 0}} WHERE ({{else}}) OR ({{end -}}\n"                 \
	"\t\t\t{{- range $j, $n := $.CursorFields -}}\n"                          \
	"\t\t\t\t{{- if lt $j $i -}}\n"                                           \
	"\t\t\t\t\t{{$n}} = ${{add $j 1}} AND {{end -}}\n"                        \
	"\t\t\t{{- end -}}\n"                                                     \
	"\t\t\t{{$k}} > ${{add $i 1}}\n"                                          \
	"\t\t{{- end -}}\n"                                                       \
	"\t\t) \n"                                                                \
	"\t{{- end}} ORDER BY {{range $i, $k := $.CursorFields}}{{if gt $i 0}}, " \
	"{{end}}{{$k}}{{end -}};\n"                                               \
	"{{- else -}}\n"                                                          \
	"\tSELECT * FROM x;\n"                                                    \
	"{{- end}}\n"

/* Whitespace, trim markers, comments, and the reference tool's example. */
static const RenderCase text_cases[] = {
	{"override, first", OVERRIDE, true, 1,
	 "SELECT * FROM t  ORDER BY updated_at"},
	{"override, later", OVERRIDE, false, 1,
	 "SELECT * FROM t  WHERE updated_at > $1  ORDER BY updated_at"},
	{"dense, none", DENSE, false, 0, "SELECT * FROM x;\n"},
	{"dense, first", DENSE, true, 2,
	 "SELECT * FROM x ORDER BY \"ka\", \"kb\";\n"},
	{"dense, later", DENSE, false, 2,
	 "SELECT * FROM x WHERE (\"ka\" > $1) OR (\"ka\" = $1 AND \"kb\" > $2) "
	 "ORDER BY \"ka\", \"kb\";\n"},
	{"plain text", "SELECT 1", true, 0, "SELECT 1"},
	{"empty template", "", true, 0, ""},
	{"placeholders are text", "a > $1 AND b > $2", true, 0,
	 "a > $1 AND b > $2"},
	{"single braces are text", "{ } {x} }}", true, 0, "{ } {x} }}"},
	{"untrimmed spaces kept", " {{ 1 }} ", true, 0, " 1 "},
	{"left trim", "a  \n\t{{- 1}}", true, 0, "a1"},
	{"right trim", "{{1 -}} \r\n\t b", true, 0, "1b"},
	{"both trims", "a \n{{- 1 -}}\n b", true, 0, "a1b"},
	{"trim only whitespace", "a b {{- 1}}", true, 0, "a b1"},
	{"left trim with tab", "a {{-\t1}}", true, 0, "a1"},
	{"left trim with newline", "a {{-\n1}}", true, 0, "a1"},
	{"right trim with tab", "{{1\t-}} b", true, 0, "1b"},
	{"minus without space is a number", "a {{-3}}", true, 0, "a -3"},
	{"trim then negative number", "a {{- -3}}", true, 0, "a-3"},
	{"right trim after number", "{{3 -}} x", true, 0, "3x"},
	{"trim chain", "a {{- 1}} {{- 2 -}} b", true, 0, "a12b"},
	{"trim to start", "  {{- 1}}", true, 0, "1"},
	{"trim to end", "{{1 -}}  \n", true, 0, "1"},
	{"several spaces before -}}", "{{1   -}} x", true, 0, "1x"},
	{"comment", "a{{/* comment */}}b", true, 0, "ab"},
	{"comment keeps spaces", "a {{/* c */}} b", true, 0, "a  b"},
	{"comment left trim", "a {{- /* c */}} b", true, 0, "a b"},
	{"comment right trim", "a {{/* c */ -}} b", true, 0, "a b"},
	{"comment both trims", "a \n {{- /* c */ -}} \n b", true, 0, "ab"},
	{"multi-line comment", "a{{/* one\ntwo */}}b", true, 0, "ab"},
	{"comment hides actions", "{{/* {{if}} {{end */}}ok", true, 0, "ok"},
	{"only a comment", "{{- /* nothing */ -}}", true, 0, ""},
	{"comments in a row", "{{/*a*/}}{{/*b*/}}{{/*c*/}}x", true, 0, "x"},
	{"newlines inside an action", "{{if\n.IsFirstQuery\n}}x{{end}}", true, 0,
	 "x"},
};

/* if, else, else if, range, variables and the root $. */
static const RenderCase control_cases[] = {
	{"if true", "{{if .IsFirstQuery}}first{{else}}later{{end}}", true, 0,
	 "first"},
	{"if false", "{{if .IsFirstQuery}}first{{else}}later{{end}}", false, 0,
	 "later"},
	{"if without else", "a{{if .IsFirstQuery}}b{{end}}c", false, 0, "ac"},
	{"if list empty", "{{if .CursorFields}}has{{else}}none{{end}}", true, 0,
	 "none"},
	{"if list non-empty", "{{if .CursorFields}}has{{else}}none{{end}}", true,
	 2, "has"},
	{"if 0", "{{if 0}}a{{else}}b{{end}}", true, 0, "b"},
	{"if 1", "{{if 1}}a{{else}}b{{end}}", true, 0, "a"},
	{"if -1", "{{if -1}}a{{else}}b{{end}}", true, 0, "a"},
	{"if empty string", "{{if \"\"}}a{{else}}b{{end}}", true, 0, "b"},
	{"if string", "{{if \"x\"}}a{{else}}b{{end}}", true, 0, "a"},
	{"if false literal", "{{if false}}a{{else}}b{{end}}", true, 0, "b"},
	{"if root", "{{if .}}a{{else}}b{{end}}", true, 0, "a"},
	{"if field string", "{{if .TableName}}a{{else}}b{{end}}", true, 0, "a"},
	{"else if 0",
	 "{{if eq (len .CursorFields) 0}}zero{{else if eq (len .CursorFields) "
	 "1}}one{{else if lt (len .CursorFields) 3}}few{{else}}many{{end}}",
	 true, 0, "zero"},
	{"else if 1",
	 "{{if eq (len .CursorFields) 0}}zero{{else if eq (len .CursorFields) "
	 "1}}one{{else if lt (len .CursorFields) 3}}few{{else}}many{{end}}",
	 true, 1, "one"},
	{"else if 2",
	 "{{if eq (len .CursorFields) 0}}zero{{else if eq (len .CursorFields) "
	 "1}}one{{else if lt (len .CursorFields) 3}}few{{else}}many{{end}}",
	 true, 2, "few"},
	{"else if 3",
	 "{{if eq (len .CursorFields) 0}}zero{{else if eq (len .CursorFields) "
	 "1}}one{{else if lt (len .CursorFields) 3}}few{{else}}many{{end}}",
	 true, 3, "many"},
	{"else if without else", "{{if false}}a{{else if false}}b{{end}}!", true,
	 0, "!"},
	{"else if with trim", "{{if false}}a{{- else if true -}} b {{end}}", true,
	 0, "b "},
	{"if declares", "{{if $x := .TableName}}{{$x}}{{end}}", true, 0, "t"},
	{"if declaration seen in else",
	 "{{if $x := .IsFirstQuery}}y{{else}}{{$x}}{{end}}", false, 0, "false"},
	{"range dot", "{{range .CursorFields}}[{{.}}]{{end}}", true, 2,
	 "[\"ka\"][\"kb\"]"},
	{"range one variable", "{{range $k := .CursorFields}}{{$k}};{{end}}", true,
	 3, "\"ka\";\"kb\";\"kc\";"},
	{"range two variables",
	 "{{range $i, $k := .CursorFields}}{{$i}}={{$k}} {{end}}", true, 2,
	 "0=\"ka\" 1=\"kb\" "},
	{"range empty", "a{{range .CursorFields}}x{{end}}b", true, 0, "ab"},
	{"range else empty", "{{range .CursorFields}}x{{else}}empty{{end}}", true,
	 0, "empty"},
	{"range else non-empty", "{{range .CursorFields}}x{{else}}empty{{end}}",
	 true, 2, "xx"},
	{"range root inside",
	 "{{range .CursorFields}}{{$.TableName}}.{{.}} {{end}}", true, 2,
	 "t.\"ka\" t.\"kb\" "},
	{"range root map inside", "{{range .CursorFields}}{{$.SchemaName}}{{end}}",
	 true, 1, "s"},
	{"range over $", "{{range $.CursorFields}}{{.}}{{end}}", true, 1,
	 "\"ka\""},
	{"range over parenthesised", "{{range (.CursorFields)}}{{.}}{{end}}", true,
	 1, "\"ka\""},
	{"range index truthiness",
	 "{{range $i, $k := .CursorFields}}{{if $i}}, {{end}}{{$k}}{{end}}", true,
	 3, "\"ka\", \"kb\", \"kc\""},
	{"nested ranges",
	 "{{range $i, $a := .CursorFields}}{{range $j, $b := $.CursorFields}}"
	 "{{$i}}{{$j}} {{end}}{{end}}",
	 true, 2, "00 01 10 11 "},
	{"range variable out of scope is outer",
	 "{{$k := 9}}{{range $k := .CursorFields}}{{end}}{{$k}}", true, 2, "9"},
	{"range assigns outer variables",
	 "{{$i := 0}}{{$k := \"\"}}{{range $i, $k = .CursorFields}}{{end}}{{$i}} "
	 "{{$k}}",
	 true, 2, "1 \"kb\""},
	{"range declaration seen in else",
	 "{{range $k := .CursorFields}}x{{else}}{{len $k}}{{end}}", true, 0, "0"},
	{"body variable per iteration",
	 "{{range $i, $k := .CursorFields}}{{$x := $i}}{{$x}}{{end}}", true, 3,
	 "012"},
	{"declare and assign", "{{$x := \"a\"}}{{$x}}{{$x = \"b\"}}{{$x}}", true,
	 0, "ab"},
	{"shadowing in if", "{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}",
	 true, 0, "21"},
	{"assignment in if", "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", true,
	 0, "2"},
	{"declaration of an outer value", "{{$x := 1}}{{$x := add $x 1}}{{$x}}",
	 true, 0, "2"},
	{"variable holding root", "{{$r := $}}{{$r.SchemaName}}", true, 0, "s"},
	{"dot is root at top level", "{{.TableName}}/{{$.TableName}}", true, 0,
	 "t/t"},
};

/* Functions, pipelines, literals and how values print. */
static const RenderCase function_cases[] = {
	{"not true", "{{not true}}", true, 0, "false"},
	{"not 0", "{{not 0}}", true, 0, "true"},
	{"not empty string", "{{not \"\"}}", true, 0, "true"},
	{"not empty list", "{{not .CursorFields}}", true, 0, "true"},
	{"not list", "{{not .CursorFields}}", true, 1, "false"},
	{"and stops at false", "{{and 1 0 2}}", true, 0, "0"},
	{"and returns last", "{{and 1 2}}", true, 0, "2"},
	{"or returns first true", "{{or 0 \"\" \"x\"}}", true, 0, "x"},
	{"or returns last", "{{or 0 false}}", true, 0, "false"},
	{"or short-circuits", "{{or 1 (lt 1 \"a\")}}", true, 0, "1"},
	{"and short-circuits", "{{and 0 (lt 1 \"a\")}}", true, 0, "0"},
	{"eq ints", "{{eq 1 1}} {{eq 1 2}}", true, 0, "true false"},
	{"eq strings", "{{eq \"a\" \"a\"}} {{eq \"a\" \"b\"}}", true, 0,
	 "true false"},
	{"eq bools", "{{eq true true}} {{eq true false}}", true, 0, "true false"},
	{"eq several", "{{eq 1 2 3 1}} {{eq 1 2 3}}", true, 0, "true false"},
	{"eq stops at first match", "{{eq 1 1 \"x\"}}", true, 0, "true"},
	{"eq field", "{{eq .TableName \"t\"}}", true, 0, "true"},
	{"eq range index", "{{range $i, $k := .CursorFields}}{{eq $i 1}}{{end}}",
	 true, 2, "falsetrue"},
	{"ne", "{{ne 1 2}} {{ne \"a\" \"a\"}}", true, 0, "true false"},
	{"lt ints", "{{lt 1 2}} {{lt 2 1}} {{lt -1 0}}", true, 0,
	 "true false true"},
	{"lt strings", "{{lt \"a\" \"b\"}} {{lt \"b\" \"a\"}} {{lt \"a\" \"ab\"}}",
	 true, 0, "true false true"},
	{"le", "{{le 2 2}} {{le 3 2}} {{le \"a\" \"a\"}}", true, 0,
	 "true false true"},
	{"gt", "{{gt 3 2}} {{gt 2 2}} {{gt \"b\" \"a\"}}", true, 0,
	 "true false true"},
	{"ge", "{{ge 2 2}} {{ge 1 2}}", true, 0, "true false"},
	{"len", "{{len .TableName}} {{len \"h\xc3\xa9\"}} {{len .CursorFields}}",
	 true, 3, "1 3 3"},
	{"add", "{{add 1 2}} {{add -5 2}}", true, 0, "3 -3"},
	{"add wraps as Go's int does", "{{add 9223372036854775807 1}}", true, 0,
	 "-9223372036854775808"},
	{"add nested", "{{add (add 1 2) 3}}", true, 0, "6"},
	{"quoteIdentifier", "{{quoteIdentifier .TableName}}", true, 0, "\"t\""},
	{"quoteIdentifier doubles quotes", "{{quoteIdentifier \"a\\\"b\"}}", true,
	 0, "\"a\"\"b\""},
	{"quoteIdentifier empty", "{{quoteIdentifier \"\"}}", true, 0, "\"\""},
	{"quoteTableName", "{{quoteTableName .SchemaName .TableName}}", true, 0,
	 "\"s\".\"t\""},
	{"quoteTableName doubles quotes", "{{quoteTableName `my\"s` `t\"\"`}}",
	 true, 0, "\"my\"\"s\".\"t\"\"\"\"\""},
	{"pipe to quoteIdentifier", "{{.TableName | quoteIdentifier}}", true, 0,
	 "\"t\""},
	{"pipe is the last argument", "{{\"a\" | quoteTableName \"s\"}}", true, 0,
	 "\"s\".\"a\""},
	{"pipe to add", "{{1 | add 2}}", true, 0, "3"},
	{"pipe to len", "{{.CursorFields | len}}", true, 2, "2"},
	{"pipe to not", "{{0 | not}}", true, 0, "true"},
	{"pipe to and", "{{1 | and 2}}", true, 0, "1"},
	{"pipe chain", "{{.TableName | quoteIdentifier | len}}", true, 0, "3"},
	{"parenthesised value", "{{(add 1 2)}}", true, 0, "3"},
	{"field of parenthesised dot", "{{(.).TableName}}", true, 0, "t"},
	{"field of parenthesised root", "{{($).SchemaName}}", true, 0, "s"},
	{"hex", "{{0x1F}} {{0X1f}}", true, 0, "31 31"},
	{"octal", "{{0o17}} {{017}}", true, 0, "15 15"},
	{"binary", "{{0b101}}", true, 0, "5"},
	{"underscores", "{{1_000}} {{0x_ff}}", true, 0, "1000 255"},
	{"signs", "{{-3}} {{+3}} {{-0}}", true, 0, "-3 3 0"},
	{"int64 range", "{{9223372036854775807}} {{-9223372036854775808}}", true,
	 0, "9223372036854775807 -9223372036854775808"},
	{"char constants", "{{'a'}} {{'\\n'}} {{'\\''}} {{'\xc3\xa9'}}", true, 0,
	 "97 10 39 233"},
	{"string escapes", "{{\"a\\tb\\\\c\\\"d\"}}", true, 0, "a\tb\\c\"d"},
	{"string hex and octal", "{{\"\\x41\\101\"}}", true, 0, "AA"},
	{"string unicode", "{{\"\\u00e9\\U0001F600\"}}", true, 0,
	 "\xc3\xa9\xf0\x9f\x98\x80"},
	{"string raw UTF-8", "{{\"h\xc3\xa9\"}}", true, 0, "h\xc3\xa9"},
	{"string invalid UTF-8", "{{\"\xff\"}}", true, 0, "\xef\xbf\xbd"},
	{"raw string", "{{`a\\nb`}}", true, 0, "a\\nb"},
	{"raw string multi-line", "{{`a\nb`}}", true, 0, "a\nb"},
	{"raw string drops CR", "{{`a\r\nb`}}", true, 0, "a\nb"},
	{"raw string with braces", "{{`}}{{`}}", true, 0, "}}{{"},
	{"booleans", "{{true}} {{false}}", true, 0, "true false"},
	{"print bool field", "{{.IsFirstQuery}}", false, 0, "false"},
	{"print list", "{{.CursorFields}}", true, 2, "[\"ka\" \"kb\"]"},
	{"print empty list", "{{.CursorFields}}", true, 0, "[]"},
	{"print root", "{{.}}", true, 1,
	 "map[CursorFields:[\"ka\"] IsFirstQuery:true SchemaName:s TableName:t]"},
	{"print $", "{{$}}", false, 0,
	 "map[CursorFields:[] IsFirstQuery:false SchemaName:s TableName:t]"},
	{"declaration prints nothing", "a{{$x := 5}}b", true, 0, "ab"},
};

/* A template that must not parse, and fragments its message must hold. */
typedef struct ErrorCase
{
	const char *text;
	const char *fragment;
	const char *fragment2; /* NULL if one is enough */
} ErrorCase;

static const ErrorCase parse_errors[] = {
	{"SELECT {{.TableName }",
	 "template: query:1:21: unexpected \"}\" in operand", NULL},
	{"SELECT {{.TableName", "template: query:1:8: unclosed action", NULL},
	{"{{if .IsFirstQuery}}", "template: query:1:21: unexpected EOF", NULL},
	{"a\n{{range .CursorFields", "template: query:2:1: unclosed action", NULL},
	{"a {{if .IsFirstQuery}}x", "template: query:1:24: unexpected EOF",
	 "{{if}} at 1:5 has no matching {{end}}"},
	{"{{range .CursorFields}}\n", "query:2:1: unexpected EOF",
	 "{{range}} at 1:3"},
	{"{{if true}}{{else}}", "unexpected EOF", NULL},
	{"x{{else}}",
	 "template: query:1:4: unexpected {{else}} outside {{if}} "
	 "or {{range}}",
	 NULL},
	{"{{else if true}}", "unexpected {{else}}", NULL},
	{"{{end}}", "template: query:1:3: unexpected {{end}}", NULL},
	{"{{if true}}{{end}}{{end}}", "unexpected {{end}}", NULL},
	{"{{if true}}{{else}}{{else}}{{end}}", "expected end; found {{else}}",
	 NULL},
	{"{{range .CursorFields}}{{else if true}}{{end}}",
	 "unexpected <if> in input", NULL},
	{"{{foo 1}}", "template: query:1:3: function \"foo\" not defined", NULL},
	{"{{printf \"%d\" 1}}", "function \"printf\" not defined", NULL},
	{"line one\nline {{two}}",
	 "template: query:2:8: function \"two\" not "
	 "defined",
	 NULL},
	{"{{$x}}", "undefined variable \"$x\"", NULL},
	{"{{$x = 1}}", "undefined variable \"$x\"", NULL},
	{"{{$x := $x}}", "undefined variable \"$x\"", NULL},
	{"{{range $k := .CursorFields}}{{end}}{{$k}}", "undefined variable \"$k\"",
	 NULL},
	{"{{if true}}{{$x := 1}}{{else}}{{$x}}{{end}}",
	 "undefined variable \"$x\"", NULL},
	{"{{.Foo}}", "template: query:1:3: unknown field \".Foo\"",
	 ".IsFirstQuery, .CursorFields, .SchemaName and .TableName"},
	{"{{.TableName.Foo}}", "unknown field \".Foo\"", NULL},
	{"{{$.tablename}}", "unknown field \".tablename\"", NULL},
	{"{{/* never closed", "template: query:1:1: unclosed comment", NULL},
	{"{{/* c */ }}", "comment ends before closing delimiter", NULL},
	{"{{add 1}}", "wrong number of args for add: want 2 got 1", NULL},
	{"{{add 1 2 3}}", "wrong number of args for add: want 2 got 3", NULL},
	{"{{1 | add 1 2}}", "wrong number of args for add: want 2 got 3", NULL},
	{"{{eq 1}}", "wrong number of args for eq: want at least 2 got 1", NULL},
	{"{{not}}", "wrong number of args for not: want 1 got 0", NULL},
	{"{{not not}}", "wrong number of args for not: want 1 got 0", NULL},
	{"{{and}}", "wrong number of args for and: want at least 1 got 0", NULL},
	{"{{quoteTableName .TableName}}",
	 "wrong number of args for quoteTableName: want 2 got 1", NULL},
	{"{{}}", "missing value for command", NULL},
	{"{{if}}{{end}}", "missing value for if", NULL},
	{"{{range}}{{end}}", "missing value for range", NULL},
	{"{{()}}", "missing value for parenthesized pipeline", NULL},
	{"{{with .TableName}}{{end}}", "{{with}} is not supported", NULL},
	{"{{define \"x\"}}{{end}}", "{{define}} is not supported", NULL},
	{"{{template \"x\"}}", "{{template}} is not supported", NULL},
	{"{{range .CursorFields}}{{break}}{{end}}", "{{break}} is not supported",
	 NULL},
	{"{{nil}}", "nil is not supported", NULL},
	{"{{1.5}}", "floating-point constant \"1.5\" is not supported", NULL},
	{"{{1e3}}", "floating-point constant", NULL},
	{"{{1+2i}}", "complex constant", NULL},
	{"{{99999999999999999999}}", "integer overflow: \"99999999999999999999\"",
	 NULL},
	{"{{9223372036854775808}}", "integer overflow", NULL},
	{"{{-9223372036854775809}}", "integer overflow", NULL},
	{"{{089}}", "illegal number syntax: \"089\"", NULL},
	{"{{1__0}}", "illegal number syntax", NULL},
	{"{{0x}}", "illegal number syntax", NULL},
	{"{{1a}}", "bad number syntax: \"1a\"", NULL},
	{"{{\"abc}}", "unterminated quoted string", NULL},
	{"{{\"a\nb\"}}", "unterminated quoted string", NULL},
	{"{{`abc}}", "unterminated raw quoted string", NULL},
	{"{{'a}}", "unterminated character constant", NULL},
	{"{{'ab'}}", "malformed character constant", NULL},
	{"{{\"\\q\"}}", "invalid syntax in string literal", NULL},
	{"{{\"\\'\"}}", "invalid syntax in string literal", NULL},
	{"{{\"\\x4\"}}", "invalid syntax in string literal", NULL},
	{"{{\"\\400\"}}", "invalid syntax in string literal", NULL},
	{"{{\"\\ud800\"}}", "invalid syntax in string literal", NULL},
	{"{{\"a\\x00b\"}}", "NUL character", NULL},
	{"{{.TableName 1}}", "TableName is not a method but has arguments", NULL},
	{"{{1 | $.SchemaName}}", "SchemaName is not a method but has arguments",
	 NULL},
	{"{{$ 1}}", "can't give argument to non-function $", NULL},
	{"{{. 1}}", "can't give argument to non-function .", NULL},
	{"{{(1) 2}}", "can't give argument to non-function (1)", NULL},
	{"{{1 | 2}}", "non executable command in pipeline stage 2", NULL},
	{"{{.TableName | quoteIdentifier | \"x\"}}",
	 "non executable command in pipeline stage 3", NULL},
	{"{{range $a, $b, $c := .CursorFields}}{{end}}",
	 "too many declarations in range", NULL},
	{"{{$a, $b := 1}}", "too many declarations in command", NULL},
	{"{{range $a, 1}}{{end}}", "range can only initialize variables", NULL},
	{"{{(1}}", "unclosed left paren", NULL},
	{"{{1)}}", "unexpected right paren", NULL},
	{"{{\"a\".Foo}}", "unexpected . after term \"\\\"a\\\"\"", NULL},
	{"{{1.TableName}}", "bad number syntax", NULL},
	{"{{not.TableName}}", "unexpected . after term \"not\"", NULL},
	{"{{#}}", "unexpected \"#\" in command", NULL},
	{"{{1 #}}", "unexpected \"#\" in operand", NULL},
	{"{{if true x}}", "function \"x\" not defined", NULL},
	{"{{end x}}", "unexpected \"x\" in end", NULL},
	{"{{else x}}", "unexpected \"x\" in else", NULL},
	{"{{:}}", "expected :=", NULL},
	{"{{a-b}}", "bad character U+002D '-'", NULL},
	{"{{.a#}}", "bad character U+0023 '#'", NULL},
	{"{{\xc3\xa9}}", "function \"\xc3\xa9\" not defined", NULL},
	{"{{.T\xc3\xa9}}", "unknown field \".T\xc3\xa9\"", NULL},
	{"{{\xff\xfe}}", "function \"\\xff\\xfe\" not defined", NULL},
	{"{{\"\xff\" 1}}", "can't give argument to non-function \"?\"", NULL},
	{"{{\"\x7f\a\" x}}", "function \"x\" not defined", NULL},
	{"{{end \"\x01\xc2\x85\"}}", "unexpected \"\\\"\\x01\\u0085\\\"\" in end",
	 NULL},
	{"{{\x01}}", "unrecognized character in action: U+0001", NULL},
	{"{{.TableName | | quoteIdentifier}}", "unexpected \"|\" in command",
	 NULL},
	{"{{end \"0123456789abcdef\"}}", "unexpected \"\\\"012345678\"... in end",
	 NULL},
	{"{{if 1 \"x\"}}{{end}}", "can't give argument to non-function 1", NULL},
};

/* Every invalid template is refused with a message naming the problem. */
static void
test_parse_errors(Tally *tally)
{
	size_t i;

	for (i = 0; i < sizeof(parse_errors) / sizeof(parse_errors[0]); i++)
	{
		const ErrorCase *c = &parse_errors[i];
		char err[TEMPLATE_ERROR_MAX] = "";
		char detail[1024];
		Template *tmpl = template_parse(c->text, err, sizeof(err));

		snprintf(detail, sizeof(detail), "[%s] parsed", c->text);
		check(tally, tmpl == NULL, "parse error", detail);
		template_free(tmpl);
		snprintf(detail, sizeof(detail), "[%s]: \"%s\" lacks \"%s\"%s%s",
				 c->text, err, c->fragment, c->fragment2 ? " and " : "",
				 c->fragment2 ? c->fragment2 : "");
		check(tally,
			  strstr(err, c->fragment) != NULL &&
				  (c->fragment2 == NULL || strstr(err, c->fragment2) != NULL),
			  "parse error message", detail);
		check(tally, strncmp(err, "template: query:", 16) == 0,
			  "parse error prefix", err);
		check(tally, valid_utf8(err), "parse error is UTF-8", err);
	}
}

/* A template that parses but fails to render with the given data. */
typedef struct RenderErrorCase
{
	const char *text;
	size_t n_fields;
	const char *fragment;
} RenderErrorCase;

static const RenderErrorCase render_errors[] = {
	{"{{lt 1 \"a\"}}", 0,
	 "template: query:1:3: executing \"query\" at <lt 1 \"a\">: error "
	 "calling lt: incompatible types for comparison"},
	{"{{lt true false}}", 0, "error calling lt: invalid type for comparison"},
	{"{{gt .CursorFields 1}}", 0,
	 "error calling gt: invalid type for comparison"},
	{"{{eq 1 \"a\"}}", 0,
	 "error calling eq: incompatible types for comparison"},
	{"{{eq 1 2 \"a\"}}", 0, "incompatible types for comparison"},
	{"{{eq .CursorFields .CursorFields}}", 1,
	 "error calling eq: non-comparable type"},
	{"{{ne .IsFirstQuery 1}}", 0, "error calling ne: incompatible types"},
	{"{{le \"a\" 1}}", 0, "error calling le: incompatible types"},
	{"{{ge 1 true}}", 0, "error calling ge: incompatible types"},
	{"{{range $i, $k := .CursorFields}}{{lt $k $i}}{{end}}", 1,
	 "at <lt $k $i>: error calling lt: incompatible types for comparison"},
	{"{{add .TableName 1}}", 0,
	 "template: query:1:7: executing \"query\" at <.TableName>: wrong type "
	 "for value; expected int; got string"},
	{"{{add 1 .CursorFields}}", 0, "expected int; got []string"},
	{"{{add \"a\" 1}}", 0, "at <\"a\">: expected integer; found \"a\""},
	{"{{add true 1}}", 0, "expected integer; found true"},
	{"{{\"x\" | add 1}}", 0, "wrong type for value; expected int; got string"},
	{"{{quoteIdentifier 1}}", 0, "expected string; found 1"},
	{"{{quoteIdentifier .IsFirstQuery}}", 0,
	 "wrong type for value; expected string; got bool"},
	{"{{quoteTableName .SchemaName $}}", 0,
	 "expected string; got map[string]interface {}"},
	{"{{range .CursorFields}}{{.TableName}}{{end}}", 1,
	 "at <.TableName>: can't evaluate field TableName in type string"},
	{"{{.TableName.SchemaName}}", 0,
	 "can't evaluate field SchemaName in type string"},
	{"{{.IsFirstQuery.TableName}}", 0,
	 "can't evaluate field TableName in type bool"},
	{"{{range $i, $k := .CursorFields}}{{$i.TableName}}{{end}}", 1,
	 "can't evaluate field TableName in type int"},
	{"{{range .TableName}}{{end}}", 0, "range can't iterate over t"},
	/* Go 1.22 ranges over integers; query templates deliberately don't */
	{"{{range 5}}{{end}}", 0, "range can't iterate over 5"},
	{"{{range .}}{{end}}", 0, "range can't iterate over"},
	{"{{len 3}}", 0, "error calling len: len of type int"},
	{"{{range \"\xff\xc3\xa9\"}}{{end}}", 0,
	 "range can't iterate over \xef\xbf\xbd\xc3\xa9"},
	{"{{range \"\\xff\"}}{{end}}", 0, "range can't iterate over ?"},
	{"{{len .IsFirstQuery}}", 0, "len of type bool"},
	{"x\n  {{if lt 1 \"a\"}}{{end}}", 0, "template: query:2:8: executing"},
};

/* Every render error is reported (never a crash) with Go's wording. */
static void
test_render_errors(Tally *tally)
{
	size_t i;

	for (i = 0; i < sizeof(render_errors) / sizeof(render_errors[0]); i++)
	{
		const RenderErrorCase *c = &render_errors[i];
		TemplateContext ctx = context(true, c->n_fields);
		char err[TEMPLATE_ERROR_MAX] = "";
		char detail[1024];
		Template *tmpl = template_parse(c->text, err, sizeof(err));
		char *out = (char *) "unset";
		bool ok;

		snprintf(detail, sizeof(detail), "[%s] refused: %s", c->text, err);
		check(tally, tmpl != NULL, "render error parses", detail);
		if (tmpl == NULL)
			continue;
		ok = template_render(tmpl, &ctx, &out, err, sizeof(err));
		snprintf(detail, sizeof(detail), "[%s] rendered", c->text);
		check(tally, !ok && out == NULL, "render error", detail);
		snprintf(detail, sizeof(detail), "[%s]: \"%s\" lacks \"%s\"", c->text,
				 err, c->fragment);
		check(tally, strstr(err, c->fragment) != NULL, "render error message",
			  detail);
		check(tally, valid_utf8(err), "render error is UTF-8", err);
		if (ok)
			free(out);
		template_free(tmpl);
	}
}

/* One template renders many times, with different data each time. */
static void
test_reuse(Tally *tally)
{
	char err[TEMPLATE_ERROR_MAX];
	Template *tmpl = template_parse(TEMPLATE_DEFAULT, err, sizeof(err));
	int round;

	check(tally, tmpl != NULL, "default parses", err);
	if (tmpl == NULL)
		return;
	for (round = 0; round < 3; round++)
	{
		TemplateContext first = context(true, 1);
		TemplateContext later = context(false, 1);
		char *a = NULL;
		char *b = NULL;

		check(tally,
			  template_render(tmpl, &first, &a, err, sizeof(err)) &&
				  template_render(tmpl, &later, &b, err, sizeof(err)) &&
				  strcmp(a, "SELECT * FROM \"s\".\"t\" ORDER BY \"ka\";") ==
					  0 &&
				  strcmp(b, "SELECT * FROM \"s\".\"t\" WHERE (\"ka\" > $1) "
							"ORDER BY \"ka\";") == 0,
			  "reuse", err);
		free(a);
		free(b);
	}
	template_free(tmpl);
}

/* Identifiers with quotes and NULL names in the data. */
static void
test_context_edges(Tally *tally)
{
	const char *const fields[] = {"\"we\"\"ird\"", NULL};
	TemplateContext ctx = {false, fields, 2, "my\"schema", NULL};
	TemplateContext broken = {false, NULL, 2, "s", "t"};
	char err[TEMPLATE_ERROR_MAX];
	char *out = parse_and_render(
		"{{quoteTableName .SchemaName .TableName}}|{{range .CursorFields}}"
		"[{{.}}]{{end}}",
		&ctx, err, sizeof(err));
	Template *tmpl;

	check(tally,
		  out != NULL &&
			  strcmp(out, "\"my\"\"schema\".\"\"|[\"we\"\"ird\"][]") == 0,
		  "quoted names and NULL strings", out ? out : err);
	free(out);

	tmpl = template_parse("x", err, sizeof(err));
	out = (char *) "unset";
	check(tally,
		  tmpl != NULL &&
			  !template_render(tmpl, &broken, &out, err, sizeof(err)),
		  "fields without array refused", "rendered");
	check(tally, out == NULL && strstr(err, "incomplete data") != NULL,
		  "fields without array message", err);
	check(tally, !template_render(tmpl, NULL, &out, NULL, 0),
		  "NULL context refused", "rendered");
	template_free(tmpl);
	template_free(NULL);
}

/* NULL and oversized input, NULL and tiny error buffers. */
static void
test_input_limits(Tally *tally)
{
	char err[TEMPLATE_ERROR_MAX];
	char tiny[10];
	size_t size = TEMPLATE_MAX_SIZE + 1;
	char *big = malloc(size + 1);
	Template *tmpl;

	check(tally, template_parse(NULL, err, sizeof(err)) == NULL, "NULL text",
		  "parsed");
	check(tally, strstr(err, "no template given") != NULL, "NULL text message",
		  err);
	check(tally, template_parse("{{", NULL, 0) == NULL, "NULL errbuf",
		  "parsed");
	memset(tiny, 'x', sizeof(tiny));
	check(tally, template_parse("{{foo}}", tiny, sizeof(tiny)) == NULL,
		  "tiny errbuf", "parsed");
	check(tally, memchr(tiny, '\0', sizeof(tiny)) != NULL, "tiny errbuf ends",
		  "not terminated");

	if (big == NULL)
		return;
	memset(big, 'a', size);
	big[size] = '\0';
	check(tally, template_parse(big, err, sizeof(err)) == NULL, "too big",
		  "parsed");
	check(tally, strstr(err, "the limit is 1048576") != NULL,
		  "too big message", err);
	big[size - 1] = '\0';
	tmpl = template_parse(big, err, sizeof(err));
	check(tally, tmpl != NULL, "exactly the limit parses", err);
	template_free(tmpl);
	free(big);
}

/* Append text n times to a buffer of the given capacity. */
static void
repeat(char *buf, size_t cap, const char *text, int n)
{
	int i;

	for (i = 0; i < n; i++)
		strncat(buf, text, cap - strlen(buf) - 1);
}

/* Nesting is limited at TEMPLATE_MAX_DEPTH, for controls and parens. */
static void
test_nesting_limits(Tally *tally)
{
	static char text[8192];
	char err[TEMPLATE_ERROR_MAX];
	Template *tmpl;

	text[0] = '\0';
	repeat(text, sizeof(text), "{{if true}}", TEMPLATE_MAX_DEPTH);
	repeat(text, sizeof(text), "x", 1);
	repeat(text, sizeof(text), "{{end}}", TEMPLATE_MAX_DEPTH);
	tmpl = template_parse(text, err, sizeof(err));
	check(tally, tmpl != NULL, "100 nested ifs parse", err);
	template_free(tmpl);

	text[0] = '\0';
	repeat(text, sizeof(text), "{{if true}}", TEMPLATE_MAX_DEPTH + 1);
	repeat(text, sizeof(text), "{{end}}", TEMPLATE_MAX_DEPTH + 1);
	check(tally, template_parse(text, err, sizeof(err)) == NULL,
		  "101 nested ifs refused", "parsed");
	check(tally, strstr(err, "nesting deeper than 100 levels") != NULL,
		  "nesting message", err);

	text[0] = '\0';
	repeat(text, sizeof(text), "{{if false}}", 1);
	repeat(text, sizeof(text), "{{else if false}}", TEMPLATE_MAX_DEPTH + 1);
	repeat(text, sizeof(text), "{{end}}", 1);
	check(tally, template_parse(text, err, sizeof(err)) == NULL,
		  "long else-if chain refused", "parsed");

	text[0] = '\0';
	repeat(text, sizeof(text), "{{", 1);
	repeat(text, sizeof(text), "(", TEMPLATE_MAX_DEPTH + 1);
	repeat(text, sizeof(text), "1", 1);
	repeat(text, sizeof(text), ")", TEMPLATE_MAX_DEPTH + 1);
	repeat(text, sizeof(text), "}}", 1);
	check(tally, template_parse(text, err, sizeof(err)) == NULL,
		  "101 nested parens refused", "parsed");
	check(tally, strstr(err, "nesting deeper") != NULL,
		  "paren nesting message", err);
}

/* Output size, evaluation steps and built strings are bounded. */
static void
test_render_limits(Tally *tally)
{
	const size_t chunk = 700000;
	char *text = malloc(chunk + 200);
	static const char *many[100];
	static char quotes[] = "\"";
	TemplateContext ctx = context(true, 3);
	char err[TEMPLATE_ERROR_MAX];
	char *out;
	size_t i;
	static char nested[4096];

	if (text == NULL)
		return;
	strcpy(text, "{{range .CursorFields}}{{range $.CursorFields}}"
				 "{{range $.CursorFields}}");
	memset(text + strlen(text), 'x', chunk);
	text[strlen("{{range .CursorFields}}{{range $.CursorFields}}"
				"{{range $.CursorFields}}") +
		 chunk] = '\0';
	strcat(text, "{{end}}{{end}}{{end}}");
	out = parse_and_render(text, &ctx, err, sizeof(err));
	check(tally, out == NULL && strstr(err, "longer than 16777216 bytes"),
		  "output limit", err);
	free(out);
	free(text);

	for (i = 0; i < 100; i++)
		many[i] = "\"k\"";
	ctx.cursor_fields = many;
	ctx.n_cursor_fields = 100;
	out = parse_and_render("{{range .CursorFields}}{{range $.CursorFields}}"
						   "{{range $.CursorFields}}{{range $.CursorFields}}"
						   "{{end}}{{end}}{{end}}{{end}}",
						   &ctx, err, sizeof(err));
	check(tally, out == NULL && strstr(err, "more than 10000000 steps"),
		  "step limit", err);
	free(out);

	ctx = context(true, 0);
	ctx.schema_name = quotes;
	nested[0] = '\0';
	repeat(nested, sizeof(nested), "{{quoteIdentifier (", 1);
	repeat(nested, sizeof(nested), "quoteIdentifier (", 40);
	repeat(nested, sizeof(nested), ".SchemaName", 1);
	repeat(nested, sizeof(nested), ")", 41);
	repeat(nested, sizeof(nested), "}}", 1);
	out = parse_and_render(nested, &ctx, err, sizeof(err));
	check(tally, out == NULL && strstr(err, "bytes of strings"),
		  "string memory limit", err);
	free(out);
}

/* Run every test group and report the tally. */
int
main(void)
{
	Tally tally = {0, 0};

	run_render_cases(&tally, default_cases,
					 sizeof(default_cases) / sizeof(default_cases[0]));
	run_render_cases(&tally, text_cases,
					 sizeof(text_cases) / sizeof(text_cases[0]));
	run_render_cases(&tally, control_cases,
					 sizeof(control_cases) / sizeof(control_cases[0]));
	run_render_cases(&tally, function_cases,
					 sizeof(function_cases) / sizeof(function_cases[0]));
	test_parse_errors(&tally);
	test_render_errors(&tally);
	test_reuse(&tally);
	test_context_edges(&tally);
	test_input_limits(&tally);
	test_nesting_limits(&tally);
	test_render_limits(&tally);
	printf("template: %d passed, %d failed\n", tally.passed, tally.failed);
	return tally.failed == 0 ? 0 : 1;
}
