/*
 * sigv4_driver.c
 *		Signs requests read from stdin with src/sigv4.c, for crosscheck.py
 *		to compare against botocore.
 *
 * Input: one request per block of lines, ended by "end".  Every string is
 * written as "x" followed by its bytes in hex ("x" alone is the empty
 * string), so keys and values may hold any byte without quoting rules:
 *
 *		credentials <key id> <secret> <region> <service> [<session token>]
 *		method GET
 *		host <host>
 *		path <raw path>
 *		query <name> [<value>]		(repeatable; no value: bare parameter)
 *		header <name> <value>		(repeatable)
 *		payload <payload hash>
 *		date <amz date>
 *		end
 *
 * Output: per request one line, "<authorization>\t<request target>", or
 * "ERROR\t<message>".  Exits non-zero on malformed input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sigv4.h"

#define MAX_FIELDS 64

/* The strings of one request, decoded and owned by the driver. */
typedef struct DriverRequest
{
	/* the credentials, method, host, path, payload, date and parameters */
	char *fields[4 * MAX_FIELDS + 16];
	int nfields;
	char *key_id, *secret, *region, *service, *token;
	Sigv4Request request;
	Sigv4QueryParam query[MAX_FIELDS];
	Sigv4Header headers[MAX_FIELDS];
} DriverRequest;

/* Fails the run: the input is the test's own, so any error is a bug. */
static void
die(const char *message, const char *line)
{
	fprintf(stderr, "sigv4_driver: %s: %s\n", message, line);
	exit(2);
}

/* Decodes an "x<hex>" token into a new string kept in req->fields. */
static char *
decode(DriverRequest *req, const char *token)
{
	size_t len;
	size_t i;
	char *out;

	if (token == NULL || token[0] != 'x' || (strlen(token) - 1) % 2 != 0)
		die("bad hex field", token ? token : "(missing)");
	if (req->nfields == (int) (sizeof(req->fields) / sizeof(req->fields[0])))
		die("too many fields", token);
	len = (strlen(token) - 1) / 2;
	out = malloc(len + 1);
	if (out == NULL)
		die("out of memory", token);
	for (i = 0; i < len; i++)
	{
		unsigned int byte;

		if (sscanf(token + 1 + 2 * i, "%2x", &byte) != 1)
			die("bad hex digit", token);
		out[i] = (char) byte;
	}
	out[len] = '\0';
	req->fields[req->nfields++] = out;
	return out;
}

/* Signs the collected request and prints the result line. */
static void
sign_and_print(DriverRequest *req)
{
	Sigv4Signer signer;
	Sigv4SignedRequest out = {0};
	Sigv4Status status;

	status = sigv4_signer_init(&signer, req->key_id, req->secret, req->token,
							   req->region, req->service);
	if (status == SIGV4_OK)
		status = sigv4_sign_request(&signer, &req->request, &out);
	if (status == SIGV4_OK)
		printf("%s\t%s\n", out.authorization, out.request_target);
	else
		printf("ERROR\t%s\n", sigv4_status_message(status));
	sigv4_signed_request_free(&out);
	sigv4_signer_clear(&signer);
}

/* Frees the strings of a request and readies it for the next one. */
static void
reset(DriverRequest *req)
{
	int i;

	for (i = 0; i < req->nfields; i++)
		free(req->fields[i]);
	memset(req, 0, sizeof(*req));
	req->request.query = req->query;
	req->request.headers = req->headers;
}

int
main(void)
{
	static DriverRequest req;
	char *line = NULL;
	size_t line_cap = 0;
	ssize_t line_len;

	reset(&req);
	while ((line_len = getline(&line, &line_cap, stdin)) > 0)
	{
		char *keyword;
		char *arg1;
		char *arg2;

		if (line[line_len - 1] == '\n')
			line[line_len - 1] = '\0';
		keyword = strtok(line, " ");
		arg1 = strtok(NULL, " ");
		arg2 = strtok(NULL, " ");
		if (keyword == NULL)
			die("empty line", "");
		if (strcmp(keyword, "credentials") == 0)
		{
			char *arg3 = strtok(NULL, " ");
			char *arg4 = strtok(NULL, " ");
			char *arg5 = strtok(NULL, " ");

			req.key_id = decode(&req, arg1);
			req.secret = decode(&req, arg2);
			req.region = decode(&req, arg3);
			req.service = decode(&req, arg4);
			req.token = arg5 ? decode(&req, arg5) : NULL;
		}
		else if (strcmp(keyword, "method") == 0)
			req.request.method = decode(&req, arg1);
		else if (strcmp(keyword, "host") == 0)
			req.request.host = decode(&req, arg1);
		else if (strcmp(keyword, "path") == 0)
			req.request.path = decode(&req, arg1);
		else if (strcmp(keyword, "query") == 0)
		{
			if (req.request.nquery == MAX_FIELDS)
				die("too many query parameters", keyword);
			req.query[req.request.nquery].name = decode(&req, arg1);
			req.query[req.request.nquery].value =
				arg2 ? decode(&req, arg2) : NULL;
			req.request.nquery++;
		}
		else if (strcmp(keyword, "header") == 0)
		{
			if (req.request.nheaders == MAX_FIELDS)
				die("too many headers", keyword);
			req.headers[req.request.nheaders].name = decode(&req, arg1);
			req.headers[req.request.nheaders].value = decode(&req, arg2);
			req.request.nheaders++;
		}
		else if (strcmp(keyword, "payload") == 0)
			req.request.payload_sha256 = decode(&req, arg1);
		else if (strcmp(keyword, "date") == 0)
			req.request.amz_date = decode(&req, arg1);
		else if (strcmp(keyword, "end") == 0)
		{
			sign_and_print(&req);
			reset(&req);
		}
		else
			die("unknown keyword", keyword);
	}
	free(line);
	reset(&req);
	return 0;
}
