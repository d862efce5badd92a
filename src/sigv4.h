/*
 * sigv4.h
 *		AWS Signature Version 4 for Amazon S3 requests, on OpenSSL libcrypto.
 *
 * Standalone on purpose: no PostgreSQL header and no executor state, so the
 * same file is compiled into the extension and into the unit tests, the
 * botocore cross-check and the fuzzer under test/unit/sigv4/.  Nothing here
 * logs, and the secret access key leaves the signer only through HMAC.
 *
 * Typical use:
 *
 *		Sigv4Signer signer;
 *		Sigv4SignedRequest out;
 *
 *		sigv4_signer_init(&signer, key_id, secret, token_or_NULL,
 *						  "us-east-1", "s3");
 *		... fill a Sigv4Request; sigv4_sign_request(&signer, &req, &out);
 *		send  METHOD out.request_target  with headers Host, x-amz-date,
 *		x-amz-content-sha256, x-amz-security-token (if out.security_token),
 *		the extra headers of req, and Authorization: out.authorization
 *		sigv4_signed_request_free(&out);
 *		...
 *		sigv4_signer_clear(&signer);
 *
 * Every function returning Sigv4Status reports failure through it and never
 * aborts; sigv4_status_message() turns it into text fit for an error report.
 */
#ifndef REDSHIFT_FDW_SIGV4_H
#define REDSHIFT_FDW_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Lengths of the fixed-size strings, without the terminating NUL. */
#define SIGV4_SHA256_HEX_LEN 64
#define SIGV4_AMZ_DATE_LEN 16 /* YYYYMMDDTHHMMSSZ */

/* x-amz-content-sha256 values with a meaning of their own. */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SIGV4_EMPTY_PAYLOAD_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef enum Sigv4Status
{
	SIGV4_OK = 0,
	SIGV4_ERR_OUT_OF_MEMORY,
	/* libcrypto reported a failure */
	SIGV4_ERR_CRYPTO,
	/* key id, secret, session token, region or service unusable */
	SIGV4_ERR_BAD_CREDENTIALS,
	/* method not one or more of A-Z */
	SIGV4_ERR_BAD_METHOD,
	/* host empty, or not printable ASCII without spaces */
	SIGV4_ERR_BAD_HOST,
	/* path does not start with '/' */
	SIGV4_ERR_BAD_PATH,
	/* a query parameter without a name */
	SIGV4_ERR_BAD_QUERY,
	/* header name not an HTTP token, or a control byte in a value */
	SIGV4_ERR_BAD_HEADER,
	/* header given twice, or one the signer sets itself */
	SIGV4_ERR_DUPLICATE_HEADER,
	/* payload hash neither 64 lowercase hex digits nor UNSIGNED-PAYLOAD */
	SIGV4_ERR_BAD_PAYLOAD_HASH,
	/* date not YYYYMMDDTHHMMSSZ */
	SIGV4_ERR_BAD_DATE
} Sigv4Status;

/*
 * Who signs, for which region and service, with the cached signing key.
 * Owned by the caller (stack, palloc'd or static, as suits it); the fields
 * are private to sigv4.c.  The signing key depends on the secret, the day,
 * the region and the service; a signer fixes all but the day, so it caches
 * the key of the last day it signed for and derives a new one when the day
 * of a request differs.
 */
typedef struct Sigv4Signer
{
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL without temporary credentials */
	char *region;
	char *service;
	char key_date[9];			   /* YYYYMMDD of signing_key; "" if none */
	unsigned char signing_key[32]; /* HMAC-SHA256 output */
	unsigned long key_derivations; /* keys derived so far, for tests */
} Sigv4Signer;

/* A query parameter, unencoded; value NULL for a bare one like "uploads". */
typedef struct Sigv4QueryParam
{
	const char *name;
	const char *value;
} Sigv4QueryParam;

/* A header to sign and send, as it will be sent (any case, untrimmed). */
typedef struct Sigv4Header
{
	const char *name;
	const char *value;
} Sigv4Header;

/* The parts of a request that SigV4 covers. */
typedef struct Sigv4Request
{
	const char *method; /* "GET", "PUT", ... */
	const char *host;	/* Host header value, with ":port" when not default */
	const char *path;	/* unencoded, from '/': "/bucket/my key.txt" */
	const Sigv4QueryParam *query;
	size_t nquery;
	/*
	 * Extra headers to sign (content-md5, content-type, range, ...); not
	 * host, x-amz-date, x-amz-content-sha256, x-amz-security-token or
	 * authorization, which the signer provides.
	 */
	const Sigv4Header *headers;
	size_t nheaders;
	/* Lowercase hex SHA-256 of the body, or SIGV4_UNSIGNED_PAYLOAD. */
	const char *payload_sha256;
	const char *amz_date; /* YYYYMMDDTHHMMSSZ, see sigv4_format_amz_date */
} Sigv4Request;

/* What to send so that the request on the wire is the one signed. */
typedef struct Sigv4SignedRequest
{
	char *authorization;  /* Authorization header value */
	char *request_target; /* encoded path and query: "/b/my%20key?uploads" */
	char amz_date[SIGV4_AMZ_DATE_LEN + 1];		   /* x-amz-date value */
	char content_sha256[SIGV4_SHA256_HEX_LEN + 1]; /* x-amz-content-sha256 */
	/* x-amz-security-token value, or NULL; points into the signer. */
	const char *security_token;
} Sigv4SignedRequest;

/* Incremental SHA-256, for bodies streamed from files. */
typedef struct Sigv4Sha256
{
	void *md_ctx; /* EVP_MD_CTX, kept opaque to spare callers OpenSSL */
} Sigv4Sha256;

extern const char *sigv4_status_message(Sigv4Status status);

/*
 * Copies the credentials into the signer.  session_token NULL or "" means
 * none.  On failure the signer is left cleared.  Release with
 * sigv4_signer_clear, which also wipes the secret and the cached key.
 */
extern Sigv4Status sigv4_signer_init(Sigv4Signer *signer,
									 const char *access_key_id,
									 const char *secret_access_key,
									 const char *session_token,
									 const char *region, const char *service);
extern void sigv4_signer_clear(Sigv4Signer *signer);

/*
 * Signs a request.  On success the caller releases *result with
 * sigv4_signed_request_free; on failure *result holds nothing to release
 * (freeing it anyway is harmless).
 */
extern Sigv4Status sigv4_sign_request(Sigv4Signer *signer,
									  const Sigv4Request *request,
									  Sigv4SignedRequest *result);
extern void sigv4_signed_request_free(Sigv4SignedRequest *result);

/* The x-amz-date form of a time: UTC, YYYYMMDDTHHMMSSZ. */
extern Sigv4Status sigv4_format_amz_date(time_t when,
										 char out[SIGV4_AMZ_DATE_LEN + 1]);

/*
 * URI-encodes src_len bytes as SigV4 requires: A-Z a-z 0-9 - _ . ~ kept,
 * '/' kept when keep_slash (for paths), every other byte as %XX with
 * uppercase hex.  Writes at most dst_size bytes including a terminating
 * NUL, like snprintf, and returns the length of the whole encoding, so a
 * call with dst_size 0 measures.
 */
extern size_t sigv4_uri_encode(char *dst, size_t dst_size, const char *src,
							   size_t src_len, bool keep_slash);

/* Lowercase hex SHA-256 of a buffer. */
extern Sigv4Status sigv4_sha256_hex(const void *data, size_t len,
									char hex[SIGV4_SHA256_HEX_LEN + 1]);

/*
 * Incremental SHA-256: begin, update any number of times, then finish_hex,
 * which releases the state.  A caller that gives up before finishing calls
 * sigv4_sha256_abandon; abandoning a finished or failed hash is harmless.
 */
extern Sigv4Status sigv4_sha256_begin(Sigv4Sha256 *hash);
extern Sigv4Status sigv4_sha256_update(Sigv4Sha256 *hash, const void *data,
									   size_t len);
extern Sigv4Status sigv4_sha256_finish_hex(Sigv4Sha256 *hash,
										   char hex[SIGV4_SHA256_HEX_LEN + 1]);
extern void sigv4_sha256_abandon(Sigv4Sha256 *hash);

#endif /* REDSHIFT_FDW_SIGV4_H */
