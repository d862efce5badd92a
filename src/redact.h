/*
 * redact.h
 *		Removing secrets from text that is kept or shown: run history,
 *		error messages, log lines.
 *
 * Two passes: every occurrence of a known secret value (a password or key
 * the caller holds) is replaced, and so is the value after a keyword that
 * names a secret ("password=...", "SECRET_ACCESS_KEY '...'",
 * "CREDENTIALS '...'"), so that secrets the caller does not know about
 * (ones a remote echoed back, say) do not leak either.
 *
 * Plain C (standard library only) so it can be unit-tested and fuzzed.
 */
#ifndef REDSHIFT_FDW_REDACT_H
#define REDSHIFT_FDW_REDACT_H

#include <stddef.h>

/* What a secret is replaced with. */
#define REDACTED_TEXT "[redacted]"

/* Known secrets shorter than this are not searched for (too common). */
#define REDACT_MIN_SECRET 4

/*
 * A copy of text (malloc'd; NULL only when out of memory) with the given
 * secrets (NULL entries and ones shorter than REDACT_MIN_SECRET skipped)
 * and every keyword-named secret value replaced by REDACTED_TEXT.
 */
extern char *redact_secrets(const char *text, const char *const *secrets,
							size_t nsecrets);

#endif /* REDSHIFT_FDW_REDACT_H */
