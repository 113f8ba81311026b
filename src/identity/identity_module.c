/*
 * identity_module.c: the identity module's contract with the kernel: its
 * schema, its route table (the handlers live in identity_http.c,
 * identity_cert.c and identity_certs_http.c), its commands, its /metrics
 * families, its start hook and its descriptor.
 */
#include <inttypes.h>

#include "core/app.h"
#include "core/metrics.h"
#include "core/module.h"
#include "identity/identity_int.h"
#include "pki/pki.h"
#include "core/banned.h"

/* ---- schema -------------------------------------------------------------- */

static const db_migration migrations[] = {
	{.version = 1,
	 .name = "accounts, departments, sessions, tokens, throttle, outbox",
	 .sql = "CREATE TABLE identity_account ("
		" id TEXT PRIMARY KEY,"
		" kind TEXT NOT NULL CHECK (kind IN ('resident', 'staff', 'system')),"
		" email TEXT NOT NULL UNIQUE,"
		" display_name TEXT NOT NULL,"
		" locale TEXT NOT NULL,"
		" password_hash TEXT,"
		" email_verified INTEGER NOT NULL DEFAULT 0,"
		" disabled INTEGER NOT NULL DEFAULT 0,"
		" locked INTEGER NOT NULL DEFAULT 0,"
		" totp_secret TEXT,"
		" totp_pending TEXT,"
		" totp_enabled INTEGER NOT NULL DEFAULT 0,"
		" totp_last_step BIGINT NOT NULL DEFAULT 0,"
		" created_at TEXT NOT NULL,"
		" updated_at TEXT NOT NULL);"
		"CREATE TABLE identity_dept ("
		" code TEXT PRIMARY KEY,"
		" name TEXT NOT NULL,"
		" parent TEXT REFERENCES identity_dept (code),"
		" created_at TEXT NOT NULL);"
		"CREATE TABLE identity_grant ("
		" account_id TEXT NOT NULL REFERENCES identity_account (id),"
		" role TEXT NOT NULL,"
		" dept TEXT NOT NULL REFERENCES identity_dept (code),"
		" created_at TEXT NOT NULL,"
		" PRIMARY KEY (account_id, role, dept));"
		"CREATE TABLE identity_session ("
		" token_hash TEXT PRIMARY KEY,"
		" id TEXT NOT NULL UNIQUE,"
		" account_id TEXT NOT NULL REFERENCES identity_account (id),"
		" acr INTEGER NOT NULL,"
		" pending INTEGER NOT NULL DEFAULT 0,"
		" csrf TEXT NOT NULL,"
		" auth_time BIGINT NOT NULL,"
		" created BIGINT NOT NULL,"
		" last_seen BIGINT NOT NULL,"
		" expires BIGINT NOT NULL,"
		" ip TEXT NOT NULL,"
		" user_agent TEXT NOT NULL);"
		"CREATE INDEX identity_session_account ON identity_session (account_id);"
		"CREATE TABLE identity_recovery ("
		" account_id TEXT NOT NULL REFERENCES identity_account (id),"
		" code_hash TEXT NOT NULL,"
		" used BIGINT,"
		" PRIMARY KEY (account_id, code_hash));"
		"CREATE TABLE identity_token ("
		" token_hash TEXT PRIMARY KEY,"
		" purpose TEXT NOT NULL,"
		" account_id TEXT NOT NULL REFERENCES identity_account (id),"
		" expires BIGINT NOT NULL,"
		" used BIGINT);"
		"CREATE TABLE identity_throttle ("
		" scope TEXT PRIMARY KEY,"
		" failures INTEGER NOT NULL,"
		" last_failure BIGINT NOT NULL,"
		" blocked_until BIGINT NOT NULL);"
		/* notify_outbox was created here until notify owned it: see the
		 * migrations in src/notify/outbox.c for how the two converge. */
		""},
	{.version = 2,
	 .name = "links between accounts and certificates of external CAs",
	 .sql = "CREATE TABLE identity_cert_link ("
		" account_id TEXT NOT NULL REFERENCES identity_account (id),"
		" issuer_dn TEXT NOT NULL,"
		" serial_hex TEXT NOT NULL,"
		" spki_sha256 TEXT NOT NULL,"
		" subject_dn TEXT NOT NULL,"
		" created_at TEXT NOT NULL,"
		" PRIMARY KEY (issuer_dn, serial_hex));"
		"CREATE INDEX identity_cert_link_spki ON identity_cert_link (spki_sha256);"
		"CREATE INDEX identity_cert_link_account ON identity_cert_link (account_id);"},
};

/* ---- routes -------------------------------------------------------------- */

#define P "/api/v1/identity"
/* Who may call: a signed-in person's session; state changes also carry
 * its CSRF token. Bearer tokens are not accepted on any of these: an
 * application acting for a person must not manage the person's sessions,
 * factors or credentials. */
#define SESSION AUTH_SESSION
#define CHANGE (AUTH_SESSION | AUTH_CSRF)
#define BODY IDENTITY_BODY_MAX

static const route routes[] = {
	/* Public: creating and proving credentials. */
	{.method = HTTP_POST, .path = P "/register", .body_max = BODY, .handler = identity_api_register_placed,
	 .blocking = true, .gate = identity_hash_gate},
	{.method = HTTP_POST, .path = P "/verify-email", .body_max = BODY, .handler = identity_api_verify_email},
	{.method = HTTP_POST, .path = P "/login", .body_max = BODY, .handler = identity_api_login_placed,
	 .blocking = true, .gate = identity_hash_gate},
	/* The second step of a login: its credential is the pending session,
	 * which the handler looks for (no full session yet). */
	{.method = HTTP_POST, .path = P "/login/totp", .body_max = BODY, .handler = identity_api_login_totp},
	{.method = HTTP_POST, .path = P "/password/reset", .body_max = BODY, .handler = identity_api_reset_request},
	{.method = HTTP_POST, .path = P "/password/reset/confirm", .body_max = BODY,
	 .handler = identity_api_reset_confirm_placed, .blocking = true, .gate = identity_hash_gate},
	{.method = HTTP_GET, .path = P "/login/certificate", .handler = identity_api_login_certificate},
	{.method = HTTP_POST, .path = P "/login/certificate", .body_max = BODY,
	 .handler = identity_api_login_certificate},
	{.method = HTTP_GET, .path = "/login/certificate", .handler = identity_page_login_certificate},
	/* The signed-in person. */
	{.method = HTTP_POST, .path = P "/logout", .body_max = BODY, .auth = CHANGE, .handler = identity_api_logout},
	{.method = HTTP_GET, .path = P "/me", .auth = SESSION, .handler = identity_api_me},
	{.method = HTTP_GET, .path = P "/sessions", .auth = SESSION, .handler = identity_api_sessions},
	{.method = HTTP_DELETE, .path = P "/sessions/{id}", .auth = CHANGE, .handler = identity_api_session_revoke},
	{.method = HTTP_POST, .path = P "/sessions/revoke-all", .body_max = BODY, .auth = CHANGE,
	 .handler = identity_api_session_revoke_all},
	{.method = HTTP_POST, .path = P "/totp/enrol", .body_max = BODY, .auth = CHANGE,
	 .handler = identity_api_totp_enrol},
	{.method = HTTP_POST, .path = P "/totp/confirm", .body_max = BODY, .auth = CHANGE,
	 .handler = identity_api_totp_confirm},
	{.method = HTTP_POST, .path = P "/totp/disable", .body_max = BODY, .auth = CHANGE,
	 .handler = identity_api_totp_disable},
	{.method = HTTP_POST, .path = P "/recovery-codes", .body_max = BODY, .auth = CHANGE,
	 .handler = identity_api_recovery_regenerate},
	/* Links to certificates of external CAs. */
	{.method = HTTP_POST, .path = P "/me/certificate-link", .body_max = BODY, .auth = CHANGE,
	 .handler = identity_api_link_add},
	{.method = HTTP_GET, .path = P "/me/certificate-links", .auth = SESSION, .handler = identity_api_link_list},
	{.method = HTTP_DELETE, .path = P "/me/certificate-links/{serial}", .auth = CHANGE,
	 .handler = identity_api_link_remove},
	/* A person's own certificates, issued by the PKI. */
	{.method = HTTP_GET, .path = P "/me/certificates", .auth = SESSION, .handler = identity_api_certs_list},
	{.method = HTTP_POST, .path = P "/me/certificates", .body_max = IDENTITY_CSR_BODY_MAX, .auth = CHANGE,
	 .handler = identity_api_certs_issue},
	{.method = HTTP_POST, .path = P "/me/certificates/pkcs12", .body_max = IDENTITY_PKCS12_BODY_MAX,
	 .auth = CHANGE, .handler = identity_api_certs_issue_p12, .blocking = true},
	{.method = HTTP_GET, .path = P "/me/certificates/{serial}", .auth = SESSION, .handler = identity_api_certs_get},
	{.method = HTTP_POST, .path = P "/me/certificates/{serial}/revoke", .body_max = IDENTITY_REVOKE_BODY_MAX,
	 .auth = CHANGE, .handler = identity_api_certs_revoke},
};

/* ---- commands, metrics, start ---------------------------------------------- */

static const module_command commands[] = {
	{.name = "user", .usage = "add|list|disable ...    accounts (docs/identity.md)", .run = identity_cli_run},
	{.name = "dept", .usage = "add|list ...            departments", .run = identity_cli_run},
	{.name = "role", .usage = "grant|revoke ...        roles of accounts in departments", .run = identity_cli_run},
};

/* Password hashing's admission control on /metrics: an operator sees a
 * login flood (rejected) and what a hash costs. */
static egov_err write_metrics(buf *out)
{
	identity_admission_stats st;
	egov_err err;

	identity_admission_stats_get(&st);
	if ((err = metrics_write_header(out, "egov_identity_hash_slots", "gauge",
					"Password hashes that may run at once, and those running")) ||
	    (err = buf_addf(out, "egov_identity_hash_slots{state=\"total\"} %d\n", st.slots)) ||
	    (err = buf_addf(out, "egov_identity_hash_slots{state=\"running\"} %d\n", st.running)) ||
	    (err = metrics_write_header(out, "egov_identity_hash_queue", "gauge",
					"Password hashes waiting for a slot, and the most that may wait")) ||
	    (err = buf_addf(out, "egov_identity_hash_queue{state=\"max\"} %d\n", st.queue_max)) ||
	    (err = buf_addf(out, "egov_identity_hash_queue{state=\"waiting\"} %d\n", st.waiting)) ||
	    (err = metrics_write_header(out, "egov_identity_hashes_total", "counter",
					"Password hashes admitted, refused (429) and run in a slot's kept memory")) ||
	    (err = buf_addf(out, "egov_identity_hashes_total{result=\"admitted\"} %" PRIu64 "\n", st.admitted)) ||
	    (err = buf_addf(out, "egov_identity_hashes_total{result=\"rejected\"} %" PRIu64 "\n", st.rejected)) ||
	    (err = buf_addf(out, "egov_identity_hashes_total{result=\"kept_memory\"} %" PRIu64 "\n",
			    st.kept_memory)) ||
	    (err = metrics_write_header(out, "egov_identity_hash_seconds", "gauge",
					"Moving average of one password hash's wall time")) ||
	    (err = buf_addf(out, "egov_identity_hash_seconds %.6f\n", (double)st.mean_hash_us / 1e6)))
		return err;
	return EGOV_OK;
}

/* Serving: the router asks this module about sessions and roles; password
 * hashing runs behind admission control; mailed links start with the
 * public URL; session cookies are Secure when egov itself speaks HTTPS. */
static egov_err start(const egov_config *cfg)
{
	identity_admission_init(0, 0);
	identity_set_public_url(pki_public_url(cfg));
	identity_set_cookie_secure(cfg->tls_cert[0] != '\0');
	identity_auth_install();
	return EGOV_OK;
}

const egov_module identity_module = {
	.name = "identity",
	.migrations = migrations,
	.nmigrations = sizeof migrations / sizeof migrations[0],
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.commands = commands,
	.ncommands = sizeof commands / sizeof commands[0],
	.metrics = write_metrics,
	.demo = identity_demo,
	.start = start,
};
