# Helpers shared by the TAP tests that use the test bed (test/testbed env):
# fault rules for the simulator and the S3 gate, SQL on the simulator,
# errors of a statement expected to fail, a node running the scheduler, and
# waiting for a condition.
package RsfdwTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(sleep);

our @EXPORT = qw(set_faults remote_sql sql_error create_rs_server);

# Replace the fault rules (atomically, as the readers expect).
sub set_faults
{
	my ($json) = @_;
	my $tmp = "$ENV{RS_FAULT_FILE}.tap";
	open(my $fh, '>', $tmp) or die "cannot write $tmp: $!";
	print $fh $json;
	close $fh;
	rename($tmp, $ENV{RS_FAULT_FILE}) or die "cannot rename $tmp: $!";
	return;
}

# Run SQL on the Redshift simulator as the test user; dies on an error.
sub remote_sql
{
	my ($sql) = @_;
	local $ENV{PGPASSWORD} = $ENV{RS_PASSWORD};
	local $ENV{PGOPTIONS} = '';
	my ($out, $err) = run_command([
		'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1',
		"host=$ENV{RS_HOST} port=$ENV{RS_PORT} dbname=$ENV{RS_DB} user=$ENV{RS_USER}",
		'-c', $sql ]);
	die "remote SQL failed: $err" if $err =~ /ERROR/;
	return $out;
}

# SQL that creates the extension, server "rs" on the simulator and the
# current user's mapping.  Nodes running it need log_statement = 'none': it
# carries the test password, and run-tests checks that no log holds it.
sub create_rs_server
{
	return qq{
CREATE EXTENSION redshift_fdw;
CREATE SERVER rs FOREIGN DATA WRAPPER redshift_fdw
  OPTIONS (host '$ENV{RS_HOST}', port '$ENV{RS_PORT}', dbname '$ENV{RS_DB}');
CREATE USER MAPPING FOR CURRENT_USER SERVER rs
  OPTIONS (user '$ENV{RS_USER}', password '$ENV{RS_PASSWORD}');
};
}

# The error output of a statement on a node, or '' when it succeeded.
sub sql_error
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql);
	return $ret == 0 ? '' : $err;
}

# --- helpers of the materialization tests (006, 007) -----------------------
push our @EXPORT, qw(backing_sql create_staging_server);

# Run SQL straight on the simulator's backing PostgreSQL (database RS_DB,
# where the tables made through the simulator live), bypassing the
# simulator; returns the unaligned, tuples-only output; dies on an error.
sub backing_sql
{
	my ($sql) = @_;
	local $ENV{PGOPTIONS} = '';
	my ($out, $err) = run_command([
		'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
		'-h', $ENV{RS_BACKING_HOST}, '-p', $ENV{RS_BACKING_PORT},
		'-U', $ENV{RS_BACKING_USER}, '-d', $ENV{RS_DB}, '-c', $sql ]);
	die "backing SQL failed: $err" if $err =~ /ERROR|FATAL/;
	chomp $out;
	return $out;
}

# SQL that creates server $name on the simulator with S3 staging (under
# $prefix in the test bed's bucket) and Redshift schema $schema, and the
# current user's mapping with the Redshift and AWS credentials.  %opts are
# more server options.  Carries test secrets: log_statement = 'none'.
sub create_staging_server
{
	my ($name, $schema, $prefix, %opts) = @_;
	my $more = join('', map { ", $_ '$opts{$_}'" } sort keys %opts);
	return qq{
CREATE SERVER $name FOREIGN DATA WRAPPER redshift_fdw OPTIONS (
  host '$ENV{RS_HOST}', port '$ENV{RS_PORT}', dbname '$ENV{RS_DB}',
  s3_endpoint '$ENV{S3_ENDPOINT}', s3_bucket '$ENV{S3_BUCKET}',
  s3_region '$ENV{S3_REGION}', s3_prefix '$prefix', s3_addressing 'path',
  schema '$schema'$more);
CREATE USER MAPPING FOR CURRENT_USER SERVER $name OPTIONS (
  user '$ENV{RS_USER}', password '$ENV{RS_PASSWORD}',
  aws_access_key_id '$ENV{AWS_ACCESS_KEY_ID}',
  aws_secret_access_key '$ENV{AWS_SECRET_ACCESS_KEY}');
};
}

push our @EXPORT, qw(preloaded_node wait_until);

# A started node with the library preloaded (so the scheduler runs) and
# redshift_fdw.max_workers as given.
sub preloaded_node
{
	my ($name, $max_workers) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'redshift_fdw'
redshift_fdw.max_workers = $max_workers
log_statement = 'none'
});
	$node->start;
	return $node;
}

# Waits (up to $secs s, default 60) until $check->() is true; returns
# whether it became true.
sub wait_until
{
	my ($check, $secs) = @_;
	for (1 .. 4 * ($secs // 60))
	{
		return 1 if $check->();
		sleep 0.25;
	}
	return 0;
}

1;
