/*
 * deparse.h
 *		Redshift-dialect SQL for foreign scans.
 */
#ifndef REDSHIFT_FDW_DEPARSE_H
#define REDSHIFT_FDW_DEPARSE_H

#include "postgres.h"

#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"

/* What the planner learned about a foreign base relation. */
typedef struct RedshiftRelInfo
{
	ForeignTable *table;
	ForeignServer *server;
	UserMapping *user;
	List *remote_conds;	   /* RestrictInfos evaluated by Redshift */
	List *local_conds;	   /* RestrictInfos evaluated locally */
	Bitmapset *attrs_used; /* columns needed, offset by
						    * FirstLowInvalidHeapAttributeNumber */
	Cost startup_cost;
	Cost total_cost;
	double rows;
	int fetch_size;
} RedshiftRelInfo;

/* The pieces of one remote SELECT. */
typedef struct RedshiftSelect
{
	Index relid;		/* the foreign base relation */
	List *columns;		/* attnums to select, in order (may be empty) */
	List *conds;		/* bare clauses for WHERE */
	List *pathkeys;		/* ORDER BY */
	Node *limit_count;	/* LIMIT (Const or Param), or NULL */
	Node *limit_offset; /* OFFSET (Const or Param), or NULL */
} RedshiftSelect;

extern bool redshift_is_foreign_expr(PlannerInfo *root, RelOptInfo *baserel,
									 Expr *expr);
extern Expr *redshift_pathkey_expr(PlannerInfo *root, RelOptInfo *baserel,
								   PathKey *pathkey);
extern bool redshift_limit_shippable(Node *node);
extern void redshift_deparse_select(StringInfo buf, PlannerInfo *root,
									RedshiftSelect *select,
									List **params_list);
extern void redshift_append_relation(StringInfo buf, Oid relid);
extern char *redshift_column_name(Oid relid, AttrNumber attnum);
extern char *redshift_bind_params(const char *sql, int nparams,
								  const Datum *values, const bool *nulls,
								  const Oid *types);

#endif /* REDSHIFT_FDW_DEPARSE_H */
