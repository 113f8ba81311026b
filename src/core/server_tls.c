/*
 * server_tls.c: HTTPS for the HTTP server and the client certificate of a
 * request (req_client_cert, req_is_tls).
 *
 * Invariants:
 * - TLS is on only when server.tls_cert and server.tls_key are both set
 *   (config_finish refuses one without the other); then the daemon speaks
 *   HTTPS only. Off, nothing here runs per request.
 * - Client certificates are requested, never required, and GnuTLS's own
 *   verdict is never used: req_client_cert() hands out the peer's bytes and
 *   the caller verifies them (pki_verify_chain: chain, validity, revocation,
 *   usage). The CA list sent in the request is only a hint to the client.
 * - The kernel knows no CA files: when server.tls_client_ca or
 *   server.peer_tls_ca is empty, the bundle comes from the trust hook a
 *   module installed (server_tls_set_trust; the PKI module does).
 * - The X-Client-Cert header is believed only on a connection whose peer
 *   address is listed in server.trusted_proxies (server_proxy.c), and only
 *   when the connection itself carries no certificate; from anyone else it
 *   is ignored as if absent.
 * - Both listeners speak only what server.tls_priorities allows (by
 *   default TLS 1.2 and 1.3 with ECDHE and AEAD ciphers): GnuTLS's own
 *   default still offers TLS 1.0 and CBC suites with SHA-1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/req_int.h"
#include "core/server_conn.h"
#include "core/server_proxy.h"
#include "core/server_tls.h"
#include "core/uri.h"
#include "core/banned.h"

#define PEM_FILE_MAX (1u << 20)
/* A default trust bundle: the platform's CAs and a few extra anchors. */
#define TRUST_BUNDLE_MAX (4u * PEM_FILE_MAX)
/* An escaped PEM certificate chain from a proxy; larger is not one. */
#define PROXY_CERT_MAX (12 * 1024)

/* The keys and MHD options of one listener: key, certificate, trust,
 * priorities, end. */
typedef struct tls_side {
	bool on;
	char *cert, *key, *trust, *priorities;
	struct MHD_OptionItem opts[5];
} tls_side;

static tls_side tls = {.opts = {{MHD_OPTION_END, 0, NULL}}};

/* The peer listener (server.peer_listen): always TLS, certificates
 * verified by GnuTLS against server.peer_tls_ca. */
static tls_side peer = {.opts = {{MHD_OPTION_END, 0, NULL}}};

/* Who supplies the default trust bundles (server_tls_set_trust). Set by a
 * module's start hook before server_start, read by server_start only. */
static server_trust_fn trust_fn;

void server_tls_set_trust(server_trust_fn fn)
{
	trust_fn = fn;
}

egov_err server_tls_read_pem(const char *path, buf *pem)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n, total = 0;
	egov_err err = EGOV_OK;

	if (!f)
		return EGOV_EIO;
	while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		total += n;
		err = total > PEM_FILE_MAX ? EGOV_ELIMIT : buf_add(pem, chunk, n);
	}
	if (!err && ferror(f))
		err = EGOV_EIO;
	/* Bundles are concatenated: keep a line break between two files. */
	if (!err && pem->len && pem->data[pem->len - 1] != '\n')
		err = buf_addc(pem, '\n');
	fclose(f);
	return err;
}

/* Reads one PEM file into *out (malloc'd, NUL-terminated). */
static egov_err read_one(const char *path, char **out)
{
	buf b;
	egov_err err;

	buf_init(&b, PEM_FILE_MAX + 2);
	err = server_tls_read_pem(path, &b);
	if (!err && !b.data)
		err = buf_adds(&b, "");
	if (err) {
		int saved = errno;
		buf_release(&b);
		errno = saved;
		return err;
	}
	*out = buf_detach(&b, NULL);
	return EGOV_OK;
}

/* The CA bundle of one listener: the file of key (configured), else the
 * default bundle from the trust hook. *hooked tells that errmsg is
 * already written. */
static egov_err read_trust(const egov_config *cfg, server_trust_kind kind, const char *key, const char *path,
			   char **out, bool *hooked, char *errmsg, size_t errlen)
{
	buf b;
	egov_err err;

	*hooked = false;
	if (path && path[0])
		return read_one(path, out);
	*hooked = true;
	if (!trust_fn) {
		snprintf(errmsg, errlen, "%s: is empty and no module provides the platform's CAs (expected a PEM file)",
			 key);
		return EGOV_EINVAL;
	}
	buf_init(&b, TRUST_BUNDLE_MAX);
	err = trust_fn(kind, cfg, key, &b, errmsg, errlen);
	if (!err && !b.data)
		err = buf_adds(&b, "");
	if (err == EGOV_ENOMEM || err == EGOV_ELIMIT)
		snprintf(errmsg, errlen, "%s: cannot hold the platform's CAs (%s)", key, egov_err_name(err));
	if (err) {
		buf_release(&b);
		return err;
	}
	*out = buf_detach(&b, NULL);
	return EGOV_OK;
}

bool server_tls_check_priorities(const char *v, char *why, size_t whylen)
{
	gnutls_priority_t p = NULL;
	const char *at = NULL;
	int rc = gnutls_priority_init(&p, v, &at);

	if (rc == GNUTLS_E_SUCCESS) {
		gnutls_priority_deinit(p);
		return true;
	}
	if (rc == GNUTLS_E_INVALID_REQUEST && at)
		snprintf(why, whylen, "is refused by GnuTLS at \"%.40s\"", at);
	else
		snprintf(why, whylen, "is refused by GnuTLS (%s)", gnutls_strerror(rc));
	return false;
}

/* The priorities both listeners use (a heap copy: MHD keeps the pointer). */
static egov_err copy_priorities(const egov_config *cfg, char **out)
{
	*out = strdup(cfg->tls_priorities && cfg->tls_priorities[0] ? cfg->tls_priorities
								      : SERVER_TLS_PRIORITIES_DEFAULT);
	return *out ? EGOV_OK : EGOV_ENOMEM;
}

egov_err server_tls_open(const egov_config *cfg, bool *on, char *errmsg, size_t errlen)
{
	const char *what = "server.tls_cert";
	bool hooked = false;
	egov_err err;
	size_t i = 0;

	*on = false;
	server_tls_close();
	if ((err = server_proxy_open(cfg, errmsg, errlen)))
		return err;
	if (!cfg->tls_cert || !cfg->tls_cert[0])
		return EGOV_OK;
	if ((err = read_one(cfg->tls_cert, &tls.cert)))
		goto out;
	what = "server.tls_key";
	if ((err = read_one(cfg->tls_key, &tls.key)))
		goto out;
	/* Without a configured bundle: the platform's issuing CA and extra
	 * anchors, from the module that holds them: who may log in with a
	 * certificate. */
	what = "server.tls_client_ca";
	if ((err = read_trust(cfg, SERVER_TRUST_CLIENT, what, cfg->tls_client_ca, &tls.trust, &hooked, errmsg, errlen)))
		goto out;
	tls.opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, tls.key};
	tls.opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, tls.cert};
	/* A trust list makes MHD ask for (not demand) a client certificate. */
	tls.opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, tls.trust};
	what = "server.tls_priorities";
	if ((err = copy_priorities(cfg, &tls.priorities)))
		goto out;
	tls.opts[i++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, tls.priorities};
	tls.opts[i] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	tls.on = true;
	*on = true;
out:
	if (err) {
		if (!hooked)
			snprintf(errmsg, errlen, "%s: cannot read the PEM file (%s)", what,
				 err == EGOV_EIO ? strerror(errno) : egov_err_name(err));
		server_tls_close();
	}
	return err;
}

const struct MHD_OptionItem *server_tls_options(void)
{
	return tls.opts;
}

static void wipe_free(char *key)
{
	if (key) {
		/* A private key should not linger in freed memory. */
		volatile char *k = key;
		size_t n = strlen(key);
		while (n--)
			k[n] = 0;
		free(key);
	}
}

egov_err server_tls_peer_open(const egov_config *cfg, char *errmsg, size_t errlen)
{
	const char *what = "server.peer_tls_cert";
	bool hooked = false;
	egov_err err;

	server_tls_peer_close();
	if ((err = read_one(cfg->peer_tls_cert, &peer.cert)))
		goto out;
	what = "server.peer_tls_key";
	if ((err = read_one(cfg->peer_tls_key, &peer.key)))
		goto out;
	what = "server.peer_tls_ca";
	if ((err = read_trust(cfg, SERVER_TRUST_PEER, what, cfg->peer_tls_ca, &peer.trust, &hooked, errmsg, errlen)))
		goto out;
	peer.opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, peer.key};
	peer.opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, peer.cert};
	peer.opts[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, peer.trust};
	what = "server.tls_priorities";
	if ((err = copy_priorities(cfg, &peer.priorities)))
		goto out;
	peer.opts[3] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, peer.priorities};
	peer.opts[4] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	peer.on = true;
out:
	if (err) {
		if (!hooked)
			snprintf(errmsg, errlen, "%s: cannot read the PEM file (%s)", what,
				 err == EGOV_EIO ? strerror(errno) : egov_err_name(err));
		server_tls_peer_close();
	}
	return err;
}

const struct MHD_OptionItem *server_tls_peer_options(void)
{
	return peer.opts;
}

void server_tls_peer_close(void)
{
	free(peer.cert);
	free(peer.trust);
	free(peer.priorities);
	wipe_free(peer.key);
	peer.cert = peer.key = peer.trust = peer.priorities = NULL;
	peer.opts[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	peer.on = false;
}

static gnutls_session_t session_of(const req *r)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	return ci ? (gnutls_session_t)ci->tls_session : NULL;
}

static const char *peer_verify(req *r)
{
	gnutls_session_t s = session_of(r);
	unsigned int n = 0, status = 0;

	if (!s || !gnutls_certificate_get_peers(s, &n) || n == 0)
		return "peer.certificate_required";
	/* Chain to server.peer_tls_ca, validity and signatures, by GnuTLS:
	 * on this listener the handshake's own verdict is the one we use. */
	if (gnutls_certificate_verify_peers2(s, &status) != GNUTLS_E_SUCCESS || status != 0)
		return "peer.certificate_untrusted";
	return NULL;
}

/* The verdict is kept for the life of the connection (the certificate
 * cannot change on it): verifying the chain costs several ECDSA
 * verifications in GnuTLS, too much to repeat for every request on a
 * kept-alive connection. */
const char *server_tls_peer_check(req *r)
{
	server_conn *sc = server_conn_of(r->conn);

	if (!sc)
		return peer_verify(r); /* could not allocate: check every time */
	if (!sc->peer_checked) {
		sc->peer_verdict = peer_verify(r);
		sc->peer_checked = true;
	}
	return sc->peer_verdict;
}

bool req_is_peer(const req *r)
{
	return r->peer;
}

void server_tls_close(void)
{
	free(tls.cert);
	free(tls.trust);
	free(tls.priorities);
	wipe_free(tls.key);
	tls.cert = tls.key = tls.trust = tls.priorities = NULL;
	tls.opts[0] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	tls.on = false;
}

/* ---- per request ------------------------------------------------------- */

bool req_is_tls(const req *r)
{
	return tls.on || r->peer;
}

/* The proxy's header: percent-decoded ('+' stays '+': it is base64, not a
 * space), then the first PEM certificate in it as DER, in the arena. */
static const void *cert_from_header(req *r, const char *h, size_t *len)
{
	size_t n = strlen(h), o;
	char *pem;
	unsigned char *der = NULL, *p;
	const void *res = NULL;
	X509 *x = NULL;
	BIO *b = NULL;
	int dlen;

	if (n == 0 || n > PROXY_CERT_MAX || !(pem = arena_alloc(&r->arena, n + 1)))
		goto out;
	o = uri_pct_decode(h, n, pem);
	if (!(b = BIO_new_mem_buf(pem, (int)o)) || !(x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		goto out;
	if ((dlen = i2d_X509(x, NULL)) <= 0 || !(der = arena_alloc(&r->arena, (size_t)dlen)))
		goto out;
	p = der;
	if (i2d_X509(x, &p) != dlen)
		goto out;
	*len = (size_t)dlen;
	res = der;
out:
	ERR_clear_error();
	X509_free(x);
	BIO_free(b);
	return res;
}

const void *req_client_cert(req *r, size_t *len)
{
	const void *cert = NULL;
	const char *h;

	*len = 0;
	if (tls.on || r->peer) {
		gnutls_session_t s = session_of(r);
		const gnutls_datum_t *peers;
		unsigned int n = 0;

		/* The peer's own certificate is first; the chain it may send
		 * is not needed (the verifier supplies our issuing CA). */
		if (s && (peers = gnutls_certificate_get_peers(s, &n)) && n > 0 && peers[0].size > 0) {
			*len = peers[0].size;
			cert = peers[0].data;
			goto out;
		}
	}
	if (!r->peer && server_proxy_peer_trusted(r) && (h = req_header(r, "X-Client-Cert")))
		cert = cert_from_header(r, h, len);
out:
	return cert;
}
