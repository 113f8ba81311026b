/*
 * identity_totp.c: TOTP second factor (RFC 6238 over RFC 4226 HOTP,
 * HMAC-SHA-1, 6 digits, 30 s), its QR enrolment and single-use recovery
 * codes.
 *
 * Invariants:
 * - A code is accepted for the step before, at or after now, and only for a
 *   step later than the last accepted one (totp_last_step), so a code seen
 *   over a shoulder cannot be replayed. The update is conditional on the
 *   old value, so two concurrent uses of one code cannot both pass.
 * - Recovery codes exist in clear only in the answer that creates them;
 *   the table holds SHA-256(account_id ":" normalised code), used once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <qrencode.h>
#include <sodium.h>

#include "core/crypto.h"
#include "identity/identity_int.h"
#include "core/banned.h"

uint32_t identity_hotp(const unsigned char *key, size_t keylen, uint64_t counter, int digits)
{
	unsigned char msg[8], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, off;
	uint32_t bin, mod = 1;
	int i;

	for (i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)(counter & 0xff);
		counter >>= 8;
	}
	if (!HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof msg, md, &mdlen) || mdlen < 20)
		return UINT32_MAX;
	off = md[mdlen - 1] & 0x0f;
	bin = ((uint32_t)(md[off] & 0x7f) << 24) | ((uint32_t)md[off + 1] << 16) | ((uint32_t)md[off + 2] << 8) |
	      md[off + 3];
	for (i = 0; i < digits; i++)
		mod *= 10;
	return bin % mod;
}

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

egov_err identity_base32_encode(const unsigned char *in, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (outlen < (n * 8 + 4) / 5 + 1)
		return EGOV_ELIMIT;
	for (i = 0; i < n; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 5) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	return EGOV_OK;
}

egov_err identity_base32_decode(const char *in, unsigned char *out, size_t outlen, size_t *n)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	for (; *in && *in != '='; in++) {
		const char *p;
		char ch = *in;
		if (ch >= 'a' && ch <= 'z')
			ch = (char)(ch - 'a' + 'A');
		p = strchr(b32, ch);
		if (!p || !ch)
			return EGOV_EINVAL;
		acc = acc << 5 | (uint32_t)(p - b32);
		bits += 5;
		if (bits >= 8) {
			if (o == outlen)
				return EGOV_ELIMIT;
			out[o++] = (unsigned char)(acc >> (bits - 8));
			bits -= 8;
		}
	}
	*n = o;
	return EGOV_OK;
}

/* ---- QR as SVG --------------------------------------------------------------- */

egov_err identity_qr_svg(const char *text, buf *out)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	int x, y, w, quiet = 4;
	egov_err err = EGOV_OK;

	if (!q)
		return EGOV_EINVAL;
	w = q->width;
	err = buf_addf(out,
		       "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" shape-rendering=\"crispEdges\""
		       " role=\"img\"><rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
		       w + 2 * quiet, w + 2 * quiet);
	for (y = 0; !err && y < w; y++)
		for (x = 0; !err && x < w; x++)
			if (q->data[y * w + x] & 1)
				err = buf_addf(out, "M%d %dh1v1h-1z", x + quiet, y + quiet);
	if (!err)
		err = buf_adds(out, "\"/></svg>");
	QRcode_free(q);
	return err;
}

/* ---- TOTP ---------------------------------------------------------------------- */

static egov_err get_text(db_conn *c, const char *sql, const char *id, char **out)
{
	db_param p[] = {DBP_S(id)};
	return db_query_text(c, sql, p, 1, out);
}

/* Builds the otpauth URI; email is percent-encoded where it must be. */
static egov_err otpauth_uri(buf *uri, const char *email, const char *secret)
{
	egov_err err = buf_adds(uri, "otpauth://totp/egov:");
	const char *p;

	for (p = email; !err && *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    strchr("-._~@", ch))
			err = buf_addc(uri, (char)ch);
		else
			err = buf_addf(uri, "%%%02X", ch);
	}
	if (!err)
		err = buf_addf(uri, "?secret=%s&issuer=egov&algorithm=SHA1&digits=%d&period=%d", secret,
			       IDENTITY_TOTP_DIGITS, IDENTITY_TOTP_STEP_S);
	return err;
}

egov_err identity_totp_enrol_begin(db_conn *c, const char *account_id, char secret_b32[IDENTITY_TOTP_SECRET_B32 + 1],
				   buf *uri, buf *svg)
{
	unsigned char key[20];
	identity_account a;
	egov_err err;

	if ((err = identity_account_get(c, account_id, &a)) || (err = crypto_random(key, sizeof key)) ||
	    (err = identity_base32_encode(key, sizeof key, secret_b32, IDENTITY_TOTP_SECRET_B32 + 1)))
		goto out;
	{
		db_param p[] = {DBP_S(secret_b32), DBP_S(account_id)};
		if ((err = db_exec(c, "UPDATE identity_account SET totp_pending = ? WHERE id = ?", p, 2, NULL)))
			goto out;
	}
	if ((err = otpauth_uri(uri, a.email, secret_b32)) || (err = identity_qr_svg(uri->data, svg)))
		goto out;
out:
	sodium_memzero(key, sizeof key);
	return err;
}

/* Matches code against secret at now +-1 step, after last_step. *step
 * receives the matching step. */
static int code_matches(const char *secret, const char *code, int64_t last_step, int64_t *step)
{
	unsigned char key[64];
	size_t klen = 0;
	int64_t now_step = identity_now_us() / 1000000 / IDENTITY_TOTP_STEP_S;
	char want[16];
	int d, ok = 0;

	if (!code || strlen(code) != IDENTITY_TOTP_DIGITS)
		return 0;
	if (identity_base32_decode(secret, key, sizeof key, &klen))
		return 0;
	for (d = -1; d <= 1; d++) {
		int64_t s = now_step + d;
		snprintf(want, sizeof want, "%0*u", IDENTITY_TOTP_DIGITS,
			 identity_hotp(key, klen, (uint64_t)s, IDENTITY_TOTP_DIGITS));
		if (s > last_step && crypto_streq(want, code) && !ok) {
			ok = 1;
			*step = s;
		}
	}
	sodium_memzero(key, sizeof key);
	return ok;
}

static egov_err new_codes(db_conn *c, const char *account_id,
			  char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1])
{
	static const char alpha[] = "abcdefghjkmnpqrstuvwxyz23456789"; /* no 0/o, 1/l/i */
	unsigned char raw[10];
	char hash[65], in[IDENTITY_RECOVERY_CODE_LEN + 40];
	int i, j;
	egov_err err;

	{
		db_param p[] = {DBP_S(account_id)};
		if ((err = db_exec(c, "DELETE FROM identity_recovery WHERE account_id = ?", p, 1, NULL)))
			return err;
	}
	for (i = 0; i < IDENTITY_RECOVERY_CODES; i++) {
		char norm[11];
		if ((err = crypto_random(raw, sizeof raw)))
			return err;
		for (j = 0; j < 10; j++)
			norm[j] = alpha[raw[j] % (sizeof alpha - 1)];
		snprintf(codes[i], IDENTITY_RECOVERY_CODE_LEN + 1, "%.5s-%.5s", norm, norm + 5);
		snprintf(in, sizeof in, "%s:%.10s", account_id, norm);
		identity_hash_hex(in, hash);
		{
			db_param p[] = {DBP_S(account_id), DBP_S(hash)};
			if ((err = db_exec(c, "INSERT INTO identity_recovery (account_id, code_hash) VALUES (?, ?)", p, 2,
					   NULL)))
				return err;
		}
	}
	sodium_memzero(raw, sizeof raw);
	return EGOV_OK;
}

egov_err identity_totp_enrol_confirm(db_conn *c, const char *account_id, const char *code,
				     char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1])
{
	char *pending = NULL;
	int64_t step = 0;
	egov_err err;

	if ((err = get_text(c, "SELECT totp_pending FROM identity_account WHERE id = ?", account_id, &pending)))
		return err;
	if (!pending) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	if (!code_matches(pending, code, 0, &step)) {
		err = EGOV_EINVAL;
		goto out;
	}
	if ((err = db_begin(c)))
		goto out;
	{
		db_param p[] = {DBP_S(pending), DBP_I(step), DBP_S(account_id)};
		err = db_exec(c,
			      "UPDATE identity_account SET totp_secret = ?, totp_pending = NULL, totp_enabled = 1,"
			      " totp_last_step = ? WHERE id = ?",
			      p, 3, NULL);
	}
	if (!err)
		err = new_codes(c, account_id, codes);
	if (err)
		db_rollback(c);
	else
		err = db_commit(c);
out:
	if (pending) {
		sodium_memzero(pending, strlen(pending));
		free(pending);
	}
	return err;
}

egov_err identity_totp_verify(db_conn *c, const char *account_id, const char *code)
{
	db_rows *rows = NULL;
	bool has = false;
	int64_t last = 0, step = 0, n = 0;
	char secret[IDENTITY_TOTP_SECRET_B32 + 8];
	egov_err err;

	secret[0] = '\0';
	{
		db_param p[] = {DBP_S(account_id)};
		if ((err = db_query(c,
				    "SELECT totp_secret, totp_last_step FROM identity_account WHERE id = ?"
				    " AND totp_enabled = 1",
				    p, 1, &rows)) ||
		    (err = db_rows_next(rows, &has)))
			goto out;
	}
	if (!has || !db_rows_text(rows, 0)) {
		err = EGOV_EINVAL;
		goto out;
	}
	identity_copy(secret, sizeof secret, db_rows_text(rows, 0));
	last = db_rows_int(rows, 1);
	db_rows_free(rows);
	rows = NULL;
	if (!code_matches(secret, code, last, &step)) {
		err = EGOV_EINVAL;
		goto out;
	}
	{
		db_param p[] = {DBP_I(step), DBP_S(account_id), DBP_I(step)};
		if ((err = db_exec(c, "UPDATE identity_account SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?",
				   p, 3, &n)))
			goto out;
	}
	if (n != 1)
		err = EGOV_EINVAL;
out:
	sodium_memzero(secret, sizeof secret);
	db_rows_free(rows);
	return err;
}

egov_err identity_totp_disable(db_conn *c, const char *account_id)
{
	db_param p[] = {DBP_S(account_id)};
	egov_err err;

	if ((err = db_exec(c,
			   "UPDATE identity_account SET totp_secret = NULL, totp_pending = NULL, totp_enabled = 0,"
			   " totp_last_step = 0 WHERE id = ?",
			   p, 1, NULL)))
		return err;
	return db_exec(c, "DELETE FROM identity_recovery WHERE account_id = ?", p, 1, NULL);
}

egov_err identity_recovery_regenerate(db_conn *c, const char *account_id,
				      char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1])
{
	egov_err err;

	if ((err = db_begin(c)))
		return err;
	err = new_codes(c, account_id, codes);
	if (err)
		db_rollback(c);
	else
		err = db_commit(c);
	return err;
}

egov_err identity_recovery_use(db_conn *c, const char *account_id, const char *code, int *left)
{
	char norm[16], in[80], hash[65];
	size_t n = 0;
	int64_t changed = 0, rest = 0;
	bool found = false;
	egov_err err;

	for (; code && *code && n < sizeof norm - 1; code++) {
		char ch = *code;
		if (ch == '-' || ch == ' ')
			continue;
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		norm[n++] = ch;
	}
	norm[n] = '\0';
	if (n != 10)
		return EGOV_EINVAL;
	snprintf(in, sizeof in, "%s:%s", account_id, norm);
	identity_hash_hex(in, hash);
	{
		db_param p[] = {DBP_I(identity_now_us()), DBP_S(account_id), DBP_S(hash)};
		if ((err = db_exec(c,
				   "UPDATE identity_recovery SET used = ? WHERE account_id = ? AND code_hash = ?"
				   " AND used IS NULL",
				   p, 3, &changed)))
			return err;
	}
	if (changed != 1)
		return EGOV_EINVAL;
	if (left) {
		db_param p[] = {DBP_S(account_id)};
		if ((err = db_query_int(c, "SELECT COUNT(*) FROM identity_recovery WHERE account_id = ? AND used IS NULL",
					p, 1, &rest, &found)))
			return err;
		*left = (int)rest;
	}
	return EGOV_OK;
}
