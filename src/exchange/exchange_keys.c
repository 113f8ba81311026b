/*
 * exchange_keys.c: a gateway's signing keys (one per subsystem it serves),
 * ES256 signing and verification of the canonical strings, base64url, and
 * the file helpers the module's other files share. Also the gateway's
 * commands `egov exchange keygen SUBSYSTEM` and `egov exchange cert
 * install SUBSYSTEM FILE`.
 *
 * Files: DATA/exchange/keys/<id with '/' as '+'>.key (P-256, PKCS#8 PEM,
 * mode 0600, directory 0700) and .crt beside it. '+' is not an identifier
 * character, so two ids never share a file name ('_' would: A/B_C, A_B/C).
 *
 * Invariants: exchange_sign() never reads a file on the hot path: keys are
 * loaded once into a cache (EVP_PKEY objects reused; callers take their
 * own reference, so a reload never frees a key in use) and rechecked on
 * disk at most every KEY_RECHECK_US, which is how a certificate installed
 * by the CLI while the node runs is picked up. Verification keys are cached
 * by certificate PEM text the same way. Signatures are JOSE ES256: raw
 * r||s, 64 bytes, base64url without padding (86 characters).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/b64url.h"
#include "core/app.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "exchange/exchange_int.h"
#include "core/banned.h"

#define KEY_RECHECK_US (5LL * 1000000)
/* Distinct certificates whose public keys are kept; beyond, the cache
 * starts over (a configuration holds a few per subsystem). */
#define VERIFY_CACHE_MAX 4096
#define VERIFY_BUCKETS 512
/* Largest key, certificate or CSR file read. */
#define PEM_FILE_MAX (64 * 1024)

/* ---- base64url (core/b64url.h), with the output size checked ------------- */

size_t exchange_b64url_encode(const void *in, size_t n, char *out, size_t outlen)
{
	size_t need = n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);

	if (outlen < need + 1)
		return 0;
	b64url_encode(in, n, out);
	return need;
}

/* ---- files ------------------------------------------------------------------ */

egov_err exchange_path(char *out, size_t len, const char *rel)
{
	const egov_config *cfg = app()->config;
	int n;

	if (!cfg || !cfg->data_dir)
		return EGOV_EUNAVAILABLE;
	n = snprintf(out, len, "%s/exchange%s%s", cfg->data_dir, rel && *rel ? "/" : "", rel ? rel : "");
	return n < 0 || (size_t)n >= len ? EGOV_ELIMIT : EGOV_OK;
}

static egov_err ensure_dir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return EGOV_OK;
	return EGOV_EIO;
}

egov_err exchange_dirs(void)
{
	char p[4096];
	egov_err err;

	if ((err = exchange_path(p, sizeof p, "")) || (err = ensure_dir(p)))
		return err;
	if ((err = exchange_path(p, sizeof p, "keys")) || (err = ensure_dir(p)))
		return err;
	return EGOV_OK;
}

egov_err exchange_file_write(const char *path, const void *data, size_t len, int mode)
{
	char tmp[4200], dir[4096];
	const char *slash = strrchr(path, '/');
	int fd = -1, dfd = -1;
	egov_err err = EGOV_EIO;

	if (!slash || (size_t)(slash - path) >= sizeof dir)
		return EGOV_EINVAL;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
	if (fd < 0)
		goto out;
	/* The umask must not widen or narrow what the caller asked for. */
	if (fchmod(fd, (mode_t)mode) != 0)
		goto out;
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			goto out;
		data = (const char *)data + w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto out;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) != 0)
		goto out;
	err = EGOV_OK;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (err)
		unlink(tmp);
	return err;
}

egov_err exchange_file_read(const char *path, size_t max, buf *out)
{
	char chunk[8192];
	FILE *f = fopen(path, "rb");
	egov_err err = EGOV_OK;
	size_t n;

	if (!f)
		return errno == ENOENT ? EGOV_ENOTFOUND : EGOV_EIO;
	buf_init(out, max);
	while (!err && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		err = buf_add(out, chunk, n);
	if (!err && ferror(f))
		err = EGOV_EIO;
	if (!err && !out->data)
		err = buf_add(out, "", 0);
	fclose(f);
	if (err)
		buf_release(out);
	return err;
}

egov_err exchange_key_path(const char *sub, const char *ext, char *out, size_t len)
{
	char name[EXCHANGE_ID_MAX + 8];
	size_t i;

	if (!exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM))
		return EGOV_EINVAL;
	for (i = 0; sub[i]; i++)
		name[i] = sub[i] == '/' ? '+' : sub[i];
	snprintf(name + i, sizeof name - i, ".%s", ext);
	{
		char rel[EXCHANGE_ID_MAX + 16];
		snprintf(rel, sizeof rel, "keys/%s", name);
		return exchange_path(out, len, rel);
	}
}

/* ---- ES256 ------------------------------------------------------------------ */

egov_err exchange_es256_sign(EVP_PKEY *key, const void *msg, size_t len, char out[128])
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
	if (exchange_b64url_encode(raw, sizeof raw, out, 128) == 0)
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

/* ---- keys on disk --------------------------------------------------------- */

egov_err exchange_key_load(const char *path, EVP_PKEY **out)
{
	struct stat st;
	BIO *bio = NULL;
	egov_err err;

	*out = NULL;
	if (stat(path, &st) != 0)
		return errno == ENOENT ? EGOV_ENOTFOUND : EGOV_EIO;
	/* A key others can read is not a key we sign with. */
	if (st.st_mode & 077)
		return EGOV_ECORRUPT;
	err = EGOV_ECORRUPT;
	if (!(bio = BIO_new_file(path, "r")))
		return EGOV_EIO;
	*out = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (*out && EVP_PKEY_get_base_id(*out) == EVP_PKEY_EC && EVP_PKEY_get_bits(*out) == 256)
		err = EGOV_OK;
	BIO_free(bio);
	if (err) {
		EVP_PKEY_free(*out);
		*out = NULL;
	}
	return err;
}

egov_err exchange_key_create(const char *path, EVP_PKEY **out)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	BIO *mem = NULL;
	char *pem = NULL;
	long n = 0;
	egov_err err = EGOV_EINTERNAL;

	*out = NULL;
	if (!k)
		return EGOV_EINTERNAL;
	if (!(mem = BIO_new(BIO_s_mem())) || PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL) != 1)
		goto out;
	n = BIO_get_mem_data(mem, &pem);
	if (n <= 0)
		goto out;
	if ((err = exchange_file_write(path, pem, (size_t)n, 0600)))
		goto out;
	*out = k;
	k = NULL;
out:
	if (pem && n > 0)
		OPENSSL_cleanse(pem, (size_t)n);
	BIO_free(mem);
	EVP_PKEY_free(k);
	return err;
}

egov_err exchange_csr_pem(EVP_PKEY *key, const char *cn, buf *out)
{
	X509_REQ *rq = X509_REQ_new();
	X509_NAME *name = NULL;
	BIO *mem = NULL;
	char *pem = NULL;
	long n;
	egov_err err = EGOV_EINTERNAL;

	buf_init(out, PEM_FILE_MAX);
	if (!rq || !(name = X509_NAME_new()))
		goto out;
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
	    !X509_REQ_set_subject_name(rq, name) || !X509_REQ_set_pubkey(rq, key) ||
	    X509_REQ_sign(rq, key, EVP_sha256()) <= 0)
		goto out;
	if (!(mem = BIO_new(BIO_s_mem())) || PEM_write_bio_X509_REQ(mem, rq) != 1)
		goto out;
	n = BIO_get_mem_data(mem, &pem);
	if (n <= 0)
		goto out;
	err = buf_add(out, pem, (size_t)n);
out:
	BIO_free(mem);
	X509_NAME_free(name);
	X509_REQ_free(rq);
	if (err)
		buf_release(out);
	return err;
}

X509 *exchange_pem_cert(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return x;
}

egov_err exchange_cert_sha256(X509 *x, char out[65])
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	out[0] = '\0';
	if (n <= 0)
		return EGOV_EINTERNAL;
	crypto_sha256_hex(der, (size_t)n, out);
	OPENSSL_free(der);
	return EGOV_OK;
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
	char kpath[4096], cpath[4096];
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
	    exchange_file_read(cpath, PEM_FILE_MAX, &pem))
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
static EVP_PKEY *key_get(const char *sub, char cert_sha256[65])
{
	int64_t now = time_mono_us();
	EVP_PKEY *k = NULL;
	key_entry *e;

	pthread_rwlock_rdlock(&keys_lock);
	for (e = keys; e; e = e->next)
		if (strcmp(e->id, sub) == 0)
			break;
	if (e && now - e->checked_us < KEY_RECHECK_US) {
		if (e->key && EVP_PKEY_up_ref(e->key) == 1) {
			k = e->key;
			if (cert_sha256)
				memcpy(cert_sha256, e->cert_sha256, 65);
		}
		pthread_rwlock_unlock(&keys_lock);
		return k;
	}
	pthread_rwlock_unlock(&keys_lock);

	if (!exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM))
		return NULL;
	pthread_rwlock_wrlock(&keys_lock);
	for (e = keys; e; e = e->next)
		if (strcmp(e->id, sub) == 0)
			break;
	if (!e && (e = calloc(1, sizeof *e))) {
		snprintf(e->id, sizeof e->id, "%s", sub);
		e->checked_us = now - KEY_RECHECK_US;
		e->next = keys;
		keys = e;
	}
	if (e) {
		if (now - e->checked_us >= KEY_RECHECK_US)
			key_reload(e, now);
		if (e->key && EVP_PKEY_up_ref(e->key) == 1) {
			k = e->key;
			if (cert_sha256)
				memcpy(cert_sha256, e->cert_sha256, 65);
		}
	}
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

egov_err exchange_sign(const char *sub, const void *msg, size_t len, char out[128], char cert_sha256[65])
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
	if (pub_count >= VERIFY_CACHE_MAX)
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
	char path[4096], cn[EXCHANGE_PART_MAX + 1];
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
	char kpath[4096], cpath[4096], sha[65];
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
	if (exchange_file_read(argv[3], PEM_FILE_MAX, &pem) || !(x = exchange_pem_cert(pem.data, pem.len))) {
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
