/*
 * deparse.c
 *		Build the Redshift SELECT of a foreign scan.
 *
 * The planner asks redshift_is_foreign_expr() which WHERE clauses and sort
 * keys Redshift can evaluate with exactly the local result; those are
 * written here in Redshift's dialect:
 *   - identifiers always double-quoted, literals Redshift-escaped
 *     (typemap.c), IN lists as IN (...), never = ANY(ARRAY[...]);
 *   - row comparisons (a, b) > (x, y) expanded into
 *     ((a > x) OR (a = x AND b > y)), which has the same three-valued result;
 *   - Params and stable expressions without Vars (now(), current_date,
 *     now() - interval '1 hour', PL/pgSQL variables) become placeholders
 *     $n, replaced at execution by literals of their locally computed values
 *     (redshift_bind_params), so Redshift only ever sees constants.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "parser/parsetree.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "deparse.h"
#include "option.h"
#include "shippable.h"
#include "typemap.h"

typedef struct DeparseContext
{
	PlannerInfo *root;
	Index relid;
	StringInfo buf;
	List **params_list;
} DeparseContext;

typedef struct ShipContext
{
	Index relid;
} ShipContext;

static void deparse_expr(Expr *node, DeparseContext *ctx);

/*
 * Is this expression one to compute locally and send as a literal: no
 * Vars, nothing volatile, no sub-plans, and of a shippable type?
 */
static bool
is_local_value(Node *node)
{
	if (node == NULL || IsA(node, Var) || IsA(node, Const) || IsA(node, List))
		return false;
	if (!redshift_is_shippable_type(exprType(node)))
		return false;
	if (contain_var_clause(node) || contain_volatile_functions(node) ||
		contain_subplans(node) || contain_agg_clause(node) ||
		contain_window_function(node))
		return false;
	return true;
}

/*
 * A text ordering comparison gives Redshift's result only under the C
 * (byte order) collation.
 */
static bool
collation_ok(Oid collation, bool ordering_on_text)
{
	return !ordering_on_text || collation == C_COLLATION_OID ||
		   collation == POSIX_COLLATION_OID;
}

/*
 * Walker for redshift_is_foreign_expr: true when every node is shippable.
 */
static bool
shippable_walker(Node *node, ShipContext *ctx)
{
	bool text_order;

	if (node == NULL)
		return true;
	if (is_local_value(node))
		return true;

	switch (nodeTag(node))
	{
		case T_Var:
		{
			Var *var = (Var *) node;

			return (Index) var->varno == ctx->relid && var->varlevelsup == 0 &&
				   var->varattno > 0;
		}
		case T_Const:
		{
			Const *c = (Const *) node;

			return c->constisnull || redshift_is_shippable_type(c->consttype);
		}
		case T_Param:
			return redshift_is_shippable_type(((Param *) node)->paramtype);
		case T_OpExpr:
		{
			OpExpr *op = (OpExpr *) node;

			if (!redshift_is_shippable_operator(op->opno, &text_order) ||
				!collation_ok(op->inputcollid, text_order))
				return false;
			return shippable_walker((Node *) op->args, ctx);
		}
		case T_ScalarArrayOpExpr:
		{
			ScalarArrayOpExpr *saop = (ScalarArrayOpExpr *) node;
			Node *array = (Node *) lsecond(saop->args);
			char *name = get_opname(saop->opno);

			if (!redshift_is_shippable_operator(saop->opno, &text_order))
				return false;
			/* only x = ANY (...) and x <> ALL (...): IN and NOT IN */
			if (name == NULL ||
				(saop->useOr ? strcmp(name, "=") : strcmp(name, "<>")))
				return false;
			if (IsA(array, Const))
			{
				if (((Const *) array)->constisnull)
					return false;
			}
			else if (!IsA(array, ArrayExpr) ||
					 !shippable_walker(
						 (Node *) ((ArrayExpr *) array)->elements, ctx))
				return false;
			return shippable_walker((Node *) linitial(saop->args), ctx);
		}
		case T_BoolExpr:
			return shippable_walker((Node *) ((BoolExpr *) node)->args, ctx);
		case T_NullTest:
			if (((NullTest *) node)->argisrow)
				return false;
			return shippable_walker((Node *) ((NullTest *) node)->arg, ctx);
		case T_BooleanTest:
			return shippable_walker((Node *) ((BooleanTest *) node)->arg, ctx);
		case T_RelabelType:
			return shippable_walker((Node *) ((RelabelType *) node)->arg, ctx);
		case T_FuncExpr:
		{
			FuncExpr *func = (FuncExpr *) node;

			if ((func->funcformat != COERCE_IMPLICIT_CAST &&
				 func->funcformat != COERCE_EXPLICIT_CAST) ||
				list_length(func->args) != 1 ||
				!redshift_is_shippable_cast(exprType(linitial(func->args)),
											func->funcresulttype))
				return false;
			return shippable_walker((Node *) func->args, ctx);
		}
		case T_RowCompareExpr:
		{
			RowCompareExpr *rc = (RowCompareExpr *) node;
			ListCell *op;
			ListCell *coll;

			forboth (op, rc->opnos, coll, rc->inputcollids)
			{
				if (!redshift_is_shippable_operator(lfirst_oid(op),
													&text_order) ||
					!collation_ok(lfirst_oid(coll), text_order))
					return false;
			}
			return shippable_walker((Node *) rc->largs, ctx) &&
				   shippable_walker((Node *) rc->rargs, ctx);
		}
		case T_List:
		{
			ListCell *lc;

			foreach (lc, (List *) node)
			{
				if (!shippable_walker((Node *) lfirst(lc), ctx))
					return false;
			}
			return true;
		}
		default:
			return false;
	}
}

/*
 * Can Redshift evaluate this expression (a WHERE clause or sort key of the
 * base relation) with exactly the local result?
 */
bool
redshift_is_foreign_expr(PlannerInfo *root, RelOptInfo *baserel, Expr *expr)
{
	ShipContext ctx;

	ctx.relid = baserel->relid;
	return shippable_walker((Node *) expr, &ctx);
}

/*
 * The expression a sort key has in this relation, if Redshift can sort by
 * it the way the local sort would: a shippable expression, the default
 * btree ordering of a shippable type, C collation for text.
 */
Expr *
redshift_pathkey_expr(PlannerInfo *root, RelOptInfo *baserel, PathKey *pathkey)
{
	EquivalenceClass *ec = pathkey->pk_eclass;
	ListCell *lc;

	if (ec->ec_has_volatile)
		return NULL;
	foreach (lc, ec->ec_members)
	{
		EquivalenceMember *em = (EquivalenceMember *) lfirst(lc);
		Oid type = exprType((Node *) em->em_expr);
		Oid opfamily_type;

		if (em->em_is_const ||
			!bms_is_subset(em->em_relids, baserel->relids) ||
			bms_is_empty(em->em_relids))
			continue;
		if (!redshift_is_shippable_type(type) ||
			!redshift_is_foreign_expr(root, baserel, em->em_expr))
			continue;
		/* the sort must use the type's default btree operator family */
		opfamily_type = type == VARCHAROID ? TEXTOID : type;
		if (pathkey->pk_opfamily !=
			get_opclass_family(GetDefaultOpClass(opfamily_type, BTREE_AM_OID)))
			continue;
		if ((type == TEXTOID || type == VARCHAROID || type == BPCHAROID) &&
			!collation_ok(ec->ec_collation, true))
			continue;
		return em->em_expr;
	}
	return NULL;
}

/*
 * LIMIT and OFFSET values are shipped when known before the scan starts.
 */
bool
redshift_limit_shippable(Node *node)
{
	if (node == NULL)
		return true;
	if (IsA(node, Const))
		return true;
	return IsA(node, Param) &&
		   redshift_is_shippable_type(((Param *) node)->paramtype);
}

/*
 * The remote name of a column: its column_name option, else its name.
 */
char *
redshift_column_name(Oid relid, AttrNumber attnum)
{
	List *options = GetForeignColumnOptions(relid, attnum);
	char *name = redshift_option_string(options, "column_name");

	return name ? name : get_attname(relid, attnum, false);
}

/*
 * The remote relation of a foreign table: "schema"."table" from the
 * options (defaulting to the local names), or the query option as a
 * subquery.
 */
void
redshift_append_relation(StringInfo buf, Oid relid)
{
	ForeignTable *table = GetForeignTable(relid);
	char *query = redshift_option_string(table->options, "query");
	char *schema = redshift_option_string(table->options, "schema_name");
	char *name = redshift_option_string(table->options, "table_name");

	if (query)
	{
		appendStringInfo(buf, "(%s) AS \"q\"", query);
		return;
	}
	redshift_append_identifier(
		buf, schema ? schema : get_namespace_name(get_rel_namespace(relid)));
	appendStringInfoChar(buf, '.');
	redshift_append_identifier(buf, name ? name : get_rel_name(relid));
}

/*
 * Write a placeholder for a value computed at execution.
 */
static void
deparse_param(Node *node, DeparseContext *ctx)
{
	int index = 1;
	ListCell *lc;

	foreach (lc, *ctx->params_list)
	{
		if (equal(lfirst(lc), node))
			break;
		index++;
	}
	if (lc == NULL)
		*ctx->params_list = lappend(*ctx->params_list, node);
	appendStringInfo(ctx->buf, "$%d", index);
}

/*
 * The name of an operator, for writing it between its arguments.
 */
static char *
operator_name(Oid opno)
{
	char *name = get_opname(opno);

	if (name == NULL)
		elog(ERROR, "cache lookup failed for operator %u", opno);
	return name;
}

/*
 * The SQL name of a shippable type, for CAST(... AS type).
 */
static const char *
cast_type_name(Oid type)
{
	switch (type)
	{
		case INT2OID:
			return "smallint";
		case INT4OID:
			return "integer";
		case INT8OID:
			return "bigint";
		case NUMERICOID:
			/* the default (18,0) would overflow wide integers */
			return "numeric(38,0)";
		case FLOAT8OID:
			return "double precision";
		case TIMESTAMPOID:
			return "timestamp";
		case TEXTOID:
		case VARCHAROID:
			return "varchar(65535)";
		default:
			elog(ERROR, "no Redshift cast for type %u", type);
	}
	return NULL;
}

/*
 * (a, b, c) op (x, y, z) as nested comparisons Redshift accepts:
 * ((a > x) OR (a = x AND b > y) OR (a = x AND b = y AND c op z)).
 */
static void
deparse_row_compare(RowCompareExpr *rc, DeparseContext *ctx)
{
	int n = list_length(rc->opnos);
	const char *strict;
	int i;
	int j;

	switch (rc->rctype)
	{
		case ROWCOMPARE_LT:
		case ROWCOMPARE_LE:
			strict = "<";
			break;
		case ROWCOMPARE_GT:
		case ROWCOMPARE_GE:
			strict = ">";
			break;
		default:
			elog(ERROR, "unexpected row comparison type %d", rc->rctype);
	}
	appendStringInfoChar(ctx->buf, '(');
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(ctx->buf, " OR ");
		appendStringInfoChar(ctx->buf, '(');
		for (j = 0; j < i; j++)
		{
			deparse_expr(list_nth(rc->largs, j), ctx);
			appendStringInfoString(ctx->buf, " = ");
			deparse_expr(list_nth(rc->rargs, j), ctx);
			appendStringInfoString(ctx->buf, " AND ");
		}
		deparse_expr(list_nth(rc->largs, i), ctx);
		appendStringInfo(ctx->buf, " %s ",
						 i == n - 1 ? operator_name(list_nth_oid(rc->opnos, i))
									: strict);
		deparse_expr(list_nth(rc->rargs, i), ctx);
		appendStringInfoChar(ctx->buf, ')');
	}
	appendStringInfoChar(ctx->buf, ')');
}

/*
 * x IN (...) / x NOT IN (...) from = ANY / <> ALL over a constant array or
 * an ARRAY[...] expression.
 */
static void
deparse_in_list(ScalarArrayOpExpr *saop, DeparseContext *ctx)
{
	Node *array = (Node *) lsecond(saop->args);
	bool first = true;

	appendStringInfoChar(ctx->buf, '(');
	deparse_expr(linitial(saop->args), ctx);
	appendStringInfoString(ctx->buf, saop->useOr ? " IN (" : " NOT IN (");
	if (IsA(array, Const))
	{
		Const *c = (Const *) array;
		ArrayType *arr = DatumGetArrayTypeP(c->constvalue);
		Oid elemtype = ARR_ELEMTYPE(arr);
		int16 typlen;
		bool typbyval;
		char typalign;
		Datum *values;
		bool *nulls;
		int count;
		int i;

		get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
		deconstruct_array(arr, elemtype, typlen, typbyval, typalign, &values,
						  &nulls, &count);
		for (i = 0; i < count; i++)
		{
			if (!first)
				appendStringInfoString(ctx->buf, ", ");
			first = false;
			if (nulls[i])
				appendStringInfoString(ctx->buf, "NULL");
			else
				redshift_append_literal(ctx->buf, values[i], elemtype);
		}
		if (count == 0)
			appendStringInfoString(ctx->buf, "NULL");
	}
	else
	{
		ListCell *lc;

		foreach (lc, ((ArrayExpr *) array)->elements)
		{
			if (!first)
				appendStringInfoString(ctx->buf, ", ");
			first = false;
			deparse_expr((Expr *) lfirst(lc), ctx);
		}
	}
	appendStringInfoString(ctx->buf, "))");
}

/*
 * Write one shippable expression.
 */
static void
deparse_expr(Expr *node, DeparseContext *ctx)
{
	StringInfo buf = ctx->buf;

	if (node == NULL)
		return;
	if (is_local_value((Node *) node) || IsA(node, Param))
	{
		deparse_param((Node *) node, ctx);
		return;
	}
	switch (nodeTag(node))
	{
		case T_Var:
		{
			Var *var = (Var *) node;
			RangeTblEntry *rte = planner_rt_fetch(var->varno, ctx->root);

			redshift_append_identifier(
				buf, redshift_column_name(rte->relid, var->varattno));
			break;
		}
		case T_Const:
		{
			Const *c = (Const *) node;

			if (c->constisnull)
				appendStringInfoString(buf, "NULL");
			else
				redshift_append_literal(buf, c->constvalue, c->consttype);
			break;
		}
		case T_OpExpr:
		{
			OpExpr *op = (OpExpr *) node;

			appendStringInfoChar(buf, '(');
			if (list_length(op->args) == 2)
			{
				deparse_expr(linitial(op->args), ctx);
				appendStringInfo(buf, " %s ", operator_name(op->opno));
				deparse_expr(lsecond(op->args), ctx);
			}
			else
			{
				appendStringInfo(buf, "%s ", operator_name(op->opno));
				deparse_expr(linitial(op->args), ctx);
			}
			appendStringInfoChar(buf, ')');
			break;
		}
		case T_ScalarArrayOpExpr:
			deparse_in_list((ScalarArrayOpExpr *) node, ctx);
			break;
		case T_BoolExpr:
		{
			BoolExpr *b = (BoolExpr *) node;
			ListCell *lc;
			bool first = true;

			if (b->boolop == NOT_EXPR)
			{
				appendStringInfoString(buf, "(NOT ");
				deparse_expr(linitial(b->args), ctx);
				appendStringInfoChar(buf, ')');
				break;
			}
			appendStringInfoChar(buf, '(');
			foreach (lc, b->args)
			{
				if (!first)
					appendStringInfoString(
						buf, b->boolop == AND_EXPR ? " AND " : " OR ");
				first = false;
				deparse_expr((Expr *) lfirst(lc), ctx);
			}
			appendStringInfoChar(buf, ')');
			break;
		}
		case T_NullTest:
		{
			NullTest *nt = (NullTest *) node;

			appendStringInfoChar(buf, '(');
			deparse_expr(nt->arg, ctx);
			appendStringInfoString(buf, nt->nulltesttype == IS_NULL
											? " IS NULL)"
											: " IS NOT NULL)");
			break;
		}
		case T_BooleanTest:
		{
			BooleanTest *bt = (BooleanTest *) node;
			static const char *const tests[] = {
				" IS TRUE)",	  " IS NOT TRUE)", " IS FALSE)",
				" IS NOT FALSE)", " IS UNKNOWN)",  " IS NOT UNKNOWN)"};

			appendStringInfoChar(buf, '(');
			deparse_expr(bt->arg, ctx);
			appendStringInfoString(buf, tests[bt->booltesttype]);
			break;
		}
		case T_RelabelType:
			deparse_expr(((RelabelType *) node)->arg, ctx);
			break;
		case T_FuncExpr:
		{
			FuncExpr *func = (FuncExpr *) node;

			appendStringInfoString(buf, "CAST(");
			deparse_expr(linitial(func->args), ctx);
			appendStringInfo(buf, " AS %s)",
							 cast_type_name(func->funcresulttype));
			break;
		}
		case T_RowCompareExpr:
			deparse_row_compare((RowCompareExpr *) node, ctx);
			break;
		default:
			elog(ERROR, "unsupported expression type for deparse: %d",
				 (int) nodeTag(node));
	}
}

/*
 * SELECT columns FROM relation [WHERE ...] [ORDER BY ...] [LIMIT n]
 * [OFFSET m], in Redshift's dialect.  Values computed at execution are
 * appended to *params_list and written as $n.
 */
void
redshift_deparse_select(StringInfo buf, PlannerInfo *root,
						RedshiftSelect *select, List **params_list)
{
	RangeTblEntry *rte = planner_rt_fetch(select->relid, root);
	DeparseContext ctx;
	ListCell *lc;
	bool first = true;

	ctx.root = root;
	ctx.relid = select->relid;
	ctx.buf = buf;
	ctx.params_list = params_list;

	appendStringInfoString(buf, "SELECT ");
	foreach (lc, select->columns)
	{
		if (!first)
			appendStringInfoString(buf, ", ");
		first = false;
		redshift_append_identifier(
			buf, redshift_column_name(rte->relid, lfirst_int(lc)));
	}
	if (first)
		appendStringInfoString(buf, "NULL");
	appendStringInfoString(buf, " FROM ");
	redshift_append_relation(buf, rte->relid);

	first = true;
	foreach (lc, select->conds)
	{
		appendStringInfoString(buf, first ? " WHERE " : " AND ");
		first = false;
		deparse_expr((Expr *) lfirst(lc), &ctx);
	}

	first = true;
	foreach (lc, select->pathkeys)
	{
		PathKey *pathkey = (PathKey *) lfirst(lc);
		RelOptInfo *baserel = find_base_rel(root, select->relid);
		Expr *expr = redshift_pathkey_expr(root, baserel, pathkey);

		if (expr == NULL)
			elog(ERROR, "could not find a shippable sort key");
		appendStringInfoString(buf, first ? " ORDER BY " : ", ");
		first = false;
		deparse_expr(expr, &ctx);
		appendStringInfoString(
			buf,
			pathkey->pk_strategy == BTLessStrategyNumber ? " ASC" : " DESC");
		appendStringInfoString(buf, pathkey->pk_nulls_first ? " NULLS FIRST"
															: " NULLS LAST");
	}

	if (select->limit_count)
	{
		appendStringInfoString(buf, " LIMIT ");
		deparse_expr((Expr *) select->limit_count, &ctx);
	}
	if (select->limit_offset)
	{
		appendStringInfoString(buf, " OFFSET ");
		deparse_expr((Expr *) select->limit_offset, &ctx);
	}
}

/*
 * The query to send: each $n placeholder (outside quotes) replaced by the
 * literal of the n-th value computed at execution.
 */
char *
redshift_bind_params(const char *sql, int nparams, const Datum *values,
					 const bool *nulls, const Oid *types)
{
	StringInfoData out;
	const char *p = sql;

	initStringInfo(&out);
	while (*p)
	{
		char c = *p;

		if (c == '\'' || c == '"')
		{
			/* copy a quoted string or identifier whole */
			const char *start = p++;

			while (*p)
			{
				if (c == '\'' && *p == '\\' && p[1])
					p += 2;
				else if (*p == c && p[1] == c)
					p += 2;
				else if (*p == c)
				{
					p++;
					break;
				}
				else
					p++;
			}
			appendBinaryStringInfo(&out, start, p - start);
		}
		else if (c == '$' && p[1] >= '0' && p[1] <= '9')
		{
			char *end;
			long index = strtol(p + 1, &end, 10);

			if (index < 1 || index > nparams)
				elog(ERROR, "parameter $%ld out of range", index);
			if (nulls[index - 1])
				appendStringInfoString(&out, "NULL");
			else
				redshift_append_literal(&out, values[index - 1],
										types[index - 1]);
			p = end;
		}
		else
			appendStringInfoChar(&out, *p++);
	}
	return out.data;
}
