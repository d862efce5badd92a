/*
 * aws_credentials.c
 *		The AWS credential chain, first hit wins:
 *		1. user mapping options aws_access_key_id, aws_secret_access_key,
 *		   aws_session_token;
 *		2. the server process's environment: AWS_ACCESS_KEY_ID,
 *		   AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;
 *		3. the shared files: AWS_SHARED_CREDENTIALS_FILE (default
 *		   ~/.aws/credentials) and AWS_CONFIG_FILE (default ~/.aws/config),
 *		   profile AWS_PROFILE or "default".
 *		Region: the server's s3_region, AWS_REGION, AWS_DEFAULT_REGION, the
 *		profile's region in the config file.  Bucket: the server's s3_bucket,
 *		else AWS_S3_BUCKET_NAME.
 *
 * Secrets are only ever copied into the returned struct: no message here
 * contains one.
 */
#include "postgres.h"

#include "storage/fd.h"
#include "utils/builtins.h"

#include "aws_credentials.h"
#include "option.h"

/*
 * An environment variable's value, or NULL when unset or empty.
 */
static char *
env_value(const char *name)
{
	char *value = getenv(name);

	return value && value[0] ? pstrdup(value) : NULL;
}

/*
 * The value of key in section of an INI-style AWS file, or NULL.
 */
static char *
ini_value(const char *path, const char *section, const char *key)
{
	FILE *file;
	char line[4096];
	bool in_section = false;
	char *result = NULL;

	file = AllocateFile(path, "r");
	if (file == NULL)
		return NULL;
	while (fgets(line, sizeof(line), file) != NULL)
	{
		char *p = line;
		char *end;
		char *eq;

		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strlen(p);
		while (end > p && (end[-1] == '\n' || end[-1] == '\r' ||
						   end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (*p == '#' || *p == ';' || *p == '\0')
			continue;
		if (*p == '[')
		{
			char *close = strchr(p, ']');

			if (close)
				*close = '\0';
			p++;
			while (*p == ' ')
				p++;
			in_section = strcmp(p, section) == 0;
			continue;
		}
		if (!in_section || (eq = strchr(p, '=')) == NULL)
			continue;
		end = eq;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if ((size_t) (end - p) == strlen(key) && strncmp(p, key, end - p) == 0)
		{
			eq++;
			while (*eq == ' ' || *eq == '\t')
				eq++;
			result = pstrdup(eq);
			break;
		}
	}
	FreeFile(file);
	return result;
}

/*
 * The shared credentials and config files and the profile to read.
 */
static void
shared_files(char **credentials, char **config, char **profile)
{
	char *home = getenv("HOME");

	*credentials = env_value("AWS_SHARED_CREDENTIALS_FILE");
	if (*credentials == NULL && home)
		*credentials = psprintf("%s/.aws/credentials", home);
	*config = env_value("AWS_CONFIG_FILE");
	if (*config == NULL && home)
		*config = psprintf("%s/.aws/config", home);
	*profile = env_value("AWS_PROFILE");
	if (*profile == NULL)
		*profile = pstrdup("default");
}

/*
 * A key of the profile: from the credentials file ([name]) or the config
 * file ([profile name], or [default]).
 */
static char *
profile_value(const char *key)
{
	char *credentials;
	char *config;
	char *profile;
	char *value = NULL;

	shared_files(&credentials, &config, &profile);
	if (credentials)
		value = ini_value(credentials, profile, key);
	if (value == NULL && config)
	{
		char *section = strcmp(profile, "default") == 0
							? profile
							: psprintf("profile %s", profile);

		value = ini_value(config, section, key);
	}
	return value;
}

/*
 * Resolve the credentials for a user mapping (NULL: none) along the chain;
 * an error lists the places looked at when nothing is found.
 */
void
aws_resolve_credentials(UserMapping *user, AwsCredentials *out)
{
	List *options = user ? user->options : NIL;
	char *key = redshift_option_string(options, "aws_access_key_id");
	char *secret = redshift_option_string(options, "aws_secret_access_key");

	memset(out, 0, sizeof(*out));
	if (key || secret)
	{
		if (!key || !secret)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("user mapping gives only one of "
							"aws_access_key_id and aws_secret_access_key"),
					 errhint("Give both options, or neither to use the "
							 "server's environment or ~/.aws files.")));
		out->access_key_id = pstrdup(key);
		out->secret_access_key = pstrdup(secret);
		key = redshift_option_string(options, "aws_session_token");
		out->session_token = key ? pstrdup(key) : NULL;
		out->source = "user mapping";
		return;
	}
	key = env_value("AWS_ACCESS_KEY_ID");
	secret = env_value("AWS_SECRET_ACCESS_KEY");
	if (key && secret)
	{
		out->access_key_id = key;
		out->secret_access_key = secret;
		out->session_token = env_value("AWS_SESSION_TOKEN");
		out->source = "environment";
		return;
	}
	key = profile_value("aws_access_key_id");
	secret = profile_value("aws_secret_access_key");
	if (key && secret)
	{
		out->access_key_id = key;
		out->secret_access_key = secret;
		out->session_token = profile_value("aws_session_token");
		out->source = "shared credentials file";
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
			 errmsg("no AWS credentials found"),
			 errdetail("Looked in the user mapping (aws_access_key_id, "
					   "aws_secret_access_key), the server's environment "
					   "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the "
					   "shared credentials files of the server's user."),
			 errhint("ALTER USER MAPPING FOR CURRENT_USER SERVER ... OPTIONS "
					 "(ADD aws_access_key_id '...', ADD aws_secret_access_key "
					 "'...')")));
}

/*
 * The region for S3 requests of a server.
 */
char *
aws_resolve_region(ForeignServer *server)
{
	char *region = redshift_option_string(server->options, "s3_region");

	if (region)
		return pstrdup(region);
	if ((region = env_value("AWS_REGION")) != NULL ||
		(region = env_value("AWS_DEFAULT_REGION")) != NULL ||
		(region = profile_value("region")) != NULL)
		return region;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
			 errmsg("no AWS region for server \"%s\"", server->servername),
			 errhint("ALTER SERVER %s OPTIONS (ADD s3_region 'us-east-1'), "
					 "or set AWS_REGION in the server's environment.",
					 quote_identifier(server->servername))));
	return NULL;
}

/*
 * The staging bucket of a server.
 */
char *
aws_resolve_bucket(ForeignServer *server)
{
	char *bucket = redshift_option_string(server->options, "s3_bucket");

	if (bucket)
		return pstrdup(bucket);
	if ((bucket = env_value("AWS_S3_BUCKET_NAME")) != NULL)
		return bucket;
	ereport(ERROR,
			(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
			 errmsg("no S3 bucket for server \"%s\"", server->servername),
			 errhint("ALTER SERVER %s OPTIONS (ADD s3_bucket '...'), or set "
					 "AWS_S3_BUCKET_NAME in the server's environment.",
					 quote_identifier(server->servername))));
	return NULL;
}
