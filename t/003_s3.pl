# The S3 client against the test bed's SigV4-verifying endpoint: multipart
# round trip, errors, retries, cancel, and the credential chain (user
# mapping, then the server's environment, then the shared files).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Digest::SHA;
use Time::HiRes qw(time sleep);
use FindBin;
use lib $FindBin::Bin;
use RsfdwTest;

plan skip_all => 'needs the test bed (S3_ENDPOINT, RS_FAULT_FILE)'
  unless $ENV{S3_ENDPOINT} && $ENV{RS_FAULT_FILE};

my %bed = map { $_ => $ENV{$_} } qw(S3_ENDPOINT S3_BUCKET S3_REGION
  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY TEST_SESSION_KEY_ID
  TEST_SESSION_SECRET TEST_SESSION_TOKEN RS_FAULT_FILE);
my $prefix = "tap-$$";
my $dir = PostgreSQL::Test::Utils::tempdir;

# The server process sees only the AWS variables a test sets.
delete $ENV{$_}
  for qw(AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  AWS_REGION AWS_DEFAULT_REGION AWS_S3_BUCKET_NAME AWS_PROFILE
  AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE);
$ENV{HOME} = $dir;    # no ~/.aws of the machine

my $node = PostgreSQL::Test::Cluster->new('s3');
$node->init;
# statements carry test secrets; run-tests checks that no log holds them
$node->append_conf('postgresql.conf', "log_statement = 'none'");
$node->start;

sub sql { return $node->safe_psql('postgres', $_[0]); }


# Multipart uploads in progress under our prefix, listed through the
# endpoint (ListMultipartUploads) with the test bed's own credentials.
sub uploads_in_progress
{
	local $ENV{AWS_ACCESS_KEY_ID} = $bed{AWS_ACCESS_KEY_ID};
	local $ENV{AWS_SECRET_ACCESS_KEY} = $bed{AWS_SECRET_ACCESS_KEY};
	my ($out) = run_command([
		'/usr/bin/python3', '-c',
		'import os, boto3, botocore.config as c; '
		  . "s = boto3.client('s3', endpoint_url='$bed{S3_ENDPOINT}', "
		  . "region_name='$bed{S3_REGION}', "
		  . "config=c.Config(s3={'addressing_style': 'path'})); "
		  . "print(len(s.list_multipart_uploads(Bucket='$bed{S3_BUCKET}', "
		  . "Prefix='$prefix/').get('Uploads', [])))" ]);
	chomp $out;
	return $out;
}

sub random_file
{
	my ($path, $mib) = @_;
	run_command([ 'dd', 'if=/dev/urandom', "of=$path", 'bs=1M',
		"count=$mib", 'status=none' ]);
	return Digest::SHA->new(256)->addfile($path)->hexdigest;
}

sql(qq{
CREATE EXTENSION redshift_fdw;
CREATE SERVER s3 FOREIGN DATA WRAPPER redshift_fdw OPTIONS (
  s3_endpoint '$bed{S3_ENDPOINT}', s3_bucket '$bed{S3_BUCKET}',
  s3_region '$bed{S3_REGION}', s3_prefix '$prefix');
CREATE USER MAPPING FOR CURRENT_USER SERVER s3 OPTIONS (
  aws_access_key_id '$bed{AWS_ACCESS_KEY_ID}',
  aws_secret_access_key '$bed{AWS_SECRET_ACCESS_KEY}');
});

# --- s3_check ------------------------------------------------------------
is(sql("SELECT string_agg(step || '=' || ok, ' ' ORDER BY step) "
	  . "FROM redshift_fdw.s3_check('s3')"),
	's3 client=true s3 delete=true s3 get=true s3 list=true s3 put=true',
	's3_check: put, get, list and delete a probe');
is(sql("SELECT count(*) FROM redshift_fdw.s3_list('s3', 'redshift_fdw_probe/')"),
	'0', 'the probe is gone');

# check() runs the S3 steps after the Redshift ones when S3 is configured
SKIP:
{
	skip 'no simulator in the environment', 1 unless $ENV{RS_HOST};
	sql(qq{
CREATE SERVER rs_s3 FOREIGN DATA WRAPPER redshift_fdw OPTIONS (
  host '$ENV{RS_HOST}', port '$ENV{RS_PORT}', dbname '$ENV{RS_DB}',
  s3_endpoint '$bed{S3_ENDPOINT}', s3_bucket '$bed{S3_BUCKET}',
  s3_region '$bed{S3_REGION}', s3_prefix '$prefix');
CREATE USER MAPPING FOR CURRENT_USER SERVER rs_s3 OPTIONS (
  user '$ENV{RS_USER}', password '$ENV{RS_PASSWORD}',
  aws_access_key_id '$bed{AWS_ACCESS_KEY_ID}',
  aws_secret_access_key '$bed{AWS_SECRET_ACCESS_KEY}');
});
	is(sql("SELECT string_agg(step || '=' || ok, ', ') FROM redshift_fdw.check('rs_s3')"),
		'connect=true, redshift=true, list schemas=true, select permission=true, '
		  . 'target schema=true, checkpoint table=true, '
		  . 's3 client=true, s3 put=true, s3 get=true, s3 list=true, s3 delete=true',
		'check() includes the materialization and S3 steps');
}

# --- 64 MiB multipart round trip -----------------------------------------
my $sha = random_file("$dir/in.bin", 64);
is(sql("SELECT redshift_fdw.s3_put_file('s3', '$dir/in.bin', 'big/in.bin')"),
	64 * 1024 * 1024, 'uploaded 64 MiB (8 parts)');
is(sql("SELECT size FROM redshift_fdw.s3_list('s3', 'big/')"),
	64 * 1024 * 1024, 'listed with its size');
is(sql("SELECT redshift_fdw.s3_get_file('s3', 'big/in.bin', '$dir/out.bin')"),
	64 * 1024 * 1024, 'downloaded 64 MiB');
is(Digest::SHA->new(256)->addfile("$dir/out.bin")->hexdigest,
	$sha, 'SHA-256 of the download equals the upload');
is(uploads_in_progress(), '0', 'no multipart upload left behind');

# --- more than one page of keys: ListObjectsV2 continuation, DeleteObjects
# batches of 1000
open(my $small, '>', "$dir/small.txt") or die $!;
print $small "x";
close $small;
is(sql("SELECT count(redshift_fdw.s3_put_file('s3', '$dir/small.txt', 'many/' || g)) "
	  . "FROM generate_series(1, 1005) g"), '1005', 'uploaded 1005 small objects');
is(sql("SELECT count(*) FROM redshift_fdw.s3_list('s3', 'many/')"), '1005',
	'all 1005 listed (two pages)');
is(sql("SELECT redshift_fdw.s3_delete('s3', ARRAY(SELECT key FROM "
	  . "redshift_fdw.s3_list('s3', 'many/')))"), '1005', 'deleted in two batches');
is(sql("SELECT count(*) FROM redshift_fdw.s3_list('s3', 'many/')"), '0',
	'none left');

# --- virtual-hosted addressing (bucket in the host name) -------------------
(my $vhost_endpoint = $bed{S3_ENDPOINT}) =~ s/127\.0\.0\.1/localhost/;
sql("CREATE SERVER vhost FOREIGN DATA WRAPPER redshift_fdw OPTIONS ("
	  . "s3_endpoint '$vhost_endpoint', s3_bucket '$bed{S3_BUCKET}', "
	  . "s3_region '$bed{S3_REGION}', s3_prefix '$prefix', s3_addressing 'virtual')");
sql("CREATE USER MAPPING FOR CURRENT_USER SERVER vhost OPTIONS ("
	  . "aws_access_key_id '$bed{AWS_ACCESS_KEY_ID}', "
	  . "aws_secret_access_key '$bed{AWS_SECRET_ACCESS_KEY}')");
is(sql("SELECT bool_and(ok) FROM redshift_fdw.s3_check('vhost')"), 't',
	'virtual-hosted addressing (bucket.localhost) works');
is(sql("SELECT redshift_fdw.s3_put_file('vhost', '$dir/in.bin', 'vhost.bin')"),
	64 * 1024 * 1024, 'multipart upload with virtual-hosted addressing');
is(sql("SELECT size FROM redshift_fdw.s3_list('s3', 'vhost.bin')"),
	64 * 1024 * 1024, 'and the object is where path-style addressing sees it');

# --- a bucket that does not exist ------------------------------------------
sql("CREATE SERVER nobucket FOREIGN DATA WRAPPER redshift_fdw OPTIONS ("
	  . "s3_endpoint '$bed{S3_ENDPOINT}', s3_bucket 'no-such-bucket-rsfdw', "
	  . "s3_region '$bed{S3_REGION}')");
sql("CREATE USER MAPPING FOR CURRENT_USER SERVER nobucket OPTIONS ("
	  . "aws_access_key_id '$bed{AWS_ACCESS_KEY_ID}', "
	  . "aws_secret_access_key '$bed{AWS_SECRET_ACCESS_KEY}')");
is(sql("SELECT ok FROM redshift_fdw.s3_check('nobucket') WHERE step = 's3 client'"),
	'f', 'check: a missing bucket fails the first step');
like(sql_error($node, "SELECT * FROM redshift_fdw.s3_list('nobucket')"),
	qr/NoSuchBucket \(HTTP 404\).*HINT:.*s3_bucket/s, 'NoSuchBucket with a hint');

# --- errors --------------------------------------------------------------
sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3 "
	  . "OPTIONS (SET aws_secret_access_key 'not-the-secret-9f8e7d')");
my $err = sql_error($node, "SELECT redshift_fdw.s3_put_file('s3', '$dir/in.bin', 'x.bin')");
like($err, qr/SignatureDoesNotMatch \(HTTP 403\)/, 'wrong secret: SignatureDoesNotMatch');
like($err, qr/HINT:.*aws_secret_access_key/, 'with a hint');
unlike($err, qr/not-the-secret-9f8e7d|\Q$bed{AWS_SECRET_ACCESS_KEY}\E/,
	'the error shows no secret');

sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3 "
	  . "OPTIONS (SET aws_secret_access_key '$bed{AWS_SECRET_ACCESS_KEY}', "
	  . "SET aws_access_key_id 'AKIANOSUCHKEY0000000')");
my $start = time;
$err = sql_error($node, "SELECT * FROM redshift_fdw.s3_list('s3')");
my $elapsed = time - $start;
like($err, qr/InvalidAccessKeyId \(HTTP 403\)/, 'unknown key: InvalidAccessKeyId');
cmp_ok($elapsed, '<', 1, "a permanent 403 fails fast (${elapsed}s)");
unlike($err, qr/after \d+ attempts/, 'and is not retried');
sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3 "
	  . "OPTIONS (SET aws_access_key_id '$bed{AWS_ACCESS_KEY_ID}')");

# --- retries -------------------------------------------------------------
set_faults('{"faults": [{"kind": "s3_error", "nth": 1, "status": 503, "count": 2}]}');
is(sql("SELECT redshift_fdw.s3_put_file('s3', '$dir/in.bin', 'retried.bin')"),
	64 * 1024 * 1024, 'two 503 SlowDown answers are retried and the upload succeeds');
set_faults('{"faults": [{"kind": "s3_error", "nth": 1, "status": 500, "count": 1}]}');
is(sql("SELECT count(*) FROM redshift_fdw.s3_list('s3', 'retried')"), '1',
	'a 500 is retried');
set_faults('{"faults": [{"kind": "s3_error", "nth": 1, "status": 503, "count": 50}]}');
$err = sql_error($node, "SELECT * FROM redshift_fdw.s3_list('s3')");
like($err, qr/SlowDown \(HTTP 503\)/, 'persistent 503: SlowDown reported');
like($err, qr/after 6 attempts/, 'after a bounded number of attempts');
set_faults('{"faults": []}');

# --- cancel a large upload -----------------------------------------------
random_file("$dir/huge.bin", 256);
my ($out, $stderr) = ('', '');
my $h = IPC::Run::start(
	[ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
		"SELECT redshift_fdw.s3_put_file('s3', '$dir/huge.bin', 'huge.bin')" ],
	'>', \$out, '2>', \$stderr);
my $seen = 0;
for (1 .. 200)
{
	if (uploads_in_progress() > 0) { $seen = 1; last; }
	sleep 0.05;
}
ok($seen, 'the large upload is under way (multipart upload listed)');
my $pid = sql("SELECT pid FROM pg_stat_activity WHERE query LIKE '%huge.bin%' "
	  . "AND pid <> pg_backend_pid()");
$start = time;
sql("SELECT pg_cancel_backend($pid)");
while ($h->pumpable && time - $start < 10) { $h->pump_nb; sleep 0.02; }
$h->kill_kill if $h->pumpable;
$h->finish;
$elapsed = time - $start;
cmp_ok($elapsed, '<', 2, "cancel returned in ${elapsed}s");
like($stderr, qr/canceling statement due to user request/, 'cancelled');
is(uploads_in_progress(), '0', 'the multipart upload was aborted: no parts left');
is(sql("SELECT count(*) FROM redshift_fdw.s3_list('s3', 'huge')"), '0',
	'no object was created');

# --- credential chain ----------------------------------------------------
# environment (superuser, no keys in the mapping); region and bucket too
$ENV{AWS_ACCESS_KEY_ID} = $bed{AWS_ACCESS_KEY_ID};
$ENV{AWS_SECRET_ACCESS_KEY} = $bed{AWS_SECRET_ACCESS_KEY};
$ENV{AWS_REGION} = $bed{S3_REGION};
$ENV{AWS_S3_BUCKET_NAME} = $bed{S3_BUCKET};
$node->restart;
sql(qq{
CREATE SERVER s3env FOREIGN DATA WRAPPER redshift_fdw OPTIONS (
  s3_endpoint '$bed{S3_ENDPOINT}', s3_prefix '$prefix');
CREATE USER MAPPING FOR CURRENT_USER SERVER s3env;
});
like(sql("SELECT detail FROM redshift_fdw.s3_check('s3env') WHERE step = 's3 client'"),
	qr/credentials from the environment; staging at s3:\/\/$bed{S3_BUCKET}\/$prefix/,
	'environment credentials, bucket from AWS_S3_BUCKET_NAME');
is(sql("SELECT bool_and(ok) FROM redshift_fdw.s3_check('s3env')"), 't',
	'and they work (region from AWS_REGION)');

# the user mapping comes first
sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3env OPTIONS ("
	  . "ADD aws_access_key_id '$bed{AWS_ACCESS_KEY_ID}', "
	  . "ADD aws_secret_access_key 'wrong-secret-from-mapping')");
like(sql_error($node, "SELECT * FROM redshift_fdw.s3_list('s3env')"),
	qr/SignatureDoesNotMatch/, 'user mapping keys win over the environment');
sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3env OPTIONS ("
	  . "DROP aws_access_key_id, DROP aws_secret_access_key)");

# a non-superuser may not borrow the server's identity
sql(qq{
CREATE ROLE s3user LOGIN;
GRANT USAGE ON FOREIGN SERVER s3env TO s3user;
CREATE USER MAPPING FOR s3user SERVER s3env;
});
my ($ret, $o, $e) = $node->psql('postgres',
	"SELECT * FROM redshift_fdw.s3_list('s3env')",
	extra_params => [ '-U', 's3user' ]);
like($e, qr/AWS credentials are required in the user mapping/,
	'non-superuser without keys is refused the environment credentials');
($ret, $o, $e) = $node->psql('postgres',
	"SELECT redshift_fdw.s3_put_file('s3env', '$dir/in.bin', 'x')",
	extra_params => [ '-U', 's3user' ]);
like($e, qr/permission denied to read server files/,
	'non-superuser may not upload server files');

# shared files, with a profile; region from the config file
delete $ENV{$_}
  for qw(AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION);
open(my $cred, '>', "$dir/credentials") or die $!;
print $cred "[default]\naws_access_key_id = AKIADEFAULTPROFILE00\n"
  . "aws_secret_access_key = wrong\n\n[tap]\n"
  . "aws_access_key_id = $bed{AWS_ACCESS_KEY_ID}\n"
  . "aws_secret_access_key = $bed{AWS_SECRET_ACCESS_KEY}\n";
close $cred;
open(my $conf, '>', "$dir/config") or die $!;
print $conf "[default]\nregion = eu-west-1\n\n[profile tap]\nregion = $bed{S3_REGION}\n";
close $conf;
$ENV{AWS_SHARED_CREDENTIALS_FILE} = "$dir/credentials";
$ENV{AWS_CONFIG_FILE} = "$dir/config";
$ENV{AWS_PROFILE} = 'tap';
$node->restart;
like(sql("SELECT detail FROM redshift_fdw.s3_check('s3env') WHERE step = 's3 client'"),
	qr/credentials from the shared credentials file/, 'shared credentials file');
is(sql("SELECT bool_and(ok) FROM redshift_fdw.s3_check('s3env')"), 't',
	'profile "tap" with its region from the config file works');

# session tokens
sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3 OPTIONS ("
	  . "SET aws_access_key_id '$bed{TEST_SESSION_KEY_ID}', "
	  . "SET aws_secret_access_key '$bed{TEST_SESSION_SECRET}', "
	  . "ADD aws_session_token '$bed{TEST_SESSION_TOKEN}')");
is(sql("SELECT bool_and(ok) FROM redshift_fdw.s3_check('s3')"), 't',
	'temporary credentials with a session token');
sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3 OPTIONS (DROP aws_session_token)");
like(sql_error($node, "SELECT * FROM redshift_fdw.s3_list('s3')"), qr/InvalidToken/,
	'without the token: InvalidToken');

# nothing anywhere: no region, then (with a region) no credentials
delete $ENV{$_} for qw(AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE AWS_PROFILE);
$node->restart;
like(sql_error($node, "SELECT * FROM redshift_fdw.s3_list('s3env')"),
	qr/no AWS region for server "s3env".*HINT:.*s3_region/s,
	'no region: a clear error with a hint');
$ENV{AWS_REGION} = $bed{S3_REGION};
$node->restart;
like(sql_error($node, "SELECT * FROM redshift_fdw.s3_list('s3env')"),
	qr/no AWS credentials found.*DETAIL:.*user mapping.*environment/s,
	'no credentials: a clear error saying where it looked');

# clean up what we wrote, and check the server log holds no secret
sql("ALTER USER MAPPING FOR CURRENT_USER SERVER s3 OPTIONS ("
	  . "SET aws_access_key_id '$bed{AWS_ACCESS_KEY_ID}', "
	  . "SET aws_secret_access_key '$bed{AWS_SECRET_ACCESS_KEY}')");
sql("SELECT redshift_fdw.s3_delete('s3', ARRAY(SELECT key FROM redshift_fdw.s3_list('s3')))");
is(sql("SELECT count(*) FROM redshift_fdw.s3_list('s3')"), '0', 'cleaned up');
$node->stop;
my $log = slurp_file($node->logfile);
for my $secret ($bed{AWS_SECRET_ACCESS_KEY}, $bed{TEST_SESSION_SECRET},
	$bed{TEST_SESSION_TOKEN}, 'wrong-secret-from-mapping', 'not-the-secret-9f8e7d')
{
	ok(index($log, $secret) < 0, 'server log free of a test secret');
}
done_testing();
