--
-- IMPORT FOREIGN SCHEMA, discover() and check().
--
\i test/fixtures/regress_server.sql

-- Lists foreign tables of a local schema with their options.
CREATE FUNCTION imported(s text) RETURNS TABLE (tbl text, options text[], cols text)
LANGUAGE sql AS $$
  SELECT c.relname::text, ft.ftoptions,
         string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END, ', '
                    ORDER BY a.attnum)
    FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
   WHERE c.relnamespace = s::regnamespace
   GROUP BY 1, 2 ORDER BY 1 $$;

-- default: tables (not views), NOT NULL and keys kept
CREATE SCHEMA i1;
IMPORT FOREIGN SCHEMA fdw_test FROM SERVER rs INTO i1;
SELECT * FROM imported('i1');
SELECT * FROM i1."MixedCase";
SELECT * FROM i1.keys2 ORDER BY b;

-- views too (including a late-binding view), without NOT NULL and keys
CREATE SCHEMA i2;
IMPORT FOREIGN SCHEMA fdw_test FROM SERVER rs INTO i2
  OPTIONS (import_views 'true', import_not_null 'false', import_keys 'false');
SELECT * FROM imported('i2');
SELECT count(*) FROM i2.orders_lbv;
SELECT * FROM i2.orders_a ORDER BY id LIMIT 2;

-- LIMIT TO and EXCEPT
CREATE SCHEMA i3;
IMPORT FOREIGN SCHEMA fdw_test LIMIT TO (keys2, nokey, no_such_table) FROM SERVER rs INTO i3;
SELECT tbl FROM imported('i3');
CREATE SCHEMA i4;
IMPORT FOREIGN SCHEMA fdw_test EXCEPT (orders, types, "MixedCase") FROM SERVER rs INTO i4;
SELECT tbl FROM imported('i4');
-- a remote schema named in upper case still matches (Redshift folds names)
CREATE SCHEMA i5;
IMPORT FOREIGN SCHEMA "FDW_TEST" LIMIT TO (nokey) FROM SERVER rs INTO i5;
SELECT tbl FROM imported('i5');

-- errors
IMPORT FOREIGN SCHEMA no_such_schema FROM SERVER rs INTO i5;
IMPORT FOREIGN SCHEMA fdw_test FROM SERVER rs INTO i5 OPTIONS (import_all 'true');
IMPORT FOREIGN SCHEMA fdw_test FROM SERVER rs INTO i5 OPTIONS (import_views 'perhaps');

-- discover()
SELECT schema_name, table_name, kind, primary_key, cursor_column,
       jsonb_array_length(columns) AS ncols, estimated_rows IS NOT NULL AS has_rows
  FROM redshift_fdw.discover('rs', ARRAY['fdw_test'], true)
 ORDER BY table_name;
SELECT jsonb_pretty(columns) FROM redshift_fdw.discover('rs', ARRAY['fdw_test'])
 WHERE table_name = 'keys2';
SELECT count(*) FROM redshift_fdw.discover('rs') WHERE schema_name = 'fdw_test';
SELECT redshift_fdw.discover(NULL);

-- check(): good credentials
SELECT step, ok, detail ~ '^(connected|Redshift \d|\d+ schema|\d+ of \d+|schema public exists|public.redshift_fdw_checkpoints ready)' AS detail_ok, hint
  FROM redshift_fdw.check('rs');
-- wrong password, unknown database, nothing listening
CREATE SERVER rs_baddb FOREIGN DATA WRAPPER redshift_fdw
  OPTIONS (host :'rs_host', port :'rs_port', dbname 'no_such_db');
CREATE USER MAPPING FOR CURRENT_USER SERVER rs_baddb
  OPTIONS (user :'rs_user', password :'rs_password');
CREATE SERVER rs_badpw FOREIGN DATA WRAPPER redshift_fdw
  OPTIONS (host :'rs_host', port :'rs_port', dbname 'dev');
CREATE USER MAPPING FOR CURRENT_USER SERVER rs_badpw
  OPTIONS (user :'rs_user', password 'wrong password');
CREATE SERVER rs_closed FOREIGN DATA WRAPPER redshift_fdw
  OPTIONS (host '127.0.0.1', port '1', dbname 'dev', connect_timeout '5');
CREATE USER MAPPING FOR CURRENT_USER SERVER rs_closed
  OPTIONS (user :'rs_user', password :'rs_password');
SELECT step, ok, regexp_replace(detail, 'port \d+', 'port N', 'g') AS detail, hint
  FROM redshift_fdw.check('rs_badpw');
SELECT step, ok, hint FROM redshift_fdw.check('rs_baddb');
SELECT step, ok, hint FROM redshift_fdw.check('rs_closed');
\set VERBOSITY sqlstate
SELECT * FROM redshift_fdw.discover('rs_badpw');
\set VERBOSITY default
-- the password never shows up
SELECT count(*) FROM redshift_fdw.check('rs_badpw') WHERE detail LIKE '%wrong password%';

DROP EXTENSION redshift_fdw CASCADE;
DROP SCHEMA i1, i2, i3, i4, i5 CASCADE;
DROP FUNCTION imported(text);
