/* redshift_fdw install script, version 0.1.0 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION redshift_fdw" to load this file. \quit

-- Everything lives in schema redshift_fdw.  As pg_cron does, the control
-- file names pg_catalog and this script creates the schema, so that the
-- schema is a member of the extension and DROP EXTENSION removes it.  Every
-- object below is schema-qualified.
CREATE SCHEMA redshift_fdw;
GRANT USAGE ON SCHEMA redshift_fdw TO PUBLIC;

CREATE FUNCTION redshift_fdw.redshift_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FUNCTION redshift_fdw.redshift_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER redshift_fdw
  HANDLER redshift_fdw.redshift_fdw_handler
  VALIDATOR redshift_fdw.redshift_fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER redshift_fdw IS
  'Amazon Redshift foreign-data wrapper';

-- The version of the loaded shared library, so a mismatch between the SQL
-- objects and the installed module is visible.
CREATE FUNCTION redshift_fdw.library_version()
RETURNS text
AS 'MODULE_PATHNAME', 'redshift_fdw_library_version'
LANGUAGE C STRICT IMMUTABLE;

-- Connections of this backend: close them, list them.
CREATE FUNCTION redshift_fdw.disconnect(server text)
RETURNS bool
AS 'MODULE_PATHNAME', 'redshift_fdw_disconnect'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redshift_fdw.disconnect_all()
RETURNS bool
AS 'MODULE_PATHNAME', 'redshift_fdw_disconnect_all'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redshift_fdw.connection_list(
    OUT server_name text, OUT user_name text, OUT valid bool, OUT busy bool,
    OUT redshift bool, OUT opened_at timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redshift_fdw_connection_list'
LANGUAGE C STRICT VOLATILE;

CREATE VIEW redshift_fdw.connections AS
  SELECT * FROM redshift_fdw.connection_list();
GRANT SELECT ON redshift_fdw.connections TO PUBLIC;

-- Discovery and validation.
CREATE FUNCTION redshift_fdw.discover(
    server name, schemas text[] DEFAULT NULL, include_views bool DEFAULT false,
    OUT schema_name text, OUT table_name text, OUT kind text,
    OUT columns jsonb, OUT primary_key text[], OUT cursor_column text,
    OUT estimated_rows bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redshift_fdw_discover'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION redshift_fdw.check(
    server text, OUT step text, OUT ok bool, OUT detail text, OUT hint text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redshift_fdw_check'
LANGUAGE C STRICT VOLATILE;

-- S3 staging: checks and file transfer through the server's bucket and
-- prefix, with the credentials of the user mapping (or, for superusers,
-- the server's environment and ~/.aws files).
CREATE FUNCTION redshift_fdw.s3_check(
    server text, OUT step text, OUT ok bool, OUT detail text, OUT hint text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redshift_fdw_s3_check'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redshift_fdw.s3_put_file(server text, path text, key text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'redshift_fdw_s3_put_file'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redshift_fdw.s3_get_file(server text, key text, path text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'redshift_fdw_s3_get_file'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redshift_fdw.s3_list(
    server text, prefix text DEFAULT '', OUT key text, OUT size bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redshift_fdw_s3_list'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redshift_fdw.s3_delete(server text, keys text[])
RETURNS integer
AS 'MODULE_PATHNAME', 'redshift_fdw_s3_delete'
LANGUAGE C STRICT VOLATILE;
