/*
 * server_conn.h: what the HTTP layer keeps per connection rather than per
 * request, private to the kernel's HTTP layer: the head deadline, the
 * checks on a request head that libmicrohttpd 0.9.75 gets wrong, and the
 * peer listener's verdict on the client certificate.
 *
 * Both listeners give server_conn_notify to MHD (MHD_OPTION_NOTIFY_
 * CONNECTION): each connection gets a server_conn as its socket context,
 * on the watch list from its opening to its closing. server_conn_start()
 * runs the watcher thread that drops connections whose head is late;
 * server.c starts it before the daemons and stops it after them.
 */
#ifndef EGOV_CORE_SERVER_CONN_H
#define EGOV_CORE_SERVER_CONN_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

struct req;

typedef struct server_conn {
	struct server_conn *prev, *next; /* the watch list, under its lock */
	MHD_socket fd;
	/* Monotonic time (us) by which the awaited request head must be
	 * whole; 0 while a request is being read or answered. Written by the
	 * connection's worker, read by the watcher. */
	_Atomic int64_t head_by_us;
	bool dropped; /* under the watch list's lock */
	/* The peer listener's verdict on the client certificate, kept for the
	 * connection's life (server_tls_peer_check); only its worker reads
	 * and writes these. */
	bool peer_checked;
	const char *peer_verdict;
} server_conn;

/* Starts the watcher: a connection whose request head is not whole within
 * head_timeout_s of its opening or of its previous answer is shut down.
 * EGOV_EINTERNAL if the thread cannot start. */
egov_err server_conn_start(int head_timeout_s);
/* Stops the watcher; call after the daemons stopped. */
void server_conn_stop(void);

/* MHD_OPTION_NOTIFY_CONNECTION for both listeners. */
void server_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			enum MHD_ConnectionNotificationCode toe);

/* The connection's context, or NULL (it could not be allocated: then the
 * connection goes unwatched, and callers do without). */
server_conn *server_conn_of(struct MHD_Connection *conn);

/* A request's head is whole (the first access call): no deadline while it
 * is read and answered. */
void server_conn_head_done(struct MHD_Connection *conn);
/* A request is complete: the next head is awaited from now. */
void server_conn_head_wait(struct MHD_Connection *conn);

/* What libmicrohttpd 0.9.75 does not refuse, or refuses badly, about a
 * request head (Host, the request target's characters, the body's
 * framing): NULL when the head is fine, else the problem code and in
 * *status its HTTP status. A refused head is answered at once and the
 * connection closed, since its body's length cannot be trusted. */
const char *server_conn_head_refusal(const struct req *r, const char *version, int *status);

#endif
