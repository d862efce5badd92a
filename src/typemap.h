/*
 * typemap.h
 *		Redshift <-> PostgreSQL types: which local type a Redshift column
 *		gets, how remote text becomes a local value, and how local values
 *		are written as Redshift literals.
 */
#ifndef REDSHIFT_FDW_TYPEMAP_H
#define REDSHIFT_FDW_TYPEMAP_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"

/* Type OIDs Redshift sends on the wire for its own types. */
#define REDSHIFT_GEOMETRY_OID 3000
#define REDSHIFT_GEOGRAPHY_OID 3001
#define REDSHIFT_SUPER_OID 4000
#define REDSHIFT_VARBYTE_OID 6551

/* Converts one remote column's text into values of a local type. */
typedef struct RedshiftConverter
{
	FmgrInfo input;
	Oid ioparam;
	int32 typmod;
	Oid local_type;
} RedshiftConverter;

extern char *redshift_local_type_for(const char *data_type, int char_length,
									 int precision, int scale);
extern void redshift_converter_init(RedshiftConverter *conv, Oid local_type,
									int32 typmod);
extern Datum redshift_convert_value(RedshiftConverter *conv, char *text,
									Oid remote_type);
extern bool redshift_is_shippable_type(Oid type);
extern void redshift_append_literal(StringInfo buf, Datum value, Oid type);
extern void redshift_append_string_literal(StringInfo buf, const char *str);
extern void redshift_append_identifier(StringInfo buf, const char *ident);

#endif /* REDSHIFT_FDW_TYPEMAP_H */
