# The scheduler: with the library preloaded, a launcher runs bindings on
# their schedules in dynamic workers, as their owners, and records each run.
# Covers: interval and daily schedules; a worker terminated mid-poll; an
# immediate server stop mid-run; backoff of a failing binding while another
# keeps its schedule; roles; the scheduler being off.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib $FindBin::Bin;
use RsfdwTest;

plan skip_all => 'needs the test bed (RS_HOST, RS_FAULT_FILE)'
  unless $ENV{RS_HOST} && $ENV{RS_FAULT_FILE};

my $node = preloaded_node('scheduler', 4);

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Waits until a query returns 't'; fails the test (with what it saw) if not.
sub wait_for
{
	my ($query, $what) = @_;
	ok($node->poll_query_until('postgres', $query), $what);
	return;
}

# A closed port on loopback, for a binding whose remote refuses connections.
my $closed_port = PostgreSQL::Test::Cluster::get_free_port();

remote_sql(
	"DROP SCHEMA IF EXISTS sched_tap CASCADE; CREATE SCHEMA sched_tap; "
	  . "CREATE TABLE sched_tap.ticks (id integer, ts timestamp); "
	  . "INSERT INTO sched_tap.ticks SELECT g, '2024-01-01'::timestamp + g * interval '1 second' "
	  . "FROM generate_series(1, 50) g; "
	  . "CREATE TABLE sched_tap.slow (id integer, ts timestamp, v varchar(20)); "
	  . "INSERT INTO sched_tap.slow SELECT g, '2024-01-01'::timestamp + g * interval '1 second', "
	  . "'row ' || g FROM generate_series(1, 1000) g");
sql(qq{
@{[ create_rs_server() ]}
CREATE SERVER dead FOREIGN DATA WRAPPER redshift_fdw
  OPTIONS (host '127.0.0.1', port '$closed_port', dbname 'dev', connect_timeout '2');
CREATE USER MAPPING FOR CURRENT_USER SERVER dead
  OPTIONS (user '$ENV{RS_USER}', password '$ENV{RS_PASSWORD}');
CREATE SCHEMA src;
IMPORT FOREIGN SCHEMA sched_tap FROM SERVER rs INTO src;
CREATE FOREIGN TABLE src.dead_ticks (id integer, ts timestamp)
  SERVER dead OPTIONS (schema_name 'sched_tap', table_name 'ticks');
});

is(sql("SELECT state || ' in ' || database FROM redshift_fdw.scheduler()"),
	'running in postgres', 'the launcher runs in redshift_fdw.database');

# --- an interval schedule ---------------------------------------------------
sql("SELECT name FROM redshift_fdw.create_capture('every2s', 'src.ticks', "
	  . "target => 'ticks', cursor_columns => '{ts}', schedule => '2s')");
sleep(10);
my $runs = sql("SELECT count(*) FILTER (WHERE status = 'succeeded') || ' ' || count(*)
                  FROM redshift_fdw.runs WHERE binding = 'every2s'
                   AND started > now() - interval '10 seconds'");
my ($ok_runs, $all_runs) = split / /, $runs;
cmp_ok($ok_runs, '>=', 3, "a 2s binding ran at least 3 times in 10 s ($runs)");
is(sql("SELECT count(*) FROM ticks"), '50', 'its first run captured the table');
is(sql("SELECT bool_and(finished >= started AND started >= due - interval '1 ms'
                        AND trigger = 'schedule' AND owner = current_user::regrole)
          FROM redshift_fdw.runs WHERE binding = 'every2s'"),
	't', 'each run is in history with its due time, start, end and owner');
is(sql("SELECT min(gap) >= interval '1.9 seconds' AND max(gap) < interval '3 seconds'
          FROM (SELECT started - lag(started) OVER (ORDER BY id) AS gap
                  FROM redshift_fdw.runs WHERE binding = 'every2s') g WHERE gap IS NOT NULL"),
	't', 'runs start 2 s apart');
is(sql("SELECT rows FROM redshift_fdw.runs WHERE binding = 'every2s' ORDER BY id LIMIT 1")
	  . ' ' . sql("SELECT bytes > 0 FROM redshift_fdw.runs WHERE binding = 'every2s' ORDER BY id LIMIT 1"),
	'50 t', 'a run records its rows and bytes');
is(sql("SELECT state || ' ' || last_status || ' ' || consecutive_failures
             || ' ' || (next_run > last_run) || ' ' || (lag < interval '3 seconds')
          FROM redshift_fdw.status WHERE name = 'every2s'"),
	'scheduled succeeded 0 true true', 'status: last run, next run, lag');

# --- a daily schedule: first run now, then the next HH:MM UTC -----------------
my $hhmm = sql("SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 hour', 'HH24:MI')");
sql("SELECT name FROM redshift_fdw.create_capture('daily', 'src.ticks', "
	  . "target => 'ticks_daily', schedule => 'daily at ${hhmm}Z')");
wait_for("SELECT last_status = 'succeeded' FROM redshift_fdw.status WHERE name = 'daily'",
	'a new daily binding runs once at once');
is(sql(qq{SELECT next_run = (SELECT d + CASE WHEN d <= last_run THEN interval '1 day' ELSE interval '0' END
                               FROM (SELECT (date_trunc('day', last_run AT TIME ZONE 'UTC')
                                             + time '$hhmm') AT TIME ZONE 'UTC' AS d) x)
               AND next_run > now() + interval '22 hours'
          FROM redshift_fdw.status WHERE name = 'daily'}),
	't', "then is due at the next $hhmm UTC");

# --- run_now -------------------------------------------------------------
sql("SELECT name FROM redshift_fdw.create_capture('slow', 'src.slow', "
	  . "target => 'slow', cursor_columns => '{ts}', schedule => '1h')");
wait_for("SELECT count(*) = 1000 FROM slow", 'a 1h binding runs once at creation');
remote_sql("INSERT INTO sched_tap.slow SELECT g, '2024-01-01'::timestamp + g * interval '1 second', "
	  . "'row ' || g FROM generate_series(1001, 2000) g");
sql("SELECT redshift_fdw.run_now('slow')");
wait_for("SELECT count(*) = 2000 FROM slow", 'run_now runs it again at once');
is(sql("SELECT trigger FROM redshift_fdw.runs WHERE binding = 'slow' ORDER BY id DESC LIMIT 1"),
	'run_now', 'recorded as a run_now run');
like(sql_error($node, "SELECT redshift_fdw.run_now('nope')"),
	qr/binding "nope" does not exist/, 'run_now of an unknown binding is an error');

my $same = q{SELECT (SELECT count(*) FROM slow) || ' rows, '
  || (SELECT count(DISTINCT id) FROM slow) || ' distinct, '
  || (SELECT count(*) FROM (SELECT id, ts, v FROM slow EXCEPT ALL SELECT * FROM src.slow) d) || ' extra, '
  || (SELECT count(*) FROM (SELECT * FROM src.slow EXCEPT ALL SELECT id, ts, v FROM slow) d) || ' missing'};

# --- a worker terminated mid-poll ----------------------------------------------
remote_sql("INSERT INTO sched_tap.slow SELECT g, '2024-01-01'::timestamp + g * interval '1 second', "
	  . "'row ' || g FROM generate_series(2001, 3000) g");
set_faults('{"faults": [{"kind": "delay", "match": "sched_tap.*slow|slow.*sched_tap", "seconds": 60}]}');
sql("SELECT redshift_fdw.run_now('slow')");
wait_for("SELECT EXISTS (SELECT 1 FROM redshift_fdw.runs r JOIN pg_stat_activity a ON a.pid = r.pid
                          WHERE r.binding = 'slow' AND r.status = 'running'
                            AND a.wait_event IS DISTINCT FROM 'ClientRead')",
	'a run is polling (stalled on Redshift)');
my $victim = sql("SELECT id || ' ' || pid FROM redshift_fdw.runs WHERE binding = 'slow' AND status = 'running'");
my ($victim_run, $victim_pid) = split / /, $victim;
is(sql("SELECT backend_type FROM pg_stat_activity WHERE pid = $victim_pid"),
	'redshift_fdw worker', 'the run is in a redshift_fdw worker');
sql("SELECT pg_terminate_backend($victim_pid)");
set_faults('{"faults": []}');
wait_for("SELECT status = 'failed' FROM redshift_fdw.runs WHERE id = $victim_run",
	'the terminated run is marked failed');
like(sql("SELECT error FROM redshift_fdw.runs WHERE id = $victim_run"),
	qr/worker exited before finishing the run/, 'saying the worker exited');
wait_for("SELECT last_status = 'succeeded' FROM redshift_fdw.status WHERE name = 'slow'",
	'the retry succeeds');
is(sql($same), '3000 rows, 3000 distinct, 0 extra, 0 missing',
	'the next run resumed: no loss, no duplicates');

# --- immediate stop mid-run --------------------------------------------------
remote_sql("INSERT INTO sched_tap.slow SELECT g, '2024-01-01'::timestamp + g * interval '1 second', "
	  . "'row ' || g FROM generate_series(3001, 4000) g");
set_faults('{"faults": [{"kind": "delay", "match": "sched_tap.*slow|slow.*sched_tap", "seconds": 60}]}');
sql("SELECT redshift_fdw.run_now('slow')");
wait_for("SELECT EXISTS (SELECT 1 FROM redshift_fdw.runs
                          WHERE binding = 'slow' AND status = 'running' AND pid IS NOT NULL)",
	'another run is polling');
my $stale = sql("SELECT id FROM redshift_fdw.runs WHERE binding = 'slow' AND status = 'running'");
$node->stop('immediate');
set_faults('{"faults": []}');
my $before_restart = time();
$node->start;
wait_for("SELECT status = 'failed' FROM redshift_fdw.runs WHERE id = $stale",
	'after restart the stale run is marked failed');
like(sql("SELECT error FROM redshift_fdw.runs WHERE id = $stale"),
	qr/server restarted/, 'saying the server restarted');
wait_for("SELECT count(*) >= 2 FROM redshift_fdw.runs WHERE binding = 'every2s'
           AND status = 'succeeded' AND started > now() - interval '6 seconds'",
	'schedules resume after the restart');
wait_for("SELECT last_status = 'succeeded' FROM redshift_fdw.status WHERE name = 'slow'",
	'the interrupted binding is retried');
is(sql($same), '4000 rows, 4000 distinct, 0 extra, 0 missing',
	'and has everything once');

# --- backoff of a failing binding; others unaffected ---------------------------
sql("SELECT name FROM redshift_fdw.create_capture('refused', 'src.dead_ticks', "
	  . "target => 'dead_ticks', schedule => '1m')");
# five attempts over (a run counts once it has ended: it starts as 'running')
wait_for("SELECT count(*) >= 5 FROM redshift_fdw.runs WHERE binding = 'refused' AND status <> 'running'",
	'the refused binding is retried');
my @gaps = split /\n/, sql("SELECT extract(epoch FROM started - lag(started) OVER (ORDER BY id))
                              FROM redshift_fdw.runs WHERE binding = 'refused' ORDER BY id OFFSET 1");
my $growing = 1;
$growing &&= $gaps[$_] > $gaps[$_ - 1] for 1 .. $#gaps;
ok($growing && $gaps[0] >= 0.9, "with growing intervals (@gaps s)");
is(sql("SELECT bool_and(status = 'failed') AND bool_and(trigger IN ('schedule', 'retry'))
          FROM redshift_fdw.runs WHERE binding = 'refused' AND status <> 'running'"), 't', 'every attempt failed');
like(sql("SELECT error FROM redshift_fdw.runs WHERE binding = 'refused' AND status <> 'running'
           ORDER BY id DESC LIMIT 1"),
	qr/connect/i, 'with the connection error');
my $window = sql("SELECT min(started) FROM redshift_fdw.runs WHERE binding = 'refused'");
# (the run of the moment may still be running: it is not a failure)
is(sql("SELECT count(*) FILTER (WHERE status = 'succeeded') >= 5
               AND count(*) FILTER (WHERE status NOT IN ('succeeded', 'running')) = 0
          FROM redshift_fdw.runs WHERE binding = 'every2s' AND started > '$window'"),
	't', 'meanwhile the 2s binding kept its schedule')
  or diag(sql("SELECT string_agg(concat_ws(' ', id, started, status, trigger, error), E'\n' ORDER BY id)
                 FROM redshift_fdw.runs WHERE binding = 'every2s' AND started > '$window'::timestamptz - interval '10 seconds'"));
is(sql("SELECT state || ' ' || (consecutive_failures >= 5) || ' ' || (last_error ~* 'connect')
          FROM redshift_fdw.status WHERE name = 'refused'"),
	'retrying true true', 'status shows the failures');
unlike(sql("SELECT string_agg(coalesce(error, ''), ' ') FROM redshift_fdw.runs"),
	qr/\Q$ENV{RS_PASSWORD}\E/, 'no secret in run history');
sql("SELECT redshift_fdw.disable_capture('refused')");

# --- roles ---------------------------------------------------------------
sql(qq{
CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
GRANT USAGE ON FOREIGN SERVER rs TO alice, bob;
GRANT USAGE ON SCHEMA src TO alice, bob;
GRANT SELECT ON src.ticks TO alice, bob;
CREATE USER MAPPING FOR alice SERVER rs OPTIONS (user '$ENV{RS_USER}', password '$ENV{RS_PASSWORD}');
CREATE USER MAPPING FOR bob SERVER rs OPTIONS (user '$ENV{RS_USER}', password '$ENV{RS_PASSWORD}');
CREATE SCHEMA alice AUTHORIZATION alice;
CREATE SCHEMA bob AUTHORIZATION bob;
CREATE TABLE public.locked (LIKE src.ticks, _row_id bigint PRIMARY KEY);
GRANT SELECT ON public.locked TO alice;
});
sub as_role
{
	my ($role, $query) = @_;
	return $node->safe_psql('postgres', "SET ROLE $role; $query");
}
as_role('alice', "SELECT name FROM redshift_fdw.create_capture('alice_cap', 'src.ticks', "
	  . "target => 'alice.ticks', schedule => '2s')");
wait_for("SELECT last_status = 'succeeded' FROM redshift_fdw.status WHERE name = 'alice_cap'",
	"alice's binding runs");
is(as_role('alice', "SELECT count(*) FROM alice.ticks"), '50', 'into her table');
is(sql("SELECT string_agg(DISTINCT owner::text, ',') FROM redshift_fdw.runs WHERE binding = 'alice_cap'"),
	'alice', 'as alice');
is(as_role('bob', "SELECT count(*) FROM redshift_fdw.status") . ' '
	  . as_role('bob', "SELECT count(*) FROM redshift_fdw.runs") . ' '
	  . as_role('bob', "SELECT count(*) FROM redshift_fdw.captures"),
	'0 0 0', 'bob sees none of it');
like(sql_error($node, "SET ROLE bob; SELECT redshift_fdw.run_now('alice_cap')"),
	qr/binding "alice_cap" does not exist/, 'bob cannot run it');
like(sql_error($node, "SET ROLE bob; SELECT redshift_fdw.alter_capture('alice_cap', schedule => '1s')"),
	qr/does not exist/, 'nor alter it');
is(as_role('bob', "WITH u AS (UPDATE redshift_fdw.capture SET enabled = false RETURNING 1) SELECT count(*) FROM u")
	  . ' ' . as_role('bob', "WITH d AS (DELETE FROM redshift_fdw.runs RETURNING 1) SELECT count(*) FROM d"),
	'0 0', 'nor change its catalog rows or history');
is(as_role('alice', "SELECT count(*) > 0 FROM redshift_fdw.runs"), 't', 'alice sees her runs');

as_role('alice', "SELECT name FROM redshift_fdw.create_capture('alice_locked', 'src.ticks', "
	  . "target => 'public.locked', schedule => '1h')");
wait_for("SELECT last_status = 'failed' FROM redshift_fdw.status WHERE name = 'alice_locked'",
	'a job writing a table its owner cannot write fails');
like(sql("SELECT error FROM redshift_fdw.runs WHERE binding = 'alice_locked' ORDER BY id DESC LIMIT 1"),
	qr/permission denied for table locked/, 'with a permission error');
is(sql("SELECT count(*) FROM public.locked"), '0', 'and writes nothing');

# a role holding its binding's catalog row locked delays only that binding:
# a run is requested for 2 s from now, and alice holds the row for 6 s
as_role('alice', "SELECT redshift_fdw.disable_capture('alice_cap'); "
	  . "UPDATE redshift_fdw.capture SET run_requested = now() + interval '2 seconds' "
	  . "WHERE name = 'alice_cap'");
my $t0 = sql("SELECT now()");
my $holder = IPC::Run::start(['psql', '-X', '-q', '-d', $node->connstr('postgres'), '-c',
	"SET ROLE alice; BEGIN; SELECT 1 FROM redshift_fdw.capture WHERE name = 'alice_cap' FOR UPDATE; "
	  . "SELECT pg_sleep(6); COMMIT;"]);
sleep(6);
$holder->finish;
is(sql("SELECT count(*) >= 2 FROM redshift_fdw.runs WHERE binding = 'every2s'
         AND status = 'succeeded' AND started > '$t0'::timestamptz + interval '2 seconds'"),
	't', 'a user holding a lock on a binding does not stall the scheduler');
wait_for("SELECT count(*) > 0 FROM redshift_fdw.runs WHERE binding = 'alice_cap'
           AND status = 'succeeded' AND started > '$t0'::timestamptz + interval '6 seconds'",
	'and the held binding runs once the lock is released');
as_role('alice', "SELECT redshift_fdw.enable_capture('alice_cap')");

sql("ALTER ROLE alice NOLOGIN; SELECT redshift_fdw.run_now('alice_cap')");
wait_for("SELECT error ~ 'cannot log in' FROM redshift_fdw.runs WHERE binding = 'alice_cap'
          ORDER BY id DESC LIMIT 1",
	'an owner that cannot log in fails the run with a clear error');
sql("ALTER ROLE alice LOGIN");

# --- one worker for two roles: an idle worker of one role makes room -----------
sql("ALTER SYSTEM SET redshift_fdw.max_workers = 1; SELECT pg_reload_conf()");
# (the reload reaches the launcher in its own time)
wait_for("SELECT max_workers = 1 FROM redshift_fdw.scheduler()", 'the launcher took max_workers = 1');
sql("SELECT redshift_fdw.disable_capture(name) FROM redshift_fdw.capture
      WHERE name NOT IN ('alice_cap')");
as_role('alice', "SELECT redshift_fdw.alter_capture('alice_cap', schedule => '1s')");
as_role('bob', "SELECT name FROM redshift_fdw.create_capture('bob_cap', 'src.ticks', "
	  . "target => 'bob.ticks', schedule => '1s')");
my $t1 = sql("SELECT now()");
sleep(8);
is(sql("SELECT string_agg(binding || ':' || (count >= 3), ',' ORDER BY binding)
          FROM (SELECT binding, count(*) FROM redshift_fdw.runs
                 WHERE binding IN ('alice_cap', 'bob_cap') AND status = 'succeeded'
                   AND started > '$t1' GROUP BY binding) r"),
	'alice_cap:true,bob_cap:true', 'with max_workers = 1, bindings of two roles both keep running');
is(sql("SELECT count(*) FROM redshift_fdw.runs a JOIN redshift_fdw.runs b
           ON a.binding = 'alice_cap' AND b.binding = 'bob_cap'
          AND a.started > '$t1' AND b.started > '$t1'
          AND a.started < b.finished AND b.started < a.finished"),
	'0', 'one run at a time');
as_role('bob', "SELECT redshift_fdw.drop_capture('bob_cap', drop_target => true)");
as_role('alice', "SELECT redshift_fdw.alter_capture('alice_cap', schedule => '2s')");
sql("ALTER SYSTEM SET redshift_fdw.max_workers = 4; SELECT pg_reload_conf()");
sql("SELECT redshift_fdw.enable_capture(name) FROM redshift_fdw.capture
      WHERE name IN ('every2s')");

# --- the launcher's own lifecycle ---------------------------------------------
my $launcher = sql("SELECT pid FROM redshift_fdw.scheduler()");
sql("SELECT pg_terminate_backend($launcher)");
wait_for("SELECT state = 'running' AND pid <> $launcher FROM redshift_fdw.scheduler()",
	'a terminated launcher is restarted');
sql("ALTER SYSTEM SET redshift_fdw.max_workers = 2; SELECT pg_reload_conf()");
wait_for("SELECT max_workers = 2 FROM redshift_fdw.scheduler()", 'SIGHUP reloads max_workers');

$node->stop('fast');
my $log = slurp_file($node->logfile);
unlike($log, qr/\Q$ENV{RS_PASSWORD}\E/, 'no secret in the server log');
like($log, qr/capture binding "refused" failed \(run \d+\): .*connect/,
	'failures are logged, naming the binding');
unlike($log, qr/TRAP|server process .* was terminated by signal/, 'no crash');

# --- without shared_preload_libraries the scheduler is off ------------------------
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->append_conf('postgresql.conf', "log_statement = 'none'");
$plain->start;
$plain->safe_psql('postgres', qq{
@{[ create_rs_server() ]}
CREATE SCHEMA src;
IMPORT FOREIGN SCHEMA sched_tap LIMIT TO (ticks) FROM SERVER rs INTO src;
SELECT name FROM redshift_fdw.create_capture('t', 'src.ticks', target => 'ticks');
});
is($plain->safe_psql('postgres', "SELECT state || ': ' || hint FROM redshift_fdw.status"),
	'scheduler off: Add redshift_fdw to shared_preload_libraries in postgresql.conf '
	  . 'and restart the server to run bindings on their schedules.',
	'the status view says the scheduler is off, with a hint');
my ($ret, $out, $err) = $plain->psql('postgres', "SELECT redshift_fdw.run_now('t')");
like($err, qr/WARNING:  the scheduler is not running in this database/, 'run_now warns');
is($plain->safe_psql('postgres', "SELECT rows_captured FROM redshift_fdw.poll('t')"), '50',
	'poll() works without the scheduler');
$plain->stop('fast');

remote_sql("DROP SCHEMA sched_tap CASCADE");
done_testing();
