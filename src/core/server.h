/*
 * server.h: the HTTP server (libmicrohttpd with epoll and a thread pool).
 *
 * server_start() binds and starts the worker threads; the caller blocks
 * SIGTERM/SIGINT first (server_block_signals) so that only the main thread
 * receives them, then calls server_wait_signal() and server_stop(), which
 * stops accepting, lets in-flight requests finish for up to drain_s
 * seconds, and closes every connection.
 */
#ifndef EGOV_CORE_SERVER_H
#define EGOV_CORE_SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "core/err.h"
#include "core/router.h"

typedef struct server server;

void server_block_signals(void);
egov_err server_start(const egov_config *cfg, const router *rt, server **out, char *errmsg, size_t errlen);
/* Returns the signal that arrived. */
int server_wait_signal(void);
/* Stops accepting and waits up to drain_s seconds for the requests in
 * flight. Connections stay open, so that requests waiting on other threads
 * (deferred answers) can still be answered: stop what would answer them
 * (the HTTP client, the modules' threads) after this and before
 * server_stop(). */
void server_drain(server *s, int drain_s);
/* Drains (if server_drain() did not), closes every connection and frees s. */
void server_stop(server *s, int drain_s);

#endif
