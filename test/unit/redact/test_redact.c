/*
 * test_redact.c
 *		Table-driven unit tests of src/redact.c.
 *
 * Prints one line per failure and a summary "redact: N passed, M failed";
 * exits non-zero if anything failed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

/* A message, the secrets the caller knows, and the expected result. */
typedef struct RedactCase
{
	const char *text;
	const char *secret;
	const char *expected;
} RedactCase;

static const RedactCase cases[] = {
	/* known values, wherever they are */
	{"login failed for hunter2secret", "hunter2secret",
	 "login failed for [redacted]"},
	{"abcSECRETabcSECRET", "SECRET", "abc[redacted]abc[redacted]"},
	{"short ab stays", "ab", "short ab stays"},
	{"nothing here", NULL, "nothing here"},
	{"", "secret", ""},
	/* keyword-named values */
	{"host=h password=pw1 user=u", NULL, "host=h password=[redacted] user=u"},
	{"PASSWORD = 'it''s' rest", NULL, "PASSWORD = '[redacted]' rest"},
	{"CREDENTIALS 'aws_access_key_id=A;aws_secret_access_key=B'", NULL,
	 "CREDENTIALS '[redacted]'"},
	{"ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY 'wJal' SESSION_TOKEN 'tok'",
	 NULL,
	 "ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY '[redacted]' SESSION_TOKEN "
	 "'[redacted]'"},
	{"aws_secret_access_key: abc/def+ghi\nnext", NULL,
	 "aws_secret_access_key: [redacted]\nnext"},
	{"X-Amz-Security-Token: FQoG; other", NULL,
	 "X-Amz-Security-Token: [redacted]; other"},
	{"Signature=deadbeef&x=1", NULL, "Signature=[redacted]&x=1"},
	{"password \"dq\"", NULL, "password \"[redacted]\""},
	{"unterminated password='abc", NULL, "unterminated password='[redacted]"},
	/* prose mentioning a keyword keeps its words */
	{"password authentication failed for user \"bob\"", NULL,
	 "password authentication failed for user \"bob\""},
	{"could not find credentials in the chain", NULL,
	 "could not find credentials in the chain"},
	{"no password= ", NULL, "no password= "},
	{"mypassword=x", NULL, "mypassword=x"},
	/* both passes */
	{"password=topsecret and topsecret", "topsecret",
	 "password=[redacted] and [redacted]"},
};

int
main(void)
{
	int passed = 0;
	int failed = 0;
	size_t i;
	const char *many[] = {NULL, "abcd", "abcdef", "xyz"};
	char *got;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const char *secrets[1] = {cases[i].secret};

		got = redact_secrets(cases[i].text, secrets, 1);
		if (got != NULL && strcmp(got, cases[i].expected) == 0)
			passed++;
		else
		{
			failed++;
			printf("FAIL case %zu: \"%s\" gave \"%s\", expected \"%s\"\n", i,
				   cases[i].text, got ? got : "(null)", cases[i].expected);
		}
		free(got);
	}
	/* the longest of overlapping known secrets wins */
	got = redact_secrets("x abcdefg y", many, 4);
	if (got != NULL && strcmp(got, "x [redacted]g y") == 0)
		passed++;
	else
	{
		failed++;
		printf("FAIL longest secret: \"%s\"\n", got ? got : "(null)");
	}
	free(got);
	/* NULL text is an empty message */
	got = redact_secrets(NULL, NULL, 0);
	if (got != NULL && got[0] == '\0')
		passed++;
	else
	{
		failed++;
		printf("FAIL NULL text\n");
	}
	free(got);
	printf("redact: %d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
