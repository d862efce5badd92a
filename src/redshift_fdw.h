/*
 * redshift_fdw.h
 *		Declarations shared by the subsystems of redshift_fdw.
 *
 * Each subsystem (options, connections, deparse, scans, S3, capture,
 * materialization, scheduler) has its own header; this one holds only what
 * the entry points in redshift_fdw.c share with them.
 */
#ifndef REDSHIFT_FDW_H
#define REDSHIFT_FDW_H

#include "postgres.h"

/* Version of the shared library; must agree with the control file. */
#define REDSHIFT_FDW_VERSION "0.1.0"

#endif /* REDSHIFT_FDW_H */
