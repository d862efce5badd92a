/*
 * typemap.c
 *		Type mapping and value conversion between Redshift and PostgreSQL.
 *
 * Redshift answers in text.  Most values are read with the local type's
 * input function; VARBYTE arrives as hex without the "\x" prefix bytea
 * expects.  Going the other way, values are written as literals Redshift
 * reads the same way whatever the local session's DateStyle, TimeZone or
 * extra_float_digits: ISO dates, timestamptz in UTC, shortest-exact floats,
 * and strings with both ' and \ doubled (Redshift treats backslash as an
 * escape inside '...' and has no E'' syntax).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "typemap.h"

/*
 * The local type for a Redshift column, from svv_columns' data_type and
 * its length, precision and scale.  Types without a local equivalent
 * (GEOMETRY, GEOGRAPHY, HLLSKETCH, anything unknown) become text.
 */
char *
redshift_local_type_for(const char *data_type, int char_length, int precision,
						int scale)
{
	if (strcmp(data_type, "smallint") == 0 || strcmp(data_type, "int2") == 0)
		return pstrdup("smallint");
	if (strcmp(data_type, "integer") == 0 || strcmp(data_type, "int4") == 0 ||
		strcmp(data_type, "int") == 0)
		return pstrdup("integer");
	if (strcmp(data_type, "bigint") == 0 || strcmp(data_type, "int8") == 0)
		return pstrdup("bigint");
	if (strcmp(data_type, "numeric") == 0 || strcmp(data_type, "decimal") == 0)
	{
		if (precision > 0)
			return psprintf("numeric(%d,%d)", precision, Max(scale, 0));
		return pstrdup("numeric");
	}
	if (strcmp(data_type, "real") == 0 || strcmp(data_type, "float4") == 0)
		return pstrdup("real");
	if (strcmp(data_type, "double precision") == 0 ||
		strcmp(data_type, "float8") == 0 || strcmp(data_type, "float") == 0)
		return pstrdup("double precision");
	if (strcmp(data_type, "boolean") == 0 || strcmp(data_type, "bool") == 0)
		return pstrdup("boolean");
	/* Redshift lengths count bytes; n bytes never hold more than n chars. */
	if (strcmp(data_type, "character") == 0 ||
		strcmp(data_type, "char") == 0 || strcmp(data_type, "bpchar") == 0)
		return char_length > 0 ? psprintf("character(%d)", char_length)
							   : pstrdup("character(1)");
	if (strcmp(data_type, "character varying") == 0 ||
		strcmp(data_type, "varchar") == 0)
		return char_length > 0 ? psprintf("character varying(%d)", char_length)
							   : pstrdup("text");
	if (strcmp(data_type, "text") == 0)
		return pstrdup("text");
	if (strcmp(data_type, "date") == 0)
		return pstrdup("date");
	if (strcmp(data_type, "timestamp without time zone") == 0 ||
		strcmp(data_type, "timestamp") == 0)
		return pstrdup("timestamp without time zone");
	if (strcmp(data_type, "timestamp with time zone") == 0 ||
		strcmp(data_type, "timestamptz") == 0)
		return pstrdup("timestamp with time zone");
	if (strcmp(data_type, "time without time zone") == 0 ||
		strcmp(data_type, "time") == 0)
		return pstrdup("time without time zone");
	if (strcmp(data_type, "time with time zone") == 0 ||
		strcmp(data_type, "timetz") == 0)
		return pstrdup("time with time zone");
	if (strncmp(data_type, "interval", 8) == 0)
		return pstrdup("interval");
	if (strcmp(data_type, "super") == 0)
		return pstrdup("jsonb");
	if (strcmp(data_type, "varbyte") == 0 ||
		strcmp(data_type, "binary varying") == 0 ||
		strcmp(data_type, "varbinary") == 0)
		return pstrdup("bytea");
	return pstrdup("text");
}

/*
 * Prepare the conversion of a remote column into a local type.
 */
void
redshift_converter_init(RedshiftConverter *conv, Oid local_type, int32 typmod)
{
	Oid infunc;

	getTypeInputInfo(local_type, &infunc, &conv->ioparam);
	fmgr_info(infunc, &conv->input);
	conv->typmod = typmod;
	conv->local_type = local_type;
}

/*
 * One remote value (text) as a local datum.  VARBYTE hex gains the "\x"
 * prefix bytea input expects.
 */
Datum
redshift_convert_value(RedshiftConverter *conv, char *text, Oid remote_type)
{
	if (remote_type == REDSHIFT_VARBYTE_OID && conv->local_type == BYTEAOID &&
		!(text[0] == '\\' && text[1] == 'x'))
		text = psprintf("\\x%s", text);
	return InputFunctionCall(&conv->input, text, conv->ioparam, conv->typmod);
}

/*
 * Types whose values and comparisons mean the same in Redshift, so that
 * expressions over them may be evaluated there.
 */
bool
redshift_is_shippable_type(Oid type)
{
	switch (type)
	{
		case BOOLOID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case DATEOID:
		case TIMEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return true;
		default:
			return false;
	}
}

/*
 * Append 'str' as a Redshift string literal: ' and \ doubled.
 */
void
redshift_append_string_literal(StringInfo buf, const char *str)
{
	const char *p;

	appendStringInfoChar(buf, '\'');
	for (p = str; *p; p++)
	{
		if (*p == '\'' || *p == '\\')
			appendStringInfoChar(buf, *p);
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '\'');
}

/*
 * Append an identifier, always double-quoted ("" inside doubled), so that
 * reserved words and mixed case are safe.
 */
void
redshift_append_identifier(StringInfo buf, const char *ident)
{
	const char *p;

	appendStringInfoChar(buf, '"');
	for (p = ident; *p; p++)
	{
		if (*p == '"')
			appendStringInfoChar(buf, '"');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
}

/*
 * A number, parenthesised when negative so that it cannot merge with a
 * preceding operator into a comment ("--").
 */
static void
append_number(StringInfo buf, const char *digits)
{
	if (digits[0] == '-')
		appendStringInfo(buf, "(%s)", digits);
	else
		appendStringInfoString(buf, digits);
}

/*
 * Fail for a value Redshift cannot represent (infinite dates, NaN numeric).
 */
static void
unrepresentable(Oid type)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
			 errmsg("cannot send an infinite or NaN %s value to Redshift",
					format_type_be(type))));
}

/*
 * Append a local value as a Redshift literal of the same type.  Only the
 * types of redshift_is_shippable_type are accepted.
 */
void
redshift_append_literal(StringInfo buf, Datum value, Oid type)
{
	char out[MAXDATELEN + 64];
	struct pg_tm tm;
	fsec_t fsec;

	switch (type)
	{
		case BOOLOID:
			appendStringInfoString(buf,
								   DatumGetBool(value) ? "true" : "false");
			break;
		case INT2OID:
			snprintf(out, sizeof(out), "%d", (int) DatumGetInt16(value));
			append_number(buf, out);
			break;
		case INT4OID:
			snprintf(out, sizeof(out), "%d", DatumGetInt32(value));
			append_number(buf, out);
			break;
		case INT8OID:
			snprintf(out, sizeof(out), INT64_FORMAT, DatumGetInt64(value));
			append_number(buf, out);
			break;
		case FLOAT4OID:
		case FLOAT8OID:
		{
			double d = type == FLOAT4OID ? DatumGetFloat4(value)
										 : DatumGetFloat8(value);

			if (isnan(d))
				strlcpy(out, "NaN", sizeof(out));
			else if (isinf(d))
				strlcpy(out, d > 0 ? "Infinity" : "-Infinity", sizeof(out));
			else if (type == FLOAT4OID)
				float_to_shortest_decimal_buf((float) d, out);
			else
				double_to_shortest_decimal_buf(d, out);
			redshift_append_string_literal(buf, out);
			appendStringInfoString(
				buf, type == FLOAT4OID ? "::real" : "::double precision");
			break;
		}
		case NUMERICOID:
			if (numeric_is_nan(DatumGetNumeric(value)) ||
				numeric_is_inf(DatumGetNumeric(value)))
				unrepresentable(type);
			append_number(
				buf, DatumGetCString(DirectFunctionCall1(numeric_out, value)));
			break;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			redshift_append_string_literal(buf, TextDatumGetCString(value));
			break;
		case DATEOID:
		{
			DateADT date = DatumGetDateADT(value);

			if (DATE_NOT_FINITE(date))
				unrepresentable(type);
			j2date(date + POSTGRES_EPOCH_JDATE, &tm.tm_year, &tm.tm_mon,
				   &tm.tm_mday);
			EncodeDateOnly(&tm, USE_ISO_DATES, out);
			redshift_append_string_literal(buf, out);
			appendStringInfoString(buf, "::date");
			break;
		}
		case TIMEOID:
			time2tm(DatumGetTimeADT(value), &tm, &fsec);
			EncodeTimeOnly(&tm, fsec, false, 0, USE_ISO_DATES, out);
			redshift_append_string_literal(buf, out);
			appendStringInfoString(buf, "::time");
			break;
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		{
			Timestamp ts = DatumGetTimestamp(value);

			if (TIMESTAMP_NOT_FINITE(ts) ||
				timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
				unrepresentable(type);
			/* timestamptz: the UTC time, marked +00 */
			tm.tm_isdst = 0;
			EncodeDateTime(&tm, fsec, type == TIMESTAMPTZOID, 0, NULL,
						   USE_ISO_DATES, out);
			redshift_append_string_literal(buf, out);
			appendStringInfoString(
				buf, type == TIMESTAMPTZOID ? "::timestamptz" : "::timestamp");
			break;
		}
		default:
			elog(ERROR, "type %u is not shippable to Redshift", type);
	}
}
