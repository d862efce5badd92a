/*
 * schedule.h
 *		Polling schedules of capture and materialization bindings.
 *
 * A schedule is written the way Estuary Flow's batch connectors accept it:
 * either a Go duration string ("30s", "5m", "1h30m", "1.5h", "24h") meaning
 * "this long after the previous poll started", or "daily at HH:MMZ" meaning
 * "once a day at this UTC time of day".
 *
 * This module is plain C (standard library only, no PostgreSQL headers) so
 * it can be unit-tested and fuzzed on its own.  Errors are returned as
 * values: a false return and a message in the caller's buffer.  All times
 * are microseconds since the Unix epoch, UTC.
 */
#ifndef REDSHIFT_FDW_SCHEDULE_H
#define REDSHIFT_FDW_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Shortest interval a schedule may have: polling faster is a mistake. */
#define SCHEDULE_MIN_INTERVAL_US INT64_C(1000000)

/* Microseconds in one UTC day (no leap seconds, as in Unix time). */
#define SCHEDULE_DAY_US INT64_C(86400000000)

/*
 * Room needed by schedule_format for any valid schedule, terminator
 * included ("2562047h47m16.854775s" and "daily at 23:59Z" both fit).
 */
#define SCHEDULE_TEXT_MAX 32

/* Room that always holds a schedule_parse error message. */
#define SCHEDULE_ERROR_MAX 256

typedef enum ScheduleKind
{
	SCHEDULE_INTERVAL, /* every interval_us after the last poll start */
	SCHEDULE_DAILY	   /* every day at minute_of_day, UTC */
} ScheduleKind;

typedef struct Schedule
{
	ScheduleKind kind;
	int64_t interval_us; /* SCHEDULE_INTERVAL: >= SCHEDULE_MIN_INTERVAL_US */
	int minute_of_day;	 /* SCHEDULE_DAILY: 0 .. 1439 */
} Schedule;

/*
 * Parse a schedule.  On success fills *out and returns true.  On failure
 * returns false, leaves *out untouched and writes a one-line message that
 * quotes the input and names the offending position into errbuf (which
 * may be NULL; messages are truncated to errlen, SCHEDULE_ERROR_MAX is
 * always enough).
 */
extern bool schedule_parse(const char *text, Schedule *out, char *errbuf,
						   size_t errlen);

/*
 * Write the canonical text of a schedule ("1h30m", "90s" -> "1m30s",
 * "daily at 06:00Z") into buf.  The text parses back to the same schedule.
 * Returns false (buf holding a truncated string) if buflen is too small,
 * which SCHEDULE_TEXT_MAX never is, or if the interval is not positive.
 *
 * This and the functions below take a schedule as schedule_parse made it;
 * other values give meaningless results but never undefined behaviour.
 */
extern bool schedule_format(const Schedule *schedule, char *buf,
							size_t buflen);

/*
 * The first instant the schedule names after a poll that started at
 * after_us: after_us + interval, or the first HH:MM UTC strictly later
 * than after_us.  Saturates at INT64_MAX instead of overflowing.
 */
extern int64_t schedule_next_after(const Schedule *schedule, int64_t after_us);

/*
 * When the next poll of a binding should start.  A binding never polled
 * (has_last false) or overdue is due now: the result is now_us.  Otherwise
 * it is schedule_next_after(last_start_us), which is later than now_us.
 * So the caller polls when the result is <= now_us and otherwise sleeps
 * until the result.
 */
extern int64_t schedule_next_run(const Schedule *schedule,
								 int64_t last_start_us, bool has_last,
								 int64_t now_us);

/* First retry delay after a failed run; it doubles per further failure. */
#define SCHEDULE_RETRY_BASE_US INT64_C(1000000)

/*
 * The delay before retrying after `failures` (>= 1) consecutive failed
 * runs: SCHEDULE_RETRY_BASE_US doubled failures - 1 times, plus up to 25%
 * of itself scaled by jitter (a random number in 0 .. 1), capped at the
 * schedule's period (its interval, or a day).  Never overflows.
 */
extern int64_t schedule_retry_delay(const Schedule *schedule, int failures,
									double jitter);

#endif /* REDSHIFT_FDW_SCHEDULE_H */
