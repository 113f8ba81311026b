/*
 * test_oidc.c: the OIDC provider's pieces: base64url, strict JWT parsing,
 * ES256 sign/verify (DER <-> raw), claim checks, PKCE (RFC 7636 vector),
 * signing keys with rotation, single-use codes and refresh rotation with
 * reuse detection on every backend.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "core/db.h"
#include "oidc/oidc_int.h"
#include "testutil.h"
#include "core/banned.h"

static int64_t fake_now = 1800000000;
static int64_t fake_clock(void)
{
	return fake_now;
}

/* ---- base64url ---------------------------------------------------------- */

static void test_b64url(void **state)
{
	unsigned char out[16];
	char enc[32];
	size_t n = 0;

	b64url_encode((const unsigned char *)"\xfb\xff", 2, enc);
	assert_string_equal(enc, "-_8");
	assert_int_equal(b64url_decode("-_8", 3, out, sizeof out, &n), EGOV_OK);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	/* padding, standard alphabet, impossible length, stray bits */
	assert_int_equal(b64url_decode("-_8=", 4, out, sizeof out, &n), EGOV_EINVAL);
	assert_int_equal(b64url_decode("+/8", 3, out, sizeof out, &n), EGOV_EINVAL);
	assert_int_equal(b64url_decode("abcde", 5, out, sizeof out, &n), EGOV_EINVAL);
	assert_int_equal(b64url_decode("-_9", 3, out, sizeof out, &n), EGOV_EINVAL);
	assert_int_equal(b64url_decode("AAAAAAAAAAAAAAAAAAAAAAAA", 24, out, 4, &n), EGOV_ELIMIT);
}

/* ---- PKCE --------------------------------------------------------------- */

static void test_pkce_rfc7636(void **state)
{
	char ch[44];

	oidc_pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ch);
	assert_string_equal(ch, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
	assert_true(oidc_pkce_valid("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
	assert_false(oidc_pkce_valid("short"));
	assert_false(oidc_pkce_valid("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX+"));
}

/* ---- JWT ---------------------------------------------------------------- */

static char *make_token(EVP_PKEY *k, const char *kid, const char *payload)
{
	buf b;

	buf_init(&b, 16384);
	assert_int_equal(jwt_sign(k, kid, "JWT", payload, &b), EGOV_OK);
	return buf_detach(&b, NULL);
}

/* Builds header.payload.sig from raw JSON texts and a base64url signature. */
static char *forge(const char *hdr, const char *payload, const char *sig64)
{
	char h[512], p[512], *out = malloc(1200);

	b64url_encode((const unsigned char *)hdr, strlen(hdr), h);
	b64url_encode((const unsigned char *)payload, strlen(payload), p);
	snprintf(out, 1200, "%s.%s.%s", h, p, sig64);
	return out;
}

static int parse_ok(const char *tok)
{
	jwt_parsed p;
	const char *why = NULL;
	int ok = jwt_parse(tok, strlen(tok), &p, &why) == EGOV_OK;

	jwt_parsed_release(&p);
	return ok;
}

static void test_jwt_sign_verify(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	const char *payload = "{\"iss\":\"https://id.example\",\"aud\":\"app\",\"sub\":\"u1\",\"exp\":1800000300,"
			      "\"iat\":1800000000}";
	char *tok = make_token(k, "k1", payload), *t2, sig64[90];
	const char *why = NULL;
	jwt_parsed p;
	unsigned char der[80], raw[64];
	size_t derlen = 0;

	assert_non_null(k);
	assert_int_equal(jwt_parse(tok, strlen(tok), &p, &why), EGOV_OK);
	assert_string_equal(p.kid, "k1");
	assert_string_equal(p.typ, "JWT");
	assert_int_equal(jwt_verify_sig(tok, &p, k), EGOV_OK);
	assert_int_equal(jwt_verify_sig(tok, &p, other), EGOV_EAUTH);
	/* claims */
	assert_int_equal(jwt_check_claims(p.payload, "https://id.example", "app", 1800000100, &why), EGOV_OK);
	assert_int_equal(jwt_check_claims(p.payload, "https://id.example", "app", 1800000400, &why), EGOV_EAUTH);
	assert_string_equal(why, "jwt.expired");
	assert_int_equal(jwt_check_claims(p.payload, "https://id.example", "other", 1800000100, &why), EGOV_EAUTH);
	assert_string_equal(why, "jwt.aud");
	assert_int_equal(jwt_check_claims(p.payload, "https://evil.example", "app", 1800000100, &why), EGOV_EAUTH);
	assert_string_equal(why, "jwt.iss");
	assert_int_equal(jwt_check_claims(p.payload, "https://id.example", "app", 1799990000, &why), EGOV_EAUTH);
	assert_string_equal(why, "jwt.iat");

	/* DER <-> raw: the raw signature converts to DER that OpenSSL accepts
	 * and back to the same bytes. */
	assert_int_equal(jwt_sig_raw_to_der(p.sig, der, sizeof der, &derlen), EGOV_OK);
	assert_int_equal(jwt_sig_der_to_raw(der, derlen, raw), EGOV_OK);
	assert_memory_equal(raw, p.sig, 64);
	assert_int_equal(jwt_sig_der_to_raw(der, derlen - 1, raw), EGOV_EINVAL);

	/* tampered signature: flip one byte */
	raw[10] ^= 1;
	{
		jwt_parsed q = p;
		memcpy(q.sig, raw, 64);
		assert_int_equal(jwt_verify_sig(tok, &q, k), EGOV_EAUTH);
	}
	/* tampered payload, same signature */
	b64url_encode(p.sig, 64, sig64);
	t2 = forge("{\"alg\":\"ES256\",\"kid\":\"k1\",\"typ\":\"JWT\"}",
		   "{\"iss\":\"https://id.example\",\"aud\":\"app\",\"sub\":\"admin\",\"exp\":1800000300}", sig64);
	{
		jwt_parsed q;
		assert_int_equal(jwt_parse(t2, strlen(t2), &q, &why), EGOV_OK);
		assert_int_equal(jwt_verify_sig(t2, &q, k), EGOV_EAUTH);
		jwt_parsed_release(&q);
	}
	free(t2);
	/* tampered header (kid changed) */
	t2 = forge("{\"alg\":\"ES256\",\"kid\":\"k2\",\"typ\":\"JWT\"}", payload, sig64);
	{
		jwt_parsed q;
		assert_int_equal(jwt_parse(t2, strlen(t2), &q, &why), EGOV_OK);
		assert_int_equal(jwt_verify_sig(t2, &q, k), EGOV_EAUTH);
		jwt_parsed_release(&q);
	}
	free(t2);

	/* alg none and HS256 confusion never parse */
	t2 = forge("{\"alg\":\"none\",\"kid\":\"k1\"}", payload, sig64);
	assert_false(parse_ok(t2));
	free(t2);
	t2 = forge("{\"alg\":\"HS256\",\"kid\":\"k1\"}", payload, sig64);
	assert_false(parse_ok(t2));
	free(t2);
	t2 = forge("{\"alg\":\"ES256\"}", payload, sig64);
	assert_false(parse_ok(t2)); /* no kid */
	free(t2);
	t2 = forge("{\"alg\":\"ES256\",\"kid\":\"k1\",\"crit\":[\"x\"]}", payload, sig64);
	assert_false(parse_ok(t2));
	free(t2);
	t2 = forge("{\"alg\":\"ES256\",\"kid\":\"k1\",\"alg\":\"none\"}", payload, sig64);
	assert_false(parse_ok(t2)); /* duplicate member */
	free(t2);
	t2 = forge("{\"alg\":\"ES256\",\"kid\":\"k1\"}", "[1]", sig64);
	assert_false(parse_ok(t2)); /* payload not an object */
	free(t2);
	t2 = forge("{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload, "");
	assert_false(parse_ok(t2)); /* empty signature (alg none style) */
	free(t2);
	t2 = forge("{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload, "AAAA");
	assert_false(parse_ok(t2)); /* short signature */
	free(t2);
	/* structure */
	assert_false(parse_ok("a.b"));
	assert_false(parse_ok("a.b.c.d"));
	assert_false(parse_ok(""));
	assert_false(parse_ok(".."));
	{
		char padded[2048];
		snprintf(padded, sizeof padded, "%s=", tok);
		assert_false(parse_ok(padded));
		snprintf(padded, sizeof padded, " %s", tok);
		assert_false(parse_ok(padded));
	}
	assert_true(parse_ok(tok));

	jwt_parsed_release(&p);
	free(tok);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void test_scopes(void **state)
{
	assert_true(oidc_scope_has("openid email", "email"));
	assert_false(oidc_scope_has("openid emails", "email"));
	assert_true(oidc_scopes_subset("openid", "openid profile"));
	assert_true(oidc_scopes_subset("profile  openid", "openid profile"));
	assert_false(oidc_scopes_subset("openid egov.api", "openid profile"));
}

/* ---- storage and keys, on every backend ---------------------------------- */

typedef struct fixture {
	char *dir;
	char urls[2][512];
	int n;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);

	f->dir = test_tmpdir();
	f->n = test_backends(f->dir, f->urls);
	oidc_set_clock(fake_clock);
	oidc_set_issuer("https://id.example");
	oidc_keys_set_policy(30, 300);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	oidc_keys_reset();
	oidc_set_clock(NULL);
	test_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static db_conn *open_db(db **d, const char *url)
{
	db_conn *c = NULL;
	const db_migration *m;
	size_t n = 0;

	assert_int_equal(db_open(url, d, NULL, 0), EGOV_OK);
	assert_int_equal(db_conn_open(*d, &c), EGOV_OK);
	assert_int_equal(test_db_reset(c), 0);
	m = oidc_migrations(&n);
	assert_int_equal(db_migrate(c, "oidc", m, n, NULL), EGOV_OK);
	return c;
}

static void test_keys_rotation(void **state)
{
	fixture *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		char kid1[OIDC_KID_MAX + 1], kid2[OIDC_KID_MAX + 1], path[1200], keydir[600];
		EVP_PKEY *k = NULL;
		struct stat st;
		buf jwks, tok;
		cJSON *pl = NULL;
		const char *why = NULL;

		snprintf(keydir, sizeof keydir, "%s/keys%d", f->dir, i);
		oidc_keys_set_dir(keydir);
		oidc_keys_reset();
		fake_now = 1800000000;
		assert_int_equal(oidc_keys_active(c, kid1, &k), EGOV_OK);
		EVP_PKEY_free(k);
		snprintf(path, sizeof path, "%s/%s.pem", keydir, kid1);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		assert_int_equal(stat(keydir, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);

		/* sign with key 1, then rotate: old tokens still verify */
		buf_init(&tok, 16384);
		assert_int_equal(oidc_sign(c, "JWT",
					   "{\"iss\":\"https://id.example\",\"aud\":\"a\",\"exp\":1800000300}", &tok),
				 EGOV_OK);
		assert_int_equal(oidc_keys_rotate(c, kid2), EGOV_OK);
		assert_string_not_equal(kid1, kid2);
		assert_int_equal(oidc_verify(c, tok.data, "JWT", "a", &pl, &why), EGOV_OK);
		cJSON_Delete(pl);
		assert_int_equal(oidc_verify(c, tok.data, "at+jwt", "a", &pl, &why), EGOV_EAUTH);
		buf_init(&jwks, 65536);
		assert_int_equal(oidc_keys_jwks(c, &jwks), EGOV_OK);
		assert_non_null(strstr(jwks.data, kid1));
		assert_non_null(strstr(jwks.data, kid2));
		assert_null(strstr(jwks.data, "\"d\""));
		buf_release(&jwks);

		/* past the overlap, key 1 is gone from the JWKS and unknown */
		fake_now += 300 + OIDC_KEY_MARGIN_S + 1;
		oidc_keys_reset();
		buf_init(&jwks, 65536);
		assert_int_equal(oidc_keys_jwks(c, &jwks), EGOV_OK);
		assert_null(strstr(jwks.data, kid1));
		assert_non_null(strstr(jwks.data, kid2));
		buf_release(&jwks);
		assert_int_equal(oidc_verify(c, tok.data, "JWT", NULL, &pl, &why), EGOV_EAUTH);
		assert_string_equal(why, "jwt.kid");

		/* natural rotation after the period: a new key signs */
		fake_now += 31 * 86400;
		{
			char kid3[OIDC_KID_MAX + 1];
			assert_int_equal(oidc_keys_active(c, kid3, &k), EGOV_OK);
			EVP_PKEY_free(k);
			assert_string_not_equal(kid3, kid2);
		}
		buf_release(&tok);
		fake_now = 1800000000;
		oidc_keys_reset();
		db_conn_close(c);
		db_close(d);
	}
}

static void test_code_single_use(void **state)
{
	fixture *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		oidc_code_data in, out;
		char code[OIDC_TOKEN_LEN + 1], code2[OIDC_TOKEN_LEN + 1];

		fake_now = 1800000000;
		memset(&in, 0, sizeof in);
		snprintf(in.client_id, sizeof in.client_id, "client-1");
		snprintf(in.account_id, sizeof in.account_id, "acct-1");
		snprintf(in.redirect_uri, sizeof in.redirect_uri, "https://app.example/cb");
		snprintf(in.scope, sizeof in.scope, "openid");
		snprintf(in.family, sizeof in.family, "fam-1");
		in.acr = 2;
		in.auth_time = fake_now - 10;
		assert_int_equal(oidc_code_issue(c, &in, code), EGOV_OK);
		assert_int_equal(strlen(code), OIDC_TOKEN_LEN);
		assert_int_equal(oidc_code_redeem(c, code, &out), EGOV_OK);
		assert_string_equal(out.client_id, "client-1");
		assert_string_equal(out.family, "fam-1");
		assert_int_equal(out.acr, 2);
		/* second use: conflict, with the family to revoke */
		assert_int_equal(oidc_code_redeem(c, code, &out), EGOV_ECONFLICT);
		assert_string_equal(out.family, "fam-1");
		assert_int_equal(oidc_code_redeem(c, "nope", &out), EGOV_ENOTFOUND);
		/* expired */
		assert_int_equal(oidc_code_issue(c, &in, code2), EGOV_OK);
		fake_now += OIDC_CODE_TTL_S + 1;
		assert_int_equal(oidc_code_redeem(c, code2, &out), EGOV_ENOTFOUND);
		fake_now = 1800000000;
		db_conn_close(c);
		db_close(d);
	}
}

/* A new family fam of client-1 for acct-1 and its first refresh token. */
static void first_refresh(db_conn *c, const char *fam, int acr, char t1[OIDC_TOKEN_LEN + 1])
{
	oidc_refresh_data rd;

	memset(&rd, 0, sizeof rd);
	snprintf(rd.family, sizeof rd.family, "%s", fam);
	snprintf(rd.client_id, sizeof rd.client_id, "client-1");
	snprintf(rd.account_id, sizeof rd.account_id, "acct-1");
	snprintf(rd.scope, sizeof rd.scope, "openid email");
	rd.acr = acr;
	assert_int_equal(oidc_family_create(c, fam, "client-1", "acct-1"), EGOV_OK);
	assert_int_equal(oidc_refresh_issue(c, &rd, t1), EGOV_OK);
}

static void test_refresh_rotation_reuse(void **state)
{
	fixture *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		oidc_refresh_data out;
		char t1[OIDC_TOKEN_LEN + 1], t2[OIDC_TOKEN_LEN + 1], t3[OIDC_TOKEN_LEN + 1];
		bool revoked = false;
		int64_t exp;

		fake_now = 1800000000;
		first_refresh(c, "fam-r", 1, t1);
		assert_int_equal(oidc_refresh_lookup(c, t1, &out, &exp), EGOV_OK);
		assert_int_equal(oidc_refresh_rotate(c, t1, &out, t2), EGOV_OK);
		assert_string_not_equal(t1, t2);
		assert_string_equal(out.scope, "openid email");
		/* the old one is spent */
		assert_int_equal(oidc_refresh_lookup(c, t1, &out, &exp), EGOV_ENOTFOUND);
		assert_int_equal(oidc_refresh_rotate(c, t2, &out, t3), EGOV_OK);
		/* reuse of t1: family revoked, and the live t3 dies with it */
		assert_int_equal(oidc_refresh_rotate(c, t1, &out, t2), EGOV_ECONFLICT);
		assert_string_equal(out.family, "fam-r");
		assert_int_equal(oidc_family_revoked(c, "fam-r", &revoked), EGOV_OK);
		assert_true(revoked);
		assert_int_equal(oidc_refresh_rotate(c, t3, &out, t2), EGOV_ECONFLICT);
		assert_int_equal(oidc_refresh_lookup(c, t3, &out, &exp), EGOV_ENOTFOUND);
		assert_int_equal(oidc_refresh_rotate(c, "unknown", &out, t2), EGOV_ENOTFOUND);
		/* denylist */
		{
			bool denied = false;
			assert_int_equal(oidc_deny_add(c, "jti-1", fake_now + 300), EGOV_OK);
			assert_int_equal(oidc_deny_add(c, "jti-1", fake_now + 300), EGOV_OK);
			assert_int_equal(oidc_deny_has(c, "jti-1", &denied), EGOV_OK);
			assert_true(denied);
			assert_int_equal(oidc_deny_has(c, "jti-2", &denied), EGOV_OK);
			assert_false(denied);
		}
		db_conn_close(c);
		db_close(d);
	}
}

/* The refresh grant's path: client and scope checks inside the rotation's
 * own transaction leave the token unspent; a rotation that is not flushed
 * on its own is still committed and seen by every connection. */
static void test_refresh_rotation_batch(void **state)
{
	fixture *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]), *other = NULL;
		oidc_refresh_data out;
		char t1[OIDC_TOKEN_LEN + 1], t2[OIDC_TOKEN_LEN + 1], t3[OIDC_TOKEN_LEN + 1];
		oidc_rotation rot;
		bool revoked = false;
		int64_t exp;

		fake_now = 1800000000;
		first_refresh(c, "fam-b", 2, t1);

		rot = (oidc_rotation){.token = t1, .client_id = "client-2"};
		assert_int_equal(oidc_refresh_rotate_batch(d, &rot, &out, t2, true), EGOV_EPERM);
		assert_string_equal(t2, "");
		rot = (oidc_rotation){.token = t1, .client_id = "client-1", .scope = "openid egov.api"};
		assert_int_equal(oidc_refresh_rotate_batch(d, &rot, &out, t2, false), EGOV_EINVAL);
		rot.scope = "";
		assert_int_equal(oidc_refresh_rotate_batch(d, &rot, &out, t2, false), EGOV_EINVAL);
		/* none of those spent it */
		assert_int_equal(oidc_refresh_lookup(c, t1, &out, &exp), EGOV_OK);

		rot = (oidc_rotation){.token = t1, .client_id = "client-1", .scope = "openid"};
		assert_int_equal(oidc_refresh_rotate_batch(d, &rot, &out, t2, false), EGOV_OK);
		assert_string_not_equal(t1, t2);
		assert_string_equal(out.family, "fam-b");
		assert_string_equal(out.scope, "openid email"); /* the chain keeps its scope */
		assert_int_equal(out.acr, 2);
		assert_int_equal(db_conn_open(d, &other), EGOV_OK);
		assert_int_equal(oidc_refresh_lookup(other, t1, &out, &exp), EGOV_ENOTFOUND);
		assert_int_equal(oidc_refresh_lookup(other, t2, &out, &exp), EGOV_OK);
		db_conn_close(other);

		/* A spent token is reuse whoever presents it: the family dies. */
		rot = (oidc_rotation){.token = t1, .client_id = "client-2"};
		assert_int_equal(oidc_refresh_rotate_batch(d, &rot, &out, t3, false), EGOV_ECONFLICT);
		assert_string_equal(t3, "");
		assert_int_equal(oidc_family_revoked(c, "fam-b", &revoked), EGOV_OK);
		assert_true(revoked);
		rot = (oidc_rotation){.token = t2, .client_id = "client-1"};
		assert_int_equal(oidc_refresh_rotate_batch(d, &rot, &out, t3, true), EGOV_ECONFLICT);
		rot = (oidc_rotation){.token = "unknown", .client_id = "client-1"};
		assert_int_equal(oidc_refresh_rotate_batch(d, &rot, &out, t3, true), EGOV_ENOTFOUND);
		db_conn_close(c);
		db_close(d);
	}
}

static void test_clients(void **state)
{
	fixture *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		oidc_client cl = {0}, got;
		char secret[OIDC_TOKEN_LEN + 1];
		bool covers = true;

		snprintf(cl.name, sizeof cl.name, "Test app");
		cl.type = OIDC_CONFIDENTIAL;
		cl.redirect_uris = strdup("[\"https://app.example/cb\"]");
		snprintf(cl.scopes, sizeof cl.scopes, "openid email");
		snprintf(cl.created_by, sizeof cl.created_by, "operator");
		assert_int_equal(oidc_client_create(c, &cl, secret), EGOV_OK);
		assert_int_equal(strlen(secret), OIDC_TOKEN_LEN);
		assert_int_equal(oidc_client_get(c, cl.client_id, &got), EGOV_OK);
		assert_true(oidc_client_secret_ok(&got, secret));
		assert_false(oidc_client_secret_ok(&got, "wrong"));
		assert_true(oidc_client_redirect_ok(&got, "https://app.example/cb"));
		assert_false(oidc_client_redirect_ok(&got, "https://app.example/cb/"));
		assert_false(oidc_client_redirect_ok(&got, "https://app.example/cb?x=1"));
		assert_false(oidc_client_redirect_ok(&got, "https://APP.example/cb"));
		oidc_client_release(&got);
		assert_int_equal(oidc_grant_covers(c, "acct", cl.client_id, "openid", &covers), EGOV_OK);
		assert_false(covers);
		assert_int_equal(oidc_grant_save(c, "acct", cl.client_id, "openid email"), EGOV_OK);
		assert_int_equal(oidc_grant_covers(c, "acct", cl.client_id, "openid", &covers), EGOV_OK);
		assert_true(covers);
		assert_int_equal(oidc_grant_save(c, "acct", cl.client_id, "openid"), EGOV_OK);
		assert_int_equal(oidc_grant_covers(c, "acct", cl.client_id, "email", &covers), EGOV_OK);
		assert_false(covers);
		assert_int_equal(oidc_client_delete(c, cl.client_id), EGOV_OK);
		assert_int_equal(oidc_client_delete(c, cl.client_id), EGOV_ENOTFOUND);
		assert_int_equal(oidc_client_get(c, cl.client_id, &got), EGOV_ENOTFOUND);
		oidc_client_release(&cl);
		db_conn_close(c);
		db_close(d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_pkce_rfc7636),
		cmocka_unit_test(test_jwt_sign_verify),
		cmocka_unit_test(test_scopes),
		cmocka_unit_test_setup_teardown(test_keys_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_code_single_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_rotation_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_rotation_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
	};
	return cmocka_run_group_tests_name("oidc", tests, NULL, NULL);
}
