/*
 * ca.c: the CA's keys and certificates on disk (creation by `egov init`,
 * loading by `egov serve`) and small helpers the other pki files share.
 *
 * Invariants: a key file is created with O_EXCL under a temporary name,
 * fsynced and then linked to its final name, so a crash leaves either no
 * key or a whole one, and an existing key is never overwritten. Key files
 * are 0600 and DATA/pki is 0700. The root key is read only while creating
 * the issuing CA; a serving process never loads it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "pki/pki_int.h"
#include "core/banned.h"

pki_state pki_g = {.crl_lock = PTHREAD_MUTEX_INITIALIZER};
int64_t pki_test_not_before, pki_test_not_after;

/* ---- shared helpers ---------------------------------------------------- */

int64_t pki_asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -1;
	return (int64_t)timegm(&tm);
}

void pki_serial_hex(const ASN1_INTEGER *s, char *out, size_t outlen)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(s, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	size_t i;

	out[0] = '\0';
	if (hex) {
		for (i = 0; hex[i] && i + 1 < outlen; i++)
			out[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] + 32 : hex[i]);
		out[i] = '\0';
	}
	OPENSSL_free(hex);
	BN_free(bn);
}

bool pki_serial_norm(const char *in, char out[PKI_SERIAL_HEX])
{
	size_t n = 0;

	if (!in || !*in)
		return false;
	while (in[0] == '0' && in[1])
		in++;
	for (; *in; in++) {
		char ch = *in;
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch + 32);
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) || n + 1 >= PKI_SERIAL_HEX)
			return false;
		out[n++] = ch;
	}
	out[n] = '\0';
	return true;
}

char *pki_b64(const unsigned char *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

unsigned char *pki_unb64(const char *s, size_t *n)
{
	size_t len = strlen(s), pad = 0;
	unsigned char *out;
	int got;

	if (len == 0 || len % 4 || len > (1u << 24))
		return NULL;
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return NULL;
	got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
	if (got < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts padding as zero bytes. */
	if (s[len - 1] == '=')
		pad++;
	if (s[len - 2] == '=')
		pad++;
	*n = (size_t)got - pad;
	return out;
}

X509 *pki_read_cert(const char *path)
{
	FILE *f = fopen(path, "re");
	X509 *x = NULL;

	if (f) {
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	return x;
}

/* ---- files ------------------------------------------------------------- */

static void path_join(char *out, size_t len, const char *dir, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Writes bytes to dir/name with mode, atomically and never over an
 * existing file: a temporary created with O_EXCL, fsynced, then link(2)ed
 * (which fails if the name exists). */
static egov_err write_new_file(const char *dir, const char *name, const void *data, size_t len, mode_t mode,
			       char *errmsg, size_t errlen)
{
	char tmp[4200], final[4200];
	const char *p = data;
	egov_err err = EGOV_EIO;
	int fd = -1;

	snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
	path_join(final, sizeof final, dir, name);
	unlink(tmp); /* a leftover of a crash; never a final name */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(errmsg, errlen, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			snprintf(errmsg, errlen, "cannot write %s: %s", tmp, strerror(errno));
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fsync(fd) || close(fd)) {
		fd = -1;
		snprintf(errmsg, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (link(tmp, final)) {
		snprintf(errmsg, errlen, "cannot create %s: %s", final, strerror(errno));
		err = errno == EEXIST ? EGOV_ECONFLICT : EGOV_EIO;
		goto out;
	}
	fsync_dir(dir);
	err = EGOV_OK;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return err;
}

static egov_err write_key(const char *dir, const char *name, EVP_PKEY *k, char *errmsg, size_t errlen)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *data = NULL;
	long len;
	egov_err err = EGOV_ENOMEM;

	if (!b || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		goto out;
	len = BIO_get_mem_data(b, &data);
	err = write_new_file(dir, name, data, (size_t)len, 0600, errmsg, errlen);
out:
	BIO_free(b);
	return err;
}

static egov_err write_cert(const char *dir, const char *name, X509 *x, char *errmsg, size_t errlen)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	egov_err err = EGOV_ENOMEM;

	if (!b || !PEM_write_bio_X509(b, x))
		goto out;
	len = BIO_get_mem_data(b, &data);
	err = write_new_file(dir, name, data, (size_t)len, 0644, errmsg, errlen);
out:
	BIO_free(b);
	return err;
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "re");
	EVP_PKEY *k = NULL;

	if (f) {
		k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	return k;
}

/* ---- certificates ------------------------------------------------------ */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!e)
		return 0;
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok;
}

typedef struct ca_spec {
	const char *file; /* "root", "issuing", "tsa" */
	const char *cn;
	int days;
	const char *basic, *ku, *eku;
} ca_spec;

static const ca_spec specs[] = {
	{"root", "egov Root CA", PKI_ROOT_DAYS, "critical,CA:TRUE", "critical,keyCertSign,cRLSign", NULL},
	{"issuing", "egov Issuing CA", PKI_ISSUING_DAYS, "critical,CA:TRUE,pathlen:0",
	 "critical,digitalSignature,keyCertSign,cRLSign", NULL},
	{"tsa", "egov Time Stamping Authority", PKI_TSA_DAYS, "critical,CA:FALSE", "critical,digitalSignature",
	 "critical,timeStamping"},
};

/* Makes a certificate for key signed by issuer (NULL: self-signed). */
static X509 *make_ca_cert(const ca_spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char sb[16];
	BIGNUM *bn = NULL;
	time_t now = time(NULL);
	int ok = 0;

	if (!x || !name || crypto_random(sb, sizeof sb))
		goto out;
	sb[0] = (unsigned char)((sb[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(sb, sizeof sb, NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) || !X509_set_version(x, 2) ||
	    !X509_NAME_add_entry_by_txt(name, "C", MBSTRING_UTF8, (const unsigned char *)"MO", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"egov", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)s->cn, -1, -1, 0) ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
	    !ASN1_TIME_adj(X509_getm_notBefore(x), now - 60, 0, 0) ||
	    !ASN1_TIME_adj(X509_getm_notAfter(x), now, s->days, 0) || !X509_set_pubkey(x, key))
		goto out;
	if (!add_ext(x, issuer ? issuer : x, NID_basic_constraints, s->basic) ||
	    !add_ext(x, issuer ? issuer : x, NID_key_usage, s->ku) ||
	    (s->eku && !add_ext(x, issuer ? issuer : x, NID_ext_key_usage, s->eku)) ||
	    !add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, issuer ? issuer : x, NID_authority_key_identifier, "keyid:always"))
		goto out;
	if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()))
		goto out;
	ok = 1;
out:
	BN_free(bn);
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

/* One CA element: loads key+cert if both exist, creates both if neither. */
static egov_err ensure_pair(const char *dir, const ca_spec *s, X509 *issuer, EVP_PKEY *issuer_key,
			    EVP_PKEY **key_out, X509 **cert_out, char *errmsg, size_t errlen)
{
	char kpath[4200], cpath[4200], kname[32], cname[32];
	struct stat st;
	bool have_k, have_c;
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	egov_err err = EGOV_EIO;

	snprintf(kname, sizeof kname, "%s.key", s->file);
	snprintf(cname, sizeof cname, "%s.crt", s->file);
	path_join(kpath, sizeof kpath, dir, kname);
	path_join(cpath, sizeof cpath, dir, cname);
	have_k = stat(kpath, &st) == 0;
	have_c = stat(cpath, &st) == 0;
	if (have_k != have_c) {
		snprintf(errmsg, errlen, "%s exists without %s; refusing to replace it", have_k ? kpath : cpath,
			 have_k ? cname : kname);
		err = EGOV_ECORRUPT;
		goto out;
	}
	if (have_k) {
		k = read_key(kpath);
		x = pki_read_cert(cpath);
		if (!k || !x || X509_check_private_key(x, k) != 1) {
			snprintf(errmsg, errlen, "%s or %s cannot be read or do not match", kpath, cpath);
			err = EGOV_ECORRUPT;
			goto out;
		}
		err = EGOV_OK;
		goto out;
	}
	err = EGOV_ENOMEM;
	k = EVP_EC_gen("P-256");
	if (!k || !(x = make_ca_cert(s, k, issuer, issuer_key))) {
		snprintf(errmsg, errlen, "cannot generate the %s key and certificate", s->file);
		goto out;
	}
	/* The key first: a crash between the two leaves a key without a
	 * certificate, which the next run refuses rather than guesses at. */
	if ((err = write_key(dir, kname, k, errmsg, errlen)) || (err = write_cert(dir, cname, x, errmsg, errlen)))
		goto out;
out:
	if (err) {
		EVP_PKEY_free(k);
		X509_free(x);
		k = NULL;
		x = NULL;
	}
	*key_out = k;
	*cert_out = x;
	return err;
}

egov_err pki_ca_init(const char *data_dir, char *errmsg, size_t errlen)
{
	char dir[4096];
	EVP_PKEY *keys[3] = {NULL, NULL, NULL};
	X509 *certs[3] = {NULL, NULL, NULL};
	egov_err err = EGOV_EIO;
	int i;

	snprintf(dir, sizeof dir, "%s/pki", data_dir);
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(errmsg, errlen, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	if (chmod(dir, 0700)) {
		snprintf(errmsg, errlen, "cannot restrict %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((err = ensure_pair(dir, &specs[0], NULL, NULL, &keys[0], &certs[0], errmsg, errlen)) ||
	    (err = ensure_pair(dir, &specs[1], certs[0], keys[0], &keys[1], &certs[1], errmsg, errlen)) ||
	    (err = ensure_pair(dir, &specs[2], certs[1], keys[1], &keys[2], &certs[2], errmsg, errlen)))
		goto out;
	err = EGOV_OK;
out:
	for (i = 0; i < 3; i++) {
		EVP_PKEY_free(keys[i]);
		X509_free(certs[i]);
	}
	return err;
}

/* ---- the serving process ----------------------------------------------- */

static egov_err to_der(X509 *x, unsigned char **out, size_t *len)
{
	unsigned char *p = NULL;
	int n = i2d_X509(x, &p);

	if (n <= 0)
		return EGOV_ENOMEM;
	*out = p;
	*len = (size_t)n;
	return EGOV_OK;
}

static egov_err load_anchors(const char *path, char *errmsg, size_t errlen)
{
	FILE *f;
	X509 *x;
	egov_err err = EGOV_OK;

	pki_g.anchors = sk_X509_new_null();
	if (!pki_g.anchors)
		return EGOV_ENOMEM;
	if (!path || !*path)
		return EGOV_OK;
	f = fopen(path, "re");
	if (!f) {
		snprintf(errmsg, errlen, "pki.trust_anchors: cannot open %s: %s", path, strerror(errno));
		return EGOV_EIO;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(pki_g.anchors, x)) {
			X509_free(x);
			err = EGOV_ENOMEM;
			break;
		}
	}
	ERR_clear_error(); /* the end of the file reads as an error */
	fclose(f);
	if (!err && sk_X509_num(pki_g.anchors) == 0) {
		snprintf(errmsg, errlen, "pki.trust_anchors: no PEM certificate in %s", path);
		err = EGOV_EINVAL;
	}
	return err;
}

egov_err pki_open(const egov_config *cfg, char *errmsg, size_t errlen)
{
	const pki_config *pc = config_section_values(cfg, &pki_config_section);
	char path[4200];
	struct stat st;
	egov_err err = EGOV_ENOTFOUND;

	pki_close();
	snprintf(pki_g.dir, sizeof pki_g.dir, "%s/pki", cfg->data_dir);
	snprintf(pki_g.public_url, sizeof pki_g.public_url, "%s",
		 pc && pc->public_url ? pc->public_url : "http://127.0.0.1:8080");
	snprintf(pki_g.tsa_policy, sizeof pki_g.tsa_policy, "%s",
		 pc && pc->tsa_policy ? pc->tsa_policy : PKI_TSA_POLICY_DEFAULT);
	path_join(path, sizeof path, pki_g.dir, "issuing.key");
	if (stat(path, &st)) {
		snprintf(errmsg, errlen, "no CA in %s (run egov init)", pki_g.dir);
		goto out;
	}
	err = EGOV_ECORRUPT;
	if (st.st_mode & 077) {
		snprintf(errmsg, errlen, "%s is readable by others (mode %03o); expected 0600", path,
			 (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if (!(pki_g.issuing_key = read_key(path)))
		goto bad;
	path_join(path, sizeof path, pki_g.dir, "tsa.key");
	if (!(pki_g.tsa_key = read_key(path)))
		goto bad;
	path_join(path, sizeof path, pki_g.dir, "root.crt");
	if (!(pki_g.root = pki_read_cert(path)))
		goto bad;
	path_join(path, sizeof path, pki_g.dir, "issuing.crt");
	if (!(pki_g.issuing = pki_read_cert(path)) || X509_check_private_key(pki_g.issuing, pki_g.issuing_key) != 1)
		goto bad;
	path_join(path, sizeof path, pki_g.dir, "tsa.crt");
	if (!(pki_g.tsa = pki_read_cert(path)) || X509_check_private_key(pki_g.tsa, pki_g.tsa_key) != 1)
		goto bad;
	if ((err = to_der(pki_g.root, &pki_g.root_der, &pki_g.root_der_len)) ||
	    (err = to_der(pki_g.issuing, &pki_g.issuing_der, &pki_g.issuing_der_len)))
		goto out;
	if ((err = load_anchors(pc ? pc->trust_anchors : NULL, errmsg, errlen)) ||
	    (err = pki_anchor_crls_open(pc ? pc->trust_anchor_crls : NULL, errmsg, errlen)))
		goto out;
	pki_g.open = true;
	err = EGOV_OK;
	goto out;
bad:
	snprintf(errmsg, errlen, "%s cannot be read or does not match its key", path);
out:
	if (err)
		pki_close();
	return err;
}

void pki_close(void)
{
	pki_g.open = false;
	X509_free(pki_g.root);
	X509_free(pki_g.issuing);
	X509_free(pki_g.tsa);
	EVP_PKEY_free(pki_g.issuing_key);
	EVP_PKEY_free(pki_g.tsa_key);
	OPENSSL_free(pki_g.root_der);
	OPENSSL_free(pki_g.issuing_der);
	sk_X509_pop_free(pki_g.anchors, X509_free);
	pki_anchor_crls_close();
	free(pki_g.crl_der);
	pki_g.root = pki_g.issuing = pki_g.tsa = NULL;
	pki_g.issuing_key = pki_g.tsa_key = NULL;
	pki_g.root_der = pki_g.issuing_der = NULL;
	pki_g.anchors = NULL;
	pki_g.crl_der = NULL;
	pki_g.crl_len = 0;
	pki_g.crl_made_us = 0;
}

bool pki_is_open(void)
{
	return pki_g.open;
}

const unsigned char *pki_root_der(size_t *len)
{
	*len = pki_g.root_der_len;
	return pki_g.root_der;
}

const unsigned char *pki_issuing_der(size_t *len)
{
	*len = pki_g.issuing_der_len;
	return pki_g.issuing_der;
}
