/*
 * identity_password.c: password policy, Argon2id hashing behind admission
 * control, brute-force counters and the password step of a login.
 *
 * Invariants:
 * - At most `slots` hashes run at once and at most `queue_max` callers wait
 *   (counting the places reserved on the HTTP worker for requests on their
 *   way to a pool thread); anyone beyond is refused at once (EGOV_EBUSY)
 *   with an estimate of when a slot frees, so memory stays bounded at
 *   slots x 19 MiB under any load.
 * - Each slot keeps its Argon2id working memory (19 MiB, made on the slot's
 *   first hash) and lends it to libsodium for each hash (core/lend.h), so a
 *   hash costs the computation and not also the kernel mapping, faulting,
 *   zeroing and freeing 4,864 fresh pages. The area is wiped after every
 *   hash. Resident memory therefore holds one area per slot once slots
 *   have been used: the bound above, kept instead of re-made.
 * - An unknown e-mail costs one Argon2id verify, like a known one, and is
 *   counted under the same throttle, so neither timing nor throttling tells
 *   whether an account exists.
 * - The brute-force counters are keyed so that one client cannot lock
 *   others out (ASVS 2.2.1): the delays count failures per client address
 *   (an IPv6 client by its /64) and per e-mail *from that address*, so a
 *   stranger's guesses slow only the stranger, never the owner; only the
 *   lock at IDENTITY_LOCK_FAILURES consecutive failures counts per account
 *   from everywhere, which bounds the guesses one account can take.
 * - The common-password list (common-passwords.txt, embedded) is read once
 *   into a sorted array of lower-cased entries.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "core/lend.h"
#include "core/netaddr.h"
#include "core/utf8.h"
#include "core/timeutil.h"
#include "identity/identity_int.h"
#include "core/banned.h"

__asm__(".section .rodata\n"
	".global identity_common_passwords\n"
	"identity_common_passwords:\n"
	".incbin \"src/identity/common-passwords.txt\"\n"
	".global identity_common_passwords_end\n"
	"identity_common_passwords_end:\n"
	".byte 0\n"
	".previous\n");

extern const char identity_common_passwords[];
extern const char identity_common_passwords_end[];

/* ---- the common-password list ------------------------------------------- */

static char **common;
static size_t ncommon;
static pthread_once_t common_once = PTHREAD_ONCE_INIT;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_common(void)
{
	const char *p = identity_common_passwords, *end = identity_common_passwords_end;
	size_t cap = 0, n = 0;
	char **v = NULL;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len > 0 && !(len >= 2 && p[0] == '#' && p[1] == '!')) {
			char *s;
			if (n == cap) {
				char **nv = realloc(v, (cap ? cap * 2 : 4096) * sizeof *v);
				if (!nv)
					break;
				v = nv;
				cap = cap ? cap * 2 : 4096;
			}
			s = strndup(p, len);
			if (!s)
				break;
			identity_ascii_lower(s);
			v[n++] = s;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (v)
		qsort(v, n, sizeof *v, cmp_str);
	common = v;
	ncommon = n;
}

int identity_password_is_common(const char *pw)
{
	char low[IDENTITY_PASSWORD_BYTES_MAX + 1];
	const char *key = low;

	if (strlen(pw) > IDENTITY_PASSWORD_BYTES_MAX)
		return 0;
	pthread_once(&common_once, load_common);
	identity_copy(low, sizeof low, pw);
	identity_ascii_lower(low);
	return common && bsearch(&key, common, ncommon, sizeof *common, cmp_str) != NULL;
}


egov_err identity_password_policy(const char *pw, const char **code)
{
	size_t chars;

	*code = NULL;
	if (!pw) {
		*code = "identity.password_too_short";
		return EGOV_EINVAL;
	}
	if (strlen(pw) > IDENTITY_PASSWORD_BYTES_MAX) {
		*code = "identity.password_too_long";
		return EGOV_EINVAL;
	}
	if (!utf8_valid_str(pw)) {
		*code = "identity.password_invalid";
		return EGOV_EINVAL;
	}
	chars = identity_utf8_len(pw);
	if (chars < IDENTITY_PASSWORD_MIN)
		*code = "identity.password_too_short";
	else if (chars > IDENTITY_PASSWORD_MAX)
		*code = "identity.password_too_long";
	else if (identity_password_is_common(pw))
		*code = "identity.password_common";
	return *code ? EGOV_EINVAL : EGOV_OK;
}

/* ---- admission control --------------------------------------------------- */

static pthread_mutex_t adm_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t adm_cv = PTHREAD_COND_INITIALIZER;
static int adm_slots, adm_queue_max, adm_running, adm_waiting;
static uint64_t adm_admitted, adm_rejected, adm_lent;
static int64_t adm_mean_us = 50000; /* a first guess until measured */
static bool slot_busy[IDENTITY_HASH_SLOTS_MAX];

static int clamp_slots(int n)
{
	return n < 1 ? 1 : n > IDENTITY_HASH_SLOTS_MAX ? IDENTITY_HASH_SLOTS_MAX : n;
}

static void admission_defaults_locked(void)
{
	if (adm_slots == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		adm_slots = clamp_slots(n > 0 ? (int)n : 1);
		adm_queue_max = 2 * adm_slots;
	}
}

/* sodium_init() picks libsodium's Argon2 implementation for this CPU
 * (AVX2/AVX-512); without it every hash runs the portable code, measured
 * 1.4-1.7x slower. Idempotent and thread-safe; called before any hash. */
static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static bool sodium_ok;

static void sodium_setup(void)
{
	sodium_ok = sodium_init() >= 0; /* fails only without a random source */
}

void identity_admission_init(int slots, int queue)
{
	pthread_once(&sodium_once, sodium_setup);
	pthread_mutex_lock(&adm_mu);
	if (slots <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		slots = n > 0 ? (int)n : 1;
	}
	adm_slots = clamp_slots(slots);
	adm_queue_max = queue > 0 ? queue : 2 * adm_slots;
	pthread_cond_broadcast(&adm_cv);
	pthread_mutex_unlock(&adm_mu);
}

void identity_admission_stats_get(identity_admission_stats *out)
{
	pthread_mutex_lock(&adm_mu);
	admission_defaults_locked();
	out->slots = adm_slots;
	out->queue_max = adm_queue_max;
	out->running = adm_running;
	out->waiting = adm_waiting;
	out->admitted = adm_admitted;
	out->rejected = adm_rejected;
	out->kept_memory = adm_lent;
	out->mean_hash_us = adm_mean_us;
	pthread_mutex_unlock(&adm_mu);
}

/* Everyone ahead must finish first: the queue plus the running, spread
 * over the slots. */
static int64_t retry_ms_locked(void)
{
	int64_t ahead = adm_waiting + adm_running;
	int64_t ms = (ahead * adm_mean_us / adm_slots + 999) / 1000;
	return ms < 1 ? 1 : ms;
}

/* A reservation is a place in the queue taken before the request reaches
 * the thread that will hash (identity_admission_reserve, on the HTTP
 * worker): it counts as waiting from then on, so requests on their way to
 * a pool thread are not let in beyond the queue, and every refusal is made
 * there, at once. The thread that then hashes adopts it (a thread-local
 * flag): its admit() takes a slot without being refused again. */
static _Thread_local bool tl_reserved;

bool identity_admission_reserve(int64_t *retry_after_ms)
{
	bool ok;

	pthread_once(&sodium_once, sodium_setup);
	pthread_mutex_lock(&adm_mu);
	admission_defaults_locked();
	ok = adm_running + adm_waiting < adm_slots + adm_queue_max;
	if (ok) {
		adm_waiting++;
	} else {
		if (retry_after_ms)
			*retry_after_ms = retry_ms_locked();
		adm_rejected++;
	}
	pthread_mutex_unlock(&adm_mu);
	return ok;
}

void identity_admission_unreserve(void)
{
	pthread_mutex_lock(&adm_mu);
	adm_waiting--;
	pthread_cond_signal(&adm_cv);
	pthread_mutex_unlock(&adm_mu);
}

void identity_admission_adopt(void)
{
	tl_reserved = true;
}

void identity_admission_unadopt(void)
{
	if (tl_reserved) {
		tl_reserved = false;
		identity_admission_unreserve();
	}
}

/* Takes a slot (*slot, its index), waiting in the queue if there is room
 * in it, or, holding a reservation, in the place it keeps. A free index
 * below adm_slots always exists once running < adm_slots: the busy ones
 * below it are at most the running. */
static egov_err admit(int *slot, int64_t *retry_after_ms)
{
	egov_err err = EGOV_OK;
	bool reserved = tl_reserved;
	int i;

	pthread_once(&sodium_once, sodium_setup);
	if (!sodium_ok)
		return EGOV_EINTERNAL;
	tl_reserved = false;
	pthread_mutex_lock(&adm_mu);
	admission_defaults_locked();
	if (!reserved && adm_running + adm_waiting >= adm_slots + adm_queue_max) {
		if (retry_after_ms)
			*retry_after_ms = retry_ms_locked();
		adm_rejected++;
		err = EGOV_EBUSY;
		goto out;
	}
	if (!reserved)
		adm_waiting++;
	while (adm_running >= adm_slots)
		pthread_cond_wait(&adm_cv, &adm_mu);
	adm_waiting--;
	adm_running++;
	adm_admitted++;
	for (i = 0; i < adm_slots && slot_busy[i]; i++)
		;
	slot_busy[i] = true;
	*slot = i;
out:
	pthread_mutex_unlock(&adm_mu);
	return err;
}

static void release(int slot, int64_t took_us, bool lent)
{
	pthread_mutex_lock(&adm_mu);
	adm_running--;
	slot_busy[slot] = false;
	if (lent)
		adm_lent++;
	/* Exponential moving average, weight 1/8. */
	adm_mean_us += (took_us - adm_mean_us) / 8;
	if (adm_mean_us < 1000)
		adm_mean_us = 1000;
	pthread_cond_signal(&adm_cv);
	pthread_mutex_unlock(&adm_mu);
}

/* Runs one libsodium call in the slot the caller holds, with the slot's
 * kept working memory lent to it (made on first use; without it libsodium
 * maps its own, as it would anyway). */
typedef struct slot_call {
	const char *hash; /* verify against this; NULL: make a new hash */
	const char *pw;
	char *out; /* new hash, crypto_pwhash_STRBYTES */
	int rc;
	bool lent;
	int64_t took_us;
} slot_call;

static lend_area slot_area[IDENTITY_HASH_SLOTS_MAX]; /* each used only by its slot's holder */

static void run_in_slot(int slot, slot_call *j)
{
	lend_area *a = &slot_area[slot];
	int64_t t0 = time_mono_us();

	if (!a->base && lend_supported())
		(void)lend_area_alloc(a, IDENTITY_ARGON2_MEMLIMIT);
	lend_begin(a);
	if (j->hash)
		j->rc = crypto_pwhash_str_verify(j->hash, j->pw, strlen(j->pw));
	else
		j->rc = crypto_pwhash_str_alg(j->out, j->pw, strlen(j->pw), IDENTITY_ARGON2_OPSLIMIT,
					      IDENTITY_ARGON2_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13);
	j->lent = lend_end();
	j->took_us = time_mono_us() - t0;
}

egov_err identity_password_hash(const char *pw, char out[128], int64_t *retry_after_ms)
{
	slot_call j = {.pw = pw, .out = out};
	int slot = 0;
	egov_err err;

	if ((err = admit(&slot, retry_after_ms)))
		return err;
	run_in_slot(slot, &j);
	release(slot, j.took_us, j.lent);
	return j.rc == 0 ? EGOV_OK : EGOV_ENOMEM;
}

static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void make_dummy(void)
{
	char pw[IDENTITY_TOKEN_LEN + 1];

	/* If this fails the dummy stays empty: verify then fails fast, which
	 * only leaks timing while the machine is out of memory anyway. */
	if (identity_random_token(pw) != EGOV_OK ||
	    crypto_pwhash_str_alg(dummy_hash, pw, strlen(pw), IDENTITY_ARGON2_OPSLIMIT, IDENTITY_ARGON2_MEMLIMIT,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		dummy_hash[0] = '\0';
	sodium_memzero(pw, sizeof pw);
}

egov_err identity_password_verify(const char *hash, const char *pw, bool *ok, int64_t *retry_after_ms)
{
	slot_call j = {.pw = pw};
	int slot = 0;
	egov_err err;

	*ok = false;
	if (!hash) {
		pthread_once(&dummy_once, make_dummy);
		hash = dummy_hash;
	}
	j.hash = hash;
	if ((err = admit(&slot, retry_after_ms)))
		return err;
	run_in_slot(slot, &j);
	release(slot, j.took_us, j.lent);
	*ok = j.rc == 0 && hash != dummy_hash;
	return EGOV_OK;
}

/* ---- brute force ---------------------------------------------------------- */

#define DAY_US (24LL * 3600 * 1000000)

/* The throttle's scopes (identity_throttle.scope):
 *   "acct:EMAIL"          consecutive failures of the account, from anywhere:
 *                         the lock; never a delay
 *   "ip:NET"              failures from a client (IPv6: its /64): delays from
 *                         the IDENTITY_THROTTLE_IP_FREE-th
 *   "ip:NET acct:EMAIL"   failures on one e-mail from that client: delays
 *                         from the IDENTITY_THROTTLE_FREE-th
 * A client's address is written by us without spaces, so no e-mail a client
 * types can make one scope read as another. */
#define SCOPE_MAX (80 + IDENTITY_EMAIL_MAX + 8 + 2) /* "ip:NET" " " "acct:EMAIL" */

static void scope_for_email(const char *email, char *out, size_t n)
{
	char low[IDENTITY_EMAIL_MAX + 1];

	identity_copy(low, sizeof low, email ? email : "");
	identity_ascii_lower(low);
	snprintf(out, n, "acct:%s", low);
}

/* A client's network: the address itself for IPv4, its /64 for IPv6 (one
 * subscriber's, who could otherwise take a new address per guess). */
static void scope_for_ip(const char *ip, char *out, size_t n)
{
	char net[NETADDR_TEXT_MAX];
	netaddr a, an;

	if (ip && netaddr_parse(ip, strlen(ip), &a)) {
		netaddr_client_net(&a, &an);
		netaddr_format(&an, net);
		snprintf(out, n, "ip:%s", net);
	} else {
		snprintf(out, n, "ip:%.47s", ip ? ip : "");
	}
}

static void scope_for_pair(const char *ipscope, const char *acctscope, char *out, size_t n)
{
	snprintf(out, n, "%s %s", ipscope, acctscope);
}

static int64_t delay_us(int64_t failures, int free_n)
{
	int64_t s;

	if (failures < free_n)
		return 0;
	s = failures - free_n >= 20 ? IDENTITY_THROTTLE_CAP_S : (int64_t)1 << (failures - free_n);
	if (s > IDENTITY_THROTTLE_CAP_S)
		s = IDENTITY_THROTTLE_CAP_S;
	return s * 1000000;
}

/* The later blocked_until of this client's counters (its address's and its
 * e-mail's from that address), and whether the e-mail has a counter at all
 * (a login that succeeds must then reset it; without one it need not
 * write). The account-wide counter never blocks: see the file comment. */
static egov_err throttle_state(db_conn *c, const char *email, const char *ip, int64_t *until, bool *acct_row)
{
	char sa[IDENTITY_EMAIL_MAX + 8], si[80], sp[SCOPE_MAX];
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	*until = 0;
	*acct_row = false;
	scope_for_email(email, sa, sizeof sa);
	scope_for_ip(ip, si, sizeof si);
	scope_for_pair(si, sa, sp, sizeof sp);
	{
		db_param p[] = {DBP_S(sa), DBP_S(si), DBP_S(sp)};
		if ((err = db_query(c, "SELECT scope, blocked_until FROM identity_throttle WHERE scope IN (?, ?, ?)", p,
				    3, &rows)))
			return err;
	}
	while (!(err = db_rows_next(rows, &has)) && has) {
		const char *scope = db_rows_text(rows, 0);
		int64_t b = db_rows_int(rows, 1);
		if (scope && (strcmp(scope, sa) == 0 || strcmp(scope, sp) == 0)) {
			*acct_row = true;
			if (strcmp(scope, sa) == 0)
				continue;
		}
		if (b > *until)
			*until = b;
	}
	db_rows_free(rows);
	return err;
}

egov_err identity_throttle_check(db_conn *c, const char *email, const char *ip, int64_t *retry_after_ms)
{
	int64_t until = 0, now = identity_now_us();
	bool acct_row = false;
	egov_err err;

	if ((err = throttle_state(c, email, ip, &until, &acct_row)))
		return err;
	if (until > now) {
		if (retry_after_ms)
			*retry_after_ms = (until - now + 999) / 1000;
		return EGOV_EBUSY;
	}
	return EGOV_OK;
}

/* Counts one failure for a scope; *failures receives the new count. */
static egov_err count_failure(db_conn *c, const char *scope, int free_n, int64_t *failures)
{
	int64_t now = identity_now_us();
	bool found = false;
	egov_err err;

	{
		db_param p[] = {DBP_S(scope), DBP_I(now), DBP_I(now - DAY_US), DBP_I(now)};
		err = db_exec(c,
			      "INSERT INTO identity_throttle (scope, failures, last_failure, blocked_until)"
			      " VALUES (?, 1, ?, 0) ON CONFLICT (scope) DO UPDATE SET"
			      " failures = CASE WHEN identity_throttle.last_failure < ? THEN 1"
			      " ELSE identity_throttle.failures + 1 END, last_failure = ?",
			      p, 4, NULL);
	}
	if (err)
		return err;
	{
		db_param p[] = {DBP_S(scope)};
		err = db_query_int(c, "SELECT failures FROM identity_throttle WHERE scope = ?", p, 1, failures,
				   &found);
	}
	if (err || !found)
		return err;
	{
		db_param p[] = {DBP_I(now + delay_us(*failures, free_n)), DBP_S(scope)};
		err = db_exec(c, "UPDATE identity_throttle SET blocked_until = ? WHERE scope = ?", p, 2, NULL);
	}
	return err;
}

egov_err identity_throttle_fail(db_conn *c, const char *email, const char *account_id, const char *ip,
				bool *locked_now)
{
	char sa[IDENTITY_EMAIL_MAX + 8], si[80], sp[SCOPE_MAX];
	int64_t fa = 0, fi = 0, fp = 0, changed = 0;
	egov_err err;

	if (locked_now)
		*locked_now = false;
	scope_for_email(email, sa, sizeof sa);
	scope_for_ip(ip, si, sizeof si);
	scope_for_pair(si, sa, sp, sizeof sp);
	/* The account-wide count only counts (toward the lock): a free
	 * allowance it never reaches. */
	if ((err = count_failure(c, sa, INT32_MAX, &fa)) ||
	    (err = count_failure(c, sp, IDENTITY_THROTTLE_FREE, &fp)) ||
	    (err = count_failure(c, si, IDENTITY_THROTTLE_IP_FREE, &fi)))
		return err;
	if (account_id && fa >= IDENTITY_LOCK_FAILURES) {
		identity_account a;
		char now[32];
		identity_now_rfc3339(now);
		{
			db_param p[] = {DBP_S(now), DBP_S(account_id)};
			err = db_exec(c, "UPDATE identity_account SET locked = 1, updated_at = ? WHERE id = ? AND locked = 0",
				      p, 2, &changed);
		}
		if (err)
			return err;
		if (changed) {
			if (locked_now)
				*locked_now = true;
			if (identity_account_get(c, account_id, &a) == EGOV_OK)
				err = identity_mail_send(c, a.email, "account_locked", a.locale, NULL);
		}
	}
	return err;
}

egov_err identity_throttle_success(db_conn *c, const char *email)
{
	char sa[IDENTITY_EMAIL_MAX + 8], like[2 * (IDENTITY_EMAIL_MAX + 8) + 4];
	size_t i, o = 0;

	/* The account proved itself: its count toward the lock and every
	 * client's count on it restart. The pairs end in " acct:EMAIL"; the
	 * e-mail is escaped for LIKE. */
	scope_for_email(email, sa, sizeof sa);
	like[o++] = '%';
	like[o++] = ' ';
	for (i = 0; sa[i] && o + 3 < sizeof like; i++) {
		if (sa[i] == '%' || sa[i] == '_' || sa[i] == '\\')
			like[o++] = '\\';
		like[o++] = sa[i];
	}
	like[o] = '\0';
	{
		db_param p[] = {DBP_S(sa), DBP_S(like)};
		return db_exec(c, "DELETE FROM identity_throttle WHERE scope = ? OR scope LIKE ? ESCAPE '\\'", p, 2,
			       NULL);
	}
}

/* ---- the password step of a login ----------------------------------------- */

static egov_err password_hash_of(db_conn *c, const char *id, char **out)
{
	db_param p[] = {DBP_S(id)};
	return db_query_text(c, "SELECT password_hash FROM identity_account WHERE id = ?", p, 1, out);
}

egov_err identity_login_check(db_conn *c, const char *email, const char *password, const char *ip,
			      identity_account *out, identity_login_attempt *att, const char **code,
			      int64_t *retry_after_ms)
{
	char *hash = NULL;
	bool found = false, ok = false, acct_row = false;
	int64_t until = 0, now = identity_now_us();
	egov_err err;

	*code = NULL;
	memset(att, 0, sizeof *att);
	if (!email || !password || strlen(password) > IDENTITY_PASSWORD_BYTES_MAX) {
		*code = "identity.bad_credentials";
		return EGOV_EAUTH;
	}
	identity_copy(att->email, sizeof att->email, email);
	identity_copy(att->ip, sizeof att->ip, ip);
	if ((err = throttle_state(c, email, ip, &until, &acct_row)))
		return err;
	if (until > now) {
		if (retry_after_ms)
			*retry_after_ms = (until - now + 999) / 1000;
		*code = "identity.throttled";
		return EGOV_EBUSY;
	}
	err = identity_account_get_by_email(c, email, out);
	if (err && err != EGOV_ENOTFOUND)
		return err;
	found = err == EGOV_OK;
	if (found && (err = password_hash_of(c, out->id, &hash)))
		return err;
	if (found)
		identity_copy(att->account_id, sizeof att->account_id, out->id);
	/* No hash (unknown e-mail, or an account without a password) verifies
	 * against the dummy: same cost, always false. */
	err = identity_password_verify(hash, password, &ok, retry_after_ms);
	if (err) {
		if (err == EGOV_EBUSY)
			*code = "identity.busy";
		goto out;
	}
	if (!ok) {
		att->failed = true;
		*code = "identity.bad_credentials";
		err = EGOV_EAUTH;
		goto out;
	}
	if (out->disabled || out->locked) {
		*code = out->disabled ? "identity.disabled" : "identity.locked";
		err = EGOV_EPERM;
		goto out;
	}
	/* Most logins follow no failure: nothing to reset, no write. */
	att->clear = acct_row;
out:
	if (hash) {
		sodium_memzero(hash, strlen(hash));
		free(hash);
	}
	return err;
}

egov_err identity_login_count(db_conn *c, const identity_login_attempt *att, bool *locked_now)
{
	if (locked_now)
		*locked_now = false;
	if (att->failed)
		return identity_throttle_fail(c, att->email, att->account_id[0] ? att->account_id : NULL, att->ip,
					      locked_now);
	if (att->clear)
		return identity_throttle_success(c, att->email);
	return EGOV_OK;
}

egov_err identity_login_password(db_conn *c, const char *email, const char *password, const char *ip,
				 identity_account *out, const char **code, int64_t *retry_after_ms,
				 bool *locked_now)
{
	identity_login_attempt att;
	egov_err err, err2;

	if (locked_now)
		*locked_now = false;
	err = identity_login_check(c, email, password, ip, out, &att, code, retry_after_ms);
	if ((err2 = identity_login_count(c, &att, locked_now)))
		return err2;
	return err;
}

egov_err identity_password_set(db_conn *c, const char *account_id, const char *pw, const char **code,
			       int64_t *retry_after_ms)
{
	char hash[crypto_pwhash_STRBYTES];
	identity_account a;
	egov_err err;

	if ((err = identity_password_policy(pw, code)))
		return err;
	if ((err = identity_account_get(c, account_id, &a)))
		return err;
	if ((err = identity_password_hash(pw, hash, retry_after_ms))) {
		if (err == EGOV_EBUSY)
			*code = "identity.busy";
		return err;
	}
	err = identity_password_set_hash(c, account_id, hash);
	sodium_memzero(hash, sizeof hash);
	return err;
}

egov_err identity_password_set_hash(db_conn *c, const char *account_id, const char *hash)
{
	char now[32];
	identity_account a;
	int64_t n = 0;
	egov_err err;

	if ((err = identity_account_get(c, account_id, &a)))
		return err;
	identity_now_rfc3339(now);
	{
		db_param p[] = {DBP_S(hash), DBP_S(now), DBP_S(account_id)};
		err = db_exec(c, "UPDATE identity_account SET password_hash = ?, locked = 0, updated_at = ? WHERE id = ?",
			      p, 3, &n);
	}
	if (!err && n == 0)
		err = EGOV_ENOTFOUND;
	if (!err)
		err = identity_throttle_success(c, a.email);
	return err;
}
