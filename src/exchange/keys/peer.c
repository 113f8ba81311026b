/*
 * peer.c: what a gateway presents and checks when it calls another
 * gateway (a service call, a push): its TLS client certificate and key
 * (server.peer_tls_cert, server.peer_tls_key) and the CA bundle the other
 * side's certificate must chain to. The other side is also pinned by the
 * public keys of its tls certificates in the global configuration (the
 * pins come with the parsed configuration, conf/parse.c).
 *
 * The bundle is server.peer_tls_ca when set; else a node with a peer
 * certificate writes its own platform CA (root and issuing certificates,
 * DATA/pki) once at start as DATA/exchange/peer-ca.pem, as libcurl wants
 * one file. Set up before the gateway serves, read-only after.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exchange/keys/keys.h"
#include "core/banned.h"

static pthread_mutex_t peer_mu = PTHREAD_MUTEX_INITIALIZER;
static exchange_peer_tls peer;

static egov_err append_file(FILE *out, const char *path)
{
	FILE *in = fopen(path, "rb");
	char chunk[4096];
	size_t n;
	egov_err err = EGOV_OK;

	if (!in)
		return EGOV_EIO;
	while (!err && (n = fread(chunk, 1, sizeof chunk, in)) > 0)
		if (fwrite(chunk, 1, n, out) != n)
			err = EGOV_EIO;
	fclose(in);
	return err;
}

/* The platform's root and issuing certificates as one bundle. */
static egov_err write_bundle(const char *data_dir, char out[EXCHANGE_PATH_MAX])
{
	char dir[EXCHANGE_PATH_MAX], tmp[EXCHANGE_PATH_MAX], root[EXCHANGE_PATH_MAX], issuing[EXCHANGE_PATH_MAX];
	FILE *f;
	egov_err err = EGOV_OK;

	if (strlen(data_dir) > sizeof dir - 64)
		return EGOV_EINVAL;
	snprintf(dir, sizeof dir, "%s/exchange", data_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return EGOV_EIO;
	snprintf(root, sizeof root, "%s/pki/root.crt", data_dir);
	snprintf(issuing, sizeof issuing, "%s/pki/issuing.crt", data_dir);
	snprintf(out, EXCHANGE_PATH_MAX, "%s/exchange/peer-ca.pem", data_dir);
	snprintf(tmp, sizeof tmp, "%s/exchange/peer-ca.pem.tmp", data_dir);
	if (!(f = fopen(tmp, "wb")))
		return EGOV_EIO;
	if (append_file(f, root) || append_file(f, issuing))
		err = EGOV_EIO;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		err = EGOV_EIO;
	fclose(f);
	if (!err && rename(tmp, out) != 0)
		err = EGOV_EIO;
	if (err)
		unlink(tmp);
	return err;
}

egov_err exchange_peer_tls_setup(const egov_config *cfg)
{
	exchange_peer_tls p;
	egov_err err = EGOV_OK;

	memset(&p, 0, sizeof p);
	snprintf(p.cert, sizeof p.cert, "%s", cfg->peer_tls_cert ? cfg->peer_tls_cert : "");
	snprintf(p.key, sizeof p.key, "%s", cfg->peer_tls_key ? cfg->peer_tls_key : "");
	if (cfg->peer_tls_ca && *cfg->peer_tls_ca)
		snprintf(p.ca, sizeof p.ca, "%s", cfg->peer_tls_ca);
	else if (p.cert[0])
		err = write_bundle(cfg->data_dir ? cfg->data_dir : ".", p.ca);
	if (err)
		return err;
	pthread_mutex_lock(&peer_mu);
	peer = p;
	pthread_mutex_unlock(&peer_mu);
	return EGOV_OK;
}

const exchange_peer_tls *exchange_peer_tls_get(void)
{
	return &peer;
}
