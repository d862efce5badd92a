/*
 * s3.h
 *		An S3 client for staging files: signed with sigv4.c, moved by
 *		libcurl, every wait interruptible.
 */
#ifndef REDSHIFT_FDW_S3_H
#define REDSHIFT_FDW_S3_H

#include "postgres.h"

#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

typedef struct S3Client S3Client;

/* One object of a listing. */
typedef struct S3Object
{
	char *key; /* relative to the server's s3_prefix */
	int64 size;
} S3Object;

/* Size of multipart upload parts (S3's minimum is 5 MiB). */
#define S3_PART_SIZE (8 * 1024 * 1024)

extern bool s3_server_configured(ForeignServer *server);
extern S3Client *s3_client_create(ForeignServer *server, UserMapping *user);
extern const char *s3_client_location(S3Client *client, const char *key);
extern const char *s3_client_credential_source(S3Client *client);
extern void s3_put(S3Client *client, const char *key, const char *data,
				   size_t len);
extern int64 s3_put_file(S3Client *client, const char *key, const char *path);
extern StringInfo s3_get(S3Client *client, const char *key);
extern int64 s3_get_file(S3Client *client, const char *key, const char *path);
extern List *s3_list(S3Client *client, const char *prefix);
extern int s3_delete(S3Client *client, List *keys);
extern void s3_head_bucket(S3Client *client);

#endif /* REDSHIFT_FDW_S3_H */
