/*
 * scheduler.h
 *		The scheduler: a launcher background worker that starts a dynamic
 *		worker per due binding, and the workers that run them.
 *
 * The launcher (scheduler.c) exists only when the library is in
 * shared_preload_libraries.  It connects to redshift_fdw.database, asks
 * redshift_fdw._claim_due_jobs() which bindings are due (that function
 * also records their runs), and starts a worker (job.c) per run, up to
 * redshift_fdw.max_workers.  It sleeps on its latch until the next due
 * time; a worker's exit, run_now() or a change of a binding wakes it.
 * The rules (what is due, backoff, run history) are SQL in the install
 * script; these processes only call them.
 */
#ifndef REDSHIFT_FDW_SCHEDULER_H
#define REDSHIFT_FDW_SCHEDULER_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* Settings (GUCs) of the scheduler. */
extern char *redshift_scheduler_database;
extern int redshift_scheduler_max_workers;
extern int redshift_scheduler_run_retention;

/* What the launcher hands a worker in bgw_extra. */
typedef struct JobWorkerArgs
{
	int64 run_id; /* its first run */
	Oid database; /* where the binding lives */
	Oid owner;	  /* the role the binding runs as */
} JobWorkerArgs;

/* Defines the GUCs; called from _PG_init whether preloaded or not. */
extern void redshift_scheduler_define_gucs(void);

/* Registers the launcher and its shared memory; only while preloading. */
extern void redshift_scheduler_register(void);

/* The worker pool (scheduler.c), for job.c. */
extern void redshift_scheduler_worker_attach(Oid owner);
extern int64 redshift_scheduler_worker_wait(long idle_ms);
extern void redshift_scheduler_note_due(TimestampTz due);

/* Entry points named in BackgroundWorker.bgw_function_name. */
extern PGDLLEXPORT void redshift_fdw_launcher_main(Datum main_arg);
extern PGDLLEXPORT void redshift_fdw_worker_main(Datum main_arg);

#endif /* REDSHIFT_FDW_SCHEDULER_H */
