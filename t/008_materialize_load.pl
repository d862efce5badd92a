# Materialization: how the load runs.  Covers: staging compressed with
# zstd (the default), gzip or not at all, each read back by COPY; loading
# while staging (several COPY batches in the open transaction) giving the
# same table as loading after staging; a column that must be widened midway,
# which rolls the early batches back and loads after staging; keys new to
# Redshift loaded straight into the table (no upsert), while a key deleted
# and inserted again, a soft-deleted key coming back and a deferred primary
# key that changed hands still go through the upsert; values bare or quoted
# in the CSV arriving as they were; the change log truncated after an apply
# when no writer is in flight, emptied row by row otherwise.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib $FindBin::Bin;
use RsfdwTest;

plan skip_all => 'needs the test bed (RS_HOST, S3_ENDPOINT, RS_BACKING_PORT, RS_FAULT_FILE)'
  unless $ENV{RS_HOST} && $ENV{S3_ENDPOINT} && $ENV{RS_BACKING_PORT}
  && $ENV{RS_FAULT_FILE};

my $schema = "tap008_$$";
my $prefix = "tap008-$$";
my @secrets = grep { defined && length } @ENV{qw(RS_PASSWORD AWS_SECRET_ACCESS_KEY)};

set_faults('{"faults": []}');
remote_sql("DROP SCHEMA IF EXISTS $schema CASCADE");

my $node = PostgreSQL::Test::Cluster->new('load');
$node->init;
$node->append_conf('postgresql.conf', "log_statement = 'none'\nlog_min_messages = debug1\n");
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# A sync with the DEBUG1 messages it gives: (rows, messages).
sub sync_debug
{
	my ($name, $settings) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		($settings // '') . "SET client_min_messages = debug1; SELECT redshift_fdw.sync('$name')");
	die "sync $name failed: $err" if $ret;
	return ($out, $err);
}

# One md5 over whole rows, key order, the same text on both sides.
my $row = "concat_ws('|', r.id::text, quote_nullable(r.v::text), r.n::numeric(20,3)::text,
                     to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'))";
sub digest { return "SELECT count(*) || ' rows, md5 ' || coalesce(md5(string_agg($row, E'\\n' ORDER BY r.id)), '-') FROM $_[0] r"; }
sub equal
{
	my ($local, $remote, $what) = @_;
	is(backing_sql(digest("$schema.$remote")), sql(digest($local)), $what);
	return;
}

my $values = q{g, 'value ' || g || ', "q"' || CASE WHEN g % 3 = 0 THEN E'\n' ELSE '' END,
               g * 1.125, '2024-01-01'::timestamptz + g * interval '1.5 seconds'};

sql(qq{
CREATE EXTENSION redshift_fdw;
@{[ create_staging_server('rs', $schema, $prefix) ]}
@{[ create_staging_server('rs_gzip', $schema, $prefix, staging_compression => 'gzip') ]}
@{[ create_staging_server('rs_none', $schema, $prefix, staging_compression => 'none') ]}
});

# --- compression ---------------------------------------------------------------
# Each server's files are read back by COPY; a NOT NULL column that one row
# leaves NULL makes the load fail, and the error names the file it read.
for my $server (qw(rs rs_gzip rs_none))
{
	my $suffix = { rs => 'csv.zst', rs_gzip => 'csv.gz', rs_none => 'csv' }->{$server};
	sql(qq{CREATE TABLE c_$server (id int PRIMARY KEY, v text, n numeric(20,3), ts timestamptz);
	       INSERT INTO c_$server SELECT $values FROM generate_series(1, 20000) g;
	       SELECT name FROM redshift_fdw.create_materialization('c_$server', 'c_$server', '$server')});
	is(sql("SELECT redshift_fdw.sync('c_$server')"), '20000', "$server: first sync");
	equal("c_$server", "c_$server", "$server: Redshift equals the source");
	remote_sql("CREATE TABLE $schema.strict_$server (id BIGINT, v VARCHAR(256) NOT NULL, n NUMERIC(20,3), ts TIMESTAMPTZ)");
	sql(qq{CREATE TABLE s_$server (id int PRIMARY KEY, v text, n numeric(20,3), ts timestamptz);
	       INSERT INTO s_$server VALUES (1, 'a', 1, now()), (2, NULL, 2, now());
	       SELECT name FROM redshift_fdw.create_materialization('s_$server', 's_$server', '$server',
	                                                            target_table => 'strict_$server')});
	like(sql_error($node, "SELECT redshift_fdw.sync('s_$server')"),
		qr{Redshift rejected a row loading $schema\.strict_$server.*File s3://\S+/s_$server/[0-9a-f-]+/\d+/upserts-0001\.\Q$suffix\E, line 2, column}s,
		"$server: COPY read the $suffix file (its error names file, line and column)");
}

# --- loading while staging -------------------------------------------------------
# 1 MB files, so 300k rows make several: with load_while_staging the open
# transaction COPYs them in batches while the rest is staged.
sql(qq{CREATE TABLE piped (id int PRIMARY KEY, v text, n numeric(20,3), ts timestamptz);
       INSERT INTO piped SELECT $values FROM generate_series(1, 300000) g;
       CREATE TABLE after (LIKE piped INCLUDING ALL);
       INSERT INTO after SELECT * FROM piped;
       SELECT name FROM redshift_fdw.create_materialization('piped', 'piped', 'rs');
       SELECT name FROM redshift_fdw.create_materialization('after', 'after', 'rs')});
my ($rows, $msgs) = sync_debug('piped', "SET redshift_fdw.staging_file_size = '1MB';");
is($rows, '300000', 'load while staging: first sync');
my ($copies) = $msgs =~ /staged 300000 rows, \d+ bytes in \d+ ms, loading meanwhile with (\d+) COPY/;
cmp_ok($copies // 0, '>', 1, 'the files were loaded in several COPY batches while staging went on');
equal('piped', 'piped', 'load while staging: Redshift equals the source');
($rows, $msgs) = sync_debug('after',
	"SET redshift_fdw.staging_file_size = '1MB'; SET redshift_fdw.load_while_staging = off;");
is($rows, '300000', 'load after staging: first sync');
unlike($msgs, qr/loading meanwhile/, 'with load_while_staging off the load waits for staging');
equal('after', 'after', 'load after staging: the same table');

# updates and deletes while staging: upserts and deletes through temp tables
sql(q{UPDATE piped SET v = v || ' v2', n = n + 1 WHERE id % 3 = 0;
      DELETE FROM piped WHERE id % 7 = 0;
      INSERT INTO piped SELECT g, 'late ' || g, g, now() FROM generate_series(300001, 310000) g});
($rows, $msgs) = sync_debug('piped', "SET redshift_fdw.staging_file_size = '1MB';");
like($msgs, qr/loading meanwhile/, 'changes: loaded while staging');
equal('piped', 'piped', 'after updates, deletes and inserts, loaded while staging');

# --- a column widened midway ----------------------------------------------------
# The first files hold short values; a 1000-byte value near the end needs
# VARCHAR(1024), which Redshift cannot do in a transaction: the batches
# already loaded roll back and everything loads after staging.
sql(qq{CREATE TABLE widen (id int PRIMARY KEY, v text, n numeric(20,3), ts timestamptz);
       INSERT INTO widen SELECT $values FROM generate_series(1, 299990) g;
       INSERT INTO widen SELECT g, repeat('w', 1000), g, now() FROM generate_series(299991, 300000) g;
       SELECT name FROM redshift_fdw.create_materialization('widen', 'widen', 'rs')});
($rows, $msgs) = sync_debug('widen', "SET redshift_fdw.staging_file_size = '1MB';");
is($rows, '300000', 'widen: first sync');
like($msgs, qr/loading after staging: a column is to be widened/,
	'a value too long for the column stops loading while staging');
equal('widen', 'widen', 'widen: Redshift equals the source');
is(backing_sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = '$schema.widen'::regclass AND attname = 'v'"),
	'character varying(1024)', 'the column was widened first');

# --- keys new to Redshift -------------------------------------------------------
sql(qq{CREATE TABLE fresh (id int PRIMARY KEY, v text, n numeric(20,3), ts timestamptz);
       INSERT INTO fresh SELECT $values FROM generate_series(1, 1000) g;
       SELECT name FROM redshift_fdw.create_materialization('fresh', 'fresh', 'rs')});
sql("SELECT redshift_fdw.sync('fresh')");
sql(q{INSERT INTO fresh SELECT g, 'new ' || g, g, now() FROM generate_series(1001, 3000) g});
($rows, $msgs) = sync_debug('fresh');
is($rows, '2000', 'new keys: 2000 rows');
like($msgs, qr/Load into table 'fresh' completed, 2000 record/, 'new keys are loaded straight into the table');
unlike($msgs, qr/rsfdw_upserts/, 'with no upsert');
equal('fresh', 'fresh', 'new keys: Redshift equals the source');

# Keys above the highest one on Redshift (3000) cannot be there: the
# source's rows above it go straight into the table, before the log is
# read.  Below it, a key new to Redshift (10, deleted before) is upserted
# when an update moved a row to it, as is a key deleted and inserted again.
sql(q{DELETE FROM fresh WHERE id = 10});
sql("SELECT redshift_fdw.sync('fresh')");
sql(q{DELETE FROM fresh WHERE id = 5; INSERT INTO fresh VALUES (5, 'reborn', 5, now());
      INSERT INTO fresh VALUES (4000, 'brand new', 4, now());
      UPDATE fresh SET v = 'moved' , id = 4001 WHERE id = 6;
      UPDATE fresh SET v = 'moved down', id = 10 WHERE id = 11});
($rows, $msgs) = sync_debug('fresh');
like($msgs, qr/the source's rows above 3000, the target's highest key, go first \(from its checkpoint\)/,
	'the rows above the highest key on Redshift go first, the key from the checkpoint');
like($msgs, qr/Load into table 'rsfdw_upserts' completed, 2 record/,
	'a key deleted and inserted again, and a key below the highest that an update moved a row to, are upserted');
like($msgs, qr/Load into table 'fresh' completed, 2 record/,
	'a brand new key and a key above the highest that an update moved a row to are not');
like($msgs, qr/Load into table 'rsfdw_deletes' completed, 2 record/, 'the keys the rows left are deleted');
equal('fresh', 'fresh', 'after delete and reinsert: Redshift equals the source');
is(backing_sql("SELECT count(*) FROM $schema.fresh WHERE id = 5"), '1', 'the reborn key is there once');
sub high_key { backing_sql("SELECT coalesce(high_key, 'NULL') FROM $schema.redshift_fdw_checkpoints WHERE name = '$_[0]'") }
is(high_key('fresh'), '4001', 'the checkpoint records the highest key the table can hold');

# The recorded key only grows: after the highest keys are deleted it
# stays, and a key below it that comes back goes through the log
sql(q{DELETE FROM fresh WHERE id >= 4000});
sql("SELECT redshift_fdw.sync('fresh')");
is(high_key('fresh'), '4001', 'deletes leave the recorded highest key as it was');
sql(q{INSERT INTO fresh VALUES (4000, 'back', 4, now()), (4002, 'above', 4, now())});
($rows, $msgs) = sync_debug('fresh');
like($msgs, qr/the source's rows above 4001, the target's highest key, go first/,
	'a key deleted at the top: the recorded key stays the bound');
is(high_key('fresh'), '4002', 'the recorded key grows with the rows loaded');
equal('fresh', 'fresh', 'after the highest keys were deleted and came back: Redshift equals the source');

# a reload replaces every row: the recorded key is the highest loaded
sql(q{TRUNCATE fresh; INSERT INTO fresh SELECT g, 'again ' || g, g, now() FROM generate_series(1, 50) g});
sql("SELECT redshift_fdw.sync('fresh')");
is(high_key('fresh'), '50', 'after a reload the recorded key is the highest loaded');
sql(q{INSERT INTO fresh SELECT g, 'more ' || g, g, now() FROM generate_series(51, 60) g});
($rows, $msgs) = sync_debug('fresh');
like($msgs, qr/the source's rows above 50, the target's highest key, go first/, 'and bounds the next apply');
like($msgs, qr/Load into table 'fresh' completed, 10 record/, 'whose new keys go straight into the table');
equal('fresh', 'fresh', 'after a reload and new keys: Redshift equals the source');

# A sync of one new key (id) where the apply must ask Redshift for the
# highest key (above): the row goes in once; returns the messages.
sub sync_asking
{
	my ($id, $above, $case) = @_;
	sql(qq{INSERT INTO fresh VALUES ($id, '$case', $id, now())});
	my ($rows, $msgs) = sync_debug('fresh');
	is($rows, '1', "$case: the sync loads the new row");
	like($msgs, qr/the source's rows above $above, the target's highest key, go first\n/,
		"$case: the apply asks Redshift");
	is(backing_sql("SELECT count(*) - count(DISTINCT id) FROM $schema.fresh"), '0', "$case: no key twice");
	equal('fresh', 'fresh', "$case: Redshift equals the source");
	return $msgs;
}

# A checkpoint table an earlier version made has no high_key column: the
# apply adds it, asks Redshift for the highest key, and records it
backing_sql("ALTER TABLE $schema.redshift_fdw_checkpoints DROP COLUMN high_key");
sync_asking(61, 60, 'a checkpoint table without high_key');
is(high_key('fresh'), '61', 'a checkpoint table without high_key: the column is back, with the key');

# A recorded key counts only with the snapshot it was recorded with: a
# version that does not keep it moves the snapshot and leaves the key (as
# low as 1 here: trusted, every row above it would go in again)
backing_sql("UPDATE $schema.redshift_fdw_checkpoints SET high_key = '1', high_key_snapshot = '1:1:' WHERE name = 'fresh'");
sync_asking(62, 61, 'a key recorded with another snapshot');

# A checkpoint table of another user, without the columns of high keys:
# they cannot be added, and applies go on without them
backing_sql("ALTER TABLE $schema.redshift_fdw_checkpoints DROP COLUMN high_key;
             ALTER TABLE $schema.redshift_fdw_checkpoints DROP COLUMN high_key_snapshot;
             ALTER TABLE $schema.redshift_fdw_checkpoints OWNER TO CURRENT_USER;
             GRANT SELECT, INSERT, UPDATE ON $schema.redshift_fdw_checkpoints TO $ENV{RS_USER}");
$msgs = sync_asking(63, 62, 'a checkpoint table of another user');
like($msgs, qr/redshift_fdw_checkpoints has no column of high keys, and they could not be added: .*owner/,
	'a checkpoint table of another user: the columns could not be added');
backing_sql("ALTER TABLE $schema.redshift_fdw_checkpoints OWNER TO $ENV{RS_USER}");
sql(q{INSERT INTO fresh VALUES (64, 'owner again', 64, now())});
is(sql("SELECT redshift_fdw.sync('fresh')"), '1', 'the owner again: the sync works');
is(high_key('fresh'), '64', 'the owner again: the columns are back, with the key');

# a soft-deleted key that comes back must replace its marked row
sql(qq{CREATE TABLE soft (id int PRIMARY KEY, v text, n numeric(20,3), ts timestamptz);
       INSERT INTO soft SELECT $values FROM generate_series(1, 100) g;
       SELECT name FROM redshift_fdw.create_materialization('soft', 'soft', 'rs', soft_delete => true)});
sql("SELECT redshift_fdw.sync('soft')");
sql(q{DELETE FROM soft WHERE id = 10});
sql("SELECT redshift_fdw.sync('soft')");
is(backing_sql("SELECT _rsfdw_deleted FROM $schema.soft WHERE id = 10"), 't', 'soft delete marks the row');
sql(q{INSERT INTO soft VALUES (10, 'back', 10, now())});
sql("SELECT redshift_fdw.sync('soft')");
is(backing_sql("SELECT count(*) || ' ' || string_agg(v || ' ' || _rsfdw_deleted, ',') FROM $schema.soft WHERE id = 10"),
	'1 back false', 'a soft-deleted key inserted again has one row, not marked');
# the highest key on Redshift counts marked rows: 100, deleted here, stays
# the highest there, and comes back below it; 101 and 102 go first
sql(q{DELETE FROM soft WHERE id = 100});
sql("SELECT redshift_fdw.sync('soft')");
sql(q{INSERT INTO soft VALUES (101, 'above', 1, now()), (102, 'above', 2, now()), (100, 'back', 100, now())});
($rows, $msgs) = sync_debug('soft');
like($msgs, qr/the source's rows above 100, the target's highest key, go first/,
	'soft deletes: the marked row is the highest key');
is(backing_sql("SELECT string_agg(id || ' ' || v || ' ' || _rsfdw_deleted, ',' ORDER BY id) FROM $schema.soft WHERE id >= 100"),
	'100 back false,101 above false,102 above false', 'soft deletes: each key once, none marked');

# an existing target whose key column is NUMERIC with a scale: Redshift
# gives its highest key as 20.00, which bounds integer keys all the same
remote_sql(qq{CREATE TABLE $schema.numkey (id numeric(38,2), v varchar(256))});
sql(q{CREATE TABLE numkey (id int PRIMARY KEY, v text);
      INSERT INTO numkey SELECT g, 'v' || g FROM generate_series(1, 20) g;
      SELECT name FROM redshift_fdw.create_materialization('numkey', 'numkey', 'rs')});
sql("SELECT redshift_fdw.sync('numkey')");
is(high_key('numkey'), '20', 'the first sync records the highest key it loaded');
# without a recorded key (lost, or never written) the apply asks Redshift
backing_sql("UPDATE $schema.redshift_fdw_checkpoints SET high_key = NULL WHERE name = 'numkey'");
sql(q{INSERT INTO numkey SELECT g, 'v' || g FROM generate_series(21, 30) g; UPDATE numkey SET v = 'changed' WHERE id = 3});
($rows, $msgs) = sync_debug('numkey');
like($msgs, qr/the source's rows above 20\.00, the target's highest key, go first/,
	'a NUMERIC key column on Redshift: its highest key bounds the new ones');
is($rows, '11', 'a NUMERIC key column on Redshift: 10 new keys and an update');
is(backing_sql("SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || max(id) FROM $schema.numkey"),
	'30 30 30.00', 'a NUMERIC key column on Redshift: each key once');
is(high_key('numkey'), '30', 'the key Redshift gave, raised by the rows loaded, is recorded');

# an existing target whose BIGINT key holds a value an int key cannot: the
# bound is held to int's range (soft deletes keep that row, marked)
remote_sql(qq{CREATE TABLE $schema.bigkeys (id bigint, v varchar(256));
              INSERT INTO $schema.bigkeys VALUES (3000000000, 'out of range')});
sql(q{CREATE TABLE bigkeys (id int PRIMARY KEY, v text);
      INSERT INTO bigkeys SELECT g, 'v' || g FROM generate_series(1, 5) g;
      SELECT name FROM redshift_fdw.create_materialization('bigkeys', 'bigkeys', 'rs', soft_delete => true)});
sql("SELECT redshift_fdw.sync('bigkeys')");
sql(q{INSERT INTO bigkeys SELECT g, 'v' || g FROM generate_series(6, 10) g});
($rows, $msgs) = sync_debug('bigkeys');
is($rows, '5', 'a highest key out of the int key\'s range: the sync works');
is(backing_sql("SELECT count(*) || ' ' || count(*) FILTER (WHERE _rsfdw_deleted) FROM $schema.bigkeys"),
	'11 1', 'a highest key out of the int key\'s range: ten rows, and the marked one');
# the first sync marked the row it did not load and kept it: what the
# table held before was unknown, so the second asked; the bound held to
# int's range is recorded
is(high_key('bigkeys'), '2147483647', 'a table that had rows of its own: the bound Redshift gave is recorded');

# A deferred primary key: the new row of key 1 is inserted before the old
# one is deleted (by another transaction that commits first).  Every
# pending change of key 1 is not an insert, so it is upserted.
sql(qq{CREATE TABLE deferred (id int, v text, n numeric(20,3), ts timestamptz,
                              PRIMARY KEY (id) DEFERRABLE INITIALLY DEFERRED);
       INSERT INTO deferred SELECT $values FROM generate_series(1, 10) g;
       SELECT name FROM redshift_fdw.create_materialization('deferred', 'deferred', 'rs')});
sql("SELECT redshift_fdw.sync('deferred')");
my $inserter = $node->background_psql('postgres');
$inserter->query_safe(q{BEGIN; INSERT INTO deferred VALUES (1, 'second owner', 1, now())});
sql(q{DELETE FROM deferred WHERE id = 1 AND v <> 'second owner'});
$inserter->query_safe('COMMIT');
$inserter->quit;
sql("SELECT redshift_fdw.sync('deferred')");
is(backing_sql("SELECT count(*) || ' ' || string_agg(v, ',') FROM $schema.deferred WHERE id = 1"),
	'1 second owner', 'a deferred key that changed hands has one row, the new one');
equal('deferred', 'deferred', 'deferred key: Redshift equals the source');

# --- values as COPY reads them ------------------------------------------------------
# Fields go bare unless they need quotes: each of these must arrive as it
# was, an empty text apart from NULL, white space at either end kept.
sql(q{CREATE TABLE shapes (id int PRIMARY KEY, t text, vc varchar(40), f8 float8,
                           f4 real, nm numeric, d date, tz timestamptz, tm time, b bool,
                           iv interval, u uuid, arr int[]);
      INSERT INTO shapes VALUES
        (1, '', '', 0, 0, 0, '2024-01-01', '2024-01-01 00:00:00+00', '00:00', true,
         '1 day', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
        (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (3, ' lead', 'trail ', -1.5e300, 3.25, -12.5, '1999-12-31', '1999-12-31 23:59:59.999999+00',
         '23:59:59.5', false, '-2 hours 3 minutes', NULL),
        (4, E'\ttab', E'tab\t', 1e-300, -0.1, 123456789012345678901234567890.123, '2038-01-19',
         '2038-01-19 03:14:07+05', '12:00', true, '1 year 2 mons', NULL),
        (5, 'a,b', 'say "hi"', 0.1, 1, 1e-20, '2000-02-29', '2000-02-29 12:00:00-08', '01:02:03', false,
         '00:00:00.000001', NULL),
        (6, E'multi\nline', E'cr\rhere', 2, 2, 2, '2001-01-01', '2001-01-01 00:00:00+00', '00:00:01', true,
         '0', NULL),
        (7, 'back\slash', 'N', 3, 3, 3, '2002-01-01', '2002-01-01 00:00:00+00', '00:00:02', true, '0', NULL),
        (8, 'in side', '"', 4, 4, 4, '2003-01-01', '2003-01-01 00:00:00+00', '00:00:03', true, '0', NULL);
      UPDATE shapes SET arr = ARRAY[id, NULL, -id] WHERE id % 2 = 1;
      SELECT name FROM redshift_fdw.create_materialization('shapes', 'shapes', 'rs')});
is(sql("SELECT redshift_fdw.sync('shapes')"), '8', 'shapes: first sync');
# (a real is written as its own text, which Redshift reads as a double)
my $shape = q{string_agg(concat_ws('|', id, quote_nullable(t), quote_nullable(vc), f8::text, %s,
                                     nm::text, d::text, to_char(tz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'),
                                     tm::text, b::text, iv::text, u::text, arr::text), E'\n' ORDER BY id)};
is(backing_sql(sprintf("SELECT $shape FROM $schema.shapes", 'f4::text')),
	sql(sprintf("SELECT $shape FROM shapes", 'f4::text::float8::text')),
	'shapes: every value arrives as it was (bare or quoted)');

# Integers, booleans and floats are written without their output functions:
# the same texts at the ends of their ranges.
sql(q{CREATE TABLE numbers (id int PRIMARY KEY, s smallint, i int, b bigint, f4 real,
                            f8 float8, ok bool);
      INSERT INTO numbers VALUES
        (1, -32768, -2147483648, -9223372036854775808, -3.4028235e38, -1.7976931348623157e308, false),
        (2, 32767, 2147483647, 9223372036854775807, 1e-45, 5e-324, true),
        (3, 0, 0, 0, '-0', '-0', NULL),
        (4, -1, 10, 1000000000000, 0.1, 0.30000000000000004, true);
      SELECT name FROM redshift_fdw.create_materialization('numbers', 'numbers', 'rs')});
is(sql("SELECT redshift_fdw.sync('numbers')"), '4', 'numbers: first sync');
my $numbers = q{string_agg(concat_ws('|', id, s, i, b, %s, f8::text, quote_nullable(ok)), E'\n' ORDER BY id)};
is(backing_sql(sprintf("SELECT $numbers FROM $schema.numbers", 'f4::text')),
	sql(sprintf("SELECT $numbers FROM numbers", 'f4::text::float8::text')),
	'numbers: integers, booleans and floats arrive as they were');

# Dates and times are written directly in 1..9999 AD (the output function's
# text), through the output function before and after.
sql(q{CREATE TABLE moments (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz);
      SET timezone = 'America/St_Johns';
      INSERT INTO moments VALUES
        (1, '0001-01-01', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00'),
        (2, '9999-12-31', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00'),
        (3, '1969-12-31', '1969-12-31 23:59:59.5', '1969-12-31 23:59:59.000001+00'),
        (4, '2000-02-29', '2000-01-01 00:00:00', '2000-01-01 00:00:00.01+05:30'),
        (5, '1900-03-01', '1899-12-31 12:00:00.12345', '2024-02-29 12:34:56.12345-03:30'),
        (6, '0044-03-15 BC', '10000-01-01 00:00:00', '0002-01-01 00:00:00+00'),
        (7, NULL, NULL, NULL);
      RESET timezone;
      SELECT name FROM redshift_fdw.create_materialization('moments', 'moments', 'rs')});
is(sql("SELECT redshift_fdw.sync('moments')"), '7', 'moments: first sync');
my $moments = q{string_agg(concat_ws('|', id, d, ts, tz AT TIME ZONE 'UTC'), E'\n' ORDER BY id)};
is(backing_sql("SET datestyle = 'ISO, YMD'; SELECT $moments FROM $schema.moments"),
	sql("SET datestyle = 'ISO, YMD'; SELECT $moments FROM moments"),
	'moments: dates and times arrive as they were');

# The same values through delta images (jsonb): the first sync reads the
# table, later ones the images, most columns straight from the image text.
sql(q{CREATE TABLE shapes_d AS SELECT * FROM shapes WHERE false;
      ALTER TABLE shapes_d ADD PRIMARY KEY (id);
      SELECT name FROM redshift_fdw.create_materialization('shapes_d', 'shapes_d', 'rs', delta_updates => true);
      INSERT INTO shapes_d SELECT * FROM shapes WHERE id <= 4});
is(sql("SELECT redshift_fdw.sync('shapes_d')"), '4', 'delta shapes: first sync');
# The writer's extra_float_digits and IntervalStyle do not shape the images:
# a float keeps every digit, a mixed-sign interval its signs.
sql(q{SET extra_float_digits = 0; SET intervalstyle = 'sql_standard';
      INSERT INTO shapes_d SELECT * FROM shapes WHERE id > 4; UPDATE shapes_d SET id = id WHERE id <= 2;
      UPDATE shapes SET f8 = 0.1::float8 + 0.2, f4 = 1::real / 3, iv = '-1 day 2 hours' WHERE id = 3;
      UPDATE shapes_d SET f8 = 0.1::float8 + 0.2, f4 = 1::real / 3, iv = '-1 day 2 hours' WHERE id = 3});
is(sql("SELECT redshift_fdw.sync('shapes_d')"), '7', 'delta shapes: changes from the images');
is(backing_sql(sprintf("SELECT $shape FROM (SELECT DISTINCT ON (id) * FROM $schema.shapes_d ORDER BY id, _rsfdw_seq DESC) s", 'f4::text')),
	sql(sprintf("SELECT $shape FROM shapes", 'f4::text::float8::text')),
	'delta shapes: the last image of every row is the row');
is(backing_sql("SELECT string_agg(_rsfdw_op || _rsfdw_seq, ',' ORDER BY _rsfdw_seq) FROM $schema.shapes_d"),
	'I1,I2,I3,I4,I5,I6,I7,I8,U9,U10,U11', 'delta shapes: every change once, numbered in order');

# --- numeric columns -------------------------------------------------------------------
# A domain maps as its base type; numeric(p,s) with a negative scale, or a
# scale above its precision, as the NUMERIC that holds its values.  A
# Redshift NUMERIC too narrow for the source (its scale grew) is an error,
# not rounding.
sql(q{CREATE DOMAIN cents AS numeric(12,2); CREATE DOMAIN cents_too AS cents; CREATE DOMAIN bytes AS bytea;
      CREATE TABLE odd (id int PRIMARY KEY, c cents, hundreds numeric(5,-2), tiny numeric(3,5),
                        c2 cents_too, b bytes);
      INSERT INTO odd VALUES (1, 12.34, 12345, 0.00123, 1.5, '\x0102'), (2, -0.5, -99900, -0.00999, NULL, '\xff');
      SELECT name FROM redshift_fdw.create_materialization('odd', 'odd', 'rs')});
is(sql("SELECT redshift_fdw.sync('odd')"), '2', 'odd numerics: first sync');
is(backing_sql("SELECT string_agg(format_type(atttypid, atttypmod), ',' ORDER BY attnum) FROM pg_attribute
                 WHERE attrelid = '$schema.odd'::regclass AND attnum BETWEEN 2 AND 5"),
	'numeric(12,2),numeric(7,0),numeric(5,5),numeric(12,2)',
	'a domain (over a domain too) as its base type; odd scales as the NUMERIC that holds them');
is(backing_sql("SELECT string_agg(encode(b, 'hex'), ',' ORDER BY id) FROM $schema.odd"), '0102,ff',
	'a domain over bytea loads as VARBYTE');
my $odd = q{string_agg(concat_ws('|', id, c, hundreds, tiny, c2), ',' ORDER BY id)};
is(backing_sql("SELECT $odd FROM $schema.odd"), sql("SELECT $odd FROM odd"), 'their values arrive as they are');
sql(q{ALTER TABLE odd ALTER COLUMN c TYPE numeric(12,4); UPDATE odd SET c = 1.2345 WHERE id = 1});
like(sql_error($node, "\\set VERBOSITY verbose\nSELECT redshift_fdw.sync('odd')"),
	qr/42804: materialization "odd": column "c" of Redshift table \Q$schema\E\.odd is NUMERIC\(12,2\), too narrow for source column "c" \(numeric\(12,4\)\)/,
	'a NUMERIC on Redshift narrower than the source\'s: refused, not rounded');
sql("SELECT redshift_fdw.drop_materialization('odd')");

# --- a database that is not UTF-8 ----------------------------------------------------
# Texts are staged in UTF-8, which Redshift reads, and VARCHAR widths count
# its bytes.
sql(q{CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'});
$node->safe_psql('latin', qq{CREATE EXTENSION redshift_fdw;
  @{[ create_staging_server('rs', $schema, $prefix) ]}
  CREATE TABLE latin1 (id int PRIMARY KEY, t text, vc varchar(300));
  INSERT INTO latin1 VALUES (1, 'caf' || chr(233), 'na' || chr(239) || 've'), (2, repeat(chr(233), 200), NULL);
  SELECT name FROM redshift_fdw.create_materialization('latin1', 'latin1', 'rs')});
is($node->safe_psql('latin', "SELECT redshift_fdw.sync('latin1')"), '2', 'LATIN1 database: first sync');
is(backing_sql("SELECT string_agg(concat_ws('|', id, t = CASE id WHEN 1 THEN 'caf' || chr(233) ELSE repeat(chr(233), 200) END,
                                           vc = 'na' || chr(239) || 've', octet_length(t)), ',' ORDER BY id)
                 FROM $schema.latin1"),
	'1|t|t|5,2|t|400', 'the texts arrive as UTF-8 (the 200 characters are 400 bytes)');
sql('DROP DATABASE latin');

# --- trimming the change log ----------------------------------------------------------
# An apply outside a transaction block, with no writer of the source in
# flight, truncates the log; with a writer in flight (or inside a block) it
# deletes what it applied and leaves the rest, which the next apply loads.
my $trim_log = sql("SELECT change_log FROM redshift_fdw.materialization WHERE name = 'fresh'");
sql(q{INSERT INTO fresh SELECT g, 'trim ' || g, g, now() FROM generate_series(5001, 6000) g});
cmp_ok(sql("SELECT pg_relation_size('$trim_log')"), '>', 0, 'the log holds the changes');
is(sql("SELECT redshift_fdw.sync('fresh')"), '1000', 'trim: sync');
is(sql("SELECT pg_relation_size('$trim_log')"), '0', 'a sync with no writer in flight truncates the log');

my $writer = $node->background_psql('postgres');
$writer->query_safe(q{BEGIN; INSERT INTO fresh VALUES (7000, 'in flight', 7, now())});
sql(q{INSERT INTO fresh SELECT g, 'trim ' || g, g, now() FROM generate_series(6001, 6100) g});
is(sql("SELECT redshift_fdw.sync('fresh')"), '100', 'a sync does not wait for a writer in flight');
cmp_ok(sql("SELECT pg_relation_size('$trim_log')"), '>', 0, 'with a writer in flight the log is not truncated');
$writer->query_safe('COMMIT');
$writer->quit;
is(sql("SELECT count(*) FROM $trim_log"), '1', 'only the change in flight is left');
is(sql("SELECT redshift_fdw.sync('fresh')"), '1', 'the next sync loads it');
equal('fresh', 'fresh', 'trim: Redshift equals the source');
sql(q{INSERT INTO fresh SELECT g, 'trim ' || g, g, now() FROM generate_series(8001, 8010) g});
is(sql(qq{BEGIN; SELECT redshift_fdw.sync('fresh');
          SELECT count(*) || ' ' || (pg_relation_size('$trim_log') > 0) FROM $trim_log; COMMIT;}),
	"10\n0 true", 'inside a transaction block the log is emptied, not truncated');

# A transaction's own changes go with the first apply after it commits
# when written after sync() in the same block.  Once
# another transaction has committed after the block took its xid, the
# current snapshot counts that xid as committed (it leaves a backend's own
# xid out): the apply's high-water mark must not.
sql(q{CREATE TABLE bystander (n int)});
# The high-water mark is the changes query's own snapshot, not a newer one
# (a transaction committed meanwhile would count as applied, unloaded).
my $same = '';
my $h = IPC::Run::start(['psql', '-X', '-At', '-d', $node->connstr('postgres'), '-c',
		'SELECT pg_current_snapshot()::text = redshift_fdw._mat_snapshot()::text FROM pg_sleep(2)'],
	'>', \$same, '2>', \my $same_err);
sleep 1;
sql(q{INSERT INTO bystander VALUES (-1)});
$h->finish;
is($same =~ s/\s+//gr, 't', 'the apply\'s snapshot is its statement\'s, though a transaction committed meanwhile');
sub own_xid_block
{
	my ($first, $then) = @_;
	my $block = $node->background_psql('postgres');
	$block->query_safe("BEGIN; $first");
	sql(q{INSERT INTO bystander VALUES (1)});
	my $rows = $block->query_safe("SELECT redshift_fdw.sync('fresh')");
	$block->query_safe($then);
	$block->quit;
	return $rows;
}
sql(q{INSERT INTO fresh VALUES (9000, 'committed before the block', 0, now())});
is(own_xid_block(q{INSERT INTO bystander VALUES (0)},
		q{INSERT INTO fresh VALUES (9001, 'after sync, same transaction', 1, now()); COMMIT}),
	'1', 'sync() in a block with an xid');
is(sql("SELECT redshift_fdw.sync('fresh')"), '1', 'a change written after sync() in its block goes with the next apply');
# Before sync(), a block's changes of the source are refused: the apply
# would read those rows uncommitted.
like(sql_error($node, q{BEGIN; INSERT INTO fresh VALUES (9002, 'before sync, same transaction', 2, now());
                        SELECT redshift_fdw.sync('fresh'); COMMIT}),
	qr/materialization "fresh" cannot be applied in a transaction that has changed its source/,
	'sync() in a block that changed the source is refused');
is(own_xid_block(q{INSERT INTO bystander VALUES (2)}, 'ROLLBACK'), '0',
	'sync() in a block that wrote elsewhere and is rolled back');
is(sql("SELECT redshift_fdw.sync('fresh')"), '0', 'nothing of either reaches Redshift');
equal('fresh', 'fresh', 'sync() in transaction blocks: Redshift equals the source');

# --- nothing staged left, no secret anywhere -----------------------------------------
is(sql("SELECT count(*) FROM redshift_fdw.s3_list('rs', '') WHERE key NOT LIKE '%s\\_rs%'"), '0',
	'no staging file left behind by the successful applies');
my $log = slurp_file($node->logfile);
for my $secret (@secrets)
{
	ok(index($log, $secret) < 0, 'no secret in the server log (debug1)');
}

remote_sql("DROP SCHEMA IF EXISTS $schema CASCADE");
$node->stop;
done_testing();
