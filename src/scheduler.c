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
/* Longest the launcher waits for a lock a session holds. */
#define LAUNCHER_LOCK_TIMEOUT "SET LOCAL lock_timeout = '10s'"
/* Seconds before the postmaster restarts a launcher that exited. */
#define LAUNCHER_RESTART_SECONDS 5

char *redshift_scheduler_database = NULL;
int redshift_scheduler_max_workers = 4;
int redshift_scheduler_run_retention = 7 * 24 * 3600;

/*
 * A worker of the pool.  A worker that finished its run and found nothing
 * due waits idle for a while: the launcher hands it the next run of the
 * same owner (assigned_run) instead of starting a process, which costs
 * far more than the run itself on busy schedules.
 */
typedef struct WorkerSlot
{
	pid_t pid;			 /* 0: slot free */
	int procno;			 /* its PGPROC, for its latch */
	Oid owner;			 /* the role it runs as */
	bool idle;			 /* waiting for a run */
	int64 assigned_run;	 /* handed to it while idle; 0: none */
	bool exit_requested; /* the launcher needs its place */
} WorkerSlot;

/* State shared by the launcher with every backend (for status and wake). */
typedef struct SchedulerShared
{
	slock_t mutex;
	pid_t launcher_pid;	   /* 0: not running */
	int launcher_procno;   /* its PGPROC, for its latch; -1: none */
	Oid database;		   /* the database it serves */
	int max_workers;	   /* its redshift_fdw.max_workers, as last loaded */
	bool launcher_starved; /* due runs wait for a worker to be free */
	TimestampTz launcher_wake_at; /* when it next looks unless woken */
	int nslots;					  /* max_worker_processes */
	WorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} SchedulerShared;

/* This worker's slot, or NULL. */
static WorkerSlot *my_slot = NULL;

static SchedulerShared *scheduler_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* A worker the launcher started, until it sees it exit. */
typedef struct LauncherWorker
{
	int64 run_id;
	BackgroundWorkerHandle *handle;
} LauncherWorker;

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
}

/* Size of the shared state: a slot per possible background worker. */
static Size
scheduler_shmem_size(void)
{
	return add_size(offsetof(SchedulerShared, slots),
					mul_size(max_worker_processes, sizeof(WorkerSlot)));
}

/* Asks for the shared state's memory. */
static void
scheduler_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(scheduler_shmem_size()));
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
									   scheduler_shmem_size(), &found);
	if (!found)
	{
		SpinLockInit(&scheduler_shared->mutex);
		scheduler_shared->launcher_pid = 0;
		scheduler_shared->launcher_procno = -1;
		scheduler_shared->database = InvalidOid;
		scheduler_shared->max_workers = 0;
		scheduler_shared->nslots = max_worker_processes;
		memset(scheduler_shared->slots, 0,
			   sizeof(WorkerSlot) * max_worker_processes);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * What the launcher and the workers have in common: a database connection,
 * started once recovery is over, from this library.
 */
static void
describe_worker(BackgroundWorker *worker, const char *function,
				int restart_time)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags =
		BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker->bgw_restart_time = restart_time;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "redshift_fdw");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "%s", function);
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

	describe_worker(&worker, "redshift_fdw_launcher_main",
					LAUNCHER_RESTART_SECONDS);
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
	int max_workers = redshift_scheduler_max_workers;
	const char *state;
	const char *hint = NULL;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (scheduler_shared != NULL)
	{
		SpinLockAcquire(&scheduler_shared->mutex);
		pid = scheduler_shared->launcher_pid;
		database = scheduler_shared->database;
		if (pid != 0)
			max_workers = scheduler_shared->max_workers;
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
	values[3] = Int32GetDatum(max_workers);
	values[4] = hint ? CStringGetTextDatum(hint) : (Datum) 0;
	nulls[4] = hint == NULL;
	PG_RETURN_DATUM(
		HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * A worker finished a run of a binding that is next due at due: the
 * launcher did not count that binding while it ran, so it is woken if it
 * planned to look later than that.
 */
void
redshift_scheduler_note_due(TimestampTz due)
{
	bool wake;

	if (scheduler_shared == NULL)
		return;
	SpinLockAcquire(&scheduler_shared->mutex);
	wake = due < scheduler_shared->launcher_wake_at;
	SpinLockRelease(&scheduler_shared->mutex);
	if (wake)
		wake_launcher();
}

/* Frees this worker's slot at exit, however it exits. */
static void
worker_detach(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	SpinLockAcquire(&scheduler_shared->mutex);
	my_slot->pid = 0;
	my_slot->idle = false;
	my_slot->assigned_run = 0;
	SpinLockRelease(&scheduler_shared->mutex);
	my_slot = NULL;
}

/*
 * A worker joins the pool for its owner.  Without a free slot it still
 * runs, but cannot be handed further runs.
 */
void
redshift_scheduler_worker_attach(Oid owner)
{
	int i;

	SpinLockAcquire(&scheduler_shared->mutex);
	for (i = 0; i < scheduler_shared->nslots; i++)
	{
		WorkerSlot *slot = &scheduler_shared->slots[i];

		if (slot->pid != 0)
			continue;
		slot->pid = MyProcPid;
		slot->procno = MyProc->pgprocno;
		slot->owner = owner;
		slot->idle = false;
		slot->assigned_run = 0;
		slot->exit_requested = false;
		my_slot = slot;
		break;
	}
	SpinLockRelease(&scheduler_shared->mutex);
	if (my_slot != NULL)
		before_shmem_exit(worker_detach, (Datum) 0);
}

/*
 * A worker with nothing due waits up to idle_ms for the launcher to hand
 * it a run.  Returns the run's id, or 0 when it should exit (timed out,
 * or its place is needed).
 */
int64
redshift_scheduler_worker_wait(long idle_ms)
{
	TimestampTz until =
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), idle_ms);
	int64 run_id = 0;
	bool starved;

	if (my_slot == NULL)
		return 0;

	SpinLockAcquire(&scheduler_shared->mutex);
	my_slot->idle = true;
	my_slot->assigned_run = 0;
	starved = scheduler_shared->launcher_starved;
	SpinLockRelease(&scheduler_shared->mutex);
	/* due runs are waiting for a free worker: this one is free now */
	if (starved)
		wake_launcher();
	for (;;)
	{
		long secs;
		int usecs;
		bool done;
		bool timed_out = GetCurrentTimestamp() >= until;

		SpinLockAcquire(&scheduler_shared->mutex);
		run_id = my_slot->assigned_run;
		done = run_id != 0 || my_slot->exit_requested || timed_out;
		if (done)
		{
			/* leaving: no run can be handed over from here on */
			my_slot->idle = false;
			my_slot->assigned_run = 0;
		}
		SpinLockRelease(&scheduler_shared->mutex);
		if (done)
			return run_id;
		TimestampDifference(GetCurrentTimestamp(), until, &secs, &usecs);
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 secs * 1000 + usecs / 1000 + 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The launcher hands a run to an idle worker of its owner, if there is
 * one.  Otherwise, when no place is free (max_workers), it asks an idle
 * worker of another role to leave (*evicted).  True when handed over.
 */
static bool
hand_to_idle_worker(Oid owner, int64 run_id, bool need_place, bool *evicted)
{
	int i;
	int procno = -1;
	int evict_procno = -1;

	SpinLockAcquire(&scheduler_shared->mutex);
	for (i = 0; i < scheduler_shared->nslots && procno < 0; i++)
	{
		WorkerSlot *slot = &scheduler_shared->slots[i];

		if (slot->pid != 0 && slot->idle && slot->assigned_run == 0 &&
			!slot->exit_requested && slot->owner == owner)
		{
			slot->assigned_run = run_id;
			procno = slot->procno;
		}
	}
	for (i = 0; i < scheduler_shared->nslots && procno < 0 && need_place &&
				evict_procno < 0;
		 i++)
	{
		WorkerSlot *slot = &scheduler_shared->slots[i];

		if (slot->pid != 0 && slot->idle && slot->assigned_run == 0 &&
			!slot->exit_requested)
		{
			slot->exit_requested = true;
			evict_procno = slot->procno;
		}
	}
	SpinLockRelease(&scheduler_shared->mutex);
	if (procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
	if (evict_procno >= 0)
		SetLatch(&ProcGlobal->allProcs[evict_procno].procLatch);
	*evicted = evict_procno >= 0;
	return procno >= 0;
}

/* Clears the shared state when the launcher exits, however it exits. */
static void
launcher_detach(int code, Datum arg)
{
	SpinLockAcquire(&scheduler_shared->mutex);
	scheduler_shared->launcher_pid = 0;
	scheduler_shared->launcher_procno = -1;
	scheduler_shared->max_workers = 0;
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

	describe_worker(&worker, "redshift_fdw_worker_main", BGW_NEVER_RESTART);
	snprintf(worker.bgw_name, BGW_MAXLEN, "redshift_fdw worker: %s %s", kind,
			 binding);
	snprintf(worker.bgw_type, BGW_MAXLEN, "redshift_fdw worker");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = MyProcPid;
	args.run_id = run_id;
	args.database = MyDatabaseId;
	args.owner = owner;
	memcpy(worker.bgw_extra, &args, sizeof(args));
	return RegisterDynamicBackgroundWorker(&worker, handle);
}

/*
 * Workers of the pool waiting for a run, and those running one.  A worker
 * handed a run is busy from then on, though it may not have woken yet:
 * counted as idle, it would leave room for another run meanwhile, beyond
 * max_workers.
 */
static void
count_pool_workers(int *idle, int *busy)
{
	int i;

	*idle = 0;
	*busy = 0;
	SpinLockAcquire(&scheduler_shared->mutex);
	for (i = 0; i < scheduler_shared->nslots; i++)
	{
		WorkerSlot *slot = &scheduler_shared->slots[i];

		if (slot->pid == 0)
			continue;
		if (!slot->idle || slot->assigned_run != 0)
			(*busy)++;
		else if (!slot->exit_requested)
			(*idle)++;
	}
	SpinLockRelease(&scheduler_shared->mutex);
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
launcher_iteration(LauncherWorker *workers, int *nworkers,
				   TimestampTz *last_prune)
{
	char *stopped;
	ClaimedRun *claimed = NULL;
	int nclaimed = 0;
	TimestampTz next_due = 0;
	bool have_next = false;
	long sleep_ms = LAUNCHER_MAX_SLEEP_MS;
	bool starved = false;
	TimestampTz wake_at;
	int free_slots;
	int idle;
	int busy;
	int i;
	MemoryContext cxt = CurrentMemoryContext;

	/* until it sleeps again, any finished run is news (see note_due) */
	SpinLockAcquire(&scheduler_shared->mutex);
	scheduler_shared->launcher_wake_at = DT_NOEND;
	SpinLockRelease(&scheduler_shared->mutex);

	stopped = collect_stopped_workers(workers, nworkers);
	/*
	 * Runs that may start now: max_workers less the workers busy with a
	 * run (idle ones take runs of their role, or make room for another's).
	 * Busy ones are counted in the pool and among the workers this
	 * launcher started (some may not have joined the pool yet); idle ones
	 * beyond max_workers (it was lowered) never add room.
	 */
	count_pool_workers(&idle, &busy);
	free_slots = Max(redshift_scheduler_max_workers -
						 Max(Max(*nworkers - idle, 0), busy),
					 0);

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
	/* never stuck behind a lock: the next look retries */
	launcher_exec(LAUNCHER_LOCK_TIMEOUT, 0, NULL, NULL);
	{
		Oid types[1] = {TEXTOID};
		Datum values[1] = {CStringGetTextDatum(stopped)};

		launcher_exec("SELECT redshift_fdw._reap_runs($1::bigint[])", 1, types,
					  values);
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
		claimed = MemoryContextAlloc(cxt, sizeof(ClaimedRun) *
											  Max(SPI_processed, 1));
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
				run->kind =
					MemoryContextStrdup(cxt, SPI_getvalue(tuple, desc, 3));
				run->binding =
					MemoryContextStrdup(cxt, SPI_getvalue(tuple, desc, 4));
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

	/* the runs are committed: hand them to idle workers, or start workers */
	for (i = 0; i < nclaimed; i++)
	{
		BackgroundWorkerHandle *handle;
		bool started;
		bool evicted;

		if (hand_to_idle_worker(claimed[i].owner, claimed[i].run_id,
								*nworkers >= redshift_scheduler_max_workers,
								&evicted))
		{
			pfree(claimed[i].kind);
			pfree(claimed[i].binding);
			continue;
		}
		/* the handle lives until the launcher sees the worker exit */
		MemoryContextSwitchTo(TopMemoryContext);
		started = *nworkers < max_worker_processes &&
				  start_worker(claimed[i].run_id, claimed[i].owner,
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
			launcher_exec(LAUNCHER_LOCK_TIMEOUT, 0, NULL, NULL);
			launcher_exec("SELECT redshift_fdw._reap_runs($1::bigint[], $2)",
						  2, types, values);
			SPI_finish();
			PopActiveSnapshot();
			CommitTransactionCommand();
			MemoryContextSwitchTo(cxt);
		}
		pfree(claimed[i].kind);
		pfree(claimed[i].binding);
	}
	pfree(claimed);

	if (have_next)
	{
		long secs;
		int usecs;

		TimestampDifference(GetCurrentTimestamp(), next_due, &secs, &usecs);
		sleep_ms =
			Min(secs * 1000 + (usecs + 999) / 1000, LAUNCHER_MAX_SLEEP_MS);
		/*
		 * due now but no worker free: a worker's exit or going idle sets
		 * the latch
		 */
		if (sleep_ms == 0 && *nworkers >= redshift_scheduler_max_workers &&
			nclaimed == 0)
		{
			sleep_ms = 1000;
			starved = true;
		}
	}
	wake_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), sleep_ms);
	SpinLockAcquire(&scheduler_shared->mutex);
	scheduler_shared->launcher_starved = starved;
	scheduler_shared->launcher_wake_at = wake_at;
	SpinLockRelease(&scheduler_shared->mutex);
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
	/* static: launcher_iteration changes them, and an error in it must
	 * not lose what it changed (a longjmp restores registers) */
	static int nworkers = 0;
	static TimestampTz last_prune = 0;
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(redshift_scheduler_database, NULL, 0);
	pgstat_report_appname("redshift_fdw launcher");

	SpinLockAcquire(&scheduler_shared->mutex);
	scheduler_shared->launcher_pid = MyProcPid;
	scheduler_shared->launcher_procno = MyProc->pgprocno;
	scheduler_shared->database = MyDatabaseId;
	scheduler_shared->max_workers = redshift_scheduler_max_workers;
	SpinLockRelease(&scheduler_shared->mutex);
	before_shmem_exit(launcher_detach, (Datum) 0);
	ereport(LOG, (errmsg("redshift_fdw scheduler started in database \"%s\"",
						 redshift_scheduler_database)));

	/* room for every worker max_workers may ever allow */
	workers = MemoryContextAllocZero(
		TopMemoryContext, sizeof(LauncherWorker) * max_worker_processes);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "redshift_fdw launcher",
									 ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		long sleep_ms;
		MemoryContext oldcxt;

		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			/* what scheduler() reports is what the launcher uses */
			SpinLockAcquire(&scheduler_shared->mutex);
			scheduler_shared->max_workers = redshift_scheduler_max_workers;
			SpinLockRelease(&scheduler_shared->mutex);
		}
		CHECK_FOR_INTERRUPTS();
		oldcxt = MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			sleep_ms = launcher_iteration(workers, &nworkers, &last_prune);
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
}
