/*
 * server_proxy.h: trusted reverse proxies (server.trusted_proxies), private
 * to the kernel's HTTP layer: who the client of a request is when it came
 * through a proxy, and whether the connection's peer may speak for it.
 *
 * server_proxy_open() parses the configuration once at start, before the
 * daemons run; after that the state is read-only, so requests read it
 * without a lock. One server per process.
 */
#ifndef EGOV_CORE_SERVER_PROXY_H
#define EGOV_CORE_SERVER_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

struct req;

/* Reads server.trusted_proxies and server.proxy_header. EGOV_EINVAL with
 * errmsg naming the key (the value was checked when set, so only a list
 * made by hand in a test fails here). */
egov_err server_proxy_open(const egov_config *cfg, char *errmsg, size_t errlen);

/* Called once per request after its peer address is known (r->ip): when
 * that peer is a trusted proxy, replaces r->ip with the client's address
 * from the configured forwarding header (the right-most address in it that
 * is not a trusted proxy; the left-most if all are) and keeps the peer's
 * in r->via. From any other peer the header is ignored. Cannot fail: a
 * header that names no usable address leaves the nearest proxy's. */
void server_proxy_resolve(struct req *r);

/* Whether r's connection comes from a trusted proxy (server_proxy_resolve
 * ran), so that headers only a proxy may set (X-Client-Cert) count. */
bool server_proxy_peer_trusted(const struct req *r);

#endif
