/*
 * tsa.c: the RFC 3161 time-stamping authority, and timestamped checkpoints
 * of the audit chain.
 *
 * Invariants: a TS_RESP_CTX is made per reply (OpenSSL's is not safe to
 * share between threads; making one costs microseconds). Tokens carry the
 * TSA certificate and the issuing CA, so a verifier needs only the root.
 * A checkpoint token's imprint is SHA-256 over the text
 * "egov-audit-checkpoint\n<seq>\n<hash hex>", binding both the position and
 * the head hash; pki_audit_checkpoint keeps (seq, hash, token).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ts.h>

#include "audit/audit.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "pki/pki_int.h"
#include "core/banned.h"

static ASN1_INTEGER *serial_cb(TS_RESP_CTX *ctx, void *data)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *s = NULL;

	(void)data;
	if (crypto_random(b, sizeof b) == EGOV_OK) {
		b[0] &= 0x7f;
		if ((bn = BN_bin2bn(b, sizeof b, NULL)))
			s = BN_to_ASN1_INTEGER(bn, NULL);
	}
	BN_free(bn);
	if (!s)
		TS_RESP_CTX_set_status_info(ctx, TS_STATUS_REJECTION, "cannot make a serial");
	return s;
}

static TS_RESP_CTX *make_ctx(void)
{
	TS_RESP_CTX *ctx = TS_RESP_CTX_new();
	ASN1_OBJECT *policy = NULL;
	STACK_OF(X509) *chain = NULL;
	int ok = 0;

	if (!ctx || !(policy = OBJ_txt2obj(pki_g.tsa_policy, 1)) || !(chain = sk_X509_new_null()) ||
	    !sk_X509_push(chain, pki_g.issuing))
		goto out;
	if (!TS_RESP_CTX_set_signer_cert(ctx, pki_g.tsa) || !TS_RESP_CTX_set_signer_key(ctx, pki_g.tsa_key) ||
	    !TS_RESP_CTX_set_signer_digest(ctx, EVP_sha256()) || !TS_RESP_CTX_set_def_policy(ctx, policy) ||
	    !TS_RESP_CTX_set_certs(ctx, chain) || !TS_RESP_CTX_add_md(ctx, EVP_sha256()) ||
	    !TS_RESP_CTX_add_md(ctx, EVP_sha384()) || !TS_RESP_CTX_add_md(ctx, EVP_sha512()) ||
	    !TS_RESP_CTX_set_accuracy(ctx, 1, 0, 0))
		goto out;
	TS_RESP_CTX_set_serial_cb(ctx, serial_cb, NULL);
	TS_RESP_CTX_add_flags(ctx, TS_ESS_CERT_ID_CHAIN);
	ok = 1;
out:
	sk_X509_free(chain); /* set_certs took its own references */
	ASN1_OBJECT_free(policy);
	if (!ok) {
		TS_RESP_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* A reply to a DER query; NULL only on an internal failure. */
static TS_RESP *respond(const void *query, size_t len)
{
	TS_RESP_CTX *ctx = make_ctx();
	BIO *in = NULL;
	TS_RESP *resp = NULL;

	if (ctx && (in = BIO_new_mem_buf(query, (int)len)))
		resp = TS_RESP_create_response(ctx, in);
	BIO_free(in);
	TS_RESP_CTX_free(ctx);
	ERR_clear_error();
	return resp;
}

egov_err pki_tsa_respond(const void *query, size_t len, unsigned char **out, size_t *out_len)
{
	TS_RESP *resp = NULL;
	unsigned char *der = NULL;
	int n;
	egov_err err = EGOV_EUNAVAILABLE;

	*out = NULL;
	*out_len = 0;
	if (!pki_g.open || len > PKI_PROTOCOL_BODY_MAX)
		goto out;
	err = EGOV_ENOMEM;
	if (!(resp = respond(query, len)) || (n = i2d_TS_RESP(resp, &der)) <= 0 || !(*out = malloc((size_t)n)))
		goto out;
	memcpy(*out, der, (size_t)n);
	*out_len = (size_t)n;
	err = EGOV_OK;
out:
	OPENSSL_free(der);
	TS_RESP_free(resp);
	return err;
}

/* ---- audit checkpoints --------------------------------------------------- */

static void checkpoint_digest(int64_t seq, const char *hash_hex, unsigned char md[32])
{
	char text[128];
	int n = snprintf(text, sizeof text, "egov-audit-checkpoint\n%" PRId64 "\n%s", seq, hash_hex);

	crypto_sha256(text, (size_t)n, md);
}

/* A token (TimeStampToken, DER) over a checkpoint, made in-process. */
static egov_err checkpoint_token(int64_t seq, const char *hash_hex, unsigned char **tok, size_t *tok_len)
{
	unsigned char md[32], nonce_b[8];
	TS_REQ *q = TS_REQ_new();
	TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_INTEGER *nonce = NULL;
	BIGNUM *bn = NULL;
	unsigned char *qder = NULL, *tder = NULL;
	TS_RESP *resp = NULL;
	int qn, tn;
	egov_err err = EGOV_ENOMEM;

	checkpoint_digest(seq, hash_hex, md);
	if (!q || !mi || !alg || crypto_random(nonce_b, sizeof nonce_b))
		goto out;
	nonce_b[0] &= 0x7f;
	if (!(bn = BN_bin2bn(nonce_b, sizeof nonce_b, NULL)) || !(nonce = BN_to_ASN1_INTEGER(bn, NULL)))
		goto out;
	if (!X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) || !TS_MSG_IMPRINT_set_algo(mi, alg) ||
	    !TS_MSG_IMPRINT_set_msg(mi, md, sizeof md) || !TS_REQ_set_version(q, 1) ||
	    !TS_REQ_set_msg_imprint(q, mi) || !TS_REQ_set_nonce(q, nonce) || !TS_REQ_set_cert_req(q, 1))
		goto out;
	if ((qn = i2d_TS_REQ(q, &qder)) <= 0 || !(resp = respond(qder, (size_t)qn)))
		goto out;
	err = EGOV_EINTERNAL;
	if (ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(resp))) != TS_STATUS_GRANTED ||
	    !TS_RESP_get_token(resp))
		goto out;
	err = EGOV_ENOMEM;
	if ((tn = i2d_PKCS7(TS_RESP_get_token(resp), &tder)) <= 0 || !(*tok = malloc((size_t)tn)))
		goto out;
	memcpy(*tok, tder, (size_t)tn);
	*tok_len = (size_t)tn;
	err = EGOV_OK;
out:
	ERR_clear_error();
	OPENSSL_free(qder);
	OPENSSL_free(tder);
	TS_RESP_free(resp);
	ASN1_INTEGER_free(nonce);
	BN_free(bn);
	X509_ALGOR_free(alg);
	TS_MSG_IMPRINT_free(mi);
	TS_REQ_free(q);
	return err;
}

typedef struct checkpoint_ctx {
	db *d;
} checkpoint_ctx;

static checkpoint_ctx the_ctx;

/* Runs on the audit writer thread after a commit (no transaction open
 * there). Signing one token takes about a millisecond, once per
 * pki.checkpoint_every records, so it is done inline. A failure is logged:
 * the chain itself is intact, only the anchor is missing. */
static void checkpoint_fn(void *vctx, int64_t seq, const char *hash_hex)
{
	checkpoint_ctx *ctx = vctx;
	unsigned char *tok = NULL;
	size_t tlen = 0;
	char *b64 = NULL, now[32];
	db_conn *c = NULL;
	egov_err err;

	time_format_rfc3339(time_now_us(), 6, now);
	if ((err = checkpoint_token(seq, hash_hex, &tok, &tlen)))
		goto out;
	err = EGOV_ENOMEM;
	if (!(b64 = pki_b64(tok, tlen)))
		goto out;
	if ((err = db_thread_conn(ctx->d, &c)))
		goto out;
	{
		db_param p[] = {DBP_I(seq), DBP_S(hash_hex), DBP_S(b64), DBP_S(now)};
		err = db_exec(c, "INSERT INTO pki_audit_checkpoint (seq, hash, token, created_at) VALUES (?, ?, ?, ?)",
			      p, 4, NULL);
		if (err == EGOV_ECONFLICT) /* another node anchored this head already */
			err = EGOV_OK;
	}
out:
	if (err)
		log_error("pki.checkpoint", "audit checkpoint at seq %" PRId64 " failed: %s", seq, egov_err_name(err));
	free(b64);
	free(tok);
}

egov_err pki_audit_checkpoints_start(db *d, int64_t every_n)
{
	if (!pki_g.open || !d || every_n < 1)
		return EGOV_EINVAL;
	the_ctx.d = d;
	audit_set_checkpoint(every_n, checkpoint_fn, &the_ctx);
	return EGOV_OK;
}

/* Why one checkpoint fails, or NULL if it verifies. */
static const char *check_one(X509_STORE *store, int64_t seq, const char *hash, const char *tok_b64,
			     const char *chain_hash)
{
	unsigned char md[32], *der = NULL;
	const unsigned char *p;
	size_t len = 0;
	PKCS7 *tok = NULL;
	TS_VERIFY_CTX *vctx = NULL;
	const char *why = NULL;

	if (!chain_hash) {
		why = "the audit record at this seq is missing (the chain was truncated)";
		goto out;
	}
	if (strcmp(chain_hash, hash) != 0) {
		why = "the audit record's hash differs from the checkpoint";
		goto out;
	}
	p = der = tok_b64 ? pki_unb64(tok_b64, &len) : NULL;
	if (!der || !(tok = d2i_PKCS7(NULL, &p, (long)len))) {
		why = "the token cannot be read";
		goto out;
	}
	checkpoint_digest(seq, hash, md);
	if (!(vctx = TS_VERIFY_CTX_new())) {
		why = "out of memory";
		goto out;
	}
	TS_VERIFY_CTX_set_flags(vctx, TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_IMPRINT);
	if (!X509_STORE_up_ref(store)) {
		why = "out of memory";
		goto out;
	}
	TS_VERIFY_CTX_set_store(vctx, store);
	{
		unsigned char *imprint = OPENSSL_malloc(sizeof md);
		if (!imprint) {
			why = "out of memory";
			goto out;
		}
		memcpy(imprint, md, sizeof md);
		TS_VERIFY_CTX_set_imprint(vctx, imprint, sizeof md);
	}
	if (TS_RESP_verify_token(vctx, tok) != 1)
		why = "the token's signature or imprint does not verify";
out:
	ERR_clear_error();
	TS_VERIFY_CTX_free(vctx);
	PKCS7_free(tok);
	free(der);
	return why;
}

typedef struct ckpt {
	int64_t seq;
	char hash[65];
	char *token;
} ckpt;

egov_err pki_audit_checkpoints_verify(db_conn *c, const char *data_dir, pki_checkpoint_result *res)
{
	int64_t after = -1;
	char path[4200];
	X509 *root = NULL;
	X509_STORE *store = NULL;
	db_rows *rows = NULL;
	bool has = false;
	egov_err err = EGOV_ENOTFOUND;

	memset(res, 0, sizeof *res);
	snprintf(path, sizeof path, "%s/pki/root.crt", data_dir);
	if (!(root = pki_read_cert(path)))
		goto out;
	err = EGOV_ENOMEM;
	if (!(store = X509_STORE_new()) || !X509_STORE_add_cert(store, root))
		goto out;
	/* The tokens were made over the years; their signing time, not now,
	 * is what the TSA certificate must have been valid at. */
	X509_STORE_set_flags(store, X509_V_FLAG_NO_CHECK_TIME);
	X509_STORE_set_purpose(store, X509_PURPOSE_TIMESTAMP_SIGN);
	/* Keyset pages of checkpoints; the audit record each anchors is read
	 * through the audit module between pages (one statement at a time on
	 * a connection). */
	for (;;) {
		ckpt page[PKI_CHECKPOINT_PAGE];
		db_param p[] = {DBP_I(after), DBP_I(PKI_CHECKPOINT_PAGE)};
		size_t n = 0, i;

		if ((err = db_query(c,
				    "SELECT seq, hash, token FROM pki_audit_checkpoint WHERE seq > ? ORDER BY seq LIMIT ?",
				    p, 2, &rows)))
			goto out;
		while (!(err = db_rows_next(rows, &has)) && has) {
			page[n].seq = db_rows_int(rows, 0);
			snprintf(page[n].hash, sizeof page[n].hash, "%s", db_rows_text(rows, 1) ? db_rows_text(rows, 1) : "");
			if (!(page[n].token = strdup(db_rows_text(rows, 2) ? db_rows_text(rows, 2) : ""))) {
				err = EGOV_ENOMEM;
				break;
			}
			n++;
		}
		db_rows_free(rows);
		rows = NULL;
		for (i = 0; i < n; i++) {
			char chain_hash[65];
			bool found = false;
			const char *why = NULL;
			if (!err && !res->first_bad && !(err = audit_record_hash(c, page[i].seq, chain_hash, &found))) {
				why = check_one(store, page[i].seq, page[i].hash, page[i].token, found ? chain_hash : NULL);
				if (why) {
					res->first_bad = page[i].seq;
					snprintf(res->why, sizeof res->why, "%s", why);
				} else {
					res->checked++;
				}
			}
			free(page[i].token);
		}
		if (err || res->first_bad || n < PKI_CHECKPOINT_PAGE)
			break;
		after = page[n - 1].seq;
	}
out:
	ERR_clear_error();
	db_rows_free(rows);
	X509_STORE_free(store);
	X509_free(root);
	return err;
}
