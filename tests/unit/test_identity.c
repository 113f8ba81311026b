/*
 * test_identity.c: accounts, password policy and hashing, admission
 * control, TOTP (RFC 6238 vectors), recovery codes, session expiry,
 * brute-force delays and the lock, roles and permissions. Storage cases
 * run on every backend (SQLite, and PostgreSQL when EGOV_TEST_PG_URL is set)
 * with the identity clock replaced by a test clock.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/db.h"
#include "core/module.h"
#include "identity/identity.h"
#include "identity/identity_int.h"
#include "notify/notify.h"
#include "testutil.h"
#include "core/banned.h"

static int64_t fake_now;
static int64_t fake_clock(void)
{
	return fake_now;
}

#define SEC 1000000LL

/* ---- pure functions ---------------------------------------------------------- */

static void test_password_policy(void **state)
{
	const char *code = NULL;
	char longpw[200];

	(void)state;
	assert_int_equal(identity_password_policy("short1!", &code), EGOV_EINVAL);
	assert_string_equal(code, "identity.password_too_short");
	assert_int_equal(identity_password_policy("correct horse battery", &code), EGOV_OK);
	assert_null(code);
	/* Characters, not bytes: 8 CJK characters are 24 bytes and enough. */
	assert_int_equal(identity_password_policy("澳門特別行政區政", &code), EGOV_OK);
	assert_int_equal(identity_password_policy("澳門特別行政區", &code), EGOV_EINVAL);
	assert_string_equal(code, "identity.password_too_short");
	memset(longpw, 'k', 128);
	longpw[128] = '\0';
	assert_int_equal(identity_password_policy(longpw, &code), EGOV_OK);
	longpw[128] = 'k';
	longpw[129] = '\0';
	assert_int_equal(identity_password_policy(longpw, &code), EGOV_EINVAL);
	assert_string_equal(code, "identity.password_too_long");
	/* On the list, in any case. */
	assert_int_equal(identity_password_policy("password123", &code), EGOV_EINVAL);
	assert_string_equal(code, "identity.password_common");
	assert_int_equal(identity_password_policy("PassWord1", &code), EGOV_EINVAL);
	assert_string_equal(code, "identity.password_common");
	assert_true(identity_password_is_common("qwertyuiop"));
	assert_false(identity_password_is_common("violet-harbour-lantern"));
	assert_int_equal(identity_password_policy("abc\xff\xfe" "defgh", &code), EGOV_EINVAL);
	assert_string_equal(code, "identity.password_invalid");
}

static void test_hash_verify(void **state)
{
	char hash[128];
	int64_t retry = 0;
	bool ok = true;

	(void)state;
	identity_admission_init(2, 4);
	assert_int_equal(identity_password_hash("violet-harbour-lantern", hash, &retry), EGOV_OK);
	assert_memory_equal(hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31);
	assert_int_equal(identity_password_verify(hash, "violet-harbour-lantern", &ok, &retry), EGOV_OK);
	assert_true(ok);
	assert_int_equal(identity_password_verify(hash, "violet-harbour-lanterN", &ok, &retry), EGOV_OK);
	assert_false(ok);
	/* No hash: the dummy, never a match. */
	assert_int_equal(identity_password_verify(NULL, "violet-harbour-lantern", &ok, &retry), EGOV_OK);
	assert_false(ok);
}

static void *hash_thread(void *arg)
{
	char hash[128];
	int64_t retry = 0;
	egov_err *err = arg;

	*err = identity_password_hash("violet-harbour-lantern", hash, &retry);
	return NULL;
}

static void test_admission_busy(void **state)
{
	pthread_t t[2];
	egov_err e[2];
	identity_admission_stats st;
	char hash[128];
	int64_t retry = 0;
	int i, spins, round;
	bool seen = false;

	(void)state;
	identity_admission_init(1, 1);
	/* One hash running and one waiting fills the slot and the queue; then
	 * a third is refused at once. A hash takes about 10 ms, so on a busy
	 * machine the window can be missed: try a few rounds. */
	for (round = 0; round < 20 && !seen; round++) {
		for (i = 0; i < 2; i++) {
			e[i] = EGOV_EINTERNAL;
			assert_int_equal(pthread_create(&t[i], NULL, hash_thread, &e[i]), 0);
		}
		for (spins = 0; spins < 20000; spins++) {
			identity_admission_stats_get(&st);
			if (st.running == 1 && st.waiting == 1) {
				retry = 0;
				if (identity_password_hash("violet-harbour-lantern", hash, &retry) == EGOV_EBUSY) {
					assert_true(retry >= 1);
					seen = true;
				}
				break;
			}
			if (st.running == 0 && st.waiting == 0 && spins > 0)
				break; /* both done already */
			usleep(100);
		}
		for (i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		assert_int_equal(e[0], EGOV_OK);
		assert_int_equal(e[1], EGOV_OK);
	}
	assert_true(seen);
	identity_admission_stats_get(&st);
	assert_true(st.rejected >= 1);
	identity_admission_init(2, 4);
}

/* Places reserved on the HTTP side count against slots + queue at once,
 * are taken over by the thread that hashes (never refused then), and come
 * back when given up or not used. */
static void *reserved_hash_thread(void *arg)
{
	char hash[128];
	int64_t retry = 0;
	egov_err *err = arg;

	identity_admission_adopt();
	*err = identity_password_hash("violet-harbour-lantern", hash, &retry);
	identity_admission_unadopt(); /* nothing left to give back */
	return NULL;
}

static void test_admission_reservations(void **state)
{
	identity_admission_stats st;
	pthread_t t[2];
	egov_err e[2] = {EGOV_EINTERNAL, EGOV_EINTERNAL};
	char hash[128];
	int64_t retry = 0;

	(void)state;
	identity_admission_init(1, 1);
	/* Two places (one slot, one in the queue), even before any hash runs. */
	assert_true(identity_admission_reserve(&retry));
	assert_true(identity_admission_reserve(&retry));
	retry = 0;
	assert_false(identity_admission_reserve(&retry));
	assert_true(retry >= 1);
	/* Without a place, a hash is refused while the places are taken. */
	assert_int_equal(identity_password_hash("violet-harbour-lantern", hash, &retry), EGOV_EBUSY);
	identity_admission_stats_get(&st);
	assert_int_equal(st.waiting, 2);
	assert_int_equal(st.running, 0);
	/* The holders hash in turn, neither refused. */
	assert_int_equal(pthread_create(&t[0], NULL, reserved_hash_thread, &e[0]), 0);
	assert_int_equal(pthread_create(&t[1], NULL, reserved_hash_thread, &e[1]), 0);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	assert_int_equal(e[0], EGOV_OK);
	assert_int_equal(e[1], EGOV_OK);
	identity_admission_stats_get(&st);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(st.running, 0);
	/* A place given up, and a place adopted but not used, come back. */
	assert_true(identity_admission_reserve(&retry));
	identity_admission_unreserve();
	assert_true(identity_admission_reserve(&retry));
	identity_admission_adopt();
	identity_admission_unadopt();
	identity_admission_stats_get(&st);
	assert_int_equal(st.waiting, 0);
	assert_int_equal(identity_password_hash("violet-harbour-lantern", hash, &retry), EGOV_OK);
	identity_admission_init(2, 4);
}

static void test_totp_vectors(void **state)
{
	const unsigned char *key = (const unsigned char *)"12345678901234567890";
	unsigned char dec[32];
	char enc[64];
	size_t n = 0;

	(void)state;
	/* RFC 6238 appendix B, SHA-1. */
	assert_int_equal(identity_hotp(key, 20, 59 / 30, 8), 94287082u);
	assert_int_equal(identity_hotp(key, 20, 1111111109 / 30, 8), 7081804u);
	assert_int_equal(identity_hotp(key, 20, 1234567890 / 30, 8), 89005924u);
	assert_int_equal(identity_hotp(key, 20, 20000000000LL / 30, 8), 65353130u);
	/* Six digits are the low six of the same truncation. */
	assert_int_equal(identity_hotp(key, 20, 59 / 30, 6), 287082u);
	/* RFC 4226 appendix D, counter 0 and 9. */
	assert_int_equal(identity_hotp(key, 20, 0, 6), 755224u);
	assert_int_equal(identity_hotp(key, 20, 9, 6), 520489u);
	assert_int_equal(identity_base32_encode(key, 20, enc, sizeof enc), EGOV_OK);
	assert_string_equal(enc, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
	assert_int_equal(identity_base32_decode(enc, dec, sizeof dec, &n), EGOV_OK);
	assert_int_equal(n, 20);
	assert_memory_equal(dec, key, 20);
	assert_int_equal(identity_base32_decode("GEZ1", dec, sizeof dec, &n), EGOV_EINVAL);
}

static void test_qr_svg(void **state)
{
	buf b;

	(void)state;
	buf_init(&b, 1 << 20);
	assert_int_equal(identity_qr_svg("otpauth://totp/egov:a%40b.mo?secret=GEZDGNBV&issuer=egov", &b), EGOV_OK);
	assert_non_null(strstr(b.data, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
	assert_non_null(strstr(b.data, "h1v1h-1z"));
	buf_release(&b);
}

static void test_roles_table(void **state)
{
	(void)state;
	assert_true(identity_role_valid("admin"));
	assert_false(identity_role_valid("root"));
	assert_string_equal(identity_role_perms("auditor")[0], "audit.read");
	assert_string_equal(identity_role_perms("notice_editor")[0], "info.notice.write");
	assert_string_equal(identity_role_perms("admin")[0], "*");
}

/* ---- storage, per backend ---------------------------------------------------- */

typedef void (*db_case)(db_conn *c);

static void on_each_backend(db_case fn)
{
	char *dir = test_tmpdir();
	char urls[2][512];
	int n, i;

	assert_non_null(dir);
	n = test_backends(dir, urls);
	for (i = 0; i < n; i++) {
		db *d = NULL;
		db_conn *c = NULL;
		const db_migration *m;
		size_t nm = 0;
		char errmsg[256];
		assert_int_equal(db_open(urls[i], &d, errmsg, sizeof errmsg), EGOV_OK);
		assert_int_equal(db_conn_open(d, &c), EGOV_OK);
		assert_int_equal(test_db_reset(c), 0);
		/* Identity queues mail in notify's outbox. */
		assert_int_equal(db_migrate(c, "notify", notify_module.migrations, notify_module.nmigrations, NULL),
				 EGOV_OK);
		m = identity_module.migrations;
		nm = identity_module.nmigrations;
		assert_int_equal(db_migrate(c, "identity", m, nm, NULL), EGOV_OK);
		fake_now = 1800000000LL * SEC;
		identity_set_clock(fake_clock);
		fn(c);
		identity_set_clock(NULL);
		db_conn_close(c);
		db_close(d);
	}
	test_rmrf(dir);
	free(dir);
}

static void make_account(db_conn *c, const char *email, const char *pw, identity_account *a)
{
	identity_account_new nw = {.kind = IDENTITY_STAFF, .email = email, .display_name = "Test Person",
				   .locale = "en", .password = pw, .email_verified = true};
	const char *code = NULL;
	int64_t retry = 0;

	assert_int_equal(identity_account_create(c, &nw, a, &code, &retry), EGOV_OK);
}

static void case_accounts(db_conn *c)
{
	identity_account a, b;
	identity_account_new nw = {.kind = IDENTITY_RESIDENT, .email = "ANA@Example.MO", .display_name = "Ana",
				   .password = "violet-harbour-lantern"};
	const char *code = NULL;
	int64_t retry = 0;

	assert_int_equal(identity_account_create(c, &nw, &a, &code, &retry), EGOV_OK);
	assert_string_equal(a.email, "ana@example.mo");
	assert_false(a.email_verified);
	assert_true(a.has_password);
	assert_int_equal(identity_account_get_by_email(c, "ana@EXAMPLE.mo", &b), EGOV_OK);
	assert_string_equal(a.id, b.id);
	nw.email = "ana@example.mo";
	assert_int_equal(identity_account_create(c, &nw, &b, &code, &retry), EGOV_ECONFLICT);
	assert_string_equal(code, "identity.email_taken");
	nw.email = "other@example.mo";
	nw.password = "password1";
	assert_int_equal(identity_account_create(c, &nw, &b, &code, &retry), EGOV_EINVAL);
	assert_string_equal(code, "identity.password_common");
	assert_int_equal(identity_account_set_email_verified(c, a.id), EGOV_OK);
	assert_int_equal(identity_account_get(c, a.id, &b), EGOV_OK);
	assert_true(b.email_verified);
}

static void case_login_and_throttle(db_conn *c)
{
	identity_account a, out;
	const char *code = NULL;
	int64_t retry = 0, count = 0;
	bool locked = false, found = false;
	int i;

	make_account(c, "bob@example.mo", "violet-harbour-lantern", &a);
	assert_int_equal(identity_login_password(c, "BOB@example.mo", "violet-harbour-lantern", "10.0.0.1", &out, &code,
						 &retry, &locked),
			 EGOV_OK);
	assert_string_equal(out.id, a.id);
	/* Unknown e-mail and wrong password: one answer. */
	assert_int_equal(identity_login_password(c, "nobody@example.mo", "x-y-z-w-v", "10.0.0.1", &out, &code, &retry,
						 &locked),
			 EGOV_EAUTH);
	assert_string_equal(code, "identity.bad_credentials");
	for (i = 1; i <= 4; i++) {
		assert_int_equal(identity_login_password(c, "bob@example.mo", "wrong-password", "10.0.0.1", &out, &code,
							 &retry, &locked),
				 EGOV_EAUTH);
		assert_string_equal(code, "identity.bad_credentials");
	}
	/* The 5th failure starts the delays: 1 s. */
	assert_int_equal(identity_login_password(c, "bob@example.mo", "wrong-password", "10.0.0.1", &out, &code, &retry,
						 &locked),
			 EGOV_EAUTH);
	assert_int_equal(identity_login_password(c, "bob@example.mo", "violet-harbour-lantern", "10.0.0.1", &out, &code,
						 &retry, &locked),
			 EGOV_EBUSY);
	assert_string_equal(code, "identity.throttled");
	assert_int_equal(retry, 1000);
	fake_now += 1 * SEC + 1;
	assert_int_equal(identity_login_password(c, "bob@example.mo", "wrong-password", "10.0.0.1", &out, &code, &retry,
						 &locked),
			 EGOV_EAUTH);
	assert_int_equal(identity_throttle_check(c, "bob@example.mo", "10.0.0.1", &retry), EGOV_EBUSY);
	assert_int_equal(retry, 2000);
	/* The delay is the failing client's: the owner elsewhere is not held
	 * up by a stranger's guesses (ASVS 2.2.1). */
	assert_int_equal(identity_throttle_check(c, "bob@example.mo", "10.0.0.2", &retry), EGOV_OK);
	fake_now += 2 * SEC + 1;
	/* A success clears the account's counter. */
	assert_int_equal(identity_login_password(c, "bob@example.mo", "violet-harbour-lantern", "10.0.0.1", &out, &code,
						 &retry, &locked),
			 EGOV_OK);
	assert_int_equal(identity_throttle_check(c, "bob@example.mo", "10.0.0.1", &retry), EGOV_OK);
	assert_int_equal(identity_throttle_check(c, "bob@example.mo", "10.0.0.2", &retry), EGOV_OK);
	/* The lock at 100 consecutive failures, with mail to the owner. */
	for (i = 1; i <= IDENTITY_LOCK_FAILURES; i++) {
		assert_int_equal(identity_throttle_fail(c, "bob@example.mo", a.id, "10.0.0.3", &locked), EGOV_OK);
		assert_int_equal(locked, i == IDENTITY_LOCK_FAILURES);
		if (i < IDENTITY_LOCK_FAILURES)
			fake_now += IDENTITY_THROTTLE_CAP_S * SEC;
	}
	assert_int_equal(identity_throttle_check(c, "bob@example.mo", "10.0.0.3", &retry), EGOV_EBUSY);
	assert_int_equal(retry, (int64_t)IDENTITY_THROTTLE_CAP_S * 1000);
	/* Elsewhere no delay: the lock itself answers (to the right password). */
	assert_int_equal(identity_throttle_check(c, "bob@example.mo", "10.0.0.9", &retry), EGOV_OK);
	fake_now += IDENTITY_THROTTLE_CAP_S * SEC + 1;
	assert_int_equal(identity_login_password(c, "bob@example.mo", "violet-harbour-lantern", "10.0.0.1", &out, &code,
						 &retry, &locked),
			 EGOV_EPERM);
	assert_string_equal(code, "identity.locked");
	{
		db_param p[] = {DBP_S("bob@example.mo")};
		assert_int_equal(db_query_int(c,
					      "SELECT COUNT(*) FROM notify_outbox WHERE to_addr = ? AND template = 'account_locked'",
					      p, 1, &count, &found),
				 EGOV_OK);
		assert_int_equal(count, 1);
	}
	/* A new password unlocks. */
	assert_int_equal(identity_password_set(c, a.id, "amber-quartz-meadow", &code, &retry), EGOV_OK);
	assert_int_equal(identity_login_password(c, "bob@example.mo", "amber-quartz-meadow", "10.0.0.1", &out, &code,
						 &retry, &locked),
			 EGOV_OK);
}

/* The address throttle counts an IPv6 client by its /64, and a client's
 * failures on many e-mails, not the e-mails' owners. */
static void case_throttle_keys(db_conn *c)
{
	char ip[64], email[64];
	int64_t retry = 0;
	bool locked = false;
	int i;

	for (i = 1; i <= IDENTITY_THROTTLE_IP_FREE; i++) {
		snprintf(ip, sizeof ip, "2001:db8:1:2::%x", i);
		snprintf(email, sizeof email, "guess%d@example.mo", i);
		assert_int_equal(identity_throttle_fail(c, email, NULL, ip, &locked), EGOV_OK);
	}
	/* Another address of the same /64, another e-mail: held up. */
	assert_int_equal(identity_throttle_check(c, "new@example.mo", "2001:db8:1:2:ffff::1", &retry), EGOV_EBUSY);
	assert_int_equal(retry, 1000);
	/* Another /64, and each guessed e-mail from elsewhere: free. */
	assert_int_equal(identity_throttle_check(c, "new@example.mo", "2001:db8:1:3::1", &retry), EGOV_OK);
	assert_int_equal(identity_throttle_check(c, "guess1@example.mo", "192.0.2.1", &retry), EGOV_OK);
	/* An e-mail that reads like a scope is only an e-mail. */
	for (i = 0; i < IDENTITY_THROTTLE_FREE; i++)
		assert_int_equal(identity_throttle_fail(c, "x ip:192.0.2.1", NULL, "198.51.100.1", &locked), EGOV_OK);
	assert_int_equal(identity_throttle_check(c, "x", "192.0.2.1", &retry), EGOV_OK);
	assert_int_equal(identity_throttle_check(c, "x ip:192.0.2.1", "198.51.100.1", &retry), EGOV_EBUSY);
}

static void case_sessions(db_conn *c)
{
	identity_account a;
	identity_session s, got;
	char tok[IDENTITY_TOKEN_LEN + 1], tok2[IDENTITY_TOKEN_LEN + 1];
	int64_t n = 0;
	int i;

	make_account(c, "cy@example.mo", NULL, &a);
	assert_int_equal(identity_session_create(c, a.id, 1, false, "10.0.0.1", "test", tok, &s), EGOV_OK);
	assert_int_equal(strlen(tok), IDENTITY_TOKEN_LEN);
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_OK);
	assert_string_equal(got.id, s.id);
	assert_string_equal(got.csrf, s.csrf);
	/* Idle: 30 min is fine, a bit more is not. */
	fake_now += IDENTITY_SESSION_IDLE_S * SEC;
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_OK);
	fake_now += IDENTITY_SESSION_IDLE_S * SEC + SEC;
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_EAUTH);
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_EAUTH);
	/* Absolute: 12 h for acr 2 even when used every 20 min. */
	assert_int_equal(identity_session_create(c, a.id, 2, false, "10.0.0.1", "test", tok, &s), EGOV_OK);
	for (i = 0; i < 35; i++) {
		fake_now += 20 * 60 * SEC;
		assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_OK);
	}
	fake_now += 20 * 60 * SEC;
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_EAUTH);
	/* 24 h for acr 1. */
	assert_int_equal(identity_session_create(c, a.id, 1, false, "10.0.0.1", "test", tok, &s), EGOV_OK);
	for (i = 0; i < 71; i++) {
		fake_now += 20 * 60 * SEC;
		assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_OK);
	}
	fake_now += 20 * 60 * SEC;
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_EAUTH);
	/* Revoke one, revoke all but the current. */
	assert_int_equal(identity_session_create(c, a.id, 1, false, "10.0.0.1", "a", tok, &s), EGOV_OK);
	assert_int_equal(identity_session_create(c, a.id, 1, false, "10.0.0.2", "b", tok2, &got), EGOV_OK);
	assert_int_equal(identity_session_revoke(c, "someone-else", s.id), EGOV_ENOTFOUND);
	assert_int_equal(identity_session_revoke_all(c, a.id, s.id, &n), EGOV_OK);
	assert_int_equal(n, 1);
	assert_int_equal(identity_session_lookup(c, tok2, &got), EGOV_EAUTH);
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_OK);
	assert_int_equal(identity_session_revoke(c, a.id, s.id), EGOV_OK);
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_EAUTH);
	/* A disabled account's sessions die. */
	assert_int_equal(identity_session_create(c, a.id, 1, false, "10.0.0.1", "a", tok, &s), EGOV_OK);
	assert_int_equal(identity_account_disable(c, a.id), EGOV_OK);
	assert_int_equal(identity_session_lookup(c, tok, &got), EGOV_EAUTH);
}

static void code_now(const char *secret, int64_t offset_steps, char out[8])
{
	unsigned char key[32];
	size_t n = 0;

	assert_int_equal(identity_base32_decode(secret, key, sizeof key, &n), EGOV_OK);
	snprintf(out, 8, "%06u",
		 identity_hotp(key, n, (uint64_t)(fake_now / SEC / IDENTITY_TOTP_STEP_S + offset_steps), 6));
}

static void case_totp_recovery(db_conn *c)
{
	identity_account a;
	char secret[IDENTITY_TOTP_SECRET_B32 + 1], code[8];
	char codes[IDENTITY_RECOVERY_CODES][IDENTITY_RECOVERY_CODE_LEN + 1];
	buf uri, svg;
	int left = -1;

	make_account(c, "dee@example.mo", NULL, &a);
	buf_init(&uri, 4096);
	buf_init(&svg, 1 << 20);
	assert_int_equal(identity_totp_enrol_begin(c, a.id, secret, &uri, &svg), EGOV_OK);
	assert_int_equal(strlen(secret), 32);
	assert_non_null(strstr(uri.data, "otpauth://totp/egov:dee@example.mo?secret="));
	assert_non_null(strstr(svg.data, "<svg"));
	buf_release(&uri);
	buf_release(&svg);
	assert_int_equal(identity_totp_enrol_confirm(c, a.id, "000000", codes) == EGOV_EINVAL ||
				 identity_totp_enrol_confirm(c, a.id, "000001", codes) == EGOV_EINVAL,
			 1);
	code_now(secret, 0, code);
	assert_int_equal(identity_totp_enrol_confirm(c, a.id, code, codes), EGOV_OK);
	assert_int_equal(strlen(codes[0]), IDENTITY_RECOVERY_CODE_LEN);
	/* The confirming code's step is used: replay refused. */
	assert_int_equal(identity_totp_verify(c, a.id, code), EGOV_EINVAL);
	fake_now += IDENTITY_TOTP_STEP_S * SEC;
	code_now(secret, 0, code);
	assert_int_equal(identity_totp_verify(c, a.id, code), EGOV_OK);
	assert_int_equal(identity_totp_verify(c, a.id, code), EGOV_EINVAL);
	/* One step of clock skew either way is accepted, two are not. */
	fake_now += 3 * IDENTITY_TOTP_STEP_S * SEC;
	code_now(secret, 2, code);
	assert_int_equal(identity_totp_verify(c, a.id, code), EGOV_EINVAL);
	code_now(secret, -1, code);
	assert_int_equal(identity_totp_verify(c, a.id, code), EGOV_OK);
	code_now(secret, 1, code);
	assert_int_equal(identity_totp_verify(c, a.id, code), EGOV_OK);
	/* Recovery codes: single use, case and dash insensitive. */
	{
		char upper[16];
		size_t i;
		for (i = 0; codes[3][i]; i++)
			upper[i] = codes[3][i] >= 'a' && codes[3][i] <= 'z' ? (char)(codes[3][i] - 32) : codes[3][i];
		upper[i] = '\0';
		assert_int_equal(identity_recovery_use(c, a.id, upper, &left), EGOV_OK);
	}
	assert_int_equal(left, IDENTITY_RECOVERY_CODES - 1);
	assert_int_equal(identity_recovery_use(c, a.id, codes[3], &left), EGOV_EINVAL);
	assert_int_equal(identity_recovery_use(c, a.id, "aaaaa-aaaaa", &left), EGOV_EINVAL);
	assert_int_equal(identity_recovery_regenerate(c, a.id, codes), EGOV_OK);
	assert_int_equal(identity_recovery_use(c, a.id, codes[0], &left), EGOV_OK);
	assert_int_equal(left, IDENTITY_RECOVERY_CODES - 1);
	assert_int_equal(identity_totp_disable(c, a.id), EGOV_OK);
	assert_int_equal(identity_recovery_use(c, a.id, codes[1], &left), EGOV_EINVAL);
}

static void case_roles(db_conn *c)
{
	identity_account ed, adm, adm2;
	bool ok = false;

	make_account(c, "ed@example.mo", NULL, &ed);
	make_account(c, "adm@example.mo", NULL, &adm);
	make_account(c, "adm2@example.mo", NULL, &adm2);
	assert_int_equal(identity_dept_create(c, "GOV", "Government", NULL), EGOV_OK);
	assert_int_equal(identity_dept_create(c, "IAM", "Municipal Affairs", "GOV"), EGOV_OK);
	assert_int_equal(identity_dept_create(c, "IAM-FS", "Food Safety", "IAM"), EGOV_OK);
	assert_int_equal(identity_dept_create(c, "X", "Orphan", "NOPE"), EGOV_ENOTFOUND);
	assert_int_equal(identity_dept_create(c, "IAM", "Again", NULL), EGOV_ECONFLICT);
	assert_int_equal(identity_dept_create(c, "bad code", "Bad", NULL), EGOV_EINVAL);
	assert_int_equal(identity_role_grant(c, ed.id, "notice_editor", "IAM"), EGOV_OK);
	assert_int_equal(identity_role_grant(c, ed.id, "notice_editor", "IAM"), EGOV_ECONFLICT);
	assert_int_equal(identity_role_grant(c, ed.id, "wizard", "IAM"), EGOV_EINVAL);
	assert_int_equal(identity_role_grant(c, ed.id, "auditor", "NOPE"), EGOV_ENOTFOUND);
	assert_int_equal(identity_permission_has(c, ed.id, "info.notice.write", NULL, &ok), EGOV_OK);
	assert_true(ok);
	assert_int_equal(identity_permission_has(c, ed.id, "info.notice.write", "IAM-FS", &ok), EGOV_OK);
	assert_true(ok);
	assert_int_equal(identity_permission_has(c, ed.id, "info.notice.write", "GOV", &ok), EGOV_OK);
	assert_false(ok);
	assert_int_equal(identity_permission_has(c, ed.id, "audit.read", NULL, &ok), EGOV_OK);
	assert_false(ok);
	/* admin in a department: everything there, not everything everywhere. */
	assert_int_equal(identity_role_grant(c, adm.id, "admin", "IAM"), EGOV_OK);
	assert_int_equal(identity_permission_has(c, adm.id, "audit.read", NULL, &ok), EGOV_OK);
	assert_false(ok);
	assert_int_equal(identity_permission_has(c, adm.id, "audit.read", "IAM-FS", &ok), EGOV_OK);
	assert_true(ok);
	assert_int_equal(identity_role_grant(c, adm2.id, "admin", "GOV"), EGOV_OK);
	assert_int_equal(identity_permission_has(c, adm2.id, "anything.at.all", NULL, &ok), EGOV_OK);
	assert_true(ok);
	assert_int_equal(identity_role_revoke(c, ed.id, "notice_editor", "IAM"), EGOV_OK);
	assert_int_equal(identity_role_revoke(c, ed.id, "notice_editor", "IAM"), EGOV_ENOTFOUND);
	assert_int_equal(identity_permission_has(c, ed.id, "info.notice.write", NULL, &ok), EGOV_OK);
	assert_false(ok);
	assert_int_equal(identity_account_disable(c, adm2.id), EGOV_OK);
	assert_int_equal(identity_permission_has(c, adm2.id, "anything.at.all", NULL, &ok), EGOV_OK);
	assert_false(ok);
}

static void case_tokens(db_conn *c)
{
	identity_account a;
	char tok[IDENTITY_TOKEN_LEN + 1], id[37];

	make_account(c, "tok@example.mo", NULL, &a);
	assert_int_equal(identity_token_issue(c, IDENTITY_TOKEN_VERIFY_EMAIL, a.id, IDENTITY_VERIFY_TTL_S, tok), EGOV_OK);
	assert_int_equal(identity_token_consume(c, IDENTITY_TOKEN_RESET_PASSWORD, tok, id), EGOV_EINVAL);
	assert_int_equal(identity_token_consume(c, IDENTITY_TOKEN_VERIFY_EMAIL, tok, id), EGOV_OK);
	assert_string_equal(id, a.id);
	assert_int_equal(identity_token_consume(c, IDENTITY_TOKEN_VERIFY_EMAIL, tok, id), EGOV_EINVAL);
	assert_int_equal(identity_token_issue(c, IDENTITY_TOKEN_RESET_PASSWORD, a.id, IDENTITY_RESET_TTL_S, tok), EGOV_OK);
	fake_now += (IDENTITY_RESET_TTL_S + 1) * SEC;
	assert_int_equal(identity_token_consume(c, IDENTITY_TOKEN_RESET_PASSWORD, tok, id), EGOV_EINVAL);
}

static void test_accounts(void **state) { (void)state; on_each_backend(case_accounts); }
static void test_login_throttle_lock(void **state) { (void)state; on_each_backend(case_login_and_throttle); }
static void test_throttle_keys(void **state) { (void)state; on_each_backend(case_throttle_keys); }
static void test_sessions(void **state) { (void)state; on_each_backend(case_sessions); }
static void test_totp_recovery(void **state) { (void)state; on_each_backend(case_totp_recovery); }
static void test_roles(void **state) { (void)state; on_each_backend(case_roles); }
static void test_tokens(void **state) { (void)state; on_each_backend(case_tokens); }

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_policy),
		cmocka_unit_test(test_hash_verify),
		cmocka_unit_test(test_admission_busy),
		cmocka_unit_test(test_admission_reservations),
		cmocka_unit_test(test_totp_vectors),
		cmocka_unit_test(test_qr_svg),
		cmocka_unit_test(test_roles_table),
		cmocka_unit_test(test_accounts),
		cmocka_unit_test(test_login_throttle_lock),
		cmocka_unit_test(test_throttle_keys),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_totp_recovery),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_tokens),
	};
	return cmocka_run_group_tests_name("identity", tests, NULL, NULL);
}
