/*
 * capture.c
 *		SQL-callable helpers of capture bindings: templates, schedules,
 *		describing and binding custom queries.
 *
 * The bindings themselves (catalog, poll, state) are SQL in the install
 * script: a poll is an INSERT ... SELECT through the foreign-data wrapper,
 * so the cursor predicate and the ORDER BY are pushed down to Redshift by
 * the read path.  What SQL cannot do well lives here: the Go-template
 * engine (template.c) and schedule parser (schedule.c), the result columns
 * of a remote query, and Redshift literals for a template's $n.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "common/pg_prng.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "connection.h"
#include "deparse.h"
#include "schedule.h"
#include "template.h"
#include "typemap.h"

PG_FUNCTION_INFO_V1(redshift_fdw_render_template);
PG_FUNCTION_INFO_V1(redshift_fdw_check_template);
PG_FUNCTION_INFO_V1(redshift_fdw_parse_schedule);
PG_FUNCTION_INFO_V1(redshift_fdw_next_poll);
PG_FUNCTION_INFO_V1(redshift_fdw_due_at);
PG_FUNCTION_INFO_V1(redshift_fdw_retry_delay);
PG_FUNCTION_INFO_V1(redshift_fdw_describe_query);
PG_FUNCTION_INFO_V1(redshift_fdw_bind_query);

/* Microseconds between the Unix and PostgreSQL epochs. */
#define UNIX_EPOCH_SHIFT_US \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

/*
 * Parse a template, raising its error (with line:col) as a syntax error.
 */
static Template *
parse_template(const char *source)
{
	char errbuf[TEMPLATE_ERROR_MAX];
	Template *tmpl = template_parse(source, errbuf, sizeof(errbuf));

	if (tmpl == NULL)
		ereport(ERROR, (errcode(ERRCODE_SYNTAX_ERROR),
						errmsg("invalid query template: %s", errbuf),
						errhint("Templates use Go text/template syntax: "
								"{{if}}, {{range $i, $k := .CursorFields}}, "
								"{{end}}, .IsFirstQuery, .SchemaName, "
								".TableName, quoteIdentifier, "
								"quoteTableName.")));
	return tmpl;
}

/*
 * redshift_fdw.render_template(template, schema_name, table_name,
 * cursor_columns, is_first_query): the SQL a template produces.  A NULL
 * template renders the built-in default.  Cursor columns are given as
 * names; the template sees them quoted.
 */
Datum
redshift_fdw_render_template(PG_FUNCTION_ARGS)
{
	const char *source = PG_ARGISNULL(0)
							 ? TEMPLATE_DEFAULT
							 : text_to_cstring(PG_GETARG_TEXT_PP(0));
	TemplateContext ctx = {0};
	const char **fields = NULL;
	char errbuf[TEMPLATE_ERROR_MAX];
	char *out;
	Template *tmpl;
	text *result;
	bool ok;

	ctx.schema_name =
		PG_ARGISNULL(1) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(1));
	ctx.table_name =
		PG_ARGISNULL(2) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	ctx.is_first_query = PG_ARGISNULL(4) ? true : PG_GETARG_BOOL(4);
	if (!PG_ARGISNULL(3))
	{
		Datum *elems;
		bool *nulls;
		int count;
		int i;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false,
						  TYPALIGN_INT, &elems, &nulls, &count);
		fields = palloc0(sizeof(char *) * Max(count, 1));
		for (i = 0; i < count; i++)
		{
			StringInfoData quoted;

			initStringInfo(&quoted);
			redshift_append_identifier(
				&quoted, nulls[i] ? "" : TextDatumGetCString(elems[i]));
			fields[i] = quoted.data;
		}
		ctx.cursor_fields = fields;
		ctx.n_cursor_fields = count;
	}
	tmpl = parse_template(source);
	ok = template_render(tmpl, &ctx, &out, errbuf, sizeof(errbuf));
	template_free(tmpl);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("could not render the query template: %s", errbuf)));
	result = cstring_to_text(out);
	free(out);
	PG_RETURN_TEXT_P(result);
}

/*
 * redshift_fdw.check_template(template): raises the template's parse error,
 * with its position; true otherwise.
 */
Datum
redshift_fdw_check_template(PG_FUNCTION_ARGS)
{
	template_free(parse_template(text_to_cstring(PG_GETARG_TEXT_PP(0))));
	PG_RETURN_BOOL(true);
}

/* Parse a schedule or raise its error. */
static void
parse_schedule_or_error(const char *text, Schedule *schedule)
{
	char errbuf[SCHEDULE_ERROR_MAX];

	if (!schedule_parse(text, schedule, errbuf, sizeof(errbuf)))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("%s", errbuf),
						errhint("Write a duration such as 30s, 5m, 1h30m "
								"or 24h, or \"daily at HH:MMZ\" (UTC).")));
}

/*
 * redshift_fdw.parse_schedule(schedule): the schedule in canonical form,
 * or its error.
 */
Datum
redshift_fdw_parse_schedule(PG_FUNCTION_ARGS)
{
	Schedule schedule;
	char buf[SCHEDULE_TEXT_MAX];

	parse_schedule_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0)), &schedule);
	schedule_format(&schedule, buf, sizeof(buf));
	PG_RETURN_TEXT_P(cstring_to_text(buf));
}

/*
 * redshift_fdw.next_poll(schedule, last_start): when a binding polls next:
 * the last poll's start plus the interval, or the first "daily at" time
 * strictly after it; now when never polled or overdue.
 */
Datum
redshift_fdw_next_poll(PG_FUNCTION_ARGS)
{
	Schedule schedule;
	TimestampTz now = GetCurrentTimestamp();
	int64 now_us = (int64) now + UNIX_EPOCH_SHIFT_US;
	int64 last_us = 0;
	int64 next_us;

	parse_schedule_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0)), &schedule);
	if (!PG_ARGISNULL(1))
		last_us = (int64) PG_GETARG_TIMESTAMPTZ(1) + UNIX_EPOCH_SHIFT_US;
	next_us = schedule_next_run(&schedule, last_us, !PG_ARGISNULL(1), now_us);
	PG_RETURN_TIMESTAMPTZ((TimestampTz) (next_us - UNIX_EPOCH_SHIFT_US));
}

/*
 * redshift_fdw._due_at(schedule, last_start): when the scheduler should
 * start a binding next: the schedule's next instant after the last run's
 * start, even when that is past (so start delays can be measured
 * against it); now when it never ran.
 */
Datum
redshift_fdw_due_at(PG_FUNCTION_ARGS)
{
	Schedule schedule;
	int64 last_us;

	parse_schedule_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0)), &schedule);
	if (PG_ARGISNULL(1))
		PG_RETURN_TIMESTAMPTZ(GetCurrentTransactionStartTimestamp());
	last_us = (int64) PG_GETARG_TIMESTAMPTZ(1) + UNIX_EPOCH_SHIFT_US;
	PG_RETURN_TIMESTAMPTZ(
		(TimestampTz) (schedule_next_after(&schedule, last_us) -
					   UNIX_EPOCH_SHIFT_US));
}

/*
 * redshift_fdw._retry_delay(schedule, failures): how long to wait before
 * retrying a binding after that many failed runs in a row (exponential,
 * with jitter, capped at the schedule's period).
 */
Datum
redshift_fdw_retry_delay(PG_FUNCTION_ARGS)
{
	Schedule schedule;
	Interval *delay = palloc0(sizeof(Interval));

	parse_schedule_or_error(text_to_cstring(PG_GETARG_TEXT_PP(0)), &schedule);
	delay->time = schedule_retry_delay(&schedule, PG_GETARG_INT32(1),
									   pg_prng_double(&pg_global_prng_state));
	PG_RETURN_INTERVAL_P(delay);
}

/*
 * The local type for a result column of a remote query, from its type OID
 * and modifier on the wire.
 */
static char *
local_type_of_column(Oid type, int typmod)
{
	switch (type)
	{
		case NUMERICOID:
			if (typmod > 4)
				return psprintf("numeric(%d,%d)",
								((typmod - 4) >> 16) & 0xffff,
								(typmod - 4) & 0xffff);
			return "numeric";
		case BPCHAROID:
			return typmod > 4 ? psprintf("character(%d)", typmod - 4)
							  : "character(1)";
		case VARCHAROID:
			return typmod > 4 ? psprintf("character varying(%d)", typmod - 4)
							  : "text";
		case REDSHIFT_SUPER_OID:
		case JSONBOID:
		case JSONOID:
			return "jsonb";
		case REDSHIFT_VARBYTE_OID:
		case BYTEAOID:
			return "bytea";
		case BOOLOID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case TEXTOID:
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
			return format_type_be(type);
		default:
			/* GEOMETRY, GEOGRAPHY, HLLSKETCH and anything else */
			return "text";
	}
}

/*
 * redshift_fdw.describe_query(server, query): the result columns of a
 * remote query (name and local type), from a LIMIT 0 run on Redshift.
 */
Datum
redshift_fdw_describe_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ForeignServer *server =
		GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	UserMapping *user = GetUserMapping(GetUserId(), server->serverid);
	char *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	RedshiftConn *volatile rconn;
	PGresult *volatile res = NULL;

	InitMaterializedSRF(fcinfo, 0);
	rconn = redshift_acquire_connection(user);
	PG_TRY();
	{
		int i;

		res = redshift_exec(rconn, psprintf("SELECT * FROM (%s) AS \"q\" "
											"LIMIT 0",
											query));
		for (i = 0; i < PQnfields(res); i++)
		{
			Datum values[2];
			bool nulls[2] = {false};

			values[0] = CStringGetTextDatum(PQfname(res, i));
			values[1] = CStringGetTextDatum(
				local_type_of_column(PQftype(res, i), PQfmod(res, i)));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values,
								 nulls);
		}
	}
	PG_FINALLY();
	{
		PQclear(res);
		redshift_release_connection(rconn);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/*
 * redshift_fdw.bind_query(sql, values text[], types regtype[]): the SQL
 * with each $n (outside quotes) replaced by the n-th value as a Redshift
 * literal of the n-th type.
 */
Datum
redshift_fdw_bind_query(PG_FUNCTION_ARGS)
{
	char *sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum *texts = NULL;
	bool *text_nulls = NULL;
	Datum *type_datums = NULL;
	bool *type_nulls = NULL;
	int nvalues = 0;
	int ntypes = 0;
	Datum *values;
	bool *nulls;
	Oid *types;
	int i;

	if (!PG_ARGISNULL(1))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false,
						  TYPALIGN_INT, &texts, &text_nulls, &nvalues);
	if (!PG_ARGISNULL(2))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), REGTYPEOID, 4, true,
						  TYPALIGN_INT, &type_datums, &type_nulls, &ntypes);
	/* no values yet (a first query): every $n is NULL */
	if (PG_ARGISNULL(1))
	{
		nvalues = ntypes;
		texts = palloc0(sizeof(Datum) * Max(nvalues, 1));
		text_nulls = palloc(sizeof(bool) * Max(nvalues, 1));
		memset(text_nulls, true, sizeof(bool) * Max(nvalues, 1));
	}
	if (ntypes != nvalues)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("bind_query needs one type per value")));
	values = palloc0(sizeof(Datum) * Max(nvalues, 1));
	nulls = palloc0(sizeof(bool) * Max(nvalues, 1));
	types = palloc0(sizeof(Oid) * Max(nvalues, 1));
	for (i = 0; i < nvalues; i++)
	{
		Oid infunc;
		Oid ioparam;
		Oid type = DatumGetObjectId(type_datums[i]);

		/* values of other types travel as text */
		types[i] = redshift_is_shippable_type(type) ? type : TEXTOID;
		nulls[i] = text_nulls[i];
		if (nulls[i])
			continue;
		getTypeInputInfo(types[i], &infunc, &ioparam);
		values[i] = OidInputFunctionCall(infunc, TextDatumGetCString(texts[i]),
										 ioparam, -1);
	}
	PG_RETURN_TEXT_P(cstring_to_text(
		redshift_bind_params(sql, nvalues, values, nulls, types)));
}
