/*
 * oidc_http.c: discovery, JWKS, the client administration API, the
 * `egov oidc` command and the module descriptor. The flows live in
 * oidc_authorize.c and oidc_token.c.
 *
 * Invariants: a client secret is shown once, in the creation answer, and
 * stored only as its SHA-256; redirect URIs are absolute http(s) URIs
 * without a fragment, compared byte for byte later.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include <openssl/crypto.h>

#include "core/app.h"
#include "core/limits.h"
#include "core/module.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

egov_err oidc_audit_tx(db_conn *c, const char *actor, const char *action, const char *object, const char *details)
{
	if (!audit_available())
		return EGOV_OK; /* unit tests run without the log */
	return audit_append_tx(c, actor && *actor ? actor : "anonymous", action, object, details, NULL);
}

static egov_err conn(db_conn **c)
{
	return db_thread_conn(app()->db, c);
}

/* ---- discovery and keys ------------------------------------------------ */

static egov_err discovery(req *r)
{
	const char *iss = oidc_issuer();
	char url[600];
	buf b;
	jw w;

	buf_init(&b, 16 * 1024);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "issuer", iss);
#define URL(key, path)                                          \
	do {                                                    \
		snprintf(url, sizeof url, "%s%s", iss, path);   \
		jw_kstr(&w, key, url);                          \
	} while (0)
	URL("authorization_endpoint", "/oidc/authorize");
	URL("token_endpoint", "/oidc/token");
	URL("userinfo_endpoint", "/oidc/userinfo");
	URL("jwks_uri", "/oidc/jwks");
	URL("revocation_endpoint", "/oidc/revoke");
	URL("introspection_endpoint", "/oidc/introspect");
#undef URL
	jw_key(&w, "scopes_supported");
	jw_raw(&w, "[\"openid\",\"profile\",\"email\",\"egov.api\"]");
	jw_key(&w, "response_types_supported");
	jw_raw(&w, "[\"code\"]");
	jw_key(&w, "response_modes_supported");
	jw_raw(&w, "[\"query\"]");
	jw_key(&w, "grant_types_supported");
	jw_raw(&w, "[\"authorization_code\",\"refresh_token\"]");
	jw_key(&w, "subject_types_supported");
	jw_raw(&w, "[\"public\"]");
	jw_key(&w, "id_token_signing_alg_values_supported");
	jw_raw(&w, "[\"ES256\"]");
	jw_key(&w, "token_endpoint_auth_methods_supported");
	jw_raw(&w, "[\"client_secret_basic\",\"client_secret_post\",\"none\"]");
	jw_key(&w, "revocation_endpoint_auth_methods_supported");
	jw_raw(&w, "[\"client_secret_basic\",\"client_secret_post\",\"none\"]");
	jw_key(&w, "introspection_endpoint_auth_methods_supported");
	jw_raw(&w, "[\"client_secret_basic\",\"client_secret_post\"]");
	jw_key(&w, "code_challenge_methods_supported");
	jw_raw(&w, "[\"S256\"]");
	jw_key(&w, "acr_values_supported");
	jw_raw(&w, "[\"1\",\"2\",\"3\"]");
	jw_key(&w, "claims_supported");
	jw_raw(&w, "[\"iss\",\"sub\",\"aud\",\"exp\",\"iat\",\"auth_time\",\"nonce\",\"acr\",\"amr\",\"at_hash\","
		   "\"azp\",\"email\",\"email_verified\",\"name\",\"locale\"]");
	jw_key(&w, "prompt_values_supported");
	jw_raw(&w, "[\"none\",\"login\",\"consent\"]");
	jw_kbool(&w, "authorization_response_iss_parameter_supported", true);
	jw_kbool(&w, "claims_parameter_supported", false);
	jw_kbool(&w, "request_parameter_supported", false);
	jw_kbool(&w, "request_uri_parameter_supported", false);
	jw_obj_end(&w);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	resp_header(r, "Cache-Control", "public, max-age=3600");
	return resp_json(r, 200, &b);
}

static egov_err jwks(req *r)
{
	db_conn *c = NULL;
	buf b;
	egov_err err;

	if ((err = conn(&c)))
		return err;
	buf_init(&b, 64 * 1024);
	if ((err = oidc_keys_jwks(c, &b))) {
		buf_release(&b);
		return err;
	}
	/* Short: clients refetch on an unknown kid, but rotation should show
	 * up well within the overlap. */
	resp_header(r, "Cache-Control", "public, max-age=300");
	return resp_buf(r, 200, "application/jwk-set+json", &b);
}

/* ---- client administration -------------------------------------------- */

typedef struct client_in {
	const char *name;
	const char *type;
	json_str_array redirect_uris;
	json_str_array scopes;
} client_in;

static const json_field client_fields[] = {
	{.name = "name", .type = JSON_T_STRING, .offset = offsetof(client_in, name), .required = true, .min_len = 1,
	 .max_len = OIDC_CLIENT_NAME_MAX * 4},
	{.name = "type", .type = JSON_T_STRING, .offset = offsetof(client_in, type), .required = true,
	 .max_len = OIDC_CLIENT_TYPE_FIELD_MAX},
	{.name = "redirect_uris", .type = JSON_T_STRING_ARRAY, .offset = offsetof(client_in, redirect_uris),
	 .required = true, .max_len = OIDC_REDIRECT_URIS_MAX, .min_len = 1},
	{.name = "scopes", .type = JSON_T_STRING_ARRAY, .offset = offsetof(client_in, scopes),
	 .max_len = OIDC_CLIENT_SCOPES_MAX,
	 .min_len = 1},
};

/* Absolute http(s) URI, no fragment, no spaces or controls. Plain http only
 * for loopback (native apps and development, RFC 8252). */
static int redirect_uri_valid(const char *u)
{
	const char *p;

	if (strlen(u) > OIDC_REDIRECT_URI_MAX)
		return 0;
	for (p = u; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '#' || *p == '\\' || *p == '"' || *p == '<' ||
		    *p == '>')
			return 0;
	if (strncmp(u, "https://", 8) == 0)
		return u[8] && u[8] != '/';
	return strncmp(u, "http://127.0.0.1", 16) == 0 || strncmp(u, "http://[::1]", 12) == 0 ||
	       strncmp(u, "http://localhost", 16) == 0;
}

static int scope_word_valid(const char *s)
{
	const char *p;

	if (!*s || strlen(s) > OIDC_SCOPE_WORD_MAX)
		return 0;
	for (p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-' ||
		      *p == ':'))
			return 0;
	return 1;
}

static void write_client(jw *w, const oidc_client *cl, const char *secret)
{
	cJSON *uris = cJSON_Parse(cl->redirect_uris);
	const cJSON *e;
	const char *p;

	jw_obj_begin(w);
	jw_kstr(w, "client_id", cl->client_id);
	if (secret && *secret)
		jw_kstr(w, "client_secret", secret);
	jw_kstr(w, "name", cl->name);
	jw_kstr(w, "type", cl->type == OIDC_CONFIDENTIAL ? "confidential" : "public");
	jw_key(w, "redirect_uris");
	jw_arr_begin(w);
	cJSON_ArrayForEach(e, uris) {
		if (cJSON_IsString(e))
			jw_str(w, e->valuestring);
	}
	jw_arr_end(w);
	jw_key(w, "scopes");
	jw_arr_begin(w);
	for (p = cl->scopes; *p;) {
		char word[OIDC_SCOPE_MAX + 1];
		size_t l;
		while (*p == ' ')
			p++;
		l = strcspn(p, " ");
		if (!l)
			break;
		memcpy(word, p, l);
		word[l] = '\0';
		jw_str(w, word);
		p += l;
	}
	jw_arr_end(w);
	jw_kstr(w, "token_endpoint_auth_method",
		cl->type == OIDC_CONFIDENTIAL ? "client_secret_basic" : "none");
	jw_kstr(w, "created_by", cl->created_by);
	jw_kstr(w, "created_at", cl->created_at);
	jw_obj_end(w);
	cJSON_Delete(uris);
}

static egov_err client_create(req *r)
{
	client_in in = {0};
	oidc_client cl = {0};
	char secret[OIDC_TOKEN_LEN + 1] = "", object[96], details[256];
	db_conn *c = NULL;
	cJSON *arr = NULL;
	size_t i, sl = 0;
	buf b;
	jw w;
	egov_err err;

	if ((err = req_json(r, client_fields, sizeof client_fields / sizeof client_fields[0], &in)))
		return err;
	if (strcmp(in.type, "public") == 0)
		cl.type = OIDC_PUBLIC;
	else if (strcmp(in.type, "confidential") == 0)
		cl.type = OIDC_CONFIDENTIAL;
	else
		return resp_problem(r, 400, "validation.invalid_field", "type", "public or confidential");
	if (in.redirect_uris.n == 0)
		return resp_problem(r, 400, "validation.invalid_field", "redirect_uris", "at least one");
	if (!(arr = cJSON_CreateArray()))
		return EGOV_ENOMEM;
	for (i = 0; i < in.redirect_uris.n; i++) {
		if (!redirect_uri_valid(in.redirect_uris.items[i])) {
			char field[48];
			cJSON_Delete(arr);
			snprintf(field, sizeof field, "redirect_uris[%zu]", i);
			return resp_problem(r, 400, "oidc.redirect_uri_invalid", field,
					    "https URI without fragment (http only for loopback)");
		}
		cJSON_AddItemToArray(arr, cJSON_CreateString(in.redirect_uris.items[i]));
	}
	snprintf(cl.name, sizeof cl.name, "%s", in.name);
	if (in.scopes.n == 0) {
		snprintf(cl.scopes, sizeof cl.scopes, "openid profile email");
	} else {
		for (i = 0; i < in.scopes.n; i++) {
			size_t l = strlen(in.scopes.items[i]);
			if (!scope_word_valid(in.scopes.items[i]) || sl + l + 2 > sizeof cl.scopes) {
				char field[48];
				cJSON_Delete(arr);
				snprintf(field, sizeof field, "scopes[%zu]", i);
				return resp_problem(r, 400, "validation.invalid_field", field, NULL);
			}
			if (oidc_scope_has(cl.scopes, in.scopes.items[i]))
				continue;
			if (sl)
				cl.scopes[sl++] = ' ';
			memcpy(cl.scopes + sl, in.scopes.items[i], l + 1);
			sl += l;
		}
		if (!oidc_scope_has(cl.scopes, "openid")) {
			cJSON_Delete(arr);
			return resp_problem(r, 400, "validation.invalid_field", "scopes", "must include openid");
		}
	}
	cl.redirect_uris = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	if (!cl.redirect_uris)
		return EGOV_ENOMEM;
	snprintf(cl.created_by, sizeof cl.created_by, "%s", req_principal(r)->actor);
	if ((err = conn(&c)) || (err = db_begin(c)))
		goto out;
	if (!(err = oidc_client_create(c, &cl, secret))) {
		snprintf(object, sizeof object, "oidc_client:%s", cl.client_id);
		snprintf(details, sizeof details, "{\"type\":\"%s\",\"request_id\":\"%s\"}",
			 cl.type == OIDC_CONFIDENTIAL ? "confidential" : "public", req_id(r));
		err = oidc_audit_tx(c, cl.created_by, "oidc.client.create", object, details);
	}
	if ((err = db_end(c, err)))
		goto out;
	buf_init(&b, 64 * 1024);
	jw_init(&w, &b);
	write_client(&w, &cl, secret);
	if (w.err) {
		err = w.err;
		buf_release(&b);
		goto out;
	}
	resp_header(r, "Cache-Control", "no-store");
	{
		char loc[128];
		snprintf(loc, sizeof loc, "/api/v1/oidc/clients/%s", cl.client_id);
		resp_header(r, "Location", loc);
	}
	err = resp_json(r, 201, &b);
out:
	OPENSSL_cleanse(secret, sizeof secret);
	oidc_client_release(&cl);
	return err;
}

static egov_err client_get(req *r)
{
	oidc_client cl = {0};
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = conn(&c)))
		return err;
	err = oidc_client_get(c, req_param(r, "id"), &cl);
	if (err == EGOV_ENOTFOUND)
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if (err)
		return err;
	buf_init(&b, 64 * 1024);
	jw_init(&w, &b);
	write_client(&w, &cl, NULL);
	oidc_client_release(&cl);
	return resp_jw(r, 200, &w);
}

static int list_one(void *ctx, const oidc_client *cl)
{
	write_client(ctx, cl, NULL);
	return ((jw *)ctx)->err ? 1 : 0;
}

static egov_err client_list(req *r)
{
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = conn(&c)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "items");
	jw_arr_begin(&w);
	err = oidc_client_list(c, list_one, &w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (err || w.err) {
		buf_release(&b);
		return err ? err : w.err;
	}
	return resp_json(r, 200, &b);
}

static egov_err client_delete(req *r)
{
	const char *id = req_param(r, "id");
	char object[96], details[128];
	db_conn *c = NULL;
	egov_err err;

	if (!id || strlen(id) > OIDC_CLIENT_ID_MAX)
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if ((err = conn(&c)) || (err = db_begin(c)))
		return err;
	err = oidc_client_delete(c, id);
	if (err == EGOV_ENOTFOUND) {
		db_rollback(c);
		return resp_problem(r, 404, "not_found", NULL, NULL);
	}
	snprintf(object, sizeof object, "oidc_client:%s", id);
	snprintf(details, sizeof details, "{\"request_id\":\"%s\"}", req_id(r));
	if (!err)
		err = oidc_audit_tx(c, req_principal(r)->actor, "oidc.client.delete", object, details);
	if ((err = db_end(c, err)))
		return err;
	return resp_empty(r, 204);
}

/* ---- command line -------------------------------------------------------- */

static int command(int argc, char **argv, db *d)
{
	char details[64];
	db_conn *c = NULL;
	int64_t n = 0;
	egov_err err;

	if (argc != 2 || strcmp(argv[1], "rotate-key") != 0) {
		fputs("usage: egov oidc rotate-key\n", stderr);
		return 2;
	}
	if ((err = db_conn_open(d, &c))) {
		fprintf(stderr, "egov: database: %s\n", egov_err_name(err));
		return 1;
	}
	/* The key itself is made by the serving node, in its own data
	 * directory: private keys are created where they are used. The
	 * retirement and its audit record are one transaction. */
	if (!(err = db_begin(c))) {
		if (!(err = oidc_keys_retire(c, &n))) {
			snprintf(details, sizeof details, "{\"retired\":%lld}", (long long)n);
			err = oidc_audit_tx(c, "operator:cli", "oidc.key.rotate", "oidc_key", details);
		}
		err = db_end(c, err);
	}
	db_conn_close(c);
	if (err) {
		fprintf(stderr, "egov: retiring the signing key failed: %s\n", egov_err_name(err));
		return 1;
	}
	printf("retired %lld signing key(s); the node signs with a new key within a minute\n", (long long)n);
	return 0;
}

/* ---- module ------------------------------------------------------------- */

static const db_migration migrations[] = {
	{.version = 1,
	 .name = "oidc",
	 .sql = "CREATE TABLE oidc_key ("
		" kid TEXT PRIMARY KEY, public_pem TEXT NOT NULL, public_jwk TEXT NOT NULL,"
		" created_at BIGINT NOT NULL, sign_until BIGINT NOT NULL, verify_until BIGINT NOT NULL);"
		"CREATE TABLE oidc_client ("
		" client_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
		" type TEXT NOT NULL CHECK (type IN ('public', 'confidential')),"
		" secret_hash TEXT, redirect_uris TEXT NOT NULL, scopes TEXT NOT NULL,"
		" created_by TEXT NOT NULL, created_at TEXT NOT NULL);"
		"CREATE TABLE oidc_grant ("
		" account_id TEXT NOT NULL, client_id TEXT NOT NULL, scopes TEXT NOT NULL,"
		" created_at TEXT NOT NULL, PRIMARY KEY (account_id, client_id));"
		"CREATE TABLE oidc_code ("
		" code_hash TEXT PRIMARY KEY, client_id TEXT NOT NULL, account_id TEXT NOT NULL,"
		" redirect_uri TEXT NOT NULL, scope TEXT NOT NULL, nonce TEXT NOT NULL, challenge TEXT NOT NULL,"
		" family TEXT NOT NULL, acr INTEGER NOT NULL, auth_time BIGINT NOT NULL,"
		" expires_at BIGINT NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
		"CREATE INDEX oidc_code_expires ON oidc_code (expires_at);"
		"CREATE TABLE oidc_family ("
		" id TEXT PRIMARY KEY, client_id TEXT NOT NULL, account_id TEXT NOT NULL,"
		" revoked INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL);"
		"CREATE INDEX oidc_family_client ON oidc_family (client_id);"
		"CREATE TABLE oidc_refresh ("
		" token_hash TEXT PRIMARY KEY, family TEXT NOT NULL, client_id TEXT NOT NULL,"
		" account_id TEXT NOT NULL, scope TEXT NOT NULL, acr INTEGER NOT NULL,"
		" auth_time BIGINT NOT NULL, expires_at BIGINT NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
		"CREATE INDEX oidc_refresh_family ON oidc_refresh (family);"
		"CREATE TABLE oidc_deny (jti TEXT PRIMARY KEY, expires_at BIGINT NOT NULL);"},
};

const db_migration *oidc_migrations(size_t *n)
{
	*n = sizeof migrations / sizeof migrations[0];
	return migrations;
}


#define FORM "application/x-www-form-urlencoded"
#define FORM_BODY OIDC_FORM_BODY_MAX

static const route routes[] = {
	/* The provider's public face: discovery, keys, the flows. The token,
	 * revocation and introspection endpoints authenticate the client as
	 * OAuth 2.0 does, from the form itself. */
	{.method = HTTP_GET, .path = "/.well-known/openid-configuration", .handler = discovery},
	{.method = HTTP_GET, .path = "/oidc/jwks", .handler = jwks},
	{.method = HTTP_GET, .path = "/.well-known/jwks.json", .handler = jwks},
	/* A signed-in person is sent on, anyone else to the log-in page. The
	 * consent form checks the session's CSRF token itself, once the
	 * request is known to be worth answering. */
	{.method = HTTP_GET, .path = "/oidc/authorize", .auth = AUTH_SESSION | AUTH_OPTIONAL,
	 .handler = oidc_authorize_get},
	{.method = HTTP_POST, .path = "/oidc/authorize/consent", .body_max = FORM_BODY, .content_type = FORM,
	 .auth = AUTH_SESSION | AUTH_OPTIONAL, .handler = oidc_authorize_consent},
	{.method = HTTP_POST, .path = "/oidc/token", .body_max = FORM_BODY, .content_type = FORM,
	 .handler = oidc_token_post, .blocking = true},
	/* UserInfo is an OAuth protected resource: an access token with
	 * "openid", refused as RFC 6750 asks. */
	{.method = HTTP_GET, .path = "/oidc/userinfo", .auth = AUTH_BEARER, .scope = "openid",
	 .handler = oidc_userinfo},
	{.method = HTTP_POST, .path = "/oidc/userinfo", .body_max = FORM_BODY, .content_type = FORM,
	 .auth = AUTH_BEARER, .scope = "openid", .handler = oidc_userinfo},
	{.method = HTTP_POST, .path = "/oidc/revoke", .body_max = FORM_BODY, .content_type = FORM,
	 .handler = oidc_revoke_post},
	{.method = HTTP_POST, .path = "/oidc/introspect", .body_max = FORM_BODY, .content_type = FORM,
	 .handler = oidc_introspect_post},
	/* Client registrations: staff with the permission, or the operator. */
	{.method = HTTP_GET, .path = "/api/v1/oidc/clients", .auth = AUTH_API, .perm = "oidc.client.write",
	 .handler = client_list},
	{.method = HTTP_POST, .path = "/api/v1/oidc/clients", .auth = AUTH_API | AUTH_CSRF, .perm = "oidc.client.write",
	 .body_max = OIDC_CLIENT_BODY_MAX, .handler = client_create},
	{.method = HTTP_GET, .path = "/api/v1/oidc/clients/{id}", .auth = AUTH_API, .perm = "oidc.client.write",
	 .handler = client_get},
	{.method = HTTP_DELETE, .path = "/api/v1/oidc/clients/{id}", .auth = AUTH_API | AUTH_CSRF,
	 .perm = "oidc.client.write", .handler = client_delete},
	/* The signed-in person's grants (oidc_grants.c): their session only. */
	{.method = HTTP_GET, .path = "/api/v1/identity/me/grants", .auth = AUTH_SESSION, .handler = oidc_grants_list},
	{.method = HTTP_DELETE, .path = "/api/v1/identity/me/grants/{client_id}", .auth = AUTH_SESSION | AUTH_CSRF,
	 .handler = oidc_grants_withdraw},
};

static const module_command commands[] = {
	{.name = "oidc", .usage = "rotate-key              start a new OpenID Connect signing key",
	 .run = command},
};

/* Serving: access tokens are the router's AUTH_BEARER credential, checked
 * by this module. */
static egov_err start(const egov_config *cfg)
{
	(void)cfg;
	oidc_bearer_install();
	return EGOV_OK;
}

const egov_module oidc_module = {
	.name = "oidc",
	.config = &oidc_config_section,
	.migrations = migrations,
	.nmigrations = sizeof migrations / sizeof migrations[0],
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.commands = commands,
	.ncommands = sizeof commands / sizeof commands[0],
	.start = start,
};
