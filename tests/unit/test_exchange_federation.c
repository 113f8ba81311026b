/*
 * test_exchange_federation.c: federation of exchange instances
 * (docs/exchange.md, "Federation"): a registry trusting another instance
 * (on SQLite and PostgreSQL: the trust's checks, access rights for the
 * other instance's clients, the "federation" list it publishes, a
 * withdrawal taking those rights with it), and a gateway's configuration
 * in force with a federated one attached: lookups go to the instance of
 * the identifier, access rights to the service's instance, an attached
 * configuration signed by another certificate than the trusted one, an
 * older one, an expired one or one no longer trusted answers nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/app.h"
#include "core/db.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
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

/* A key (P-256, or RSA when rsa) and a self-signed certificate for it,
 * valid from two minutes ago until valid_s seconds from now. */
static signer make_signer(const char *cn, int64_t valid_s, bool rsa)
{
	signer s;
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	BIO *mem = BIO_new(BIO_s_mem());
	int64_t now = time_now_us() / 1000000;
	char *data = NULL;
	long n;

	s.key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	assert_non_null(s.key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(now - 120));
	ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(now + valid_s));
	X509_set_pubkey(x, s.key);
	assert_true(X509_sign(x, s.key, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(mem, x), 1);
	n = BIO_get_mem_data(mem, &data);
	s.pem = strndup(data, (size_t)n);
	assert_int_equal(exchange_cert_sha256(x, s.sha), EGOV_OK);
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
	return c;
}

static void add_ok(db_conn *c, exchange_reg_item it)
{
	reg_why why = {0};
	egov_err err = exchange_reg_add(c, &it, NULL, &why);

	if (err)
		fail_msg("add %s: %s (%s %s)", it.id ? it.id : it.client, egov_err_name(err), why.code ? why.code : "",
			 why.field ? why.field : "");
}

/* ---- the registry ------------------------------------------------------------------ */

static void test_registry_trust(void **state)
{
	fixture *f = *state;
	signer hk = make_signer("HK exchange central", 86400, false), old = make_signer("old", 30, false),
	       rsa = make_signer("rsa", 86400, true);
	int i;

	for (i = 0; i < f->n; i++) {
		db *d = NULL;
		db_conn *c = open_db(&d, f->urls[i]);
		exchange_reg_item it;
		reg_why why = {0};
		bool replaced = true;
		char sha[65];
		int64_t v0 = 0, v1 = 0, version = 0;
		buf payload;

		add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "MO/GOV/DSAJ", .name = "x"});
		add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_SUBSYSTEM, .id = "MO/GOV/DSAJ/REG",
					      .gateway = "https://127.0.0.1:5501"});
		add_ok(c, (exchange_reg_item){.kind = EXCHANGE_REG_SERVICE, .id = "MO/GOV/DSAJ/REG/persons"});

		/* A client of an instance nobody trusts: no grant. */
		it = (exchange_reg_item){.kind = EXCHANGE_REG_ACCESS, .client = "HK/GOV/IMMD/APP",
					 .service = "MO/GOV/DSAJ/REG/persons", .methods = "GET", .paths = "*"};
		assert_int_equal(exchange_reg_add(c, &it, NULL, &why), EGOV_EINVAL);
		assert_string_equal(why.field, "client");

		/* Refused trusts. */
		assert_int_equal(exchange_reg_trust_add(c, "MO", "http://127.0.0.1:9", hk.pem, sha, NULL, &why), EGOV_EINVAL);
		assert_string_equal(why.field, "instance");
		assert_int_equal(exchange_reg_trust_add(c, "H K", "http://127.0.0.1:9", hk.pem, sha, NULL, &why),
				 EGOV_EINVAL);
		assert_string_equal(why.field, "instance");
		assert_int_equal(exchange_reg_trust_add(c, "HK", "gopher://x", hk.pem, sha, NULL, &why), EGOV_EINVAL);
		assert_string_equal(why.field, "url");
		assert_int_equal(exchange_reg_trust_add(c, "HK", "http://127.0.0.1:9", "junk", sha, NULL, &why), EGOV_EINVAL);
		assert_string_equal(why.code, "pki.cert_invalid");
		assert_int_equal(exchange_reg_trust_add(c, "HK", "http://127.0.0.1:9", rsa.pem, sha, NULL, &why), EGOV_EINVAL);
		assert_string_equal(why.field, "certificate");

		/* Trusted: the version moves, the trust is published. */
		assert_int_equal(exchange_registry_version(c, &v0), EGOV_OK);
		assert_int_equal(exchange_reg_trust_add(c, "HK", "http://127.0.0.1:9", hk.pem, sha, &replaced, &why), EGOV_OK);
		assert_false(replaced);
		assert_string_equal(sha, hk.sha);
		assert_int_equal(exchange_registry_version(c, &v1), EGOV_OK);
		assert_true(v1 > v0);
		assert_int_equal(exchange_reg_trust_add(c, "HK", "https://central.hk:8443/x", hk.pem, sha, &replaced, &why),
				 EGOV_OK);
		assert_true(replaced);
		/* Now a grant to HK's client is taken. */
		why = (reg_why){0};
		assert_int_equal(exchange_reg_add(c, &it, NULL, &why), EGOV_OK);
		/* But no member of HK in MO's registry. */
		it = (exchange_reg_item){.kind = EXCHANGE_REG_MEMBER, .id = "HK/GOV/IMMD", .name = "x"};
		assert_int_equal(exchange_reg_add(c, &it, NULL, &why), EGOV_EINVAL);

		buf_init(&payload, 1 << 20);
		assert_int_equal(exchange_conf_build(c, time_now_us(), &payload, &version), EGOV_OK);
		assert_non_null(strstr(payload.data, "\"federation\":[{\"instance\":\"HK\",\"url\":\"https://central.hk:8443/x\""));
		assert_non_null(strstr(payload.data, hk.sha));
		assert_non_null(strstr(payload.data, "{\"client\":\"HK/GOV/IMMD/APP\",\"service\":\"MO/GOV/DSAJ/REG/persons\""));

		/* A certificate that expires soon is published until it has. */
		assert_int_equal(exchange_reg_trust_add(c, "SG", "http://127.0.0.1:10", old.pem, sha, NULL, &why), EGOV_OK);
		assert_int_equal(exchange_conf_build(c, time_now_us(), &payload, &version), EGOV_OK);
		assert_non_null(strstr(payload.data, "\"instance\":\"SG\""));
		assert_int_equal(exchange_conf_build(c, time_now_us() + 3600LL * 1000000, &payload, &version), EGOV_OK);
		assert_null(strstr(payload.data, "\"instance\":\"SG\""));

		/* Withdrawn: the rights of HK's clients go with it. */
		it = (exchange_reg_item){.kind = EXCHANGE_REG_TRUST, .id = "HK"};
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_OK);
		assert_int_equal(exchange_reg_remove(c, &it, &why), EGOV_ENOTFOUND);
		assert_string_equal(why.code, "exchange.unknown_instance");
		assert_int_equal(exchange_conf_build(c, time_now_us(), &payload, &version), EGOV_OK);
		assert_null(strstr(payload.data, "HK/GOV/IMMD/APP"));
		assert_null(strstr(payload.data, "\"instance\":\"HK\""));
		buf_release(&payload);

		db_conn_close(c);
		db_close(d);
	}
	signer_free(&hk);
	signer_free(&old);
	signer_free(&rsa);
}

/* ---- the configuration in force ------------------------------------------------- */

/* A configuration document of instance with one member, subsystem and
 * service (INSTANCE/GOV/M, /S, /S/svc), an access right for client on
 * the service (when not NULL) and the trusted instance (when not NULL). */
static void doc(buf *out, const char *instance, int64_t version, int64_t valid_s, const char *client,
		const signer *trusted, const char *trusted_instance)
{
	char gen[32], exp[32], id[64];
	jw w;

	time_format_rfc3339(time_now_us() - 1000000, 0, gen);
	time_format_rfc3339(time_now_us() + valid_s * 1000000, 0, exp);
	buf_reset(out);
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "instance", instance);
	jw_kint(&w, "version", version);
	jw_kstr(&w, "generated_at", gen);
	jw_kstr(&w, "expires_at", exp);
	jw_key(&w, "members");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	snprintf(id, sizeof id, "%s/GOV/M", instance);
	jw_kstr(&w, "id", id);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_key(&w, "subsystems");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	snprintf(id, sizeof id, "%s/GOV/M/S", instance);
	jw_kstr(&w, "id", id);
	jw_kstr(&w, "gateway", "https://127.0.0.1:5501");
	jw_key(&w, "certs");
	jw_raw(&w, "[]");
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_key(&w, "services");
	jw_arr_begin(&w);
	jw_obj_begin(&w);
	snprintf(id, sizeof id, "%s/GOV/M/S/svc", instance);
	jw_kstr(&w, "id", id);
	jw_kstr(&w, "log", "full");
	jw_kint(&w, "max_body", 1024);
	jw_obj_end(&w);
	jw_arr_end(&w);
	jw_key(&w, "access");
	jw_arr_begin(&w);
	if (client) {
		jw_obj_begin(&w);
		jw_kstr(&w, "client", client);
		jw_kstr(&w, "service", id);
		jw_kstr(&w, "methods", "GET");
		jw_kstr(&w, "paths", "*");
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "federation");
	jw_arr_begin(&w);
	if (trusted) {
		jw_obj_begin(&w);
		jw_kstr(&w, "instance", trusted_instance);
		jw_kstr(&w, "url", "http://127.0.0.1:9");
		jw_kstr(&w, "sha256", trusted->sha);
		jw_kstr(&w, "pem", trusted->pem);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	assert_int_equal(w.err, EGOV_OK);
}

/* The document signed by s and parsed for instance. */
static exchange_conf *parsed(const buf *d, const signer *s, const char *instance, egov_err want)
{
	exchange_conf *cf = NULL;
	const char *why = NULL;
	buf jws;

	buf_init(&jws, 1 << 20);
	assert_int_equal(exchange_conf_sign(s->key, s->pem, d->data, &jws), EGOV_OK);
	assert_int_equal(exchange_conf_parse(jws.data, jws.len, s->pem, instance, 0, &cf, &why), want);
	buf_release(&jws);
	return cf;
}

static void test_conf_federated(void **state)
{
	signer mo = make_signer("MO central", 86400, false), hk = make_signer("HK central", 86400, false),
	       impostor = make_signer("impostor", 86400, false);
	exchange_conf *cf, *in_force;
	const exchange_conf *att[4];
	buf d;

	(void)state;
	buf_init(&d, 1 << 20);
	/* A federation entry whose certificate is not the one it names, or
	 * names this instance itself: the document is refused. */
	doc(&d, "MO", 5, 600, NULL, &hk, "MO");
	assert_null(parsed(&d, &mo, "MO", EGOV_EINVAL));
	{
		signer wrong = hk;
		memcpy(wrong.sha, impostor.sha, sizeof wrong.sha);
		doc(&d, "MO", 5, 600, NULL, &wrong, "HK");
		assert_null(parsed(&d, &mo, "MO", EGOV_EINVAL));
	}

	/* MO trusts HK; HK grants MO/GOV/M/S access to its service. */
	doc(&d, "MO", 5, 600, NULL, &hk, "HK");
	cf = parsed(&d, &mo, "MO", EGOV_OK);
	assert_string_equal(exchange_conf_signer(cf), mo.sha);
	assert_int_equal(exchange_conf_install(cf), EGOV_OK);
	/* Not trusted yet: nothing of HK answers. */
	in_force = exchange_conf_get(NULL);
	assert_null(exchange_conf_subsystem(in_force, "HK/GOV/M/S"));
	assert_null(exchange_conf_of_instance(in_force, "HK"));
	exchange_conf_put(in_force);

	doc(&d, "HK", 3, 600, "MO/GOV/M/S", &mo, "MO");
	assert_int_equal(exchange_conf_install_federated(parsed(&d, &hk, "HK", EGOV_OK)), EGOV_OK);
	in_force = exchange_conf_get(NULL);
	assert_int_equal(exchange_conf_attached(in_force, att, 4), 1);
	assert_string_equal(exchange_conf_instance(att[0]), "HK");
	assert_int_equal(exchange_conf_version(in_force), 5);
	assert_non_null(exchange_conf_subsystem(in_force, "HK/GOV/M/S"));
	assert_non_null(exchange_conf_subsystem(in_force, "MO/GOV/M/S"));
	assert_non_null(exchange_conf_service(in_force, "HK/GOV/M/S/svc"));
	assert_true(exchange_conf_member_known(in_force, "HK/GOV/M"));
	assert_false(exchange_conf_member_known(in_force, "SG/GOV/M"));
	assert_true(exchange_conf_of_instance(in_force, "HK/GOV/M") == att[0]);
	assert_true(exchange_conf_of_instance(in_force, "MO") == in_force);
	/* The rights are the service's instance's: HK grants MO's client. */
	assert_true(exchange_conf_allowed(in_force, "MO/GOV/M/S", "HK/GOV/M/S/svc", "GET", "/x"));
	assert_false(exchange_conf_allowed(in_force, "MO/GOV/M/S", "HK/GOV/M/S/svc", "POST", "/x"));
	assert_false(exchange_conf_allowed(in_force, "MO/GOV/M/S", "MO/GOV/M/S/svc", "GET", "/x"));
	/* Trust is not transitive: HK's own federation list is not used. */
	assert_null(exchange_conf_of_instance(att[0], "MO"));
	exchange_conf_put(in_force);

	/* An older HK configuration is refused; one signed by another key
	 * than the trusted one is not taken. */
	doc(&d, "HK", 2, 600, NULL, NULL, NULL);
	assert_int_equal(exchange_conf_install_federated(parsed(&d, &hk, "HK", EGOV_OK)), EGOV_ECONFLICT);
	doc(&d, "HK", 9, 600, NULL, NULL, NULL);
	assert_int_equal(exchange_conf_install_federated(parsed(&d, &impostor, "HK", EGOV_OK)), EGOV_ENOTFOUND);
	in_force = exchange_conf_get(NULL);
	assert_true(exchange_conf_allowed(in_force, "MO/GOV/M/S", "HK/GOV/M/S/svc", "GET", "/x"));
	exchange_conf_put(in_force);

	/* An expired HK configuration answers nothing. */
	doc(&d, "HK", 4, 1, "MO/GOV/M/S", NULL, NULL);
	assert_int_equal(exchange_conf_install_federated(parsed(&d, &hk, "HK", EGOV_OK)), EGOV_OK);
	in_force = exchange_conf_get(NULL);
	assert_non_null(exchange_conf_subsystem(in_force, "HK/GOV/M/S"));
	exchange_conf_put(in_force);
	{
		struct timespec ts = {1, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	in_force = exchange_conf_get(NULL);
	assert_null(exchange_conf_subsystem(in_force, "HK/GOV/M/S"));
	assert_false(exchange_conf_allowed(in_force, "MO/GOV/M/S", "HK/GOV/M/S/svc", "GET", "/x"));
	exchange_conf_put(in_force);
	doc(&d, "HK", 6, 600, "MO/GOV/M/S", NULL, NULL);
	assert_int_equal(exchange_conf_install_federated(parsed(&d, &hk, "HK", EGOV_OK)), EGOV_OK);

	/* MO withdraws its trust: HK's configuration is dropped with the
	 * next local configuration, and not taken again. */
	doc(&d, "MO", 6, 600, NULL, NULL, NULL);
	assert_int_equal(exchange_conf_install(parsed(&d, &mo, "MO", EGOV_OK)), EGOV_OK);
	in_force = exchange_conf_get(NULL);
	assert_int_equal(exchange_conf_attached(in_force, att, 4), 0);
	assert_null(exchange_conf_subsystem(in_force, "HK/GOV/M/S"));
	assert_false(exchange_conf_allowed(in_force, "MO/GOV/M/S", "HK/GOV/M/S/svc", "GET", "/x"));
	exchange_conf_put(in_force);
	doc(&d, "HK", 7, 600, "MO/GOV/M/S", NULL, NULL);
	assert_int_equal(exchange_conf_install_federated(parsed(&d, &hk, "HK", EGOV_OK)), EGOV_ENOTFOUND);

	exchange_conf_clear();
	buf_release(&d);
	signer_free(&mo);
	signer_free(&hk);
	signer_free(&impostor);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_registry_trust, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conf_federated, setup, teardown),
	};
	return cmocka_run_group_tests_name("exchange_federation", tests, NULL, NULL);
}
