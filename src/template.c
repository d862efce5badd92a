/*
 * template.c
 *		A subset of Go's text/template for capture query templates.
 *
 * The lexer, the parser and the evaluator follow the structure of Go's
 * text/template/parse/lex.go, parse.go and text/template/exec.go, so that
 * every construct of the subset lexes, trims, parses and evaluates
 * exactly as Go does; comments below name the Go function a piece mirrors.
 * Where this module is stricter it is because the data is known in
 * advance: unknown fields, calls with the wrong number of arguments and
 * arguments given to non-functions are reported when the template is
 * parsed rather than when the branch holding them runs.
 *
 * Deliberately not supported (each gives a clear parse error): with,
 * define, template, block, break, continue, nil, floating-point and
 * complex constants, and functions other than those listed in template.h.
 * Ranging over anything but .CursorFields is a render error.
 *
 * Memory: a Template owns a copy of its text, an array of nodes linked by
 * index, and a pool of unquoted string literals.  Rendering owns an output
 * buffer (handed to the caller), a variable stack and the strings the
 * quoting functions build, all freed before template_render returns.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"

/* The name Go error messages give the template, as Estuary names it. */
#define TEMPLATE_NAME "query"

/* Most bytes of strings the quoting functions may build in one render. */
#define TEMPLATE_MAX_SCRATCH (4 * (size_t) TEMPLATE_MAX_OUTPUT)

/* Longest piece of source or value quoted into an error message. */
#define CONTEXT_MAX 60

/* Room for plain_excerpt output, and for go_quote of up to 40 bytes. */
#define EXCERPT_MAX (CONTEXT_MAX + 8)
#define QUOTED_MAX (4 * 40 + 16)

/* "No node": an absent link between nodes. */
#define NO_NODE (-1)

/* Results of parsing an action that are not nodes: {{end}} and {{else}}. */
#define END_MARK (-2)
#define ELSE_MARK (-3)

/* ---------------------------------------------------------------------
 * Tokens (Go: itemType)
 * ---------------------------------------------------------------------
 */

typedef enum TokenType
{
	TOK_ERROR,
	TOK_EOF,
	TOK_TEXT,
	TOK_LEFT_DELIM,
	TOK_RIGHT_DELIM,
	TOK_SPACE,
	TOK_BOOL,
	TOK_CHAR, /* a printable ASCII character such as ',' */
	TOK_CHAR_CONSTANT,
	TOK_NUMBER,
	TOK_COMPLEX,
	TOK_ASSIGN,
	TOK_DECLARE,
	TOK_FIELD,
	TOK_IDENTIFIER,
	TOK_LEFT_PAREN,
	TOK_RIGHT_PAREN,
	TOK_PIPE,
	TOK_STRING,
	TOK_RAW_STRING,
	TOK_VARIABLE,
	/* keywords: described as <word> in messages, as Go does */
	TOK_DOT,
	TOK_BLOCK,
	TOK_BREAK,
	TOK_CONTINUE,
	TOK_DEFINE,
	TOK_ELSE,
	TOK_END,
	TOK_IF,
	TOK_NIL,
	TOK_RANGE,
	TOK_TEMPLATE,
	TOK_WITH
} TokenType;

typedef struct Token
{
	TokenType type;
	size_t pos; /* byte offset of the token in the text */
	size_t len;
} Token;

/* The keywords of Go's lexer and the tokens they become. */
static const struct
{
	const char *word;
	TokenType type;
} keywords[] = {
	{"block", TOK_BLOCK},
	{"break", TOK_BREAK},
	{"continue", TOK_CONTINUE},
	{"define", TOK_DEFINE},
	{"else", TOK_ELSE},
	{"end", TOK_END},
	{"if", TOK_IF},
	{"nil", TOK_NIL},
	{"range", TOK_RANGE},
	{"template", TOK_TEMPLATE},
	{"with", TOK_WITH},
};

/* Lexer state (Go: lexer); tokens are produced one at a time on demand. */
typedef struct Lexer
{
	const char *input;
	size_t len;
	size_t pos;
	bool inside_action;
	int paren_depth;
	size_t action_pos; /* where the current action's {{ is */
	bool done;		   /* EOF or an error was returned */
	char error[160];   /* message of the last TOK_ERROR */
} Lexer;

/* ---------------------------------------------------------------------
 * Nodes
 * ---------------------------------------------------------------------
 */

typedef enum NodeKind
{
	NODE_LIST,
	NODE_TEXT,
	NODE_ACTION,
	NODE_IF,
	NODE_RANGE,
	NODE_PIPE,
	NODE_COMMAND,
	NODE_FUNCTION,
	NODE_DOT,
	NODE_FIELD,
	NODE_VARIABLE,
	NODE_BOOL,
	NODE_NUMBER,
	NODE_STRING,
	NODE_PAREN,
	NODE_FIELD_NAME /* one .Name of a field chain */
} NodeKind;

/* The functions a template may call. */
typedef enum TemplateFunction
{
	FN_AND,
	FN_OR,
	FN_NOT,
	FN_EQ,
	FN_NE,
	FN_LT,
	FN_LE,
	FN_GT,
	FN_GE,
	FN_LEN,
	FN_ADD,
	FN_QUOTE_IDENTIFIER,
	FN_QUOTE_TABLE_NAME
} TemplateFunction;

/* Name and arity of each function; variadic ones take min_args or more. */
static const struct
{
	const char *name;
	TemplateFunction function;
	int min_args;
	bool variadic;
} functions[] = {
	{"and", FN_AND, 1, true},
	{"or", FN_OR, 1, true},
	{"not", FN_NOT, 1, false},
	{"eq", FN_EQ, 2, true},
	{"ne", FN_NE, 2, false},
	{"lt", FN_LT, 2, false},
	{"le", FN_LE, 2, false},
	{"gt", FN_GT, 2, false},
	{"ge", FN_GE, 2, false},
	{"len", FN_LEN, 1, false},
	{"add", FN_ADD, 2, false},
	{"quoteIdentifier", FN_QUOTE_IDENTIFIER, 1, false},
	{"quoteTableName", FN_QUOTE_TABLE_NAME, 2, false},
};

/* The fields of the data a template is rendered with. */
typedef enum TemplateField
{
	FIELD_IS_FIRST_QUERY,
	FIELD_CURSOR_FIELDS,
	FIELD_SCHEMA_NAME,
	FIELD_TABLE_NAME
} TemplateField;

/* Field names in the order Go prints the map holding them (sorted). */
static const char *const field_names[] = {
	"IsFirstQuery",
	"CursorFields",
	"SchemaName",
	"TableName",
};

/*
 * One node of a parsed template.  Nodes live in one array and link to
 * each other by index, so a template is freed in three calls.
 */
typedef struct Node
{
	NodeKind kind;
	int32_t next;	   /* next in a list, argument list, pipeline, chain */
	int32_t child;	   /* LIST: first node; PIPE: first command; COMMAND:
						* first argument; FIELD, VARIABLE, PAREN: first
						* FIELD_NAME of the chain */
	int32_t last;	   /* last node of the child list, for appending */
	int32_t pipe;	   /* ACTION, IF, RANGE, PAREN: the pipeline */
	int32_t body;	   /* IF, RANGE: list run when true / per element */
	int32_t else_body; /* IF, RANGE: else list, or NO_NODE */
	int32_t decls;	   /* PIPE: first declared VARIABLE */
	int n_decls;	   /* PIPE: number of declared variables */
	bool is_assign;	   /* PIPE: "=" rather than ":=" */
	size_t pos;		   /* source span, for text and messages */
	size_t len;
	int64_t number; /* NUMBER, BOOL: value; FUNCTION: TemplateFunction;
					 * FIELD_NAME: TemplateField */
	size_t str_off; /* STRING: value in the string pool; VARIABLE: name */
	size_t str_len; /* in the source */
} Node;

struct Template
{
	char *source;
	size_t source_len;
	Node *nodes;
	size_t n_nodes;
	size_t max_nodes;
	char *strings; /* unquoted string literals */
	size_t strings_len;
	size_t max_strings;
	int32_t root;
};

/* A variable in scope while parsing: its name in the source. */
typedef struct ScopeVar
{
	const char *name;
	size_t len;
} ScopeVar;

/* Parser state (Go: Tree), with Go's three-token lookahead. */
typedef struct Parser
{
	Lexer lex;
	Token token[3];
	int peek_count;
	Template *tmpl;
	ScopeVar *vars;
	size_t n_vars;
	size_t max_vars;
	int depth;
	size_t mark_pos; /* position of the last {{end}} or {{else}} */
	bool failed;
	char *errbuf;
	size_t errlen;
} Parser;

/* ---------------------------------------------------------------------
 * Small helpers shared by lexer, parser and evaluator
 * ---------------------------------------------------------------------
 */

/* Go's isSpace: the characters trim markers and actions treat as space. */
static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* An ASCII decimal digit (isdigit() would depend on the locale). */
static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Go's isAlphaNumeric.  Bytes of non-ASCII characters count as letters,
 * so "é" lexes as an identifier as in Go (other non-ASCII characters,
 * which Go refuses as unrecognized, are then refused as unknown names).
 */
static bool
is_alnum(char c)
{
	return c == '_' || is_digit(c) || (c >= 'a' && c <= 'z') ||
		   (c >= 'A' && c <= 'Z') || (unsigned char) c >= 0x80;
}

/* Does the input hold prefix at pos (without reading past len)? */
static bool
starts_with(const char *input, size_t len, size_t pos, const char *prefix)
{
	size_t n = strlen(prefix);

	return pos <= len && len - pos >= n && memcmp(input + pos, prefix, n) == 0;
}

/*
 * Decode one UTF-8 sequence as Go's utf8.DecodeRune does: an invalid or
 * truncated sequence decodes as U+FFFD of width 1.
 */
static uint32_t
decode_utf8(const unsigned char *s, size_t avail, size_t *width)
{
	uint32_t r;
	size_t need;
	size_t i;

	*width = 1;
	if (s[0] < 0x80)
		return s[0];
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
	{
		need = 1;
		r = s[0] & 0x1f;
	}
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
	{
		need = 2;
		r = s[0] & 0x0f;
	}
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
	{
		need = 3;
		r = s[0] & 0x07;
	}
	else
		return 0xfffd;
	if (avail < need + 1)
		return 0xfffd;
	for (i = 1; i <= need; i++)
	{
		if ((s[i] & 0xc0) != 0x80)
			return 0xfffd;
		r = (r << 6) | (s[i] & 0x3f);
	}
	if ((need == 2 && r < 0x800) || (need == 3 && r < 0x10000) ||
		r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
		return 0xfffd;
	*width = need + 1;
	return r;
}

/* Encode a valid rune as UTF-8 into out (4 bytes); returns the length. */
static size_t
encode_utf8(uint32_t r, char *out)
{
	if (r < 0x80)
	{
		out[0] = (char) r;
		return 1;
	}
	if (r < 0x800)
	{
		out[0] = (char) (0xc0 | (r >> 6));
		out[1] = (char) (0x80 | (r & 0x3f));
		return 2;
	}
	if (r < 0x10000)
	{
		out[0] = (char) (0xe0 | (r >> 12));
		out[1] = (char) (0x80 | ((r >> 6) & 0x3f));
		out[2] = (char) (0x80 | (r & 0x3f));
		return 3;
	}
	out[0] = (char) (0xf0 | (r >> 18));
	out[1] = (char) (0x80 | ((r >> 12) & 0x3f));
	out[2] = (char) (0x80 | ((r >> 6) & 0x3f));
	out[3] = (char) (0x80 | (r & 0x3f));
	return 4;
}

/*
 * Append a piece to a message buffer if it fits whole (so a message is
 * never cut inside a UTF-8 sequence); returns false once one did not.
 */
static bool
message_append(char *buf, size_t buflen, size_t *used, const char *piece,
			   size_t len)
{
	if (*used + len >= buflen)
		return false;
	memcpy(buf + *used, piece, len);
	*used += len;
	buf[*used] = '\0';
	return true;
}

/*
 * The next character of user text for a message: a whole valid UTF-8
 * sequence (its width in *width), or an invalid byte (returns false,
 * width 1).  Messages go to the server log, so they must be valid UTF-8.
 */
static bool
next_message_char(const char *s, size_t avail, size_t *width, uint32_t *rune)
{
	*rune = decode_utf8((const unsigned char *) s, avail, width);
	return *rune != 0xfffd || *width == 3;
}

/*
 * Quote text as Go's %q does: escapes for quotes, backslashes and control
 * characters, \xNN for invalid UTF-8, other characters as they are;
 * keeping at most max_chars bytes of input and adding "..." if more were
 * cut, as Go's "%.10q..." does for long tokens.
 */
static void
go_quote(const char *s, size_t n, size_t max_chars, char *buf, size_t buflen)
{
	static const char named[] = "\a\b\t\n\v\f\r";
	static const char letters[] = "abtnvfr";
	size_t used = 0;
	size_t i = 0;
	bool ok;

	buf[0] = '\0';
	ok = message_append(buf, buflen, &used, "\"", 1);
	while (ok && i < n && i < max_chars)
	{
		unsigned char c = (unsigned char) s[i];
		const char *where = c != 0 ? strchr(named, c) : NULL;
		char piece[8];
		size_t width = 1;
		uint32_t rune;

		if (c == '"' || c == '\\')
			snprintf(piece, sizeof(piece), "\\%c", c);
		else if (where != NULL)
			snprintf(piece, sizeof(piece), "\\%c", letters[where - named]);
		else if (c >= 0x20 && c < 0x7f)
			snprintf(piece, sizeof(piece), "%c", c);
		else if (c < 0x80 || !next_message_char(s + i, n - i, &width, &rune))
			snprintf(piece, sizeof(piece), "\\x%02x", c);
		else if (rune < 0xa0)
			snprintf(piece, sizeof(piece), "\\u%04x", (unsigned) rune);
		else
		{
			memcpy(piece, s + i, width);
			piece[width] = '\0';
		}
		ok = message_append(buf, buflen, &used, piece, strlen(piece));
		i += width;
	}
	if (ok)
		ok = message_append(buf, buflen, &used, "\"", 1);
	if (ok && i < n)
		message_append(buf, buflen, &used, "...", 3);
}

/*
 * Copy source text into a message: runs of white space shown as one
 * space, other control characters and invalid UTF-8 as '?', cut with
 * "..." after CONTEXT_MAX bytes.
 */
static void
plain_excerpt(const char *s, size_t n, char *buf, size_t buflen)
{
	size_t used = 0;
	size_t i = 0;
	bool ok = true;

	buf[0] = '\0';
	while (ok && i < n)
	{
		unsigned char c = (unsigned char) s[i];
		size_t width = 1;
		uint32_t rune;
		const char *piece = s + i;

		if (i >= CONTEXT_MAX)
		{
			message_append(buf, buflen, &used, "...", 3);
			return;
		}
		if (is_space((char) c))
		{
			piece = " ";
			if (used > 0 && buf[used - 1] == ' ')
				piece = "";
		}
		else if (c < 0x20 || c == 0x7f ||
				 (c >= 0x80 &&
				  !next_message_char(s + i, n - i, &width, &rune)))
		{
			piece = "?";
			width = 1;
		}
		ok = message_append(buf, buflen, &used, piece,
							piece == s + i ? width : strlen(piece));
		i += width;
	}
}

/*
 * Drop an incomplete UTF-8 sequence that truncating a message into a
 * short buffer left at its end; everything before it is valid UTF-8.
 */
static void
drop_partial_utf8(char *s)
{
	size_t len = strlen(s);
	size_t lead = len;
	unsigned char c;
	size_t need;

	while (lead > 0 && len - lead < 3 &&
		   ((unsigned char) s[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead == 0)
		return;
	c = (unsigned char) s[lead - 1];
	if (c < 0xc0)
		return;
	need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (len - (lead - 1) < need)
		s[lead - 1] = '\0';
}

/* Line and 1-based byte column of an offset in the source. */
static void
line_and_column(const char *source, size_t pos, int *line, int *column)
{
	size_t line_start = 0;
	size_t i;

	*line = 1;
	for (i = 0; i < pos; i++)
	{
		if (source[i] == '\n')
		{
			(*line)++;
			line_start = i + 1;
		}
	}
	*column = (int) (pos - line_start) + 1;
}

/* ---------------------------------------------------------------------
 * Lexer (Go: lex.go)
 * ---------------------------------------------------------------------
 */

/* A token value, for the lexer's many return statements. */
static Token
make_token(TokenType type, size_t pos, size_t len)
{
	Token token;

	token.type = type;
	token.pos = pos;
	token.len = len;
	return token;
}

/* Go's %#U: "U+0023 '#'" for printable characters, "U+0001" otherwise. */
static void
describe_rune(const Lexer *l, size_t pos, char *buf, size_t buflen)
{
	size_t width;
	uint32_t r;
	char utf8[4];

	if (pos >= l->len)
	{
		snprintf(buf, buflen, "EOF");
		return;
	}
	r = decode_utf8((const unsigned char *) l->input + pos, l->len - pos,
					&width);
	if ((r >= 0x20 && r < 0x7f) || r >= 0xa0)
		snprintf(buf, buflen, "U+%04X '%.*s'", (unsigned) r,
				 (int) encode_utf8(r, utf8), utf8);
	else
		snprintf(buf, buflen, "U+%04X", (unsigned) r);
}

/* Stop lexing with an error token whose message the parser reports. */
static Token lex_error(Lexer *l, size_t pos, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static Token
lex_error(Lexer *l, size_t pos, const char *format, ...)
{
	va_list args;

	va_start(args, format);
	vsnprintf(l->error, sizeof(l->error), format, args);
	va_end(args);
	l->done = true;
	return make_token(TOK_ERROR, pos, 0);
}

/* Go's hasLeftTrimMarker: "-" followed by a space character. */
static bool
has_left_trim_marker(const Lexer *l, size_t pos)
{
	return pos + 1 < l->len && l->input[pos] == '-' &&
		   is_space(l->input[pos + 1]);
}

/* Go's atRightDelim: "}}", or " -}}" which also trims what follows. */
static bool
at_right_delim(const Lexer *l, size_t pos, bool *trim)
{
	if (pos + 1 < l->len && is_space(l->input[pos]) &&
		l->input[pos + 1] == '-' &&
		starts_with(l->input, l->len, pos + 2, "}}"))
	{
		*trim = true;
		return true;
	}
	*trim = false;
	return starts_with(l->input, l->len, pos, "}}");
}

/*
 * Go's lexComment: skip "/ * ... * /" up to the closing delimiter, and
 * the space after it when the delimiter carries a trim marker.
 */
static bool
skip_comment(Lexer *l, Token *error)
{
	const char *close = strstr(l->input + l->pos + 2, "*/");
	bool trim;

	if (close == NULL)
	{
		*error = lex_error(l, l->action_pos, "unclosed comment");
		return false;
	}
	l->pos = (size_t) (close - l->input) + 2;
	if (!at_right_delim(l, l->pos, &trim))
	{
		*error = lex_error(l, l->pos, "comment ends before closing delimiter");
		return false;
	}
	l->pos += trim ? 4 : 2;
	while (trim && l->pos < l->len && is_space(l->input[l->pos]))
		l->pos++;
	return true;
}

/*
 * Go's lexText and lexLeftDelim: text up to the next "{{" (without its
 * trailing space if the delimiter is "{{- "), then the delimiter.
 * Comments are skipped in a loop, so a run of them cannot recurse.
 */
static Token
lex_text(Lexer *l)
{
	for (;;)
	{
		size_t start = l->pos;
		const char *found = strstr(l->input + start, "{{");
		size_t delim;
		size_t after_marker;
		Token error;

		if (found == NULL)
		{
			l->pos = l->len;
			l->done = true;
			if (l->len > start)
				return make_token(TOK_TEXT, start, l->len - start);
			return make_token(TOK_EOF, l->len, 0);
		}
		delim = (size_t) (found - l->input);
		if (delim > start)
		{
			size_t end = delim;

			if (has_left_trim_marker(l, delim + 2))
			{
				while (end > start && is_space(l->input[end - 1]))
					end--;
			}
			l->pos = delim;
			if (end > start)
				return make_token(TOK_TEXT, start, end - start);
		}

		l->action_pos = delim;
		l->pos = delim + 2;
		after_marker = has_left_trim_marker(l, l->pos) ? 2 : 0;
		if (starts_with(l->input, l->len, l->pos + after_marker, "/*"))
		{
			l->pos += after_marker;
			if (!skip_comment(l, &error))
				return error;
			continue;
		}
		l->inside_action = true;
		l->pos += after_marker;
		l->paren_depth = 0;
		return make_token(TOK_LEFT_DELIM, delim, 2);
	}
}

/* Go's lexRightDelim: "}}" and, after " -}}", the space that follows. */
static Token
lex_right_delim(Lexer *l)
{
	bool trim;
	Token token;

	at_right_delim(l, l->pos, &trim);
	if (trim)
		l->pos += 2;
	token = make_token(TOK_RIGHT_DELIM, l->pos, 2);
	l->pos += 2;
	while (trim && l->pos < l->len && is_space(l->input[l->pos]))
		l->pos++;
	l->inside_action = false;
	return token;
}

/*
 * Go's lexSpace: a run of spaces, leaving the last one when it begins a
 * trim-marked right delimiter " -}}".
 */
static Token
lex_space(Lexer *l)
{
	size_t start = l->pos;
	size_t spaces = 0;
	bool trim;

	while (l->pos < l->len && is_space(l->input[l->pos]))
	{
		l->pos++;
		spaces++;
	}
	if (at_right_delim(l, l->pos - 1, &trim) && trim)
	{
		l->pos--;
		if (spaces == 1)
			return lex_right_delim(l);
	}
	return make_token(TOK_SPACE, start, l->pos - start);
}

/* Go's atTerminator: may an identifier end here? */
static bool
at_terminator(const Lexer *l)
{
	char c;

	if (l->pos >= l->len)
		return true;
	c = l->input[l->pos];
	return is_space(c) || c == '.' || c == ',' || c == '|' || c == ':' ||
		   c == ')' || c == '(' || c == '}';
}

/* Go's lexIdentifier: a function name, keyword, true or false. */
static Token
lex_identifier(Lexer *l)
{
	size_t start = l->pos;
	size_t len;
	size_t i;
	char rune[32];

	while (l->pos < l->len && is_alnum(l->input[l->pos]))
		l->pos++;
	if (!at_terminator(l))
	{
		describe_rune(l, l->pos, rune, sizeof(rune));
		return lex_error(l, l->pos, "bad character %s", rune);
	}
	len = l->pos - start;
	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
	{
		if (strlen(keywords[i].word) == len &&
			memcmp(keywords[i].word, l->input + start, len) == 0)
			return make_token(keywords[i].type, start, len);
	}
	if ((len == 4 && memcmp(l->input + start, "true", 4) == 0) ||
		(len == 5 && memcmp(l->input + start, "false", 5) == 0))
		return make_token(TOK_BOOL, start, len);
	return make_token(TOK_IDENTIFIER, start, len);
}

/*
 * Go's lexFieldOrVariable: ".Name" or "$name" (the sigil at l->pos);
 * a lone "." is the dot and a lone "$" the root variable.
 */
static Token
lex_field_or_variable(Lexer *l, TokenType type)
{
	size_t start = l->pos;
	char rune[32];

	l->pos++;
	if (at_terminator(l))
		return make_token(type == TOK_VARIABLE ? TOK_VARIABLE : TOK_DOT, start,
						  1);
	while (l->pos < l->len && is_alnum(l->input[l->pos]))
		l->pos++;
	if (!at_terminator(l))
	{
		describe_rune(l, l->pos, rune, sizeof(rune));
		return lex_error(l, l->pos, "bad character %s", rune);
	}
	return make_token(type, start, l->pos - start);
}

/*
 * Go's lexQuote and lexChar: a quoted string or character constant;
 * escapes are checked by the parser.
 */
static Token
lex_quoted(Lexer *l, char quote, TokenType type, const char *what)
{
	size_t start = l->pos;

	l->pos++;
	for (;;)
	{
		char c = l->pos < l->len ? l->input[l->pos] : '\0';

		if (c == '\\' && l->pos + 1 < l->len && l->input[l->pos + 1] != '\n')
		{
			l->pos += 2;
			continue;
		}
		if (c == '\0' || c == '\n' || c == '\\')
			return lex_error(l, start, "unterminated %s", what);
		l->pos++;
		if (c == quote)
			return make_token(type, start, l->pos - start);
	}
}

/* Go's lexRawQuote: a backquoted string, which may span lines. */
static Token
lex_raw_quote(Lexer *l)
{
	size_t start = l->pos;
	const char *close = memchr(l->input + start + 1, '`', l->len - start - 1);

	if (close == NULL)
		return lex_error(l, start, "unterminated raw quoted string");
	l->pos = (size_t) (close - l->input) + 1;
	return make_token(TOK_RAW_STRING, start, l->pos - start);
}

/* Consume one character of l->input if it is in the set. */
static bool
lex_accept(Lexer *l, const char *set)
{
	if (l->pos < l->len && strchr(set, l->input[l->pos]) != NULL)
	{
		l->pos++;
		return true;
	}
	return false;
}

/* Consume a run of characters of the set (Go: acceptRun). */
static void
lex_accept_run(Lexer *l, const char *set)
{
	while (lex_accept(l, set))
		;
}

/* Go's scanNumber: decimal, hex, octal, binary, float or imaginary. */
static bool
scan_number(Lexer *l)
{
	const char *digits = "0123456789_";

	lex_accept(l, "+-");
	if (lex_accept(l, "0"))
	{
		if (lex_accept(l, "xX"))
			digits = "0123456789abcdefABCDEF_";
		else if (lex_accept(l, "oO"))
			digits = "01234567_";
		else if (lex_accept(l, "bB"))
			digits = "01_";
	}
	lex_accept_run(l, digits);
	if (lex_accept(l, "."))
		lex_accept_run(l, digits);
	if (strlen(digits) == 11 && lex_accept(l, "eE"))
	{
		lex_accept(l, "+-");
		lex_accept_run(l, "0123456789_");
	}
	if (strlen(digits) == 23 && lex_accept(l, "pP"))
	{
		lex_accept(l, "+-");
		lex_accept_run(l, "0123456789_");
	}
	lex_accept(l, "i");
	if (l->pos < l->len && is_alnum(l->input[l->pos]))
	{
		l->pos++;
		return false;
	}
	return true;
}

/* Go's lexNumber: a number, or a complex constant "1+2i". */
static Token
lex_number(Lexer *l)
{
	size_t start = l->pos;
	char quoted[QUOTED_MAX];

	if (!scan_number(l))
	{
		go_quote(l->input + start, l->pos - start, 20, quoted, sizeof(quoted));
		return lex_error(l, start, "bad number syntax: %s", quoted);
	}
	if (l->pos < l->len &&
		(l->input[l->pos] == '+' || l->input[l->pos] == '-'))
	{
		if (!scan_number(l) || l->input[l->pos - 1] != 'i')
		{
			go_quote(l->input + start, l->pos - start, 20, quoted,
					 sizeof(quoted));
			return lex_error(l, start, "bad number syntax: %s", quoted);
		}
		return make_token(TOK_COMPLEX, start, l->pos - start);
	}
	return make_token(TOK_NUMBER, start, l->pos - start);
}

/* Go's lexInsideAction: the next token between {{ and }}. */
static Token
lex_inside_action(Lexer *l)
{
	size_t start = l->pos;
	bool trim;
	char c;
	char rune[32];

	if (at_right_delim(l, l->pos, &trim))
	{
		if (l->paren_depth == 0)
			return lex_right_delim(l);
		return lex_error(l, l->pos, "unclosed left paren");
	}
	if (l->pos >= l->len)
		return lex_error(l, l->action_pos, "unclosed action");
	c = l->input[l->pos];
	if (is_space(c))
		return lex_space(l);
	switch (c)
	{
		case '=':
			l->pos++;
			return make_token(TOK_ASSIGN, start, 1);
		case ':':
			if (l->pos + 1 >= l->len || l->input[l->pos + 1] != '=')
				return lex_error(l, start, "expected :=");
			l->pos += 2;
			return make_token(TOK_DECLARE, start, 2);
		case '|':
			l->pos++;
			return make_token(TOK_PIPE, start, 1);
		case '"':
			return lex_quoted(l, '"', TOK_STRING, "quoted string");
		case '\'':
			return lex_quoted(l, '\'', TOK_CHAR_CONSTANT,
							  "character constant");
		case '`':
			return lex_raw_quote(l);
		case '$':
			return lex_field_or_variable(l, TOK_VARIABLE);
		case '.':
			if (l->pos + 1 < l->len && !is_digit(l->input[l->pos + 1]))
				return lex_field_or_variable(l, TOK_FIELD);
			return lex_number(l);
		case '(':
			l->pos++;
			l->paren_depth++;
			return make_token(TOK_LEFT_PAREN, start, 1);
		case ')':
			l->pos++;
			if (--l->paren_depth < 0)
				return lex_error(l, start, "unexpected right paren");
			return make_token(TOK_RIGHT_PAREN, start, 1);
		default:
			break;
	}
	if (c == '+' || c == '-' || is_digit(c))
		return lex_number(l);
	if (is_alnum(c))
		return lex_identifier(l);
	if (c > 0x20 && c < 0x7f)
	{
		l->pos++;
		return make_token(TOK_CHAR, start, 1);
	}
	describe_rune(l, l->pos, rune, sizeof(rune));
	return lex_error(l, start, "unrecognized character in action: %s", rune);
}

/* Go's nextItem: the next token, or EOF forever after the end. */
static Token
lex_next(Lexer *l)
{
	if (l->done)
		return make_token(TOK_EOF, l->len, 0);
	if (l->inside_action)
		return lex_inside_action(l);
	return lex_text(l);
}

/* ---------------------------------------------------------------------
 * Parser (Go: parse.go)
 * ---------------------------------------------------------------------
 */

/*
 * Record the first parse error as "template: query:LINE:COL: message";
 * later calls (errors caused by the first) are ignored.
 */
static void parse_fail(Parser *p, size_t pos, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static void
parse_fail(Parser *p, size_t pos, const char *format, ...)
{
	char message[TEMPLATE_ERROR_MAX];
	va_list args;
	int line;
	int column;

	if (p->failed)
		return;
	p->failed = true;
	if (p->errbuf == NULL || p->errlen == 0)
		return;
	va_start(args, format);
	vsnprintf(message, sizeof(message), format, args);
	va_end(args);
	line_and_column(p->tmpl->source, pos, &line, &column);
	snprintf(p->errbuf, p->errlen, "template: %s:%d:%d: %s", TEMPLATE_NAME,
			 line, column, message);
	drop_partial_utf8(p->errbuf);
}

/* The node an index names; nodes link by index so the array can grow. */
static Node *
node_at(const Template *tmpl, int32_t index)
{
	return &tmpl->nodes[index];
}

/* Allocate a node; NO_NODE (and a recorded error) when out of memory. */
static int32_t
new_node(Parser *p, NodeKind kind, size_t pos)
{
	Template *tmpl = p->tmpl;
	Node *node;

	if (p->failed)
		return NO_NODE;
	if (tmpl->n_nodes == tmpl->max_nodes)
	{
		size_t max = tmpl->max_nodes == 0 ? 64 : tmpl->max_nodes * 2;
		Node *nodes =
			max > INT32_MAX ? NULL : realloc(tmpl->nodes, max * sizeof(Node));

		if (nodes == NULL)
		{
			parse_fail(p, pos, "out of memory");
			return NO_NODE;
		}
		tmpl->nodes = nodes;
		tmpl->max_nodes = max;
	}
	node = &tmpl->nodes[tmpl->n_nodes];
	memset(node, 0, sizeof(Node));
	node->kind = kind;
	node->next = node->child = node->last = NO_NODE;
	node->pipe = node->body = node->else_body = node->decls = NO_NODE;
	node->pos = pos;
	return (int32_t) tmpl->n_nodes++;
}

/* Append a node to the child list of another. */
static void
append_child(Parser *p, int32_t parent, int32_t child)
{
	Node *node = node_at(p->tmpl, parent);

	if (node->last == NO_NODE)
		node->child = child;
	else
		node_at(p->tmpl, node->last)->next = child;
	node->last = child;
}

/* Extend a node's source span to end where a token ends. */
static void
extend_span(Parser *p, int32_t index, size_t end)
{
	Node *node = node_at(p->tmpl, index);

	if (end > node->pos + node->len)
		node->len = end - node->pos;
}

/* The next token, from the lookahead if any (Go: Tree.next). */
static Token
next_token(Parser *p)
{
	if (p->peek_count > 0)
		p->peek_count--;
	else
		p->token[0] = lex_next(&p->lex);
	return p->token[p->peek_count];
}

/* Push the last token back (Go: Tree.backup). */
static void
backup(Parser *p)
{
	p->peek_count++;
}

/* Push back two tokens, t1 first to come out (Go: Tree.backup2). */
static void
backup2(Parser *p, Token t1)
{
	p->token[1] = t1;
	p->peek_count = 2;
}

/* Push back three tokens, t2 first to come out (Go: Tree.backup3). */
static void
backup3(Parser *p, Token t2, Token t1)
{
	p->token[1] = t1;
	p->token[2] = t2;
	p->peek_count = 3;
}

/* The next token without consuming it (Go: Tree.peek). */
static Token
peek_token(Parser *p)
{
	if (p->peek_count > 0)
		return p->token[p->peek_count - 1];
	p->peek_count = 1;
	p->token[0] = lex_next(&p->lex);
	return p->token[0];
}

/* The next token that is not a run of spaces (Go: Tree.nextNonSpace). */
static Token
next_non_space(Parser *p)
{
	Token token;

	do
		token = next_token(p);
	while (token.type == TOK_SPACE);
	return token;
}

/* Peek past spaces, dropping them (Go: Tree.peekNonSpace). */
static Token
peek_non_space(Parser *p)
{
	Token token = next_non_space(p);

	backup(p);
	return token;
}

/* Go's item.String: EOF, <keyword>, or the quoted (cut) token text. */
static void
describe_token(const Parser *p, Token token, char *buf, size_t buflen)
{
	if (token.type == TOK_EOF)
		snprintf(buf, buflen, "EOF");
	else if (token.type >= TOK_DOT)
		snprintf(buf, buflen, "<%.*s>", (int) token.len,
				 p->lex.input + token.pos);
	else
		go_quote(p->lex.input + token.pos, token.len, 10, buf, buflen);
}

/* Go's Tree.unexpected: a lexer error, or "unexpected X in context". */
static void
unexpected(Parser *p, Token token, const char *context)
{
	char described[QUOTED_MAX];

	if (token.type == TOK_ERROR)
	{
		parse_fail(p, token.pos, "%s", p->lex.error);
		return;
	}
	describe_token(p, token, described, sizeof(described));
	parse_fail(p, token.pos, "unexpected %s in %s", described, context);
}

/* Is the variable named by a token in scope? */
static bool
variable_in_scope(const Parser *p, Token token)
{
	size_t i;

	for (i = p->n_vars; i > 0; i--)
	{
		const ScopeVar *var = &p->vars[i - 1];

		if (var->len == token.len &&
			memcmp(var->name, p->lex.input + token.pos, token.len) == 0)
			return true;
	}
	return false;
}

/* Bring a variable into scope until its control ends (Go: Tree.vars). */
static bool
declare_variable(Parser *p, const char *name, size_t len)
{
	if (p->n_vars == p->max_vars)
	{
		size_t max = p->max_vars == 0 ? 16 : p->max_vars * 2;
		ScopeVar *vars = realloc(p->vars, max * sizeof(ScopeVar));

		if (vars == NULL)
		{
			parse_fail(p, 0, "out of memory");
			return false;
		}
		p->vars = vars;
		p->max_vars = max;
	}
	p->vars[p->n_vars].name = name;
	p->vars[p->n_vars].len = len;
	p->n_vars++;
	return true;
}

/* Append bytes to the template's string pool. */
static bool
pool_append(Parser *p, const char *bytes, size_t len)
{
	Template *tmpl = p->tmpl;

	if (tmpl->strings == NULL || tmpl->max_strings - tmpl->strings_len < len)
	{
		size_t max = tmpl->max_strings == 0 ? 256 : tmpl->max_strings;
		char *strings;

		while (max - tmpl->strings_len < len)
			max *= 2;
		strings = realloc(tmpl->strings, max);
		if (strings == NULL)
		{
			parse_fail(p, 0, "out of memory");
			return false;
		}
		tmpl->strings = strings;
		tmpl->max_strings = max;
	}
	memcpy(tmpl->strings + tmpl->strings_len, bytes, len);
	tmpl->strings_len += len;
	return true;
}

/* The value of a hex digit, or -1, for escapes and number literals. */
static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Go's strconv.UnquoteChar: decode one possibly escaped character of a
 * literal delimited by quote.  Sets *value and whether it is a rune to
 * encode as UTF-8 (rather than a single byte from \x or octal), advances
 * *pos; returns false on invalid syntax.
 */
static bool
unquote_char(const char *s, size_t end, size_t *pos, char quote,
			 uint32_t *value, bool *multibyte)
{
	size_t i = *pos;
	size_t n = 0;
	size_t width;
	size_t j;
	char c;

	*multibyte = false;
	if (i >= end || s[i] == quote)
		return false;
	if ((unsigned char) s[i] >= 0x80)
	{
		*value = decode_utf8((const unsigned char *) s + i, end - i, &width);
		*multibyte = true;
		*pos = i + width;
		return true;
	}
	if (s[i] != '\\')
	{
		*value = (unsigned char) s[i];
		*pos = i + 1;
		return true;
	}
	if (i + 1 >= end)
		return false;
	c = s[i + 1];
	i += 2;
	switch (c)
	{
		case 'a':
			*value = '\a';
			break;
		case 'b':
			*value = '\b';
			break;
		case 'f':
			*value = '\f';
			break;
		case 'n':
			*value = '\n';
			break;
		case 'r':
			*value = '\r';
			break;
		case 't':
			*value = '\t';
			break;
		case 'v':
			*value = '\v';
			break;
		case '\\':
			*value = '\\';
			break;
		case '\'':
		case '"':
			if (c != quote)
				return false;
			*value = (unsigned char) c;
			break;
		case 'x':
		case 'u':
		case 'U':
			n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
			if (end - i < n)
				return false;
			*value = 0;
			for (j = 0; j < n; j++)
			{
				int digit = hex_value(s[i + j]);

				if (digit < 0)
					return false;
				*value = (*value << 4) | (uint32_t) digit;
			}
			i += n;
			if (c != 'x')
			{
				if (*value > 0x10ffff ||
					(*value >= 0xd800 && *value <= 0xdfff))
					return false;
				*multibyte = true;
			}
			break;
		case '0':
		case '1':
		case '2':
		case '3':
		case '4':
		case '5':
		case '6':
		case '7':
			*value = (uint32_t) (c - '0');
			if (end - i < 2)
				return false;
			for (j = 0; j < 2; j++)
			{
				if (s[i + j] < '0' || s[i + j] > '7')
					return false;
				*value = (*value << 3) | (uint32_t) (s[i + j] - '0');
			}
			i += 2;
			if (*value > 255)
				return false;
			break;
		default:
			return false;
	}
	*pos = i;
	return true;
}

/*
 * Go's strconv.Unquote of a string literal token, into the string pool.
 * Raw strings lose their carriage returns, as in Go.  A NUL character is
 * refused: no query text can hold one.
 */
static int32_t
parse_string(Parser *p, Token token)
{
	const char *s = p->lex.input + token.pos;
	size_t end = token.len - 1;
	size_t i = 1;
	int32_t index = new_node(p, NODE_STRING, token.pos);
	Node *node;
	size_t start;

	if (index == NO_NODE || !pool_append(p, "", 0))
		return NO_NODE;
	start = p->tmpl->strings_len;
	if (token.type == TOK_RAW_STRING)
	{
		for (; i < end && !p->failed; i++)
		{
			if (s[i] != '\r')
				pool_append(p, s + i, 1);
		}
	}
	else
	{
		while (i < end && !p->failed)
		{
			uint32_t value;
			bool multibyte;
			char utf8[4];
			size_t at = i;

			if (!unquote_char(s, end, &i, '"', &value, &multibyte))
			{
				parse_fail(p, token.pos + at,
						   "invalid syntax in string literal: bad escape or "
						   "quote");
				return NO_NODE;
			}
			if (multibyte && value >= 0x80)
				pool_append(p, utf8, encode_utf8(value, utf8));
			else
			{
				utf8[0] = (char) value;
				pool_append(p, utf8, 1);
			}
		}
	}
	if (p->failed)
		return NO_NODE;
	if (memchr(p->tmpl->strings + start, '\0', p->tmpl->strings_len - start))
	{
		parse_fail(p, token.pos,
				   "string literal contains a NUL character, which a query "
				   "cannot hold");
		return NO_NODE;
	}
	node = node_at(p->tmpl, index);
	node->len = token.len;
	node->str_off = start;
	node->str_len = p->tmpl->strings_len - start;
	return index;
}

/*
 * Go's strconv.ParseInt(text, 0, 64): optional sign, 0x / 0o / 0b / 0
 * prefixes, underscores only between digits or after a prefix.
 */
static bool
parse_go_int(const char *s, size_t len, int64_t *result, bool *overflow)
{
	size_t i = 0;
	int base = 10;
	bool negative = false;
	bool after_prefix = false;
	bool last_digit = false;
	uint64_t value = 0;
	uint64_t limit;
	int digits = 0;

	*overflow = false;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		negative = s[i++] == '-';
	if (len - i >= 2 && s[i] == '0')
	{
		char prefix = (char) (s[i + 1] | 0x20);

		if (prefix == 'x' || prefix == 'o' || prefix == 'b')
		{
			base = prefix == 'x' ? 16 : prefix == 'o' ? 8 : 2;
			i += 2;
			after_prefix = true;
		}
		else
			base = 8;
	}
	limit = negative ? (UINT64_C(1) << 63) : (UINT64_C(1) << 63) - 1;
	for (; i < len; i++)
	{
		int digit = hex_value(s[i]);

		if (s[i] == '_')
		{
			if (!(last_digit || after_prefix))
				return false;
			last_digit = false;
			after_prefix = false;
			continue;
		}
		if (digit < 0 || digit >= base)
			return false;
		if (value > (limit - (uint64_t) digit) / (uint64_t) base)
			*overflow = true;
		else
			value = value * (uint64_t) base + (uint64_t) digit;
		last_digit = true;
		after_prefix = false;
		digits++;
	}
	if (digits == 0 || !last_digit || *overflow)
		return false;
	*result = negative ? (int64_t) (0 - value) : (int64_t) value;
	return true;
}

/*
 * Would Go read this number as a floating-point constant?  It has a
 * fraction or a binary exponent, or a decimal exponent without being hex.
 */
static bool
looks_like_float(const char *text, size_t len)
{
	bool hex = false;
	size_t i;

	for (i = 0; i + 1 < len; i++)
	{
		if (text[i] == '0' && (text[i + 1] == 'x' || text[i + 1] == 'X'))
			hex = true;
	}
	for (i = 0; i < len; i++)
	{
		if (text[i] == '.' || text[i] == 'p' || text[i] == 'P' ||
			(!hex && (text[i] == 'e' || text[i] == 'E')))
			return true;
	}
	return false;
}

/* Go's newNumber, for the integer and character constants supported. */
static int32_t
parse_number(Parser *p, Token token)
{
	const char *text = p->lex.input + token.pos;
	int32_t index;
	int64_t value = 0;
	bool overflow;
	char quoted[QUOTED_MAX];

	go_quote(text, token.len, 30, quoted, sizeof(quoted));
	if (token.type == TOK_CHAR_CONSTANT)
	{
		size_t pos = 1;
		uint32_t rune;
		bool multibyte;

		if (!unquote_char(text, token.len - 1, &pos, '\'', &rune, &multibyte))
		{
			parse_fail(p, token.pos, "invalid syntax in character constant");
			return NO_NODE;
		}
		if (pos != token.len - 1)
		{
			char excerpt[EXCERPT_MAX];

			plain_excerpt(text, token.len, excerpt, sizeof(excerpt));
			parse_fail(p, token.pos, "malformed character constant: %s",
					   excerpt);
			return NO_NODE;
		}
		value = rune;
	}
	else if (token.type == TOK_COMPLEX || text[token.len - 1] == 'i')
	{
		parse_fail(p, token.pos, "complex constant %s is not supported",
				   quoted);
		return NO_NODE;
	}
	else if (!parse_go_int(text, token.len, &value, &overflow))
	{
		if (overflow)
			parse_fail(p, token.pos, "integer overflow: %s", quoted);
		else if (looks_like_float(text, token.len))
			parse_fail(p, token.pos,
					   "floating-point constant %s is not supported; only "
					   "integers are",
					   quoted);
		else
			parse_fail(p, token.pos, "illegal number syntax: %s", quoted);
		return NO_NODE;
	}
	index = new_node(p, NODE_NUMBER, token.pos);
	if (index != NO_NODE)
	{
		node_at(p->tmpl, index)->len = token.len;
		node_at(p->tmpl, index)->number = value;
	}
	return index;
}

/* Append a .Name to a field chain, refusing names the data lacks. */
static bool
add_field_name(Parser *p, int32_t owner, Token token)
{
	size_t i;
	int32_t index;

	for (i = 0; i < sizeof(field_names) / sizeof(field_names[0]); i++)
	{
		if (strlen(field_names[i]) == token.len - 1 &&
			memcmp(field_names[i], p->lex.input + token.pos + 1,
				   token.len - 1) == 0)
			break;
	}
	if (i == sizeof(field_names) / sizeof(field_names[0]))
	{
		char quoted[QUOTED_MAX];

		go_quote(p->lex.input + token.pos, token.len, 30, quoted,
				 sizeof(quoted));
		parse_fail(p, token.pos,
				   "unknown field %s; the fields are .IsFirstQuery, "
				   ".CursorFields, .SchemaName and .TableName",
				   quoted);
		return false;
	}
	index = new_node(p, NODE_FIELD_NAME, token.pos);
	if (index == NO_NODE)
		return false;
	node_at(p->tmpl, index)->len = token.len;
	node_at(p->tmpl, index)->number = (int64_t) i;
	append_child(p, owner, index);
	extend_span(p, owner, token.pos + token.len);
	return true;
}

static int32_t parse_pipeline(Parser *p, const char *context, TokenType end,
							  bool is_range);

/* Go's term: a literal, function name, ., .Field, $var or (pipeline). */
static int32_t
parse_term(Parser *p)
{
	Token token = next_non_space(p);
	int32_t index;
	int32_t pipe;
	size_t i;
	char quoted[QUOTED_MAX];

	switch (token.type)
	{
		case TOK_IDENTIFIER:
			for (i = 0; i < sizeof(functions) / sizeof(functions[0]); i++)
			{
				if (strlen(functions[i].name) == token.len &&
					memcmp(functions[i].name, p->lex.input + token.pos,
						   token.len) == 0)
					break;
			}
			if (i == sizeof(functions) / sizeof(functions[0]))
			{
				go_quote(p->lex.input + token.pos, token.len, 40, quoted,
						 sizeof(quoted));
				parse_fail(p, token.pos, "function %s not defined", quoted);
				return NO_NODE;
			}
			index = new_node(p, NODE_FUNCTION, token.pos);
			if (index != NO_NODE)
			{
				node_at(p->tmpl, index)->len = token.len;
				node_at(p->tmpl, index)->number = (int64_t) i;
			}
			return index;
		case TOK_DOT:
			index = new_node(p, NODE_DOT, token.pos);
			if (index != NO_NODE)
				node_at(p->tmpl, index)->len = 1;
			return index;
		case TOK_NIL:
			parse_fail(p, token.pos,
					   "nil is not supported in query templates");
			return NO_NODE;
		case TOK_VARIABLE:
			if (!variable_in_scope(p, token))
			{
				go_quote(p->lex.input + token.pos, token.len, 40, quoted,
						 sizeof(quoted));
				parse_fail(p, token.pos, "undefined variable %s", quoted);
				return NO_NODE;
			}
			index = new_node(p, NODE_VARIABLE, token.pos);
			if (index != NO_NODE)
			{
				node_at(p->tmpl, index)->len = token.len;
				node_at(p->tmpl, index)->str_off = token.pos;
				node_at(p->tmpl, index)->str_len = token.len;
			}
			return index;
		case TOK_FIELD:
			index = new_node(p, NODE_FIELD, token.pos);
			if (index == NO_NODE || !add_field_name(p, index, token))
				return NO_NODE;
			return index;
		case TOK_BOOL:
			index = new_node(p, NODE_BOOL, token.pos);
			if (index != NO_NODE)
			{
				node_at(p->tmpl, index)->len = token.len;
				node_at(p->tmpl, index)->number = token.len == 4;
			}
			return index;
		case TOK_CHAR_CONSTANT:
		case TOK_COMPLEX:
		case TOK_NUMBER:
			return parse_number(p, token);
		case TOK_LEFT_PAREN:
			if (p->depth >= TEMPLATE_MAX_DEPTH)
			{
				parse_fail(p, token.pos, "nesting deeper than %d levels",
						   TEMPLATE_MAX_DEPTH);
				return NO_NODE;
			}
			index = new_node(p, NODE_PAREN, token.pos);
			if (index == NO_NODE)
				return NO_NODE;
			p->depth++;
			pipe = parse_pipeline(p, "parenthesized pipeline", TOK_RIGHT_PAREN,
								  false);
			p->depth--;
			if (p->failed)
				return NO_NODE;
			node_at(p->tmpl, index)->pipe = pipe;
			extend_span(p, index,
						node_at(p->tmpl, pipe)->pos +
							node_at(p->tmpl, pipe)->len);
			return index;
		case TOK_STRING:
		case TOK_RAW_STRING:
			return parse_string(p, token);
		default:
			backup(p);
			return NO_NODE;
	}
}

/* Go's operand: a term followed by .Field accesses. */
static int32_t
parse_operand(Parser *p)
{
	int32_t index = parse_term(p);
	Node *node;

	if (index == NO_NODE || peek_token(p).type != TOK_FIELD)
		return index;
	node = node_at(p->tmpl, index);
	if (node->kind != NODE_FIELD && node->kind != NODE_VARIABLE &&
		node->kind != NODE_PAREN)
	{
		char quoted[QUOTED_MAX];

		go_quote(p->lex.input + node->pos, node->len, 30, quoted,
				 sizeof(quoted));
		parse_fail(p, peek_token(p).pos, "unexpected . after term %s", quoted);
		return NO_NODE;
	}
	while (peek_token(p).type == TOK_FIELD)
	{
		if (!add_field_name(p, index, next_token(p)))
			return NO_NODE;
	}
	return index;
}

/* Go's command: space-separated operands up to "|", "}}" or ")". */
static int32_t
parse_command(Parser *p)
{
	int32_t command = new_node(p, NODE_COMMAND, peek_non_space(p).pos);

	while (command != NO_NODE)
	{
		int32_t operand;
		Token token;

		peek_non_space(p);
		operand = parse_operand(p);
		if (p->failed)
			return NO_NODE;
		if (operand != NO_NODE)
		{
			append_child(p, command, operand);
			extend_span(p, command,
						node_at(p->tmpl, operand)->pos +
							node_at(p->tmpl, operand)->len);
		}
		token = next_token(p);
		if (token.type == TOK_SPACE)
			continue;
		if (token.type == TOK_RIGHT_DELIM || token.type == TOK_RIGHT_PAREN)
			backup(p);
		else if (token.type != TOK_PIPE)
		{
			unexpected(p, token, "operand");
			return NO_NODE;
		}
		if (node_at(p->tmpl, command)->child == NO_NODE)
		{
			parse_fail(p, node_at(p->tmpl, command)->pos, "empty command");
			return NO_NODE;
		}
		return command;
	}
	return NO_NODE;
}

/* A call with nargs arguments: does the function take that many? */
static bool
check_arity(Parser *p, const Node *function, int nargs)
{
	int i = (int) function->number;
	int want = functions[i].min_args;

	if (functions[i].variadic ? nargs >= want : nargs == want)
		return true;
	parse_fail(p, function->pos,
			   "wrong number of args for %s: want %s%d got %d",
			   functions[i].name, functions[i].variadic ? "at least " : "",
			   want, nargs);
	return false;
}

/*
 * Arguments given to something that is not a function, worded as Go's
 * evalField ("X is not a method but has arguments") for a field access
 * and as its notAFunction otherwise.
 */
static bool
refuse_arguments(Parser *p, const Node *first)
{
	char excerpt[EXCERPT_MAX];
	const Node *field;

	if (first->child != NO_NODE)
	{
		for (field = node_at(p->tmpl, first->child); field->next != NO_NODE;
			 field = node_at(p->tmpl, field->next))
			;
		parse_fail(p, first->pos, "%s is not a method but has arguments",
				   field_names[field->number]);
		return false;
	}
	plain_excerpt(p->lex.input + first->pos, first->len, excerpt,
				  sizeof(excerpt));
	parse_fail(p, first->pos, "can't give argument to non-function %s",
			   excerpt);
	return false;
}

/*
 * Go's checkPipeline, plus the checks Go makes only when a command runs
 * but which fail whenever it runs: the arity of every call, including
 * function names used as arguments (called with no arguments), and
 * arguments given to something that is not a function.
 */
static bool
check_pipeline(Parser *p, int32_t pipe, const char *context)
{
	const Node *pipe_node = node_at(p->tmpl, pipe);
	int32_t command;
	int stage = 0;

	if (pipe_node->child == NO_NODE)
	{
		parse_fail(p, pipe_node->pos, "missing value for %s", context);
		return false;
	}
	for (command = pipe_node->child; command != NO_NODE;
		 command = node_at(p->tmpl, command)->next, stage++)
	{
		const Node *first = node_at(p->tmpl, node_at(p->tmpl, command)->child);
		int nargs = stage > 0 ? 1 : 0;
		int32_t arg;

		if (stage > 0 &&
			(first->kind == NODE_BOOL || first->kind == NODE_DOT ||
			 first->kind == NODE_NUMBER || first->kind == NODE_STRING))
		{
			parse_fail(p, first->pos,
					   "non executable command in pipeline stage %d",
					   stage + 1);
			return false;
		}
		for (arg = first->next; arg != NO_NODE;
			 arg = node_at(p->tmpl, arg)->next)
		{
			nargs++;
			if (node_at(p->tmpl, arg)->kind == NODE_FUNCTION &&
				!check_arity(p, node_at(p->tmpl, arg), 0))
				return false;
		}
		if (first->kind == NODE_FUNCTION)
		{
			if (!check_arity(p, first, nargs))
				return false;
		}
		else if (nargs > 0)
			return refuse_arguments(p, first);
	}
	return true;
}

/* Add a declared variable to a pipeline's declaration list. */
static bool
add_declaration(Parser *p, int32_t pipe, Token variable, int32_t *last)
{
	int32_t index = new_node(p, NODE_VARIABLE, variable.pos);
	Node *node;

	if (index == NO_NODE)
		return false;
	node = node_at(p->tmpl, index);
	node->len = variable.len;
	node->str_off = variable.pos;
	node->str_len = variable.len;
	if (*last == NO_NODE)
		node_at(p->tmpl, pipe)->decls = index;
	else
		node_at(p->tmpl, *last)->next = index;
	*last = index;
	node_at(p->tmpl, pipe)->n_decls++;
	return true;
}

/*
 * Go's pipeline: optional declarations ("$x :=", "$x =", and in range
 * "$i, $x :="), then commands separated by "|" up to the end token.
 * Declared variables come into scope after the pipeline, so "$x := $x"
 * refers to an outer $x; assigned ones must already be in scope.
 */
static int32_t
parse_pipeline(Parser *p, const char *context, TokenType end, bool is_range)
{
	int32_t pipe = new_node(p, NODE_PIPE, peek_non_space(p).pos);
	int32_t last_decl = NO_NODE;
	int32_t decl;
	bool more = true;

	while (pipe != NO_NODE && more)
	{
		Token variable = peek_non_space(p);
		Token after;
		Token following;

		more = false;
		if (variable.type != TOK_VARIABLE)
			break;
		next_token(p);
		after = peek_token(p);
		following = peek_non_space(p);
		if (following.type == TOK_ASSIGN || following.type == TOK_DECLARE)
		{
			node_at(p->tmpl, pipe)->is_assign = following.type == TOK_ASSIGN;
			next_non_space(p);
			if (!add_declaration(p, pipe, variable, &last_decl))
				return NO_NODE;
		}
		else if (following.type == TOK_CHAR &&
				 p->lex.input[following.pos] == ',')
		{
			TokenType type;

			next_non_space(p);
			if (!add_declaration(p, pipe, variable, &last_decl))
				return NO_NODE;
			type = peek_non_space(p).type;
			if (!is_range || node_at(p->tmpl, pipe)->n_decls >= 2)
			{
				parse_fail(p, variable.pos, "too many declarations in %s",
						   context);
				return NO_NODE;
			}
			if (type != TOK_VARIABLE && type != TOK_RIGHT_DELIM &&
				type != TOK_RIGHT_PAREN)
			{
				parse_fail(p, variable.pos,
						   "range can only initialize variables");
				return NO_NODE;
			}
			more = true;
		}
		else if (after.type == TOK_SPACE)
			backup3(p, variable, after);
		else
			backup2(p, variable);
	}

	while (pipe != NO_NODE)
	{
		Token token = next_non_space(p);
		int32_t command;

		if (token.type == end)
		{
			extend_span(p, pipe, token.pos + token.len);
			break;
		}
		switch (token.type)
		{
			case TOK_BOOL:
			case TOK_CHAR_CONSTANT:
			case TOK_COMPLEX:
			case TOK_DOT:
			case TOK_FIELD:
			case TOK_IDENTIFIER:
			case TOK_NUMBER:
			case TOK_NIL:
			case TOK_RAW_STRING:
			case TOK_STRING:
			case TOK_VARIABLE:
			case TOK_LEFT_PAREN:
				backup(p);
				command = parse_command(p);
				if (command == NO_NODE)
					return NO_NODE;
				append_child(p, pipe, command);
				break;
			default:
				unexpected(p, token, context);
				return NO_NODE;
		}
	}
	if (pipe == NO_NODE || !check_pipeline(p, pipe, context))
		return NO_NODE;

	for (decl = node_at(p->tmpl, pipe)->decls; decl != NO_NODE;
		 decl = node_at(p->tmpl, decl)->next)
	{
		const Node *var = node_at(p->tmpl, decl);
		Token name = make_token(TOK_VARIABLE, var->pos, var->len);

		if (node_at(p->tmpl, pipe)->is_assign)
		{
			if (!variable_in_scope(p, name))
			{
				char quoted[QUOTED_MAX];

				go_quote(p->lex.input + var->pos, var->len, 40, quoted,
						 sizeof(quoted));
				parse_fail(p, var->pos, "undefined variable %s", quoted);
				return NO_NODE;
			}
		}
		else if (!declare_variable(p, p->lex.input + var->pos, var->len))
			return NO_NODE;
	}
	return pipe;
}

static int32_t parse_action(Parser *p);

/* Go's textOrAction: a text node, or an action (or end/else mark). */
static int32_t
parse_text_or_action(Parser *p)
{
	Token token = next_non_space(p);
	int32_t index;

	switch (token.type)
	{
		case TOK_TEXT:
			index = new_node(p, NODE_TEXT, token.pos);
			if (index != NO_NODE)
				node_at(p->tmpl, index)->len = token.len;
			return index;
		case TOK_LEFT_DELIM:
			return parse_action(p);
		default:
			unexpected(p, token, "input");
			return NO_NODE;
	}
}

/*
 * Go's itemList: nodes up to the {{end}} or {{else}} of a control,
 * returned in *mark.  Reaching the end of the text is an error naming
 * the control left open.
 */
static int32_t
parse_item_list(Parser *p, const char *keyword, size_t open_pos, int32_t *mark)
{
	int32_t list = new_node(p, NODE_LIST, peek_non_space(p).pos);

	while (list != NO_NODE)
	{
		Token token = peek_non_space(p);
		int32_t item;

		if (token.type == TOK_EOF)
		{
			int line;
			int column;

			line_and_column(p->tmpl->source, open_pos, &line, &column);
			parse_fail(p, token.pos,
					   "unexpected EOF: {{%s}} at %d:%d has no matching "
					   "{{end}}",
					   keyword, line, column);
			return NO_NODE;
		}
		item = parse_text_or_action(p);
		if (p->failed)
			return NO_NODE;
		if (item == END_MARK || item == ELSE_MARK)
		{
			*mark = item;
			return list;
		}
		append_child(p, list, item);
	}
	return NO_NODE;
}

/*
 * Go's parseControl for if and range: the pipeline, the body, and an
 * optional else body; "{{else if ...}}" becomes an else body holding a
 * nested if that shares the final {{end}}.  Variables declared in the
 * pipeline are visible in both bodies; those declared in a body only in
 * that body.
 */
static int32_t
parse_control(Parser *p, NodeKind kind, Token keyword)
{
	const char *name = kind == NODE_IF ? "if" : "range";
	size_t outer_scope = p->n_vars;
	size_t pipe_scope;
	int32_t index;
	int32_t child;
	int32_t mark = NO_NODE;
	Node *node;

	if (p->depth >= TEMPLATE_MAX_DEPTH)
	{
		parse_fail(p, keyword.pos, "nesting deeper than %d levels",
				   TEMPLATE_MAX_DEPTH);
		return NO_NODE;
	}
	p->depth++;
	index = new_node(p, kind, keyword.pos);
	child = parse_pipeline(p, name, TOK_RIGHT_DELIM, kind == NODE_RANGE);
	if (!p->failed)
		node_at(p->tmpl, index)->pipe = child;
	pipe_scope = p->n_vars;
	child = parse_item_list(p, name, keyword.pos, &mark);
	if (!p->failed)
		node_at(p->tmpl, index)->body = child;
	p->n_vars = pipe_scope;
	if (!p->failed && mark == ELSE_MARK)
	{
		Token next = peek_token(p);

		if (kind == NODE_IF && next.type == TOK_IF)
		{
			int32_t else_body = new_node(p, NODE_LIST, p->mark_pos);
			int32_t nested;

			next_token(p);
			nested = parse_control(p, NODE_IF, next);
			if (!p->failed)
			{
				append_child(p, else_body, nested);
				node_at(p->tmpl, index)->else_body = else_body;
			}
		}
		else
		{
			int32_t else_body = parse_item_list(p, name, keyword.pos, &mark);

			if (!p->failed && mark != END_MARK)
				parse_fail(p, p->mark_pos, "expected end; found {{else}}");
			else if (!p->failed)
				node_at(p->tmpl, index)->else_body = else_body;
		}
	}
	p->n_vars = outer_scope;
	p->depth--;
	if (p->failed)
		return NO_NODE;
	node = node_at(p->tmpl, index);
	node->len = keyword.len;
	return index;
}

/* Go's endControl and elseControl: the marks ending a control's body. */
static int32_t
parse_end_or_else(Parser *p, Token keyword)
{
	Token token;

	if (keyword.type == TOK_ELSE)
	{
		token = peek_non_space(p);
		if (token.type == TOK_IF)
		{
			p->mark_pos = keyword.pos;
			return ELSE_MARK;
		}
	}
	token = next_non_space(p);
	if (token.type != TOK_RIGHT_DELIM)
	{
		unexpected(p, token, keyword.type == TOK_ELSE ? "else" : "end");
		return NO_NODE;
	}
	p->mark_pos = keyword.pos;
	return keyword.type == TOK_ELSE ? ELSE_MARK : END_MARK;
}

/* Go's action: a control keyword, or a pipeline whose value is printed. */
static int32_t
parse_action(Parser *p)
{
	Token token = next_non_space(p);
	int32_t index;
	int32_t pipe;

	switch (token.type)
	{
		case TOK_ELSE:
		case TOK_END:
			return parse_end_or_else(p, token);
		case TOK_IF:
			return parse_control(p, NODE_IF, token);
		case TOK_RANGE:
			return parse_control(p, NODE_RANGE, token);
		case TOK_BLOCK:
		case TOK_BREAK:
		case TOK_CONTINUE:
		case TOK_DEFINE:
		case TOK_TEMPLATE:
		case TOK_WITH:
			parse_fail(p, token.pos,
					   "{{%.*s}} is not supported in query templates",
					   (int) token.len, p->lex.input + token.pos);
			return NO_NODE;
		default:
			break;
	}
	backup(p);
	index = new_node(p, NODE_ACTION, peek_token(p).pos);
	pipe = parse_pipeline(p, "command", TOK_RIGHT_DELIM, false);
	if (p->failed)
		return NO_NODE;
	node_at(p->tmpl, index)->pipe = pipe;
	extend_span(p, index,
				node_at(p->tmpl, pipe)->pos + node_at(p->tmpl, pipe)->len);
	return index;
}

/* Go's Tree.parse: the top-level list, where {{end}} and {{else}} are
 * errors. */
static int32_t
parse_root(Parser *p)
{
	int32_t root = new_node(p, NODE_LIST, 0);

	while (root != NO_NODE && peek_token(p).type != TOK_EOF)
	{
		int32_t item = parse_text_or_action(p);

		if (item == END_MARK)
			parse_fail(p, p->mark_pos,
					   "unexpected {{end}}: no {{if}} or {{range}} is open");
		else if (item == ELSE_MARK)
			parse_fail(p, p->mark_pos,
					   "unexpected {{else}} outside {{if}} or {{range}}");
		if (p->failed)
			return NO_NODE;
		append_child(p, root, item);
	}
	return root;
}

/* Free a template and everything it owns. */
void
template_free(Template *tmpl)
{
	if (tmpl == NULL)
		return;
	free(tmpl->source);
	free(tmpl->nodes);
	free(tmpl->strings);
	free(tmpl);
}

/*
 * Parse a template: copy the text (so the template outlives it), parse
 * it into nodes, and return it or NULL with the first error.
 */
Template *
template_parse(const char *text, char *errbuf, size_t errlen)
{
	Parser parser;
	size_t len;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (text == NULL)
	{
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "template: %s: no template given",
					 TEMPLATE_NAME);
		return NULL;
	}
	len = strlen(text);
	if (len > TEMPLATE_MAX_SIZE)
	{
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen,
					 "template: %s: template is %zu bytes long; the limit "
					 "is %d",
					 TEMPLATE_NAME, len, TEMPLATE_MAX_SIZE);
		return NULL;
	}

	memset(&parser, 0, sizeof(parser));
	parser.errbuf = errbuf;
	parser.errlen = errlen;
	parser.tmpl = calloc(1, sizeof(Template));
	if (parser.tmpl == NULL || (parser.tmpl->source = malloc(len + 1)) == NULL)
	{
		free(parser.tmpl);
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen, "template: %s: out of memory",
					 TEMPLATE_NAME);
		return NULL;
	}
	memcpy(parser.tmpl->source, text, len + 1);
	parser.tmpl->source_len = len;
	parser.lex.input = parser.tmpl->source;
	parser.lex.len = len;

	if (declare_variable(&parser, "$", 1))
		parser.tmpl->root = parse_root(&parser);
	free(parser.vars);
	if (parser.failed)
	{
		template_free(parser.tmpl);
		return NULL;
	}
	return parser.tmpl;
}

/* ---------------------------------------------------------------------
 * Evaluation (Go: exec.go and funcs.go)
 * ---------------------------------------------------------------------
 */

typedef enum ValueKind
{
	VALUE_BOOL,
	VALUE_INT,
	VALUE_STRING,
	VALUE_LIST, /* the cursor fields */
	VALUE_ROOT	/* the data itself: Go's map[string]any */
} ValueKind;

typedef struct Value
{
	ValueKind kind;
	bool b;
	int64_t i;
	const char *s; /* VALUE_STRING: not NUL-terminated, see len */
	size_t len;
} Value;

/* A variable at run time: its name in the source and its value. */
typedef struct RuntimeVar
{
	const char *name;
	size_t len;
	Value value;
} RuntimeVar;

/* State of one rendering (Go: state). */
typedef struct RenderState
{
	const Template *tmpl;
	const TemplateContext *ctx;
	char *out;
	size_t out_len;
	size_t out_max;
	RuntimeVar *vars;
	size_t n_vars;
	size_t max_vars;
	char **scratch; /* strings built by the quoting functions */
	size_t n_scratch;
	size_t max_scratch;
	size_t scratch_bytes;
	long steps;
	int32_t at; /* node being evaluated, for error messages (Go: s.at) */
	bool failed;
	char *errbuf;
	size_t errlen;
} RenderState;

/* Source text of a node for "at <...>", commands as their arguments. */
static void
node_context(const RenderState *st, int32_t index, char *buf, size_t buflen)
{
	const Template *tmpl = st->tmpl;
	const Node *node = node_at(tmpl, index);
	size_t used = 0;
	int32_t arg;

	if (node->kind != NODE_COMMAND)
	{
		plain_excerpt(tmpl->source + node->pos, node->len, buf, buflen);
		return;
	}
	buf[0] = '\0';
	for (arg = node->child; arg != NO_NODE && used + 1 < buflen;
		 arg = node_at(tmpl, arg)->next)
	{
		if (used > 0)
			buf[used++] = ' ';
		plain_excerpt(tmpl->source + node_at(tmpl, arg)->pos,
					  node_at(tmpl, arg)->len, buf + used, buflen - used);
		used += strlen(buf + used);
	}
}

/*
 * Record the first render error as Go's exec errors read:
 *	 template: query:LINE:COL: executing "query" at <node>: message
 */
static bool render_fail(RenderState *st, const char *format, ...)
	__attribute__((format(printf, 2, 3)));

static bool
render_fail(RenderState *st, const char *format, ...)
{
	char message[TEMPLATE_ERROR_MAX];
	char context[EXCERPT_MAX * 2];
	va_list args;
	int line;
	int column;

	if (st->failed)
		return false;
	st->failed = true;
	if (st->errbuf == NULL || st->errlen == 0)
		return false;
	va_start(args, format);
	vsnprintf(message, sizeof(message), format, args);
	va_end(args);
	line_and_column(st->tmpl->source, node_at(st->tmpl, st->at)->pos, &line,
					&column);
	node_context(st, st->at, context, sizeof(context));
	snprintf(st->errbuf, st->errlen,
			 "template: %s:%d:%d: executing \"%s\" at <%s>: %s", TEMPLATE_NAME,
			 line, column, TEMPLATE_NAME, context, message);
	drop_partial_utf8(st->errbuf);
	return false;
}

/* Count one evaluation step against TEMPLATE_MAX_STEPS. */
static bool
take_step(RenderState *st, int32_t index)
{
	st->at = index;
	if (++st->steps > TEMPLATE_MAX_STEPS)
		return render_fail(st, "evaluation took more than %d steps",
						   TEMPLATE_MAX_STEPS);
	return true;
}

/* NULL strings in the data read as "", as an unset Go string would. */
static const char *
or_empty(const char *s)
{
	return s == NULL ? "" : s;
}

/* Constructors of values, for the evaluator's many results. */
static Value
string_value(const char *s, size_t len)
{
	Value v;

	memset(&v, 0, sizeof(v));
	v.kind = VALUE_STRING;
	v.s = s;
	v.len = len;
	return v;
}

static Value
int_value(int64_t i)
{
	Value v;

	memset(&v, 0, sizeof(v));
	v.kind = VALUE_INT;
	v.i = i;
	return v;
}

static Value
bool_value(bool b)
{
	Value v;

	memset(&v, 0, sizeof(v));
	v.kind = VALUE_BOOL;
	v.b = b;
	return v;
}

/* Element i of .CursorFields as a string value. */
static Value
cursor_field(const RenderState *st, size_t i)
{
	const char *s = or_empty(st->ctx->cursor_fields[i]);

	return string_value(s, strlen(s));
}

/* The Go type of a value, as Go's messages name it. */
static const char *
type_name(const Value *v)
{
	switch (v->kind)
	{
		case VALUE_BOOL:
			return "bool";
		case VALUE_INT:
			return "int";
		case VALUE_STRING:
			return "string";
		case VALUE_LIST:
			return "[]string";
		case VALUE_ROOT:
			break;
	}
	return "map[string]interface {}";
}

/* Go's isTrue: false, 0, "" and empty lists are false. */
static bool
is_true(const RenderState *st, const Value *v)
{
	switch (v->kind)
	{
		case VALUE_BOOL:
			return v->b;
		case VALUE_INT:
			return v->i != 0;
		case VALUE_STRING:
			return v->len > 0;
		case VALUE_LIST:
			return st->ctx->n_cursor_fields > 0;
		case VALUE_ROOT:
			break;
	}
	return true;
}

/* Append to the output, within TEMPLATE_MAX_OUTPUT. */
static bool
emit(RenderState *st, const char *s, size_t len)
{
	if (len > (size_t) TEMPLATE_MAX_OUTPUT - st->out_len)
		return render_fail(st, "the rendered query is longer than %d bytes",
						   TEMPLATE_MAX_OUTPUT);
	if (st->out_max - st->out_len <= len)
	{
		size_t max = st->out_max == 0 ? 256 : st->out_max;
		char *out;

		while (max - st->out_len <= len)
			max *= 2;
		out = realloc(st->out, max);
		if (out == NULL)
			return render_fail(st, "out of memory");
		st->out = out;
		st->out_max = max;
	}
	memcpy(st->out + st->out_len, s, len);
	st->out_len += len;
	return true;
}

/* Append a NUL-terminated string to the output. */
static bool
emit_text(RenderState *st, const char *s)
{
	return emit(st, s, strlen(s));
}

/*
 * Write a value as Go's fmt.Print does: strings as they are, integers in
 * decimal, booleans as true/false, lists as [a b], the data as a map.
 */
static bool
print_value(RenderState *st, const Value *v)
{
	char number[24];
	size_t i;
	bool ok;
	Value field;

	switch (v->kind)
	{
		case VALUE_BOOL:
			return emit_text(st, v->b ? "true" : "false");
		case VALUE_INT:
			snprintf(number, sizeof(number), "%lld", (long long) v->i);
			return emit_text(st, number);
		case VALUE_STRING:
			return emit(st, v->s, v->len);
		case VALUE_LIST:
			ok = emit_text(st, "[");
			for (i = 0; ok && i < st->ctx->n_cursor_fields; i++)
			{
				field = cursor_field(st, i);
				ok = (i == 0 || emit_text(st, " ")) && print_value(st, &field);
			}
			return ok && emit_text(st, "]");
		case VALUE_ROOT:
			break;
	}
	field.kind = VALUE_LIST;
	return emit_text(st, "map[CursorFields:") && print_value(st, &field) &&
		   emit_text(st, " IsFirstQuery:") &&
		   emit_text(st, st->ctx->is_first_query ? "true" : "false") &&
		   emit_text(st, " SchemaName:") &&
		   emit_text(st, or_empty(st->ctx->schema_name)) &&
		   emit_text(st, " TableName:") &&
		   emit_text(st, or_empty(st->ctx->table_name)) && emit_text(st, "]");
}

/* A short description of a value for messages ("range can't ..."). */
static void
describe_value(const RenderState *st, const Value *v, char *buf, size_t buflen)
{
	switch (v->kind)
	{
		case VALUE_BOOL:
			snprintf(buf, buflen, "%s", v->b ? "true" : "false");
			break;
		case VALUE_INT:
			snprintf(buf, buflen, "%lld", (long long) v->i);
			break;
		case VALUE_STRING:
			plain_excerpt(v->s, v->len, buf, buflen);
			break;
		case VALUE_LIST:
			snprintf(buf, buflen, "[%zu cursor fields]",
					 st->ctx->n_cursor_fields);
			break;
		case VALUE_ROOT:
			snprintf(buf, buflen, "the template data (map[...])");
			break;
	}
}

/* Push a variable (Go: state.push). */
static bool
push_var(RenderState *st, const char *name, size_t len, const Value *value)
{
	if (st->n_vars == st->max_vars)
	{
		size_t max = st->max_vars == 0 ? 16 : st->max_vars * 2;
		RuntimeVar *vars = realloc(st->vars, max * sizeof(RuntimeVar));

		if (vars == NULL)
			return render_fail(st, "out of memory");
		st->vars = vars;
		st->max_vars = max;
	}
	st->vars[st->n_vars].name = name;
	st->vars[st->n_vars].len = len;
	st->vars[st->n_vars].value = *value;
	st->n_vars++;
	return true;
}

/*
 * The innermost variable of that name (Go: state.varValue / setVar).
 * Parsing scopes variables as evaluation does, so this cannot fail for a
 * parsed template; the check guards memory safety all the same.
 */
static RuntimeVar *
find_var(RenderState *st, const Node *variable)
{
	const char *name = st->tmpl->source + variable->str_off;
	char excerpt[EXCERPT_MAX];
	size_t i;

	for (i = st->n_vars; i > 0; i--)
	{
		if (st->vars[i - 1].len == variable->str_len &&
			memcmp(st->vars[i - 1].name, name, variable->str_len) == 0)
			return &st->vars[i - 1];
	}
	plain_excerpt(name, variable->str_len, excerpt, sizeof(excerpt));
	render_fail(st, "undefined variable: %s", excerpt);
	return NULL;
}

/* Follow a chain of .Field accesses from a value (Go: evalField). */
static bool
eval_chain(RenderState *st, int32_t field, Value *value)
{
	for (; field != NO_NODE; field = node_at(st->tmpl, field)->next)
	{
		const Node *node = node_at(st->tmpl, field);

		st->at = field;
		if (value->kind != VALUE_ROOT)
			return render_fail(st, "can't evaluate field %s in type %s",
							   field_names[node->number], type_name(value));
		switch ((TemplateField) node->number)
		{
			case FIELD_IS_FIRST_QUERY:
				*value = bool_value(st->ctx->is_first_query);
				break;
			case FIELD_CURSOR_FIELDS:
				memset(value, 0, sizeof(*value));
				value->kind = VALUE_LIST;
				break;
			case FIELD_SCHEMA_NAME:
				*value = string_value(or_empty(st->ctx->schema_name),
									  strlen(or_empty(st->ctx->schema_name)));
				break;
			case FIELD_TABLE_NAME:
				*value = string_value(or_empty(st->ctx->table_name),
									  strlen(or_empty(st->ctx->table_name)));
				break;
		}
	}
	return true;
}

static bool eval_pipeline(RenderState *st, int32_t pipe, const Value *dot,
						  Value *result);
static bool call_function(RenderState *st, int32_t call, int32_t function,
						  const Value *dot, const Value *final, Value *result);

/* The value of one operand: literal, ., .Field, $var, (pipeline), call. */
static bool
eval_operand(RenderState *st, int32_t index, const Value *dot, Value *result)
{
	const Node *node = node_at(st->tmpl, index);
	RuntimeVar *var;

	st->at = index;
	switch (node->kind)
	{
		case NODE_DOT:
			*result = *dot;
			return true;
		case NODE_BOOL:
			*result = bool_value(node->number != 0);
			return true;
		case NODE_NUMBER:
			*result = int_value(node->number);
			return true;
		case NODE_STRING:
			*result =
				string_value(st->tmpl->strings + node->str_off, node->str_len);
			return true;
		case NODE_FIELD:
			*result = *dot;
			return eval_chain(st, node->child, result);
		case NODE_VARIABLE:
			var = find_var(st, node);
			if (var == NULL)
				return false;
			*result = var->value;
			return eval_chain(st, node->child, result);
		case NODE_PAREN:
			return eval_pipeline(st, node->pipe, dot, result) &&
				   eval_chain(st, node->child, result);
		case NODE_FUNCTION:
			return call_function(st, index, index, dot, NULL, result);
		default:
			break;
	}
	return render_fail(st, "can't evaluate command");
}

/*
 * An argument of a function taking an int or a string (Go: evalArg):
 * literals of the wrong kind and values of the wrong type are errors
 * worded as Go words them.
 */
static bool
eval_typed_arg(RenderState *st, int32_t arg, const Value *final,
			   const Value *dot, ValueKind want, Value *result)
{
	const char *want_name = want == VALUE_INT ? "int" : "string";

	if (arg != NO_NODE)
	{
		const Node *node = node_at(st->tmpl, arg);
		bool literal = node->kind == NODE_BOOL || node->kind == NODE_NUMBER ||
					   node->kind == NODE_STRING;
		bool matches = (want == VALUE_INT && node->kind == NODE_NUMBER) ||
					   (want == VALUE_STRING && node->kind == NODE_STRING);
		char excerpt[EXCERPT_MAX];

		st->at = arg;
		if (literal && !matches)
		{
			plain_excerpt(st->tmpl->source + node->pos, node->len, excerpt,
						  sizeof(excerpt));
			return render_fail(st, "expected %s; found %s",
							   want == VALUE_INT ? "integer" : "string",
							   excerpt);
		}
		if (!eval_operand(st, arg, dot, result))
			return false;
		st->at = arg;
	}
	else
		*result = *final;
	if (result->kind != want)
		return render_fail(st, "wrong type for value; expected %s; got %s",
						   want_name, type_name(result));
	return true;
}

/* Go's basicKind: which values eq, lt and friends can compare. */
static bool
comparable_kind(const Value *v)
{
	return v->kind == VALUE_BOOL || v->kind == VALUE_INT ||
		   v->kind == VALUE_STRING;
}

/* Go's eq for two values: true, false, or an error message. */
static const char *
values_equal(const Value *a, const Value *b, bool *equal)
{
	*equal = false;
	if (!comparable_kind(a) || !comparable_kind(b))
	{
		if (a->kind == b->kind)
			return "non-comparable type";
		return "incompatible types for comparison";
	}
	if (a->kind != b->kind)
		return "incompatible types for comparison";
	if (a->kind == VALUE_BOOL)
		*equal = a->b == b->b;
	else if (a->kind == VALUE_INT)
		*equal = a->i == b->i;
	else
		*equal = a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
	return NULL;
}

/* Go's lt: integers numerically, strings bytewise; nothing else. */
static const char *
value_less(const Value *a, const Value *b, bool *less)
{
	int cmp;

	*less = false;
	if (!comparable_kind(a) || !comparable_kind(b))
		return "invalid type for comparison";
	if (a->kind != b->kind)
		return "incompatible types for comparison";
	if (a->kind == VALUE_BOOL)
		return "invalid type for comparison";
	if (a->kind == VALUE_INT)
	{
		*less = a->i < b->i;
		return NULL;
	}
	cmp = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
	*less = cmp < 0 || (cmp == 0 && a->len < b->len);
	return NULL;
}

/* Keep a string built during rendering, to be freed at the end. */
static char *
scratch_alloc(RenderState *st, size_t size)
{
	char *s;

	if (size > TEMPLATE_MAX_SCRATCH - st->scratch_bytes)
	{
		render_fail(st, "the template builds more than %zu bytes of strings",
					TEMPLATE_MAX_SCRATCH);
		return NULL;
	}
	if (st->n_scratch == st->max_scratch)
	{
		size_t max = st->max_scratch == 0 ? 16 : st->max_scratch * 2;
		char **scratch = realloc(st->scratch, max * sizeof(char *));

		if (scratch == NULL)
		{
			render_fail(st, "out of memory");
			return NULL;
		}
		st->scratch = scratch;
		st->max_scratch = max;
	}
	s = malloc(size == 0 ? 1 : size);
	if (s == NULL)
	{
		render_fail(st, "out of memory");
		return NULL;
	}
	st->scratch[st->n_scratch++] = s;
	st->scratch_bytes += size;
	return s;
}

/* Write "name" with embedded double quotes doubled; returns the length. */
static size_t
write_quoted_identifier(char *out, const Value *name)
{
	size_t used = 0;
	size_t i;

	out[used++] = '"';
	for (i = 0; i < name->len; i++)
	{
		if (name->s[i] == '"')
			out[used++] = '"';
		out[used++] = name->s[i];
	}
	out[used++] = '"';
	return used;
}

/* quoteIdentifier name / quoteTableName schema table. */
static bool
quote_names(RenderState *st, const Value *names, int n, Value *result)
{
	size_t size = 0;
	size_t used = 0;
	char *out;
	int i;

	for (i = 0; i < n; i++)
	{
		if (names[i].len > TEMPLATE_MAX_SCRATCH / 2)
			return render_fail(st, "string too long to quote");
		size += names[i].len * 2 + 3;
	}
	out = scratch_alloc(st, size);
	if (out == NULL)
		return false;
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			out[used++] = '.';
		used += write_quoted_identifier(out + used, &names[i]);
	}
	*result = string_value(out, used);
	return true;
}

/* Count the arguments after the function name, plus the piped value. */
static size_t
count_args(const RenderState *st, int32_t first_arg, const Value *final)
{
	size_t n = final != NULL ? 1 : 0;
	int32_t arg;

	for (arg = first_arg; arg != NO_NODE; arg = node_at(st->tmpl, arg)->next)
		n++;
	return n;
}

/*
 * Go's builtin and / or: evaluate arguments in order and stop at the
 * first false (and) or true (or) one, which is the result; otherwise the
 * result is the last argument.
 */
static bool
call_and_or(RenderState *st, int32_t first_arg, bool is_or, const Value *dot,
			const Value *final, Value *result)
{
	int32_t arg;

	for (arg = first_arg; arg != NO_NODE; arg = node_at(st->tmpl, arg)->next)
	{
		if (!eval_operand(st, arg, dot, result))
			return false;
		if (is_true(st, result) == is_or)
			return true;
	}
	if (final != NULL)
		*result = *final;
	return true;
}

/*
 * Go's evalCall for the builtin comparison functions and len, not:
 * evaluate every argument first, then apply the function.
 */
static bool
call_generic(RenderState *st, int32_t call, TemplateFunction function,
			 int32_t first_arg, const Value *dot, const Value *final,
			 Value *result)
{
	size_t n = count_args(st, first_arg, final);
	Value stack_args[4];
	Value *args = n <= 4 ? stack_args : malloc(n * sizeof(Value));
	const char *error = NULL;
	const char *name = functions[function].name;
	bool truth = false;
	size_t i = 0;
	int32_t arg;
	bool ok = true;

	if (args == NULL)
		return render_fail(st, "out of memory");
	for (arg = first_arg; ok && arg != NO_NODE;
		 arg = node_at(st->tmpl, arg)->next)
		ok = eval_operand(st, arg, dot, &args[i++]);
	if (ok && final != NULL)
		args[i] = *final;
	st->at = call;
	if (ok)
	{
		switch (function)
		{
			case FN_NOT:
				truth = !is_true(st, &args[0]);
				break;
			case FN_EQ:
				for (i = 1; i < n && error == NULL && !truth; i++)
					error = values_equal(&args[0], &args[i], &truth);
				break;
			case FN_NE:
				error = values_equal(&args[0], &args[1], &truth);
				truth = !truth;
				break;
			case FN_LT:
			case FN_GE:
				error = value_less(&args[0], &args[1], &truth);
				truth = function == FN_LT ? truth : !truth;
				break;
			case FN_LE:
			case FN_GT:
				error = value_less(&args[0], &args[1], &truth);
				if (error == NULL && !truth)
					error = values_equal(&args[0], &args[1], &truth);
				truth = function == FN_LE ? truth : !truth;
				break;
			default:
				if (args[0].kind == VALUE_STRING)
					*result = int_value((int64_t) args[0].len);
				else if (args[0].kind == VALUE_LIST)
					*result = int_value((int64_t) st->ctx->n_cursor_fields);
				else if (args[0].kind == VALUE_ROOT)
					*result = int_value(4);
				else
					ok = render_fail(st, "error calling len: len of type %s",
									 type_name(&args[0]));
				break;
		}
	}
	if (args != stack_args)
		free(args);
	if (ok && error != NULL)
		return render_fail(st, "error calling %s: %s", name, error);
	if (ok && function != FN_LEN)
		*result = bool_value(truth);
	return ok;
}

/*
 * Call a function (Go: evalFunction / evalCall).  call is the command (or
 * the lone identifier used as an argument) for error messages; final is
 * the value piped in from the previous command, if any.
 */
static bool
call_function(RenderState *st, int32_t call, int32_t function,
			  const Value *dot, const Value *final, Value *result)
{
	TemplateFunction fn =
		functions[node_at(st->tmpl, function)->number].function;
	int32_t first_arg =
		call == function ? NO_NODE : node_at(st->tmpl, function)->next;
	Value args[2];

	/* check_pipeline made sure of the arity; the argument walk relies on it */
	st->at = function;
	if (count_args(st, first_arg, final) <
		(size_t) functions[node_at(st->tmpl, function)->number].min_args)
		return render_fail(st, "wrong number of args for %s",
						   functions[fn].name);
	switch (fn)
	{
		case FN_AND:
		case FN_OR:
			return call_and_or(st, first_arg, fn == FN_OR, dot, final, result);
		case FN_ADD:
			if (!eval_typed_arg(st, first_arg, final, dot, VALUE_INT,
								&args[0]) ||
				!eval_typed_arg(st, node_at(st->tmpl, first_arg)->next, final,
								dot, VALUE_INT, &args[1]))
				return false;
			*result = int_value(
				(int64_t) ((uint64_t) args[0].i + (uint64_t) args[1].i));
			return true;
		case FN_QUOTE_IDENTIFIER:
			return eval_typed_arg(st, first_arg, final, dot, VALUE_STRING,
								  &args[0]) &&
				   quote_names(st, args, 1, result);
		case FN_QUOTE_TABLE_NAME:
			if (!eval_typed_arg(st, first_arg, final, dot, VALUE_STRING,
								&args[0]) ||
				!eval_typed_arg(st, node_at(st->tmpl, first_arg)->next, final,
								dot, VALUE_STRING, &args[1]))
				return false;
			return quote_names(st, args, 2, result);
		default:
			return call_generic(st, call, fn, first_arg, dot, final, result);
	}
}

/*
 * Go's evalPipeline: run the commands, each receiving the previous
 * value as its last argument, then declare or assign the variables.
 */
static bool
eval_pipeline(RenderState *st, int32_t pipe, const Value *dot, Value *result)
{
	const Node *node = node_at(st->tmpl, pipe);
	bool has_final = false;
	int32_t command;
	int32_t decl;

	for (command = node->child; command != NO_NODE;
		 command = node_at(st->tmpl, command)->next)
	{
		int32_t first = node_at(st->tmpl, command)->child;
		Value value;

		if (!take_step(st, command))
			return false;
		if (node_at(st->tmpl, first)->kind == NODE_FUNCTION)
		{
			if (!call_function(st, command, first, dot,
							   has_final ? result : NULL, &value))
				return false;
		}
		else if (!eval_operand(st, first, dot, &value))
			return false;
		*result = value;
		has_final = true;
	}
	for (decl = node->decls; decl != NO_NODE;
		 decl = node_at(st->tmpl, decl)->next)
	{
		const Node *var = node_at(st->tmpl, decl);

		if (node->is_assign)
		{
			RuntimeVar *target = find_var(st, var);

			if (target == NULL)
				return false;
			target->value = *result;
		}
		else if (!push_var(st, st->tmpl->source + var->str_off, var->str_len,
						   result))
			return false;
	}
	return true;
}

static bool walk(RenderState *st, int32_t index, const Value *dot);

/*
 * Go's walkRange over the cursor fields: the body once per element with
 * . set to it and the declared variables to index and element, or the
 * else body if there are none.
 */
static bool
walk_range(RenderState *st, const Node *node, const Value *dot)
{
	const Node *pipe = node_at(st->tmpl, node->pipe);
	Value list;
	char described[EXCERPT_MAX + 32];
	size_t inner;
	size_t i;

	if (!eval_pipeline(st, node->pipe, dot, &list))
		return false;
	if (list.kind != VALUE_LIST)
	{
		describe_value(st, &list, described, sizeof(described));
		return render_fail(st, "range can't iterate over %s", described);
	}
	if (st->ctx->n_cursor_fields == 0)
		return node->else_body == NO_NODE || walk(st, node->else_body, dot);
	inner = st->n_vars;
	for (i = 0; i < st->ctx->n_cursor_fields; i++)
	{
		Value element = cursor_field(st, i);
		Value index = int_value((int64_t) i);
		const Node *first_decl =
			pipe->decls == NO_NODE ? NULL : node_at(st->tmpl, pipe->decls);
		RuntimeVar *var;

		if (first_decl != NULL && pipe->is_assign)
		{
			var = find_var(st, first_decl);
			if (var == NULL)
				return false;
			var->value = pipe->n_decls > 1 ? index : element;
			if (pipe->n_decls > 1)
			{
				var = find_var(st, node_at(st->tmpl, first_decl->next));
				if (var == NULL)
					return false;
				var->value = element;
			}
		}
		else if (first_decl != NULL)
		{
			st->vars[st->n_vars - 1].value = element;
			if (pipe->n_decls > 1)
				st->vars[st->n_vars - 2].value = index;
		}
		if (!walk(st, node->body, &element))
			return false;
		st->n_vars = inner;
	}
	return true;
}

/* Go's walk: run a node, writing text and printed values. */
static bool
walk(RenderState *st, int32_t index, const Value *dot)
{
	const Node *node = node_at(st->tmpl, index);
	size_t mark = st->n_vars;
	Value value;
	int32_t child;
	bool ok = true;

	if (!take_step(st, index))
		return false;
	switch (node->kind)
	{
		case NODE_LIST:
			for (child = node->child; ok && child != NO_NODE;
				 child = node_at(st->tmpl, child)->next)
				ok = walk(st, child, dot);
			return ok;
		case NODE_TEXT:
			return emit(st, st->tmpl->source + node->pos, node->len);
		case NODE_ACTION:
			if (!eval_pipeline(st, node->pipe, dot, &value))
				return false;
			st->at = index;
			return node_at(st->tmpl, node->pipe)->n_decls > 0 ||
				   print_value(st, &value);
		case NODE_IF:
			ok = eval_pipeline(st, node->pipe, dot, &value);
			if (ok && is_true(st, &value))
				ok = walk(st, node->body, dot);
			else if (ok && node->else_body != NO_NODE)
				ok = walk(st, node->else_body, dot);
			st->n_vars = mark;
			return ok;
		case NODE_RANGE:
			ok = walk_range(st, node, dot);
			st->n_vars = mark;
			return ok;
		default:
			break;
	}
	return render_fail(st, "unknown node");
}

/*
 * Render: walk the template with the root data as . and $, then hand
 * the NUL-terminated output to the caller.
 */
bool
template_render(const Template *tmpl, const TemplateContext *ctx, char **out,
				char *errbuf, size_t errlen)
{
	RenderState st;
	Value root;
	bool ok;
	size_t i;

	*out = NULL;
	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (tmpl == NULL || ctx == NULL ||
		(ctx->cursor_fields == NULL && ctx->n_cursor_fields > 0))
	{
		if (errbuf != NULL && errlen > 0)
			snprintf(errbuf, errlen,
					 "template: %s: no template or incomplete data to "
					 "render",
					 TEMPLATE_NAME);
		return false;
	}
	memset(&st, 0, sizeof(st));
	st.tmpl = tmpl;
	st.ctx = ctx;
	st.errbuf = errbuf;
	st.errlen = errlen;
	st.at = tmpl->root;
	memset(&root, 0, sizeof(root));
	root.kind = VALUE_ROOT;

	ok = push_var(&st, "$", 1, &root) && walk(&st, tmpl->root, &root) &&
		 emit(&st, "", 1);
	for (i = 0; i < st.n_scratch; i++)
		free(st.scratch[i]);
	free(st.scratch);
	free(st.vars);
	if (!ok)
	{
		free(st.out);
		return false;
	}
	*out = st.out;
	return true;
}
