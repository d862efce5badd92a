/*
 * scan.h
 *		Foreign scans: planner and executor callbacks.
 */
#ifndef REDSHIFT_FDW_SCAN_H
#define REDSHIFT_FDW_SCAN_H

#include "postgres.h"

#include "foreign/fdwapi.h"

extern void redshift_scan_routine(FdwRoutine *routine);

#endif /* REDSHIFT_FDW_SCAN_H */
