/*
 * civil_days.h
 *		Days since 1970-01-01 of a proleptic Gregorian date (Howard
 *		Hinnant's days_from_civil), for unit tests that write their
 *		expectations as calendar dates: an independent reckoning of the
 *		calendar the code under test keeps.
 */
#ifndef REDSHIFT_FDW_TEST_CIVIL_DAYS_H
#define REDSHIFT_FDW_TEST_CIVIL_DAYS_H

#include <stdint.h>

static inline int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

#endif /* REDSHIFT_FDW_TEST_CIVIL_DAYS_H */
