--
-- Capture bindings: Redshift -> PostgreSQL polls through the FDW.
--
\i test/fixtures/regress_server.sql
\set SHOW_CONTEXT never
\! test/fixtures/rs_sql "DROP SCHEMA IF EXISTS cap_test CASCADE; CREATE SCHEMA cap_test; CREATE TABLE cap_test.events (id integer NOT NULL, updated_at timestamp NOT NULL, v varchar(20), PRIMARY KEY (id)); INSERT INTO cap_test.events SELECT g, '2024-01-01'::timestamp + g * interval '1 minute', 'v' || g FROM generate_series(1, 5) g; CREATE TABLE cap_test.ties (k1 integer, k2 varchar(5), msg varchar(20)); INSERT INTO cap_test.ties VALUES (1, 'a', 'x'), (1, 'b', 'y'), (2, 'a', 'z'); CREATE TABLE cap_test.items (id integer NOT NULL, name varchar(20), PRIMARY KEY (id)); INSERT INTO cap_test.items VALUES (1, 'one'), (2, 'two'), (3, 'three')"
ALTER SERVER rs OPTIONS (ADD source_tag 'regress', ADD poll '5m');
CREATE SCHEMA src;
IMPORT FOREIGN SCHEMA cap_test FROM SERVER rs INTO src;
IMPORT FOREIGN SCHEMA fdw_test LIMIT TO (types) FROM SERVER rs INTO src;

-- ===================================================================
-- Templates: the built-in query renders the reference SQL exactly
-- ===================================================================
SELECT n, first, redshift_fdw.render_template(NULL, 's', 't', (ARRAY['{}', '{ka}', '{ka,kb}', '{ka,kb,kc}'])[n + 1]::text[], first)
  FROM generate_series(0, 3) n, (VALUES (true), (false)) f(first)
 ORDER BY n, first DESC;
-- the reference's example override, first and later queries
SELECT redshift_fdw.render_template('SELECT * FROM t {{if not .IsFirstQuery}} WHERE updated_at > $1 {{end}} ORDER BY updated_at', 's', 't', '{updated_at}', true);
SELECT redshift_fdw.render_template('SELECT * FROM t {{if not .IsFirstQuery}} WHERE updated_at > $1 {{end}} ORDER BY updated_at', 's', 't', '{updated_at}', false);
SELECT redshift_fdw.render_template('{{- /* comment */ -}} SELECT {{range $i, $k := .CursorFields}}{{if $i}}, {{end}}{{$k}}{{end}} FROM {{quoteTableName $.SchemaName $.TableName}}', 'My Schema', 'T"1', '{a,b}', true);
-- invalid templates are rejected with their position
SELECT redshift_fdw.check_template('SELECT {{if .IsFirstQuery}} x');
SELECT redshift_fdw.check_template('SELECT {{.NoSuchField}}');
SELECT redshift_fdw.check_template('SELECT {{nosuchfunc 1}}');
SELECT redshift_fdw.check_template(E'SELECT 1\n{{end}}');

-- ===================================================================
-- Schedules
-- ===================================================================
SELECT s, redshift_fdw.parse_schedule(s)
  FROM unnest(ARRAY['90s', '5m', '1h30m', '1.5h', '24h', 'daily at 12:34Z', 'DAILY AT 6:05Z']) s;
SELECT redshift_fdw.parse_schedule('5');
SELECT redshift_fdw.parse_schedule('25:00');
SELECT redshift_fdw.parse_schedule('daily at 25:00Z');
SELECT redshift_fdw.parse_schedule('daily at 12:00+02:00');
SELECT redshift_fdw.parse_schedule('daily at 12:00');
SELECT redshift_fdw.parse_schedule('0s');
SELECT redshift_fdw.parse_schedule('-5m');
SELECT redshift_fdw.parse_schedule('5d');
SELECT redshift_fdw.next_poll('5m', NULL) <= clock_timestamp() AS never_polled_runs_now,
       redshift_fdw.next_poll('5m', '2024-01-01 10:00:00+00') <= clock_timestamp() AS overdue_runs_now,
       redshift_fdw.next_poll('1h', now()) = now() + interval '1 hour' AS interval_after_start;
ALTER SERVER rs OPTIONS (SET poll 'every day');

-- ===================================================================
-- Full refresh: the target becomes the source, deletes included
-- ===================================================================
SELECT name, target, key_columns, cursor_columns, format
  FROM redshift_fdw.create_capture('items', 'src.items');
\d items
SELECT * FROM redshift_fdw.poll('items');
SELECT * FROM items ORDER BY id;
\! test/fixtures/rs_sql "DELETE FROM cap_test.items WHERE id = 2; UPDATE cap_test.items SET name = 'THREE' WHERE id = 3; INSERT INTO cap_test.items VALUES (4, 'four')"
SELECT * FROM redshift_fdw.poll('items');
SELECT * FROM items ORDER BY id;
-- keyless: row ids restart at 0 on every full refresh
SELECT name FROM redshift_fdw.create_capture('ties_full', 'src.ties', target => 'ties_full');
SELECT * FROM redshift_fdw.poll('ties_full');
SELECT * FROM redshift_fdw.poll('ties_full');
SELECT * FROM ties_full ORDER BY _row_id;

-- ===================================================================
-- Cursor-incremental, one cursor column, upserted by key
-- ===================================================================
SELECT name FROM redshift_fdw.create_capture('events', 'src.events', cursor_columns => '{updated_at}', schedule => '1h30m');
SELECT * FROM redshift_fdw.capture_query('events');
SELECT * FROM redshift_fdw.poll('events');
-- the next poll asks Redshift only for rows after the cursor
SELECT * FROM redshift_fdw.capture_query('events');
\! test/fixtures/rs_sql "INSERT INTO cap_test.events VALUES (6, '2024-01-01 00:06:00', 'v6'), (7, '2024-01-01 00:07:00', 'v7'); UPDATE cap_test.events SET v = 'v1 again', updated_at = '2024-01-01 00:08:00' WHERE id = 1"
SELECT * FROM redshift_fdw.poll('events');
SELECT * FROM events ORDER BY id;
-- strictly after: a row with the same cursor value as the last one is not seen
\! test/fixtures/rs_sql "INSERT INTO cap_test.events VALUES (8, '2024-01-01 00:08:00', 'late')"
SELECT * FROM redshift_fdw.poll('events');
SELECT count(*) FROM events WHERE id = 8;
-- a lookback window re-reads the tail, deduplicated by key
SELECT lookback FROM redshift_fdw.alter_capture('events', lookback => '10 minutes');
SELECT * FROM redshift_fdw.capture_query('events');
SELECT * FROM redshift_fdw.poll('events');
SELECT id, v FROM events WHERE id >= 6 ORDER BY id;
SELECT (SELECT count(*) FROM events) = (SELECT count(*) FROM src.events) AS same_count,
       (SELECT count(*) FROM (SELECT * FROM events EXCEPT SELECT * FROM src.events) d) AS differences;
SELECT name, cursor, cursor_values, schedule, format, enabled, rows_last_poll, documents_total,
       next_poll > last_polled AS next_after_last
  FROM redshift_fdw.captures WHERE name = 'events';

-- ===================================================================
-- Two cursor columns with ties on the boundary, keyless (appended with
-- row ids)
-- ===================================================================
SELECT name FROM redshift_fdw.create_capture('ties', 'src.ties', cursor_columns => '{k1,k2}');
SELECT * FROM redshift_fdw.poll('ties');
\! test/fixtures/rs_sql "INSERT INTO cap_test.ties VALUES (2, 'a', 'same tuple: not seen'), (2, 'b', 'after'), (3, 'a', 'after too')"
SELECT * FROM redshift_fdw.capture_query('ties');
SELECT * FROM redshift_fdw.poll('ties');
SELECT * FROM ties ORDER BY _row_id;
-- changing the cursor resets the state (the next poll reads everything)
SELECT cursor_columns, cursor_state FROM redshift_fdw.alter_capture('ties', cursor_columns => '{k1}');
SELECT reset_capture FROM redshift_fdw.reset_capture('ties');
SELECT * FROM redshift_fdw.poll('ties');
SELECT count(*) FROM ties;
-- a NULL cursor value is not taken as the cursor (it would match nothing after)
\! test/fixtures/rs_sql "INSERT INTO cap_test.ties VALUES (NULL, 'n', 'null cursor'), (4, 'a', 'after the null')"
SELECT * FROM redshift_fdw.poll('ties');
\! test/fixtures/rs_sql "INSERT INTO cap_test.ties VALUES (5, 'a', 'still moving')"
SELECT * FROM redshift_fdw.poll('ties');

-- ===================================================================
-- Batches: commits at cursor-tuple boundaries
-- ===================================================================
SELECT name FROM redshift_fdw.create_capture('events_batched', 'src.events', cursor_columns => '{updated_at}', target => 'events_batched');
CALL redshift_fdw.poll_in_batches('events_batched', 2);
SELECT (SELECT count(*) FROM (SELECT * FROM events_batched EXCEPT SELECT * FROM src.events) d) AS differences,
       (SELECT count(*) FROM events_batched) AS captured;

-- ===================================================================
-- Every Redshift type arrives intact
-- ===================================================================
SELECT name FROM redshift_fdw.create_capture('types', 'src.types', target => 'types_copy');
SELECT * FROM redshift_fdw.poll('types');
SELECT (SELECT count(*) FROM (SELECT * FROM types_copy EXCEPT SELECT * FROM src.types) d) AS missing_or_changed,
       (SELECT count(*) FROM types_copy) AS captured;

-- ===================================================================
-- Documents: the reference's JSON encoding, with _meta
-- ===================================================================
SELECT name FROM redshift_fdw.create_capture('types_doc', 'src.types', target => 'types_doc', format => 'document');
\d types_doc
SELECT * FROM redshift_fdw.poll('types_doc');
SELECT id, key, value FROM types_doc, jsonb_each(doc - '_meta') ORDER BY id, key;
SELECT id, doc->'_meta'->'op' AS op, doc->'_meta'->'index' AS index, doc->'_meta'->'source' AS source,
       doc->'_meta'->>'polled' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$' AS polled_rfc3339
  FROM types_doc ORDER BY id;
-- a second poll: rows still there are updates, rows gone are deletes
\! test/fixtures/rs_sql "DELETE FROM fdw_test.types WHERE id = 3"
SELECT * FROM redshift_fdw.poll('types_doc');
SELECT id, doc->'_meta'->>'op' AS op FROM types_doc ORDER BY id;

-- ===================================================================
-- A custom-query binding, and a template override
-- ===================================================================
SELECT name, cursor_columns, key_columns FROM redshift_fdw.create_query_capture('recent', 'rs',
  'SELECT id, v FROM cap_test.events {{if not .IsFirstQuery}} WHERE id > $1 {{end}} ORDER BY id',
  target => 'recent', cursor_columns => '{id}', key_columns => '{id}');
SELECT * FROM redshift_fdw.capture_query('recent');
SELECT * FROM redshift_fdw.poll('recent');
SELECT * FROM redshift_fdw.capture_query('recent');
SELECT count(*) FROM recent;
SELECT name FROM redshift_fdw.create_capture('events_override', 'src.events', target => 'events_override',
  cursor_columns => '{updated_at}',
  template => 'SELECT * FROM {{quoteTableName .SchemaName .TableName}} {{if not .IsFirstQuery}} WHERE updated_at > $1 {{end}} ORDER BY updated_at');
SELECT * FROM redshift_fdw.poll('events_override');
SELECT * FROM redshift_fdw.capture_query('events_override');

-- ===================================================================
-- Errors name the binding, table or column
-- ===================================================================
SELECT redshift_fdw.create_capture('bad', 'src.events', cursor_columns => '{nope}');
SELECT redshift_fdw.create_capture('bad', 'pg_class');
SELECT redshift_fdw.create_capture('bad', 'src.events', format => 'xml');
SELECT redshift_fdw.create_capture('bad', 'src.ties', cursor_columns => '{k1}', lookback => '1 hour');
SELECT redshift_fdw.create_capture('bad', 'src.events', schedule => '5');
SELECT redshift_fdw.create_capture('bad', 'src.events', template => 'SELECT {{if}}');
SELECT redshift_fdw.create_capture('events', 'src.events');
CREATE TABLE wrong_target (id integer);
SELECT redshift_fdw.create_capture('bad', 'src.events', target => 'wrong_target');
SELECT redshift_fdw.poll('no_such_binding');

-- ===================================================================
-- Drop
-- ===================================================================
SELECT redshift_fdw.drop_capture('recent', drop_target => true);
SELECT count(*) FROM pg_class WHERE relname IN ('recent', '_rsfdw_capture_recent');
SELECT redshift_fdw.disable_capture('events');
SELECT name, enabled FROM redshift_fdw.captures ORDER BY name;

-- ===================================================================
-- Roles: a role sees, polls and changes only its own bindings
-- ===================================================================
CREATE ROLE cap_a;
CREATE ROLE cap_b;
GRANT USAGE ON SCHEMA src TO cap_a, cap_b;
GRANT SELECT ON src.items TO cap_a, cap_b;
GRANT USAGE ON FOREIGN SERVER rs TO cap_a, cap_b;
GRANT CREATE ON SCHEMA public TO cap_a;
CREATE USER MAPPING FOR cap_a SERVER rs OPTIONS (user :'rs_user', password :'rs_password');
SET ROLE cap_a;
SELECT name, owner, target FROM redshift_fdw.create_capture('a_items', 'src.items', target => 'a_items');
SELECT rows_captured FROM redshift_fdw.poll('a_items');
SELECT name FROM redshift_fdw.captures ORDER BY name;
RESET ROLE;
SET ROLE cap_b;
SELECT count(*) AS visible_to_b FROM redshift_fdw.captures;
SELECT redshift_fdw.poll('a_items');
SELECT redshift_fdw.drop_capture('a_items');
UPDATE redshift_fdw.capture SET enabled = false;
RESET ROLE;
SELECT name, owner, enabled FROM redshift_fdw.capture WHERE name = 'a_items';

DROP EXTENSION redshift_fdw CASCADE;
DROP OWNED BY cap_a, cap_b;
DROP ROLE cap_a, cap_b;
DROP SCHEMA src CASCADE;
DROP TABLE items, ties_full, events, ties, events_batched, types_copy, types_doc, events_override, wrong_target;
