/*
 * sigv4.c
 *		AWS Signature Version 4 for Amazon S3, on OpenSSL's libcrypto.
 *
 * S3 departs from the generic SigV4 rules in one way that matters: the
 * path is neither normalised nor double-encoded.  An object key may hold
 * "//", "." or ".." and is signed as it is, each byte encoded once.  The
 * signer therefore takes the unencoded path and query parameters and hands
 * back the encoded request target with the Authorization header, so what
 * goes on the wire is by construction what was signed.
 *
 * No PostgreSQL header is included: the file is compiled unchanged into
 * the unit tests, the botocore cross-check and the fuzzer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"

#define SHA256_LEN 32
#define ALGORITHM "AWS4-HMAC-SHA256"
#define SCOPE_TERMINATOR "aws4_request"
#define DATE_LEN 8 /* the YYYYMMDD that starts an amz_date */

/* HMAC takes an int key length; AWS secrets are 40 characters. */
#define MAX_SECRET_LEN 1024

/*
 * A growable string.  An append after a failed allocation is ignored and
 * remembered, so builders check for out-of-memory once at the end rather
 * than after every append.  The data may hold NULs; it is always
 * NUL-terminated once allocated.
 */
typedef struct TextBuf
{
	char *data;
	size_t len;
	size_t cap;
	bool oom;
} TextBuf;

/*
 * A header or query parameter in canonical form, for sorting.  The strings
 * live in a pool TextBuf, which may move while it grows, so they are
 * recorded as offsets and turned into pointers once the pool is complete.
 */
typedef struct CanonicalPair
{
	size_t name_at;
	size_t value_at;
	const char *name;
	const char *value;
} CanonicalPair;

/* Headers the signer adds itself, so a caller may not pass them. */
static const char *const signer_headers[] = {
	"authorization", "host", "x-amz-content-sha256", "x-amz-date",
	"x-amz-security-token"};

/* Makes room for extra more bytes plus a NUL; false once out of memory. */
static bool
buf_reserve(TextBuf *buf, size_t extra)
{
	size_t need;
	size_t new_cap;
	char *grown;

	if (buf->oom)
		return false;
	if (extra > SIZE_MAX - buf->len - 1)
	{
		buf->oom = true;
		return false;
	}
	need = buf->len + extra + 1;
	if (need <= buf->cap)
		return true;
	new_cap = buf->cap > 0 ? buf->cap : 256;
	while (new_cap < need)
		new_cap = new_cap > SIZE_MAX / 2 ? need : new_cap * 2;
	grown = realloc(buf->data, new_cap);
	if (grown == NULL)
	{
		buf->oom = true;
		return false;
	}
	buf->data = grown;
	buf->cap = new_cap;
	return true;
}

/* Appends len bytes. */
static void
buf_append(TextBuf *buf, const char *bytes, size_t len)
{
	if (!buf_reserve(buf, len))
		return;
	memcpy(buf->data + buf->len, bytes, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
}

/* Appends a NUL-terminated string. */
static void
buf_append_str(TextBuf *buf, const char *str)
{
	buf_append(buf, str, strlen(str));
}

/* Appends one byte (a NUL too, to end a string inside a pool). */
static void
buf_append_char(TextBuf *buf, char c)
{
	buf_append(buf, &c, 1);
}

/* Appends bytes URI-encoded, see sigv4_uri_encode. */
static void
buf_append_uri_encoded(TextBuf *buf, const char *bytes, size_t len,
					   bool keep_slash)
{
	size_t encoded_len = sigv4_uri_encode(NULL, 0, bytes, len, keep_slash);

	if (!buf_reserve(buf, encoded_len))
		return;
	sigv4_uri_encode(buf->data + buf->len, encoded_len + 1, bytes, len,
					 keep_slash);
	buf->len += encoded_len;
}

/*
 * Appends a header value as SigV4 canonicalises it: leading and trailing
 * blanks dropped and each inner run of blanks replaced by one space, so
 * the signature survives proxies that reformat whitespace.
 */
static void
buf_append_trimmed(TextBuf *buf, const char *value)
{
	size_t start = buf->len;
	bool blank_pending = false;
	const char *p;

	for (p = value; *p != '\0'; p++)
	{
		if (*p == ' ' || *p == '\t')
		{
			blank_pending = buf->len > start;
			continue;
		}
		if (blank_pending)
			buf_append_char(buf, ' ');
		blank_pending = false;
		buf_append_char(buf, *p);
	}
}

/*
 * ASCII lowercasing: header names are ASCII tokens, and tolower() would
 * depend on the locale.
 */
static char
ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c;
}

/* Appends a header name lowercased, as canonical headers want it. */
static void
buf_append_lower(TextBuf *buf, const char *str)
{
	const char *p;

	for (p = str; *p != '\0'; p++)
		buf_append_char(buf, ascii_lower(*p));
}

/* Hands the buffer's string to the caller, who frees it. */
static char *
buf_detach(TextBuf *buf)
{
	char *data = buf->data;

	buf->data = NULL;
	buf->len = buf->cap = 0;
	return data;
}

/* Releases the buffer. */
static void
buf_free(TextBuf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

/*
 * The characters SigV4 leaves unencoded (RFC 3986 "unreserved").  Tested
 * by range rather than isalnum(), which depends on the locale.
 */
static bool
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		   (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
		   c == '~';
}

/* RFC 9110 token characters, the only ones allowed in a header name. */
static bool
is_token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		   (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/*
 * A header value may hold any byte but controls other than tab: a CR or
 * LF would let a value end the header and start another one.
 */
static bool
is_valid_header_value(const char *value)
{
	const unsigned char *p;

	for (p = (const unsigned char *) value; *p != '\0'; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

/*
 * Credential parts end up between '/' in the credential scope and inside
 * the comma-separated Authorization header, so those separators, blanks
 * and controls would corrupt it.
 */
static bool
is_valid_scope_part(const char *part)
{
	const unsigned char *p;

	if (part == NULL || *part == '\0')
		return false;
	for (p = (const unsigned char *) part; *p != '\0'; p++)
		if (*p <= 0x20 || *p == 0x7f || *p == '/' || *p == ',')
			return false;
	return true;
}

/* Is the header one the signer sets itself (case-insensitively)? */
static bool
is_signer_header(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(signer_headers) / sizeof(signer_headers[0]); i++)
	{
		const char *reserved = signer_headers[i];
		const char *p = name;

		while (*p != '\0' && ascii_lower(*p) == *reserved)
		{
			p++;
			reserved++;
		}
		if (*p == '\0' && *reserved == '\0')
			return true;
	}
	return false;
}

/* Writes len bytes as lowercase hex plus a NUL. */
static void
hex_encode(const unsigned char *bytes, size_t len, char *hex)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++)
	{
		hex[2 * i] = digits[bytes[i] >> 4];
		hex[2 * i + 1] = digits[bytes[i] & 0x0f];
	}
	hex[2 * len] = '\0';
}

/* HMAC-SHA256, the only MAC SigV4 uses. */
static bool
hmac_sha256(const void *key, size_t key_len, const void *data, size_t data_len,
			unsigned char out[SHA256_LEN])
{
	unsigned int out_len = 0;

	return HMAC(EVP_sha256(), key, (int) key_len, data, data_len, out,
				&out_len) != NULL &&
		   out_len == SHA256_LEN;
}

/*
 * Derives the signing key: HMAC chain from "AWS4" + secret through the
 * date, region, service and "aws4_request".  Intermediate keys are as good
 * as the secret for that day, so they are wiped.
 */
static Sigv4Status
derive_signing_key(const Sigv4Signer *signer, const char *date,
				   unsigned char key[SHA256_LEN])
{
	unsigned char secret_key[4 + MAX_SECRET_LEN];
	unsigned char date_key[SHA256_LEN];
	unsigned char region_key[SHA256_LEN];
	unsigned char service_key[SHA256_LEN];
	size_t secret_len = strlen(signer->secret_access_key);
	bool ok;

	memcpy(secret_key, "AWS4", 4);
	memcpy(secret_key + 4, signer->secret_access_key, secret_len);
	ok = hmac_sha256(secret_key, 4 + secret_len, date, DATE_LEN, date_key) &&
		 hmac_sha256(date_key, SHA256_LEN, signer->region,
					 strlen(signer->region), region_key) &&
		 hmac_sha256(region_key, SHA256_LEN, signer->service,
					 strlen(signer->service), service_key) &&
		 hmac_sha256(service_key, SHA256_LEN, SCOPE_TERMINATOR,
					 strlen(SCOPE_TERMINATOR), key);
	OPENSSL_cleanse(secret_key, sizeof(secret_key));
	OPENSSL_cleanse(date_key, sizeof(date_key));
	OPENSSL_cleanse(region_key, sizeof(region_key));
	OPENSSL_cleanse(service_key, sizeof(service_key));
	return ok ? SIGV4_OK : SIGV4_ERR_CRYPTO;
}

/*
 * The signing key for the day of amz_date: the cached one when the signer
 * last derived it for that day, else a fresh one, which replaces it.
 */
static Sigv4Status
signing_key_for(Sigv4Signer *signer, const char *amz_date,
				const unsigned char **key)
{
	Sigv4Status status;

	if (signer->key_date[0] != '\0' &&
		memcmp(signer->key_date, amz_date, DATE_LEN) == 0)
	{
		*key = signer->signing_key;
		return SIGV4_OK;
	}
	signer->key_date[0] = '\0';
	status = derive_signing_key(signer, amz_date, signer->signing_key);
	if (status != SIGV4_OK)
		return status;
	memcpy(signer->key_date, amz_date, DATE_LEN);
	signer->key_date[DATE_LEN] = '\0';
	signer->key_derivations++;
	*key = signer->signing_key;
	return SIGV4_OK;
}

/* Is it YYYYMMDDTHHMMSSZ (digits in place; the calendar is S3's to judge)? */
static bool
is_valid_amz_date(const char *amz_date)
{
	static const char pattern[] = "99999999T999999Z";
	size_t i;

	for (i = 0; i < SIGV4_AMZ_DATE_LEN; i++)
	{
		char c = amz_date[i];

		if (pattern[i] == '9' ? !(c >= '0' && c <= '9') : c != pattern[i])
			return false;
	}
	return amz_date[SIGV4_AMZ_DATE_LEN] == '\0';
}

/* Is it 64 lowercase hex digits or the literal UNSIGNED-PAYLOAD? */
static bool
is_valid_payload_hash(const char *hash)
{
	size_t i;

	if (strcmp(hash, SIGV4_UNSIGNED_PAYLOAD) == 0)
		return true;
	for (i = 0; i < SIGV4_SHA256_HEX_LEN; i++)
		if (!((hash[i] >= '0' && hash[i] <= '9') ||
			  (hash[i] >= 'a' && hash[i] <= 'f')))
			return false;
	return hash[SIGV4_SHA256_HEX_LEN] == '\0';
}

/*
 * Rejects what would make the request unsignable or let a value escape its
 * place on the wire, before any work is done.
 */
static Sigv4Status
validate_request(const Sigv4Signer *signer, const Sigv4Request *request)
{
	const unsigned char *p;
	size_t i;

	if (signer->access_key_id == NULL) /* cleared, or init failed */
		return SIGV4_ERR_BAD_CREDENTIALS;
	if (request->method == NULL || request->method[0] == '\0')
		return SIGV4_ERR_BAD_METHOD;
	for (p = (const unsigned char *) request->method; *p != '\0'; p++)
		if (*p < 'A' || *p > 'Z')
			return SIGV4_ERR_BAD_METHOD;
	if (request->host == NULL || request->host[0] == '\0')
		return SIGV4_ERR_BAD_HOST;
	for (p = (const unsigned char *) request->host; *p != '\0'; p++)
		if (*p <= 0x20 || *p >= 0x7f)
			return SIGV4_ERR_BAD_HOST;
	if (request->path == NULL || request->path[0] != '/')
		return SIGV4_ERR_BAD_PATH;
	if (request->nquery > 0 && request->query == NULL)
		return SIGV4_ERR_BAD_QUERY;
	for (i = 0; i < request->nquery; i++)
		if (request->query[i].name == NULL ||
			request->query[i].name[0] == '\0')
			return SIGV4_ERR_BAD_QUERY;
	if (request->nheaders > 0 && request->headers == NULL)
		return SIGV4_ERR_BAD_HEADER;
	for (i = 0; i < request->nheaders; i++)
	{
		const Sigv4Header *header = &request->headers[i];

		if (header->name == NULL || header->name[0] == '\0' ||
			header->value == NULL || !is_valid_header_value(header->value))
			return SIGV4_ERR_BAD_HEADER;
		for (p = (const unsigned char *) header->name; *p != '\0'; p++)
			if (!is_token_char(*p))
				return SIGV4_ERR_BAD_HEADER;
		if (is_signer_header(header->name))
			return SIGV4_ERR_DUPLICATE_HEADER;
	}
	if (request->payload_sha256 == NULL ||
		!is_valid_payload_hash(request->payload_sha256))
		return SIGV4_ERR_BAD_PAYLOAD_HASH;
	if (request->amz_date == NULL || !is_valid_amz_date(request->amz_date))
		return SIGV4_ERR_BAD_DATE;
	return SIGV4_OK;
}

/* qsort order of canonical pairs: by name, then by value. */
static int
compare_pairs(const void *a, const void *b)
{
	const CanonicalPair *left = a;
	const CanonicalPair *right = b;
	int by_name = strcmp(left->name, right->name);

	return by_name != 0 ? by_name : strcmp(left->value, right->value);
}

/*
 * Points the pairs into the finished pool and sorts them, as both the
 * canonical query string and the canonical headers are sorted.
 */
static void
resolve_and_sort_pairs(CanonicalPair *pairs, size_t npairs,
					   const TextBuf *pool)
{
	size_t i;

	for (i = 0; i < npairs; i++)
	{
		pairs[i].name = pool->data + pairs[i].name_at;
		pairs[i].value = pool->data + pairs[i].value_at;
	}
	qsort(pairs, npairs, sizeof(CanonicalPair), compare_pairs);
}

/*
 * Appends the canonical query string: names and values URI-encoded ('/'
 * included), sorted by name then value, a bare parameter as "name=".
 */
static Sigv4Status
append_canonical_query(TextBuf *out, const Sigv4Request *request)
{
	CanonicalPair *pairs;
	TextBuf pool = {0};
	size_t i;
	Sigv4Status status = SIGV4_OK;

	if (request->nquery == 0)
		return SIGV4_OK;
	pairs = calloc(request->nquery, sizeof(CanonicalPair));
	if (pairs == NULL)
		return SIGV4_ERR_OUT_OF_MEMORY;
	for (i = 0; i < request->nquery; i++)
	{
		const Sigv4QueryParam *param = &request->query[i];
		const char *value = param->value != NULL ? param->value : "";

		pairs[i].name_at = pool.len;
		buf_append_uri_encoded(&pool, param->name, strlen(param->name), false);
		buf_append_char(&pool, '\0');
		pairs[i].value_at = pool.len;
		buf_append_uri_encoded(&pool, value, strlen(value), false);
		buf_append_char(&pool, '\0');
	}
	if (pool.oom)
		status = SIGV4_ERR_OUT_OF_MEMORY;
	else
	{
		resolve_and_sort_pairs(pairs, request->nquery, &pool);
		for (i = 0; i < request->nquery; i++)
		{
			if (i > 0)
				buf_append_char(out, '&');
			buf_append_str(out, pairs[i].name);
			buf_append_char(out, '=');
			buf_append_str(out, pairs[i].value);
		}
	}
	free(pairs);
	buf_free(&pool);
	return status;
}

/* Adds one header, name lowercased and value trimmed, to the pool. */
static void
add_canonical_header(CanonicalPair *pair, TextBuf *pool, const char *name,
					 const char *value)
{
	pair->name_at = pool->len;
	buf_append_lower(pool, name);
	buf_append_char(pool, '\0');
	pair->value_at = pool->len;
	buf_append_trimmed(pool, value);
	buf_append_char(pool, '\0');
}

/*
 * Appends the canonical headers block (each "name:value\n", sorted) and
 * writes the signed headers list ("host;range;...") to signed_headers.
 * The headers are the caller's extra ones plus those the signer provides.
 */
static Sigv4Status
append_canonical_headers(TextBuf *out, TextBuf *signed_headers,
						 const Sigv4Signer *signer,
						 const Sigv4Request *request)
{
	CanonicalPair *pairs;
	TextBuf pool = {0};
	size_t npairs = 0;
	size_t i;
	Sigv4Status status = SIGV4_OK;

	pairs = calloc(request->nheaders + 4, sizeof(CanonicalPair));
	if (pairs == NULL)
		return SIGV4_ERR_OUT_OF_MEMORY;
	add_canonical_header(&pairs[npairs++], &pool, "host", request->host);
	add_canonical_header(&pairs[npairs++], &pool, "x-amz-content-sha256",
						 request->payload_sha256);
	add_canonical_header(&pairs[npairs++], &pool, "x-amz-date",
						 request->amz_date);
	if (signer->session_token != NULL)
		add_canonical_header(&pairs[npairs++], &pool, "x-amz-security-token",
							 signer->session_token);
	for (i = 0; i < request->nheaders; i++)
		add_canonical_header(&pairs[npairs++], &pool, request->headers[i].name,
							 request->headers[i].value);
	if (pool.oom)
		status = SIGV4_ERR_OUT_OF_MEMORY;
	else
	{
		resolve_and_sort_pairs(pairs, npairs, &pool);
		for (i = 0; i < npairs; i++)
		{
			/* Sorted, so a header given twice shows up as a neighbour. */
			if (i > 0 && strcmp(pairs[i - 1].name, pairs[i].name) == 0)
			{
				status = SIGV4_ERR_DUPLICATE_HEADER;
				break;
			}
			buf_append_str(out, pairs[i].name);
			buf_append_char(out, ':');
			buf_append_str(out, pairs[i].value);
			buf_append_char(out, '\n');
			if (i > 0)
				buf_append_char(signed_headers, ';');
			buf_append_str(signed_headers, pairs[i].name);
		}
		if (status == SIGV4_OK && signed_headers->oom)
			status = SIGV4_ERR_OUT_OF_MEMORY;
	}
	free(pairs);
	buf_free(&pool);
	return status;
}

/*
 * Builds the canonical request:
 *	METHOD \n URI \n QUERY \n HEADERS \n \n SIGNED-HEADERS \n PAYLOAD-HASH
 * and the signed headers list the Authorization header repeats.
 */
static Sigv4Status
build_canonical_request(TextBuf *canonical, TextBuf *signed_headers,
						const Sigv4Signer *signer, const Sigv4Request *request)
{
	Sigv4Status status;

	buf_append_str(canonical, request->method);
	buf_append_char(canonical, '\n');
	buf_append_uri_encoded(canonical, request->path, strlen(request->path),
						   true);
	buf_append_char(canonical, '\n');
	status = append_canonical_query(canonical, request);
	if (status != SIGV4_OK)
		return status;
	buf_append_char(canonical, '\n');
	status =
		append_canonical_headers(canonical, signed_headers, signer, request);
	if (status != SIGV4_OK)
		return status;
	buf_append_char(canonical, '\n');
	buf_append_str(canonical, signed_headers->data);
	buf_append_char(canonical, '\n');
	buf_append_str(canonical, request->payload_sha256);
	if (canonical->oom)
		return SIGV4_ERR_OUT_OF_MEMORY;
	return SIGV4_OK;
}

/* Appends the credential scope: YYYYMMDD/region/service/aws4_request. */
static void
append_credential_scope(TextBuf *out, const Sigv4Signer *signer,
						const char *amz_date)
{
	buf_append(out, amz_date, DATE_LEN);
	buf_append_char(out, '/');
	buf_append_str(out, signer->region);
	buf_append_char(out, '/');
	buf_append_str(out, signer->service);
	buf_append_char(out, '/');
	buf_append_str(out, SCOPE_TERMINATOR);
}

/*
 * Appends the request target to send: the path encoded as it was signed,
 * then the parameters in the caller's order, a bare one without '=' as S3
 * documents subresources such as "?uploads".
 */
static void
append_request_target(TextBuf *out, const Sigv4Request *request)
{
	size_t i;

	buf_append_uri_encoded(out, request->path, strlen(request->path), true);
	for (i = 0; i < request->nquery; i++)
	{
		const Sigv4QueryParam *param = &request->query[i];

		buf_append_char(out, i == 0 ? '?' : '&');
		buf_append_uri_encoded(out, param->name, strlen(param->name), false);
		if (param->value != NULL)
		{
			buf_append_char(out, '=');
			buf_append_uri_encoded(out, param->value, strlen(param->value),
								   false);
		}
	}
}

/*
 * Signs the string to sign derived from the canonical request, writing the
 * hex signature.
 */
static Sigv4Status
compute_signature(Sigv4Signer *signer, const Sigv4Request *request,
				  const TextBuf *canonical,
				  char signature[SIGV4_SHA256_HEX_LEN + 1])
{
	char canonical_hash[SIGV4_SHA256_HEX_LEN + 1];
	unsigned char mac[SHA256_LEN];
	const unsigned char *key;
	TextBuf string_to_sign = {0};
	Sigv4Status status;

	status = sigv4_sha256_hex(canonical->data, canonical->len, canonical_hash);
	if (status != SIGV4_OK)
		return status;
	buf_append_str(&string_to_sign, ALGORITHM "\n");
	buf_append_str(&string_to_sign, request->amz_date);
	buf_append_char(&string_to_sign, '\n');
	append_credential_scope(&string_to_sign, signer, request->amz_date);
	buf_append_char(&string_to_sign, '\n');
	buf_append_str(&string_to_sign, canonical_hash);
	if (string_to_sign.oom)
		status = SIGV4_ERR_OUT_OF_MEMORY;
	else
		status = signing_key_for(signer, request->amz_date, &key);
	if (status == SIGV4_OK)
	{
		if (hmac_sha256(key, SHA256_LEN, string_to_sign.data,
						string_to_sign.len, mac))
			hex_encode(mac, SHA256_LEN, signature);
		else
			status = SIGV4_ERR_CRYPTO;
	}
	buf_free(&string_to_sign);
	return status;
}

/*
 * Public entry points
 */

/* Text for a status, fit for an error message; never mentions secrets. */
const char *
sigv4_status_message(Sigv4Status status)
{
	switch (status)
	{
		case SIGV4_OK:
			return "success";
		case SIGV4_ERR_OUT_OF_MEMORY:
			return "out of memory";
		case SIGV4_ERR_CRYPTO:
			return "OpenSSL failed to compute a hash";
		case SIGV4_ERR_BAD_CREDENTIALS:
			return "invalid AWS credentials, region or service";
		case SIGV4_ERR_BAD_METHOD:
			return "invalid HTTP method";
		case SIGV4_ERR_BAD_HOST:
			return "invalid host";
		case SIGV4_ERR_BAD_PATH:
			return "request path does not start with \"/\"";
		case SIGV4_ERR_BAD_QUERY:
			return "query parameter without a name";
		case SIGV4_ERR_BAD_HEADER:
			return "invalid header name or value";
		case SIGV4_ERR_DUPLICATE_HEADER:
			return "header given twice or set by the signer itself";
		case SIGV4_ERR_BAD_PAYLOAD_HASH:
			return "payload hash is neither a SHA-256 hex digest nor "
				   "UNSIGNED-PAYLOAD";
		case SIGV4_ERR_BAD_DATE:
			return "date is not in the form YYYYMMDDTHHMMSSZ";
	}
	return "unknown SigV4 error";
}

/* Validates and copies the credentials; see sigv4.h. */
Sigv4Status
sigv4_signer_init(Sigv4Signer *signer, const char *access_key_id,
				  const char *secret_access_key, const char *session_token,
				  const char *region, const char *service)
{
	memset(signer, 0, sizeof(*signer));
	if (!is_valid_scope_part(access_key_id) || !is_valid_scope_part(region) ||
		!is_valid_scope_part(service) || secret_access_key == NULL ||
		secret_access_key[0] == '\0' ||
		strlen(secret_access_key) > MAX_SECRET_LEN ||
		(session_token != NULL && !is_valid_header_value(session_token)))
		return SIGV4_ERR_BAD_CREDENTIALS;

	signer->access_key_id = strdup(access_key_id);
	signer->secret_access_key = strdup(secret_access_key);
	signer->region = strdup(region);
	signer->service = strdup(service);
	if (session_token != NULL && session_token[0] != '\0')
	{
		signer->session_token = strdup(session_token);
		if (signer->session_token == NULL)
			goto out_of_memory;
	}
	if (signer->access_key_id == NULL || signer->secret_access_key == NULL ||
		signer->region == NULL || signer->service == NULL)
		goto out_of_memory;
	return SIGV4_OK;

out_of_memory:
	sigv4_signer_clear(signer);
	return SIGV4_ERR_OUT_OF_MEMORY;
}

/* Wipes the secret and the cached key, and frees the copies. */
void
sigv4_signer_clear(Sigv4Signer *signer)
{
	if (signer->secret_access_key != NULL)
		OPENSSL_cleanse(signer->secret_access_key,
						strlen(signer->secret_access_key));
	free(signer->access_key_id);
	free(signer->secret_access_key);
	free(signer->session_token);
	free(signer->region);
	free(signer->service);
	OPENSSL_cleanse(signer->signing_key, sizeof(signer->signing_key));
	memset(signer, 0, sizeof(*signer));
}

/* Signs a request; see sigv4.h. */
Sigv4Status
sigv4_sign_request(Sigv4Signer *signer, const Sigv4Request *request,
				   Sigv4SignedRequest *result)
{
	TextBuf canonical = {0};
	TextBuf signed_headers = {0};
	TextBuf authorization = {0};
	TextBuf target = {0};
	char signature[SIGV4_SHA256_HEX_LEN + 1];
	Sigv4Status status;

	memset(result, 0, sizeof(*result));
	status = validate_request(signer, request);
	if (status == SIGV4_OK)
		status = build_canonical_request(&canonical, &signed_headers, signer,
										 request);
	if (status == SIGV4_OK)
		status = compute_signature(signer, request, &canonical, signature);
	if (status == SIGV4_OK)
	{
		buf_append_str(&authorization, ALGORITHM " Credential=");
		buf_append_str(&authorization, signer->access_key_id);
		buf_append_char(&authorization, '/');
		append_credential_scope(&authorization, signer, request->amz_date);
		buf_append_str(&authorization, ", SignedHeaders=");
		buf_append_str(&authorization, signed_headers.data);
		buf_append_str(&authorization, ", Signature=");
		buf_append_str(&authorization, signature);
		append_request_target(&target, request);
		if (authorization.oom || target.oom)
			status = SIGV4_ERR_OUT_OF_MEMORY;
	}
	if (status == SIGV4_OK)
	{
		result->authorization = buf_detach(&authorization);
		result->request_target = buf_detach(&target);
		strcpy(result->amz_date, request->amz_date);
		strcpy(result->content_sha256, request->payload_sha256);
		result->security_token = signer->session_token;
	}
	buf_free(&canonical);
	buf_free(&signed_headers);
	buf_free(&authorization);
	buf_free(&target);
	return status;
}

/* Frees what sigv4_sign_request returned. */
void
sigv4_signed_request_free(Sigv4SignedRequest *result)
{
	free(result->authorization);
	free(result->request_target);
	memset(result, 0, sizeof(*result));
}

/* Formats a time as an x-amz-date. */
Sigv4Status
sigv4_format_amz_date(time_t when, char out[SIGV4_AMZ_DATE_LEN + 1])
{
	struct tm utc;

	if (gmtime_r(&when, &utc) == NULL ||
		strftime(out, SIGV4_AMZ_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &utc) !=
			SIGV4_AMZ_DATE_LEN)
		return SIGV4_ERR_BAD_DATE;
	return SIGV4_OK;
}

/* URI-encodes bytes; see sigv4.h. */
size_t
sigv4_uri_encode(char *dst, size_t dst_size, const char *src, size_t src_len,
				 bool keep_slash)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t out_len = 0;
	size_t i;

	for (i = 0; i < src_len; i++)
	{
		unsigned char c = (unsigned char) src[i];
		char piece[3];
		size_t piece_len;
		size_t j;

		if (is_unreserved(c) || (keep_slash && c == '/'))
		{
			piece[0] = (char) c;
			piece_len = 1;
		}
		else
		{
			piece[0] = '%';
			piece[1] = digits[c >> 4];
			piece[2] = digits[c & 0x0f];
			piece_len = 3;
		}
		for (j = 0; j < piece_len; j++, out_len++)
			if (out_len + 1 < dst_size)
				dst[out_len] = piece[j];
	}
	if (dst_size > 0)
		dst[out_len < dst_size ? out_len : dst_size - 1] = '\0';
	return out_len;
}

/* One-shot SHA-256 in hex. */
Sigv4Status
sigv4_sha256_hex(const void *data, size_t len,
				 char hex[SIGV4_SHA256_HEX_LEN + 1])
{
	unsigned char digest[SHA256_LEN];
	unsigned int digest_len = 0;

	if (EVP_Digest(data, len, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
		digest_len != SHA256_LEN)
		return SIGV4_ERR_CRYPTO;
	hex_encode(digest, SHA256_LEN, hex);
	return SIGV4_OK;
}

/* Starts an incremental SHA-256. */
Sigv4Status
sigv4_sha256_begin(Sigv4Sha256 *hash)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	hash->md_ctx = NULL;
	if (ctx == NULL)
		return SIGV4_ERR_OUT_OF_MEMORY;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
	{
		EVP_MD_CTX_free(ctx);
		return SIGV4_ERR_CRYPTO;
	}
	hash->md_ctx = ctx;
	return SIGV4_OK;
}

/* Feeds bytes to an incremental SHA-256; a failure releases the state. */
Sigv4Status
sigv4_sha256_update(Sigv4Sha256 *hash, const void *data, size_t len)
{
	if (hash->md_ctx == NULL)
		return SIGV4_ERR_CRYPTO;
	if (EVP_DigestUpdate(hash->md_ctx, data, len) != 1)
	{
		sigv4_sha256_abandon(hash);
		return SIGV4_ERR_CRYPTO;
	}
	return SIGV4_OK;
}

/* Ends an incremental SHA-256 with its hex digest, releasing the state. */
Sigv4Status
sigv4_sha256_finish_hex(Sigv4Sha256 *hash, char hex[SIGV4_SHA256_HEX_LEN + 1])
{
	unsigned char digest[SHA256_LEN];
	unsigned int digest_len = 0;
	bool ok;

	if (hash->md_ctx == NULL)
		return SIGV4_ERR_CRYPTO;
	ok = EVP_DigestFinal_ex(hash->md_ctx, digest, &digest_len) == 1 &&
		 digest_len == SHA256_LEN;
	sigv4_sha256_abandon(hash);
	if (!ok)
		return SIGV4_ERR_CRYPTO;
	hex_encode(digest, SHA256_LEN, hex);
	return SIGV4_OK;
}

/* Releases an incremental SHA-256 without a result. */
void
sigv4_sha256_abandon(Sigv4Sha256 *hash)
{
	EVP_MD_CTX_free(hash->md_ctx);
	hash->md_ctx = NULL;
}
