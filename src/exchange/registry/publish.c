/*
 * publish.c: the global configuration the central node publishes: built
 * from the registry (leaving out certificates that are revoked or
 * expired), signed as a compact JWS (ES256 with DATA/exchange/central.key,
 * the certificate in x5c) and served at GET /exchange/v1/globalconf.
 *
 * The signed document is cached until the registry version or the
 * platform CA's revocation list changes, or it is half-way to expiry, so
 * gateways polling it cost a version query each. The central key is
 * loaded once (central_lock guards it and the cache).
 *
 * The document names the instances the registry trusts ("federation":
 * instance, its central node's URL, the configuration signing certificate
 * that must sign its configuration, its SHA-256), as an X-Road central
 * server hands its security servers the anchors of federated instances;
 * a trusted certificate that has expired is left out.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
#include "exchange/registry/registry_int.h"
#include "pki/pki.h"
#include "core/banned.h"

/* "key": [ {names[0]: column 0, names[1]: column 1, ...}, ... ] for a query
 * whose columns are all text, in the query's order. */
static egov_err write_text_rows(jw *w, db_conn *c, const char *key, const char *sql, const char *const *names)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;
	int i;

	jw_key(w, key);
	jw_arr_begin(w);
	if ((err = db_query(c, sql, NULL, 0, &rows)))
		return err;
	while (!(err = db_rows_next(rows, &has)) && has) {
		jw_obj_begin(w);
		for (i = 0; names[i]; i++)
			jw_kstr(w, names[i], db_rows_text(rows, i));
		jw_obj_end(w);
	}
	db_rows_free(rows);
	if (!err)
		jw_arr_end(w);
	return err;
}

static egov_err build_once(db_conn *c, int64_t now_us, buf *out, int64_t *version)
{
	const egov_config *cfg = registry_config();
	db_rows *rows = NULL, *certs = NULL;
	bool has = false, chas = false;
	char gen[32], exp[32], tsa[600];
	int validity = exchange_settings(cfg)->conf_validity_s;
	jw w;
	egov_err err;

	if ((err = exchange_registry_version(c, version)))
		return err;
	time_format_rfc3339(now_us, 0, gen);
	time_format_rfc3339(now_us + (int64_t)validity * 1000000, 0, exp);
	snprintf(tsa, sizeof tsa, "%s/pki/tsa",
		 cfg && *pki_public_url(cfg) ? pki_public_url(cfg) : "http://127.0.0.1:8080");
	buf_reset(out);
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "instance", exchange_settings(cfg)->instance);
	jw_kint(&w, "version", *version);
	jw_kstr(&w, "generated_at", gen);
	jw_kstr(&w, "expires_at", exp);
	jw_kstr(&w, "tsa_url", tsa);

	if ((err = write_text_rows(&w, c, "members", "SELECT id, name FROM exchange_member ORDER BY id",
				   (const char *const[]){"id", "name", NULL})))
		goto out;

	/* Subsystems and their certificates, both in subsystem order: a merge. */
	jw_key(&w, "subsystems");
	jw_arr_begin(&w);
	if ((err = db_query(c, "SELECT id, gateway FROM exchange_subsystem ORDER BY id", NULL, 0, &rows)) ||
	    (err = db_query(c,
			    "SELECT subsystem_id, usage, serial, sha256, pem, pki_serial, not_after FROM exchange_cert"
			    " ORDER BY subsystem_id, usage, sha256",
			    NULL, 0, &certs)) ||
	    (err = db_rows_next(certs, &chas)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		const char *id = db_rows_text(rows, 0);
		jw_obj_begin(&w);
		jw_kstr(&w, "id", id);
		jw_kstr(&w, "gateway", db_rows_text(rows, 1));
		jw_key(&w, "certs");
		jw_arr_begin(&w);
		while (chas && strcmp(db_rows_text(certs, 0), id) < 0)
			if ((err = db_rows_next(certs, &chas)))
				goto out;
		while (chas && strcmp(db_rows_text(certs, 0), id) == 0) {
			if (registry_cert_current(c, db_rows_text(certs, 5), db_rows_text(certs, 6), now_us)) {
				jw_obj_begin(&w);
				jw_kstr(&w, "usage", db_rows_text(certs, 1));
				jw_kstr(&w, "serial", db_rows_text(certs, 2));
				jw_kstr(&w, "sha256", db_rows_text(certs, 3));
				jw_kstr(&w, "pem", db_rows_text(certs, 4));
				jw_obj_end(&w);
			}
			if ((err = db_rows_next(certs, &chas)))
				goto out;
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	db_rows_free(rows);
	db_rows_free(certs);
	rows = certs = NULL;
	if (err)
		goto out;
	jw_arr_end(&w);

	jw_key(&w, "services");
	jw_arr_begin(&w);
	if ((err = db_query(c,
			    "SELECT id, title, log_mode, max_body, openapi, timeout_ms FROM exchange_service ORDER BY id",
			    NULL, 0, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		jw_obj_begin(&w);
		jw_kstr(&w, "id", db_rows_text(rows, 0));
		jw_kstr(&w, "title", db_rows_text(rows, 1));
		jw_kstr(&w, "log", db_rows_text(rows, 2));
		jw_kint(&w, "max_body", db_rows_int(rows, 3));
		jw_kint(&w, "timeout_ms", exchange_service_timeout_ms(db_rows_int(rows, 5)));
		if (db_rows_text(rows, 4)) {
			jw_key(&w, "openapi");
			jw_raw(&w, db_rows_text(rows, 4));
		}
		jw_obj_end(&w);
	}
	db_rows_free(rows);
	rows = NULL;
	if (err)
		goto out;
	jw_arr_end(&w);

	if ((err = write_text_rows(&w, c, "access",
				   "SELECT client_id, service_id, methods, paths FROM exchange_access"
				   " ORDER BY client_id, service_id",
				   (const char *const[]){"client", "service", "methods", "paths", NULL})))
		goto out;

	if ((err = write_text_rows(&w, c, "event_types", "SELECT id FROM exchange_event_type ORDER BY id",
				   (const char *const[]){"id", NULL})))
		goto out;

	jw_key(&w, "federation");
	jw_arr_begin(&w);
	if ((err = db_query(c,
			    "SELECT instance, url, cert_sha256, cert_pem, not_after FROM exchange_trusted_instance"
			    " ORDER BY instance",
			    NULL, 0, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		int64_t na = 0;
		if (time_parse_rfc3339(db_rows_text(rows, 4), &na) || na <= now_us)
			continue; /* its configuration could not be verified anyway */
		jw_obj_begin(&w);
		jw_kstr(&w, "instance", db_rows_text(rows, 0));
		jw_kstr(&w, "url", db_rows_text(rows, 1));
		jw_kstr(&w, "sha256", db_rows_text(rows, 2));
		jw_kstr(&w, "pem", db_rows_text(rows, 3));
		jw_obj_end(&w);
	}
	db_rows_free(rows);
	rows = NULL;
	if (err)
		goto out;
	jw_arr_end(&w);
	jw_obj_end(&w);
	err = w.err;
out:
	db_rows_free(rows);
	db_rows_free(certs);
	return err;
}

egov_err exchange_conf_build(db_conn *c, int64_t now_us, buf *payload, int64_t *version)
{
	int64_t after = 0;
	int tries;
	egov_err err = EGOV_EBUSY;

	/* The reads are separate statements: when a change lands between
	 * them the version moved, and the build starts over. */
	for (tries = 0; tries < 5; tries++) {
		if ((err = build_once(c, now_us, payload, version)) || (err = exchange_registry_version(c, &after)))
			return err;
		if (after == *version)
			return EGOV_OK;
		err = EGOV_EBUSY;
	}
	return err;
}

egov_err exchange_conf_sign(EVP_PKEY *key, const char *cert_pem, const char *payload, buf *jws)
{
	unsigned char *der = NULL;
	int dlen = 0;
	char *x5c = NULL, *enc = NULL, sig[128];
	size_t plen = strlen(payload), elen = plen / 3 * 4 + 4;
	buf hdr;
	egov_err err = EGOV_EINVAL;

	buf_init(&hdr, 64 * 1024);
	if (!(der = exchange_pem_der(cert_pem, &dlen)))
		goto out;
	err = EGOV_ENOMEM;
	if (!(x5c = malloc((size_t)dlen / 3 * 4 + 8)) || !(enc = malloc(elen > 128 * 1024 ? elen : 128 * 1024)))
		goto out;
	EVP_EncodeBlock((unsigned char *)x5c, der, dlen);
	if ((err = buf_addf(&hdr, "{\"alg\":\"ES256\",\"typ\":\"egov-globalconf\",\"x5c\":[\"%s\"]}", x5c)))
		goto out;
	buf_reset(jws);
	err = EGOV_ELIMIT;
	if (!exchange_b64url_encode(hdr.data, hdr.len, enc, elen > 128 * 1024 ? elen : 128 * 1024))
		goto out;
	if ((err = buf_adds(jws, enc)) || (err = buf_addc(jws, '.')))
		goto out;
	err = EGOV_ELIMIT;
	if (plen && !exchange_b64url_encode(payload, plen, enc, elen > 128 * 1024 ? elen : 128 * 1024))
		goto out;
	if ((err = buf_adds(jws, plen ? enc : "")))
		goto out;
	if ((err = exchange_es256_sign(key, jws->data, jws->len, sig)))
		goto out;
	if ((err = buf_addc(jws, '.')) || (err = buf_adds(jws, sig)))
		goto out;
out:
	buf_release(&hdr);
	OPENSSL_free(der);
	free(x5c);
	free(enc);
	return err;
}

static pthread_mutex_t central_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	EVP_PKEY *key;
	char *cert_pem;
	char *jws;
	size_t len;
	int64_t version, generated_us, validity_us;
	char crl_sha[65];
} central;

/* Loads the central key and certificate once (central_lock held). */
static egov_err central_load(void)
{
	char kpath[EXCHANGE_PATH_MAX], cpath[EXCHANGE_PATH_MAX];
	buf pem = {0};
	X509 *x = NULL;
	egov_err err;

	if (central.key)
		return EGOV_OK;
	if ((err = exchange_path(kpath, sizeof kpath, "central.key")) ||
	    (err = exchange_path(cpath, sizeof cpath, "central.crt")))
		return err;
	if ((err = exchange_key_load(kpath, &central.key)))
		return err;
	if ((err = exchange_file_read(cpath, EXCHANGE_PEM_MAX, &pem)))
		goto out;
	err = EGOV_ECORRUPT;
	if (!(x = exchange_pem_cert(pem.data, pem.len)) || X509_check_private_key(x, central.key) != 1)
		goto out;
	central.cert_pem = buf_detach(&pem, NULL);
	err = EGOV_OK;
out:
	X509_free(x);
	buf_release(&pem);
	if (err) {
		EVP_PKEY_free(central.key);
		central.key = NULL;
	}
	return err;
}

/* A fingerprint of the revocation list, so a revocation made through the
 * CA (which does not touch the registry) rebuilds the document. */
static void crl_fingerprint(db_conn *c, char out[65])
{
	unsigned char *der = NULL;
	size_t len = 0;

	out[0] = '\0';
	if (pki_is_open() && pki_crl_der(c, &der, &len) == EGOV_OK)
		crypto_sha256_hex(der, len, out);
	free(der);
}

egov_err exchange_conf_current(db_conn *c, char **jws, size_t *len, int64_t *version)
{
	int64_t now = time_now_us(), reg = 0;
	int64_t validity_us = (int64_t)registry_settings()->conf_validity_s * 1000000;
	char crl[65];
	buf payload, out;
	egov_err err;

	*jws = NULL;
	*len = 0;
	pthread_mutex_lock(&central_lock);
	if ((err = central_load()))
		goto out;
	if ((err = exchange_registry_version(c, &reg)))
		goto out;
	crl_fingerprint(c, crl);
	if (!central.jws || central.version != reg || strcmp(central.crl_sha, crl) != 0 ||
	    now - central.generated_us >= validity_us / 2 || central.validity_us != validity_us) {
		buf_init(&payload, EXCHANGE_CONF_MAX);
		buf_init(&out, EXCHANGE_CONF_MAX);
		if (!(err = exchange_conf_build(c, now, &payload, &reg)) &&
		    !(err = exchange_conf_sign(central.key, central.cert_pem, payload.data, &out))) {
			free(central.jws);
			central.jws = buf_detach(&out, &central.len);
			central.version = reg;
			central.generated_us = now;
			central.validity_us = validity_us;
			memcpy(central.crl_sha, crl, sizeof crl);
		}
		buf_release(&payload);
		buf_release(&out);
		if (err)
			goto out;
	}
	if (!(*jws = malloc(central.len + 1))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	memcpy(*jws, central.jws, central.len + 1);
	*len = central.len;
	*version = central.version;
out:
	pthread_mutex_unlock(&central_lock);
	return err;
}

egov_err exchange_http_globalconf(req *r)
{
	db_conn *c = NULL;
	char *jws = NULL, etag[20];
	size_t len = 0;
	int64_t version = 0;
	egov_err err;

	if ((err = registry_conn(&c)))
		return err;
	err = exchange_conf_current(c, &jws, &len, &version);
	if (err == EGOV_ENOTFOUND)
		return resp_problem(r, 503, "exchange.conf_missing", NULL, "no central signing key (egov exchange central init)");
	if (err)
		return err;
	http_etag(jws, len, etag);
	resp_header(r, "ETag", etag);
	resp_header(r, "Cache-Control", "no-cache");
	if (req_etag_matches(r, etag)) {
		free(jws);
		return resp_empty(r, 304);
	}
	err = resp_bytes(r, 200, "application/jose", jws, len, true);
	free(jws);
	return err;
}


int registry_conf_show(db *d)
{
	exchange_conf *cf = NULL;
	const char *why = NULL;
	db_conn *c = NULL;
	char *jws = NULL, msg[512];
	size_t len = 0;
	int64_t version = 0;
	int rc = 2;

	if (!pki_is_open() && pki_open(registry_config(), msg, sizeof msg))
		fprintf(stderr, "egov: pki: %s (revocations not checked)\n", msg);
	if (db_thread_conn(d, &c) || exchange_conf_current(c, &jws, &len, &version)) {
		fprintf(stderr, "egov: cannot build the global configuration (egov exchange central init?)\n");
		return 2;
	}
	if (!exchange_conf_parse(jws, len, central.cert_pem, exchange_settings(registry_config())->instance, 0, &cf,
				 &why)) {
		exchange_conf_print(cf);
		rc = 0;
	}
	exchange_conf_put(cf);
	free(jws);
	return rc;
}
