--
-- Scan behaviour: concurrent scans, rescans, cancel, remote errors,
-- broken connections, the connection pool.
--
\i test/fixtures/regress_server.sql
ALTER SERVER rs OPTIONS (ADD fetch_size '7');
CREATE SCHEMA rs;
IMPORT FOREIGN SCHEMA fdw_test LIMIT TO (orders, keys2) FROM SERVER rs INTO rs;

-- ===================================================================
-- Two foreign scans open at once (Redshift allows one cursor per
-- session: each scan has its own connection), with rescans
-- ===================================================================
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT a.id, b.id FROM rs.orders a JOIN rs.orders b ON b.id = a.id + 1
 WHERE a.id <= 3;
SELECT a.id, b.id FROM rs.orders a JOIN rs.orders b ON b.id = a.id + 1
 WHERE a.id <= 3 ORDER BY a.id;
-- a correlated subquery: rescanned with a new parameter for each outer row
EXPLAIN (VERBOSE, COSTS OFF)
SELECT k.b, (SELECT count(*) FROM rs.orders o WHERE o.qty = k.b) FROM rs.keys2 k;
SELECT k.b, (SELECT count(*) FROM rs.orders o WHERE o.qty = k.b) FROM rs.keys2 k ORDER BY k.b;
-- a scan abandoned early (LIMIT evaluated locally) leaves its connection usable
SELECT id FROM rs.orders WHERE customer ~ '5' LIMIT 2;
SELECT count(*) FROM rs.orders;
SELECT server_name, valid, busy, redshift FROM redshift_fdw.connections ORDER BY 1;
SELECT count(*) >= 2 AS two_connections FROM redshift_fdw.connections;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;

-- ===================================================================
-- Remote errors keep SQLSTATE, message and the remote SQL as context
-- ===================================================================
CREATE FOREIGN TABLE rs.missing (a int) SERVER rs
  OPTIONS (schema_name 'fdw_test', table_name 'no_such_table');
SELECT * FROM rs.missing;
\set VERBOSITY sqlstate
SELECT * FROM rs.missing;
\set VERBOSITY default
CREATE FOREIGN TABLE rs.via_query (id bigint, amount numeric) SERVER rs
  OPTIONS (query 'SELECT id, amount * 2 AS amount FROM fdw_test.orders WHERE id < 4');
SELECT * FROM rs.via_query ORDER BY id;
EXPLAIN (VERBOSE, COSTS OFF) SELECT * FROM rs.via_query WHERE id = 2;
-- a query option Redshift rejects: Redshift's error comes back
CREATE FOREIGN TABLE rs.bad_query (a text) SERVER rs
  OPTIONS (query 'SELECT E''x'' AS a');
SELECT * FROM rs.bad_query;
-- the connection is still good after errors
SELECT count(*) FROM rs.orders;

-- ===================================================================
-- Cancel: statement_timeout stops a stalled remote query promptly and
-- the connection is reusable
-- ===================================================================
\! test/sim/simctl fault delay match=stall_me seconds=30
CREATE FOREIGN TABLE rs.stall (id bigint) SERVER rs
  OPTIONS (query 'SELECT id FROM fdw_test.orders WHERE ''stall_me'' <> ''''');
SET statement_timeout = '1s';
SELECT count(*) FROM rs.stall;
RESET statement_timeout;
\! test/sim/simctl clear
SELECT count(*) FROM rs.stall;

-- ===================================================================
-- A connection dropped mid-scan is an error; the next query reconnects
-- ===================================================================
\! test/sim/simctl fault drop_connection after_rows=20 match=fdw_test
\set VERBOSITY sqlstate
SELECT count(*) FROM rs.orders;
\set VERBOSITY default
\! test/sim/simctl clear
SELECT count(*) FROM rs.orders;

-- ===================================================================
-- Changing the server or user mapping replaces pooled connections;
-- disconnect() and disconnect_all() close them
-- ===================================================================
SELECT count(*) > 0 AS some FROM redshift_fdw.connections;
ALTER SERVER rs OPTIONS (SET fetch_size '50');
SELECT count(*) FROM rs.orders;
SELECT count(*) AS after_alter FROM redshift_fdw.connections;
SELECT redshift_fdw.disconnect('rs');
SELECT count(*) AS after_disconnect FROM redshift_fdw.connections;
SELECT redshift_fdw.disconnect('rs');
SELECT count(*) FROM rs.orders;
SELECT redshift_fdw.disconnect_all();
SELECT count(*) AS after_disconnect_all FROM redshift_fdw.connections;
SELECT redshift_fdw.disconnect('no_such_server');

-- ===================================================================
-- Non-superusers must use a password
-- ===================================================================
CREATE ROLE rsfdw_user;
GRANT USAGE ON SCHEMA rs TO rsfdw_user;
GRANT SELECT ON rs.orders TO rsfdw_user;
GRANT USAGE ON FOREIGN SERVER rs TO rsfdw_user;
CREATE USER MAPPING FOR rsfdw_user SERVER rs OPTIONS (user :'rs_user');
SET ROLE rsfdw_user;
SELECT count(*) FROM rs.orders;
RESET ROLE;
ALTER USER MAPPING FOR rsfdw_user SERVER rs OPTIONS (ADD password :'rs_password');
SET ROLE rsfdw_user;
SELECT count(*) FROM rs.orders;
RESET ROLE;

DROP EXTENSION redshift_fdw CASCADE;
DROP SCHEMA rs;
DROP ROLE rsfdw_user;
