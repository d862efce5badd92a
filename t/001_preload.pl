# The library loads through shared_preload_libraries (the scheduler will
# need that), the extension installs in a fresh cluster, and survives a
# restart; DROP EXTENSION leaves nothing behind.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('preload');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'redshift_fdw'");
$node->start;

is($node->safe_psql('postgres', 'SHOW shared_preload_libraries'),
	'redshift_fdw', 'library preloaded');

$node->safe_psql('postgres', 'CREATE EXTENSION redshift_fdw');
is($node->safe_psql('postgres', 'SELECT redshift_fdw.library_version()'),
	$node->safe_psql('postgres',
		"SELECT extversion FROM pg_extension WHERE extname = 'redshift_fdw'"),
	'library and SQL objects agree on the version');

$node->restart;
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_foreign_data_wrapper WHERE fdwname = 'redshift_fdw'"),
	'1', 'wrapper still there after a restart');

$node->safe_psql('postgres', 'DROP EXTENSION redshift_fdw');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM pg_namespace WHERE nspname = 'redshift_fdw'"),
	'0', 'DROP EXTENSION removes the schema');

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"CREATE SERVER s FOREIGN DATA WRAPPER redshift_fdw");
isnt($ret, 0, 'no wrapper after DROP EXTENSION');
like($stderr, qr/foreign-data wrapper "redshift_fdw" does not exist/,
	'and the error says so');

$node->stop;
done_testing();
