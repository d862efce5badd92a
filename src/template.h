/*
 * template.h
 *		Query templates of capture bindings, in a subset of Go's
 *		text/template language.
 *
 * Users paste templates written for Estuary's Redshift batch capture, so
 * the subset behaves exactly as Go's text/template does: text and
 * {{actions}} with trim markers ("{{- " and " -}}"), comments, if / else /
 * else if / end, range (with and without $i, $k variables, with else),
 * variables declared with := and assigned with =, pipelines with |,
 * parenthesised sub-pipelines, integer, string, raw string, character and
 * boolean literals, and the functions and, or, not, eq, ne, lt, le, gt,
 * ge, len, add, quoteIdentifier and quoteTableName.
 *
 * The data given to a template has the fields .IsFirstQuery (bool),
 * .CursorFields (list of already-quoted identifiers), .SchemaName and
 * .TableName (strings).  Inside range, . is the element and $ the root.
 *
 * This module is plain C (standard library only, no PostgreSQL headers)
 * so it can be unit-tested and fuzzed on its own.  Errors are returned as
 * values and read like Go's ("template: query:1:15: unexpected \"}\" in
 * operand"), with line and column.
 */
#ifndef REDSHIFT_FDW_TEMPLATE_H
#define REDSHIFT_FDW_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

/* Longest template text accepted, in bytes. */
#define TEMPLATE_MAX_SIZE (1024 * 1024)

/* Deepest nesting of if / range / else if and parentheses. */
#define TEMPLATE_MAX_DEPTH 100

/* Longest rendered query, in bytes (Redshift's statement limit). */
#define TEMPLATE_MAX_OUTPUT (16 * 1024 * 1024)

/* Most evaluation steps one rendering may take. */
#define TEMPLATE_MAX_STEPS 10000000

/* Room that always holds an error message of this module. */
#define TEMPLATE_ERROR_MAX 512

/*
 * The extension's built-in query: a full scan without cursor columns;
 * with them, ORDER BY the cursor and, after the first query, keyset
 * pagination past the last cursor values bound as $1 .. $n.  For
 * schema s, table t and cursor "ka", "kb" it renders
 *	 SELECT * FROM "s"."t" ORDER BY "ka", "kb";
 * on the first query and afterwards
 *	 SELECT * FROM "s"."t" WHERE ("ka" > $1) OR ("ka" = $1 AND "kb" > $2)
 *	 ORDER BY "ka", "kb";
 * (on one line), and SELECT * FROM "s"."t"; without cursor columns.
 */
#define TEMPLATE_DEFAULT                                                     \
	"{{- /* redshift_fdw's built-in capture query. */ -}}\n"                 \
	"SELECT * FROM {{quoteTableName .SchemaName .TableName}}\n"              \
	"{{- if .CursorFields}}\n"                                               \
	"  {{- if not .IsFirstQuery}}\n"                                         \
	"    {{- range $i, $k := .CursorFields}}\n"                              \
	"      {{- if eq $i 0}} WHERE ({{else}} OR ({{end}}\n"                   \
	"      {{- range $j, $n := $.CursorFields}}\n"                           \
	"        {{- if lt $j $i}}{{$n}} = ${{add $j 1}} AND {{end}}\n"          \
	"      {{- end}}\n"                                                      \
	"      {{- $k}} > ${{add $i 1}})\n"                                      \
	"    {{- end}}\n"                                                        \
	"  {{- end}} ORDER BY\n"                                                 \
	"  {{- range $i, $k := .CursorFields}}{{if $i}},{{end}} {{$k}}{{end}}\n" \
	"{{- end}};"

/* A parsed template; immutable, so it may be rendered any number of times. */
typedef struct Template Template;

/*
 * The data a template is rendered with.  The strings are borrowed for the
 * duration of template_render; NULL strings read as "".  cursor_fields
 * holds n_cursor_fields identifiers, each already quoted for SQL.
 */
typedef struct TemplateContext
{
	bool is_first_query;
	const char *const *cursor_fields;
	size_t n_cursor_fields;
	const char *schema_name;
	const char *table_name;
} TemplateContext;

/*
 * Parse a template (a NUL-terminated text of at most TEMPLATE_MAX_SIZE
 * bytes).  Returns a template the caller frees with template_free, or
 * NULL with a message in errbuf (which may be NULL; TEMPLATE_ERROR_MAX
 * bytes always suffice).  Unknown functions, fields and variables, and
 * calls with the wrong number of arguments, are parse errors.
 */
extern Template *template_parse(const char *text, char *errbuf, size_t errlen);

/*
 * Render a template with the given data.  On success stores in *out a
 * NUL-terminated string allocated with malloc, which the caller frees
 * with free(), and returns true.  On failure (a type error such as lt on
 * a string and an integer, a limit exceeded, out of memory) stores NULL
 * in *out, writes a message into errbuf and returns false.
 */
extern bool template_render(const Template *tmpl, const TemplateContext *ctx,
							char **out, char *errbuf, size_t errlen);

/* Free a template from template_parse; NULL is ignored. */
extern void template_free(Template *tmpl);

#endif /* REDSHIFT_FDW_TEMPLATE_H */
