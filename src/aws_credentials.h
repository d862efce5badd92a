/*
 * aws_credentials.h
 *		Where the AWS keys, region and bucket of a server come from.
 */
#ifndef REDSHIFT_FDW_AWS_CREDENTIALS_H
#define REDSHIFT_FDW_AWS_CREDENTIALS_H

#include "postgres.h"

#include "foreign/foreign.h"

/* Resolved credentials; source says where they were found (no secrets). */
typedef struct AwsCredentials
{
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL without temporary credentials */
	const char *source;
} AwsCredentials;

extern void aws_resolve_credentials(UserMapping *user, AwsCredentials *out);
extern char *aws_resolve_region(ForeignServer *server);
extern char *aws_resolve_bucket(ForeignServer *server);

#endif /* REDSHIFT_FDW_AWS_CREDENTIALS_H */
