/*
 * s3.c
 *		S3 operations over libcurl: PutObject (multipart for large files),
 *		GetObject, ListObjectsV2, DeleteObjects, HeadBucket.
 *
 * libcurl only moves bytes.  Requests are signed by sigv4.c with the
 * SHA-256 of their body, which is always in memory and bounded: a small
 * object, one part of S3_PART_SIZE, or an XML document.  Large files go up
 * in parts, UPLOAD_CONCURRENCY at a time, so memory stays below
 * S3_PART_SIZE * UPLOAD_CONCURRENCY whatever the file size.
 *
 * Waits: the curl multi handle's sockets and the process latch go into one
 * WaitEventSet, so Ctrl-C, statement_timeout and pg_terminate_backend
 * interrupt a transfer at once.  Curl callbacks never call ereport: they
 * copy bytes and flag failures, which are reported after curl returns.
 * Every curl handle is released on every path: by the request runner on
 * error, and by a memory context callback for the client itself.
 *
 * Retries: 5xx, 429, SlowDown, RequestTimeout and broken connections are
 * retried with exponential backoff and jitter, at most MAX_ATTEMPTS times;
 * other 4xx fail at once with S3's error code, message and a hint.
 */
#include "postgres.h"

#include <curl/curl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/md5.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "aws_credentials.h"
#include "option.h"
#include "s3.h"
#include "sigv4.h"

#define MAX_ATTEMPTS 6
#define BACKOFF_BASE_MS 100
#define BACKOFF_CAP_MS 5000
#define UPLOAD_CONCURRENCY 4
#define MAX_RESPONSE_BYTES (64 * 1024 * 1024)
#define DELETE_BATCH 1000

struct S3Client
{
	char *scheme;		 /* "http" or "https" */
	char *endpoint_host; /* host[:port] */
	char *bucket;
	char *region;
	char *prefix; /* no leading or trailing '/'; may be "" */
	bool path_style;
	const char *credential_source;
	Sigv4Signer signer; /* malloc'd inside: cleared by the callback */
	CURLM *multi;
	MemoryContextCallback cleanup;
};

/* One HTTP exchange, possibly attempted several times. */
typedef struct S3Request
{
	S3Client *client;
	const char *method;
	const char *key; /* full object key; NULL for the bucket itself */
	Sigv4QueryParam query[4];
	int nquery;
	const char *content_md5; /* base64, or NULL */
	const char *body;
	size_t body_len;
	size_t body_pos;
	char body_sha256[SIGV4_SHA256_HEX_LEN + 1];
	FILE *sink; /* response body to a file, else to memory */
	bool sink_failed;
	char *response; /* malloc'd; freed with the request */
	size_t response_len;
	size_t response_cap;
	bool response_too_big;
	char etag[128];
	long status;
	CURLcode curl_result;
	char errbuf[CURL_ERROR_SIZE];
	CURL *easy;
	struct curl_slist *headers;
	int attempts;
	TimestampTz retry_at; /* waiting to retry when nonzero */
	bool done;
	bool failed;
} S3Request;

static bool curl_initialized = false;

/* ------------------------------------------------------------------ */
/* curl callbacks: copy bytes, never ereport                           */

/* Feed the request body to curl (PUT). */
static size_t
read_body(char *buffer, size_t size, size_t nitems, void *arg)
{
	S3Request *req = (S3Request *) arg;
	size_t n = Min(size * nitems, req->body_len - req->body_pos);

	memcpy(buffer, req->body + req->body_pos, n);
	req->body_pos += n;
	return n;
}

/* Take the response body: into the sink file, or into memory. */
static size_t
write_body(char *data, size_t size, size_t nitems, void *arg)
{
	S3Request *req = (S3Request *) arg;
	size_t n = size * nitems;

	if (req->sink && req->status < 300)
	{
		if (fwrite(data, 1, n, req->sink) != n)
		{
			req->sink_failed = true;
			return 0;
		}
		return n;
	}
	if (req->response_len + n + 1 > req->response_cap)
	{
		size_t cap = Max(req->response_cap * 2, req->response_len + n + 1);
		char *grown;

		if (cap > MAX_RESPONSE_BYTES)
		{
			req->response_too_big = true;
			return 0;
		}
		grown = realloc(req->response, Max(cap, 4096));
		if (grown == NULL)
		{
			req->response_too_big = true;
			return 0;
		}
		req->response = grown;
		req->response_cap = Max(cap, 4096);
	}
	memcpy(req->response + req->response_len, data, n);
	req->response_len += n;
	req->response[req->response_len] = '\0';
	return n;
}

/* Note the status line and the ETag header. */
static size_t
read_header(char *line, size_t size, size_t nitems, void *arg)
{
	S3Request *req = (S3Request *) arg;
	size_t n = size * nitems;

	if (n > 5 && pg_strncasecmp(line, "HTTP/", 5) == 0)
	{
		const char *sp = memchr(line, ' ', n);

		if (sp)
			req->status = strtol(sp + 1, NULL, 10);
	}
	else if (n > 5 && pg_strncasecmp(line, "etag:", 5) == 0)
	{
		size_t start = 5;
		size_t end = n;

		while (start < n && line[start] == ' ')
			start++;
		while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n'))
			end--;
		if (end - start < sizeof(req->etag))
		{
			memcpy(req->etag, line + start, end - start);
			req->etag[end - start] = '\0';
		}
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* client                                                              */

/*
 * Release what the client holds outside palloc: the curl multi handle and
 * the signer's copies of the credentials.
 */
static void
client_cleanup(void *arg)
{
	S3Client *client = (S3Client *) arg;

	if (client->multi)
		curl_multi_cleanup(client->multi);
	client->multi = NULL;
	sigv4_signer_clear(&client->signer);
}

/*
 * Does the server have what S3 staging needs (a bucket, directly or from
 * the environment)?
 */
bool
s3_server_configured(ForeignServer *server)
{
	return redshift_option_string(server->options, "s3_bucket") != NULL ||
		   getenv("AWS_S3_BUCKET_NAME") != NULL;
}

/*
 * A client for a server's bucket with the user mapping's credentials
 * (credential chain in aws_credentials.c).  Lives in the current memory
 * context.
 */
S3Client *
s3_client_create(ForeignServer *server, UserMapping *user)
{
	S3Client *client = palloc0(sizeof(S3Client));
	char *endpoint = redshift_option_string(server->options, "s3_endpoint");
	char *addressing =
		redshift_option_string(server->options, "s3_addressing");
	char *prefix = redshift_option_string(server->options, "s3_prefix");
	AwsCredentials creds;
	Sigv4Status status;

	if (!curl_initialized)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR),
							errmsg("could not initialize libcurl")));
		curl_initialized = true;
	}
	client->bucket = aws_resolve_bucket(server);
	client->region = aws_resolve_region(server);
	if (endpoint)
	{
		char *rest = strstr(endpoint, "://");
		char *slash;

		client->scheme = pnstrdup(endpoint, rest - endpoint);
		client->endpoint_host = pstrdup(rest + 3);
		if ((slash = strchr(client->endpoint_host, '/')) != NULL)
			*slash = '\0';
	}
	else
	{
		client->scheme = "https";
		client->endpoint_host =
			psprintf("s3.%s.amazonaws.com", client->region);
	}
	client->path_style =
		addressing ? strcmp(addressing, "path") == 0 : endpoint != NULL;
	prefix = prefix ? pstrdup(prefix) : "";
	while (*prefix == '/')
		prefix++;
	while (*prefix && prefix[strlen(prefix) - 1] == '/')
		prefix[strlen(prefix) - 1] = '\0';
	client->prefix = prefix;

	aws_resolve_credentials(user, &creds);
	/*
	 * As with passwords: a non-superuser may not borrow the server
	 * process's own AWS identity (environment, ~/.aws files).
	 */
	if (strcmp(creds.source, "user mapping") != 0 &&
		!superuser_arg(user ? user->userid : GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("AWS credentials are required in the user mapping"),
				 errdetail("Non-superusers may not use the credentials of "
						   "the server's environment or ~/.aws files."),
				 errhint("ALTER USER MAPPING FOR CURRENT_USER SERVER %s "
						 "OPTIONS (ADD aws_access_key_id '...', ADD "
						 "aws_secret_access_key '...')",
						 quote_identifier(server->servername))));
	client->credential_source = creds.source;
	status = sigv4_signer_init(&client->signer, creds.access_key_id,
							   creds.secret_access_key, creds.session_token,
							   client->region, "s3");
	if (status != SIGV4_OK)
		ereport(ERROR, (errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						errmsg("unusable AWS credentials from the %s: %s",
							   creds.source, sigv4_status_message(status))));
	client->cleanup.func = client_cleanup;
	client->cleanup.arg = client;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &client->cleanup);
	client->multi = curl_multi_init();
	if (client->multi == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("could not create a libcurl handle")));
	return client;
}

/* Where the client keeps its credentials from (for check output). */
const char *
s3_client_credential_source(S3Client *client)
{
	return client->credential_source;
}

/* The full key of a key relative to the prefix. */
static char *
full_key(S3Client *client, const char *key)
{
	if (client->prefix[0] == '\0')
		return pstrdup(key);
	return psprintf("%s/%s", client->prefix, key);
}

/* "s3://bucket/prefix/key", for messages. */
const char *
s3_client_location(S3Client *client, const char *key)
{
	return psprintf("s3://%s/%s", client->bucket,
					key ? full_key(client, key) : client->prefix);
}

/* ------------------------------------------------------------------ */
/* requests                                                            */

/*
 * A request for a method and full key; the body (may be NULL) must stay
 * alive until the request ends.
 */
static S3Request *
new_request(S3Client *client, const char *method, const char *key,
			const char *body, size_t body_len)
{
	S3Request *req = palloc0(sizeof(S3Request));
	Sigv4Status status;

	req->client = client;
	req->method = method;
	req->key = key;
	req->body = body;
	req->body_len = body_len;
	status = sigv4_sha256_hex(body ? body : "", body_len, req->body_sha256);
	if (status != SIGV4_OK)
		elog(ERROR, "SHA-256 failed: %s", sigv4_status_message(status));
	return req;
}

static void
add_query(S3Request *req, const char *name, const char *value)
{
	Assert(req->nquery < (int) lengthof(req->query));
	req->query[req->nquery].name = name;
	req->query[req->nquery].value = value;
	req->nquery++;
}

/* Free the curl side of one attempt. */
static void
end_attempt(S3Request *req)
{
	if (req->easy)
	{
		curl_multi_remove_handle(req->client->multi, req->easy);
		curl_easy_cleanup(req->easy);
		req->easy = NULL;
	}
	if (req->headers)
	{
		curl_slist_free_all(req->headers);
		req->headers = NULL;
	}
}

/* Free a request's malloc'd response buffer. */
static void
free_request(S3Request *req)
{
	end_attempt(req);
	free(req->response);
	req->response = NULL;
}

/* Append a header to the attempt's list, failing cleanly on OOM. */
static void
add_header(S3Request *req, const char *header)
{
	struct curl_slist *list = curl_slist_append(req->headers, header);

	if (list == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("out of memory building an S3 request")));
	req->headers = list;
}

/*
 * Sign the request now and hand it to the multi handle.
 */
static void
start_attempt(S3Request *req)
{
	S3Client *client = req->client;
	char *path;
	char *host;
	Sigv4Header signed_headers[1];
	Sigv4Request sreq = {0};
	Sigv4SignedRequest signed_req = {0};
	Sigv4Status status;
	char amz_date[SIGV4_AMZ_DATE_LEN + 1];
	char *url;
	CURL *easy;

	req->attempts++;
	req->status = 0;
	req->body_pos = 0;
	req->response_len = 0;
	req->response_too_big = false;
	req->etag[0] = '\0';
	req->errbuf[0] = '\0';
	if (req->sink)
	{
		/* a retried download starts the file over */
		if (fflush(req->sink) != 0 || ftruncate(fileno(req->sink), 0) != 0)
			req->sink_failed = true;
		rewind(req->sink);
	}

	if (client->path_style)
	{
		host = client->endpoint_host;
		path = req->key ? psprintf("/%s/%s", client->bucket, req->key)
						: psprintf("/%s", client->bucket);
	}
	else
	{
		host = psprintf("%s.%s", client->bucket, client->endpoint_host);
		path = psprintf("/%s", req->key ? req->key : "");
	}
	sigv4_format_amz_date(time(NULL), amz_date);
	sreq.method = req->method;
	sreq.host = host;
	sreq.path = path;
	sreq.query = req->query;
	sreq.nquery = req->nquery;
	if (req->content_md5)
	{
		signed_headers[0].name = "content-md5";
		signed_headers[0].value = req->content_md5;
		sreq.headers = signed_headers;
		sreq.nheaders = 1;
	}
	sreq.payload_sha256 = req->body_sha256;
	sreq.amz_date = amz_date;
	status = sigv4_sign_request(&client->signer, &sreq, &signed_req);
	if (status != SIGV4_OK)
		ereport(ERROR, (errcode(ERRCODE_FDW_ERROR),
						errmsg("could not sign the S3 request for \"%s\": %s",
							   req->key ? req->key : client->bucket,
							   sigv4_status_message(status))));
	url =
		psprintf("%s://%s%s", client->scheme, host, signed_req.request_target);

	PG_TRY();
	{
		add_header(req,
				   psprintf("Authorization: %s", signed_req.authorization));
		add_header(req, psprintf("x-amz-date: %s", signed_req.amz_date));
		add_header(req, psprintf("x-amz-content-sha256: %s",
								 signed_req.content_sha256));
		if (signed_req.security_token)
			add_header(req, psprintf("x-amz-security-token: %s",
									 signed_req.security_token));
		if (req->content_md5)
			add_header(req, psprintf("Content-MD5: %s", req->content_md5));
		/* no 100-continue round trip: the body is small or a part */
		add_header(req, "Expect:");
		if (strcmp(req->method, "POST") == 0)
			add_header(req, "Content-Type: application/xml");
	}
	PG_FINALLY();
	{
		sigv4_signed_request_free(&signed_req);
	}
	PG_END_TRY();

	easy = curl_easy_init();
	if (easy == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("could not create a libcurl handle")));
	req->easy = easy;
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT, 10L);
	/* a transfer stalled for a minute is a failure (and retried) */
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, 60L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, read_header);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
	if (strcmp(req->method, "PUT") == 0)
	{
		curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_body);
		curl_easy_setopt(easy, CURLOPT_READDATA, req);
		curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE,
						 (curl_off_t) req->body_len);
	}
	else if (strcmp(req->method, "POST") == 0)
	{
		curl_easy_setopt(easy, CURLOPT_POST, 1L);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
						 (curl_off_t) req->body_len);
	}
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "GET") != 0)
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
	if (curl_multi_add_handle(client->multi, easy) != CURLM_OK)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY),
						errmsg("could not start an S3 request")));
}

/* A value of a simple XML element in a response, or NULL. */
static char *
xml_element(const char *xml, const char *name, const char **after)
{
	char *open = psprintf("<%s>", name);
	char *close = psprintf("</%s>", name);
	const char *start;
	const char *end;
	StringInfoData out;
	const char *p;

	if (xml == NULL || (start = strstr(xml, open)) == NULL)
		return NULL;
	start += strlen(open);
	if ((end = strstr(start, close)) == NULL)
		return NULL;
	if (after)
		*after = end + strlen(close);
	initStringInfo(&out);
	for (p = start; p < end; p++)
	{
		if (*p != '&')
		{
			appendStringInfoChar(&out, *p);
			continue;
		}
		if (strncmp(p, "&amp;", 5) == 0)
			appendStringInfoChar(&out, '&'), p += 4;
		else if (strncmp(p, "&lt;", 4) == 0)
			appendStringInfoChar(&out, '<'), p += 3;
		else if (strncmp(p, "&gt;", 4) == 0)
			appendStringInfoChar(&out, '>'), p += 3;
		else if (strncmp(p, "&quot;", 6) == 0)
			appendStringInfoChar(&out, '"'), p += 5;
		else if (strncmp(p, "&apos;", 6) == 0)
			appendStringInfoChar(&out, '\''), p += 5;
		else if (p[1] == '#')
		{
			char *semi;
			long code = p[2] == 'x' ? strtol(p + 3, &semi, 16)
									: strtol(p + 2, &semi, 10);

			if (*semi == ';' && code > 0 && code < 128)
			{
				appendStringInfoChar(&out, (char) code);
				p = semi;
			}
			else
				appendStringInfoChar(&out, *p);
		}
		else
			appendStringInfoChar(&out, *p);
	}
	return out.data;
}

/* Append text escaped for an XML element. */
static void
append_xml_text(StringInfo buf, const char *text)
{
	const char *p;

	for (p = text; *p; p++)
	{
		switch (*p)
		{
			case '&':
				appendStringInfoString(buf, "&amp;");
				break;
			case '<':
				appendStringInfoString(buf, "&lt;");
				break;
			case '>':
				appendStringInfoString(buf, "&gt;");
				break;
			case '"':
				appendStringInfoString(buf, "&quot;");
				break;
			default:
				appendStringInfoChar(buf, *p);
		}
	}
}

/* Should this outcome be tried again? */
static bool
is_retryable(S3Request *req)
{
	char *code;

	if (req->sink_failed || req->response_too_big)
		return false;
	if (req->curl_result != CURLE_OK)
		return req->curl_result == CURLE_COULDNT_CONNECT ||
			   req->curl_result == CURLE_SEND_ERROR ||
			   req->curl_result == CURLE_RECV_ERROR ||
			   req->curl_result == CURLE_GOT_NOTHING ||
			   req->curl_result == CURLE_PARTIAL_FILE ||
			   req->curl_result == CURLE_OPERATION_TIMEDOUT;
	if (req->status >= 500 || req->status == 429)
		return true;
	code = xml_element(req->response, "Code", NULL);
	return code && (strcmp(code, "RequestTimeout") == 0 ||
					strcmp(code, "SlowDown") == 0);
}

/* What to do about an S3 error code. */
static const char *
error_hint(const char *code)
{
	if (code == NULL)
		return NULL;
	if (strcmp(code, "SignatureDoesNotMatch") == 0)
		return "Check aws_secret_access_key in the user mapping (or the "
			   "credentials the server found in its environment or ~/.aws "
			   "files).";
	if (strcmp(code, "InvalidAccessKeyId") == 0)
		return "Check aws_access_key_id: no such key exists.";
	if (strcmp(code, "AccessDenied") == 0)
		return "The credentials may not use this bucket or prefix: check "
			   "the IAM policy (s3:PutObject, s3:GetObject, s3:ListBucket, "
			   "s3:DeleteObject) and the bucket policy.";
	if (strcmp(code, "NoSuchBucket") == 0)
		return "Check the server's s3_bucket option.";
	if (strcmp(code, "InvalidToken") == 0 || strcmp(code, "ExpiredToken") == 0)
		return "Refresh aws_session_token: temporary credentials expire.";
	if (strcmp(code, "AuthorizationHeaderMalformed") == 0 ||
		strcmp(code, "PermanentRedirect") == 0)
		return "The bucket is in another region: check s3_region.";
	if (strcmp(code, "RequestTimeTooSkewed") == 0)
		return "This server's clock is more than 15 minutes off.";
	if (strcmp(code, "SlowDown") == 0 || strcmp(code, "InternalError") == 0 ||
		strcmp(code, "ServiceUnavailable") == 0)
		return "S3 kept refusing after several attempts; try again later.";
	return NULL;
}

/*
 * Raise the error for a failed request: S3's code and message, or the
 * transfer error, with a hint.  Never includes credentials.
 */
static void
report_failure(S3Request *req)
{
	S3Client *client = req->client;
	const char *where =
		psprintf("s3://%s/%s", client->bucket, req->key ? req->key : "");
	char *code;
	char *message;
	int sqlstate;

	if (req->sink_failed)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write the download of \"%s\": %m", where)));
	if (req->curl_result != CURLE_OK || req->status == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("S3 %s of \"%s\" failed after %d attempt%s: %s",
						req->method, where, req->attempts,
						req->attempts == 1 ? "" : "s",
						req->errbuf[0] ? req->errbuf
									   : curl_easy_strerror(req->curl_result)),
				 errhint("Check the server's s3_endpoint and s3_region, and "
						 "the network path to S3.")));
	code = xml_element(req->response, "Code", NULL);
	message = xml_element(req->response, "Message", NULL);
	switch (req->status)
	{
		case 403:
			sqlstate = ERRCODE_INSUFFICIENT_PRIVILEGE;
			break;
		case 404:
			sqlstate = ERRCODE_UNDEFINED_OBJECT;
			break;
		default:
			sqlstate = req->status >= 500 ? ERRCODE_CONNECTION_FAILURE
										  : ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
	}
	/* the attempts in the message: a caller may drop the error's context */
	ereport(ERROR, (errcode(sqlstate),
					errmsg("S3 %s of \"%s\" failed%s: %s (HTTP %ld)",
						   req->method, where,
						   req->attempts > 1
							   ? psprintf(" after %d attempts", req->attempts)
							   : "",
						   code ? code : "no error code", req->status),
					message ? errdetail("%s", message) : 0,
					error_hint(code) ? errhint("%s", error_hint(code)) : 0));
}

/* Backoff before attempt n + 1: exponential, capped, with jitter. */
static long
backoff_ms(int attempts)
{
	long cap = Min(BACKOFF_CAP_MS, BACKOFF_BASE_MS << Min(attempts - 1, 10));

	return cap / 2 + (long) (pg_prng_double(&pg_global_prng_state) * cap / 2);
}

/* The sockets curl waits on. */
typedef struct CurlSockets
{
	fd_set readfds;
	fd_set writefds;
	int maxfd;
	int count;
} CurlSockets;

/* What curl's sockets wait for, now. */
static void
curl_sockets(S3Client *client, CurlSockets *sockets)
{
	fd_set excfds;
	int fd;

	FD_ZERO(&sockets->readfds);
	FD_ZERO(&sockets->writefds);
	FD_ZERO(&excfds);
	sockets->maxfd = -1;
	sockets->count = 0;
	curl_multi_fdset(client->multi, &sockets->readfds, &sockets->writefds,
					 &excfds, &sockets->maxfd);
	for (fd = 0; fd <= sockets->maxfd; fd++)
		if (FD_ISSET(fd, &sockets->readfds) ||
			FD_ISSET(fd, &sockets->writefds))
			sockets->count++;
}

/* Wait on set for the latch and curl's sockets (wait_for_activity). */
static void
wait_on_sockets(WaitEventSet *set, CurlSockets *sockets, long timeout_ms)
{
	WaitEvent event;
	int fd;

	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	for (fd = 0; fd <= sockets->maxfd; fd++)
	{
		int events =
			(FD_ISSET(fd, &sockets->readfds) ? WL_SOCKET_READABLE : 0) |
			(FD_ISSET(fd, &sockets->writefds) ? WL_SOCKET_WRITEABLE : 0);

		if (events)
			AddWaitEventToSet(set, events, fd, NULL, NULL);
	}
	/* no socket yet (curl is resolving, or between attempts): look again soon */
	if (sockets->count == 0)
		timeout_ms = Min(timeout_ms, 50);
	(void) WaitEventSetWait(set, timeout_ms, &event, 1, PG_WAIT_EXTENSION);
}

/*
 * Wait until a curl socket is ready, the latch is set, or timeout_ms
 * passes; then serve interrupts.
 */
static void
wait_for_activity(S3Client *client, long timeout_ms)
{
	CurlSockets sockets;
	WaitEventSet *set;

	curl_sockets(client, &sockets);
	set = CreateWaitEventSet(CurrentMemoryContext, sockets.count + 2);
	PG_TRY();
	{
		wait_on_sockets(set, &sockets, timeout_ms);
	}
	PG_CATCH();
	{
		FreeWaitEventSet(set);
		PG_RE_THROW();
	}
	PG_END_TRY();
	FreeWaitEventSet(set);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Supplies requests to run_pipeline: returns the next request to start, or
 * NULL when there is none (yet or at all).
 */
typedef S3Request *(*S3Feeder)(void *arg);

/* Told of each request that completed successfully. */
typedef void (*S3Done)(void *arg, S3Request *req);

/*
 * Run requests as the feeder supplies them, at most max_in_flight at once,
 * each retried as is_retryable allows.  A request that keeps failing
 * raises its error after the others are stopped, unless quiet, in which
 * case false is returned instead (used for clean-up after an error).
 */
static bool
run_pipeline(S3Client *client, int max_in_flight, S3Feeder feeder, S3Done done,
			 void *arg, bool quiet)
{
	S3Request **active = palloc0(sizeof(S3Request *) * max_in_flight);
	/* read by PG_FINALLY after a longjmp: must not live in a register */
	volatile int nactive = 0;
	bool fed_all = false;
	bool ok = true;
	int i;

	PG_TRY();
	{
		for (;;)
		{
			TimestampTz now;
			long timeout_ms = 1000;
			long curl_timeout = -1;
			int running;
			CURLMsg *msg;
			int queued;

			while (!fed_all && nactive < max_in_flight)
			{
				S3Request *req = feeder(arg);

				if (req == NULL)
				{
					fed_all = true;
					break;
				}
				active[nactive++] = req;
				start_attempt(req);
			}
			if (nactive == 0)
				break;

			now = GetCurrentTimestamp();
			for (i = 0; i < nactive; i++)
			{
				if (active[i]->retry_at && now >= active[i]->retry_at)
				{
					active[i]->retry_at = 0;
					start_attempt(active[i]);
				}
				else if (active[i]->retry_at)
					timeout_ms =
						Min(timeout_ms, TimestampDifferenceMilliseconds(
											now, active[i]->retry_at));
			}
			curl_multi_perform(client->multi, &running);
			while ((msg = curl_multi_info_read(client->multi, &queued)))
			{
				S3Request *req;
				bool finished = false;

				if (msg->msg != CURLMSG_DONE)
					continue;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &req);
				req->curl_result = msg->data.result;
				curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
								  &req->status);
				end_attempt(req);
				if (req->curl_result == CURLE_OK && req->status >= 200 &&
					req->status < 300 && !req->sink_failed &&
					!req->response_too_big)
				{
					req->done = true;
					finished = true;
					if (done)
						done(arg, req);
				}
				else if (is_retryable(req) && req->attempts < MAX_ATTEMPTS)
					req->retry_at = TimestampTzPlusMilliseconds(
						GetCurrentTimestamp(), backoff_ms(req->attempts));
				else if (quiet)
				{
					req->failed = true;
					ok = false;
					finished = true;
				}
				else
					report_failure(req);
				if (finished)
				{
					for (i = 0; i < nactive && active[i] != req; i++)
						;
					active[i] = active[--nactive];
				}
			}
			if (nactive > 0 && (fed_all || nactive == max_in_flight))
			{
				curl_multi_timeout(client->multi, &curl_timeout);
				if (curl_timeout >= 0)
					timeout_ms = Min(timeout_ms, curl_timeout);
				if (timeout_ms > 0)
					wait_for_activity(client, timeout_ms);
				else
					CHECK_FOR_INTERRUPTS();
			}
		}
	}
	PG_FINALLY();
	{
		for (i = 0; i < nactive; i++)
			end_attempt(active[i]);
	}
	PG_END_TRY();
	pfree(active);
	return ok;
}

/* Feeder over a fixed array of requests. */
typedef struct ArrayFeed
{
	S3Request **reqs;
	int n;
	int next;
} ArrayFeed;

static S3Request *
feed_array(void *arg)
{
	ArrayFeed *feed = (ArrayFeed *) arg;

	return feed->next < feed->n ? feed->reqs[feed->next++] : NULL;
}

/* Run a fixed set of requests concurrently (see run_pipeline). */
static bool
run_requests(S3Request **reqs, int n, bool quiet)
{
	ArrayFeed feed = {reqs, n, 0};

	return run_pipeline(reqs[0]->client, n, feed_array, NULL, &feed, quiet);
}

/* Run one request, raising its error. */
static void
run_request(S3Request *req)
{
	run_requests(&req, 1, false);
}

/*
 * Run one request and free it, on error too; returns a copy of its
 * response (empty when there was none), for the caller to read at ease.
 */
static StringInfo
run_and_free(S3Request *req)
{
	StringInfo response = makeStringInfo();

	PG_TRY();
	{
		run_request(req);
		if (req->response_len > 0)
			appendBinaryStringInfo(response, req->response, req->response_len);
	}
	PG_FINALLY();
	{
		free_request(req);
	}
	PG_END_TRY();
	return response;
}

/* ------------------------------------------------------------------ */
/* operations                                                          */

/*
 * PutObject of an in-memory body (key relative to the prefix).
 */
void
s3_put(S3Client *client, const char *key, const char *data, size_t len)
{
	(void) run_and_free(
		new_request(client, "PUT", full_key(client, key), data, len));
}

/*
 * Read up to len bytes of a file at offset into buf; returns the count.
 */
static size_t
read_part(int fd, char *buf, size_t len, off_t offset, const char *path)
{
	size_t total = 0;

	while (total < len)
	{
		ssize_t n = pg_pread(fd, buf + total, len - total, offset + total);

		if (n < 0)
			ereport(ERROR, (errcode_for_file_access(),
							errmsg("could not read file \"%s\": %m", path)));
		if (n == 0)
			break;
		total += n;
	}
	return total;
}

/*
 * Abort a multipart upload after an error or cancel, so no parts are left
 * (best effort: interrupts are held, failures ignored).
 */
static void
abort_multipart(S3Client *client, const char *key, const char *upload_id)
{
	S3Request *req = new_request(client, "DELETE", key, NULL, 0);

	add_query(req, "uploadId", upload_id);
	HOLD_INTERRUPTS();
	PG_TRY();
	{
		(void) run_requests(&req, 1, true);
	}
	PG_CATCH();
	{
		FlushErrorState();
	}
	PG_END_TRY();
	RESUME_INTERRUPTS();
	free_request(req);
}

/* State of a multipart upload's part pipeline. */
typedef struct PartFeed
{
	S3Client *client;
	const char *key;
	const char *upload_id;
	int fd;
	const char *path;
	int nparts;
	int next_part; /* 0-based number of the next part to send */
	char *buffers[UPLOAD_CONCURRENCY];
	bool buffer_busy[UPLOAD_CONCURRENCY];
	S3Request *requests[UPLOAD_CONCURRENCY];
	char **etags;
} PartFeed;

/* The next part's request, read into a free buffer. */
static S3Request *
feed_part(void *arg)
{
	PartFeed *feed = (PartFeed *) arg;
	S3Request *req;
	size_t len;
	int slot;

	if (feed->next_part >= feed->nparts)
		return NULL;
	for (slot = 0; feed->buffer_busy[slot]; slot++)
		;
	len = read_part(feed->fd, feed->buffers[slot], S3_PART_SIZE,
					(off_t) feed->next_part * S3_PART_SIZE, feed->path);
	req =
		new_request(feed->client, "PUT", feed->key, feed->buffers[slot], len);
	add_query(req, "partNumber", psprintf("%d", feed->next_part + 1));
	add_query(req, "uploadId", feed->upload_id);
	feed->buffer_busy[slot] = true;
	feed->requests[slot] = req;
	feed->next_part++;
	return req;
}

/* A part is stored: keep its ETag and free its buffer for the next one. */
static void
part_done(void *arg, S3Request *req)
{
	PartFeed *feed = (PartFeed *) arg;
	int number = atoi(req->query[0].value);
	int slot;

	if (req->etag[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
						errmsg("S3 returned no ETag for part %d of \"%s\"",
							   number, feed->key)));
	feed->etags[number - 1] = pstrdup(req->etag);
	for (slot = 0; feed->requests[slot] != req; slot++)
		;
	free_request(req);
	feed->requests[slot] = NULL;
	feed->buffer_busy[slot] = false;
}

/* CreateMultipartUpload: the upload id of key. */
static char *
create_multipart(S3Client *client, const char *key)
{
	S3Request *create = new_request(client, "POST", key, NULL, 0);
	char *upload_id;

	add_query(create, "uploads", NULL);
	upload_id = xml_element(run_and_free(create)->data, "UploadId", NULL);
	if (upload_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("S3 did not return an upload id for \"%s\"", key)));
	return upload_id;
}

/* CompleteMultipartUpload of the parts the feed uploaded. */
static void
complete_multipart(PartFeed *feed)
{
	StringInfoData xml;
	S3Request *complete;
	char *error_code;
	int i;

	initStringInfo(&xml);
	appendStringInfoString(&xml, "<CompleteMultipartUpload>");
	for (i = 0; i < feed->nparts; i++)
	{
		appendStringInfo(&xml, "<Part><PartNumber>%d</PartNumber><ETag>",
						 i + 1);
		append_xml_text(&xml, feed->etags[i]);
		appendStringInfoString(&xml, "</ETag></Part>");
	}
	appendStringInfoString(&xml, "</CompleteMultipartUpload>");
	complete = new_request(feed->client, "POST", feed->key, xml.data, xml.len);
	add_query(complete, "uploadId", feed->upload_id);
	/* S3 may report a failure inside a 200 response */
	error_code = xml_element(run_and_free(complete)->data, "Code", NULL);
	if (error_code)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("S3 could not complete the upload of \"%s\": %s",
						feed->key, error_code)));
}

/*
 * Upload a large file in parts, UPLOAD_CONCURRENCY in flight at any time,
 * then complete the upload; any error or cancel aborts it.
 */
static void
put_multipart(S3Client *client, const char *key, int fd, const char *path,
			  int64 size)
{
	PartFeed feed = {0};
	char *upload_id = create_multipart(client, key);
	int i;

	feed.client = client;
	feed.key = key;
	feed.upload_id = upload_id;
	feed.fd = fd;
	feed.path = path;
	feed.nparts = (int) ((size + S3_PART_SIZE - 1) / S3_PART_SIZE);
	feed.etags = palloc0(sizeof(char *) * feed.nparts);
	for (i = 0; i < UPLOAD_CONCURRENCY; i++)
		feed.buffers[i] = palloc(S3_PART_SIZE);

	PG_TRY();
	{
		run_pipeline(client, UPLOAD_CONCURRENCY, feed_part, part_done, &feed,
					 false);
		complete_multipart(&feed);
	}
	PG_CATCH();
	{
		for (i = 0; i < UPLOAD_CONCURRENCY; i++)
			if (feed.requests[i])
				free_request(feed.requests[i]);
		abort_multipart(client, key, upload_id);
		PG_RE_THROW();
	}
	PG_END_TRY();
	for (i = 0; i < UPLOAD_CONCURRENCY; i++)
		pfree(feed.buffers[i]);
}

/*
 * Upload a server-side file (multipart when larger than one part);
 * returns its size.
 */
int64
s3_put_file(S3Client *client, const char *key, const char *path)
{
	char *object = full_key(client, key);
	struct stat st;
	int fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
	int64 size;

	if (fd < 0)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("could not open file \"%s\": %m", path)));
	if (fstat(fd, &st) != 0)
	{
		int saved_errno = errno;

		CloseTransientFile(fd);
		errno = saved_errno;
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("could not stat file \"%s\": %m", path)));
	}
	size = st.st_size;
	PG_TRY();
	{
		if (size <= S3_PART_SIZE)
		{
			char *buf = palloc(Max(size, 1));

			read_part(fd, buf, size, 0, path);
			s3_put(client, key, buf, size);
			pfree(buf);
		}
		else
			put_multipart(client, object, fd, path, size);
	}
	PG_CATCH();
	{
		CloseTransientFile(fd);
		PG_RE_THROW();
	}
	PG_END_TRY();
	CloseTransientFile(fd);
	return size;
}

/*
 * GetObject into memory (small objects: probes, manifests).
 */
StringInfo
s3_get(S3Client *client, const char *key)
{
	return run_and_free(
		new_request(client, "GET", full_key(client, key), NULL, 0));
}

/*
 * GetObject streamed into a server-side file; returns the bytes written.
 */
int64
s3_get_file(S3Client *client, const char *key, const char *path)
{
	S3Request *req =
		new_request(client, "GET", full_key(client, key), NULL, 0);
	FILE *file = AllocateFile(path, PG_BINARY_W);
	int64 size = 0;

	if (file == NULL)
		ereport(ERROR, (errcode_for_file_access(),
						errmsg("could not create file \"%s\": %m", path)));
	req->sink = file;
	PG_TRY();
	{
		run_request(req);
		if (fflush(file) != 0)
			ereport(ERROR, (errcode_for_file_access(),
							errmsg("could not write file \"%s\": %m", path)));
		size = ftello(file);
	}
	PG_FINALLY();
	{
		free_request(req);
		FreeFile(file);
	}
	PG_END_TRY();
	return size;
}

/*
 * ListObjectsV2 under the prefix (relative to s3_prefix), following
 * continuation tokens; returns a List of S3Object.
 */
/*
 * One page of ListObjectsV2 (s3_list): its objects appended to *result
 * with strip bytes of prefix removed; returns the continuation token, or
 * NULL after the last page.
 */
static char *
list_page(S3Client *client, const char *full_prefix, const char *token,
		  size_t strip, List **result)
{
	S3Request *req = new_request(client, "GET", NULL, NULL, 0);
	const char *response;
	const char *p;
	char *key;

	add_query(req, "list-type", "2");
	add_query(req, "prefix", full_prefix);
	if (token)
		add_query(req, "continuation-token", token);
	response = run_and_free(req)->data;
	p = response;
	while ((p = strstr(p, "<Contents>")) != NULL)
	{
		const char *end = strstr(p, "</Contents>");
		char *block = end ? pnstrdup(p, end - p) : pstrdup(p);
		char *size = xml_element(block, "Size", NULL);
		S3Object *obj = palloc(sizeof(S3Object));

		key = xml_element(block, "Key", NULL);
		obj->key = key && strlen(key) >= strip ? pstrdup(key + strip) : key;
		obj->size = size ? strtoll(size, NULL, 10) : 0;
		if (obj->key)
			*result = lappend(*result, obj);
		p = end ? end : p + 1;
	}
	key = xml_element(response, "IsTruncated", NULL);
	return key && strcmp(key, "true") == 0
			   ? xml_element(response, "NextContinuationToken", NULL)
			   : NULL;
}

List *
s3_list(S3Client *client, const char *prefix)
{
	char *full_prefix = full_key(client, prefix ? prefix : "");
	size_t strip = client->prefix[0] ? strlen(client->prefix) + 1 : 0;
	char *token = NULL;
	List *result = NIL;

	do
		token = list_page(client, full_prefix, token, strip, &result);
	while (token != NULL);
	return result;
}

/* One DeleteObjects request (s3_delete): body and its Content-MD5. */
static void
delete_batch(S3Client *client, StringInfo xml, char *md5)
{
	S3Request *req = new_request(client, "POST", NULL, xml->data, xml->len);
	const char *response;
	char *code;

	add_query(req, "delete", NULL);
	req->content_md5 = md5;
	response = run_and_free(req)->data;
	/* S3 reports a key it could not delete inside a 200 response */
	code = xml_element(response, "Code", NULL);
	if (code)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("S3 could not delete \"%s\": %s",
						xml_element(response, "Key", NULL), code),
				 error_hint(code) ? errhint("%s", error_hint(code)) : 0));
}

/*
 * DeleteObjects in batches of 1000 keys (relative to s3_prefix); returns
 * how many keys were sent.
 */
int
s3_delete(S3Client *client, List *keys)
{
	ListCell *lc = list_head(keys);
	int count = 0;

	while (lc != NULL)
	{
		StringInfoData xml;
		uint8 digest[MD5_DIGEST_LENGTH];
		char *md5;
		const char *errmsg_text;
		pg_cryptohash_ctx *ctx;
		int n = 0;
		int md5_len;

		initStringInfo(&xml);
		appendStringInfoString(&xml, "<Delete><Quiet>true</Quiet>");
		for (; lc != NULL && n < DELETE_BATCH; lc = lnext(keys, lc), n++)
		{
			appendStringInfoString(&xml, "<Object><Key>");
			append_xml_text(&xml, full_key(client, (char *) lfirst(lc)));
			appendStringInfoString(&xml, "</Key></Object>");
		}
		appendStringInfoString(&xml, "</Delete>");

		ctx = pg_cryptohash_create(PG_MD5);
		if (pg_cryptohash_init(ctx) < 0 ||
			pg_cryptohash_update(ctx, (uint8 *) xml.data, xml.len) < 0 ||
			pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		{
			errmsg_text = pg_cryptohash_error(ctx);
			pg_cryptohash_free(ctx);
			elog(ERROR, "could not compute MD5: %s", errmsg_text);
		}
		pg_cryptohash_free(ctx);
		md5 = palloc(pg_b64_enc_len(MD5_DIGEST_LENGTH) + 1);
		md5_len = pg_b64_encode((char *) digest, MD5_DIGEST_LENGTH, md5,
								pg_b64_enc_len(MD5_DIGEST_LENGTH));
		md5[md5_len] = '\0';

		delete_batch(client, &xml, md5);
		count += n;
	}
	return count;
}

/*
 * HeadBucket: the bucket exists and the credentials may use it.
 */
void
s3_head_bucket(S3Client *client)
{
	(void) run_and_free(new_request(client, "HEAD", NULL, NULL, 0));
}
