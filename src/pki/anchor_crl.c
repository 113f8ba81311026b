/*
 * anchor_crl.c: certificate revocation lists of the external trust anchors
 * (config key pki.trust_anchor_crls), for pki_verify_chain().
 *
 * Invariants:
 * - The set is read from one file (a PEM bundle of CRLs, or a single DER
 *   CRL) at pki_open() and again whenever the file's identity, size or
 *   modification time changes, so an operator (or a cron job fetching the
 *   national CA's CRL) replaces the file and the next login sees it. The
 *   file is best replaced by rename(2) so a reader never sees half of it.
 * - A reload that fails (file gone, unreadable, no CRL in it) keeps the
 *   last good set: a broken download must not switch revocation off.
 * - Signatures and validity periods are not checked here: X509_verify_cert
 *   checks the CRL it uses against the issuer's key and the time.
 * - lock guards everything below; callers get their own references.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "core/log.h"
#include "pki/pki_int.h"
#include "core/banned.h"

static struct {
	pthread_mutex_t lock;
	char path[4096];
	STACK_OF(X509_CRL) *crls;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Reads the file into a new stack; NULL with errmsg on failure. */
static STACK_OF(X509_CRL) *read_crls(const char *path, struct stat *st, char *errmsg, size_t errlen)
{
	STACK_OF(X509_CRL) *out = NULL;
	unsigned char *data = NULL;
	const unsigned char *p;
	X509_CRL *crl = NULL;
	FILE *f = NULL;
	BIO *b = NULL;
	size_t n;

	if (!(f = fopen(path, "rbe")) || fstat(fileno(f), st)) {
		snprintf(errmsg, errlen, "pki.trust_anchor_crls: cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (st->st_size <= 0 || st->st_size > PKI_ANCHOR_CRL_FILE_MAX) {
		snprintf(errmsg, errlen, "pki.trust_anchor_crls: %s is empty or larger than %ld bytes", path,
			 PKI_ANCHOR_CRL_FILE_MAX);
		goto out;
	}
	if (!(data = malloc((size_t)st->st_size)) || !(out = sk_X509_CRL_new_null())) {
		snprintf(errmsg, errlen, "pki.trust_anchor_crls: out of memory");
		goto fail;
	}
	n = fread(data, 1, (size_t)st->st_size, f);
	if (n != (size_t)st->st_size) {
		snprintf(errmsg, errlen, "pki.trust_anchor_crls: short read of %s", path);
		goto fail;
	}
	if (!(b = BIO_new_mem_buf(data, (int)n)))
		goto fail;
	while ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_CRL_push(out, crl)) {
			X509_CRL_free(crl);
			goto fail;
		}
	}
	if (sk_X509_CRL_num(out) == 0) {
		p = data;
		crl = d2i_X509_CRL(NULL, &p, (long)n);
		if (crl && p == data + n && sk_X509_CRL_push(out, crl))
			crl = NULL;
		X509_CRL_free(crl);
	}
	if (sk_X509_CRL_num(out) == 0) {
		snprintf(errmsg, errlen, "pki.trust_anchor_crls: no CRL (PEM or DER) in %s", path);
		goto fail;
	}
	goto out;
fail:
	sk_X509_CRL_pop_free(out, X509_CRL_free);
	out = NULL;
out:
	ERR_clear_error();
	BIO_free(b);
	free(data);
	if (f)
		fclose(f);
	return out;
}

static void remember(STACK_OF(X509_CRL) *crls, const struct stat *st)
{
	sk_X509_CRL_pop_free(g.crls, X509_CRL_free);
	g.crls = crls;
	g.dev = st->st_dev;
	g.ino = st->st_ino;
	g.size = st->st_size;
	g.mtime = st->st_mtim;
}

egov_err pki_anchor_crls_open(const char *path, char *errmsg, size_t errlen)
{
	STACK_OF(X509_CRL) *crls;
	struct stat st;

	pki_anchor_crls_close();
	if (!path || !*path)
		return EGOV_OK;
	if (!(crls = read_crls(path, &st, errmsg, errlen)))
		return EGOV_EINVAL;
	pthread_mutex_lock(&g.lock);
	snprintf(g.path, sizeof g.path, "%s", path);
	remember(crls, &st);
	pthread_mutex_unlock(&g.lock);
	return EGOV_OK;
}

void pki_anchor_crls_close(void)
{
	pthread_mutex_lock(&g.lock);
	sk_X509_CRL_pop_free(g.crls, X509_CRL_free);
	g.crls = NULL;
	g.path[0] = '\0';
	pthread_mutex_unlock(&g.lock);
}

/* Called with the lock held. */
static void reload_if_changed(void)
{
	STACK_OF(X509_CRL) *crls;
	struct stat st;
	char msg[512];

	if (stat(g.path, &st) == 0 && st.st_dev == g.dev && st.st_ino == g.ino && st.st_size == g.size &&
	    st.st_mtim.tv_sec == g.mtime.tv_sec && st.st_mtim.tv_nsec == g.mtime.tv_nsec)
		return;
	if (!(crls = read_crls(g.path, &st, msg, sizeof msg))) {
		log_warn("pki.anchor_crl_reload", "%s (keeping the previous CRLs)", msg);
		return;
	}
	remember(crls, &st);
	log_info("pki.anchor_crl_reload", "loaded %d CRL(s) from %s", sk_X509_CRL_num(crls), g.path);
}

STACK_OF(X509_CRL) *pki_anchor_crls_for(const X509_NAME *name)
{
	STACK_OF(X509_CRL) *out = NULL;
	X509_CRL *crl;
	int i;

	pthread_mutex_lock(&g.lock);
	if (!g.path[0] || !g.crls)
		goto out;
	reload_if_changed();
	for (i = 0; i < sk_X509_CRL_num(g.crls); i++) {
		crl = sk_X509_CRL_value(g.crls, i);
		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), name) != 0)
			continue;
		if (!out && !(out = sk_X509_CRL_new_null()))
			goto out;
		if (!X509_CRL_up_ref(crl))
			continue;
		if (!sk_X509_CRL_push(out, crl))
			X509_CRL_free(crl);
	}
out:
	pthread_mutex_unlock(&g.lock);
	return out;
}
