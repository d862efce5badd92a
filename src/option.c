/*
 * option.c
 *		Table-driven validation of redshift_fdw options.
 *
 * Every option the wrapper understands is listed once in option_table,
 * with the catalog it may be attached to.  An unknown option is rejected
 * with the list of options valid in that context, as postgres_fdw does.
 * Later subsystems (connections, S3, capture) add their rows here.
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "catalog/pg_attribute.h"
#include "commands/defrem.h"
#include "lib/stringinfo.h"

#include "option.h"

/* One option the wrapper accepts, and where it may appear. */
typedef struct RedshiftOption
{
	const char *name;
	/* ForeignServerRelationId, UserMappingRelationId, ... */
	Oid catalog;
} RedshiftOption;

/* The options accepted so far; terminated by a NULL name. */
static const RedshiftOption option_table[] = {{NULL, InvalidOid}};

/*
 * Is the named option valid for the given catalog?  Used by the validator
 * and to build the list shown in the hint of an unknown-option error.
 */
static bool
option_is_valid(const char *name, Oid catalog)
{
	const RedshiftOption *opt;

	for (opt = option_table; opt->name != NULL; opt++)
	{
		if (opt->catalog == catalog && strcmp(opt->name, name) == 0)
			return true;
	}
	return false;
}

/*
 * The comma-separated names of the options valid for a catalog, for the
 * hint of an unknown-option error.
 */
static char *
valid_option_names(Oid catalog)
{
	const RedshiftOption *opt;
	StringInfoData buf;

	initStringInfo(&buf);
	for (opt = option_table; opt->name != NULL; opt++)
	{
		if (opt->catalog != catalog)
			continue;
		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", opt->name);
	}
	return buf.data;
}

/*
 * Validate a list of DefElem options for the given catalog, raising an
 * error that names the offending option and lists the valid ones.
 */
void
redshift_validate_options(List *options, Oid catalog)
{
	ListCell *cell;

	foreach (cell, options)
	{
		DefElem *def = (DefElem *) lfirst(cell);

		if (!option_is_valid(def->defname, catalog))
		{
			char *valid = valid_option_names(catalog);

			ereport(
				ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\"", def->defname),
				 valid[0] != '\0'
					 ? errhint("Valid options in this context are: %s", valid)
					 : errhint("There are no valid options in this "
							   "context.")));
		}
	}
}
