#!/usr/bin/python3
"""Unit tests of the simulator's SQL lexer and dialect rules (no server)."""

import unittest

import sqlscan


def classify_all(sql, case_sensitive=False):
    return [sqlscan.classify(s, case_sensitive)
            for s in sqlscan.split_statements(sqlscan.tokenize(sql))]


class LexerTest(unittest.TestCase):
    def test_round_trip(self):
        for sql in ["SELECT 'a''b', \"X\"\"Y\", $$x;y$$, $1 -- c;\n/* a /* b */ */ ;",
                    r"SELECT 'it\'s; fine' AS x", "select 1.5e3::float8, .5"]:
            self.assertEqual("".join(t.text for t in sqlscan.tokenize(sql)), sql)

    def test_backslash_escape_does_not_end_literal(self):
        stmts = sqlscan.split_statements(sqlscan.tokenize(r"SELECT 'a\';b'; SELECT 2"))
        self.assertEqual(len(stmts), 2)
        self.assertEqual(sqlscan.string_value(sqlscan.significant(stmts[0])[1]), "a';b")

    def test_split_ignores_semicolons_in_parens_strings_comments(self):
        sql = "SELECT ';' -- ;\n; SELECT $$;$$; /* ; */ SELECT (1);"
        self.assertEqual(len(sqlscan.split_statements(sqlscan.tokenize(sql))), 3)


class RulesTest(unittest.TestCase):
    REJECTED = [
        ("SELECT E'x'", "42704"), ("SELECT e'x'", "42704"),
        ("SAVEPOINT a", "0A000"), ("RELEASE a", "0A000"),
        ("ROLLBACK TO a", "0A000"), ("ROLLBACK TRANSACTION TO SAVEPOINT a", "0A000"),
        ("MOVE 1 IN c", "42601"), ("FETCH LAST FROM c", "42601"),
        ("FETCH FORWARD 1 IN c", "42601"),
        ("DECLARE c SCROLL CURSOR FOR SELECT 1", "42601"),
        ("LOCK t IN ACCESS EXCLUSIVE MODE", "42601"),
        ("INSERT INTO t VALUES (1) ON CONFLICT (a) DO NOTHING", "42601"),
        ("DELETE FROM t RETURNING *", "42601"),
        ("SELECT ARRAY[1]", "42601"), ("CREATE TABLE t (a int[])", "42601"),
        ("CREATE INDEX i ON t (a)", "42601"), ("CREATE SEQUENCE s", "42601"),
        ("CREATE TRIGGER x BEFORE INSERT ON t EXECUTE FUNCTION f()", "42601"),
        ("CREATE TABLE t (a serial)", "42704"), ("CREATE TABLE t (a bigserial)", "42704"),
        ("CREATE TABLE t (a uuid)", "42704"), ("SELECT x::json", "42704"),
        ("SELECT CAST(x AS jsonb)", "42704"),
        ("SET extra_float_digits = 3", "22023"), ("SET statement_timeout TO '1min'", "22023"),
        ("SET intervalstyle = postgres", "42704"), ("SHOW server_version_num", "42704"),
        ("SELECT current_setting('server_version')", "42501"),
        ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "0A000"),
    ]
    ACCEPTED = [
        "SELECT 'a\\'b'", "SELECT uuid FROM t", "CREATE TABLE t (uuid varchar(36))",
        "SELECT json_extract_path_text(j, 'a')", "LOCK t", "FETCH NEXT FROM c",
        "FETCH ALL FROM c", "FETCH FORWARD 100 FROM c", "FETCH FORWARD ALL FROM c",
        "DECLARE c CURSOR FOR SELECT 1", "SET extra_float_digits TO 2",
        "SET statement_timeout = 5000", "SET TIME ZONE 'UTC'", "RESET ALL",
        "SET SESSION AUTHORIZATION DEFAULT", "SELECT s.a[0] FROM t",
        "BEGIN ISOLATION LEVEL SERIALIZABLE", "START TRANSACTION READ ONLY",
        "CREATE TABLE t (a varbyte(10), b super, c timetz)",
    ]

    def test_rejected(self):
        for sql, state in self.REJECTED:
            (stmt,) = classify_all(sql)
            self.assertEqual(stmt.action, "reject", sql)
            self.assertEqual(stmt.error.sqlstate, state, sql)

    def test_accepted(self):
        for sql in self.ACCEPTED:
            (stmt,) = classify_all(sql)
            self.assertEqual(stmt.action, "ok", "%s: %s" % (sql, stmt.error and stmt.error.message))

    def test_quoted_identifiers_folded(self):
        (stmt,) = classify_all('SELECT "MixedCase" FROM "S"."T" WHERE x = \'KeepMe\'')
        self.assertEqual(stmt.text, 'SELECT "mixedcase" FROM "s"."t" WHERE x = \'KeepMe\'')
        (stmt,) = classify_all('SELECT "MixedCase"', case_sensitive=True)
        self.assertEqual(stmt.text, 'SELECT "MixedCase"')

    def test_redshift_only_settings_renamed(self):
        (stmt,) = classify_all("SET query_group TO 'etl'")
        self.assertEqual(stmt.text, "SET redshift_sim.query_group TO 'etl'")
        (stmt,) = classify_all("SET enable_case_sensitive_identifier TO true")
        self.assertEqual(stmt.setting, ("enable_case_sensitive_identifier", True))

    def test_late_binding_view(self):
        (stmt,) = classify_all("CREATE VIEW v (a) AS SELECT 1 WITH NO SCHEMA BINDING;")
        self.assertEqual(" ".join(stmt.text.split()),
                         "CREATE VIEW v (a) WITH (security_barrier = false) AS SELECT 1 ;")

    def test_copy_and_unload_routed(self):
        self.assertEqual([s.action for s in classify_all(
            "COPY t FROM 's3://b/k' IAM_ROLE default; UNLOAD ('select 1') TO 's3://b/p'")],
            ["copy", "unload"])

    def test_cursor_and_tables_reported(self):
        (stmt,) = classify_all('DECLARE "C1" CURSOR FOR SELECT * FROM s.orders')
        self.assertEqual(stmt.cursor, ("declare", "c1"))
        self.assertIn("orders", stmt.tables)

    def test_raise_sql_keeps_parameters(self):
        sql = sqlscan.raise_sql(sqlscan.SimError("0A000", "it's \\ bad"), 2)
        self.assertIn("'it''s \\\\ bad'", sql)
        self.assertIn("$1::text, $2::text", sql)


if __name__ == "__main__":
    unittest.main(verbosity=2)
