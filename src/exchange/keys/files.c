/*
 * files.c: DATA/exchange and what the exchange keeps there: paths, atomic
 * and durable writes, P-256 keys (mode 0600), CSRs and certificates.
 *
 * Files: DATA/exchange/keys/<id with '/' as '+'>.key (P-256, PKCS#8 PEM,
 * mode 0600, directory 0700) and .crt beside it. '+' is not an identifier
 * character, so two ids never share a file name ('_' would: A/B_C, A_B/C).
 * The data directory is the room's (exchange_keys_setup).
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
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/crypto.h"
#include "exchange/keys/keys.h"
#include "exchange/wire/wire.h"
#include "core/banned.h"

/* ---- files ------------------------------------------------------------------ */

/* The node's data directory, set once before the room is used (start
 * hook, command) and read by any thread after. */
static pthread_mutex_t dir_mu = PTHREAD_MUTEX_INITIALIZER;
static char data_dir[EXCHANGE_PATH_MAX];

egov_err exchange_keys_setup(const char *dir)
{
	int n;

	if (!dir)
		return EGOV_EINVAL;
	pthread_mutex_lock(&dir_mu);
	n = snprintf(data_dir, sizeof data_dir, "%s", dir);
	if (n < 0 || (size_t)n >= sizeof data_dir - 64)
		data_dir[0] = '\0';
	pthread_mutex_unlock(&dir_mu);
	return data_dir[0] ? EGOV_OK : EGOV_ELIMIT;
}

egov_err exchange_path(char *out, size_t len, const char *rel)
{
	int n;

	pthread_mutex_lock(&dir_mu);
	n = data_dir[0] ? snprintf(out, len, "%s/exchange%s%s", data_dir, rel && *rel ? "/" : "", rel ? rel : "") : -2;
	pthread_mutex_unlock(&dir_mu);
	if (n == -2)
		return EGOV_EUNAVAILABLE;
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

egov_err exchange_file_begin(exchange_file *f, const char *path, int mode)
{
	f->fd = -1;
	if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path ||
	    snprintf(f->tmp, sizeof f->tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof f->tmp)
		return EGOV_EINVAL;
	if ((f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode)) < 0)
		return EGOV_EIO;
	/* The umask must not widen or narrow what the caller asked for. */
	if (fchmod(f->fd, (mode_t)mode) != 0) {
		exchange_file_abandon(f);
		return EGOV_EIO;
	}
	return EGOV_OK;
}

egov_err exchange_file_append(exchange_file *f, const void *data, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(f->fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return EGOV_EIO;
		data = (const char *)data + w;
		len -= (size_t)w;
	}
	return EGOV_OK;
}

egov_err exchange_file_commit(exchange_file *f)
{
	const char *slash = strrchr(f->path, '/');
	char dir[EXCHANGE_PATH_MAX];
	size_t n = slash ? (size_t)(slash - f->path) : 0;
	int dfd = -1, fd = f->fd;
	egov_err err = EGOV_EIO;

	f->fd = -1;
	if (fsync(fd) != 0) {
		close(fd);
		goto out;
	}
	if (close(fd) != 0 || rename(f->tmp, f->path) != 0)
		goto out;
	/* The rename is durable once the directory is. */
	memcpy(dir, f->path, n);
	dir[n] = '\0';
	dfd = open(!slash ? "." : n ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0 && fsync(dfd) == 0)
		err = EGOV_OK;
out:
	if (dfd >= 0)
		close(dfd);
	if (err)
		unlink(f->tmp);
	return err;
}

void exchange_file_abandon(exchange_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	unlink(f->tmp);
}

egov_err exchange_file_write(const char *path, const void *data, size_t len, int mode)
{
	exchange_file f;
	egov_err err;

	if ((err = exchange_file_begin(&f, path, mode)))
		return err;
	if ((err = exchange_file_append(&f, data, len))) {
		exchange_file_abandon(&f);
		return err;
	}
	return exchange_file_commit(&f);
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

	buf_init(out, EXCHANGE_PEM_FILE_MAX);
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


unsigned char *exchange_pem_der(const char *pem, int *len)
{
	X509 *x = exchange_pem_cert(pem, strlen(pem));
	unsigned char *der = NULL;

	*len = x ? i2d_X509(x, &der) : -1;
	X509_free(x);
	return *len > 0 ? der : NULL;
}

bool exchange_pem_matches(const char *sha256, const char *pem)
{
	char hex[65];
	X509 *x = pem ? exchange_pem_cert(pem, strlen(pem)) : NULL;
	bool ok = x && exchange_cert_sha256(x, hex) == EGOV_OK && sha256 && strcmp(hex, sha256) == 0;

	ERR_clear_error();
	X509_free(x);
	return ok;
}

egov_err exchange_pins_add(const char *const *pems, size_t n, buf *out)
{
	unsigned char *spki, md[32], b64[48];
	size_t i, added = 0;
	int len;

	for (i = 0; i < n; i++) {
		X509 *x = pems[i] ? exchange_pem_cert(pems[i], strlen(pems[i])) : NULL;
		spki = NULL;
		len = x ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki) : -1;
		X509_free(x);
		if (len <= 0)
			continue;
		crypto_sha256(spki, (size_t)len, md);
		OPENSSL_free(spki);
		EVP_EncodeBlock(b64, md, sizeof md);
		if (((out->len || added) && buf_addc(out, ';')) || buf_adds(out, "sha256//") ||
		    buf_adds(out, (const char *)b64))
			return EGOV_ELIMIT;
		added++;
	}
	ERR_clear_error();
	return added ? EGOV_OK : EGOV_ENOTFOUND;
}
