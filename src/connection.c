/*
 * connection.c
 *		The connection pool, interruptible libpq calls and remote errors.
 *
 * Connections are kept per user mapping in a list in TopMemoryContext.  A
 * scan acquires one (an idle one, or a new one) and releases it when it
 * ends; at transaction or subtransaction abort, connections still held are
 * released on the holders' behalf, cancelling whatever query was running.
 * Queries run in autocommit mode: the read path never opens a remote
 * transaction, so there is nothing to commit or roll back remotely.
 *
 * Every wait on the network goes through WaitLatchOrSocket, so Ctrl-C,
 * statement_timeout and pg_terminate_backend interrupt it.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "connection.h"
#include "option.h"

/* How long to wait for a cancelled query to give its results back. */
#define CANCEL_WAIT_MS 5000

static RedshiftConn *connections = NULL;
static bool callbacks_registered = false;

static void connection_xact_callback(XactEvent event, void *arg);
static void connection_subxact_callback(SubXactEvent event,
										SubTransactionId mySubid,
										SubTransactionId parentSubid,
										void *arg);
static void connection_inval_callback(Datum arg, int cacheid,
									  uint32 hashvalue);

/*
 * Register the transaction and invalidation callbacks once per backend.
 */
void
redshift_connection_init(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(connection_xact_callback, NULL);
	RegisterSubXactCallback(connection_subxact_callback, NULL);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, connection_inval_callback,
								  (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, connection_inval_callback,
								  (Datum) 0);
	callbacks_registered = true;
}

/*
 * Is this option one libpq takes (as opposed to one of ours)?
 */
static bool
is_libpq_option(const char *name)
{
	static const char *const libpq_options[] = {"host",
												"port",
												"dbname",
												"sslmode",
												"sslrootcert",
												"connect_timeout",
												"application_name",
												"user",
												"password",
												NULL};
	int i;

	for (i = 0; libpq_options[i] != NULL; i++)
	{
		if (strcmp(name, libpq_options[i]) == 0)
			return true;
	}
	return false;
}

/*
 * The libpq keyword/value arrays for a user mapping: server options, then
 * user mapping options, with Redshift's defaults for port and dbname.
 */
static int
build_conn_params(UserMapping *user, const char **keywords,
				  const char **values)
{
	ForeignServer *server = GetForeignServer(user->serverid);
	List *options = list_concat(list_copy(server->options), user->options);
	ListCell *lc;
	int n = 0;
	bool has_port = false;
	bool has_dbname = false;

	foreach (lc, options)
	{
		DefElem *def = (DefElem *) lfirst(lc);

		if (!is_libpq_option(def->defname))
			continue;
		/* connect_timeout is enforced by our own wait loop */
		if (strcmp(def->defname, "connect_timeout") == 0)
			continue;
		keywords[n] = def->defname;
		values[n] = defGetString(def);
		has_port |= strcmp(def->defname, "port") == 0;
		has_dbname |= strcmp(def->defname, "dbname") == 0;
		n++;
	}
	if (!has_port)
	{
		keywords[n] = "port";
		values[n++] = "5439";
	}
	if (!has_dbname)
	{
		keywords[n] = "dbname";
		values[n++] = "dev";
	}
	if (redshift_option_string(server->options, "application_name") == NULL)
	{
		keywords[n] = "application_name";
		values[n++] = "redshift_fdw";
	}
	/* Values arrive in the local database's encoding, as postgres_fdw does. */
	keywords[n] = "client_encoding";
	values[n++] = GetDatabaseEncodingName();
	keywords[n] = NULL;
	values[n] = NULL;
	return n;
}

/*
 * A display form of the connection target (no password), for messages and
 * the connections view.
 */
char *
redshift_connection_string(UserMapping *user, bool for_display)
{
	const char *keywords[32];
	const char *values[32];
	StringInfoData buf;
	int i;

	build_conn_params(user, keywords, values);
	initStringInfo(&buf);
	for (i = 0; keywords[i] != NULL; i++)
	{
		if (strcmp(keywords[i], "password") == 0)
			continue;
		if (for_display && strcmp(keywords[i], "client_encoding") == 0)
			continue;
		appendStringInfo(&buf, "%s%s=%s", buf.len ? " " : "", keywords[i],
						 values[i]);
	}
	return buf.data;
}

/*
 * Non-superusers must give a password, as postgres_fdw requires: without
 * one, libpq could authenticate with the server's own credentials files.
 */
static void
check_password_given(UserMapping *user)
{
	char *required =
		redshift_option_string(user->options, "password_required");
	bool flag = true;

	if (superuser_arg(user->userid))
		return;
	if (required && parse_bool(required, &flag) && !flag)
		return;
	if (redshift_option_string(user->options, "password") == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required"),
				 errdetail("Non-superusers must give a password in the user "
						   "mapping for server \"%s\".",
						   GetForeignServer(user->serverid)->servername),
				 errhint("ALTER USER MAPPING FOR CURRENT_USER SERVER %s "
						 "OPTIONS (ADD password '...')",
						 quote_identifier(
							 GetForeignServer(user->serverid)->servername))));
}

/*
 * A hint for a connection failure, from the SQLSTATE libpq reports and
 * the text of its message.
 */
static const char *
connection_failure_hint(PGconn *conn, bool timed_out)
{
	const char *msg = conn ? PQerrorMessage(conn) : "";

	if (timed_out || strstr(msg, "timeout") || strstr(msg, "timed out"))
		return "Check that the cluster is reachable from this host: network "
			   "route, security group inbound rule for the port, and that "
			   "the cluster is publicly accessible if you connect from "
			   "outside its VPC.";
	if (strstr(msg, "password authentication failed"))
		return "Check the user and password in the user mapping.";
	if (strstr(msg, "does not exist") && strstr(msg, "database"))
		return "Check the server's dbname option (Redshift's default "
			   "database is \"dev\").";
	if (strstr(msg, "SSL") || strstr(msg, "certificate"))
		return "Check sslmode and sslrootcert; Redshift accepts TLS on its "
			   "normal port.";
	if (strstr(msg, "Connection refused"))
		return "Nothing listens at that host and port; check the server's "
			   "host and port options.";
	if (strstr(msg, "could not translate host name"))
		return "Check the server's host option.";
	return NULL;
}

/*
 * Map a libpq connection failure to a SQLSTATE: authentication and
 * unknown-database errors keep theirs, everything else is a connection
 * failure.
 */
static int
connection_failure_code(PGconn *conn)
{
	const char *msg = conn ? PQerrorMessage(conn) : "";

	if (strstr(msg, "password authentication failed"))
		return ERRCODE_INVALID_PASSWORD;
	if (strstr(msg, "does not exist") && strstr(msg, "database"))
		return ERRCODE_INVALID_CATALOG_NAME;
	return ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
}

/*
 * Open a connection without blocking interrupts: PQconnectStartParams and
 * PQconnectPoll, waiting on the latch and the socket, with the server's
 * connect_timeout enforced here.
 */
static PGconn *
connect_interruptibly(UserMapping *user)
{
	ForeignServer *server = GetForeignServer(user->serverid);
	const char *keywords[32];
	const char *values[32];
	int timeout_s = redshift_option_int(server->options, "connect_timeout", 0);
	TimestampTz deadline = 0;
	PostgresPollingStatusType status = PGRES_POLLING_WRITING;
	PGconn *volatile conn;
	bool timed_out = false;

	build_conn_params(user, keywords, values);
	conn = PQconnectStartParams(keywords, values, false);
	if (conn == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("out of memory while connecting to server "
							   "\"%s\"",
							   server->servername)));
	if (timeout_s > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											   timeout_s * 1000);
	PG_TRY();
	{
		while (PQstatus(conn) != CONNECTION_BAD &&
			   status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
		{
			int events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
			long wait_ms = -1;
			int rc;

			events |= status == PGRES_POLLING_READING ? WL_SOCKET_READABLE
													  : WL_SOCKET_WRITEABLE;
			if (deadline)
			{
				wait_ms = TimestampDifferenceMilliseconds(
					GetCurrentTimestamp(), deadline);
				if (wait_ms <= 0)
				{
					timed_out = true;
					break;
				}
				events |= WL_TIMEOUT;
			}
			rc = WaitLatchOrSocket(MyLatch, events, PQsocket(conn), wait_ms,
								   PG_WAIT_EXTENSION);
			if (rc & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
			if (rc & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
				status = PQconnectPoll(conn);
		}
	}
	PG_CATCH();
	{
		PQfinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (timed_out || PQstatus(conn) != CONNECTION_OK)
	{
		char *msg =
			pchomp(timed_out ? "timeout expired" : PQerrorMessage(conn));
		const char *hint = connection_failure_hint(conn, timed_out);
		int code = timed_out
					   ? ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION
					   : connection_failure_code(conn);
		char *hint_copy = hint ? pstrdup(hint) : NULL;

		PQfinish(conn);
		ereport(ERROR, (errcode(code),
						errmsg("could not connect to server \"%s\"",
							   server->servername),
						errdetail_internal("%s", msg),
						hint_copy ? errhint("%s", hint_copy) : 0));
	}
	return conn;
}

/*
 * Redshift's notices (say, "Load into table ... completed") are news for
 * debugging, not lines libpq writes raw into the server log.
 */
static void
notice_to_debug(void *arg, const char *message)
{
	ereport(DEBUG1,
			(errmsg_internal("redshift_fdw: remote notice: %s", message)));
}

/*
 * Open a connection for a user mapping and prepare the remote session with
 * settings Redshift accepts.
 */
static RedshiftConn *
open_connection(UserMapping *user)
{
	ForeignServer *server = GetForeignServer(user->serverid);
	RedshiftConn *rconn;
	PGconn *conn;
	StringInfoData setup;
	int timeout_ms;

	check_password_given(user);
	conn = connect_interruptibly(user);

	if (!superuser_arg(user->userid) && !PQconnectionUsedPassword(conn))
	{
		PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required"),
				 errdetail("Non-superuser cannot connect if the server does "
						   "not request a password."),
				 errhint("Target server's authentication method must be "
						 "changed.")));
	}

	PQsetNoticeProcessor(conn, notice_to_debug, NULL);
	rconn = MemoryContextAllocZero(TopMemoryContext, sizeof(RedshiftConn));
	rconn->umid = user->umid;
	rconn->serverid = user->serverid;
	rconn->userid = user->userid;
	rconn->conn = conn;
	rconn->is_redshift = PQparameterStatus(conn, "padb_version") != NULL;
	rconn->server_hash = GetSysCacheHashValue1(
		FOREIGNSERVEROID, ObjectIdGetDatum(server->serverid));
	rconn->mapping_hash =
		GetSysCacheHashValue1(USERMAPPINGOID, ObjectIdGetDatum(user->umid));
	rconn->opened_at = GetCurrentTimestamp();
	rconn->next = connections;
	connections = rconn;

	/*
	 * Session settings: ISO dates in UTC, so values come back in one
	 * unambiguous form, and as many float digits as Redshift allows.
	 */
	initStringInfo(&setup);
	appendStringInfoString(&setup, "SET datestyle TO 'ISO, MDY'; "
								   "SET timezone TO 'UTC'; "
								   "SET extra_float_digits TO 2");
	/*
	 * A plain PostgreSQL peer (tests, benchmarks) is put under Redshift's
	 * literal rules, so the same escaping serves both.
	 */
	if (!rconn->is_redshift)
		appendStringInfoString(&setup,
							   "; SET standard_conforming_strings TO "
							   "off; SET escape_string_warning TO off");
	else
	{
		/*
		 * Names are sent exactly as the catalog holds them (IMPORT records
		 * them so); without this Redshift would fold quoted names to lower
		 * case and tables created with mixed-case names could not be read.
		 */
		appendStringInfoString(
			&setup, "; SET enable_case_sensitive_identifier TO true");
	}
	timeout_ms = redshift_option_int(server->options, "statement_timeout", -1);
	if (timeout_ms >= 0)
		appendStringInfo(&setup, "; SET statement_timeout TO %d", timeout_ms);
	rconn->busy = true;
	PG_TRY();
	{
		PQclear(redshift_exec(rconn, setup.data));
	}
	PG_CATCH();
	{
		rconn->busy = false;
		rconn->invalidated = true;
		PG_RE_THROW();
	}
	PG_END_TRY();
	rconn->busy = false;
	pfree(setup.data);
	return rconn;
}

/*
 * Close a connection and unlink it from the pool.
 */
static void
close_connection(RedshiftConn *rconn)
{
	RedshiftConn **link;

	for (link = &connections; *link != NULL; link = &(*link)->next)
	{
		if (*link == rconn)
		{
			*link = rconn->next;
			break;
		}
	}
	if (rconn->conn)
		PQfinish(rconn->conn);
	pfree(rconn);
}

/*
 * Take an idle, healthy connection of this user mapping from the pool, or
 * open a new one.  The caller must release it.
 */
RedshiftConn *
redshift_acquire_connection(UserMapping *user)
{
	RedshiftConn *rconn;
	RedshiftConn *next;

	redshift_connection_init();
	for (rconn = connections; rconn != NULL; rconn = next)
	{
		next = rconn->next;
		if (rconn->busy || rconn->umid != user->umid)
			continue;
		if (rconn->invalidated || PQstatus(rconn->conn) != CONNECTION_OK ||
			PQtransactionStatus(rconn->conn) != PQTRANS_IDLE)
		{
			close_connection(rconn);
			continue;
		}
		break;
	}
	if (rconn == NULL)
		rconn = open_connection(user);
	rconn->busy = true;
	rconn->query_active = false;
	rconn->acquired_level = GetCurrentTransactionNestLevel();
	return rconn;
}

/*
 * Wait (interruptibly) until a result is available and return it; NULL
 * when the query's results are exhausted.  A lost connection is an error.
 */
PGresult *
redshift_get_result(RedshiftConn *rconn, const char *sql)
{
	PGconn *conn = rconn->conn;

	while (PQisBusy(conn))
	{
		int rc = WaitLatchOrSocket(
			MyLatch, WL_LATCH_SET | WL_SOCKET_READABLE | WL_EXIT_ON_PM_DEATH,
			PQsocket(conn), -1L, PG_WAIT_EXTENSION);

		if (rc & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
			redshift_report_error(NULL, rconn, sql);
	}
	return PQgetResult(conn);
}

/*
 * Whether the next result of the query sent last can be read without
 * waiting (reads what has arrived); a lost connection is an error.
 */
bool
redshift_result_ready(RedshiftConn *rconn, const char *sql)
{
	if (!PQconsumeInput(rconn->conn))
		redshift_report_error(NULL, rconn, sql);
	return !PQisBusy(rconn->conn);
}

/*
 * Send a query (with text parameters, if any) without waiting for it.
 * display, when not NULL, is what an error shows of it instead of sql
 * (which may carry secrets: COPY's credentials).
 */
void
redshift_send_query(RedshiftConn *rconn, const char *sql, const char *display,
					int nparams, const char *const *values)
{
	int ok;

	if (nparams > 0)
		ok = PQsendQueryParams(rconn->conn, sql, nparams, NULL, values, NULL,
							   NULL, 0);
	else
		ok = PQsendQuery(rconn->conn, sql);
	if (!ok)
		redshift_report_error(NULL, rconn, display ? display : sql);
	rconn->query_active = true;
}

/*
 * Run a command and return its last result, which the caller must
 * PQclear; an error result is reported as an error.
 */
PGresult *
redshift_exec(RedshiftConn *rconn, const char *sql)
{
	PGresult *volatile last = NULL;
	PGresult *res;

	redshift_send_query(rconn, sql, NULL, 0, NULL);
	PG_TRY();
	{
		while ((res = redshift_get_result(rconn, sql)) != NULL)
		{
			if (last)
				PQclear(last);
			last = res;
			if (PQresultStatus(res) == PGRES_FATAL_ERROR)
			{
				/* consume the rest so the connection stays usable */
				while ((res = redshift_get_result(rconn, sql)) != NULL)
					PQclear(res);
				rconn->query_active = false;
				res = last;
				last = NULL; /* redshift_report_error frees it */
				redshift_report_error(res, rconn, sql);
			}
		}
	}
	PG_CATCH();
	{
		if (last)
			PQclear(last);
		PG_RE_THROW();
	}
	PG_END_TRY();
	rconn->query_active = false;
	return last;
}

/*
 * Run a catalog query and return its result (the caller PQclears it).
 * With tolerate_error, a remote error (say, a system view the user may
 * not read) gives NULL instead of an error.
 */
PGresult *
redshift_catalog_query(RedshiftConn *rconn, const char *sql,
					   bool tolerate_error)
{
	PGresult *res;

	if (!tolerate_error)
		return redshift_exec(rconn, sql);
	redshift_send_query(rconn, sql, NULL, 0, NULL);
	res = redshift_get_result(rconn, sql);
	if (res != NULL)
	{
		PGresult *extra;

		while ((extra = redshift_get_result(rconn, sql)) != NULL)
			PQclear(extra);
	}
	rconn->query_active = false;
	if (res != NULL && PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		PQclear(res);
		return NULL;
	}
	return res;
}

/*
 * Stop a query whose results are no longer wanted: cancel it and read
 * what is left, so the connection can serve the next query.  Returns false
 * when that did not work out in time and the connection must be closed.
 */
static bool
cancel_and_drain(RedshiftConn *rconn)
{
	PGconn *conn = rconn->conn;
	PGcancel *cancel;
	char errbuf[256];
	TimestampTz deadline;
	PGresult *res;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
		return false;

	/*
	 * Read what has already arrived first: when the query has in fact
	 * finished, no cancel is sent (a late cancel could hit the next query
	 * on this connection).
	 */
	if (!PQconsumeInput(conn))
		return false;
	while (!PQisBusy(conn))
	{
		res = PQgetResult(conn);
		if (res == NULL)
			return PQtransactionStatus(conn) == PQTRANS_IDLE;
		PQclear(res);
	}
	if (PQisBusy(conn) || PQtransactionStatus(conn) == PQTRANS_ACTIVE)
	{
		cancel = PQgetCancel(conn);
		if (cancel == NULL)
			return false;
		if (!PQcancel(cancel, errbuf, sizeof(errbuf)))
		{
			PQfreeCancel(cancel);
			return false;
		}
		PQfreeCancel(cancel);
	}
	deadline =
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CANCEL_WAIT_MS);
	for (;;)
	{
		while (PQisBusy(conn))
		{
			long wait_ms = TimestampDifferenceMilliseconds(
				GetCurrentTimestamp(), deadline);
			int rc;

			if (wait_ms <= 0)
				return false;
			rc = WaitLatchOrSocket(MyLatch,
								   WL_LATCH_SET | WL_SOCKET_READABLE |
									   WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								   PQsocket(conn), wait_ms, PG_WAIT_EXTENSION);
			if (rc & WL_LATCH_SET)
				ResetLatch(MyLatch);
			if ((rc & WL_SOCKET_READABLE) && !PQconsumeInput(conn))
				return false;
		}
		res = PQgetResult(conn);
		if (res == NULL)
			break;
		PQclear(res);
	}
	return PQtransactionStatus(conn) == PQTRANS_IDLE;
}

/*
 * Read and discard whatever results of the current query are left, so a
 * query can end early (LIMIT evaluated locally, rescans).
 */
void
redshift_finish_query(RedshiftConn *rconn)
{
	if (!rconn->query_active)
		return;
	if (!cancel_and_drain(rconn))
	{
		PQfinish(rconn->conn);
		rconn->conn = NULL;
		rconn->invalidated = true;
	}
	rconn->query_active = false;
}

/*
 * Give a connection back to the pool; one whose query could not be
 * stopped, or that was invalidated, is closed.
 */
void
redshift_release_connection(RedshiftConn *rconn)
{
	redshift_finish_query(rconn);
	rconn->busy = false;
	if (rconn->invalidated || rconn->conn == NULL ||
		PQstatus(rconn->conn) != CONNECTION_OK)
		close_connection(rconn);
}

/*
 * Report a remote error (res may be NULL: then the connection's message)
 * keeping Redshift's SQLSTATE, message, detail and hint, with the remote
 * SQL as context.  The PGresult is freed before raising.
 */
void
redshift_report_error(PGresult *res, RedshiftConn *rconn, const char *sql)
{
	char *sqlstate = NULL;
	char *primary = NULL;
	char *detail = NULL;
	char *hint = NULL;
	char *context = NULL;
	int code = ERRCODE_CONNECTION_FAILURE;

	if (res)
	{
		const char *s;

		if ((s = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL)
			sqlstate = pstrdup(s);
		if ((s = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) != NULL)
			primary = pstrdup(s);
		if ((s = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) != NULL)
			detail = pstrdup(s);
		if ((s = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT)) != NULL)
			hint = pstrdup(s);
		if ((s = PQresultErrorField(res, PG_DIAG_CONTEXT)) != NULL)
			context = pstrdup(s);
		PQclear(res);
	}
	if (sqlstate && strlen(sqlstate) == 5)
		code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2],
							 sqlstate[3], sqlstate[4]);
	if (primary == NULL && rconn && rconn->conn)
	{
		ForeignServer *server =
			GetForeignServerExtended(rconn->serverid, FSV_MISSING_OK);

		/* the connection itself failed: say to which server */
		primary = psprintf("connection to server \"%s\" failed: %s",
						   server ? server->servername : "?",
						   pchomp(PQerrorMessage(rconn->conn)));
	}
	if (res == NULL && rconn)
	{
		/* the connection itself failed: it cannot be reused */
		rconn->invalidated = true;
		rconn->query_active = false;
	}
	ereport(ERROR,
			(errcode(code),
			 primary ? errmsg_internal("%s", primary)
					 : errmsg("could not obtain message string for remote "
							  "error"),
			 detail ? errdetail_internal("%s", detail) : 0,
			 hint ? errhint("%s", hint) : 0,
			 context ? errcontext("%s", context) : 0,
			 sql ? errcontext("remote SQL command: %s", sql) : 0));
}

/*
 * Close the idle connections of a server (all users); busy ones are
 * closed when released.  Returns how many were closed or marked.
 */
int
redshift_disconnect_server(Oid serverid)
{
	RedshiftConn *rconn;
	RedshiftConn *next;
	int count = 0;

	for (rconn = connections; rconn != NULL; rconn = next)
	{
		next = rconn->next;
		if (serverid != InvalidOid && rconn->serverid != serverid)
			continue;
		count++;
		if (rconn->busy)
			rconn->invalidated = true;
		else
			close_connection(rconn);
	}
	return count;
}

/* Close every connection of this backend (see above for busy ones). */
int
redshift_disconnect_all(void)
{
	return redshift_disconnect_server(InvalidOid);
}

/* The pool, for the connections view. */
RedshiftConn *
redshift_connection_list(void)
{
	return connections;
}

/*
 * At the end of a transaction, connections still held belong to scans
 * that did not end normally (an error): release them.
 */
static void
connection_xact_callback(XactEvent event, void *arg)
{
	RedshiftConn *rconn;
	RedshiftConn *next;

	if (event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_PREPARE)
		return;
	for (rconn = connections; rconn != NULL; rconn = next)
	{
		next = rconn->next;
		if (rconn->busy)
			redshift_release_connection(rconn);
	}
}

/*
 * Same at subtransaction abort, for connections acquired inside it.
 */
static void
connection_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	RedshiftConn *rconn;
	RedshiftConn *next;
	int level = GetCurrentTransactionNestLevel();

	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (rconn = connections; rconn != NULL; rconn = next)
	{
		next = rconn->next;
		if (rconn->busy && rconn->acquired_level >= level)
			redshift_release_connection(rconn);
	}
}

/*
 * A server or user mapping changed: its connections must not be reused.
 */
static void
connection_inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	RedshiftConn *rconn;
	RedshiftConn *next;

	for (rconn = connections; rconn != NULL; rconn = next)
	{
		next = rconn->next;
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && rconn->server_hash == hashvalue) ||
			(cacheid == USERMAPPINGOID && rconn->mapping_hash == hashvalue))
		{
			if (rconn->busy)
				rconn->invalidated = true;
			else
				close_connection(rconn);
		}
	}
}
