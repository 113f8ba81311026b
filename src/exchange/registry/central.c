/*
 * central.c: the central node's configuration signing key: `egov exchange
 * central init` makes DATA/exchange/central.key (P-256, 0600) and has the
 * platform CA certify it (profile system_sign) as DATA/exchange/
 * central.crt, which gateways pin as exchange.central_cert. Idempotent: a
 * matching pair is kept, a mismatched one is refused.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "exchange/keys/keys.h"
#include "exchange/registry/registry_int.h"
#include "pki/pki.h"
#include "core/banned.h"

/* Opens the platform CA for commands that issue or check certificates. */
int registry_open_pki(void)
{
	char msg[512];

	if (pki_is_open())
		return 0;
	if (pki_open(registry_config(), msg, sizeof msg)) {
		fprintf(stderr, "egov: pki: %s\n", msg);
		return -1;
	}
	return 0;
}

egov_err exchange_central_init(db_conn *c, char *msg, size_t msglen)
{
	char kpath[EXCHANGE_PATH_MAX], cpath[EXCHANGE_PATH_MAX];
	EVP_PKEY *k = NULL;
	buf csr = {0}, have = {0};
	pki_cert_info ci = {0};
	const char *code = NULL;
	const char *inst = registry_settings()->instance;
	char cn[80];
	egov_err err;

	msg[0] = '\0';
	if ((err = exchange_dirs()) || (err = exchange_path(kpath, sizeof kpath, "central.key")) ||
	    (err = exchange_path(cpath, sizeof cpath, "central.crt"))) {
		snprintf(msg, msglen, "cannot create DATA/exchange");
		return err;
	}
	err = exchange_key_load(kpath, &k);
	if (err == EGOV_OK && exchange_file_read(cpath, EXCHANGE_PEM_MAX, &have) == EGOV_OK) {
		X509 *x = exchange_pem_cert(have.data, have.len);
		bool ok = x && X509_check_private_key(x, k) == 1;
		X509_free(x);
		if (ok) {
			snprintf(msg, msglen, "%s exists", cpath);
			goto out;
		}
		snprintf(msg, msglen, "%s does not match %s; remove both to start over", cpath, kpath);
		err = EGOV_ECORRUPT;
		goto out;
	}
	if (err == EGOV_ENOTFOUND) {
		if ((err = exchange_key_create(kpath, &k))) {
			snprintf(msg, msglen, "cannot write %s", kpath);
			goto out;
		}
	} else if (err) {
		snprintf(msg, msglen, "%s is not a P-256 key readable only by its owner", kpath);
		goto out;
	}
	snprintf(cn, sizeof cn, "%s exchange central", inst);
	if ((err = exchange_csr_pem(k, cn, &csr)))
		goto out;
	if ((err = pki_issue_from_csr(c, csr.data, csr.len, "system_sign", "exchange:central", cn, &ci, &code))) {
		snprintf(msg, msglen, "the CA refused: %s", code ? code : egov_err_name(err));
		goto out;
	}
	if ((err = exchange_file_write(cpath, ci.pem, strlen(ci.pem), 0644))) {
		snprintf(msg, msglen, "cannot write %s", cpath);
		goto out;
	}
	if (audit_available()) {
		char object[64];
		snprintf(object, sizeof object, "cert:%s", ci.serial);
		audit_append("operator:cli", "exchange.central.init", object, NULL, NULL);
	}
	snprintf(msg, msglen, "made %s (serial %s)", cpath, ci.serial);
out:
	pki_cert_info_release(&ci);
	buf_release(&csr);
	buf_release(&have);
	EVP_PKEY_free(k);
	return err;
}

int exchange_central_command(int argc, char **argv, db *d)
{
	char msg[512];
	db_conn *c = NULL;

	if (argc < 2 || strcmp(argv[1], "central") != 0)
		return -1;
	if (argc != 3 || strcmp(argv[2], "init") != 0) {
		fprintf(stderr, "usage: egov exchange central init\n");
		return 2;
	}
	if (registry_open_pki())
		return 2;
	if (db_thread_conn(d, &c)) {
		fprintf(stderr, "egov: cannot connect to the database\n");
		return 2;
	}
	if (exchange_central_init(c, msg, sizeof msg)) {
		fprintf(stderr, "egov: exchange central init: %s\n", msg);
		return 2;
	}
	fprintf(stderr, "egov: %s\n", msg);
	return 0;
}
