#!/usr/bin/python3
"""Redshift simulator: a wire-protocol proxy in front of PostgreSQL 15.

Clients (libpq, the extension under test) connect here as they would to a
Redshift cluster.  Every statement goes through the Redshift dialect rules
of sqlscan.py; COPY FROM S3 and UNLOAD are executed by s3load.py against the
local S3 endpoint; startup parameters, ParameterStatus, type OIDs and
VARBYTE output are made to look like Redshift's.  Fault rules (faults.py)
inject the failures tests need.  See test/README.md for the full list.

Usage:
  redshift_sim.py --listen 127.0.0.1:5439 --backend 127.0.0.1:5433
                  --admin-dsn DSN --s3-endpoint URL --s3-region REGION
                  [--iam-roles FILE] [--fault-file FILE] [--slices N]
                  [--ssl-cert FILE --ssl-key FILE]
"""

import argparse
import json
import logging
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading

import psycopg2

import faults
import pgwire
import s3load
import sqlscan
from pgwire import ConnectionClosed
from sqlscan import SimError, raise_sql

log = logging.getLogger("redshift_sim")

# ParameterStatus values Redshift reports; None drops the parameter.
PARAMETER_REWRITES = {
    "server_version": "8.0.2",
    "server_encoding": "UNICODE",
    "client_encoding": "UNICODE",
    "standard_conforming_strings": None,
    "IntervalStyle": None,
    "in_hot_standby": None,
    "default_transaction_read_only": None,
}
EXTRA_PARAMETERS = [
    ("padb_version", "1.0.71629"),
    ("padb_revision", "71629"),
    ("max_varchar_size", "65535"),
    ("max_numeric_precision", "38"),
]
# PostgreSQL reports a domain's base type in RowDescription.  Redshift has
# no bytea or json(b), so those always stand for VARBYTE and SUPER; the
# text-based domains are told apart by the column they come from.
BYTEA_OID, JSON_OID, JSONB_OID, TEXT_OID = 17, 114, 3802, 25
VARBYTE_OID, SUPER_OID = 6551, 4000
BASE_TYPE_OIDS = {BYTEA_OID: VARBYTE_OID, JSONB_OID: SUPER_OID,
                  JSON_OID: SUPER_OID}
TEXT_DOMAIN_OIDS = {"geometry": 3000, "geography": 3001, "hllsketch": 25}


class Config:
    """Settings shared by all sessions."""

    def __init__(self, args):
        host, port = args.backend.rsplit(":", 1)
        self.backend = (host, int(port))
        self.admin_dsn = args.admin_dsn
        self.s3_endpoint = args.s3_endpoint
        self.s3_region = args.s3_region
        self.iam_roles = s3load.load_iam_roles(args.iam_roles)
        self.faults = faults.FaultFile(args.fault_file)
        self.slices = args.slices
        self.ssl_context = None
        if args.ssl_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.ssl_cert, args.ssl_key)
            self.ssl_context = ctx
        self.admin_lock = threading.Lock()
        self.admin = None
        self.column_types = {}   # (table oid, attnum) -> Redshift type OID

    def column_type_oid(self, table_oid, attnum):
        """The Redshift type OID of a text-based table column (GEOMETRY,
        GEOGRAPHY, HLLSKETCH are domains over text), cached."""
        key = (table_oid, attnum)
        if key not in self.column_types:
            with self.admin_connection() as cur:
                cur.execute("SELECT t.typname FROM pg_attribute a JOIN pg_type "
                            "t ON t.oid = a.atttypid WHERE a.attrelid = %s "
                            "AND a.attnum = %s", key)
                row = cur.fetchone()
            self.column_types[key] = TEXT_DOMAIN_OIDS.get(
                row[0] if row else None, TEXT_OID)
        return self.column_types[key]

    def admin_connection(self):
        """A cursor on the simulator's own autocommit connection (load error
        rows must survive the client's rollback)."""
        return AdminCursor(self)


class AdminCursor:
    """Context manager: one cursor on the shared admin connection."""

    def __init__(self, config):
        self.config = config

    def __enter__(self):
        self.config.admin_lock.acquire()
        try:
            if self.config.admin is None or self.config.admin.closed:
                self.config.admin = psycopg2.connect(self.config.admin_dsn)
                self.config.admin.autocommit = True
            self.cur = self.config.admin.cursor()
        except Exception:
            self.config.admin_lock.release()
            raise
        return self.cur

    def __exit__(self, *exc):
        try:
            self.cur.close()
        finally:
            self.config.admin_lock.release()
        return False


class BackendResult:
    """What one internal query on the client's backend session returned."""

    def __init__(self):
        self.columns = []
        self.rows = []
        self.error = None
        self.tags = []


class DropConnection(Exception):
    """A drop_connection fault fired."""


class Session:
    """One client connection and its backend connection."""

    def __init__(self, config, client):
        self.config = config
        self.client = client
        self.backend = None
        self.creader = None
        self.breader = None
        self.pending = 0           # Query/Sync sent minus ReadyForQuery seen
        self.txn_status = "I"
        self.open_cursor = None
        self.txn_tables = set()
        self.case_sensitive = False
        self.varbyte_columns = ()
        self.json_columns = ()
        self.drop_state = {}       # rule key -> [armed, rows, bytes]
        self.out = []
        self.backend_pid = 0

    # ---------------------------------------------------------------- setup

    def run(self):
        try:
            if self.startup():
                self.loop()
        except (ConnectionClosed, DropConnection):
            pass
        except Exception:
            log.exception("session failed")
        finally:
            for sock in (self.client, self.backend):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    def startup(self):
        """SSL negotiation, startup-parameter rules, then relay of the
        authentication exchange (MD5 passes straight through)."""
        code, payload = pgwire.read_startup(self.client)
        while code in (pgwire.SSL_REQUEST, pgwire.GSSENC_REQUEST):
            if code == pgwire.SSL_REQUEST and self.config.ssl_context:
                pgwire.send_all(self.client, b"S")
                self.client = self.config.ssl_context.wrap_socket(
                    self.client, server_side=True)
            else:
                pgwire.send_all(self.client, b"N")
            code, payload = pgwire.read_startup(self.client)
        if code == pgwire.CANCEL_REQUEST:
            self.forward_cancel(payload)
            return False
        if code != pgwire.PROTOCOL_V3:
            self.fatal("08P01", "unsupported frontend protocol")
            return False
        params = pgwire.parse_startup_params(payload)
        backend_params = {}
        try:
            for name, value in params.items():
                mapped = sqlscan.check_startup_parameter(name, value)
                if mapped:
                    backend_params[mapped] = value
        except SimError as err:
            self.fatal(err.sqlstate, err.message)
            return False
        self.backend = pgwire.connect(*self.config.backend)
        pgwire.send_all(self.backend, pgwire.build_startup(backend_params))
        self.creader = pgwire.MessageReader(self.client)
        self.breader = pgwire.MessageReader(self.backend)
        while True:
            mtype, body = self.breader.read()
            if mtype == "R":
                pgwire.send_all(self.client, pgwire.message(mtype, body))
                (auth,) = struct.unpack_from("!I", body)
                if auth in (3, 5, 10, 11):
                    ctype, cbody = self.creader.read()
                    pgwire.send_all(self.backend, pgwire.message(ctype, cbody))
            elif mtype == "Z":
                extra = b"".join(pgwire.message("S", pgwire.cstr(k) +
                                                pgwire.cstr(v))
                                 for k, v in EXTRA_PARAMETERS)
                pgwire.send_all(self.client, extra + pgwire.message("Z", body))
                return True
            else:
                data = self.transform(mtype, body)
                if data:
                    pgwire.send_all(self.client, data)
                if mtype == "K":
                    (self.backend_pid,) = struct.unpack_from("!I", body)
                if mtype == "E":
                    return False

    def forward_cancel(self, payload):
        """A CancelRequest goes to the backing server unchanged (the key
        data the client holds is the backend's own)."""
        sock = pgwire.connect(*self.config.backend)
        try:
            body = struct.pack("!I", pgwire.CANCEL_REQUEST) + payload
            pgwire.send_all(sock, struct.pack("!I", len(body) + 4) + body)
            # The postmaster closes the connection once it has signalled the
            # backend; only then may the client's PQcancel return, or a late
            # cancel could hit the client's next query.
            sock.settimeout(5)
            while sock.recv(64):
                pass
        except (OSError, ConnectionClosed):
            pass
        finally:
            sock.close()

    def fatal(self, sqlstate, text):
        pgwire.send_all(self.client, pgwire.error_message(
            sqlstate, text, severity="FATAL"))

    # ------------------------------------------------------------ main loop

    def loop(self):
        while True:
            readable = []
            if self.creader.buf or (isinstance(self.client, ssl.SSLSocket)
                                    and self.client.pending()):
                readable.append(self.client)
            if not readable:
                readable, _, _ = select.select([self.client, self.backend],
                                               [], [])
            if self.backend in readable:
                self.pump_backend()
            if self.client in readable:
                msg = self.creader.pop_buffered()
                if msg is None:
                    self.creader.fill()
                    msg = self.creader.pop_buffered()
                while msg is not None:
                    self.on_client_message(*msg)
                    msg = self.creader.pop_buffered()
                self.flush()

    def pump_backend(self):
        """Relay whatever the backend has sent."""
        self.breader.fill()
        msg = self.breader.pop_buffered()
        while msg is not None:
            self.relay(*msg)
            msg = self.breader.pop_buffered()
        self.flush()

    def flush(self):
        if self.out:
            data = b"".join(self.out)
            self.out = []
            pgwire.send_all(self.client, data)

    def relay(self, mtype, body):
        """Relay one backend message of a client-issued command."""
        if mtype == "Z":
            self.pending -= 1
            self.note_ready(body)
        data = self.transform(mtype, body)
        if data:
            self.out.append(data)

    def note_ready(self, body):
        self.txn_status = body.decode()
        if self.txn_status == "I":
            self.open_cursor = None
            self.txn_tables = set()

    def drain(self):
        """Relay backend output until every command sent is answered, so the
        proxy may run internal commands on the session."""
        while self.pending > 0:
            self.relay(*self.breader.read())
        self.flush()

    def transform(self, mtype, body):
        """Make one backend message look like Redshift's; returns the bytes
        for the client (possibly empty)."""
        if mtype == "S":
            name, value = body.split(b"\x00")[:2]
            name = name.decode()
            if name in PARAMETER_REWRITES:
                value = PARAMETER_REWRITES[name]
                if value is None:
                    return b""
                value = value.encode()
            return pgwire.message("S", name.encode() + b"\x00" + value +
                                  b"\x00")
        if mtype in ("T", "t"):
            return pgwire.message(mtype, self.rewrite_type_oids(mtype, body))
        if mtype == "D":
            self.count_row(len(body))
            if self.varbyte_columns or self.json_columns:
                return pgwire.build_data_row(self.redshift_values(
                    pgwire.parse_data_row(body)))
        if mtype in ("E", "N"):
            fields = pgwire.error_fields(body)
            where = fields.get("W")
            if where and "redshift_sim." in where:
                fields.pop("W")
                for key in ("D", "H"):
                    if fields.get(key) == "":
                        fields.pop(key)
                return pgwire.build_error(fields, mtype)
        return pgwire.message(mtype, body)

    def rewrite_type_oids(self, mtype, body):
        """Report Redshift's type OIDs (VARBYTE, SUPER, GEOMETRY, ...) and
        remember which result columns need their values reshaped."""
        body = bytearray(body)
        if mtype == "t":
            (count,) = struct.unpack_from("!H", body)
            for i in range(count):
                (oid,) = struct.unpack_from("!I", body, 2 + 4 * i)
                if oid in BASE_TYPE_OIDS:
                    struct.pack_into("!I", body, 2 + 4 * i,
                                     BASE_TYPE_OIDS[oid])
            return bytes(body)
        varbyte, json_cols = [], []
        for i, (_, oid, pos, table_oid, attnum) in enumerate(
                pgwire.parse_row_description(bytes(body))):
            new_oid = BASE_TYPE_OIDS.get(oid)
            if oid == BYTEA_OID:
                varbyte.append(i)
            elif oid in (JSON_OID, JSONB_OID):
                json_cols.append(i)
            elif oid == TEXT_OID and table_oid:
                new_oid = self.config.column_type_oid(table_oid, attnum)
            if new_oid is not None:
                struct.pack_into("!I", body, pos, new_oid)
        self.varbyte_columns = tuple(varbyte)
        self.json_columns = tuple(json_cols)
        return bytes(body)

    def redshift_values(self, values):
        """Values as Redshift prints them: VARBYTE in hex without the \\x
        prefix, SUPER as compact JSON."""
        for i in self.varbyte_columns:
            if values[i] is not None and values[i].startswith(b"\\x"):
                values[i] = values[i][2:]
        for i in self.json_columns:
            if values[i] is not None:
                values[i] = json.dumps(json.loads(values[i]),
                                       separators=(",", ":"),
                                       ensure_ascii=False).encode()
        return values

    def count_row(self, size):
        """drop_connection faults: close both connections once a session has
        received the configured number of rows or bytes."""
        rules = self.config.faults.rules("drop_connection")
        for key, rule in rules:
            if rule.get("during") or rule.get("at"):
                continue  # COPY data and commits are counted elsewhere
            state = self.drop_state.setdefault(
                key, [rule.get("match") is None, 0, 0])
            if not state[0]:
                continue
            state[1] += 1
            state[2] += size + 5
            over_rows = "after_rows" in rule and state[1] > rule["after_rows"]
            over_bytes = ("after_bytes" in rule
                          and state[2] > rule["after_bytes"])
            if (over_rows or over_bytes) and self.config.faults.fires(
                    key, {"nth": 1, "count": rule.get("count", 1)}):
                self.flush()
                self.drop_now()

    def drop_now(self):
        """Close both connections at once (a drop_connection fault)."""
        log.info("drop_connection fault fired")
        try:
            self.backend.shutdown(socket.SHUT_RDWR)
            self.client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise DropConnection()

    def count_copy_bytes(self, size):
        """drop_connection faults with during=copy: close both connections
        once a COPY has fed the backend after_bytes of data (the load is
        then rolled back by the backend, as a dropped Redshift session's
        would be)."""
        for key, rule in self.config.faults.rules("drop_connection"):
            if rule.get("during") != "copy":
                continue
            state = self.drop_state.setdefault(
                key, [rule.get("match") is None, 0, 0])
            if not state[0]:
                continue
            state[2] += size
            if state[2] > rule.get("after_bytes", 0) and \
                    self.config.faults.fires(
                        key, {"nth": 1, "count": rule.get("count", 1)}):
                self.drop_now()

    def arm_drop_rules(self, text):
        for key, rule in self.config.faults.rules("drop_connection"):
            if rule.get("match") and re.search(rule["match"], text, re.I):
                self.drop_state.setdefault(key, [True, 0, 0])[0] = True

    # ------------------------------------------------------- client messages

    def on_client_message(self, mtype, body):
        if mtype == "Q":
            self.on_query(body[:-1].decode())
        elif mtype == "P":
            self.on_parse(body)
        else:
            if mtype == "S":
                self.pending += 1
            pgwire.send_all(self.backend, pgwire.message(mtype, body))
            if mtype == "X":
                raise ConnectionClosed("client terminated")

    def statements(self, sql):
        tokens = sqlscan.tokenize(sql)
        return [sqlscan.classify(s, self.case_sensitive)
                for s in sqlscan.split_statements(tokens)]

    def apply_session_rules(self, stmt, tables, in_block):
        """Rules that depend on session state: one open cursor, tracked
        settings, and the faults that fire on this statement.  tables is
        the set of tables the transaction has touched so far; in_block
        says whether a transaction block is open at this statement."""
        if stmt.action != "ok":
            return
        if stmt.cursor and stmt.cursor[0] == "declare":
            if self.open_cursor is not None:
                stmt.action = "reject"
                stmt.error = SimError(
                    "0A000", "only one cursor may be open per session",
                    detail='Cursor "%s" is still open.' % self.open_cursor,
                    hint="Close it, or end the transaction, before "
                    "declaring another cursor.")
                return
            self.open_cursor = stmt.cursor[1]
        elif stmt.cursor and stmt.cursor[0] == "close":
            if stmt.cursor[1] == self.open_cursor:
                self.open_cursor = None
        if in_block and getattr(stmt, "alter_column_type", False):
            stmt.action = "reject"
            stmt.error = SimError(
                "25001", "ALTER TABLE ALTER COLUMN cannot run inside a "
                "transaction block",
                hint="Run it on its own, outside BEGIN ... END.")
            return
        if stmt.setting and stmt.setting[0] == \
                "enable_case_sensitive_identifier":
            self.case_sensitive = stmt.setting[1]
        self.arm_drop_rules(stmt.text)
        stmt.delay = 0
        for key, rule in self.config.faults.rules("delay"):
            if re.search(rule.get("match", ""), stmt.text, re.I) and \
                    self.config.faults.fires(key, {"nth": 1, "count":
                                                   rule.get("count")}):
                stmt.delay = float(rule.get("seconds", 1))
        stmt.fail_1023 = None
        is_commit = stmt.keyword in ("COMMIT", "END") or (
            not in_block and stmt.keyword not in (
                "BEGIN", "START", "ROLLBACK", "ABORT"))
        stmt.drop_after_commit = False
        if is_commit:
            touched = tables | stmt.tables
            for key, rule in self.config.faults.rules("commit_1023"):
                if rule.get("table", "").lower() in touched and \
                        self.config.faults.fires(key, rule):
                    stmt.fail_1023 = rule["table"].lower()
                    break
            for key, rule in self.config.faults.rules("drop_connection"):
                if rule.get("at") == "commit" and (
                        not rule.get("table")
                        or rule["table"].lower() in touched) and \
                        self.config.faults.fires(key, rule):
                    stmt.drop_after_commit = True
                    break

    def on_query(self, sql):
        """A simple-protocol Query: forward it rewritten, or run it
        statement by statement when the proxy must act in between."""
        stmts = self.statements(sql)
        if not stmts:
            self.pending += 1
            pgwire.send_all(self.backend, pgwire.query_message(sql))
            return
        tables = set(self.txn_tables)
        in_block = self.txn_status != "I"
        for stmt in stmts:
            self.apply_session_rules(stmt, tables, in_block)
            tables |= stmt.tables
            if stmt.keyword in ("BEGIN", "START"):
                in_block = True
            elif stmt.keyword in ("COMMIT", "END", "ROLLBACK", "ABORT"):
                in_block, tables = False, set()
            if stmt.action == "reject":
                break
        stepwise = any(s.action in ("copy", "unload") or
                       getattr(s, "delay", 0) or getattr(s, "fail_1023", None)
                       or getattr(s, "drop_after_commit", False)
                       for s in stmts)
        if not stepwise:
            parts = []
            for stmt in stmts:
                if stmt.action == "reject":
                    parts.append(raise_sql(stmt.error))
                    break
                parts.append(stmt.text)
            self.txn_tables = tables
            self.pending += 1
            pgwire.send_all(self.backend,
                            pgwire.query_message("\n;\n".join(
                                p.rstrip().rstrip(";") for p in parts)))
            return
        self.drain()
        for stmt in stmts:
            try:
                ok = self.run_statement(stmt)
            except (ConnectionClosed, DropConnection):
                raise
            except Exception as exc:
                log.exception("statement failed inside the simulator")
                self.backend_query(raise_sql(SimError(
                    "XX000", "Redshift simulator internal error: %s" % exc)),
                    relay=True)
                ok = False
            if not ok:
                break
        self.flush()
        pgwire.send_all(self.client, pgwire.ready_for_query(self.txn_status))

    def run_statement(self, stmt):
        """Run one statement as an internal command, relaying its results.
        Returns False when it failed (the rest of the Query is skipped)."""
        if stmt.action == "reject":
            self.backend_query(raise_sql(stmt.error), relay=True)
            return False
        if getattr(stmt, "delay", 0):
            res = self.backend_query("SELECT pg_sleep(%f)" % stmt.delay)
            if res.error:
                self.out.append(pgwire.build_error(res.error))
                return False
        if getattr(stmt, "fail_1023", None):
            if self.txn_status != "I":
                self.backend_query("ROLLBACK")
            self.backend_query(raise_sql(SimError(
                "XX000", "1023",
                detail="Serializable isolation violation on table - 100167, "
                "transactions forming the cycle are: 1234, 1235 (pid:4242)"
                " [simulated for table %s]" % stmt.fail_1023)), relay=True)
            return False
        if getattr(stmt, "drop_after_commit", False):
            # the commit happens; its reply never reaches the client
            res = self.backend_query(stmt.text)
            if res.error is None:
                self.drop_now()
            self.out.append(pgwire.build_error(res.error))
            return False
        if stmt.action == "copy":
            return s3load.run_copy(self, stmt)
        if stmt.action == "unload":
            return s3load.run_unload(self, stmt)
        self.txn_tables |= stmt.tables
        res = self.backend_query(stmt.text, relay=True)
        return res.error is None

    def on_parse(self, body):
        """An extended-protocol Parse: the same rules, with a rejected
        statement replaced by one that raises the error at execution."""
        name, query, oids = pgwire.parse_parse(body)
        stmts = self.statements(query)
        if len(stmts) == 1:
            stmt = stmts[0]
            if stmt.action in ("copy", "unload"):
                stmt.action = "reject"
                stmt.error = SimError(
                    "0A000", "%s must be sent with the simple query protocol"
                    % stmt.keyword, hint="This is a limitation of the "
                    "Redshift simulator.")
            self.apply_session_rules(stmt, self.txn_tables,
                                     self.txn_status != "I")
            if self.pending == 0 and stmt.action == "ok":
                if getattr(stmt, "delay", 0):
                    res = self.backend_query("SELECT pg_sleep(%f)" %
                                             stmt.delay)
                    if res.error:
                        stmt.action = "reject"
                        stmt.error = SimError(res.error.get("C", "57014"),
                                              res.error.get("M", "canceled"))
                if getattr(stmt, "fail_1023", None):
                    if self.txn_status != "I":
                        self.backend_query("ROLLBACK")
                    stmt.action = "reject"
                    stmt.error = SimError("XX000", "1023", detail=(
                        "Serializable isolation violation on table - 100167"))
            if stmt.action == "reject":
                nparams = max([len(oids)] + [int(m) for m in re.findall(
                    r"\$(\d+)", query)])
                query = raise_sql(stmt.error, nparams)
            else:
                self.txn_tables |= stmt.tables
                query = stmt.text
        pgwire.send_all(self.backend, pgwire.build_parse(name, query, oids))

    # ------------------------------------------------ internal backend calls

    def backend_query(self, sql, relay=False, on_row=None, copy_data=None):
        """Run one command on the client's backend session (the backend must
        be idle).  relay=True passes results and errors to the client;
        on_row receives each row as a list of bytes/None; copy_data is an
        iterable of bytes fed to a COPY FROM STDIN (a SimError it raises
        aborts the COPY and is raised here once the backend is idle again,
        so the session stays usable)."""
        pgwire.send_all(self.backend, pgwire.query_message(sql))
        res = BackendResult()
        aborted = None
        while True:
            mtype, body = self.breader.read()
            if mtype == "Z":
                self.note_ready(body)
                if aborted is not None:
                    raise aborted
                return res
            if mtype == "E":
                res.error = pgwire.error_fields(body)
            elif mtype == "T":
                res.columns = pgwire.parse_row_description(body)
            elif mtype == "D" and not relay:
                row = pgwire.parse_data_row(body)
                if on_row:
                    on_row(row, res.columns)
                else:
                    res.rows.append(row)
            elif mtype == "C":
                res.tags.append(body[:-1].decode())
            elif mtype == "G":
                aborted = self.feed_copy(copy_data)
            if relay:
                data = self.transform(mtype, body)
                if data:
                    self.out.append(data)

    def feed_copy(self, chunks):
        """Send COPY data to the backend.  A SimError of the source iterator
        aborts the COPY with its message (CopyFail) and is returned: the
        caller raises it after reading the backend's answer."""
        try:
            for chunk in chunks or ():
                self.count_copy_bytes(len(chunk))
                pgwire.send_all(self.backend, pgwire.message("d", chunk))
        except SimError as err:
            pgwire.send_all(self.backend, pgwire.message(
                "f", pgwire.cstr(err.message)))
            return err
        pgwire.send_all(self.backend, pgwire.message("c"))
        return None


def serve(config, listen):
    host, port = listen.rsplit(":", 1)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, int(port)))
    server.listen(128)
    print("redshift simulator listening on %s:%s" % (host, port), flush=True)
    while True:
        client, _ = server.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Session(config, client).run,
                         daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--admin-dsn", required=True)
    parser.add_argument("--s3-endpoint", required=True)
    parser.add_argument("--s3-region", default="us-east-1")
    parser.add_argument("--iam-roles")
    parser.add_argument("--fault-file")
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--ssl-cert")
    parser.add_argument("--ssl-key")
    parser.add_argument("--csvscan", help="csvscan.c built as a shared "
                        "library: the COPY fast path's check in C")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s "
                        "%(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = Config(args)
    if args.csvscan:
        s3load.use_csvscan(args.csvscan)
    serve(config, args.listen)


if __name__ == "__main__":
    main()
