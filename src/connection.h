/*
 * connection.h
 *		Connections to Redshift: a pool per user mapping, interruptible
 *		connect and query, remote errors reported with their SQLSTATE.
 *
 * Redshift allows one open cursor per session and a streaming query keeps
 * its session busy, so every scan that is open at the same time holds a
 * connection of its own.  Idle connections are kept for reuse until the
 * server or user mapping changes, or redshift_fdw.disconnect() is called.
 */
#ifndef REDSHIFT_FDW_CONNECTION_H
#define REDSHIFT_FDW_CONNECTION_H

#include "postgres.h"

#include "foreign/foreign.h"
#include "libpq-fe.h"

/* One connection of the pool. */
typedef struct RedshiftConn
{
	Oid umid;			/* user mapping it was opened for */
	Oid serverid;		/* its foreign server */
	Oid userid;			/* local user of the mapping */
	PGconn *conn;		/* NULL once closed */
	bool busy;			/* held by a scan or a function */
	bool query_active;	/* results may still be unread */
	bool invalidated;	/* server or mapping changed: close when idle */
	bool is_redshift;	/* the peer announced itself as Redshift */
	int acquired_level; /* transaction nesting level of the holder */
	uint32 server_hash; /* syscache hash values, for invalidation */
	uint32 mapping_hash;
	TimestampTz opened_at;
	struct RedshiftConn *next;
} RedshiftConn;

extern RedshiftConn *redshift_acquire_connection(UserMapping *user);
extern void redshift_release_connection(RedshiftConn *rconn);
extern PGresult *redshift_get_result(RedshiftConn *rconn, const char *sql);
extern bool redshift_result_ready(RedshiftConn *rconn, const char *sql);
extern void redshift_send_query(RedshiftConn *rconn, const char *sql,
								const char *display, int nparams,
								const char *const *values);
extern PGresult *redshift_exec(RedshiftConn *rconn, const char *sql);
extern void redshift_finish_query(RedshiftConn *rconn);
extern PGresult *redshift_catalog_query(RedshiftConn *rconn, const char *sql,
										bool tolerate_error);
extern void redshift_report_error(PGresult *res, RedshiftConn *rconn,
								  const char *sql) pg_attribute_noreturn();
extern char *redshift_connection_string(UserMapping *user, bool for_display);
extern int redshift_disconnect_server(Oid serverid);
extern int redshift_disconnect_all(void);
extern RedshiftConn *redshift_connection_list(void);
extern void redshift_connection_init(void);

#endif /* REDSHIFT_FDW_CONNECTION_H */
