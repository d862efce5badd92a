--
-- Every Redshift type arrives intact; a value that does not convert names
-- the column and the foreign table.  (Remote tables: test/fixtures.)
--
\i test/fixtures/regress_server.sql
CREATE SCHEMA rs;
IMPORT FOREIGN SCHEMA fdw_test LIMIT TO (types) FROM SERVER rs INTO rs;

-- the local types IMPORT chose
SELECT attname, format_type(atttypid, atttypmod), attnotnull
  FROM pg_attribute WHERE attrelid = 'rs.types'::regclass AND attnum > 0
 ORDER BY attnum;

\x on
SELECT * FROM rs.types ORDER BY id;
\x off

-- values, not just their text
SELECT id, c_bigint, c_decimal, c_decimal * 10 AS decimal_times_10,
       c_real, c_double, 'NaN'::real = c_real AS real_is_nan,
       c_double = 'Infinity' AS double_is_inf
  FROM rs.types ORDER BY id;
SELECT id, c_varbyte, length(c_varbyte) AS bytes, c_varbyte = '\x00ff10'::bytea AS exact
  FROM rs.types ORDER BY id;
SELECT id, c_super, jsonb_typeof(c_super), c_super -> 'a' -> 2 AS nested
  FROM rs.types ORDER BY id;
SELECT id, c_char, length(c_char), c_varchar, octet_length(c_varchar)
  FROM rs.types ORDER BY id;
SELECT id, c_date, c_time, c_timetz, c_timestamp, c_timestamptz,
       c_interval, extract(epoch FROM c_timestamptz) AS epoch
  FROM rs.types ORDER BY id;
SET timezone = 'America/New_York';
SELECT id, c_timestamptz FROM rs.types ORDER BY id;
RESET timezone;
SELECT id, c_geometry, c_geography, c_hllsketch FROM rs.types ORDER BY id;

-- date, time and timestamp comparisons are pushed and agree with local ones
CREATE TABLE loc_types AS SELECT * FROM rs.types;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM rs.types
 WHERE c_date > '2000-01-01' AND c_time < '23:59:59.999999' AND c_timestamp <= '2024-02-26 10:11:12.123456';
SELECT (SELECT array_agg(id ORDER BY id) FROM rs.types WHERE c_date > '2000-01-01')
     = (SELECT array_agg(id ORDER BY id) FROM loc_types WHERE c_date > '2000-01-01') AS date_same,
       (SELECT array_agg(id ORDER BY id) FROM rs.types WHERE c_time >= '00:00:00' AND c_time < '23:59:59.999999')
     = (SELECT array_agg(id ORDER BY id) FROM loc_types WHERE c_time >= '00:00:00' AND c_time < '23:59:59.999999') AS time_same,
       (SELECT array_agg(id ORDER BY id) FROM rs.types WHERE c_timestamptz >= '1970-01-01 00:00:00+00')
     = (SELECT array_agg(id ORDER BY id) FROM loc_types WHERE c_timestamptz >= '1970-01-01 00:00:00+00') AS tstz_same,
       (SELECT array_agg(id ORDER BY id) FROM rs.types WHERE c_double = 'Infinity' OR c_real = 'NaN')
     = (SELECT array_agg(id ORDER BY id) FROM loc_types WHERE c_double = 'Infinity' OR c_real = 'NaN') AS special_floats_same;
DROP TABLE loc_types;

-- a value that does not fit the local type: the error names column and table
CREATE FOREIGN TABLE rs.types_wrong (id integer, c_varchar integer)
  SERVER rs OPTIONS (schema_name 'fdw_test', table_name 'types');
SELECT * FROM rs.types_wrong WHERE id = 1;
CREATE FOREIGN TABLE rs.types_short (id integer, c_varchar varchar(3))
  SERVER rs OPTIONS (schema_name 'fdw_test', table_name 'types');
SELECT * FROM rs.types_short ORDER BY id;

DROP EXTENSION redshift_fdw CASCADE;
