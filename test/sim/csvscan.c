/*
 * csvscan.c -- the simulator's COPY fast path check, in C (test bed only)
 *
 * s3load.py checks each block of COPY data against regular expressions
 * (FastPlan.strict and FastPlan.loose) before it streams the bytes to the
 * backing server unchanged.  In Python that check costs about 0.6 s per
 * 100 MB, on the cores the backing server's COPY needs.  This is the same
 * check as a plain scan: the end of the run of whole regular records from
 * a position on, each with ncols fields, where a field is either quoted
 * from its first to its last byte (inner quotes doubled) or unquoted and
 * free of the delimiter, the quote, LF and CR.  Per field, nonempty refuses
 * an empty value and maxlen (>= 0) a value of more bytes (a doubled quote
 * is one byte of the value); with one (a single column), an empty unquoted
 * field is no record.  s3load.py loads it with ctypes when the test bed
 * built it, and uses the expressions otherwise; test_sim.py holds the two
 * to the same results.
 */
#include <stddef.h>

/*
 * The end of the run of at most max_records regular records starting at
 * pos in buf[0..len) (pos itself when the first is not one, or not whole).
 */
size_t
csv_regular_run(const unsigned char *buf, size_t len, size_t pos, int ncols,
				unsigned char delimiter, unsigned char quote,
				const unsigned char *nonempty, const long *maxlen, int one,
				long max_records)
{
	size_t good = pos;
	long records;

	for (records = 0; records < max_records; records++)
	{
		size_t r = good;
		int i;

		for (i = 0; i < ncols; i++)
		{
			long bytes = 0;

			if (r < len && buf[r] == quote)
			{
				r++;
				for (;;)
				{
					if (r >= len)
						return good; /* not closed in buf */
					if (buf[r] != quote)
					{
						bytes++;
						r++;
						continue;
					}
					if (r + 1 < len && buf[r + 1] == quote)
					{
						bytes++;
						r += 2;
						continue;
					}
					r++; /* the closing quote */
					break;
				}
				if (nonempty[i] && bytes == 0)
					return good;
			}
			else
			{
				size_t start = r;

				while (r < len && buf[r] != delimiter && buf[r] != quote &&
					   buf[r] != '\n' && buf[r] != '\r')
					r++;
				bytes = (long) (r - start);
				if (bytes == 0 && (nonempty[i] || one))
					return good;
			}
			if (maxlen[i] >= 0 && bytes > maxlen[i])
				return good;
			if (r >= len || buf[r] != (i < ncols - 1 ? delimiter : '\n'))
				return good;
			r++;
		}
		good = r;
	}
	return good;
}
