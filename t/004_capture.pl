# A poll whose Redshift connection drops mid-way loses and duplicates
# nothing: poll() rolls back whole; poll_in_batches keeps the batches it
# committed (with their cursor) and the next poll resumes after them.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use RsfdwTest;

plan skip_all => 'needs the test bed (RS_HOST, RS_FAULT_FILE)'
  unless $ENV{RS_HOST} && $ENV{RS_FAULT_FILE};

my $node = PostgreSQL::Test::Cluster->new('capture');
$node->init;
$node->append_conf('postgresql.conf', "log_statement = 'none'");
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

remote_sql(
	"DROP SCHEMA IF EXISTS cap_tap CASCADE; CREATE SCHEMA cap_tap; "
	  . "CREATE TABLE cap_tap.big (id integer, ts timestamp, v varchar(20)); "
	  . "INSERT INTO cap_tap.big SELECT g, '2024-01-01'::timestamp + g * interval '1 second', "
	  . "'row ' || g FROM generate_series(1, 3000) g");
sql(qq{
@{[ create_rs_server() ]}
CREATE SCHEMA src;
IMPORT FOREIGN SCHEMA cap_tap FROM SERVER rs INTO src;
SELECT name FROM redshift_fdw.create_capture('batched', 'src.big', target => 'batched',
                                             cursor_columns => '{ts}');
SELECT name FROM redshift_fdw.create_capture('atomic', 'src.big', target => 'atomic',
                                             cursor_columns => '{ts}');
});

my $same = q{SELECT (SELECT count(*) FROM %1$s) || ' rows, '
  || (SELECT count(DISTINCT id) FROM %1$s) || ' distinct, '
  || (SELECT count(*) FROM (SELECT id, ts, v FROM %1$s EXCEPT ALL SELECT * FROM src.big) d) || ' extra, '
  || (SELECT count(*) FROM (SELECT * FROM src.big EXCEPT ALL SELECT id, ts, v FROM %1$s) d) || ' missing'};

# --- batched: the connection drops in the second batch ---------------------
set_faults('{"faults": [{"kind": "drop_connection", "after_rows": 1500, "match": "cap_tap"}]}');
my $err = sql_error($node, "CALL redshift_fdw.poll_in_batches('batched', 1000)");
like($err, qr/poll of capture binding "batched" failed: connection to server "rs" failed/,
	'the poll fails mid-way, naming the binding and the server');
is(sql("SELECT count(*) FROM batched"), '1000', 'the committed first batch stays');
like(sql("SELECT last_error FROM redshift_fdw.captures WHERE name = 'batched'"),
	qr/connection to server "rs" failed/, 'the failure is recorded in captures.last_error');
is(sql("SELECT cursor_state FROM redshift_fdw.capture WHERE name = 'batched'"),
	'{"2024-01-01 00:16:40"}', 'with its cursor: the last row of the batch');
set_faults('{"faults": []}');
sql("CALL redshift_fdw.poll_in_batches('batched', 1000)");
is(sql("SELECT last_error IS NULL FROM redshift_fdw.captures WHERE name = 'batched'"), 't',
	'and cleared by the next successful poll');
is(sql(sprintf($same, 'batched')), '3000 rows, 3000 distinct, 0 extra, 0 missing',
	'after the next poll the target equals the source: no loss, no duplicates');

# --- atomic poll(): all or nothing ------------------------------------------
set_faults('{"faults": [{"kind": "drop_connection", "after_rows": 1500, "match": "cap_tap"}]}');
$err = sql_error($node, "SELECT * FROM redshift_fdw.poll('atomic')");
like($err, qr/poll of capture binding "atomic" failed/, 'the error names the binding');
is(sql("SELECT count(*) FROM atomic"), '0', 'nothing written');
is(sql("SELECT cursor_state IS NULL FROM redshift_fdw.capture WHERE name = 'atomic'"),
	't', 'cursor unchanged');
set_faults('{"faults": []}');
sql("SELECT * FROM redshift_fdw.poll('atomic')");
is(sql(sprintf($same, 'atomic')), '3000 rows, 3000 distinct, 0 extra, 0 missing',
	'the next poll captures everything exactly once');

# --- new rows, a second drop, and the incremental tail ----------------------
remote_sql("INSERT INTO cap_tap.big SELECT g, '2024-01-01'::timestamp + g * interval '1 second', "
	  . "'row ' || g FROM generate_series(3001, 4500) g");
set_faults('{"faults": [{"kind": "drop_connection", "after_rows": 700, "match": "cap_tap"}]}');
sql_error($node, "CALL redshift_fdw.poll_in_batches('batched', 500)");
set_faults('{"faults": []}');
sql("CALL redshift_fdw.poll_in_batches('batched', 500)");
is(sql(sprintf($same, 'batched')), '4500 rows, 4500 distinct, 0 extra, 0 missing',
	'incremental polls across a failure: exactly once');

$node->stop;
done_testing();
