/*
 * shippable.c
 *		Which operators and casts may be evaluated by Redshift.
 *
 * An explicit allow-list: a built-in operator is shipped only when its name
 * is listed here for its argument types and Redshift computes the same
 * result.  Left out on purpose: numeric * and / (Redshift caps precision
 * and scale differently), comparisons mixing timestamptz with date or
 * timestamp (they depend on the local TimeZone, the remote session runs in
 * UTC), and anything on types outside redshift_is_shippable_type.
 * Ordering comparisons of text are shipped only under the C collation
 * (Redshift compares strings byte by byte); deparse.c checks that.
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/htup_details.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "utils/syscache.h"

#include "shippable.h"
#include "typemap.h"

static bool
is_text_type(Oid type)
{
	return type == TEXTOID || type == VARCHAROID || type == BPCHAROID;
}

static bool
is_integer_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID;
}

static bool
is_number_type(Oid type)
{
	return is_integer_type(type) || type == FLOAT4OID || type == FLOAT8OID ||
		   type == NUMERICOID;
}

static bool
is_datetime_type(Oid type)
{
	return type == DATEOID || type == TIMEOID || type == TIMESTAMPOID ||
		   type == TIMESTAMPTZOID;
}

/*
 * Do two argument types compare the same way locally and remotely?
 */
static bool
comparable_types(Oid left, Oid right)
{
	if (is_number_type(left) && is_number_type(right))
		return true;
	if (is_text_type(left) && is_text_type(right))
		return true;
	if (left == BOOLOID && right == BOOLOID)
		return true;
	if (is_datetime_type(left) && is_datetime_type(right))
	{
		/* no mixing of timestamptz with local-time types */
		if ((left == TIMESTAMPTZOID) != (right == TIMESTAMPTZOID))
			return false;
		/* time compares only with time */
		if ((left == TIMEOID) != (right == TIMEOID))
			return false;
		return true;
	}
	return false;
}

/*
 * Is this operator shippable?  *ordering_on_text is set when it orders
 * strings, which is only safe under the C collation.
 */
bool
redshift_is_shippable_operator(Oid opno, bool *ordering_on_text)
{
	HeapTuple tuple;
	Form_pg_operator op;
	const char *name;
	Oid left;
	Oid right;
	Oid result;
	bool ok = false;

	*ordering_on_text = false;
	if (opno >= FirstGenbkiObjectId)
		return false;
	tuple = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tuple))
		return false;
	op = (Form_pg_operator) GETSTRUCT(tuple);
	name = NameStr(op->oprname);
	left = op->oprleft;
	right = op->oprright;
	result = op->oprresult;

	if (strcmp(name, "=") == 0 || strcmp(name, "<>") == 0)
		ok = comparable_types(left, right);
	else if (strcmp(name, "<") == 0 || strcmp(name, "<=") == 0 ||
			 strcmp(name, ">") == 0 || strcmp(name, ">=") == 0)
	{
		ok = comparable_types(left, right) && left != BOOLOID;
		*ordering_on_text = is_text_type(left);
	}
	else if (strcmp(name, "~~") == 0 || strcmp(name, "!~~") == 0 ||
			 strcmp(name, "~~*") == 0 || strcmp(name, "!~~*") == 0)
		ok = is_text_type(left) && is_text_type(right);
	else if (left == InvalidOid && strcmp(name, "-") == 0)
		ok = is_number_type(right);
	else if (strcmp(name, "+") == 0 || strcmp(name, "-") == 0)
		ok =
			(is_number_type(left) && is_number_type(right) &&
			 is_number_type(result)) ||
			(left == DATEOID && is_integer_type(right) && result == DATEOID) ||
			(left == DATEOID && right == DATEOID && result == INT4OID);
	else if (strcmp(name, "*") == 0)
		ok = is_number_type(left) && is_number_type(right) &&
			 left != NUMERICOID && right != NUMERICOID;
	else if (strcmp(name, "/") == 0)
		ok = ((is_integer_type(left) && is_integer_type(right)) ||
			  ((left == FLOAT4OID || left == FLOAT8OID) &&
			   (right == FLOAT4OID || right == FLOAT8OID)));
	else if (strcmp(name, "%") == 0)
		ok = is_integer_type(left) && is_integer_type(right);

	ReleaseSysCache(tuple);
	return ok;
}

/*
 * Is a cast from one type to another computed the same way remotely?
 * Only widening casts that cannot round, truncate or depend on settings.
 */
bool
redshift_is_shippable_cast(Oid source, Oid target)
{
	if (source == target)
		return true;
	if (is_integer_type(source) &&
		(is_integer_type(target) || target == NUMERICOID ||
		 target == FLOAT8OID))
	{
		/* narrowing integer casts can fail differently: only widen */
		if (source == INT8OID && target != NUMERICOID)
			return false;
		if (source == INT4OID && target == INT2OID)
			return false;
		return true;
	}
	if (source == FLOAT4OID && target == FLOAT8OID)
		return true;
	if (source == DATEOID && target == TIMESTAMPOID)
		return true;
	/* bpchar -> text strips trailing blanks: not shipped */
	if ((source == TEXTOID || source == VARCHAROID) &&
		(target == TEXTOID || target == VARCHAROID))
		return true;
	return false;
}
