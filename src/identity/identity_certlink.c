/*
 * identity_certlink.c: storage of the links between accounts and
 * certificates of external CAs (table identity_cert_link), which let such
 * a certificate log in at acr 3 (identity_cert.c has the routes).
 *
 * Invariants:
 * - A certificate is named by (issuer DN, serial): the primary key, so one
 *   certificate links to at most one account, and a race to link it is
 *   settled by the constraint (EGOV_ECONFLICT), never by check-then-insert.
 * - The SHA-256 of the certificate's public key is stored with the link;
 *   a certificate with the same issuer and serial but another key is not
 *   the linked one (a re-issue by a compromised anchor).
 * - Serials are kept as pki_verify_chain() writes them: lower-case hex
 *   without leading zeros.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "core/banned.h"

static void copy_row(db_rows *rows, identity_cert_link *out)
{
	identity_copy(out->account_id, sizeof out->account_id, db_rows_text(rows, 0));
	identity_copy(out->issuer, sizeof out->issuer, db_rows_text(rows, 1));
	identity_copy(out->serial, sizeof out->serial, db_rows_text(rows, 2));
	identity_copy(out->spki_sha256, sizeof out->spki_sha256, db_rows_text(rows, 3));
	identity_copy(out->subject, sizeof out->subject, db_rows_text(rows, 4));
	identity_copy(out->created_at, sizeof out->created_at, db_rows_text(rows, 5));
}

#define LINK_COLUMNS "account_id, issuer_dn, serial_hex, spki_sha256, subject_dn, created_at"

egov_err identity_cert_link_find(db_conn *c, const char *issuer, const char *serial, identity_cert_link *out)
{
	db_param p[] = {DBP_S(issuer), DBP_S(serial)};
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	memset(out, 0, sizeof *out);
	if ((err = db_query(c, "SELECT " LINK_COLUMNS " FROM identity_cert_link WHERE issuer_dn = ? AND serial_hex = ?",
			    p, 2, &rows)) ||
	    (err = db_rows_next(rows, &has)))
		goto out;
	if (!has) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	copy_row(rows, out);
out:
	db_rows_free(rows);
	return err;
}

egov_err identity_cert_link_add(db_conn *c, const identity_cert_link *in, identity_cert_link *existing)
{
	char now[32];
	int64_t n = 0;
	bool found = false;
	egov_err err;

	{
		db_param p[] = {DBP_S(in->account_id)};
		if ((err = db_query_int(c, "SELECT count(*) FROM identity_cert_link WHERE account_id = ?", p, 1, &n,
					&found)))
			goto out;
	}
	/* A soft cap (two concurrent links may pass it together): it only
	 * keeps one session from filling the table. */
	if (n >= IDENTITY_CERT_LINKS_MAX) {
		err = EGOV_ELIMIT;
		goto out;
	}
	identity_now_rfc3339(now);
	{
		db_param p[] = {DBP_S(in->account_id), DBP_S(in->issuer), DBP_S(in->serial),
				DBP_S(in->spki_sha256), DBP_S(in->subject), DBP_S(now)};
		/* Its own (nested) transaction, so that a conflict leaves a
		 * caller's transaction usable (PostgreSQL aborts it otherwise)
		 * for the look-up below and what the caller does next. */
		if ((err = db_begin(c)))
			goto out;
		err = db_end(c, db_exec(c, "INSERT INTO identity_cert_link (" LINK_COLUMNS ") VALUES (?, ?, ?, ?, ?, ?)",
					p, 6, NULL));
	}
	if (err == EGOV_ECONFLICT) {
		egov_err e2 = identity_cert_link_find(c, in->issuer, in->serial, existing);
		/* Unlinked in between: report the conflict all the same. */
		if (e2 && e2 != EGOV_ENOTFOUND)
			err = e2;
	}
out:
	return err;
}

egov_err identity_cert_link_list(db_conn *c, const char *account_id,
				 int (*fn)(void *ctx, const identity_cert_link *l), void *ctx)
{
	db_param p[] = {DBP_S(account_id)};
	identity_cert_link l;
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	if ((err = db_query(c,
			    "SELECT " LINK_COLUMNS " FROM identity_cert_link WHERE account_id = ?"
			    " ORDER BY created_at, issuer_dn, serial_hex",
			    p, 1, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		copy_row(rows, &l);
		if (fn(ctx, &l))
			break;
	}
out:
	db_rows_free(rows);
	return err;
}

egov_err identity_cert_link_remove(db_conn *c, const char *account_id, const char *serial, int64_t *removed)
{
	db_param p[] = {DBP_S(account_id), DBP_S(serial)};

	*removed = 0;
	return db_exec(c, "DELETE FROM identity_cert_link WHERE account_id = ? AND serial_hex = ?", p, 2, removed);
}

bool identity_serial_norm(const char *in, char *out, size_t outlen)
{
	size_t i, n = 0;

	if (!in || !*in || outlen < 2)
		return false;
	while (in[0] == '0' && in[1])
		in++;
	for (i = 0; in[i]; i++) {
		char ch = in[i];
		if (ch >= 'A' && ch <= 'F')
			ch = (char)(ch + 32);
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')) || n + 1 >= outlen)
			return false;
		out[n++] = ch;
	}
	out[n] = '\0';
	return true;
}
