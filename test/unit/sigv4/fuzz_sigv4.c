/*
 * fuzz_sigv4.c
 *		libFuzzer harness for src/sigv4.c.
 *
 * The input is cut at NUL bytes into fields: the path, the host, then
 * alternately query parameter names and values and header names and
 * values; the first byte chooses the method, payload hash, date and
 * whether a session token is signed.  Besides the sanitizers' own checks,
 * the harness asserts what callers rely on: a failed signing returns
 * nothing, a successful one is deterministic, its request target is plain
 * URI-encoded ASCII that decodes back to the path, and the SHA-256 and URI
 * helpers agree with themselves.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define MAX_PARAMS 8

/* A harness invariant failed: crash so libFuzzer records the input. */
#define REQUIRE(cond) \
	do                \
	{                 \
		if (!(cond))  \
			abort();  \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The value of a %XX hex digit, or -1. */
static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Checks that encoded (of length len) is made only of unreserved bytes,
 * '/' when allowed and %XX escapes, and decodes back to raw.
 */
static void
require_decodes_to(const char *encoded, size_t len, const char *raw,
				   size_t raw_len, int slash_allowed)
{
	size_t in = 0;
	size_t out = 0;

	while (in < len)
	{
		unsigned char c = (unsigned char) encoded[in];

		REQUIRE(out < raw_len);
		if (c == '%')
		{
			int high, low;

			REQUIRE(in + 2 < len);
			high = hex_value(encoded[in + 1]);
			low = hex_value(encoded[in + 2]);
			REQUIRE(high >= 0 && low >= 0);
			REQUIRE((unsigned char) raw[out] == (high << 4 | low));
			in += 3;
		}
		else
		{
			REQUIRE((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
					(c >= '0' && c <= '9') || c == '-' || c == '_' ||
					c == '.' || c == '~' || (slash_allowed && c == '/'));
			REQUIRE(raw[out] == (char) c);
			in++;
		}
		out++;
	}
	REQUIRE(out == raw_len);
}

/* URI encoding round-trips and its length report matches what it wrote. */
static void
fuzz_uri_encode(const uint8_t *data, size_t size)
{
	size_t len = sigv4_uri_encode(NULL, 0, (const char *) data, size, 1);
	char *encoded = malloc(len + 1);
	char small[5];

	REQUIRE(encoded != NULL);
	REQUIRE(sigv4_uri_encode(encoded, len + 1, (const char *) data, size, 1) ==
			len);
	REQUIRE(strlen(encoded) == len);
	require_decodes_to(encoded, len, (const char *) data, size, 1);
	REQUIRE(sigv4_uri_encode(small, sizeof(small), (const char *) data, size,
							 0) >= strlen(small));
	free(encoded);
}

/* Incremental SHA-256 cut at an input-chosen point equals the one-shot. */
static void
fuzz_sha256(const uint8_t *data, size_t size)
{
	char one_shot[SIGV4_SHA256_HEX_LEN + 1];
	char streamed[SIGV4_SHA256_HEX_LEN + 1];
	size_t cut = size > 0 ? data[0] % (size + 1) : 0;
	Sigv4Sha256 hash;

	REQUIRE(sigv4_sha256_hex(data, size, one_shot) == SIGV4_OK);
	REQUIRE(sigv4_sha256_begin(&hash) == SIGV4_OK);
	REQUIRE(sigv4_sha256_update(&hash, data, cut) == SIGV4_OK);
	REQUIRE(sigv4_sha256_update(&hash, data + cut, size - cut) == SIGV4_OK);
	REQUIRE(sigv4_sha256_finish_hex(&hash, streamed) == SIGV4_OK);
	REQUIRE(strcmp(one_shot, streamed) == 0);
}

/* Checks a successful signing's output. */
static void
require_well_formed(const Sigv4SignedRequest *out, const char *path,
					const Sigv4Request *request)
{
	static const char prefix[] = "AWS4-HMAC-SHA256 Credential=";
	const char *signature = strstr(out->authorization, ", Signature=");
	const char *query = strchr(out->request_target, '?');
	size_t path_len = query ? (size_t) (query - out->request_target)
							: strlen(out->request_target);
	const unsigned char *p;

	REQUIRE(strncmp(out->authorization, prefix, sizeof(prefix) - 1) == 0);
	REQUIRE(signature != NULL && strlen(signature + 12) == 64);
	REQUIRE(strcmp(out->amz_date, request->amz_date) == 0);
	REQUIRE(strcmp(out->content_sha256, request->payload_sha256) == 0);
	require_decodes_to(out->request_target, path_len, path, strlen(path), 1);
	REQUIRE((query != NULL) == (request->nquery > 0));
	for (p = (const unsigned char *) out->request_target; *p != '\0'; p++)
		REQUIRE(*p > 0x20 && *p < 0x7f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static Sigv4Signer plain_signer;
	static Sigv4Signer token_signer;
	static const char *const methods[] = {"GET", "PUT", "HEAD", NULL};
	char *copy;
	char *fields[2 + 4 * MAX_PARAMS];
	size_t nfields = 0;
	size_t i;
	uint8_t control;
	Sigv4QueryParam query[MAX_PARAMS];
	Sigv4Header headers[MAX_PARAMS];
	Sigv4Request request = {0};
	Sigv4SignedRequest first;
	Sigv4SignedRequest again;
	Sigv4Signer *signer;
	Sigv4Status status;

	if (plain_signer.access_key_id == NULL)
	{
		REQUIRE(sigv4_signer_init(&plain_signer, "AKIAFUZZ", "fuzz/secret",
								  NULL, "us-east-1", "s3") == SIGV4_OK);
		REQUIRE(sigv4_signer_init(&token_signer, "ASIAFUZZ", "fuzz/secret",
								  "fuzz-token", "eu-west-1",
								  "s3") == SIGV4_OK);
	}
	fuzz_uri_encode(data, size);
	fuzz_sha256(data, size);
	if (size == 0)
		return 0;

	/* A NUL-terminated copy, cut into fields at the NULs. */
	control = data[0];
	copy = malloc(size);
	REQUIRE(copy != NULL);
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	fields[nfields++] = copy;
	for (i = 0; i + 1 < size - 1 && nfields < sizeof(fields) / sizeof(*fields);
		 i++)
		if (copy[i] == '\0')
			fields[nfields++] = copy + i + 1;

	/* Mostly a valid method, so that the other fields get exercised. */
	request.method =
		methods[control & 3] ? methods[control & 3] : fields[nfields - 1];
	request.path = fields[0];
	request.host = nfields > 1 ? fields[1] : "bucket.s3.amazonaws.com";
	request.query = query;
	request.headers = headers;
	for (i = 2; i + 1 < nfields; i += 2)
	{
		/* Fields pair up: 2/3 query, 4/5 header, 6/7 query, ... */
		if ((i / 2) % 2 == 1)
		{
			query[request.nquery].name = fields[i];
			query[request.nquery].value =
				fields[i + 1][0] == '\0' && (control & 4) ? NULL
														  : fields[i + 1];
			request.nquery++;
		}
		else
		{
			headers[request.nheaders].name = fields[i];
			headers[request.nheaders].value = fields[i + 1];
			request.nheaders++;
		}
	}
	request.payload_sha256 =
		(control & 8) ? SIGV4_UNSIGNED_PAYLOAD : SIGV4_EMPTY_PAYLOAD_SHA256;
	request.amz_date =
		(control & 16) ? "20130524T000000Z" : "20991231T235959Z";
	signer = (control & 32) ? &token_signer : &plain_signer;

	status = sigv4_sign_request(signer, &request, &first);
	if (status == SIGV4_OK)
	{
		require_well_formed(&first, request.path, &request);
		REQUIRE(sigv4_sign_request(signer, &request, &again) == SIGV4_OK);
		REQUIRE(strcmp(first.authorization, again.authorization) == 0);
		REQUIRE(strcmp(first.request_target, again.request_target) == 0);
		sigv4_signed_request_free(&again);
	}
	else
	{
		REQUIRE(first.authorization == NULL && first.request_target == NULL);
		REQUIRE(sigv4_status_message(status) != NULL);
	}
	sigv4_signed_request_free(&first);
	free(copy);
	return 0;
}
