/*
 * option.h
 *		Validation of options given to the wrapper, servers, user mappings,
 *		foreign tables and their columns.
 */
#ifndef REDSHIFT_FDW_OPTION_H
#define REDSHIFT_FDW_OPTION_H

#include "postgres.h"
#include "nodes/pg_list.h"

extern void redshift_validate_options(List *options, Oid catalog);
extern char *redshift_option_string(List *options, const char *name);
extern List *redshift_secret_option_values(List *options);
extern int redshift_option_int(List *options, const char *name,
							   int default_value);

#endif /* REDSHIFT_FDW_OPTION_H */
