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
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/varlena.h"
#include <limits.h>

#include "option.h"
#include "schedule.h"
#include "stage_format.h"

/* How an option's value is checked. */
typedef enum RedshiftOptionKind
{
	OPT_STRING,		 /* any non-empty string */
	OPT_INT,		 /* integer within [min, max] */
	OPT_BOOL,		 /* boolean */
	OPT_SSLMODE,	 /* one of libpq's sslmode values */
	OPT_COLUMNS,	 /* comma-separated list of column names */
	OPT_URL,		 /* http:// or https:// URL */
	OPT_ADDRESSING,	 /* S3 addressing style: path or virtual */
	OPT_COMPRESSION, /* staging files: zstd, gzip or none */
	OPT_SCHEDULE,	 /* a capture schedule: Go duration or daily at HH:MMZ */
	OPT_QUERY		 /* a remote SELECT */
} RedshiftOptionKind;

/* One option the wrapper accepts, and where it may appear. */
typedef struct RedshiftOption
{
	const char *name;
	/* ForeignServerRelationId, UserMappingRelationId, ... */
	Oid catalog;
	RedshiftOptionKind kind;
	int min;
	int max;
	bool superuser_only; /* only a superuser may set it to false */
} RedshiftOption;

/* Every option the wrapper accepts; terminated by a NULL name. */
static const RedshiftOption option_table[] = {
	/* connection (server) */
	{"host", ForeignServerRelationId, OPT_STRING},
	{"port", ForeignServerRelationId, OPT_INT, 1, 65535},
	{"dbname", ForeignServerRelationId, OPT_STRING},
	{"sslmode", ForeignServerRelationId, OPT_SSLMODE},
	{"sslrootcert", ForeignServerRelationId, OPT_STRING},
	{"connect_timeout", ForeignServerRelationId, OPT_INT, 0, 3600},
	{"application_name", ForeignServerRelationId, OPT_STRING},
	{"fetch_size", ForeignServerRelationId, OPT_INT, 1, 1000000},
	{"statement_timeout", ForeignServerRelationId, OPT_INT, 0, INT_MAX},
	/* S3 staging (server) */
	{"s3_endpoint", ForeignServerRelationId, OPT_URL},
	{"s3_bucket", ForeignServerRelationId, OPT_STRING},
	{"s3_region", ForeignServerRelationId, OPT_STRING},
	{"s3_prefix", ForeignServerRelationId, OPT_STRING},
	{"s3_addressing", ForeignServerRelationId, OPT_ADDRESSING},
	{"staging_compression", ForeignServerRelationId, OPT_COMPRESSION},
	/* capture defaults (server) */
	{"poll", ForeignServerRelationId, OPT_SCHEDULE},
	/* materialization (server) */
	{"schema", ForeignServerRelationId, OPT_STRING},
	{"iam_role", ForeignServerRelationId, OPT_STRING},
	{"update_delay", ForeignServerRelationId, OPT_SCHEDULE},
	{"source_tag", ForeignServerRelationId, OPT_STRING},
	/* authentication (user mapping) */
	{"user", UserMappingRelationId, OPT_STRING},
	{"password", UserMappingRelationId, OPT_STRING},
	{"password_required", UserMappingRelationId, OPT_BOOL, 0, 0, true},
	{"aws_access_key_id", UserMappingRelationId, OPT_STRING},
	{"aws_secret_access_key", UserMappingRelationId, OPT_STRING},
	{"aws_session_token", UserMappingRelationId, OPT_STRING},
	/* foreign table */
	{"schema_name", ForeignTableRelationId, OPT_STRING},
	{"table_name", ForeignTableRelationId, OPT_STRING},
	{"query", ForeignTableRelationId, OPT_QUERY},
	{"fetch_size", ForeignTableRelationId, OPT_INT, 1, 1000000},
	{"key", ForeignTableRelationId, OPT_COLUMNS},
	/* column */
	{"column_name", AttributeRelationId, OPT_STRING},
	{NULL, InvalidOid}};

/* The option table entry for a name in a catalog, or NULL. */
static const RedshiftOption *
find_option(const char *name, Oid catalog)
{
	const RedshiftOption *opt;

	for (opt = option_table; opt->name != NULL; opt++)
	{
		if (opt->catalog == catalog && strcmp(opt->name, name) == 0)
			return opt;
	}
	return NULL;
}

/*
 * The error of an option value that is not valid: the option and value,
 * and what is wrong (detail) or what to write instead (hint).
 */
static void
pg_attribute_noreturn()
	invalid_option_value(const RedshiftOption *opt, const char *value,
						 const char *detail, const char *hint)
{
	ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					errmsg("invalid value for option \"%s\": \"%s\"",
						   opt->name, value),
					detail ? errdetail("%s", detail) : 0,
					hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/*
 * Check one option value against its kind, raising an error that names
 * the option and says what is wrong.
 */
static void
check_option_value(const RedshiftOption *opt, DefElem *def)
{
	char *value = defGetString(def);

	switch (opt->kind)
	{
		case OPT_STRING:
			if (value[0] == '\0' && strcmp(opt->name, "password") != 0)
				ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
								errmsg("option \"%s\" must not be empty",
									   opt->name)));
			break;
		case OPT_INT:
		{
			int number;

			if (!parse_int(value, &number, 0, NULL) || number < opt->min ||
				number > opt->max)
				invalid_option_value(
					opt, value,
					psprintf("The value must be an integer from %d to %d.",
							 opt->min, opt->max),
					NULL);
			break;
		}
		case OPT_BOOL:
		{
			bool flag;

			if (!parse_bool(value, &flag))
				invalid_option_value(opt, value,
									 "The value must be a boolean.", NULL);
			if (opt->superuser_only && !flag && !superuser())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("only a superuser may set option \"%s\" "
								"to false",
								opt->name)));
			break;
		}
		case OPT_SSLMODE:
			if (strcmp(value, "disable") != 0 && strcmp(value, "allow") != 0 &&
				strcmp(value, "prefer") != 0 &&
				strcmp(value, "require") != 0 &&
				strcmp(value, "verify-ca") != 0 &&
				strcmp(value, "verify-full") != 0)
				invalid_option_value(
					opt, value, NULL,
					"Valid values are disable, allow, prefer, "
					"require, verify-ca and verify-full.");
			break;
		case OPT_COLUMNS:
		{
			List *names;
			char *copy = pstrdup(value);

			if (!SplitIdentifierString(copy, ',', &names) ||
				list_length(names) == 0)
				invalid_option_value(opt, value, NULL,
									 "Give a comma-separated list of column "
									 "names, for example 'id' or "
									 "'tenant_id, id'.");
			break;
		}
		case OPT_URL:
			if (pg_strncasecmp(value, "http://", 7) != 0 &&
				pg_strncasecmp(value, "https://", 8) != 0)
				invalid_option_value(opt, value, NULL,
									 "Give a URL such as "
									 "https://s3.us-east-1.amazonaws.com or "
									 "http://127.0.0.1:9000.");
			break;
		case OPT_ADDRESSING:
			if (strcmp(value, "path") != 0 && strcmp(value, "virtual") != 0)
				invalid_option_value(opt, value, NULL,
									 "Valid values are path and virtual.");
			break;
		case OPT_COMPRESSION:
		{
			StageCompression compression;

			if (!stage_compression_parse(value, &compression))
				invalid_option_value(opt, value, NULL,
									 "Valid values are zstd, gzip and none.");
			break;
		}
		case OPT_SCHEDULE:
		{
			Schedule schedule;
			char errbuf[SCHEDULE_ERROR_MAX];

			if (!schedule_parse(value, &schedule, errbuf, sizeof(errbuf)))
				ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
								errmsg("invalid value for option \"%s\": %s",
									   opt->name, errbuf),
								errhint("Write a duration such as 30s, 5m, "
										"1h30m or 24h, or \"daily at HH:MMZ\" "
										"(UTC).")));
			break;
		}
		case OPT_QUERY:
		{
			const char *p = value;

			while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
				   *p == '(')
				p++;
			if (pg_strncasecmp(p, "select", 6) != 0 &&
				pg_strncasecmp(p, "with", 4) != 0)
				ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
								errmsg("option \"query\" must be a SELECT "
									   "statement"),
								errhint("The query is used as a subquery in "
										"FROM; write it as SELECT ... or "
										"WITH ... SELECT ...")));
			break;
		}
	}
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
	bool has_query = false;
	bool has_name = false;

	foreach (cell, options)
	{
		DefElem *def = (DefElem *) lfirst(cell);
		const RedshiftOption *opt = find_option(def->defname, catalog);

		if (opt == NULL)
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
		check_option_value(opt, def);
		if (strcmp(opt->name, "query") == 0)
			has_query = true;
		if (strcmp(opt->name, "schema_name") == 0 ||
			strcmp(opt->name, "table_name") == 0)
			has_name = true;
	}
	if (has_query && has_name)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("options \"query\" and \"schema_name\"/\"table_name\" "
						"cannot be used together"),
				 errhint("A foreign table reads either a remote table or a "
						 "remote query.")));
}

/*
 * The value of an option in a list of DefElems, or NULL when absent.
 */
char *
redshift_option_string(List *options, const char *name)
{
	ListCell *cell;

	foreach (cell, options)
	{
		DefElem *def = (DefElem *) lfirst(cell);

		if (strcmp(def->defname, name) == 0)
			return defGetString(def);
	}
	return NULL;
}

/*
 * An integer option's value, or the default when absent (the validator has
 * already checked the range).
 */
int
redshift_option_int(List *options, const char *name, int default_value)
{
	char *value = redshift_option_string(options, name);

	return value ? pg_strtoint32(value) : default_value;
}

/*
 * The values of the secret options (password, AWS keys and token) in an
 * options list, for redacting them from text that is kept or shown.
 */
List *
redshift_secret_option_values(List *options)
{
	static const char *const secret_names[] = {"password", "aws_access_key_id",
											   "aws_secret_access_key",
											   "aws_session_token"};
	List *values = NIL;
	ListCell *lc;

	foreach (lc, options)
	{
		DefElem *def = (DefElem *) lfirst(lc);
		size_t i;

		for (i = 0; i < lengthof(secret_names); i++)
			if (strcmp(def->defname, secret_names[i]) == 0)
				values = lappend(values, defGetString(def));
	}
	return values;
}
