--
-- Scheduler: the rules it runs by, checked without a launcher.  The test
-- bed's launcher serves database postgres, so here (contrib_regression)
-- it says so, and bindings do not run by themselves: t/005_scheduler.pl
-- covers the launcher and workers.
--
\i test/fixtures/regress_server.sql
\set SHOW_CONTEXT never
\! test/fixtures/rs_sql "DROP SCHEMA IF EXISTS sched_test CASCADE; CREATE SCHEMA sched_test; CREATE TABLE sched_test.t (id integer, ts timestamp); INSERT INTO sched_test.t SELECT g, '2024-01-01'::timestamp + g * interval '1 minute' FROM generate_series(1, 3) g"
CREATE SCHEMA src;
IMPORT FOREIGN SCHEMA sched_test FROM SERVER rs INTO src;

-- where the scheduler runs, and the hint for this database
SELECT state, database, max_workers, hint FROM redshift_fdw.scheduler();

-- retries back off exponentially, with at most 25% jitter, capped at the
-- schedule's period
SELECT n, d >= b AND d <= b * 1.25 AS within_jitter
  FROM generate_series(1, 6) n,
       LATERAL (SELECT extract(epoch FROM redshift_fdw._retry_delay('1m', n)) AS d,
                       least(2 ^ (n - 1), 60) AS b) x
 ORDER BY n;
SELECT redshift_fdw._retry_delay('1m', 30), redshift_fdw._retry_delay('2s', 5),
       redshift_fdw._retry_delay('daily at 06:00Z', 40);
SELECT redshift_fdw._retry_delay('soon', 1);

-- due times: the schedule's next instant after the last start, even when
-- past; now when never run
SELECT redshift_fdw._due_at('5m', '2024-01-01 10:00Z'),
       redshift_fdw._due_at('daily at 06:00Z', '2024-01-01 10:00Z'),
       redshift_fdw._due_at('daily at 06:00Z', '2024-01-01 05:00Z'),
       redshift_fdw._due_at('1h', NULL) = now() AS never_run_is_now;

-- a binding: in status with the scheduler off here, and its next run
SELECT name FROM redshift_fdw.create_capture('s1', 'src.t', target => 's1', cursor_columns => '{ts}',
                                             schedule => '10m');
SELECT kind, name, schedule, enabled, state, last_run, next_run, lag, consecutive_failures,
       hint IS NOT NULL AS has_hint
  FROM redshift_fdw.status;
-- run_now records the request (and warns that nothing here will run it)
SELECT redshift_fdw.run_now('s1');
SELECT run_requested IS NOT NULL AS requested FROM redshift_fdw.capture;
SELECT redshift_fdw.run_now('nope');
-- the launcher's claim records a run for each due binding, the request
-- first, and says when the next is due; a claimed binding is not claimed
-- again while its run is open
SELECT name FROM redshift_fdw.create_capture('s2', 'src.t', target => 's2', schedule => '1h');
UPDATE redshift_fdw.capture SET last_polled = now() WHERE name = 's2';
SELECT run_id IS NOT NULL AS claimed, kind, binding,
       CASE WHEN run_id IS NULL
            THEN next_due - (SELECT last_polled FROM redshift_fdw.capture WHERE name = 's2')
       END AS next_after_s2_last
  FROM redshift_fdw._claim_due_jobs(10);
SELECT binding, trigger, status FROM redshift_fdw.runs;
SELECT count(*) AS claimed_again FROM redshift_fdw._claim_due_jobs(10) WHERE run_id IS NOT NULL;
SELECT run_requested IS NULL AS request_consumed FROM redshift_fdw.capture WHERE name = 's1';
-- no slot free: nothing claimed, and the due binding is still due
SELECT redshift_fdw.run_now('s2');
SELECT run_id, next_due <= now() AS due_now FROM redshift_fdw._claim_due_jobs(0);
-- a run whose worker is gone is failed, and the binding backs off
SELECT redshift_fdw._reap_runs(ARRAY(SELECT id FROM redshift_fdw.runs WHERE binding = 's1'));
SELECT binding, status, error FROM redshift_fdw.runs WHERE binding = 's1';
SELECT binding, consecutive_failures, last_error IS NOT NULL AS has_error,
       next_run > now() AND next_run <= now() + interval '1.25 seconds' AS retry_in_1s
  FROM redshift_fdw._jobs WHERE binding = 's1';
-- a claim no worker took is reaped after a minute, or at once when it
-- predates the server's start (s2 is claimed, its worker never began)
SELECT binding FROM redshift_fdw._claim_due_jobs(1) WHERE run_id IS NOT NULL;
SELECT redshift_fdw._reap_runs('{}') AS not_yet;
UPDATE redshift_fdw.runs SET claimed = '2000-01-01' WHERE binding = 's2';
SELECT redshift_fdw._reap_runs('{}');
SELECT binding, status, error FROM redshift_fdw.runs WHERE status = 'failed' ORDER BY id;
-- a schedule that does not parse never reaches the catalog (the launcher
-- reads every row); the failure count cannot be made negative
UPDATE redshift_fdw.capture SET schedule = 'bogus' WHERE name = 's1';
\set VERBOSITY terse
UPDATE redshift_fdw.capture SET consecutive_failures = -1 WHERE name = 's1';
\set VERBOSITY default
-- only the scheduler's workers take, finish and claim runs
SELECT redshift_fdw._claim_next_run();
SELECT redshift_fdw._start_run(1);
SELECT redshift_fdw._finish_run(1, 'succeeded', 0, 0, NULL);
-- old runs go
SELECT redshift_fdw._prune_runs('0 seconds') AS pruned;
SELECT count(*) AS left FROM redshift_fdw.runs;

-- roles: another role sees none of this, cannot run or change it, and
-- cannot call the launcher's functions
CREATE ROLE sched_other;
SET ROLE sched_other;
SELECT count(*) FROM redshift_fdw.status;
SELECT count(*) FROM redshift_fdw.runs;
SELECT redshift_fdw.run_now('s1');
SELECT * FROM redshift_fdw._claim_due_jobs(1);
SELECT redshift_fdw._reap_runs('{}');
SELECT redshift_fdw._claim_lock();
-- nor take a binding's lock: its key is private to the owner
SELECT redshift_fdw._binding_lock_key('s1') AS key_seen;
SELECT count(*) FROM redshift_fdw.capture;
RESET ROLE;

SELECT redshift_fdw.drop_capture('s1', drop_target => true);
SELECT redshift_fdw.drop_capture('s2', drop_target => true);
SELECT count(*) AS runs_left FROM redshift_fdw.runs;
DROP EXTENSION redshift_fdw CASCADE;
DROP ROLE sched_other;
DROP SCHEMA src CASCADE;
