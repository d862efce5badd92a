/*
 * import.c
 *		IMPORT FOREIGN SCHEMA and redshift_fdw.discover().
 *
 * Both read svv_tables and svv_columns (which, unlike pg_attribute, include
 * late-binding views and external tables) and the informational primary
 * keys in pg_constraint.  Catalog queries touch only leader-node catalogs,
 * never user tables, as Redshift requires.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

#include "connection.h"
#include "import.h"
#include "option.h"
#include "typemap.h"

PG_FUNCTION_INFO_V1(redshift_fdw_discover);

/* Schemas that hold Redshift's own objects. */
#define SYSTEM_SCHEMAS                                                       \
	"'pg_catalog', 'pg_internal', 'information_schema', 'catalog_history', " \
	"'pg_toast', 'pg_automv'"

/*
 * Append "name IN ('a', 'b')" matching each given name as written and
 * lower-cased (Redshift folds unquoted and quoted names to lower case).
 */
static void
append_name_match(StringInfo buf, const char *column, List *names, bool negate)
{
	ListCell *lc;
	bool first = true;

	appendStringInfo(buf, " AND %s %sIN (", column, negate ? "NOT " : "");
	foreach (lc, names)
	{
		const char *name = lfirst(lc);
		char *lower = asc_tolower(name, strlen(name));

		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		redshift_append_string_literal(buf, name);
		appendStringInfoString(buf, ", ");
		redshift_append_string_literal(buf, lower);
	}
	appendStringInfoChar(buf, ')');
}

/*
 * The catalog query listing columns of tables (and views, if wanted) in
 * the given schemas (NIL: every non-system schema).  A plain PostgreSQL
 * peer has information_schema views of the same shape instead of svv_*.
 */
static char *
columns_query(RedshiftConn *rconn, List *schemas, bool include_views,
			  List *limit_to, List *except)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(
		&buf,
		"SELECT c.table_schema, c.table_name, t.table_type, c.column_name, "
		"c.data_type, c.character_maximum_length, c.numeric_precision, "
		"c.numeric_scale, c.is_nullable "
		"FROM %s c JOIN %s t "
		"ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
		"WHERE t.table_type IN ('BASE TABLE', 'EXTERNAL TABLE'",
		rconn->is_redshift ? "svv_columns" : "information_schema.columns",
		rconn->is_redshift ? "svv_tables" : "information_schema.tables");
	if (include_views)
		appendStringInfoString(&buf, ", 'VIEW'");
	appendStringInfoChar(&buf, ')');
	if (schemas != NIL)
		append_name_match(&buf, "c.table_schema", schemas, false);
	else
		appendStringInfoString(
			&buf, " AND c.table_schema NOT IN (" SYSTEM_SCHEMAS ")");
	if (limit_to != NIL)
		append_name_match(&buf, "c.table_name", limit_to, false);
	if (except != NIL)
		append_name_match(&buf, "c.table_name", except, true);
	appendStringInfoString(&buf, " ORDER BY c.table_schema, c.table_name, "
								 "c.ordinal_position");
	return buf.data;
}

/*
 * The catalog query listing primary-key columns (informational in
 * Redshift) with each key's column numbers, so they can be put in order.
 */
static char *
keys_query(List *schemas)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(
		&buf, "SELECT n.nspname, c.relname, a.attname, a.attnum, con.conkey "
			  "FROM pg_catalog.pg_constraint con "
			  "JOIN pg_catalog.pg_class c ON c.oid = con.conrelid "
			  "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
			  "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
			  "AND a.attnum = ANY (con.conkey) "
			  "WHERE con.contype = 'p'");
	if (schemas != NIL)
		append_name_match(&buf, "n.nspname", schemas, false);
	else
		appendStringInfoString(&buf,
							   " AND n.nspname NOT IN (" SYSTEM_SCHEMAS ")");
	return buf.data;
}

/*
 * The primary-key columns of schema.table in key order, from the result of
 * keys_query.
 */
static List *
primary_key_of(PGresult *keys, const char *schema, const char *table)
{
	int nkeys = keys ? PQntuples(keys) : 0;
	List *result = NIL;
	char *conkey = NULL;
	char *p;
	int i;

	for (i = 0; i < nkeys; i++)
	{
		if (strcmp(PQgetvalue(keys, i, 0), schema) == 0 &&
			strcmp(PQgetvalue(keys, i, 1), table) == 0)
		{
			conkey = PQgetvalue(keys, i, 4);
			break;
		}
	}
	if (conkey == NULL)
		return NIL;
	/* conkey looks like {3,1}: the key's column numbers in key order */
	for (p = conkey; *p; p++)
	{
		long attnum;
		char *end;

		if (*p < '0' || *p > '9')
			continue;
		attnum = strtol(p, &end, 10);
		for (i = 0; i < nkeys; i++)
		{
			if (strcmp(PQgetvalue(keys, i, 0), schema) == 0 &&
				strcmp(PQgetvalue(keys, i, 1), table) == 0 &&
				atol(PQgetvalue(keys, i, 3)) == attnum)
				result = lappend(result, pstrdup(PQgetvalue(keys, i, 2)));
		}
		p = end - 1;
	}
	return result;
}

/*
 * The local type for the column in row i of a columns_query result.
 */
static char *
local_type_of_row(PGresult *res, int i)
{
	return redshift_local_type_for(
		PQgetvalue(res, i, 4),
		PQgetisnull(res, i, 5) ? 0 : atoi(PQgetvalue(res, i, 5)),
		PQgetisnull(res, i, 6) ? 0 : atoi(PQgetvalue(res, i, 6)),
		PQgetisnull(res, i, 7) ? 0 : atoi(PQgetvalue(res, i, 7)));
}

/*
 * Does the schema exist remotely?  Tells "no such schema" apart from "no
 * tables" for IMPORT FOREIGN SCHEMA.
 */
static bool
schema_exists(RedshiftConn *rconn, const char *schema)
{
	StringInfoData buf;
	PGresult *res;
	bool found;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT 1 FROM pg_catalog.pg_namespace "
								 "WHERE true");
	append_name_match(&buf, "nspname", list_make1((char *) schema), false);
	res = redshift_exec(rconn, buf.data);
	found = PQntuples(res) > 0;
	PQclear(res);
	return found;
}

/*
 * A boolean option of IMPORT FOREIGN SCHEMA.
 */
static bool
import_option(ImportForeignSchemaStmt *stmt, const char *name, bool def)
{
	ListCell *lc;

	foreach (lc, stmt->options)
	{
		DefElem *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, name) == 0)
			return defGetBoolean(opt);
	}
	return def;
}

/*
 * Reject IMPORT options we do not know, listing the valid ones.
 */
static void
check_import_options(ImportForeignSchemaStmt *stmt)
{
	ListCell *lc;

	foreach (lc, stmt->options)
	{
		DefElem *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, "import_views") != 0 &&
			strcmp(opt->defname, "import_not_null") != 0 &&
			strcmp(opt->defname, "import_keys") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", opt->defname),
					 errhint("Valid options in this context are: "
							 "import_views, import_not_null, import_keys")));
		(void) defGetBoolean(opt);
	}
}

/*
 * ImportForeignSchema: one CREATE FOREIGN TABLE per remote table (and view
 * with import_views), columns typed by typemap.c, NOT NULL kept with
 * import_not_null, the primary key in the table's key option with
 * import_keys.
 */
List *
redshift_import_foreign_schema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	UserMapping *user = GetUserMapping(GetUserId(), serverOid);
	bool import_views;
	bool import_not_null;
	bool import_keys;
	List *names = NIL;
	List *commands = NIL;
	RedshiftConn *volatile rconn = NULL;
	PGresult *volatile cols = NULL;
	PGresult *volatile keys = NULL;
	ListCell *lc;

	check_import_options(stmt);
	import_views = import_option(stmt, "import_views", false);
	import_not_null = import_option(stmt, "import_not_null", true);
	import_keys = import_option(stmt, "import_keys", true);
	foreach (lc, stmt->table_list)
		names = lappend(names, ((RangeVar *) lfirst(lc))->relname);

	rconn = redshift_acquire_connection(user);
	PG_TRY();
	{
		List *schemas = list_make1(stmt->remote_schema);
		int n;
		int i = 0;

		cols = redshift_catalog_query(
			rconn,
			columns_query(
				rconn, schemas, import_views,
				stmt->list_type == FDW_IMPORT_SCHEMA_LIMIT_TO ? names : NIL,
				stmt->list_type == FDW_IMPORT_SCHEMA_EXCEPT ? names : NIL),
			false);
		if (import_keys)
			keys = redshift_catalog_query(rconn, keys_query(schemas), true);
		n = PQntuples(cols);
		if (n == 0 && !schema_exists(rconn, stmt->remote_schema))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
					 errmsg("schema \"%s\" does not exist on server \"%s\"",
							stmt->remote_schema, server->servername)));
		while (i < n)
		{
			const char *schema = PQgetvalue(cols, i, 0);
			const char *table = PQgetvalue(cols, i, 1);
			StringInfoData buf;
			List *key;
			bool first = true;

			initStringInfo(&buf);
			appendStringInfo(&buf, "CREATE FOREIGN TABLE %s (",
							 quote_identifier(table));
			for (; i < n && strcmp(PQgetvalue(cols, i, 1), table) == 0 &&
				   strcmp(PQgetvalue(cols, i, 0), schema) == 0;
				 i++)
			{
				const char *column = PQgetvalue(cols, i, 3);

				appendStringInfo(&buf, "%s\n  %s %s OPTIONS (column_name %s)",
								 first ? "" : ",", quote_identifier(column),
								 local_type_of_row(cols, i),
								 quote_literal_cstr(column));
				if (import_not_null &&
					strcmp(PQgetvalue(cols, i, 8), "NO") == 0)
					appendStringInfoString(&buf, " NOT NULL");
				first = false;
			}
			appendStringInfo(&buf,
							 "\n) SERVER %s OPTIONS (schema_name %s, "
							 "table_name %s",
							 quote_identifier(server->servername),
							 quote_literal_cstr(schema),
							 quote_literal_cstr(table));
			key = primary_key_of(keys, schema, table);
			if (key != NIL)
			{
				StringInfoData keybuf;
				ListCell *kc;

				initStringInfo(&keybuf);
				foreach (kc, key)
					appendStringInfo(&keybuf, "%s%s", keybuf.len ? ", " : "",
									 quote_identifier(lfirst(kc)));
				appendStringInfo(&buf, ", key %s",
								 quote_literal_cstr(keybuf.data));
			}
			appendStringInfoString(&buf, ")");
			commands = lappend(commands, buf.data);
		}
	}
	PG_FINALLY();
	{
		PQclear(cols);
		PQclear(keys);
		redshift_release_connection(rconn);
	}
	PG_END_TRY();
	return commands;
}

/*
 * A suggested cursor column for incremental capture: an update-timestamp
 * like column, else a single-column key.
 */
static const char *
suggest_cursor(PGresult *cols, int from, int to, List *key)
{
	static const char *const preferred[] = {
		"updated", "modified", "changed", "last_update", "_at", "time", NULL};
	int rank;
	int i;

	for (rank = 0; preferred[rank] != NULL; rank++)
	{
		for (i = from; i < to; i++)
		{
			const char *type = PQgetvalue(cols, i, 4);

			if (strncmp(type, "timestamp", 9) != 0 &&
				strcmp(type, "date") != 0)
				continue;
			if (strstr(PQgetvalue(cols, i, 3), preferred[rank]) != NULL)
				return PQgetvalue(cols, i, 3);
		}
	}
	if (list_length(key) == 1)
		return linitial(key);
	return NULL;
}

/*
 * Estimated rows per table from svv_table_info (NULL when the user may not
 * read it: it is restricted on some clusters).
 */
static PGresult *
table_rows(RedshiftConn *rconn, List *schemas)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT \"schema\", \"table\", tbl_rows "
								 "FROM svv_table_info WHERE true");
	if (schemas != NIL)
		append_name_match(&buf, "\"schema\"", schemas, false);
	return redshift_catalog_query(rconn, buf.data, true);
}

/*
 * redshift_fdw.discover(server, schemas, include_views): one row per table
 * or view with its columns (Redshift and local types, nullability),
 * primary key, a suggested cursor column and estimated rows.
 */
Datum
redshift_fdw_discover(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ForeignServer *server;
	UserMapping *user;
	List *volatile schemas = NIL;
	bool include_views = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	RedshiftConn *volatile rconn;
	PGresult *volatile cols = NULL;
	PGresult *volatile keys = NULL;
	PGresult *volatile sizes = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("server must not be null")));
	server = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	user = GetUserMapping(GetUserId(), server->serverid);
	if (!PG_ARGISNULL(1))
	{
		Datum *elems;
		bool *nulls;
		int count;
		int i;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, &nulls, &count);
		for (i = 0; i < count; i++)
			if (!nulls[i])
				schemas = lappend(schemas, TextDatumGetCString(elems[i]));
	}
	InitMaterializedSRF(fcinfo, 0);

	rconn = redshift_acquire_connection(user);
	PG_TRY();
	{
		int n;
		int i = 0;

		cols = redshift_catalog_query(
			rconn, columns_query(rconn, schemas, include_views, NIL, NIL),
			false);
		keys = redshift_catalog_query(rconn, keys_query(schemas), true);
		if (rconn->is_redshift)
			sizes = table_rows(rconn, schemas);
		n = PQntuples(cols);

		while (i < n)
		{
			const char *schema = PQgetvalue(cols, i, 0);
			const char *table = PQgetvalue(cols, i, 1);
			const char *kind = PQgetvalue(cols, i, 2);
			StringInfoData json;
			List *key = primary_key_of(keys, schema, table);
			const char *cursor;
			Datum values[7];
			bool nulls[7] = {false};
			int start = i;
			int j;

			initStringInfo(&json);
			appendStringInfoChar(&json, '[');
			for (; i < n && strcmp(PQgetvalue(cols, i, 1), table) == 0 &&
				   strcmp(PQgetvalue(cols, i, 0), schema) == 0;
				 i++)
			{
				if (i > start)
					appendStringInfoString(&json, ", ");
				appendStringInfoString(&json, "{\"name\": ");
				escape_json(&json, PQgetvalue(cols, i, 3));
				appendStringInfoString(&json, ", \"redshift_type\": ");
				escape_json(&json, PQgetvalue(cols, i, 4));
				appendStringInfoString(&json, ", \"postgres_type\": ");
				escape_json(&json, local_type_of_row(cols, i));
				appendStringInfo(&json, ", \"nullable\": %s}",
								 strcmp(PQgetvalue(cols, i, 8), "NO") == 0
									 ? "false"
									 : "true");
			}
			appendStringInfoChar(&json, ']');
			cursor = suggest_cursor(cols, start, i, key);

			values[0] = CStringGetTextDatum(schema);
			values[1] = CStringGetTextDatum(table);
			values[2] = CStringGetTextDatum(
				strcmp(kind, "VIEW") == 0			  ? "view"
				: strcmp(kind, "EXTERNAL TABLE") == 0 ? "external table"
													  : "table");
			values[3] =
				DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data));
			if (key != NIL)
			{
				Datum *elems = palloc(sizeof(Datum) * list_length(key));
				ListCell *kc;

				j = 0;
				foreach (kc, key)
					elems[j++] = CStringGetTextDatum(lfirst(kc));
				values[4] = PointerGetDatum(construct_array(
					elems, j, TEXTOID, -1, false, TYPALIGN_INT));
			}
			else
				nulls[4] = true;
			if (cursor)
				values[5] = CStringGetTextDatum(cursor);
			else
				nulls[5] = true;
			nulls[6] = true;
			for (j = 0; sizes && j < PQntuples(sizes); j++)
			{
				if (strcmp(PQgetvalue(sizes, j, 0), schema) == 0 &&
					strcmp(PQgetvalue(sizes, j, 1), table) == 0 &&
					!PQgetisnull(sizes, j, 2))
				{
					values[6] = Int64GetDatum(
						(int64) strtod(PQgetvalue(sizes, j, 2), NULL));
					nulls[6] = false;
				}
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
								 nulls);
		}
	}
	PG_FINALLY();
	{
		PQclear(cols);
		PQclear(keys);
		PQclear(sizes);
		redshift_release_connection(rconn);
	}
	PG_END_TRY();
	return (Datum) 0;
}
