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

#include "catalog/pg_authid.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "catalog/pg_type.h"

#include "connection.h"
#include "materialize.h"
#include "s3.h"
#include "typemap.h"

PG_FUNCTION_INFO_V1(redshift_fdw_disconnect);
PG_FUNCTION_INFO_V1(redshift_fdw_disconnect_all);
PG_FUNCTION_INFO_V1(redshift_fdw_connection_list);
PG_FUNCTION_INFO_V1(redshift_fdw_check);
PG_FUNCTION_INFO_V1(redshift_fdw_s3_check);
PG_FUNCTION_INFO_V1(redshift_fdw_s3_put_file);
PG_FUNCTION_INFO_V1(redshift_fdw_s3_get_file);
PG_FUNCTION_INFO_V1(redshift_fdw_s3_list);
PG_FUNCTION_INFO_V1(redshift_fdw_s3_delete);

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
	ForeignServer *server;
	UserMapping *user;
	RedshiftConn *conn;
	S3Client *s3;
	char *probe_key;
	char *probe_body;
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
	/* pg_namespace, not svv_tables: a schema without tables counts too */
	PGresult *res = redshift_exec(
		state->conn,
		"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT IN "
		"('pg_catalog', 'pg_internal', 'information_schema', "
		"'catalog_history', 'pg_toast', 'pg_automv') AND nspname NOT LIKE "
		"'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%' "
		"ORDER BY 1");
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
 * Step "target schema": materializations can create their tables in the
 * server's schema (or create the schema).
 */
static void
step_target_schema(CheckState *state)
{
	char *schema = redshift_materialize_schema(state->server);
	StringInfoData sql;
	PGresult *res;
	bool exists;

	initStringInfo(&sql);
	appendStringInfoString(&sql,
						   "SELECT 1 FROM pg_namespace WHERE nspname = ");
	redshift_append_string_literal(&sql, schema);
	res = redshift_exec(state->conn, sql.data);
	exists = PQntuples(res) > 0;
	PQclear(res);
	resetStringInfo(&sql);
	if (exists)
	{
		appendStringInfoString(&sql, "SELECT has_schema_privilege(");
		redshift_append_string_literal(&sql, schema);
		appendStringInfoString(&sql, ", 'CREATE')");
	}
	else
		appendStringInfoString(
			&sql,
			"SELECT has_database_privilege(current_database(), 'CREATE')");
	res = redshift_exec(state->conn, sql.data);
	state->ok = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (exists)
		state->detail =
			psprintf("schema %s exists; %s", schema,
					 state->ok ? "tables can be created in it"
							   : "the user cannot create tables in it");
	else
		state->detail = psprintf("schema %s does not exist; %s", schema,
								 state->ok ? "the first apply creates it"
										   : "the user cannot create it");
	if (!state->ok)
		state->hint =
			exists ? psprintf("GRANT CREATE ON SCHEMA %s TO the user of the "
							  "user mapping.",
							  quote_identifier(schema))
				   : psprintf("CREATE SCHEMA %s on Redshift, or GRANT CREATE "
							  "ON DATABASE to the user of the user mapping.",
							  quote_identifier(schema));
}

/*
 * Step "checkpoint table": the table materializations keep their
 * checkpoints in exists or can be created (it is created here).
 */
static void
step_checkpoint_table(CheckState *state)
{
	char *schema = redshift_materialize_schema(state->server);
	StringInfoData sql;
	PGresult *res;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "CREATE SCHEMA IF NOT EXISTS ");
	redshift_append_identifier(&sql, schema);
	PQclear(redshift_exec(state->conn, sql.data));
	resetStringInfo(&sql);
	appendStringInfoString(&sql, "CREATE TABLE IF NOT EXISTS ");
	redshift_append_identifier(&sql, schema);
	appendStringInfo(&sql, ".%s %s", MATERIALIZE_CHECKPOINT_TABLE,
					 MATERIALIZE_CHECKPOINT_COLUMNS);
	PQclear(redshift_exec(state->conn, sql.data));
	resetStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT count(*) FROM ");
	redshift_append_identifier(&sql, schema);
	appendStringInfo(&sql, ".%s", MATERIALIZE_CHECKPOINT_TABLE);
	res = redshift_exec(state->conn, sql.data);
	state->detail =
		psprintf("%s.%s ready (%s checkpoint%s)", schema,
				 MATERIALIZE_CHECKPOINT_TABLE, PQgetvalue(res, 0, 0),
				 strcmp(PQgetvalue(res, 0, 0), "1") == 0 ? "" : "s");
	PQclear(res);
}

/* A named step of a check. */
typedef struct NamedStep
{
	const char *name;
	CheckStep step;
	bool stops_on_failure; /* later steps cannot run without it */
} NamedStep;

/*
 * Run steps, one output row each; after a failed step that others depend
 * on, the rest are reported as not run.
 */
static void
run_steps(ReturnSetInfo *rsinfo, CheckState *state, const NamedStep *steps,
		  int nsteps)
{
	bool failed = false;
	int i;

	for (i = 0; i < nsteps; i++)
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
			ok = run_step(steps[i].step, state, &detail, &hint);
			/* the connection outlives the step's subtransaction */
			if (state->conn)
				state->conn->acquired_level = GetCurrentTransactionNestLevel();
			if (!ok && steps[i].stops_on_failure)
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
}

/*
 * Step "s3 client": credentials, bucket and region are found, and the
 * bucket answers (HeadBucket).
 */
static void
step_s3_client(CheckState *state)
{
	state->s3 = s3_client_create(state->server, state->user);
	s3_head_bucket(state->s3);
	state->detail = psprintf("credentials from the %s; staging at %s",
							 s3_client_credential_source(state->s3),
							 s3_client_location(state->s3, NULL));
}

/* Step "s3 put": a probe object can be written under the prefix. */
static void
step_s3_put(CheckState *state)
{
	state->probe_key = psprintf("redshift_fdw_probe/%d-%ld.txt", MyProcPid,
								(long) GetCurrentTimestamp());
	state->probe_body =
		psprintf("redshift_fdw probe written by pid %d", MyProcPid);
	s3_put(state->s3, state->probe_key, state->probe_body,
		   strlen(state->probe_body));
	state->detail =
		psprintf("wrote %s", s3_client_location(state->s3, state->probe_key));
}

/* Step "s3 get": the probe reads back unchanged. */
static void
step_s3_get(CheckState *state)
{
	StringInfo data = s3_get(state->s3, state->probe_key);

	state->ok = strcmp(data->data, state->probe_body) == 0;
	state->detail = psprintf("read %d bytes%s", data->len,
							 state->ok ? ", as written" : ", but they differ");
}

/* Step "s3 list": the probe shows up in a listing of its prefix. */
static void
step_s3_list(CheckState *state)
{
	List *objects = s3_list(state->s3, "redshift_fdw_probe/");
	ListCell *lc;

	state->ok = false;
	foreach (lc, objects)
	{
		if (strcmp(((S3Object *) lfirst(lc))->key, state->probe_key) == 0)
			state->ok = true;
	}
	state->detail =
		psprintf("%d object%s under the probe prefix%s", list_length(objects),
				 list_length(objects) == 1 ? "" : "s",
				 state->ok ? ", the probe among them" : ", the probe missing");
	if (!state->ok)
		state->hint = "The credentials may lack s3:ListBucket on the bucket.";
}

/* Step "s3 delete": the probe can be removed. */
static void
step_s3_delete(CheckState *state)
{
	s3_delete(state->s3, list_make1(state->probe_key));
	state->detail = psprintf("deleted %s",
							 s3_client_location(state->s3, state->probe_key));
}

static const NamedStep s3_steps[] = {{"s3 client", step_s3_client, true},
									 {"s3 put", step_s3_put, true},
									 {"s3 get", step_s3_get, false},
									 {"s3 list", step_s3_list, false},
									 {"s3 delete", step_s3_delete, false}};

/*
 * redshift_fdw.check(server): the steps a connection needs, one row each
 * (step, ok, detail, hint); the S3 steps follow when the server has S3
 * staging configured.
 */
Datum
redshift_fdw_check(PG_FUNCTION_ARGS)
{
	static const NamedStep steps[] = {
		{"connect", step_connect, true},
		{"redshift", step_redshift, false},
		{"list schemas", step_list_schemas, true},
		{"select permission", step_select_permission, false},
		{"target schema", step_target_schema, false},
		{"checkpoint table", step_checkpoint_table, false}};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CheckState state = {0};

	InitMaterializedSRF(fcinfo, 0);
	state.server =
		GetForeignServerByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	state.user = GetUserMapping(GetUserId(), state.server->serverid);
	run_steps(rsinfo, &state, steps, lengthof(steps));
	if (state.conn)
		redshift_release_connection(state.conn);
	if (s3_server_configured(state.server))
		run_steps(rsinfo, &state, s3_steps, lengthof(s3_steps));
	return (Datum) 0;
}

/*
 * redshift_fdw.s3_check(server): put, get, list and delete a probe object
 * under the server's s3_prefix.
 */
Datum
redshift_fdw_s3_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CheckState state = {0};

	InitMaterializedSRF(fcinfo, 0);
	state.server =
		GetForeignServerByName(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	state.user = GetUserMapping(GetUserId(), state.server->serverid);
	run_steps(rsinfo, &state, s3_steps, lengthof(s3_steps));
	return (Datum) 0;
}

/* The S3 client of a server for the current user. */
static S3Client *
client_for(text *server_name)
{
	ForeignServer *server =
		GetForeignServerByName(text_to_cstring(server_name), false);

	return s3_client_create(server,
							GetUserMapping(GetUserId(), server->serverid));
}

/*
 * Reading or writing server-side files needs the rights server-side COPY
 * needs.
 */
static void
check_file_access(Oid role, const char *what)
{
	if (!has_privs_of_role(GetUserId(), role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s server files", what),
				 errhint("Only superusers and roles with privileges of the "
						 "\"%s\" role may do this.",
						 role == ROLE_PG_READ_SERVER_FILES
							 ? "pg_read_server_files"
							 : "pg_write_server_files")));
}

/*
 * redshift_fdw.s3_put_file(server, path, key): upload a server-side file
 * (multipart when large); returns its size.
 */
Datum
redshift_fdw_s3_put_file(PG_FUNCTION_ARGS)
{
	check_file_access(ROLE_PG_READ_SERVER_FILES, "read");
	PG_RETURN_INT64(s3_put_file(client_for(PG_GETARG_TEXT_PP(0)),
								text_to_cstring(PG_GETARG_TEXT_PP(2)),
								text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

/*
 * redshift_fdw.s3_get_file(server, key, path): download an object into a
 * server-side file; returns its size.
 */
Datum
redshift_fdw_s3_get_file(PG_FUNCTION_ARGS)
{
	check_file_access(ROLE_PG_WRITE_SERVER_FILES, "write");
	PG_RETURN_INT64(s3_get_file(client_for(PG_GETARG_TEXT_PP(0)),
								text_to_cstring(PG_GETARG_TEXT_PP(1)),
								text_to_cstring(PG_GETARG_TEXT_PP(2))));
}

/*
 * redshift_fdw.s3_list(server, prefix): objects under the server's
 * s3_prefix (keys relative to it).
 */
Datum
redshift_fdw_s3_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	S3Client *client = client_for(PG_GETARG_TEXT_PP(0));
	List *objects;
	ListCell *lc;

	InitMaterializedSRF(fcinfo, 0);
	objects = s3_list(client, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	foreach (lc, objects)
	{
		S3Object *obj = lfirst(lc);
		Datum values[2];
		bool nulls[2] = {false};

		values[0] = CStringGetTextDatum(obj->key);
		values[1] = Int64GetDatum(obj->size);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
							 nulls);
	}
	return (Datum) 0;
}

/*
 * redshift_fdw.s3_delete(server, keys): delete objects (keys relative to
 * s3_prefix); returns how many keys were sent.
 */
Datum
redshift_fdw_s3_delete(PG_FUNCTION_ARGS)
{
	S3Client *client = client_for(PG_GETARG_TEXT_PP(0));
	Datum *elems;
	bool *nulls;
	int count;
	int i;
	List *keys = NIL;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false,
					  TYPALIGN_INT, &elems, &nulls, &count);
	for (i = 0; i < count; i++)
		if (!nulls[i])
			keys = lappend(keys, TextDatumGetCString(elems[i]));
	PG_RETURN_INT32(keys ? s3_delete(client, keys) : 0);
}
