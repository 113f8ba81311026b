/*
 * test_exchange_hardening.c: the gateway's parsing of outside input
 * (exchange_wire.c), one TLS certificate registered for several
 * subsystems of one gateway (and refused otherwise), the services'
 * published back-end timeout, and the recent message ids read back from
 * the message log at start. Storage on SQLite and PostgreSQL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/app.h"
#include "core/db.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
#include "exchange/log/exlog_int.h"
#include "exchange/registry/registry.h"
#include "exchange/wire/wire.h"
#include "testutil.h"
#include "core/banned.h"

/* ---- helpers ------------------------------------------------------------------ */

typedef struct signer {
	EVP_PKEY *key;
	char *pem;
	char sha[65];
} signer;

static signer make_signer(const char *cn)
{
	signer s;
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIO *mem = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;
	int64_t now = time_now_us() / 1000000;

	s.key = EVP_EC_gen("P-256");
	assert_non_null(s.key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(now & 0xffff) + (long)strlen(cn));
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now - 60));
	ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now + 86400));
	X509_set_pubkey(x, s.key);
	assert_true(X509_sign(x, s.key, EVP_sha256()) > 0);
	assert_int_equal(exchange_cert_sha256(x, s.sha), EGOV_OK);
	assert_int_equal(PEM_write_bio_X509(mem, x), 1);
	n = BIO_get_mem_data(mem, &data);
	s.pem = strndup(data, (size_t)n);
	BIO_free(mem);
	X509_NAME_free(name);
	X509_free(x);
	return s;
}

static void signer_free(signer *s)
{
	EVP_PKEY_free(s->key);
	free(s->pem);
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
	if (config_set(&f->cfg, "exchange.conf_validity_s", "600", NULL, 0) ||
	    config_set(&f->cfg, "exchange.backend_timeout_ms", "700", NULL, 0))
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
	m = exlog_migrations(&n);
	assert_int_equal(db_migrate(c, "exchange_log", m, n, NULL), EGOV_OK);
	return c;
}

static void close_db(db *d, db_conn *c)
{
	db_conn_close(c);
	db_close(d);
}

static egov_err add(db_conn *c, exchange_reg_item *it, reg_why *why)
{
	memset(why, 0, sizeof *why);
	return exchange_reg_add(c, it, NULL, why);
}

static egov_err add_cert(db_conn *c, const char *sub, const char *usage, const signer *s, reg_why *why)
{
	char na[32];
	exchange_reg_item it = {.kind = EXCHANGE_REG_CERT, .id = sub, .usage = usage, .serial = "01",
				.not_after = na, .pem = s->pem, .sha256 = s->sha};

	time_format_rfc3339(time_now_us() + 3600 * 1000000LL, 0, na);
	return add(c, &it, why);
}

/* Builds, signs and parses the configuration of the registry in c. */
static exchange_conf *conf_of(db_conn *c, const signer *central)
{
	exchange_conf *cf = NULL;
	const char *why = NULL;
	int64_t version = 0, now = time_now_us();
	buf payload, jws;

	buf_init(&payload, 1 << 24);
	buf_init(&jws, 1 << 24);
	assert_int_equal(exchange_conf_build(c, now, &payload, &version), EGOV_OK);
	assert_int_equal(exchange_conf_sign(central->key, central->pem, payload.data, &jws), EGOV_OK);
	assert_int_equal(exchange_conf_parse(jws.data, jws.len, central->pem, "MO", now, &cf, &why), EGOV_OK);
	buf_release(&payload);
	buf_release(&jws);
	return cf;
}

/* ---- exchange_wire.c ------------------------------------------------------------- */

static void test_wire(void **state)
{
	arena a;
	const char *parts[16];
	char rest[] = "MO/GOV/DSAJ/REG/persons/public?x/y";
	char id[EXCHANGE_ID_MAX];
	char sig[90];
	size_t n;

	(void)state;
	arena_init(&a, 1 << 16);
	n = exchange_split_rest(rest, parts, 16);
	assert_int_equal(n, 7);
	assert_true(exchange_join_id(parts, 5, id));
	assert_string_equal(id, "MO/GOV/DSAJ/REG/persons");
	/* A decoded '?' (from %3F) does not start a query for the rules. */
	assert_string_equal(exchange_decoded_tail(&a, parts, n, 5), "/public%3Fx/y");
	assert_string_equal(exchange_decoded_tail(&a, parts, 5, 5), "/");
	assert_string_equal(exchange_raw_tail(&a, "/r1/MO/GOV/DSAJ/REG/persons/public%3Fx/y?q=1", 6),
			    "/public%3Fx/y?q=1");
	assert_string_equal(exchange_raw_tail(&a, "/r1/MO/GOV/DSAJ/REG/persons?q=1", 6), "/?q=1");
	assert_string_equal(exchange_raw_tail(&a, "/r1/MO/GOV/DSAJ/REG/persons", 6), "/");
	assert_null(exchange_raw_tail(&a, "/r1/MO/GOV/DSAJ/REG?persons", 6));

	assert_true(exchange_rule_path_allowed("/public", "/public?x=1"));
	assert_false(exchange_rule_path_allowed("/public", "/public%3Fx"));
	assert_true(exchange_rule_path_allowed("/persons/*", "/persons/7"));
	assert_false(exchange_rule_path_allowed("/persons/*", "/persons"));
	assert_false(exchange_rule_path_allowed("*", "/a/../b"));
	assert_true(exchange_rule_method_allowed("GET,POST", "POST"));
	assert_false(exchange_rule_method_allowed("GET,POST", "PUT"));
	assert_false(exchange_rule_method_allowed("GETX", "GET"));

	memset(sig, 'A', 86);
	sig[86] = '\0';
	{
		const char *cert = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
		assert_true(exchange_sig_headers_valid("m-1", "2026-11-27T10:00:00.123Z", cert, sig));
		assert_false(exchange_sig_headers_valid("m 1", "2026-11-27T10:00:00.123Z", cert, sig));
		assert_false(exchange_sig_headers_valid("m-1", "2026-11-27T10:00:00.123Z\r", cert, sig));
		assert_false(exchange_sig_headers_valid("m-1", "2026-11-27T10:00:00.123Z", "ABCDEF", sig));
		assert_false(exchange_sig_headers_valid("m-1", "2026-11-27T10:00:00.123Z", cert, "a+b/"));
		assert_false(exchange_sig_headers_valid("m-1", NULL, cert, sig));
	}
	assert_true(exchange_msgid_valid("0190f5c2-7a1b-7c3d-8e4f-0123456789ab"));
	assert_false(exchange_msgid_valid(""));
	assert_true(exchange_text_valid("陳大文", 16));
	assert_false(exchange_text_valid("a\tb", 16));
	arena_release(&a);
}

/* ---- one TLS certificate for the subsystems of one gateway ------------------------- */

static void test_shared_tls(void **state)
{
	fixture *f = *state;
	signer central = make_signer("central"), tls = make_signer("gw tls"), sign = make_signer("REG sign");
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		exchange_reg_item it = {0};
		exchange_conf *cf;
		reg_why why;
		jw w;
		buf out;
		bool found = false;

		it = (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/DSAJ", .name = "DSAJ"};
		assert_int_equal(add(c, &it, &why), EGOV_OK);
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/DSAJ/REG",
					 .gateway = "https://127.0.0.1:5501"};
		assert_int_equal(add(c, &it, &why), EGOV_OK);
		it.id = "MO/GOV/DSAJ/REG2";
		assert_int_equal(add(c, &it, &why), EGOV_OK);
		it.id = "MO/GOV/DSAJ/ELSE";
		it.gateway = "https://127.0.0.1:5502";
		assert_int_equal(add(c, &it, &why), EGOV_OK);

		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/REG", "tls", &tls, &why), EGOV_OK);
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/REG2", "tls", &tls, &why), EGOV_OK);
		/* The same again, another gateway's subsystem, or as a signing
		 * certificate: refused. */
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/REG2", "tls", &tls, &why), EGOV_ECONFLICT);
		assert_string_equal(why.code, "exchange.exists");
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/ELSE", "tls", &tls, &why), EGOV_ECONFLICT);
		assert_string_equal(why.code, "exchange.exists");
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/ELSE", "sign", &tls, &why), EGOV_ECONFLICT);
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/REG", "sign", &sign, &why), EGOV_OK);
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/REG2", "sign", &sign, &why), EGOV_ECONFLICT);
		assert_string_equal(why.code, "exchange.exists");
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/REG2", "tls", &sign, &why), EGOV_ECONFLICT);

		/* The configuration lists it under both; lookups are per subsystem. */
		cf = conf_of(c, &central);
		assert_non_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG", "tls", tls.sha));
		assert_non_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG2", "tls", tls.sha));
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/ELSE", "tls", tls.sha));
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG2", "sign", tls.sha));
		assert_non_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG", "sign", sign.sha));
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG2", "sign", sign.sha));
		exchange_conf_put(cf);

		/* One item with every subsystem it serves. */
		buf_init(&out, 1 << 20);
		jw_init(&w, &out);
		assert_int_equal(exchange_reg_write(c, EXCHANGE_REG_CERT, tls.sha, NULL, &w, &found), EGOV_OK);
		assert_true(found);
		assert_non_null(strstr(out.data, "\"subsystems\":[\"MO/GOV/DSAJ/REG\",\"MO/GOV/DSAJ/REG2\"]"));
		buf_release(&out);

		/* Removing one registration leaves the other. */
		it = (exchange_reg_item){.kind = EXCHANGE_REG_CERT, .id = "MO/GOV/DSAJ/REG2", .sha256 = tls.sha};
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_OK);
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_ENOTFOUND);
		cf = conf_of(c, &central);
		assert_non_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG", "tls", tls.sha));
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG2", "tls", tls.sha));
		exchange_conf_put(cf);
		/* Without a subsystem every registration goes. */
		assert_int_equal(add_cert(c, "MO/GOV/DSAJ/REG2", "tls", &tls, &why), EGOV_OK);
		it = (exchange_reg_item){.kind = EXCHANGE_REG_CERT, .id = tls.sha, .sha256 = tls.sha};
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_OK);
		cf = conf_of(c, &central);
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG", "tls", tls.sha));
		assert_null(exchange_conf_cert(cf, "MO/GOV/DSAJ/REG2", "tls", tls.sha));
		exchange_conf_put(cf);
		close_db(d, c);
	}
	signer_free(&central);
	signer_free(&tls);
	signer_free(&sign);
}

/* ---- the services' published timeout ---------------------------------------------- */

static void test_service_timeout(void **state)
{
	fixture *f = *state;
	signer central = make_signer("central");
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		exchange_reg_item it;
		exchange_conf *cf;
		reg_why why;

		it = (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/DSAJ", .name = "DSAJ"};
		assert_int_equal(add(c, &it, &why), EGOV_OK);
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/DSAJ/REG",
					 .gateway = "https://127.0.0.1:5501"};
		assert_int_equal(add(c, &it, &why), EGOV_OK);
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/slow", .timeout_ms = 8000};
		assert_int_equal(add(c, &it, &why), EGOV_OK);
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/plain"};
		assert_int_equal(add(c, &it, &why), EGOV_OK);
		it = (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/bad", .timeout_ms = 5};
		assert_int_equal(add(c, &it, &why), EGOV_EINVAL);
		assert_string_equal(why.field, "timeout_ms");
		it.timeout_ms = 600001;
		assert_int_equal(add(c, &it, &why), EGOV_EINVAL);

		cf = conf_of(c, &central);
		assert_int_equal(exchange_conf_service(cf, "MO/GOV/DSAJ/REG/slow")->timeout_ms, 8000);
		/* Not set: the central node's exchange.backend_timeout_ms. */
		assert_int_equal(exchange_conf_service(cf, "MO/GOV/DSAJ/REG/plain")->timeout_ms, 700);
		exchange_conf_put(cf);
		close_db(d, c);
	}

	/* A configuration from before the field parses (0: the gateway's
	 * own default); an out-of-range one does not. */
	{
		static const char *const docs[] = {
			"\"services\":[{\"id\":\"MO/GOV/A/B/c\",\"log\":\"full\",\"max_body\":10}]",
			"\"services\":[{\"id\":\"MO/GOV/A/B/c\",\"log\":\"full\",\"max_body\":10,\"timeout_ms\":5}]",
		};
		for (i = 0; i < 2; i++) {
			char gen[32], exp[32], payload[1024];
			int64_t now = time_now_us();
			exchange_conf *cf = NULL;
			const char *why = NULL;
			buf jws;

			time_format_rfc3339(now, 0, gen);
			time_format_rfc3339(now + 600 * 1000000LL, 0, exp);
			snprintf(payload, sizeof payload,
				 "{\"instance\":\"MO\",\"version\":3,\"generated_at\":\"%s\",\"expires_at\":\"%s\","
				 "\"members\":[],\"subsystems\":[],%s,\"access\":[],\"event_types\":[]}",
				 gen, exp, docs[i]);
			buf_init(&jws, 1 << 20);
			assert_int_equal(exchange_conf_sign(central.key, central.pem, payload, &jws), EGOV_OK);
			if (i == 0) {
				assert_int_equal(exchange_conf_parse(jws.data, jws.len, central.pem, "MO", now, &cf, &why),
						 EGOV_OK);
				assert_int_equal(exchange_conf_service(cf, "MO/GOV/A/B/c")->timeout_ms, 0);
				exchange_conf_put(cf);
			} else {
				assert_int_not_equal(
					exchange_conf_parse(jws.data, jws.len, central.pem, "MO", now, &cf, &why), EGOV_OK);
			}
			buf_release(&jws);
		}
	}
	signer_free(&central);
}

/* ---- recent message ids from the log --------------------------------------------------- */

static int collect(void *ctx, const char *client, const char *mid, int64_t at)
{
	size_t *n = ctx;

	assert_string_equal(client, "MO/GOV/DSB/APP");
	assert_true(at > 0);
	/* Newest first. */
	if (*n == 0)
		assert_string_equal(mid, "m-1299");
	assert_true(strncmp(mid, "m-", 2) == 0);
	(*n)++;
	return 0;
}

static int stop_at_three(void *ctx, const char *client, const char *mid, int64_t at)
{
	size_t *n = ctx;

	(void)client;
	(void)mid;
	(void)at;
	return ++*n == 3;
}

static void insert_log(db_conn *c, int64_t seq, const char *side, const char *mid, int64_t t_us)
{
	char t[32], at[32];
	db_param p[6];

	time_format_rfc3339(t_us, 6, t);
	time_format_rfc3339(t_us, 3, at);
	p[0] = DBP_I(seq);
	p[1] = DBP_S(t);
	p[2] = DBP_S(side);
	p[3] = DBP_S(mid);
	p[4] = DBP_S(at);
	p[5] = DBP_S(at);
	assert_int_equal(db_exec(c,
				 "INSERT INTO exchange_log (seq, time, side, message_id, client, service, method, path,"
				 " represented_party, data_subject, purpose, status, log_mode, request_content_type,"
				 " request_signed_at, request_sig, request_signer_cert, request_body_sha256,"
				 " response_content_type, response_signed_at, response_sig, response_signer_cert,"
				 " response_body_sha256, prev_hash, hash) VALUES (?, ?, ?, ?, 'MO/GOV/DSB/APP',"
				 " 'MO/GOV/DSAJ/REG/persons', 'GET', '/', '', '', '', 200, 'digest', '', ?, 's', 'c', 'd',"
				 " '', ?, 's', 'c', 'd', 'p', 'h')",
				 p, 6, NULL),
			 EGOV_OK);
}

static void test_log_recent(void **state)
{
	fixture *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		int64_t now = time_now_us(), seq = 1;
		size_t n = 0, count = 0;
		char mid[32];
		int k;

		/* Old records, then more recent ones than one page holds, with
		 * the consumer's records of the same ids between them. */
		assert_int_equal(db_begin(c), EGOV_OK);
		for (k = 0; k < 5; k++) {
			snprintf(mid, sizeof mid, "old-%d", k);
			insert_log(c, seq++, "provider", mid, now - 3600 * 1000000LL);
		}
		for (k = 0; k < 1300; k++) {
			snprintf(mid, sizeof mid, "m-%d", k);
			insert_log(c, seq++, "provider", mid, now - 100 * 1000000LL + k);
			insert_log(c, seq++, "consumer", mid, now - 100 * 1000000LL + k);
		}
		assert_int_equal(db_commit(c), EGOV_OK);

		assert_int_equal(exchange_log_recent(c, now - 600 * 1000000LL, collect, &n, &count), EGOV_OK);
		assert_int_equal(n, 1300);
		assert_int_equal(count, 1300);
		n = 0;
		assert_int_equal(exchange_log_recent(c, now - 600 * 1000000LL, stop_at_three, &n, &count), EGOV_OK);
		assert_int_equal(n, 3);
		n = 0;
		assert_int_equal(exchange_log_recent(c, now + 1000000, collect, &n, NULL), EGOV_OK);
		assert_int_equal(n, 0);
		close_db(d, c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire),
		cmocka_unit_test_setup_teardown(test_shared_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_recent, setup, teardown),
	};
	return cmocka_run_group_tests_name("exchange_hardening", tests, NULL, NULL);
}
