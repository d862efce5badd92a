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

-- ======================================================================
-- Capture bindings: Redshift -> PostgreSQL.  A poll is an INSERT ...
-- SELECT through the foreign-data wrapper, so the cursor predicate and
-- ORDER BY are pushed down to Redshift (EXPLAIN shows them remote).
-- ======================================================================

CREATE FUNCTION redshift_fdw.render_template(
    template text, schema_name text, table_name text,
    cursor_columns text[] DEFAULT '{}', is_first_query bool DEFAULT true)
RETURNS text
AS 'MODULE_PATHNAME', 'redshift_fdw_render_template'
LANGUAGE C CALLED ON NULL INPUT IMMUTABLE;

CREATE FUNCTION redshift_fdw.check_template(template text)
RETURNS bool
AS 'MODULE_PATHNAME', 'redshift_fdw_check_template'
LANGUAGE C STRICT IMMUTABLE;

CREATE FUNCTION redshift_fdw.parse_schedule(schedule text)
RETURNS text
AS 'MODULE_PATHNAME', 'redshift_fdw_parse_schedule'
LANGUAGE C STRICT IMMUTABLE;

CREATE FUNCTION redshift_fdw.next_poll(schedule text, last_start timestamptz)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'redshift_fdw_next_poll'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION redshift_fdw.describe_query(
    server name, query text, OUT column_name text, OUT column_type text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'redshift_fdw_describe_query'
LANGUAGE C STRICT VOLATILE;

CREATE FUNCTION redshift_fdw.bind_query(sql text, vals text[], types regtype[])
RETURNS text
AS 'MODULE_PATHNAME', 'redshift_fdw_bind_query'
LANGUAGE C CALLED ON NULL INPUT STABLE;

-- A random advisory-lock key for a binding.
CREATE FUNCTION redshift_fdw._new_lock_key()
RETURNS bigint LANGUAGE sql VOLATILE AS
$$SELECT ('x' || left(md5(gen_random_uuid()::text), 16))::bit(64)::bigint$$;

CREATE TABLE redshift_fdw.capture (
    name text PRIMARY KEY,
    owner regrole NOT NULL DEFAULT current_user::regrole,
    server name NOT NULL,
    source regclass,              -- the foreign table read (NULL: custom query)
    query_table regclass,         -- private foreign table of a template binding
    remote_schema text,
    remote_table text,
    target regclass NOT NULL,
    cursor_columns text[] NOT NULL DEFAULT '{}',
    key_columns text[] NOT NULL DEFAULT '{}',
    schedule text                 -- NULL: the server's poll option, else 24h
      CHECK (schedule IS NULL OR redshift_fdw.parse_schedule(schedule) IS NOT NULL),
    template text,                -- NULL: the built-in query
    format text NOT NULL DEFAULT 'table' CHECK (format IN ('table', 'document')),
    lookback interval,
    enabled bool NOT NULL DEFAULT true,
    cursor_state text[],          -- last cursor tuple (ISO text); NULL: read all
    row_id_next bigint NOT NULL DEFAULT 0,
    last_polled timestamptz,      -- start of the last poll
    last_rows bigint,
    document_count bigint NOT NULL DEFAULT 0,
    last_error text,
    consecutive_failures int NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    retry_at timestamptz,         -- after a failed run: when to retry
    run_requested timestamptz,    -- set by run_now()
    -- the advisory lock its runs hold: random, and readable only by the
    -- owner (row-level security), so no other role can take it
    lock_key bigint NOT NULL DEFAULT redshift_fdw._new_lock_key()
);
-- Each role sees and changes only its own bindings (superusers all);
-- pg_dump keeps them.
ALTER TABLE redshift_fdw.capture ENABLE ROW LEVEL SECURITY;
CREATE POLICY capture_owner ON redshift_fdw.capture
  USING (pg_has_role(current_user, owner, 'MEMBER'))
  WITH CHECK (pg_has_role(current_user, owner, 'MEMBER'));
GRANT SELECT, INSERT, UPDATE, DELETE ON redshift_fdw.capture TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('redshift_fdw.capture', '');

-- The value of an option in an options array.
CREATE FUNCTION redshift_fdw._option(options text[], option text)
RETURNS text LANGUAGE sql STABLE AS
$$SELECT option_value FROM pg_options_to_table(options) WHERE option_name = option$$;

-- The effective schedule: the binding's own, else the server's poll
-- option, else daily.
CREATE FUNCTION redshift_fdw._effective_schedule(schedule text, server_options text[])
RETURNS text LANGUAGE sql STABLE AS
$$SELECT coalesce(schedule, redshift_fdw._option(server_options, 'poll'), '24h')$$;

-- The effective schedule of a binding.
CREATE FUNCTION redshift_fdw._schedule(b redshift_fdw.capture)
RETURNS text LANGUAGE sql STABLE AS $$
SELECT redshift_fdw._effective_schedule(
         b.schedule, (SELECT srvoptions FROM pg_foreign_server WHERE srvname = b.server))
$$;

-- A binding, or an error naming it.
CREATE FUNCTION redshift_fdw._binding(binding text, lock bool DEFAULT false)
RETURNS redshift_fdw.capture LANGUAGE plpgsql AS $$
DECLARE
  b redshift_fdw.capture;
BEGIN
  IF lock THEN
    SELECT * INTO b FROM redshift_fdw.capture WHERE name = binding FOR UPDATE;
  ELSE
    SELECT * INTO b FROM redshift_fdw.capture WHERE name = binding;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'capture binding "%" does not exist', binding
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM redshift_fdw.captures lists the bindings.';
  END IF;
  RETURN b;
END $$;

-- The advisory-lock key of a binding the caller may see (NULL otherwise):
-- its runs hold it, so it never runs twice at once.
CREATE FUNCTION redshift_fdw._binding_lock_key(binding text)
RETURNS bigint LANGUAGE sql STABLE AS
$$SELECT lock_key FROM redshift_fdw.capture WHERE name = binding$$;

-- The relation a binding reads: its foreign table or its private query table.
CREATE FUNCTION redshift_fdw._source_rel(b redshift_fdw.capture)
RETURNS regclass LANGUAGE sql STABLE AS
$$SELECT coalesce(b.query_table, b.source)$$;

-- Quoted columns of a relation, in order.
CREATE FUNCTION redshift_fdw._columns(rel regclass)
RETURNS text[] LANGUAGE sql STABLE AS $$
SELECT array_agg(quote_ident(attname) ORDER BY attnum) FROM pg_attribute
 WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped
$$;

-- Cursor column expressions (text ones under the C collation, which is
-- Redshift's byte order and keeps them pushed down) and their types; an
-- error names a cursor column the source does not have.
CREATE FUNCTION redshift_fdw._cursor(b redshift_fdw.capture,
                                     OUT exprs text[], OUT types regtype[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
  c text;
  a record;
BEGIN
  exprs := '{}';
  types := '{}';
  FOREACH c IN ARRAY b.cursor_columns LOOP
    SELECT att.atttypid::regtype AS typ, t.typcategory AS cat INTO a
      FROM pg_attribute att JOIN pg_type t ON t.oid = att.atttypid
     WHERE att.attrelid = redshift_fdw._source_rel(b) AND att.attname = c
       AND att.attnum > 0 AND NOT att.attisdropped;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'cursor column "%" of capture binding "%" is not in its source %',
        c, b.name, redshift_fdw._source_rel(b)
        USING ERRCODE = 'undefined_column',
              HINT = 'The cursor columns must be columns the source returns.';
    END IF;
    exprs := exprs || CASE WHEN a.cat = 'S' THEN format('%I COLLATE "C"', c)
                           ELSE quote_ident(c) END;
    types := types || a.typ;
  END LOOP;
END $$;

-- "(c1, c2) op (v1::t1, v2::t2)" for cursor values.
CREATE FUNCTION redshift_fdw._compare(exprs text[], types regtype[], vals text[], op text)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT CASE WHEN cardinality(exprs) = 1
            THEN format('%s %s %s::%s', exprs[1], op, quote_nullable(vals[1]), types[1])
            ELSE format('(%s) %s (%s)', array_to_string(exprs, ', '), op,
                        (SELECT string_agg(format('%s::%s', quote_nullable(vals[i]), types[i]), ', '
                                           ORDER BY i)
                           FROM generate_subscripts(exprs, 1) i))
       END
$$;

-- The JSON document of a row, by the reference encoding (numbers as JSON
-- numbers, NUMERIC as strings, NaN/Infinity as strings, DATE as RFC 3339
-- at midnight UTC, timestamps as RFC 3339, VARBYTE as base64, SUPER as
-- itself), for the source's columns, plus _meta.
CREATE FUNCTION redshift_fdw._document_expr(rel regclass, meta text)
RETURNS text LANGUAGE sql STABLE AS $$
SELECT 'jsonb_build_object(' || string_agg(format('%L, %s', attname,
  CASE format_type(atttypid, NULL)
    WHEN 'boolean' THEN format('to_jsonb(s.%I)', attname)
    WHEN 'smallint' THEN format('to_jsonb(s.%I)', attname)
    WHEN 'integer' THEN format('to_jsonb(s.%I)', attname)
    WHEN 'bigint' THEN format('to_jsonb(s.%I)', attname)
    WHEN 'numeric' THEN format('to_jsonb(s.%I::text)', attname)
    WHEN 'real' THEN format($f$CASE WHEN s.%1$I IN ('NaN', 'Infinity', '-Infinity') THEN to_jsonb(s.%1$I::text) ELSE to_jsonb(s.%1$I) END$f$, attname)
    WHEN 'double precision' THEN format($f$CASE WHEN s.%1$I IN ('NaN', 'Infinity', '-Infinity') THEN to_jsonb(s.%1$I::text) ELSE to_jsonb(s.%1$I) END$f$, attname)
    WHEN 'date' THEN format($f$to_jsonb(to_char(s.%I, 'YYYY-MM-DD') || 'T00:00:00Z')$f$, attname)
    WHEN 'timestamp without time zone' THEN format($f$to_jsonb(regexp_replace(to_char(s.%I, 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\.?0+$', '') || 'Z')$f$, attname)
    WHEN 'timestamp with time zone' THEN format($f$to_jsonb(regexp_replace(to_char(s.%I AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '\.?0+$', '') || 'Z')$f$, attname)
    WHEN 'bytea' THEN format($f$to_jsonb(translate(encode(s.%I, 'base64'), E'\n', ''))$f$, attname)
    WHEN 'jsonb' THEN format('s.%I', attname)
    ELSE format('to_jsonb(s.%I::text)', attname)
  END), ', ' ORDER BY attnum) || ', ''_meta'', ' || meta || ')'
  FROM pg_attribute WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped
$$;

-- One step of a poll: reads what the cursor state says is next (at most
-- batch_rows rows, never splitting rows that share a cursor tuple, when
-- batch_rows > 0), writes it into the target and saves the new cursor
-- state, all in the caller's transaction.  more: another step has rows.
CREATE FUNCTION redshift_fdw._capture_step(binding text, batch_rows bigint,
    poll_start timestamptz, index_base bigint,
    OUT rows_captured bigint, OUT more bool)
LANGUAGE plpgsql
SET datestyle TO 'ISO, YMD' SET timezone TO 'UTC' SET extra_float_digits TO 3
SET intervalstyle TO 'postgres'
AS $body$
DECLARE
  b redshift_fdw.capture;
  src regclass;
  cols text[];
  col_list text;
  cur record;
  order_asc text;
  order_desc text;
  cond text := '';
  vals text[];
  moved text;
  boundary text[];
  last_vals text[];
  keyless bool;
  incremental bool;
  keys text;
  not_null text;
  doc text;
  meta text;
  tag text;
  q text;
BEGIN
  -- waits while the scheduler runs this binding (it holds the lock for the
  -- whole run; re-entrant for its own steps); taken before the row lock,
  -- so the two are always taken in the same order
  PERFORM pg_advisory_xact_lock(redshift_fdw._binding_lock_key(binding));
  b := redshift_fdw._binding(binding, true);
  src := redshift_fdw._source_rel(b);
  cols := redshift_fdw._columns(src);
  col_list := 's.' || array_to_string(cols, ', s.');
  cur := redshift_fdw._cursor(b);
  incremental := cardinality(b.cursor_columns) > 0;
  keyless := cardinality(b.key_columns) = 0;
  keys := (SELECT string_agg(quote_ident(k), ', ') FROM unnest(b.key_columns) k);
  more := false;
  IF incremental THEN
    order_asc := (SELECT string_agg('s.' || e, ', ') FROM unnest(cur.exprs) e);
    order_desc := (SELECT string_agg('s.' || e || ' DESC', ', ') FROM unnest(cur.exprs) e);
    -- a NULL cursor value never becomes the stored cursor (c > NULL would
    -- match nothing ever after)
    not_null := (SELECT string_agg(format('s.%I IS NOT NULL', c), ' AND ') FROM unnest(b.cursor_columns) c);
  END IF;

  IF b.query_table IS NOT NULL THEN
    -- a template: render it for this state and point the query table at it
    EXECUTE format('ALTER FOREIGN TABLE %s OPTIONS (SET query %L)', b.query_table,
      redshift_fdw.bind_query(
        redshift_fdw.render_template(b.template, b.remote_schema, b.remote_table,
                                     b.cursor_columns, b.cursor_state IS NULL),
        b.cursor_state, cur.types));
  ELSIF incremental AND b.cursor_state IS NOT NULL THEN
    vals := b.cursor_state;
    IF b.lookback IS NOT NULL THEN
      -- re-read the tail: the first cursor column only, moved back
      EXECUTE format('SELECT (%L::%s - %L::interval)::%s::text', vals[1], cur.types[1],
                     b.lookback, cur.types[1]) INTO moved;
      cond := ' WHERE ' || format('s.%s >= %L::%s', cur.exprs[1], moved, cur.types[1]);
    ELSE
      cond := ' WHERE ' || redshift_fdw._compare(
        (SELECT array_agg('s.' || e) FROM unnest(cur.exprs) e), cur.types, vals, '>');
    END IF;
  END IF;

  IF incremental AND b.query_table IS NULL AND batch_rows > 0 THEN
    -- the cursor tuple the batch ends at: a batch never splits a tuple
    EXECUTE format('SELECT ARRAY[%s]::text[] FROM %s s%s%s ORDER BY %s LIMIT 1 OFFSET %s',
                   (SELECT string_agg(format('s.%I::text', c), ', ') FROM unnest(b.cursor_columns) c),
                   src, cond, CASE WHEN cond = '' THEN ' WHERE ' ELSE ' AND ' END || not_null,
                   order_asc, batch_rows - 1)
      INTO boundary;
    IF boundary IS NOT NULL THEN
      cond := cond || CASE WHEN cond = '' THEN ' WHERE ' ELSE ' AND ' END
        || redshift_fdw._compare((SELECT array_agg('s.' || e) FROM unnest(cur.exprs) e),
                                 cur.types, boundary, '<=');
      more := true;
    END IF;
  END IF;

  tag := redshift_fdw._option((SELECT srvoptions FROM pg_foreign_server WHERE srvname = b.server),
                              'source_tag');
  meta := format($m$jsonb_build_object('polled', %L, 'index', %s + s._idx, 'row_id', %s, 'op', %s,
                   'source', jsonb_build_object('schema', %L, 'table', %L, 'tag', %L))$m$,
                 to_char(poll_start, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), index_base,
                 CASE WHEN keyless THEN 's._row_id' ELSE 'NULL' END,
                 CASE WHEN keyless AND incremental THEN '''c'''
                      WHEN keyless THEN format('CASE WHEN s._row_id < %s THEN ''u'' ELSE ''c'' END', b.row_id_next)
                      ELSE 's._op' END,
                 b.remote_schema, b.remote_table, tag);

  IF NOT incremental THEN
    -- full refresh: the target becomes exactly what the source holds now,
    -- in this transaction (readers see the old rows until it commits)
    IF b.format = 'table' THEN
      EXECUTE format('DELETE FROM %s', b.target);
      IF keyless THEN
        EXECUTE format('INSERT INTO %s (_row_id, %s) SELECT row_number() OVER () - 1, %s FROM %s s',
                       b.target, array_to_string(cols, ', '), col_list, src);
      ELSE
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s s',
                       b.target, array_to_string(cols, ', '), col_list, src);
      END IF;
      GET DIAGNOSTICS rows_captured = ROW_COUNT;
    ELSE
      doc := redshift_fdw._document_expr(src, meta);
      IF keyless THEN
        EXECUTE format('INSERT INTO %1$s AS t (_row_id, doc) '
                       'SELECT s._row_id, %2$s FROM (SELECT %3$s, row_number() OVER () - 1 AS _row_id, '
                       'row_number() OVER () - 1 AS _idx FROM %4$s s) s '
                       'ON CONFLICT (_row_id) DO UPDATE SET doc = EXCLUDED.doc',
                       b.target, doc, col_list, src);
        GET DIAGNOSTICS rows_captured = ROW_COUNT;
        -- fewer rows than last time: the missing row ids are deletes
        EXECUTE format($u$UPDATE %s SET doc = jsonb_set(jsonb_set(doc, '{_meta,op}', '"d"'), '{_meta,polled}', to_jsonb(%L::text))
                        WHERE _row_id >= %s AND doc->'_meta'->>'op' <> 'd'$u$,
                       b.target, to_char(poll_start, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), rows_captured);
        UPDATE redshift_fdw.capture SET row_id_next = greatest(row_id_next, rows_captured)
         WHERE name = b.name;
      ELSE
        EXECUTE format('INSERT INTO %1$s AS t (%2$s, doc) '
                       'SELECT %5$s, %3$s FROM (SELECT %4$s, row_number() OVER () - 1 AS _idx, '
                       'CASE WHEN t.%6$s IS NULL THEN ''c'' ELSE ''u'' END AS _op '
                       'FROM %7$s s LEFT JOIN %1$s t USING (%2$s)) s '
                       'ON CONFLICT (%2$s) DO UPDATE SET doc = EXCLUDED.doc',
                       b.target, keys, doc, col_list,
                       (SELECT string_agg('s.' || quote_ident(k), ', ') FROM unnest(b.key_columns) k),
                       quote_ident(b.key_columns[1]), src);
        GET DIAGNOSTICS rows_captured = ROW_COUNT;
        -- rows gone from the source are deletes
        EXECUTE format($u$UPDATE %s SET doc = jsonb_set(jsonb_set(doc, '{_meta,op}', '"d"'), '{_meta,polled}', to_jsonb(%L::text))
                        WHERE doc->'_meta'->>'polled' <> %L AND doc->'_meta'->>'op' <> 'd'$u$,
                       b.target, to_char(poll_start, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                       to_char(poll_start, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
      END IF;
    END IF;
    UPDATE redshift_fdw.capture
       SET last_rows = coalesce(CASE WHEN index_base = 0 THEN 0 ELSE last_rows END, 0) + rows_captured,
           document_count = document_count + rows_captured
     WHERE name = b.name;
    RETURN;
  END IF;

  -- incremental: the rows after the cursor, in cursor order; the batch is
  -- materialised once, written to the target and its last tuple kept
  IF b.format = 'table' AND NOT keyless THEN
    q := format('WITH s AS MATERIALIZED (SELECT %1$s FROM %2$s s%3$s), '
                'ins AS (INSERT INTO %4$s (%5$s) SELECT DISTINCT ON (%6$s) %1$s FROM s ORDER BY %6$s, %7$s '
                'ON CONFLICT (%8$s) DO %9$s RETURNING 1) '
                'SELECT (SELECT count(*) FROM ins), (SELECT ARRAY[%10$s]::text[] FROM s WHERE ' || replace(not_null, '%', '%%') || ' ORDER BY %7$s LIMIT 1)',
                col_list, src, cond, b.target, array_to_string(cols, ', '),
                (SELECT string_agg('s.' || quote_ident(k), ', ') FROM unnest(b.key_columns) k),
                order_desc, keys,
                coalesce('UPDATE SET ' || (SELECT string_agg(format('%s = EXCLUDED.%s', c, c), ', ')
                                             FROM unnest(cols) c
                                            WHERE c <> ALL (SELECT quote_ident(k) FROM unnest(b.key_columns) k)),
                         'NOTHING'),
                (SELECT string_agg(format('s.%I::text', c), ', ') FROM unnest(b.cursor_columns) c));
  ELSIF b.format = 'table' THEN
    q := format('WITH s AS MATERIALIZED (SELECT %1$s FROM %2$s s%3$s), '
                'ins AS (INSERT INTO %4$s (_row_id, %5$s) SELECT %6$s + row_number() OVER (ORDER BY %7$s) - 1, %1$s FROM s '
                'RETURNING 1) '
                'SELECT (SELECT count(*) FROM ins), (SELECT ARRAY[%8$s]::text[] FROM s WHERE ' || replace(not_null, '%', '%%') || ' ORDER BY %9$s LIMIT 1)',
                col_list, src, cond, b.target, array_to_string(cols, ', '), b.row_id_next, order_asc,
                (SELECT string_agg(format('s.%I::text', c), ', ') FROM unnest(b.cursor_columns) c),
                order_desc);
  ELSIF keyless THEN
    q := format('WITH s AS MATERIALIZED (SELECT %1$s, %4$s + row_number() OVER (ORDER BY %5$s) - 1 AS _row_id, '
                'row_number() OVER (ORDER BY %5$s) - 1 AS _idx FROM %2$s s%3$s), '
                'ins AS (INSERT INTO %6$s (_row_id, doc) SELECT s._row_id, %7$s FROM s RETURNING 1) '
                'SELECT (SELECT count(*) FROM ins), (SELECT ARRAY[%8$s]::text[] FROM s WHERE ' || replace(not_null, '%', '%%') || ' ORDER BY %9$s LIMIT 1)',
                col_list, src, cond, b.row_id_next, order_asc, b.target,
                redshift_fdw._document_expr(src, meta),
                (SELECT string_agg(format('s.%I::text', c), ', ') FROM unnest(b.cursor_columns) c),
                order_desc);
  ELSE
    q := format('WITH s AS MATERIALIZED (SELECT %1$s, row_number() OVER (ORDER BY %4$s) - 1 AS _idx FROM %2$s s%3$s), '
                'ins AS (INSERT INTO %5$s AS t (%6$s, doc) SELECT DISTINCT ON (%7$s) %7$s, %8$s '
                'FROM (SELECT s.*, CASE WHEN t.%9$s IS NULL THEN ''c'' ELSE ''u'' END AS _op '
                'FROM s LEFT JOIN %5$s t USING (%6$s)) s ORDER BY %7$s, %10$s '
                'ON CONFLICT (%6$s) DO UPDATE SET doc = EXCLUDED.doc RETURNING 1) '
                'SELECT (SELECT count(*) FROM ins), (SELECT ARRAY[%11$s]::text[] FROM s WHERE ' || replace(not_null, '%', '%%') || ' ORDER BY %10$s LIMIT 1)',
                col_list, src, cond, order_asc, b.target, keys,
                (SELECT string_agg('s.' || quote_ident(k), ', ') FROM unnest(b.key_columns) k),
                redshift_fdw._document_expr(src, meta), quote_ident(b.key_columns[1]), order_desc,
                (SELECT string_agg(format('s.%I::text', c), ', ') FROM unnest(b.cursor_columns) c));
  END IF;
  EXECUTE q INTO rows_captured, last_vals;
  IF rows_captured = 0 THEN
    more := false;
  END IF;

  UPDATE redshift_fdw.capture
     SET cursor_state = coalesce(last_vals, cursor_state),
         row_id_next = row_id_next + CASE WHEN keyless THEN rows_captured ELSE 0 END,
         last_rows = coalesce(CASE WHEN index_base = 0 THEN 0 ELSE last_rows END, 0) + rows_captured,
         document_count = document_count + rows_captured
   WHERE name = b.name;
END $body$;

-- Prefixes a poll error with the binding it belongs to.
CREATE FUNCTION redshift_fdw._poll_failed(binding text, state text, message text,
                                          detail text, hint text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  text_msg text := format('poll of capture binding "%s" failed: %s', binding, message);
BEGIN
  IF coalesce(detail, '') <> '' AND coalesce(hint, '') <> '' THEN
    RAISE EXCEPTION USING MESSAGE = text_msg, ERRCODE = state, DETAIL = detail, HINT = hint;
  ELSIF coalesce(detail, '') <> '' THEN
    RAISE EXCEPTION USING MESSAGE = text_msg, ERRCODE = state, DETAIL = detail;
  ELSIF coalesce(hint, '') <> '' THEN
    RAISE EXCEPTION USING MESSAGE = text_msg, ERRCODE = state, HINT = hint;
  ELSE
    RAISE EXCEPTION USING MESSAGE = text_msg, ERRCODE = state;
  END IF;
END $$;

-- One poll now, in this session and transaction (atomic: a failure leaves
-- target and cursor as they were).  Returns rows captured and the cursor.
CREATE FUNCTION redshift_fdw.poll(binding text,
                                  OUT rows_captured bigint, OUT cursor_values jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  started timestamptz := clock_timestamp();
  step record;
  state text; msg text; det text; hnt text;
BEGIN
  PERFORM pg_advisory_xact_lock(redshift_fdw._binding_lock_key(binding));
  PERFORM redshift_fdw._binding(binding, true);
  BEGIN
    step := redshift_fdw._capture_step(binding, 0, started, 0);
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    PERFORM redshift_fdw._poll_failed(binding, state, msg, det, hnt);
  END;
  UPDATE redshift_fdw.capture SET last_polled = started, last_error = NULL
   WHERE name = binding;
  rows_captured := step.rows_captured;
  SELECT to_jsonb(cursor_state) INTO cursor_values FROM redshift_fdw.capture
   WHERE name = binding;
END $$;

-- A long poll committed in batches of batch_rows, each ending at a change
-- of cursor tuple: a failure keeps the batches committed before it, with
-- their cursor, so the next poll resumes there (no loss, no duplicates).
-- Outside a transaction block only (CALL commits).
-- A failure is recorded in last_error (committed) before it is raised.
CREATE PROCEDURE redshift_fdw.poll_in_batches(binding text, batch_rows bigint DEFAULT 100000)
LANGUAGE plpgsql AS $$
DECLARE
  started timestamptz := clock_timestamp();
  step record;
  total bigint := 0;
  failed bool := false;
  state text; msg text; det text; hnt text;
BEGIN
  IF batch_rows < 1 THEN
    RAISE EXCEPTION 'batch_rows must be at least 1' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM redshift_fdw._binding(binding);
  LOOP
    BEGIN
      step := redshift_fdw._capture_step(binding, batch_rows, started, total);
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                              det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
      failed := true;
    END;
    EXIT WHEN failed;
    total := total + step.rows_captured;
    UPDATE redshift_fdw.capture SET last_polled = started, last_error = NULL
     WHERE name = binding;
    COMMIT;
    EXIT WHEN NOT step.more;
  END LOOP;
  IF failed THEN
    UPDATE redshift_fdw.capture SET last_polled = started, last_error = msg
     WHERE name = binding;
    COMMIT;
    PERFORM redshift_fdw._poll_failed(binding, state, msg, det, hnt);
  END IF;
  RAISE NOTICE 'capture binding "%": % rows captured', binding, total;
END $$;

-- Creates the target of a binding when missing; checks it otherwise.
CREATE FUNCTION redshift_fdw._prepare_target(b redshift_fdw.capture, target_name text)
RETURNS regclass LANGUAGE plpgsql AS $$
DECLARE
  rel regclass := to_regclass(target_name);
  src regclass := redshift_fdw._source_rel(b);
  key_def text;
  missing text;
BEGIN
  key_def := CASE WHEN cardinality(b.key_columns) = 0 THEN '_row_id'
                  ELSE (SELECT string_agg(quote_ident(k), ', ') FROM unnest(b.key_columns) k) END;
  IF rel IS NULL THEN
    IF b.format = 'table' THEN
      EXECUTE format('CREATE TABLE %s (%s LIKE %s)', target_name,
                     CASE WHEN cardinality(b.key_columns) = 0 THEN '_row_id bigint NOT NULL, ' ELSE '' END,
                     src);
    ELSE
      EXECUTE format('CREATE TABLE %s (%s, doc jsonb NOT NULL)', target_name,
                     CASE WHEN cardinality(b.key_columns) = 0 THEN '_row_id bigint NOT NULL'
                          ELSE (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '
                                                  ORDER BY array_position(b.key_columns, a.attname::text))
                                  FROM pg_attribute a WHERE a.attrelid = src
                                   AND a.attname = ANY (b.key_columns)) END);
    END IF;
    EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (%s)', target_name, key_def);
    RETURN to_regclass(target_name);
  END IF;
  -- an existing target must have the columns the binding writes
  SELECT string_agg(c, ', ') INTO missing
    FROM unnest(CASE WHEN b.format = 'document'
                     THEN (CASE WHEN cardinality(b.key_columns) = 0 THEN ARRAY['_row_id'] ELSE b.key_columns END) || ARRAY['doc']
                     ELSE (SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = src AND attnum > 0 AND NOT attisdropped)
                          || CASE WHEN cardinality(b.key_columns) = 0 THEN ARRAY['_row_id'] ELSE '{}' END
                END) c
   WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = rel AND attname = c
                      AND attnum > 0 AND NOT attisdropped);
  IF missing IS NOT NULL THEN
    RAISE EXCEPTION 'target % of capture binding "%" lacks column(s) %', rel, b.name, missing
      USING ERRCODE = 'undefined_column',
            HINT = 'Give a new target name to have it created, or add the columns.';
  END IF;
  IF (b.format = 'document' OR cardinality(b.cursor_columns) > 0 OR cardinality(b.key_columns) = 0)
     AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = rel AND i.indisunique
                     AND (SELECT array_agg(attname::text ORDER BY attname) FROM pg_attribute
                           WHERE attrelid = rel AND attnum = ANY (i.indkey))
                       = (SELECT array_agg(k ORDER BY k) FROM unnest(string_to_array(replace(replace(key_def, '"', ''), ' ', ''), ',')) k)) THEN
    RAISE EXCEPTION 'target % of capture binding "%" needs a unique index on (%)', rel, b.name, key_def
      USING ERRCODE = 'invalid_table_definition',
            HINT = format('ALTER TABLE %s ADD PRIMARY KEY (%s)', rel, key_def);
  END IF;
  RETURN rel;
END $$;

-- Checks the parts of a binding that can be checked without Redshift.
CREATE FUNCTION redshift_fdw._check_binding(b redshift_fdw.capture)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF b.name IS NULL OR b.name = '' THEN
    RAISE EXCEPTION 'a capture binding needs a name' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF b.schedule IS NOT NULL THEN
    PERFORM redshift_fdw.parse_schedule(b.schedule);
  END IF;
  IF b.template IS NOT NULL THEN
    PERFORM redshift_fdw.check_template(b.template);
  END IF;
  IF b.lookback IS NOT NULL AND cardinality(b.key_columns) = 0 THEN
    RAISE EXCEPTION 'capture binding "%": lookback needs key columns', b.name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Re-read rows are deduplicated by key; a keyless binding would duplicate them.';
  END IF;
  IF b.lookback IS NOT NULL AND cardinality(b.cursor_columns) = 0 THEN
    RAISE EXCEPTION 'capture binding "%": lookback needs a cursor', b.name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM redshift_fdw._cursor(b);
END $$;

-- A new binding's name must be free.
CREATE FUNCTION redshift_fdw._check_new_name(binding text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM redshift_fdw.capture WHERE name = binding) THEN
    RAISE EXCEPTION 'capture binding "%" already exists', binding
      USING ERRCODE = 'duplicate_object',
            HINT = 'Choose another name, or alter_capture / drop_capture the existing one.';
  END IF;
  IF EXISTS (SELECT 1 FROM redshift_fdw.materialization WHERE name = binding) THEN
    RAISE EXCEPTION 'materialization "%" already exists', binding
      USING ERRCODE = 'duplicate_object',
            HINT = 'Bindings of both kinds share names: choose another.';
  END IF;
END $$;

-- A new binding with its settings and the defaults, checked for what
-- needs no Redshift: a free name, the format.
CREATE FUNCTION redshift_fdw._new_binding(
    name text, server name, cursor_columns text[], key_columns text[],
    schedule text, template text, format text, lookback interval)
RETURNS redshift_fdw.capture LANGUAGE plpgsql AS $$
DECLARE
  b redshift_fdw.capture;
BEGIN
  PERFORM redshift_fdw._check_new_name(name);
  IF format NOT IN ('table', 'document') THEN
    RAISE EXCEPTION 'format of capture binding "%" must be table or document, not "%"', name, format
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  b.name := name;
  b.server := server;
  b.cursor_columns := coalesce(cursor_columns, '{}');
  b.key_columns := coalesce(key_columns, '{}');
  b.schedule := schedule;
  b.template := template;
  b.format := format;
  b.lookback := lookback;
  b.enabled := true;
  b.owner := current_user::regrole;
  b.row_id_next := 0;
  b.document_count := 0;
  b.consecutive_failures := 0;
  b.lock_key := redshift_fdw._new_lock_key();
  RETURN b;
END $$;

-- Completes a new binding: its private query table (template bindings),
-- the checks, the target; then records it.
CREATE FUNCTION redshift_fdw._finish_binding(b redshift_fdw.capture, target text)
RETURNS redshift_fdw.capture LANGUAGE plpgsql AS $$
BEGIN
  IF b.template IS NOT NULL THEN
    PERFORM redshift_fdw.check_template(b.template);
    b.query_table := redshift_fdw._create_query_table(b,
      redshift_fdw.render_template(b.template, b.remote_schema, b.remote_table, b.cursor_columns, true),
      coalesce(target, quote_ident(b.name)));
  END IF;
  PERFORM redshift_fdw._check_binding(b);
  b.target := redshift_fdw._prepare_target(b, coalesce(target, quote_ident(b.name)));
  INSERT INTO redshift_fdw.capture VALUES (b.*);
  RETURN b;
END $$;

-- A binding reading a foreign table of this wrapper.
CREATE FUNCTION redshift_fdw.create_capture(
    name text, source regclass, target text DEFAULT NULL,
    cursor_columns text[] DEFAULT '{}', schedule text DEFAULT NULL,
    template text DEFAULT NULL, format text DEFAULT 'table',
    lookback interval DEFAULT NULL)
RETURNS redshift_fdw.capture LANGUAGE plpgsql AS $$
DECLARE
  b redshift_fdw.capture;
  ft record;
  cols record;
BEGIN
  SELECT f.ftserver, f.ftoptions, c.relname, n.nspname INTO ft
    FROM pg_foreign_table f JOIN pg_class c ON c.oid = f.ftrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_foreign_server s ON s.oid = f.ftserver
    JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
   WHERE f.ftrelid = source AND w.fdwname = 'redshift_fdw';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'source % of capture binding "%" is not a foreign table of redshift_fdw', source, name
      USING ERRCODE = 'wrong_object_type',
            HINT = 'IMPORT FOREIGN SCHEMA creates foreign tables for Redshift tables.';
  END IF;
  b := redshift_fdw._new_binding(name, (SELECT srvname FROM pg_foreign_server WHERE oid = ft.ftserver),
                                 cursor_columns,
                                 (SELECT array_agg(trim(both '"' from trim(k)))
                                    FROM unnest(string_to_array(redshift_fdw._option(ft.ftoptions, 'key'), ',')) k),
                                 schedule, template, format, lookback);
  b.source := source;
  b.remote_schema := coalesce(redshift_fdw._option(ft.ftoptions, 'schema_name'), ft.nspname);
  b.remote_table := coalesce(redshift_fdw._option(ft.ftoptions, 'table_name'), ft.relname);
  RETURN redshift_fdw._finish_binding(b, target);
END $$;

-- The private foreign table a template binding reads through: its query
-- option is set to the rendered template before each poll.
CREATE FUNCTION redshift_fdw._create_query_table(b redshift_fdw.capture, first_query text,
                                                 target_name text)
RETURNS regclass LANGUAGE plpgsql AS $$
DECLARE
  schema_name text := coalesce((parse_ident(target_name))[cardinality(parse_ident(target_name)) - 1],
                               current_schema());
  table_name text := '_rsfdw_capture_' || b.name;
  bound text := redshift_fdw.bind_query(first_query,
                  array_fill(NULL::text, ARRAY[cardinality(b.cursor_columns)]),
                  array_fill('text'::regtype, ARRAY[cardinality(b.cursor_columns)]));
BEGIN
  EXECUTE format('CREATE FOREIGN TABLE %I.%I (%s) SERVER %I OPTIONS (query %L)',
                 schema_name, table_name,
                 (SELECT string_agg(format('%I %s', column_name, column_type), ', ')
                    FROM redshift_fdw.describe_query(b.server, bound)),
                 b.server, bound);
  RETURN format('%I.%I', schema_name, table_name)::regclass;
END $$;

-- A custom-query binding: the template is the whole Redshift query.
CREATE FUNCTION redshift_fdw.create_query_capture(
    name text, server name, template text, target text DEFAULT NULL,
    cursor_columns text[] DEFAULT '{}', key_columns text[] DEFAULT '{}',
    schedule text DEFAULT NULL, format text DEFAULT 'table',
    lookback interval DEFAULT NULL)
RETURNS redshift_fdw.capture LANGUAGE plpgsql AS $$
DECLARE
  b redshift_fdw.capture;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = server) THEN
    RAISE EXCEPTION 'server "%" does not exist', server USING ERRCODE = 'undefined_object';
  END IF;
  IF template IS NULL THEN
    RAISE EXCEPTION 'capture binding "%" needs a template: the Redshift query', name
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  b := redshift_fdw._new_binding(name, server, cursor_columns, key_columns, schedule,
                                 template, format, lookback);
  b.remote_schema := '';
  b.remote_table := '';
  RETURN redshift_fdw._finish_binding(b, target);
END $$;

-- Changes a binding; NULL leaves a setting as it is.  New cursor columns
-- reset the cursor state (the next poll reads everything).
CREATE FUNCTION redshift_fdw.alter_capture(
    name text, schedule text DEFAULT NULL, template text DEFAULT NULL,
    cursor_columns text[] DEFAULT NULL, lookback interval DEFAULT NULL,
    enabled bool DEFAULT NULL)
RETURNS redshift_fdw.capture LANGUAGE plpgsql AS $$
DECLARE
  b redshift_fdw.capture := redshift_fdw._binding(name, true);
BEGIN
  IF template IS NOT NULL AND b.query_table IS NULL THEN
    RAISE EXCEPTION 'capture binding "%" reads a foreign table with the built-in query', b.name
      USING ERRCODE = 'feature_not_supported',
            HINT = 'Drop and create the binding with a template.';
  END IF;
  b.schedule := coalesce(schedule, b.schedule);
  b.template := coalesce(template, b.template);
  b.lookback := coalesce(lookback, b.lookback);
  b.enabled := coalesce(enabled, b.enabled);
  IF cursor_columns IS NOT NULL AND cursor_columns IS DISTINCT FROM b.cursor_columns THEN
    b.cursor_columns := cursor_columns;
    b.cursor_state := NULL;
    RAISE NOTICE 'cursor of capture binding "%" changed: cursor state reset, the next poll reads everything', b.name;
  END IF;
  PERFORM redshift_fdw._check_binding(b);
  UPDATE redshift_fdw.capture c
     SET schedule = b.schedule, template = b.template, lookback = b.lookback,
         enabled = b.enabled, cursor_columns = b.cursor_columns, cursor_state = b.cursor_state
   WHERE c.name = b.name;
  RETURN redshift_fdw._binding(b.name);
END $$;

-- Forgets the cursor state: the next poll reads everything again (a
-- keyless target is emptied first, or it would get every row twice).
CREATE FUNCTION redshift_fdw.reset_capture(name text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b redshift_fdw.capture := redshift_fdw._binding(name, true);
BEGIN
  IF cardinality(b.key_columns) = 0 AND cardinality(b.cursor_columns) > 0 THEN
    EXECUTE format('DELETE FROM %s', b.target);
    RAISE NOTICE 'capture binding "%" is keyless: target % emptied', b.name, b.target;
  END IF;
  UPDATE redshift_fdw.capture c SET cursor_state = NULL, row_id_next = 0
   WHERE c.name = b.name;
END $$;

CREATE FUNCTION redshift_fdw.enable_capture(name text)
RETURNS void LANGUAGE sql AS
$$SELECT NULL FROM redshift_fdw.alter_capture(name, enabled => true)$$;

CREATE FUNCTION redshift_fdw.disable_capture(name text)
RETURNS void LANGUAGE sql AS
$$SELECT NULL FROM redshift_fdw.alter_capture(name, enabled => false)$$;

-- Drops a binding (and its private query table); the target stays unless
-- drop_target.
CREATE FUNCTION redshift_fdw.drop_capture(name text, drop_target bool DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  b redshift_fdw.capture := redshift_fdw._binding(name, true);
BEGIN
  DELETE FROM redshift_fdw.capture c WHERE c.name = b.name;
  DELETE FROM redshift_fdw.runs r WHERE r.kind = 'capture' AND r.binding = b.name;
  IF b.query_table IS NOT NULL THEN
    EXECUTE format('DROP FOREIGN TABLE %s', b.query_table);
  END IF;
  IF drop_target THEN
    EXECUTE format('DROP TABLE %s', b.target);
  END IF;
END $$;

-- The SQL the next poll sends to Redshift, with its values in place.
CREATE FUNCTION redshift_fdw.capture_query(binding text,
    OUT remote_sql text, OUT cursor_values jsonb)
LANGUAGE plpgsql
SET datestyle TO 'ISO, YMD' SET timezone TO 'UTC' SET extra_float_digits TO 3
AS $$
DECLARE
  b redshift_fdw.capture := redshift_fdw._binding(binding);
  cur record := redshift_fdw._cursor(b);
  src regclass := redshift_fdw._source_rel(b);
  cond text := '';
  vals text[] := b.cursor_state;
  moved text;
  plan json;
BEGIN
  cursor_values := to_jsonb(b.cursor_state);
  IF b.query_table IS NOT NULL THEN
    remote_sql := redshift_fdw.bind_query(
      redshift_fdw.render_template(b.template, b.remote_schema, b.remote_table,
                                   b.cursor_columns, b.cursor_state IS NULL),
      b.cursor_state, cur.types);
    RETURN;
  END IF;
  IF cardinality(b.cursor_columns) > 0 AND vals IS NOT NULL THEN
    IF b.lookback IS NOT NULL THEN
      EXECUTE format('SELECT (%L::%s - %L::interval)::%s::text', vals[1], cur.types[1],
                     b.lookback, cur.types[1]) INTO moved;
      cond := format(' WHERE s.%s >= %L::%s', cur.exprs[1], moved, cur.types[1]);
    ELSE
      cond := ' WHERE ' || redshift_fdw._compare(
        (SELECT array_agg('s.' || e) FROM unnest(cur.exprs) e), cur.types, vals, '>');
    END IF;
  END IF;
  EXECUTE format('EXPLAIN (VERBOSE, FORMAT JSON) SELECT * FROM %s s%s%s', src, cond,
                 CASE WHEN cardinality(b.cursor_columns) > 0
                      THEN ' ORDER BY ' || (SELECT string_agg('s.' || e, ', ') FROM unnest(cur.exprs) e)
                      ELSE '' END)
    INTO plan;
  remote_sql := plan -> 0 -> 'Plan' ->> 'Remote SQL';
END $$;


-- ======================================================================
-- Materialization: a local table kept in a Redshift table.  Triggers log
-- the keys (standard updates) or row images (delta updates) of every
-- change; an apply (materialize.c) stages the pending changes in S3 and
-- loads them in one Redshift transaction guarded by a checkpoint row.
-- The pending changes are those committed in the apply's snapshot and not
-- in the snapshot the checkpoint on Redshift recorded last: commit order,
-- and exactly once across failures.
-- ======================================================================

-- The change logs and their trigger functions, one of each per binding,
-- owned by the binding's owner.
CREATE SCHEMA redshift_fdw_changes;
GRANT USAGE, CREATE ON SCHEMA redshift_fdw_changes TO PUBLIC;

CREATE TABLE redshift_fdw.materialization (
    id bigserial UNIQUE,
    name text PRIMARY KEY,
    owner regrole NOT NULL DEFAULT current_user::regrole,
    server name NOT NULL,
    source regclass NOT NULL,
    target_schema text NOT NULL,  -- Redshift names, lower-cased
    target_table text NOT NULL,
    key_columns text[] NOT NULL,  -- source columns
    delta_updates bool NOT NULL DEFAULT false,
    soft_delete bool NOT NULL DEFAULT false,
    schedule text                 -- NULL: the server's update_delay, else 30m
      CHECK (schedule IS NULL OR redshift_fdw.parse_schedule(schedule) IS NOT NULL),
    enabled bool NOT NULL DEFAULT true,
    change_log regclass NOT NULL,
    checkpoint_key text NOT NULL DEFAULT gen_random_uuid()::text,
    applied_snapshot pg_snapshot, -- as the checkpoint on Redshift said last
    applied_changes bigint NOT NULL DEFAULT 0,
    last_synced timestamptz,      -- start of the last apply
    last_rows bigint,
    last_error text,
    consecutive_failures int NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    retry_at timestamptz,
    run_requested timestamptz,
    lock_key bigint NOT NULL DEFAULT redshift_fdw._new_lock_key()
);
ALTER TABLE redshift_fdw.materialization ENABLE ROW LEVEL SECURITY;
CREATE POLICY materialization_owner ON redshift_fdw.materialization
  USING (pg_has_role(current_user, owner, 'MEMBER'))
  WITH CHECK (pg_has_role(current_user, owner, 'MEMBER'));
GRANT SELECT, INSERT, UPDATE, DELETE ON redshift_fdw.materialization TO PUBLIC;
GRANT USAGE ON SEQUENCE redshift_fdw.materialization_id_seq TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('redshift_fdw.materialization', '');
SELECT pg_catalog.pg_extension_config_dump('redshift_fdw.materialization_id_seq', '');

-- The effective schedule of a materialization.
CREATE FUNCTION redshift_fdw._mat_schedule(schedule text, server name)
RETURNS text LANGUAGE sql STABLE AS $$
SELECT coalesce(schedule, redshift_fdw._option(
         (SELECT srvoptions FROM pg_foreign_server WHERE srvname = server), 'update_delay'), '30m')
$$;

-- A materialization, or an error naming it.
CREATE FUNCTION redshift_fdw._mat(binding text, lock bool DEFAULT false)
RETURNS redshift_fdw.materialization LANGUAGE plpgsql AS $$
DECLARE
  m redshift_fdw.materialization;
BEGIN
  IF lock THEN
    SELECT * INTO m FROM redshift_fdw.materialization WHERE name = binding FOR UPDATE;
  ELSE
    SELECT * INTO m FROM redshift_fdw.materialization WHERE name = binding;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'materialization "%" does not exist', binding
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT name FROM redshift_fdw.materializations lists them.';
  END IF;
  RETURN m;
END $$;

-- A Redshift identifier from a local name: lower-cased, cut to 127 bytes
-- (on a character boundary).
CREATE FUNCTION redshift_fdw._redshift_name(name text)
RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  r text := lower(name);
BEGIN
  WHILE octet_length(r) > 127 LOOP
    r := left(r, -1);
  END LOOP;
  RETURN r;
END $$;

-- The type under a domain (under every level of domains), with the typmod
-- the innermost domain gives it.
CREATE FUNCTION redshift_fdw._base_type(typ oid, typmod int, OUT base oid, OUT base_typmod int)
LANGUAGE sql STABLE AS $$
WITH RECURSIVE d(t, m, depth) AS (
  SELECT typ, typmod, 0
  UNION ALL
  SELECT y.typbasetype, y.typtypmod, d.depth + 1 FROM d JOIN pg_type y ON y.oid = d.t AND y.typtype = 'd')
SELECT t, m FROM d ORDER BY depth DESC LIMIT 1
$$;

-- The Redshift type of a local column (the reference mapping; character
-- data starts at VARCHAR(256) and is widened on demand).  A domain maps as
-- its base type.  numeric(p,s) with a negative scale, or one above its
-- precision (PostgreSQL 15 allows both), becomes the NUMERIC that holds
-- its values: NUMERIC(max(p - s, 0) + max(s, 0), max(s, 0)).
CREATE FUNCTION redshift_fdw._redshift_type(typ oid, typmod int)
RETURNS text LANGUAGE sql STABLE AS $$
SELECT redshift_fdw._redshift_base_type(b.base, b.base_typmod) FROM redshift_fdw._base_type(typ, typmod) b
$$;

-- The mapping itself, of a type that is not a domain.
CREATE FUNCTION redshift_fdw._redshift_base_type(typ oid, typmod int)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
SELECT CASE
  WHEN typ IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) THEN 'BIGINT'
  WHEN typ = 'numeric'::regtype AND typmod >= 4
       AND greatest(n.p - n.s, 0) + greatest(n.s, 0) BETWEEN 1 AND 38
    THEN format('NUMERIC(%s,%s)', greatest(n.p - n.s, 0) + greatest(n.s, 0), greatest(n.s, 0))
  WHEN typ IN ('float4'::regtype, 'float8'::regtype) THEN 'DOUBLE PRECISION'
  WHEN typ = 'bool'::regtype THEN 'BOOLEAN'
  WHEN typ = 'date'::regtype THEN 'DATE'
  WHEN typ = 'timestamptz'::regtype THEN 'TIMESTAMPTZ'
  WHEN typ = 'timestamp'::regtype THEN 'TIMESTAMP'
  WHEN typ = 'time'::regtype THEN 'TIME'
  WHEN typ = 'timetz'::regtype THEN 'TIMETZ'
  WHEN typ IN ('json'::regtype, 'jsonb'::regtype) THEN 'SUPER'
  WHEN typ = 'bytea'::regtype THEN 'VARBYTE'
  ELSE 'VARCHAR(256)'
END
  -- precision and scale of a numeric typmod: the scale is 11 bits, signed
  FROM (SELECT ((typmod - 4) >> 16) & 65535 AS p,
               (((typmod - 4) & 2047) # 1024) - 1024 AS s) n
$$;

-- The columns a materialization writes, in source order: the local name,
-- the Redshift name and type, the expression (on the row alias given)
-- whose text (the value itself for common types, else a text) is what
-- Redshift's COPY reads, and whether it is a key column.
CREATE FUNCTION redshift_fdw._mat_columns(source regclass, key_columns text[],
    alias text DEFAULT 's',
    OUT attnum int, OUT local_name text, OUT remote_name text, OUT remote_type text,
    OUT expr text, OUT is_key bool)
RETURNS SETOF record LANGUAGE sql STABLE AS $$
SELECT a.attnum::int, a.attname::text, redshift_fdw._redshift_name(a.attname),
       redshift_fdw._redshift_type(a.atttypid, a.atttypmod),
       CASE WHEN b.base = 'bytea'::regtype
              THEN format('encode(%s.%I::bytea, ''hex'')', alias, a.attname)
            WHEN b.base = 'bool'::regtype AND a.atttypid <> b.base
              THEN format('CASE WHEN %1$s.%2$I::bool THEN ''t'' WHEN NOT %1$s.%2$I::bool THEN ''f'' END',
                          alias, a.attname)
            WHEN a.atttypid = 'bool'::regtype
              THEN format('CASE WHEN %1$s.%2$I THEN ''t'' WHEN NOT %1$s.%2$I THEN ''f'' END',
                          alias, a.attname)
            -- as they are when their cast to text is their output function:
            -- materialize.c calls it (no row of texts is formed first)
            WHEN a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                                'numeric'::regtype, 'float4'::regtype, 'float8'::regtype,
                                'date'::regtype, 'time'::regtype, 'timetz'::regtype,
                                'timestamp'::regtype, 'timestamptz'::regtype,
                                'interval'::regtype, 'uuid'::regtype, 'text'::regtype,
                                'varchar'::regtype)
              THEN format('%s.%I', alias, a.attname)
            ELSE format('%s.%I::text', alias, a.attname) END,
       a.attname = ANY (key_columns)
  FROM pg_attribute a
 CROSS JOIN LATERAL redshift_fdw._base_type(a.atttypid, a.atttypmod) b
 WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
$$;

-- The Redshift names of the columns a materialization adds to a target.
CREATE FUNCTION redshift_fdw._mat_extra_columns(delta_updates bool, soft_delete bool,
    OUT remote_name text, OUT remote_type text)
RETURNS SETOF record LANGUAGE sql IMMUTABLE AS $$
SELECT v.n, v.t FROM (VALUES ('_rsfdw_op', 'CHAR(1)'), ('_rsfdw_seq', 'BIGINT')) v(n, t)
 WHERE delta_updates
UNION ALL
SELECT '_rsfdw_deleted', 'BOOLEAN' WHERE soft_delete AND NOT delta_updates
$$;

-- Errors a materialization's columns can have before anything reaches
-- Redshift: names that are equal ignoring case (they would be one column
-- there), names reserved for the columns it adds.
CREATE FUNCTION redshift_fdw._mat_check_columns(m redshift_fdw.materialization)
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
  clash record;
BEGIN
  SELECT c.remote_name, array_agg(c.local_name ORDER BY c.attnum) AS names INTO clash
    FROM redshift_fdw._mat_columns(m.source, m.key_columns) c
   GROUP BY c.remote_name HAVING count(*) > 1 LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'materialization "%": columns % of % are one column "%" in Redshift',
      m.name, array_to_string(clash.names, ', '), m.source, clash.remote_name
      USING ERRCODE = 'duplicate_column',
            HINT = 'Redshift lower-cases identifiers: rename one of the columns, or materialize a view that does.';
  END IF;
  SELECT c.local_name INTO clash FROM redshift_fdw._mat_columns(m.source, m.key_columns) c
   WHERE c.remote_name LIKE '\_rsfdw\_%' OR c.remote_name = 'oid' LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'materialization "%": column "%" of % has a name reserved in the Redshift table',
      m.name, clash.local_name, m.source
      USING ERRCODE = 'reserved_name',
            HINT = 'Rename the column, or materialize a view that does.';
  END IF;
END $$;

-- Creates the change log of a materialization and the triggers that fill
-- it (as the caller, who becomes their owner).  The log holds the key of
-- every changed row (and its image with delta updates), the writing
-- transaction and the order of writing; TRUNCATE logs op 'T'.
CREATE FUNCTION redshift_fdw._mat_install_tracking(m redshift_fdw.materialization)
RETURNS regclass LANGUAGE plpgsql AS $body$
DECLARE
  log_name text := format('redshift_fdw_changes.changes_%s', m.id);
  fn text := format('redshift_fdw_changes.log_changes_%s', m.id);
  key_defs text;
  keys text := (SELECT string_agg(quote_ident(k), ', ') FROM unnest(m.key_columns) k);
  new_keys text := (SELECT string_agg('_rsfdw_new.' || quote_ident(k), ', ') FROM unnest(m.key_columns) k);
  old_keys text := (SELECT string_agg('_rsfdw_old.' || quote_ident(k), ', ') FROM unnest(m.key_columns) k);
  same_key text := (SELECT string_agg(format('_rsfdw_new.%1$I = _rsfdw_old.%1$I', k), ' AND ')
                      FROM unnest(m.key_columns) k);
  img_col text := CASE WHEN m.delta_updates THEN ', _rsfdw_image' ELSE '' END;
  new_img text := CASE WHEN m.delta_updates THEN ', to_jsonb(_rsfdw_new)' ELSE '' END;
  old_img text := CASE WHEN m.delta_updates THEN ', to_jsonb(_rsfdw_old)' ELSE '' END;
BEGIN
  SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '
                    ORDER BY array_position(m.key_columns, a.attname::text))
    INTO key_defs
    FROM pg_attribute a
   WHERE a.attrelid = m.source AND a.attname = ANY (m.key_columns) AND NOT a.attisdropped;
  EXECUTE format('CREATE TABLE %s (_rsfdw_seq bigserial, '
                 '_rsfdw_xid xid8 NOT NULL DEFAULT pg_current_xact_id(), '
                 '_rsfdw_op "char" NOT NULL, %s%s)', log_name, key_defs,
                 CASE WHEN m.delta_updates THEN ', _rsfdw_image jsonb' ELSE '' END);
  -- An apply of standard updates ANALYZEs the log (see _mat_analyze_log):
  -- it needs its size and rough counts, which a sample of 3000 rows gives
  -- in a quarter of the time of the default 30000.
  IF NOT m.delta_updates THEN
    -- Whether a TRUNCATE is pending decides an apply's first row (a
    -- reload or not): this index answers it without reading the log.
    EXECUTE format('CREATE INDEX ON %s (_rsfdw_xid) WHERE _rsfdw_op = %L', log_name, 'T');
    EXECUTE (SELECT format('ALTER TABLE %s %s', log_name,
                           string_agg(format('ALTER COLUMN %I SET STATISTICS 10', a.attname), ', '))
               FROM pg_attribute a
              WHERE a.attrelid = log_name::regclass AND a.attnum > 0 AND NOT a.attisdropped);
  END IF;
  -- The writer's extra_float_digits and IntervalStyle would shape a delta
  -- image's floats (digits lost under 0) and intervals: fixed here.
  EXECUTE format($f$
CREATE FUNCTION %1$s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET extra_float_digits = 3 SET intervalstyle = 'postgres' AS $t$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO %2$s (_rsfdw_op, %3$s%4$s) SELECT 'I', %5$s%6$s FROM new_rows _rsfdw_new;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO %2$s (_rsfdw_op, %3$s%4$s) SELECT 'U', %5$s%6$s FROM new_rows _rsfdw_new;
    -- rows whose key changed: the old key is gone
    INSERT INTO %2$s (_rsfdw_op, %3$s%4$s) SELECT 'D', %7$s%8$s FROM old_rows _rsfdw_old
     WHERE NOT EXISTS (SELECT 1 FROM new_rows _rsfdw_new WHERE %9$s);
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO %2$s (_rsfdw_op, %3$s%4$s) SELECT 'D', %7$s%8$s FROM old_rows _rsfdw_old;
  ELSE
    INSERT INTO %2$s (_rsfdw_op) VALUES ('T');
  END IF;
  RETURN NULL;
END $t$
$f$, fn, log_name, keys, img_col, new_keys, new_img, old_keys, old_img, same_key);
  EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', fn);
  -- a statement on a partition does not fire its parent's statement
  -- triggers: every table of a partition tree gets them (and one that
  -- joins the tree later, see _mat_guard_alter)
  PERFORM redshift_fdw._mat_track_table(m.id, t) FROM redshift_fdw._mat_tracked_tables(m.source) t;
  RETURN log_name::regclass;
END $body$;

-- The tables of a source that carry its triggers: the source and, when it
-- is partitioned, every table of its tree (pg_partition_tree gives
-- nothing for a table that is not partitioned).
CREATE FUNCTION redshift_fdw._mat_tracked_tables(source regclass)
RETURNS SETOF regclass LANGUAGE sql STABLE AS $$
SELECT t.relid FROM (SELECT relid FROM pg_partition_tree(source) UNION SELECT source) t
  JOIN pg_class c ON c.oid = t.relid
 WHERE c.relkind IN ('r', 'p')
$$;

-- The names of materialization id's four triggers, on every table it tracks.
CREATE FUNCTION redshift_fdw._mat_trigger_names(id bigint)
RETURNS SETOF text LANGUAGE sql IMMUTABLE AS $$
SELECT format('redshift_fdw_%s_%s', id, o) FROM unnest(ARRAY['insert', 'update', 'delete', 'truncate']) o
$$;

-- The four statement triggers of materialization id on one table of its
-- source's partition tree.  ENABLE ALWAYS: they fire under
-- session_replication_role = replica too (a bulk load that skips the
-- source's own triggers still changes the table).
CREATE FUNCTION redshift_fdw._mat_track_table(id bigint, member regclass)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  fn text := format('redshift_fdw_changes.log_changes_%s', id);
  prefix text := 'redshift_fdw_' || id;
BEGIN
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION %s()', prefix || '_insert', member, fn);
  EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows '
                 'NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                 prefix || '_update', member, fn);
  EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                 'FOR EACH STATEMENT EXECUTE FUNCTION %s()', prefix || '_delete', member, fn);
  EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                 prefix || '_truncate', member, fn);
  EXECUTE (SELECT format('ALTER TABLE ONLY %s %s', member,
                         string_agg(format('ENABLE ALWAYS TRIGGER %I', name), ', '))
             FROM redshift_fdw._mat_trigger_names(id) name);
END $$;

-- Removes a materialization's triggers, log and trigger function.
CREATE FUNCTION redshift_fdw._mat_remove_tracking(m redshift_fdw.materialization)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT DISTINCT tg.tgrelid::regclass AS rel, tg.tgname FROM pg_trigger tg
            WHERE tg.tgname IN (SELECT redshift_fdw._mat_trigger_names(m.id)) LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', t.tgname, t.rel);
  END LOOP;
  EXECUTE format('DROP TABLE IF EXISTS redshift_fdw_changes.changes_%s', m.id);
  EXECUTE format('DROP FUNCTION IF EXISTS redshift_fdw_changes.log_changes_%s()', m.id);
END $$;

-- A local table kept in a Redshift table: existing rows are loaded by the
-- first apply, every later change by the apply after it.
CREATE FUNCTION redshift_fdw.create_materialization(
    name text, source regclass, server name,
    target_table text DEFAULT NULL, target_schema text DEFAULT NULL,
    key_columns text[] DEFAULT NULL, delta_updates bool DEFAULT false,
    soft_delete bool DEFAULT false, schedule text DEFAULT NULL)
RETURNS redshift_fdw.materialization LANGUAGE plpgsql AS $$
DECLARE
  m redshift_fdw.materialization;
  srv record;
  k text;
  rel record;
BEGIN
  IF name IS NULL OR name = '' OR name !~ '^[A-Za-z0-9_.-]+$' OR length(name) > 100 THEN
    RAISE EXCEPTION 'invalid materialization name "%"', name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Use letters, digits, "_", "." and "-" (at most 100): the name is part of S3 keys.';
  END IF;
  PERFORM redshift_fdw._check_new_name(name);
  SELECT s.srvname, s.srvoptions INTO srv
    FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
   WHERE s.srvname = create_materialization.server AND w.fdwname = 'redshift_fdw';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'server "%" of materialization "%" is not a redshift_fdw server', server, name
      USING ERRCODE = 'undefined_object';
  END IF;
  SELECT c.relkind, c.relname INTO rel FROM pg_class c WHERE c.oid = source;
  IF rel.relkind NOT IN ('r', 'p') THEN
    RAISE EXCEPTION 'source % of materialization "%" is not a table', source, name
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Changes are tracked with triggers: materialize a table.';
  END IF;
  IF key_columns IS NULL THEN
    SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey, a.attnum)) INTO key_columns
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = source AND i.indisprimary;
    IF key_columns IS NULL THEN
      RAISE EXCEPTION 'source % of materialization "%" has no primary key', source, name
        USING ERRCODE = 'invalid_table_definition',
              HINT = 'Give key_columns: columns that are NOT NULL and unique together.';
    END IF;
  ELSE
    FOREACH k IN ARRAY key_columns LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = source AND a.attname = k
                        AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'key column "%" of materialization "%" is not a column of %', k, name, source
          USING ERRCODE = 'undefined_column';
      END IF;
      IF NOT (SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = source AND a.attname = k) THEN
        RAISE EXCEPTION 'key column "%" of materialization "%" is nullable', k, name
          USING ERRCODE = 'invalid_table_definition',
                HINT = 'Key columns must be NOT NULL and unique together.';
      END IF;
    END LOOP;
    IF NOT EXISTS (
        SELECT 1 FROM pg_index i WHERE i.indrelid = source AND i.indisunique AND i.indpred IS NULL
           AND i.indexprs IS NULL
           AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                 WHERE a.attrelid = source AND a.attnum = ANY (i.indkey))
               <@ key_columns) THEN
      RAISE EXCEPTION 'key columns (%) of materialization "%" are not unique in %',
        array_to_string(key_columns, ', '), name, source
        USING ERRCODE = 'invalid_table_definition',
              HINT = 'A unique index on (a subset of) the key columns is needed.';
    END IF;
  END IF;
  IF soft_delete AND delta_updates THEN
    RAISE EXCEPTION 'materialization "%": soft_delete applies to standard updates only', name
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Delta updates already append deletes as rows with _rsfdw_op = ''D''.';
  END IF;
  IF schedule IS NOT NULL THEN
    PERFORM redshift_fdw.parse_schedule(schedule);
  END IF;
  m.id := nextval('redshift_fdw.materialization_id_seq');
  m.name := name;
  m.owner := current_user::regrole;
  m.server := server;
  m.source := source;
  m.target_schema := redshift_fdw._redshift_name(
    coalesce(target_schema, redshift_fdw._option(srv.srvoptions, 'schema'), 'public'));
  m.target_table := redshift_fdw._redshift_name(coalesce(target_table, rel.relname));
  m.key_columns := key_columns;
  m.delta_updates := delta_updates;
  m.soft_delete := soft_delete;
  m.schedule := schedule;
  m.enabled := true;
  m.checkpoint_key := gen_random_uuid()::text;
  m.applied_changes := 0;
  m.consecutive_failures := 0;
  m.lock_key := redshift_fdw._new_lock_key();
  IF EXISTS (SELECT 1 FROM redshift_fdw.materialization x
              WHERE x.server = m.server AND x.target_schema = m.target_schema
                AND x.target_table = m.target_table) THEN
    RAISE EXCEPTION 'materialization "%": %.% on server % is the target of another materialization',
      name, m.target_schema, m.target_table, server
      USING ERRCODE = 'duplicate_object';
  END IF;
  PERFORM redshift_fdw._mat_check_columns(m);
  m.change_log := 'pg_class'::regclass;  -- set below, once the log exists
  m.change_log := redshift_fdw._mat_install_tracking(m);
  INSERT INTO redshift_fdw.materialization VALUES (m.*);
  RETURN m;
END $$;

-- Changes a materialization's schedule or enabled state.
CREATE FUNCTION redshift_fdw.alter_materialization(
    name text, schedule text DEFAULT NULL, enabled bool DEFAULT NULL)
RETURNS redshift_fdw.materialization LANGUAGE plpgsql AS $$
DECLARE
  m redshift_fdw.materialization := redshift_fdw._mat(name, true);
BEGIN
  IF schedule IS NOT NULL THEN
    PERFORM redshift_fdw.parse_schedule(schedule);
  END IF;
  UPDATE redshift_fdw.materialization x
     SET schedule = coalesce(alter_materialization.schedule, x.schedule),
         enabled = coalesce(alter_materialization.enabled, x.enabled),
         retry_at = CASE WHEN alter_materialization.enabled THEN NULL ELSE x.retry_at END
   WHERE x.name = m.name RETURNING * INTO m;
  RETURN m;
END $$;

CREATE FUNCTION redshift_fdw.enable_materialization(name text)
RETURNS void LANGUAGE sql AS
$$SELECT NULL FROM redshift_fdw.alter_materialization(name, enabled => true)$$;

CREATE FUNCTION redshift_fdw.disable_materialization(name text)
RETURNS void LANGUAGE sql AS
$$SELECT NULL FROM redshift_fdw.alter_materialization(name, enabled => false)$$;

-- Drops a materialization: its triggers, change log and runs; the table
-- on Redshift stays (and its checkpoint row, so a later binding cannot be
-- confused with this one: it has a checkpoint key of its own).
CREATE FUNCTION redshift_fdw.drop_materialization(name text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  m redshift_fdw.materialization := redshift_fdw._mat(name, true);
BEGIN
  PERFORM pg_advisory_xact_lock(m.lock_key);
  PERFORM redshift_fdw._mat_remove_tracking(m);
  DELETE FROM redshift_fdw.materialization x WHERE x.name = m.name;
  DELETE FROM redshift_fdw.runs r WHERE r.kind = 'materialization' AND r.binding = m.name;
END $$;

-- Whether a binding's owner may read and trigger on its source; a WARNING
-- when not (for _mat_bindings_altered and the like).
CREATE FUNCTION redshift_fdw._mat_owner_may(m redshift_fdw.materialization)
RETURNS bool LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF coalesce(has_table_privilege(m.owner, m.source, 'SELECT')
              AND has_table_privilege(m.owner, m.source, 'TRIGGER'), false) THEN
    RETURN true;
  END IF;
  RAISE WARNING 'materialization "%": its owner % may not read or trigger on %; its tracking does not follow this command',
                m.name, m.owner, m.source::oid::regclass
    USING HINT = format('Grant %s SELECT and TRIGGER on the table, or drop the materialization.', m.owner);
  RETURN false;
END $$;

-- The bindings whose tracked tables the command being run touched (in an
-- event trigger only: pg_event_trigger_ddl_commands() and
-- pg_event_trigger_table_rewrite_oid() refuse any other caller), read past
-- the catalog's row security: whoever alters a table must learn of the
-- bindings that track it, whoever owns them.  Those whose owner may not
-- read and trigger on the source (a catalog row its owner wrote by hand,
-- naming a table that is not theirs; or rights revoked since) are left
-- out, with a WARNING: the command goes on (no user can stop another's
-- ALTER TABLE that way), their tracking does not follow it.
CREATE FUNCTION redshift_fdw._mat_bindings_tracking(tables oid[])
RETURNS SETOF redshift_fdw.materialization LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
SELECT x.* FROM redshift_fdw.materialization x
 WHERE EXISTS (SELECT 1 FROM redshift_fdw._mat_tracked_tables(x.source) t WHERE t = ANY (tables))
   AND redshift_fdw._mat_owner_may(x)
$$;
REVOKE ALL ON FUNCTION redshift_fdw._mat_bindings_tracking(oid[]) FROM PUBLIC;

CREATE FUNCTION redshift_fdw._mat_bindings_altered()
RETURNS SETOF redshift_fdw.materialization LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
SELECT * FROM redshift_fdw._mat_bindings_tracking(ARRAY(
  SELECT d.objid FROM pg_event_trigger_ddl_commands() d WHERE d.classid = 'pg_class'::regclass))
$$;

CREATE FUNCTION redshift_fdw._mat_bindings_rewritten()
RETURNS SETOF redshift_fdw.materialization LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
SELECT * FROM redshift_fdw._mat_bindings_tracking(ARRAY[pg_event_trigger_table_rewrite_oid()])
$$;

-- The bindings a rewrite listed (_mat_guard_rewrite) for _mat_guard_alter
-- to log their rows, with delta updates (their ids, in a setting local to
-- the transaction: no temporary table, which would need TEMP).  Also only
-- inside an event trigger: pg_event_trigger_ddl_commands() refuses any
-- other caller, who could otherwise list any binding by setting the ids.
CREATE FUNCTION redshift_fdw._mat_bindings_listed()
RETURNS SETOF redshift_fdw.materialization LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
SELECT x.* FROM redshift_fdw.materialization x
 WHERE (SELECT count(*) FROM pg_event_trigger_ddl_commands()) >= 0
   AND x.id = ANY (string_to_array(nullif(current_setting('redshift_fdw_guard.rewritten', true), ''),
                                   ',')::bigint[])
   AND x.delta_updates
   AND redshift_fdw._mat_owner_may(x)
$$;
REVOKE ALL ON FUNCTION redshift_fdw._mat_bindings_altered() FROM PUBLIC;
REVOKE ALL ON FUNCTION redshift_fdw._mat_bindings_rewritten() FROM PUBLIC;
REVOKE ALL ON FUNCTION redshift_fdw._mat_bindings_listed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION redshift_fdw._mat_bindings_altered() TO PUBLIC;
GRANT EXECUTE ON FUNCTION redshift_fdw._mat_bindings_rewritten() TO PUBLIC;
GRANT EXECUTE ON FUNCTION redshift_fdw._mat_bindings_listed() TO PUBLIC;

-- Before an event trigger writes to a binding's change log or creates its
-- triggers: it does so as the binding's owner (SET LOCAL ROLE), so that
-- whatever the owner attached to the log (a trigger, a default, a rule)
-- runs with the owner's rights, not with those of whoever altered the
-- table.  That role must be a member of the owner, and the log must be
-- the binding's own, as create_materialization made it
-- (redshift_fdw_changes.changes_<id>, owned by the binding's owner),
-- whatever the catalog row (which its owner can write) says.
CREATE FUNCTION redshift_fdw._mat_guard_check(m redshift_fdw.materialization)
RETURNS void LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF m.change_log IS DISTINCT FROM to_regclass(format('redshift_fdw_changes.changes_%s', m.id))
     OR (SELECT c.relowner FROM pg_class c WHERE c.oid = m.change_log) IS DISTINCT FROM m.owner THEN
    RAISE EXCEPTION 'the change log of materialization "%" is not the one it was created with', m.name
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('A change log is the table redshift_fdw_changes.changes_%s, owned by %s; '
                            'the catalog names %s.', m.id, m.owner, m.change_log),
            HINT = format('Drop the materialization (SELECT redshift_fdw.drop_materialization(%L)) '
                          'and create it again.', m.name);
  END IF;
  IF NOT pg_has_role(current_user, m.owner, 'MEMBER') THEN
    RAISE EXCEPTION 'materialization "%" tracks %: only its owner, %, can make this change', m.name,
                    m.source, m.owner
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = 'The change follows into its change log and triggers, which belong to the owner.',
            HINT = format('Run it as %s, or grant that role to %s.', m.owner, current_user);
  END IF;
END $$;

-- The checks above, then the binding's owner as the current role, until
-- the transaction ends or _mat_guard_done; returns the role to go back to.
-- (No SET clause: one would undo the role change as the function returns.)
CREATE FUNCTION redshift_fdw._mat_guard_as_owner(m redshift_fdw.materialization)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  back text := pg_catalog.current_setting('role');
BEGIN
  PERFORM redshift_fdw._mat_guard_check(m);
  PERFORM pg_catalog.set_config('role', m.owner::text, true);
  RETURN back;
END $$;

CREATE FUNCTION redshift_fdw._mat_guard_done(back text)
RETURNS void LANGUAGE sql AS $$
SELECT set_config('role', back, true)
$$;

-- Keeps the change tracking of a source working through ALTER TABLE and
-- CREATE TABLE.  The trigger function names the key columns, so renaming
-- or dropping one would make every later write to the source fail: that
-- is refused, with the way out in the hint.  A key column given another
-- type takes its log column along (the log holds keys of pending changes
-- in the source's type), or the ALTER is refused when those keys cannot
-- be converted.  A table that joins a tracked partition tree (CREATE
-- TABLE ... PARTITION OF, ATTACH PARTITION) gets the triggers, and the
-- rows it brings are logged: they are new to the source (as upserts with
-- standard updates: a partition detached and attached again brings rows
-- Redshift still has).  One that leaves it (DETACH PARTITION) loses them;
-- its rows stay on Redshift as they were.  With delta updates, the rows
-- of a source the command rewrote are logged after the 'T' that
-- _mat_guard_rewrite logged.  Writes are made as the binding's owner
-- (_mat_guard_as_owner); row images in fixed settings, as the trigger
-- function makes them.
CREATE FUNCTION redshift_fdw._mat_guard_alter()
RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp SET extra_float_digits = 3 SET intervalstyle = 'postgres' AS $$
DECLARE
  k record;
  m redshift_fdw.materialization;
  member regclass;
  cols text;
  keys text;
  back text;
BEGIN
  FOR m IN SELECT * FROM redshift_fdw._mat_bindings_altered() LOOP
    FOR k IN
      SELECT c.col, a.attname IS NULL AS gone, format_type(a.atttypid, a.atttypmod) AS new_type
        FROM unnest(m.key_columns) c(col)
        JOIN pg_attribute l ON l.attrelid = m.change_log AND l.attname = c.col AND NOT l.attisdropped
        LEFT JOIN pg_attribute a ON a.attrelid = m.source AND a.attname = c.col AND NOT a.attisdropped
       WHERE a.attname IS NULL OR (a.atttypid, a.atttypmod) IS DISTINCT FROM (l.atttypid, l.atttypmod)
    LOOP
      IF k.gone THEN
        RAISE EXCEPTION 'column "%" of % is a key column of materialization "%"', k.col, m.source, m.name
          USING ERRCODE = 'dependent_objects_still_exist',
                DETAIL = 'Its change tracking names the column: writes to the table would fail.',
                HINT = format('Drop the materialization first (SELECT redshift_fdw.drop_materialization(%L)), '
                              'then create it again with the new key.', m.name);
      END IF;
      back := redshift_fdw._mat_guard_as_owner(m);
      BEGIN
        -- through text: the keys are values the source held (and an empty
        -- log converts whatever the types)
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %2$I TYPE %3$s USING %2$I::text::%3$s',
                       m.change_log, k.col, k.new_type);
      EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'key column "%" of materialization "%" cannot become %: %', k.col, m.name,
                        k.new_type, SQLERRM
          USING ERRCODE = 'dependent_objects_still_exist',
                DETAIL = 'The change log holds the keys of pending changes in the old type.',
                HINT = format('Apply the pending changes (SELECT redshift_fdw.sync(%L)) and try again, '
                              'or drop the materialization first.', m.name);
      END;
      PERFORM redshift_fdw._mat_guard_done(back);
    END LOOP;
    cols := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(m.key_columns) c);
    keys := (SELECT string_agg('s.' || quote_ident(c), ', ') FROM unnest(m.key_columns) c);
    FOR member IN
      SELECT t FROM redshift_fdw._mat_tracked_tables(m.source) t
       WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
                          WHERE g.tgrelid = t AND g.tgname = format('redshift_fdw_%s_insert', m.id))
    LOOP
      -- the triggers by whoever made or attached the table (creating them
      -- runs nothing); its rows read as the owner, through the source
      PERFORM redshift_fdw._mat_guard_check(m);
      PERFORM redshift_fdw._mat_track_table(m.id, member);
      back := redshift_fdw._mat_guard_as_owner(m);
      -- standard updates: as upserts, not inserts (which load without
      -- one): a partition attached again brings rows Redshift still has
      EXECUTE format('INSERT INTO %s (_rsfdw_op, %s%s) SELECT %L, %s%s FROM %s s WHERE s.tableoid = %s',
                     m.change_log, cols, CASE WHEN m.delta_updates THEN ', _rsfdw_image' ELSE '' END,
                     CASE WHEN m.delta_updates THEN 'I' ELSE 'U' END, keys,
                     CASE WHEN m.delta_updates THEN ', to_jsonb(s)' ELSE '' END, m.source, member::oid);
      PERFORM redshift_fdw._mat_guard_done(back);
    END LOOP;
    FOR k IN
      SELECT g.tgrelid::regclass AS rel, g.tgname FROM pg_trigger g
       WHERE g.tgname IN (SELECT redshift_fdw._mat_trigger_names(m.id))
         AND g.tgrelid NOT IN (SELECT redshift_fdw._mat_tracked_tables(m.source))
    LOOP
      EXECUTE format('DROP TRIGGER %I ON %s', k.tgname, k.rel);
    END LOOP;
  END LOOP;
  -- delta updates: every row of a source the command rewrote, in key order
  -- (after its key columns' types followed into the log, above)
  FOR m IN SELECT * FROM redshift_fdw._mat_bindings_listed() LOOP
    cols := (SELECT string_agg(quote_ident(c), ', ') FROM unnest(m.key_columns) c);
    keys := (SELECT string_agg('s.' || quote_ident(c), ', ') FROM unnest(m.key_columns) c);
    back := redshift_fdw._mat_guard_as_owner(m);
    EXECUTE format('INSERT INTO %s (_rsfdw_op, %s, _rsfdw_image) SELECT ''I'', %s, to_jsonb(s) '
                   'FROM %s s ORDER BY %s', m.change_log, cols, keys, m.source, keys);
    PERFORM redshift_fdw._mat_guard_done(back);
  END LOOP;
  PERFORM set_config('redshift_fdw_guard.rewritten', '', true);
END $$;

CREATE EVENT TRIGGER redshift_fdw_guard_alter ON ddl_command_end
  WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'ALTER TYPE')
  EXECUTE FUNCTION redshift_fdw._mat_guard_alter();

-- An ALTER TABLE (or ALTER TYPE of a typed table) that rewrites a tracked
-- table -- a column's new type, a USING expression -- changes its rows
-- without firing a row trigger: every binding that tracks it logs a 'T',
-- so that standard updates reload the table; delta updates append that
-- 'T' and then every row as rewritten (logged by _mat_guard_alter at the
-- end of the command, which finds the binding listed).
CREATE FUNCTION redshift_fdw._mat_guard_rewrite()
RETURNS event_trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m redshift_fdw.materialization;
  listed text;
  back text;
BEGIN
  FOR m IN SELECT * FROM redshift_fdw._mat_bindings_rewritten() LOOP
    listed := coalesce(current_setting('redshift_fdw_guard.rewritten', true), '');
    -- one 'T' when the command rewrites several partitions of a source
    CONTINUE WHEN m.id::text = ANY (string_to_array(listed, ','));
    back := redshift_fdw._mat_guard_as_owner(m);
    EXECUTE format('INSERT INTO %s (_rsfdw_op) VALUES (''T'')', m.change_log);
    PERFORM redshift_fdw._mat_guard_done(back);
    PERFORM set_config('redshift_fdw_guard.rewritten', concat_ws(',', nullif(listed, ''), m.id), true);
  END LOOP;
END $$;

CREATE EVENT TRIGGER redshift_fdw_guard_rewrite ON table_rewrite
  EXECUTE FUNCTION redshift_fdw._mat_guard_rewrite();

-- Whether a key whose pending changes are all inserts is surely absent
-- from the target, so its row can be loaded without an upsert: its key
-- columns are NOT NULL and unique (a valid unique index on some of them,
-- without expressions or a predicate), so any row the key had at the
-- checkpoint was deleted (or re-keyed) by a logged change first; and no
-- soft-deleted row stays behind on Redshift.
CREATE FUNCTION redshift_fdw._mat_inserts_are_new(m redshift_fdw.materialization)
RETURNS bool LANGUAGE sql STABLE AS $$
SELECT NOT m.soft_delete
   AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = m.source AND a.attname = ANY (m.key_columns)
                      AND NOT a.attnotnull)
   AND EXISTS (SELECT 1 FROM pg_index i
                WHERE i.indrelid = m.source AND i.indisunique AND i.indisvalid
                  AND i.indpred IS NULL AND i.indexprs IS NULL
                  AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) n
                                   WHERE n = 0 OR NOT EXISTS (
                                     SELECT 1 FROM pg_attribute a
                                      WHERE a.attrelid = m.source AND a.attnum = n
                                        AND a.attname = ANY (m.key_columns))))
$$;

-- The snapshot an apply takes as its high-water mark: the current one,
-- with this transaction's own xid (when it has one) among the running.
-- pg_current_snapshot() leaves it out, so a change this transaction
-- writes after sync() (or wrote before it) would count as committed, and
-- as applied by this apply, which cannot load it; it goes with the first
-- apply after this transaction commits.
-- STABLE, not VOLATILE: each statement of a volatile SQL function takes a
-- new snapshot, which could count as applied a transaction that committed
-- after the changes query's own snapshot was taken.
CREATE FUNCTION redshift_fdw._mat_snapshot()
RETURNS pg_snapshot LANGUAGE sql STABLE AS $$
SELECT CASE WHEN x IS NULL OR x >= pg_snapshot_xmax(s) THEN s -- (at xmax: running already)
            ELSE format('%s:%s:%s', least(pg_snapshot_xmin(s), x), pg_snapshot_xmax(s),
                        (SELECT string_agg(v::text, ',' ORDER BY v)
                           FROM (SELECT pg_snapshot_xip(s) UNION SELECT x) u(v)))::pg_snapshot END
  FROM (SELECT pg_current_snapshot(), pg_current_xact_id_if_assigned()) a(s, x)
$$;

-- A delta image's date or timestamp text (to_jsonb's) as its type: parsed
-- directly in its usual form, through the type's input otherwise.
CREATE FUNCTION redshift_fdw._image_date(text) RETURNS date
AS 'MODULE_PATHNAME', 'redshift_fdw_image_date'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION redshift_fdw._image_timestamp(text) RETURNS timestamp
AS 'MODULE_PATHNAME', 'redshift_fdw_image_timestamp'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

CREATE FUNCTION redshift_fdw._image_timestamptz(text) RETURNS timestamptz
AS 'MODULE_PATHNAME', 'redshift_fdw_image_timestamptz'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- For the changes query's pass over the log (see materialize.c): true,
-- and now and then a look at the load running meanwhile.
CREATE FUNCTION redshift_fdw._mat_load_poll() RETURNS bool
AS 'MODULE_PATHNAME', 'redshift_fdw_mat_load_poll'
LANGUAGE C VOLATILE;

-- The changes of an apply, as a query for materialize.c (parameter $1:
-- the snapshot the checkpoint recorded, NULL before the first apply).
-- $2: the target's highest key, see below.
-- Rows are (op, seq, meta, the columns' values...).  One statement, so that
-- the snapshot, the log and the source agree; its first row carries that
-- snapshot (the high-water mark) in meta, with op 'S', or 'R' when the
-- target is to be reloaded (first apply, or a TRUNCATE in the batch), so
-- the loader knows before any row whether the target is replaced (and,
-- standard updates, $2 in the first key's column, as read).
--   standard: 'I' rows (a key every pending change of which is an insert:
--             absent from Redshift, so it needs no upsert), 'U' rows (a
--             changed key's current row; every row on a reload), 'D' rows
--             (keys gone; key columns only), and one 'F' row (no values)
--             where the rows above the target's highest key ($2) end
--   delta:    the logged changes in seq order ('I', 'U', 'D', 'T'), or
--             every row as 'I' on the first apply; seq is NULL: the loader
--             numbers the rows on from the checkpoint's count.  The log is
--             sorted before its images are expanded, so the sort is narrow
--             and rows stream out as they are expanded.
CREATE FUNCTION redshift_fdw._mat_changes_query(m redshift_fdw.materialization)
RETURNS text LANGUAGE plpgsql STABLE AS $$
DECLARE
  src_cols text;
  gone_cols text;
  change_cols text;
  nulls text;
  key_join text := (SELECT string_agg(format('p.%1$I = s.%1$I', k), ' AND ')
                      FROM unnest(m.key_columns) k);
  -- A logged change is pending when the apply's snapshot sees it and the
  -- checkpoint's ($1) does not.  An xid below a snapshot's xmin is seen by
  -- it and one from its xmax on is not, whatever its running list says:
  -- those comparisons come first, so most rows of a large log (committed
  -- before this apply began, after the last one ended) are decided without
  -- calling pg_visible_in_snapshot (a third of a pass over the log).
  pending text := '(l._rsfdw_xid < (SELECT xmin FROM snap) '
                  'OR pg_visible_in_snapshot(l._rsfdw_xid, (SELECT s FROM snap))) '
                  'AND ($1::pg_snapshot IS NULL OR l._rsfdw_xid >= pg_snapshot_xmax($1::pg_snapshot) '
                  'OR NOT pg_visible_in_snapshot(l._rsfdw_xid, $1::pg_snapshot))';
  log_keys text := (SELECT string_agg('p.' || quote_ident(k), ', ') FROM unnest(m.key_columns) k);
  expand bool;
  delta_src_cols text;
  -- The first key column when its type orders without a collation (the
  -- log's copy of a text key may not have the source's), so that the
  -- lowest pending value bounds the source's rows of pending keys.
  low_key text;
  -- $2, the highest value of that column the target holds (its text as
  -- Redshift gives it, read before the apply; NULL when unknown), in the
  -- column's type, when that orders on Redshift as here (integers, numeric,
  -- dates and timestamps): it bounds the keys the target may have.  An
  -- integer through numeric (a target column of scale 2 says 12.00), held
  -- to its type's range (Redshift's BIGINT may hold more, soft-deleted
  -- rows too): a bound that low sends the keys above it through the log.
  high_value text;
  -- A log row (l, or p in pending) of a key up to $2: its change is for
  -- the branches that read the log; one above it goes with the rows above
  -- $2, unless it is a delete.
  below_l text;
  below_p text;
  -- Whether n changed keys from low to high are every key in that range:
  -- the key is one integer column, unique in the source.
  low_is_integer bool;
  first_row text;
BEGIN
  SELECT a.attname,
         CASE WHEN a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
              THEN format('greatest(least(floor($2::text::numeric), %s), %s)::%s',
                          CASE a.atttypid WHEN 'int2'::regtype THEN '32767'
                                          WHEN 'int4'::regtype THEN '2147483647'
                                          ELSE '9223372036854775807' END,
                          CASE a.atttypid WHEN 'int2'::regtype THEN '-32768'
                                          WHEN 'int4'::regtype THEN '-2147483648'
                                          ELSE '-9223372036854775808' END,
                          format_type(a.atttypid, NULL))
              WHEN a.atttypid <> 'uuid'::regtype
              THEN format('$2::text::%s', format_type(a.atttypid, NULL)) END,
         a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
           AND cardinality(m.key_columns) = 1
           AND EXISTS (SELECT 1 FROM pg_index i
                        WHERE i.indrelid = m.source AND i.indisunique AND i.indisvalid
                          AND i.indpred IS NULL AND i.indexprs IS NULL
                          AND i.indnkeyatts = 1 AND i.indkey[0] = a.attnum)
    INTO low_key, high_value, low_is_integer
    FROM pg_attribute a
   WHERE a.attrelid = m.source AND a.attname = m.key_columns[1]
     AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                        'numeric'::regtype, 'uuid'::regtype, 'date'::regtype,
                        'timestamp'::regtype, 'timestamptz'::regtype);
  -- The first row's values: NULL, but $2 as the first key column's type
  -- in its column (the bound materialize.c raises for the checkpoint).
  SELECT string_agg(CASE WHEN c.local_name = low_key THEN coalesce(high_value, 'NULL') ELSE 'NULL' END,
                    ', ' ORDER BY c.attnum)
    INTO first_row
    FROM redshift_fdw._mat_columns(m.source, m.key_columns) c;
  below_l := CASE WHEN high_value IS NULL THEN 'true'
                  ELSE format('($2::text IS NULL OR NOT (l.%I > %s))', low_key, high_value) END;
  below_p := CASE WHEN high_value IS NULL THEN 'true'
                  ELSE format('($2::text IS NULL OR NOT (p.%I > %s))', low_key, high_value) END;
  -- A delta image (jsonb) column as the loader reads it: the value's text
  -- straight from the image where that is the text the column's output
  -- gives (integers and numeric are stored as JSON numbers of that text,
  -- texts and uuids as strings), through the type's input otherwise (for
  -- dates and timestamps _image_date and the like, faster), and
  -- from jsonb_populate_record (r) for arrays, composites and the rest
  -- (c.image says which); the first apply's rows (delta_src_cols) then give
  -- the columns read as text as texts too, for the UNION.
  SELECT string_agg(s.expr, ', ' ORDER BY s.attnum),
         string_agg(CASE WHEN s.is_key THEN k.expr ELSE 'NULL' END, ', ' ORDER BY s.attnum),
         string_agg(CASE c.image
                      WHEN 'text' THEN format('(l._rsfdw_image->>%L)', c.attname)
                      WHEN 'bool' THEN format('CASE l._rsfdw_image->>%L WHEN ''true'' THEN ''t'' '
                                              'WHEN ''false'' THEN ''f'' END', c.attname)
                      WHEN 'parse' THEN format('%s(l._rsfdw_image->>%L)::%s', c.parse, c.attname, c.typ)
                      ELSE r.expr END, ', ' ORDER BY s.attnum),
         string_agg(CASE WHEN c.image = 'text' THEN format('s.%I::text', c.attname) ELSE s.expr END,
                    ', ' ORDER BY s.attnum),
         bool_or(c.image = 'record'),
         string_agg('NULL', ', ')
    INTO src_cols, gone_cols, change_cols, delta_src_cols, expand, nulls
    FROM redshift_fdw._mat_columns(m.source, m.key_columns, 's') s
    JOIN redshift_fdw._mat_columns(m.source, m.key_columns, 'p') k USING (attnum)
    JOIN redshift_fdw._mat_columns(m.source, m.key_columns, 'r') r USING (attnum)
    JOIN (SELECT a.attnum::int, a.attname, format_type(a.atttypid, a.atttypmod) AS typ,
                 CASE WHEN a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                                          'numeric'::regtype, 'text'::regtype, 'varchar'::regtype,
                                          'uuid'::regtype) THEN 'text'
                      WHEN a.atttypid = 'bool'::regtype THEN 'bool'
                      WHEN a.atttypid IN ('float4'::regtype, 'float8'::regtype, 'date'::regtype,
                                          'time'::regtype, 'timetz'::regtype, 'timestamp'::regtype,
                                          'timestamptz'::regtype, 'interval'::regtype) THEN 'parse'
                      ELSE 'record' END AS image,
                 CASE a.atttypid WHEN 'date'::regtype THEN 'redshift_fdw._image_date'
                                 WHEN 'timestamp'::regtype THEN 'redshift_fdw._image_timestamp'
                                 WHEN 'timestamptz'::regtype THEN 'redshift_fdw._image_timestamptz'
                                 ELSE '' END AS parse
            FROM pg_attribute a WHERE a.attrelid = m.source) c USING (attnum);
  IF NOT m.delta_updates THEN
    -- The source's rows of pending keys (a semi-join: no aggregate of the
    -- log, and an index probe per key when few changed), then the keys
    -- gone: a key that is gone has a pending 'D' (a delete, or an update
    -- that moved its row to another key); TRUNCATE means a reload (trunc:
    -- through the log's index of its TRUNCATE rows, not a pass over it).
    -- Keys above $2, the highest value of the first key column the target
    -- holds, cannot be on Redshift: the source's rows above it go first,
    -- as inserts, with no look at the log, so Redshift loads them while
    -- the rest is worked out (an 'F' row after them has the loader upload
    -- what it staged).  For that rest, the changes of keys up to $2 (all
    -- of them without $2), one pass over the log (seen, which gives the
    -- loader no row for a while: it looks at the load through
    -- _mat_load_poll meanwhile) says whether there is any change but an
    -- insert, any delete, how many changes, and the lowest and highest
    -- pending values of the first key column: the branches a batch of
    -- inserts does not need are skipped, and source rows below the lowest
    -- are passed over before the hash probe (or not read, through the
    -- key's index, when new keys are the highest).  When every change is
    -- an insert and the source has exactly as many rows from the lowest to
    -- the highest value (fast: counted, or known when n integers fill that
    -- range), those rows are the inserted ones (each inserted key is
    -- there, under this snapshot) and no hash of the keys
    -- is needed at all.
    RETURN format($q$
WITH snap AS MATERIALIZED (SELECT s, pg_snapshot_xmin(s) AS xmin
                             FROM (SELECT redshift_fdw._mat_snapshot() AS s) x),
trunc AS MATERIALIZED (
  SELECT $1::pg_snapshot IS NULL
         OR EXISTS (SELECT 1 FROM %1$s l WHERE l._rsfdw_op = 'T' AND %2$s) AS reload),
seen AS MATERIALIZED (
  SELECT (SELECT reload FROM trunc) AS reload, ops & 6 <> 0 AS not_inserts,
         deletes, n, low, high
    FROM (SELECT coalesce(bit_or(CASE l._rsfdw_op WHEN 'I' THEN 0 WHEN 'T' THEN 1
                                                  WHEN 'D' THEN 2 ELSE 4 END)
                            FILTER (WHERE %14$s), 0) AS ops,
                 coalesce(bool_or(l._rsfdw_op = 'D'), false) AS deletes,
                 count(*) FILTER (WHERE %14$s) AS n, %10$s
            FROM %1$s l
           WHERE $1::pg_snapshot IS NOT NULL AND %2$s AND redshift_fdw._mat_load_poll()) a),
fast AS MATERIALIZED (
  SELECT %12$s AS ok FROM seen),
pending AS NOT MATERIALIZED (
  SELECT l.* FROM %1$s l WHERE l._rsfdw_op <> 'T' AND %2$s AND NOT (SELECT reload FROM trunc))
SELECT CASE WHEN (SELECT reload FROM trunc) THEN 'R' ELSE 'S' END, NULL::bigint, snap.s::text, %18$s
  FROM snap
UNION ALL
SELECT 'U'::text, NULL::bigint, NULL::text, %4$s FROM %5$s s WHERE (SELECT reload FROM trunc)
UNION ALL
SELECT CASE WHEN %9$s THEN 'I' ELSE 'U' END, NULL::bigint, NULL::text, %4$s
  FROM %5$s s WHERE NOT (SELECT reload FROM trunc) AND %15$s
UNION ALL
SELECT 'F'::text, NULL::bigint, NULL::text, %8$s
  FROM snap WHERE NOT (SELECT reload FROM trunc) AND $2::text IS NOT NULL AND %17$s
UNION ALL
SELECT CASE WHEN %9$s THEN 'I' ELSE 'U' END, NULL::bigint, NULL::text, %4$s
  FROM %5$s s WHERE (SELECT ok FROM fast) AND %13$s
UNION ALL
SELECT CASE WHEN %9$s AND NOT (SELECT not_inserts FROM seen) THEN 'I'
            WHEN %9$s AND NOT EXISTS (SELECT 1 FROM pending p WHERE %6$s AND p._rsfdw_op <> 'I')
            THEN 'I' ELSE 'U' END, NULL::bigint, NULL::text, %4$s
  FROM %5$s s WHERE NOT (SELECT ok FROM fast) AND %11$s
   AND EXISTS (SELECT 1 FROM pending p WHERE %6$s AND %16$s)
UNION ALL
SELECT 'D', NULL::bigint, NULL::text, %7$s
  FROM (SELECT DISTINCT %3$s FROM pending p
         WHERE p._rsfdw_op = 'D' AND (SELECT deletes FROM seen)) p
 WHERE NOT EXISTS (SELECT 1 FROM %5$s s WHERE %6$s)
$q$, m.change_log, pending, log_keys, src_cols, m.source, key_join, gone_cols, nulls,
     CASE WHEN redshift_fdw._mat_inserts_are_new(m) THEN 'true' ELSE 'false' END,
     CASE WHEN low_key IS NULL THEN 'NULL::text AS low, NULL::text AS high'
          ELSE format('min(l.%1$I) FILTER (WHERE %2$s) AS low, max(l.%1$I) FILTER (WHERE %2$s) AS high',
                      low_key, below_l) END,
     CASE WHEN low_key IS NULL THEN 'true'
          ELSE format('s.%I >= (SELECT low FROM seen)', low_key) END,
     CASE WHEN low_key IS NULL THEN 'false'
          ELSE format('NOT reload AND NOT not_inserts AND low IS NOT NULL AND (%s '
                      '(SELECT count(*) FROM %s x WHERE x.%I BETWEEN seen.low AND seen.high) = n)',
                      CASE WHEN low_is_integer THEN 'high::numeric - low::numeric + 1 = n OR' END,
                      m.source, low_key) END,
     CASE WHEN low_key IS NULL THEN 'false'
          ELSE format('s.%I BETWEEN (SELECT low FROM seen) AND (SELECT high FROM seen)',
                      low_key) END,
     below_l,
     CASE WHEN high_value IS NULL THEN 'false'
          ELSE format('s.%I > %s', low_key, high_value) END,
     below_p,
     CASE WHEN high_value IS NULL THEN 'false' ELSE 'true' END,
     first_row);
  END IF;
  RETURN format($q$
WITH snap AS MATERIALIZED (SELECT s, pg_snapshot_xmin(s) AS xmin
                             FROM (SELECT redshift_fdw._mat_snapshot() AS s) x)
SELECT CASE WHEN $1::pg_snapshot IS NULL THEN 'R' ELSE 'S' END, NULL::bigint, snap.s::text, %6$s
  FROM snap
UNION ALL
SELECT 'I'::text, NULL::bigint, NULL::text, %1$s FROM %2$s s WHERE $1::pg_snapshot IS NULL
UNION ALL
(SELECT l._rsfdw_op::text, NULL::bigint, NULL::text, %3$s
   FROM (SELECT x._rsfdw_op, o.seq AS _rsfdw_seq, x._rsfdw_image
           FROM (SELECT l.ctid AS t, l._rsfdw_seq AS seq FROM %4$s l
                  WHERE %5$s AND $1::pg_snapshot IS NOT NULL
                  ORDER BY l._rsfdw_seq) o,
                LATERAL (SELECT x._rsfdw_op, x._rsfdw_image FROM %4$s x
                          WHERE x.ctid = o.t OFFSET 0) x
          ORDER BY o.seq) l
   %7$s
  ORDER BY l._rsfdw_seq)
$q$, delta_src_cols, m.source, change_cols, m.change_log, pending, nulls,
     CASE WHEN expand THEN format('LEFT JOIN LATERAL jsonb_populate_record(NULL::%s, l._rsfdw_image) r ON true',
                                  m.source) ELSE '' END);
END $$;

-- Fresh statistics on a change log before an apply reads it (standard
-- updates join its keys back to the source): after a bulk change the old
-- ones can be off by orders of magnitude, and a million keys must be a
-- hash join, not a million index probes.  Only its owner may analyze it;
-- SKIP_LOCKED: an apply never waits for statistics (autovacuum, a lock),
-- and does not warn the caller of sync() that it skipped them.
CREATE FUNCTION redshift_fdw._mat_analyze_log(binding text)
RETURNS void LANGUAGE plpgsql SET client_min_messages = error AS $$
DECLARE
  m redshift_fdw.materialization := redshift_fdw._mat(binding);
BEGIN
  IF pg_has_role((SELECT c.relowner FROM pg_class c WHERE c.oid = m.change_log), 'USAGE') THEN
    EXECUTE format('ANALYZE (SKIP_LOCKED) %s', m.change_log);
  END IF;
END $$;

-- After an apply: forget the changes the snapshot covers, remember what
-- the checkpoint on Redshift now says.  When the snapshot covers the whole
-- log and no writer is using it, the log is truncated rather than emptied
-- row by row: after a bulk change that is a million-row DELETE saved, and
-- no dead rows for the next apply to scan.  Only outside a transaction
-- block (may_truncate): the lock that takes is held until commit, and
-- would hold up writers of the source while the caller's block goes on;
-- and only under READ COMMITTED, where the check below sees every change
-- committed before the lock (a transaction snapshot would hide those
-- committed since it was taken, and TRUNCATE would drop them).
CREATE FUNCTION redshift_fdw._mat_applied(binding text, snap pg_snapshot,
    changes bigint, started timestamptz, applied_rows bigint,
    may_truncate bool DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  m redshift_fdw.materialization := redshift_fdw._mat(binding);
  whole bool := false;
BEGIN
  IF snap IS NULL THEN
    -- nothing was pending
    UPDATE redshift_fdw.materialization x SET last_synced = started, last_rows = 0
     WHERE x.name = binding;
    RETURN;
  END IF;
  IF may_truncate AND has_table_privilege(m.change_log, 'TRUNCATE') THEN
    BEGIN
      -- no wait: a writer of the source holds it until it commits
      EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', m.change_log);
      -- with the lock no change is in flight: every row is committed (or
      -- aborted, and never to be read); an xid below the snapshot's xmin
      -- is seen by it, so most rows are passed over by that comparison
      EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %s WHERE _rsfdw_xid >= pg_snapshot_xmin($1) '
                     'AND NOT pg_visible_in_snapshot(_rsfdw_xid, $1))',
                     m.change_log) INTO whole USING snap;
    EXCEPTION WHEN lock_not_available THEN
      whole := false;
    END;
  END IF;
  IF whole THEN
    EXECUTE format('TRUNCATE %s', m.change_log);
  ELSE
    EXECUTE format('DELETE FROM %s WHERE _rsfdw_xid < pg_snapshot_xmin($1) '
                   'OR pg_visible_in_snapshot(_rsfdw_xid, $1)', m.change_log) USING snap;
  END IF;
  UPDATE redshift_fdw.materialization x
     SET applied_snapshot = snap, applied_changes = changes,
         last_synced = started, last_rows = applied_rows
   WHERE x.name = binding;
END $$;

-- Whether the checkpoint a Redshift table holds is older than the one the
-- last apply recorded here: it misses transactions that one saw committed
-- (taken with a lower xmax, or the same xmax and an xid it saw running
-- that the recorded one saw committed).  A checkpoint that is gone (NULL)
-- is a first apply anyway; one ahead of the recorded one is a trim missed
-- after a crash, which the next apply makes up.
CREATE FUNCTION redshift_fdw._mat_snapshot_behind(remote pg_snapshot, recorded pg_snapshot)
RETURNS bool LANGUAGE sql IMMUTABLE AS $$
SELECT remote IS NOT NULL AND recorded IS NOT NULL
   AND (pg_snapshot_xmax(remote) < pg_snapshot_xmax(recorded)
        OR (pg_snapshot_xmax(remote) = pg_snapshot_xmax(recorded)
            AND EXISTS (SELECT x FROM pg_snapshot_xip(remote) x
                        EXCEPT SELECT y FROM pg_snapshot_xip(recorded) y)))
$$;

-- What an apply asks of a materialization's change log first, in one
-- look: own_changes, whether this transaction has changed the source and
-- not committed (an apply reads the source as this transaction sees it,
-- so it would load those rows, and log them again once committed); and
-- pending, whether there are changes its last apply did not cover (or it
-- has never been applied).
CREATE FUNCTION redshift_fdw._mat_log_state(binding text, OUT own_changes bool, OUT pending bool)
LANGUAGE plpgsql STABLE AS $$
DECLARE
  m redshift_fdw.materialization := redshift_fdw._mat(binding);
BEGIN
  EXECUTE format('SELECT $1 IS NOT NULL AND EXISTS (SELECT 1 FROM %1$s WHERE _rsfdw_xid = $1), '
                 '$2 IS NULL OR EXISTS (SELECT 1 FROM %1$s WHERE NOT pg_visible_in_snapshot(_rsfdw_xid, $2) '
                 'AND pg_visible_in_snapshot(_rsfdw_xid, $3))', m.change_log)
    INTO own_changes, pending
    USING pg_current_xact_id_if_assigned(), m.applied_snapshot, redshift_fdw._mat_snapshot();
END $$;

-- One apply (materialize.c): rows applied and bytes staged.
CREATE FUNCTION redshift_fdw._apply(binding text, OUT rows bigint, OUT bytes bigint)
AS 'MODULE_PATHNAME', 'redshift_fdw_apply'
LANGUAGE C VOLATILE STRICT
SET datestyle TO 'ISO, YMD' SET timezone TO 'UTC' SET extra_float_digits TO 3
SET intervalstyle TO 'postgres' SET bytea_output TO 'hex' SET work_mem TO '64MB'
SET cursor_tuple_fraction TO 1.0 SET jit TO off;

-- Apply a materialization's pending changes now; returns the rows applied.
CREATE FUNCTION redshift_fdw.sync(name text)
RETURNS bigint LANGUAGE sql AS
$$SELECT rows FROM redshift_fdw._apply(name)$$;

-- The materializations, as a person reads them.
CREATE VIEW redshift_fdw.materializations WITH (security_invoker = true) AS
SELECT m.name, m.source, m.server,
       format('%s.%s', m.target_schema, m.target_table) AS target,
       m.key_columns, m.delta_updates, m.soft_delete,
       redshift_fdw._mat_schedule(m.schedule, m.server) AS schedule,
       m.enabled, m.last_synced, m.last_rows, m.applied_changes,
       m.change_log, m.last_error
  FROM redshift_fdw.materialization m;
GRANT SELECT ON redshift_fdw.materializations TO PUBLIC;

-- ======================================================================
-- Scheduler: a launcher (background worker, with shared_preload_libraries)
-- starts a worker per due binding; each worker runs one binding as its
-- owner and records the run here.  The functions below hold the rules;
-- the launcher and workers (scheduler.c, job.c) only call them.
-- ======================================================================

CREATE FUNCTION redshift_fdw._due_at(schedule text, last_start timestamptz)
RETURNS timestamptz
AS 'MODULE_PATHNAME', 'redshift_fdw_due_at'
LANGUAGE C STABLE;

CREATE FUNCTION redshift_fdw._retry_delay(schedule text, failures int)
RETURNS interval
AS 'MODULE_PATHNAME', 'redshift_fdw_retry_delay'
LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION redshift_fdw.scheduler(
    OUT state text, OUT pid int, OUT database text, OUT max_workers int,
    OUT hint text)
AS 'MODULE_PATHNAME', 'redshift_fdw_scheduler_state'
LANGUAGE C VOLATILE;

CREATE FUNCTION redshift_fdw._wake_scheduler()
RETURNS void
AS 'MODULE_PATHNAME', 'redshift_fdw_wake_scheduler'
LANGUAGE C VOLATILE;

-- Run history: one row per run, kept for redshift_fdw.run_retention.
CREATE TABLE redshift_fdw.runs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('capture', 'materialization')),
    binding text NOT NULL,
    owner regrole NOT NULL,
    trigger text NOT NULL CHECK (trigger IN ('schedule', 'run_now', 'retry')),
    due timestamptz NOT NULL,     -- when the run was due
    claimed timestamptz NOT NULL DEFAULT clock_timestamp(),  -- by the scheduler
    started timestamptz,          -- when its worker began
    finished timestamptz,
    status text NOT NULL DEFAULT 'running'
      CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    rows bigint,
    bytes bigint,                 -- bytes read from Redshift (capture), staged to S3 (materialization)
    error text,                   -- secrets redacted
    pid int                       -- the worker's process while running
);
CREATE INDEX runs_binding ON redshift_fdw.runs (kind, binding, id);
CREATE INDEX runs_running ON redshift_fdw.runs (kind, binding) WHERE status = 'running';
ALTER TABLE redshift_fdw.runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY runs_owner ON redshift_fdw.runs FOR SELECT
  USING (pg_has_role(current_user, owner, 'MEMBER'));
CREATE POLICY runs_owner_delete ON redshift_fdw.runs FOR DELETE
  USING (pg_has_role(current_user, owner, 'MEMBER') AND status <> 'running');
GRANT SELECT, DELETE ON redshift_fdw.runs TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('redshift_fdw.runs', '');
SELECT pg_catalog.pg_extension_config_dump('redshift_fdw.runs_id_seq', '');

-- Every binding the scheduler knows, with when it should run next (NULL:
-- never, it is disabled).  A run_now() request, then a retry after a
-- failure, then the schedule.
CREATE VIEW redshift_fdw._jobs WITH (security_invoker = true) AS
SELECT 'capture'::text AS kind, c.name AS binding, c.owner, c.enabled,
       sch.schedule,
       c.consecutive_failures, c.last_error, c.run_requested, c.retry_at,
       CASE WHEN c.run_requested IS NOT NULL THEN c.run_requested
            WHEN NOT c.enabled THEN NULL
            WHEN c.retry_at IS NOT NULL THEN c.retry_at
            ELSE redshift_fdw._due_at(sch.schedule, c.last_polled)
       END AS next_run
  FROM redshift_fdw.capture c
  LEFT JOIN pg_foreign_server s ON s.srvname = c.server
  CROSS JOIN LATERAL (SELECT redshift_fdw._effective_schedule(c.schedule, s.srvoptions)
                              AS schedule) sch
UNION ALL
SELECT 'materialization'::text, m.name, m.owner, m.enabled,
       sch.schedule,
       m.consecutive_failures, m.last_error, m.run_requested, m.retry_at,
       CASE WHEN m.run_requested IS NOT NULL THEN m.run_requested
            WHEN NOT m.enabled THEN NULL
            WHEN m.retry_at IS NOT NULL THEN m.retry_at
            ELSE redshift_fdw._due_at(sch.schedule, m.last_synced)
       END
  FROM redshift_fdw.materialization m
  CROSS JOIN LATERAL (SELECT redshift_fdw._mat_schedule(m.schedule, m.server) AS schedule) sch;
GRANT SELECT ON redshift_fdw._jobs TO PUBLIC;

-- Wakes the launcher (at commit) when a binding's timing may have changed.
CREATE FUNCTION redshift_fdw._binding_changed()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM redshift_fdw._wake_scheduler();
  RETURN NULL;
END $$;
CREATE TRIGGER capture_timing AFTER INSERT OR DELETE
    OR UPDATE OF schedule, enabled, run_requested, server
  ON redshift_fdw.capture FOR EACH ROW
  EXECUTE FUNCTION redshift_fdw._binding_changed();
CREATE TRIGGER materialization_timing AFTER INSERT OR DELETE
    OR UPDATE OF schedule, enabled, run_requested, server
  ON redshift_fdw.materialization FOR EACH ROW
  EXECUTE FUNCTION redshift_fdw._binding_changed();

-- What follows a run for any binding: success clears the failure count;
-- a failure counts and schedules a retry with backoff (capped at the
-- schedule's period); a skipped run (the binding was busy in another
-- session) retries a second later.
CREATE FUNCTION redshift_fdw._run_followup(run redshift_fdw.runs, failures int,
    schedule text, last_error text,
    OUT consecutive_failures int, OUT retry_at timestamptz, OUT error text)
LANGUAGE sql VOLATILE AS $$
SELECT CASE run.status WHEN 'succeeded' THEN 0
         WHEN 'failed' THEN least(failures + 1, 1000000) ELSE failures END,
       CASE run.status WHEN 'succeeded' THEN NULL
         WHEN 'failed' THEN clock_timestamp()
                            + redshift_fdw._retry_delay(schedule, least(failures + 1, 1000000))
         ELSE clock_timestamp() + interval '1 second' END,
       CASE run.status WHEN 'succeeded' THEN NULL WHEN 'failed' THEN run.error ELSE last_error END
$$;

-- Records what follows a run on its binding (see _run_followup).
CREATE FUNCTION redshift_fdw._after_run(run redshift_fdw.runs)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF run.kind = 'capture' THEN
    UPDATE redshift_fdw.capture c
       SET (consecutive_failures, retry_at, last_error) =
             (SELECT * FROM redshift_fdw._run_followup(run, c.consecutive_failures,
                                                       redshift_fdw._schedule(c), c.last_error)),
           last_polled = CASE WHEN run.status = 'skipped' THEN c.last_polled
                              ELSE coalesce(run.started, c.last_polled) END,
           last_rows = CASE WHEN run.status = 'succeeded' THEN run.rows ELSE c.last_rows END
     WHERE c.name = run.binding;
  ELSE
    -- last_synced and last_rows are the apply's own (it may succeed and
    -- record them even when nothing was pending)
    UPDATE redshift_fdw.materialization m
       SET (consecutive_failures, retry_at, last_error) =
             (SELECT * FROM redshift_fdw._run_followup(run, m.consecutive_failures,
                              redshift_fdw._mat_schedule(m.schedule, m.server), m.last_error)),
           last_synced = CASE WHEN run.status = 'skipped' THEN m.last_synced
                              ELSE greatest(run.started, m.last_synced) END
     WHERE m.name = run.binding;
  END IF;
END $$;

-- Opens a run of a due binding (claimed under _claim_lock): records it,
-- consumes a run_now() request.  An owner that cannot log in fails the run
-- at once (the result is then NULL).
CREATE FUNCTION redshift_fdw._open_run(j redshift_fdw._jobs)
RETURNS redshift_fdw.runs LANGUAGE plpgsql AS $$
DECLARE
  run redshift_fdw.runs;
BEGIN
  INSERT INTO redshift_fdw.runs (kind, binding, owner, trigger, due)
  VALUES (j.kind, j.binding, j.owner,
          CASE WHEN j.run_requested IS NOT NULL THEN 'run_now'
               WHEN j.retry_at IS NOT NULL THEN 'retry' ELSE 'schedule' END,
          j.next_run)
  RETURNING * INTO run;
  IF j.run_requested IS NOT NULL AND j.kind = 'capture' THEN
    UPDATE redshift_fdw.capture SET run_requested = NULL WHERE name = j.binding;
  ELSIF j.run_requested IS NOT NULL THEN
    UPDATE redshift_fdw.materialization SET run_requested = NULL WHERE name = j.binding;
  END IF;
  IF NOT coalesce((SELECT rolcanlogin FROM pg_roles WHERE oid = j.owner), false) THEN
    UPDATE redshift_fdw.runs
       SET status = 'failed', started = clock_timestamp(), finished = clock_timestamp(),
           error = format('role %s cannot log in (or no longer exists): the scheduler '
                          'runs a binding as its owner', j.owner)
     WHERE id = run.id RETURNING * INTO run;
    PERFORM redshift_fdw._after_run(run);
    RETURN NULL;
  END IF;
  RETURN run;
END $$;
REVOKE ALL ON FUNCTION redshift_fdw._open_run(redshift_fdw._jobs) FROM PUBLIC;

-- Claims are made one transaction at a time (the launcher's and the
-- workers'), so a binding is never claimed twice: they lock the one row of
-- a table no other role has any privilege on.
CREATE TABLE redshift_fdw._claim_token (token int PRIMARY KEY);
INSERT INTO redshift_fdw._claim_token VALUES (1);
REVOKE ALL ON redshift_fdw._claim_token FROM PUBLIC;

CREATE FUNCTION redshift_fdw._claim_lock()
RETURNS void LANGUAGE sql AS
$$SELECT NULL::void FROM redshift_fdw._claim_token FOR UPDATE$$;
REVOKE ALL ON FUNCTION redshift_fdw._claim_lock() FROM PUBLIC;

-- Locks a binding's catalog row unless someone holds it (a manual poll,
-- an open transaction): the scheduler never waits on a user's lock.
CREATE FUNCTION redshift_fdw._try_lock_binding(kind text, binding text)
RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF kind = 'capture' THEN
    PERFORM 1 FROM redshift_fdw.capture c WHERE c.name = binding FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      RETURN true;
    END IF;
    -- gone (dropped) is fine; present but locked is not
    RETURN NOT EXISTS (SELECT 1 FROM redshift_fdw.capture c WHERE c.name = binding);
  END IF;
  PERFORM 1 FROM redshift_fdw.materialization m WHERE m.name = binding FOR UPDATE SKIP LOCKED;
  IF FOUND THEN
    RETURN true;
  END IF;
  RETURN NOT EXISTS (SELECT 1 FROM redshift_fdw.materialization m WHERE m.name = binding);
END $$;
REVOKE ALL ON FUNCTION redshift_fdw._try_lock_binding(text, text) FROM PUBLIC;

-- Whether this process is one of the scheduler's workers (a flag only the
-- worker's own code sets).
CREATE FUNCTION redshift_fdw._in_scheduler_worker()
RETURNS bool
AS 'MODULE_PATHNAME', 'redshift_fdw_in_scheduler_worker'
LANGUAGE C STABLE;

-- Only the scheduler's workers may take, finish and claim runs.
CREATE FUNCTION redshift_fdw._require_worker(what text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF NOT redshift_fdw._in_scheduler_worker() THEN
    RAISE EXCEPTION 'only the redshift_fdw scheduler''s workers may call %', what
      USING ERRCODE = 'insufficient_privilege',
            HINT = 'Use redshift_fdw.run_now() to run a binding.';
  END IF;
END $$;

-- Due bindings not running now, earliest first (owner: only that role's).
CREATE FUNCTION redshift_fdw._due_jobs(owner oid DEFAULT NULL)
RETURNS SETOF redshift_fdw._jobs LANGUAGE sql STABLE AS $$
SELECT * FROM redshift_fdw._jobs jb
 WHERE jb.next_run IS NOT NULL
   AND (_due_jobs.owner IS NULL OR jb.owner = _due_jobs.owner)
   AND NOT EXISTS (SELECT 1 FROM redshift_fdw.runs r
                    WHERE r.status = 'running' AND r.kind = jb.kind
                      AND r.binding = jb.binding)
 ORDER BY jb.next_run
$$;

-- The launcher's one question: claims the due bindings (at most slots of
-- them, earliest first; none that is already running) by recording a run
-- for each, and returns them; a last row without run_id says when the
-- next binding is due.
CREATE FUNCTION redshift_fdw._claim_due_jobs(slots int,
    OUT run_id bigint, OUT owner oid, OUT kind text, OUT binding text,
    OUT next_due timestamptz)
RETURNS SETOF record LANGUAGE plpgsql AS $$
DECLARE
  j redshift_fdw._jobs;
  run redshift_fdw.runs;
  claimed int := 0;
  -- a binding locked by a user is looked at again a second later
  busy_retry timestamptz;
BEGIN
  PERFORM redshift_fdw._claim_lock();
  FOR j IN SELECT * FROM redshift_fdw._due_jobs() LOOP
    IF j.next_run > clock_timestamp() OR claimed >= slots THEN
      run_id := NULL; owner := NULL; kind := NULL; binding := NULL;
      next_due := least(j.next_run, busy_retry);
      RETURN NEXT;
      RETURN;
    END IF;
    IF NOT redshift_fdw._try_lock_binding(j.kind, j.binding) THEN
      busy_retry := clock_timestamp() + interval '1 second';
      CONTINUE;
    END IF;
    run := redshift_fdw._open_run(j);
    CONTINUE WHEN run.id IS NULL;
    claimed := claimed + 1;
    run_id := run.id; owner := j.owner; kind := j.kind; binding := j.binding;
    next_due := j.next_run;
    RETURN NEXT;
  END LOOP;
  run_id := NULL; owner := NULL; kind := NULL; binding := NULL; next_due := busy_retry;
  RETURN NEXT;
END $$;

-- A worker that finished a run takes the next due binding of its own
-- role, so that busy schedules do not pay a new process (and connections)
-- per run; not while another role's binding has been due longer (the
-- launcher then gives that one a worker).  Returns the run's id or NULL.
CREATE FUNCTION redshift_fdw._claim_next_run()
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j redshift_fdw._jobs;
  run redshift_fdw.runs;
  me oid := (SELECT oid FROM pg_roles WHERE rolname = session_user);
BEGIN
  PERFORM redshift_fdw._require_worker('_claim_next_run');
  PERFORM redshift_fdw._claim_lock();
  FOR j IN SELECT * FROM redshift_fdw._due_jobs() LOOP
    EXIT WHEN j.next_run > clock_timestamp() OR j.owner <> me;
    CONTINUE WHEN NOT redshift_fdw._try_lock_binding(j.kind, j.binding);
    run := redshift_fdw._open_run(j);
    IF run.id IS NOT NULL THEN
      -- this process owns it from now: if it dies, the launcher reaps it
      UPDATE redshift_fdw.runs SET pid = pg_backend_pid() WHERE id = run.id;
      RETURN run.id;
    END IF;
  END LOOP;
  RETURN NULL;
END $$;

-- A worker takes its run: records its process and start; returns nothing
-- when the run is not (or no longer) waiting for it.
CREATE FUNCTION redshift_fdw._start_run(run_id bigint,
    OUT kind text, OUT binding text, OUT started timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM redshift_fdw._require_worker('_start_run');
  UPDATE redshift_fdw.runs r
     SET pid = pg_backend_pid(), started = clock_timestamp()
   WHERE r.id = run_id AND r.status = 'running'
     AND (r.pid IS NULL OR r.pid = pg_backend_pid())
     AND r.owner = (SELECT oid FROM pg_roles WHERE rolname = session_user)
  RETURNING r.kind, r.binding, r.started INTO kind, binding, started;
END $$;

-- A worker records how its run ended (only its own run).  Returns when
-- the binding is due next, so the worker can tell the launcher if that is
-- sooner than it planned to look.
CREATE FUNCTION redshift_fdw._finish_run(run_id bigint, status text, rows bigint,
                                         bytes bigint, error text)
RETURNS timestamptz LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  run redshift_fdw.runs;
BEGIN
  PERFORM redshift_fdw._require_worker('_finish_run');
  UPDATE redshift_fdw.runs r
     SET status = _finish_run.status, finished = clock_timestamp(),
         rows = _finish_run.rows, bytes = _finish_run.bytes, error = _finish_run.error,
         pid = NULL
   WHERE r.id = run_id AND r.status = 'running' AND r.pid = pg_backend_pid()
  RETURNING * INTO run;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  PERFORM redshift_fdw._after_run(run);
  RETURN (SELECT j.next_run FROM redshift_fdw._jobs j
           WHERE j.kind = run.kind AND j.binding = run.binding);
END $$;

-- The launcher marks failed the runs whose worker is gone: the ones in
-- stopped (workers it saw exit), any whose process no longer exists, and
-- any claimed that no worker took (before the server last started, or a
-- minute ago).  reason, when given, replaces the error recorded.  A
-- binding whose catalog row a user holds locked is left for a later look.
CREATE FUNCTION redshift_fdw._reap_runs(stopped bigint[], reason text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
  run redshift_fdw.runs;
  reaped int := 0;
  restarted timestamptz := pg_postmaster_start_time();
BEGIN
  FOR run IN
    SELECT * FROM redshift_fdw.runs r
     WHERE r.status = 'running'
       AND (r.id = ANY (stopped)
            OR (r.pid IS NULL AND r.started IS NULL
                AND (r.claimed < restarted OR r.claimed < clock_timestamp() - interval '1 minute'))
            OR (r.pid IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = r.pid)))
     FOR UPDATE SKIP LOCKED
  LOOP
    CONTINUE WHEN NOT redshift_fdw._try_lock_binding(run.kind, run.binding);
    UPDATE redshift_fdw.runs r
       SET status = 'failed', finished = clock_timestamp(), pid = NULL,
           started = coalesce(r.started, clock_timestamp()),
           error = CASE WHEN reason IS NOT NULL THEN reason
                        WHEN coalesce(r.started, r.claimed) < restarted
                        THEN 'the run was interrupted: the server restarted before it finished'
                        ELSE 'the worker exited before finishing the run (it was terminated, '
                             'or crashed: see the server log)' END
     WHERE r.id = run.id
    RETURNING r.* INTO run;
    PERFORM redshift_fdw._after_run(run);
    reaped := reaped + 1;
  END LOOP;
  RETURN reaped;
END $$;
REVOKE ALL ON FUNCTION redshift_fdw._reap_runs(bigint[], text) FROM PUBLIC;
REVOKE ALL ON FUNCTION redshift_fdw._claim_due_jobs(int) FROM PUBLIC;

-- Forgets finished runs older than the retention.
CREATE FUNCTION redshift_fdw._prune_runs(retention interval)
RETURNS bigint LANGUAGE sql AS $$
WITH gone AS (DELETE FROM redshift_fdw.runs
               WHERE id IN (SELECT id FROM redshift_fdw.runs
                             WHERE status <> 'running' AND finished < now() - retention
                               FOR UPDATE SKIP LOCKED)
              RETURNING 1)
SELECT count(*) FROM gone
$$;
REVOKE ALL ON FUNCTION redshift_fdw._prune_runs(interval) FROM PUBLIC;

-- Run a binding as soon as a worker is free (the scheduler runs it as its
-- owner, and records the run in redshift_fdw.runs).
CREATE FUNCTION redshift_fdw.run_now(name text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  sch record := redshift_fdw.scheduler();
BEGIN
  UPDATE redshift_fdw.capture c SET run_requested = now() WHERE c.name = run_now.name;
  IF NOT FOUND THEN
    UPDATE redshift_fdw.materialization m SET run_requested = now() WHERE m.name = run_now.name;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'binding "%" does not exist', name
      USING ERRCODE = 'undefined_object',
            HINT = 'SELECT kind, name FROM redshift_fdw.status lists your bindings.';
  END IF;
  IF sch.state <> 'running' THEN
    RAISE WARNING 'the scheduler is not running in this database: binding "%" runs when it starts',
      name USING HINT = sch.hint || ' Meanwhile redshift_fdw.poll() (a capture) or redshift_fdw.sync() (a materialization) runs a binding now.';
  END IF;
END $$;

-- One row per binding: what a person reads first.
CREATE VIEW redshift_fdw.status WITH (security_invoker = true) AS
SELECT j.kind, j.binding AS name, j.schedule, j.enabled,
       CASE WHEN sch.state <> 'running' THEN 'scheduler off'
            WHEN r.status = 'running' THEN 'running'
            WHEN j.run_requested IS NOT NULL THEN 'requested'
            WHEN NOT j.enabled THEN 'disabled'
            WHEN j.consecutive_failures > 0 THEN 'retrying'
            ELSE 'scheduled' END AS state,
       r.started AS last_run,
       r.status AS last_status,
       r.rows AS last_rows,
       r.finished - r.started AS last_duration,
       CASE WHEN sch.state = 'running' THEN j.next_run END AS next_run,
       now() - ok.started AS lag,
       j.consecutive_failures,
       j.last_error,
       CASE WHEN sch.state <> 'running' THEN sch.hint END AS hint
  FROM redshift_fdw._jobs j
  CROSS JOIN redshift_fdw.scheduler() sch
  LEFT JOIN LATERAL (SELECT * FROM redshift_fdw.runs x
                      WHERE x.kind = j.kind AND x.binding = j.binding
                      ORDER BY x.id DESC LIMIT 1) r ON true
  LEFT JOIN LATERAL (SELECT x.started FROM redshift_fdw.runs x
                      WHERE x.kind = j.kind AND x.binding = j.binding
                        AND x.status = 'succeeded'
                      ORDER BY x.id DESC LIMIT 1) ok ON true;
GRANT SELECT ON redshift_fdw.status TO PUBLIC;

-- The capture bindings, as a person reads them.  next_poll is the
-- scheduler's: a retry after a failure or a run_now() request counts;
-- NULL when disabled.
CREATE VIEW redshift_fdw.captures WITH (security_invoker = true) AS
SELECT c.name,
       coalesce(c.source::text, format('query on server %s', s.srvname)) AS source,
       c.target,
       c.cursor_columns AS cursor,
       to_jsonb(c.cursor_state) AS cursor_values,
       redshift_fdw._schedule(c) AS schedule,
       c.format,
       c.enabled,
       c.last_polled,
       CASE WHEN j.next_run IS NOT NULL THEN greatest(j.next_run, now()) END AS next_poll,
       c.last_rows AS rows_last_poll,
       c.document_count AS documents_total,
       c.last_error
  FROM redshift_fdw.capture c JOIN pg_foreign_server s ON s.srvname = c.server
  JOIN redshift_fdw._jobs j ON j.kind = 'capture' AND j.binding = c.name;
GRANT SELECT ON redshift_fdw.captures TO PUBLIC;

-- A new extension (or a new version of it) is news to a running launcher.
SELECT redshift_fdw._wake_scheduler();
