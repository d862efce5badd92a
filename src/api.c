/*
 * api.c
 *		SQL-callable functions over the connection pool: disconnect,
 *		the connections list and check().
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "connection.h"
#include "typemap.h"

PG_FUNCTION_INFO_V1(redshift_fdw_disconnect);
PG_FUNCTION_INFO_V1(redshift_fdw_disconnect_all);
PG_FUNCTION_INFO_V1(redshift_fdw_connection_list);
PG_FUNCTION_INFO_V1(redshift_fdw_check);

/* How many tables check() tries to read. */
#define CHECK_SAMPLE_TABLES 10

/*
 * redshift_fdw.disconnect(server): close this backend's connections to a
 * server; true if there were any.
 */
Datum
redshift_fdw_disconnect(PG_FUNCTION_ARGS)
{
	ForeignServer *server =
		GetForeignServerByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);

	PG_RETURN_BOOL(redshift_disconnect_server(server->serverid) > 0);
}

/*
 * redshift_fdw.disconnect_all(): close all of this backend's connections.
 */
Datum
redshift_fdw_disconnect_all(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(redshift_disconnect_all() > 0);
}

/*
 * redshift_fdw.connection_list(): this backend's connections, for the
 * redshift_fdw.connections view.
 */
Datum
redshift_fdw_connection_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RedshiftConn *rconn;

	InitMaterializedSRF(fcinfo, 0);
	for (rconn = redshift_connection_list(); rconn; rconn = rconn->next)
	{
		ForeignServer *server =
			GetForeignServerExtended(rconn->serverid, FSV_MISSING_OK);
		Datum values[6];
		bool nulls[6] = {false};

		if (server)
			values[0] = CStringGetTextDatum(server->servername);
		else
			nulls[0] = true;
		if (OidIsValid(rconn->userid))
			values[1] = CStringGetTextDatum(
				GetUserNameFromId(rconn->userid, true)
					? GetUserNameFromId(rconn->userid, true)
					: "?");
		else
			values[1] = CStringGetTextDatum("public");
		values[2] = BoolGetDatum(!rconn->invalidated &&
								 PQstatus(rconn->conn) == CONNECTION_OK);
		values[3] = BoolGetDatum(rconn->busy);
		values[4] = BoolGetDatum(rconn->is_redshift);
		values[5] = TimestampTzGetDatum(rconn->opened_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
							 nulls);
	}
	return (Datum) 0;
}

/* State shared by the steps of check(). */
typedef struct CheckState
{
	UserMapping *user;
	RedshiftConn *conn;
	char *detail; /* what a step found */
	char *hint;	  /* what to do about a failure found without error */
	bool ok;
	List *tables; /* "schema"."table" of a sample, for the last step */
} CheckState;

typedef void (*CheckStep)(CheckState *state);

/*
 * Run one step in a subtransaction, turning an error into a failed step
 * with the error's message and hint.
 */
static bool
run_step(CheckStep step, CheckState *state, char **detail, char **hint)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	bool ok;

	state->detail = NULL;
	state->hint = NULL;
	state->ok = true;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		step(state);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ok = state->ok;
		*detail = state->detail;
		*hint = state->hint;
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		ok = false;
		*detail = edata->detail
					  ? psprintf("%s: %s", edata->message, edata->detail)
					  : edata->message;
		*hint = edata->hint;
	}
	PG_END_TRY();
	return ok;
}

/* Step "connect": open a connection with the user mapping. */
static void
step_connect(CheckState *state)
{
	state->conn = redshift_acquire_connection(state->user);
	state->detail = psprintf("connected: %s",
							 redshift_connection_string(state->user, true));
}

/* Step "redshift": the server says it is Redshift, and which version. */
static void
step_redshift(CheckState *state)
{
	PGresult *res = redshift_exec(state->conn, "SELECT version()");
	char *version = pstrdup(PQgetvalue(res, 0, 0));
	char *found = strstr(version, "Redshift ");

	PQclear(res);
	state->ok = found != NULL || state->conn->is_redshift;
	state->detail = found ? pstrdup(found) : version;
	if (!state->ok)
		state->hint = "This server is not Amazon Redshift. Foreign scans "
					  "work against it, but loading through S3 needs "
					  "Redshift.";
}

/* Step "list schemas": the catalog views can be read. */
static void
step_list_schemas(CheckState *state)
{
	PGresult *res = redshift_exec(
		state->conn,
		"SELECT DISTINCT table_schema FROM svv_tables WHERE table_schema NOT "
		"IN ('pg_catalog', 'pg_internal', 'information_schema', "
		"'catalog_history', 'pg_toast', 'pg_automv') ORDER BY 1");
	StringInfoData buf;
	int i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%d schema%s", PQntuples(res),
					 PQntuples(res) == 1 ? "" : "s");
	for (i = 0; i < PQntuples(res) && i < 10; i++)
		appendStringInfo(&buf, "%s%s", i == 0 ? ": " : ", ",
						 PQgetvalue(res, i, 0));
	if (PQntuples(res) > 10)
		appendStringInfoString(&buf, ", ...");
	PQclear(res);
	state->detail = buf.data;
	if (i == 0)
	{
		state->ok = false;
		state->hint = "The user sees no schema: grant it USAGE on the "
					  "schemas to read.";
	}
}

/* Step "select permission": a sample of tables can be read. */
static void
step_select_permission(CheckState *state)
{
	PGresult *res = redshift_exec(
		state->conn,
		psprintf("SELECT table_schema, table_name FROM svv_tables WHERE "
				 "table_type IN ('BASE TABLE', 'VIEW') AND table_schema NOT "
				 "IN ('pg_catalog', 'pg_internal', 'information_schema', "
				 "'catalog_history', 'pg_toast', 'pg_automv') ORDER BY 1, 2 "
				 "LIMIT %d",
				 CHECK_SAMPLE_TABLES));
	StringInfoData denied;
	int total = PQntuples(res);
	int failed = 0;
	char *first_schema = NULL;
	int i;

	initStringInfo(&denied);
	for (i = 0; i < total; i++)
	{
		StringInfoData sql;
		PGresult *probe;

		initStringInfo(&sql);
		appendStringInfoString(&sql, "SELECT 1 FROM ");
		redshift_append_identifier(&sql, PQgetvalue(res, i, 0));
		appendStringInfoChar(&sql, '.');
		redshift_append_identifier(&sql, PQgetvalue(res, i, 1));
		appendStringInfoString(&sql, " LIMIT 0");
		probe = redshift_catalog_query(state->conn, sql.data, true);
		if (probe == NULL)
		{
			failed++;
			appendStringInfo(&denied, "%s%s.%s", denied.len ? ", " : "",
							 PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
			if (first_schema == NULL)
				first_schema = pstrdup(PQgetvalue(res, i, 0));
		}
		PQclear(probe);
	}
	PQclear(res);
	if (total == 0)
		state->detail = "no table to sample";
	else if (failed == 0)
		state->detail =
			psprintf("%d of %d sampled tables readable", total, total);
	else
	{
		state->ok = false;
		state->detail = psprintf("%d of %d sampled tables not readable: %s",
								 failed, total, denied.data);
		state->hint = psprintf("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO "
							   "the user of the user mapping.",
							   quote_identifier(first_schema));
	}
}

/*
 * redshift_fdw.check(server): the steps a connection needs, one row each
 * (step, ok, detail, hint); a failed step ends the check.
 */
Datum
redshift_fdw_check(PG_FUNCTION_ARGS)
{
	static const struct
	{
		const char *name;
		CheckStep step;
	} steps[] = {{"connect", step_connect},
				 {"redshift", step_redshift},
				 {"list schemas", step_list_schemas},
				 {"select permission", step_select_permission}};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ForeignServer *server =
		GetForeignServerByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	CheckState state = {0};
	bool failed = false;
	int i;

	InitMaterializedSRF(fcinfo, 0);
	state.user = GetUserMapping(GetUserId(), server->serverid);
	for (i = 0; i < (int) lengthof(steps); i++)
	{
		Datum values[4];
		bool nulls[4] = {false};
		char *detail = NULL;
		char *hint = NULL;
		bool ok = false;

		if (failed)
			detail = "not run: an earlier step failed";
		else
		{
			ok = run_step(steps[i].step, &state, &detail, &hint);
			/* the connection outlives the step's subtransaction */
			if (state.conn)
				state.conn->acquired_level = GetCurrentTransactionNestLevel();
			if (!ok && (i == 0 || i == 2))
				failed = true;
		}
		values[0] = CStringGetTextDatum(steps[i].name);
		values[1] = BoolGetDatum(ok);
		if (detail)
			values[2] = CStringGetTextDatum(detail);
		else
			nulls[2] = true;
		if (hint)
			values[3] = CStringGetTextDatum(hint);
		else
			nulls[3] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
							 nulls);
	}
	if (state.conn)
		redshift_release_connection(state.conn);
	return (Datum) 0;
}
