/*
 * test_sigv4.c
 *		Unit tests of src/sigv4.c: the worked examples of the S3 SigV4
 *		documentation, URI encoding, canonical headers and query strings,
 *		the signing-key cache, SHA-256 helpers and argument checking.
 *
 * Where a test needs the canonical request, it writes it out literally and
 * signs it with expected_authorization(), a separate HMAC chain, so the
 * expected form is visible in the test rather than implied by a signature.
 * Exits non-zero if any check fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"

#define EXAMPLE_KEY_ID "AKIAIOSFODNN7EXAMPLE"
#define EXAMPLE_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EXAMPLE_HOST "examplebucket.s3.amazonaws.com"
#define EXAMPLE_DATE "20130524T000000Z"
#define EXAMPLE_SCOPE EXAMPLE_KEY_ID "/20130524/us-east-1/s3/aws4_request"
#define EMPTY_SHA256 SIGV4_EMPTY_PAYLOAD_SHA256

#define NELEMS(array) (sizeof(array) / sizeof((array)[0]))

static int checks_run;
static int checks_failed;

/* Records one check, printing where it failed. */
#define CHECK(cond) check((cond), #cond, __FILE__, __LINE__)
#define CHECK_STR(actual, expected) \
	check_str((actual), (expected), #actual, __FILE__, __LINE__)

static void
check(int ok, const char *what, const char *file, int line)
{
	checks_run++;
	if (!ok)
	{
		checks_failed++;
		fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
	}
}

static void
check_str(const char *actual, const char *expected, const char *what,
		  const char *file, int line)
{
	checks_run++;
	if (actual == NULL || strcmp(actual, expected) != 0)
	{
		checks_failed++;
		fprintf(stderr, "%s:%d: %s\n  got:      %s\n  expected: %s\n", file,
				line, what, actual ? actual : "(null)", expected);
	}
}

/* HMAC-SHA256 for the reference signature below. */
static void
hmac(const void *key, size_t key_len, const char *data, unsigned char *out)
{
	unsigned int len;

	HMAC(EVP_sha256(), key, (int) key_len, (const unsigned char *) data,
		 strlen(data), out, &len);
}

/*
 * The Authorization header AWS expects for a canonical request, computed
 * step by step from the documentation, independently of sigv4.c's code.
 */
static char *
expected_authorization(const char *key_id, const char *secret,
					   const char *amz_date, const char *region,
					   const char *canonical_request,
					   const char *signed_headers)
{
	static char result[1024];
	unsigned char digest[32];
	unsigned int digest_len;
	unsigned char key[32];
	char secret_key[256];
	char date[9];
	char scope[256];
	char hash_hex[65];
	char string_to_sign[512];
	char signature[65];
	int i;

	EVP_Digest(canonical_request, strlen(canonical_request), digest,
			   &digest_len, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		sprintf(hash_hex + 2 * i, "%02x", digest[i]);
	snprintf(date, sizeof(date), "%.8s", amz_date);
	snprintf(scope, sizeof(scope), "%s/%s/s3/aws4_request", date, region);
	snprintf(string_to_sign, sizeof(string_to_sign),
			 "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, hash_hex);

	snprintf(secret_key, sizeof(secret_key), "AWS4%s", secret);
	hmac(secret_key, strlen(secret_key), date, key);
	hmac(key, 32, region, key);
	hmac(key, 32, "s3", key);
	hmac(key, 32, "aws4_request", key);
	hmac(key, 32, string_to_sign, digest);
	for (i = 0; i < 32; i++)
		sprintf(signature + 2 * i, "%02x", digest[i]);

	snprintf(result, sizeof(result),
			 "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
			 "Signature=%s",
			 key_id, scope, signed_headers, signature);
	return result;
}

/* A signer with the documentation's example credentials. */
static void
init_example_signer(Sigv4Signer *signer, const char *session_token)
{
	Sigv4Status status =
		sigv4_signer_init(signer, EXAMPLE_KEY_ID, EXAMPLE_SECRET,
						  session_token, "us-east-1", "s3");

	CHECK(status == SIGV4_OK);
}

/* A GET of path on the example host with the empty payload. */
static Sigv4Request
example_request(const char *path)
{
	Sigv4Request request = {0};

	request.method = "GET";
	request.host = EXAMPLE_HOST;
	request.path = path;
	request.payload_sha256 = EMPTY_SHA256;
	request.amz_date = EXAMPLE_DATE;
	return request;
}

/* The four header-signing examples of the S3 SigV4 documentation. */
static void
test_aws_documentation_examples(void)
{
	Sigv4Signer signer;
	Sigv4SignedRequest out;
	Sigv4Request request;
	const Sigv4Header range[] = {{"Range", "bytes=0-9"}};
	const Sigv4Header put_headers[] = {
		{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
		{"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
	const Sigv4QueryParam lifecycle[] = {{"lifecycle", NULL}};
	const Sigv4QueryParam list[] = {{"max-keys", "2"}, {"prefix", "J"}};

	init_example_signer(&signer, NULL);

	/* GET Object */
	request = example_request("/test.txt");
	request.headers = range;
	request.nheaders = NELEMS(range);
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE
			  ", SignedHeaders=host;range;x-amz-content-sha256;x-amz-date"
			  ", Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd9"
			  "1039c6036bdb41");
	CHECK_STR(out.request_target, "/test.txt");
	CHECK_STR(out.amz_date, EXAMPLE_DATE);
	CHECK_STR(out.content_sha256, EMPTY_SHA256);
	CHECK(out.security_token == NULL);
	/* The reference signer agrees with the documented canonical request. */
	CHECK_STR(out.authorization,
			  expected_authorization(
				  EXAMPLE_KEY_ID, EXAMPLE_SECRET, EXAMPLE_DATE, "us-east-1",
				  "GET\n/test.txt\n\nhost:" EXAMPLE_HOST "\nrange:bytes=0-9\n"
				  "x-amz-content-sha256:" EMPTY_SHA256 "\n"
				  "x-amz-date:" EXAMPLE_DATE "\n\n"
				  "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
				  "host;range;x-amz-content-sha256;x-amz-date"));
	sigv4_signed_request_free(&out);

	/* PUT Object: '$' in the key, a body, a Date header */
	request = example_request("/test$file.text");
	request.method = "PUT";
	request.headers = put_headers;
	request.nheaders = NELEMS(put_headers);
	request.payload_sha256 =
		"44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE
			  ", SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;"
			  "x-amz-storage-class"
			  ", Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5"
			  "971af0ece108bd");
	CHECK_STR(out.request_target, "/test%24file.text");
	sigv4_signed_request_free(&out);

	/* GET Bucket Lifecycle: a parameter without a value */
	request = example_request("/");
	request.query = lifecycle;
	request.nquery = NELEMS(lifecycle);
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE
			  ", SignedHeaders=host;x-amz-content-sha256;x-amz-date"
			  ", Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a"
			  "200a0136783543");
	CHECK_STR(out.request_target, "/?lifecycle");
	sigv4_signed_request_free(&out);

	/* GET Bucket (List Objects) */
	request = example_request("/");
	request.query = list;
	request.nquery = NELEMS(list);
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(out.authorization,
			  "AWS4-HMAC-SHA256 Credential=" EXAMPLE_SCOPE
			  ", SignedHeaders=host;x-amz-content-sha256;x-amz-date"
			  ", Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670e"
			  "d5711ef69dc6f7");
	CHECK_STR(out.request_target, "/?max-keys=2&prefix=J");
	sigv4_signed_request_free(&out);

	sigv4_signer_clear(&signer);
}

/* URI encoding of single bytes, UTF-8, and snprintf-like truncation. */
static void
test_uri_encode(void)
{
	static const struct
	{
		const char *in;
		bool keep_slash;
		const char *out;
	} cases[] = {
		{"", false, ""},
		{"AZaz09-_.~", false, "AZaz09-_.~"},
		{"a b", false, "a%20b"},
		{"a/b", true, "a/b"},
		{"a/b", false, "a%2Fb"},
		{"=+&?#%", true, "%3D%2B%26%3F%23%25"},
		{"!*'()", true, "%21%2A%27%28%29"},
		{"$@:;,[]", true, "%24%40%3A%3B%2C%5B%5D"},
		{"caf\xc3\xa9", true, "caf%C3%A9"},
		{"\xe6\x97\xa5\xe6\x9c\xac", true, "%E6%97%A5%E6%9C%AC"},
		{"\x01\x7f\xff", true, "%01%7F%FF"},
		{"//./../", true, "//./../"},
	};
	char buf[64];
	size_t i;

	for (i = 0; i < NELEMS(cases); i++)
	{
		size_t len =
			sigv4_uri_encode(buf, sizeof(buf), cases[i].in,
							 strlen(cases[i].in), cases[i].keep_slash);

		CHECK_STR(buf, cases[i].out);
		CHECK(len == strlen(cases[i].out));
	}

	/* Embedded NUL: the length, not a terminator, ends the input. */
	CHECK(sigv4_uri_encode(buf, sizeof(buf), "a\0b", 3, false) == 5);
	CHECK_STR(buf, "a%00b");

	/* Measuring, then truncation that keeps the result terminated. */
	CHECK(sigv4_uri_encode(NULL, 0, "a b", 3, false) == 5);
	CHECK(sigv4_uri_encode(buf, 4, "a b", 3, false) == 5);
	CHECK_STR(buf, "a%2");
	CHECK(sigv4_uri_encode(buf, 1, "a b", 3, false) == 5);
	CHECK_STR(buf, "");
}

/*
 * Header names lowercased, values trimmed and inner blanks collapsed,
 * headers sorted; the values are still sent as given.
 */
static void
test_canonical_headers(void)
{
	Sigv4Signer signer;
	Sigv4SignedRequest out;
	Sigv4Request request = example_request("/k");
	const Sigv4Header headers[] = {
		{"X-Amz-Meta-Note", "  several   inner\t\tblanks  "},
		{"Content-Type", "text/plain;  charset=utf-8"},
		{"Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="},
		{"x-amz-meta-empty", "   "},
		{"x-amz-meta-utf8", "caf\xc3\xa9"}};

	init_example_signer(&signer, NULL);
	request.headers = headers;
	request.nheaders = NELEMS(headers);
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(
		out.authorization,
		expected_authorization(
			EXAMPLE_KEY_ID, EXAMPLE_SECRET, EXAMPLE_DATE, "us-east-1",
			"GET\n/k\n\n"
			"content-md5:1B2M2Y8AsgTpgAmY7PhCfg==\n"
			"content-type:text/plain; charset=utf-8\n"
			"host:" EXAMPLE_HOST "\n"
			"x-amz-content-sha256:" EMPTY_SHA256 "\n"
			"x-amz-date:" EXAMPLE_DATE "\n"
			"x-amz-meta-empty:\n"
			"x-amz-meta-note:several inner blanks\n"
			"x-amz-meta-utf8:caf\xc3\xa9\n\n"
			"content-md5;content-type;host;x-amz-content-sha256;x-amz-date;"
			"x-amz-meta-empty;x-amz-meta-note;x-amz-meta-utf8\n" EMPTY_SHA256,
			"content-md5;content-type;host;x-amz-content-sha256;x-amz-date;"
			"x-amz-meta-empty;x-amz-meta-note;x-amz-meta-utf8"));
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);
}

/*
 * Query parameters sorted by encoded name, then encoded value; bare and
 * empty-valued parameters both canonical as "name="; the wire keeps the
 * caller's order and tells the two apart.
 */
static void
test_canonical_query(void)
{
	Sigv4Signer signer;
	Sigv4SignedRequest out;
	Sigv4Request request = example_request("/bucket");
	/* Raw "z" < "\xc3\xa9" but encoded "%C3%A9" < "z"; "a" repeats. */
	const Sigv4QueryParam params[] = {{"z", "1"},
									  {"caf\xc3\xa9", "x"},
									  {"a", "2"},
									  {"a", "1"},
									  {"uploads", NULL},
									  {"empty", ""},
									  {"prefix", "a/b c+d=e&f~"}};

	init_example_signer(&signer, NULL);
	request.query = params;
	request.nquery = NELEMS(params);
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(out.authorization,
			  expected_authorization(
				  EXAMPLE_KEY_ID, EXAMPLE_SECRET, EXAMPLE_DATE, "us-east-1",
				  "GET\n/bucket\n"
				  "a=1&a=2&caf%C3%A9=x&empty=&prefix=a%2Fb%20c%2Bd%3De%26f~&"
				  "uploads=&z=1\n"
				  "host:" EXAMPLE_HOST "\n"
				  "x-amz-content-sha256:" EMPTY_SHA256 "\n"
				  "x-amz-date:" EXAMPLE_DATE "\n\n"
				  "host;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
				  "host;x-amz-content-sha256;x-amz-date"));
	CHECK_STR(out.request_target,
			  "/bucket?z=1&caf%C3%A9=x&a=2&a=1&uploads&empty=&"
			  "prefix=a%2Fb%20c%2Bd%3De%26f~");
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);
}

/* S3 signs the path as given: no dot-segment removal, no slash merging. */
static void
test_path_not_normalised(void)
{
	Sigv4Signer signer;
	Sigv4SignedRequest out;
	Sigv4Request request = example_request("/b//./../my key/\xe6\x97\xa5");

	init_example_signer(&signer, NULL);
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(out.request_target, "/b//./../my%20key/%E6%97%A5");
	CHECK_STR(out.authorization,
			  expected_authorization(
				  EXAMPLE_KEY_ID, EXAMPLE_SECRET, EXAMPLE_DATE, "us-east-1",
				  "GET\n/b//./../my%20key/%E6%97%A5\n\n"
				  "host:" EXAMPLE_HOST "\n"
				  "x-amz-content-sha256:" EMPTY_SHA256 "\n"
				  "x-amz-date:" EXAMPLE_DATE "\n\n"
				  "host;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256,
				  "host;x-amz-content-sha256;x-amz-date"));
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);
}

/* A session token is signed as x-amz-security-token and handed back. */
static void
test_session_token(void)
{
	Sigv4Signer signer;
	Sigv4SignedRequest out;
	Sigv4Request request = example_request("/k");

	request.payload_sha256 = SIGV4_UNSIGNED_PAYLOAD;
	init_example_signer(&signer, "FQoG/token+with=chars");
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK_STR(out.security_token, "FQoG/token+with=chars");
	CHECK_STR(out.content_sha256, SIGV4_UNSIGNED_PAYLOAD);
	CHECK_STR(
		out.authorization,
		expected_authorization(
			EXAMPLE_KEY_ID, EXAMPLE_SECRET, EXAMPLE_DATE, "us-east-1",
			"GET\n/k\n\n"
			"host:" EXAMPLE_HOST "\n"
			"x-amz-content-sha256:UNSIGNED-PAYLOAD\n"
			"x-amz-date:" EXAMPLE_DATE "\n"
			"x-amz-security-token:FQoG/token+with=chars\n\n"
			"host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n"
			"UNSIGNED-PAYLOAD",
			"host;x-amz-content-sha256;x-amz-date;x-amz-security-token"));
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);

	/* An empty token means none. */
	init_example_signer(&signer, "");
	CHECK(sigv4_sign_request(&signer, &request, &out) == SIGV4_OK);
	CHECK(out.security_token == NULL);
	CHECK(strstr(out.authorization, "x-amz-security-token") == NULL);
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);
}

/* Signs path at amz_date with signer, returning the Authorization value. */
static char *
sign_at(Sigv4Signer *signer, const char *amz_date)
{
	Sigv4SignedRequest out;
	Sigv4Request request = example_request("/cache");
	char *authorization;

	request.amz_date = amz_date;
	CHECK(sigv4_sign_request(signer, &request, &out) == SIGV4_OK);
	authorization = out.authorization;
	out.authorization = NULL;
	sigv4_signed_request_free(&out);
	return authorization;
}

/*
 * The signing key is derived once per day and reused; a new day derives
 * a new key, and the cached key signs exactly as a fresh one would.
 */
static void
test_signing_key_cache(void)
{
	Sigv4Signer signer;
	Sigv4Signer fresh;
	char *cached;
	char *uncached;

	init_example_signer(&signer, NULL);
	CHECK(signer.key_derivations == 0);
	free(sign_at(&signer, "20240101T000000Z"));
	CHECK(signer.key_derivations == 1);
	free(sign_at(&signer, "20240101T120000Z"));
	free(sign_at(&signer, "20240101T235959Z"));
	CHECK(signer.key_derivations == 1);
	free(sign_at(&signer, "20240102T000000Z"));
	CHECK(signer.key_derivations == 2);

	cached = sign_at(&signer, "20240102T101010Z");
	CHECK(signer.key_derivations == 2);
	init_example_signer(&fresh, NULL);
	uncached = sign_at(&fresh, "20240102T101010Z");
	CHECK_STR(cached, uncached);
	free(cached);
	free(uncached);

	/* One entry: going back a day derives again. */
	free(sign_at(&signer, "20240101T000000Z"));
	CHECK(signer.key_derivations == 3);

	sigv4_signer_clear(&signer);
	sigv4_signer_clear(&fresh);
}

/* Incremental SHA-256 equals the one-shot one, however the input is cut. */
static void
test_sha256(void)
{
	unsigned char data[5000];
	char one_shot[SIGV4_SHA256_HEX_LEN + 1];
	char streamed[SIGV4_SHA256_HEX_LEN + 1];
	static const size_t chunk_sizes[] = {1, 7, 63, 64, 65, 1000, 5000};
	Sigv4Sha256 hash;
	size_t i;

	CHECK(sigv4_sha256_hex("", 0, one_shot) == SIGV4_OK);
	CHECK_STR(one_shot, SIGV4_EMPTY_PAYLOAD_SHA256);
	CHECK(sigv4_sha256_hex("Welcome to Amazon S3.", 21, one_shot) == SIGV4_OK);
	CHECK_STR(
		one_shot,
		"44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char) (i * 131 + (i >> 3));
	CHECK(sigv4_sha256_hex(data, sizeof(data), one_shot) == SIGV4_OK);
	for (i = 0; i < NELEMS(chunk_sizes); i++)
	{
		size_t done;
		bool updated = true;

		CHECK(sigv4_sha256_begin(&hash) == SIGV4_OK);
		for (done = 0; done < sizeof(data); done += chunk_sizes[i])
		{
			size_t len = sizeof(data) - done < chunk_sizes[i]
							 ? sizeof(data) - done
							 : chunk_sizes[i];

			updated &=
				sigv4_sha256_update(&hash, data + done, len) == SIGV4_OK;
		}
		CHECK(updated);
		CHECK(sigv4_sha256_finish_hex(&hash, streamed) == SIGV4_OK);
		CHECK_STR(streamed, one_shot);
	}

	/* Empty stream; use after finish fails; abandon is always safe. */
	CHECK(sigv4_sha256_begin(&hash) == SIGV4_OK);
	CHECK(sigv4_sha256_finish_hex(&hash, streamed) == SIGV4_OK);
	CHECK_STR(streamed, SIGV4_EMPTY_PAYLOAD_SHA256);
	CHECK(sigv4_sha256_update(&hash, "x", 1) == SIGV4_ERR_CRYPTO);
	CHECK(sigv4_sha256_finish_hex(&hash, streamed) == SIGV4_ERR_CRYPTO);
	sigv4_sha256_abandon(&hash);
	CHECK(sigv4_sha256_begin(&hash) == SIGV4_OK);
	CHECK(sigv4_sha256_update(&hash, "abc", 3) == SIGV4_OK);
	sigv4_sha256_abandon(&hash);
}

/* x-amz-date formatting. */
static void
test_format_amz_date(void)
{
	char date[SIGV4_AMZ_DATE_LEN + 1];

	CHECK(sigv4_format_amz_date(1369353600, date) == SIGV4_OK);
	CHECK_STR(date, EXAMPLE_DATE);
	CHECK(sigv4_format_amz_date(0, date) == SIGV4_OK);
	CHECK_STR(date, "19700101T000000Z");
	CHECK(sigv4_format_amz_date(1709251199, date) == SIGV4_OK);
	CHECK_STR(date, "20240229T235959Z");
}

/* Signs request with a fresh example signer and returns the status. */
static Sigv4Status
sign_status(const Sigv4Request *request)
{
	Sigv4Signer signer;
	Sigv4SignedRequest out;
	Sigv4Status status;

	init_example_signer(&signer, NULL);
	status = sigv4_sign_request(&signer, request, &out);
	if (status != SIGV4_OK)
		CHECK(out.authorization == NULL && out.request_target == NULL);
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);
	return status;
}

/* Bad arguments are refused with the right status, never a crash. */
static void
test_rejected_requests(void)
{
	Sigv4Request request;
	Sigv4Signer signer;
	Sigv4SignedRequest out;
	const Sigv4QueryParam unnamed[] = {{"", "v"}};
	const Sigv4QueryParam null_name[] = {{NULL, "v"}};
	const Sigv4Header twice[] = {{"Range", "bytes=0-1"},
								 {"range", "bytes=2-3"}};
	const Sigv4Header host[] = {{"Host", "evil.example"}};
	const Sigv4Header date[] = {{"X-AMZ-DATE", EXAMPLE_DATE}};
	const Sigv4Header authorization[] = {{"Authorization", "x"}};
	const Sigv4Header bad_name[] = {{"bad name", "v"}};
	const Sigv4Header crlf[] = {{"x-amz-meta-a", "v\r\nx-evil: 1"}};
	const Sigv4Header null_value[] = {{"x-amz-meta-a", NULL}};
	size_t i;
	static const char *const bad_methods[] = {"", "get", "G ET", "GET\n"};
	static const char *const bad_hosts[] = {"", "a b", "a\r\nb", "h\xc3\xa9"};
	static const char *const bad_hashes[] = {
		"", "unsigned-payload",
		"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555"};
	static const char *const bad_dates[] = {"",
											"20130524",
											"20130524T000000",
											"20130524T000000Z ",
											"2013-05-24T00:00:00Z",
											"2013052AT000000Z"};

	for (i = 0; i < NELEMS(bad_methods); i++)
	{
		request = example_request("/k");
		request.method = bad_methods[i];
		CHECK(sign_status(&request) == SIGV4_ERR_BAD_METHOD);
	}
	for (i = 0; i < NELEMS(bad_hosts); i++)
	{
		request = example_request("/k");
		request.host = bad_hosts[i];
		CHECK(sign_status(&request) == SIGV4_ERR_BAD_HOST);
	}
	request = example_request("k");
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_PATH);
	request = example_request("");
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_PATH);

	request = example_request("/k");
	request.query = unnamed;
	request.nquery = 1;
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_QUERY);
	request.query = null_name;
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_QUERY);
	request.query = NULL;
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_QUERY);

	request = example_request("/k");
	request.nheaders = 2;
	request.headers = twice;
	CHECK(sign_status(&request) == SIGV4_ERR_DUPLICATE_HEADER);
	request.nheaders = 1;
	request.headers = host;
	CHECK(sign_status(&request) == SIGV4_ERR_DUPLICATE_HEADER);
	request.headers = date;
	CHECK(sign_status(&request) == SIGV4_ERR_DUPLICATE_HEADER);
	request.headers = authorization;
	CHECK(sign_status(&request) == SIGV4_ERR_DUPLICATE_HEADER);
	request.headers = bad_name;
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_HEADER);
	request.headers = crlf;
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_HEADER);
	request.headers = null_value;
	CHECK(sign_status(&request) == SIGV4_ERR_BAD_HEADER);

	for (i = 0; i < NELEMS(bad_hashes); i++)
	{
		request = example_request("/k");
		request.payload_sha256 = bad_hashes[i];
		CHECK(sign_status(&request) == SIGV4_ERR_BAD_PAYLOAD_HASH);
	}
	for (i = 0; i < NELEMS(bad_dates); i++)
	{
		request = example_request("/k");
		request.amz_date = bad_dates[i];
		CHECK(sign_status(&request) == SIGV4_ERR_BAD_DATE);
	}

	/* Unusable credentials, and a cleared signer. */
	CHECK(sigv4_signer_init(&signer, "", EXAMPLE_SECRET, NULL, "us-east-1",
							"s3") == SIGV4_ERR_BAD_CREDENTIALS);
	CHECK(sigv4_signer_init(&signer, "AKIA/X", EXAMPLE_SECRET, NULL,
							"us-east-1", "s3") == SIGV4_ERR_BAD_CREDENTIALS);
	CHECK(sigv4_signer_init(&signer, EXAMPLE_KEY_ID, "", NULL, "us-east-1",
							"s3") == SIGV4_ERR_BAD_CREDENTIALS);
	CHECK(sigv4_signer_init(&signer, EXAMPLE_KEY_ID, NULL, NULL, "us-east-1",
							"s3") == SIGV4_ERR_BAD_CREDENTIALS);
	CHECK(sigv4_signer_init(&signer, EXAMPLE_KEY_ID, EXAMPLE_SECRET, "tok\nen",
							"us-east-1", "s3") == SIGV4_ERR_BAD_CREDENTIALS);
	CHECK(sigv4_signer_init(&signer, EXAMPLE_KEY_ID, EXAMPLE_SECRET, NULL,
							"us east", "s3") == SIGV4_ERR_BAD_CREDENTIALS);
	CHECK(sigv4_signer_init(&signer, EXAMPLE_KEY_ID, EXAMPLE_SECRET, NULL,
							"us-east-1", "") == SIGV4_ERR_BAD_CREDENTIALS);
	request = example_request("/k");
	CHECK(sigv4_sign_request(&signer, &request, &out) ==
		  SIGV4_ERR_BAD_CREDENTIALS);
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);

	/* Every status has a message, and none is the fallback. */
	for (i = SIGV4_OK; i <= SIGV4_ERR_BAD_DATE; i++)
		CHECK(strcmp(sigv4_status_message((Sigv4Status) i),
					 "unknown SigV4 error") != 0);
}

int
main(void)
{
	test_aws_documentation_examples();
	test_uri_encode();
	test_canonical_headers();
	test_canonical_query();
	test_path_not_normalised();
	test_session_token();
	test_signing_key_cache();
	test_sha256();
	test_format_amz_date();
	test_rejected_requests();

	printf("test_sigv4: %d checks, %d failed\n", checks_run, checks_failed);
	return checks_failed == 0 ? 0 : 1;
}
