# Materialization: a local table kept in a Redshift table through S3
# staging and COPY.  Covers: standard updates of a 100k-row table (backfill,
# mixed changes, COPY, key changes, rollbacks, commits out of order,
# TRUNCATE), compared value for value with what the simulator's backing
# database holds; a partitioned source written through its partitions; a
# column added to the source; delta updates replaying the exact change
# sequence (also with columns named like the trigger's row aliases); the
# errors (a row over 4 MB, a case collision, a NOT NULL column Redshift
# rejects); the scheduler running a materialization; COPY with IAM_ROLE; no
# secret in logs or run history.
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

my $schema = "tap006_$$";    # Redshift schema of this run
my $prefix = "tap006-$$";    # S3 staging prefix of this run
my @secrets = grep { defined && length } @ENV{qw(RS_PASSWORD AWS_SECRET_ACCESS_KEY)};

set_faults('{"faults": []}');
remote_sql("DROP SCHEMA IF EXISTS $schema CASCADE");

# whatever happens, leave no fault rule behind
END
{
	local $?;
	set_faults('{"faults": []}') if $ENV{RS_FAULT_FILE};
}

# Session defaults far from what the apply needs: it must set its own.
my $node = PostgreSQL::Test::Cluster->new('mat');
$node->init;
$node->append_conf('postgresql.conf', qq{
log_statement = 'none'
timezone = 'Asia/Kolkata'
datestyle = 'SQL, DMY'
extra_float_digits = 0
bytea_output = 'escape'
});
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(qq{
CREATE EXTENSION redshift_fdw;
@{[ create_staging_server('rs', $schema, $prefix) ]}
});

# Objects staged under this run's prefix.
sub staged_files
{
	return sql("SELECT count(*) FROM redshift_fdw.s3_list('rs', '')");
}

# ----------------------------------------------------------------------
# 1. standard updates, 100k rows
# ----------------------------------------------------------------------

# The columns of "BigSrc" as text, the same expressions on both sides:
# every value quoted (NULL told apart from any text), timestamptz in UTC
# with microseconds, numeric at scale 2, double precision in shortest exact
# form (extra_float_digits 1), jsonb canonical, bytea in hex.
sub big_cols
{
	my ($flag) = @_;
	return (
		[ id => 'r.id::text' ],
		[ t => 'r.t::text' ],
		[ n => 'r.n::numeric(30,2)::text' ],
		[ ts => "to_char(r.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')" ],
		[ d => "to_char(r.d, 'YYYY-MM-DD')" ],
		[ f => 'r.f::float8::text' ],
		[ nul => 'r.nul::text' ],
		[ i => 'r.i::bigint::text' ],
		[ j => 'r.j::jsonb::text' ],
		[ by => "encode(r.by::bytea, 'hex')" ],
		[ tsn => "to_char(r.tsn, 'YYYY-MM-DD HH24:MI:SS.US')" ],
		[ tm => 'r.tm::text' ],
		[ u => 'r.u::text' ],
		[ flag => "CASE WHEN r.$flag THEN 'true' WHEN NOT r.$flag THEN 'false' END" ]);
}

# "N rows col=<md5 of the column in key order> ...": one digest per column,
# so that a difference shows where it is.
sub digest_cols
{
	my ($from, @cols) = @_;
	return "SET extra_float_digits = 1; SELECT count(*) || ' rows' || "
	  . join(' || ', map {
		"' $_->[0]=' || coalesce(md5(string_agg(quote_nullable($_->[1]), E'\\n' ORDER BY r.id)), '-')"
	  } @cols)
	  . " FROM $from r";
}

# One md5 over whole rows (count and md5).
sub digest_sql
{
	my ($row, $from) = @_;
	return "SET extra_float_digits = 1; SELECT count(*) || ' rows, md5 ' || "
	  . "coalesce(md5(string_agg($row, E'\\n' ORDER BY r.id)), '-') FROM $from r";
}

sub big_local  { return sql(digest_cols('public."BigSrc"', big_cols('"Flag"'))); }
sub big_remote { return backing_sql(digest_cols("$schema.bigsrc", big_cols('flag'))); }

# Redshift equals the source: every column but the boolean one, then the
# boolean one (with NULLs) on its own, so that one column cannot hide others.
sub big_equal
{
	my ($what) = @_;
	my ($lmain, $lflag) = big_local() =~ /^(.*) (flag=\S+)$/;
	my ($rmain, $rflag) = big_remote() =~ /^(.*) (flag=\S+)$/;
	is($rmain, $lmain, "$what: Redshift equals the source");
	is($rflag, $lflag, "$what: the boolean column (NULLs included) too");
	return;
}

# g -> a row of "BigSrc" (SQL over a column g): text with commas, quotes,
# newlines, backslashes, unicode, empty and long (over 256 bytes) values;
# NULLs in several columns; extreme doubles; microseconds.
my $big_values = q{g,
  CASE g % 7 WHEN 0 THEN 'comma, "quoted", and' || E'\n' || 'a newline ' || g
             WHEN 1 THEN 'ünïcødé ✓ 日本語 ' || g
             WHEN 2 THEN 'back\slash \N and \\\\ ' || g
             WHEN 3 THEN ''
             WHEN 4 THEN repeat('é', 150) || g
             WHEN 5 THEN E'tab\there\r\nCRLF ' || g
             ELSE 'plain ' || g END,
  round(g * 1.37 - 50000, 2),
  '2024-03-10 01:59:59.123456+00'::timestamptz + g * interval '37.000123 seconds',
  CASE WHEN g % 11 = 0 THEN NULL ELSE g % 3 = 0 END,
  date '1999-12-31' + (g % 20000) - 10000,
  CASE g % 4 WHEN 0 THEN g / 7.0 WHEN 1 THEN -g * 1e-300 WHEN 2 THEN g * 1.5e300
             ELSE pi() * g END,
  CASE WHEN g % 5 = 0 THEN NULL ELSE 'v' || g END,
  (g % 65536) - 32768,
  jsonb_build_object('g', g, 's', 'ü "x", y', 'a', jsonb_build_array(1, 2.5, NULL, true)),
  decode(md5(g::text), 'hex'),
  '2001-02-03 04:05:06.789'::timestamp + g * interval '1 hour 1.000001 seconds',
  CASE WHEN g % 13 = 0 THEN NULL ELSE time '00:00:00.000001' + g * interval '1.000001 seconds' END,
  md5(g::text)::uuid};

sql(qq{
CREATE TABLE "BigSrc" (id bigint PRIMARY KEY, t text, n numeric(12,2), ts timestamptz,
  "Flag" bool, d date, f double precision, nul text, i int4, j jsonb, by bytea,
  tsn timestamp, tm time, u uuid);
INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(1, 100000) g;
});
is(sql("SELECT target_schema || '.' || target_table || ' key ' || key_columns::text
          FROM redshift_fdw.create_materialization('big', '\"BigSrc\"', 'rs')"),
	"$schema.bigsrc key {id}",
	'create_materialization: target defaults to the lower-cased table in the server schema, key to the primary key');
my $big_log = sql("SELECT change_log FROM redshift_fdw.materialization WHERE name = 'big'");
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = '\"BigSrc\"'::regclass AND NOT tgisinternal"),
	'4', 'four statement triggers on the source');

my $t0 = time;
is(sql("SELECT redshift_fdw.sync('big')"), '100000', 'first sync loads the whole table (100000 rows)');
note sprintf('backfill of 100k rows: %.1f s', time - $t0);
like(big_local(), qr/^100000 rows id=[0-9a-f]{32} /, 'local digest');
big_equal('after the backfill');
is(backing_sql("SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
                  FROM pg_attribute a WHERE a.attrelid = '$schema.bigsrc'::regclass AND a.attnum > 0"),
	'id bigint, t character varying(512), n numeric(12,2), ts timestamp with time zone, '
	  . 'flag boolean, d date, f double precision, nul character varying(256), i bigint, '
	  . 'j super, by varbyte, tsn timestamp without time zone, tm time without time zone, '
	  . 'u character varying(256)',
	'target columns: lower-cased names, mapped types, VARCHAR widened to fit 300-byte values');
is(staged_files(), '0', 'staging files deleted after the commit');
is(sql("SELECT count(*) FROM $big_log"), '0', 'change log trimmed');
is(backing_sql("SELECT name || ' ' || target || ' ' || (fence > 0) || ' ' || applied_changes
                  FROM $schema.redshift_fdw_checkpoints WHERE name = 'big'"),
	"big $schema.bigsrc true 0", 'checkpoint row on Redshift');
is(backing_sql("SELECT applied_snapshot FROM $schema.redshift_fdw_checkpoints WHERE name = 'big'"),
	sql("SELECT applied_snapshot FROM redshift_fdw.materialization WHERE name = 'big'"),
	'the local catalog remembers the snapshot the checkpoint recorded');
is(sql("SELECT redshift_fdw.sync('big')"), '0', 'a second sync with nothing pending returns 0');

# --- a mix of changes ------------------------------------------------------
sql('CREATE TABLE before_batch AS SELECT * FROM "BigSrc"');
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(100001, 100500) g});
sql(q{UPDATE "BigSrc" SET n = n + 0.01, t = t || ' upd', "Flag" = NOT "Flag" WHERE id % 100 = 0});
sql(q{UPDATE "BigSrc" SET nul = NULL WHERE id % 100 = 1});
sql(q{UPDATE "BigSrc" SET nul = 'was NULL' WHERE id % 100 = 5});
sql(q{UPDATE "BigSrc" SET id = 200005 WHERE id = 5});
sql(q{UPDATE "BigSrc" SET id = id + 300000 WHERE id BETWEEN 10 AND 19});
sql(q{DELETE FROM "BigSrc" WHERE id % 97 = 0});
# COPY FROM STDIN (text format: backslash escapes)
my $copy = "COPY \"BigSrc\" FROM STDIN;\n";
for my $g (400001 .. 400200)
{
	my $t = $g % 2
	  ? "copied, \"q\"\\nline two \\\\ back \x{e2}\x{82}\x{ac} $g"
	  : '';
	my $nul = $g % 3 ? "c$g" : '\N';
	$copy .= join("\t", $g, $t, sprintf('%.2f', $g / 100), "2030-01-02 03:04:05.000006+05:30",
		$g % 2 ? 't' : 'f', '2030-01-02', $g / 3, $nul, $g % 1000,
		'{"copied": true, "g": ' . $g . '}', '\\\\x00ff' . sprintf('%04x', $g % 65536),
		'2030-01-02 03:04:05.5', $g % 2 ? '23:59:59.999999' : '\N',
		sprintf('%08x-0000-4000-8000-%012x', $g, $g)) . "\n";
}
$copy .= "\\.\n";
sql($copy);
# rolled back: never applied
sql(q{BEGIN; INSERT INTO "BigSrc" (id, t) VALUES (999999, 'ROLLED BACK');
      UPDATE "BigSrc" SET t = 'ROLLED BACK' WHERE id = 1; DELETE FROM "BigSrc" WHERE id = 2;
      ROLLBACK});
# a committed transaction with a rolled-back savepoint
sql(q{BEGIN; UPDATE "BigSrc" SET t = 'kept' WHERE id = 3; SAVEPOINT s;
      UPDATE "BigSrc" SET t = 'undone' WHERE id = 4; DELETE FROM "BigSrc" WHERE id = 6;
      ROLLBACK TO s; COMMIT});
# a key inserted and deleted again; a key deleted and inserted again
sql(q{INSERT INTO "BigSrc" (id, t) VALUES (500000, 'short-lived')});
sql(q{DELETE FROM "BigSrc" WHERE id = 500000});
sql(q{DELETE FROM "BigSrc" WHERE id = 7});
sql(q{INSERT INTO "BigSrc" (id, t, n) VALUES (7, 'reborn', 7.7)});

# keys whose row changed (by a full comparison with the copy taken before),
# plus keys touched but gone again: 500000, and the new keys deleted by the
# DELETE ... id % 97 = 0
my $changed = sql(q{SELECT count(*) + 1 + (SELECT count(*) FROM generate_series(100001, 100500) g WHERE g % 97 = 0)
                      FROM before_batch b FULL JOIN "BigSrc" a ON a.id = b.id
                     WHERE a.id IS NULL OR b.id IS NULL OR ROW(b.*) IS DISTINCT FROM ROW(a.*)});
cmp_ok($changed, '>', 2500, "the batch changed $changed keys");
is(sql("SELECT redshift_fdw.sync('big')"), $changed,
	'sync returns the keys upserted or deleted');
big_equal('after inserts, updates (incl. key changes), deletes and COPY');
is(backing_sql("SELECT count(*) FROM $schema.bigsrc WHERE id IN (999999, 500000, 5, 10, 97)
                    OR t IN ('ROLLED BACK', 'undone')"),
	'0', 'no trace of rolled-back changes, of old keys, of the short-lived key');
is(backing_sql("SELECT string_agg(id || ':' || t, ',' ORDER BY id) FROM $schema.bigsrc WHERE id IN (2, 3, 6, 7)"),
	'2:back\\slash \\N and \\\\ 2,3:kept,6:plain 6,7:reborn',
	'the savepoint kept only what was committed; the reborn key has its new row');
is(staged_files(), '0', 'no staging file left');

# --- commits out of order around a sync --------------------------------------
my $early = $node->background_psql('postgres');
$early->query_safe(q{BEGIN; UPDATE "BigSrc" SET t = 'committed late' WHERE id = 104});
sql(q{UPDATE "BigSrc" SET t = 'committed early' WHERE id = 106});
is(sql("SELECT redshift_fdw.sync('big')"), '1', 'a sync while an older transaction is open applies the committed one');
is(backing_sql("SELECT string_agg(id || ':' || t, ',' ORDER BY id) FROM $schema.bigsrc WHERE id IN (104, 106)"),
	'104:plain 104,106:committed early', 'only the committed change is on Redshift');
$early->query_safe('COMMIT');
$early->quit;
is(sql("SELECT redshift_fdw.sync('big')"), '1', 'after the older transaction commits, the next sync applies it');
big_equal('after commits out of order');

# --- batches of inserts only -----------------------------------------------------
# New keys above every key (serial keys): the source's rows from the lowest
# new key up are exactly the inserted ones.
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(600001, 601000) g});
is(sql("SELECT redshift_fdw.sync('big')"), '1000', 'a batch of 1000 inserts above every key');
big_equal('after inserts above every key');
# With gaps (a sequence's values lost to rollbacks): the rows in the range
# are counted, and are the inserted ones.
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(601001, 601999, 3) g});
is(sql("SELECT redshift_fdw.sync('big')"), '333', 'a batch of inserts above every key, with gaps');
big_equal('after inserts with gaps');
sql(q{DELETE FROM "BigSrc" WHERE id BETWEEN 601001 AND 601999});
is(sql("SELECT redshift_fdw.sync('big')"), '333', 'and their deletes');
# New keys among old ones (keys freed by the deletes above) and above them:
# the rows from the lowest new key up include old ones, which are not sent
# again (they would be twice on Redshift).
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(601001, 601010) g});
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(97, 970, 97) g});
is(sql("SELECT redshift_fdw.sync('big')"), '20', 'a batch of inserts among old keys and above them');
big_equal('after inserts among old keys');
# Inserts above every key while an older transaction's inserts above them
# are not committed: those come with the next sync.
$early = $node->background_psql('postgres');
$early->query_safe(qq{BEGIN; INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(602001, 602005) g});
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(601011, 601020) g});
is(sql("SELECT redshift_fdw.sync('big')"), '10', 'inserts beside an open transaction inserting higher keys');
$early->query_safe('COMMIT');
$early->quit;
is(sql("SELECT redshift_fdw.sync('big')"), '5', 'its inserts come with the next sync');
big_equal('after inserts committed out of order');
# A two-column key: new keys (2,2) and (3,1) fill 2..3 in its first
# column, where the old row (2,1) is too; it is not sent again.
sql(q{CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b));
      INSERT INTO pairs VALUES (1, 1, 'old'), (2, 1, 'old')});
sql("SELECT redshift_fdw.create_materialization('pairs', 'pairs', 'rs')");
is(sql("SELECT redshift_fdw.sync('pairs')"), '2', 'pairs: first sync');
sql(q{INSERT INTO pairs VALUES (2, 2, 'new'), (3, 1, 'new')});
is(sql("SELECT redshift_fdw.sync('pairs')"), '2', 'pairs: two inserts');
is(backing_sql("SELECT string_agg(a || ',' || b || ':' || v, ' ' ORDER BY a, b) FROM $schema.pairs"),
	'1,1:old 2,1:old 2,2:new 3,1:new', 'pairs: each row once on Redshift');
sql("SELECT redshift_fdw.drop_materialization('pairs')");

# --- the rows above the target's highest key go first -------------------------
# Keys above the highest one on Redshift cannot be there: the source's rows
# above it are sent as inserts before the log is read; the changes of keys
# up to it come from the log as before.  One batch of both: new keys above
# (one of them updated after its insert, one deleted again, which counts
# as a delete), and below an update, a delete and a new key in a gap.
my $top = backing_sql("SELECT max(id) FROM $schema.bigsrc");
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series($top + 1, $top + 100) g});
sql(qq{UPDATE "BigSrc" SET t = 'above, updated' WHERE id = $top + 50});
sql(qq{DELETE FROM "BigSrc" WHERE id = $top + 100});
sql(q{UPDATE "BigSrc" SET t = 'below, updated' WHERE id = (SELECT min(id) FROM "BigSrc")});
sql(q{DELETE FROM "BigSrc" WHERE id = (SELECT max(id) FROM "BigSrc" WHERE id < 500000)});
sql(qq{INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(601500, 601500) g});
my ($hret, $hout, $herr) = $node->psql('postgres',
	"SET client_min_messages = debug1; SELECT redshift_fdw.sync('big')");
is($hout, '103', 'changes above and below the highest key on Redshift: 103 keys');
like($herr, qr/the source's rows above $top, the target's highest key, go first/,
	'the rows above the highest key on Redshift go first');
# they are handed to Redshift before the log is read: a COPY of their own,
# then one of the new key below the highest
like($herr, qr/Load into table 'bigsrc' completed, 99 record.*Load into table 'bigsrc' completed, 1 record/s,
	'the rows above the highest key are loaded before the log is read');
big_equal('after changes above and below the highest key on Redshift');
is(backing_sql("SELECT t FROM $schema.bigsrc WHERE id = $top + 50"), 'above, updated',
	'a key above it, updated after its insert, has its last row');

# --- TRUNCATE and reinsert ---------------------------------------------------
sql(qq{TRUNCATE "BigSrc"; INSERT INTO "BigSrc" SELECT $big_values FROM generate_series(7, 3006) g});
sql(q{UPDATE "BigSrc" SET t = 'after truncate' WHERE id = 7});
is(sql("SELECT redshift_fdw.sync('big')"), '3000', 'after TRUNCATE the sync reloads the table (3000 rows)');
like(big_local(), qr/^3000 rows/, '3000 rows locally');
big_equal('after TRUNCATE and reinsert');
is(sql("SELECT redshift_fdw.sync('big')"), '0', 'and nothing is pending afterwards');

# --- a partitioned source, written through its partitions too ------------------
sql(q{CREATE TABLE parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
      CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
      CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (200);
      INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 199) g});
sql("SELECT name FROM redshift_fdw.create_materialization('parted', 'parted', 'rs')");
is(sql("SELECT redshift_fdw.sync('parted')"), '199', 'a partitioned source: the first sync loads it');
my $prow = "concat_ws('|', r.id::text, quote_nullable(r.v::text))";
sql(q{UPDATE parted SET v = 'through the parent' WHERE id = 1});
sql(q{INSERT INTO parted_low VALUES (0, 'into a partition')});
sql(q{UPDATE parted_low SET v = 'updated in a partition' WHERE id = 2});
sql(q{DELETE FROM parted_high WHERE id = 150});
sql("SELECT redshift_fdw.sync('parted')");
is(backing_sql(digest_sql($prow, "$schema.parted")), sql(digest_sql($prow, 'parted')),
	'changes made straight to a partition reach Redshift too');
sql(q{TRUNCATE parted_high});
sql("SELECT redshift_fdw.sync('parted')");
is(backing_sql(digest_sql($prow, "$schema.parted")), sql(digest_sql($prow, 'parted')),
	'and so does a TRUNCATE of a partition');

# --- changes under session_replication_role = replica -----------------------------
# (the way tools skip a table's own triggers and foreign keys in a bulk load)
is(sql(q{SELECT string_agg(DISTINCT tgenabled::text, ',') FROM pg_trigger
          WHERE tgname LIKE 'redshift_fdw_%' AND tgrelid IN ('parted'::regclass, 'parted_low'::regclass)}),
	'A', 'the tracking triggers fire always, on the parent and on each partition');
sql(q{SET session_replication_role = replica;
      INSERT INTO parted VALUES (150, 'replica insert');
      UPDATE parted_low SET v = 'replica update' WHERE id = 3;
      DELETE FROM parted WHERE id = 4;
      RESET session_replication_role});
is(sql("SELECT redshift_fdw.sync('parted')"), '3', 'changes made under the replica role are applied');
is(backing_sql(digest_sql($prow, "$schema.parted")), sql(digest_sql($prow, 'parted')),
	'and Redshift equals the source');

# --- partitions created, attached and detached later ---------------------------------
sql(q{CREATE TABLE parted_mid PARTITION OF parted FOR VALUES FROM (200) TO (300);
      INSERT INTO parted_mid VALUES (201, 'straight into a partition created later');
      CREATE TABLE parted_more (id int NOT NULL, v text);
      INSERT INTO parted_more SELECT g, 'brought along ' || g FROM generate_series(300, 309) g;
      ALTER TABLE parted ATTACH PARTITION parted_more FOR VALUES FROM (300) TO (400)});
is(sql("SELECT redshift_fdw.sync('parted')"), '11',
	'a partition created later is tracked, and the rows an attached one brings are loaded');
is(backing_sql(digest_sql($prow, "$schema.parted")), sql(digest_sql($prow, 'parted')),
	'Redshift equals the source with its new partitions');
my $before_detach = backing_sql(digest_sql($prow, "$schema.parted"));
sql(q{ALTER TABLE parted DETACH PARTITION parted_more;
      UPDATE parted_more SET v = 'changed once detached'});
is(sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'parted_more'::regclass"), '0',
	'a detached partition loses the tracking triggers');
is(sql("SELECT redshift_fdw.sync('parted')"), '0', 'and its changes are not the source\'s');
is(backing_sql(digest_sql($prow, "$schema.parted")), $before_detach, 'its rows stay on Redshift as they were');
sql(q{ALTER TABLE parted ATTACH PARTITION parted_more FOR VALUES FROM (300) TO (400)});
is(sql("SELECT redshift_fdw.sync('parted')"), '10', 'attached again, its rows are applied');
is(backing_sql(digest_sql($prow, "$schema.parted")), sql(digest_sql($prow, 'parted')),
	'as upserts: Redshift equals the source, no row twice');

# --- the event triggers write as the binding's owner ------------------------------------
# A binding's owner owns its change log, so what she attaches to it (a
# trigger) runs with the rights of whoever writes to the log: the event
# triggers write to it as the binding's owner (not as the extension's
# owner, nor as whoever altered the table), and refuse a log that is not
# the binding's own.
sql(q{CREATE ROLE mallory LOGIN; GRANT USAGE ON FOREIGN SERVER rs TO mallory;
      CREATE SCHEMA mal AUTHORIZATION mallory;
      CREATE TABLE public.victim (id int)});
sub as_mallory { return $node->psql('postgres', "\\set VERBOSITY verbose\nSET ROLE mallory;\n$_[0]"); }
my ($mret, $mout, $merr) = as_mallory(q{
  CREATE TABLE mal.p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
  CREATE TABLE mal.p1 PARTITION OF mal.p FOR VALUES FROM (0) TO (100);
  SELECT name FROM redshift_fdw.create_materialization('mal_p', 'mal.p', 'rs');
  CREATE FUNCTION mal.payload() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF current_user <> 'mallory' THEN EXECUTE 'ALTER ROLE mallory SUPERUSER'; END IF; RETURN NULL; END $$;
  DO $$ BEGIN EXECUTE format('CREATE TRIGGER payload AFTER INSERT ON %s FOR EACH STATEMENT '
                             'EXECUTE FUNCTION mal.payload()',
                             (SELECT change_log FROM redshift_fdw.materialization WHERE name = 'mal_p')); END $$;
  CREATE TABLE mal.p2 PARTITION OF mal.p FOR VALUES FROM (100) TO (200);
  CREATE TABLE mal.more (id int NOT NULL, v text); INSERT INTO mal.more VALUES (250, 'brought along');});
is($mret, 0, 'a role puts a trigger on its binding\'s change log and adds a partition') or diag($merr);
($mret, $mout, $merr) = $node->psql('postgres', q{
  CREATE TABLE mal.p3 PARTITION OF mal.p FOR VALUES FROM (300) TO (400);
  ALTER TABLE mal.p ATTACH PARTITION mal.more FOR VALUES FROM (200) TO (300);
  ALTER TABLE mal.p ALTER COLUMN v TYPE text USING v || ''});
is($mret, 0, 'the superuser adds, attaches and rewrites partitions of it') or diag($merr);
is(sql(q{SELECT string_agg(c.relname || ':' || (SELECT count(*) FROM pg_trigger g WHERE g.tgrelid = c.oid
                                                  AND g.tgname LIKE 'redshift_fdw_%'), ',' ORDER BY c.relname)
           FROM pg_class c WHERE c.relname IN ('p2', 'p3', 'more') AND c.relnamespace = 'mal'::regnamespace}),
	'more:4,p2:4,p3:4', 'every new partition is tracked');
($mret, $mout, $merr) = as_mallory(q{
  CREATE TABLE mal.src (id int PRIMARY KEY);
  INSERT INTO redshift_fdw.materialization (name, server, source, target_schema, target_table, key_columns, change_log)
    VALUES ('forged', 'rs', 'mal.src', 'mal', 'src', '{id}', 'public.victim');
  ALTER TABLE mal.src ALTER COLUMN id TYPE text});
like($merr, qr/55000: the change log of materialization "forged" is not the one it was created with/,
	'a catalog row naming another table as its log is refused');
is(sql(q{SELECT rolsuper::text || ' ' || format_type(a.atttypid, a.atttypmod)
           FROM pg_roles r, pg_attribute a
          WHERE r.rolname = 'mallory' AND a.attrelid = 'public.victim'::regclass AND a.attname = 'id'}),
	'false integer', 'neither route gains a role any right: her trigger ran as her');
sql(q{CREATE ROLE trudy LOGIN; GRANT CREATE, USAGE ON SCHEMA mal TO trudy; ALTER TABLE mal.p OWNER TO trudy;
      GRANT SELECT, TRIGGER ON mal.p TO mallory});
my ($tret, $tout, $terr) = $node->psql('postgres', "\\set VERBOSITY verbose\nSET ROLE trudy;\n"
	. q{CREATE TABLE mal.p4 PARTITION OF mal.p FOR VALUES FROM (400) TO (500)});
like($terr, qr/42501: materialization "mal_p" tracks mal.p: only its owner, mallory, can make this change/,
	'a table owner who cannot act for the binding\'s owner is refused, and told whose change it is');
sql(q{REVOKE SELECT, TRIGGER ON mal.p FROM mallory});
($tret, $tout, $terr) = $node->psql('postgres', "SET ROLE trudy;\n"
	. q{CREATE TABLE mal.p4 PARTITION OF mal.p FOR VALUES FROM (400) TO (500)});
like($terr, qr/WARNING:  materialization "mal_p": its owner mallory may not read or trigger on mal.p; its tracking does not follow this command/,
	'a binding whose owner lost the rights on its source stops no one, with a warning');
($mret, $mout, $merr) = as_mallory(q{DELETE FROM redshift_fdw.materialization WHERE name = 'forged'});
sql(q{SELECT redshift_fdw.drop_materialization('mal_p'); DROP SCHEMA mal CASCADE; DROP TABLE public.victim;
      REVOKE USAGE ON FOREIGN SERVER rs FROM mallory; DROP ROLE mallory; DROP ROLE trudy});

# --- upserts, MERGE and cascaded deletes ---------------------------------------------
sql(q{CREATE TABLE owners (id int PRIMARY KEY);
      INSERT INTO owners SELECT g FROM generate_series(1, 3) g;
      CREATE TABLE owned (id int PRIMARY KEY, owner int REFERENCES owners ON DELETE CASCADE, v text);
      INSERT INTO owned SELECT g, g % 3 + 1, 'o' || g FROM generate_series(1, 30) g});
sql("SELECT name FROM redshift_fdw.create_materialization('owned', 'owned', 'rs')");
is(sql("SELECT redshift_fdw.sync('owned')"), '30', 'owned: first sync');
sql(q{INSERT INTO owned VALUES (1, 1, 'upserted'), (31, 1, 'inserted') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
      MERGE INTO owned o USING (VALUES (5, 'merged'), (6, NULL), (32, 'merged in')) AS x(id, v) ON o.id = x.id
        WHEN MATCHED AND x.v IS NULL THEN DELETE
        WHEN MATCHED THEN UPDATE SET v = x.v
        WHEN NOT MATCHED THEN INSERT VALUES (x.id, 2, x.v);
      DELETE FROM owners WHERE id = 3});
sql("SELECT redshift_fdw.sync('owned')");
my $orow = "concat_ws('|', r.id::text, r.owner::text, quote_nullable(r.v::text))";
is(backing_sql(digest_sql($orow, "$schema.owned")), sql(digest_sql($orow, 'owned')),
	'upserts, MERGE and deletes cascaded from another table reach Redshift');

# --- ALTER TABLE on a tracked source --------------------------------------------------
for my $ddl ('ALTER TABLE owned RENAME COLUMN id TO ident', 'ALTER TABLE owned DROP COLUMN id CASCADE')
{
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$ddl");
	like($err, qr/2BP01: column "id" of public.owned is a key column of materialization "owned"/,
		"$ddl: refused, naming the column and the binding");
	like($err, qr/HINT:  Drop the materialization first \(SELECT redshift_fdw.drop_materialization\('owned'\)\)/,
		"$ddl: the hint says how to change the key");
}
sql(q{INSERT INTO owned VALUES (40, 1, 'pending across a type change')});
sql(q{ALTER TABLE owned ALTER COLUMN id TYPE bigint});
is(sql(q{SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
          JOIN redshift_fdw.materialization m ON a.attrelid = m.change_log
         WHERE m.name = 'owned' AND a.attname = 'id'}),
	'bigint', 'a key column given another type takes its change log column along');
is(sql(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'owned'::regclass AND tgname LIKE 'redshift_fdw_%'}),
	'4', 'and the table keeps its tracking triggers');
sql(q{INSERT INTO owned VALUES (41, 1, 'after the type change'); UPDATE owned SET v = 'renamed v next' WHERE id = 1});
sql(q{ALTER TABLE owned RENAME COLUMN v TO note});
is(sql("SELECT redshift_fdw.sync('owned')"), sql('SELECT count(*) FROM owned'),
	'writes go on; the next sync reloads the table for the renamed column');
my $orow2 = "concat_ws('|', r.id::text, r.owner::text, quote_nullable(r.note::text))";
is(backing_sql(digest_sql($orow2, "$schema.owned")), sql(digest_sql($orow2, 'owned')),
	'and Redshift equals the source');
# A rewrite changes rows without row triggers: the next sync reloads.
sql(q{ALTER TABLE owned ALTER COLUMN id TYPE bigint USING id + 1000;
      ALTER TABLE owned ALTER COLUMN note TYPE text USING upper(note)});
is(sql("SELECT redshift_fdw.sync('owned')"), sql('SELECT count(*) FROM owned'),
	'ALTER TYPE ... USING on the key and another column: the next sync reloads');
is(backing_sql(digest_sql($orow2, "$schema.owned")), sql(digest_sql($orow2, 'owned')),
	'Redshift has the new keys and values, not the old ones as well');
sql(q{ALTER TABLE owned ALTER COLUMN id TYPE bigint USING id - 1000});
is(sql("SELECT redshift_fdw.sync('owned')"), sql('SELECT count(*) FROM owned'), 'and back: reloaded again');
is(backing_sql(digest_sql($orow2, "$schema.owned")), sql(digest_sql($orow2, 'owned')), 'equal again');

# --- a checkpoint on Redshift older than the last apply (a restore) --------------------
is(sql(q{SELECT string_agg(redshift_fdw._mat_snapshot_behind(r::pg_snapshot, l::pg_snapshot)::text, ' ')
           FROM (VALUES ('10:20:15', '10:20:15'), ('10:25:', '10:20:15'), ('10:18:', '10:20:15'),
                        ('10:20:15,17', '10:20:15'), ('10:20:', '10:20:15'), (NULL, '10:20:')) v(r, l)}),
	'false false true true false false',
	'a checkpoint is behind when taken with a lower xmax, or saw running what the recorded one saw committed');
my $old_ckpt = backing_sql("SELECT applied_snapshot FROM $schema.redshift_fdw_checkpoints WHERE name = 'owned'");
backing_sql("CREATE TABLE $schema.owned_backup AS SELECT * FROM $schema.owned");
sql(q{UPDATE owned SET note = 'applied, then lost in the restore' WHERE id IN (1, 4);
      DELETE FROM owned WHERE id = 7; INSERT INTO owned VALUES (50, 1, 'also lost')});
is(sql("SELECT redshift_fdw.sync('owned')"), '4', 'owned: a sync applies four changes');
backing_sql("BEGIN; DELETE FROM $schema.owned; INSERT INTO $schema.owned SELECT * FROM $schema.owned_backup;
             UPDATE $schema.redshift_fdw_checkpoints SET applied_snapshot = '$old_ckpt' WHERE name = 'owned';
             DROP TABLE $schema.owned_backup; COMMIT");
sql(q{INSERT INTO owned VALUES (51, 1, 'after the restore')});
my ($ret, $rows, $warn) = $node->psql('postgres', "SELECT redshift_fdw.sync('owned')");
is($rows, sql('SELECT count(*) FROM owned'), 'after the restore the sync reloads the table');
like($warn, qr/WARNING:  materialization "owned": the checkpoint on Redshift is older than the last apply recorded here; reloading \Q$schema\E\.owned/,
	'and warns why');
is(backing_sql(digest_sql($orow2, "$schema.owned")), sql(digest_sql($orow2, 'owned')),
	'Redshift equals the source again, the changes the restore undid included');
# A checkpoint taken in another cluster (the database restored from a
# dump into a new one) names transactions this one has not run.
backing_sql("UPDATE $schema.redshift_fdw_checkpoints SET applied_snapshot = '900000000:900000000:' WHERE name = 'owned'");
sql(q{INSERT INTO owned VALUES (52, 1, 'after a restore into another cluster')});
($ret, $rows, $warn) = $node->psql('postgres', "SELECT redshift_fdw.sync('owned')");
is($rows, sql('SELECT count(*) FROM owned'), 'a checkpoint from another cluster: the sync reloads the table');
like($warn, qr/WARNING:  materialization "owned": its checkpoint on Redshift \(900000000:900000000:\) names transactions this server has not run; reloading/,
	'and warns why');
is(backing_sql(digest_sql($orow2, "$schema.owned")), sql(digest_sql($orow2, 'owned')), 'equal');
backing_sql("DELETE FROM $schema.redshift_fdw_checkpoints WHERE name = 'owned'");
sql(q{INSERT INTO owned VALUES (53, 1, 'after the checkpoint row went')});
($ret, $rows, $warn) = $node->psql('postgres', "SELECT redshift_fdw.sync('owned')");
is($rows, sql('SELECT count(*) FROM owned'), 'a checkpoint row that is gone: the sync reloads the table');
like($warn, qr/WARNING:  materialization "owned": its checkpoint is missing from .*redshift_fdw_checkpoints; reloading/,
	'and warns why');
is(backing_sql(digest_sql($orow2, "$schema.owned")), sql(digest_sql($orow2, 'owned')), 'equal again');

# --- a column added to the source ------------------------------------------------
sql(q{CREATE TABLE evolving (id int PRIMARY KEY, v text);
      INSERT INTO evolving SELECT g, 'e' || g FROM generate_series(1, 10) g});
sql("SELECT name FROM redshift_fdw.create_materialization('evolving', 'evolving', 'rs')");
is(sql("SELECT redshift_fdw.sync('evolving')"), '10', 'evolving: first sync');
sql(q{ALTER TABLE evolving ADD COLUMN w int NOT NULL DEFAULT 7});
sql(q{UPDATE evolving SET v = 'touched', w = 8 WHERE id = 1});
sql("SELECT redshift_fdw.sync('evolving')");
my $erow = "concat_ws('|', r.id::text, quote_nullable(r.v::text), quote_nullable(r.w::text))";
is(backing_sql(digest_sql($erow, "$schema.evolving")), sql(digest_sql($erow, 'evolving')),
	'a column added to the source reaches Redshift with its value in every row');

# ----------------------------------------------------------------------
# 2. delta updates
# ----------------------------------------------------------------------
sql(q{CREATE TABLE dsrc (id int PRIMARY KEY, v text, amount numeric(8,2));
      INSERT INTO dsrc VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3), (4, 'd', 4), (5, 'e', 5)});
sql("SELECT name FROM redshift_fdw.create_materialization('delta', 'dsrc', 'rs', "
	  . "target_table => 'DeltaLog', delta_updates => true)");
my @expect;    # the changes after the backfill, in order
sub dsql { my ($q, @changes) = @_; sql($q); push @expect, @changes; return; }

# The target as seq|op|id|v|amount lines, in _rsfdw_seq order.
sub delta_rows
{
	return split /\n/, backing_sql(
		"SELECT _rsfdw_seq || '|' || _rsfdw_op || '|' || coalesce(id::text, 'NULL') || '|' "
		  . "|| coalesce(v, 'NULL') || '|' || coalesce(amount::text, 'NULL') "
		  . "FROM $schema.deltalog ORDER BY _rsfdw_seq, _rsfdw_op");
}

# Replays seq|op|id|v|amount lines over an empty table.
sub replay
{
	my %t;
	for (@_)
	{
		my (undef, $op, $id, $v, $n) = split /\|/, $_, -1;
		if ($op eq 'I' || $op eq 'U') { $t{$id} = "$id|$v|$n"; }
		elsif ($op eq 'D') { delete $t{$id}; }
		elsif ($op eq 'T') { %t = (); }
		else { return "unknown op $op"; }
	}
	return join("\n", map { $t{$_} } sort { $a <=> $b } keys %t);
}

sub check_delta
{
	my ($what) = @_;
	my @rows = delta_rows();
	my @seqs = map { (split /\|/)[0] } @rows;
	is(join(',', @seqs), join(',', 1 .. scalar @rows), "$what: _rsfdw_seq is 1..N, no gap, no duplicate");
	my @backfill = sort map { join('|', (split /\|/, $_, -1)[ 1 .. 4 ]) } @rows[ 0 .. 4 ];
	is(join(' ', @backfill), 'I|1|a|1.00 I|2|b|2.00 I|3|c|3.00 I|4|d|4.00 I|5|e|5.00',
		"$what: seq 1..5 are the backfill, as inserts");
	is(join("\n", map { s/^\d+\|//r } @rows[ 5 .. $#rows ]), join("\n", @expect),
		"$what: then exactly the change sequence, in commit order");
	is(replay(@rows), sql("SELECT string_agg(id || '|' || v || '|' || amount, E'\\n' ORDER BY id) FROM dsrc") // '',
		"$what: replaying the ops in order over an empty table gives the source");
	is(backing_sql("SELECT applied_changes FROM $schema.redshift_fdw_checkpoints WHERE name = 'delta'"),
		scalar @rows, "$what: the checkpoint counts every change");
}

is(sql("SELECT redshift_fdw.sync('delta')"), '5', 'delta: the first sync appends every row');
is(backing_sql("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
                 WHERE attrelid = '$schema.deltalog'::regclass AND attnum > 0")
	  . ' ' . backing_sql("SELECT format_type(atttypid, atttypmod) FROM pg_attribute
                 WHERE attrelid = '$schema.deltalog'::regclass AND attname = '_rsfdw_op'"),
	'id,v,amount,_rsfdw_op,_rsfdw_seq character(1)', 'delta target: the source columns, _rsfdw_op CHAR(1), _rsfdw_seq');

dsql(q{INSERT INTO dsrc VALUES (6, 'f, "six"', 6.5), (7, 'g', 7)},
	'I|6|f, "six"|6.50', 'I|7|g|7.00');
dsql(q{UPDATE dsrc SET v = 'bb' WHERE id = 2}, 'U|2|bb|2.00');
dsql(q{UPDATE dsrc SET id = 20 WHERE id = 1}, 'U|20|a|1.00', 'D|1|a|1.00');
dsql(q{DELETE FROM dsrc WHERE id = 3}, 'D|3|c|3.00');
dsql(q{BEGIN; INSERT INTO dsrc VALUES (8, 'rolled back', 8); UPDATE dsrc SET v = 'no' WHERE id = 4; ROLLBACK});
dsql(q{UPDATE dsrc SET amount = amount + 1 WHERE id = 6}, 'U|6|f, "six"|7.50');
dsql(q{BEGIN; INSERT INTO dsrc VALUES (9, 'i', 9); DELETE FROM dsrc WHERE id = 9; COMMIT},
	'I|9|i|9.00', 'D|9|i|9.00');
is(sql("SELECT redshift_fdw.sync('delta')"), '9', 'delta: the second sync appends the 9 changes');
check_delta('after the second sync');

# an older transaction commits after a newer one, around a sync
my $old = $node->background_psql('postgres');
$old->query_safe(q{BEGIN; INSERT INTO dsrc VALUES (40, 'older xid', 40)});
dsql(q{INSERT INTO dsrc VALUES (41, 'newer xid', 41)}, 'I|41|newer xid|41.00');
is(sql("SELECT redshift_fdw.sync('delta')"), '1', 'delta: a sync while an older transaction is open appends the newer one');
check_delta('with an older transaction open');
$old->query_safe('COMMIT');
$old->quit;
push @expect, 'I|40|older xid|40.00';
dsql(q{TRUNCATE dsrc}, 'T|NULL|NULL|NULL');
dsql(q{INSERT INTO dsrc VALUES (30, 'x', 30), (31, 'y', 31), (32, 'z', 32)},
	'I|30|x|30.00', 'I|31|y|31.00', 'I|32|z|32.00');
dsql(q{UPDATE dsrc SET v = 'yy' WHERE id = 31}, 'U|31|yy|31.00');
dsql(q{DELETE FROM dsrc WHERE id = 30}, 'D|30|x|30.00');
dsql(q{UPDATE dsrc SET id = 33 WHERE id = 32}, 'U|33|z|32.00', 'D|32|z|32.00');
is(sql("SELECT redshift_fdw.sync('delta')"), '9', 'delta: the third sync appends the older commit, the TRUNCATE and what followed');
check_delta('after TRUNCATE');
is(sql("SELECT redshift_fdw.sync('delta')"), '0', 'delta: nothing pending afterwards');

# The checkpoint stays with the target when the server's schema option
# changes; a checkpoint row that is gone is not taken for a first apply.
sql(qq{ALTER SERVER rs OPTIONS (SET schema '${schema}_moved')});
dsql(q{UPDATE dsrc SET v = 'after the option moved' WHERE id = 31}, 'U|31|after the option moved|31.00');
is(sql("SELECT redshift_fdw.sync('delta')"), '1', 'delta: the server\'s schema changed: the next sync goes on');
check_delta('after the server\'s schema option changed');
sql(qq{ALTER SERVER rs OPTIONS (SET schema '$schema')});
my $delta_ckpt = backing_sql("SELECT binding || '|' || fence || '|' || applied_snapshot || '|' || applied_changes
                                FROM $schema.redshift_fdw_checkpoints WHERE name = 'delta'");
backing_sql("DELETE FROM $schema.redshift_fdw_checkpoints WHERE name = 'delta'");
dsql(q{UPDATE dsrc SET v = 'while the checkpoint is gone' WHERE id = 31}, 'U|31|while the checkpoint is gone|31.00');
like(sql_error($node, "\\set VERBOSITY verbose\nSELECT redshift_fdw.sync('delta')"),
	qr/55000: materialization "delta": its checkpoint is missing from .*redshift_fdw_checkpoints/,
	'delta: a missing checkpoint row is refused, not taken for a first apply');
my ($dk, $df, $ds, $dc) = split /\|/, $delta_ckpt;
backing_sql("DELETE FROM $schema.redshift_fdw_checkpoints WHERE name = 'delta';
             INSERT INTO $schema.redshift_fdw_checkpoints (binding, name, target, fence, applied_snapshot, applied_changes)
             VALUES ('$dk', 'delta', '$schema.deltalog', $df, '$ds', $dc)");
is(sql("SELECT redshift_fdw.sync('delta')"), '1', 'delta: with the row put back the sync goes on');
check_delta('after the checkpoint row was put back');
my $delta_snap = backing_sql("SELECT applied_snapshot FROM $schema.redshift_fdw_checkpoints WHERE name = 'delta'");
backing_sql("UPDATE $schema.redshift_fdw_checkpoints SET applied_snapshot = '900000000:900000000:' WHERE name = 'delta'");
dsql(q{UPDATE dsrc SET v = 'w' WHERE id = 33}, 'U|33|w|32.00');
like(sql_error($node, "\\set VERBOSITY verbose\nSELECT redshift_fdw.sync('delta')"),
	qr/55000: materialization "delta": its checkpoint on Redshift \(900000000:900000000:\) names transactions this server has not run/,
	'delta: a checkpoint from another cluster is refused');
backing_sql("UPDATE $schema.redshift_fdw_checkpoints SET applied_snapshot = '$delta_snap' WHERE name = 'delta'");
dsql(q{ALTER TABLE dsrc ALTER COLUMN v TYPE text USING upper(v)},
	'T|NULL|NULL|NULL', 'I|31|WHILE THE CHECKPOINT IS GONE|31.00', 'I|33|W|32.00');
is(sql("SELECT redshift_fdw.sync('delta')"), '4',
	'delta: the change held back, then a rewrite: a TRUNCATE and every row as rewritten');
check_delta('after ALTER TYPE ... USING');

# a source with columns named n and o (the names the change-log trigger
# gives the new and old rows)
sql(q{CREATE TABLE aliases (id int PRIMARY KEY, n jsonb, o text);
      INSERT INTO aliases VALUES (1, '{"x": 1}', 'one')});
sql("SELECT name FROM redshift_fdw.create_materialization('aliases', 'aliases', 'rs', delta_updates => true)");
is(sql("SELECT redshift_fdw.sync('aliases')"), '1', 'columns named n and o: first delta sync');
sub alias_rows
{
	return backing_sql("SELECT string_agg(_rsfdw_seq || '|' || _rsfdw_op || '|' || coalesce(id::text, 'NULL')
	                            || '|' || coalesce(n::text, 'NULL') || '|' || coalesce(o, 'NULL'),
	                            E'\\n' ORDER BY _rsfdw_seq) FROM $schema.aliases");
}
sql(q{INSERT INTO aliases VALUES (2, '{"id": 99, "o": "not this row"}', 'two')});
sql(q{UPDATE aliases SET o = 'uno' WHERE id = 1});
is(sql_error($node, "SELECT redshift_fdw.sync('aliases')"), '', 'columns named n and o: an insert and an update sync');
is(alias_rows(), join("\n", '1|I|1|{"x": 1}|one', '2|I|2|{"o": "not this row", "id": 99}|two', '3|U|1|{"x": 1}|uno'),
	'columns named n and o: each change carries its own row');
sql(q{DELETE FROM aliases WHERE id = 2});
is(sql_error($node, "SELECT redshift_fdw.sync('aliases')"), '', 'columns named n and o: a delete syncs');
is(alias_rows(), join("\n", '1|I|1|{"x": 1}|one', '2|I|2|{"o": "not this row", "id": 99}|two',
		'3|U|1|{"x": 1}|uno', '4|D|2|{"o": "not this row", "id": 99}|two'),
	'columns named n and o: the delete carries the old row');

# ----------------------------------------------------------------------
# 3. errors
# ----------------------------------------------------------------------

# --- a row over 4 MB ------------------------------------------------------------
sql(q{CREATE TABLE huge (id int PRIMARY KEY, j jsonb, t text);
      INSERT INTO huge VALUES (1, '{"k": 1}', 'one'), (2, '{"k": 2}', 'two')});
sql("SELECT name FROM redshift_fdw.create_materialization('huge', 'huge', 'rs')");
is(sql("SELECT redshift_fdw.sync('huge')"), '2', 'huge: first sync');
my $huge_row = "concat_ws('|', r.id::text, quote_nullable(r.j::jsonb::text), quote_nullable(r.t::text))";
sub huge_remote { return backing_sql(digest_sql($huge_row, "$schema.huge")); }
sub huge_ckpt
{
	return backing_sql("SELECT applied_snapshot || ' ' || applied_changes
	                      FROM $schema.redshift_fdw_checkpoints WHERE name = 'huge'");
}
my ($huge_before, $ckpt_before) = (huge_remote(), huge_ckpt());
sql(q{UPDATE huge SET t = 'one, changed' WHERE id = 1});
sql(q{INSERT INTO huge VALUES (3, jsonb_build_object('big', repeat('x', 5 * 1024 * 1024)), 'three')});
my $err = sql_error($node, "SELECT redshift_fdw.sync('huge')");
like($err, qr/materialization "huge": row for key \(id\)=\(3\) is \d+ bytes, more than the 4 MB Redshift loads per row/,
	'a 5 MB jsonb row: the error names the binding and the key');
unlike($err, qr/SQL statement|WITH snap/, 'and does not quote the changes query as its context');
is(huge_remote(), $huge_before, 'nothing applied: the target is unchanged (not even the other change)');
is(huge_ckpt(), $ckpt_before, 'the checkpoint is unchanged');
sql(q{UPDATE huge SET j = '{}', t = repeat('y', 5 * 1024 * 1024) WHERE id = 3});
like(sql_error($node, "SELECT redshift_fdw.sync('huge')"),
	qr/materialization "huge": .*key \(id\)=\(3\)/,
	'a 5 MB text value: also refused, naming the binding and the key');
is(huge_remote(), $huge_before, 'still nothing applied');
sql(q{DELETE FROM huge WHERE id = 3});
is(sql("SELECT redshift_fdw.sync('huge')"), '2', 'after deleting the row the next sync succeeds');
is(huge_remote(), sql(digest_sql($huge_row, 'huge')), 'and the sides are equal');
isnt(huge_ckpt(), $ckpt_before, 'the checkpoint moved');
sql(q{UPDATE huge SET t = '\N' WHERE id = 2});
like(sql_error($node, "SELECT redshift_fdw.sync('huge')"), qr/materialization "huge": value of column "t" for key \(id\)=\(2\) is the text \\N/,
	'a value that is the text \\N: refused, naming the column and the key');
sql(q{UPDATE huge SET t = 'two' WHERE id = 2});
# A column the source gains is added by the load transaction: an apply
# that fails leaves the target without it, so the next one still knows
# that the rows there lack it (and reloads them).
sql(q{ALTER TABLE huge ADD COLUMN c int DEFAULT 7;
      INSERT INTO huge VALUES (4, '{}', repeat('z', 5 * 1024 * 1024))});
like(sql_error($node, "SELECT redshift_fdw.sync('huge')"), qr/key \(id\)=\(4\)/,
	'a new column and a row over 4 MB: refused');
is(backing_sql("SELECT count(*) FROM pg_attribute WHERE attrelid = '$schema.huge'::regclass AND attname = 'c'"),
	'0', 'the new column is not left on Redshift');
sql(q{UPDATE huge SET t = 'four' WHERE id = 4});
is(sql("SELECT redshift_fdw.sync('huge')"), '3', 'the next sync adds it and reloads the table');
my $huge_row_c = "concat_ws('|', r.id::text, quote_nullable(r.j::jsonb::text), quote_nullable(r.t::text), r.c::text)";
is(backing_sql(digest_sql($huge_row_c, "$schema.huge")), sql(digest_sql($huge_row_c, 'huge')),
	'every row has the new column\'s value');

# --- columns equal ignoring case ---------------------------------------------------
sql(q{CREATE TABLE clash (id int PRIMARY KEY, "ID" int, v text)});
$err = sql_error($node, "SELECT redshift_fdw.create_materialization('clash', 'clash', 'rs')");
like($err, qr/materialization "clash": columns id, ID of clash are one column "id" in Redshift/,
	'a case collision fails create_materialization with a clear error');
like($err, qr/HINT:.*lower-cases identifiers/, 'with a hint');
is(sql("SELECT count(*) FROM redshift_fdw.materialization WHERE name = 'clash'") . ' '
	  . sql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'clash'::regclass AND NOT tgisinternal"),
	'0 0', 'nothing was created: no binding, no trigger');
is(backing_sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = '$schema' AND c.relname = 'clash'"),
	'0', 'and no table on Redshift');

# --- a Redshift target with a NOT NULL column the source leaves NULL ------------------
remote_sql("CREATE TABLE $schema.strict (id bigint, v varchar(256), extra integer NOT NULL)");
sql(q{CREATE TABLE strict (id int PRIMARY KEY, v text);
      INSERT INTO strict SELECT g, 'v' || g FROM generate_series(1, 20) g});
sql("SELECT name FROM redshift_fdw.create_materialization('strict', 'strict', 'rs')");
$err = sql_error($node, "SELECT redshift_fdw.sync('strict')");
like($err, qr/materialization "strict": Redshift rejected a row loading \Q$schema\E\.strict: .*\(error 1213\)/,
	'a NOT NULL column on Redshift: the load error (1213) names binding and table');
like($err, qr/DETAIL:  File s3:\/\/\Q$ENV{S3_BUCKET}\/$prefix\E\/strict\/\S+, line \d+, column "[^"]*"/,
	'with the staging file, line and column in DETAIL');
is(backing_sql("SELECT count(*) FROM $schema.strict"), '0', 'nothing was loaded');
cmp_ok(staged_files(), '>', 0, 'the failed load left its staging files');
# A binding of the same name in another database, staging under the same
# prefix (into another schema), stages beside them and leaves them be.
my $left = staged_files();
sql('CREATE DATABASE neighbour');
$node->safe_psql('neighbour', qq{CREATE EXTENSION redshift_fdw;
  @{[ create_staging_server('rs', "${schema}_n", $prefix) ]}
  CREATE TABLE strict (id int PRIMARY KEY, v text);
  INSERT INTO strict SELECT g, 'neighbour ' || g FROM generate_series(1, 5) g;
  SELECT name FROM redshift_fdw.create_materialization('strict', 'strict', 'rs')});
is($node->safe_psql('neighbour', "SELECT redshift_fdw.sync('strict')"), '5',
	'a binding of the same name in another database syncs');
is(backing_sql("SELECT string_agg(v, ',' ORDER BY id) FROM ${schema}_n.strict"),
	'neighbour 1,neighbour 2,neighbour 3,neighbour 4,neighbour 5', 'its own rows');
is(staged_files(), $left, 'and the leftovers of this database\'s failed apply are still there');
sql('DROP DATABASE neighbour');
remote_sql("DROP SCHEMA ${schema}_n CASCADE");
remote_sql("ALTER TABLE $schema.strict DROP COLUMN extra");
is(sql("SELECT redshift_fdw.sync('strict')"), '20', 'once the column is gone the sync succeeds');
is(backing_sql("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM $schema.strict"),
	sql("SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM strict"), 'equal');
is(staged_files(), '0', 'and the leftovers of the failed apply are deleted');

# ----------------------------------------------------------------------
# 4. the scheduler; COPY with IAM_ROLE
# ----------------------------------------------------------------------
my $sched = preloaded_node('matsched', 2);
sub ssql { return $sched->safe_psql('postgres', $_[0]); }

my $srow = "concat_ws('|', r.id::text, quote_nullable(r.v::text), quote_nullable(r.n::numeric(30,2)::text))";
sub sched_equal
{
	my ($table) = @_;
	my $l = ssql(digest_sql($srow, $table));
	my $r = backing_sql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	                      WHERE n.nspname = '$schema' AND c.relname = '$table'") eq '1'
	  ? backing_sql(digest_sql($srow, "$schema.$table")) : 'no table';
	return $l eq $r;
}

ssql(qq{
CREATE EXTENSION redshift_fdw;
@{[ create_staging_server('rs', $schema, "$prefix-sched") ]}
@{[ create_staging_server('rs_iam', $schema, "$prefix-iam",
		iam_role => 'arn:aws:iam::123456789012:role/no-such-role') ]}
CREATE TABLE ticks (id int PRIMARY KEY, v text, n numeric(10,2));
INSERT INTO ticks SELECT g, 'tick ' || g, g / 4.0 FROM generate_series(1, 1000) g;
SELECT name FROM redshift_fdw.create_materialization('every2s', 'ticks', 'rs', schedule => '2s');
});
ok(wait_until(sub { sched_equal('ticks') }), 'a 2s materialization applies the table by itself');
my $mark = ssql("SELECT coalesce(max(id), 0) FROM redshift_fdw.runs");
ssql(q{BEGIN; INSERT INTO ticks SELECT g, 'tick ' || g, g FROM generate_series(1001, 1050) g;
       UPDATE ticks SET v = 'changed' WHERE id <= 50; DELETE FROM ticks WHERE id BETWEEN 900 AND 949;
       COMMIT});
ok(wait_until(sub { sched_equal('ticks') }), 'and then the changes made afterwards');
ok($sched->poll_query_until('postgres',
	"SELECT count(*) > 0 FROM redshift_fdw.runs WHERE id > $mark AND binding = 'every2s' AND rows = 150"),
	'a run recorded them: 50 inserted, 50 updated and 50 deleted keys');
is(ssql("SELECT kind || ' ' || status || ' ' || (bytes > 0) || ' ' || trigger FROM redshift_fdw.runs
          WHERE id > $mark AND binding = 'every2s' AND rows = 150"),
	'materialization succeeded true schedule', 'as a succeeded scheduled materialization run, with bytes staged');
sleep 5;
# (the run of the moment may still be running: it is not a failure)
is(ssql("SELECT count(*) FILTER (WHERE status = 'succeeded') >= 2
                AND count(*) FILTER (WHERE status NOT IN ('succeeded', 'running')) = 0
           FROM redshift_fdw.runs WHERE binding = 'every2s' AND started > now() - interval '5 seconds'"),
	't', 'it keeps running every 2 s');
is(ssql("SELECT kind || ' ' || state || ' ' || last_status FROM redshift_fdw.status WHERE name = 'every2s'"),
	'materialization scheduled succeeded', 'status view');
is(ssql("SELECT target || ' ' || schedule FROM redshift_fdw.materializations WHERE name = 'every2s'"),
	"$schema.ticks 2s", 'materializations view');
ssql("SELECT redshift_fdw.disable_materialization('every2s')");

# IAM_ROLE: a role Redshift cannot assume fails the COPY; the test bed's role works
ssql(q{CREATE TABLE roles (id int PRIMARY KEY, v text, n numeric(10,2));
       INSERT INTO roles SELECT g, 'r' || g, g FROM generate_series(1, 300) g;
       BEGIN;
       SELECT name FROM redshift_fdw.create_materialization('roles', 'roles', 'rs_iam', schedule => '1h');
       SELECT redshift_fdw.disable_materialization('roles');
       COMMIT});
ssql("SELECT redshift_fdw.run_now('roles')");
ok($sched->poll_query_until('postgres',
	"SELECT last_status = 'failed' FROM redshift_fdw.status WHERE name = 'roles'"),
	'with an IAM role Redshift cannot assume, the run fails');
like(ssql("SELECT error FROM redshift_fdw.runs WHERE binding = 'roles' ORDER BY id DESC LIMIT 1"),
	qr/materialization "roles": .*not authorized to assume IAM Role/, 'the COPY named the role');
my $copy_err = sql_error($sched, "SELECT redshift_fdw.sync('roles')");
like($copy_err, qr/CONTEXT:  remote SQL command: COPY .* CREDENTIALS \[redacted\] MANIFEST/,
	'sync() fails the same way; the COPY it shows has its credentials redacted');
ok(!grep({ index($copy_err, $_) >= 0 } @secrets), 'no test secret in that error');
ssql("ALTER SERVER rs_iam OPTIONS (SET iam_role '$ENV{RS_IAM_ROLE}')");
is(ssql("SELECT redshift_fdw.sync('roles')"), '300', 'with iam_role the test bed accepts, the sync succeeds');
ok(sched_equal('roles'), 'and the sides are equal');
is(ssql("SELECT count(*) FROM redshift_fdw.s3_list('rs_iam', '')") . ' '
	  . ssql("SELECT count(*) FROM redshift_fdw.s3_list('rs', '')"),
	'0 0', 'no staging file left (the failed run\'s are deleted by the next apply)');

# --- no secret anywhere ------------------------------------------------------
my $errors = ssql("SELECT string_agg(error, E'\\n') FROM redshift_fdw.runs WHERE error IS NOT NULL");
isnt($errors, '', 'run history holds errors');
ok(!grep({ index($errors, $_) >= 0 } @secrets), 'no test secret in redshift_fdw.runs.error');

# remove whatever a failed step may have left in S3
ssql("SELECT redshift_fdw.s3_delete('$_', ARRAY(SELECT key FROM redshift_fdw.s3_list('$_', '')))")
  for qw(rs rs_iam);
sql("SELECT redshift_fdw.s3_delete('rs', ARRAY(SELECT key FROM redshift_fdw.s3_list('rs', '')))");
$sched->stop('fast');
$node->stop('fast');
like(slurp_file($sched->logfile), qr/CREDENTIALS \[redacted\]/, 'the server log shows the failed COPY, redacted');
for my $n ($node, $sched)
{
	my $log = slurp_file($n->logfile);
	ok(!grep({ index($log, $_) >= 0 } @secrets), $n->name . ': no test secret in the server log');
	unlike($log, qr/TRAP|terminated by signal/, $n->name . ': no crash');
}

set_faults('{"faults": []}');
remote_sql("DROP SCHEMA IF EXISTS $schema CASCADE");
done_testing();
