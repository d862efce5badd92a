# Cancelling (pg_cancel_backend, as Ctrl-C does) and terminating
# (pg_terminate_backend) a session waiting on a stalled remote query: both
# return promptly, the remote query is stopped too, and after a cancel the
# same session's connection is reusable.  Uses the test bed's simulator.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(time sleep);
use FindBin;
use lib $FindBin::Bin;
use RsfdwTest;

plan skip_all => 'needs the test bed (RS_HOST, RS_FAULT_FILE)'
  unless $ENV{RS_HOST} && $ENV{RS_FAULT_FILE};

my $node = PostgreSQL::Test::Cluster->new('cancel');
$node->init;
# The harness logs every statement; this test's statements carry the test
# password, and run-tests checks that no log holds it.
$node->append_conf('postgresql.conf', "log_statement = 'none'");
$node->start;
$node->safe_psql('postgres', qq{
@{[ create_rs_server() ]}
CREATE FOREIGN TABLE stall (x int) SERVER rs
  OPTIONS (query 'SELECT 1 AS x WHERE ''stall_tap'' <> ''''');
CREATE FOREIGN TABLE quick (x int) SERVER rs OPTIONS (query 'SELECT 2 AS x');
});

# Every statement mentioning stall_tap waits 60 s in the simulator.
set_faults('{"faults": [{"kind": "delay", "match": "stall_tap", "seconds": 60}]}');

# Active stalled remote queries, seen on the simulator's backing server.
sub remote_sleepers
{
	my ($out) = run_command([
		'psql', '-X', '-At', '-h', $ENV{RS_BACKING_HOST},
		'-p', $ENV{RS_BACKING_PORT}, '-U', $ENV{RS_BACKING_USER}, '-d', 'dev',
		'-c', "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
		  . "AND query LIKE 'SELECT pg_sleep%'" ]);
	chomp $out;
	return $out;
}

# Start a psql session running the given commands; wait until its stalled
# query is active here; return (harness, stdout ref, stderr ref, pid).
sub start_stalled
{
	my (@commands) = @_;
	my ($stdout, $stderr) = ('', '');
	my @cmd = ('psql', '-X', '-d', $node->connstr('postgres'));
	push @cmd, map { ('-c', $_) } @commands;
	my $h = IPC::Run::start(\@cmd, '>', \$stdout, '2>', \$stderr);
	my $pid = '';
	for (1 .. 100)
	{
		$pid = $node->safe_psql('postgres',
			"SELECT pid FROM pg_stat_activity WHERE query = '$commands[0]' "
			  . "AND state = 'active'");
		last if $pid ne '' && remote_sleepers() > 0;
		sleep 0.1;
	}
	return ($h, \$stdout, \$stderr, $pid);
}

# Wait for a harness to end, at most $limit seconds; returns elapsed time.
sub wait_for_end
{
	my ($h, $limit) = @_;
	my $start = time;
	while ($h->pumpable && time - $start < $limit)
	{
		$h->pump_nb;
		sleep 0.05;
	}
	$h->kill_kill if $h->pumpable;
	$h->finish;
	return time - $start;
}

# Wait until no stalled remote query is left, at most $limit seconds.
sub remote_stopped
{
	my ($limit) = @_;
	my $start = time;
	while (time - $start < $limit)
	{
		return 1 if remote_sleepers() == 0;
		sleep 0.1;
	}
	return 0;
}

# --- cancel ---------------------------------------------------------------
my ($h, $out, $err, $pid) = start_stalled('SELECT count(*) FROM stall',
	'SELECT x FROM quick');
isnt($pid, '', 'stalled query is running');
$node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
my $elapsed = wait_for_end($h, 10);
cmp_ok($elapsed, '<', 3, "cancel returned in ${elapsed}s");
like($$err, qr/canceling statement due to user request/, 'cancel error');
like($$out, qr/^\s*2\s*$/m, 'same session reads again after the cancel');
ok(remote_stopped(5), 'remote query stopped after cancel');

# --- terminate ------------------------------------------------------------
($h, $out, $err, $pid) = start_stalled('SELECT count(*) FROM stall');
isnt($pid, '', 'stalled query is running again');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$elapsed = wait_for_end($h, 10);
cmp_ok($elapsed, '<', 3, "terminate returned in ${elapsed}s");
like($$err, qr/terminating connection due to administrator command/,
	'terminate error');
ok(remote_stopped(5), 'remote query stopped after terminate');

# --- statement_timeout ----------------------------------------------------
my $start = time;
my ($ret, $o, $e) = $node->psql('postgres',
	"SET statement_timeout = '500ms'; SELECT count(*) FROM stall");
cmp_ok(time - $start, '<', 3, 'statement_timeout returns promptly');
like($e, qr/canceling statement due to statement timeout/, 'timeout error');
ok(remote_stopped(5), 'remote query stopped after timeout');

set_faults('{"faults": []}');
is($node->safe_psql('postgres', 'SELECT count(*) FROM stall'), '1',
	'stall table reads once the fault is gone');

$node->stop;
done_testing();
