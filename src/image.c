/*
 * image.c
 *		The values of a delta log's row images (jsonb) read back as their
 *		types.  to_jsonb writes dates and timestamps in one fixed form,
 *		which stage_format.c parses directly; any other text (BC, infinity,
 *		offsets with seconds) goes through the type's input function.
 *		Reading a million logged inserts spent a seventh of its time in
 *		PostgreSQL's general date and time parser.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"

#include "stage_format.h"

PG_FUNCTION_INFO_V1(redshift_fdw_image_date);
PG_FUNCTION_INFO_V1(redshift_fdw_image_timestamp);
PG_FUNCTION_INFO_V1(redshift_fdw_image_timestamptz);

/* The text through its type's input function (cstring, oid, typmod). */
static Datum
through_input(PGFunction input, text *value)
{
	return DirectFunctionCall3(input, CStringGetDatum(text_to_cstring(value)),
							   ObjectIdGetDatum(InvalidOid),
							   Int32GetDatum(-1));
}

/*
 * An image's timestamp (with_zone: timestamptz): parsed directly in
 * to_jsonb's form, through input otherwise.  Both are int64 microseconds.
 */
static Datum
image_timestamp(text *value, bool with_zone, PGFunction input)
{
	int64_t usecs;

	if (stage_parse_image_timestamp(
			VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value), with_zone, &usecs))
		return Int64GetDatum(usecs);
	return through_input(input, value);
}

/* redshift_fdw._image_date(text): an image's date. */
Datum
redshift_fdw_image_date(PG_FUNCTION_ARGS)
{
	text *value = PG_GETARG_TEXT_PP(0);
	int32 days;

	if (stage_parse_image_date(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
							   &days))
		PG_RETURN_DATEADT(days);
	PG_RETURN_DATUM(through_input(date_in, value));
}

/* redshift_fdw._image_timestamp(text): an image's timestamp. */
Datum
redshift_fdw_image_timestamp(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(
		image_timestamp(PG_GETARG_TEXT_PP(0), false, timestamp_in));
}

/* redshift_fdw._image_timestamptz(text): an image's timestamptz. */
Datum
redshift_fdw_image_timestamptz(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(
		image_timestamp(PG_GETARG_TEXT_PP(0), true, timestamptz_in));
}
