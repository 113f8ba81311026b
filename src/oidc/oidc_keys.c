/*
 * oidc_keys.c: the ES256 signing keys of the provider and their rotation.
 *
 * A key's private half is a PEM file DATA/oidc/<kid>.pem (directory 0700,
 * file 0600, created with O_EXCL and fsynced) and never leaves this
 * process otherwise; the database holds only kid, the public key and the
 * dates (table oidc_key). kid is the RFC 7638 thumbprint of the public JWK.
 *
 * Rotation with overlap: a key signs from created_at to sign_until
 * (created_at + oidc.key_rotation_days); it stays published in the JWKS
 * until verify_until = sign_until + token lifetime + OIDC_KEY_MARGIN_S, so
 * every token it signed can still be checked. The active key is the newest
 * one still inside its signing period; when none is, a new key is made.
 *
 * Invariants: the cache is read and replaced under one mutex; callers get
 * their own reference (EVP_PKEY_up_ref) so a cache reload never frees a key
 * in use.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/app.h"
#include "core/crypto.h"
#include "core/log.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

#define CACHE_TTL_S 60

typedef struct key_entry {
	char kid[OIDC_KID_MAX + 1];
	char jwk[256];
	EVP_PKEY *pub;
	EVP_PKEY *priv; /* loaded on first signing */
	int64_t created_at, sign_until, verify_until;
} key_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static key_entry cache[OIDC_KEYS_CACHED_MAX];
static int cache_n;
static int64_t cache_loaded_at = -1;
static char key_dir[1024];
static int rotation_days, token_ttl_s;
static char issuer_override[512];

/* ---- configuration ---------------------------------------------------- */

void oidc_set_issuer(const char *iss)
{
	snprintf(issuer_override, sizeof issuer_override, "%s", iss ? iss : "");
}

/* The [oidc] values of the running node, NULL before it has a config. */
static const oidc_config *config(void)
{
	return app()->config ? config_section_values(app()->config, &oidc_config_section) : NULL;
}

const char *oidc_issuer(void)
{
	const oidc_config *oc = config();

	if (issuer_override[0])
		return issuer_override;
	if (oc && oc->issuer && oc->issuer[0])
		return oc->issuer;
	return "http://127.0.0.1:8080";
}

int oidc_token_ttl(void)
{
	const oidc_config *oc = config();

	if (token_ttl_s > 0)
		return token_ttl_s;
	if (oc && oc->access_token_ttl_s > 0)
		return oc->access_token_ttl_s;
	return 300;
}

static int64_t rotation_s(void)
{
	const oidc_config *oc = config();
	int days = rotation_days;

	if (days <= 0 && oc)
		days = oc->key_rotation_days;
	if (days <= 0)
		days = 30;
	return (int64_t)days * 86400;
}

void oidc_keys_set_dir(const char *dir)
{
	pthread_mutex_lock(&lock);
	snprintf(key_dir, sizeof key_dir, "%s", dir ? dir : "");
	pthread_mutex_unlock(&lock);
}

void oidc_keys_set_policy(int days, int ttl_s)
{
	rotation_days = days;
	token_ttl_s = ttl_s;
}

/* NULL when there is no data directory to keep keys in (never the
 * working directory by accident). */
static const char *dir_path(void)
{
	static char derived[1024];

	if (key_dir[0])
		return key_dir;
	if (app()->config && app()->config->data_dir && app()->config->data_dir[0]) {
		snprintf(derived, sizeof derived, "%s/oidc", app()->config->data_dir);
		return derived;
	}
	return NULL;
}

/* ---- cache ------------------------------------------------------------ */

static void cache_clear(void)
{
	int i;

	for (i = 0; i < cache_n; i++) {
		EVP_PKEY_free(cache[i].pub);
		EVP_PKEY_free(cache[i].priv);
	}
	memset(cache, 0, sizeof cache);
	cache_n = 0;
	cache_loaded_at = -1;
}

void oidc_keys_reset(void)
{
	pthread_mutex_lock(&lock);
	cache_clear();
	pthread_mutex_unlock(&lock);
}

static EVP_PKEY *pem_pub(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return k;
}

/* Reloads the published keys from the database (lock held). */
static egov_err cache_load(db_conn *c)
{
	db_rows *rows = NULL;
	int64_t now = oidc_now();
	bool has = false;
	egov_err err;

	err = db_query(c,
		       "SELECT kid, public_pem, public_jwk, created_at, sign_until, verify_until FROM oidc_key"
		       " WHERE verify_until > ? ORDER BY created_at DESC, kid",
		       (db_param[]){DBP_I(now)}, 1, &rows);
	if (err)
		return err;
	cache_clear();
	while (!(err = db_rows_next(rows, &has)) && has && cache_n < OIDC_KEYS_CACHED_MAX) {
		key_entry *e = &cache[cache_n];
		const char *kid = db_rows_text(rows, 0), *pem = db_rows_text(rows, 1), *jwk = db_rows_text(rows, 2);
		if (!kid || !pem || !jwk || strlen(kid) > OIDC_KID_MAX || strlen(jwk) >= sizeof e->jwk)
			continue;
		if (!(e->pub = pem_pub(pem))) {
			log_warn("oidc.key_bad", "public key %s does not parse", kid);
			continue;
		}
		memcpy(e->kid, kid, strlen(kid) + 1);
		memcpy(e->jwk, jwk, strlen(jwk) + 1);
		e->created_at = db_rows_int(rows, 3);
		e->sign_until = db_rows_int(rows, 4);
		e->verify_until = db_rows_int(rows, 5);
		cache_n++;
	}
	db_rows_free(rows);
	/* On error a partial list stays usable; the next call reloads. */
	if (!err)
		cache_loaded_at = now;
	return err;
}

static egov_err cache_fresh(db_conn *c)
{
	int64_t now = oidc_now();

	if (cache_loaded_at >= 0 && now - cache_loaded_at < CACHE_TTL_S && now >= cache_loaded_at)
		return EGOV_OK;
	return cache_load(c);
}

/* ---- key creation ----------------------------------------------------- */

static egov_err pub_coords(EVP_PKEY *k, char x[44], char y[44])
{
	BIGNUM *bx = NULL, *by = NULL;
	unsigned char rx[32], ry[32];
	egov_err err = EGOV_EINTERNAL;

	if (!EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) ||
	    !EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &by))
		goto out;
	if (BN_bn2binpad(bx, rx, 32) != 32 || BN_bn2binpad(by, ry, 32) != 32)
		goto out;
	b64url_encode(rx, 32, x);
	b64url_encode(ry, 32, y);
	err = EGOV_OK;
out:
	BN_free(bx);
	BN_free(by);
	return err;
}

static egov_err mkdir_private(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return EGOV_EIO;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return EGOV_EIO;
	if ((st.st_mode & 077) && chmod(dir, 0700) != 0)
		return EGOV_EIO;
	return EGOV_OK;
}

static egov_err write_private(const char *path, EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len = 0;
	int fd = -1;
	egov_err err = EGOV_EIO;

	if (!b || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		goto out;
	len = BIO_get_mem_data(b, &data);
	if (len <= 0)
		goto out;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		goto out;
	if (write(fd, data, (size_t)len) != len || fsync(fd) != 0)
		goto out;
	err = EGOV_OK;
out:
	if (fd >= 0)
		close(fd);
	if (err && fd >= 0)
		unlink(path);
	/* A memory BIO frees its bytes without wiping them. */
	if (data && len > 0)
		OPENSSL_cleanse(data, (size_t)len);
	BIO_free(b);
	return err;
}

/* Makes a new key that signs from now (lock held). */
static egov_err key_create(db_conn *c)
{
	EVP_PKEY *k = NULL;
	BIO *b = NULL;
	char x[44], y[44], jwk[256], thumb_in[200], kid[44], path[1200];
	unsigned char h[32];
	char *pem = NULL;
	long pemlen;
	int64_t now = oidc_now(), sign_until = now + rotation_s();
	egov_err err = EGOV_EINTERNAL;

	if (!(k = EVP_EC_gen("P-256")))
		goto out;
	if ((err = pub_coords(k, x, y)))
		goto out;
	/* RFC 7638: members in lexical order, no whitespace. */
	snprintf(thumb_in, sizeof thumb_in, "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", x, y);
	crypto_sha256(thumb_in, strlen(thumb_in), h);
	b64url_encode(h, sizeof h, kid);
	snprintf(jwk, sizeof jwk,
		 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"ES256\"}",
		 x, y, kid);
	err = EGOV_EUNAVAILABLE;
	if (!dir_path())
		goto out;
	err = EGOV_EIO;
	if (mkdir_private(dir_path()))
		goto out;
	snprintf(path, sizeof path, "%s/%s.pem", dir_path(), kid);
	if ((err = write_private(path, k)))
		goto out;
	err = EGOV_EINTERNAL;
	if (!(b = BIO_new(BIO_s_mem())) || !PEM_write_bio_PUBKEY(b, k))
		goto out;
	pemlen = BIO_get_mem_data(b, &pem);
	if (pemlen <= 0)
		goto out;
	{
		char *pemz = strndup(pem, (size_t)pemlen);
		if (!pemz) {
			err = EGOV_ENOMEM;
			goto out;
		}
		err = db_exec(c,
			      "INSERT INTO oidc_key (kid, public_pem, public_jwk, created_at, sign_until, verify_until)"
			      " VALUES (?, ?, ?, ?, ?, ?)",
			      (db_param[]){DBP_S(kid), DBP_S(pemz), DBP_S(jwk), DBP_I(now), DBP_I(sign_until),
					   DBP_I(sign_until + oidc_token_ttl() + OIDC_KEY_MARGIN_S)},
			      6, NULL);
		free(pemz);
	}
	if (err)
		unlink(path);
	else
		log_info("oidc.key_created", "signing key %s", kid);
out:
	BIO_free(b);
	EVP_PKEY_free(k);
	return err;
}

static egov_err load_private(key_entry *e)
{
	char path[1200];
	FILE *f = NULL;
	EVP_PKEY *k = NULL;

	if (e->priv)
		return EGOV_OK;
	if (!dir_path())
		return EGOV_EUNAVAILABLE;
	snprintf(path, sizeof path, "%s/%s.pem", dir_path(), e->kid);
	if (!(f = fopen(path, "re"))) {
		log_error("oidc.key_missing", "private key file %s cannot be read", path);
		return EGOV_EIO;
	}
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k || EVP_PKEY_eq(k, e->pub) != 1) {
		EVP_PKEY_free(k);
		log_error("oidc.key_mismatch", "private key file %s does not match its public key", path);
		return EGOV_ECORRUPT;
	}
	e->priv = k;
	return EGOV_OK;
}

static key_entry *find_active(int64_t now)
{
	int i;

	/* The cache is newest first. */
	for (i = 0; i < cache_n; i++)
		if (cache[i].created_at <= now && cache[i].sign_until > now)
			return &cache[i];
	return NULL;
}

egov_err oidc_keys_active(db_conn *c, char kid[OIDC_KID_MAX + 1], EVP_PKEY **key)
{
	key_entry *e;
	int64_t now = oidc_now();
	egov_err err;

	*key = NULL;
	pthread_mutex_lock(&lock);
	if ((err = cache_fresh(c)))
		goto out;
	if (!(e = find_active(now))) {
		if ((err = cache_load(c)))
			goto out;
		if (!(e = find_active(now))) {
			if ((err = key_create(c)) || (err = cache_load(c)))
				goto out;
			if (!(e = find_active(now))) {
				err = EGOV_EINTERNAL;
				goto out;
			}
		}
	}
	if ((err = load_private(e)))
		goto out;
	EVP_PKEY_up_ref(e->priv);
	*key = e->priv;
	memcpy(kid, e->kid, strlen(e->kid) + 1);
out:
	pthread_mutex_unlock(&lock);
	return err;
}

egov_err oidc_keys_public(db_conn *c, const char *kid, EVP_PKEY **key)
{
	int64_t now = oidc_now();
	egov_err err;
	int i, pass;

	*key = NULL;
	pthread_mutex_lock(&lock);
	for (pass = 0; pass < 2; pass++) {
		/* An unknown kid may be a key another node just made: reload once. */
		if ((err = pass ? cache_load(c) : cache_fresh(c)))
			goto out;
		for (i = 0; i < cache_n; i++) {
			if (strcmp(cache[i].kid, kid) == 0 && cache[i].verify_until > now) {
				EVP_PKEY_up_ref(cache[i].pub);
				*key = cache[i].pub;
				goto out;
			}
		}
		if (cache_loaded_at == now)
			break; /* just loaded: no need to ask again */
	}
	err = EGOV_ENOTFOUND;
out:
	pthread_mutex_unlock(&lock);
	return err;
}

egov_err oidc_keys_retire(db_conn *c, int64_t *n)
{
	int64_t now = oidc_now();
	egov_err err;

	pthread_mutex_lock(&lock);
	err = db_exec(c, "UPDATE oidc_key SET sign_until = ?, verify_until = ? WHERE sign_until > ?",
		      (db_param[]){DBP_I(now), DBP_I(now + oidc_token_ttl() + OIDC_KEY_MARGIN_S), DBP_I(now)}, 3, n);
	cache_loaded_at = -1;
	pthread_mutex_unlock(&lock);
	return err;
}

egov_err oidc_keys_rotate(db_conn *c, char kid[OIDC_KID_MAX + 1])
{
	int64_t now = oidc_now();
	EVP_PKEY *k = NULL;
	egov_err err;

	pthread_mutex_lock(&lock);
	err = db_exec(c, "UPDATE oidc_key SET sign_until = ?, verify_until = ? WHERE sign_until > ?",
		      (db_param[]){DBP_I(now), DBP_I(now + oidc_token_ttl() + OIDC_KEY_MARGIN_S), DBP_I(now)}, 3, NULL);
	if (!err)
		err = key_create(c);
	if (!err)
		err = cache_load(c);
	pthread_mutex_unlock(&lock);
	if (!err)
		err = oidc_keys_active(c, kid, &k);
	EVP_PKEY_free(k);
	return err;
}

egov_err oidc_keys_jwks(db_conn *c, buf *out)
{
	int64_t now = oidc_now();
	egov_err err;
	int i, first = 1;

	pthread_mutex_lock(&lock);
	if ((err = cache_fresh(c)))
		goto out;
	if (!find_active(now)) {
		/* Publish the key that will sign before anything is signed. */
		if ((err = cache_load(c)) || (!find_active(now) && ((err = key_create(c)) || (err = cache_load(c)))))
			goto out;
	}
	if ((err = buf_adds(out, "{\"keys\":[")))
		goto out;
	for (i = 0; i < cache_n; i++) {
		if (cache[i].verify_until <= now)
			continue;
		if ((!first && (err = buf_addc(out, ','))) || (err = buf_adds(out, cache[i].jwk)))
			goto out;
		first = 0;
	}
	err = buf_adds(out, "]}");
out:
	pthread_mutex_unlock(&lock);
	return err;
}

/* ---- sign and verify with the published keys ---------------------------- */

egov_err oidc_sign(db_conn *c, const char *typ, const char *payload_json, buf *out)
{
	char kid[OIDC_KID_MAX + 1];
	EVP_PKEY *k = NULL;
	egov_err err;

	if ((err = oidc_keys_active(c, kid, &k)))
		return err;
	err = jwt_sign(k, kid, typ, payload_json, out);
	EVP_PKEY_free(k);
	return err;
}

egov_err oidc_verify(db_conn *c, const char *tok, const char *typ, const char *aud, cJSON **payload,
		     const char **why)
{
	jwt_parsed p;
	EVP_PKEY *k = NULL;
	egov_err err;

	*payload = NULL;
	if ((err = jwt_parse(tok, tok ? strlen(tok) : 0, &p, why)))
		return EGOV_EAUTH;
	if (typ && strcmp(p.typ, typ) != 0) {
		*why = "jwt.typ";
		err = EGOV_EAUTH;
		goto out;
	}
	err = oidc_keys_public(c, p.kid, &k);
	if (err == EGOV_ENOTFOUND) {
		*why = "jwt.kid";
		err = EGOV_EAUTH;
		goto out;
	}
	if (err)
		goto out;
	if ((err = jwt_verify_sig(tok, &p, k))) {
		*why = "jwt.signature";
		goto out;
	}
	if ((err = jwt_check_claims(p.payload, oidc_issuer(), aud, oidc_now(), why)))
		goto out;
	*payload = p.payload;
	p.payload = NULL;
out:
	EVP_PKEY_free(k);
	jwt_parsed_release(&p);
	return err;
}
