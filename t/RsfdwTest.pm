# Helpers shared by the TAP tests that use the test bed (test/testbed env):
# fault rules for the simulator and the S3 gate, SQL on the simulator, and
# errors of a statement expected to fail.
package RsfdwTest;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Utils;

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

1;
