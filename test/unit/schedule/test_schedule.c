/*
 * test_schedule.c
 *		Table-driven unit tests of src/schedule.c.
 *
 * Prints one line per failure and a summary "schedule: N passed, M failed";
 * exits non-zero if anything failed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "schedule.h"
#include "../civil_days.h"

#define SECOND_US INT64_C(1000000)
#define MINUTE_US (60 * SECOND_US)
#define HOUR_US (60 * MINUTE_US)

/* Tallies of the whole run; passed between checks explicitly. */
typedef struct Tally
{
	int passed;
	int failed;
} Tally;

/* Record one check, printing what was expected when it failed. */
static void
check(Tally *tally, bool ok, const char *name, const char *detail)
{
	if (ok)
	{
		tally->passed++;
		return;
	}
	tally->failed++;
	printf("FAIL %s: %s\n", name, detail);
}

/* Microseconds since the epoch of a UTC calendar time. */
static int64_t
utc(int y, int mo, int d, int h, int mi, int s)
{
	return days_from_civil(y, mo, d) * SCHEDULE_DAY_US + h * HOUR_US +
		   mi * MINUTE_US + s * SECOND_US;
}

/* A text that must parse, and what it must parse to. */
typedef struct ValidCase
{
	const char *text;
	ScheduleKind kind;
	int64_t interval_us;
	int minute_of_day;
	const char *canonical;
} ValidCase;

static const ValidCase valid_cases[] = {
	{"30s", SCHEDULE_INTERVAL, 30 * SECOND_US, 0, "30s"},
	{"90s", SCHEDULE_INTERVAL, 90 * SECOND_US, 0, "1m30s"},
	{"5m", SCHEDULE_INTERVAL, 5 * MINUTE_US, 0, "5m"},
	{"1h30m", SCHEDULE_INTERVAL, 90 * MINUTE_US, 0, "1h30m"},
	{"1.5h", SCHEDULE_INTERVAL, 90 * MINUTE_US, 0, "1h30m"},
	{"24h", SCHEDULE_INTERVAL, 24 * HOUR_US, 0, "24h"},
	{"2h45m30.5s", SCHEDULE_INTERVAL,
	 2 * HOUR_US + 45 * MINUTE_US + 30 * SECOND_US + SECOND_US / 2, 0,
	 "2h45m30.5s"},
	{"1s", SCHEDULE_INTERVAL, SECOND_US, 0, "1s"},
	{"1000ms", SCHEDULE_INTERVAL, SECOND_US, 0, "1s"},
	{"1500ms", SCHEDULE_INTERVAL, 1500000, 0, "1.5s"},
	{"1000000us", SCHEDULE_INTERVAL, SECOND_US, 0, "1s"},
	{"1000000\xc2\xb5s", SCHEDULE_INTERVAL, SECOND_US, 0, "1s"},
	{"1000000\xce\xbcs", SCHEDULE_INTERVAL, SECOND_US, 0, "1s"},
	{"1000000000ns", SCHEDULE_INTERVAL, SECOND_US, 0, "1s"},
	{"1.0000005s", SCHEDULE_INTERVAL, SECOND_US, 0, "1s"},
	{"1.000001s", SCHEDULE_INTERVAL, SECOND_US + 1, 0, "1.000001s"},
	{"+5m", SCHEDULE_INTERVAL, 5 * MINUTE_US, 0, "5m"},
	{".5h", SCHEDULE_INTERVAL, 30 * MINUTE_US, 0, "30m"},
	{"5.h", SCHEDULE_INTERVAL, 5 * HOUR_US, 0, "5h"},
	{"1h0m0s", SCHEDULE_INTERVAL, HOUR_US, 0, "1h"},
	{"1h1h", SCHEDULE_INTERVAL, 2 * HOUR_US, 0, "2h"},
	{"3600s", SCHEDULE_INTERVAL, HOUR_US, 0, "1h"},
	{"0.25m", SCHEDULE_INTERVAL, 15 * SECOND_US, 0, "15s"},
	{"1h0.5s", SCHEDULE_INTERVAL, HOUR_US + SECOND_US / 2, 0, "1h0.5s"},
	{"168h", SCHEDULE_INTERVAL, 168 * HOUR_US, 0, "168h"},
	{" 5m\t", SCHEDULE_INTERVAL, 5 * MINUTE_US, 0, "5m"},
	{"2562047h47m16.854775807s", SCHEDULE_INTERVAL, INT64_MAX / 1000, 0,
	 "2562047h47m16.854775s"},
	{"daily at 12:34Z", SCHEDULE_DAILY, 0, 12 * 60 + 34, "daily at 12:34Z"},
	{"daily at 6:00Z", SCHEDULE_DAILY, 0, 6 * 60, "daily at 06:00Z"},
	{"daily at 06:00Z", SCHEDULE_DAILY, 0, 6 * 60, "daily at 06:00Z"},
	{"daily at 00:00Z", SCHEDULE_DAILY, 0, 0, "daily at 00:00Z"},
	{"daily at 23:59Z", SCHEDULE_DAILY, 0, 23 * 60 + 59, "daily at 23:59Z"},
	{"DAILY AT 06:05z", SCHEDULE_DAILY, 0, 6 * 60 + 5, "daily at 06:05Z"},
	{"Daily  at\t7:30Z", SCHEDULE_DAILY, 0, 7 * 60 + 30, "daily at 07:30Z"},
	{"  daily at 12:34Z  ", SCHEDULE_DAILY, 0, 12 * 60 + 34,
	 "daily at 12:34Z"},
	{"daily at 12:34 Z", SCHEDULE_DAILY, 0, 12 * 60 + 34, "daily at 12:34Z"},
};

/* A text that must be rejected, with fragments its message must contain. */
typedef struct InvalidCase
{
	const char *text;
	const char *fragment;
	const char *fragment2; /* NULL if one fragment is enough */
} InvalidCase;

static const InvalidCase invalid_cases[] = {
	{"", "empty", "invalid schedule \"\""},
	{"   ", "empty", NULL},
	{"5", "missing unit after \"5\" at position 2", "5s"},
	{"5m30", "missing unit after \"30\" at position 5", NULL},
	{"5d", "unknown unit \"d\" at position 2", "for days, write 24h"},
	{"2days", "unknown unit \"days\"", "24h"},
	{"1w", "unknown unit \"w\"", "168h"},
	{"5x", "unknown unit \"x\" at position 2", "h, m, s, ms, us and ns"},
	{"5M", "unknown unit \"M\"", NULL},
	{"5m!", "unknown unit \"m!\" at position 2", NULL},
	{"5m\x01", "unknown unit \"m\\x01\"", NULL},
	{"0s", "at least 1s", NULL},
	{"0", "at least 1s", NULL},
	{"0h0m", "at least 1s", NULL},
	{"-5m", "cannot be negative", NULL},
	{"-0s", "cannot be negative", NULL},
	{"500ms", "shorter than the minimum of 1s", NULL},
	{"999999us", "shorter than the minimum of 1s", NULL},
	{"9999999h", "overflows at position 1", NULL},
	{"2562047h47m17s", "overflows", NULL},
	{"99999999999999999999s", "too large", "position 1"},
	{"abc", "expected a number at position 1", "invalid schedule \"abc\""},
	{"h", "expected a number at position 1", NULL},
	{"1h 30m", "unexpected space at position 3", NULL},
	{"1 h", "unexpected space at position 2", NULL},
	{".", "expected digits around the '.' at position 1", NULL},
	{".s", "expected digits around the '.'", NULL},
	{"-", "expected a number after the sign at position 2", NULL},
	{"+", "expected a number after the sign", NULL},
	{"1h-5m", "unknown unit \"h-\"", NULL},
	{"daily at 25:00Z", "hour 25 at position 10 is out of range 0-23", NULL},
	{"daily at 24:00Z", "hour 24", "out of range"},
	{"daily at 12:60Z", "minute 60 at position 13 is out of range", NULL},
	{"daily at 12:34", "missing time zone", "append Z"},
	{"daily at 12:34+02:00", "time zone offset at position 15", "only UTC"},
	{"daily at 12:34-05:00", "time zone offset", NULL},
	{"daily at 1:2Z", "minutes at position 12 must be two digits", NULL},
	{"daily at 12:345Z", "minutes at position 13 must be two digits", NULL},
	{"daily at 123:00Z", "hour of one or two digits", NULL},
	{"daily at :30Z", "hour of one or two digits (0-23) at position 10", NULL},
	{"daily 12:34Z", "expected \"at\" after \"daily\" at position 7", NULL},
	{"dailyat 12:34Z", "expected \"at\"", NULL},
	{"daily", "expected \"at\"", NULL},
	{"daily at", "missing time of day", NULL},
	{"daily at   ", "missing time of day", NULL},
	{"daily at12:34Z", "expected a space after \"daily at\"", NULL},
	{"daily at 12:34:56Z", "seconds at position 15", NULL},
	{"daily at 12:34Z now", "unexpected text after the time at position 17",
	 NULL},
	{"daily at 12:34ZZ", "unexpected text", NULL},
	{"daily at 12-34Z", "expected ':' after the hour at position 12", NULL},
	{"daily at 12:34 UTC", "expected Z (UTC) at position 16", NULL},
	{"daily at noon", "hour of one or two digits", NULL},
	{"weekly at 12:34Z", "expected a number at position 1", NULL},
};

/* Every valid text parses to the expected schedule and formats back. */
static void
test_valid(Tally *tally)
{
	size_t i;

	for (i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
	{
		const ValidCase *c = &valid_cases[i];
		Schedule s;
		Schedule again;
		char err[SCHEDULE_ERROR_MAX] = "";
		char text[SCHEDULE_TEXT_MAX];
		char detail[512];
		bool ok = schedule_parse(c->text, &s, err, sizeof(err));

		snprintf(detail, sizeof(detail), "\"%s\" rejected: %s", c->text, err);
		check(tally, ok, "valid parse", detail);
		if (!ok)
			continue;
		snprintf(detail, sizeof(detail),
				 "\"%s\": kind %d interval %" PRId64 " minute %d", c->text,
				 (int) s.kind, s.interval_us, s.minute_of_day);
		check(tally,
			  s.kind == c->kind && (c->kind == SCHEDULE_INTERVAL
										? s.interval_us == c->interval_us
										: s.minute_of_day == c->minute_of_day),
			  "valid value", detail);
		ok = schedule_format(&s, text, sizeof(text));
		snprintf(detail, sizeof(detail),
				 "\"%s\" formats as \"%s\", want \"%s\"", c->text, text,
				 c->canonical);
		check(tally, ok && strcmp(text, c->canonical) == 0, "format", detail);
		ok = schedule_parse(text, &again, err, sizeof(err));
		snprintf(detail, sizeof(detail), "\"%s\" does not round-trip: %s",
				 text, err);
		check(tally,
			  ok && again.kind == s.kind &&
				  again.interval_us == s.interval_us &&
				  again.minute_of_day == s.minute_of_day,
			  "round trip", detail);
	}
}

/* Every invalid text is rejected with the expected explanation. */
static void
test_invalid(Tally *tally)
{
	size_t i;

	for (i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++)
	{
		const InvalidCase *c = &invalid_cases[i];
		Schedule s = {SCHEDULE_DAILY, 42, 42};
		char err[SCHEDULE_ERROR_MAX] = "";
		char detail[512];
		bool ok = schedule_parse(c->text, &s, err, sizeof(err));

		snprintf(detail, sizeof(detail), "\"%s\" accepted", c->text);
		check(tally, !ok, "invalid rejected", detail);
		snprintf(detail, sizeof(detail),
				 "\"%s\": message \"%s\" lacks \"%s\"%s%s", c->text, err,
				 c->fragment, c->fragment2 ? " or " : "",
				 c->fragment2 ? c->fragment2 : "");
		check(tally,
			  strstr(err, c->fragment) != NULL &&
				  (c->fragment2 == NULL || strstr(err, c->fragment2) != NULL),
			  "invalid message", detail);
		check(tally,
			  s.kind == SCHEDULE_DAILY && s.interval_us == 42 &&
				  s.minute_of_day == 42,
			  "invalid leaves output", c->text);
		check(tally, strncmp(err, "invalid schedule \"", 18) == 0,
			  "invalid message prefix", err);
	}
}

/* Error reporting copes with NULL input, NULL or tiny buffers. */
static void
test_error_buffers(Tally *tally)
{
	Schedule s;
	char err[SCHEDULE_ERROR_MAX];
	char tiny[8];
	char long_text[200];

	check(tally, !schedule_parse(NULL, &s, err, sizeof(err)), "NULL text",
		  "accepted");
	check(tally, strcmp(err, "no schedule given") == 0, "NULL text message",
		  err);
	check(tally, !schedule_parse("5d", &s, NULL, 0), "NULL errbuf",
		  "accepted");
	memset(tiny, 'x', sizeof(tiny));
	check(tally, !schedule_parse("5d", &s, tiny, sizeof(tiny)), "tiny errbuf",
		  "accepted");
	check(tally,
		  memchr(tiny, '\0', sizeof(tiny)) != NULL &&
			  strncmp(tiny, "invalid", 7) == 0,
		  "tiny errbuf truncated", tiny);

	memset(long_text, '9', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	check(tally, !schedule_parse(long_text, &s, err, sizeof(err)), "long text",
		  "accepted");
	check(tally, strstr(err, "...\"") != NULL, "long text quoted briefly",
		  err);
}

/* schedule_format refuses buffers too small and impossible intervals. */
static void
test_format_limits(Tally *tally)
{
	Schedule s = {SCHEDULE_INTERVAL, 2 * HOUR_US + 45 * MINUTE_US, 0};
	Schedule zero = {SCHEDULE_INTERVAL, 0, 0};
	Schedule daily = {SCHEDULE_DAILY, 0, 6 * 60};
	char small[4];
	char buf[SCHEDULE_TEXT_MAX];

	check(tally, !schedule_format(&s, small, sizeof(small)),
		  "format small buffer", "reported success");
	check(tally, strlen(small) < sizeof(small), "format small terminated",
		  small);
	check(tally, !schedule_format(&daily, small, sizeof(small)),
		  "format small daily", "reported success");
	check(tally, !schedule_format(&zero, buf, sizeof(buf)), "format zero",
		  "reported success");
	check(tally, !schedule_format(&s, buf, 0), "format empty buffer",
		  "reported success");
}

/* One expectation of schedule_next_after. */
typedef struct NextCase
{
	const char *schedule;
	int64_t after;
	int64_t expect;
	const char *why;
} NextCase;

/* Next-run expectations, written as UTC calendar times. */
static void
test_next_after(Tally *tally)
{
	const NextCase cases[] = {
		{"1h", utc(2024, 2, 15, 5, 0, 0), utc(2024, 2, 15, 6, 0, 0),
		 "interval"},
		{"6h", utc(2024, 2, 15, 19, 34, 56), utc(2024, 2, 16, 1, 34, 56),
		 "interval across midnight"},
		{"24h", utc(2024, 2, 28, 19, 34, 56), utc(2024, 2, 29, 19, 34, 56),
		 "interval into a leap day"},
		{"168h", utc(2024, 2, 15, 19, 34, 56), utc(2024, 2, 22, 19, 34, 56),
		 "one week"},
		{"30s", utc(2024, 12, 31, 23, 59, 50), utc(2025, 1, 1, 0, 0, 20),
		 "interval across new year"},
		{"1.5h", utc(2024, 2, 15, 23, 0, 0), utc(2024, 2, 16, 0, 30, 0),
		 "fractional hours"},
		{"2h45m30.5s", utc(2024, 2, 15, 0, 0, 0),
		 utc(2024, 2, 15, 2, 45, 30) + SECOND_US / 2, "fractional seconds"},
		{"24h", utc(2024, 3, 30, 12, 0, 0), utc(2024, 3, 31, 12, 0, 0),
		 "24h across the EU DST change is 24 real hours"},
		{"24h", utc(2024, 11, 2, 12, 0, 0), utc(2024, 11, 3, 12, 0, 0),
		 "24h across the US DST change is 24 real hours"},
		{"daily at 6:00Z", utc(2024, 2, 15, 1, 0, 0),
		 utc(2024, 2, 15, 6, 0, 0), "daily later today"},
		{"daily at 6:00Z", utc(2024, 2, 15, 5, 59, 59) + SECOND_US - 1,
		 utc(2024, 2, 15, 6, 0, 0), "daily one microsecond before"},
		{"daily at 06:00Z", utc(2024, 2, 15, 6, 0, 0),
		 utc(2024, 2, 16, 6, 0, 0),
		 "daily exactly at the time: strictly after"},
		{"daily at 06:00Z", utc(2024, 2, 15, 6, 0, 0) + 1,
		 utc(2024, 2, 16, 6, 0, 0), "daily just after"},
		{"daily at 13:55Z", utc(2024, 2, 15, 23, 0, 0),
		 utc(2024, 2, 16, 13, 55, 0), "daily tomorrow"},
		{"daily at 00:00Z", utc(2024, 2, 15, 23, 59, 59),
		 utc(2024, 2, 16, 0, 0, 0), "daily at midnight, across midnight"},
		{"daily at 00:00Z", utc(2024, 2, 16, 0, 0, 0),
		 utc(2024, 2, 17, 0, 0, 0), "daily at midnight, exactly midnight"},
		{"daily at 23:59Z", utc(2024, 2, 28, 23, 59, 30),
		 utc(2024, 2, 29, 23, 59, 0), "daily into a leap day"},
		{"daily at 23:59Z", utc(2023, 12, 31, 23, 59, 0),
		 utc(2024, 1, 1, 23, 59, 0), "daily across new year"},
		{"daily at 02:30Z", utc(2024, 3, 10, 1, 0, 0),
		 utc(2024, 3, 10, 2, 30, 0), "daily in a local DST gap is just UTC"},
		{"daily at 12:00Z", utc(1969, 12, 31, 13, 0, 0),
		 utc(1970, 1, 1, 12, 0, 0), "daily before the epoch"},
		{"daily at 12:00Z", utc(1969, 12, 31, 11, 0, 0),
		 utc(1969, 12, 31, 12, 0, 0), "daily before the epoch, same day"},
		{"1h", INT64_MAX - 10, INT64_MAX, "interval saturates"},
		{"daily at 23:59Z", INT64_MAX - 1, INT64_MAX, "daily saturates"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		Schedule s;
		char err[SCHEDULE_ERROR_MAX];
		char detail[512];
		int64_t got;

		if (!schedule_parse(cases[i].schedule, &s, err, sizeof(err)))
		{
			check(tally, false, "next schedule", err);
			continue;
		}
		got = schedule_next_after(&s, cases[i].after);
		snprintf(detail, sizeof(detail),
				 "%s (%s): got %" PRId64 ", want %" PRId64, cases[i].why,
				 cases[i].schedule, got, cases[i].expect);
		check(tally, got == cases[i].expect, "next after", detail);
	}
}

/* Daily next-after from the far ends of time stays in range and later. */
static void
test_next_after_extremes(Tally *tally)
{
	Schedule s = {SCHEDULE_DAILY, 0, 0};
	int64_t got;

	got = schedule_next_after(&s, INT64_MIN);
	check(tally, got > INT64_MIN && got - INT64_MIN <= SCHEDULE_DAY_US,
		  "daily from INT64_MIN", "out of range");
	s.minute_of_day = 23 * 60 + 59;
	got = schedule_next_after(&s, INT64_MIN);
	check(tally, got > INT64_MIN && got - INT64_MIN <= SCHEDULE_DAY_US,
		  "daily 23:59 from INT64_MIN", "out of range");
}

/* schedule_next_run: never polled, overdue, due exactly, not yet due. */
static void
test_next_run(Tally *tally)
{
	Schedule hourly;
	Schedule daily;
	char err[SCHEDULE_ERROR_MAX];
	int64_t now = utc(2024, 2, 15, 13, 0, 0);

	if (!schedule_parse("1h", &hourly, err, sizeof(err)) ||
		!schedule_parse("daily at 12:34Z", &daily, err, sizeof(err)))
	{
		check(tally, false, "next run setup", err);
		return;
	}
	check(tally, schedule_next_run(&hourly, 0, false, now) == now,
		  "never polled runs now", "interval");
	check(tally, schedule_next_run(&daily, 0, false, now) == now,
		  "never polled runs now", "daily");
	check(tally,
		  schedule_next_run(&hourly, now - 3 * HOUR_US, true, now) == now,
		  "overdue runs now", "interval");
	check(tally, schedule_next_run(&hourly, now - HOUR_US, true, now) == now,
		  "exactly due runs now", "interval");
	check(tally,
		  schedule_next_run(&hourly, now - 20 * MINUTE_US, true, now) ==
			  now + 40 * MINUTE_US,
		  "not yet due", "interval: last start + 1h");
	check(tally,
		  schedule_next_run(&daily, utc(2024, 2, 13, 12, 34, 0), true, now) ==
			  now,
		  "overdue runs now", "daily missed yesterday");
	check(tally,
		  schedule_next_run(&daily, utc(2024, 2, 15, 12, 34, 0), true, now) ==
			  utc(2024, 2, 16, 12, 34, 0),
		  "daily polled today", "runs tomorrow");
	check(tally,
		  schedule_next_run(&daily, utc(2024, 2, 15, 12, 40, 0), true, now) ==
			  utc(2024, 2, 16, 12, 34, 0),
		  "daily polled late today", "runs tomorrow at the time");
	check(tally,
		  schedule_next_run(&daily, utc(2024, 2, 14, 12, 34, 0), true,
							utc(2024, 2, 15, 12, 34, 0)) ==
			  utc(2024, 2, 15, 12, 34, 0),
		  "daily due exactly now", "runs now");
}

/*
 * schedule_retry_delay: doubles from one second, jitter adds at most a
 * quarter, never beyond the schedule's period, strictly growing until the
 * cap whatever the jitter, and safe for absurd inputs.
 */
static void
test_retry_delay(Tally *tally)
{
	Schedule minute;
	Schedule two_seconds;
	Schedule daily;
	char err[SCHEDULE_ERROR_MAX];
	int64_t previous_max = 0;
	int failures;

	if (!schedule_parse("1m", &minute, err, sizeof(err)) ||
		!schedule_parse("2s", &two_seconds, err, sizeof(err)) ||
		!schedule_parse("daily at 00:00Z", &daily, err, sizeof(err)))
	{
		check(tally, false, "retry delay setup", err);
		return;
	}
	check(tally, schedule_retry_delay(&minute, 1, 0.0) == SECOND_US,
		  "first retry", "one second");
	check(tally, schedule_retry_delay(&minute, 2, 0.0) == 2 * SECOND_US,
		  "second retry", "two seconds");
	check(tally, schedule_retry_delay(&minute, 4, 0.0) == 8 * SECOND_US,
		  "fourth retry", "eight seconds");
	check(tally, schedule_retry_delay(&minute, 4, 1.0) == 10 * SECOND_US,
		  "fourth retry, full jitter", "ten seconds");
	check(tally, schedule_retry_delay(&minute, 7, 0.0) == MINUTE_US,
		  "seventh retry", "capped at the interval");
	check(tally, schedule_retry_delay(&minute, 1000000, 1.0) == MINUTE_US,
		  "a million failures", "capped at the interval");
	check(tally, schedule_retry_delay(&two_seconds, 5, 0.5) == 2 * SECOND_US,
		  "short schedule", "capped at 2s");
	check(tally, schedule_retry_delay(&daily, 40, 0.3) == SCHEDULE_DAY_US,
		  "daily", "capped at a day");
	check(tally, schedule_retry_delay(&minute, 0, 0.0) == SECOND_US,
		  "zero failures", "treated as one");
	check(tally, schedule_retry_delay(&minute, -5, -1.0) == SECOND_US,
		  "negative input", "treated as one, no jitter");
	check(tally, schedule_retry_delay(&minute, 1, 7.0) == SECOND_US * 5 / 4,
		  "jitter above one", "clamped to one");
	/* growing: the longest delay of n failures is below the shortest of n+1 */
	for (failures = 1; failures <= 5; failures++)
	{
		int64_t shortest = schedule_retry_delay(&minute, failures, 0.0);

		check(tally, shortest > previous_max, "strictly growing",
			  "a delay overlaps the previous one's range");
		previous_max = schedule_retry_delay(&minute, failures, 1.0);
	}
}

/* Run every test group and report the tally. */
int
main(void)
{
	Tally tally = {0, 0};

	test_valid(&tally);
	test_invalid(&tally);
	test_error_buffers(&tally);
	test_format_limits(&tally);
	test_next_after(&tally);
	test_next_after_extremes(&tally);
	test_retry_delay(&tally);
	test_next_run(&tally);
	printf("schedule: %d passed, %d failed\n", tally.passed, tally.failed);
	return tally.failed == 0 ? 0 : 1;
}
