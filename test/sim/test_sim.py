#!/usr/bin/python3
"""Self-tests of the Redshift simulator, driven through libpq (psycopg2 for
the simple protocol, ctypes on libpq for the extended protocol) against a
running test bed (eval "$(test/testbed env)" first).  Each test class is one
item of "What the test simulator must reproduce" in the design notes."""

import bz2
import ctypes
import ctypes.util
import gzip
import json
import os
import random
import threading
import time
import unittest
import uuid

import boto3
import botocore.config
import psycopg2
import psycopg2.errors

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = os.environ
BUCKET = ENV.get("S3_BUCKET")


SECRETS = [ENV.get(k) for k in ("RS_PASSWORD", "AWS_SECRET_ACCESS_KEY",
                                 "TEST_SESSION_SECRET", "TEST_SESSION_TOKEN")]


def redact(text):
    """Test output never shows the test secrets (run-tests greps for them)."""
    for secret in SECRETS:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def connect(**overrides):
    params = dict(host=ENV["RS_HOST"], port=ENV["RS_PORT"], dbname=ENV["RS_DB"],
                  user=ENV["RS_USER"], password=ENV["RS_PASSWORD"],
                  sslmode="disable")
    params.update(overrides)
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    return conn


def backing():
    """A direct connection to the backing PostgreSQL, to check what really
    happened there."""
    conn = psycopg2.connect(host=ENV["RS_BACKING_HOST"],
                            port=ENV["RS_BACKING_PORT"], dbname="dev",
                            user=ENV["RS_BACKING_USER"])
    conn.autocommit = True
    return conn


def s3():
    return boto3.client("s3", endpoint_url=ENV["S3_ENDPOINT"],
                        region_name=ENV["S3_REGION"],
                        config=botocore.config.Config(
                            s3={"addressing_style": "path"}))


def keys_clause():
    return "ACCESS_KEY_ID '%s' SECRET_ACCESS_KEY '%s'" % (
        ENV["AWS_ACCESS_KEY_ID"], ENV["AWS_SECRET_ACCESS_KEY"])


def unique(prefix):
    return "%s_%s" % (prefix, uuid.uuid4().hex[:8])


def set_faults(*rules):
    path = ENV["RS_FAULT_FILE"]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"faults": list(rules)}, f)
    os.replace(tmp, path)


class SimTestCase(unittest.TestCase):
    def setUp(self):
        set_faults()
        self.conn = connect()
        self.cur = self.conn.cursor()

    def tearDown(self):
        set_faults()
        self.conn.close()

    def assertSqlError(self, sql, sqlstate, fragment=None, cur=None):
        cur = cur or self.cur
        with self.assertRaises(psycopg2.Error) as ctx:
            cur.execute(sql)
        self.assertEqual(ctx.exception.pgcode, sqlstate,
                         redact("%s: %s" % (sql, ctx.exception)))
        if fragment:
            self.assertIn(fragment, str(ctx.exception))
        return ctx.exception

    def scalar(self, sql, cur=None):
        cur = cur or self.cur
        cur.execute(sql)
        return cur.fetchone()[0]


class LibPQ:
    """The few libpq calls needed to use the extended query protocol."""

    def __init__(self):
        lib = ctypes.CDLL(ctypes.util.find_library("pq"))
        lib.PQconnectdb.restype = ctypes.c_void_p
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQstatus.argtypes = [ctypes.c_void_p]
        lib.PQexecParams.restype = ctypes.c_void_p
        lib.PQexecParams.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_int]
        lib.PQresultStatus.argtypes = [ctypes.c_void_p]
        lib.PQresultErrorField.restype = ctypes.c_char_p
        lib.PQresultErrorField.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.PQgetvalue.restype = ctypes.c_char_p
        lib.PQgetvalue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.PQftype.restype = ctypes.c_uint
        lib.PQftype.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.PQclear.argtypes = [ctypes.c_void_p]
        lib.PQfinish.argtypes = [ctypes.c_void_p]
        lib.PQparameterStatus.restype = ctypes.c_char_p
        lib.PQparameterStatus.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.PQserverVersion.argtypes = [ctypes.c_void_p]
        self.lib = lib
        dsn = "host=%s port=%s dbname=%s user=%s password=%s sslmode=disable" % (
            ENV["RS_HOST"], ENV["RS_PORT"], ENV["RS_DB"], ENV["RS_USER"],
            ENV["RS_PASSWORD"])
        self.conn = lib.PQconnectdb(dsn.encode())
        if lib.PQstatus(self.conn) != 0:
            raise RuntimeError("libpq connection failed")

    def exec_params(self, sql, params=()):
        """Run sql with PQexecParams; returns (sqlstate or None, first value,
        first column type)."""
        arr = (ctypes.c_char_p * max(1, len(params)))(
            *[p.encode() for p in params])
        res = self.lib.PQexecParams(self.conn, sql.encode(), len(params),
                                    None, arr, None, None, 0)
        try:
            status = self.lib.PQresultStatus(res)
            if status == 7:  # PGRES_FATAL_ERROR
                return (self.lib.PQresultErrorField(res, ord("C")).decode(),
                        None, None)
            if status == 2:  # PGRES_TUPLES_OK
                value = self.lib.PQgetvalue(res, 0, 0)
                return None, value.decode(), self.lib.PQftype(res, 0)
            return None, None, None
        finally:
            self.lib.PQclear(res)

    def close(self):
        self.lib.PQfinish(self.conn)


# ------------------------------------------------------------------ item 1
class T01Connection(SimTestCase):
    def test_md5_authentication_passes_through(self):
        with backing() as b, b.cursor() as cur:
            cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                        (ENV["RS_USER"],))
            self.assertTrue(cur.fetchone()[0].startswith("md5"))
        with self.assertRaises(psycopg2.OperationalError) as ctx:
            connect(password="wrong-password")
        self.assertIn("password authentication failed", str(ctx.exception))

    def test_ssl_request_is_answered(self):
        conn = connect(sslmode="require")
        try:
            self.assertTrue(conn.info.ssl_in_use)
            self.assertEqual(self.scalar("SELECT 1", conn.cursor()), 1)
        finally:
            conn.close()
        conn = connect(sslmode="prefer")
        conn.close()

    def test_own_port(self):
        self.assertNotEqual(ENV["RS_PORT"], ENV["RS_BACKING_PORT"])


# ------------------------------------------------------------------ item 2
class T02ParameterStatus(SimTestCase):
    def test_redshift_parameters(self):
        info = self.conn.info
        self.assertEqual(info.server_version, 80002)
        self.assertEqual(info.parameter_status("server_version"), "8.0.2")
        self.assertEqual(info.parameter_status("server_encoding"), "UNICODE")
        self.assertIsNotNone(info.parameter_status("padb_version"))
        self.assertEqual(info.parameter_status("max_varchar_size"), "65535")
        self.assertEqual(info.parameter_status("max_numeric_precision"), "38")
        self.assertIsNone(info.parameter_status("standard_conforming_strings"))
        self.assertIsNone(info.parameter_status("IntervalStyle"))


# ------------------------------------------------------------------ item 3
class T03Version(SimTestCase):
    def test_version_string(self):
        version = self.scalar("SELECT version()")
        self.assertRegex(version, r"Redshift \d+\.\d+\.\d+")
        self.assertTrue(version.startswith("PostgreSQL 8.0.2"))

    def test_probes_fail_like_redshift(self):
        self.assertSqlError("SELECT current_setting('server_version')",
                            "42501", "superuser")
        self.assertSqlError("SHOW server_version_num", "42704")
        self.assertSqlError("SHOW standard_conforming_strings", "42704")
        self.assertSqlError("SELECT current_setting('server_version_num')",
                            "42704")


# ------------------------------------------------------------------ item 4
class T04Settings(SimTestCase):
    def test_extra_float_digits_range(self):
        self.assertSqlError("SET extra_float_digits TO 3", "22023", "-15 .. 2")
        self.cur.execute("SET extra_float_digits TO 2")
        self.cur.execute("SET extra_float_digits = -15")

    def test_statement_timeout_units(self):
        self.assertSqlError("SET statement_timeout TO '30s'", "22023")
        self.cur.execute("SET statement_timeout TO 30000")
        self.assertEqual(self.scalar("SHOW statement_timeout"), "30s")

    def test_accepted_and_unknown_settings(self):
        for sql in ("SET search_path TO public", "SET timezone TO 'UTC'",
                    "SET datestyle TO 'ISO, MDY'", "SET query_group TO 'etl'"):
            self.cur.execute(sql)
        self.assertEqual(self.scalar("SHOW query_group"), "etl")
        self.assertSqlError("SET intervalstyle TO 'iso_8601'", "42704")

    def test_startup_options(self):
        with self.assertRaises(psycopg2.OperationalError) as ctx:
            connect(options="-c extra_float_digits=3")
        self.assertIn("extra_float_digits", str(ctx.exception))
        with self.assertRaises(psycopg2.OperationalError) as ctx:
            connect(options="-c intervalstyle=iso_8601")
        self.assertIn("intervalstyle", str(ctx.exception))
        conn = connect(options="-c extra_float_digits=2")
        conn.close()


# ------------------------------------------------------------------ item 5
class T05Literals(SimTestCase):
    def test_e_strings_rejected(self):
        self.assertSqlError("SELECT E'x'", "42704", 'type "e" does not exist')

    def test_backslash_escapes_in_plain_literals(self):
        self.assertEqual(self.scalar(r"SELECT 'a\\b'"), "a\\b")
        self.assertEqual(self.scalar(r"SELECT 'it\'s'"), "it's")


# ------------------------------------------------------------------ item 6
class T06Transactions(SimTestCase):
    def test_no_savepoints(self):
        self.conn.autocommit = False
        self.assertSqlError("SAVEPOINT a", "0A000")
        # The error aborts the transaction, as a real error does.
        self.assertSqlError("SELECT 1", "25P02")
        self.conn.rollback()
        self.cur.execute("BEGIN")
        self.assertSqlError("RELEASE SAVEPOINT a", "0A000")
        self.conn.rollback()
        self.assertSqlError("ROLLBACK TO SAVEPOINT a", "0A000")
        self.conn.rollback()

    def test_alter_column_type_outside_blocks_only(self):
        table = unique("act")
        self.cur.execute("CREATE TABLE %s (v varchar(5))" % table)
        self.cur.execute("BEGIN")
        self.assertSqlError("ALTER TABLE %s ALTER COLUMN v TYPE varchar(50)"
                            % table, "25001", "transaction block")
        self.cur.execute("ROLLBACK")
        self.cur.execute("ALTER TABLE %s ALTER COLUMN v TYPE varchar(50)"
                         % table)
        self.cur.execute("INSERT INTO %s VALUES (repeat('x', 40))" % table)


# ------------------------------------------------------------------ item 7
class T07Faults(SimTestCase):
    def test_1023_on_nth_commit(self):
        table = unique("f1023")
        self.cur.execute("CREATE TABLE %s (a int)" % table)
        set_faults({"kind": "commit_1023", "table": table, "nth": 2})
        self.cur.execute("BEGIN; INSERT INTO %s VALUES (1); COMMIT" % table)
        self.cur.execute("BEGIN")
        self.cur.execute("INSERT INTO %s VALUES (2)" % table)
        err = self.assertSqlError("COMMIT", "XX000")
        self.assertEqual(err.diag.message_primary, "1023")
        self.assertIn("Serializable isolation violation", err.diag.message_detail)
        self.assertEqual(self.conn.info.transaction_status, 0)  # idle
        self.cur.execute("BEGIN; INSERT INTO %s VALUES (3); COMMIT" % table)
        self.cur.execute("SELECT array_agg(a ORDER BY a)::text FROM %s" % table)
        self.assertEqual(self.cur.fetchone()[0], "{1,3}")

    def test_1023_through_extended_protocol(self):
        table = unique("f1023x")
        self.cur.execute("CREATE TABLE %s (a int)" % table)
        set_faults({"kind": "commit_1023", "table": table})
        pq = LibPQ()
        try:
            self.assertIsNone(pq.exec_params("BEGIN")[0])
            self.assertIsNone(pq.exec_params(
                "INSERT INTO %s VALUES ($1)" % table, ["7"])[0])
            self.assertEqual(pq.exec_params("COMMIT")[0], "XX000")
        finally:
            pq.close()
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 0)

    def test_drop_after_rows(self):
        set_faults({"kind": "drop_connection", "after_rows": 100})
        with self.assertRaises(psycopg2.OperationalError):
            self.cur.execute("SELECT g FROM generate_series(1, 1000) g")
        self.assertTrue(self.conn.closed)
        conn = connect()  # the rule fired once (count=1)
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM generate_series(1, 1000)", conn.cursor()),
            1000)
        conn.close()

    def test_drop_after_bytes_matching_statement(self):
        set_faults({"kind": "drop_connection", "after_bytes": 2000,
                    "match": "repeat"})
        self.assertEqual(self.scalar("SELECT count(*) FROM generate_series(1, "
                                     "500)"), 500)
        with self.assertRaises(psycopg2.OperationalError):
            self.cur.execute("SELECT repeat('x', 100) FROM "
                             "generate_series(1, 100)")

    def test_delay_and_cancel(self):
        set_faults({"kind": "delay", "match": "delay_me", "seconds": 0.6})
        started = time.monotonic()
        self.assertEqual(self.scalar("SELECT 'delay_me'"), "delay_me")
        self.assertGreaterEqual(time.monotonic() - started, 0.6)
        set_faults({"kind": "delay", "match": "stall_me", "seconds": 30})
        timer = threading.Timer(0.5, self.conn.cancel)
        timer.start()
        started = time.monotonic()
        self.assertSqlError("SELECT 'stall_me'", "57014")
        self.assertLess(time.monotonic() - started, 5)
        timer.join()
        self.assertEqual(self.scalar("SELECT 1"), 1)

    def test_s3_errors_reach_copy(self):
        table = unique("fs3")
        self.cur.execute("CREATE TABLE %s (a int)" % table)
        key = "faults/%s.csv" % table
        s3().put_object(Bucket=BUCKET, Key=key, Body=b"1\n2\n")
        # One 503: the simulated cluster retries, as Redshift does.
        set_faults({"kind": "s3_error", "nth": 1, "status": 503})
        self.cur.execute("COPY %s FROM 's3://%s/%s' %s CSV" % (
            table, BUCKET, key, keys_clause()))
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 2)
        # Persistent 503s: the COPY fails with S3's error code.
        set_faults({"kind": "s3_error", "nth": 1, "status": 503, "count": 50})
        err = self.assertSqlError("COPY %s FROM 's3://%s/%s' %s CSV" % (
            table, BUCKET, key, keys_clause()), "XX000")
        self.assertIn("SlowDown", str(err))

    def test_drop_during_copy(self):
        # the connection drops while COPY data flows: nothing is loaded
        table = unique("fdc")
        self.cur.execute("CREATE TABLE %s (a int, b varchar(20))" % table)
        key = "faults/%s.csv" % table
        s3().put_object(Bucket=BUCKET, Key=key, Body=b"".join(
            b"%d,row %d\n" % (i, i) for i in range(20000)))
        set_faults({"kind": "drop_connection", "during": "copy",
                    "after_bytes": 50000})
        with self.assertRaises(psycopg2.OperationalError):
            self.cur.execute("COPY %s FROM 's3://%s/%s' %s CSV" % (
                table, BUCKET, key, keys_clause()))
        conn = connect()  # count=1: the next COPY goes through
        cur = conn.cursor()
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table, cur),
                         0)
        cur.execute("COPY %s FROM 's3://%s/%s' %s CSV" % (
            table, BUCKET, key, keys_clause()))
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table, cur),
                         20000)
        conn.close()

    def test_drop_at_commit(self):
        # the commit happens, but its reply is lost: an ambiguous commit
        table = unique("fac")
        self.cur.execute("CREATE TABLE %s (a int)" % table)
        set_faults({"kind": "drop_connection", "at": "commit",
                    "table": table})
        self.cur.execute("BEGIN")
        self.cur.execute("INSERT INTO %s VALUES (1)" % table)
        with self.assertRaises(psycopg2.OperationalError):
            self.cur.execute("COMMIT")
        conn = connect()
        cur = conn.cursor()
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table, cur),
                         1)
        # count=1: later commits answer normally
        cur.execute("INSERT INTO %s VALUES (2)" % table)
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table, cur),
                         2)
        conn.close()


# ------------------------------------------------------------------ item 8
class T08Cursors(SimTestCase):
    def test_cursor_rules(self):
        self.assertSqlError("DECLARE c CURSOR FOR SELECT 1", "25P01")
        self.cur.execute("BEGIN")
        self.cur.execute("DECLARE c1 CURSOR FOR SELECT g FROM "
                         "generate_series(1, 20) g")
        self.assertSqlError("DECLARE c2 CURSOR FOR SELECT 1", "0A000",
                            "one cursor")
        self.cur.execute("ROLLBACK")
        self.cur.execute("BEGIN")
        self.cur.execute("DECLARE c1 CURSOR FOR SELECT g FROM "
                         "generate_series(1, 20) g")
        self.cur.execute("FETCH NEXT FROM c1")
        self.assertEqual(self.cur.fetchall(), [(1,)])
        self.cur.execute("FETCH FORWARD 5 FROM c1")
        self.assertEqual(len(self.cur.fetchall()), 5)
        self.cur.execute("CLOSE c1")
        self.cur.execute("DECLARE c2 CURSOR FOR SELECT g FROM "
                         "generate_series(1, 3) g")
        self.cur.execute("FETCH ALL FROM c2")
        self.assertEqual(len(self.cur.fetchall()), 3)
        self.cur.execute("COMMIT")
        self.cur.execute("BEGIN")
        self.cur.execute("DECLARE c3 CURSOR FOR SELECT 1")  # c2 closed by COMMIT
        self.cur.execute("FETCH FORWARD ALL FROM c3")
        self.cur.execute("COMMIT")

    def test_unsupported_forms(self):
        self.cur.execute("BEGIN")
        self.cur.execute("DECLARE c1 CURSOR FOR SELECT 1")
        for sql in ("FETCH BACKWARD 1 FROM c1", "FETCH ABSOLUTE 1 FROM c1",
                    "FETCH PRIOR FROM c1", "FETCH 5 FROM c1",
                    "MOVE NEXT IN c1"):
            self.assertSqlError(sql, "42601")
            self.cur.execute("ROLLBACK")
            self.cur.execute("BEGIN")
            self.cur.execute("DECLARE c1 CURSOR FOR SELECT 1")
        for sql in ("DECLARE c9 SCROLL CURSOR FOR SELECT 1",
                    "DECLARE c9 BINARY CURSOR FOR SELECT 1",
                    "DECLARE c9 CURSOR WITH HOLD FOR SELECT 1"):
            self.cur.execute("ROLLBACK")
            self.cur.execute("BEGIN")
            self.assertSqlError(sql, "42601")
        self.cur.execute("ROLLBACK")


# ------------------------------------------------------------------ item 9
class T09CopyFromS3(SimTestCase):
    def put(self, key, body):
        s3().put_object(Bucket=BUCKET, Key=key, Body=body)
        return "s3://%s/%s" % (BUCKET, key)

    def test_csv_gzip_manifest(self):
        table = unique("cp")
        self.cur.execute("CREATE TABLE %s (id int, name varchar(10), "
                         "doc super, bin varbyte, at timestamp)" % table)
        urls = [self.put("%s/part%d.csv.gz" % (table, i), gzip.compress((
            '%d,"a,b",{"k":%d},0a0b,2024-02-26 10:00:00\n'
            '%d,,"[1,2]",ff,2024-02-27T11:30:00\n' % (2 * i, i, 2 * i + 1))
            .encode())) for i in range(3)]
        manifest = self.put("%s/manifest" % table, json.dumps(
            {"entries": [{"url": u, "mandatory": True} for u in urls]})
            .encode())
        self.cur.execute(
            "COPY %s FROM '%s' %s CSV GZIP MANIFEST REGION '%s' "
            "DATEFORMAT 'auto' TIMEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF"
            % (table, manifest, keys_clause(), ENV["S3_REGION"]))
        self.assertTrue(any("6 record(s) loaded" in n
                            for n in self.conn.notices))
        self.cur.execute("SELECT id, name, doc, bin FROM %s ORDER BY id"
                         % table)
        rows = self.cur.fetchall()
        self.assertEqual(len(rows), 6)
        self.assertEqual(rows[0], (0, "a,b", '{"k":0}', "0a0b"))
        self.assertEqual(rows[1], (1, "", "[1,2]", "ff"))

    def test_json_auto_and_null_options(self):
        table = unique("cpj")
        self.cur.execute("CREATE TABLE %s (id int, name varchar(5), tags super)"
                         % table)
        url = self.put("%s/data.json" % table,
                       b'{"id": 1, "name": "x", "tags": ["a"]}\n'
                       b'{"ID": 2, "Name": "y"}\n{"id": 3, "name": null}')
        self.cur.execute("COPY %s FROM '%s' %s JSON 'auto ignorecase'"
                         % (table, url, keys_clause()))
        self.cur.execute("SELECT id, name, tags FROM %s ORDER BY id" % table)
        self.assertEqual(self.cur.fetchall(), [(1, "x", '["a"]'),
                                               (2, "y", None),
                                               (3, None, None)])
        table2 = unique("cpn")
        self.cur.execute("CREATE TABLE %s (a varchar(4), b varchar(4))"
                         % table2)
        url = self.put("%s/d.txt" % table2, b"NUL|\n|toolongvalue\n")
        self.cur.execute("COPY %s FROM '%s' %s DELIMITER '|' NULL AS 'NUL' "
                         "EMPTYASNULL TRUNCATECOLUMNS" % (table2, url,
                                                          keys_clause()))
        self.cur.execute("SELECT a, b FROM %s ORDER BY b NULLS FIRST" % table2)
        self.assertEqual(self.cur.fetchall(), [(None, None), (None, "tool")])

    def test_load_errors_survive_rollback(self):
        table = unique("cpe")
        self.cur.execute("CREATE TABLE %s (id int, name varchar(3))" % table)
        url = self.put("%s/bad.csv" % table, b"1,ab\nzz,cd\n")
        self.cur.execute("BEGIN")
        err = self.assertSqlError("COPY %s FROM '%s' %s CSV" % (
            table, url, keys_clause()), "XX000")
        self.assertIn("Load into table '%s' failed" % table, str(err))
        self.cur.execute("ROLLBACK")
        self.cur.execute("SELECT line_number, trim(colname), err_code, "
                         "trim(raw_field_value) FROM stl_load_errors "
                         "WHERE trim(filename) = %s", (url,))
        self.assertEqual(self.cur.fetchall(), [(2, "id", 1207, "zz")])
        self.cur.execute("SELECT count(*) FROM sys_load_error_detail "
                         "WHERE trim(file_name) = %s", (url,))
        self.assertEqual(self.cur.fetchone()[0], 1)
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 0)
        # MAXERROR lets the good rows in and reports the bad ones.
        self.cur.execute("COPY %s FROM '%s' %s CSV MAXERROR 1" % (
            table, url, keys_clause()))
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 1)

    def test_row_limits_and_encoding(self):
        table = unique("cpl")
        self.cur.execute("CREATE TABLE %s (a varchar(65535))" % table)
        big = self.put("%s/big.csv" % table, b"x" * (4 * 1024 * 1024 + 10)
                       + b"\n")
        self.assertSqlError("COPY %s FROM '%s' %s CSV" % (
            table, big, keys_clause()), "XX000")
        self.assertEqual(self.scalar(
            "SELECT err_code FROM stl_load_errors WHERE trim(filename) = '%s'"
            % big), 1216)
        bad = self.put("%s/utf.csv" % table, b"ok\nbad\xff\xfe\n")
        self.assertSqlError("COPY %s FROM '%s' %s CSV" % (
            table, bad, keys_clause()), "XX000")
        self.assertEqual(self.scalar(
            "SELECT err_code FROM stl_load_errors WHERE trim(filename) = '%s'"
            % bad), 1220)
        self.cur.execute("COPY %s FROM '%s' %s CSV ACCEPTINVCHARS AS '^'" % (
            table, bad, keys_clause()))
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM %s WHERE a = 'bad^^'" % table), 1)

    def test_credentials(self):
        table = unique("cpc")
        self.cur.execute("CREATE TABLE %s (a int)" % table)
        url = self.put("%s/x.csv" % table, b"1\n")
        err = self.assertSqlError("COPY %s FROM '%s' ACCESS_KEY_ID '%s' "
                                  "SECRET_ACCESS_KEY 'wrong' CSV" % (
                                      table, url, ENV["AWS_ACCESS_KEY_ID"]),
                                  "XX000")
        self.assertIn("SignatureDoesNotMatch", str(err))
        err = self.assertSqlError("COPY %s FROM '%s' ACCESS_KEY_ID 'AKIANOPE' "
                                  "SECRET_ACCESS_KEY 'x' CSV" % (table, url),
                                  "XX000")
        self.assertIn("InvalidAccessKeyId", str(err))
        self.assertSqlError("COPY %s FROM '%s' %s IAM_ROLE default CSV" % (
            table, url, keys_clause()), "42601")
        self.cur.execute("COPY %s FROM '%s' CREDENTIALS "
                         "'aws_access_key_id=%s;aws_secret_access_key=%s;"
                         "token=%s' CSV" % (
                             table, url, ENV["TEST_SESSION_KEY_ID"],
                             ENV["TEST_SESSION_SECRET"],
                             ENV["TEST_SESSION_TOKEN"]))
        self.cur.execute("COPY %s FROM '%s' IAM_ROLE '%s' CSV" % (
            table, url, ENV["RS_IAM_ROLE"]))
        self.cur.execute("COPY %s FROM '%s' IAM_ROLE default CSV" % (
            table, url))
        self.assertSqlError("COPY %s FROM '%s' IAM_ROLE "
                            "'arn:aws:iam::1:role/other' CSV" % (table, url),
                            "XX000", "not authorized")
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 3)

    def test_copy_is_part_of_the_transaction(self):
        table = unique("cpt")
        self.cur.execute("CREATE TABLE %s (a int)" % table)
        url = self.put("%s/x.csv" % table, b"1\n2\n")
        self.cur.execute("BEGIN")
        self.cur.execute("COPY %s FROM '%s' %s CSV" % (table, url,
                                                       keys_clause()))
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 2)
        self.cur.execute("ROLLBACK")
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 0)
        # A temporary staging table, as the materialization path uses.
        self.cur.execute("BEGIN")
        self.cur.execute("CREATE TEMP TABLE stage (LIKE %s)" % table)
        self.cur.execute("COPY stage FROM '%s' %s CSV" % (url, keys_clause()))
        self.cur.execute("INSERT INTO %s SELECT * FROM stage" % table)
        self.cur.execute("COMMIT")
        self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table), 2)


class T09bCopyFastPath(SimTestCase):
    """COPY's fast path (the backing server's CSV COPY parses the files) is
    taken for the CSV the extension stages and loads exactly what the slow
    path loads; what it cannot reproduce falls back to the slow path.  The
    copy_path fault rule forces a path: "fast" fails the COPY instead of
    falling back, so a COPY that succeeds under it took the fast path."""

    COLUMNS = ("id int, name varchar(12), note text, code char(3), "
               "amount numeric(10,2), at timestamp, at_tz timestamptz, "
               "day date, flag bool, ratio float8")
    STAGED = "MANIFEST REGION '%s' FORMAT AS CSV GZIP NULL AS '\\\\N' " \
             "DATEFORMAT 'auto' TIMEFORMAT 'auto'" % ENV["S3_REGION"]

    def put(self, key, body):
        s3().put_object(Bucket=BUCKET, Key=key, Body=body)
        return "s3://%s/%s" % (BUCKET, key)

    def manifest(self, prefix, bodies):
        urls = [self.put("%s/part%d.csv.gz" % (prefix, i),
                         gzip.compress(body.encode()))
                for i, body in enumerate(bodies)]
        return self.put("%s/manifest" % prefix, json.dumps(
            {"entries": [{"url": u, "mandatory": True} for u in urls]})
            .encode())

    def copy(self, path, table, source, options):
        """COPY through one path: "fast", "slow" or None (the fast path,
        falling back when it must)."""
        set_faults(*([{"kind": "copy_path", "path": path}] if path else []))
        try:
            self.cur.execute("COPY %s FROM '%s' %s %s" % (
                table, source, keys_clause(), options))
        finally:
            set_faults()

    def load(self, path, source, options, columns):
        table = unique("cf")
        self.cur.execute("CREATE TABLE %s (%s)" % (table, columns))
        self.copy(path, table, source, options)
        self.cur.execute("SELECT * FROM %s ORDER BY id" % table)
        return self.cur.fetchall()

    def assertSameLoad(self, source, options, columns=None):
        """The fast path loads source without falling back, and its rows
        are the slow path's."""
        columns = columns or self.COLUMNS
        fast = self.load("fast", source, options, columns)
        slow = self.load("slow", source, options, columns)
        self.assertEqual(fast, slow)
        return fast

    def test_staged_csv_same_as_slow_path(self):
        # The extension's staging format: values quoted, NULL a bare \N,
        # gzip, a manifest; one file without a final newline, one empty.
        prefix = unique("cfs")
        rows = [
            '"1","a,b","line 1\nline 2","ABC","12.50","2024-02-26 10:00:00",'
            '"2024-02-26 10:00:00+02","2024-02-26","t","1.5"',
            '"2","say ""hi""","multi\n""quoted""\n\nlines","x","-3.25",'
            '"2024-02-26T11:30:00","2024-02-26T11:30:00.123456Z","2024-2-6",'
            '"f","-0.001"',
            '"3",\\N,"\\N",\\N,\\N,\\N,\\N,\\N,\\N,\\N',
            '"4","","","","","","","","",""',
            '"5","日本語ü","ünïcödé ✓ 😀","é","1e3","20240226 103000",'
            '"2024-02-26 10:00:00Z","26 Feb 2024","true","1e-3"',
            '"6","éééééé","q""uote,d","a""","0","Feb 26, 2024 10:00 PM",'
            '"2024-02-26 10:00:00.5-05","2024/02/26","0","-Infinity"',
            '7,plain,no quotes,xy,1,2024-01-01 00:00:00,'
            '2024-01-01 00:00:00+00,2024-01-01,f,2',
        ]
        source = self.manifest(prefix, ["\n".join(rows[:3]) + "\n",
                                        "\n".join(rows[3:]), ""])
        loaded = self.assertSameLoad(source, self.STAGED)
        self.assertEqual(len(loaded), 7)
        self.assertEqual(loaded[0][1:4], ("a,b", "line 1\nline 2", "ABC"))
        self.assertEqual(loaded[1][1:3], ('say "hi"',
                                          'multi\n"quoted"\n\nlines'))
        self.assertEqual(loaded[2][1:], (None,) * 9)
        # Empty: '' for the character columns, NULL for the others.
        self.assertEqual(loaded[3][1:3], ("", ""))
        self.assertEqual(loaded[3][4:], (None,) * 6)
        self.assertEqual(loaded[4][1:3], ("日本語ü", "ünïcödé ✓ 😀"))
        self.assertEqual(loaded[5][1:4], ("éééééé", 'q"uote,d', 'a" '))
        # Without the rule: the same rows, and Redshift's notice.
        table = unique("cfd")
        self.cur.execute("CREATE TABLE %s (%s)" % (table, self.COLUMNS))
        self.copy(None, table, source, self.STAGED)
        self.assertIn("7 record(s) loaded successfully", self.conn.notices[-1])
        self.cur.execute("SELECT * FROM %s ORDER BY id" % table)
        self.assertEqual(self.cur.fetchall(), loaded)

    def test_manifest_entries_many_and_missing(self):
        # Many files, one of several read pieces, one missing and not
        # mandatory (skipped): both paths load the same rows in file order.
        prefix = unique("cfm")
        columns = "id int, name varchar(20)"
        urls = [self.put("%s/p%02d.csv.gz" % (prefix, i), gzip.compress(
            "".join('%d,"n%d"\n' % (i * 1000 + j, j)
                    for j in range(3)).encode())) for i in range(12)]
        big = "".join('%d,"%s"\n' % (100000 + j, "x" * 18)
                      for j in range(60000)).encode()  # ~1.5 MB: 6 pieces
        urls.insert(5, self.put("%s/big.csv.gz" % prefix, gzip.compress(big)))
        entries = [{"url": u, "mandatory": True} for u in urls]
        entries.insert(3, {"url": "s3://%s/%s/gone.csv.gz" % (BUCKET, prefix),
                           "mandatory": False})
        source = self.put("%s/manifest" % prefix,
                          json.dumps({"entries": entries}).encode())
        loaded = self.assertSameLoad(source, "MANIFEST CSV GZIP", columns)
        self.assertEqual(len(loaded), 12 * 3 + 60000)
        # A missing mandatory entry after the big file fails the COPY, and
        # nothing of the files before it stays loaded (the COPY runs in a
        # transaction of its own, so only its atomicity can keep it empty).
        entries.append({"url": "s3://%s/%s/lost.csv.gz" % (BUCKET, prefix),
                        "mandatory": True})
        source = self.put("%s/manifest2" % prefix,
                          json.dumps({"entries": entries}).encode())
        for path in ("fast", "slow"):
            table = unique("cfm")
            self.cur.execute("CREATE TABLE %s (%s)" % (table, columns))
            with self.assertRaises(psycopg2.Error) as ctx:
                self.copy(path, table, source, "MANIFEST CSV GZIP")
            self.assertIn("lost.csv.gz is mandatory but the file does not "
                          "exist", ctx.exception.diag.message_primary)
            self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table),
                             0)

    def test_random_regular_csv_same_as_slow_path(self):
        # Regular CSV of random values made of the bytes the fast path's
        # patterns tell apart (delimiters, quotes, line ends, the filler
        # byte of its skeletons, NULL markers, UTF-8): the fast path loads
        # each file without declining, and loads what the slow path loads.
        rng = random.Random(20261122)
        pieces = ["a", "b", "ab", ",", '"', '""', "\n", "\\", "N", "\\N",
                  " ", "é", "|", "%", "x,y"]

        def value(limit):
            text = ""
            for _ in range(rng.randrange(4)):
                piece = rng.choice(pieces)
                if len((text + piece).encode()) <= limit:
                    text += piece
            return text

        def field(text, delimiter, quote):
            if (text == "" and rng.random() < 0.5) or not any(
                    ch in text for ch in (delimiter, quote, "\n", "\r")):
                if text.strip() == text and rng.random() < 0.7:
                    return text  # bare
            return quote + text.replace(quote, quote * 2) + quote

        for width, options, delimiter, quote in (
                (6, "CSV", ",", '"'),
                (40, "CSV", ",", '"'),
                (6, "CSV NULL AS '\\\\N'", ",", '"'),
                (40, "CSV EMPTYASNULL", ",", '"'),
                (12, "DELIMITER '|' CSV QUOTE AS '%'", "|", "%")):
            body = "".join("%d%s%s%s%s\n" % (
                i, delimiter, field(value(width), delimiter, quote),
                delimiter, field(value(12), delimiter, quote))
                for i in range(400))
            url = self.put("%s/r.csv.gz" % unique("cfr"),
                           gzip.compress(body.encode()))
            loaded = self.assertSameLoad(
                url, options + " GZIP",
                "id int, a varchar(%d), b text" % width)
            self.assertEqual(len(loaded), 400, options)

    def test_empty_fields_options_and_blocks(self):
        columns = "id int, name varchar(5), code char(2), n int, d date"
        body = ('id,name,code,n,d\n1,,,,\n2,"","","",""\n3,x,y,7,2024-01-02'
                '\n4,\\N,\\N,,\n5,"a\nb","""",8,\n')
        url = self.put("%s/e.csv" % unique("cfe"), body.encode())
        for options in ("CSV IGNOREHEADER 1", "CSV IGNOREHEADER 1 EMPTYASNULL",
                        "CSV IGNOREHEADER 1 NULL AS ''"):
            loaded = self.assertSameLoad(url, options, columns)
            self.assertEqual(len(loaded), 5, options)
        self.assertEqual(self.assertSameLoad(url, "CSV IGNOREHEADER 1",
                                             columns)[:2],
                         [(1, "", "  ", None, None),
                          (2, "", "  ", None, None)])
        other = body.replace(",", "|").replace('"', "%")
        url = self.put("%s/e.bz2" % unique("cfe"), bz2.compress(
            other.encode()))
        self.assertSameLoad(url, "DELIMITER '|' CSV QUOTE AS '%' BZIP2 "
                            "IGNOREHEADER 1", columns)
        # Many blocks: quoted newlines and records across block boundaries.
        body = "".join('%d,"v%d","line\n%s,""q""",%d,2024-03-%02d\n' % (
            i, i % 1000, "x" * (i % 300), i, 1 + i % 28)
            for i in range(6000))
        url = self.put("%s/big.csv.gz" % unique("cfe"),
                       gzip.compress(body.encode()))
        loaded = self.assertSameLoad(
            url, "CSV GZIP", "id int, name varchar(5), note text, n int, "
            "d date")
        self.assertEqual(len(loaded), 6000)

    def load_errors(self, url):
        """stl_load_errors rows of one file per COPY, without the query id
        and table."""
        self.cur.execute(
            "SELECT query, line_number, trim(colname), trim(type), "
            "trim(col_length), trim(raw_line), trim(raw_field_value), "
            "err_code, trim(err_reason) FROM stl_load_errors "
            "WHERE trim(filename) = %s ORDER BY query", (url,))
        by_query = {}
        for row in self.cur.fetchall():
            by_query.setdefault(row[0], []).append(row[1:])
        return list(by_query.values())

    def assertFailsAlike(self, url, columns, code):
        """COPY of url fails on every path: the fast one declines, the
        fallback's error and stl_load_errors rows (error code) are the slow
        path's."""
        for path in ("fast", "slow", None):
            table = unique("cff")
            self.cur.execute("CREATE TABLE %s (%s)" % (table, columns))
            with self.assertRaises(psycopg2.Error) as ctx:
                self.copy(path, table, url, "CSV")
            self.assertIn("fast path declined" if path == "fast" else
                          "Load into table '%s' failed" % table,
                          str(ctx.exception))
        slow, fallback = self.load_errors(url)
        self.assertEqual(fallback, slow)
        self.assertEqual(fallback[0][6], code)

    def test_rejected_rows_fall_back(self):
        # A value the backing server rejects (bad integer) and one the
        # fast path's checks send back (too long for its VARCHAR): both
        # fall back, with the slow path's errors and stl_load_errors rows.
        columns = "id int, name varchar(3)"
        for name, body, code in (("int", '1,ab\n2,"x,y"\nzz,cd\n', 1207),
                                 ("long", '1,ab\n2,toolong\n3,"é"\n', 1204)):
            url = self.put("%s/%s.csv" % (unique("cfr"), name),
                           body.encode())
            self.assertFailsAlike(url, columns, code)
            # MAXERROR: the fallback loads the good rows, as the slow path.
            rows = [self.load(path, url, "CSV MAXERROR 1", columns)
                    for path in ("slow", None)]
            self.assertEqual(rows[1], rows[0])
            self.assertEqual(len(rows[1]), 2)
            slow, fallback = self.load_errors(url)[2:]
            self.assertEqual(fallback, slow)

    def test_short_lines_keep_the_varchar_bounds(self):
        # Lines no longer than the shortest VARCHAR are checked without
        # its bound: a record over lines must still be held to it.
        columns = "id int, name varchar(6)"
        body = '1,ab\n2,"c\nd"\n3,"e""f"\n4,\n5,"éé"\n6,"g,h"\n'
        url = self.put("%s/s.csv" % unique("cfl"), body.encode())
        self.assertEqual(self.assertSameLoad(url, "CSV", columns),
                         [(1, "ab"), (2, "c\nd"), (3, 'e"f'), (4, ""),
                          (5, "éé"), (6, "g,h")])
        # Values of 8 bytes but 4 or 5 characters (the backing server's
        # VARCHAR(6) would take them), over lines of at most 6 bytes or on
        # a longer line among short ones: over the bound all the same.
        for body in ('1,ab\n2,"é\né\né"\n3,x\n', '1,ab\n2,éééé\n3,x\n'):
            url = self.put("%s/o.csv" % unique("cfl"), body.encode())
            self.assertFailsAlike(url, columns, 1204)

    def test_declines_what_it_cannot_reproduce(self):
        # Irregular quoting, CRLF line ends, SUPER: the fast path declines
        # (an error under copy_path=fast), the load falls back.
        cases = [("id int, a text", b'1,a"b\n2,"c"d\n'),
                 ("id int, a text", b"1,a\r\n2,b\r\n"),
                 ("id int, a super", b'1,"{""k"":1}"\n')]
        for columns, body in cases:
            url = self.put("%s/d.csv" % unique("cfx"), body)
            table = unique("cfx")
            self.cur.execute("CREATE TABLE %s (%s)" % (table, columns))
            with self.assertRaises(psycopg2.Error) as ctx:
                self.copy("fast", table, url, "CSV")
            self.assertIn("fast path declined", str(ctx.exception))
            self.copy(None, table, url, "CSV")
            self.assertEqual(self.scalar("SELECT count(*) FROM %s" % table),
                             body.count(b"\n"))


# ----------------------------------------------------------------- item 10
class T10PostgresCopyRejected(SimTestCase):
    def test_postgres_only_copy(self):
        self.cur.execute("CREATE TABLE IF NOT EXISTS pgcopy (a int)")
        self.assertSqlError("COPY pgcopy FROM STDIN", "XX000",
                            "LOAD source is not supported")
        self.assertSqlError("COPY pgcopy TO STDOUT", "42601")
        self.assertSqlError("COPY pgcopy FROM 's3://%s/x' %s WITH (FORMAT csv)"
                            % (BUCKET, keys_clause()), "42601")
        self.assertSqlError("COPY pgcopy FROM '/etc/passwd'", "XX000")
        self.assertSqlError("COPY (SELECT 1) TO STDOUT", "42601")


# ----------------------------------------------------------------- item 11
class T11Unload(SimTestCase):
    def keys(self, prefix):
        listed = s3().list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def test_parallel_unload_with_manifest(self):
        prefix = unique("unload") + "/t_"
        self.cur.execute(
            "UNLOAD ('SELECT g, ''v''||g AS v FROM generate_series(1, 100) g')"
            " TO 's3://%s/%s' %s CSV MANIFEST PARALLEL ON"
            % (BUCKET, prefix, keys_clause()))
        keys = self.keys(prefix)
        parts = [k for k in keys if "_part_" in k]
        self.assertGreaterEqual(len(parts), 2)
        self.assertIn(prefix + "manifest", keys)
        manifest = json.loads(s3().get_object(
            Bucket=BUCKET, Key=prefix + "manifest")["Body"].read())
        self.assertEqual(sorted(e["url"] for e in manifest["entries"]),
                         ["s3://%s/%s" % (BUCKET, k) for k in parts])
        rows = b"".join(s3().get_object(Bucket=BUCKET, Key=k)["Body"].read()
                        for k in parts).decode().splitlines()
        self.assertEqual(len(rows), 100)
        self.assertIn("7,v7", rows)

    def test_serial_gzip_overwrite_and_limit(self):
        prefix = unique("unload") + "/s_"
        sql = ("UNLOAD ('SELECT 1 AS a') TO 's3://%s/%s' %s GZIP PARALLEL OFF"
               % (BUCKET, prefix, keys_clause()))
        self.cur.execute(sql)
        self.assertEqual(self.keys(prefix), [prefix + "000.gz"])
        self.assertSqlError(sql, "XX000", "not empty")
        self.cur.execute(sql + " ALLOWOVERWRITE")
        body = s3().get_object(Bucket=BUCKET, Key=prefix + "000.gz")["Body"]
        self.assertEqual(gzip.decompress(body.read()), b"1\n")
        self.assertSqlError("UNLOAD ('SELECT 1 LIMIT 1') TO 's3://%s/%s' %s"
                            % (BUCKET, unique("u"), keys_clause()),
                            "XX000", "Limit clause")


# ----------------------------------------------------------------- item 12
class T12Merge(SimTestCase):
    def test_merge_shapes(self):
        self.cur.execute("DROP TABLE IF EXISTS mt, ms")
        self.cur.execute("CREATE TABLE mt (k int, v varchar(10))")
        self.cur.execute("CREATE TABLE ms (k int, v varchar(10))")
        self.cur.execute("INSERT INTO mt VALUES (1, 'old'), (2, 'keep')")
        self.cur.execute("INSERT INTO ms VALUES (1, 'new'), (3, 'add')")
        self.cur.execute("MERGE INTO mt USING ms ON mt.k = ms.k "
                         "WHEN MATCHED THEN UPDATE SET v = ms.v "
                         "WHEN NOT MATCHED THEN INSERT VALUES (ms.k, ms.v)")
        self.cur.execute("SELECT k, v FROM mt ORDER BY k")
        self.assertEqual(self.cur.fetchall(), [(1, "new"), (2, "keep"),
                                               (3, "add")])
        self.assertSqlError("MERGE INTO mt USING (SELECT * FROM ms) s ON "
                            "mt.k = s.k WHEN MATCHED THEN DELETE WHEN NOT "
                            "MATCHED THEN INSERT VALUES (s.k, s.v)", "0A000")
        self.assertSqlError("MERGE INTO mt USING ms ON mt.k = ms.k WHEN "
                            "MATCHED AND ms.v = 'x' THEN DELETE WHEN NOT "
                            "MATCHED THEN INSERT VALUES (ms.k, ms.v)", "42601")
        self.assertSqlError("MERGE INTO mt USING ms ON mt.k = ms.k WHEN "
                            "MATCHED THEN DELETE", "0A000")


# ----------------------------------------------------------------- item 13
class T13Rejections(SimTestCase):
    def test_postgres_only_features(self):
        self.cur.execute("CREATE TABLE IF NOT EXISTS rj (a int)")
        cases = [
            ("INSERT INTO rj VALUES (1) ON CONFLICT DO NOTHING", "42601"),
            ("INSERT INTO rj VALUES (1) RETURNING a", "42601"),
            ("LOCK TABLE rj IN EXCLUSIVE MODE", "42601"),
            ("SELECT ARRAY[1, 2]", "42601"),
            ("SELECT '{1,2}'::int[]", "42601"),
            ("SELECT 1 = ANY ('{1}'::int[])", "42601"),
            ("CREATE INDEX rj_a ON rj (a)", "42601"),
            ("CREATE UNIQUE INDEX rj_a ON rj (a)", "42601"),
            ("CREATE TRIGGER t AFTER INSERT ON rj FOR EACH ROW EXECUTE "
             "FUNCTION f()", "42601"),
            ("CREATE SEQUENCE s", "42601"),
            ("CREATE TABLE rj2 (id serial)", "42704"),
            ("SELECT nextval('s')", "42883"),
            ("CREATE TABLE rj2 (a jsonb)", "42704"),
            ("CREATE TABLE rj2 (a json)", "42704"),
            ("CREATE TABLE rj2 (a uuid)", "42704"),
            ("CREATE TABLE rj2 (a bytea)", "42704"),
            ("ALTER TABLE rj ADD COLUMN b uuid", "42704"),
            ("SELECT '{}'::jsonb", "42704"),
            ("SELECT CAST('x' AS bytea)", "42704"),
        ]
        for sql, state in cases:
            self.assertSqlError(sql, state)
        self.cur.execute("BEGIN")
        self.cur.execute("LOCK rj")
        self.cur.execute("LOCK TABLE rj")
        self.cur.execute("COMMIT")


# ----------------------------------------------------------------- item 14
class T14Types(SimTestCase):
    def test_redshift_types_and_oids(self):
        table = unique("ty")
        self.cur.execute(
            "CREATE TABLE %s (s super, v varbyte, g geometry, gg geography, "
            "h hllsketch, t timetz, n numeric(38,10), c char(4))" % table)
        self.cur.execute(
            "INSERT INTO %s VALUES (json_parse('{\"a\": [1, 2]}'), "
            "'\\\\x0aff', '0101000000000000000000F03F000000000000F03F', "
            "'0101000020E6100000', '{}', '10:00:00+02', "
            "1234567890123456789012345678.0123456789, 'ab')" % table)
        self.cur.execute("SELECT * FROM %s" % table)
        types = [d.type_code for d in self.cur.description]
        self.assertEqual(types[:4], [4000, 6551, 3000, 3001])
        self.assertEqual(types[5], 1266)
        row = self.cur.fetchone()
        self.assertEqual(row[0], '{"a":[1,2]}')
        self.assertEqual(row[1], "0aff")
        self.assertEqual(str(row[6]), "1234567890123456789012345678.0123456789")
        self.assertEqual(row[7], "ab  ")
        pq = LibPQ()
        try:
            err, value, oid = pq.exec_params("SELECT v FROM %s" % table)
            self.assertEqual((err, value, oid), (None, "0aff", 6551))
        finally:
            pq.close()


# ----------------------------------------------------------------- item 15
class T15Catalog(SimTestCase):
    def test_catalog_views(self):
        schema = unique("cat")
        self.cur.execute("CREATE SCHEMA %s" % schema)
        self.cur.execute("CREATE TABLE %s.base (id int NOT NULL, name "
                         "varchar(20), amount numeric(12,2))" % schema)
        self.cur.execute("CREATE VIEW %s.lbv AS SELECT id, name FROM %s.base "
                         "WITH NO SCHEMA BINDING" % (schema, schema))
        self.cur.execute("SELECT table_name, table_type FROM svv_tables WHERE "
                         "table_schema = %s ORDER BY 1", (schema,))
        self.assertEqual(self.cur.fetchall(), [("base", "BASE TABLE"),
                                               ("lbv", "VIEW")])
        self.cur.execute("SELECT table_name, column_name, data_type, "
                         "is_nullable, character_maximum_length, "
                         "numeric_precision, numeric_scale FROM svv_columns "
                         "WHERE table_schema = %s ORDER BY 1, ordinal_position",
                         (schema,))
        rows = self.cur.fetchall()
        self.assertIn(("base", "id", "integer", "NO", None, 32, 0), rows)
        self.assertIn(("base", "name", "character varying", "YES", 20, None,
                       None), rows)
        self.assertIn(("base", "amount", "numeric", "YES", None, 12, 2), rows)
        self.assertIn(("lbv", "name", "character varying", "YES", 20, None,
                       None), rows)
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM svv_all_tables WHERE schema_name = '%s'"
            % schema), 2)
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM svv_table_info WHERE schema = '%s'" % schema),
            1)
        # pg_table_def: only schemas on the search_path, no late-binding views
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM pg_table_def WHERE schemaname = '%s'"
            % schema), 0)
        self.cur.execute("SET search_path TO %s, public" % schema)
        self.cur.execute("SELECT DISTINCT tablename FROM pg_table_def WHERE "
                         "schemaname = %s", (schema,))
        self.assertEqual(self.cur.fetchall(), [("base",)])
        self.cur.execute("SELECT count(*) FROM stl_load_errors")
        self.cur.execute("SELECT count(*) FROM sys_load_error_detail")


# ----------------------------------------------------------------- item 16
class T16IdentifierFolding(SimTestCase):
    def test_quoted_identifiers_fold(self):
        table = unique("Fold").replace("fold", "Fold")
        self.cur.execute('CREATE TABLE "%s" ("ColA" int)' % table)
        self.cur.execute('INSERT INTO "%s" ("COLA") VALUES (1)' % table)
        self.cur.execute('SELECT "cola" FROM %s' % table.lower())
        self.assertEqual(self.cur.description[0].name, "cola")
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM svv_tables WHERE table_name = '%s'"
            % table.lower()), 1)

    def test_case_sensitive_setting(self):
        self.cur.execute("SET enable_case_sensitive_identifier TO true")
        table = unique("Case").replace("case", "Case")
        self.cur.execute('CREATE TABLE "%s" (a int)' % table)
        self.assertEqual(self.scalar(
            "SELECT count(*) FROM svv_tables WHERE table_name = '%s'" % table),
            1)
        self.cur.execute("RESET enable_case_sensitive_identifier")
        self.assertSqlError('SELECT * FROM "%s"' % table, "42P01")


class ExtendedProtocol(SimTestCase):
    def test_rules_apply_to_parse(self):
        pq = LibPQ()
        try:
            self.assertEqual(pq.exec_params("SELECT $1::int + 1", ["41"])[:2],
                             (None, "42"))
            self.assertEqual(pq.exec_params("SELECT E'x' || $1", ["y"])[0],
                             "42704")
            self.assertEqual(pq.exec_params("SAVEPOINT a")[0], "0A000")
            self.assertEqual(pq.exec_params("SELECT version()")[1][:16],
                             "PostgreSQL 8.0.2")
        finally:
            pq.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
