/*
 * materialize.c
 *		One apply of a materialization (redshift_fdw._apply):
 *
 *	1. take the binding's lock; stop early when nothing is pending;
 *	2. on Redshift, bump the binding's fence in the checkpoint table and
 *	   read the snapshot it last applied (the authority on what is done);
 *	3. create the target table, or add the columns it lacks; ask for the
 *	   highest value of its first key column (rows above it go first);
 *	4. read the changes committed after that snapshot (one local
 *	   statement, whose own snapshot is the high-water mark) into zstd (or
 *	   gzip) CSV staging files in S3, with manifests;
 *	5. widen VARCHAR columns that are too narrow (outside a transaction:
 *	   Redshift refuses it in one);
 *	6. one Redshift transaction: LOCK the checkpoint table first, check the
 *	   fence and snapshot, COPY, delete and insert, move the checkpoint
 *	   (only where the fence is still ours), COMMIT; retried on 1023;
 *	7. delete the staged files, trim the local log, remember the snapshot.
 *
 * Steps 4 and 6 overlap (redshift_fdw.load_while_staging): the transaction
 * of step 6 begins as staging does, and whenever Redshift is idle it
 * COPYs the files staged so far, so Redshift loads while the next rows are
 * read and compressed.  When a column has to be widened, or any statement
 * of that transaction fails, it is rolled back and step 6 runs as above
 * once staging is done: the files are in S3 either way.
 *
 * A failure anywhere leaves the checkpoint as it was, or moved with the
 * data in one commit; the next apply starts again from step 1 and applies
 * exactly what the checkpoint says is missing.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "mb/pg_wchar.h"
#include "pgstat.h"
#include "pgtime.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/date.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "aws_credentials.h"
#include "connection.h"
#include "materialize.h"
#include "option.h"
#include "redact.h"
#include "s3.h"
#include "stage.h"
#include "stage_format.h"
#include "typemap.h"

PG_FUNCTION_INFO_V1(redshift_fdw_apply);
PG_FUNCTION_INFO_V1(redshift_fdw_mat_load_poll);

/* Rows staged between two looks at the load running meanwhile. */
#define APPLY_POLL_ROWS 1000

/* Longest key value quoted in an error message. */
#define KEY_TEXT_MAX 100

/* Families of column types, to tell whether a Redshift column fits. */
typedef enum TypeFamily
{
	FAM_INT,
	FAM_NUMERIC,
	FAM_FLOAT,
	FAM_BOOL,
	FAM_DATE,
	FAM_TIMESTAMP,
	FAM_TIME,
	FAM_VARCHAR,
	FAM_CHAR,
	FAM_SUPER,
	FAM_VARBYTE,
	FAM_OTHER
} TypeFamily;

/* One column the materialization writes. */
typedef struct MatColumn
{
	char *local_name;
	char *local_type;
	char *remote_name;
	char *remote_type; /* the type it is created with */
	bool is_key;
	bool extra;		   /* added by the materialization (_rsfdw_...) */
	bool exists;	   /* the Redshift table has it */
	bool to_add;	   /* ... once the load transaction has added it */
	TypeFamily family; /* of the Redshift column */
	int width;		   /* VARCHAR width in bytes, 0 when not VARCHAR */
	size_t longest;	   /* longest value staged, in bytes */
} MatColumn;

/*
 * The staged streams of an apply.  A key appears in one of them only, so
 * they load in any order.
 */
typedef enum StreamKind
{
	STREAM_INSERTS, /* standard: rows of keys new to the target */
	STREAM_UPSERTS, /* standard: current rows of changed keys (every row on
					 * a reload); delta: every change, in order */
	STREAM_DELETES, /* standard: keys gone (key columns only) */
	NUM_STREAMS
} StreamKind;

/* One stream of staging files, and how it loads. */
typedef struct Stream
{
	const char *label; /* file names: inserts, upserts, changes, deletes */
	StageWriter *writer;
	const char *manifest; /* of every file, once staging is done */
	bool keys_only;		  /* only the key columns */
	const char *into;	  /* what COPY loads: the target or a temp table */
	bool created;		  /* into, a temp table, exists in the transaction */
	int loaded;			  /* files the pipelined transaction has loaded */
	int batches;		  /* batch manifests written */
} Stream;

/* A failed remote statement, redacted. */
typedef struct RemoteFailure
{
	char sqlstate[6];
	char *message;
	char *detail;
	char *hint;
	const char *sql; /* as displayed */
} RemoteFailure;

/*
 * How a column of the changes query becomes text: common types written
 * directly (the output function's text, without its call, allocation and
 * strlen), a text as it is, anything else through its output function.
 */
typedef enum ColumnOutput
{
	OUTPUT_FUNCTION,
	OUTPUT_TEXT,
	OUTPUT_INT2,
	OUTPUT_INT4,
	OUTPUT_INT8,
	OUTPUT_BOOL,
	OUTPUT_FLOAT4, /* shortest exact, as float4out with extra_float_digits */
	OUTPUT_FLOAT8,
	OUTPUT_DATE,	   /* 1..9999 AD with DateStyle ISO */
	OUTPUT_TIMESTAMP,  /* the same */
	OUTPUT_TIMESTAMPTZ /* the same, with TimeZone UTC */
} ColumnOutput;

/* Room for the text of a value column_text writes directly. */
#define VALUE_TEXT_MAX                                 \
	(Max(Max(MAXINT8LEN, DOUBLE_SHORTEST_DECIMAL_LEN), \
		 STAGE_DATETIME_TEXT_MAX) +                    \
	 1)

/* Everything one apply knows. */
typedef struct Apply
{
	/* the binding */
	char *name;
	char *source;
	bool delta;
	bool soft_delete;
	char *checkpoint_key;
	List *columns; /* MatColumn, source order, then extra columns */
	TimestampTz started;

	/* Redshift and S3 */
	ForeignServer *server;
	UserMapping *user;
	RedshiftConn *conn;
	S3Client *s3;
	char *target;		/* "schema"."table" */
	char *target_label; /* schema.table, for messages */
	char *schema;
	char *table;
	char *checkpoint;		   /* "schema".redshift_fdw_checkpoints */
	bool checkpoint_high_keys; /* it has the columns of high keys */
	char *auth;				   /* COPY's authorization clause */
	char *region;
	StageCompression compression;
	const char *secrets[3];

	/* the checkpoint as this apply found it */
	int64 fence; /* ours, once bumped */
	char *applied_snapshot;
	int64 applied_changes;
	char *recorded_snapshot;   /* the last apply recorded here, or NULL */
	bool checkpoint_behind;	   /* older than the last apply recorded here */
	char *first_key;		   /* the first key column (its local name) */
	char *checkpoint_high_key; /* the highest key it records, or NULL */
	bool high_key_asked;	   /* the target's highest first key is asked */
	char *high_key;			   /* ... and is this (text), or NULL: unknown */

	/* what this apply stages */
	char *apply_prefix; /* <binding>/<checkpoint key>/<fence> */
	char *snapshot;		/* the high-water mark */
	bool reload;		/* replace the whole target */
	bool
		columns_added; /* the target gained columns: existing rows lack them */
	bool target_created; /* by this apply: it had no rows */
	Stream streams[NUM_STREAMS];
	Datum *values; /* one change row: the executor's, while it runs */
	bool *nulls;
	ColumnOutput *output_kind; /* per column of the changes query: how its
								* value becomes text */
	FmgrInfo *output;		   /* the output function, for OUTPUT_FUNCTION */
	bool to_utf8;			   /* texts are converted: not a UTF-8 database */
	char value_text[VALUE_TEXT_MAX]; /* a value written directly; valid until
									  * the next column_text */
	MemoryContext row_context;		 /* a change row's texts */
	int64 rows;
	int64 bytes;

	/*
	 * The highest key the target holds after this apply, for its checkpoint
	 * (see high_key_after): the changes query's column of the first key
	 * (-1: not an ordered type), the bound it started from (the first row's
	 * value) and the highest value of that column among the rows staged.
	 */
	int high_column;
	FmgrInfo high_compare;
	bool high_byval;
	int16 high_typlen;
	Oid high_output;
	bool high_before_known;
	Datum high_before;
	bool high_staged_known;
	Datum high_staged;

	/* the load transaction, when it runs while staging */
	bool pipelined;			 /* open, and loading files as they come */
	bool in_flight;			 /* a COPY awaits its result */
	char *in_flight_display; /* that COPY, as shown */
	int pipelined_copies;	 /* COPY statements it ran */
} Apply;

/* GUC redshift_fdw.staging_file_size is stage_file_size_mb (stage.c). */

/* GUC redshift_fdw.load_while_staging. */
static bool load_while_staging = true;

/*
 * While loading runs with staging, the file being written is uploaded
 * early for an idle Redshift once it holds this much (compressed).
 */
#define PIPELINE_MIN_FILE_BYTES (256 * 1024)

/*
 * While Redshift loads a batch, the file being written is uploaded once it
 * holds this much, or an eighth of what its stream staged if that is more.
 */
#define PIPELINE_BUSY_FILE_BYTES (2 * 1024 * 1024)

/*
 * Settings of materialization: the size staging files are rolled over at,
 * and whether Redshift loads while staging goes on.
 */
void
redshift_materialize_define_gucs(void)
{
	DefineCustomIntVariable(
		"redshift_fdw.staging_file_size",
		"Size at which a staging file is rolled over to the next one.",
		"Compressed size; each file is uploaded to S3 as soon as it is full.",
		&stage_file_size_mb, 64, 1, 4096, PGC_USERSET, GUC_UNIT_MB, NULL, NULL,
		NULL);
	DefineCustomBoolVariable(
		"redshift_fdw.load_while_staging",
		"Load staged files into Redshift while the next ones are staged.",
		"The load transaction (and its lock on the checkpoint table) then "
		"begins when staging does.",
		&load_while_staging, true, PGC_USERSET, 0, NULL, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* local SQL                                                           */

/* Run a local query through SPI, raising on failure. */
static void
local_exec(const char *sql, int nargs, Oid *types, Datum *values,
		   const char *nulls)
{
	int rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc < 0)
		elog(ERROR, "redshift_fdw: SPI failed (%d): %s", rc, sql);
}

/* Column n (1-based) of the first row of the last local result. */
static char *
local_value(int n)
{
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, n);
}

/* ------------------------------------------------------------------ */
/* remote SQL                                                          */

/* A copy of text with the apply's secrets removed (palloc'd). */
static char *
redacted(Apply *apply, const char *text)
{
	char *clean;
	char *copy;

	if (text == NULL)
		return NULL;
	clean = redact_secrets(text, apply->secrets, lengthof(apply->secrets));
	if (clean == NULL)
		return pstrdup(REDACTED_TEXT);
	copy = pstrdup(clean);
	free(clean);
	return copy;
}

static PGresult *remote_collect(Apply *apply, const char *display,
								RemoteFailure *failure);

/*
 * Run one remote statement.  On a remote error, fill failure (redacted)
 * and return NULL; a lost connection raises (display is the SQL shown).
 */
static PGresult *
remote_try(Apply *apply, const char *sql, const char *display,
		   RemoteFailure *failure)
{
	redshift_send_query(apply->conn, sql, display, 0, NULL);
	return remote_collect(apply, display, failure);
}

/*
 * The outcome of the statement sent last: its last result, or NULL with
 * failure filled (redacted) on a remote error; a lost connection raises.
 */
static PGresult *
remote_collect(Apply *apply, const char *display, RemoteFailure *failure)
{
	PGresult *last = NULL;
	PGresult *res;
	PGresult *error = NULL;

	while ((res = redshift_get_result(apply->conn, display)) != NULL)
	{
		if (PQresultStatus(res) == PGRES_FATAL_ERROR && error == NULL)
		{
			error = res;
			continue;
		}
		if (last)
			PQclear(last);
		last = res;
	}
	apply->conn->query_active = false;
	if (error == NULL)
		return last;
	if (last)
		PQclear(last);
	memset(failure, 0, sizeof(*failure));
	strlcpy(failure->sqlstate,
			PQresultErrorField(error, PG_DIAG_SQLSTATE)
				? PQresultErrorField(error, PG_DIAG_SQLSTATE)
				: "XX000",
			sizeof(failure->sqlstate));
	failure->message =
		redacted(apply, PQresultErrorField(error, PG_DIAG_MESSAGE_PRIMARY));
	if (failure->message == NULL)
		failure->message = pstrdup("unknown error");
	failure->detail =
		redacted(apply, PQresultErrorField(error, PG_DIAG_MESSAGE_DETAIL));
	failure->hint =
		redacted(apply, PQresultErrorField(error, PG_DIAG_MESSAGE_HINT));
	failure->sql = display;
	PQclear(error);
	return NULL;
}

/* Raise a remote failure as an error naming the binding. */
static void raise_failure(Apply *apply, RemoteFailure *failure)
	pg_attribute_noreturn();

static void
raise_failure(Apply *apply, RemoteFailure *failure)
{
	const char *s = failure->sqlstate;

	ereport(
		ERROR,
		(errcode(MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4])),
		 errmsg("materialization \"%s\": Redshift reported: %s", apply->name,
				failure->message),
		 failure->detail && failure->detail[0]
			 ? errdetail_internal("%s", failure->detail)
			 : 0,
		 failure->hint && failure->hint[0] ? errhint("%s", failure->hint) : 0,
		 failure->sql ? errcontext("remote SQL command: %s", failure->sql)
					  : 0));
}

/* Run a remote statement that must succeed; returns its result. */
static PGresult *
remote_must(Apply *apply, const char *sql, const char *display)
{
	RemoteFailure failure;
	PGresult *res = remote_try(apply, sql, display ? display : sql, &failure);

	if (res == NULL)
		raise_failure(apply, &failure);
	return res;
}

static void retry_sleep(int attempt);

/*
 * Run a remote statement (in autocommit) that must succeed, ignoring its
 * result; a serializable isolation violation (1023) is retried.
 */
static void
remote_command(Apply *apply, const char *sql)
{
	int attempt;

	for (attempt = 1;; attempt++)
	{
		RemoteFailure failure;
		PGresult *res = remote_try(apply, sql, sql, &failure);

		if (res != NULL)
		{
			PQclear(res);
			return;
		}
		if (attempt >= MATERIALIZE_MAX_ATTEMPTS ||
			!redshift_error_is_serialization_conflict(
				failure.sqlstate, failure.message, failure.detail))
			raise_failure(apply, &failure);
		retry_sleep(attempt);
	}
}

/* End a failed remote transaction (its errors do not matter). */
static void
remote_rollback(Apply *apply)
{
	RemoteFailure ignored;
	PGresult *res = remote_try(apply, "ROLLBACK", "ROLLBACK", &ignored);

	if (res)
		PQclear(res);
}

/* A string literal for Redshift (palloc'd). */
static char *
literal(const char *value)
{
	StringInfoData buf;

	initStringInfo(&buf);
	redshift_append_string_literal(&buf, value);
	return buf.data;
}

/* A quoted identifier for Redshift (palloc'd). */
static char *
identifier(const char *name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	redshift_append_identifier(&buf, name);
	return buf.data;
}

/*
 * Sleep before the next attempt of a transaction, interruptibly.
 */
static void
retry_sleep(int attempt)
{
	long delay =
		stage_retry_delay_ms(attempt, pg_prng_double(&pg_global_prng_state));
	TimestampTz until =
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);

	for (;;)
	{
		long left =
			TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);
		int rc;

		if (left <= 0)
			break;
		rc =
			WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					  left, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* One attempt of a remote transaction: false with failure filled. */
typedef bool (*RemoteTransaction)(Apply *apply, RemoteFailure *failure);

/*
 * Run a remote transaction, again from the start after a serializable
 * isolation violation (1023), with backoff; any other failure is rolled
 * back and returned false (failure filled) for the caller to report.
 */
static bool
run_transaction(Apply *apply, RemoteTransaction body, const char *what,
				RemoteFailure *failure)
{
	int attempt;

	for (attempt = 1;; attempt++)
	{
		if (body(apply, failure))
			return true;
		remote_rollback(apply);
		if (!redshift_error_is_serialization_conflict(
				failure->sqlstate, failure->message, failure->detail))
			return false;
		if (attempt >= MATERIALIZE_MAX_ATTEMPTS)
		{
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("materialization \"%s\": %s failed %d times with "
							"a serializable isolation violation (1023)",
							apply->name, what, attempt),
					 errdetail_internal("%s", failure->message),
					 errhint("Another transaction on Redshift keeps "
							 "conflicting with the load; the next run "
							 "tries again.")));
		}
		ereport(DEBUG1,
				(errmsg("materialization \"%s\": 1023 in %s, attempt %d",
						apply->name, what, attempt)));
		retry_sleep(attempt);
	}
}

/* ------------------------------------------------------------------ */
/* the binding                                                         */

/* Read the binding's catalog row and columns (under row-level security). */
static void
load_binding(Apply *apply, const char *name)
{
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(name)};
	uint64 i;
	Oid source;

	/*
	 * The binding's lock first, the row after it (as the apply that held
	 * the lock left it), then the source's lock: an apply waiting for
	 * another of the same binding must not hold the source meanwhile (an
	 * ALTER TABLE in the other's transaction would deadlock with it).
	 */
	local_exec(
		"SELECT pg_advisory_xact_lock(lock_key) FROM redshift_fdw._mat($1)", 1,
		types, values, NULL);
	local_exec("SELECT server, source::text, delta_updates, soft_delete, "
			   "checkpoint_key, target_schema, target_table, "
			   "source::oid, applied_snapshot::text, key_columns[1] "
			   "FROM redshift_fdw._mat($1)",
			   1, types, values, NULL);
	apply->name = pstrdup(name);
	apply->server = GetForeignServerByName(local_value(1), false);
	apply->source = local_value(2);
	apply->delta = strcmp(local_value(3), "t") == 0;
	apply->soft_delete = strcmp(local_value(4), "t") == 0;
	apply->checkpoint_key = local_value(5);
	apply->schema = local_value(6);
	apply->table = local_value(7);
	apply->target =
		psprintf("%s.%s", identifier(apply->schema), identifier(apply->table));
	apply->target_label = psprintf("%s.%s", apply->schema, apply->table);
	source = DatumGetObjectId(
		DirectFunctionCall1(oidin, CStringGetDatum(local_value(8))));
	apply->recorded_snapshot = local_value(9);
	apply->first_key = local_value(10);
	/*
	 * The source keeps the columns read below until the apply ends: a DROP
	 * or ALTER COLUMN meanwhile would change the shape of the change rows.
	 */
	LockRelationOid(source, AccessShareLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(source)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("materialization \"%s\": its source table (OID %u) "
						"no longer exists",
						name, source),
				 errhint("Drop the materialization: SELECT "
						 "redshift_fdw.drop_materialization(%s).",
						 quote_literal_cstr(name))));

	local_exec("SELECT c.local_name, format_type(a.atttypid, a.atttypmod), "
			   "c.remote_name, c.remote_type, c.is_key "
			   "FROM redshift_fdw._mat($1) m CROSS JOIN LATERAL "
			   "redshift_fdw._mat_columns(m.source, m.key_columns) c "
			   "JOIN pg_attribute a ON a.attrelid = m.source "
			   "AND a.attnum = c.attnum ORDER BY c.attnum",
			   1, types, values, NULL);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		MatColumn *col = palloc0(sizeof(MatColumn));

		col->local_name = SPI_getvalue(tup, desc, 1);
		col->local_type = SPI_getvalue(tup, desc, 2);
		col->remote_name = SPI_getvalue(tup, desc, 3);
		col->remote_type = SPI_getvalue(tup, desc, 4);
		col->is_key = strcmp(SPI_getvalue(tup, desc, 5), "t") == 0;
		apply->columns = lappend(apply->columns, col);
	}
	if (apply->columns == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("materialization \"%s\": source %s has no columns",
						name, apply->source)));
	local_exec("SELECT remote_name, remote_type FROM "
			   "redshift_fdw._mat_extra_columns($1, $2)",
			   2, (Oid[]){BOOLOID, BOOLOID},
			   (Datum[]){BoolGetDatum(apply->delta),
						 BoolGetDatum(apply->soft_delete)},
			   NULL);
	for (i = 0; i < SPI_processed; i++)
	{
		MatColumn *col = palloc0(sizeof(MatColumn));

		col->remote_name =
			SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		col->remote_type =
			SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		col->local_name = col->remote_name;
		col->local_type = col->remote_type;
		col->extra = true;
		apply->columns = lappend(apply->columns, col);
	}
	/* names equal ignoring case, reserved names: before anything is sent */
	local_exec("SELECT redshift_fdw._mat_check_columns(m) "
			   "FROM redshift_fdw._mat($1) m",
			   1, types, values, NULL);
}

/* The family of a type as Redshift (or our mapping) names it. */
static TypeFamily
type_family(const char *type)
{
	static const struct
	{
		const char *prefix;
		TypeFamily family;
	} families[] = {{"smallint", FAM_INT},
					{"integer", FAM_INT},
					{"bigint", FAM_INT},
					{"int", FAM_INT},
					{"numeric", FAM_NUMERIC},
					{"decimal", FAM_NUMERIC},
					{"double precision", FAM_FLOAT},
					{"real", FAM_FLOAT},
					{"float", FAM_FLOAT},
					{"boolean", FAM_BOOL},
					{"bool", FAM_BOOL},
					{"date", FAM_DATE},
					{"timestamp", FAM_TIMESTAMP},
					{"time", FAM_TIME},
					{"character varying", FAM_VARCHAR},
					{"varchar", FAM_VARCHAR},
					{"text", FAM_VARCHAR},
					{"character", FAM_CHAR},
					{"char", FAM_CHAR},
					{"bpchar", FAM_CHAR},
					{"super", FAM_SUPER},
					{"varbyte", FAM_VARBYTE},
					{"binary varying", FAM_VARBYTE}};
	size_t i;

	for (i = 0; i < lengthof(families); i++)
		if (pg_strncasecmp(type, families[i].prefix,
						   strlen(families[i].prefix)) == 0)
			return families[i].family;
	return FAM_OTHER;
}

/* Whether a Redshift column of family have can take what we write. */
static bool
family_fits(TypeFamily want, TypeFamily have)
{
	if (want == have || have == FAM_VARCHAR)
		return true;
	if (want == FAM_INT && (have == FAM_NUMERIC || have == FAM_FLOAT))
		return true;
	return false;
}

/* The column named remote_name, or NULL. */
static MatColumn *
find_column(Apply *apply, const char *remote_name)
{
	ListCell *lc;

	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (strcmp(col->remote_name, remote_name) == 0)
			return col;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Redshift: checkpoint, fence, target                                 */

/* A schema on Redshift, made when missing. */
static void
ensure_schema(Apply *apply, const char *schema)
{
	PGresult *res =
		remote_must(apply,
					psprintf("SELECT 1 FROM pg_namespace WHERE nspname = %s",
							 literal(schema)),
					NULL);
	bool missing = PQntuples(res) == 0;

	PQclear(res);
	if (missing)
		remote_command(apply, psprintf("CREATE SCHEMA IF NOT EXISTS %s",
									   identifier(schema)));
}

/*
 * The server's schema on Redshift (option schema, default public),
 * lower-cased as Redshift folds names: where the checkpoint table is, and
 * targets by default.
 */
char *
redshift_materialize_schema(ForeignServer *server)
{
	char *schema = redshift_option_string(server->options, "schema");
	char *p;

	schema = pstrdup(schema ? schema : "public");
	for (p = schema; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	return schema;
}

/* Whether Redshift has table schema.table (names as stored). */
static bool
remote_table_exists(Apply *apply, const char *schema, const char *table)
{
	PGresult *res =
		remote_must(apply,
					psprintf("SELECT 1 FROM svv_tables WHERE table_schema = "
							 "%s AND table_name = %s",
							 literal(schema), literal(table)),
					NULL);
	bool exists = PQntuples(res) > 0;

	PQclear(res);
	return exists;
}

/*
 * The columns of high keys (see high_key_after) the checkpoint table
 * lacks, or -1 when there is no table.
 */
static int
checkpoint_table_lacks(Apply *apply)
{
	PGresult *res = remote_must(
		apply,
		psprintf("SELECT count(*), count(CASE WHEN column_name IN ("
				 "'high_key', 'high_key_snapshot') THEN 1 END) FROM "
				 "svv_columns WHERE table_schema = %s AND table_name = %s",
				 literal(apply->schema),
				 literal(MATERIALIZE_CHECKPOINT_TABLE)),
		NULL);
	int lacks = strcmp(PQgetvalue(res, 0, 0), "0") == 0
					? -1
					: 2 - atoi(PQgetvalue(res, 0, 1));

	PQclear(res);
	return lacks;
}

/*
 * The checkpoint table (in the target's schema), made when missing.  Not
 * in the server's schema: that option may change, and the binding's
 * checkpoint must stay where its target is.  A table an earlier version
 * made gets the columns of high keys; when they cannot be added (the
 * table is another user's), applies go on without them.
 */
static void
ensure_checkpoint_table(Apply *apply)
{
	char *schema = apply->schema;
	int lacks;

	ensure_schema(apply, schema);
	apply->checkpoint =
		psprintf("%s.%s", identifier(schema), MATERIALIZE_CHECKPOINT_TABLE);
	lacks = checkpoint_table_lacks(apply);
	apply->checkpoint_high_keys = true;
	if (lacks < 0)
		remote_command(apply, psprintf("CREATE TABLE IF NOT EXISTS "
									   "%s " MATERIALIZE_CHECKPOINT_COLUMNS,
									   apply->checkpoint));
	else if (lacks > 0)
	{
		RemoteFailure failure = {.message = "added by another apply"};
		const char *columns[2] = {"high_key VARCHAR(256)",
								  "high_key_snapshot VARCHAR(65535)"};
		int k;

		/* one may be there; another apply may be adding them meanwhile */
		for (k = 0; k < 2; k++)
		{
			char *sql = psprintf("ALTER TABLE %s ADD COLUMN %s",
								 apply->checkpoint, columns[k]);
			PGresult *res = remote_try(apply, sql, sql, &failure);

			if (res != NULL)
				PQclear(res);
		}
		if (checkpoint_table_lacks(apply) != 0)
		{
			apply->checkpoint_high_keys = false;
			ereport(DEBUG1,
					(errmsg("materialization \"%s\": %s has no column of "
							"high keys, and they could not be added: %s",
							apply->name, apply->checkpoint, failure.message)));
		}
	}
}

/*
 * The checkpoint's row of this binding, locked (the table is).  Its high
 * key counts only when it was recorded with the snapshot the row holds:
 * a version that does not keep it moves the snapshot and leaves the key.
 */
static bool
read_checkpoint(Apply *apply, RemoteFailure *failure, bool *found,
				int64 *fence, char **snapshot, int64 *changes, char **high_key)
{
	char *sql =
		psprintf("SELECT fence, applied_snapshot, applied_changes, "
				 "%s FROM %s WHERE binding = %s",
				 apply->checkpoint_high_keys ? "high_key, high_key_snapshot"
											 : "NULL, NULL",
				 apply->checkpoint, literal(apply->checkpoint_key));
	PGresult *res = remote_try(apply, sql, sql, failure);

	if (res == NULL)
		return false;
	*found = PQntuples(res) > 0;
	if (*found)
	{
		*fence = pg_strtoint64(PQgetvalue(res, 0, 0));
		*snapshot =
			PQgetisnull(res, 0, 1) ? NULL : pstrdup(PQgetvalue(res, 0, 1));
		*changes = pg_strtoint64(PQgetvalue(res, 0, 2));
		*high_key = NULL;
		if (*snapshot && !PQgetisnull(res, 0, 3) && !PQgetisnull(res, 0, 4) &&
			strcmp(PQgetvalue(res, 0, 4), *snapshot) == 0)
			*high_key = pstrdup(PQgetvalue(res, 0, 3));
	}
	PQclear(res);
	return true;
}

/* A statement of a remote transaction; false with failure filled. */
static bool
step(Apply *apply, const char *sql, const char *display,
	 RemoteFailure *failure)
{
	PGresult *res = remote_try(apply, sql, display ? display : sql, failure);

	if (res == NULL)
		return false;
	PQclear(res);
	return true;
}

/*
 * Transaction: bump this binding's fence (creating its checkpoint row),
 * so that an apply still running elsewhere can no longer commit, and read
 * what the checkpoint says is applied.
 */
static bool
fence_transaction(Apply *apply, RemoteFailure *failure)
{
	bool found;
	int64 fence = 0;
	char *snapshot = NULL;
	int64 changes = 0;
	char *high_key = NULL;
	char *now = DatumGetCString(DirectFunctionCall1(
		timestamptz_out, TimestampTzGetDatum(GetCurrentTimestamp())));

	if (!step(apply, "BEGIN", NULL, failure) ||
		!step(apply, psprintf("LOCK %s", apply->checkpoint), NULL, failure) ||
		!read_checkpoint(apply, failure, &found, &fence, &snapshot, &changes,
						 &high_key))
		return false;
	if (!found)
	{
		if (!step(apply,
				  psprintf("INSERT INTO %s (binding, name, target, fence, "
						   "applied_snapshot, applied_changes, updated_at) "
						   "VALUES (%s, %s, %s, 1, NULL, 0, "
						   "%s::timestamptz::timestamp)",
						   apply->checkpoint, literal(apply->checkpoint_key),
						   literal(apply->name), literal(apply->target_label),
						   literal(now)),
				  NULL, failure))
			return false;
		fence = 1;
	}
	else
	{
		fence++;
		if (!step(apply,
				  psprintf("UPDATE %s SET fence = " INT64_FORMAT
						   " WHERE binding = %s",
						   apply->checkpoint, fence,
						   literal(apply->checkpoint_key)),
				  NULL, failure))
			return false;
	}
	if (!step(apply, "COMMIT", NULL, failure))
		return false;
	apply->fence = fence;
	apply->applied_snapshot = snapshot;
	apply->applied_changes = changes;
	apply->checkpoint_high_key = high_key;
	return true;
}

/*
 * Redshift has no checkpoint for a binding that was applied before: its
 * row (or the table) was dropped.  Standard updates reload the table, as
 * a first apply does, and say so.  Delta updates would append every row
 * again into a table that has them: refused while the target exists.
 */
static void
check_checkpoint_missing(Apply *apply)
{
	char *recorded = apply->recorded_snapshot;

	if (recorded == NULL ||
		!remote_table_exists(apply, apply->schema, apply->table))
		return;
	if (apply->delta)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("materialization \"%s\": its checkpoint is missing "
						"from %s",
						apply->name, apply->checkpoint),
				 errdetail("The last apply here recorded %s. With delta "
						   "updates, applying on would append every row of "
						   "the source to %s again.",
						   recorded, apply->target_label),
				 errhint("Put the checkpoint row back, or start over: drop "
						 "the Redshift table, or drop and create the "
						 "materialization.")));
	ereport(WARNING,
			(errmsg("materialization \"%s\": its checkpoint is missing from "
					"%s; reloading %s",
					apply->name, apply->checkpoint, apply->target_label),
			 errdetail("The last apply here recorded %s.", recorded)));
}

/*
 * A checkpoint on Redshift older than the last apply recorded here (the
 * schema restored from a backup, the row edited): the log no longer holds
 * the changes applied since, so applying on from the checkpoint would
 * leave them out for good.  The apply reloads the table instead, and says
 * so.
 */
static void
check_checkpoint_behind(Apply *apply)
{
	char *recorded = apply->recorded_snapshot;
	bool from_elsewhere;
	bool behind;

	if (apply->applied_snapshot == NULL)
	{
		check_checkpoint_missing(apply);
		return; /* no checkpoint: the apply reloads anyway */
	}
	/*
	 * A checkpoint naming transactions this cluster has not yet run was
	 * taken in another one: the database was restored (pg_dump) into a new
	 * cluster, whose changes it would count as applied.
	 */
	local_exec("SELECT pg_snapshot_xmax($1::pg_snapshot) > "
			   "pg_snapshot_xmax(pg_current_snapshot()), "
			   "redshift_fdw._mat_snapshot_behind($1::pg_snapshot, "
			   "$2::pg_snapshot)",
			   2, (Oid[]){TEXTOID, TEXTOID},
			   (Datum[]){CStringGetTextDatum(apply->applied_snapshot),
						 recorded ? CStringGetTextDatum(recorded) : (Datum) 0},
			   recorded ? NULL : " n");
	from_elsewhere = strcmp(local_value(1), "t") == 0;
	behind = local_value(2) && strcmp(local_value(2), "t") == 0;
	if (from_elsewhere)
	{
		if (apply->delta)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("materialization \"%s\": its checkpoint on "
							"Redshift (%s) names transactions this server has "
							"not run",
							apply->name, apply->applied_snapshot),
					 errdetail("It was taken in another cluster: was the "
							   "database restored from a dump? Applying on "
							   "would miss changes made here."),
					 errhint("Make the materialization again (with delta "
							 "updates it appends every row once more), or "
							 "drop the Redshift table first.")));
		apply->checkpoint_behind = true;
		ereport(
			WARNING,
			(errmsg("materialization \"%s\": its checkpoint on Redshift "
					"(%s) names transactions this server has not run; "
					"reloading %s",
					apply->name, apply->applied_snapshot, apply->target_label),
			 errdetail("It was taken in another cluster: was the database "
					   "restored from a dump?")));
		return;
	}
	if (!behind)
		return;
	apply->checkpoint_behind = true;
	ereport(WARNING,
			(errmsg("materialization \"%s\": the checkpoint on Redshift is "
					"older than the last apply recorded here; reloading %s",
					apply->name, apply->target_label),
			 errdetail("Redshift's checkpoint: %s; the last apply here: %s. "
					   "The change log no longer holds the changes between.",
					   apply->applied_snapshot, recorded),
			 errhint("Was the Redshift schema restored from a backup? The "
					 "reload replaces the table%s.",
					 apply->delta ? " (delta updates: every row is appended "
									"again, as on a first apply)"
								  : "")));
}

/*
 * A NUMERIC column on Redshift must hold the source column's NUMERIC(p,s):
 * as many digits after the point and before it.  Redshift cannot change a
 * NUMERIC column's type, and loading would round values silently (after
 * the source's scale grew, say).  res row i is the column's svv_columns
 * row (its precision and scale in fields 3 and 4); freed on error.
 */
static void
check_numeric_fits(Apply *apply, MatColumn *col, PGresult *res, int i)
{
	int precision;
	int scale;
	int have_precision = atoi(PQgetvalue(res, i, 3));
	int have_scale = atoi(PQgetvalue(res, i, 4));

	if (sscanf(col->remote_type, "NUMERIC(%d,%d)", &precision, &scale) != 2)
		return; /* not a NUMERIC(p,s) source column */
	if (have_scale >= scale &&
		have_precision - have_scale >= precision - scale)
		return;
	PQclear(res);
	ereport(
		ERROR,
		(errcode(ERRCODE_DATATYPE_MISMATCH),
		 errmsg("materialization \"%s\": column \"%s\" of Redshift "
				"table %s is NUMERIC(%d,%d), too narrow for source column "
				"\"%s\" (%s): values would be rounded or overflow",
				apply->name, col->remote_name, apply->target_label,
				have_precision, have_scale, col->local_name, col->local_type),
		 errhint("Redshift cannot change a NUMERIC column's type: add a "
				 "%s column on Redshift, copy the values, drop the old "
				 "one and rename the new one; or drop the column (it is "
				 "added again) or materialize into another table.",
				 col->remote_type)));
}

/*
 * Make the target table fit: create it (and its schema) when missing, add
 * the columns it lacks; an existing column of an incompatible type is an
 * error.  Records VARCHAR widths for widening.
 */
static void
prepare_target(Apply *apply)
{
	StringInfoData sql;
	PGresult *res;
	ListCell *lc;
	int i;

	res = remote_must(
		apply,
		psprintf("SELECT column_name, data_type, character_maximum_length, "
				 "numeric_precision, numeric_scale "
				 "FROM svv_columns WHERE table_schema = %s AND table_name = "
				 "%s ORDER BY ordinal_position",
				 literal(apply->schema), literal(apply->table)),
		NULL);
	for (i = 0; i < PQntuples(res); i++)
	{
		MatColumn *col = find_column(apply, PQgetvalue(res, i, 0));
		TypeFamily have;

		if (col == NULL)
			continue; /* a column of its own: stays NULL */
		have = type_family(PQgetvalue(res, i, 1));
		if (!family_fits(type_family(col->remote_type), have))
		{
			char *type = pstrdup(PQgetvalue(res, i, 1));

			PQclear(res);
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("materialization \"%s\": column \"%s\" of "
							"Redshift table %s is %s, which cannot hold "
							"values of source column \"%s\" (%s)",
							apply->name, col->remote_name, apply->target_label,
							type, col->local_name, col->local_type),
					 errhint("Change or drop the column on Redshift (a "
							 "missing table or column is created), or "
							 "materialize into another table.")));
		}
		if (have == FAM_NUMERIC && !PQgetisnull(res, i, 3) &&
			!PQgetisnull(res, i, 4))
			check_numeric_fits(apply, col, res, i);
		col->exists = true;
		col->family = have;
		if (have == FAM_VARCHAR && !PQgetisnull(res, i, 2))
			col->width = atoi(PQgetvalue(res, i, 2));
	}
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		ensure_schema(apply, apply->schema);
		initStringInfo(&sql);
		appendStringInfo(&sql, "CREATE TABLE %s (", apply->target);
		foreach (lc, apply->columns)
		{
			MatColumn *col = lfirst(lc);

			appendStringInfo(&sql, "%s%s %s",
							 foreach_current_index (lc) ? ", " : "",
							 identifier(col->remote_name), col->remote_type);
			col->exists = true;
			col->family = type_family(col->remote_type);
			col->width = col->family == FAM_VARCHAR ? 256 : 0;
		}
		appendStringInfoChar(&sql, ')');
		remote_command(apply, sql.data);
		apply->target_created = true;
	}
	else
		PQclear(res);
	/*
	 * Columns the source gained are added by the load transaction (see
	 * add_columns), so that they are there exactly when its rows are: added
	 * here, on their own, they would stay when the load fails, and the next
	 * apply would not know the rows before lack them.
	 */
	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (col->exists)
			continue;
		if (!col->extra)
			apply->columns_added = true;
		col->exists = true;
		col->to_add = true;
		col->family = type_family(col->remote_type);
		col->width = col->family == FAM_VARCHAR ? 256 : 0;
	}
}

/* In the load transaction: the columns the target lacks (prepare_target). */
static bool
add_columns(Apply *apply, RemoteFailure *failure)
{
	ListCell *lc;

	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (col->to_add &&
			!step(apply,
				  psprintf("ALTER TABLE %s ADD COLUMN %s %s", apply->target,
						   identifier(col->remote_name), col->remote_type),
				  NULL, failure))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* staging                                                             */

/*
 * The text of column i of the change row (len bytes, no NUL promised): a
 * text as it is, the common types of ColumnOutput written directly, any
 * other value through its output function, made in the row context (the
 * direct texts in apply->value_text, valid until the next call).  The
 * changes query returns most types as they are, so no row is formed of
 * their texts first.
 */
static const char *
column_text(Apply *apply, int i, size_t *len)
{
	MemoryContext old = MemoryContextSwitchTo(apply->row_context);
	Datum value = apply->values[i];
	char *digits = apply->value_text;
	const char *data = NULL;

	switch (apply->output_kind[i])
	{
		case OUTPUT_TEXT:
		{
			text *t = DatumGetTextPP(value);

			data = VARDATA_ANY(t);
			*len = VARSIZE_ANY_EXHDR(t);
			break;
		}
		case OUTPUT_INT2:
			*len = pg_itoa(DatumGetInt16(value), digits);
			data = digits;
			break;
		case OUTPUT_INT4:
			*len = pg_ltoa(DatumGetInt32(value), digits);
			data = digits;
			break;
		case OUTPUT_INT8:
			*len = pg_lltoa(DatumGetInt64(value), digits);
			data = digits;
			break;
		case OUTPUT_BOOL:
			data = DatumGetBool(value) ? "t" : "f";
			*len = 1;
			break;
		case OUTPUT_FLOAT4:
			*len =
				float_to_shortest_decimal_bufn(DatumGetFloat4(value), digits);
			data = digits;
			break;
		case OUTPUT_FLOAT8:
			*len =
				double_to_shortest_decimal_bufn(DatumGetFloat8(value), digits);
			data = digits;
			break;
		case OUTPUT_DATE:
			*len = stage_date_text(DatumGetDateADT(value), digits);
			data = *len ? digits : NULL;
			break;
		case OUTPUT_TIMESTAMP:
			*len =
				stage_timestamp_text(DatumGetTimestamp(value), false, digits);
			data = *len ? digits : NULL;
			break;
		case OUTPUT_TIMESTAMPTZ:
			*len =
				stage_timestamp_text(DatumGetTimestampTz(value), true, digits);
			data = *len ? digits : NULL;
			break;
		default:
			break;
	}
	/* other types, and dates BC, after 9999 or infinite */
	if (data == NULL)
	{
		data = OutputFunctionCall(&apply->output[i], value);
		*len = strlen(data);
	}
	/* Redshift reads UTF-8 (the other texts here are ASCII) */
	if (apply->to_utf8 && *len > 0 &&
		(apply->output_kind[i] == OUTPUT_TEXT ||
		 apply->output_kind[i] == OUTPUT_FUNCTION))
	{
		char *utf8 = pg_server_to_any(data, (int) *len, PG_UTF8);

		if (utf8 != data)
		{
			data = utf8;
			*len = strlen(utf8);
		}
	}
	MemoryContextSwitchTo(old);
	return data;
}

/* "(k1, k2)=(v1, v2)" of a change row, for errors naming a key. */
static char *
describe_key(Apply *apply)
{
	StringInfoData names;
	StringInfoData vals;
	ListCell *lc;

	initStringInfo(&names);
	initStringInfo(&vals);
	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);
		int i = foreach_current_index (lc);
		char *value;

		if (col->extra || !col->is_key)
			continue;
		if (apply->nulls[3 + i])
			value = NULL;
		else
		{
			size_t len;
			const char *data = column_text(apply, 3 + i, &len);

			value = pnstrdup(data, len);
		}
		appendStringInfo(&names, "%s%s", names.len ? ", " : "",
						 quote_identifier(col->local_name));
		if (value && strlen(value) > KEY_TEXT_MAX)
			value[pg_mbcliplen(value, strlen(value), KEY_TEXT_MAX)] = '\0';
		appendStringInfo(&vals, "%s%s", vals.len ? ", " : "",
						 value ? value : "NULL");
	}
	return psprintf("(%s)=(%s)", names.data, vals.data);
}

/*
 * Refuse a row Redshift's COPY would reject for its size (4 MB); bytes is
 * its length so far, newline included.
 */
static void
check_row_size(Apply *apply, size_t bytes)
{
	if (bytes > STAGE_MAX_ROW_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("materialization \"%s\": row for key %s is %zu bytes, "
						"more than the 4 MB Redshift loads per row",
						apply->name, describe_key(apply), bytes),
				 errdetail("Nothing of this apply reached Redshift."),
				 errhint("Make the row smaller (or leave its large columns "
						 "out of a view you materialize instead).")));
}

/*
 * Append column i of the change row as a CSV field (NULL as the NULL
 * text), refusing what Redshift could not load the same.
 */
static void
append_field(Apply *apply, StringInfo line, MatColumn *col, int i)
{
	const char *data;
	size_t len;
	size_t field;
	bool quoted;

	if (line->len > 0)
		appendStringInfoChar(line, ',');
	if (apply->nulls[i])
	{
		appendStringInfoString(line, STAGE_NULL_TEXT);
		return;
	}
	data = column_text(apply, i, &len);
	if (csv_value_reads_as_null(data, len))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("materialization \"%s\": value of column \"%s\" for "
						"key %s is the text \\N, which Redshift's COPY would "
						"load as NULL",
						apply->name, col->local_name, describe_key(apply))));
	if (col->family == FAM_VARCHAR)
	{
		if (len > STAGE_MAX_VARCHAR)
			ereport(ERROR,
					(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
					 errmsg("materialization \"%s\": value of column \"%s\" "
							"for key %s is %zu bytes, more than Redshift's "
							"VARCHAR holds (%d)",
							apply->name, col->local_name, describe_key(apply),
							len, STAGE_MAX_VARCHAR),
					 errhint("Shorten the value, or materialize a view that "
							 "does.")));
		if (len > col->longest)
			col->longest = len;
	}
	/* before copying a value that cannot fit a row anyway */
	field = csv_field_length(data, len, &quoted);
	check_row_size(apply, line->len + field + 1);
	enlargeStringInfo(line, (int) field);
	line->len += csv_field(line->data + line->len, data, len, quoted);
	line->data[line->len] = '\0';
}

/* Stage one change row (apply->values and nulls). */
static void
stage_row(Apply *apply, char op)
{
	ListCell *lc;
	StringInfo line;
	Stream *stream;

	if (apply->delta)
		stream = &apply->streams[STREAM_UPSERTS];
	else if (op == 'D')
		stream = &apply->streams[STREAM_DELETES];
	else if (op == 'I')
		stream = &apply->streams[STREAM_INSERTS];
	else
		stream = &apply->streams[STREAM_UPSERTS];
	line = stage_row_buffer(stream->writer);
	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (col->extra)
			continue;
		if (stream->keys_only && !col->is_key)
			continue;
		append_field(apply, line, col, 3 + foreach_current_index (lc));
	}
	if (apply->delta)
	{
		int64 number = apply->applied_changes +
					   (apply->nulls[1] ? stage_writer_rows(stream->writer) + 1
										: DatumGetInt64(apply->values[1]));

		appendStringInfo(line, ",\"%c\"," INT64_FORMAT, op, number);
	}
	check_row_size(apply, line->len + 1);
	stage_write_row(stream->writer);
}

static void pipeline_begin(Apply *apply);
static void pipeline_poll(Apply *apply, bool finish);
static void pipeline_flush(Apply *apply);
static void high_key_track(Apply *apply, TupleDesc desc,
						   MemoryContext context);
static void high_key_note_before(Apply *apply);
static void high_key_note_staged(Apply *apply);

/* The streams' staging writers, under <binding>/<fence>/. */
static void
open_streams(Apply *apply)
{
	int k;

	apply->streams[STREAM_INSERTS].label = "inserts";
	apply->streams[STREAM_UPSERTS].label =
		apply->delta ? "changes" : "upserts";
	apply->streams[STREAM_DELETES].label = "deletes";
	apply->streams[STREAM_DELETES].keys_only = true;
	for (k = 0; k < NUM_STREAMS; k++)
		apply->streams[k].writer = stage_writer_create(
			apply->s3,
			psprintf("%s/%s", apply->apply_prefix, apply->streams[k].label),
			apply->compression);
}

/* Where each stream loads, once the apply knows whether it reloads. */
static void
plan_streams(Apply *apply)
{
	Stream *inserts = &apply->streams[STREAM_INSERTS];
	Stream *upserts = &apply->streams[STREAM_UPSERTS];
	Stream *deletes = &apply->streams[STREAM_DELETES];

	inserts->into = apply->target;
	upserts->into = apply->delta || (apply->reload && !apply->soft_delete)
						? apply->target
						: "rsfdw_upserts";
	deletes->into = "rsfdw_deletes";
}

/*
 * The changes query's rows go straight from the executor to staging: a
 * DestReceiver, so no row is copied into an SPI tuple table first.
 */
typedef struct ChangeReceiver
{
	DestReceiver pub;
	Apply *apply;
	MemoryContext context; /* of the apply */
	uint64 rows;
} ChangeReceiver;

/* Before the first row: how each column of the query becomes text. */
static void
changes_startup(DestReceiver *self, int operation, TupleDesc desc)
{
	ChangeReceiver *receiver = (ChangeReceiver *) self;
	Apply *apply = receiver->apply;
	int i;
	ListCell *lc;
	int source_columns = 0;

	foreach (lc, apply->columns)
		if (!((MatColumn *) lfirst(lc))->extra)
			source_columns++;
	if (desc->natts != 3 + source_columns)
		elog(ERROR,
			 "redshift_fdw: materialization \"%s\": the changes query gives "
			 "%d columns, not %d",
			 apply->name, desc->natts - 3, source_columns);

	apply->to_utf8 = GetDatabaseEncoding() != PG_UTF8;
	apply->output = MemoryContextAllocZero(receiver->context,
										   sizeof(FmgrInfo) * desc->natts);
	apply->output_kind = MemoryContextAllocZero(
		receiver->context, sizeof(ColumnOutput) * desc->natts);
	for (i = 0; i < desc->natts; i++)
	{
		Oid type = TupleDescAttr(desc, i)->atttypid;
		Oid output;
		bool varlena;

		if (type == TEXTOID || type == VARCHAROID)
			apply->output_kind[i] = OUTPUT_TEXT;
		else if (type == INT2OID)
			apply->output_kind[i] = OUTPUT_INT2;
		else if (type == INT4OID)
			apply->output_kind[i] = OUTPUT_INT4;
		else if (type == INT8OID)
			apply->output_kind[i] = OUTPUT_INT8;
		else if (type == BOOLOID)
			apply->output_kind[i] = OUTPUT_BOOL;
		/* floats shortest exact, as the apply's extra_float_digits says */
		else if (type == FLOAT4OID && extra_float_digits > 0)
			apply->output_kind[i] = OUTPUT_FLOAT4;
		else if (type == FLOAT8OID && extra_float_digits > 0)
			apply->output_kind[i] = OUTPUT_FLOAT8;
		/* dates and times directly in the apply's DateStyle and TimeZone */
		else if (type == DATEOID && DateStyle == USE_ISO_DATES)
			apply->output_kind[i] = OUTPUT_DATE;
		else if (type == TIMESTAMPOID && DateStyle == USE_ISO_DATES)
			apply->output_kind[i] = OUTPUT_TIMESTAMP;
		else if (type == TIMESTAMPTZOID && DateStyle == USE_ISO_DATES &&
				 strcmp(pg_get_timezone_name(session_timezone), "UTC") == 0)
			apply->output_kind[i] = OUTPUT_TIMESTAMPTZ;
		else
			apply->output_kind[i] = OUTPUT_FUNCTION;
		/* also for the dates and times written another way */
		if (apply->output_kind[i] == OUTPUT_FUNCTION ||
			apply->output_kind[i] == OUTPUT_DATE ||
			apply->output_kind[i] == OUTPUT_TIMESTAMP ||
			apply->output_kind[i] == OUTPUT_TIMESTAMPTZ)
		{
			getTypeOutputInfo(type, &output, &varlena);
			fmgr_info_cxt(output, &apply->output[i], receiver->context);
		}
	}
	high_key_track(apply, desc, receiver->context);
}

/*
 * One row of the changes query: the snapshot marker first, then changes;
 * every APPLY_POLL_ROWS rows, a look at the load running meanwhile.  An
 * 'F' row marks the end of the rows above the target's highest key: the
 * pass over the log follows, which gives no row for a while (it looks at
 * the load through _mat_load_poll), so everything staged is uploaded for
 * Redshift before it.  In
 * the apply's memory context, not the executor's: what the marker and the
 * load set up (the COPY in flight) outlives the query.
 */
static bool
changes_receive(TupleTableSlot *slot, DestReceiver *self)
{
	ChangeReceiver *receiver = (ChangeReceiver *) self;
	Apply *apply = receiver->apply;
	MemoryContext old = MemoryContextSwitchTo(receiver->context);
	char op;

	slot_getallattrs(slot);
	apply->values = slot->tts_values;
	apply->nulls = slot->tts_isnull;
	MemoryContextReset(apply->row_context);
	op = *VARDATA_ANY(DatumGetTextPP(apply->values[0]));
	if (op == 'S' || op == 'R')
	{
		size_t len;
		const char *snapshot = column_text(apply, 2, &len);

		/* the first row: the high-water mark */
		apply->snapshot = MemoryContextStrdup(TopTransactionContext,
											  pnstrdup(snapshot, len));
		apply->reload = op == 'R';
		high_key_note_before(apply);
		plan_streams(apply);
		if (load_while_staging)
			pipeline_begin(apply);
	}
	else if (op == 'F')
		pipeline_flush(apply);
	else
	{
		if (op != 'D')
			high_key_note_staged(apply);
		stage_row(apply, op);
	}
	if (++receiver->rows % APPLY_POLL_ROWS == 0)
	{
		CHECK_FOR_INTERRUPTS();
		pipeline_poll(apply, false);
	}
	MemoryContextSwitchTo(old);
	return true;
}

/* After the last row: nothing to release, the apply owns what it made. */
static void
changes_shutdown(DestReceiver *self)
{
}

/* The receiver lives on stage_changes' stack. */
static void
changes_destroy(DestReceiver *self)
{
}

/*
 * The position in apply->columns of the first key column when its values
 * bound the target's keys: standard updates, and a column that orders on
 * Redshift as here (integers, numeric, dates, timestamps) and is there
 * already; else -1.
 */
static int
high_key_column(Apply *apply)
{
	ListCell *lc;

	if (apply->delta || apply->first_key == NULL)
		return -1;
	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (col->extra || !col->is_key ||
			strcmp(col->local_name, apply->first_key) != 0)
			continue;
		if (col->to_add ||
			(col->family != FAM_INT && col->family != FAM_NUMERIC &&
			 col->family != FAM_DATE && col->family != FAM_TIMESTAMP))
			return -1;
		return foreach_current_index (lc);
	}
	return -1;
}

/*
 * The highest value of the target's first key column, for the changes
 * query: keys above it cannot be in the target, so the source's rows
 * above it go first as inserts, before the log is looked at (see
 * _mat_changes_query).  Only when the apply goes on from a checkpoint (a
 * reload sends every row anyway).  The checkpoint records it (see
 * high_key_after); when it does not (a checkpoint an earlier version
 * wrote, a bound lost), Redshift is asked without waiting, and
 * high_key_collect takes the answer before the changes query runs.
 */
static void
high_key_ask(Apply *apply)
{
	int i = high_key_column(apply);
	MatColumn *col;

	if (i < 0 || apply->applied_snapshot == NULL || apply->checkpoint_behind ||
		apply->columns_added)
		return;
	if (apply->checkpoint_high_key != NULL)
	{
		apply->high_key = apply->checkpoint_high_key;
		ereport(DEBUG1,
				(errmsg("materialization \"%s\": the source's rows above "
						"%s, the target's highest key, go first (from its "
						"checkpoint)",
						apply->name, apply->high_key)));
		return;
	}
	col = list_nth(apply->columns, i);
	redshift_send_query(apply->conn,
						psprintf("SELECT max(%s) FROM %s",
								 identifier(col->remote_name), apply->target),
						"the target's highest key", 0, NULL);
	apply->high_key_asked = true;
}

/*
 * The answer to high_key_ask: the highest key as text, or NULL (an empty
 * target, or the question failed: then the apply reads every change from
 * the log, as it would without it).
 */
static void
high_key_collect(Apply *apply)
{
	RemoteFailure failure;
	PGresult *res;

	if (!apply->high_key_asked)
		return;
	apply->high_key_asked = false;
	res = remote_collect(apply, "the target's highest key", &failure);
	if (res == NULL)
	{
		ereport(DEBUG1,
				(errmsg("materialization \"%s\": the target's highest key "
						"is unknown: %s",
						apply->name, failure.message)));
		return;
	}
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
		!PQgetisnull(res, 0, 0))
	{
		apply->high_key = pstrdup(PQgetvalue(res, 0, 0));
		ereport(DEBUG1,
				(errmsg("materialization \"%s\": the source's rows above "
						"%s, the target's highest key, go first",
						apply->name, apply->high_key)));
	}
	PQclear(res);
}

/*
 * Before the first row: the changes query's column of the first key,
 * when high_key_column allows and its type is one the bound is kept for
 * (the types _mat_changes_query reads $2 as), and how to compare and
 * write its values.
 */
static void
high_key_track(Apply *apply, TupleDesc desc, MemoryContext context)
{
	int i = high_key_column(apply);
	Oid type;
	TypeCacheEntry *entry;
	bool varlena;

	apply->high_column = -1;
	if (i < 0)
		return;
	type = TupleDescAttr(desc, 3 + i)->atttypid;
	if (type != INT2OID && type != INT4OID && type != INT8OID &&
		type != NUMERICOID && type != DATEOID && type != TIMESTAMPOID &&
		type != TIMESTAMPTZOID)
		return;
	entry = lookup_type_cache(type, TYPECACHE_CMP_PROC_FINFO);
	if (!OidIsValid(entry->cmp_proc_finfo.fn_oid))
		return;
	fmgr_info_copy(&apply->high_compare, &entry->cmp_proc_finfo, context);
	apply->high_byval = entry->typbyval;
	apply->high_typlen = entry->typlen;
	getTypeOutputInfo(type, &apply->high_output, &varlena);
	apply->high_column = 3 + i;
}

/* a < b, b == a, a > b: < 0, 0, > 0 */
static int
high_key_compare(Apply *apply, Datum a, Datum b)
{
	return DatumGetInt32(
		FunctionCall2Coll(&apply->high_compare, InvalidOid, a, b));
}

/* The first row's value of the first key: the bound the query used. */
static void
high_key_note_before(Apply *apply)
{
	int i = apply->high_column;

	if (i < 0 || apply->nulls[i])
		return;
	apply->high_before =
		datumCopy(apply->values[i], apply->high_byval, apply->high_typlen);
	apply->high_before_known = true;
}

/* A row for the target: its first key may be the highest staged. */
static void
high_key_note_staged(Apply *apply)
{
	int i = apply->high_column;
	Datum value;

	if (i < 0 || apply->nulls[i])
		return;
	value = apply->values[i];
	if (apply->high_staged_known &&
		high_key_compare(apply, value, apply->high_staged) <= 0)
		return;
	if (apply->high_staged_known && !apply->high_byval)
		pfree(DatumGetPointer(apply->high_staged));
	apply->high_staged =
		datumCopy(value, apply->high_byval, apply->high_typlen);
	apply->high_staged_known = true;
}

/*
 * The checkpoint's high key once this apply is loaded, as SQL: an upper
 * bound of the target's first key column (NULL: unknown).  After a reload
 * that replaced every row, or into a table this apply made, the highest
 * key staged; else the higher of that and the bound the apply started
 * from (rows are never removed from it by raising it: deletes and
 * soft-deleted rows only leave it higher than needed).  An integer key's
 * bound held to its type's range (see _mat_changes_query) may be below a
 * key on Redshift, but bounds every key the source can hold, which is
 * what the bound is for.
 */
static char *
high_key_after(Apply *apply)
{
	Datum high;

	if (apply->high_column < 0)
		return "NULL";
	if ((apply->reload && !apply->soft_delete) || apply->target_created)
	{
		if (!apply->high_staged_known)
			return "NULL";
		high = apply->high_staged;
	}
	else if (!apply->high_before_known)
		return "NULL";
	else if (apply->high_staged_known &&
			 high_key_compare(apply, apply->high_staged, apply->high_before) >
				 0)
		high = apply->high_staged;
	else
		high = apply->high_before;
	return literal(OidOutputFunctionCall(apply->high_output, high));
}

/* The apply whose changes query runs, for _mat_load_poll; NULL outside. */
static Apply *polling_apply = NULL;
static MemoryContext polling_context = NULL;
static uint64 polling_calls = 0;

/*
 * redshift_fdw._mat_load_poll(): true.  The changes query calls it for
 * each row of its pass over the change log, which gives the loader no row
 * for a while: every APPLY_POLL_ROWS calls it looks at the load running
 * meanwhile, as rows do, so that Redshift does not wait for the pass's
 * end to get its next COPY.  Outside an apply it does nothing.
 */
Datum
redshift_fdw_mat_load_poll(PG_FUNCTION_ARGS)
{
	if (polling_apply != NULL && ++polling_calls % APPLY_POLL_ROWS == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(polling_context);

		pipeline_poll(polling_apply, false);
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_BOOL(true);
}

/*
 * Read the pending changes (one local statement: its snapshot is the
 * high-water mark) into staging files, and upload their manifests; with
 * load_while_staging, Redshift loads the files meanwhile.
 */
static void
stage_changes(Apply *apply)
{
	Oid types[1] = {TEXTOID};
	ChangeReceiver receiver = {.pub = {.receiveSlot = changes_receive,
									   .rStartup = changes_startup,
									   .rShutdown = changes_shutdown,
									   .rDestroy = changes_destroy,
									   .mydest = DestNone},
							   .apply = apply,
							   .context = CurrentMemoryContext};
	SPIExecuteOptions options = {0};
	ParamListInfo params = makeParamList(2);
	SPIPlanPtr plan;
	int k;

	local_exec("SELECT redshift_fdw._mat_changes_query(m) "
			   "FROM redshift_fdw._mat($1) m",
			   1, types, (Datum[]){CStringGetTextDatum(apply->name)}, NULL);
	plan = SPI_prepare(local_value(1), 2, (Oid[]){TEXTOID, TEXTOID});
	if (plan == NULL)
		elog(ERROR, "redshift_fdw: changes query failed to prepare: %s",
			 SPI_result_code_string(SPI_result));
	if (!apply->delta)
		local_exec("SELECT redshift_fdw._mat_analyze_log($1)", 1, types,
				   (Datum[]){CStringGetTextDatum(apply->name)}, NULL);
	/*
	 * Changes since the checkpoint's snapshot; everything (a reload) when
	 * there is none, when the target gained columns that its rows lack
	 * (standard updates: delta rows stay as they were appended), or when the
	 * checkpoint went back behind changes the log no longer holds.
	 */
	params->params[0].ptype = TEXTOID;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].isnull = !(apply->applied_snapshot &&
								 !(apply->columns_added && !apply->delta)) ||
							   apply->checkpoint_behind;
	params->params[0].value =
		params->params[0].isnull
			? (Datum) 0
			: CStringGetTextDatum(apply->applied_snapshot);
	high_key_collect(apply);
	params->params[1].ptype = TEXTOID;
	params->params[1].pflags = PARAM_FLAG_CONST;
	params->params[1].isnull = apply->high_key == NULL;
	params->params[1].value =
		apply->high_key ? CStringGetTextDatum(apply->high_key) : (Datum) 0;
	open_streams(apply);
	apply->row_context =
		AllocSetContextCreate(CurrentMemoryContext, "redshift_fdw change row",
							  ALLOCSET_DEFAULT_SIZES);
	options.params = params;
	options.dest = &receiver.pub;
	/*
	 * A row refused while staging (a value over Redshift's limits, \N) is
	 * raised from inside the changes query, so its error would carry the
	 * whole query as CONTEXT, which tells the user nothing: the context is
	 * dropped (the error names the binding, column and key).  Internal
	 * errors keep it.
	 */
	polling_apply = apply;
	polling_context = receiver.context;
	PG_TRY();
	{
		if (SPI_execute_plan_extended(plan, &options) < 0)
			elog(ERROR, "redshift_fdw: the changes query failed");
	}
	PG_CATCH();
	{
		ErrorData *edata;

		polling_apply = NULL;
		MemoryContextSwitchTo(receiver.context);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->sqlerrcode != ERRCODE_INTERNAL_ERROR)
			edata->context = NULL;
		ReThrowError(edata);
	}
	PG_END_TRY();
	polling_apply = NULL;
	SPI_freeplan(plan);
	apply->values = NULL;
	apply->nulls = NULL;
	if (apply->snapshot == NULL)
		elog(ERROR, "redshift_fdw: the changes query gave no snapshot");
	for (k = 0; k < NUM_STREAMS; k++)
		apply->streams[k].manifest =
			stage_writer_finish(apply->streams[k].writer);
	pipeline_poll(apply, true);
	apply->rows = 0;
	apply->bytes = 0;
	for (k = 0; k < NUM_STREAMS; k++)
	{
		apply->rows += stage_writer_rows(apply->streams[k].writer);
		apply->bytes += stage_writer_bytes(apply->streams[k].writer);
	}
}

/* Widen VARCHAR columns too narrow for what was staged (autocommit). */
static void
widen_columns(Apply *apply)
{
	ListCell *lc;

	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);
		int width;

		if (col->family != FAM_VARCHAR || col->width <= 0 ||
			col->longest <= (size_t) col->width)
			continue;
		width = stage_varchar_width(col->longest);
		if (col->to_add) /* not there yet: added this wide */
			col->remote_type = psprintf("VARCHAR(%d)", width);
		else
			remote_command(
				apply,
				psprintf("ALTER TABLE %s ALTER COLUMN %s TYPE VARCHAR(%d)",
						 apply->target, identifier(col->remote_name), width));
		ereport(DEBUG1, (errmsg("materialization \"%s\": %s.%s widened to "
								"VARCHAR(%d)",
								apply->name, apply->target_label,
								col->remote_name, width)));
		col->width = width;
	}
}

/* ------------------------------------------------------------------ */
/* the load transaction                                                */

/* "COPY table (cols) FROM manifest ..." with or without the secrets. */
static char *
copy_statement(Apply *apply, const char *table, bool keys_only,
			   const char *manifest, bool display)
{
	StringInfoData sql;
	ListCell *lc;
	bool first = true;

	initStringInfo(&sql);
	appendStringInfo(&sql, "COPY %s (", table);
	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if ((keys_only && !col->is_key) || (col->extra && !apply->delta))
			continue;
		appendStringInfo(&sql, "%s%s", first ? "" : ", ",
						 identifier(col->remote_name));
		first = false;
	}
	appendStringInfo(&sql,
					 ") FROM %s %s MANIFEST REGION %s FORMAT AS CSV "
					 "%s%sNULL AS %s DATEFORMAT 'auto' TIMEFORMAT "
					 "'auto' COMPUPDATE OFF STATUPDATE OFF",
					 literal(s3_client_location(apply->s3, manifest)),
					 display ? "CREDENTIALS [redacted]" : apply->auth,
					 literal(apply->region),
					 stage_compression_copy_option(apply->compression),
					 apply->compression == STAGE_COMPRESS_NONE ? "" : " ",
					 literal(STAGE_NULL_TEXT));
	return sql.data;
}

/* "t.k1 = s.k1 AND ..." over the key columns. */
static char *
key_match(Apply *apply, const char *left, const char *right)
{
	StringInfoData buf;
	ListCell *lc;

	initStringInfo(&buf);
	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (!col->is_key)
			continue;
		appendStringInfo(&buf, "%s%s.%s = %s.%s", buf.len ? " AND " : "", left,
						 identifier(col->remote_name), right,
						 identifier(col->remote_name));
	}
	return buf.data;
}

/* The source columns, quoted, comma-separated (with a table prefix). */
static char *
column_list(Apply *apply, const char *prefix)
{
	StringInfoData buf;
	ListCell *lc;

	initStringInfo(&buf);
	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (col->extra)
			continue;
		appendStringInfo(&buf, "%s%s%s%s", buf.len ? ", " : "",
						 prefix ? prefix : "", prefix ? "." : "",
						 identifier(col->remote_name));
	}
	return buf.data;
}

/* Run a COPY step; on failure remember that load errors may explain it. */
static bool
copy_step(Apply *apply, const char *table, bool keys_only,
		  const char *manifest, RemoteFailure *failure)
{
	return step(
		apply, copy_statement(apply, table, keys_only, manifest, false),
		copy_statement(apply, table, keys_only, manifest, true), failure);
}

/*
 * The load transaction's start: BEGIN, LOCK the checkpoint table first (so
 * applies into one schema queue instead of failing with 1023), and check
 * that the fence is ours and the checkpoint is where the staged changes
 * start.
 */
static bool
begin_load(Apply *apply, RemoteFailure *failure)
{
	bool found;
	int64 fence;
	char *snapshot = NULL;
	int64 changes;
	char *high_key;
	int k;

	if (!step(apply, "BEGIN", NULL, failure) ||
		!step(apply, psprintf("LOCK %s", apply->checkpoint), NULL, failure) ||
		!read_checkpoint(apply, failure, &found, &fence, &snapshot, &changes,
						 &high_key))
		return false;
	if (!found || fence != apply->fence ||
		(snapshot == NULL) != (apply->applied_snapshot == NULL) ||
		(snapshot && strcmp(snapshot, apply->applied_snapshot) != 0))
	{
		remote_rollback(apply);
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("materialization \"%s\": another writer took over %s "
						"(checkpoint fence " INT64_FORMAT
						", this apply's " INT64_FORMAT ")",
						apply->name, apply->target_label, found ? fence : 0,
						apply->fence),
				 errdetail("Nothing was applied."),
				 errhint("Another copy of this database is applying the same "
						 "binding, or an apply began meanwhile; the next run "
						 "starts from the checkpoint again.")));
	}
	for (k = 0; k < NUM_STREAMS; k++)
		apply->streams[k].created = false;
	return add_columns(apply, failure);
}

/* On a reload (standard updates), empty the target first. */
static bool
reload_step(Apply *apply, RemoteFailure *failure)
{
	if (apply->delta || !apply->reload)
		return true;
	return step(
		apply,
		apply->soft_delete
			? psprintf("UPDATE %s SET _rsfdw_deleted = true", apply->target)
			: psprintf("DELETE FROM %s", apply->target),
		NULL, failure);
}

/* Create the temp table a stream loads into, once per transaction. */
static bool
prepare_stream(Apply *apply, Stream *stream, RemoteFailure *failure)
{
	if (stream->created || strcmp(stream->into, apply->target) == 0)
		return true;
	if (!step(apply,
			  psprintf("CREATE TEMP TABLE %s (LIKE %s)", stream->into,
					   apply->target),
			  NULL, failure))
		return false;
	stream->created = true;
	return true;
}

/*
 * The load transaction's end, after the COPYs: replace the rows of the
 * upserted keys, delete (or mark) the deleted ones, move the checkpoint
 * where the fence is still ours, COMMIT.
 */
static bool
finish_load(Apply *apply, RemoteFailure *failure)
{
	Stream *upserts = &apply->streams[STREAM_UPSERTS];
	Stream *deletes = &apply->streams[STREAM_DELETES];
	PGresult *res;
	int64 new_changes =
		apply->applied_changes + (apply->delta ? apply->rows : 0);
	char *now = DatumGetCString(DirectFunctionCall1(
		timestamptz_out, TimestampTzGetDatum(GetCurrentTimestamp())));
	char *sql;

	if (upserts->created &&
		(!step(apply,
			   psprintf("DELETE FROM %s USING rsfdw_upserts rsfdw_src "
						"WHERE %s",
						apply->target,
						key_match(apply, apply->target, "rsfdw_src")),
			   NULL, failure) ||
		 !step(apply,
			   psprintf("INSERT INTO %s (%s%s) SELECT %s%s FROM "
						"rsfdw_upserts rsfdw_src",
						apply->target, column_list(apply, NULL),
						apply->soft_delete ? ", _rsfdw_deleted" : "",
						column_list(apply, "rsfdw_src"),
						apply->soft_delete ? ", false" : ""),
			   NULL, failure) ||
		 !step(apply, "DROP TABLE rsfdw_upserts", NULL, failure)))
		return false;
	if (deletes->created)
	{
		sql = apply->soft_delete
				  ? psprintf("UPDATE %s SET _rsfdw_deleted = true FROM "
							 "rsfdw_deletes rsfdw_src WHERE %s",
							 apply->target,
							 key_match(apply, apply->target, "rsfdw_src"))
				  : psprintf("DELETE FROM %s USING rsfdw_deletes "
							 "rsfdw_src WHERE %s",
							 apply->target,
							 key_match(apply, apply->target, "rsfdw_src"));
		if (!step(apply, sql, NULL, failure) ||
			!step(apply, "DROP TABLE rsfdw_deletes", NULL, failure))
			return false;
	}
	sql = psprintf(
		"UPDATE %s SET applied_snapshot = %s, applied_changes = " INT64_FORMAT
		", updated_at = %s::timestamptz::timestamp%s WHERE binding = %s AND "
		"fence = " INT64_FORMAT,
		apply->checkpoint, literal(apply->snapshot), new_changes, literal(now),
		apply->checkpoint_high_keys
			? psprintf(", high_key = %s, high_key_snapshot = %s",
					   high_key_after(apply), literal(apply->snapshot))
			: "",
		literal(apply->checkpoint_key), apply->fence);
	res = remote_try(apply, sql, sql, failure);
	if (res == NULL)
		return false;
	if (strcmp(PQcmdTuples(res), "1") != 0)
	{
		PQclear(res);
		remote_rollback(apply);
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("materialization \"%s\": another writer took over %s "
						"during the load",
						apply->name, apply->target_label),
				 errdetail("Nothing was applied.")));
	}
	PQclear(res);
	if (!step(apply, "COMMIT", NULL, failure))
		return false;
	apply->applied_changes = new_changes;
	return true;
}

/* Transaction: the whole load, from the streams' manifests. */
static bool
load_transaction(Apply *apply, RemoteFailure *failure)
{
	int k;

	if (!begin_load(apply, failure) || !reload_step(apply, failure))
		return false;
	for (k = 0; k < NUM_STREAMS; k++)
	{
		Stream *stream = &apply->streams[k];

		if (stream->manifest == NULL)
			continue;
		if (!prepare_stream(apply, stream, failure) ||
			!copy_step(apply, stream->into, stream->keys_only,
					   stream->manifest, failure))
			return false;
	}
	return finish_load(apply, failure);
}

/*
 * Transaction: one attempt of the load.  The first finishes the transaction
 * that loaded while staging; when that fails other than with 1023 (which
 * run_transaction retries), the whole load runs at once, from the
 * manifests.
 */
static bool
load_attempt(Apply *apply, RemoteFailure *failure)
{
	if (!apply->pipelined)
		return load_transaction(apply, failure);
	apply->pipelined = false;
	if (finish_load(apply, failure))
		return true;
	if (redshift_error_is_serialization_conflict(
			failure->sqlstate, failure->message, failure->detail))
		return false;
	remote_rollback(apply);
	ereport(DEBUG1, (errmsg("materialization \"%s\": loading after staging: "
							"%s",
							apply->name, failure->message)));
	return load_transaction(apply, failure);
}

/* ------------------------------------------------------------------ */
/* loading while staging                                               */

/* Whether a staged value no longer fits its VARCHAR column. */
static bool
needs_widening(Apply *apply)
{
	ListCell *lc;

	foreach (lc, apply->columns)
	{
		MatColumn *col = lfirst(lc);

		if (col->family == FAM_VARCHAR && col->width > 0 &&
			col->longest > (size_t) col->width)
			return true;
	}
	return false;
}

/*
 * Begin the load transaction as staging begins; when that fails, the
 * load runs after staging instead.
 */
static void
pipeline_begin(Apply *apply)
{
	RemoteFailure failure;

	pgstat_report_activity(
		STATE_RUNNING,
		psprintf("materialization %s: loading into %s while staging",
				 apply->name, apply->target_label));
	if (!begin_load(apply, &failure) || !reload_step(apply, &failure))
	{
		remote_rollback(apply);
		ereport(DEBUG1,
				(errmsg("materialization \"%s\": loading after staging: %s",
						apply->name, failure.message)));
		return;
	}
	apply->pipelined = true;
}

/*
 * Stop loading while staging: roll back what was loaded; the load runs
 * after staging, from the manifests.
 */
static void
pipeline_abandon(Apply *apply, const char *why)
{
	if (apply->in_flight)
	{
		RemoteFailure ignored;
		PGresult *res =
			remote_collect(apply, apply->in_flight_display, &ignored);

		if (res)
			PQclear(res);
		apply->in_flight = false;
	}
	remote_rollback(apply);
	apply->pipelined = false;
	ereport(DEBUG1, (errmsg("materialization \"%s\": loading after "
							"staging: %s",
							apply->name, why)));
}

/*
 * While Redshift loads a batch, upload what is staged in pieces, so that
 * when the batch is done the next COPY does not wait for a large upload.
 * Pieces grow with the stream (an eighth of it), so a large table is not
 * cut into thousands of small files.
 */
static void
upload_while_busy(Apply *apply)
{
	int k;

	for (k = 0; k < NUM_STREAMS; k++)
	{
		StageWriter *writer = apply->streams[k].writer;

		(void) stage_writer_rollover(
			writer,
			Max(PIPELINE_BUSY_FILE_BYTES, stage_writer_bytes(writer) / 8));
	}
}

/*
 * Keep Redshift loading while staging goes on: once the COPY sent last is
 * done, COPY the files staged since then (uploading the file being
 * written early when nothing else waits).  With finish (staging is done),
 * wait until every file is loaded.
 */
static void
pipeline_poll(Apply *apply, bool finish)
{
	while (apply->pipelined)
	{
		RemoteFailure failure;
		Stream *next = NULL;
		const char *manifest;
		int k;

		if (apply->in_flight)
		{
			PGresult *res;

			if (!finish &&
				!redshift_result_ready(apply->conn, apply->in_flight_display))
			{
				upload_while_busy(apply);
				return;
			}
			res = remote_collect(apply, apply->in_flight_display, &failure);
			apply->in_flight = false;
			if (res == NULL)
			{
				pipeline_abandon(apply, failure.message);
				return;
			}
			PQclear(res);
		}
		for (k = 0; k < NUM_STREAMS && next == NULL; k++)
			if (apply->streams[k].loaded <
				stage_writer_files(apply->streams[k].writer))
				next = &apply->streams[k];
		for (k = 0; k < NUM_STREAMS && next == NULL && !finish; k++)
			if (stage_writer_rollover(apply->streams[k].writer,
									  PIPELINE_MIN_FILE_BYTES))
				next = &apply->streams[k];
		if (next == NULL)
			return;
		if (needs_widening(apply))
		{
			pipeline_abandon(apply, "a column is to be widened");
			return;
		}
		if (!prepare_stream(apply, next, &failure))
		{
			pipeline_abandon(apply, failure.message);
			return;
		}
		manifest = stage_writer_manifest(
			next->writer, psprintf("-batch-%04d", ++next->batches),
			next->loaded);
		next->loaded = stage_writer_files(next->writer);
		apply->in_flight_display =
			copy_statement(apply, next->into, next->keys_only, manifest, true);
		redshift_send_query(apply->conn,
							copy_statement(apply, next->into, next->keys_only,
										   manifest, false),
							apply->in_flight_display, 0, NULL);
		apply->in_flight = true;
		apply->pipelined_copies++;
		if (!finish)
			return;
	}
}

/*
 * Upload everything staged, whatever its size, and COPY it if Redshift is
 * idle: the changes query's pass over the log follows (see the 'F' row).
 */
static void
pipeline_flush(Apply *apply)
{
	int k;

	if (!apply->pipelined)
		return;
	for (k = 0; k < NUM_STREAMS; k++)
		(void) stage_writer_rollover(apply->streams[k].writer, 0);
	pipeline_poll(apply, false);
}

/*
 * After a failed load (rolled back): the row Redshift rejected, from
 * stl_load_errors (or sys_load_error_detail), as an error.
 */
static void
report_load_failure(Apply *apply, RemoteFailure *failure)
{
	char *prefix = literal(
		psprintf("%s%%", s3_client_location(apply->s3, apply->apply_prefix)));
	PGresult *res;

	res = redshift_catalog_query(
		apply->conn,
		psprintf("SELECT TRIM(filename), line_number, TRIM(colname), "
				 "err_code, TRIM(err_reason), TRIM(raw_field_value) "
				 "FROM stl_load_errors WHERE session = pg_backend_pid() "
				 "AND filename LIKE %s ORDER BY starttime DESC, query DESC "
				 "LIMIT 1",
				 prefix),
		true);
	if (res == NULL || PQntuples(res) == 0)
	{
		if (res)
			PQclear(res);
		res = redshift_catalog_query(
			apply->conn,
			psprintf("SELECT TRIM(file_name), line_number, TRIM(column_name), "
					 "error_code, TRIM(error_message), NULL "
					 "FROM sys_load_error_detail WHERE session_id = "
					 "pg_backend_pid() AND file_name LIKE %s "
					 "ORDER BY start_time DESC LIMIT 1",
					 prefix),
			true);
	}
	if (res == NULL || PQntuples(res) == 0)
	{
		if (res)
			PQclear(res);
		raise_failure(apply, failure);
	}
	{
		char *file = pstrdup(PQgetvalue(res, 0, 0));
		char *line = pstrdup(PQgetvalue(res, 0, 1));
		char *column = pstrdup(PQgetvalue(res, 0, 2));
		char *code = pstrdup(PQgetvalue(res, 0, 3));
		char *reason = redacted(apply, PQgetvalue(res, 0, 4));
		char *value = PQgetisnull(res, 0, 5)
						  ? NULL
						  : redacted(apply, PQgetvalue(res, 0, 5));

		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("materialization \"%s\": Redshift rejected a row "
						"loading %s: %s (error %s)",
						apply->name, apply->target_label, reason, code),
				 errdetail("File %s, line %s, column \"%s\"%s%s%s. Nothing "
						   "was applied.",
						   file, line, column, value ? ", value \"" : "",
						   value ? value : "", value ? "\"" : ""),
				 errhint("Compare the Redshift table's definition with the "
						 "source (NOT NULL columns, narrower types); "
						 "stl_load_errors lists every rejected row.")));
	}
}

/* ------------------------------------------------------------------ */
/* the apply                                                           */

/*
 * How COPY reads the staged files: authorized by the server's IAM role,
 * else the AWS keys; compressed as staging_compression says.
 */
static void
resolve_authorization(Apply *apply)
{
	char *role = redshift_option_string(apply->server->options, "iam_role");
	char *compression;
	AwsCredentials creds;
	StringInfoData buf;

	apply->region = aws_resolve_region(apply->server);
	compression =
		redshift_option_string(apply->server->options, "staging_compression");
	apply->compression = STAGE_COMPRESS_ZSTD;
	if (compression)
		(void) stage_compression_parse(compression, &apply->compression);
	aws_resolve_credentials(apply->user, &creds);
	apply->secrets[0] = creds.secret_access_key;
	apply->secrets[1] = creds.session_token;
	apply->secrets[2] = creds.access_key_id;
	initStringInfo(&buf);
	if (role)
		appendStringInfo(&buf, "IAM_ROLE %s", literal(role));
	else
	{
		appendStringInfo(&buf, "ACCESS_KEY_ID %s SECRET_ACCESS_KEY %s",
						 literal(creds.access_key_id),
						 literal(creds.secret_access_key));
		if (creds.session_token)
			appendStringInfo(&buf, " SESSION_TOKEN %s",
							 literal(creds.session_token));
	}
	apply->auth = buf.data;
}

/*
 * Remove what earlier applies of the binding left in S3 (best effort):
 * under its checkpoint key, which no other binding shares (another
 * database's binding of the same name, with the same s3_prefix, stages
 * beside it).
 */
static void
remove_leftovers(Apply *apply)
{
	List *objects = s3_list(
		apply->s3, psprintf("%s/%s/", apply->name, apply->checkpoint_key));
	List *keys = NIL;
	ListCell *lc;

	foreach (lc, objects)
		keys = lappend(keys, ((S3Object *) lfirst(lc))->key);
	if (keys != NIL)
		s3_delete(apply->s3, keys);
}

/* Delete this apply's staged files; a failure is only a warning. */
static void
remove_staged(Apply *apply)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	List *keys = NIL;
	int k;

	for (k = 0; k < NUM_STREAMS; k++)
		keys = list_concat(keys, stage_writer_keys(apply->streams[k].writer));
	if (keys == NIL)
		return;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		s3_delete(apply->s3, keys);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
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
		ereport(WARNING,
				(errmsg("materialization \"%s\": could not delete the staged "
						"files under %s: %s",
						apply->name,
						s3_client_location(apply->s3, apply->apply_prefix),
						edata->message),
				 errdetail("The load is committed; the next apply deletes "
						   "them.")));
	}
	PG_END_TRY();
}

/*
 * Record the outcome locally (trim the log when a snapshot was applied).
 * The log may be truncated only outside a transaction block and under READ
 * COMMITTED: _mat_applied then sees every change committed so far.  Under
 * REPEATABLE READ or SERIALIZABLE it would see the log through the
 * statement's snapshot, and truncate changes committed after it.
 */
static void
record_applied(Apply *apply)
{
	Oid types[6] = {TEXTOID,		TEXTOID, INT8OID,
					TIMESTAMPTZOID, INT8OID, BOOLOID};
	Datum values[6] = {
		CStringGetTextDatum(apply->name),
		apply->snapshot ? CStringGetTextDatum(apply->snapshot) : (Datum) 0,
		Int64GetDatum(apply->applied_changes),
		TimestampTzGetDatum(apply->started),
		Int64GetDatum(apply->rows),
		BoolGetDatum(!IsTransactionBlock() && !IsolationUsesXactSnapshot())};
	char nulls[6] = {' ', apply->snapshot ? ' ' : 'n', ' ', ' ', ' ', ' '};

	local_exec("SELECT redshift_fdw._mat_applied($1, $2::pg_snapshot, $3, $4, "
			   "$5, $6)",
			   6, types, values, nulls);
}

/* Steps 2 to 6, with the remote connection held. */
static void
apply_remote(Apply *apply)
{
	RemoteFailure failure;
	TimestampTz staging_started;
	TimestampTz load_started;

	ensure_checkpoint_table(apply);
	if (!run_transaction(apply, fence_transaction, "taking the checkpoint",
						 &failure))
		raise_failure(apply, &failure);
	check_checkpoint_behind(apply);
	apply->apply_prefix = psprintf("%s/%s/" INT64_FORMAT, apply->name,
								   apply->checkpoint_key, apply->fence);
	remove_leftovers(apply);
	prepare_target(apply);
	high_key_ask(apply);
	pgstat_report_activity(
		STATE_RUNNING, psprintf("materialization %s: staging changes for %s",
								apply->name, apply->target_label));
	staging_started = GetCurrentTimestamp();
	stage_changes(apply);
	ereport(DEBUG1, (errmsg("materialization \"%s\": staged " INT64_FORMAT
							" rows, " INT64_FORMAT " bytes in %ld ms%s",
							apply->name, apply->rows, apply->bytes,
							TimestampDifferenceMilliseconds(
								staging_started, GetCurrentTimestamp()),
							apply->pipelined
								? psprintf(", loading meanwhile with %d COPY",
										   apply->pipelined_copies)
								: "")));
	if (apply->rows == 0 && !apply->reload)
	{
		/*
		 * The checkpoint already covers everything, and stays as it is: the
		 * local record (and the trim) follow it, not this apply's snapshot,
		 * so the record is never ahead of Redshift's checkpoint (which
		 * would look like a restore, see check_checkpoint_behind).  No
		 * change lies between the two.
		 */
		if (apply->pipelined)
			pipeline_abandon(apply, "nothing to load");
		apply->snapshot = apply->applied_snapshot;
		return;
	}
	load_started = GetCurrentTimestamp();
	pgstat_report_activity(
		STATE_RUNNING,
		psprintf("materialization %s: loading " INT64_FORMAT " rows into %s",
				 apply->name, apply->rows, apply->target_label));
	if (!apply->pipelined)
		widen_columns(apply); /* loading while staging stops for widening */
	if (!run_transaction(apply, load_attempt, "the load", &failure))
	{
		if (strstr(failure.message, "stl_load_errors") != NULL)
			report_load_failure(apply, &failure);
		raise_failure(apply, &failure);
	}
	ereport(DEBUG1,
			(errmsg("materialization \"%s\": loaded in %ld ms after staging",
					apply->name,
					TimestampDifferenceMilliseconds(load_started,
													GetCurrentTimestamp()))));
	remove_staged(apply);
}

/*
 * redshift_fdw._apply(name): one apply; returns the rows applied and the
 * bytes staged.
 */
Datum
redshift_fdw_apply(PG_FUNCTION_ARGS)
{
	char *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Apply *apply = palloc0(sizeof(Apply));
	TupleDesc desc;
	Datum result[2];
	bool nulls[2] = {false, false};
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(name)};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "redshift_fdw: _apply must return a record");
	apply->started = GetCurrentTimestamp();
	SPI_connect();
	load_binding(apply, name);
	local_exec(
		"SELECT own_changes, pending FROM redshift_fdw._mat_log_state($1)", 1,
		types, values, NULL);
	if (strcmp(local_value(1), "t") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("materialization \"%s\" cannot be applied in a "
						"transaction that has changed its source %s",
						name, apply->source),
				 errdetail("The apply would read the changed rows before they "
						   "are committed."),
				 errhint("Commit first. Changes made after sync() in the "
						 "same transaction go with the next apply.")));
	if (strcmp(local_value(2), "t") == 0)
	{
		if (!s3_server_configured(apply->server))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("materialization \"%s\": server \"%s\" has no S3 "
							"staging configured",
							name, apply->server->servername),
					 errhint("ALTER SERVER %s OPTIONS (ADD s3_bucket '...', "
							 "ADD s3_region '...'): changes are loaded "
							 "through S3.",
							 quote_identifier(apply->server->servername))));
		apply->user = GetUserMapping(GetUserId(), apply->server->serverid);
		resolve_authorization(apply);
		apply->s3 = s3_client_create(apply->server, apply->user);
		apply->conn = redshift_acquire_connection(apply->user);
		PG_TRY();
		{
			apply_remote(apply);
		}
		PG_CATCH();
		{
			/* never leave a transaction (and its LOCK) open on Redshift */
			if (apply->conn->conn == NULL ||
				PQtransactionStatus(apply->conn->conn) != PQTRANS_IDLE)
				apply->conn->invalidated = true;
			PG_RE_THROW();
		}
		PG_END_TRY();
		redshift_release_connection(apply->conn);
	}
	record_applied(apply);
	SPI_finish();
	result[0] = Int64GetDatum(apply->rows);
	result[1] = Int64GetDatum(apply->bytes);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, result, nulls)));
}
