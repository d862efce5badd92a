"""COPY ... FROM 's3://...' and UNLOAD for the Redshift simulator.

Both statements read or write the local S3 endpoint through boto3 with the
credentials written in the statement, so the endpoint's SigV4 gate decides,
as AWS would, whether they are good.  COPY parses the staged files the way
Redshift does (CSV, delimited text, JSON 'auto'; GZIP/BZIP2/ZSTD; MANIFEST; NULL
AS, EMPTYASNULL, BLANKSASNULL, TRUNCATECOLUMNS, ACCEPTINVCHARS, MAXERROR,
IGNOREHEADER, the 4 MB row limit), then streams the rows into the client's
own backend session with PostgreSQL's COPY FROM STDIN, inside a savepoint
of the client's transaction (or a transaction of its own), so the load is
atomic and rolls back with the client.  Rejected rows are written to
stl_load_errors on a separate connection, so they survive that rollback.
Common CSV loads take a fast path that checks the files and lets the
backing server's own CSV COPY parse them; whatever it cannot reproduce
exactly is loaded by the slow path (see "COPY fast path" below).
"""

import array
import bz2
import collections
import csv
import ctypes
import gzip
import io
import json
import logging
import re
import tempfile
import threading

import boto3
import zstandard
import botocore.config
import botocore.exceptions

import pgwire
import sqlscan
from sqlscan import SimError, raise_sql, sql_literal

log = logging.getLogger("redshift_sim.s3load")

MAX_ROW_BYTES = 4 * 1024 * 1024
CHUNK = 256 * 1024
csv.field_size_limit(64 * 1024 * 1024)


def load_iam_roles(path):
    """IAM roles the simulated cluster may assume: {arn: credentials,
    "default": arn}."""
    if not path:
        return {}
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------
# Statement parsing


class Options:
    """The parsed tail of a COPY or UNLOAD statement."""

    def __init__(self):
        self.auth = []            # authorization clauses seen
        self.access_key = self.secret_key = self.token = None
        self.iam_role = None
        self.format = "text"
        self.quote = '"'
        self.json_mode = None
        self.delimiter = None
        self.compression = None
        self.manifest = False
        self.verbose = False
        self.region = None
        self.null_as = None
        self.emptyasnull = self.blanksasnull = False
        self.truncate = False
        self.acceptinvchars = None
        self.maxerror = 0
        self.ignoreheader = 0
        self.fillrecord = False
        self.header = self.addquotes = self.escape = False
        self.overwrite = self.cleanpath = False
        self.parallel = True
        self.maxfilesize = 6.2 * 1024 ** 3
        self.extension = None


class Words:
    """A cursor over the significant tokens of a statement."""

    def __init__(self, words, pos=0):
        self.words = [w for w in words if w.text != ";"]
        self.pos = pos

    def peek(self):
        return self.words[self.pos] if self.pos < len(self.words) else None

    def peek_upper(self):
        tok = self.peek()
        return tok.upper if tok is not None else None

    def next(self):
        tok = self.peek()
        if tok is None:
            raise SimError("42601", "syntax error at end of input")
        self.pos += 1
        return tok

    def accept(self, *uppers):
        if self.peek_upper() in uppers:
            return self.next()
        return None

    def string(self):
        self.accept("AS")
        tok = self.next()
        if tok.kind != "string":
            raise sqlscan.syntax_error(tok.text)
        return sqlscan.string_value(tok)

    def number(self):
        self.accept("AS")
        tok = self.next()
        if tok.kind == "string":
            return sqlscan.string_value(tok)
        if tok.kind != "number":
            raise sqlscan.syntax_error(tok.text)
        return tok.text


def parse_options(w, opts, unload):
    """Parse the authorization, format and parameter clauses shared by
    COPY and UNLOAD."""
    while w.peek() is not None:
        tok = w.next()
        word = tok.upper
        if tok.text == ",":
            continue
        if word == "WITH" and w.peek() is not None and w.peek().text == "(":
            raise sqlscan.syntax_error("(")
        if word == "WITH":
            continue
        if word == "IAM_ROLE":
            opts.auth.append("IAM_ROLE")
            if w.accept("DEFAULT"):
                opts.iam_role = "default"
            else:
                opts.iam_role = w.string()
        elif word == "ACCESS_KEY_ID":
            opts.auth.append("ACCESS_KEY_ID")
            opts.access_key = w.string()
        elif word == "SECRET_ACCESS_KEY":
            opts.secret_key = w.string()
        elif word == "SESSION_TOKEN":
            opts.token = w.string()
        elif word in ("CREDENTIALS", "WITH_CREDENTIALS"):
            opts.auth.append("CREDENTIALS")
            parse_credentials_string(w.string(), opts)
        elif word == "FORMAT":
            w.accept("AS")
            continue
        elif word == "CSV":
            opts.format = "csv"
            if w.accept("QUOTE"):
                opts.quote = w.string()
        elif word == "JSON":
            opts.format = "json"
            if not unload:
                opts.json_mode = w.string().lower()
        elif word in ("PARQUET", "ORC", "AVRO", "FIXEDWIDTH", "SHAPEFILE"):
            raise SimError("0A000", "FORMAT %s is not supported by the "
                           "Redshift simulator" % word)
        elif word == "DELIMITER":
            opts.delimiter = w.string()
        elif word in ("GZIP", "BZIP2", "ZSTD", "LZOP"):
            opts.compression = word
        elif word == "MANIFEST":
            opts.manifest = True
            if w.accept("VERBOSE"):
                opts.verbose = True
        elif word == "REGION":
            opts.region = w.string()
        elif word == "NULL":
            opts.null_as = w.string()
        elif word == "EMPTYASNULL":
            opts.emptyasnull = True
        elif word == "BLANKSASNULL":
            opts.blanksasnull = True
        elif word in ("DATEFORMAT", "TIMEFORMAT"):
            w.string()  # the backing server parses ISO and 'auto' forms
        elif word == "TRUNCATECOLUMNS":
            opts.truncate = True
        elif word == "ACCEPTINVCHARS":
            opts.acceptinvchars = "?"
            if w.peek_upper() == "AS" or (w.peek() is not None and
                                          w.peek().kind == "string"):
                opts.acceptinvchars = w.string()
        elif word == "MAXERROR":
            opts.maxerror = int(w.number())
        elif word == "IGNOREHEADER":
            opts.ignoreheader = int(w.number())
        elif word == "FILLRECORD":
            opts.fillrecord = True
        elif word in ("COMPUPDATE", "STATUPDATE"):
            w.accept("ON", "OFF", "TRUE", "FALSE", "PRESET")
        elif word in ("REMOVEQUOTES", "EXPLICIT_IDS", "ACCEPTANYDATE",
                      "ROUNDEC", "TRIMBLANKS", "IGNOREBLANKLINES",
                      "ENCRYPTED"):
            pass
        elif word == "ENCODING":
            w.accept("AS")
            w.next()
        elif word == "HEADER" and unload:
            opts.header = True
        elif word == "ADDQUOTES" and unload:
            opts.addquotes = True
        elif word == "ESCAPE":
            opts.escape = True
        elif word == "ALLOWOVERWRITE" and unload:
            opts.overwrite = True
        elif word == "CLEANPATH" and unload:
            opts.cleanpath = True
        elif word == "PARALLEL" and unload:
            value = w.accept("ON", "OFF", "TRUE", "FALSE")
            opts.parallel = value is None or value.upper in ("ON", "TRUE")
        elif word == "MAXFILESIZE" and unload:
            size = float(w.number())
            unit = w.accept("MB", "GB")
            opts.maxfilesize = size * 1024 ** (3 if unit and unit.upper ==
                                               "GB" else 2)
        elif word == "EXTENSION" and unload:
            opts.extension = w.string()
        else:
            raise sqlscan.syntax_error(tok.text)
    check_authorization(opts)


def parse_credentials_string(text, opts):
    """CREDENTIALS 'aws_access_key_id=...;aws_secret_access_key=...[;token=
    ...]' or 'aws_iam_role=arn...'."""
    for part in text.split(";"):
        key, _, value = part.partition("=")
        key = key.strip().lower()
        if key == "aws_access_key_id":
            opts.access_key = value
        elif key == "aws_secret_access_key":
            opts.secret_key = value
        elif key == "token":
            opts.token = value
        elif key == "aws_iam_role":
            opts.iam_role = value
        elif key:
            raise SimError("XX000", "Invalid credentials. Must be of the "
                           "format: credentials 'aws_iam_role=...' or "
                           "'aws_access_key_id=...;aws_secret_access_key"
                           "=...[;token=...]'")


def check_authorization(opts):
    """Exactly one authorization form, complete."""
    if len(opts.auth) > 1:
        raise SimError("42601", "conflicting or redundant options",
                       detail="Authorization may be given only once: "
                       "IAM_ROLE, ACCESS_KEY_ID/SECRET_ACCESS_KEY or "
                       "CREDENTIALS.")
    if not opts.auth:
        raise SimError("XX000", "Missing credentials. Specify IAM_ROLE, "
                       "ACCESS_KEY_ID and SECRET_ACCESS_KEY, or CREDENTIALS.")
    if opts.iam_role is None and (not opts.access_key or not opts.secret_key):
        raise SimError("XX000", "Invalid credentials: both an access key id "
                       "and a secret access key are required")


def parse_s3_url(url):
    m = re.match(r"s3://([^/]+)/?(.*)$", url)
    if not m:
        raise SimError("XX000", "Invalid S3 URL: %s" % url)
    return m.group(1), m.group(2)


class CopySpec:
    def __init__(self):
        self.table = None          # text as written (folded)
        self.table_label = None    # name in messages
        self.columns = None
        self.source = None
        self.opts = Options()


def parse_copy(words, case_sensitive=False):
    """COPY table [(columns)] FROM 's3://...' options."""
    w = Words(words, 1)
    spec = CopySpec()
    if w.peek() is None or w.peek().text == "(":
        raise sqlscan.syntax_error("(" if w.peek() else "COPY")
    parts = []
    while w.peek() is not None and w.peek().text not in ("(",) and \
            w.peek_upper() not in ("FROM", "TO"):
        tok = w.next()
        if tok.kind == "qident" and not case_sensitive:
            parts.append(tok.text.lower())
        else:
            parts.append(tok.text)
    spec.table = "".join(parts)
    spec.table_label = sqlscan.ident_value(
        [t for t in w.words[1:w.pos] if t.kind in ("ident", "qident")][-1],
        case_sensitive)
    if w.peek() is not None and w.peek().text == "(":
        w.next()
        if w.peek_upper() == "SELECT":
            raise sqlscan.syntax_error("(")
        spec.columns = []
        while True:
            tok = w.next()
            if tok.text == ")":
                break
            if tok.text != ",":
                spec.columns.append(sqlscan.ident_value(tok, case_sensitive))
    direction = w.next()
    if direction.upper == "TO":
        raise sqlscan.syntax_error(direction.text)
    if direction.upper != "FROM":
        raise sqlscan.syntax_error(direction.text)
    source = w.next()
    if source.kind != "string" or not sqlscan.string_value(source) \
            .startswith("s3://"):
        raise SimError("XX000", "LOAD source is not supported. (Hint: only "
                       "S3 or DynamoDB or EMR based load is allowed)")
    spec.source = sqlscan.string_value(source)
    parse_options(w, spec.opts, unload=False)
    if spec.opts.delimiter is None:
        spec.opts.delimiter = "," if spec.opts.format == "csv" else "|"
    if spec.opts.format == "text" and spec.opts.null_as is None:
        spec.opts.null_as = "\\N"
    return spec


def parse_unload(words):
    """UNLOAD ('select ...') TO 's3://...' options."""
    w = Words(words, 1)
    if w.next().text != "(":
        raise sqlscan.syntax_error(w.words[1].text)
    query_tok = w.next()
    if query_tok.kind != "string":
        raise sqlscan.syntax_error(query_tok.text)
    if w.next().text != ")":
        raise sqlscan.syntax_error(w.words[w.pos - 1].text)
    to = w.next()
    if to.upper != "TO":
        raise sqlscan.syntax_error(to.text)
    target = w.next()
    if target.kind != "string":
        raise sqlscan.syntax_error(target.text)
    opts = Options()
    parse_options(w, opts, unload=True)
    if opts.delimiter is None:
        opts.delimiter = "," if opts.format == "csv" else "|"
    return sqlscan.string_value(query_tok), sqlscan.string_value(target), opts


# --------------------------------------------------------------------------
# S3 access


# boto3 clients by endpoint, region and credentials: making one costs tens
# of milliseconds (its endpoint rules are loaded), a COPY per batch would
# pay that each time.  Clients are thread-safe; the cache is small.
_clients = collections.OrderedDict()
_clients_lock = threading.Lock()
CLIENT_CACHE_SIZE = 16


def s3_client(config, opts):
    """A boto3 client with the statement's credentials (or the simulated
    cluster's IAM role)."""
    key, secret, token = opts.access_key, opts.secret_key, opts.token
    if opts.iam_role is not None:
        arn = opts.iam_role
        if arn == "default":
            arn = config.iam_roles.get("default")
        role = config.iam_roles.get(arn) if arn else None
        if not isinstance(role, dict):
            raise SimError("XX000", "User arn:aws:redshift:%s:123456789012:"
                           "dbuser:simulator/rsuser is not authorized to "
                           "assume IAM Role %s" % (config.s3_region,
                                                    opts.iam_role))
        key, secret = role["access_key_id"], role["secret_access_key"]
        token = role.get("session_token")
    region = opts.region or config.s3_region
    ident = (config.s3_endpoint, region, key, secret, token)
    with _clients_lock:
        client = _clients.get(ident)
        if client is not None:
            _clients.move_to_end(ident)
            return client
    client = boto3.client(
        "s3", endpoint_url=config.s3_endpoint, region_name=region,
        aws_access_key_id=key, aws_secret_access_key=secret,
        aws_session_token=token,
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, signature_version="s3v4",
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5, read_timeout=60))
    with _clients_lock:
        _clients[ident] = client
        while len(_clients) > CLIENT_CACHE_SIZE:
            _clients.popitem(last=False)
    return client


def s3_error(exc, context):
    """Redshift's S3ServiceException text for a boto3 failure."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        return SimError(
            "XX000", "S3ServiceException:%s,Status %s,Error %s,Rid %s" % (
                err.get("Message", ""), meta.get("HTTPStatusCode", ""),
                err.get("Code", ""), meta.get("RequestId", "")),
            detail="\n  -----------------------------------------------\n"
            "  error:  S3ServiceException:%s\n  code:      8001\n"
            "  context:   %s\n  -----------------------------------------"
            "------\n" % (err.get("Message", ""), context))
    return SimError("XX000", "S3ServiceException:%s" % exc,
                    detail="context: %s" % context)


Source = collections.namedtuple("Source", "bucket key mandatory")
Source.__doc__ = """One S3 object a COPY reads; mandatory is None for an
object found under a prefix, else the manifest entry's flag."""
Source.url = property(lambda self: "s3://%s/%s" % (self.bucket, self.key))


def list_copy_sources(client, spec):
    """The S3 objects a COPY reads: the manifest's entries, or every
    object under the prefix.  Manifest entries are not looked up here: a
    missing one is found when it is read (see open_source), as one
    request instead of two, and the load fails or skips it then."""
    bucket, key = parse_s3_url(spec.source)
    try:
        if spec.opts.manifest:
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            try:
                entries = json.loads(body)["entries"]
                return [Source(*parse_s3_url(entry["url"]),
                               bool(entry.get("mandatory")))
                        for entry in entries]
            except (ValueError, KeyError, TypeError, AttributeError):
                raise SimError("XX000", "Manifest file is not in correct "
                               "json format", detail="manifest: %s"
                               % spec.source)
        sources = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                sources.append(Source(bucket, obj["Key"], None))
        if not sources:
            raise SimError("XX000", "The specified S3 prefix '%s' does not "
                           "exist" % key, detail="bucket: %s" % bucket)
        return sources
    except botocore.exceptions.BotoCoreError as exc:
        raise s3_error(exc, "listing %s" % spec.source)
    except botocore.exceptions.ClientError as exc:
        raise s3_error(exc, "Listing bucket=%s prefix=%s" % (bucket, key))


def open_source(client, source, compression):
    """A binary stream of one source object, decompressed; None for a
    manifest entry that is missing and not mandatory (COPY skips it)."""
    try:
        body = client.get_object(Bucket=source.bucket, Key=source.key)["Body"]
    except botocore.exceptions.ClientError as exc:
        missing = exc.response.get("Error", {}).get("Code") in (
            "NoSuchKey", "404")
        if source.mandatory is not None and missing:
            if not source.mandatory:
                return None
            raise SimError("XX000", "Manifest file entry %s is mandatory "
                           "but the file does not exist" % source.url,
                           detail=str(exc))
        raise s3_error(exc, "S3 key: %s" % source.url)
    except botocore.exceptions.BotoCoreError as exc:
        raise s3_error(exc, "S3 key: %s" % source.url)
    if compression == "GZIP":
        return gzip.GzipFile(fileobj=body)
    if compression == "BZIP2":
        return bz2.BZ2File(body)
    if compression == "ZSTD":
        return zstandard.ZstdDecompressor().stream_reader(body,
                                                          read_across_frames=True)
    if compression is not None:
        raise SimError("0A000", "%s is not supported by the Redshift "
                       "simulator" % compression)
    return body


# --------------------------------------------------------------------------
# COPY


class Column:
    def __init__(self, name, typname, maxlen, attnum):
        self.name = name
        self.typname = typname
        self.maxlen = maxlen
        self.attnum = attnum

    @property
    def is_char(self):
        return self.typname in ("varchar", "bpchar", "text")


class LoadError:
    """One rejected input row, as stl_load_errors describes it."""

    def __init__(self, url, line, column, raw_line, raw_value, code, reason):
        self.url, self.line, self.column = url, line, column
        self.raw_line, self.raw_value = raw_line, raw_value
        self.code, self.reason = code, reason


class RowError(Exception):
    def __init__(self, code, reason, column=None, value=None):
        super().__init__(reason)
        self.code, self.reason = code, reason
        self.column, self.value = column, value


def target_columns(session, spec):
    """The target table's columns (as the client's session sees them, so
    temporary tables work) in load order."""
    res = session.backend_query(
        "SELECT a.attname, coalesce(bt.typname, t.typname), t.typname, "
        "CASE WHEN a.atttypmod > 4 THEN a.atttypmod - 4 END, a.attnum, "
        "c.oid FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_type t ON t.oid = a.atttypid "
        "LEFT JOIN pg_type bt ON bt.oid = t.typbasetype AND t.typtype = 'd' "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum"
        % sql_text(spec.table))
    if res.error:
        raise SimError(res.error.get("C", "XX000"), res.error.get("M", ""))
    if not res.rows:
        raise SimError("42P01", 'relation "%s" does not exist'
                       % spec.table_label)
    cols = []
    for name, base, typname, maxlen, attnum, _ in res.rows:
        typ = typname.decode() if typname.decode() in (
            "super", "varbyte", "geometry", "geography", "hllsketch") \
            else base.decode()
        cols.append(Column(name.decode(), typ,
                           int(maxlen) if maxlen and typ in (
                               "varchar", "bpchar") else None,
                           int(attnum)))
    spec.table_oid = int(res.rows[0][5])
    if spec.columns is None:
        return cols
    by_name = {c.name: c for c in cols}
    chosen = []
    for name in spec.columns:
        if name not in by_name:
            raise SimError("42703", 'column "%s" of relation "%s" does not '
                           'exist' % (name, spec.table_label))
        chosen.append(by_name[name])
    return chosen


def sql_text(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def convert_value(value, col, opts):
    """Apply Redshift's load rules to one field; returns the text the
    backing COPY gets (None for NULL)."""
    if value is None:
        return None
    if opts.null_as is not None and value == opts.null_as:
        return None
    if value == "":
        return None if (opts.emptyasnull or not col.is_char) else ""
    if col.is_char and opts.blanksasnull and value.strip() == "":
        return None
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        if opts.acceptinvchars is None:
            raise RowError(1220, "Invalid UTF8 character", col, value)
        value = "".join(opts.acceptinvchars if "\udc80" <= ch <= "\udcff"
                        else ch for ch in value)
    if col.maxlen is not None:
        data = value.encode("utf-8")
        if len(data) > col.maxlen:
            if not opts.truncate:
                raise RowError(1204, "String length exceeds DDL length", col,
                               value)
            value = data[:col.maxlen].decode("utf-8", errors="ignore")
    if col.typname == "varbyte":
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})*", value):
            raise RowError(1207, "Invalid hexadecimal value", col, value)
        return "\\x" + value
    if col.typname == "super":
        try:
            json.loads(value)
        except ValueError:
            raise RowError(1224, "Invalid JSON value for SUPER", col, value)
    return value


def json_value(value, col, opts):
    """A value of a JSON 'auto' record for one column."""
    if value is None:
        return None
    if col.typname == "super":
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        raise RowError(1224, "Invalid JSON object for a non-SUPER column",
                       col, json.dumps(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return convert_value(value, col, opts)


def records(stream, spec, cols):
    """Yield (line number, raw line, values) for each input record of one
    source, values already converted; RowError instances are yielded in
    place of values for rows that break a load rule."""
    opts = spec.opts
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape",
                            newline="")
    if opts.format == "json":
        yield from json_records(text, cols, opts)
        return
    if opts.format == "csv":
        reader = csv.reader(text, delimiter=opts.delimiter,
                            quotechar=opts.quote, strict=False)
        rows = ((reader.line_num, fields) for fields in reader)
    else:
        rows = ((n, split_text_line(line.rstrip("\r\n"), opts))
                for n, line in enumerate(text, 1))
    for lineno, fields in rows:
        if lineno <= opts.ignoreheader:
            continue
        raw = opts.delimiter.join(fields)
        if len(raw.encode("utf-8", errors="surrogateescape")) > MAX_ROW_BYTES:
            yield lineno, raw[:1024], RowError(
                1216, "Invalid input line: the row exceeds the 4 MB limit")
            continue
        if len(fields) < len(cols) and not opts.fillrecord:
            yield lineno, raw, RowError(1214, "Delimiter not found")
            continue
        if len(fields) > len(cols):
            yield lineno, raw, RowError(1214, "Extra column(s) found")
            continue
        fields = fields + [None] * (len(cols) - len(fields))
        try:
            yield lineno, raw, [convert_value(v, c, opts)
                                for v, c in zip(fields, cols)]
        except RowError as err:
            yield lineno, raw, err


def split_text_line(line, opts):
    """Split a delimited-text line; with ESCAPE, a backslash protects the
    next character."""
    if not opts.escape:
        return line.split(opts.delimiter)
    fields, cur, i = [], [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if line.startswith(opts.delimiter, i):
            fields.append("".join(cur))
            cur = []
            i += len(opts.delimiter)
            continue
        cur.append(ch)
        i += 1
    fields.append("".join(cur))
    return fields


def json_records(text, cols, opts):
    """JSON 'auto' / 'auto ignorecase': a stream of objects whose keys name
    the columns."""
    if opts.json_mode not in ("auto", "auto ignorecase"):
        raise SimError("0A000", "JSON '%s' is not supported by the Redshift "
                       "simulator (use 'auto' or 'auto ignorecase')"
                       % opts.json_mode)
    ignore_case = opts.json_mode == "auto ignorecase"
    decoder = json.JSONDecoder()
    buf, lineno, pos = "", 1, 0
    while True:
        chunk = text.read(CHUNK)
        buf = buf[pos:] + chunk
        pos = 0
        while True:
            while pos < len(buf) and buf[pos].isspace():
                if buf[pos] == "\n":
                    lineno += 1
                pos += 1
            if pos >= len(buf):
                break
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except ValueError:
                if chunk and len(buf) - pos <= MAX_ROW_BYTES:
                    break  # need more input
                yield lineno, buf[pos:pos + 1024], RowError(
                    1216 if len(buf) - pos > MAX_ROW_BYTES else 1224,
                    "Invalid JSON object or line too long")
                return
            raw = buf[pos:end]
            pos = end
            if len(raw.encode("utf-8", errors="surrogateescape")) > \
                    MAX_ROW_BYTES:
                yield lineno, raw[:1024], RowError(
                    1216, "Invalid input line: the row exceeds the 4 MB "
                    "limit")
                continue
            if not isinstance(obj, dict):
                yield lineno, raw, RowError(1224, "Invalid JSONPath format: "
                                            "top-level value is not an "
                                            "object")
                continue
            if ignore_case:
                obj = {k.lower(): v for k, v in obj.items()}
            try:
                yield lineno, raw, [json_value(obj.get(c.name), c, opts)
                                    for c in cols]
            except RowError as err:
                yield lineno, raw, err
        if not chunk:
            return


def csv_line(values):
    """One row in the backing server's CSV (unquoted empty = NULL)."""
    return ",".join("" if v is None else '"' + v.replace('"', '""') + '"'
                    for v in values) + "\n"


class Staged:
    """Converted rows in a local file, with where each came from."""

    def __init__(self):
        self.file = tempfile.TemporaryFile()
        self.offsets = array.array("q", [0])
        self.lines = array.array("q")
        self.sources = array.array("i")
        self.raw = {}
        self.urls = []
        self.errors = []

    def chunks(self, skip):
        """The staged rows as COPY data, leaving out the rows in skip."""
        cuts = sorted(skip)
        self.file.seek(0)
        pos = 0
        for index in cuts + [None]:
            end = self.offsets[index] if index is not None \
                else self.offsets[-1]
            while pos < end:
                data = self.file.read(min(CHUNK, end - pos))
                pos += len(data)
                yield data
            if index is not None:
                nxt = self.offsets[index + 1]
                self.file.seek(nxt)
                pos = nxt

    @property
    def count(self):
        return len(self.lines)


def stage_rows(client, sources, spec, cols):
    """Read and convert every source row into a local staging file."""
    staged = Staged()
    for source_index, source in enumerate(sources):
        url = source.url
        staged.urls.append(url)
        stream = open_source(client, source, spec.opts.compression)
        if stream is None:
            continue
        try:
            for lineno, raw, values in records(stream, spec, cols):
                if isinstance(values, RowError):
                    staged.errors.append(row_load_error(url, lineno, raw,
                                                        values))
                    continue
                data = csv_line(values).encode("utf-8")
                staged.file.write(data)
                staged.offsets.append(staged.offsets[-1] + len(data))
                staged.lines.append(lineno)
                staged.sources.append(source_index)
                if len(staged.raw) < 10000:
                    staged.raw[staged.count - 1] = raw
        except (OSError, EOFError) as exc:
            raise SimError("XX000", "Failed to read %s: %s" % (url, exc))
        except botocore.exceptions.BotoCoreError as exc:
            raise s3_error(exc, "S3 key: %s" % url)
        finally:
            stream.close()
    return staged


def row_load_error(url, lineno, raw, err):
    return LoadError(url, lineno, err.column, raw,
                     err.value, err.code, err.reason)


SQLSTATE_LOAD_CODES = {
    "22P02": (1207, "Invalid digit or value"),
    "22003": (1204, "Value out of range"),
    "22007": (1205, "Invalid date or time format"),
    "22008": (1206, "Invalid timestamp"),
    "22001": (1204, "String length exceeds DDL length"),
    "22021": (1220, "Invalid UTF8 character"),
    "23502": (1213, "Missing data for not-null field"),
}


def backend_load_error(staged, cols, error):
    """Which staged row the backing COPY failed on, as a LoadError; None
    when the failure is not about a row."""
    where = error.get("W", "")
    m = re.search(r"COPY [^,]+, line (\d+)(?:, column ([^:]+))?(?:: \"(.*)\")?",
                  where, re.S)
    if not m:
        return None, None
    index = int(m.group(1)) - 1
    if index >= staged.count:
        return None, None
    column = next((c for c in cols if c.name == m.group(2)), None)
    code, reason = SQLSTATE_LOAD_CODES.get(error.get("C"), (9999, "Error"))
    if column is not None and column.typname == "super":
        code = 1224
    reason = "%s: %s" % (reason, error.get("M", ""))
    url = staged.urls[staged.sources[index]]
    return index, LoadError(url, staged.lines[index], column,
                            staged.raw.get(index, ""), m.group(3), code,
                            reason)


def record_load_errors(session, spec, errors):
    """Write rejected rows to stl_load_errors on the simulator's own
    connection: they survive the rollback of the load."""
    with session.config.admin_connection() as cur:
        cur.execute("SELECT nextval('redshift_sim.query_id')")
        query_id = cur.fetchone()[0]
        for err in errors[:100]:
            col = err.column
            cur.execute(
                "INSERT INTO redshift_sim.load_errors (userid, tbl, session, "
                "query, filename, line_number, colname, type, col_length, "
                "position, raw_line, raw_field_value, err_code, err_reason) "
                "VALUES (100, %s, %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s, "
                "%s)",
                (getattr(spec, "table_oid", 0), session.backend_pid,
                 query_id, err.url, err.line, col.name if col else "",
                 col.typname if col else "",
                 str(col.maxlen) if col and col.maxlen else "",
                 printable(err.raw_line)[:1024],
                 printable(err.raw_value)[:1024],
                 err.code, err.reason[:100]))
    return query_id


def printable(text):
    """Input text with undecodable bytes shown as U+FFFD, for the error
    tables."""
    return (text or "").encode("utf-8", "surrogateescape").decode(
        "utf-8", "replace")


def load_failed(spec, errors, query_id):
    first = errors[0]
    return SimError(
        "XX000", "Load into table '%s' failed.  Check 'stl_load_errors' "
        "system table for details." % spec.table_label,
        detail="\n  -----------------------------------------------\n"
        "  error:  %s\n  code:      %d\n  context:   %s\n  query:     %d\n"
        "  location:  %s line %d\n  -----------------------------------------"
        "------\n" % (first.reason, first.code,
                      first.column.name if first.column else "", query_id,
                      first.url, first.line))


def run_copy(session, stmt):
    """Execute COPY FROM S3 for the client.  Returns False on failure (the
    error has been relayed and the transaction state set as Redshift
    would)."""
    try:
        spec = parse_copy(stmt.words, session.case_sensitive)
        client = s3_client(session.config, spec.opts)
        cols = target_columns(session, spec)
        sources = list_copy_sources(client, spec)
        errors = []
        loaded = fast_load(session, spec, cols, client, sources)
        if loaded is None:
            staged = stage_rows(client, sources, spec, cols)
            errors = list(staged.errors)
            if len(errors) > spec.opts.maxerror:
                raise load_failed(spec, errors,
                                  record_load_errors(session, spec, errors))
            loaded = load_staged(session, spec, cols, staged, errors)
    except SimError as err:
        session.backend_query(raise_sql(err), relay=True)
        return False
    if errors:
        record_load_errors(session, spec, errors)
    session.out.append(pgwire.notice_message("Load into table '%s' completed, %d record(s) "
                              "loaded successfully." % (spec.table_label,
                                                        loaded)))
    if errors:
        session.out.append(pgwire.notice_message(
            "Load into table '%s' completed, %d record(s) could not be "
            "loaded.  Check 'stl_load_errors' system table for details."
            % (spec.table_label, len(errors))))
    session.out.append(pgwire.command_complete("COPY"))
    return True


def load_staged(session, spec, cols, staged, errors):
    """Stream the staged rows into the target inside a savepoint (or a
    transaction of its own); rows the backend rejects are skipped up to
    MAXERROR, retrying without them."""
    begin, commit, undo = load_commands(session.txn_status == "I")
    # ENCODING: the staged rows are UTF-8 whatever client_encoding the
    # client chose, as S3 files are for Redshift.
    copy_sql = "COPY %s (%s) FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8')" \
        % (spec.table, column_list(cols))
    skip = set()
    while True:
        res = session.backend_query(begin)
        if res.error:
            raise SimError(res.error.get("C"), res.error.get("M"))
        res = session.backend_query(copy_sql, copy_data=staged.chunks(skip))
        if res.error is None:
            session.backend_query(commit)
            return staged.count - len(skip)
        session.backend_query(undo)
        index, err = backend_load_error(staged, cols, res.error)
        if err is None:
            raise SimError(res.error.get("C", "XX000"), res.error.get("M"),
                           detail=res.error.get("D"),
                           hint=res.error.get("H"))
        errors.append(err)
        skip.add(index)
        if len(errors) > spec.opts.maxerror:
            raise load_failed(spec, errors,
                              record_load_errors(session, spec, errors))


def load_commands(own):
    """BEGIN, COMMIT and ROLLBACK of a load: a transaction of its own when
    the client is outside a transaction block (own), else a savepoint."""
    if own:
        return "BEGIN", "COMMIT", "ROLLBACK"
    return ("SAVEPOINT redshift_sim_copy",
            "RELEASE SAVEPOINT redshift_sim_copy",
            "ROLLBACK TO SAVEPOINT redshift_sim_copy")


def column_list(cols):
    return ", ".join('"%s"' % c.name.replace('"', '""') for c in cols)


# --------------------------------------------------------------------------
# COPY fast path
#
# The slow path parses and converts every field in Python (about 55k rows/s).
# Yet for CSV with regular quoting -- every field either unquoted and free of
# quote characters, or quoted from its first to its last character with
# inner quotes doubled -- and LF line ends, the backing server's CSV COPY
# reads exactly the fields Python's csv module reads, and NULL, FORCE_NULL
# and FORCE_NOT_NULL can express the slow path's rules for NULL AS, empty
# fields and EMPTYASNULL.  So the fast path checks each block of a source
# with one compiled pattern that accepts only such records, with the right
# number of fields and no field a load rule would change or reject, and
# streams those bytes unchanged (the backing server checks the UTF-8).  A
# regular record the pattern refuses (an empty field due to become NULL, a
# value over its VARCHAR length) is converted by the slow path's rules and
# rewritten.  Anything else declines: the attempt is rolled back and the
# slow path loads the files, so its errors and stl_load_errors rows are the
# ones Redshift's rules give.  So does any failure of the backing COPY.


# What every byte of a skeleton but the delimiter, the quote, LF and CR
# becomes (plain_csv_char keeps letters out of the first two).
FILLER = b"a"

# csvscan.c's csv_regular_run, when the test bed built it (use_csvscan):
# the patterns' check as a plain scan, several times faster.
csv_regular_run = None


def use_csvscan(path):
    """Check the fast path's records with csvscan.c's scan (a shared
    library) instead of the regular expressions."""
    global csv_regular_run
    run = ctypes.CDLL(path).csv_regular_run
    run.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                    ctypes.c_int, ctypes.c_ubyte, ctypes.c_ubyte,
                    ctypes.c_char_p, ctypes.POINTER(ctypes.c_long),
                    ctypes.c_int, ctypes.c_long]
    run.restype = ctypes.c_size_t
    csv_regular_run = run


class Declined(SimError):
    """The fast path cannot promise the slow path's result for this load."""

    def __init__(self, reason):
        super().__init__("XX000", "COPY fast path declined: %s" % reason)


def plain_csv_char(ch):
    """A delimiter or quote character whose meaning Python's csv module,
    the patterns below and the backing server's CSV agree on."""
    return len(ch) == 1 and (ch == "\t" or (" " < ch < "\x7f" and
                                            not ch.isalnum() and
                                            ch not in "\\."))


class FastPlan:
    """How the fast path loads one COPY: the backing server's CSV options
    and the patterns the records are checked against.  Raises Declined for
    options or columns it cannot reproduce."""

    def __init__(self, opts, cols):
        d, q = opts.delimiter, opts.quote
        if opts.format != "csv":
            raise Declined("not CSV")
        if opts.blanksasnull:
            raise Declined("BLANKSASNULL")
        if not plain_csv_char(d) or not plain_csv_char(q) or d == q:
            raise Declined("delimiter or quote character")
        null = opts.null_as or ""
        if not null.isascii() or any(ch in null for ch in (d, q, "\r",
                                                            "\n")):
            raise Declined("NULL AS string")
        for col in cols:
            if col.typname in ("varbyte", "super"):
                raise Declined("%s column" % col.typname.upper())
        self.opts, self.cols = opts, cols
        self.delimiter, self.quote, self.null = d, q, null
        # Columns where the slow path loads an empty field as NULL.
        empty_null = [opts.emptyasnull or opts.null_as == "" or not c.is_char
                      for c in cols]
        if null:
            # NULL 'x' + FORCE_NULL: x quoted or not is NULL, as in the slow
            # path; an empty field is '', so where it must be NULL the
            # pattern refuses it and the record is rewritten.
            self.force_null = [True] * len(cols)
            self.force_not_null = [False] * len(cols)
            nonempty = empty_null
        else:
            # NULL '' (the default): FORCE_NULL makes "" NULL too,
            # FORCE_NOT_NULL makes an unquoted empty field ''.
            self.force_null = empty_null
            self.force_not_null = [not e for e in empty_null]
            nonempty = [False] * len(cols)
        db, qb = re.escape(d.encode()), re.escape(q.encode())
        one = len(cols) == 1  # an empty line is no record ([] in csv)
        # The patterns below but header match a block's skeleton (see
        # FastFeed.checked): a copy where every byte but these four is
        # FILLER, so the same records match in the same places, and an
        # unquoted value is a run of one byte, which the regex engine
        # matches twice as fast as a class of bytes.
        special = (d.encode(), q.encode(), b"\n", b"\r")
        self.skeleton_table = bytes(
            b if bytes([b]) in special else FILLER[0] for b in range(256))
        bare = re.escape(FILLER)
        fields = [field_pattern(db, qb, ne, c.maxlen, one, bare)
                  for ne, c in zip(nonempty, cols)]
        anyf = field_pattern(db, qb, False, None)
        self.strict = re.compile(b"(?:%s\n)*" % db.join(fields))
        self.loose = re.compile(b"%s\n" % db.join(
            [field_pattern(db, qb, False, None, one, bare)] * len(cols)))
        self.header = re.compile(b"(?:%s(?:%s%s)*\n)*" % (anyf, db, anyf))
        # The bounded repeats of VARCHAR lengths cost two thirds of the
        # check.  A record on one line of at most the shortest bound's bytes
        # cannot hold a value over any bound, so where every line is that
        # short and every record one line, the same fields without bounds
        # say the same (see one_line_records).
        bounds = [c.maxlen for c in cols if c.maxlen is not None]
        self.short_line = min(bounds) if bounds else None
        self.short = re.compile(b"(?:%s\n)*" % db.join(
            [field_pattern(db, qb, ne, None, one, bare) for ne in nonempty]))
        self.quote_byte = q.encode()
        self.not_quote_or_lf = bytes(b for b in range(256)
                                     if b not in (ord(q), ord("\n")))
        # csv_regular_run's arguments for the strict and the loose pattern
        n, lengths = len(cols), [-1 if c.maxlen is None else c.maxlen
                                 for c in cols]
        self.scan_strict = (n, ord(d), ord(q), bytes(nonempty),
                            (ctypes.c_long * n)(*lengths), one)
        self.scan_loose = (n, ord(d), ord(q), bytes(n),
                           (ctypes.c_long * n)(*[-1] * n), one)

    def regular_run(self, buf, pos, loose=False):
        """With csvscan: where the run of records from pos that the strict
        pattern matches ends (loose: the one record the loose pattern
        matches, or pos)."""
        n, d, q, nonempty, lengths, one = (self.scan_loose if loose
                                           else self.scan_strict)
        return csv_regular_run(buf, len(buf), pos, n, d, q, nonempty,
                               lengths, one, 1 if loose else 1 << 62)

    def one_line_records(self, buf):
        """Whether the whole lines of buf are at most short_line bytes and
        each holds an even number of quote characters.  A record that
        spans lines has a line end inside quotes, which leaves its first
        line an odd number of them (each whole quoted field has an even
        number, the open one an odd number), so then every regular record
        in buf is one of its lines, and holds no value over a bound."""
        if self.short_line is None:
            return False
        lines = buf[:buf.rfind(b"\n") + 1]
        if max(map(len, lines.split(b"\n"))) > self.short_line:
            return False
        # each line's quotes, then line ends: no quote left once they pair
        q = self.quote_byte
        marks = lines.translate(None, self.not_quote_or_lf)
        return q not in marks.replace(q + q, b"")

    def copy_sql(self, spec):
        """The backing server's COPY for this plan."""
        cols = self.cols
        options = ["FORMAT csv", "DELIMITER " + sql_literal(self.delimiter),
                   "QUOTE " + sql_literal(self.quote),
                   "NULL " + sql_literal(self.null), "ENCODING 'UTF8'"]
        forced = [c for c, f in zip(cols, self.force_null) if f]
        kept = [c for c, k in zip(cols, self.force_not_null) if k]
        if forced:
            options.append("FORCE_NULL (%s)" % column_list(forced))
        if kept:
            options.append("FORCE_NOT_NULL (%s)" % column_list(kept))
        return "COPY %s (%s) FROM STDIN WITH (%s)" % (
            spec.table, column_list(cols), ", ".join(options))

    def rewrite(self, record):
        """A regular record the strict pattern refused, converted by the
        slow path's rules and written in the backing server's CSV; declines
        when a rule rejects it or that CSV cannot say the same."""
        try:
            text = record[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise Declined("invalid UTF-8")
        fields = next(csv.reader([text], delimiter=self.delimiter,
                                 quotechar=self.quote, strict=False), [])
        if len(fields) != len(self.cols):
            raise Declined("wrong number of fields")
        try:
            values = [convert_value(v, c, self.opts)
                      for v, c in zip(fields, self.cols)]
        except RowError as err:
            raise Declined("load error %d" % err.code)
        q, out = self.quote, []
        for value, forced in zip(values, self.force_null):
            if value is None and forced:
                out.append(self.null)
            elif value is None or (forced and value == self.null):
                raise Declined("a value the backing CSV cannot express")
            else:
                out.append(q + value.replace(q, q + q) + q)
        return (self.delimiter.join(out) + "\n").encode("utf-8")


def field_pattern(d, q, nonempty, maxlen, bare_nonempty=False, bare=None):
    """The pattern of one regular CSV field (d, q: the escaped delimiter
    and quote); nonempty refuses an empty value, maxlen a value of more
    bytes, bare_nonempty an empty unquoted field; bare is the pattern of a
    byte of an unquoted value (in a skeleton, FILLER).  Only single
    characters repeat possessively (a plain counting loop): possessive
    repeats of groups match wrongly in Python 3.11.2 (gh-106052,
    gh-100061).  The alternatives exclude one another instead, so a
    refused record costs backtracking linear in its length.  (A class of
    one character, like [^"], is matched about twice as fast as a larger
    one.)"""
    bare = bare or b"[^%s%s\n\r]" % (d, q)
    inner = b"[^%s]" % q
    bare_min = 1 if nonempty or bare_nonempty else 0
    if maxlen is None:
        if nonempty:  # starts with a plain character or a doubled quote
            quoted = b"%s(?:%s++(?:%s%s%s*+)*|(?:%s%s%s*+)+)%s" % (
                q, inner, q, q, inner, q, q, inner, q)
        else:
            quoted = b"%s%s*+(?:%s%s%s*+)*%s" % (q, inner, q, q, inner, q)
        return b"(?:%s|%s%s)" % (quoted, bare, b"++" if bare_min else b"*+")
    # The bytes of the value counted by a bounded repeat: of plain
    # characters for a quoted value without doubled quotes, of characters
    # and doubled quotes (one byte each) for a value with some.
    simple = b"%s%s{%d,%d}+%s(?=[%s\n])" % (q, inner, 1 if nonempty else 0,
                                             maxlen, q, d)
    doubled = b"%s(?=%s*+%s%s)(?:%s|%s%s){1,%d}%s" % (
        q, inner, q, q, inner, q, q, maxlen, q)
    return b"(?:%s|%s|%s{%d,%d}+)" % (simple, doubled, bare, bare_min,
                                      maxlen)


class FastFeed:
    """The fast path's COPY data: every source's decompressed bytes, in
    blocks of whole records, checked against the plan."""

    def __init__(self, client, sources, plan, opts):
        self.client, self.sources = client, sources
        self.plan, self.opts = plan, opts

    def chunks(self):
        for source in self.sources:
            # S3 errors opening a source are the slow path's own.
            stream = open_source(self.client, source, self.opts.compression)
            if stream is None:
                continue  # a missing entry that is not mandatory
            try:
                yield from self.source_blocks(self.pieces(stream))
            except SimError:
                raise
            except Exception as exc:  # noqa: BLE001 - a surprise declines
                raise Declined("unexpected %r" % exc)
            finally:
                stream.close()

    def pieces(self, stream):
        """The decompressed bytes of one source.  Any read failure declines:
        the slow path reads the source again and reports it its own way."""
        while True:
            try:
                data = stream.read(CHUNK)
            except Exception as exc:  # noqa: BLE001 - any failure declines
                raise Declined("reading failed: %s" % exc)
            if not data:
                return
            yield data

    def source_blocks(self, pieces):
        """One source as checked COPY data.  The records the patterns match
        end where the slow path's records end, so what is left over is the
        start of a record (or irregular), kept until more data comes; each
        source ends with a line end, as the slow path reads each alone."""
        skip, buf = self.opts.ignoreheader, b""
        for piece in pieces:
            buf += piece
            if skip:
                buf, skip = self.skip_header(buf, skip)
                if skip:
                    continue
            data, end = self.checked(buf)
            if data:
                yield data
            buf = buf[end:]
        if skip:
            # Fewer lines than IGNOREHEADER: the slow path skips them all,
            # unless a carriage return makes more lines of them for it.
            if b"\r" in buf:
                raise Declined("a carriage return")
            return
        if buf:
            if not buf.endswith(b"\n"):
                buf += b"\n"
            data, end = self.checked(buf)
            if end < len(buf):
                raise Declined("irregular quoting or a wrong number of "
                               "fields")
            if data:
                yield data

    def skip_header(self, buf, lines):
        """Drop the IGNOREHEADER lines once they are all in buf.  They must
        be whole regular records: then the slow path, which skips records
        ending on those lines, skips exactly them."""
        end = 0
        for _ in range(lines):
            end = buf.find(b"\n", end) + 1
            if not end:
                if len(buf) > MAX_ROW_BYTES:
                    raise Declined("IGNOREHEADER lines over 4 MB")
                return buf, lines
        header = buf[:end]
        if b"\r" in header or self.plan.header.fullmatch(header) is None:
            raise Declined("IGNOREHEADER lines are not whole records")
        return buf[end:], 0

    def checked(self, buf):
        """The COPY data for the whole records at the start of buf, and
        where they end: runs of records the strict pattern accepts pass
        unchanged, other regular records are rewritten; what neither
        pattern matches is left (a record yet to end, or irregular).  The
        patterns match buf's skeleton, whose byte offsets are buf's; with
        csvscan, csv_regular_run says the same of buf itself."""
        if len(buf) > MAX_ROW_BYTES:
            raise Declined("a record over 4 MB")  # may be a 1216 row
        if b"\r" in buf:
            raise Declined("a carriage return")  # csv and COPY split apart
        if buf.startswith(b"\\.") or b"\n\\." in buf:
            raise Declined("a line starting with \\.")  # COPY's end marker
        plan, parts, pos = self.plan, [], 0
        if csv_regular_run is not None:
            while True:
                end = plan.regular_run(buf, pos)
                parts.append(buf[pos:end])
                record_end = plan.regular_run(buf, end, loose=True)
                if record_end == end:
                    return b"".join(parts), end
                parts.append(plan.rewrite(buf[end:record_end]))
                pos = record_end
        short = plan.one_line_records(buf)
        skeleton = buf.translate(plan.skeleton_table)
        while True:
            # short lines: what the strict pattern accepts, the short one
            # does too, and the other way round
            end = (plan.short if short else plan.strict).match(skeleton,
                                                               pos).end()
            parts.append(buf[pos:end])
            match = plan.loose.match(skeleton, end)
            if match is None:
                return b"".join(parts), end
            parts.append(plan.rewrite(buf[end:match.end()]))
            pos = match.end()


def copy_path_rule(session):
    """The path a copy_path fault rule forces: "slow" skips the fast path,
    "fast" makes falling back an error, so tests can tell which one ran."""
    for _, rule in session.config.faults.rules("copy_path"):
        return rule.get("path")
    return None


def fast_load(session, spec, cols, client, sources):
    """Load through the fast path.  Returns the number of rows loaded, or
    None when the slow path must load instead (the attempt has been rolled
    back)."""
    path = copy_path_rule(session)
    if path == "slow" or session.txn_status == "E":
        return None  # in a failed transaction the slow path fails its way
    try:
        plan = FastPlan(spec.opts, cols)
    except Declined as why:
        return fall_back(why, path)
    own = session.txn_status == "I"
    begin, commit, undo = load_commands(own)
    abandon = undo if own else "%s; %s" % (undo, commit)
    res = session.backend_query(begin)
    if res.error:
        raise SimError(res.error.get("C"), res.error.get("M"))
    feed = FastFeed(client, sources, plan, spec.opts)
    try:
        res = session.backend_query(plan.copy_sql(spec),
                                    copy_data=feed.chunks())
    except Declined as why:
        session.backend_query(abandon)
        return fall_back(why, path)
    except SimError:
        session.backend_query(abandon)
        raise
    if res.error is not None:
        session.backend_query(abandon)
        return fall_back(Declined("the backing COPY failed: %s" %
                                  res.error.get("M")), path)
    session.backend_query(commit)
    return int(res.tags[-1].split()[-1])


def fall_back(why, path):
    """Note why the slow path loads instead (an error under
    copy_path=fast)."""
    log.info("%s", why.message)
    if path == "fast":
        raise why
    return None


# --------------------------------------------------------------------------
# UNLOAD

NUMERIC_OIDS = {20, 21, 23, 26, 700, 701, 1700}


class PartWriter:
    """The files one slice writes, rolled over at MAXFILESIZE."""

    def __init__(self, opts, header):
        self.opts = opts
        self.header = header
        self.files = []   # (temp file, record count, bytes)
        self.current = None
        self.size = 0

    def write(self, line):
        if self.current is None or self.size >= self.opts.maxfilesize:
            self.current = tempfile.TemporaryFile()
            self.files.append([self.current, 0])
            self.size = 0
            if self.header:
                self.current.write(self.header)
        self.current.write(line)
        self.size += len(line)
        self.files[-1][1] += 1


def unload_line(values, columns, opts):
    """One output record in the UNLOAD format."""
    texts = []
    for value, (name, oid, _, _, _) in zip(values, columns):
        if value is not None:
            value = value.decode()
            if oid == 17 and value.startswith("\\x"):
                value = value[2:]
            elif oid == 3802:
                value = json.dumps(json.loads(value), separators=(",", ":"),
                                   ensure_ascii=False)
        texts.append((name, oid, value))
    if opts.format == "json":
        obj = {}
        for name, oid, value in texts:
            if value is None:
                continue
            if oid in NUMERIC_OIDS and value not in ("NaN", "Infinity",
                                                     "-Infinity"):
                obj[name] = json.loads(value)
            elif oid == 16:
                obj[name] = value == "t"
            else:
                obj[name] = value
        return json.dumps(obj, separators=(",", ":")) + "\n"
    null = opts.null_as if opts.null_as is not None else ""
    out = []
    for _, _, value in texts:
        if value is None:
            out.append(null)
        elif opts.format == "csv":
            if any(ch in value for ch in (opts.delimiter, '"', "\n", "\r")):
                value = '"' + value.replace('"', '""') + '"'
            out.append(value)
        else:
            if opts.escape:
                for ch in ("\\", "\n", "\r", opts.delimiter) + (
                        ('"',) if opts.addquotes else ()):
                    value = value.replace(ch, "\\" + ch)
            out.append('"%s"' % value if opts.addquotes else value)
    return opts.delimiter.join(out) + "\n"


def run_unload(session, stmt):
    """Execute UNLOAD for the client: run the query on the client's session
    and write its rows to S3 in part files (one or more per slice)."""
    try:
        query, target, opts = parse_unload(stmt.words)
        inner = sqlscan.split_statements(sqlscan.tokenize(query))
        if len(inner) != 1:
            raise SimError("XX000", "UNLOAD takes exactly one SELECT")
        checked = sqlscan.classify(inner[0], session.case_sensitive)
        if checked.action == "reject":
            raise checked.error
        if top_level_limit(checked.words):
            raise SimError("XX000", "Limit clause is not supported: %s"
                           % query.strip(), hint="Put the LIMIT in a "
                           "subquery: SELECT * FROM (SELECT ... LIMIT n).")
        bucket, prefix = parse_s3_url(target)
        client = s3_client(session.config, opts)
        prepare_unload_target(client, bucket, prefix, opts)
        slices = session.config.slices if opts.parallel else 1
        state = {"n": 0, "writers": None, "columns": None}

        def on_row(values, columns):
            if state["writers"] is None:
                state["columns"] = columns
                header = None
                if opts.header:
                    header = (opts.delimiter.join(
                        col[0] for col in state["columns"]) +
                        "\n").encode()
                state["writers"] = [PartWriter(opts, header)
                                    for _ in range(slices)]
            line = unload_line(values, state["columns"], opts)
            state["writers"][state["n"] % slices].write(line.encode())
            state["n"] += 1

        res = session.backend_query(checked.text, on_row=on_row)
        if res.error:
            raise SimError(res.error.get("C", "XX000"), res.error.get("M"),
                           detail=res.error.get("D"), hint=res.error.get("H"))
        upload_parts(client, bucket, prefix, opts,
                                state["writers"] or [], res.columns)
    except SimError as err:
        session.backend_query(raise_sql(err), relay=True)
        return False
    except (botocore.exceptions.ClientError,
            botocore.exceptions.BotoCoreError) as exc:
        session.backend_query(raise_sql(s3_error(
            exc, "UNLOAD to %s" % target)), relay=True)
        return False
    session.out.append(pgwire.notice_message("UNLOAD completed, %d record(s) unloaded "
                              "successfully." % state["n"]))
    session.out.append(pgwire.command_complete("UNLOAD"))
    return True


def top_level_limit(words):
    depth = 0
    for tok in words:
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        elif depth == 0 and tok.upper == "LIMIT":
            return True
    return False


def prepare_unload_target(client, bucket, prefix, opts):
    """Refuse to write over existing files unless ALLOWOVERWRITE; CLEANPATH
    removes them first."""
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    except botocore.exceptions.ClientError as exc:
        raise s3_error(exc, "Listing bucket=%s prefix=%s" % (bucket, prefix))
    keys = [obj["Key"] for obj in listed.get("Contents", [])]
    if keys and opts.cleanpath:
        client.delete_objects(Bucket=bucket, Delete={
            "Objects": [{"Key": k} for k in keys]})
    elif keys and not opts.overwrite:
        raise SimError("XX000", "Specified unload destination on S3 is not "
                       "empty. Consider using a different bucket / prefix, "
                       "manually removing the target files in S3, or using "
                       "the ALLOWOVERWRITE option.")


def upload_parts(client, bucket, prefix, opts, writers, columns):
    """Upload every part file (compressed as asked) and the manifest."""
    suffix = {"GZIP": ".gz", "BZIP2": ".bz2", "ZSTD": ".zst"}.get(
        opts.compression, "")
    if opts.extension is not None:
        suffix = "." + opts.extension.lstrip(".")
    entries = []
    for slice_no, writer in enumerate(writers):
        for part_no, (fileobj, count) in enumerate(writer.files):
            if opts.parallel:
                key = "%s%04d_part_%02d%s" % (prefix, slice_no, part_no,
                                              suffix)
            else:
                key = "%s%03d%s" % (prefix, part_no, suffix)
            fileobj.seek(0)
            body = compress(fileobj, opts.compression)
            body.seek(0, 2)
            length = body.tell()
            body.seek(0)
            client.put_object(Bucket=bucket, Key=key, Body=body)
            entries.append({"url": "s3://%s/%s" % (bucket, key),
                            "meta": {"content_length": length,
                                     "record_count": count}})
    if opts.manifest:
        manifest = {"entries": [e if opts.verbose else {"url": e["url"]}
                                for e in entries]}
        if opts.verbose:
            manifest["schema"] = {"elements": [
                {"name": col[0], "type": {"base": str(col[1])}}
                for col in columns]}
            manifest["meta"] = {
                "content_length": sum(e["meta"]["content_length"]
                                      for e in entries),
                "record_count": sum(e["meta"]["record_count"]
                                    for e in entries)}
        client.put_object(Bucket=bucket, Key=prefix + "manifest",
                          Body=json.dumps(manifest).encode())
    return entries


def compress(fileobj, compression):
    if compression is None:
        return fileobj
    out = tempfile.TemporaryFile()
    if compression == "GZIP":
        with gzip.GzipFile(fileobj=out, mode="wb") as gz:
            while True:
                data = fileobj.read(CHUNK)
                if not data:
                    break
                gz.write(data)
    elif compression == "BZIP2":
        comp = bz2.BZ2Compressor()
        while True:
            data = fileobj.read(CHUNK)
            if not data:
                break
            out.write(comp.compress(data))
        out.write(comp.flush())
    elif compression == "ZSTD":
        with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as zs:
            while True:
                data = fileobj.read(CHUNK)
                if not data:
                    break
                zs.write(data)
    else:
        raise SimError("0A000", "%s is not supported by the Redshift "
                       "simulator" % compression)
    return out
