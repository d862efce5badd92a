/*
 * schedule.c
 *		Parsing, formatting and evaluation of binding schedules.
 *
 * Two forms are accepted, as in Estuary Flow's batch connectors:
 *
 *	 - a Go duration string (time.ParseDuration): a sequence of decimal
 *	   numbers, each with an optional fraction and a unit among h, m, s, ms,
 *	   us (or µs), ns; "+" may lead.  The value is kept in microseconds
 *	   (sub-microsecond parts are dropped) and must be at least one second.
 *	 - "daily at H:MMZ" or "daily at HH:MMZ": once a day at that UTC time.
 *	   Keywords are case-insensitive, runs of spaces are accepted between
 *	   the words, the hour may have one or two digits (as Go's "15:04Z"
 *	   layout allows), the minutes must have two, and the Z (or z) is
 *	   required: no other time zone is accepted.
 *
 * Leading and trailing white space around the whole text is ignored.
 * Error positions are 1-based byte offsets into the text as given.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "schedule.h"

#define NS_PER_US UINT64_C(1000)
#define US_PER_SECOND INT64_C(1000000)
#define US_PER_MINUTE (60 * US_PER_SECOND)
#define US_PER_HOUR (60 * US_PER_MINUTE)

/* Go's limit for a duration: 1<<63 nanoseconds, as an unsigned value. */
#define DURATION_NS_LIMIT (UINT64_C(1) << 63)

/* Longest part of the input quoted back in an error message. */
#define QUOTED_INPUT_MAX 40

/* One unit of a Go duration string and its length in nanoseconds. */
typedef struct DurationUnit
{
	const char *name;
	uint64_t ns;
} DurationUnit;

/* The units Go's time.ParseDuration accepts, micro sign in both forms. */
static const DurationUnit duration_units[] = {
	{"ns", UINT64_C(1)},		   {"us", UINT64_C(1000)},
	{"\xc2\xb5s", UINT64_C(1000)}, /* U+00B5 MICRO SIGN */
	{"\xce\xbcs", UINT64_C(1000)}, /* U+03BC GREEK SMALL LETTER MU */
	{"ms", UINT64_C(1000000)},	   {"s", UINT64_C(1000000000)},
	{"m", UINT64_C(60000000000)},  {"h", UINT64_C(3600000000000)},
};

/*
 * The part of the input being parsed: the text without surrounding white
 * space, plus a quoted rendering of all of it for error messages.
 */
typedef struct ScheduleInput
{
	const char *text; /* the whole text as given */
	size_t begin;	  /* first byte after leading white space */
	size_t end;		  /* one past the last byte before trailing space */
	char quoted[QUOTED_INPUT_MAX * 4 + 8];
} ScheduleInput;

/*
 * Write a formatted message into the caller's error buffer, if it gave
 * one.  Every failure path goes through here so errbuf may be NULL.
 */
static void set_error(char *errbuf, size_t errlen, const char *format, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_error(char *errbuf, size_t errlen, const char *format, ...)
{
	va_list args;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(args, format);
	vsnprintf(errbuf, errlen, format, args);
	va_end(args);
}

/*
 * Report a parse error in the common shape
 *	 invalid schedule "<input>": <detail>
 * so every message quotes what the user wrote.
 */
static bool parse_error(const ScheduleInput *input, char *errbuf,
						size_t errlen, const char *format, ...)
	__attribute__((format(printf, 4, 5)));

static bool
parse_error(const ScheduleInput *input, char *errbuf, size_t errlen,
			const char *format, ...)
{
	char detail[SCHEDULE_ERROR_MAX];
	va_list args;

	va_start(args, format);
	vsnprintf(detail, sizeof(detail), format, args);
	va_end(args);
	set_error(errbuf, errlen, "invalid schedule \"%s\": %s", input->quoted,
			  detail);
	return false;
}

/* White space tolerated around a schedule and between its words. */
static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
		   c == '\v';
}

/* An ASCII decimal digit (isdigit() would depend on the locale). */
static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Lower-case an ASCII letter, for the case-insensitive keywords. */
static char
ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
}

/*
 * Render bytes for an error message: printable ASCII as is, other bytes as
 * \xNN, long inputs cut with "...", so a message never carries control
 * characters into a server log.
 */
static void
quote_bytes(const char *bytes, size_t len, char *buf, size_t buflen)
{
	size_t used = 0;
	size_t i;

	for (i = 0; i < len && used < buflen; i++)
	{
		unsigned char c = (unsigned char) bytes[i];

		if (i == QUOTED_INPUT_MAX)
		{
			snprintf(buf + used, buflen - used, "...");
			return;
		}
		if (c == '"' || c == '\\')
			used += snprintf(buf + used, buflen - used, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			used += snprintf(buf + used, buflen - used, "%c", c);
		else
			used += snprintf(buf + used, buflen - used, "\\x%02x", c);
	}
	buf[used < buflen ? used : buflen - 1] = '\0';
}

/* 1-based position of a byte offset, as shown in error messages. */
static int
position(size_t offset)
{
	return (int) offset + 1;
}

/*
 * Consume a run of decimal digits as Go's leadingInt does, failing on
 * overflow past 1<<63.  Advances *pos past the digits.
 */
static bool
leading_int(const char *text, size_t end, size_t *pos, uint64_t *value)
{
	uint64_t x = 0;
	size_t i = *pos;

	for (; i < end && is_digit(text[i]); i++)
	{
		if (x > DURATION_NS_LIMIT / 10)
			return false;
		x = x * 10 + (uint64_t) (text[i] - '0');
		if (x > DURATION_NS_LIMIT)
			return false;
	}
	*pos = i;
	*value = x;
	return true;
}

/*
 * Consume the digits after a decimal point as Go's leadingFraction does:
 * digits beyond what fits are ignored, *scale is 10^(digits kept).
 */
static void
leading_fraction(const char *text, size_t end, size_t *pos, uint64_t *value,
				 double *scale)
{
	uint64_t x = 0;
	double sc = 1;
	bool overflow = false;
	size_t i = *pos;

	for (; i < end && is_digit(text[i]); i++)
	{
		uint64_t y;

		if (overflow)
			continue;
		if (x > (DURATION_NS_LIMIT - 1) / 10)
		{
			overflow = true;
			continue;
		}
		y = x * 10 + (uint64_t) (text[i] - '0');
		if (y > DURATION_NS_LIMIT)
		{
			overflow = true;
			continue;
		}
		x = y;
		sc *= 10;
	}
	*pos = i;
	*value = x;
	*scale = sc;
}

/* Look up a unit by its exact spelling; NULL if Go would not know it. */
static const DurationUnit *
find_unit(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
	{
		if (strlen(duration_units[i].name) == len &&
			memcmp(duration_units[i].name, name, len) == 0)
			return &duration_units[i];
	}
	return NULL;
}

/*
 * Explain an unknown unit: spaces inside a duration, days and weeks get a
 * hint of their own since they are the usual mistakes.
 */
static bool
unknown_unit_error(const ScheduleInput *input, size_t unit_start,
				   size_t unit_len, char *errbuf, size_t errlen)
{
	const char *unit = input->text + unit_start;
	char quoted[QUOTED_INPUT_MAX * 4 + 8];
	size_t i;

	for (i = 0; i < unit_len; i++)
	{
		if (is_blank(unit[i]))
			return parse_error(input, errbuf, errlen,
							   "unexpected space at position %d; write a "
							   "duration without spaces, such as 1h30m",
							   position(unit_start + i));
	}
	quote_bytes(unit, unit_len, quoted, sizeof(quoted));
	return parse_error(input, errbuf, errlen,
					   "unknown unit \"%s\" at position %d; valid units are "
					   "h, m, s, ms, us and ns%s",
					   quoted, position(unit_start),
					   ascii_lower(unit[0]) == 'd' ? " (for days, write 24h)"
					   : ascii_lower(unit[0]) == 'w'
						   ? " (for weeks, write 168h)"
						   : "");
}

/*
 * Parse a Go duration string between input->begin and input->end, with
 * Go's exact grammar and arithmetic, then apply the schedule's own rules:
 * not negative, not zero, at least one second.
 */
static bool
parse_interval(const ScheduleInput *input, Schedule *out, char *errbuf,
			   size_t errlen)
{
	const char *text = input->text;
	size_t pos = input->begin;
	size_t end = input->end;
	uint64_t total_ns = 0;
	bool negative = false;

	if (text[pos] == '+' || text[pos] == '-')
	{
		negative = text[pos] == '-';
		pos++;
	}
	if (pos == end)
		return parse_error(input, errbuf, errlen,
						   "expected a number after the sign at position %d",
						   position(pos));
	if (end - pos == 1 && text[pos] == '0')
		return parse_error(input, errbuf, errlen,
						   "a schedule interval must be at least 1s");

	while (pos < end)
	{
		size_t number_start = pos;
		size_t unit_start;
		uint64_t whole;
		uint64_t fraction = 0;
		double scale = 1;
		bool digits_before;
		bool digits_after = false;
		const DurationUnit *unit;

		if (!(text[pos] == '.' || is_digit(text[pos])))
		{
			if (is_blank(text[pos]))
				return parse_error(input, errbuf, errlen,
								   "unexpected space at position %d; write a "
								   "duration without spaces, such as 1h30m",
								   position(pos));
			return parse_error(input, errbuf, errlen,
							   "expected a number at position %d; write a "
							   "duration such as 5m or 1h30m, or daily at "
							   "HH:MMZ",
							   position(pos));
		}
		if (!leading_int(text, end, &pos, &whole))
			return parse_error(input, errbuf, errlen,
							   "number at position %d is too large; the "
							   "longest duration is 2562047h47m16.854775807s",
							   position(number_start));
		digits_before = pos != number_start;
		if (pos < end && text[pos] == '.')
		{
			size_t fraction_start = ++pos;

			leading_fraction(text, end, &pos, &fraction, &scale);
			digits_after = pos != fraction_start;
		}
		if (!digits_before && !digits_after)
			return parse_error(input, errbuf, errlen,
							   "expected digits around the '.' at position %d",
							   position(number_start));

		unit_start = pos;
		while (pos < end && text[pos] != '.' && !is_digit(text[pos]))
			pos++;
		if (pos == unit_start)
			return parse_error(
				input, errbuf, errlen,
				"missing unit after \"%.*s\" at position %d; add one of h, "
				"m, s, ms, us, ns (for example %.*ss)",
				(int) (pos - number_start), text + number_start, position(pos),
				(int) (pos - number_start), text + number_start);
		unit = find_unit(text + unit_start, pos - unit_start);
		if (unit == NULL)
			return unknown_unit_error(input, unit_start, pos - unit_start,
									  errbuf, errlen);

		if (whole > DURATION_NS_LIMIT / unit->ns)
			return parse_error(input, errbuf, errlen,
							   "duration overflows at position %d; the "
							   "longest is 2562047h47m16.854775807s",
							   position(number_start));
		whole *= unit->ns;
		if (fraction > 0)
		{
			whole +=
				(uint64_t) ((double) fraction * ((double) unit->ns / scale));
			if (whole > DURATION_NS_LIMIT)
				return parse_error(input, errbuf, errlen,
								   "duration overflows at position %d; the "
								   "longest is 2562047h47m16.854775807s",
								   position(number_start));
		}
		total_ns += whole;
		if (total_ns > DURATION_NS_LIMIT - 1)
			return parse_error(input, errbuf, errlen,
							   "duration overflows at position %d; the "
							   "longest is 2562047h47m16.854775807s",
							   position(number_start));
	}

	if (negative)
		return parse_error(input, errbuf, errlen,
						   "a schedule interval cannot be negative");
	if (total_ns == 0)
		return parse_error(input, errbuf, errlen,
						   "a schedule interval must be at least 1s");
	if ((int64_t) (total_ns / NS_PER_US) < SCHEDULE_MIN_INTERVAL_US)
		return parse_error(input, errbuf, errlen,
						   "interval is shorter than the minimum of 1s");

	out->kind = SCHEDULE_INTERVAL;
	out->interval_us = (int64_t) (total_ns / NS_PER_US);
	out->minute_of_day = 0;
	return true;
}

/* Does the text at pos start with the keyword, ignoring case? */
static bool
match_keyword(const ScheduleInput *input, size_t pos, const char *keyword)
{
	size_t len = strlen(keyword);
	size_t i;

	if (input->end - pos < len)
		return false;
	for (i = 0; i < len; i++)
	{
		if (ascii_lower(input->text[pos + i]) != keyword[i])
			return false;
	}
	return true;
}

/* Skip white space; returns how many bytes were skipped. */
static size_t
skip_blanks(const ScheduleInput *input, size_t *pos)
{
	size_t start = *pos;

	while (*pos < input->end && is_blank(input->text[*pos]))
		(*pos)++;
	return *pos - start;
}

/*
 * Count the digits starting at pos and return their value (saturated, the
 * count decides validity anyway).
 */
static size_t
scan_digits(const ScheduleInput *input, size_t pos, int *value)
{
	size_t count = 0;

	*value = 0;
	while (pos + count < input->end && is_digit(input->text[pos + count]))
	{
		if (*value < 1000)
			*value = *value * 10 + (input->text[pos + count] - '0');
		count++;
	}
	return count;
}

/*
 * Explain what follows "HH:MM" when it is not the required Z: an offset,
 * seconds or anything else, each with the way to write it instead.
 */
static bool
bad_zone_error(const ScheduleInput *input, size_t pos, int hour, int minute,
			   char *errbuf, size_t errlen)
{
	char c = pos < input->end ? input->text[pos] : '\0';

	if (pos == input->end)
		return parse_error(input, errbuf, errlen,
						   "missing time zone after the time at position %d; "
						   "only UTC is supported: append Z, as in daily at "
						   "%02d:%02dZ",
						   position(pos), hour, minute);
	if (c == '+' || c == '-')
		return parse_error(input, errbuf, errlen,
						   "time zone offset at position %d is not "
						   "supported; only UTC is: convert the time to UTC "
						   "and append Z, as in daily at HH:MMZ",
						   position(pos));
	if (c == ':')
		return parse_error(input, errbuf, errlen,
						   "seconds at position %d are not supported; write "
						   "daily at %02d:%02dZ",
						   position(pos), hour, minute);
	return parse_error(input, errbuf, errlen,
					   "expected Z (UTC) at position %d; only UTC times are "
					   "supported, as in daily at %02d:%02dZ",
					   position(pos), hour, minute);
}

/*
 * Parse "daily at H:MMZ" / "daily at HH:MMZ" (the keyword "daily" is
 * known to be at input->begin).
 */
static bool
parse_daily(const ScheduleInput *input, Schedule *out, char *errbuf,
			size_t errlen)
{
	size_t pos = input->begin + strlen("daily");
	size_t digits;
	int hour;
	int minute;

	if (skip_blanks(input, &pos) == 0 || !match_keyword(input, pos, "at"))
		return parse_error(input, errbuf, errlen,
						   "expected \"at\" after \"daily\" at position %d; "
						   "write daily at HH:MMZ",
						   position(pos));
	pos += strlen("at");
	if (pos < input->end && !is_blank(input->text[pos]))
		return parse_error(input, errbuf, errlen,
						   "expected a space after \"daily at\" at position "
						   "%d; write daily at HH:MMZ",
						   position(pos));
	skip_blanks(input, &pos);
	if (pos == input->end)
		return parse_error(input, errbuf, errlen,
						   "missing time of day after \"daily at\"; write "
						   "daily at HH:MMZ, for example daily at 12:34Z");

	digits = scan_digits(input, pos, &hour);
	if (digits == 0 || digits > 2)
		return parse_error(input, errbuf, errlen,
						   "expected an hour of one or two digits (0-23) at "
						   "position %d; write daily at HH:MMZ",
						   position(pos));
	if (hour > 23)
		return parse_error(input, errbuf, errlen,
						   "hour %d at position %d is out of range 0-23", hour,
						   position(pos));
	pos += digits;
	if (pos == input->end || input->text[pos] != ':')
		return parse_error(input, errbuf, errlen,
						   "expected ':' after the hour at position %d; "
						   "write daily at HH:MMZ",
						   position(pos));
	pos++;
	digits = scan_digits(input, pos, &minute);
	if (digits != 2)
		return parse_error(input, errbuf, errlen,
						   "minutes at position %d must be two digits "
						   "(00-59); write daily at HH:MMZ",
						   position(pos));
	if (minute > 59)
		return parse_error(input, errbuf, errlen,
						   "minute %d at position %d is out of range 00-59",
						   minute, position(pos));
	pos += digits;

	skip_blanks(input, &pos);
	if (pos == input->end ||
		(input->text[pos] != 'Z' && input->text[pos] != 'z'))
		return bad_zone_error(input, pos, hour, minute, errbuf, errlen);
	pos++;
	skip_blanks(input, &pos);
	if (pos != input->end)
		return parse_error(input, errbuf, errlen,
						   "unexpected text after the time at position %d; "
						   "write daily at %02d:%02dZ",
						   position(pos), hour, minute);

	out->kind = SCHEDULE_DAILY;
	out->interval_us = 0;
	out->minute_of_day = hour * 60 + minute;
	return true;
}

/*
 * Entry point: trim the text, then hand it to the daily or the interval
 * parser depending on its first word.
 */
bool
schedule_parse(const char *text, Schedule *out, char *errbuf, size_t errlen)
{
	ScheduleInput input;

	if (text == NULL)
	{
		set_error(errbuf, errlen, "no schedule given");
		return false;
	}
	input.text = text;
	input.begin = 0;
	input.end = strlen(text);
	quote_bytes(text, strlen(text), input.quoted, sizeof(input.quoted));
	while (input.begin < input.end && is_blank(text[input.begin]))
		input.begin++;
	while (input.end > input.begin && is_blank(text[input.end - 1]))
		input.end--;

	if (input.begin == input.end)
		return parse_error(&input, errbuf, errlen,
						   "the schedule is empty; write a duration such as "
						   "5m or 1h30m, or daily at HH:MMZ");
	if (match_keyword(&input, input.begin, "daily"))
		return parse_daily(&input, out, errbuf, errlen);
	return parse_interval(&input, out, errbuf, errlen);
}

/*
 * Append formatted text at *used, tracking whether it all fit; used by
 * schedule_format to build the canonical text piece by piece.
 */
static bool append_text(char *buf, size_t buflen, size_t *used,
						const char *format, ...)
	__attribute__((format(printf, 4, 5)));

static bool
append_text(char *buf, size_t buflen, size_t *used, const char *format, ...)
{
	va_list args;
	int n;

	va_start(args, format);
	n = vsnprintf(buf + *used, buflen - *used, format, args);
	va_end(args);
	if (n < 0 || (size_t) n >= buflen - *used)
	{
		*used = buflen - 1;
		return false;
	}
	*used += (size_t) n;
	return true;
}

/*
 * Canonical text: the shortest Go duration without zero components
 * ("1h30m", "1m30s", "2h45m30.5s"), or "daily at HH:MMZ".
 */
bool
schedule_format(const Schedule *schedule, char *buf, size_t buflen)
{
	size_t used = 0;
	bool fits = true;
	int64_t rest;

	if (buf == NULL || buflen == 0)
		return false;
	buf[0] = '\0';
	if (schedule->kind == SCHEDULE_DAILY)
		return append_text(buf, buflen, &used, "daily at %02d:%02dZ",
						   schedule->minute_of_day / 60,
						   schedule->minute_of_day % 60);

	rest = schedule->interval_us;
	if (rest <= 0)
		return false;
	if (rest >= US_PER_HOUR)
		fits = append_text(buf, buflen, &used, "%lldh",
						   (long long) (rest / US_PER_HOUR));
	rest %= US_PER_HOUR;
	if (fits && rest >= US_PER_MINUTE)
		fits = append_text(buf, buflen, &used, "%lldm",
						   (long long) (rest / US_PER_MINUTE));
	rest %= US_PER_MINUTE;
	if (fits && rest % US_PER_SECOND != 0)
	{
		char fraction[8];
		size_t len;

		snprintf(fraction, sizeof(fraction), "%06lld",
				 (long long) (rest % US_PER_SECOND));
		len = strlen(fraction);
		while (fraction[len - 1] == '0')
			fraction[--len] = '\0';
		fits = append_text(buf, buflen, &used, "%lld.%ss",
						   (long long) (rest / US_PER_SECOND), fraction);
	}
	else if (fits && rest > 0)
		fits = append_text(buf, buflen, &used, "%llds",
						   (long long) (rest / US_PER_SECOND));
	return fits;
}

/* a + b, saturating at the ends of the int64 range. */
static int64_t
add_saturating(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	if (b < 0 && a < INT64_MIN - b)
		return INT64_MIN;
	return a + b;
}

/*
 * Next scheduled instant after a poll start: interval after it, or the
 * first occurrence of the time of day strictly later than it.  The daily
 * case works from the offset into the UTC day so it never forms an
 * out-of-range midnight near the ends of the int64 range.
 */
int64_t
schedule_next_after(const Schedule *schedule, int64_t after_us)
{
	int64_t into_day;
	int64_t delta;

	if (schedule->kind == SCHEDULE_INTERVAL)
		return add_saturating(after_us, schedule->interval_us);

	into_day = after_us % SCHEDULE_DAY_US;
	if (into_day < 0)
		into_day += SCHEDULE_DAY_US;
	delta = (int64_t) schedule->minute_of_day * US_PER_MINUTE - into_day;
	if (delta <= 0)
		delta += SCHEDULE_DAY_US;
	return add_saturating(after_us, delta);
}

/*
 * When to start the next poll: now if never polled or overdue, else the
 * next scheduled instant after the last poll's start.
 */
int64_t
schedule_next_run(const Schedule *schedule, int64_t last_start_us,
				  bool has_last, int64_t now_us)
{
	int64_t next;

	if (!has_last)
		return now_us;
	next = schedule_next_after(schedule, last_start_us);
	return next <= now_us ? now_us : next;
}

/*
 * How long to wait before retrying a binding whose last `failures` runs
 * failed: one second doubled per further failure, stretched by up to a
 * quarter by `jitter` (0 .. 1) so that bindings failing together spread
 * out, and never longer than the schedule's own period, so a failing
 * binding is retried at least as often as it would have run.
 */
int64_t
schedule_retry_delay(const Schedule *schedule, int failures, double jitter)
{
	int64_t cap = schedule->kind == SCHEDULE_INTERVAL ? schedule->interval_us
													  : SCHEDULE_DAY_US;
	int64_t delay = SCHEDULE_RETRY_BASE_US;
	int doublings = failures - 1;

	if (cap < SCHEDULE_RETRY_BASE_US)
		cap = SCHEDULE_RETRY_BASE_US;
	if (!(jitter >= 0.0)) /* also catches NaN */
		jitter = 0.0;
	if (jitter > 1.0)
		jitter = 1.0;
	while (doublings-- > 0 && delay < cap)
		delay *= 2;
	delay += (int64_t) ((double) delay * 0.25 * jitter);
	return delay < cap ? delay : cap;
}
