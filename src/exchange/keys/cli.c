/*
 * cli.c: the gateway's key commands: `egov exchange keygen SUBSYSTEM`
 * makes (or keeps) the subsystem's signing key and prints a CSR for it;
 * `egov exchange cert install SUBSYSTEM FILE` puts the certificate the
 * central node issued beside the key, once it matches the key and has not
 * expired.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "exchange/keys/keys.h"
#include "exchange/wire/wire.h"
#include "core/banned.h"

/* ---- commands --------------------------------------------------------------- */

/* CN for a subsystem's CSR: the id when it fits the CA's 64 characters,
 * else its last part (the CA puts the owner, the full id, in UID). */
static void csr_cn(const char *sub, char cn[EXCHANGE_PART_MAX + 1])
{
	const char *last = strrchr(sub, '/'), *src = strlen(sub) <= 64 || !last ? sub : last + 1;
	size_t n = strlen(src);

	if (n > EXCHANGE_PART_MAX)
		n = EXCHANGE_PART_MAX;
	memcpy(cn, src, n);
	cn[n] = '\0';
}

static int cmd_keygen(int argc, char **argv)
{
	char path[EXCHANGE_PATH_MAX], cn[EXCHANGE_PART_MAX + 1];
	EVP_PKEY *k = NULL;
	buf csr = {0};
	egov_err err;
	int rc = 2;

	if (argc != 3 || !exchange_id_valid(argv[2], EXCHANGE_ID_SUBSYSTEM)) {
		fprintf(stderr, "usage: egov exchange keygen INSTANCE/CLASS/MEMBER/SUBSYSTEM\n");
		return 2;
	}
	if (exchange_dirs() || exchange_key_path(argv[2], "key", path, sizeof path)) {
		fprintf(stderr, "egov: cannot create the directory for %s\n", path);
		return 2;
	}
	err = exchange_key_load(path, &k);
	if (err == EGOV_ENOTFOUND) {
		if ((err = exchange_key_create(path, &k))) {
			fprintf(stderr, "egov: cannot write %s\n", path);
			goto out;
		}
		fprintf(stderr, "egov: made %s\n", path);
	} else if (err) {
		fprintf(stderr, "egov: %s exists but is not a P-256 key readable only by its owner\n", path);
		goto out;
	} else {
		/* Never replace a key silently: print a CSR for the one there. */
		fprintf(stderr, "egov: %s exists; its CSR follows\n", path);
	}
	csr_cn(argv[2], cn);
	if (exchange_csr_pem(k, cn, &csr)) {
		fprintf(stderr, "egov: cannot make the CSR\n");
		goto out;
	}
	fwrite(csr.data, 1, csr.len, stdout);
	rc = 0;
out:
	buf_release(&csr);
	EVP_PKEY_free(k);
	return rc;
}

static int cmd_cert_install(int argc, char **argv)
{
	char kpath[EXCHANGE_PATH_MAX], cpath[EXCHANGE_PATH_MAX], sha[65];
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	buf pem = {0};
	int rc = 1;

	if (argc != 4 || !exchange_id_valid(argv[2], EXCHANGE_ID_SUBSYSTEM)) {
		fprintf(stderr, "usage: egov exchange cert install INSTANCE/CLASS/MEMBER/SUBSYSTEM FILE\n");
		return 2;
	}
	if (exchange_key_path(argv[2], "key", kpath, sizeof kpath) ||
	    exchange_key_path(argv[2], "crt", cpath, sizeof cpath))
		return 2;
	if (exchange_key_load(kpath, &k)) {
		fprintf(stderr, "egov: no usable key %s (run egov exchange keygen %s)\n", kpath, argv[2]);
		goto out;
	}
	if (exchange_file_read(argv[3], EXCHANGE_PEM_FILE_MAX, &pem) || !(x = exchange_pem_cert(pem.data, pem.len))) {
		fprintf(stderr, "egov: %s: not a PEM certificate\n", argv[3]);
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		fprintf(stderr, "egov: %s does not match the key %s\n", argv[3], kpath);
		goto out;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
		fprintf(stderr, "egov: %s has expired\n", argv[3]);
		goto out;
	}
	if (exchange_file_write(cpath, pem.data, pem.len, 0644)) {
		fprintf(stderr, "egov: cannot write %s\n", cpath);
		rc = 2;
		goto out;
	}
	exchange_cert_sha256(x, sha);
	printf("%s\t%s\n", argv[2], sha);
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	buf_release(&pem);
	return rc;
}

int exchange_keys_command(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
		return cmd_keygen(argc, argv);
	if (argc >= 3 && strcmp(argv[1], "cert") == 0 && strcmp(argv[2], "install") == 0)
		return cmd_cert_install(argc - 1, argv + 1);
	return -1;
}
