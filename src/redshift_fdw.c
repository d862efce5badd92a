/*
 * redshift_fdw.c
 *		Entry points of the redshift_fdw extension: module initialisation,
 *		the foreign-data wrapper handler and validator.
 *
 * The planner and executor callbacks live in scan.c, discovery in
 * import.c; this file only wires them into the FdwRoutine.
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "fmgr.h"
#include "utils/guc.h"
#include "miscadmin.h"
#include "foreign/fdwapi.h"
#include "utils/builtins.h"

#include "redshift_fdw.h"
#include "import.h"
#include "option.h"
#include "scan.h"
#include "materialize.h"
#include "scheduler.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(redshift_fdw_handler);
PG_FUNCTION_INFO_V1(redshift_fdw_validator);
PG_FUNCTION_INFO_V1(redshift_fdw_library_version);

/*
 * Module load: the scheduler's settings always; its launcher and shared
 * memory only when the library is preloaded (the wrapper itself needs
 * neither).
 */
void _PG_init(void);

void
_PG_init(void)
{
	redshift_scheduler_define_gucs();
	redshift_materialize_define_gucs();
	/* after every definition: a value SET earlier is kept only if defined */
	MarkGUCPrefixReserved("redshift_fdw");
	if (process_shared_preload_libraries_in_progress)
		redshift_scheduler_register();
}

/*
 * The FDW handler: returns the callbacks of this wrapper.
 */
Datum
redshift_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	redshift_scan_routine(routine);
	routine->ImportForeignSchema = redshift_import_foreign_schema;

	PG_RETURN_POINTER(routine);
}

/*
 * The FDW validator: checks the options of CREATE/ALTER FOREIGN DATA
 * WRAPPER, SERVER, USER MAPPING and FOREIGN TABLE.
 */
Datum
redshift_fdw_validator(PG_FUNCTION_ARGS)
{
	List *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid catalog = PG_GETARG_OID(1);

	redshift_validate_options(options, catalog);

	PG_RETURN_VOID();
}

/*
 * The version compiled into the shared library, so that a mismatch with
 * the installed SQL objects can be seen.
 */
Datum
redshift_fdw_library_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(REDSHIFT_FDW_VERSION));
}
