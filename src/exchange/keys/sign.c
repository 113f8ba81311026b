/*
 * sign.c: a gateway's signing keys (one per subsystem it serves), ES256
 * signing and verification of the canonical texts, and base64url.
 *
 * Invariants: exchange_sign() never reads a file on the hot path: keys are
 * loaded once into a cache (EVP_PKEY objects reused; callers take their
 * own reference, so a reload never frees a key in use) and rechecked on
 * disk at most every KEY_RECHECK_US, which is how a certificate installed
 * by the CLI while the node runs is picked up. Verification keys are cached
 * by certificate PEM text the same way. Signatures are JOSE ES256: raw
 * r||s, 64 bytes, base64url without padding (86 characters).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/b64url.h"
#include "core/timeutil.h"
#include "exchange/keys/keys.h"
#include "exchange/wire/wire.h"
#include "core/banned.h"

/* How often a cached signing key is looked at on disk again: a
 * certificate installed while the node runs is used within this. */
#define KEY_RECHECK_US (5LL * 1000000)
/* Buckets of the verification key cache (EXCHANGE_VERIFY_CACHE_MAX keys). */
#define VERIFY_BUCKETS 512

/* ---- base64url (core/b64url.h), with the output size checked ------------- */

size_t exchange_b64url_encode(const void *in, size_t n, char *out, size_t outlen)
{
	size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);

	if (outlen < need + 1)
		return 0;
	b64url_encode(in, n, out);
	return need;
}

/* ---- ES256 ------------------------------------------------------------------ */

egov_err exchange_es256_sign(EVP_PKEY *key, const void *msg, size_t len, char out[EXCHANGE_SIG_MAX])
{
	unsigned char der[80], raw[64];
	const unsigned char *p = der;
	size_t derlen = sizeof der;
	const BIGNUM *r = NULL, *s = NULL;
	ECDSA_SIG *sig = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	egov_err err = EGOV_EINTERNAL;

	out[0] = '\0';
	if (!md)
		return EGOV_ENOMEM;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &derlen, msg, len) != 1)
		goto out;
	if (!(sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen)))
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
		goto out;
	if (exchange_b64url_encode(raw, sizeof raw, out, EXCHANGE_SIG_MAX) == 0)
		goto out;
	err = EGOV_OK;
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return err;
}

egov_err exchange_es256_verify(EVP_PKEY *key, const void *msg, size_t len, const char *sig_b64)
{
	unsigned char raw[64], der[80], *dp = der;
	size_t n = 0;
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	EVP_MD_CTX *md = NULL;
	int derlen;
	egov_err err = EGOV_EAUTH;

	if (!key || !sig_b64 || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 256)
		return EGOV_EAUTH;
	if (b64url_decode(sig_b64, strlen(sig_b64), raw, sizeof raw, &n) || n != sizeof raw)
		return EGOV_EAUTH;
	if (!(sig = ECDSA_SIG_new()) || !(r = BN_bin2bn(raw, 32, NULL)) || !(s = BN_bin2bn(raw + 32, 32, NULL)) ||
	    !ECDSA_SIG_set0(sig, r, s)) {
		BN_free(r);
		BN_free(s);
		err = EGOV_ENOMEM;
		goto out;
	}
	derlen = i2d_ECDSA_SIG(sig, &dp);
	if (derlen <= 0)
		goto out;
	if (!(md = EVP_MD_CTX_new())) {
		err = EGOV_ENOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestVerify(md, der, (size_t)derlen, msg, len) == 1)
		err = EGOV_OK;
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return err;
}

/* ---- the signing key cache -------------------------------------------------- */

typedef struct key_entry {
	struct key_entry *next;
	char id[EXCHANGE_ID_MAX];
	EVP_PKEY *key;          /* NULL when the files are missing or unusable */
	char cert_sha256[65];
	struct timespec crt_mtime;
	int64_t checked_us;
} key_entry;

static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static key_entry *keys;

/* Loads sub's key and certificate into e (write lock held). */
static void key_reload(key_entry *e, int64_t now)
{
	char kpath[EXCHANGE_PATH_MAX], cpath[EXCHANGE_PATH_MAX];
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	struct stat st;
	buf pem = {0};

	e->checked_us = now;
	if (exchange_key_path(e->id, "crt", cpath, sizeof cpath) || stat(cpath, &st) != 0) {
		EVP_PKEY_free(e->key);
		e->key = NULL;
		return;
	}
	if (e->key && st.st_mtim.tv_sec == e->crt_mtime.tv_sec && st.st_mtim.tv_nsec == e->crt_mtime.tv_nsec)
		return;
	if (exchange_key_path(e->id, "key", kpath, sizeof kpath) || exchange_key_load(kpath, &k) ||
	    exchange_file_read(cpath, EXCHANGE_PEM_FILE_MAX, &pem))
		goto out;
	if (!(x = exchange_pem_cert(pem.data, pem.len)) || X509_check_private_key(x, k) != 1 ||
	    exchange_cert_sha256(x, e->cert_sha256))
		goto out;
	EVP_PKEY_free(e->key);
	e->key = k;
	k = NULL;
	e->crt_mtime = st.st_mtim;
out:
	if (k) {
		/* A key that does not match its certificate signs nothing. */
		EVP_PKEY_free(e->key);
		e->key = NULL;
	}
	EVP_PKEY_free(k);
	X509_free(x);
	buf_release(&pem);
}

/* The key of sub with a reference taken, and its certificate's hash. */
static key_entry *key_find(const char *sub)
{
	key_entry *e;

	for (e = keys; e && strcmp(e->id, sub) != 0; e = e->next) {
	}
	return e;
}

/* A reference to e's key (NULL when it has none) and its certificate's
 * hash; the lock held. */
static EVP_PKEY *key_take(const key_entry *e, char cert_sha256[65])
{
	if (!e || !e->key || EVP_PKEY_up_ref(e->key) != 1)
		return NULL;
	if (cert_sha256)
		memcpy(cert_sha256, e->cert_sha256, 65);
	return e->key;
}

static EVP_PKEY *key_get(const char *sub, char cert_sha256[65])
{
	int64_t now = time_mono_us();
	EVP_PKEY *k = NULL;
	key_entry *e;
	bool fresh;

	pthread_rwlock_rdlock(&keys_lock);
	e = key_find(sub);
	if ((fresh = e && now - e->checked_us < KEY_RECHECK_US))
		k = key_take(e, cert_sha256);
	pthread_rwlock_unlock(&keys_lock);
	if (fresh || !exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM))
		return k;
	pthread_rwlock_wrlock(&keys_lock);
	if (!(e = key_find(sub)) && (e = calloc(1, sizeof *e))) {
		snprintf(e->id, sizeof e->id, "%s", sub);
		e->checked_us = now - KEY_RECHECK_US;
		e->next = keys;
		keys = e;
	}
	if (e && now - e->checked_us >= KEY_RECHECK_US)
		key_reload(e, now);
	k = key_take(e, cert_sha256);
	pthread_rwlock_unlock(&keys_lock);
	return k;
}

void exchange_keys_forget(void)
{
	key_entry *e;

	pthread_rwlock_wrlock(&keys_lock);
	while ((e = keys)) {
		keys = e->next;
		EVP_PKEY_free(e->key);
		free(e);
	}
	pthread_rwlock_unlock(&keys_lock);
}

egov_err exchange_sign(const char *sub, const void *msg, size_t len, char out[EXCHANGE_SIG_MAX],
		       char cert_sha256[65])
{
	char sha[65];
	EVP_PKEY *k = key_get(sub, sha);
	egov_err err;

	out[0] = '\0';
	if (!k)
		return EGOV_ENOTFOUND;
	err = exchange_es256_sign(k, msg, len, out);
	EVP_PKEY_free(k);
	if (!err && cert_sha256)
		memcpy(cert_sha256, sha, 65);
	return err;
}

bool exchange_has_key(const char *sub)
{
	EVP_PKEY *k = key_get(sub, NULL);

	EVP_PKEY_free(k);
	return k != NULL;
}

/* ---- verification keys, by certificate ---------------------------------- */

typedef struct pub_entry {
	struct pub_entry *next;
	char *pem;
	EVP_PKEY *key;
} pub_entry;

static pthread_rwlock_t pub_lock = PTHREAD_RWLOCK_INITIALIZER;
static pub_entry *pub_buckets[VERIFY_BUCKETS];
static size_t pub_count;

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static EVP_PKEY *pub_lookup(const char *pem, uint32_t b)
{
	pub_entry *e;

	for (e = pub_buckets[b]; e; e = e->next)
		if (strcmp(e->pem, pem) == 0)
			return EVP_PKEY_up_ref(e->key) == 1 ? e->key : NULL;
	return NULL;
}

static void pub_clear(void)
{
	size_t i;

	for (i = 0; i < VERIFY_BUCKETS; i++) {
		pub_entry *e;
		while ((e = pub_buckets[i])) {
			pub_buckets[i] = e->next;
			EVP_PKEY_free(e->key);
			free(e->pem);
			free(e);
		}
	}
	pub_count = 0;
}

/* The public key of a PEM certificate, with a reference taken. */
static EVP_PKEY *pub_get(const char *pem)
{
	uint32_t b = fnv1a(pem) % VERIFY_BUCKETS;
	EVP_PKEY *k;
	X509 *x;
	pub_entry *e;

	pthread_rwlock_rdlock(&pub_lock);
	k = pub_lookup(pem, b);
	pthread_rwlock_unlock(&pub_lock);
	if (k)
		return k;
	if (!(x = exchange_pem_cert(pem, strlen(pem))))
		return NULL;
	k = X509_get_pubkey(x);
	X509_free(x);
	if (!k)
		return NULL;
	pthread_rwlock_wrlock(&pub_lock);
	if (pub_count >= EXCHANGE_VERIFY_CACHE_MAX)
		pub_clear();
	if ((e = calloc(1, sizeof *e)) && (e->pem = strdup(pem)) && EVP_PKEY_up_ref(k) == 1) {
		e->key = k;
		e->next = pub_buckets[b];
		pub_buckets[b] = e;
		pub_count++;
		e = NULL;
	}
	if (e) {
		free(e->pem);
		free(e);
	}
	pthread_rwlock_unlock(&pub_lock);
	return k;
}

egov_err exchange_verify(const char *cert_pem, const void *msg, size_t len, const char *sig_b64)
{
	EVP_PKEY *k;
	egov_err err;

	if (!cert_pem || !(k = pub_get(cert_pem)))
		return EGOV_EAUTH;
	err = exchange_es256_verify(k, msg, len, sig_b64);
	EVP_PKEY_free(k);
	return err;
}

