/*
 * import.h
 *		Discovery of Redshift tables: IMPORT FOREIGN SCHEMA and discover().
 */
#ifndef REDSHIFT_FDW_IMPORT_H
#define REDSHIFT_FDW_IMPORT_H

#include "postgres.h"

#include "nodes/parsenodes.h"

extern List *redshift_import_foreign_schema(ImportForeignSchemaStmt *stmt,
											Oid serverOid);

#endif /* REDSHIFT_FDW_IMPORT_H */
