/*
 * keys.h: a gateway's keys and the files of DATA/exchange.
 *
 *   sign.c   the signing key of each subsystem a gateway serves (cached,
 *            rechecked on disk), ES256 signing and verification of the
 *            canonical texts, verification keys cached by certificate
 *   files.c  DATA/exchange and its files: paths, atomic writes, P-256
 *            keys, CSRs, certificates
 *   peer.c   the TLS client certificate, key and CA bundle of calls to
 *            other gateways
 *   cli.c    `egov exchange keygen` and `egov exchange cert install`
 *
 * The room holds the node's data directory (exchange_keys_setup(), from
 * the module's start hook or before a command) and its caches; nothing
 * else of the exchange keeps a key.
 */
#ifndef EGOV_EXCHANGE_KEYS_KEYS_H
#define EGOV_EXCHANGE_KEYS_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "exchange/exchange_limits.h"

struct evp_pkey_st; /* OpenSSL's EVP_PKEY */
struct x509_st;     /* OpenSSL's X509 */

/* Where the room's files are: DATA/exchange under data_dir (copied).
 * Until it is called, paths fail EGOV_EUNAVAILABLE. */
egov_err exchange_keys_setup(const char *data_dir);

/* ---- signing (sign.c) ------------------------------------------------------------ */

/* Signs msg with the signing key of local subsystem sub (ES256, raw r||s,
 * base64url without padding in out, NUL-terminated). EGOV_ENOTFOUND if this
 * gateway holds no key for sub. *cert_sha256 (may be NULL) gets the hex
 * SHA-256 of the certificate that goes with the key. */
egov_err exchange_sign(const char *sub, const void *msg, size_t len, char out[EXCHANGE_SIG_MAX],
		       char cert_sha256[65]);
/* Verifies an ES256 signature (base64url raw r||s) over msg with the public
 * key of a PEM certificate. EGOV_EAUTH if it does not verify. */
egov_err exchange_verify(const char *cert_pem, const void *msg, size_t len, const char *sig_b64);
/* Whether this gateway holds a signing key and certificate for sub. */
bool exchange_has_key(const char *sub);
/* Forgets the cached signing keys (tests). */
void exchange_keys_forget(void);
/* ES256 (raw r||s, base64url) with an EVP_PKEY. */
egov_err exchange_es256_sign(struct evp_pkey_st *key, const void *msg, size_t len, char out[EXCHANGE_SIG_MAX]);
egov_err exchange_es256_verify(struct evp_pkey_st *key, const void *msg, size_t len, const char *sig_b64);
/* core/b64url.h's encoder with the output size checked: the length written,
 * 0 when outlen is too small (it needs 4/3 n + 2). Decode: b64url_decode. */
size_t exchange_b64url_encode(const void *in, size_t n, char *out, size_t outlen);

/* ---- files (files.c) ---------------------------------------------------------------- */

/* DATA/exchange/<rel> into out; exchange_dirs() makes DATA/exchange and
 * DATA/exchange/keys (0700). */
egov_err exchange_path(char *out, size_t len, const char *rel);
egov_err exchange_dirs(void);
/* DATA/exchange/keys/<sub with '/' as '+'>.<ext> */
egov_err exchange_key_path(const char *sub, const char *ext, char *out, size_t len);
/* Writes a file atomically and durably (temp, fsync, rename, fsync dir),
 * with mode whatever the umask. */
egov_err exchange_file_write(const char *path, const void *data, size_t len, int mode);
/* The same in steps, for a file written as it is made: begin creates a
 * temporary file beside path (mode), append writes to it, commit puts it
 * in place durably, abandon removes it. A reader never sees half of one.
 * Commit and abandon end it whatever they return. */
typedef struct exchange_file {
	int fd;
	char path[EXCHANGE_PATH_MAX];
	char tmp[EXCHANGE_PATH_MAX + 32];
} exchange_file;
egov_err exchange_file_begin(exchange_file *f, const char *path, int mode);
egov_err exchange_file_append(exchange_file *f, const void *data, size_t len);
egov_err exchange_file_commit(exchange_file *f);
void exchange_file_abandon(exchange_file *f);
/* Reads a whole file into out (initialised here, capped at max; NUL-
 * terminated). EGOV_ENOTFOUND if missing. */
egov_err exchange_file_read(const char *path, size_t max, buf *out);
/* P-256 keys: load (must be mode 0600: EGOV_ECORRUPT otherwise), create
 * (written 0600), a CSR for one; certificates from PEM; SHA-256 of the DER
 * (hex), of a certificate or of the first certificate of a PEM text. */
egov_err exchange_key_load(const char *path, struct evp_pkey_st **out);
egov_err exchange_key_create(const char *path, struct evp_pkey_st **out);
egov_err exchange_csr_pem(struct evp_pkey_st *key, const char *cn, buf *out);
struct x509_st *exchange_pem_cert(const char *pem, size_t len);
egov_err exchange_cert_sha256(struct x509_st *x, char out[65]);
/* The DER of the first certificate of a PEM text (*len bytes), NULL when
 * there is none; free with OPENSSL_free. */
unsigned char *exchange_pem_der(const char *pem, int *len);
/* Whether pem is a certificate whose DER's SHA-256 is sha256 (hex). */
bool exchange_pem_matches(const char *sha256, const char *pem);
/* libcurl's public-key pins ("sha256//B64;sha256//B64") of the given PEM
 * certificates, appended to out; EGOV_ENOTFOUND when none of them is a
 * readable certificate. */
egov_err exchange_pins_add(const char *const *pems, size_t n, buf *out);

/* ---- the peer TLS files (peer.c) ---------------------------------------------------- */

/* The client certificate and key of calls to other gateways, and the CA
 * bundle their certificates are checked against: server.peer_tls_ca, or
 * else the node's platform CA (root and issuing certificates, written
 * once as DATA/exchange/peer-ca.pem), or "" (libcurl's default) on a node
 * without a peer certificate. Paths, "" when not set. */
typedef struct exchange_peer_tls {
	char cert[EXCHANGE_PATH_MAX];
	char key[EXCHANGE_PATH_MAX];
	char ca[EXCHANGE_PATH_MAX];
} exchange_peer_tls;
/* Prepares them for cfg (writes the bundle); the gateway's start. */
egov_err exchange_peer_tls_setup(const egov_config *cfg);
/* As prepared; all "" before. Never NULL. */
const exchange_peer_tls *exchange_peer_tls_get(void);

/* ---- commands (cli.c) ---------------------------------------------------------------- */

/* `egov exchange keygen|cert install`; -1 when argv is not one of them. */
int exchange_keys_command(int argc, char **argv);

#endif
