/*
 * server_tls.h: the HTTPS side of the HTTP server, private to the HTTP layer
 * (server.c starts it, http_mhd.c checks the peer certificate).
 *
 * server_tls_open() reads server.tls_cert/tls_key and the client CA bundle
 * once at start and builds the MHD options that turn TLS on; with the keys
 * unset it leaves TLS off and the options empty, so plain HTTP serving is
 * untouched. It also parses server.trusted_proxies, which req_client_cert()
 * (http.h) consults. One server per process: the state is process-wide.
 */
#ifndef EGOV_CORE_SERVER_TLS_H
#define EGOV_CORE_SERVER_TLS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

/* Loads keys and proxies from cfg. *on tells whether TLS is configured
 * (then add MHD_USE_TLS to the daemon's flags). errmsg names the key. */
egov_err server_tls_open(const egov_config *cfg, bool *on, char *errmsg, size_t errlen);
/* The TLS options for MHD_OPTION_ARRAY, ending in MHD_OPTION_END (just that
 * when TLS is off). Valid until server_tls_close(). */
const struct MHD_OptionItem *server_tls_options(void);
/* Frees the keys; call after MHD_stop_daemon. */
void server_tls_close(void);

/* The peer listener's keys (server.peer_tls_cert/key) and the CAs its
 * clients must chain to (server.peer_tls_ca, default the platform root and
 * issuing CA). Its options always turn TLS on. */
egov_err server_tls_peer_open(const egov_config *cfg, char *errmsg, size_t errlen);
const struct MHD_OptionItem *server_tls_peer_options(void);
void server_tls_peer_close(void);
/* For a request on the peer listener: NULL when the client presented a
 * certificate that verifies against the peer CAs, else the problem code
 * (peer.certificate_required, peer.certificate_untrusted). */
struct req;
const char *server_tls_peer_check(struct req *r);
/* MHD_OPTION_NOTIFY_CONNECTION for the peer listener: keeps that verdict
 * per connection. */
void server_tls_peer_conn_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
			     enum MHD_ConnectionNotificationCode toe);

#endif
