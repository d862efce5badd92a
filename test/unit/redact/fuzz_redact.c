/*
 * fuzz_redact.c
 *		libFuzzer harness for src/redact.c: the first input byte picks how
 *		long a known secret taken from the input is; the output must never
 *		contain that secret and must be a valid string.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;
	char *secret;
	char *out;
	size_t secret_len;
	const char *secrets[2];

	if (size < 1)
		return 0;
	secret_len = data[0] % 16;
	if (secret_len > size - 1)
		secret_len = size - 1;
	secret = malloc(secret_len + 1);
	text = malloc(size);
	if (secret == NULL || text == NULL)
	{
		free(secret);
		free(text);
		return 0;
	}
	memcpy(secret, data + 1, secret_len);
	secret[secret_len] = '\0';
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	secrets[0] = secret;
	secrets[1] = NULL;
	out = redact_secrets(text, secrets, 2);
	if (out == NULL)
		__builtin_trap();
	/*
	 * A secret never survives.  (One sharing characters with the
	 * replacement text could be formed anew from it and its neighbours.)
	 */
	if (strlen(secret) >= REDACT_MIN_SECRET &&
		strpbrk(secret, REDACTED_TEXT) == NULL && strstr(out, secret) != NULL)
		__builtin_trap();
	free(out);
	free(secret);
	free(text);
	return 0;
}
