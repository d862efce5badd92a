--
-- Extension lifecycle: CREATE EXTENSION makes the schema, the wrapper and
-- its functions, all members of the extension; DROP EXTENSION removes them.
--
CREATE EXTENSION redshift_fdw;

SELECT e.extversion, e.extrelocatable,
       redshift_fdw.library_version() = e.extversion AS library_matches
  FROM pg_extension e WHERE e.extname = 'redshift_fdw';

SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc
  FROM pg_foreign_data_wrapper WHERE fdwname = 'redshift_fdw';

-- Every object the extension owns.
SELECT pg_describe_object(classid, objid, objsubid) AS member
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'redshift_fdw')
   AND deptype = 'e'
 ORDER BY 1;

--
-- Options: each context accepts only the options listed for it.
--
CREATE SERVER rs_bad FOREIGN DATA WRAPPER redshift_fdw OPTIONS (nonsense 'x');
CREATE SERVER rs FOREIGN DATA WRAPPER redshift_fdw;
CREATE USER MAPPING FOR CURRENT_USER SERVER rs OPTIONS (bogus 'x');
CREATE FOREIGN TABLE ft (a int) SERVER rs OPTIONS (nope '1');
CREATE FOREIGN TABLE ft (a int OPTIONS (nope '1')) SERVER rs;
ALTER FOREIGN DATA WRAPPER redshift_fdw OPTIONS (ADD whatever 'x');

CREATE FOREIGN TABLE ft (a int) SERVER rs;

--
-- DROP EXTENSION: refused while servers depend on it, complete with CASCADE.
--
DROP EXTENSION redshift_fdw;
DROP EXTENSION redshift_fdw CASCADE;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'redshift_fdw';
SELECT count(*) AS wrappers FROM pg_foreign_data_wrapper
 WHERE fdwname = 'redshift_fdw';
SELECT count(*) AS functions FROM pg_proc WHERE proname LIKE 'redshift_fdw%';

-- And it can be created again.
CREATE EXTENSION redshift_fdw;
DROP EXTENSION redshift_fdw;
