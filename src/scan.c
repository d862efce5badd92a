/*
 * scan.c
 *		Planning and execution of foreign scans.
 *
 * Planning splits the WHERE clauses into those Redshift evaluates and
 * those evaluated locally, offers a path sorted remotely when the query's
 * ORDER BY can be shipped, and a path for the whole query including LIMIT
 * and OFFSET when nothing else is left to do locally.
 *
 * Execution streams: the query is sent without a cursor (Redshift allows
 * one cursor per session and materialises cursor results on the leader
 * node) in libpq's single-row mode, and rows are converted in batches of
 * fetch_size into a batch memory context that is reset between batches, so
 * a scan of any size runs in constant memory.  Each open scan holds its own
 * connection; a rescan sends the query again.
 */
#include "postgres.h"

#include "access/sysattr.h"
#include "access/table.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "optimizer/tlist.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "connection.h"
#include "deparse.h"
#include "option.h"
#include "scan.h"
#include "typemap.h"

/* Cost model: a fixed price to start a remote query, then per row. */
#define STARTUP_COST 100.0
#define TRANSFER_COST_PER_ROW 0.01
#define DEFAULT_FETCH_SIZE 1000
#define DEFAULT_ROWS 1000.0

/* Items of ForeignScan.fdw_private. */
enum ScanPrivateIndex
{
	SCAN_SQL,			  /* remote SQL with $n placeholders */
	SCAN_RETRIEVED_ATTRS, /* for each result column, its slot attno */
	SCAN_FETCH_SIZE		  /* rows converted per batch */
};

/* Items of the fdw_private of a path for the final (LIMIT) stage. */
enum FinalPathPrivateIndex
{
	FINAL_BASE_RELID /* the foreign base relation scanned */
};

/*
 * Bytes of row data this backend has received from Redshift in scans, so
 * a scheduled run can record how much it read.
 */
uint64 redshift_scan_bytes_received = 0;

/* Execution state of one foreign scan. */
typedef struct RedshiftScanState
{
	char *sql;		/* as planned, with placeholders */
	char *sent_sql; /* as sent, for error context */
	List *retrieved_attrs;
	int fetch_size;
	UserMapping *user;
	RedshiftConn *conn;
	const char *relname; /* for error messages */
	Oid relid;
	TupleDesc tupdesc;			   /* of the scan slot */
	RedshiftConverter *converters; /* by slot attno - 1 */
	int nparams;
	List *param_exprs; /* ExprStates */
	Oid *param_types;
	bool query_sent;
	bool eof;
	Oid *remote_types; /* PQftype of each result column */
	HeapTuple *tuples; /* current batch */
	int num_tuples;
	int next_tuple;
	MemoryContext batch_cxt;
	const char *error_column; /* column being converted */
} RedshiftScanState;

/*
 * The user whose mapping is used: the view owner's for scans through a
 * view, else the current user.
 */
static Oid
scan_user(RangeTblEntry *rte)
{
	return OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
}

/*
 * GetForeignRelSize: split the WHERE clauses, note the needed columns and
 * estimate the result size.
 */
static void
redshift_get_foreign_rel_size(PlannerInfo *root, RelOptInfo *baserel,
							  Oid foreigntableid)
{
	RedshiftRelInfo *info = palloc0(sizeof(RedshiftRelInfo));
	RangeTblEntry *rte = planner_rt_fetch(baserel->relid, root);
	ListCell *lc;
	int i;

	baserel->fdw_private = info;
	info->table = GetForeignTable(foreigntableid);
	info->server = GetForeignServer(info->table->serverid);
	info->user = GetUserMapping(scan_user(rte), info->server->serverid);
	info->fetch_size = redshift_option_int(
		info->table->options, "fetch_size",
		redshift_option_int(info->server->options, "fetch_size",
							DEFAULT_FETCH_SIZE));

	foreach (lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (redshift_is_foreign_expr(root, baserel, ri->clause))
			info->remote_conds = lappend(info->remote_conds, ri);
		else
			info->local_conds = lappend(info->local_conds, ri);
	}

	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid,
				   &info->attrs_used);
	foreach (lc, info->local_conds)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause,
					   baserel->relid, &info->attrs_used);
	/* a whole-row reference needs every column */
	if (bms_is_member(0 - FirstLowInvalidHeapAttributeNumber,
					  info->attrs_used))
	{
		Relation rel = table_open(foreigntableid, NoLock);

		for (i = 1; i <= RelationGetNumberOfAttributes(rel); i++)
			info->attrs_used = bms_add_member(
				info->attrs_used, i - FirstLowInvalidHeapAttributeNumber);
		table_close(rel, NoLock);
	}

	/* Without statistics, assume a modest table. */
	if (baserel->tuples < 0)
		baserel->tuples = DEFAULT_ROWS;
	set_baserel_size_estimates(root, baserel);
	info->rows = baserel->rows;
	info->startup_cost = STARTUP_COST;
	info->total_cost =
		STARTUP_COST +
		baserel->tuples * (cpu_tuple_cost + TRANSFER_COST_PER_ROW) * 0.5 +
		baserel->rows * (cpu_tuple_cost + TRANSFER_COST_PER_ROW);
}

/*
 * The query's ORDER BY keys, if Redshift can sort this relation by all of
 * them.
 */
static List *
shippable_query_pathkeys(PlannerInfo *root, RelOptInfo *baserel)
{
	ListCell *lc;

	if (root->query_pathkeys == NIL)
		return NIL;
	foreach (lc, root->query_pathkeys)
	{
		if (redshift_pathkey_expr(root, baserel, lfirst(lc)) == NULL)
			return NIL;
	}
	return root->query_pathkeys;
}

/*
 * GetForeignPaths: a plain scan, and a remotely sorted one when the ORDER
 * BY can be shipped.
 */
static void
redshift_get_foreign_paths(PlannerInfo *root, RelOptInfo *baserel,
						   Oid foreigntableid)
{
	RedshiftRelInfo *info = baserel->fdw_private;
	List *pathkeys;

	add_path(baserel,
			 (Path *) create_foreignscan_path(
				 root, baserel, NULL, info->rows, info->startup_cost,
				 info->total_cost, NIL, baserel->lateral_relids, NULL, NIL));

	pathkeys = shippable_query_pathkeys(root, baserel);
	if (pathkeys != NIL)
	{
		/* Redshift sorts on its slices: a small surcharge over no sort */
		Cost total = info->total_cost + info->rows * cpu_operator_cost * 0.1;

		add_path(baserel,
				 (Path *) create_foreignscan_path(
					 root, baserel, NULL, info->rows, info->startup_cost,
					 total, pathkeys, baserel->lateral_relids, NULL, NIL));
	}
}

/*
 * The single foreign base relation of a query whose LIMIT could be
 * shipped, or NULL.
 */
static RelOptInfo *
sole_foreign_base_rel(PlannerInfo *root)
{
	int relid;

	if (bms_membership(root->all_baserels) != BMS_SINGLETON)
		return NULL;
	relid = bms_singleton_member(root->all_baserels);
	if (root->simple_rel_array[relid] == NULL ||
		root->simple_rel_array[relid]->fdw_private == NULL ||
		root->simple_rel_array[relid]->fdwroutine == NULL ||
		root->simple_rel_array[relid]->fdwroutine->GetForeignRelSize !=
			redshift_get_foreign_rel_size)
		return NULL;
	return root->simple_rel_array[relid];
}

/*
 * GetForeignUpperPaths: for a query that only scans one foreign table,
 * filters and sorts it remotely and takes LIMIT/OFFSET, ship the LIMIT
 * too, so Redshift sends only the rows wanted.
 */
static void
redshift_get_foreign_upper_paths(PlannerInfo *root, UpperRelationKind stage,
								 RelOptInfo *input_rel, RelOptInfo *output_rel,
								 void *extra)
{
	FinalPathExtraData *final = (FinalPathExtraData *) extra;
	Query *parse = root->parse;
	RelOptInfo *baserel;
	RedshiftRelInfo *info;
	List *pathkeys = NIL;
	double rows;
	ListCell *lc;

	if (stage != UPPERREL_FINAL || !final->limit_needed)
		return;
	baserel = sole_foreign_base_rel(root);
	if (baserel == NULL)
		return;
	info = baserel->fdw_private;
	if (info->local_conds != NIL || parse->hasAggs || parse->groupClause ||
		parse->groupingSets || parse->hasWindowFuncs ||
		parse->distinctClause || parse->hasTargetSRFs || parse->rowMarks ||
		parse->setOperations || parse->limitOption == LIMIT_OPTION_WITH_TIES ||
		root->hasHavingQual || !redshift_limit_shippable(parse->limitCount) ||
		!redshift_limit_shippable(parse->limitOffset))
		return;
	if (root->sort_pathkeys != NIL)
	{
		foreach (lc, root->sort_pathkeys)
		{
			if (redshift_pathkey_expr(root, baserel, lfirst(lc)) == NULL)
				return;
		}
		pathkeys = root->sort_pathkeys;
	}

	/* as the planner does for a Limit node: 10% when the count is unknown */
	rows = final->count_est > 0 ? Min(info->rows, final->count_est)
								: clamp_row_est(info->rows * 0.10);
	/* cheaper than scanning and limiting locally: fewer rows travel */
	add_path(output_rel,
			 (Path *) create_foreign_upper_path(
				 root, output_rel, root->upper_targets[UPPERREL_FINAL], rows,
				 info->startup_cost,
				 info->startup_cost +
					 rows * (cpu_tuple_cost + TRANSFER_COST_PER_ROW) * 0.9,
				 pathkeys, NULL, list_make1_int(baserel->relid)));
}

/*
 * The attnums of the columns a base-relation scan must fetch.
 */
static List *
needed_columns(RedshiftRelInfo *info)
{
	List *columns = NIL;
	int index = -1;

	while ((index = bms_next_member(info->attrs_used, index)) >= 0)
	{
		AttrNumber attnum = index + FirstLowInvalidHeapAttributeNumber;

		if (attnum > 0)
			columns = lappend_int(columns, attnum);
	}
	return columns;
}

/*
 * GetForeignPlan: deparse the remote SELECT.
 */
static ForeignScan *
redshift_get_foreign_plan(PlannerInfo *root, RelOptInfo *foreignrel,
						  Oid foreigntableid, ForeignPath *best_path,
						  List *tlist, List *scan_clauses, Plan *outer_plan)
{
	RedshiftSelect select = {0};
	RedshiftRelInfo *info;
	RelOptInfo *baserel;
	List *local_exprs = NIL;
	List *params_list = NIL;
	List *retrieved_attrs = NIL;
	List *fdw_scan_tlist = NIL;
	Index scan_relid;
	StringInfoData sql;
	ListCell *lc;

	if (IS_SIMPLE_REL(foreignrel))
	{
		baserel = foreignrel;
		info = baserel->fdw_private;
		scan_relid = baserel->relid;
		foreach (lc, scan_clauses)
		{
			RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

			if (ri->pseudoconstant)
				continue;
			if (list_member_ptr(info->remote_conds, ri))
				select.conds = lappend(select.conds, ri->clause);
			else
				local_exprs = lappend(local_exprs, ri->clause);
		}
		select.columns = needed_columns(info);
		retrieved_attrs = select.columns;
	}
	else
	{
		/* the final stage: scan, sort and LIMIT in one remote query */
		List *vars;
		int position = 1;

		baserel =
			find_base_rel(root, linitial_int((List *) best_path->fdw_private));
		info = baserel->fdw_private;
		scan_relid = 0;
		foreach (lc, info->remote_conds)
			select.conds =
				lappend(select.conds, lfirst_node(RestrictInfo, lc)->clause);
		vars = pull_var_clause((Node *) tlist, PVC_RECURSE_PLACEHOLDERS);
		foreach (lc, vars)
		{
			Var *var = (Var *) lfirst(lc);

			if (tlist_member((Expr *) var, fdw_scan_tlist))
				continue;
			fdw_scan_tlist =
				lappend(fdw_scan_tlist,
						makeTargetEntry((Expr *) var, position, NULL, false));
			select.columns = lappend_int(select.columns, var->varattno);
			retrieved_attrs = lappend_int(retrieved_attrs, position++);
		}
		select.limit_count = root->parse->limitCount;
		select.limit_offset = root->parse->limitOffset;
	}
	select.relid = baserel->relid;
	select.pathkeys = best_path->path.pathkeys;

	initStringInfo(&sql);
	redshift_deparse_select(&sql, root, &select, &params_list);

	return make_foreignscan(tlist, local_exprs, scan_relid, params_list,
							list_make3(makeString(sql.data), retrieved_attrs,
									   makeInteger(info->fetch_size)),
							fdw_scan_tlist, NIL, outer_plan);
}

/*
 * Error context while converting a value: which column of which table.
 */
static void
conversion_error_callback(void *arg)
{
	RedshiftScanState *state = (RedshiftScanState *) arg;

	if (state->error_column)
		errcontext("column \"%s\" of foreign table \"%s\"",
				   state->error_column, state->relname);
}

/*
 * BeginForeignScan: set up conversion and parameters; the connection is
 * taken when the first row is wanted.
 */
static void
redshift_begin_foreign_scan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;
	EState *estate = node->ss.ps.state;
	RedshiftScanState *state;
	RangeTblEntry *rte;
	Index rtindex;
	ListCell *lc;
	int i;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	state = palloc0(sizeof(RedshiftScanState));
	node->fdw_state = state;

	rtindex = plan->scan.scanrelid > 0
				  ? plan->scan.scanrelid
				  : (Index) bms_next_member(plan->fs_relids, -1);
	rte = exec_rt_fetch(rtindex, estate);
	state->relid = rte->relid;
	state->relname = get_rel_name(rte->relid);
	state->user =
		GetUserMapping(scan_user(rte), GetForeignTable(rte->relid)->serverid);
	state->sql = strVal(list_nth(plan->fdw_private, SCAN_SQL));
	state->retrieved_attrs = list_nth(plan->fdw_private, SCAN_RETRIEVED_ATTRS);
	state->fetch_size = intVal(list_nth(plan->fdw_private, SCAN_FETCH_SIZE));

	state->tupdesc = plan->scan.scanrelid > 0
						 ? RelationGetDescr(node->ss.ss_currentRelation)
						 : node->ss.ss_ScanTupleSlot->tts_tupleDescriptor;
	state->converters =
		palloc0(sizeof(RedshiftConverter) * Max(state->tupdesc->natts, 1));
	foreach (lc, state->retrieved_attrs)
	{
		Form_pg_attribute attr =
			TupleDescAttr(state->tupdesc, lfirst_int(lc) - 1);

		redshift_converter_init(&state->converters[lfirst_int(lc) - 1],
								attr->atttypid, attr->atttypmod);
	}

	state->nparams = list_length(plan->fdw_exprs);
	state->param_exprs = ExecInitExprList(plan->fdw_exprs, (PlanState *) node);
	state->param_types = palloc0(sizeof(Oid) * Max(state->nparams, 1));
	i = 0;
	foreach (lc, plan->fdw_exprs)
		state->param_types[i++] = exprType(lfirst(lc));

	state->tuples = palloc0(sizeof(HeapTuple) * state->fetch_size);
	state->batch_cxt =
		AllocSetContextCreate(estate->es_query_cxt, "redshift_fdw scan batch",
							  ALLOCSET_DEFAULT_SIZES);
}

/*
 * Send the query: compute the runtime values, write them into the SQL as
 * literals and start streaming.
 */
static void
start_query(ForeignScanState *node)
{
	RedshiftScanState *state = node->fdw_state;
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	MemoryContext oldcxt;
	Datum *values = palloc0(sizeof(Datum) * Max(state->nparams, 1));
	bool *nulls = palloc0(sizeof(bool) * Max(state->nparams, 1));
	ListCell *lc;
	int i = 0;

	if (state->conn == NULL)
		state->conn = redshift_acquire_connection(state->user);

	oldcxt = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	foreach (lc, state->param_exprs)
	{
		values[i] =
			ExecEvalExpr((ExprState *) lfirst(lc), econtext, &nulls[i]);
		i++;
	}
	/*
	 * The SQL sent must outlive this call: IterateForeignScan runs in the
	 * per-tuple context, so build it in the scan state's own context.
	 */
	MemoryContextSwitchTo(GetMemoryChunkContext(state));
	if (state->sent_sql && state->sent_sql != state->sql)
		pfree(state->sent_sql);
	state->sent_sql =
		state->nparams > 0
			? redshift_bind_params(state->sql, state->nparams, values, nulls,
								   state->param_types)
			: state->sql;
	MemoryContextSwitchTo(oldcxt);

	redshift_send_query(state->conn, state->sent_sql, NULL, 0, NULL);
	if (!PQsetSingleRowMode(state->conn->conn))
		redshift_report_error(NULL, state->conn, state->sent_sql);
	state->query_sent = true;
	state->eof = false;
	state->num_tuples = 0;
	state->next_tuple = 0;
	state->remote_types = NULL;
}

/*
 * Convert one result row into a heap tuple in the batch context.
 */
static HeapTuple
convert_row(RedshiftScanState *state, PGresult *res)
{
	TupleDesc tupdesc = state->tupdesc;
	Datum *values = palloc0(sizeof(Datum) * Max(tupdesc->natts, 1));
	bool *nulls = palloc(sizeof(bool) * Max(tupdesc->natts, 1));
	ErrorContextCallback errcallback;
	ListCell *lc;
	int column = 0;

	memset(nulls, true, sizeof(bool) * Max(tupdesc->natts, 1));
	errcallback.callback = conversion_error_callback;
	errcallback.arg = state;
	errcallback.previous = error_context_stack;
	error_context_stack = &errcallback;
	foreach (lc, state->retrieved_attrs)
	{
		int attno = lfirst_int(lc);

		if (!PQgetisnull(res, 0, column))
		{
			Form_pg_attribute attr = TupleDescAttr(tupdesc, attno - 1);

			redshift_scan_bytes_received += PQgetlength(res, 0, column);

			state->error_column = NameStr(attr->attname);
			values[attno - 1] = redshift_convert_value(
				&state->converters[attno - 1], PQgetvalue(res, 0, column),
				state->remote_types[column]);
			nulls[attno - 1] = false;
		}
		column++;
	}
	state->error_column = NULL;
	error_context_stack = errcallback.previous;
	return heap_form_tuple(tupdesc, values, nulls);
}

/*
 * Fill the next batch of up to fetch_size rows; sets eof at the end of
 * the result.
 */
static void
fetch_batch(RedshiftScanState *state)
{
	MemoryContext oldcxt;

	MemoryContextReset(state->batch_cxt);
	state->num_tuples = 0;
	state->next_tuple = 0;
	oldcxt = MemoryContextSwitchTo(state->batch_cxt);
	while (state->num_tuples < state->fetch_size)
	{
		PGresult *volatile res =
			redshift_get_result(state->conn, state->sent_sql);

		if (res == NULL)
		{
			state->conn->query_active = false;
			state->eof = true;
			break;
		}
		PG_TRY();
		{
			switch (PQresultStatus(res))
			{
				case PGRES_SINGLE_TUPLE:
					if (state->remote_types == NULL)
					{
						int n = PQnfields(res);
						int i;

						state->remote_types =
							MemoryContextAlloc(GetMemoryChunkContext(state),
											   sizeof(Oid) * Max(n, 1));
						for (i = 0; i < n; i++)
							state->remote_types[i] = PQftype(res, i);
					}
					state->tuples[state->num_tuples++] =
						convert_row(state, res);
					break;
				case PGRES_TUPLES_OK:
					/* end of rows; the NULL result follows */
					break;
				default:
				{
					PGresult *rest;
					PGresult *failed;

					/* read to the end, so the connection is reusable */
					while ((rest = redshift_get_result(
								state->conn, state->sent_sql)) != NULL)
						PQclear(rest);
					failed = res;
					state->conn->query_active = false;
					res = NULL; /* redshift_report_error frees it */
					redshift_report_error(failed, state->conn,
										  state->sent_sql);
				}
			}
		}
		PG_CATCH();
		{
			PQclear(res);
			PG_RE_THROW();
		}
		PG_END_TRY();
		PQclear(res);
	}
	MemoryContextSwitchTo(oldcxt);
}

/*
 * IterateForeignScan: the next row, or an empty slot at the end.
 */
static TupleTableSlot *
redshift_iterate_foreign_scan(ForeignScanState *node)
{
	RedshiftScanState *state = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	if (!state->query_sent)
		start_query(node);
	if (state->next_tuple >= state->num_tuples)
	{
		if (state->eof)
			return ExecClearTuple(slot);
		fetch_batch(state);
		if (state->num_tuples == 0)
			return ExecClearTuple(slot);
	}
	ExecStoreHeapTuple(state->tuples[state->next_tuple++], slot, false);
	return slot;
}

/*
 * ReScanForeignScan: stop the running query; the next row sends it again
 * (with the parameters' new values).
 */
static void
redshift_rescan_foreign_scan(ForeignScanState *node)
{
	RedshiftScanState *state = node->fdw_state;

	if (state->conn)
		redshift_finish_query(state->conn);
	state->query_sent = false;
	state->eof = false;
	state->num_tuples = 0;
	state->next_tuple = 0;
}

/*
 * EndForeignScan: give the connection back.
 */
static void
redshift_end_foreign_scan(ForeignScanState *node)
{
	RedshiftScanState *state = node->fdw_state;

	if (state == NULL)
		return;
	if (state->conn)
		redshift_release_connection(state->conn);
	state->conn = NULL;
}

/*
 * ExplainForeignScan: show the remote SQL under VERBOSE.
 */
static void
redshift_explain_foreign_scan(ForeignScanState *node, ExplainState *es)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;

	if (es->verbose)
		ExplainPropertyText("Remote SQL",
							strVal(list_nth(plan->fdw_private, SCAN_SQL)), es);
}

/*
 * Fill in the scan callbacks of the FDW routine.
 */
void
redshift_scan_routine(FdwRoutine *routine)
{
	routine->GetForeignRelSize = redshift_get_foreign_rel_size;
	routine->GetForeignPaths = redshift_get_foreign_paths;
	routine->GetForeignPlan = redshift_get_foreign_plan;
	routine->GetForeignUpperPaths = redshift_get_foreign_upper_paths;
	routine->BeginForeignScan = redshift_begin_foreign_scan;
	routine->IterateForeignScan = redshift_iterate_foreign_scan;
	routine->ReScanForeignScan = redshift_rescan_foreign_scan;
	routine->EndForeignScan = redshift_end_foreign_scan;
	routine->ExplainForeignScan = redshift_explain_foreign_scan;
}
