# Materialization exactly once under faults.  Two bindings on one source
# table and one Redshift schema: "fs" (standard updates) and "fd" (delta
# updates).  One subtest per failure point: S3 PUT 503 (transient and
# persistent), the connection dropped during COPY, 1023 at commit, the
# process gone between the Redshift COMMIT and the local trim (a lost
# COMMIT reply; a terminated sync; a terminated scheduler worker), an
# immediate server stop mid-apply, two bindings applying concurrently under
# 1023, another writer moving the fence, and changes committed while an
# apply under REPEATABLE READ runs (sync() and the scheduler's runs, whose
# trim must not truncate them away).  Each ends with the standard
# target equal to the source and the delta target holding every change
# exactly once, in order.
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

plan skip_all => 'needs the test bed (RS_HOST, S3_ENDPOINT, RS_BACKING_PORT, RS_FAULT_FILE)'
  unless $ENV{RS_HOST} && $ENV{S3_ENDPOINT} && $ENV{RS_BACKING_PORT}
  && $ENV{RS_FAULT_FILE};

my $schema = "tap007_$$";    # Redshift schema of this run
my $prefix = "tap007-$$";    # S3 staging prefix of this run
my @secrets = grep { defined && length } @ENV{qw(RS_PASSWORD AWS_SECRET_ACCESS_KEY)};
my $no_faults = '{"faults": []}';

set_faults($no_faults);
remote_sql("DROP SCHEMA IF EXISTS $schema CASCADE");

# whatever happens, leave no fault rule behind
END
{
	local $?;
	set_faults('{"faults": []}') if $ENV{RS_FAULT_FILE};
}

my $node = preloaded_node('faults', 2);

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Both bindings disabled: the scheduler runs them only on run_now().
sql(qq{
CREATE EXTENSION redshift_fdw;
@{[ create_staging_server('rs', $schema, $prefix) ]}
CREATE TABLE src (id int PRIMARY KEY, v text, amount numeric(10,2));
INSERT INTO src SELECT g, 'v' || g, g / 4.0 FROM generate_series(1, 300) g;
BEGIN;
SELECT name FROM redshift_fdw.create_materialization('fs', 'src', 'rs', target_table => 'fs');
SELECT name FROM redshift_fdw.create_materialization('fd', 'src', 'rs', target_table => 'fd',
                                                     delta_updates => true);
SELECT redshift_fdw.disable_materialization('fs');
SELECT redshift_fdw.disable_materialization('fd');
COMMIT;
});
my %log = map { $_ => sql("SELECT change_log FROM redshift_fdw.materialization WHERE name = '$_'") }
  qw(fs fd);

# --- the source as the test changes it, and the changes the delta target
# must hold after its backfill, in order ---------------------------------------
my %src = map { $_ => [ "v$_", sprintf('%.2f', $_ / 4) ] } 1 .. 300;
my @backfill = map { "I|$_|v$_|" . sprintf('%.2f', $_ / 4) } 1 .. 300;
my @expect;
my $next_id = 1000;

sub ins_many
{
	my ($label, $n) = @_;
	my $from = $next_id + 1;
	$next_id += $n;
	sql("INSERT INTO src SELECT g, '$label ' || g, g * 1.25 FROM generate_series($from, $next_id) g");
	for my $g ($from .. $next_id)
	{
		$src{$g} = [ "$label $g", sprintf('%.2f', $g * 1.25) ];
		push @expect, "I|$g|$label $g|$src{$g}[1]";
	}
	return;
}

sub upd
{
	my ($id, $v) = @_;
	sql("UPDATE src SET v = '$v' WHERE id = $id");
	$src{$id}[0] = $v;
	push @expect, "U|$id|$v|$src{$id}[1]";
	return;
}

sub rekey
{
	my ($old, $new) = @_;
	sql("UPDATE src SET id = $new WHERE id = $old");
	my $r = $src{$new} = delete $src{$old};
	push @expect, "U|$new|$r->[0]|$r->[1]", "D|$old|$r->[0]|$r->[1]";
	return;
}

sub del
{
	my ($id) = @_;
	sql("DELETE FROM src WHERE id = $id");
	my $r = delete $src{$id};
	push @expect, "D|$id|$r->[0]|$r->[1]";
	return;
}

# A batch of changes: inserts, an update, a key change, a delete.
sub batch
{
	my ($label) = @_;
	my @ids = sort { $a <=> $b } keys %src;
	ins_many($label, 40);
	upd($ids[0], "$label, \"updated\"");
	rekey($ids[1], ++$next_id);
	del($ids[2]);
	upd($next_id - 1, "$label again");
	return;
}

# --- what Redshift holds -----------------------------------------------------
sub digest
{
	my ($from) = @_;
	return "SELECT count(*) || ' rows, md5 ' || coalesce(md5(string_agg(r.id || '|' || "
	  . "quote_nullable(r.v) || '|' || r.amount::text, E'\\n' ORDER BY r.id)), '-') FROM $from r";
}

# The target's whole content, for "unchanged" checks.
sub target_state
{
	my ($b) = @_;
	return backing_sql("SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '-')
	                      FROM $schema.$b t");
}

# What the checkpoint says is applied (the fence moves on every apply).
sub applied
{
	my ($b) = @_;
	return backing_sql("SELECT applied_snapshot || ' ' || applied_changes
	                      FROM $schema.redshift_fdw_checkpoints WHERE name = '$b'");
}

sub staged_files
{
	return sql("SELECT count(*) FROM redshift_fdw.s3_list('rs', '')");
}

sub check_standard
{
	my ($what) = @_;
	is(backing_sql(digest("$schema.fs")), sql(digest('src')), "$what: standard target equals the source");
	return;
}

sub check_delta
{
	my ($what) = @_;
	my @rows = split /\n/, backing_sql(
		"SELECT _rsfdw_seq || '|' || _rsfdw_op || '|' || coalesce(id::text, 'NULL') || '|' "
		  . "|| coalesce(v, 'NULL') || '|' || coalesce(amount::text, 'NULL') "
		  . "FROM $schema.fd ORDER BY _rsfdw_seq, _rsfdw_op");
	my @seqs = map { (split /\|/)[0] } @rows;
	my @ops = map { s/^\d+\|//r } @rows;
	is(join(',', @seqs), join(',', 1 .. scalar @rows), "$what: delta _rsfdw_seq is 1..N, no duplicate, no gap");
	is(join("\n", sort @ops[ 0 .. $#backfill ]), join("\n", sort @backfill),
		"$what: delta starts with the backfill");
	is(join("\n", @ops[ @backfill .. $#ops ]), join("\n", @expect),
		"$what: then every change once, in order (" . scalar(@expect) . ' changes)');
	my %t;
	for (@ops)
	{
		my ($op, $id, $v, $amount) = split /\|/, $_, -1;
		if ($op eq 'I' || $op eq 'U') { $t{$id} = "$id|$v|$amount"; }
		elsif ($op eq 'D') { delete $t{$id}; }
		elsif ($op eq 'T') { %t = (); }
	}
	is(join("\n", map { $t{$_} } sort { $a <=> $b } keys %t),
		sql("SELECT string_agg(id || '|' || v || '|' || amount, E'\\n' ORDER BY id) FROM src"),
		"$what: replaying the delta target gives the source");
	return;
}

# The end of every subtest: both targets right, nothing left behind.
sub check_all
{
	my ($what) = @_;
	check_standard($what);
	check_delta($what);
	is(staged_files() . ' ' . sql("SELECT count(*) FROM $log{fs}") . ' ' . sql("SELECT count(*) FROM $log{fd}"),
		'0 0 0', "$what: no staging file left, change logs trimmed");
	return;
}

# sync() of a binding in the background, as application bg_<binding>;
# $opt{setup}: a statement the session runs first.
sub bg_sync
{
	my ($b, %opt) = @_;
	my $h = { out => '', err => '' };
	local $ENV{PGOPTIONS} = $opt{debug} ? '-c client_min_messages=debug1' : '';
	$h->{run} = IPC::Run::start(
		[ 'psql', '-X', '-At', '-v', 'ON_ERROR_STOP=1', '-d',
			$node->connstr('postgres') . " application_name=bg_$b",
			($opt{setup} ? ('-c', $opt{setup}) : ()),
			'-c', "SELECT redshift_fdw.sync('$b')" ],
		'>', \$h->{out}, '2>', \$h->{err}, IPC::Run::timeout(180));
	return $h;
}

# Waits for a background sync; true when it succeeded.
sub bg_finish
{
	my ($h) = @_;
	my $ok = eval { $h->{run}->finish };
	$h->{run}->kill_kill unless defined $ok;
	return $ok;
}

# The 1023 retries an apply reported (client_min_messages = debug1).
sub retries_1023
{
	my ($text) = @_;
	my @n = $text =~ /1023 in (?:the load|taking the checkpoint), attempt/g;
	return scalar @n;
}

# 503 answers the S3 gate logged for PUTs under a binding's staging prefix.
my $gate_log = $ENV{TESTBED_DIR} ? "$ENV{TESTBED_DIR}/log/s3gate.log" : undef;
sub gate_503s
{
	my ($b) = @_;
	return -1 unless $gate_log && -r $gate_log;
	my @hits = slurp_file($gate_log) =~ m{PUT /\Q$ENV{S3_BUCKET}/$prefix/$b/\E\S* -> 503}g;
	return scalar @hits;
}

# --- the first apply ------------------------------------------------------------
is(sql("SELECT redshift_fdw.sync('fs')") . ' ' . sql("SELECT redshift_fdw.sync('fd')"), '300 300',
	'first syncs load the table into both targets');
check_all('after the backfill');

# ----------------------------------------------------------------------
subtest 'a. S3 PUT 503' => sub {
	batch('a1');
	for my $b (qw(fs fd))
	{
		my $before = gate_503s($b);
		set_faults(qq({"faults": [{"kind": "s3_error", "status": 503, "method": "PUT",
		                           "key_contains": "$prefix/$b/", "count": 1}]}));
		is(sql_error($node, "SELECT redshift_fdw.sync('$b')"), '', "$b: one 503 on a PUT: the sync succeeds");
		SKIP:
		{
			skip 'no S3 gate log', 1 if $before < 0;
			is(gate_503s($b) - $before, 1, "$b: the gate did answer 503 once");
		}
	}
	set_faults($no_faults);
	check_all('a. after a transient 503');

	batch('a2');
	for my $b (qw(fs fd))
	{
		my ($state, $ckpt) = (target_state($b), applied($b));
		set_faults(qq({"faults": [{"kind": "s3_error", "status": 503, "method": "PUT",
		                           "key_contains": "$prefix/$b/", "count": 1000}]}));
		my $err = sql_error($node, "SELECT redshift_fdw.sync('$b')");
		like($err, qr/SlowDown \(HTTP 503\)/, "$b: persistent 503: the sync fails with SlowDown");
		like($err, qr/after 6 attempts/, "$b: after a bounded number of attempts");
		is(target_state($b), $state, "$b: the target is unchanged");
		is(applied($b), $ckpt, "$b: the checkpoint is unchanged");
		set_faults($no_faults);
		is(sql_error($node, "SELECT redshift_fdw.sync('$b')"), '', "$b: once S3 answers, the sync succeeds");
	}
	check_all('a. after a persistent 503');
};

# ----------------------------------------------------------------------
subtest 'b. connection dropped during COPY' => sub {
	batch('b');
	for my $b (qw(fs fd))
	{
		my ($state, $ckpt) = (target_state($b), applied($b));
		set_faults('{"faults": [{"kind": "drop_connection", "during": "copy", "after_bytes": 20}]}');
		my $err = sql_error($node, "SELECT redshift_fdw.sync('$b')");
		like($err, qr/connection to server "rs" failed|server closed the connection|EOF detected/,
			"$b: the sync fails with the lost connection");
		like($err, qr/remote SQL command: COPY .*CREDENTIALS \[redacted\]/, "$b: during the COPY (shown redacted)");
		set_faults($no_faults);
		is(target_state($b), $state, "$b: the load was rolled back: target unchanged");
		is(applied($b), $ckpt, "$b: checkpoint unchanged");
		is(sql_error($node, "SELECT redshift_fdw.sync('$b')"), '', "$b: the next sync succeeds");
	}
	check_all('b. after a drop during COPY');
};

# ----------------------------------------------------------------------
subtest 'c. 1023 at commit' => sub {
	batch('c');
	# the simulator counts tables a COPY names for commit_1023 only through
	# other statements: the standard load's first commit naming fs is the
	# load (the checkpoint records the highest key, so the apply does not
	# ask Redshift for it); the delta load's only other table is the
	# checkpoint table, whose 2nd commit in an apply is the load (after the
	# fence; the table exists already, so it is not created again)
	my %rule = (
		fs => '{"kind": "commit_1023", "table": "fs", "nth": 1, "count": 2}',
		fd => '{"kind": "commit_1023", "table": "redshift_fdw_checkpoints", "nth": 2, "count": 2}');
	for my $b (qw(fs fd))
	{
		set_faults(qq({"faults": [$rule{$b}]}));
		my ($ret, $out, $err) = $node->psql('postgres',
			"SET client_min_messages = debug1; SELECT redshift_fdw.sync('$b')");
		is($ret, 0, "$b: two 1023s at the load's commit: the same sync succeeds");
		is(retries_1023($err), 2, "$b: after retrying the load twice");
	}
	batch('c fence');
	set_faults('{"faults": [{"kind": "commit_1023", "table": "redshift_fdw_checkpoints", "nth": 1, "count": 1}]}');
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET client_min_messages = debug1; SELECT redshift_fdw.sync('fs')");
	is($ret . ' ' . retries_1023($err), '0 1', 'fs: a 1023 at the fence commit is retried too');
	set_faults($no_faults);
	is(sql_error($node, "SELECT redshift_fdw.sync('fd')"), '', 'fd: catches up');
	check_all('c. after 1023s');
};

# ----------------------------------------------------------------------
subtest 'd. gone between the Redshift COMMIT and the local trim' => sub {
	# d1: the COMMIT succeeds, its reply is lost
	batch('d1');
	for my $b (qw(fs fd))
	{
		my ($ckpt, $local) = (applied($b),
			sql("SELECT applied_snapshot FROM redshift_fdw.materialization WHERE name = '$b'"));
		set_faults('{"faults": [{"kind": "drop_connection", "at": "commit",
		                         "table": "redshift_fdw_checkpoints", "nth": 2}]}');
		my $err = sql_error($node, "SELECT redshift_fdw.sync('$b')");
		set_faults($no_faults);
		like($err, qr/remote SQL command: COMMIT/, "$b: lost COMMIT reply: the sync fails");
		my $moved = applied($b);
		isnt($moved, $ckpt, "$b: but the COMMIT happened: the checkpoint moved");
		is(sql("SELECT applied_snapshot FROM redshift_fdw.materialization WHERE name = '$b'"), $local,
			"$b: locally nothing was recorded");
		cmp_ok(sql("SELECT count(*) FROM $log{$b}"), '>', 0, "$b: the change log was not trimmed");
		is(sql("SELECT redshift_fdw.sync('$b')"), '0', "$b: the next sync applies nothing again");
		is(applied($b), $moved, "$b: and leaves the checkpoint where it was");
	}
	check_all('d1. after a lost COMMIT reply');

	# d2: sync() blocked on the trim after the COMMIT, then terminated
	batch('d2');
	for my $b (qw(fs fd))
	{
		my $ckpt = applied($b);
		my $holder = $node->background_psql('postgres');
		$holder->query_safe("BEGIN; LOCK TABLE $log{$b} IN EXCLUSIVE MODE");
		my $h = bg_sync($b);
		ok(wait_until(sub {
					applied($b) ne $ckpt && sql(
						"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bg_$b'
						    AND wait_event_type = 'Lock'") eq '1'
				}),
			"$b: the sync committed on Redshift and waits to trim the log");
		sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'bg_$b'");
		ok(!bg_finish($h), "$b: the sync was terminated");
		like($h->{err}, qr/terminating connection due to administrator command/, "$b: by pg_terminate_backend");
		$holder->query_safe('ROLLBACK');
		$holder->quit;
		cmp_ok(sql("SELECT count(*) FROM $log{$b}"), '>', 0, "$b: the change log was not trimmed");
		my $moved = applied($b);
		is(sql("SELECT redshift_fdw.sync('$b')"), '0', "$b: the next sync applies nothing again");
		is(applied($b), $moved, "$b: and leaves the checkpoint where it was");
	}
	check_all('d2. after a sync terminated before its trim');

	# d3: a scheduler worker blocked on the trim, then terminated
	batch('d3');
	for my $b (qw(fd fs))
	{
		my $ckpt = applied($b);
		my $holder = $node->background_psql('postgres');
		$holder->query_safe("BEGIN; LOCK TABLE $log{$b} IN EXCLUSIVE MODE");
		my $mark = sql("SELECT coalesce(max(id), 0) FROM redshift_fdw.runs");
		sql("SELECT redshift_fdw.run_now('$b')");
		my $run;
		ok(wait_until(sub {
					$run = sql("SELECT r.id || ' ' || r.pid FROM redshift_fdw.runs r
					              JOIN pg_stat_activity a ON a.pid = r.pid
					             WHERE r.id > $mark AND r.binding = '$b' AND r.status = 'running'
					               AND a.wait_event_type = 'Lock'");
					$run ne '' && applied($b) ne $ckpt;
				}),
			"$b: a scheduler run committed on Redshift and waits to trim the log");
		my ($run_id, $pid) = split / /, $run || '0 0';
		sql("SELECT pg_terminate_backend($pid)") if $pid;
		ok($node->poll_query_until('postgres',
				"SELECT status = 'failed' FROM redshift_fdw.runs WHERE id = $run_id"),
			"$b: the terminated run is marked failed");
		$holder->query_safe('ROLLBACK');
		$holder->quit;
		my $moved = applied($b);
		$mark = sql("SELECT max(id) FROM redshift_fdw.runs");
		sql("SELECT redshift_fdw.run_now('$b')");
		ok($node->poll_query_until('postgres',
				"SELECT count(*) = 1 FROM redshift_fdw.runs WHERE id > $mark AND binding = '$b'
				    AND status <> 'running'"),
			"$b: the next run finishes");
		is(sql("SELECT status || ' ' || rows FROM redshift_fdw.runs WHERE id > $mark AND binding = '$b'"),
			'succeeded 0', "$b: and applies nothing again");
		is(applied($b), $moved, "$b: the checkpoint stays where it was");
	}
	check_all('d3. after a worker terminated before its trim');

	# d4: sync() in a transaction that is rolled back afterwards
	batch('d4');
	for my $b (qw(fs fd))
	{
		my $ckpt = applied($b);
		my ($ret) = $node->psql('postgres', "BEGIN; SELECT redshift_fdw.sync('$b'); ROLLBACK;");
		is($ret, 0, "$b: sync() in a transaction rolled back afterwards");
		my $moved = applied($b);
		isnt($moved, $ckpt, "$b: Redshift committed the load");
		cmp_ok(sql("SELECT count(*) FROM $log{$b}"), '>', 0, "$b: the local trim was rolled back");
		is(sql("SELECT redshift_fdw.sync('$b')"), '0', "$b: the next sync applies nothing again");
		is(applied($b), $moved, "$b: and leaves the checkpoint where it was");
	}
	check_all('d4. after a sync rolled back locally');
};

# ----------------------------------------------------------------------
subtest 'e. immediate stop mid-apply' => sub {
	# The simulator applies no delay rule to COPY itself; the statement
	# stalled is the checkpoint update that follows the COPY in the load
	# transaction (the rows are loaded, nothing is committed).
	batch('e');
	my %state = map { $_ => target_state($_) } qw(fs fd);
	my %ckpt = map { $_ => applied($_) } qw(fs fd);
	set_faults('{"faults": [{"kind": "delay", "match": "SET applied_snapshot", "seconds": 3}]}');
	my %h = map { $_ => bg_sync($_) } qw(fs fd);
	ok(wait_until(sub {
				sql("SELECT count(*) FROM pg_stat_activity WHERE application_name IN ('bg_fs', 'bg_fd')
				        AND query LIKE 'materialization %: loading %'") ne '0'
				  && backing_sql("SELECT count(*) FROM pg_stat_activity
				                   WHERE datname = '$ENV{RS_DB}' AND query LIKE 'SELECT pg_sleep(%'") ne '0'
			}, 20),
		'an apply is loading (stalled in its load transaction)');
	$node->stop('immediate');
	bg_finish($h{$_}) for qw(fs fd);
	set_faults($no_faults);
	$node->start;
	sleep 3.5;    # the simulator ends the stalled statement and rolls back
	for my $b (qw(fs fd))
	{
		is(target_state($b), $state{$b}, "$b: the interrupted load left the target unchanged");
		is(applied($b), $ckpt{$b}, "$b: and the checkpoint");
		is(sql_error($node, "SELECT redshift_fdw.sync('$b')"), '', "$b: after the restart the sync succeeds");
	}
	check_all('e. after an immediate stop');
};

# ----------------------------------------------------------------------
subtest 'f. two bindings in one schema, concurrently, under 1023' => sub {
	# f1: both applies under way (both stalled in prepare_target, so they
	# load together; the first load stalled before its commit), then two
	# 1023s on the checkpoint table
	batch('f1');
	set_faults('{"faults": [{"kind": "delay", "match": "svv_columns", "seconds": 1},
	                        {"kind": "delay", "match": "SET applied_snapshot", "seconds": 2}]}');
	my %h = map { $_ => bg_sync($_, debug => 1) } qw(fs fd);
	ok(wait_until(sub {
				sql("SELECT count(*) FROM pg_stat_activity WHERE application_name IN ('bg_fs', 'bg_fd')
				        AND query LIKE 'materialization %: loading %'") eq '2'
			}, 20),
		'both applies are loading');
	set_faults('{"faults": [{"kind": "delay", "match": "SET applied_snapshot", "seconds": 1},
	                        {"kind": "commit_1023", "table": "redshift_fdw_checkpoints", "count": 2}]}');
	my %ok = map { $_ => bg_finish($h{$_}) } qw(fs fd);
	set_faults($no_faults);
	ok($ok{fs} && $ok{fd}, 'both syncs succeed') or diag("fs: $h{fs}{err}\nfd: $h{fd}{err}");
	is(retries_1023($h{fs}{err} . $h{fd}{err}), 2, 'after retrying the two loads that met a 1023');
	check_all('f1. after concurrent applies with 1023s');

	# f2: the same 1023s from the start (as the scheduler would meet them)
	batch('f2');
	set_faults('{"faults": [{"kind": "delay", "match": "SET applied_snapshot", "seconds": 1},
	                        {"kind": "commit_1023", "table": "redshift_fdw_checkpoints", "count": 2}]}');
	%h = map { $_ => bg_sync($_, debug => 1) } qw(fs fd);
	%ok = map { $_ => bg_finish($h{$_}) } qw(fs fd);
	set_faults($no_faults);
	ok($ok{fs} && $ok{fd}, 'with two 1023s on the checkpoint table from the start, both syncs succeed')
	  or diag("fs: $h{fs}{err}\nfd: $h{fd}{err}");
	# whatever happened, the next syncs catch up exactly once
	is(sql_error($node, "SELECT redshift_fdw.sync('fs')") . sql_error($node, "SELECT redshift_fdw.sync('fd')"),
		'', 'the next syncs succeed');
	check_all('f2. after concurrent applies with 1023s from the start');
};

# ----------------------------------------------------------------------
subtest 'g. another writer moves the fence' => sub {
	batch('g');
	my ($state, $ckpt) = (target_state('fs'), applied('fs'));
	my $fence = backing_sql("SELECT fence FROM $schema.redshift_fdw_checkpoints WHERE name = 'fs'");
	set_faults('{"faults": [{"kind": "delay", "match": "svv_columns", "seconds": 2}]}');
	my $h = bg_sync('fs');
	ok(wait_until(sub {
				backing_sql("SELECT fence FROM $schema.redshift_fdw_checkpoints WHERE name = 'fs'") > $fence
			}),
		'the apply took the fence');
	backing_sql("UPDATE $schema.redshift_fdw_checkpoints SET fence = fence + 1 WHERE name = 'fs'");
	ok(!bg_finish($h), 'the apply fails');
	set_faults($no_faults);
	like($h->{err},
		qr/materialization "fs": another writer took over \Q$schema\E\.fs \(checkpoint fence ${\($fence + 2)}, this apply's ${\($fence + 1)}\)/,
		'another writer took over: the fence moved');
	is(target_state('fs'), $state, 'nothing applied');
	is(applied('fs'), $ckpt, 'checkpoint unchanged');
	is(sql_error($node, "SELECT redshift_fdw.sync('fs')") . sql_error($node, "SELECT redshift_fdw.sync('fd')"),
		'', 'the next syncs succeed');
	check_all('g. after another writer');
};

# ----------------------------------------------------------------------
# A sync whose statement runs under REPEATABLE READ (or SERIALIZABLE) sees
# the log through its snapshot to the end: a change committed after that
# snapshot and before the trim is pending, and must be kept for the next
# apply, not truncated with the applied ones.
subtest 'h. a change committed while a repeatable-read sync applies' => sub {
	batch('h1');
	for my $b (qw(fs fd))
	{
		set_faults(qq({"faults": [{"kind": "delay", "match": "SET applied_snapshot",
		                            "seconds": 3, "count": 1}]}));
		my $h = bg_sync($b, setup => "SET default_transaction_isolation = 'repeatable read'");
		ok(wait_until(sub {
					backing_sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'") > 0
				}),
			"$b: the apply is held before its checkpoint update");
		ins_many("h2 $b", 3);    # committed after the apply's snapshot
		ok(bg_finish($h), "$b: the apply succeeds") or diag($h->{err});
		set_faults($no_faults);
		is(sql("SELECT count(*) FROM $log{$b}"), '3', "$b: the change it did not cover stays in the log");
	}
	is(sql("SELECT redshift_fdw.sync('fs')") . ' ' . sql("SELECT redshift_fdw.sync('fd')"), '6 3',
		'the next syncs apply the changes made meanwhile');
	check_all('h. after repeatable-read syncs');

	# The scheduler's runs, with REPEATABLE READ as the cluster's default.
	sql("ALTER SYSTEM SET default_transaction_isolation = 'repeatable read'");
	sql('SELECT pg_reload_conf()');
	batch('h3');
	for my $b (qw(fs fd))
	{
		set_faults(qq({"faults": [{"kind": "delay", "match": "SET applied_snapshot",
		                            "seconds": 3, "count": 1}]}));
		my $mark = sql("SELECT coalesce(max(id), 0) FROM redshift_fdw.runs");
		sql("SELECT redshift_fdw.run_now('$b')");
		ok(wait_until(sub {
					backing_sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'") > 0
				}),
			"$b: the scheduler's apply is held before its checkpoint update");
		ins_many("h4 $b", 2);    # committed after the run's snapshot
		ok($node->poll_query_until('postgres',
				"SELECT count(*) = 1 FROM redshift_fdw.runs WHERE id > $mark AND binding = '$b'
				    AND status = 'succeeded'"),
			"$b: the run succeeds");
		set_faults($no_faults);
		is(sql("SELECT count(*) FROM $log{$b}"), '2', "$b: the change it did not cover stays in the log");
	}
	# With no change since the snapshot, a run's trim truncates the log (a
	# new file): the run was READ COMMITTED, as every scheduler run is.
	for my $b (qw(fs fd))
	{
		my $file = sql("SELECT pg_relation_filenode('$log{$b}')");
		my $mark = sql("SELECT coalesce(max(id), 0) FROM redshift_fdw.runs");
		sql("SELECT redshift_fdw.run_now('$b')");
		ok($node->poll_query_until('postgres',
				"SELECT count(*) = 1 FROM redshift_fdw.runs WHERE id > $mark AND binding = '$b'
				    AND status = 'succeeded'"),
			"$b: a run with no writer meanwhile succeeds");
		isnt(sql("SELECT pg_relation_filenode('$log{$b}')"), $file,
			"$b: and truncates the log: scheduler runs are READ COMMITTED whatever the default");
	}
	sql('ALTER SYSTEM RESET default_transaction_isolation');
	sql('SELECT pg_reload_conf()');
	is(sql("SELECT redshift_fdw.sync('fs')") . ' ' . sql("SELECT redshift_fdw.sync('fd')"), '0 0',
		'the runs left nothing to apply');
	check_all('h. after repeatable-read scheduler runs');
};

# ----------------------------------------------------------------------
# An apply reads the source's columns once, at its start: DDL that changes
# them waits for it to end (it used to crash the backend when a column was
# dropped meanwhile).  A dropped source is named as gone.
subtest 'i. DDL on the source while an apply runs' => sub {
	sql(q{CREATE TABLE shifty (id int PRIMARY KEY, a text, b int, c text);
	      INSERT INTO shifty SELECT g, 'a' || g, g, 'c' || g FROM generate_series(1, 20) g;
	      BEGIN;
	      SELECT name FROM redshift_fdw.create_materialization('fx', 'shifty', 'rs', target_table => 'shifty');
	      SELECT redshift_fdw.disable_materialization('fx');
	      COMMIT});
	is(sql("SELECT redshift_fdw.sync('fx')"), '20', 'fx: first sync');
	sql(q{UPDATE shifty SET c = c || '?'});
	set_faults('{"faults": [{"kind": "delay", "match": "svv_columns", "seconds": 3, "count": 1}]}');
	my $h = bg_sync('fx');
	ok(wait_until(sub {
				backing_sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'") > 0
			}),
		'the apply is held before it reads the changes');
	like(sql_error($node, "SET lock_timeout = '500ms'; ALTER TABLE shifty DROP COLUMN a"),
		qr/canceling statement due to lock timeout/, 'a DROP COLUMN waits for the apply');
	ok(bg_finish($h), 'the apply succeeds') or diag($h->{err});
	set_faults($no_faults);
	sql(q{ALTER TABLE shifty DROP COLUMN a; UPDATE shifty SET b = -b WHERE id <= 5});
	is(sql("SELECT redshift_fdw.sync('fx')"), '5', 'after the DROP COLUMN the next sync applies the changes');
	my $rows = q{string_agg(concat_ws('|', id, b, c), ',' ORDER BY id)};
	is(backing_sql("SELECT $rows FROM $schema.shifty"), sql("SELECT $rows FROM shifty"),
		'Redshift equals the source in the columns it has');
	sql(q{DROP TABLE shifty});
	like(sql_error($node, "\\set VERBOSITY verbose\nSELECT redshift_fdw.sync('fx')"),
		qr/42P01: materialization "fx": its source table \(OID \d+\) no longer exists/,
		'a dropped source is named as gone');
	sql("SELECT redshift_fdw.drop_materialization('fx')");
};

# ----------------------------------------------------------------------
set_faults($no_faults);
my $errors = sql("SELECT string_agg(error, E'\\n') FROM redshift_fdw.runs WHERE error IS NOT NULL");
isnt($errors, '', 'run history holds errors');
ok(!grep({ index($errors, $_) >= 0 } @secrets), 'no test secret in redshift_fdw.runs.error');
sql("SELECT redshift_fdw.s3_delete('rs', ARRAY(SELECT key FROM redshift_fdw.s3_list('rs', '')))");
$node->stop('fast');
my $log = slurp_file($node->logfile);
ok(!grep({ index($log, $_) >= 0 } @secrets), 'no test secret in the server log');
unlike($log, qr/TRAP|terminated by signal/, 'no crash');
remote_sql("DROP SCHEMA IF EXISTS $schema CASCADE");
done_testing();
