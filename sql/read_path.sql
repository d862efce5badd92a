--
-- Foreign scans against the Redshift simulator: what is pushed down, and
-- that pushed-down results equal local evaluation.
--
\i test/fixtures/regress_server.sql
CREATE SCHEMA rs;
IMPORT FOREIGN SCHEMA fdw_test LIMIT TO (orders) FROM SERVER rs INTO rs;
CREATE TABLE loc_orders AS SELECT * FROM rs.orders;
SELECT count(*) FROM loc_orders;

-- Compares the foreign table with its local copy under a condition.
CREATE FUNCTION same_as_local(cond text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
  diff bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM rs.orders WHERE %s', cond) INTO n;
  EXECUTE format('SELECT count(*) FROM ((SELECT * FROM rs.orders WHERE %1$s
                    EXCEPT ALL SELECT * FROM loc_orders WHERE %1$s)
                  UNION ALL (SELECT * FROM loc_orders WHERE %1$s
                    EXCEPT ALL SELECT * FROM rs.orders WHERE %1$s)) d', cond)
    INTO diff;
  RETURN CASE WHEN diff = 0 THEN format('same, %s rows', n)
              ELSE format('DIFFERENT in %s rows', diff) END;
END $$;

-- Shows where a condition is evaluated: the Remote SQL, and any local Filter.
CREATE FUNCTION plan_of(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
  line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) ' || query LOOP
    IF line ~ 'Remote SQL|Filter|Sort Key|Limit' THEN
      RETURN NEXT regexp_replace(line, '^\s*(->\s*)?', '');
    END IF;
  END LOOP;
END $$;

-- ===================================================================
-- Only the needed columns are fetched
-- ===================================================================
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, amount FROM rs.orders;
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM rs.orders;
SELECT count(*), sum(amount), sum(score)::numeric(20,10) FROM rs.orders;

-- ===================================================================
-- WHERE pushdown, one shape at a time: plan, then equality with local
-- ===================================================================
CREATE TABLE conds (n serial, cond text);
INSERT INTO conds (cond) VALUES
  ('id = 5'), ('id <> 5'), ('id < 5'), ('id <= 5'), ('id > 95'), ('id >= 95'),
  ('amount > 100.5'), ('score < 1.5'), ('qty = 3'), ('qty < id'),
  ('customer = ''customer 5'''), ('customer <> ''customer 5'''),
  ('status = ''A'''), ('ok'), ('NOT ok'), ('ok IS NULL'), ('ok IS NOT TRUE'),
  ('ok = true'), ('ordered_at > ''2024-01-03'''),
  ('updated_at > ''2024-01-01 01:00:00+00'''),
  ('ordered_at >= ''2024-01-02''::date'),
  ('(id < 10 OR id > 90) AND NOT status = ''B'''),
  ('customer IS NULL'), ('customer IS NOT NULL'),
  ('id IN (1, 2, 3)'), ('id NOT IN (1, 2, 3)'),
  ('customer IN (''customer 1'', ''customer 2'')'),
  ('id BETWEEN 10 AND 20'),
  ('customer LIKE ''customer 1%'''), ('customer NOT LIKE ''%5'''),
  ('customer ILIKE ''CUSTOMER 2%'''),
  ('(id, amount) > (50, 10)'), ('(qty, id) <= (2, 50)'),
  ('qty + 1 = 3'), ('id * 2 > 150'), ('id % 3 = 0'), ('-id < -95'),
  ('qty::bigint = 3'), ('id::numeric > 95'), ('qty::float8 > 3.5'),
  ('customer = ''it''''s \ a test'''),
  ('updated_at > now() - interval ''1000 years'''),
  ('ordered_at < current_date'),
  ('customer ~ ''9$'''), ('upper(customer) = ''CUSTOMER 9'''),
  ('customer > ''customer 5'''), ('customer COLLATE "C" > ''customer 5'''),
  ('amount * 2 > 10'), ('random() < 2');
SELECT n, cond, same_as_local(cond) FROM conds ORDER BY n;
SELECT n, plan_of('SELECT id FROM rs.orders WHERE ' || cond) AS plan
  FROM conds ORDER BY n;

-- Parameters: prepared statements (generic plans) and PL/pgSQL variables
SET plan_cache_mode = force_generic_plan;
PREPARE above(bigint) AS SELECT count(*) FROM rs.orders WHERE id > $1;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE above(90);
EXECUTE above(90);
EXECUTE above(50);
PREPARE since(timestamptz) AS SELECT count(*) FROM rs.orders WHERE updated_at >= $1;
EXECUTE since('2024-01-01 01:30:00+00');
EXECUTE since('2024-01-01 02:30:00+01');  -- same instant: time zones handled
RESET plan_cache_mode;
CREATE FUNCTION count_above(x bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  SELECT count(*) INTO n FROM rs.orders WHERE id > x;
  RETURN n;
END $$;
SELECT count_above(97), count_above(0);

-- ===================================================================
-- ORDER BY and LIMIT/OFFSET
-- ===================================================================
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM rs.orders ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, amount FROM rs.orders ORDER BY amount DESC NULLS LAST, id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, ok FROM rs.orders ORDER BY ok NULLS FIRST, id DESC;
EXPLAIN (VERBOSE, COSTS OFF) SELECT customer FROM rs.orders ORDER BY customer;
EXPLAIN (VERBOSE, COSTS OFF) SELECT customer FROM rs.orders ORDER BY customer COLLATE "C";
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM rs.orders ORDER BY id LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, amount FROM rs.orders WHERE status = 'A' ORDER BY id DESC LIMIT 3 OFFSET 2;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM rs.orders WHERE customer ~ '1' ORDER BY id LIMIT 3;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id + 1 AS next_id FROM rs.orders ORDER BY id LIMIT 2;
SELECT id, ok FROM rs.orders ORDER BY ok NULLS FIRST, id DESC LIMIT 4;
SELECT id, amount FROM rs.orders WHERE status = 'A' ORDER BY id DESC LIMIT 3 OFFSET 2;
SELECT id FROM rs.orders WHERE customer ~ '1' ORDER BY id LIMIT 3;
SELECT id + 1 AS next_id FROM rs.orders ORDER BY id LIMIT 2;
SELECT customer FROM rs.orders ORDER BY customer COLLATE "C" NULLS FIRST LIMIT 3;
SET plan_cache_mode = force_generic_plan;
PREPARE page(bigint, bigint) AS SELECT id FROM rs.orders ORDER BY id LIMIT $1 OFFSET $2;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE page(2, 10);
EXECUTE page(2, 10);
RESET plan_cache_mode;
-- the same rows as evaluating everything locally
SELECT (SELECT array_agg(id) FROM (SELECT id FROM rs.orders WHERE qty > 2 ORDER BY amount DESC, id LIMIT 7 OFFSET 3) r)
     = (SELECT array_agg(id) FROM (SELECT id FROM loc_orders WHERE qty > 2 ORDER BY amount DESC, id LIMIT 7 OFFSET 3) l)
  AS same_page;

DROP EXTENSION redshift_fdw CASCADE;
DROP TABLE loc_orders, conds;
DROP FUNCTION same_as_local(text), plan_of(text), count_above(bigint);
