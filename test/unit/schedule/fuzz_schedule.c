/*
 * fuzz_schedule.c
 *		libFuzzer harness for src/schedule.c.
 *
 * Any byte string is a schedule text.  Beyond "no crash, no undefined
 * behaviour, no leak" (the sanitizers' job), it checks the properties the
 * extension relies on, trapping when one fails:
 *	 - a rejected text leaves a NUL-terminated message starting with
 *	   "invalid schedule", all printable ASCII whatever the input held;
 *	 - an accepted schedule is in range, formats within SCHEDULE_TEXT_MAX
 *	   and parses back to itself;
 *	 - the next run is strictly later than the last start (unless
 *	   saturated), at most one interval or one day later, and daily runs
 *	   land on the scheduled minute.
 */
#include <stdlib.h>
#include <string.h>

#include "schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Fail the fuzz run on a broken property. */
static void
require(bool condition)
{
	if (!condition)
		__builtin_trap();
}

/* Read eight bytes of the input as a time, wrapping around as needed. */
static int64_t
time_from(const uint8_t *data, size_t size, size_t offset)
{
	uint64_t value = 0;
	size_t i;

	for (i = 0; i < 8 && size > 0; i++)
		value = (value << 8) | data[(offset + i) % size];
	return (int64_t) value;
}

/* Check the timing properties of one accepted schedule at one instant. */
static void
check_next(const Schedule *schedule, int64_t after)
{
	int64_t next = schedule_next_after(schedule, after);
	int64_t limit = schedule->kind == SCHEDULE_INTERVAL ? schedule->interval_us
														: SCHEDULE_DAY_US;

	int failures = (int) ((uint64_t) after % 70);
	int64_t delay = schedule_retry_delay(schedule, failures,
										 (double) ((uint64_t) after % 1001) /
											 1000.0);

	/* a retry waits at least the base and never beyond the period */
	require(delay >= SCHEDULE_RETRY_BASE_US || delay == limit);
	require(delay <= (limit > SCHEDULE_RETRY_BASE_US ? limit
													 : SCHEDULE_RETRY_BASE_US));
	if (next == INT64_MAX)
		return;
	require(next > after);
	require((uint64_t) next - (uint64_t) after <= (uint64_t) limit);
	if (schedule->kind == SCHEDULE_DAILY)
	{
		int64_t into_day = next % SCHEDULE_DAY_US;

		if (into_day < 0)
			into_day += SCHEDULE_DAY_US;
		require(into_day ==
				(int64_t) schedule->minute_of_day * 60 * INT64_C(1000000));
	}
	require(schedule_next_run(schedule, after, true, next) == next);
	require(schedule_next_run(schedule, after, true, after) == next);
	require(schedule_next_run(schedule, after, false, after) == after);
}

/* One fuzz input: parse it as a schedule and check the properties. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char err[SCHEDULE_ERROR_MAX];
	char formatted[SCHEDULE_TEXT_MAX];
	Schedule schedule;
	Schedule again;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	err[0] = '\0';
	if (!schedule_parse(text, &schedule, err, sizeof(err)))
	{
		size_t i;

		require(memchr(err, '\0', sizeof(err)) != NULL);
		require(strncmp(err, "invalid schedule \"", 18) == 0);
		for (i = 0; err[i] != '\0'; i++)
			require(err[i] >= 0x20 && err[i] < 0x7f);
		free(text);
		return 0;
	}

	if (schedule.kind == SCHEDULE_INTERVAL)
		require(schedule.interval_us >= SCHEDULE_MIN_INTERVAL_US);
	else
		require(schedule.minute_of_day >= 0 &&
				schedule.minute_of_day < 24 * 60);
	require(schedule_format(&schedule, formatted, sizeof(formatted)));
	require(schedule_parse(formatted, &again, err, sizeof(err)));
	require(again.kind == schedule.kind &&
			again.interval_us == schedule.interval_us &&
			again.minute_of_day == schedule.minute_of_day);

	check_next(&schedule, time_from(data, size, 0));
	check_next(&schedule, time_from(data, size, 3));
	check_next(&schedule, INT64_MIN);
	check_next(&schedule, 0);
	free(text);
	return 0;
}
