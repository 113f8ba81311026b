/*
 * oidc_store.c: the provider's tables: clients, remembered grants,
 * authorization codes, token families with their refresh tokens, and the
 * access-token denylist (their schema is beside the descriptor, in
 * oidc_http.c).
 *
 * Invariants: codes, refresh tokens and client secrets are stored only as
 * SHA-256 hex (they are 256-bit random, so a plain hash is enough); a code
 * or refresh token is spent by an UPDATE ... WHERE used = 0 whose row count
 * settles races between two redemptions; a spent token presented again
 * revokes its whole family (RFC 6749 §4.1.2 and §10.4, OAuth 2.1 reuse
 * detection) and that revocation is committed even though the request fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

static void copy(char *dst, size_t n, const char *s)
{
	snprintf(dst, n, "%s", s ? s : "");
}

/* ---- scopes ----------------------------------------------------------- */

int oidc_scope_has(const char *scopes, const char *word)
{
	size_t wl = strlen(word);
	const char *p = scopes;

	if (!scopes || !wl)
		return 0;
	while (*p) {
		size_t l;
		while (*p == ' ')
			p++;
		l = strcspn(p, " ");
		if (l == wl && memcmp(p, word, l) == 0)
			return 1;
		p += l;
	}
	return 0;
}

int oidc_scopes_subset(const char *want, const char *have)
{
	const char *p = want;
	char w[OIDC_SCOPE_MAX + 1];

	while (*p) {
		size_t l;
		while (*p == ' ')
			p++;
		l = strcspn(p, " ");
		if (l == 0)
			break;
		if (l >= sizeof w)
			return 0;
		memcpy(w, p, l);
		w[l] = '\0';
		if (!oidc_scope_has(have, w))
			return 0;
		p += l;
	}
	return 1;
}

/* ---- clients ---------------------------------------------------------- */

void oidc_client_release(oidc_client *cl)
{
	if (!cl)
		return;
	free(cl->redirect_uris);
	cl->redirect_uris = NULL;
}

egov_err oidc_client_create(db_conn *c, oidc_client *cl, char secret_out[OIDC_TOKEN_LEN + 1])
{
	char now[32];
	egov_err err;

	secret_out[0] = '\0';
	cl->secret_hash[0] = '\0';
	if ((err = uuid_v7(cl->client_id)))
		return err;
	if (cl->type == OIDC_CONFIDENTIAL) {
		if ((err = oidc_random_token(secret_out)))
			return err;
		crypto_sha256_hex(secret_out, strlen(secret_out), cl->secret_hash);
	}
	time_format_rfc3339(time_now_us(), 6, now);
	copy(cl->created_at, sizeof cl->created_at, now);
	return db_exec(c,
		       "INSERT INTO oidc_client (client_id, name, type, secret_hash, redirect_uris, scopes, created_by,"
		       " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		       (db_param[]){DBP_S(cl->client_id), DBP_S(cl->name),
				    DBP_S(cl->type == OIDC_CONFIDENTIAL ? "confidential" : "public"),
				    cl->secret_hash[0] ? DBP_S(cl->secret_hash) : DBP_NULLV, DBP_S(cl->redirect_uris),
				    DBP_S(cl->scopes), DBP_S(cl->created_by), DBP_S(now)},
		       8, NULL);
}

static void client_from_row(db_rows *rows, oidc_client *out)
{
	const char *t = db_rows_text(rows, 2);

	copy(out->client_id, sizeof out->client_id, db_rows_text(rows, 0));
	copy(out->name, sizeof out->name, db_rows_text(rows, 1));
	out->type = t && strcmp(t, "confidential") == 0 ? OIDC_CONFIDENTIAL : OIDC_PUBLIC;
	copy(out->secret_hash, sizeof out->secret_hash, db_rows_text(rows, 3));
	out->redirect_uris = strdup(db_rows_text(rows, 4) ? db_rows_text(rows, 4) : "[]");
	copy(out->scopes, sizeof out->scopes, db_rows_text(rows, 5));
	copy(out->created_by, sizeof out->created_by, db_rows_text(rows, 6));
	copy(out->created_at, sizeof out->created_at, db_rows_text(rows, 7));
}

#define CLIENT_COLS "client_id, name, type, secret_hash, redirect_uris, scopes, created_by, created_at"

egov_err oidc_client_get(db_conn *c, const char *client_id, oidc_client *out)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	memset(out, 0, sizeof *out);
	if (!client_id || !*client_id || strlen(client_id) > OIDC_CLIENT_ID_MAX)
		return EGOV_ENOTFOUND;
	if ((err = db_query(c, "SELECT " CLIENT_COLS " FROM oidc_client WHERE client_id = ?",
			    (db_param[]){DBP_S(client_id)}, 1, &rows)))
		return err;
	if (!(err = db_rows_next(rows, &has))) {
		if (!has)
			err = EGOV_ENOTFOUND;
		else {
			client_from_row(rows, out);
			if (!out->redirect_uris)
				err = EGOV_ENOMEM;
		}
	}
	db_rows_free(rows);
	return err;
}

egov_err oidc_client_delete(db_conn *c, const char *client_id)
{
	int64_t n = 0;
	egov_err err;

	if ((err = db_begin(c)))
		return err;
	if ((err = db_exec(c, "DELETE FROM oidc_client WHERE client_id = ?", (db_param[]){DBP_S(client_id)}, 1, &n)))
		goto out;
	if (n == 0) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	/* Everything issued to the client dies with it. */
	if ((err = db_exec(c, "UPDATE oidc_family SET revoked = 1 WHERE client_id = ?", (db_param[]){DBP_S(client_id)},
			   1, NULL)) ||
	    (err = db_exec(c, "DELETE FROM oidc_grant WHERE client_id = ?", (db_param[]){DBP_S(client_id)}, 1, NULL)) ||
	    (err = db_exec(c, "DELETE FROM oidc_code WHERE client_id = ?", (db_param[]){DBP_S(client_id)}, 1, NULL)))
		goto out;
	err = db_commit(c);
out:
	if (err)
		db_rollback(c);
	return err;
}

egov_err oidc_client_list(db_conn *c, int (*fn)(void *ctx, const oidc_client *cl), void *ctx)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	if ((err = db_query(c, "SELECT " CLIENT_COLS " FROM oidc_client ORDER BY client_id", NULL, 0, &rows)))
		return err;
	while (!(err = db_rows_next(rows, &has)) && has) {
		oidc_client cl = {0};
		int stop;
		client_from_row(rows, &cl);
		stop = cl.redirect_uris ? fn(ctx, &cl) : -1;
		oidc_client_release(&cl);
		if (stop < 0)
			err = EGOV_ENOMEM;
		if (stop)
			break;
	}
	db_rows_free(rows);
	return err;
}

int oidc_client_redirect_ok(const oidc_client *cl, const char *uri)
{
	cJSON *arr, *e;
	int ok = 0;

	if (!uri || !cl->redirect_uris || !(arr = cJSON_Parse(cl->redirect_uris)))
		return 0;
	cJSON_ArrayForEach(e, arr) {
		/* Exact, byte for byte: no prefix, case or port games. */
		if (cJSON_IsString(e) && strcmp(e->valuestring, uri) == 0)
			ok = 1;
	}
	cJSON_Delete(arr);
	return ok;
}

int oidc_client_secret_ok(const oidc_client *cl, const char *secret)
{
	char h[65];

	if (cl->type != OIDC_CONFIDENTIAL || !cl->secret_hash[0] || !secret)
		return 0;
	crypto_sha256_hex(secret, strlen(secret), h);
	return crypto_streq(h, cl->secret_hash);
}

/* ---- grants ----------------------------------------------------------- */

egov_err oidc_grant_covers(db_conn *c, const char *account_id, const char *client_id, const char *scope, bool *covers)
{
	char *have = NULL;
	egov_err err;

	*covers = false;
	if ((err = db_query_text(c, "SELECT scopes FROM oidc_grant WHERE account_id = ? AND client_id = ?",
				 (db_param[]){DBP_S(account_id), DBP_S(client_id)}, 2, &have)))
		return err;
	if (have)
		*covers = oidc_scopes_subset(scope, have);
	free(have);
	return EGOV_OK;
}

egov_err oidc_grant_save(db_conn *c, const char *account_id, const char *client_id, const char *scope)
{
	char now[32];

	time_format_rfc3339(time_now_us(), 6, now);
	/* Upsert in both dialects: the grant records what was last approved. */
	return db_exec(c,
		       "INSERT INTO oidc_grant (account_id, client_id, scopes, created_at) VALUES (?, ?, ?, ?)"
		       " ON CONFLICT (account_id, client_id) DO UPDATE SET scopes = excluded.scopes,"
		       " created_at = excluded.created_at",
		       (db_param[]){DBP_S(account_id), DBP_S(client_id), DBP_S(scope), DBP_S(now)}, 4, NULL);
}

egov_err oidc_grant_list(db_conn *c, const char *account_id, int (*fn)(void *ctx, const oidc_grant_info *g),
			 void *ctx)
{
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	if ((err = db_query(c,
			    "SELECT g.client_id, cl.name, g.scopes, g.created_at FROM oidc_grant g"
			    " LEFT JOIN oidc_client cl ON cl.client_id = g.client_id"
			    " WHERE g.account_id = ? ORDER BY g.created_at DESC, g.client_id",
			    (db_param[]){DBP_S(account_id)}, 1, &rows)))
		return err;
	while (!(err = db_rows_next(rows, &has)) && has) {
		oidc_grant_info g;

		memset(&g, 0, sizeof g);
		copy(g.client_id, sizeof g.client_id, db_rows_text(rows, 0));
		copy(g.name, sizeof g.name, db_rows_text(rows, 1));
		copy(g.scopes, sizeof g.scopes, db_rows_text(rows, 2));
		copy(g.granted_at, sizeof g.granted_at, db_rows_text(rows, 3));
		if (fn(ctx, &g))
			break;
	}
	db_rows_free(rows);
	return err;
}

egov_err oidc_grant_withdraw(db_conn *c, const char *account_id, const char *client_id, int64_t *families)
{
	int64_t grants = 0, fams = 0;
	egov_err err;

	if (families)
		*families = 0;
	if ((err = db_begin(c)))
		return err;
	if ((err = db_exec(c, "DELETE FROM oidc_grant WHERE account_id = ? AND client_id = ?",
			   (db_param[]){DBP_S(account_id), DBP_S(client_id)}, 2, &grants)) ||
	    (err = db_exec(c, "UPDATE oidc_family SET revoked = 1 WHERE account_id = ? AND client_id = ? AND revoked = 0",
			   (db_param[]){DBP_S(account_id), DBP_S(client_id)}, 2, &fams)) ||
	    /* Spent, so a later use reads as reuse (as oidc_family_revoke). */
	    (err = db_exec(c, "UPDATE oidc_refresh SET used = 1 WHERE account_id = ? AND client_id = ?",
			   (db_param[]){DBP_S(account_id), DBP_S(client_id)}, 2, NULL)) ||
	    (err = db_exec(c, "DELETE FROM oidc_code WHERE account_id = ? AND client_id = ?",
			   (db_param[]){DBP_S(account_id), DBP_S(client_id)}, 2, NULL)))
		goto out;
	if (grants == 0 && fams == 0) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	err = db_commit(c);
out:
	if (err)
		db_rollback(c);
	else if (families)
		*families = fams;
	return err;
}

/* ---- codes ------------------------------------------------------------ */

egov_err oidc_code_issue(db_conn *c, const oidc_code_data *d, char code_out[OIDC_TOKEN_LEN + 1])
{
	char h[65];
	int64_t now = oidc_now();
	egov_err err;

	if ((err = oidc_random_token(code_out)))
		return err;
	crypto_sha256_hex(code_out, strlen(code_out), h);
	/* Spent and expired codes are kept a while so a late replay is still
	 * recognised, then swept here. */
	db_exec(c, "DELETE FROM oidc_code WHERE expires_at < ?", (db_param[]){DBP_I(now - 3600)}, 1, NULL);
	return db_exec(c,
		       "INSERT INTO oidc_code (code_hash, client_id, account_id, redirect_uri, scope, nonce, challenge,"
		       " family, acr, auth_time, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		       (db_param[]){DBP_S(h), DBP_S(d->client_id), DBP_S(d->account_id), DBP_S(d->redirect_uri),
				    DBP_S(d->scope), DBP_S(d->nonce), DBP_S(d->challenge), DBP_S(d->family),
				    DBP_I(d->acr), DBP_I(d->auth_time), DBP_I(now + OIDC_CODE_TTL_S)},
		       11, NULL);
}

egov_err oidc_code_redeem(db_conn *c, const char *code, oidc_code_data *d)
{
	db_rows *rows = NULL;
	char h[65];
	bool has = false;
	int used = 0;
	int64_t n = 0;
	egov_err err;

	memset(d, 0, sizeof *d);
	if (!code || strlen(code) != OIDC_TOKEN_LEN)
		return EGOV_ENOTFOUND;
	crypto_sha256_hex(code, strlen(code), h);
	if ((err = db_query(c,
			    "SELECT client_id, account_id, redirect_uri, scope, nonce, challenge, family, acr, auth_time,"
			    " expires_at, used FROM oidc_code WHERE code_hash = ?",
			    (db_param[]){DBP_S(h)}, 1, &rows)))
		return err;
	if (!(err = db_rows_next(rows, &has)) && has) {
		copy(d->client_id, sizeof d->client_id, db_rows_text(rows, 0));
		copy(d->account_id, sizeof d->account_id, db_rows_text(rows, 1));
		copy(d->redirect_uri, sizeof d->redirect_uri, db_rows_text(rows, 2));
		copy(d->scope, sizeof d->scope, db_rows_text(rows, 3));
		copy(d->nonce, sizeof d->nonce, db_rows_text(rows, 4));
		copy(d->challenge, sizeof d->challenge, db_rows_text(rows, 5));
		copy(d->family, sizeof d->family, db_rows_text(rows, 6));
		d->acr = (int)db_rows_int(rows, 7);
		d->auth_time = db_rows_int(rows, 8);
		d->expires_at = db_rows_int(rows, 9);
		used = (int)db_rows_int(rows, 10);
	}
	db_rows_free(rows);
	if (err)
		return err;
	if (!has)
		return EGOV_ENOTFOUND;
	if (used)
		return EGOV_ECONFLICT;
	if ((err = db_exec(c, "UPDATE oidc_code SET used = 1 WHERE code_hash = ? AND used = 0", (db_param[]){DBP_S(h)}, 1,
			   &n)))
		return err;
	if (n != 1)
		return EGOV_ECONFLICT; /* another request spent it first */
	if (d->expires_at <= oidc_now())
		return EGOV_ENOTFOUND;
	return EGOV_OK;
}

/* ---- families and refresh tokens -------------------------------------- */

egov_err oidc_family_create(db_conn *c, const char *family, const char *client_id, const char *account_id)
{
	return db_exec(c, "INSERT INTO oidc_family (id, client_id, account_id, created_at) VALUES (?, ?, ?, ?)",
		       (db_param[]){DBP_S(family), DBP_S(client_id), DBP_S(account_id), DBP_I(oidc_now())}, 4, NULL);
}

egov_err oidc_family_revoke(db_conn *c, const char *family)
{
	egov_err err;

	/* Spending every refresh token of the family makes a later use of
	 * any of them look like reuse as well, which is what it is. */
	err = db_exec(c, "UPDATE oidc_family SET revoked = 1 WHERE id = ?", (db_param[]){DBP_S(family)}, 1, NULL);
	if (!err)
		err = db_exec(c, "UPDATE oidc_refresh SET used = 1 WHERE family = ?", (db_param[]){DBP_S(family)}, 1, NULL);
	return err;
}

egov_err oidc_family_revoked(db_conn *c, const char *family, bool *revoked)
{
	int64_t v = 0;
	bool found = false;
	egov_err err;

	*revoked = true;
	if ((err = db_query_int(c, "SELECT revoked FROM oidc_family WHERE id = ?", (db_param[]){DBP_S(family)}, 1, &v,
				&found)))
		return err;
	*revoked = !found || v != 0;
	return EGOV_OK;
}

egov_err oidc_refresh_issue(db_conn *c, const oidc_refresh_data *d, char token_out[OIDC_TOKEN_LEN + 1])
{
	char h[65];
	egov_err err;

	if ((err = oidc_random_token(token_out)))
		return err;
	crypto_sha256_hex(token_out, strlen(token_out), h);
	return db_exec(c,
		       "INSERT INTO oidc_refresh (token_hash, family, client_id, account_id, scope, acr, auth_time,"
		       " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		       (db_param[]){DBP_S(h), DBP_S(d->family), DBP_S(d->client_id), DBP_S(d->account_id),
				    DBP_S(d->scope), DBP_I(d->acr), DBP_I(d->auth_time),
				    DBP_I(oidc_now() + OIDC_REFRESH_TTL_S)},
		       8, NULL);
}

/* Reads a refresh token's row; *found false if none. */
static egov_err refresh_row(db_conn *c, const char *h, oidc_refresh_data *d, int64_t *expires_at, int *used,
			    bool *found)
{
	db_rows *rows = NULL;
	egov_err err;

	*found = false;
	if ((err = db_query(c,
			    "SELECT r.family, r.client_id, r.account_id, r.scope, r.acr, r.auth_time, r.expires_at, r.used,"
			    " f.revoked FROM oidc_refresh r LEFT JOIN oidc_family f ON f.id = r.family"
			    " WHERE r.token_hash = ?",
			    (db_param[]){DBP_S(h)}, 1, &rows)))
		return err;
	if (!(err = db_rows_next(rows, found)) && *found) {
		copy(d->family, sizeof d->family, db_rows_text(rows, 0));
		copy(d->client_id, sizeof d->client_id, db_rows_text(rows, 1));
		copy(d->account_id, sizeof d->account_id, db_rows_text(rows, 2));
		copy(d->scope, sizeof d->scope, db_rows_text(rows, 3));
		d->acr = (int)db_rows_int(rows, 4);
		d->auth_time = db_rows_int(rows, 5);
		*expires_at = db_rows_int(rows, 6);
		/* A revoked (or missing) family counts as spent. */
		*used = db_rows_int(rows, 7) != 0 ? 1 : (db_rows_isnull(rows, 8) || db_rows_int(rows, 8) != 0) ? 2 : 0;
	}
	db_rows_free(rows);
	return err;
}

egov_err oidc_refresh_lookup(db_conn *c, const char *token, oidc_refresh_data *d, int64_t *expires_at)
{
	char h[65];
	bool found = false;
	int used = 0;
	egov_err err;

	memset(d, 0, sizeof *d);
	if (!token || strlen(token) != OIDC_TOKEN_LEN)
		return EGOV_ENOTFOUND;
	crypto_sha256_hex(token, strlen(token), h);
	if ((err = refresh_row(c, h, d, expires_at, &used, &found)))
		return err;
	if (!found || used || *expires_at <= oidc_now())
		return EGOV_ENOTFOUND;
	return EGOV_OK;
}

typedef struct rotate_ctx {
	const char *token;
	const char *client_id; /* NULL: any client */
	const char *scope;     /* NULL: the token's own */
	oidc_refresh_data *d;
	char *token_out;
	/* EGOV_OK, EGOV_ENOTFOUND, EGOV_ECONFLICT (reuse), EGOV_EPERM (another
	 * client's) or EGOV_EINVAL (scope) */
	egov_err result;
	/* Optional: runs after the rotation in its transaction (the grant's
	 * audit record), see oidc_refresh_rotate_then(). */
	egov_err (*then)(db_conn *c, void *ctx, egov_err result, const oidc_refresh_data *d);
	void *then_ctx;
} rotate_ctx;

/* The rotation inside a transaction the caller owns. Returns a database
 * error, or EGOV_OK with the outcome in x->result, so that the family
 * revocation a reuse triggers is committed although the request fails.
 * The client and scope checks come before anything is spent, in the same
 * transaction, so no rotation can slip between them and the spending. */
static egov_err rotate_only(db_conn *c, rotate_ctx *x);

static egov_err rotate_in_txn(db_conn *c, void *arg)
{
	rotate_ctx *x = arg;
	egov_err err = rotate_only(c, x);

	if (!err && x->then)
		err = x->then(c, x->then_ctx, x->result, x->d);
	return err;
}

/* The common rotation in one statement: a live token (unspent, unexpired,
 * of a live family) of client, spent and read back at once. *spent false
 * when there is no such token: the statement changed nothing, and the
 * caller takes the long way, which tells the other cases apart. */
static egov_err spend_live(db_conn *c, const char *h, const char *client_id, oidc_refresh_data *d, bool *spent)
{
	db_rows *rows = NULL;
	egov_err err;

	*spent = false;
	if ((err = db_query(c,
			    "UPDATE oidc_refresh SET used = 1 WHERE token_hash = ? AND used = 0 AND client_id = ?"
			    " AND expires_at > ? AND EXISTS (SELECT 1 FROM oidc_family f WHERE f.id = oidc_refresh.family"
			    " AND f.revoked = 0) RETURNING family, client_id, account_id, scope, acr, auth_time",
			    (db_param[]){DBP_S(h), DBP_S(client_id), DBP_I(oidc_now())}, 3, &rows)) ||
	    (err = db_rows_next(rows, spent)))
		goto out;
	if (*spent) {
		copy(d->family, sizeof d->family, db_rows_text(rows, 0));
		copy(d->client_id, sizeof d->client_id, db_rows_text(rows, 1));
		copy(d->account_id, sizeof d->account_id, db_rows_text(rows, 2));
		copy(d->scope, sizeof d->scope, db_rows_text(rows, 3));
		d->acr = (int)db_rows_int(rows, 4);
		d->auth_time = db_rows_int(rows, 5);
	}
out:
	db_rows_free(rows);
	return err;
}

static egov_err rotate_only(db_conn *c, rotate_ctx *x)
{
	char h[65];
	bool found = false, spent = false;
	int used = 0;
	int64_t exp = 0, n = 0;
	egov_err err;

	memset(x->d, 0, sizeof *x->d);
	x->token_out[0] = '\0';
	x->result = EGOV_ENOTFOUND;
	if (!x->token || strlen(x->token) != OIDC_TOKEN_LEN)
		return EGOV_OK;
	crypto_sha256_hex(x->token, strlen(x->token), h);
	/* Without a scope to check before spending, the common case takes
	 * one statement instead of two (a grant is a hot path). */
	if (!x->scope && x->client_id && (err = spend_live(c, h, x->client_id, x->d, &spent)))
		return err;
	if (spent)
		goto issue;
	if ((err = refresh_row(c, h, x->d, &exp, &used, &found)))
		return err;
	if (!found || used == 2 || exp <= oidc_now())
		return EGOV_OK;
	if (!used && x->client_id && strcmp(x->d->client_id, x->client_id) != 0) {
		x->result = EGOV_EPERM;
		return EGOV_OK;
	}
	if (!used && x->scope && (!*x->scope || !oidc_scopes_subset(x->scope, x->d->scope))) {
		x->result = EGOV_EINVAL;
		return EGOV_OK;
	}
	if (used == 0 && (err = db_exec(c, "UPDATE oidc_refresh SET used = 1 WHERE token_hash = ? AND used = 0",
					(db_param[]){DBP_S(h)}, 1, &n)))
		return err;
	if (used || n != 1) {
		/* Reuse of a spent token: someone holds a copy. Kill the family. */
		if ((err = oidc_family_revoke(c, x->d->family)))
			return err;
		x->result = EGOV_ECONFLICT;
		return EGOV_OK;
	}
issue:
	if ((err = oidc_refresh_issue(c, x->d, x->token_out)))
		return err;
	x->result = EGOV_OK;
	return EGOV_OK;
}

egov_err oidc_refresh_rotate(db_conn *c, const char *token, oidc_refresh_data *d, char token_out[OIDC_TOKEN_LEN + 1])
{
	rotate_ctx x = {.token = token, .d = d, .token_out = token_out};
	egov_err err;

	if ((err = db_begin(c)))
		return err;
	if ((err = rotate_in_txn(c, &x)) || (err = db_commit(c))) {
		db_rollback(c);
		token_out[0] = '\0';
		return err;
	}
	if (x.result)
		token_out[0] = '\0';
	return x.result;
}

egov_err oidc_refresh_rotate_batch(db *dbh, const oidc_rotation *rot, oidc_refresh_data *d,
				   char token_out[OIDC_TOKEN_LEN + 1], bool flush)
{
	return oidc_refresh_rotate_then(dbh, rot, d, token_out, flush, NULL, NULL);
}

egov_err oidc_refresh_rotate_then(db *dbh, const oidc_rotation *rot, oidc_refresh_data *d,
				  char token_out[OIDC_TOKEN_LEN + 1], bool flush,
				  egov_err (*then)(db_conn *c, void *ctx, egov_err result, const oidc_refresh_data *d),
				  void *ctx)
{
	rotate_ctx x = {.token = rot->token, .client_id = rot->client_id, .scope = rot->scope, .d = d,
			.token_out = token_out, .then = then, .then_ctx = ctx};
	egov_err err = flush ? db_batch(dbh, rotate_in_txn, &x) : db_batch_nosync(dbh, rotate_in_txn, &x);

	if (err) {
		token_out[0] = '\0';
		return err;
	}
	if (x.result)
		token_out[0] = '\0';
	return x.result;
}

/* ---- denylist --------------------------------------------------------- */

egov_err oidc_deny_add(db_conn *c, const char *jti, int64_t exp)
{
	egov_err err;

	db_exec(c, "DELETE FROM oidc_deny WHERE expires_at < ?", (db_param[]){DBP_I(oidc_now() - OIDC_LEEWAY_S)}, 1, NULL);
	/* Denied twice is denied: no conflict, which would also spoil a
	 * caller's transaction on PostgreSQL. */
	err = db_exec(c, "INSERT INTO oidc_deny (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
		      (db_param[]){DBP_S(jti), DBP_I(exp)}, 2, NULL);
	return err == EGOV_ECONFLICT ? EGOV_OK : err;
}

egov_err oidc_deny_has(db_conn *c, const char *jti, bool *denied)
{
	int64_t v = 0;
	bool found = false;
	egov_err err;

	*denied = false;
	if ((err = db_query_int(c, "SELECT 1 FROM oidc_deny WHERE jti = ?", (db_param[]){DBP_S(jti)}, 1, &v, &found)))
		return err;
	*denied = found;
	return EGOV_OK;
}
