/*
 * scheduler.c
 *		The scheduler's launcher: settings, shared state, waking it, and
 *		its main loop.  See scheduler.h.
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "scheduler.h"

PG_FUNCTION_INFO_V1(redshift_fdw_scheduler_state);
PG_FUNCTION_INFO_V1(redshift_fdw_wake_scheduler);

/* Longest the launcher sleeps without looking at the catalog. */
#define LAUNCHER_MAX_SLEEP_MS 60000
/* Sleep after an error in the launcher's loop, or without the extension. */
#define LAUNCHER_ERROR_SLEEP_MS 5000
#define LAUNCHER_NO_EXTENSION_SLEEP_MS 10000
/* How often finished runs past the retention are deleted. */
#define LAUNCHER_PRUNE_INTERVAL_MS 60000
/* Seconds before the postmaster restarts a launcher that exited. */
#define LAUNCHER_RESTART_SECONDS 5

char *redshift_scheduler_database = NULL;
int redshift_scheduler_max_workers = 4;
int redshift_scheduler_run_retention = 7 * 24 * 3600;

/* State shared by the launcher with every backend (for status and wake). */
typedef struct SchedulerShared
{
	slock_t mutex;
	pid_t launcher_pid;	 /* 0: not running */
	int launcher_procno; /* its PGPROC, for its latch; -1: none */
	Oid database;		 /* the database it serves */
	int running_workers; /* workers it has started that are still alive */
} SchedulerShared;

static SchedulerShared *scheduler_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* A worker the launcher started, until it sees it exit. */
typedef struct LauncherWorker
{
	int64 run_id;
	BackgroundWorkerHandle *handle;
} LauncherWorker;

static volatile sig_atomic_t launcher_stop_requested = false;

/* Backend-local: wake the launcher when this transaction commits. */
static bool wake_at_commit = false;
static bool wake_callback_registered = false;

/*
 * Defines the scheduler's settings.  redshift_fdw.database only when
 * preloading (a postmaster setting cannot be created later); the others
 * always, so that they can be set and shown in either case.
 */
void
redshift_scheduler_define_gucs(void)
{
	if (process_shared_preload_libraries_in_progress)
		DefineCustomStringVariable(
			"redshift_fdw.database",
			"Database whose bindings the redshift_fdw scheduler runs.", NULL,
			&redshift_scheduler_database, "postgres", PGC_POSTMASTER, 0, NULL,
			NULL, NULL);
	DefineCustomIntVariable(
		"redshift_fdw.max_workers",
		"Most bindings the redshift_fdw scheduler runs at the same time.",
		"Each running binding takes one of max_worker_processes.",
		&redshift_scheduler_max_workers, 4, 1, 1000, PGC_SIGHUP, 0, NULL, NULL,
		NULL);
	DefineCustomIntVariable(
		"redshift_fdw.run_retention",
		"How long finished runs are kept in redshift_fdw.runs.", NULL,
		&redshift_scheduler_run_retention, 7 * 24 * 3600, 60, INT_MAX,
		PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	MarkGUCPrefixReserved("redshift_fdw");
}

/* Asks for the shared state's memory. */
static void
scheduler_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SchedulerShared)));
}

/* Creates (or attaches to) the shared state. */
static void
scheduler_shmem_startup(void)
{
	bool found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	scheduler_shared = ShmemInitStruct("redshift_fdw scheduler",
									   sizeof(SchedulerShared), &found);
	if (!found)
	{
		SpinLockInit(&scheduler_shared->mutex);
		scheduler_shared->launcher_pid = 0;
		scheduler_shared->launcher_procno = -1;
		scheduler_shared->database = InvalidOid;
		scheduler_shared->running_workers = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Registers the launcher and the shared-memory hooks.  Only possible
 * while shared_preload_libraries is being processed.
 */
void
redshift_scheduler_register(void)
{
	BackgroundWorker worker;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = scheduler_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = scheduler_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags =
		BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = LAUNCHER_RESTART_SECONDS;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "redshift_fdw");
	snprintf(worker.bgw_function_name, BGW_MAXLEN,
			 "redshift_fdw_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "redshift_fdw launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "redshift_fdw launcher");
	RegisterBackgroundWorker(&worker);
}

/* Sets the launcher's latch, if there is a launcher. */
static void
wake_launcher(void)
{
	int procno;

	if (scheduler_shared == NULL)
		return;
	SpinLockAcquire(&scheduler_shared->mutex);
	procno = scheduler_shared->launcher_procno;
	SpinLockRelease(&scheduler_shared->mutex);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * Wakes the launcher once the transaction that asked for it commits, so
 * it reads the change; an aborted transaction wakes nobody.
 */
static void
wake_at_commit_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				wake_launcher();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * redshift_fdw._wake_scheduler(): the launcher looks at the catalog again
 * when this transaction commits (a binding was created, changed or asked
 * to run now).
 */
Datum
redshift_fdw_wake_scheduler(PG_FUNCTION_ARGS)
{
	if (!wake_callback_registered)
	{
		RegisterXactCallback(wake_at_commit_callback, NULL);
		wake_callback_registered = true;
	}
	wake_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * redshift_fdw.scheduler(): whether the scheduler runs this database's
 * bindings, and if not, why and what to do.
 */
Datum
redshift_fdw_scheduler_state(PG_FUNCTION_ARGS)
{
	TupleDesc tupdesc;
	Datum values[5];
	bool nulls[5] = {false, false, false, false, false};
	pid_t pid = 0;
	Oid database = InvalidOid;
	const char *state;
	const char *hint = NULL;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (scheduler_shared != NULL)
	{
		SpinLockAcquire(&scheduler_shared->mutex);
		pid = scheduler_shared->launcher_pid;
		database = scheduler_shared->database;
		SpinLockRelease(&scheduler_shared->mutex);
	}
	if (scheduler_shared == NULL)
	{
		state = "off";
		hint = "Add redshift_fdw to shared_preload_libraries in "
			   "postgresql.conf and restart the server to run bindings on "
			   "their schedules.";
	}
	else if (pid == 0)
	{
		state = "stopped";
		hint = "The scheduler's launcher is not running; the server log "
			   "says why. It restarts within a few seconds.";
	}
	else if (database != MyDatabaseId)
	{
		state = "other database";
		hint = psprintf("The scheduler runs the bindings of database "
						"\"%s\". Set redshift_fdw.database = '%s' and "
						"restart the server to run this database's "
						"bindings.",
						redshift_scheduler_database,
						get_database_name(MyDatabaseId));
	}
	else
		state = "running";

	values[0] = CStringGetTextDatum(state);
	values[1] = Int32GetDatum((int32) pid);
	nulls[1] = pid == 0;
	if (redshift_scheduler_database)
		values[2] = CStringGetTextDatum(redshift_scheduler_database);
	nulls[2] = redshift_scheduler_database == NULL;
	values[3] = Int32GetDatum(redshift_scheduler_max_workers);
	values[4] = hint ? CStringGetTextDatum(hint) : (Datum) 0;
	nulls[4] = hint == NULL;
	PG_RETURN_DATUM(
		HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* SIGTERM: finish the current step and exit. */
static void
launcher_sigterm(SIGNAL_ARGS)
{
	int save_errno = errno;

	launcher_stop_requested = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Clears the shared state when the launcher exits, however it exits. */
static void
launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&scheduler_shared->mutex);
	scheduler_shared->launcher_pid = 0;
	scheduler_shared->launcher_procno = -1;
	scheduler_shared->running_workers = 0;
	SpinLockRelease(&scheduler_shared->mutex);
}

/*
 * Starts the worker of one claimed run.  False when no background worker
 * slot is free (max_worker_processes).
 */
static bool
start_worker(int64 run_id, Oid owner, const char *kind, const char *binding,
			 BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	JobWorkerArgs args;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags =
		BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "redshift_fdw");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "redshift_fdw_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "redshift_fdw worker: %s %s", kind,
			 binding);
	snprintf(worker.bgw_type, BGW_MAXLEN, "redshift_fdw worker");
	worker.bgw_main_arg = Int64GetDatum(run_id);
	worker.bgw_notify_pid = MyProcPid;
	args.database = MyDatabaseId;
	args.owner = owner;
	memcpy(worker.bgw_extra, &args, sizeof(args));
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/* The runs of workers that have exited since the last look, as SQL text. */
static char *
collect_stopped_workers(LauncherWorker *workers, int *nworkers)
{
	StringInfoData ids;
	int i = 0;

	initStringInfo(&ids);
	appendStringInfoChar(&ids, '{');
	while (i < *nworkers)
	{
		pid_t pid;

		if (GetBackgroundWorkerPid(workers[i].handle, &pid) != BGWH_STOPPED)
		{
			i++;
			continue;
		}
		if (ids.len > 1)
			appendStringInfoChar(&ids, ',');
		appendStringInfo(&ids, INT64_FORMAT, workers[i].run_id);
		pfree(workers[i].handle);
		workers[i] = workers[--(*nworkers)];
	}
	appendStringInfoChar(&ids, '}');
	return ids.data;
}

/* Runs a SQL statement of the launcher, raising its error. */
static void
launcher_exec(const char *sql, int nargs, Oid *types, Datum *values)
{
	int rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (rc < 0)
		elog(ERROR, "redshift_fdw launcher: SPI failed (%d) on: %s", rc, sql);
}

/* One claimed run, copied out of the claiming transaction. */
typedef struct ClaimedRun
{
	int64 run_id;
	Oid owner;
	char *kind;
	char *binding;
} ClaimedRun;

/*
 * One look at the catalog: reap the runs of workers that are gone, prune
 * old runs, claim due bindings and start their workers.  Returns how long
 * to sleep, in milliseconds.
 */
static long
launcher_iteration(LauncherWorker *workers, int *nworkers, bool at_start,
				   TimestampTz *last_prune)
{
	char *stopped;
	ClaimedRun *claimed = NULL;
	int nclaimed = 0;
	TimestampTz next_due = 0;
	bool have_next = false;
	long sleep_ms = LAUNCHER_MAX_SLEEP_MS;
	int free_slots;
	int i;
	MemoryContext cxt = CurrentMemoryContext;

	stopped = collect_stopped_workers(workers, nworkers);
	free_slots = Max(redshift_scheduler_max_workers - *nworkers, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (!OidIsValid(get_extension_oid("redshift_fdw", true)))
	{
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
		return LAUNCHER_NO_EXTENSION_SLEEP_MS;
	}
	pgstat_report_activity(STATE_RUNNING, "claiming due bindings");
	SPI_connect();
	{
		Oid types[2] = {TEXTOID, BOOLOID};
		Datum values[2] = {CStringGetTextDatum(stopped),
						   BoolGetDatum(at_start)};

		launcher_exec("SELECT redshift_fdw._reap_runs($1::bigint[], $2)", 2,
					  types, values);
	}
	if (TimestampDifferenceExceeds(*last_prune, GetCurrentTimestamp(),
								   LAUNCHER_PRUNE_INTERVAL_MS))
	{
		Oid types[1] = {TEXTOID};
		Datum values[1] = {CStringGetTextDatum(
			psprintf("%d seconds", redshift_scheduler_run_retention))};

		launcher_exec("SELECT redshift_fdw._prune_runs($1::interval)", 1,
					  types, values);
		*last_prune = GetCurrentTimestamp();
	}
	{
		Oid types[1] = {INT4OID};
		Datum values[1] = {Int32GetDatum(free_slots)};
		uint64 row;

		launcher_exec("SELECT run_id, owner, kind, binding, next_due "
					  "FROM redshift_fdw._claim_due_jobs($1)",
					  1, types, values);
		claimed = MemoryContextAlloc(
			TopMemoryContext, sizeof(ClaimedRun) * Max(SPI_processed, 1));
		for (row = 0; row < SPI_processed; row++)
		{
			HeapTuple tuple = SPI_tuptable->vals[row];
			TupleDesc desc = SPI_tuptable->tupdesc;
			bool isnull;
			Datum run_id = SPI_getbinval(tuple, desc, 1, &isnull);
			Datum due;

			if (!isnull)
			{
				ClaimedRun *run = &claimed[nclaimed++];

				run->run_id = DatumGetInt64(run_id);
				run->owner =
					DatumGetObjectId(SPI_getbinval(tuple, desc, 2, &isnull));
				run->kind = MemoryContextStrdup(TopMemoryContext,
												SPI_getvalue(tuple, desc, 3));
				run->binding = MemoryContextStrdup(
					TopMemoryContext, SPI_getvalue(tuple, desc, 4));
				continue;
			}
			due = SPI_getbinval(tuple, desc, 5, &isnull);
			if (!isnull)
			{
				next_due = DatumGetTimestampTz(due);
				have_next = true;
			}
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	pgstat_report_activity(STATE_IDLE, NULL);

	/* the runs are committed: start their workers */
	for (i = 0; i < nclaimed; i++)
	{
		BackgroundWorkerHandle *handle;
		bool started;

		/* the handle lives until the launcher sees the worker exit */
		MemoryContextSwitchTo(TopMemoryContext);
		started = start_worker(claimed[i].run_id, claimed[i].owner,
							   claimed[i].kind, claimed[i].binding, &handle);
		MemoryContextSwitchTo(cxt);
		if (started)
		{
			workers[*nworkers].run_id = claimed[i].run_id;
			workers[*nworkers].handle = handle;
			(*nworkers)++;
		}
		else
		{
			Oid types[2] = {TEXTOID, TEXTOID};
			Datum values[2];

			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("redshift_fdw could not start a worker for %s "
							"binding \"%s\": no background worker slot is "
							"free",
							claimed[i].kind, claimed[i].binding),
					 errhint("Raise max_worker_processes, or lower "
							 "redshift_fdw.max_workers.")));
			values[0] = CStringGetTextDatum(
				psprintf("{" INT64_FORMAT "}", claimed[i].run_id));
			values[1] = CStringGetTextDatum(
				"no background worker slot was free to run it "
				"(max_worker_processes)");
			StartTransactionCommand();
			PushActiveSnapshot(GetTransactionSnapshot());
			SPI_connect();
			launcher_exec(
				"SELECT redshift_fdw._reap_runs($1::bigint[], false, $2)", 2,
				types, values);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			MemoryContextSwitchTo(cxt);
		}
		pfree(claimed[i].kind);
		pfree(claimed[i].binding);
	}
	pfree(claimed);

	SpinLockAcquire(&scheduler_shared->mutex);
	scheduler_shared->running_workers = *nworkers;
	SpinLockRelease(&scheduler_shared->mutex);

	if (have_next)
	{
		long secs;
		int usecs;

		TimestampDifference(GetCurrentTimestamp(), next_due, &secs, &usecs);
		sleep_ms =
			Min(secs * 1000 + (usecs + 999) / 1000, LAUNCHER_MAX_SLEEP_MS);
		/* due now but no slot free: a worker's exit sets the latch */
		if (sleep_ms == 0 && *nworkers >= redshift_scheduler_max_workers)
			sleep_ms = 1000;
	}
	return sleep_ms;
}

/*
 * The launcher: claims due bindings and starts their workers, forever.
 * An error in one look at the catalog is logged and retried after a
 * pause; SIGTERM and postmaster death end it.
 */
void
redshift_fdw_launcher_main(Datum main_arg)
{
	LauncherWorker *workers;
	int nworkers = 0;
	bool at_start = true;
	TimestampTz last_prune = 0;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, launcher_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(redshift_scheduler_database, NULL, 0);
	pgstat_report_appname("redshift_fdw launcher");

	SpinLockAcquire(&scheduler_shared->mutex);
	scheduler_shared->launcher_pid = MyProcPid;
	scheduler_shared->launcher_procno = MyProc->pgprocno;
	scheduler_shared->database = MyDatabaseId;
	scheduler_shared->running_workers = 0;
	SpinLockRelease(&scheduler_shared->mutex);
	before_shmem_exit(launcher_detach, (Datum) 0);
	ereport(LOG, (errmsg("redshift_fdw scheduler started in database \"%s\"",
						 redshift_scheduler_database)));

	/* room for every worker max_workers may ever allow */
	workers = MemoryContextAllocZero(TopMemoryContext,
									 sizeof(LauncherWorker) * 1000);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "redshift_fdw launcher",
									 ALLOCSET_DEFAULT_SIZES);

	while (!launcher_stop_requested)
	{
		long sleep_ms;
		MemoryContext oldcxt;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			sleep_ms =
				launcher_iteration(workers, &nworkers, at_start, &last_prune);
			at_start = false;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(loop_cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
			sleep_ms = LAUNCHER_ERROR_SLEEP_MS;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(loop_cxt);

		if (sleep_ms > 0)
			(void) WaitLatch(MyLatch,
							 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	ereport(LOG, (errmsg("redshift_fdw scheduler stopping")));
	/* exit code 1: the postmaster restarts the launcher unless shutting down */
	proc_exit(1);
}
