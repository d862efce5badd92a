"""Redshift dialect rules applied by the simulator to every SQL statement.

A small lexer splits the text the client sent into tokens (with Redshift's
literal rules: backslash escapes inside '...', no E'' strings), statements are
split at top-level semicolons, and each statement is classified:

  ok       forward to the backing PostgreSQL (possibly rewritten: quoted
           identifiers folded to lower case, Redshift-only settings renamed)
  reject   answer with the error real Redshift gives (SimError)
  copy     COPY ... FROM 's3://...'  (executed by s3load)
  unload   UNLOAD ('...') TO 's3://...'  (executed by s3load)

Nothing here touches a socket, so it is tested on its own (test_sqlscan.py).
"""

import re


class SimError(Exception):
    """An error the simulator answers with, shaped like Redshift's."""

    def __init__(self, sqlstate, message, detail=None, hint=None):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.detail = detail
        self.hint = hint


def syntax_error(near):
    return SimError("42601", 'syntax error at or near "%s"' % near)


# --------------------------------------------------------------------------
# Lexer


class Token:
    __slots__ = ("kind", "text", "start")

    def __init__(self, kind, text, start):
        self.kind = kind      # ws comment string dollar ident qident number
        self.text = text      # param op punct
        self.start = start

    @property
    def upper(self):
        return self.text.upper() if self.kind == "ident" else None

    def __repr__(self):
        return "Token(%s, %r)" % (self.kind, self.text)


_IDENT_START = re.compile(r"[A-Za-z_\x80-\uffff]")
_IDENT = re.compile(r"[A-Za-z_0-9$\x80-\uffff]*")
_NUMBER = re.compile(r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")
_OPCHARS = set("+-*/<>=~!@#%^&|`?:")


def tokenize(sql):
    """Split SQL text into tokens; the concatenation of all token texts is
    the input, so a statement can be rebuilt after rewriting tokens."""
    tokens = []
    i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            j = i
            while j < n and sql[j].isspace():
                j += 1
            tokens.append(Token("ws", sql[i:j], i))
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            tokens.append(Token("comment", sql[i:j], i))
        elif sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            tokens.append(Token("comment", sql[i:j], i))
        elif c == "'":
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                elif sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                    else:
                        j += 1
                        break
                else:
                    j += 1
            tokens.append(Token("string", sql[i:j], i))
        elif c == '"':
            j = i + 1
            while j < n:
                if sql[j] == '"':
                    if j + 1 < n and sql[j + 1] == '"':
                        j += 2
                    else:
                        j += 1
                        break
                else:
                    j += 1
            tokens.append(Token("qident", sql[i:j], i))
        elif c == "$":
            m = _DOLLAR_TAG.match(sql, i)
            if m:
                tag = m.group(0)
                end = sql.find(tag, m.end())
                j = n if end < 0 else end + len(tag)
                tokens.append(Token("dollar", sql[i:j], i))
            else:
                m = re.compile(r"\$\d+").match(sql, i)
                j = m.end() if m else i + 1
                tokens.append(Token("param" if m else "op", sql[i:j], i))
        elif c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER.match(sql, i)
            j = m.end()
            tokens.append(Token("number", sql[i:j], i))
        elif _IDENT_START.match(c):
            m = _IDENT.match(sql, i + 1)
            j = m.end()
            tokens.append(Token("ident", sql[i:j], i))
        elif c in "(),;[].":
            j = i + 1
            tokens.append(Token("punct", c, i))
        elif c in _OPCHARS:
            j = i
            while j < n and sql[j] in _OPCHARS and not sql.startswith(
                    "--", j) and not sql.startswith("/*", j):
                j += 1
            j = max(j, i + 1)
            tokens.append(Token("op", sql[i:j], i))
        else:
            j = i + 1
            tokens.append(Token("op", c, i))
        i = j
    return tokens


def split_statements(tokens):
    """Split tokens into statements at top-level semicolons.  Returns a list
    of token lists, each including its terminating ';' if any; statements
    with nothing but white space and comments are dropped."""
    stmts, cur, depth = [], [], 0
    for tok in tokens:
        cur.append(tok)
        if tok.kind == "punct" and tok.text in "([":
            depth += 1
        elif tok.kind == "punct" and tok.text in ")]":
            depth = max(0, depth - 1)
        elif tok.kind == "punct" and tok.text == ";" and depth == 0:
            stmts.append(cur)
            cur = []
    if cur:
        stmts.append(cur)
    return [s for s in stmts if significant(s)]


def significant(tokens):
    """The tokens that carry meaning (no white space or comments)."""
    return [t for t in tokens if t.kind not in ("ws", "comment")]


def string_value(token):
    """The value of a '...' literal under Redshift's rules (backslash
    escapes and doubled quotes)."""
    body = token.text[1:-1]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b",
                        "f": "\f"}.get(nxt, nxt))
            i += 2
        elif c == "'" and i + 1 < len(body) and body[i + 1] == "'":
            out.append("'")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def ident_value(token, case_sensitive=False):
    """The name an identifier token denotes, folded as Redshift folds it."""
    if token.kind == "qident":
        name = token.text[1:-1].replace('""', '"')
        return name if case_sensitive else name.lower()
    return token.text.lower()


# --------------------------------------------------------------------------
# Statement classification


class Statement:
    """One classified statement."""

    def __init__(self, action, text, words, error=None, tables=(),
                 keyword=None, cursor=None, setting=None):
        self.action = action      # ok | reject | copy | unload
        self.text = text          # SQL to forward (rewritten) or original
        self.words = words        # significant tokens
        self.error = error        # SimError when action == reject
        self.tables = set(tables)  # lower-case names mentioned (for faults)
        self.keyword = keyword    # first keyword, upper case
        self.cursor = cursor      # ('declare'|'close'|'fetch', name)
        self.setting = setting    # (name, value) of a simulator-only SET


# Settings Redshift accepts in SET/RESET/SHOW, mapped to what the backing
# server gets.  Redshift-only ones become placeholder variables.
SETTINGS = {
    "search_path": "search_path",
    "timezone": "timezone",
    "time": "time",  # SET TIME ZONE
    "datestyle": "datestyle",
    "statement_timeout": "statement_timeout",
    "extra_float_digits": "extra_float_digits",
    "application_name": "application_name",
    "client_encoding": "client_encoding",
    "transaction": "transaction",
    "session": "session",
    "query_group": "redshift_sim.query_group",
    "enable_case_sensitive_identifier":
        "redshift_sim.enable_case_sensitive_identifier",
    "enable_result_cache_for_session":
        "redshift_sim.enable_result_cache_for_session",
    "describe_field_name_in_uppercase":
        "redshift_sim.describe_field_name_in_uppercase",
    "wlm_query_slot_count": "redshift_sim.wlm_query_slot_count",
    "json_serialization_enable": "redshift_sim.json_serialization_enable",
    "analyze_threshold_percent": "redshift_sim.analyze_threshold_percent",
    "seed": "redshift_sim.seed",
}

# Parameters that exist in the backing PostgreSQL but not in Redshift, or
# need superuser there; current_setting() of these fails.
SUPERUSER_SETTINGS = {"server_version"}

FORBIDDEN_TYPES = {"json", "jsonb", "uuid", "bytea", "serial", "bigserial",
                   "smallserial", "serial2", "serial4", "serial8"}

CURSOR_FETCH_FORMS = (
    ["NEXT", "FROM"], ["ALL", "FROM"], ["FORWARD", "ALL", "FROM"],
    ["FORWARD", "#", "FROM"])


def check_setting_value(name, value_tokens):
    """Apply Redshift's rules to the value of a setting."""
    text = "".join(t.text for t in value_tokens).strip()
    raw = text[1:-1] if text.startswith("'") and text.endswith("'") else text
    if name == "extra_float_digits":
        try:
            number = int(raw)
        except ValueError:
            raise SimError("22023", 'invalid value for parameter '
                           '"extra_float_digits": "%s"' % raw)
        if number < -15 or number > 2:
            raise SimError("22023", '%d is outside the valid range for '
                           'parameter "extra_float_digits" (-15 .. 2)'
                           % number)
    elif name == "statement_timeout":
        if not re.fullmatch(r"\d+", raw):
            raise SimError("22023", 'invalid value for parameter '
                           '"statement_timeout": "%s"' % raw,
                           hint="Redshift takes an integer number of "
                           "milliseconds.")


def check_startup_parameter(name, value):
    """Apply Redshift's rules to a startup-packet parameter; returns the
    name to pass to the backing server (None to drop it)."""
    lname = name.lower()
    if lname in ("user", "database", "replication"):
        return name
    if lname == "options":
        for m in re.finditer(r"-c\s*([A-Za-z_.]+)=(\S+)", value):
            check_startup_parameter(m.group(1), m.group(2))
        return name
    if lname not in SETTINGS or lname in ("time", "transaction", "session"):
        raise SimError("42704",
                       'unrecognized configuration parameter "%s"' % name)
    check_setting_value(lname, [Token("ident", value, 0)])
    return SETTINGS[lname]


def fold_and_rebuild(tokens, case_sensitive):
    """Rebuild statement text with quoted identifiers folded to lower case
    (as Redshift does unless enable_case_sensitive_identifier is on)."""
    if case_sensitive:
        return "".join(t.text for t in tokens)
    return "".join(t.text.lower() if t.kind == "qident" else t.text
                   for t in tokens)


def mentioned_tables(words):
    """Lower-case names of identifiers in a statement (a superset of the
    tables it touches), used to match fault rules by table name."""
    return {ident_value(t) for t in words if t.kind in ("ident", "qident")}


def check_common(words):
    """Rules that hold for every statement regardless of its kind."""
    for i, tok in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else None
        prev = words[i - 1] if i > 0 else None
        if (tok.kind == "ident" and tok.text.lower() in ("e", "u&")
                and nxt is not None and nxt.kind == "string"
                and nxt.start == tok.start + len(tok.text)):
            raise SimError("42704", 'type "%s" does not exist'
                           % tok.text.lower())
        if tok.kind == "ident" and tok.upper == "ARRAY" and nxt is not None \
                and nxt.text == "[":
            raise syntax_error("[")
        if tok.kind == "punct" and tok.text == "[" and nxt is not None \
                and nxt.text == "]":
            raise syntax_error("[")
        if tok.kind == "ident" and tok.upper in ("CONFLICT",) and prev \
                is not None and prev.upper == "ON":
            raise syntax_error("ON")
        if tok.kind == "ident" and tok.upper == "RETURNING":
            raise syntax_error("RETURNING")
        if tok.kind == "ident" and tok.text.lower() in FORBIDDEN_TYPES:
            is_cast = prev is not None and prev.text == "::"
            is_cast_as = (prev is not None and prev.upper == "AS"
                          and in_cast_call(words, i))
            if is_cast or is_cast_as:
                raise SimError("42704", 'type "%s" does not exist'
                               % tok.text.lower())
        if tok.kind == "ident" and tok.text.lower() in ("nextval", "setval",
                                                        "currval") \
                and nxt is not None and nxt.text == "(":
            raise SimError("42883", "function %s does not exist"
                           % tok.text.lower())
        if tok.kind == "ident" and tok.text.lower() == "current_setting" \
                and nxt is not None and nxt.text == "(" \
                and i + 2 < len(words) and words[i + 2].kind == "string":
            name = string_value(words[i + 2]).lower()
            if name in SUPERUSER_SETTINGS:
                raise SimError("42501", 'must be superuser to examine "%s"'
                               % name)
            if name not in SETTINGS:
                raise SimError("42704", 'unrecognized configuration '
                               'parameter "%s"' % name)


def in_cast_call(words, index):
    """Is the AS at index-1 inside a CAST( ... AS type ) call?"""
    depth = 0
    for j in range(index - 1, -1, -1):
        t = words[j]
        if t.text == ")":
            depth += 1
        elif t.text == "(":
            if depth == 0:
                return j > 0 and words[j - 1].upper in ("CAST", "CONVERT")
            depth -= 1
    return False


def check_ddl(words):
    """CREATE/ALTER rules: no indexes, triggers, sequences, or column types
    Redshift lacks."""
    upper = [t.upper for t in words]
    if upper[0] == "CREATE":
        rest = [u for u in upper[1:4] if u]
        for word in rest:
            if word in ("INDEX", "TRIGGER", "SEQUENCE"):
                raise syntax_error(word)
            if word in ("UNIQUE",):
                continue
            if word in ("TABLE", "VIEW", "SCHEMA", "TEMP", "TEMPORARY",
                        "LOCAL", "OR", "REPLACE", "FUNCTION", "PROCEDURE",
                        "USER", "GROUP", "DATABASE", "MATERIALIZED",
                        "EXTERNAL", "LIBRARY", "ROLE"):
                break
    if upper[0] in ("CREATE", "ALTER"):
        for i in range(1, len(words)):
            tok, prev = words[i], words[i - 1]
            if tok.kind == "ident" and tok.text.lower() in FORBIDDEN_TYPES \
                    and prev.kind in ("ident", "qident") \
                    and prev.upper not in ("TABLE", "COLUMN", "EXISTS",
                                           "AS", "VIEW"):
                raise SimError("42704", 'type "%s" does not exist'
                               % tok.text.lower())


def alters_column_type(upper):
    """ALTER TABLE ... ALTER [COLUMN] c TYPE ...: Redshift cannot run it
    inside a transaction block (the session rule checks that)."""
    if upper[:2] != ["ALTER", "TABLE"]:
        return False
    for i in range(2, len(upper) - 2):
        if upper[i] == "ALTER" and (
                "TYPE" in upper[i + 1:i + 4]):
            return True
    return False


def check_merge(words):
    """MERGE only in Redshift's shape: source a table, exactly one WHEN
    MATCHED and one WHEN NOT MATCHED clause, no extra AND conditions."""
    upper = [t.upper for t in words]
    if len(upper) < 4 or upper[1] != "INTO":
        raise syntax_error(words[1].text if len(words) > 1 else "MERGE")
    try:
        using = upper.index("USING")
    except ValueError:
        raise syntax_error("MERGE")
    if using + 1 < len(words) and words[using + 1].text == "(":
        raise SimError("0A000", "MERGE source must be a table",
                       hint="Load the source rows into a (temporary) "
                       "table first.")
    matched = not_matched = 0
    for i, word in enumerate(upper):
        if word != "WHEN":
            continue
        if upper[i + 1] == "MATCHED":
            matched += 1
            follow = upper[i + 2] if i + 2 < len(upper) else None
        elif upper[i + 1] == "NOT" and upper[i + 2] == "MATCHED":
            not_matched += 1
            follow = upper[i + 3] if i + 3 < len(upper) else None
        else:
            raise syntax_error(words[i + 1].text)
        if follow != "THEN":
            raise syntax_error(follow or "WHEN")
    if matched != 1 or not_matched != 1:
        raise SimError("0A000", "MERGE needs exactly one WHEN MATCHED and "
                       "one WHEN NOT MATCHED clause")


def check_cursor(words):
    """DECLARE/FETCH/CLOSE in the forms Redshift supports; returns
    (operation, cursor name)."""
    ws = [w for w in words if w.text != ";"]
    upper = [t.upper for t in ws]
    if upper[0] == "DECLARE":
        if len(ws) < 5 or upper[2] != "CURSOR" or upper[3] != "FOR":
            raise syntax_error(ws[2].text if len(ws) > 2 else "DECLARE")
        return "declare", ident_value(ws[1])
    if upper[0] == "FETCH":
        shape = ["#" if w.kind == "number" else (w.upper or w.text)
                 for w in ws[1:-1]]
        if shape not in CURSOR_FETCH_FORMS:
            raise syntax_error(ws[1].text if len(ws) > 2 else "FETCH")
        return "fetch", ident_value(ws[-1])
    if upper[0] == "CLOSE":
        return "close", ident_value(ws[1])
    raise syntax_error(ws[0].text)


def check_set(words):
    """SET/RESET/SHOW of settings Redshift knows; returns the tokens with
    the setting name rewritten, and (name, value) for simulator-only
    settings the proxy tracks itself."""
    upper = [t.upper for t in words]
    idx = 1
    if upper[0] == "SET" and len(upper) > 1 and upper[1] in ("SESSION",
                                                              "LOCAL"):
        if len(upper) > 2 and upper[2] in ("CHARACTERISTICS",
                                           "AUTHORIZATION"):
            return None
        idx = 2
    if idx >= len(words):
        raise syntax_error(words[-1].text)
    name_tok = words[idx]
    name = ident_value(name_tok)
    if upper[0] == "RESET" and upper[idx] == "ALL":
        return None
    if upper[0] == "SET" and name in ("transaction", "session"):
        return None
    if name == "time" and upper[0] == "SET":
        return None
    if name not in SETTINGS or name in ("time", "transaction", "session"):
        raise SimError("42704",
                       'unrecognized configuration parameter "%s"' % name)
    tracked = None
    if upper[0] == "SET":
        rest = [t for t in words[idx + 1:] if t.text != ";"]
        if rest and rest[0].upper == "TO" or (rest and rest[0].text == "="):
            rest = rest[1:]
        check_setting_value(name, rest)
        if name == "enable_case_sensitive_identifier":
            value = "".join(t.text for t in rest).strip("'").lower()
            tracked = (name, value in ("on", "true", "1", "yes"))
    elif upper[0] == "RESET" and name == "enable_case_sensitive_identifier":
        tracked = (name, False)
    name_tok.text = SETTINGS[name]
    name_tok.kind = "ident"
    return tracked


def classify(tokens, case_sensitive=False):
    """Classify one statement (a token list from split_statements)."""
    words = significant(tokens)
    text = "".join(t.text for t in tokens)
    first = words[0].upper if words else None
    stmt = Statement("ok", text, words, keyword=first,
                     tables=mentioned_tables(words))
    try:
        if first in ("COPY",):
            stmt.action = "copy"
            return stmt
        if first == "UNLOAD":
            stmt.action = "unload"
            return stmt
        check_common(words)
        upper = [t.upper for t in words]
        if first in ("SAVEPOINT", "RELEASE"):
            raise SimError("0A000", "%s is not supported" % first,
                           hint="Redshift has no subtransactions.")
        if first in ("ROLLBACK", "ABORT") and "TO" in upper:
            raise SimError("0A000", "ROLLBACK TO SAVEPOINT is not supported",
                           hint="Redshift has no subtransactions.")
        if first == "MOVE":
            raise syntax_error(words[0].text)
        if first in ("DECLARE", "FETCH", "CLOSE"):
            stmt.cursor = check_cursor(words)
        if first == "LOCK" and "IN" in upper:
            raise syntax_error(words[upper.index("IN")].text)
        if first == "MERGE":
            check_merge(words)
        if first in ("CREATE", "ALTER"):
            check_ddl(words)
        stmt.alter_column_type = alters_column_type(upper)
        if first == "CREATE" and "VIEW" in upper[:4]:
            rewrite_late_binding_view(tokens, words)
        if first in ("SET", "RESET", "SHOW"):
            stmt.setting = check_set(words)
        stmt.text = fold_and_rebuild(tokens, case_sensitive)
    except SimError as err:
        stmt.action = "reject"
        stmt.error = err
    return stmt


def rewrite_late_binding_view(tokens, words):
    """CREATE VIEW ... WITH NO SCHEMA BINDING: PostgreSQL has no such
    clause.  The view is created normally and marked with the reloption
    security_barrier=false, which the simulator's catalog views read as
    'late-binding'."""
    ws = [w for w in words if w.text != ";"]
    if [t.upper for t in ws[-4:]] != ["WITH", "NO", "SCHEMA", "BINDING"]:
        return
    for tok in ws[-4:]:
        tok.text = ""
    # Insert the marker right before the first top-level AS after VIEW.
    upper = [t.upper for t in ws]
    depth = 0
    for tok in ws[upper.index("VIEW") + 1:]:
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        elif tok.upper == "AS" and depth == 0:
            tok.text = "WITH (security_barrier = false) AS"
            return


def sql_literal(value):
    """A literal for the backing server, which runs with
    standard_conforming_strings off as Redshift does: backslashes are
    doubled too."""
    if value is None:
        return "NULL"
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def raise_sql(err, nparams=0):
    """SQL that makes the backing server raise err, so the transaction
    state follows exactly as for a real error.  nparams keeps the
    parameter count of an extended-protocol statement it replaces."""
    sql = "SELECT redshift_sim.raise_error(%s, %s, %s, %s)" % (
        sql_literal(err.sqlstate), sql_literal(err.message),
        sql_literal(err.detail), sql_literal(err.hint))
    if nparams:
        sql += " FROM (SELECT %s) AS params" % ", ".join(
            "$%d::text" % (i + 1) for i in range(nparams))
    return sql
