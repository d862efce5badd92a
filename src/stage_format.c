/*
 * stage_format.c
 *		CSV fields, JSON strings and Redshift error classes for staging
 *		(see stage_format.h).  Standard C only.
 */
#include <string.h>

#include "stage_format.h"

/* Quotes doubled, the field in quotes: RFC 4180, as COPY ... CSV reads. */
size_t
csv_quoted_length(const char *value, size_t len)
{
	size_t n = len + 2;
	size_t i;

	for (i = 0; i < len; i++)
		if (value[i] == '"')
			n++;
	return n;
}

size_t
csv_quote(char *out, const char *value, size_t len)
{
	char *p = out;
	const char *q;
	const char *end = value + len;

	*p++ = '"';
	while (value < end &&
		   (q = memchr(value, '"', (size_t) (end - value))) != NULL)
	{
		size_t run = (size_t) (q - value) + 1;

		memcpy(p, value, run);
		p += run;
		*p++ = '"';
		value = q + 1;
	}
	memcpy(p, value, (size_t) (end - value));
	p += end - value;
	*p++ = '"';
	return (size_t) (p - out);
}

/* The characters that put a CSV field in quotes, wherever they are. */
static const bool csv_needs_quotes[256] = {
	['"'] = true, [','] = true, ['\n'] = true, ['\r'] = true};

size_t
csv_field_length(const char *value, size_t len, bool *quoted)
{
	const unsigned char *p = (const unsigned char *) value;
	bool special = false;
	size_t i;

	/* one pass with no branch per byte: most values are bare */
	for (i = 0; i < len; i++)
		special |= csv_needs_quotes[p[i]];
	*quoted = special || len == 0 || p[0] == ' ' || p[0] == '\t' ||
			  p[len - 1] == ' ' || p[len - 1] == '\t';
	return *quoted ? csv_quoted_length(value, len) : len;
}

size_t
csv_field(char *out, const char *value, size_t len, bool quoted)
{
	if (quoted)
		return csv_quote(out, value, len);
	memcpy(out, value, len);
	return len;
}

/* Days from 0000-03-01 to 2000-01-01, in the proleptic Gregorian calendar. */
#define DAYS_TO_2000 730425
#define USECS_PER_DAY INT64_C(86400000000)
/* 0001-01-01 and 9999-12-31 as days since 2000-01-01. */
#define FIRST_DAY (-730119)
#define LAST_DAY 2921939

/* Write value as width decimal digits (zero-padded); returns the end. */
static char *
put_digits(char *out, unsigned value, int width)
{
	int i;

	for (i = width - 1; i >= 0; i--)
	{
		out[i] = (char) ('0' + value % 10);
		value /= 10;
	}
	return out + width;
}

/*
 * "YYYY-MM-DD" of a day in 1..9999 AD (days since 2000-01-01), by
 * counting 400-year eras from 0000-03-01 (H. Hinnant's civil_from_days):
 * the same proleptic Gregorian calendar as PostgreSQL's j2date.
 */
static char *
put_date(char *out, int64_t days)
{
	int64_t z = days + DAYS_TO_2000;
	int64_t era = z / 146097; /* z > 0 in 1..9999 */
	unsigned doe = (unsigned) (z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned day = doy - (153 * mp + 2) / 5 + 1;
	unsigned month = mp < 10 ? mp + 3 : mp - 9;
	unsigned year = (unsigned) (yoe + era * 400) + (month <= 2);

	out = put_digits(out, year, 4);
	*out++ = '-';
	out = put_digits(out, month, 2);
	*out++ = '-';
	return put_digits(out, day, 2);
}

size_t
stage_date_text(int32_t days, char *out)
{
	if (days < FIRST_DAY || days > LAST_DAY)
		return 0;
	return (size_t) (put_date(out, days) - out);
}

size_t
stage_timestamp_text(int64_t usecs, bool utc_offset, char *out)
{
	int64_t days;
	int64_t time;
	unsigned seconds;
	unsigned fraction;
	char *p;

	/* floor division: times before 2000 belong to the day before */
	days = usecs / USECS_PER_DAY;
	time = usecs % USECS_PER_DAY;
	if (time < 0)
	{
		days--;
		time += USECS_PER_DAY;
	}
	if (days < FIRST_DAY || days > LAST_DAY)
		return 0;
	p = put_date(out, days);
	seconds = (unsigned) (time / 1000000);
	fraction = (unsigned) (time % 1000000);
	*p++ = ' ';
	p = put_digits(p, seconds / 3600, 2);
	*p++ = ':';
	p = put_digits(p, seconds / 60 % 60, 2);
	*p++ = ':';
	p = put_digits(p, seconds % 60, 2);
	if (fraction != 0)
	{
		*p++ = '.';
		p = put_digits(p, fraction, 6);
		while (p[-1] == '0')
			p--;
	}
	if (utc_offset)
	{
		memcpy(p, "+00", 3);
		p += 3;
	}
	return (size_t) (p - out);
}

/* The width digits at text as a number; false when one is not a digit. */
static bool
get_digits(const char *text, int width, int *value)
{
	int i;

	*value = 0;
	for (i = 0; i < width; i++)
	{
		if (text[i] < '0' || text[i] > '9')
			return false;
		*value = *value * 10 + (text[i] - '0');
	}
	return true;
}

/*
 * "YYYY-MM-DD" (1..9999 AD) as days since 2000-01-01 (H. Hinnant's
 * days_from_civil, the inverse of put_date); false when it is not that
 * text of a real day.
 */
static bool
get_date(const char *text, int64_t *days)
{
	static const int month_days[12] = {31, 29, 31, 30, 31, 30,
									   31, 31, 30, 31, 30, 31};
	int year;
	int month;
	int day;
	int64_t y;
	unsigned yoe;
	unsigned doy;

	if (!get_digits(text, 4, &year) || text[4] != '-' ||
		!get_digits(text + 5, 2, &month) || text[7] != '-' ||
		!get_digits(text + 8, 2, &day) || year < 1 || month < 1 ||
		month > 12 || day < 1 || day > month_days[month - 1])
		return false;
	if (month == 2 && day == 29 &&
		(year % 4 != 0 || (year % 100 == 0 && year % 400 != 0)))
		return false;
	y = year - (month <= 2);
	yoe = (unsigned) (y % 400);
	doy = (unsigned) ((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 +
					  day - 1);
	*days = (y / 400) * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy -
			DAYS_TO_2000;
	return true;
}

bool
stage_parse_image_date(const char *text, size_t len, int32_t *days)
{
	int64_t value;

	if (len != 10 || !get_date(text, &value))
		return false;
	*days = (int32_t) value;
	return true;
}

bool
stage_parse_image_timestamp(const char *text, size_t len, bool with_zone,
							int64_t *usecs)
{
	int64_t days;
	int hour;
	int minute;
	int second;
	int64_t fraction = 0;
	int64_t offset = 0;
	size_t pos = 19;

	if (len < 19 || !get_date(text, &days) || text[10] != 'T' ||
		!get_digits(text + 11, 2, &hour) || text[13] != ':' ||
		!get_digits(text + 14, 2, &minute) || text[16] != ':' ||
		!get_digits(text + 17, 2, &second) || hour > 23 || minute > 59 ||
		second > 59)
		return false;
	if (pos < len && text[pos] == '.')
	{
		int digits = 0;

		for (pos++; pos < len && text[pos] >= '0' && text[pos] <= '9'; pos++)
		{
			if (++digits > 6)
				return false;
			fraction = fraction * 10 + (text[pos] - '0');
		}
		if (digits == 0)
			return false;
		while (digits++ < 6)
			fraction *= 10;
	}
	if (with_zone)
	{
		int zone_hours;
		int zone_minutes;

		/* "+HH:MM": east of UTC, the local time is ahead of UTC */
		if (len - pos != 6 || (text[pos] != '+' && text[pos] != '-') ||
			!get_digits(text + pos + 1, 2, &zone_hours) ||
			text[pos + 3] != ':' ||
			!get_digits(text + pos + 4, 2, &zone_minutes) || zone_hours > 15 ||
			zone_minutes > 59)
			return false;
		offset = (int64_t) (zone_hours * 3600 + zone_minutes * 60) * 1000000;
		if (text[pos] == '-')
			offset = -offset;
		pos = len;
	}
	if (pos != len)
		return false;
	*usecs = days * USECS_PER_DAY +
			 (int64_t) (hour * 3600 + minute * 60 + second) * 1000000 +
			 fraction - offset;
	return true;
}

/*
 * COPY compares a field with the NULL text after removing its quotes, so
 * a value equal to it cannot be told from a NULL.
 */
bool
csv_value_reads_as_null(const char *value, size_t len)
{
	return len == strlen(STAGE_NULL_TEXT) &&
		   memcmp(value, STAGE_NULL_TEXT, len) == 0;
}

/* Characters JSON needs escaped: quote, backslash, control characters. */
static size_t
json_char_length(unsigned char c)
{
	if (c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ||
		c == '\b' || c == '\f')
		return 2;
	if (c < 0x20)
		return 6;
	return 1;
}

size_t
json_escaped_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += json_char_length((unsigned char) *s);
	return n;
}

size_t
json_escape(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char *p = out;

	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		switch (c)
		{
			case '"':
			case '\\':
				*p++ = '\\';
				*p++ = (char) c;
				break;
			case '\n':
				*p++ = '\\';
				*p++ = 'n';
				break;
			case '\r':
				*p++ = '\\';
				*p++ = 'r';
				break;
			case '\t':
				*p++ = '\\';
				*p++ = 't';
				break;
			case '\b':
				*p++ = '\\';
				*p++ = 'b';
				break;
			case '\f':
				*p++ = '\\';
				*p++ = 'f';
				break;
			default:
				if (c < 0x20)
				{
					memcpy(p, "\\u00", 4);
					p[4] = hex[c >> 4];
					p[5] = hex[c & 15];
					p += 6;
				}
				else
					*p++ = (char) c;
		}
	}
	return (size_t) (p - out);
}

/*
 * Redshift reports 1023 as SQLSTATE XX000 with the number leading the
 * message, or "Serializable isolation violation" in message or detail.
 */
bool
redshift_error_is_serialization_conflict(const char *sqlstate,
										 const char *message,
										 const char *detail)
{
	static const char marker[] = "Serializable isolation violation";

	if (sqlstate != NULL && strcmp(sqlstate, "XX000") != 0 &&
		strcmp(sqlstate, "40001") != 0)
		return false;
	if (message != NULL &&
		(strncmp(message, "1023", 4) == 0 || strstr(message, marker) != NULL))
		return true;
	return detail != NULL && strstr(detail, marker) != NULL;
}

int
stage_varchar_width(size_t len)
{
	size_t width = 256;

	if (len > STAGE_MAX_VARCHAR)
		return 0;
	while (width < len)
		width *= 2;
	return width > STAGE_MAX_VARCHAR ? STAGE_MAX_VARCHAR : (int) width;
}

long
stage_retry_delay_ms(int attempt, double jitter)
{
	long delay = 500;

	if (attempt < 1)
		attempt = 1;
	while (--attempt > 0 && delay < 8000)
		delay *= 2;
	if (delay > 8000)
		delay = 8000;
	if (jitter < 0)
		jitter = 0;
	if (jitter >= 1)
		jitter = 0.999;
	return delay + (long) (delay * 0.25 * jitter);
}

/* staging_compression's values, in StageCompression order. */
static const struct
{
	const char *name;
	const char *suffix;
	const char *copy_option;
} compressions[] = {
	{"zstd", ".csv.zst", "ZSTD"},
	{"gzip", ".csv.gz", "GZIP"},
	{"none", ".csv", ""},
};

/* The compression a staging_compression value names. */
bool
stage_compression_parse(const char *name, StageCompression *out)
{
	size_t i;

	for (i = 0; i < sizeof(compressions) / sizeof(compressions[0]); i++)
	{
		const char *a = name;
		const char *b = compressions[i].name;

		while (*a && *b && (*a | 0x20) == *b)
			a++, b++;
		if (*a == '\0' && *b == '\0')
		{
			*out = (StageCompression) i;
			return true;
		}
	}
	return false;
}

/* The suffix of a staging file's name. */
const char *
stage_compression_suffix(StageCompression compression)
{
	return compressions[compression].suffix;
}

/* The COPY option that reads it. */
const char *
stage_compression_copy_option(StageCompression compression)
{
	return compressions[compression].copy_option;
}
