/*
 * scan.h
 *		Foreign scans: planner and executor callbacks.
 */
#ifndef REDSHIFT_FDW_SCAN_H
#define REDSHIFT_FDW_SCAN_H

#include "postgres.h"

#include "foreign/fdwapi.h"

extern void redshift_scan_routine(FdwRoutine *routine);

/* Row data received by this backend's scans, in bytes. */
extern uint64 redshift_scan_bytes_received;

#endif /* REDSHIFT_FDW_SCAN_H */
