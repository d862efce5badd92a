--
-- Materialization: the API, the change log and its triggers, checked
-- without S3 (server rs has no staging: sync() says so).  The applies
-- themselves, faults and the scheduler are in t/006 and t/007.
--
\i test/fixtures/regress_server.sql
\set SHOW_CONTEXT never
CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2));
CREATE TABLE nokey (a int, b text);
CREATE TABLE nullkey (a int, b text, UNIQUE (a));
CREATE TABLE "Cased" (id int PRIMARY KEY, "ID2" text, id2 text);
CREATE TABLE reserved (id int PRIMARY KEY, _rsfdw_op text);
CREATE VIEW items_view AS SELECT * FROM items;

-- the defaults: key from the primary key, target named after the table
-- (lower-cased) in the server's schema, schedule from update_delay or 30m
SELECT name, owner, server, source, target_schema, target_table, key_columns,
       delta_updates, soft_delete, schedule, enabled
  FROM redshift_fdw.create_materialization('items', 'items', 'rs');
SELECT name, source, target, key_columns, schedule, enabled
  FROM redshift_fdw.materializations;
ALTER SERVER rs OPTIONS (ADD update_delay '5m', ADD schema 'Analytics');
SELECT name, target_schema, target_table
  FROM redshift_fdw.create_materialization('items2', 'items', 'rs',
         target_table => 'Items_Copy', delta_updates => true);
SELECT name, schedule FROM redshift_fdw.materializations ORDER BY name;

-- what cannot be materialized, said before anything is created
SELECT redshift_fdw.create_materialization('items', 'items', 'rs');
SELECT redshift_fdw.create_materialization('bad name!', 'items', 'rs');
SELECT redshift_fdw.create_materialization('m', 'nokey', 'rs');
SELECT redshift_fdw.create_materialization('m', 'nullkey', 'rs', key_columns => '{a}');
SELECT redshift_fdw.create_materialization('m', 'nokey', 'rs', key_columns => '{zz}');
SELECT redshift_fdw.create_materialization('m', 'nokey', 'rs', key_columns => '{b}');
SELECT redshift_fdw.create_materialization('m', 'items_view', 'rs');
SELECT redshift_fdw.create_materialization('m', '"Cased"', 'rs');
SELECT redshift_fdw.create_materialization('m', 'reserved', 'rs');
SELECT redshift_fdw.create_materialization('m', 'items', 'no_server');
SELECT redshift_fdw.create_materialization('m', 'items', 'rs', schedule => 'often');
SELECT redshift_fdw.create_materialization('m', 'items', 'rs', delta_updates => true, soft_delete => true);
SELECT redshift_fdw.create_materialization('m', 'items', 'rs', target_table => 'items_copy');
SELECT count(*) AS logs FROM pg_tables WHERE schemaname = 'redshift_fdw_changes';

-- every change is logged with its transaction, in writing order; a
-- rolled-back one never
SELECT change_log AS items_log FROM redshift_fdw.materialization WHERE name = 'items' \gset
SELECT change_log AS items2_log FROM redshift_fdw.materialization WHERE name = 'items2' \gset
INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 3) g;
UPDATE items SET price = price * 2 WHERE id = 1;
UPDATE items SET id = 30 WHERE id = 3;
DELETE FROM items WHERE id = 2;
COPY items FROM STDIN;
4	four	4.00
\.
BEGIN;
INSERT INTO items VALUES (99, 'never', 0);
ROLLBACK;
TRUNCATE items;
SELECT _rsfdw_op AS op, id FROM :items_log ORDER BY _rsfdw_seq;
SELECT count(DISTINCT _rsfdw_xid) AS transactions FROM :items_log;
-- delta updates log images
SELECT _rsfdw_op AS op, id, _rsfdw_image AS image FROM :items2_log ORDER BY _rsfdw_seq;

-- the scheduler knows them; sync() needs S3 staging and no writes before
-- it in the transaction
SELECT kind, binding, schedule, enabled FROM redshift_fdw._jobs ORDER BY kind, binding;
SELECT kind, name, state FROM redshift_fdw.status ORDER BY name;
SELECT redshift_fdw.sync('items');
BEGIN;
INSERT INTO items VALUES (5, 'five', 5);
SELECT redshift_fdw.sync('items');
ROLLBACK;
SELECT redshift_fdw.sync('nope');
-- alter, disable, enable
SELECT name, schedule, enabled FROM redshift_fdw.alter_materialization('items', schedule => '1h');
SELECT redshift_fdw.alter_materialization('items', schedule => 'soon');
SELECT redshift_fdw.disable_materialization('items');
SELECT kind, binding, next_run IS NULL AS never FROM redshift_fdw._jobs WHERE binding = 'items';
SELECT redshift_fdw.enable_materialization('items');
SELECT enabled FROM redshift_fdw.materializations WHERE name = 'items';

SELECT redshift_fdw.run_now('items');
SELECT run_requested IS NOT NULL AS requested FROM redshift_fdw.materialization WHERE name = 'items';
SELECT kind, binding, next_run IS NOT NULL AS due FROM redshift_fdw._jobs WHERE binding = 'items';

-- keys whose every pending change is an insert skip the upsert only while
-- the key is NOT NULL and unique (a partial unique index does not count)
SELECT redshift_fdw._mat_inserts_are_new(m) AS with_pk FROM redshift_fdw._mat('items') m;
ALTER TABLE items DROP CONSTRAINT items_pkey;
CREATE UNIQUE INDEX items_partial ON items (id) WHERE id > 0;
SELECT redshift_fdw._mat_inserts_are_new(m) AS partial_only FROM redshift_fdw._mat('items') m;
DROP INDEX items_partial;
ALTER TABLE items ADD PRIMARY KEY (id);
SELECT redshift_fdw._mat_inserts_are_new(m) AS pk_again FROM redshift_fdw._mat('items') m;

-- another role sees none of them
CREATE ROLE mat_other;
SET ROLE mat_other;
SELECT count(*) FROM redshift_fdw.materializations;
SELECT redshift_fdw.sync('items');
RESET ROLE;

-- the trim after an apply: the logged changes its snapshot saw go, one
-- committed after it stays (a DELETE); once the snapshot sees every
-- change, the log is truncated
SELECT pg_current_snapshot() AS applied_snap \gset
SELECT pg_relation_filenode(:'items_log') AS log_file \gset
INSERT INTO items VALUES (7, 'seven', 7);
SELECT redshift_fdw._mat_applied('items', :'applied_snap', 0, now(), 0, true);
SELECT _rsfdw_op AS op, id, pg_relation_filenode(:'items_log') = :log_file AS same_file
  FROM :items_log ORDER BY _rsfdw_seq;
SELECT redshift_fdw._mat_applied('items', pg_current_snapshot(), 0, now(), 0, true);
SELECT count(*) AS changes_left, pg_relation_filenode(:'items_log') <> :log_file AS truncated
  FROM :items_log;

-- Outside an apply, the changes query's look at the load does nothing.
SELECT redshift_fdw._mat_load_poll();

-- drop removes triggers, log and trigger function
SELECT redshift_fdw.drop_materialization('items2');
SELECT to_regclass(:'items2_log') AS log_left;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'items'::regclass ORDER BY tgname;
SELECT redshift_fdw.drop_materialization('items');
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'items'::regclass;
SELECT count(*) AS objects_left FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'redshift_fdw_changes';
SELECT count(*) AS functions_left FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'redshift_fdw_changes';
INSERT INTO items VALUES (6, 'six', 6);

-- Delta images' dates and timestamps (to_jsonb's text) read back exactly,
-- in zones whose offsets have minutes or (local mean time) seconds, and
-- for BC, infinity and years past 9999, which go through the input.
CREATE TEMP TABLE image_values AS
SELECT ts, ts::timestamp AS t, ts::date AS d FROM (
  SELECT '2024-01-01 00:00:00+00'::timestamptz
         + g * interval '7 hours 13 minutes 17.123457 seconds' AS ts
    FROM generate_series(-2000000, 2000000, 4999) g
  UNION ALL
  SELECT x::timestamptz FROM unnest(ARRAY['infinity', '-infinity', '0044-03-15 12:00:00 BC',
         '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999+00', '10000-01-01 00:00:00+00',
         '1900-01-01 00:00:00+00', '2000-02-29 23:59:59.5+00']) x) a;
CREATE FUNCTION pg_temp.image_mismatches() RETURNS bigint LANGUAGE sql AS $$
  SELECT count(*) FROM image_values
   WHERE redshift_fdw._image_timestamptz(to_jsonb(ts)->>0) IS DISTINCT FROM ts
      OR redshift_fdw._image_timestamp(to_jsonb(t)->>0) IS DISTINCT FROM t
      OR redshift_fdw._image_date(to_jsonb(d)->>0) IS DISTINCT FROM d $$;
SELECT set_config('TimeZone', z, false) AS zone, pg_temp.image_mismatches() AS mismatches
  FROM unnest(ARRAY['UTC', 'Asia/Kolkata', 'America/St_Johns', 'Europe/Amsterdam',
                    'Pacific/Chatham']) z;
SET TimeZone = 'UTC';
SELECT redshift_fdw._image_timestamptz('2024-01-01T10:00:00+05:30') AS east,
       redshift_fdw._image_timestamptz('1900-01-01T00:19:32+00:19:32') AS lmt,
       redshift_fdw._image_date('0044-03-15 BC') AS bc;
SELECT redshift_fdw._image_date('2023-02-29');
RESET TimeZone;
DROP EXTENSION redshift_fdw CASCADE;
DROP ROLE mat_other;
DROP TABLE items, nokey, nullkey, "Cased", reserved CASCADE;
