/*
 * materialize.h
 *		Materialization: applying a local table's logged changes to a
 *		Redshift table through S3 staging files and COPY, exactly once.
 *
 * The catalog, change logs and triggers are SQL in the install script;
 * materialize.c runs one apply (redshift_fdw._apply, behind sync() and
 * the scheduler's runs).
 */
#ifndef REDSHIFT_FDW_MATERIALIZE_H
#define REDSHIFT_FDW_MATERIALIZE_H

#include "postgres.h"

#include "foreign/foreign.h"

/* Name of the checkpoint table, in the server's schema on Redshift. */
#define MATERIALIZE_CHECKPOINT_TABLE "redshift_fdw_checkpoints"

/*
 * Its columns: the binding's checkpoint key, name and target (for
 * people), the fence of the apply allowed to commit, the local snapshot
 * applied last, the changes appended so far (delta updates), and the
 * highest value of the first key column the target can hold (standard
 * updates; its text, NULL when unknown) with the snapshot it goes with.
 */
#define MATERIALIZE_CHECKPOINT_COLUMNS                                        \
	"(binding VARCHAR(64) NOT NULL, name VARCHAR(256), target VARCHAR(512), " \
	"fence BIGINT NOT NULL, applied_snapshot VARCHAR(65535), "                \
	"applied_changes BIGINT NOT NULL, updated_at TIMESTAMP, "                 \
	"high_key VARCHAR(256), high_key_snapshot VARCHAR(65535))"

/* Attempts of a Redshift transaction that keeps failing with 1023. */
#define MATERIALIZE_MAX_ATTEMPTS 8

extern void redshift_materialize_define_gucs(void);
extern char *redshift_materialize_schema(ForeignServer *server);

#endif /* REDSHIFT_FDW_MATERIALIZE_H */
