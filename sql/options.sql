--
-- Option validation: unknown options list the valid ones, bad values say why.
--
CREATE EXTENSION redshift_fdw;

-- wrapper: no options
ALTER FOREIGN DATA WRAPPER redshift_fdw OPTIONS (ADD host 'x');

-- server
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (hostname 'x');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (port '0');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (port '65536');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (port 'abc');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (host '');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (sslmode 'sometimes');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (connect_timeout '-1');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (fetch_size '0');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (statement_timeout '30s');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (user 'u');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (s3_endpoint 'ftp://x');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (s3_addressing 'subdomain');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (s3_bucket '');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (staging_compression 'lzop');
CREATE SERVER s_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (aws_access_key_id 'x');
CREATE SERVER s_ok FOREIGN DATA WRAPPER redshift_fdw OPTIONS (
  host 'example.invalid', port '5439', dbname 'dev', sslmode 'require',
  sslrootcert '/nonexistent/root.crt', connect_timeout '10',
  application_name 'etl', fetch_size '5000', statement_timeout '60000',
  s3_endpoint 'https://s3.eu-west-1.amazonaws.com', s3_bucket 'staging',
  s3_region 'eu-west-1', s3_prefix 'redshift_fdw/', s3_addressing 'virtual',
  staging_compression 'GZIP');
ALTER SERVER s_ok OPTIONS (SET port 'x');

-- user mapping
CREATE USER MAPPING FOR CURRENT_USER SERVER s_ok OPTIONS (host 'x');
CREATE USER MAPPING FOR CURRENT_USER SERVER s_ok OPTIONS (password_required 'maybe');
CREATE USER MAPPING FOR CURRENT_USER SERVER s_ok OPTIONS (user 'u', password 'p', password_required 'false',
  aws_access_key_id 'AKIA0000', aws_secret_access_key 's', aws_session_token 't');
CREATE ROLE rsfdw_nobody;
GRANT USAGE ON FOREIGN SERVER s_ok TO rsfdw_nobody;
SET ROLE rsfdw_nobody;
CREATE USER MAPPING FOR CURRENT_USER SERVER s_ok OPTIONS (user 'u', password_required 'false');
CREATE USER MAPPING FOR CURRENT_USER SERVER s_ok OPTIONS (user 'u');
RESET ROLE;

-- foreign table and column
CREATE FOREIGN TABLE ft_bad (a int) SERVER s_ok OPTIONS (schema 'x');
CREATE FOREIGN TABLE ft_bad (a int) SERVER s_ok OPTIONS (fetch_size '0');
CREATE FOREIGN TABLE ft_bad (a int) SERVER s_ok OPTIONS (query 'DELETE FROM t');
CREATE FOREIGN TABLE ft_bad (a int) SERVER s_ok OPTIONS (query 'SELECT 1', table_name 't');
CREATE FOREIGN TABLE ft_bad (a int) SERVER s_ok OPTIONS (key '');
CREATE FOREIGN TABLE ft_bad (a int) SERVER s_ok OPTIONS (key 'a,,b');
CREATE FOREIGN TABLE ft_bad (a int OPTIONS (name 'x')) SERVER s_ok;
CREATE FOREIGN TABLE ft_ok (a int OPTIONS (column_name 'A'), b text) SERVER s_ok
  OPTIONS (schema_name 'sales', table_name 'orders', fetch_size '100', key 'a, b');
CREATE FOREIGN TABLE ft_q (a int) SERVER s_ok OPTIONS (query '  (SELECT 1 AS a)');
CREATE FOREIGN TABLE ft_w (a int) SERVER s_ok OPTIONS (query 'WITH x AS (SELECT 1 AS a) SELECT a FROM x');

DROP EXTENSION redshift_fdw CASCADE;
DROP ROLE rsfdw_nobody;
