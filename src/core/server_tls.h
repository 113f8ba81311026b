/*
 * server_tls.h: the HTTPS side of the HTTP server, private to the HTTP layer
 * (server.c starts it, http_mhd.c checks the peer certificate), except the
 * trust hook (server_tls_set_trust) through which a module supplies the
 * platform's CA bundles.
 *
 * server_tls_open() reads server.tls_cert/tls_key and the client CA bundle
 * once at start and builds the MHD options that turn TLS on; with the keys
 * unset it leaves TLS off and the options empty, so plain HTTP serving is
 * untouched. It also has server_proxy.c parse server.trusted_proxies,
 * which req_client_cert() (http.h) consults. One server per process: the
 * state is process-wide.
 */
#ifndef EGOV_CORE_SERVER_TLS_H
#define EGOV_CORE_SERVER_TLS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

/* ---- the trust hook ------------------------------------------------------ */

/* The default CA bundles the kernel asks a module for. */
typedef enum server_trust_kind {
	/* Whose client certificates the main listener asks for, when
	 * server.tls_client_ca is empty. */
	SERVER_TRUST_CLIENT,
	/* What peers' certificates must chain to on the peer listener (and
	 * for this node's own calls to peers), when server.peer_tls_ca is
	 * empty. */
	SERVER_TRUST_PEER,
} server_trust_kind;

/* Appends the PEM bundle of kind to pem. key is the configuration key the
 * bundle stands in for ("server.tls_client_ca"): on failure the hook writes
 * errmsg naming it and what could not be read. */
typedef egov_err (*server_trust_fn)(server_trust_kind kind, const egov_config *cfg, const char *key, buf *pem,
				    char *errmsg, size_t errlen);

/* Installs the hook (NULL: none). Call before server_start, from a start
 * hook. Without a hook an empty server.tls_client_ca or server.peer_tls_ca
 * is refused when TLS is on. */
void server_tls_set_trust(server_trust_fn fn);

/* Appends the PEM file at path (at most 1 MiB) to pem, ending it with a
 * line break so bundles concatenate. EGOV_EIO (errno says why) if it cannot
 * be read, EGOV_ELIMIT if too large, or pem's cap. */
egov_err server_tls_read_pem(const char *path, buf *pem);

/* ---- protocol versions and cipher suites ------------------------------------ */

/* The default of server.tls_priorities: TLS 1.2 and 1.3 only; ECDHE key
 * exchange (forward secrecy) and AEAD ciphers only, AES-GCM and
 * ChaCha20-Poly1305, in the server's order. GnuTLS's NORMAL alone would
 * also offer TLS 1.0 and 1.1, CBC suites with SHA-1 and RSA key transport. */
#define SERVER_TLS_PRIORITIES_DEFAULT                                                              \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:" \
	"+AES-128-GCM:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE"

/* config_key.check of server.tls_priorities: GnuTLS must accept the string
 * (why then names where it stopped). */
bool server_tls_check_priorities(const char *v, char *why, size_t whylen);

/* ---- for server.c ---------------------------------------------------------- */

/* Loads keys and proxies from cfg. *on tells whether TLS is configured
 * (then add MHD_USE_TLS to the daemon's flags). errmsg names the key. */
egov_err server_tls_open(const egov_config *cfg, bool *on, char *errmsg, size_t errlen);
/* The TLS options for MHD_OPTION_ARRAY, ending in MHD_OPTION_END (just that
 * when TLS is off). Valid until server_tls_close(). */
const struct MHD_OptionItem *server_tls_options(void);
/* Frees the keys; call after MHD_stop_daemon. */
void server_tls_close(void);

/* The peer listener's keys (server.peer_tls_cert/key) and the CAs its
 * clients must chain to (server.peer_tls_ca, default the trust hook's
 * SERVER_TRUST_PEER bundle). Its options always turn TLS on. */
egov_err server_tls_peer_open(const egov_config *cfg, char *errmsg, size_t errlen);
const struct MHD_OptionItem *server_tls_peer_options(void);
void server_tls_peer_close(void);
/* For a request on the peer listener: NULL when the client presented a
 * certificate that verifies against the peer CAs, else the problem code
 * (peer.certificate_required, peer.certificate_untrusted). */
struct req;
const char *server_tls_peer_check(struct req *r);

#endif
