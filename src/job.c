/*
 * job.c
 *		The scheduler's worker: runs one binding once, as its owner, and
 *		records the run.
 *
 * The launcher has already recorded the run (status 'running') and passes
 * its id.  The worker connects as the binding's owner, so the owner's
 * privileges and row-level security apply to everything it does; takes
 * the binding's advisory lock for the whole run, so a binding never runs
 * twice at once; polls in batches, each committed with its cursor (a
 * failure keeps what was committed, and the next run resumes there); and
 * records the outcome with secrets redacted.  If it is terminated, the
 * launcher sees it exit and marks the run failed.
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "catalog/pg_user_mapping.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "option.h"
#include "redact.h"
#include "scan.h"
#include "scheduler.h"

/* Rows a worker polls per committed batch. */
#define JOB_BATCH_ROWS 100000

/*
 * Bookkeeping transactions (taking, recording and claiming runs) do not
 * wait for their commit to reach disk: lost in a crash, the run is reaped
 * as interrupted and retried, while the data a run writes commits in its
 * own transactions, at the server's setting.
 */
#define BOOKKEEPING_COMMIT "SET LOCAL synchronous_commit = off"

/* How long a worker with nothing to do waits to be handed a run. */
#define JOB_IDLE_MS 10000

/* A worker hands over to a fresh process after this many runs or this long. */
#define JOB_MAX_RUNS 1000
#define JOB_MAX_LIFETIME_MS (10 * 60 * 1000)

/* What the worker knows about its run. */
typedef struct JobRun
{
	int64 run_id;
	char *kind;
	char *binding;
	TimestampTz started; /* the run's start */
	List *secrets;		 /* values to redact from errors */
	bool found;			 /* the binding still exists */
	bool locked;		 /* holds the binding's advisory lock */
	int64 lock_key;		 /* that lock's key */
} JobRun;

PG_FUNCTION_INFO_V1(redshift_fdw_in_scheduler_worker);

/* Set in the scheduler's workers only. */
static bool in_scheduler_worker = false;

/* Memory of the current run: what it reads outlives its transactions. */
static MemoryContext run_memory = NULL;

/* A unit of work done in a transaction of its own, through SPI. */
typedef void (*JobStep)(JobRun *run, void *state);

/* Runs a SQL statement, raising an error if SPI itself fails. */
static void
job_exec(const char *sql, int nargs, Oid *types, Datum *values)
{
	int rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (rc < 0)
		elog(ERROR, "redshift_fdw worker: SPI failed (%d) on: %s", rc, sql);
}

/* The text of column n (1-based) of the first result row, or NULL. */
static char *
job_value(int column)
{
	char *value;

	if (SPI_processed < 1)
		return NULL;
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column);
	return value ? MemoryContextStrdup(run_memory, value) : NULL;
}

/* Column n of the first result row as a boolean (false when NULL). */
static bool
job_value_bool(int column)
{
	char *value = job_value(column);

	return value != NULL && strcmp(value, "t") == 0;
}

/* Column n of the first result row as a bigint (0 when NULL). */
static int64
job_value_int64(int column)
{
	char *value = job_value(column);

	return value ? strtoll(value, NULL, 10) : 0;
}

/*
 * One error as it is recorded: message, detail and hint, secrets
 * redacted.
 */
static char *
describe_error(ErrorData *edata, List *secrets)
{
	StringInfoData text;
	const char **values;
	char *redacted;
	char *result;
	ListCell *lc;
	int n = 0;

	initStringInfo(&text);
	appendStringInfoString(&text, edata->message ? edata->message : "error");
	if (edata->detail)
		appendStringInfo(&text, "\nDETAIL: %s", edata->detail);
	if (edata->hint)
		appendStringInfo(&text, "\nHINT: %s", edata->hint);
	values = palloc(sizeof(char *) * (list_length(secrets) + 1));
	foreach (lc, secrets)
		values[n++] = lfirst(lc);
	redacted = redact_secrets(text.data, values, n);
	if (redacted == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	result = pstrdup(redacted);
	free(redacted);
	return result;
}

/*
 * Runs step in a transaction of its own.  On an error, rolls back and
 * returns false with the error (redacted) in *error and its SQLSTATE in
 * *sqlerrcode; interrupts that end the process (terminate, shutdown) are
 * not caught.
 */
static bool
run_in_transaction(JobRun *run, JobStep step, void *state, char **error,
				   int *sqlerrcode)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		SPI_connect();
		step(run, state);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		*error = describe_error(edata, run ? run->secrets : NIL);
		*sqlerrcode = edata->sqlerrcode;
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}

/*
 * The secret options of the user mapping the owner uses for server, so
 * that they can be redacted from errors.
 */
static List *
mapping_secrets(const char *server_name)
{
	ForeignServer *server = GetForeignServerByName(server_name, true);
	HeapTuple tuple;
	List *secrets = NIL;
	ListCell *lc;

	if (server == NULL)
		return NIL;
	tuple =
		SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(GetUserId()),
						ObjectIdGetDatum(server->serverid));
	if (!HeapTupleIsValid(tuple))
		tuple = SearchSysCache2(USERMAPPINGUSERSERVER,
								ObjectIdGetDatum(InvalidOid),
								ObjectIdGetDatum(server->serverid));
	if (HeapTupleIsValid(tuple))
	{
		bool isnull;
		Datum datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tuple,
									  Anum_pg_user_mapping_umoptions, &isnull);

		if (!isnull)
			secrets =
				redshift_secret_option_values(untransformRelOptions(datum));
		ReleaseSysCache(tuple);
	}
	/* keep them past this transaction */
	{
		List *kept = NIL;
		MemoryContext old = MemoryContextSwitchTo(run_memory);

		foreach (lc, secrets)
			kept = lappend(kept, pstrdup(lfirst(lc)));
		MemoryContextSwitchTo(old);
		return kept;
	}
}

/* Step: take the run (records this process and the start). */
static void
step_start_run(JobRun *run, void *state)
{
	bool *taken = state;
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(run->run_id)};

	job_exec(BOOKKEEPING_COMMIT, 0, NULL, NULL);
	job_exec("SELECT kind, binding, started FROM redshift_fdw._start_run($1)",
			 1, types, values);
	run->kind = job_value(1);
	run->binding = job_value(2);
	*taken = run->kind != NULL;
	if (!*taken)
		return;
	{
		bool isnull;

		run->started = DatumGetTimestampTz(SPI_getbinval(
			SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	}
	{
		Oid qtypes[1] = {TEXTOID};
		Datum qvalues[1] = {CStringGetTextDatum(run->binding)};
		char *server;

		/*
		 * The binding's advisory lock, held by the session for the run; its
		 * key is private to the owner, so no other role can take it.
		 */
		job_exec(
			strcmp(run->kind, "capture") == 0
				? "SELECT server, lock_key, pg_try_advisory_lock(lock_key) "
				  "FROM redshift_fdw.capture WHERE name = $1"
				: "SELECT server, lock_key, pg_try_advisory_lock(lock_key) "
				  "FROM redshift_fdw.materialization WHERE name = $1",
			1, qtypes, qvalues);
		server = job_value(1);
		run->found = server != NULL;
		run->lock_key = job_value_int64(2);
		run->locked = job_value_bool(3);
		if (server)
			run->secrets = mapping_secrets(server);
	}
}

/* What a capture run has done so far. */
typedef struct CaptureProgress
{
	int64 rows;
	bool more;
} CaptureProgress;

/* Step: one batch of a capture poll, committed with its cursor. */
static void
step_capture_batch(JobRun *run, void *state)
{
	CaptureProgress *progress = state;
	Oid types[4] = {TEXTOID, INT8OID, TIMESTAMPTZOID, INT8OID};
	Datum values[4] = {
		CStringGetTextDatum(run->binding), Int64GetDatum(JOB_BATCH_ROWS),
		TimestampTzGetDatum(run->started), Int64GetDatum(progress->rows)};

	job_exec("SELECT rows_captured, more FROM redshift_fdw._capture_step("
			 "$1, $2, $3, $4)",
			 4, types, values);
	progress->rows += job_value_int64(1);
	progress->more = job_value_bool(2);
}

/* What an apply did. */
typedef struct ApplyProgress
{
	int64 rows;
	int64 bytes;
} ApplyProgress;

/*
 * Step: one apply of a materialization (its Redshift transaction and the
 * local trim commit together with this step).
 */
static void
step_apply(JobRun *run, void *state)
{
	ApplyProgress *progress = state;
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(run->binding)};

	job_exec("SELECT rows, bytes FROM redshift_fdw._apply($1)", 1, types,
			 values);
	progress->rows = job_value_int64(1);
	progress->bytes = job_value_int64(2);
}

/* The outcome of a run, for step_finish_run. */
typedef struct RunOutcome
{
	const char *status;
	int64 rows;
	int64 bytes;
	const char *error;
	bool claim_next;	  /* take the next due binding of this role */
	int64 next_run_id;	  /* set when claim_next found one */
	TimestampTz next_due; /* when the binding is due next */
	bool has_next_due;
} RunOutcome;

/* Step: record how the run ended (and what follows for the binding). */
static void
step_finish_run(JobRun *run, void *state)
{
	RunOutcome *outcome = state;
	Oid types[5] = {INT8OID, TEXTOID, INT8OID, INT8OID, TEXTOID};
	Datum values[5] = {
		Int64GetDatum(run->run_id), CStringGetTextDatum(outcome->status),
		Int64GetDatum(outcome->rows), Int64GetDatum(outcome->bytes),
		outcome->error ? CStringGetTextDatum(outcome->error) : (Datum) 0};
	char nulls[5] = {' ', ' ', ' ', ' ', outcome->error ? ' ' : 'n'};
	int rc;

	job_exec(BOOKKEEPING_COMMIT, 0, NULL, NULL);
	rc = SPI_execute_with_args(
		"SELECT redshift_fdw._finish_run($1, $2, $3, $4, $5)", 5, types,
		values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "redshift_fdw worker: SPI failed (%d) recording run", rc);
	if (SPI_processed == 1)
	{
		bool isnull;
		Datum next = SPI_getbinval(SPI_tuptable->vals[0],
								   SPI_tuptable->tupdesc, 1, &isnull);

		outcome->next_due = isnull ? 0 : DatumGetTimestampTz(next);
		outcome->has_next_due = !isnull;
	}
	if (run->locked)
	{
		Oid ltypes[1] = {INT8OID};
		Datum lvalues[1] = {Int64GetDatum(run->lock_key)};

		job_exec("SELECT pg_advisory_unlock($1)", 1, ltypes, lvalues);
	}
	outcome->next_run_id = 0;
	if (outcome->claim_next)
	{
		job_exec("SELECT redshift_fdw._claim_next_run()", 0, NULL, NULL);
		outcome->next_run_id = job_value_int64(1);
	}
}

/*
 * Runs one claimed run to its end and records it, in as few transactions
 * as it can: take the run and the binding's lock; poll, a transaction per
 * batch; record the outcome, release the lock and (if may_claim) claim
 * the next due binding of this role, whose run id it returns (0: none, or
 * the run was no longer this worker's to take).
 */
static int64
run_one(int64 run_id, bool may_claim)
{
	JobRun run = {0};
	RunOutcome outcome = {"succeeded", 0, 0, NULL, may_claim, 0, 0, false};
	CaptureProgress progress = {0, true};
	uint64 bytes_before;
	bool flag = false;
	char *error = NULL;
	int sqlerrcode = 0;

	run.run_id = run_id;
	if (!run_in_transaction(&run, step_start_run, &flag, &error, &sqlerrcode))
		ereport(ERROR,
				(errcode(sqlerrcode),
				 errmsg("redshift_fdw worker could not start run " INT64_FORMAT
						": %s",
						run.run_id, error)));
	if (!flag)
		return 0; /* reaped or taken meanwhile */
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("%s binding %s", run.kind, run.binding));

	if (!run.found)
	{
		outcome.status = "failed";
		error = psprintf("%s binding \"%s\" no longer exists", run.kind,
						 run.binding);
	}
	else if (!run.locked)
	{
		outcome.status = "skipped";
		error = psprintf("%s binding \"%s\" is being run by another session",
						 run.kind, run.binding);
	}
	bytes_before = redshift_scan_bytes_received;
	if (strcmp(run.kind, "materialization") == 0 &&
		strcmp(outcome.status, "succeeded") == 0)
	{
		ApplyProgress applied = {0, 0};

		if (!run_in_transaction(&run, step_apply, &applied, &error,
								&sqlerrcode))
			outcome.status = "failed";
		progress.rows = applied.rows;
		progress.more = false;
		bytes_before = redshift_scan_bytes_received - applied.bytes;
	}
	while (strcmp(outcome.status, "succeeded") == 0 && progress.more)
	{
		CHECK_FOR_INTERRUPTS();
		if (!run_in_transaction(&run, step_capture_batch, &progress, &error,
								&sqlerrcode))
			outcome.status = "failed";
	}
	outcome.rows = progress.rows;
	outcome.bytes = (int64) (redshift_scan_bytes_received - bytes_before);
	outcome.error = error;
	if (strcmp(outcome.status, "failed") == 0)
		ereport(
			LOG,
			(errcode(sqlerrcode),
			 errmsg("redshift_fdw: %s binding \"%s\" failed (run " INT64_FORMAT
					"): %s",
					run.kind, run.binding, run.run_id, error)));
	else
		ereport(DEBUG1,
				(errmsg("redshift_fdw: %s binding \"%s\" %s (run " INT64_FORMAT
						"): " INT64_FORMAT " rows",
						run.kind, run.binding, outcome.status, run.run_id,
						outcome.rows)));
	if (!run_in_transaction(&run, step_finish_run, &outcome, &error,
							&sqlerrcode))
		ereport(
			ERROR,
			(errcode(sqlerrcode),
			 errmsg("redshift_fdw worker could not record run " INT64_FORMAT
					": %s",
					run.run_id, error)));
	if (outcome.has_next_due)
		redshift_scheduler_note_due(outcome.next_due);
	pgstat_report_activity(STATE_IDLE, NULL);
	return outcome.next_run_id;
}

/*
 * redshift_fdw._in_scheduler_worker(): whether this process is a scheduler
 * worker, so that the functions that take, finish and claim runs refuse
 * everyone else.  A session cannot set this.
 */
Datum
redshift_fdw_in_scheduler_worker(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(in_scheduler_worker);
}

/*
 * The worker: run id, database and owner in bgw_extra.  After
 * its run it takes the next binding of the same role that is due, if any
 * (up to JOB_MAX_RUNS runs or JOB_MAX_LIFETIME_MS, then it leaves the
 * launcher to start a fresh one), and exits when none is due.  SIGTERM
 * (pg_terminate_backend, shutdown) ends it at once, like any backend; the
 * launcher then marks its run failed.
 */
void
redshift_fdw_worker_main(Datum main_arg)
{
	JobWorkerArgs args;
	int64 run_id;
	TimestampTz born;
	MemoryContext run_cxt;
	int runs = 0;

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	run_id = args.run_id;
	in_scheduler_worker = true;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.database, args.owner, 0);
	/* runs are written for READ COMMITTED, whatever the cluster's default */
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	pgstat_report_appname("redshift_fdw worker");
	born = GetCurrentTimestamp();
	redshift_scheduler_worker_attach(args.owner);
	run_cxt = AllocSetContextCreate(TopMemoryContext, "redshift_fdw run",
									ALLOCSET_DEFAULT_SIZES);
	run_memory = run_cxt;

	while (run_id != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(run_cxt);
		bool may_claim = ++runs < JOB_MAX_RUNS &&
						 !TimestampDifferenceExceeds(
							 born, GetCurrentTimestamp(), JOB_MAX_LIFETIME_MS);

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		run_id = run_one(run_id, may_claim);
		/* nothing due for this role now: wait a while to be handed a run */
		if (run_id == 0 && may_claim)
			run_id = redshift_scheduler_worker_wait(JOB_IDLE_MS);
		MemoryContextSwitchTo(old);
		MemoryContextReset(run_cxt);
	}
	proc_exit(0);
}
