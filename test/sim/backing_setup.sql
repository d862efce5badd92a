-- Redshift look-alike objects in the simulator's backing database ("dev").
-- Run once by test/testbed as the backing superuser, psql variables:
--   rs_user, rs_password: the Redshift user clients log in as (MD5).
-- Objects that Redshift keeps in its catalog are created in pg_catalog so
-- they resolve whatever search_path a client sets.

\set ON_ERROR_STOP on
SET client_min_messages = warning;

SET password_encryption = 'md5';
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'rs_user', :'rs_password')
\gexec
GRANT CREATE, TEMPORARY ON DATABASE dev TO :"rs_user";
GRANT CREATE, USAGE ON SCHEMA public TO :"rs_user";

CREATE SCHEMA redshift_sim;
GRANT USAGE ON SCHEMA redshift_sim TO PUBLIC;

-- Redshift-only settings become placeholder variables with defaults.
ALTER DATABASE dev SET redshift_sim.query_group = 'default';
ALTER DATABASE dev SET redshift_sim.enable_case_sensitive_identifier = 'off';
ALTER DATABASE dev SET redshift_sim.enable_result_cache_for_session = 'on';
ALTER DATABASE dev SET escape_string_warning = off;

SET allow_system_table_mods = on;

-- version() as Redshift answers it.
-- Not IMMUTABLE: the planner would then evaluate the builtin by its OID;
-- as a plain SQL function it is inlined wherever it is called in a select
-- list or WHERE clause.
CREATE OR REPLACE FUNCTION pg_catalog.version() RETURNS text
LANGUAGE sql AS
$$SELECT 'PostgreSQL 8.0.2 on i686-pc-linux-gnu, compiled by GCC gcc (GCC) 3.4.2 20041017 (Red Hat 3.4.2-6.fc3), Redshift 1.0.71629'::text$$;

-- Redshift types.  The proxy reports them with Redshift's type OIDs and
-- prints VARBYTE as hex without the \x prefix.
CREATE DOMAIN pg_catalog.super AS jsonb;
CREATE DOMAIN pg_catalog.varbyte AS bytea;
CREATE DOMAIN pg_catalog.geometry AS text;
CREATE DOMAIN pg_catalog.geography AS text;
CREATE DOMAIN pg_catalog.hllsketch AS text;

-- A few Redshift functions tests and demos use.
CREATE FUNCTION pg_catalog.json_parse(text) RETURNS pg_catalog.super
LANGUAGE sql IMMUTABLE AS $$SELECT $1::jsonb::pg_catalog.super$$;
CREATE FUNCTION pg_catalog.getdate() RETURNS timestamp
LANGUAGE sql STABLE AS $$SELECT date_trunc('second', now() AT TIME ZONE 'UTC')$$;

-- Errors raised on the proxy's behalf, so the backend aborts the client's
-- transaction exactly as a real error would.
CREATE FUNCTION redshift_sim.raise_error(sqlstate text, message text,
                                          detail text DEFAULT NULL,
                                          hint text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = sqlstate, MESSAGE = message,
    DETAIL = coalesce(detail, ''), HINT = coalesce(hint, '');
END $$;
GRANT EXECUTE ON FUNCTION redshift_sim.raise_error(text, text, text, text)
  TO PUBLIC;

-- Load errors, written by the proxy on its own autocommit connection so
-- they survive the rollback of the failed COPY.
CREATE SEQUENCE redshift_sim.query_id START 100000;
GRANT USAGE ON SEQUENCE redshift_sim.query_id TO PUBLIC;
CREATE TABLE redshift_sim.load_errors (
  userid integer, slice integer DEFAULT 0, tbl integer,
  starttime timestamp DEFAULT (now() AT TIME ZONE 'UTC'),
  session integer, query integer, transaction_id bigint,
  filename text, line_number bigint, colname text, type text,
  col_length text, "position" integer, raw_line text,
  raw_field_value text, err_code integer, err_reason text);

CREATE VIEW pg_catalog.stl_load_errors AS
SELECT userid, slice, tbl, starttime, session, query,
       filename::char(256) AS filename, line_number,
       colname::char(127) AS colname, type::char(10) AS type,
       col_length::char(10) AS col_length, "position",
       raw_line::char(1024) AS raw_line,
       raw_field_value::char(1024) AS raw_field_value,
       err_code, err_reason::char(100) AS err_reason
  FROM redshift_sim.load_errors;

CREATE VIEW pg_catalog.sys_load_error_detail AS
SELECT userid AS user_id, query AS query_id, transaction_id,
       session AS session_id, starttime AS start_time,
       filename::char(256) AS file_name, line_number,
       colname::char(127) AS column_name, type::char(10) AS column_type,
       col_length::char(10) AS column_length, "position",
       err_code AS error_code, err_reason::char(512) AS error_message
  FROM redshift_sim.load_errors;

-- Late-binding views are marked by the proxy with security_barrier=false.
CREATE FUNCTION redshift_sim.is_late_binding(c pg_class) RETURNS boolean
LANGUAGE sql STABLE AS
$$SELECT c.relkind = 'v' AND coalesce('security_barrier=false' = ANY (c.reloptions), false)$$;

CREATE FUNCTION redshift_sim.redshift_type_name(t oid, typmod integer)
RETURNS text LANGUAGE sql STABLE AS $$
SELECT CASE
  WHEN typname IN ('super', 'varbyte', 'geometry', 'geography', 'hllsketch')
    THEN typname::text
  ELSE format_type(t, typmod) END
FROM pg_type WHERE oid = t
$$;

CREATE VIEW pg_catalog.svv_tables AS
SELECT current_database()::varchar(128) AS table_catalog,
       n.nspname::varchar(128) AS table_schema,
       c.relname::varchar(128) AS table_name,
       (CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'VIEW'
        WHEN 'f' THEN 'EXTERNAL TABLE' ELSE 'BASE TABLE' END)::varchar(128)
         AS table_type,
       obj_description(c.oid, 'pg_class')::varchar(128) AS remarks
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
   AND n.nspname NOT IN ('redshift_sim', 'pg_toast')
   AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%';

CREATE VIEW pg_catalog.svv_all_tables AS
SELECT table_catalog AS database_name, table_schema AS schema_name,
       table_name, table_type, NULL::varchar(128) AS table_acl, remarks
  FROM pg_catalog.svv_tables;

CREATE VIEW pg_catalog.svv_columns AS
SELECT current_database()::varchar(128) AS table_catalog,
       n.nspname::varchar(128) AS table_schema,
       c.relname::varchar(128) AS table_name,
       a.attname::varchar(128) AS column_name,
       a.attnum::integer AS ordinal_position,
       pg_get_expr(d.adbin, d.adrelid)::varchar(4000) AS column_default,
       (CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END)::varchar(3)
         AS is_nullable,
       (CASE WHEN t.typname IN ('super', 'varbyte', 'geometry', 'geography',
                                'hllsketch') THEN t.typname::text
             WHEN t.typname = 'bpchar' THEN 'character'
             WHEN t.typname = 'varchar' THEN 'character varying'
             ELSE format_type(a.atttypid, NULL) END)::varchar(128)
         AS data_type,
       (CASE WHEN t.typname IN ('varchar', 'bpchar') AND a.atttypmod > 0
             THEN a.atttypmod - 4
             WHEN t.typname = 'varbyte' THEN 64000 END)::integer
         AS character_maximum_length,
       (CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0
             THEN ((a.atttypmod - 4) >> 16) & 65535
             WHEN t.typname = 'int2' THEN 16 WHEN t.typname = 'int4' THEN 32
             WHEN t.typname = 'int8' THEN 64 WHEN t.typname = 'float4' THEN 24
             WHEN t.typname = 'float8' THEN 53 END)::integer
         AS numeric_precision,
       (CASE WHEN t.typname IN ('numeric') THEN 10
             WHEN t.typname IN ('int2', 'int4', 'int8', 'float4', 'float8')
             THEN 2 END)::integer AS numeric_precision_radix,
       (CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0
             THEN (a.atttypmod - 4) & 65535
             WHEN t.typname IN ('int2', 'int4', 'int8') THEN 0 END)::integer
         AS numeric_scale,
       (CASE WHEN t.typname IN ('timestamp', 'timestamptz', 'time', 'timetz')
             THEN 6 END)::integer AS datetime_precision,
       NULL::varchar(128) AS interval_type,
       NULL::varchar(128) AS interval_precision,
       NULL::varchar(128) AS character_set_catalog,
       NULL::varchar(128) AS character_set_schema,
       NULL::varchar(128) AS character_set_name,
       NULL::varchar(128) AS collation_catalog,
       NULL::varchar(128) AS collation_schema,
       NULL::varchar(128) AS collation_name,
       NULL::varchar(128) AS domain_name,
       col_description(c.oid, a.attnum)::varchar(256) AS remarks
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                     AND NOT a.attisdropped
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p')
   AND n.nspname NOT IN ('redshift_sim', 'pg_toast')
   AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%';

CREATE VIEW pg_catalog.svv_all_columns AS
SELECT table_catalog AS database_name, table_schema AS schema_name,
       table_name, column_name, ordinal_position, column_default,
       is_nullable, data_type, character_maximum_length, numeric_precision,
       numeric_scale, remarks
  FROM pg_catalog.svv_columns;

-- pg_table_def shows only schemas on the search_path and, like Redshift's
-- pg_attribute, nothing of late-binding views.
CREATE VIEW pg_catalog.pg_table_def AS
SELECT n.nspname AS schemaname, c.relname AS tablename, a.attname AS "column",
       redshift_sim.redshift_type_name(a.atttypid, a.atttypmod)::varchar(128)
         AS type,
       'none'::char(32) AS encoding, false AS distkey, 0 AS sortkey,
       a.attnotnull AS notnull
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
                     AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'v', 'm', 'p')
   AND NOT redshift_sim.is_late_binding(c)
   AND pg_table_is_visible(c.oid)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'redshift_sim');

CREATE VIEW pg_catalog.svv_table_info AS
SELECT current_database()::text AS database, n.nspname::text AS schema,
       c.oid::integer AS table_id, c.relname::text AS "table",
       'Y'::char(1) AS encoded, 'AUTO(EVEN)'::text AS diststyle,
       NULL::char(128) AS sortkey1, 'N'::char(1) AS max_varchar,
       (pg_total_relation_size(c.oid) / 1048576)::bigint AS size,
       0::numeric(10, 4) AS pct_used, 0::numeric(5, 2) AS unsorted,
       0::numeric(5, 2) AS stats_off,
       greatest(c.reltuples, 0)::numeric(38, 0) AS tbl_rows,
       greatest(c.reltuples, 0)::numeric(38, 0) AS estimated_visible_rows
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'redshift_sim',
                         'pg_toast')
   AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
   AND has_table_privilege(c.oid, 'SELECT');

RESET allow_system_table_mods;

GRANT SELECT ON pg_catalog.svv_tables, pg_catalog.svv_all_tables,
  pg_catalog.svv_columns, pg_catalog.svv_all_columns, pg_catalog.pg_table_def,
  pg_catalog.svv_table_info, pg_catalog.stl_load_errors,
  pg_catalog.sys_load_error_detail TO PUBLIC;
