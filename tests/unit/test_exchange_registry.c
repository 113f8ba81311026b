/*
 * test_exchange_registry.c: identifiers, access rules, the registry's
 * storage (on SQLite and PostgreSQL), the global configuration built from
 * it, signed, parsed and verified (and refused when tampered with, signed
 * by another key, of another instance or expired), the configuration in
 * force, and the gateway's signing keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "core/app.h"
#include "core/b64url.h"
#include "core/db.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
#include "exchange/registry/registry.h"
#include "exchange/wire/wire.h"
#include "testutil.h"
#include "core/banned.h"

/* ---- helpers ------------------------------------------------------------------ */

/* A self-signed P-256 certificate for key, valid from nb to na (unix s),
 * as PEM (malloc'd). */
static char *self_signed(EVP_PKEY *key, const char *cn, int64_t nb, int64_t na)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIO *mem = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long n;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(nb & 0xffffff) + 7);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	ASN1_TIME_set(X509_getm_notBefore(x), (time_t)nb);
	ASN1_TIME_set(X509_getm_notAfter(x), (time_t)na);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(mem, x), 1);
	n = BIO_get_mem_data(mem, &data);
	out = strndup(data, (size_t)n);
	BIO_free(mem);
	X509_NAME_free(name);
	X509_free(x);
	return out;
}

static int64_t now_s(void)
{
	return time_now_us() / 1000000;
}

typedef struct fixture {
	char *dir;
	char urls[2][512];
	int n;
	egov_config cfg;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);

	f->dir = test_tmpdir();
	f->n = test_backends(f->dir, f->urls);
	config_init(&f->cfg);
	free(f->cfg.data_dir);
	f->cfg.data_dir = strdup(f->dir);
	if (config_set(&f->cfg, "exchange.conf_validity_s", "600", NULL, 0))
		return -1;
	app()->config = &f->cfg;
	registry_setup(NULL, &f->cfg);
	exchange_keys_setup(f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	exchange_conf_clear();
	exchange_keys_forget();
	app()->config = NULL;
	registry_setup(NULL, NULL);
	config_release(&f->cfg);
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
	m = exchange_migrations(&n);
	assert_int_equal(db_migrate(c, "exchange", m, n, NULL), EGOV_OK);
	return c;
}

/* ---- identifiers and rules ------------------------------------------------------ */

static void test_ids(void **state)
{
	static const struct {
		const char *id;
		exchange_id_kind kind;
		bool ok;
	} cases[] = {
		{"MO/GOV/DSAJ", EXCHANGE_ID_MEMBER, true},
		{"MO/GOV/DSAJ/REG", EXCHANGE_ID_SUBSYSTEM, true},
		{"MO/GOV/DSAJ/REG/persons.v1", EXCHANGE_ID_SERVICE, true},
		{"MO/GOV/a_b-c.d", EXCHANGE_ID_MEMBER, true},
		{"MO/GOV/DSAJ", EXCHANGE_ID_SUBSYSTEM, false},
		{"MO/GOV/DSAJ/REG", EXCHANGE_ID_MEMBER, false},
		{"MO//DSAJ", EXCHANGE_ID_MEMBER, false},
		{"/MO/GOV/DSAJ", EXCHANGE_ID_MEMBER, false},
		{"MO/GOV/DSAJ/", EXCHANGE_ID_MEMBER, false},
		{"MO/GOV/DS AJ", EXCHANGE_ID_MEMBER, false},
		{"MO/GOV/DS%2FAJ", EXCHANGE_ID_MEMBER, false},
		{"MO/GOV/澳門", EXCHANGE_ID_MEMBER, false},
		{"", EXCHANGE_ID_MEMBER, false},
		{"MO/GOV/0123456789012345678901234567890123456789012345678901234567890123", EXCHANGE_ID_MEMBER, true},
		{"MO/GOV/01234567890123456789012345678901234567890123456789012345678901234", EXCHANGE_ID_MEMBER, false},
	};
	char out[EXCHANGE_ID_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(exchange_id_valid(cases[i].id, cases[i].kind), cases[i].ok);
	assert_false(exchange_id_valid(NULL, EXCHANGE_ID_MEMBER));
	assert_int_equal(exchange_id_prefix("MO/GOV/DSAJ/REG/persons", 3, out), EGOV_OK);
	assert_string_equal(out, "MO/GOV/DSAJ");
	assert_int_equal(exchange_id_prefix("MO/GOV/DSAJ/REG/persons", 4, out), EGOV_OK);
	assert_string_equal(out, "MO/GOV/DSAJ/REG");
	assert_int_equal(exchange_id_prefix("MO/GOV/DSAJ/REG", 4, out), EGOV_OK);
	assert_string_equal(out, "MO/GOV/DSAJ/REG");
	assert_int_equal(exchange_id_prefix("MO/GOV/DSAJ", 4, out), EGOV_EINVAL);
	assert_int_equal(exchange_id_prefix("MO/GOV/DSAJ", 0, out), EGOV_EINVAL);
}

static void test_rules(void **state)
{
	(void)state;
	assert_true(exchange_methods_valid("*"));
	assert_true(exchange_methods_valid("GET"));
	assert_true(exchange_methods_valid("GET,POST,DELETE"));
	assert_false(exchange_methods_valid("get"));
	assert_false(exchange_methods_valid("GET,"));
	assert_false(exchange_methods_valid("GET, POST"));
	assert_false(exchange_methods_valid("TRACE"));
	assert_false(exchange_methods_valid(""));
	assert_true(exchange_paths_valid("*"));
	assert_true(exchange_paths_valid("/persons/*"));
	assert_true(exchange_paths_valid("/persons/*,/health"));
	assert_true(exchange_paths_valid("/*"));
	assert_false(exchange_paths_valid("persons"));
	assert_false(exchange_paths_valid("/per*sons"));
	assert_false(exchange_paths_valid("/persons*"));
	assert_false(exchange_paths_valid("/a b"));
	assert_false(exchange_paths_valid("/a?x=1"));
	assert_false(exchange_paths_valid("/a,"));
	assert_true(exchange_gateway_url_valid("https://127.0.0.1:5501"));
	assert_true(exchange_gateway_url_valid("https://gw.dsaj.gov.mo"));
	assert_false(exchange_gateway_url_valid("http://127.0.0.1:5501"));
	assert_false(exchange_gateway_url_valid("https://127.0.0.1:5501/x"));
	assert_false(exchange_gateway_url_valid("https://127.0.0.1:99999"));
	assert_false(exchange_gateway_url_valid("https://"));
	assert_false(exchange_gateway_url_valid("https://a@b"));
}

static void test_b64url(void **state)
{
	unsigned char out[16];
	char enc[32];
	size_t n = 0;

	(void)state;
	assert_int_equal(exchange_b64url_encode("\xfb\xff", 2, enc, sizeof enc), 3);
	assert_string_equal(enc, "-_8");
	assert_int_equal(b64url_decode("-_8", 3, out, sizeof out, &n), EGOV_OK);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	/* Stray bits, padding, the standard alphabet and overflow are refused. */
	assert_int_equal(b64url_decode("-_9", 3, out, sizeof out, &n), EGOV_EINVAL);
	assert_int_equal(b64url_decode("-_8=", 4, out, sizeof out, &n), EGOV_EINVAL);
	assert_int_equal(b64url_decode("+/8", 3, out, sizeof out, &n), EGOV_EINVAL);
	assert_int_equal(b64url_decode("AAAAAAAA", 8, out, 3, &n), EGOV_ELIMIT);
	assert_int_equal(exchange_b64url_encode("abc", 3, enc, 4), 0);
}

/* ---- the registry ------------------------------------------------------------------- */

static void add_ok(db_conn *c, exchange_reg_item it)
{
	reg_why why = {0};
	egov_err err = exchange_reg_add(c, &it, NULL, &why);

	if (err)
		fail_msg("add %s: %s %s %s", it.id ? it.id : it.client, egov_err_name(err), why.code ? why.code : "",
			 why.field ? why.field : "");
}

static void expect(db_conn *c, exchange_reg_item it, egov_err want, const char *code, const char *field)
{
	reg_why why = {0};

	assert_int_equal(exchange_reg_add(c, &it, NULL, &why), want);
	assert_non_null(why.code);
	assert_string_equal(why.code, code);
	if (field) {
		assert_non_null(why.field);
		assert_string_equal(why.field, field);
	}
}

/* Fills a registry: two members, two subsystems, a service with access
 * for the other subsystem, an event type, and a signing certificate. */
static void fill(db_conn *c, const char *cert_pem, const char *sha)
{
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/DSAJ", .name = "DSAJ"});
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/DSI", .name = "DSI"});
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/DSAJ/REG",
				      .gateway = "https://127.0.0.1:5501"});
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/DSI/APP",
				      .gateway = "https://127.0.0.1:5502"});
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/persons",
				      .title = "Persons", .log_mode = "digest", .max_body = 4096,
				      .openapi = "{\"openapi\":\"3.1.0\",\"paths\":{}}"});
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/health"});
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_ACCESS, .client = "MO/GOV/DSI/APP",
				      .service = "MO/GOV/DSAJ/REG/persons", .methods = "GET,POST",
				      .paths = "/persons/*,/count"});
	add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_EVENT_TYPE, .id = "MO/GOV/DSAJ/REG/person-changed"});
	if (cert_pem) {
		char na[32];
		time_format_rfc3339((now_s() + 86400) * 1000000, 0, na);
		add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_CERT, .id = "MO/GOV/DSAJ/REG", .usage = "sign",
					      .serial = "07", .not_after = na, .pem = cert_pem, .sha256 = sha});
	}
}

static void test_registry(void **state)
{
	fixture *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		int64_t v0 = 0, v1 = 0;
		reg_why why = {0};
		bool replaced = false, found = false;
		exchange_reg_item it;
		buf b;
		jw w;

		assert_int_equal(exchange_registry_version(c, &v0), EGOV_OK);
		fill(c, NULL, NULL);
		assert_int_equal(exchange_registry_version(c, &v1), EGOV_OK);
		assert_int_equal(v1, v0 + 8); /* one bump per change */

		/* Bad input, unknown parents, duplicates. */
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV", .name = "x"}, EGOV_EINVAL,
		       "validation.invalid_field", "id");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/X", .name = ""}, EGOV_EINVAL,
		       "validation.invalid_field", "name");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "HK/GOV/X", .name = "x"}, EGOV_EINVAL,
		       "validation.invalid_field", "id");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/DSAJ", .name = "again"},
		       EGOV_ECONFLICT, "exchange.exists", "id");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/NONE/X",
					      .gateway = "https://a:1"},
		       EGOV_ENOTFOUND, "exchange.unknown_member", "id");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/DSAJ/Y",
					      .gateway = "http://a:1"},
		       EGOV_EINVAL, "validation.invalid_field", "gateway");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/NONE/s"}, EGOV_ENOTFOUND,
		       "exchange.unknown_subsystem", "id");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/x", .log_mode = "all"},
		       EGOV_EINVAL, "validation.invalid_field", "log");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/x", .openapi = "[1]"},
		       EGOV_EINVAL, "validation.invalid_field", "openapi");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_ACCESS, .client = "MO/GOV/DSI/APP",
					      .service = "MO/GOV/DSAJ/REG/none", .methods = "*", .paths = "*"},
		       EGOV_ENOTFOUND, "exchange.unknown_service", "service");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_ACCESS, .client = "MO/GOV/DSI/NONE",
					      .service = "MO/GOV/DSAJ/REG/persons", .methods = "*", .paths = "*"},
		       EGOV_ENOTFOUND, "exchange.unknown_subsystem", "client");
		expect(c, (exchange_reg_item){.kind = EXCHANGE_REG_ACCESS, .client = "MO/GOV/DSI/APP",
					      .service = "MO/GOV/DSAJ/REG/persons", .methods = "GET", .paths = "x"},
		       EGOV_EINVAL, "validation.invalid_field", "paths");
		assert_int_equal(exchange_registry_version(c, &v0), EGOV_OK);
		assert_int_equal(v0, v1); /* refusals change nothing */

		/* Granting again replaces the rule. */
		it = (exchange_reg_item){.kind = EXCHANGE_REG_ACCESS, .client = "MO/GOV/DSI/APP",
					 .service = "MO/GOV/DSAJ/REG/persons", .methods = "GET", .paths = "/persons/*"};
		assert_int_equal(exchange_reg_add(c, &it, &replaced, &why), EGOV_OK);
		assert_true(replaced);

		/* In use: a member with subsystems, a subsystem with services. */
		it = (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/DSAJ"};
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_ECONFLICT);
		assert_string_equal(why.code, "exchange.in_use");
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/DSAJ/REG"};
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_ECONFLICT);
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/nothing"};
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_ENOTFOUND);
		assert_string_equal(why.code, "exchange.unknown_service");

		/* Removing a service takes its access rights with it. */
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/persons"};
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_OK);
		buf_init(&b, 1 << 20);
		jw_init(&w, &b);
		assert_int_equal(exchange_reg_write(c, EXCHANGE_REG_ACCESS, NULL, NULL, &w, &found), EGOV_OK);
		assert_string_equal(b.data, "[]");
		buf_reset(&b);
		jw_init(&w, &b);
		assert_int_equal(exchange_reg_write(c, EXCHANGE_REG_SUBSYSTEM, "MO/GOV/DSI/APP", NULL, &w, &found),
				 EGOV_OK);
		assert_true(found);
		assert_non_null(strstr(b.data, "\"gateway\":\"https://127.0.0.1:5502\""));
		buf_release(&b);

		db_conn_close(c);
		db_close(d);
	}
}

/* ---- the global configuration ---------------------------------------------------- */

typedef struct signer {
	EVP_PKEY *key;
	char *pem;
} signer;

static signer make_signer(const char *cn)
{
	signer s;

	s.key = EVP_EC_gen("P-256");
	assert_non_null(s.key);
	s.pem = self_signed(s.key, cn, now_s() - 60, now_s() + 86400);
	return s;
}

static void signer_free(signer *s)
{
	EVP_PKEY_free(s->key);
	free(s->pem);
}

static void test_conf_roundtrip(void **state)
{
	fixture *f = *state;
	signer central = make_signer("central"), other = make_signer("impostor"), sub = make_signer("REG");
	char sha[65];
	int i;

	{
		X509 *x = exchange_pem_cert(sub.pem, strlen(sub.pem));
		assert_int_equal(exchange_cert_sha256(x, sha), EGOV_OK);
		X509_free(x);
	}
	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		int64_t version = 0, now = time_now_us();
		exchange_conf *cf = NULL;
		const exchange_service *sv;
		const exchange_subsystem *ss;
		const char *why = NULL;
		buf payload, jws, bad;

		fill(c, sub.pem, sha);
		buf_init(&payload, 1 << 24);
		buf_init(&jws, 1 << 24);
		assert_int_equal(exchange_conf_build(c, now, &payload, &version), EGOV_OK);
		assert_true(version > 1);
		assert_int_equal(exchange_conf_sign(central.key, central.pem, payload.data, &jws), EGOV_OK);

		assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", now, &cf, &why), EGOV_OK);
		assert_int_equal(exchange_conf_version(cf), version);
		assert_string_equal(exchange_conf_instance(cf), "MO");
		assert_true(exchange_conf_member_known(cf, "MO/GOV/DSI"));
		assert_false(exchange_conf_member_known(cf, "MO/GOV/NONE"));
		ss = exchange_conf_subsystem(cf, "MO/GOV/DSAJ/REG");
		assert_non_null(ss);
		assert_string_equal(ss->gateway_url, "https://127.0.0.1:5501");
		assert_int_equal(ss->ncerts, 1);
		assert_non_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG", "sign", sha));
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG", "tls", sha));
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSI/APP", "sign", sha));
		assert_null(exchange_conf_subsystem(cf, "MO/GOV/DSAJ/NONE"));
		sv = exchange_conf_service(cf, "MO/GOV/DSAJ/REG/persons");
		assert_non_null(sv);
		assert_string_equal(sv->log_mode, "digest");
		assert_int_equal(sv->max_body, 4096);
		assert_string_equal(sv->title, "Persons");
		assert_non_null(strstr(sv->openapi, "3.1.0"));
		sv = exchange_conf_service(cf, "MO/GOV/DSAJ/REG/health");
		assert_string_equal(sv->log_mode, "full");
		assert_int_equal(sv->max_body, 1024 * 1024);
		assert_null(sv->openapi);
		assert_true(exchange_conf_event_type_known(cf, "MO/GOV/DSAJ/REG/person-changed"));
		assert_false(exchange_conf_event_type_known(cf, "MO/GOV/DSAJ/REG/other"));

		/* Access: method list, prefix and exact paths, no climbing out. */
		assert_true(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "GET", "/persons/1"));
		assert_true(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "POST",
						  "/persons/1?x=/count"));
		assert_true(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "GET", "/count"));
		assert_true(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "GET", "/count?a=1"));
		assert_false(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "GET", "/count/2"));
		assert_false(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "DELETE", "/persons/1"));
		assert_false(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "GET", "/personsX"));
		assert_false(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "GET", "/persons"));
		assert_false(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/persons", "GET",
						   "/persons/../admin"));
		assert_false(exchange_conf_allowed(cf, "MO/GOV/DSI/APP", "MO/GOV/DSAJ/REG/health", "GET", "/"));
		assert_false(exchange_conf_allowed(cf, "MO/GOV/DSAJ/REG", "MO/GOV/DSAJ/REG/persons", "GET", "/persons/1"));

		/* In force, and a lower version is refused. */
		assert_int_equal(exchange_conf_install(cf), EGOV_OK);
		cf = exchange_conf_get(&why);
		assert_non_null(cf);
		assert_null(why);
		exchange_conf_put(cf);
		{
			buf p2;
			exchange_conf *older = NULL;
			buf_init(&p2, 1 << 24);
			assert_int_equal(buf_adds(&p2, payload.data), EGOV_OK);
			{
				char *v = strstr(p2.data, "\"version\":");
				char num[32];
				snprintf(num, sizeof num, "%lld", (long long)version);
				assert_non_null(v);
				/* version N -> version 1 (same width or shorter keeps JSON valid) */
				memmove(v + 10, "1", 1);
				memmove(v + 11, v + 10 + strlen(num), strlen(v + 10 + strlen(num)) + 1);
				p2.len = strlen(p2.data);
			}
			buf_init(&bad, 1 << 24);
			assert_int_equal(exchange_conf_sign(central.key, central.pem, p2.data, &bad), EGOV_OK);
			assert_int_equal(exchange_conf_parse(bad.data, bad.len, central.pem, "MO", now, &older, &why),
					 EGOV_OK);
			assert_int_equal(exchange_conf_version(older), 1);
			assert_int_equal(exchange_conf_install(older), EGOV_ECONFLICT);
			buf_release(&p2);
			buf_release(&bad);
		}

		/* Tampered payload: one byte of the middle part changed. */
		buf_init(&bad, 1 << 24);
		assert_int_equal(buf_add(&bad, jws.data, jws.len), EGOV_OK);
		{
			char *mid = strchr(bad.data, '.') + 20;
			*mid = *mid == 'A' ? 'B' : 'A';
		}
		assert_int_equal(exchange_conf_parse(bad.data, bad.len, central.pem, "MO", now, &cf, &why), EGOV_EAUTH);
		assert_string_equal(why, "exchange.conf_signature");
		assert_null(cf);
		buf_release(&bad);

		/* Signed by another key (its own certificate in x5c). */
		buf_init(&bad, 1 << 24);
		assert_int_equal(exchange_conf_sign(other.key, other.pem, payload.data, &bad), EGOV_OK);
		assert_int_equal(exchange_conf_parse(bad.data, bad.len, central.pem, "MO", now, &cf, &why), EGOV_EAUTH);
		assert_string_equal(why, "exchange.conf_signature");
		/* ... or claiming the central certificate in x5c. */
		buf_reset(&bad);
		assert_int_equal(exchange_conf_sign(other.key, central.pem, payload.data, &bad), EGOV_OK);
		assert_int_equal(exchange_conf_parse(bad.data, bad.len, central.pem, "MO", now, &cf, &why), EGOV_EAUTH);
		buf_release(&bad);
		/* Truncated and garbage documents. */
		assert_int_equal(exchange_conf_parse(jws.data, jws.len - 3, central.pem, "MO", now, &cf, &why),
				 EGOV_EAUTH);
		assert_int_equal(exchange_conf_parse("a.b.c", 5, central.pem, "MO", now, &cf, &why), EGOV_EAUTH);
		assert_int_equal(exchange_conf_parse("", 0, central.pem, "MO", now, &cf, &why), EGOV_EAUTH);

		/* Another instance; and expired. */
		assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "HK", now, &cf, &why), EGOV_EINVAL);
		assert_string_equal(why, "exchange.conf_instance");
		assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", now + 601LL * 1000000, &cf,
						     &why),
				 EGOV_EINVAL);
		assert_string_equal(why, "exchange.conf_expired");

		/* A configuration kept from earlier, now expired: in force, but
		 * exchange_conf_get says so. */
		exchange_conf_clear();
		assert_null(exchange_conf_get(&why));
		assert_string_equal(why, "exchange.conf_missing");
		assert_int_equal(exchange_conf_build(c, now - 3600LL * 1000000, &payload, &version), EGOV_OK);
		assert_int_equal(exchange_conf_sign(central.key, central.pem, payload.data, &jws), EGOV_OK);
		assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", 0, &cf, &why), EGOV_OK);
		assert_int_equal(exchange_conf_install(cf), EGOV_OK);
		assert_null(exchange_conf_get(&why));
		assert_string_equal(why, "exchange.conf_expired");
		exchange_conf_clear();

		buf_release(&payload);
		buf_release(&jws);
		db_conn_close(c);
		db_close(d);
	}
	signer_free(&central);
	signer_free(&other);
	signer_free(&sub);
}

/* An expired certificate is left out of the configuration. */
static void test_conf_drops_expired_cert(void **state)
{
	fixture *f = *state;
	signer sub = make_signer("REG");
	char sha[65] = "", past[32];
	int i;

	{
		X509 *x = exchange_pem_cert(sub.pem, strlen(sub.pem));
		exchange_cert_sha256(x, sha);
		X509_free(x);
	}
	time_format_rfc3339((now_s() - 10) * 1000000, 0, past);
	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		int64_t version = 0;
		buf payload;

		fill(c, NULL, NULL);
		add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_CERT, .id = "MO/GOV/DSAJ/REG", .usage = "tls",
					      .serial = "08", .not_after = past, .pem = sub.pem, .sha256 = sha});
		buf_init(&payload, 1 << 24);
		assert_int_equal(exchange_conf_build(c, time_now_us(), &payload, &version), EGOV_OK);
		assert_null(strstr(payload.data, sha));
		assert_non_null(strstr(payload.data, "\"certs\":[]"));
		buf_release(&payload);
		db_conn_close(c);
		db_close(d);
	}
	signer_free(&sub);
}

/* ---- signing keys ------------------------------------------------------------------ */

static void test_keys(void **state)
{
	char kpath[4096], cpath[4096], sig[128], sha[65], want[65];
	const char *msg = "egov-exchange/1 request\nid";
	EVP_PKEY *k = NULL;
	struct stat st;
	char *pem;
	X509 *x;
	buf csr;

	(void)state;
	assert_false(exchange_has_key("MO/GOV/DSAJ/REG"));
	assert_int_equal(exchange_sign("MO/GOV/DSAJ/REG", msg, strlen(msg), sig, sha), EGOV_ENOTFOUND);
	assert_int_equal(exchange_dirs(), EGOV_OK);
	assert_int_equal(exchange_key_path("MO/GOV/DSAJ/REG", "key", kpath, sizeof kpath), EGOV_OK);
	assert_non_null(strstr(kpath, "/exchange/keys/MO+GOV+DSAJ+REG.key"));
	assert_int_equal(exchange_key_path("MO/GOV/DSAJ", "key", kpath, sizeof kpath), EGOV_EINVAL);
	assert_int_equal(exchange_key_path("MO/GOV/DSAJ/REG", "key", kpath, sizeof kpath), EGOV_OK);
	assert_int_equal(exchange_key_create(kpath, &k), EGOV_OK);
	assert_int_equal(stat(kpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(exchange_csr_pem(k, "MO/GOV/DSAJ/REG", &csr), EGOV_OK);
	assert_non_null(strstr(csr.data, "BEGIN CERTIFICATE REQUEST"));
	buf_release(&csr);

	/* A key without its certificate signs nothing yet. */
	exchange_keys_forget();
	assert_false(exchange_has_key("MO/GOV/DSAJ/REG"));
	pem = self_signed(k, "REG", now_s() - 60, now_s() + 3600);
	assert_int_equal(exchange_key_path("MO/GOV/DSAJ/REG", "crt", cpath, sizeof cpath), EGOV_OK);
	assert_int_equal(exchange_file_write(cpath, pem, strlen(pem), 0644), EGOV_OK);
	exchange_keys_forget();
	assert_true(exchange_has_key("MO/GOV/DSAJ/REG"));
	assert_int_equal(exchange_sign("MO/GOV/DSAJ/REG", msg, strlen(msg), sig, sha), EGOV_OK);
	assert_int_equal(strlen(sig), 86);
	x = exchange_pem_cert(pem, strlen(pem));
	exchange_cert_sha256(x, want);
	X509_free(x);
	assert_string_equal(sha, want);
	assert_int_equal(exchange_verify(pem, msg, strlen(msg), sig), EGOV_OK);
	assert_int_equal(exchange_verify(pem, msg, strlen(msg) - 1, sig), EGOV_EAUTH);
	sig[10] = sig[10] == 'A' ? 'B' : 'A';
	assert_int_equal(exchange_verify(pem, msg, strlen(msg), sig), EGOV_EAUTH);
	assert_int_equal(exchange_verify(pem, msg, strlen(msg), "short"), EGOV_EAUTH);
	assert_int_equal(exchange_verify("not a certificate", msg, strlen(msg), sig), EGOV_EAUTH);

	/* A key others can read is refused. */
	assert_int_equal(chmod(kpath, 0644), 0);
	{
		EVP_PKEY *k2 = NULL;
		assert_int_equal(exchange_key_load(kpath, &k2), EGOV_ECORRUPT);
		assert_null(k2);
	}
	exchange_keys_forget();
	assert_false(exchange_has_key("MO/GOV/DSAJ/REG"));
	free(pem);
	EVP_PKEY_free(k);
}

/* A configuration bound through the JSON binder: members it does not
 * name are passed over, each subsystem's TLS pins are computed once, an
 * OpenAPI description is kept as sent, and an entry that is not as
 * docs/exchange.md describes refuses the whole document. */
static void conf_doc(buf *out, const char *tls_pem, const char *tls_sha, const char *usage, int64_t max_body)
{
	char gen[32], exp[32];
	jw w;

	time_format_rfc3339(time_now_us() - 1000000, 0, gen);
	time_format_rfc3339(time_now_us() + 600 * 1000000LL, 0, exp);
	buf_reset(out);
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "instance", "MO");
	jw_kint(&w, "version", 7);
	jw_kstr(&w, "generated_at", gen);
	jw_kstr(&w, "expires_at", exp);
	jw_key(&w, "from_a_newer_central");
	jw_raw(&w, "{\"a\":[1,2]}");
	jw_key(&w, "members");
	jw_raw(&w, "[{\"id\":\"MO/GOV/DSAJ\",\"name\":\"x\"}]");
	jw_key(&w, "subsystems");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_kstr(&w, "id", "MO/GOV/DSAJ/REG");
	jw_kstr(&w, "gateway", "https://127.0.0.1:5501");
	jw_key(&w, "certs");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_kstr(&w, "usage", usage);
	jw_kstr(&w, "serial", "01");
	jw_kstr(&w, "sha256", tls_sha);
	jw_kstr(&w, "pem", tls_pem);
	jw_kbool(&w, "extra", true);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_obj_end(&w);
	jw_raw(&w, "{\"id\":\"MO/GOV/DSAJ/OTHER\",\"gateway\":\"https://127.0.0.1:5502\",\"certs\":[]}");
	jw_arr_end(&w);
	jw_key(&w, "services");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	jw_kstr(&w, "id", "MO/GOV/DSAJ/REG/persons");
	jw_kstr(&w, "log", "full");
	jw_kint(&w, "max_body", max_body);
	jw_key(&w, "openapi");
	jw_raw(&w, "{\"openapi\":\"3.1.0\"}");
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_key(&w, "access");
	jw_raw(&w, "[]");
	jw_obj_end(&w);
	assert_int_equal(w.err, EGOV_OK);
}

static void test_conf_bound(void **state)
{
	signer central = make_signer("central"), tls = make_signer("REG tls");
	unsigned char *spki = NULL, md[32], b64[48];
	char sha[65], want[64];
	const exchange_subsystem *ss;
	exchange_conf *cf = NULL;
	const char *why = NULL;
	buf doc, jws;
	X509 *x;
	int n;

	(void)state;
	x = exchange_pem_cert(tls.pem, strlen(tls.pem));
	assert_int_equal(exchange_cert_sha256(x, sha), EGOV_OK);
	n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
	assert_true(n > 0);
	SHA256(spki, (size_t)n, md);
	EVP_EncodeBlock(b64, md, sizeof md);
	snprintf(want, sizeof want, "sha256//%s", (const char *)b64);
	OPENSSL_free(spki);
	X509_free(x);
	buf_init(&doc, 1 << 20);
	buf_init(&jws, 1 << 20);

	conf_doc(&doc, tls.pem, sha, "tls", 10);
	assert_int_equal(exchange_conf_sign(central.key, central.pem, doc.data, &jws), EGOV_OK);
	assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", time_now_us(), &cf, &why), EGOV_OK);
	ss = exchange_conf_subsystem(cf, "MO/GOV/DSAJ/REG");
	assert_non_null(ss);
	assert_string_equal(ss->tls_pins, want);
	assert_non_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG", "tls", sha));
	ss = exchange_conf_subsystem(cf, "MO/GOV/DSAJ/OTHER");
	assert_non_null(ss);
	assert_null(ss->tls_pins);
	assert_string_equal(exchange_conf_service(cf, "MO/GOV/DSAJ/REG/persons")->openapi, "{\"openapi\":\"3.1.0\"}");
	assert_false(exchange_conf_event_type_known(cf, "MO/GOV/DSAJ/REG/x"));
	exchange_conf_put(cf);
	cf = NULL;

	/* A sign certificate gives no pins; the signer is its own. */
	conf_doc(&doc, tls.pem, sha, "sign", 10);
	assert_int_equal(exchange_conf_sign(central.key, central.pem, doc.data, &jws), EGOV_OK);
	assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", time_now_us(), &cf, &why), EGOV_OK);
	assert_null(exchange_conf_subsystem(cf, "MO/GOV/DSAJ/REG")->tls_pins);
	exchange_conf_put(cf);
	cf = NULL;

	/* Entries out of shape refuse the document. */
	conf_doc(&doc, tls.pem, sha, "mail", 10);
	assert_int_equal(exchange_conf_sign(central.key, central.pem, doc.data, &jws), EGOV_OK);
	assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", time_now_us(), &cf, &why),
			 EGOV_EINVAL);
	assert_string_equal(why, "exchange.conf_invalid");
	conf_doc(&doc, tls.pem, sha, "tls", 0);
	assert_int_equal(exchange_conf_sign(central.key, central.pem, doc.data, &jws), EGOV_OK);
	assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", time_now_us(), &cf, &why),
			 EGOV_EINVAL);
	assert_string_equal(why, "exchange.conf_invalid");
	assert_null(cf);

	buf_release(&doc);
	buf_release(&jws);
	signer_free(&central);
	signer_free(&tls);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_drops_expired_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test(test_conf_bound),
	};
	return cmocka_run_group_tests_name("exchange_registry", tests, NULL, NULL);
}
