/*
 * test_exchange_pubsub.c: publish/subscribe on both backends. The outbox
 * state machine (publish fans out, claim leases and counts, retry
 * schedules, delivered and expired are final, FIFO waits for the one
 * before), back-off times, recovery of leases after a restart, pull and
 * confirm, cancelling, push URLs, and the room's GovStack answers through
 * pubsub_room_answer (owner rules, status codes, bodies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "core/db.h"
#include "core/timeutil.h"
#include "exchange/pubsub/pubsub_int.h"
#include "testutil.h"
#include "core/banned.h"

#define OWNER "MO/GOV/DSAJ/REG"
#define SUBA "MO/GOV/DSB/APP"
#define SUBB "MO/GOV/DSI/WEB"
#define S 1000000LL

typedef struct fx {
	char *dir;
	char urls[2][512];
	int n;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	f->dir = test_tmpdir();
	f->n = test_backends(f->dir, f->urls);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	test_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* A fresh, migrated database of backend i. */
static void open_db(fx *f, int i, db **d, db_conn **c)
{
	const db_migration *m;
	size_t n;
	char err[256];

	assert_int_equal(db_open(f->urls[i], d, err, sizeof err), EGOV_OK);
	assert_int_equal(db_conn_open(*d, c), EGOV_OK);
	assert_int_equal(test_db_reset(*c), 0);
	if (db_conn_kind(*c) == DB_SQLITE)
		db_exec_script(*c, "DROP TABLE IF EXISTS exchange_pubsub_event_type; DROP TABLE IF EXISTS"
				   " exchange_pubsub_sub; DROP TABLE IF EXISTS exchange_pubsub_event; DROP TABLE IF"
				   " EXISTS exchange_pubsub_outbox; DROP TABLE IF EXISTS exchange_pubsub_push_url;"
				   " DROP TABLE IF EXISTS schema_migrations");
	m = pubsub_migrations(&n);
	assert_int_equal(db_migrate(*c, "exchange_pubsub", m, n, NULL), EGOV_OK);
}

static void close_db(db *d, db_conn *c)
{
	db_conn_close(c);
	db_close(d);
}

static void subscribe(db_conn *c, const char *who, bool push, int64_t ttl, bool fifo)
{
	pubsub_sub s = {.push = push, .ttl_s = ttl, .fifo = fifo};
	snprintf(s.provider, sizeof s.provider, OWNER);
	snprintf(s.event_type, sizeof s.event_type, "born");
	snprintf(s.subscriber, sizeof s.subscriber, "%s", who);
	assert_int_equal(pubsub_sub_create(c, &s), EGOV_OK);
	assert_true(uuid_valid(s.id));
}

static void claim_n(db_conn *c, int64_t now, int expect, pubsub_delivery *out)
{
	int n = -1;
	assert_int_equal(pubsub_outbox_claim(c, now, 60 * S, 16, out, &n), EGOV_OK);
	assert_int_equal(n, expect);
}

static void release_n(pubsub_delivery *d, int n)
{
	int i;
	for (i = 0; i < n; i++)
		pubsub_delivery_release(&d[i]);
}

/* ---- pure parts ------------------------------------------------------------ */

static void backoff(void **state)
{
	(void)state;
	assert_int_equal(pubsub_backoff_ms(1, 1000, 3600), 1000);
	assert_int_equal(pubsub_backoff_ms(2, 1000, 3600), 2000);
	assert_int_equal(pubsub_backoff_ms(5, 1000, 3600), 16000);
	assert_int_equal(pubsub_backoff_ms(12, 1000, 3600), 2048000);
	assert_int_equal(pubsub_backoff_ms(13, 1000, 3600), 3600000); /* capped */
	assert_int_equal(pubsub_backoff_ms(1000000, 1000, 3600), 3600000);
	assert_int_equal(pubsub_backoff_ms(3, 100, 1), 400);
	assert_int_equal(pubsub_backoff_ms(5, 100, 1), 1000);
}

static void validators(void **state)
{
	(void)state;
	assert_true(pubsub_name_valid("person-changed"));
	assert_false(pubsub_name_valid(""));
	assert_false(pubsub_name_valid("a/b"));
	assert_false(pubsub_name_valid("a b"));
	assert_true(pubsub_event_id_valid("0190f3a4-7c1e-7abc-9def-0123456789ab"));
	assert_false(pubsub_event_id_valid("../x/y"));
	assert_false(pubsub_event_id_valid(""));
	assert_true(pubsub_url_valid("http://127.0.0.1:9000/hook"));
	assert_true(pubsub_url_valid("https://app.dsb.gov.mo/events?x=1"));
	assert_false(pubsub_url_valid("ftp://x/"));
	assert_false(pubsub_url_valid("http://user:pw@host/"));
	assert_false(pubsub_url_valid("http:///path"));
	assert_false(pubsub_url_valid("http://host/a b"));
	assert_false(pubsub_url_valid("http://host/\r\nX: y"));
	assert_false(pubsub_url_valid("http://host/#frag"));
	assert_true(exchange_pubsub_reserved("pub"));
	assert_true(exchange_pubsub_reserved("api"));
	assert_true(exchange_pubsub_reserved("pull"));
	assert_false(exchange_pubsub_reserved("persons"));
}

/* ---- storage ------------------------------------------------------------------ */

static void event_types(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		char *schema = NULL;
		buf b;
		jw w;
		int n = 0;

		open_db(f, i, &d, &c);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{\"type\":\"object\"}"), EGOV_OK);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_ECONFLICT);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "died", "{}"), EGOV_OK);
		assert_int_equal(pubsub_event_type_create(c, SUBA, "born", "{}"), EGOV_OK); /* another room */
		assert_int_equal(pubsub_event_type_get(c, OWNER, "born", &schema), EGOV_OK);
		assert_string_equal(schema, "{\"type\":\"object\"}");
		free(schema);
		assert_int_equal(pubsub_event_type_get(c, OWNER, "moved", &schema), EGOV_ENOTFOUND);
		buf_init(&b, 4096);
		jw_init(&w, &b);
		assert_int_equal(pubsub_event_type_list(c, OWNER, &w, &n), EGOV_OK);
		assert_int_equal(n, 2);
		assert_string_equal(b.data, "[\"born\",\"died\"]");
		buf_release(&b);
		assert_int_equal(pubsub_event_type_delete(c, OWNER, "died"), EGOV_OK);
		assert_int_equal(pubsub_event_type_delete(c, OWNER, "died"), EGOV_ENOTFOUND);
		close_db(d, c);
	}
}

static void subscriptions(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		pubsub_sub s = {.push = true, .ttl_s = 60}, g;

		open_db(f, i, &d, &c);
		snprintf(s.provider, sizeof s.provider, OWNER);
		snprintf(s.event_type, sizeof s.event_type, "born");
		snprintf(s.subscriber, sizeof s.subscriber, SUBA);
		assert_int_equal(pubsub_sub_create(c, &s), EGOV_ENOTFOUND); /* no such type */
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_OK);
		assert_int_equal(pubsub_sub_create(c, &s), EGOV_OK);
		assert_int_equal(pubsub_sub_create(c, &s), EGOV_ECONFLICT);
		assert_int_equal(pubsub_sub_get(c, OWNER, "born", SUBA, &g), EGOV_OK);
		assert_string_equal(g.id, s.id);
		assert_true(g.push);
		assert_int_equal(g.ttl_s, 60);
		assert_false(g.fifo);
		g.push = false;
		g.fifo = true;
		g.ttl_s = 120;
		assert_int_equal(pubsub_sub_update(c, &g), EGOV_OK);
		assert_int_equal(pubsub_sub_get(c, OWNER, "born", SUBA, &g), EGOV_OK);
		assert_false(g.push);
		assert_true(g.fifo);
		assert_int_equal(g.ttl_s, 120);
		assert_int_equal(pubsub_sub_get(c, OWNER, "born", SUBB, &g), EGOV_ENOTFOUND);
		assert_int_equal(pubsub_sub_delete(c, OWNER, "born", SUBA), EGOV_OK);
		assert_int_equal(pubsub_sub_delete(c, OWNER, "born", SUBA), EGOV_ENOTFOUND);
		close_db(d, c);
	}
}

/* publish -> claim (leased, counted) -> retry (back-off) -> claim again
 * when due -> delivered (final); an expired one is never claimed. */
static void outbox_states(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		pubsub_delivery got[16];
		pubsub_event e;
		int64_t t = 1800000000 * S, seq = 0, count[4], next = 0;
		int fan = -1;
		bool found = false;

		open_db(f, i, &d, &c);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_OK);
		/* No subscriber: stored, nothing to deliver. */
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-0", "{\"n\":0}", t, &seq, &fan),
				 EGOV_OK);
		assert_int_equal(fan, 0);
		subscribe(c, SUBA, true, 3600, false);
		subscribe(c, SUBB, false, 3600, false); /* pull: never claimed */
		assert_int_equal(pubsub_event_publish(c, OWNER, "nope", OWNER, "ev-x", "{}", t, NULL, NULL),
				 EGOV_ENOTFOUND);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", SUBA, "ev-1", "{\"n\":1}", t, &seq, &fan),
				 EGOV_OK);
		assert_int_equal(fan, 2);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", SUBA, "ev-1", "{}", t, NULL, NULL),
				 EGOV_ECONFLICT);
		assert_int_equal(pubsub_outbox_next_due(c, &next, &found), EGOV_OK);
		assert_true(found);
		assert_int_equal(next, t);

		claim_n(c, t, 1, got);
		assert_string_equal(got[0].subscriber, SUBA);
		assert_string_equal(got[0].ev.id, "ev-1");
		assert_string_equal(got[0].ev.payload, "{\"n\":1}");
		assert_string_equal(got[0].ev.publisher, SUBA);
		assert_string_equal(got[0].ev.event_type, "born");
		assert_int_equal(got[0].ev.seq, seq);
		assert_int_equal(got[0].attempts, 1);
		/* Leased: not claimed twice, even when the lease time is due. */
		claim_n(c, t, 0, NULL);
		claim_n(c, t + 120 * S, 0, NULL);
		assert_int_equal(pubsub_outbox_retry(c, got[0].sub_id, got[0].ev.seq, t + 2 * S, "503"), EGOV_OK);
		release_n(got, 1);
		claim_n(c, t + 1 * S, 0, NULL); /* backing off */
		claim_n(c, t + 2 * S, 1, got);
		assert_int_equal(got[0].attempts, 2);
		assert_int_equal(pubsub_outbox_delivered(c, got[0].sub_id, got[0].ev.seq), EGOV_OK);
		/* Final: a late retry does not reopen it. */
		assert_int_equal(pubsub_outbox_retry(c, got[0].sub_id, got[0].ev.seq, t, "late"), EGOV_OK);
		release_n(got, 1);
		claim_n(c, t + 10 * S, 0, NULL);

		assert_int_equal(pubsub_event_get(c, OWNER, "born", "ev-1", &e), EGOV_OK);
		assert_int_equal(e.count[PUBSUB_DELIVERED], 1);
		assert_int_equal(e.count[PUBSUB_PENDING], 1); /* the pull subscriber's */
		pubsub_event_release(&e);
		assert_int_equal(pubsub_event_get(c, OWNER, "born", "ev-9", &e), EGOV_ENOTFOUND);

		/* Expiry: past the TTL nothing is claimed, and expire() finalises. */
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-2", "{}", t, NULL, NULL), EGOV_OK);
		claim_n(c, t + 3600 * S, 0, NULL);
		assert_int_equal(pubsub_outbox_expire(c, t + 3600 * S, &next), EGOV_OK);
		assert_int_equal(next, 3); /* ev-2 for both, and ev-1 for the puller */
		assert_int_equal(pubsub_outbox_counts(c, count), EGOV_OK);
		assert_int_equal(count[PUBSUB_PENDING], 0);
		assert_int_equal(count[PUBSUB_DELIVERED], 1);
		assert_int_equal(count[PUBSUB_EXPIRED], 3);
		/* Retention: ended deliveries and their events go, pending ones stay. */
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-3", "{}", t + 10 * S, NULL, NULL),
				 EGOV_OK);
		assert_int_equal(pubsub_purge(c, t + 11 * S, &next), EGOV_OK);
		assert_int_equal(next, 3); /* ev-0, ev-1, ev-2; ev-3 is pending */
		assert_int_equal(pubsub_outbox_counts(c, count), EGOV_OK);
		assert_int_equal(count[PUBSUB_PENDING], 2);
		assert_int_equal(count[PUBSUB_EXPIRED] + count[PUBSUB_DELIVERED], 0);
		assert_int_equal(pubsub_event_get(c, OWNER, "born", "ev-1", &e), EGOV_ENOTFOUND);
		close_db(d, c);
	}
}

/* A restart: rows leased by the previous process are due at once. */
static void restart_recovery(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		pubsub_delivery got[16];
		int64_t t = 1800000000 * S, n = 0;

		open_db(f, i, &d, &c);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_OK);
		subscribe(c, SUBA, true, 3600, false);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-1", "{}", t, NULL, NULL), EGOV_OK);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-2", "{}", t, NULL, NULL), EGOV_OK);
		claim_n(c, t, 2, got);
		release_n(got, 2);
		/* The process dies here; a new one opens the database. */
		close_db(d, c);
		assert_int_equal(db_open(f->urls[i], &d, NULL, 0), EGOV_OK);
		assert_int_equal(db_conn_open(d, &c), EGOV_OK);
		claim_n(c, t + 1 * S, 0, NULL);
		assert_int_equal(pubsub_outbox_recover(c, t + 1 * S, &n), EGOV_OK);
		assert_int_equal(n, 2);
		claim_n(c, t + 1 * S, 2, got);
		assert_int_equal(got[0].attempts, 2);
		assert_string_equal(got[0].ev.id, "ev-1");
		assert_string_equal(got[1].ev.id, "ev-2");
		release_n(got, 2);
		close_db(d, c);
	}
}

/* FIFO: the next event waits for the one before it. */
static void fifo(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		pubsub_delivery got[16];
		int64_t t = 1800000000 * S;

		open_db(f, i, &d, &c);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_OK);
		subscribe(c, SUBA, true, 3600, true);
		subscribe(c, SUBB, true, 3600, false);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-1", "{}", t, NULL, NULL), EGOV_OK);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-2", "{}", t, NULL, NULL), EGOV_OK);
		/* SUBB (not FIFO) gets both at once, SUBA only the first. */
		claim_n(c, t, 3, got);
		{
			int k, a = 0;
			for (k = 0; k < 3; k++)
				if (!strcmp(got[k].subscriber, SUBA)) {
					a++;
					assert_string_equal(got[k].ev.id, "ev-1");
				}
			assert_int_equal(a, 1);
		}
		release_n(got, 3);
		close_db(d, c);
	}
}

static void fifo_order(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		pubsub_delivery got[16];
		int64_t t = 1800000000 * S;

		open_db(f, i, &d, &c);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_OK);
		subscribe(c, SUBA, true, 3600, true);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-1", "{}", t, NULL, NULL), EGOV_OK);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-2", "{}", t, NULL, NULL), EGOV_OK);
		claim_n(c, t, 1, got);
		assert_string_equal(got[0].ev.id, "ev-1");
		/* Failed: ev-2 still waits behind it, even when due. */
		assert_int_equal(pubsub_outbox_retry(c, got[0].sub_id, got[0].ev.seq, t + 5 * S, "502"), EGOV_OK);
		claim_n(c, t + 1 * S, 0, NULL);
		assert_int_equal(pubsub_outbox_delivered(c, got[0].sub_id, got[0].ev.seq), EGOV_OK);
		release_n(got, 1);
		claim_n(c, t + 1 * S, 1, got);
		assert_string_equal(got[0].ev.id, "ev-2");
		release_n(got, 1);
		close_db(d, c);
	}
}

static void pull_and_cancel(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		pubsub_delivery p;
		pubsub_delivery got[16];
		int64_t t = 1800000000 * S, count[4];

		open_db(f, i, &d, &c);
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_OK);
		assert_int_equal(pubsub_pull_next(c, OWNER, "born", SUBA, t, &p), EGOV_ECONFLICT); /* no sub */
		subscribe(c, SUBA, false, 3600, false);
		subscribe(c, SUBB, true, 3600, false);
		assert_int_equal(pubsub_pull_next(c, OWNER, "born", SUBB, t, &p), EGOV_ECONFLICT); /* push sub */
		assert_int_equal(pubsub_pull_next(c, OWNER, "born", SUBA, t, &p), EGOV_ENOTFOUND);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-1", "{\"a\":1}", t, NULL, NULL),
				 EGOV_OK);
		assert_int_equal(pubsub_event_publish(c, OWNER, "born", OWNER, "ev-2", "{\"a\":2}", t, NULL, NULL),
				 EGOV_OK);
		/* The same event until it is confirmed (at least once). */
		assert_int_equal(pubsub_pull_next(c, OWNER, "born", SUBA, t, &p), EGOV_OK);
		assert_string_equal(p.ev.id, "ev-1");
		pubsub_delivery_release(&p);
		assert_int_equal(pubsub_pull_next(c, OWNER, "born", SUBA, t, &p), EGOV_OK);
		assert_string_equal(p.ev.id, "ev-1");
		pubsub_delivery_release(&p);
		assert_int_equal(pubsub_pull_confirm(c, OWNER, "born", SUBA, "ev-9"), EGOV_ENOTFOUND);
		assert_int_equal(pubsub_pull_confirm(c, OWNER, "born", SUBB, "ev-1"), EGOV_ECONFLICT);
		assert_int_equal(pubsub_pull_confirm(c, OWNER, "born", SUBA, "ev-1"), EGOV_OK);
		assert_int_equal(pubsub_pull_confirm(c, OWNER, "born", SUBA, "ev-1"), EGOV_ENOTFOUND);
		assert_int_equal(pubsub_pull_next(c, OWNER, "born", SUBA, t, &p), EGOV_OK);
		assert_string_equal(p.ev.id, "ev-2");
		assert_string_equal(p.ev.payload, "{\"a\":2}");
		pubsub_delivery_release(&p);
		/* Cancelling ev-2 stops it for everyone. */
		assert_int_equal(pubsub_event_cancel(c, OWNER, "born", "ev-2"), EGOV_OK);
		assert_int_equal(pubsub_pull_next(c, OWNER, "born", SUBA, t, &p), EGOV_ENOTFOUND);
		claim_n(c, t, 1, got); /* ev-1 for SUBB only */
		assert_string_equal(got[0].ev.id, "ev-1");
		release_n(got, 1);
		/* Unsubscribing cancels what is still pending for it. */
		assert_int_equal(pubsub_sub_delete(c, OWNER, "born", SUBB), EGOV_OK);
		assert_int_equal(pubsub_outbox_counts(c, count), EGOV_OK);
		assert_int_equal(count[PUBSUB_PENDING], 0);
		assert_int_equal(count[PUBSUB_DELIVERED], 1);
		assert_int_equal(count[PUBSUB_CANCELLED], 3);
		close_db(d, c);
	}
}

static int count_urls(void *ctx, const char *s, const char *e, const char *u)
{
	(void)s;
	(void)e;
	(void)u;
	(*(int *)ctx)++;
	return 0;
}

static void push_urls(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		char *url = NULL;
		int n = 0;

		open_db(f, i, &d, &c);
		assert_int_equal(pubsub_push_url_get(c, SUBA, OWNER "/born", &url), EGOV_ENOTFOUND);
		assert_int_equal(pubsub_push_url_set(c, SUBA, OWNER "/born", "http://127.0.0.1:1/a"), EGOV_OK);
		assert_int_equal(pubsub_push_url_set(c, SUBA, OWNER "/born", "http://127.0.0.1:1/b"), EGOV_OK);
		assert_int_equal(pubsub_push_url_set(c, SUBB, OWNER "/born", "http://127.0.0.1:1/c"), EGOV_OK);
		assert_int_equal(pubsub_push_url_get(c, SUBA, OWNER "/born", &url), EGOV_OK);
		assert_string_equal(url, "http://127.0.0.1:1/b");
		free(url);
		assert_int_equal(pubsub_push_url_each(c, count_urls, &n), EGOV_OK);
		assert_int_equal(n, 2);
		assert_int_equal(pubsub_push_url_delete(c, SUBA, OWNER "/born"), EGOV_OK);
		assert_int_equal(pubsub_push_url_delete(c, SUBA, OWNER "/born"), EGOV_ENOTFOUND);
		close_db(d, c);
	}
}

/* ---- the room's answers ----------------------------------------------------------- */

typedef struct ans {
	int status;
	buf out;
	const char *ct;
} ans;

static void call(db_conn *c, ans *a, const char *client, const char *code, const char *method, const char *path,
		 const char *mid, const char *body)
{
	pubsub_call k = {.provider = OWNER, .client = client, .service_code = code, .method = method, .path = path,
			 .message_id = mid, .body = body, .len = body ? strlen(body) : 0};
	pubsub_answer an = {.out = &a->out};

	buf_reset(&a->out);
	assert_int_equal(pubsub_room_answer(c, NULL, &k, &an), EGOV_OK);
	a->status = an.status;
	a->ct = an.content_type;
}

static void expect_problem(const ans *a, int status, const char *code)
{
	char needle[128];

	assert_int_equal(a->status, status);
	assert_non_null(a->ct);
	assert_string_equal(a->ct, "application/problem+json");
	snprintf(needle, sizeof needle, "\"code\":\"%s\"", code);
	if (!strstr(a->out.data, needle))
		fail_msg("expected %s in %s", needle, a->out.data);
}

static void room(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		ans a = {0};

		buf_init(&a.out, 1 << 20);
		open_db(f, i, &d, &c);
		/* Event types: only the owner defines them; 204 when none. */
		call(c, &a, SUBA, "api", "GET", "/v1/eventType", "m1", NULL);
		assert_int_equal(a.status, 204);
		call(c, &a, SUBA, "api", "POST", "/v1/eventType", "m2", "{\"eventType\":\"born\",\"schema\":{}}");
		expect_problem(&a, 403, "pubsub.not_owner");
		call(c, &a, OWNER, "api", "POST", "/v1/eventType", "m3", "{\"eventType\":\"bo rn\",\"schema\":{}}");
		expect_problem(&a, 400, "pubsub.event_type_invalid");
		call(c, &a, OWNER, "api", "POST", "/v1/eventType", "m4", "{\"eventType\":\"born\",\"schema\":[]}");
		expect_problem(&a, 400, "pubsub.schema_invalid");
		call(c, &a, OWNER, "api", "POST", "/v1/eventType", "m5", "{\"eventType\":\"born\"}");
		expect_problem(&a, 400, "json.missing_field");
		call(c, &a, OWNER, "api", "POST", "/v1/eventType", "m6",
		     "{\"eventType\":\"born\",\"schema\":{\"type\":\"object\"}}");
		assert_int_equal(a.status, 200);
		call(c, &a, OWNER, "api", "POST", "/v1/eventType", "m7", "{\"eventType\":\"born\",\"schema\":{}}");
		expect_problem(&a, 409, "pubsub.event_type_exists");
		call(c, &a, SUBA, "api", "GET", "/v1/eventType", "m8", NULL);
		assert_int_equal(a.status, 200);
		assert_string_equal(a.out.data, "[\"born\"]");
		call(c, &a, SUBA, "api", "GET", "/v1/eventType/born", "m9", NULL);
		assert_int_equal(a.status, 200);
		assert_string_equal(a.out.data, "{\"eventType\":\"born\",\"schema\":{\"type\":\"object\"}}");
		call(c, &a, SUBA, "api", "GET", "/v1/eventType/nope", "m10", NULL);
		assert_int_equal(a.status, 204);
		call(c, &a, SUBA, "api", "PUT", "/v1/eventType/born", "m11", NULL);
		expect_problem(&a, 405, "method_not_allowed");

		/* Subscriptions: the caller's own. */
		call(c, &a, SUBA, "api", "GET", "/v1/subs", "s1", NULL);
		expect_problem(&a, 404, "pubsub.subscription_unknown");
		call(c, &a, SUBA, "api", "POST", "/v1/subs/nope", "s2", NULL);
		expect_problem(&a, 404, "pubsub.event_type_unknown");
		call(c, &a, SUBA, "api", "POST", "/v1/subs/born", "s3", "{\"eventType\":\"died\"}");
		expect_problem(&a, 400, "pubsub.event_type_mismatch");
		call(c, &a, SUBA, "api", "POST", "/v1/subs/born", "s4",
		     "{\"eventType\":\"born\",\"subscriberId\":{\"memberCode\":\"DSI\"}}");
		expect_problem(&a, 400, "pubsub.subscriber_mismatch");
		call(c, &a, SUBA, "api", "POST", "/v1/subs/born", "s5", "{\"eventType\":\"born\",\"delivery\":\"MAIL\"}");
		expect_problem(&a, 400, "pubsub.delivery_invalid");
		call(c, &a, SUBA, "api", "POST", "/v1/subs/born", "s6",
		     "{\"eventType\":\"born\",\"delivery\":\"PULL\",\"options\":{\"TTL\":0}}");
		expect_problem(&a, 400, "json.out_of_range");
		call(c, &a, SUBA, "api", "POST", "/v1/subs/born", "s7",
		     "{\"eventType\":\"born\",\"subscriberId\":{\"instanceId\":\"MO\",\"memberClass\":\"GOV\","
		     "\"memberCode\":\"DSB\",\"applicationCode\":\"APP\"},\"delivery\":\"PULL\","
		     "\"options\":{\"TTL\":600,\"FIFO\":true}}");
		assert_int_equal(a.status, 200);
		assert_non_null(strstr(a.out.data, "\"delivery\":\"PULL\""));
		assert_non_null(strstr(a.out.data, "\"options\":{\"TTL\":600,\"FIFO\":true}"));
		assert_non_null(strstr(a.out.data, "\"applicationCode\":\"APP\""));
		call(c, &a, SUBA, "api", "POST", "/v1/subs/born", "s8", NULL);
		expect_problem(&a, 409, "pubsub.subscription_exists");
		call(c, &a, SUBB, "api", "POST", "/v1/subs/born", "s9", NULL); /* defaults: PUSH, 3600 */
		assert_int_equal(a.status, 200);
		assert_non_null(strstr(a.out.data, "\"delivery\":\"PUSH\",\"options\":{\"TTL\":3600,\"FIFO\":false}"));
		call(c, &a, SUBB, "api", "GET", "/v1/subs", "s10", NULL);
		assert_int_equal(a.status, 200);
		assert_non_null(strstr(a.out.data, "\"memberCode\":\"DSI\""));
		assert_null(strstr(a.out.data, "\"memberCode\":\"DSB\""));
		call(c, &a, SUBB, "api", "PATCH", "/v1/subs/born", "s11", "{\"eventType\":\"born\",\"delivery\":\"PULL\"}");
		assert_int_equal(a.status, 201);
		call(c, &a, SUBB, "api", "GET", "/v1/subs/born", "s12", NULL);
		assert_int_equal(a.status, 200);
		assert_non_null(strstr(a.out.data, "\"delivery\":\"PULL\""));
		call(c, &a, SUBB, "api", "DELETE", "/v1/subs/born", "s13", NULL);
		assert_int_equal(a.status, 204);
		call(c, &a, SUBB, "api", "DELETE", "/v1/subs/born", "s14", NULL);
		expect_problem(&a, 404, "pubsub.subscription_unknown");

		/* Publishing: the message id is the event id. */
		call(c, &a, SUBB, "pub", "POST", "/v1/born", "p1", "{\"eventType\":\"born\",\"event\":\"x\"}");
		expect_problem(&a, 400, "pubsub.event_invalid");
		call(c, &a, SUBB, "pub", "POST", "/v1/nope", "p2", "{\"eventType\":\"nope\",\"event\":{}}");
		expect_problem(&a, 404, "pubsub.event_type_unknown");
		call(c, &a, SUBB, "pub", "POST", "/v1/born", "0190f3a4-7c1e-7abc-9def-0123456789ab",
		     "{\"eventType\":\"born\",\"event\":{\"mother\":\"Jane\"}}");
		assert_int_equal(a.status, 201);
		assert_string_equal(a.out.data, "{\"id\":\"0190f3a4-7c1e-7abc-9def-0123456789ab\"}");
		call(c, &a, SUBB, "pub", "POST", "/v1/born", "0190f3a4-7c1e-7abc-9def-0123456789ab",
		     "{\"eventType\":\"born\",\"event\":{}}");
		expect_problem(&a, 409, "pubsub.event_exists");
		call(c, &a, SUBA, "pub", "GET", "/v1/born/0190f3a4-7c1e-7abc-9def-0123456789ab", "p3", NULL);
		expect_problem(&a, 403, "pubsub.not_publisher");
		call(c, &a, SUBB, "pub", "GET", "/v1/born/0190f3a4-7c1e-7abc-9def-0123456789ab", "p4", NULL);
		assert_int_equal(a.status, 200);
		assert_non_null(strstr(a.out.data, "\"event\":{\"mother\":\"Jane\"}"));
		assert_non_null(strstr(a.out.data, "\"deliveries\":{\"pending\":1,"));
		call(c, &a, OWNER, "pub", "GET", "/v1/born/nope", "p5", NULL);
		expect_problem(&a, 404, "pubsub.event_unknown");

		/* Pulling: the same event until confirmed. */
		call(c, &a, SUBB, "pull", "GET", "/v1/born", "q1", NULL);
		expect_problem(&a, 409, "pubsub.not_pull");
		call(c, &a, SUBA, "pull", "GET", "/v1/born", "q2", NULL);
		assert_int_equal(a.status, 200);
		assert_non_null(strstr(a.out.data, "\"id\":\"0190f3a4-7c1e-7abc-9def-0123456789ab\""));
		assert_non_null(strstr(a.out.data, "\"publisherId\":{\"instanceId\":\"MO\",\"memberClass\":\"GOV\","
						   "\"memberCode\":\"DSI\",\"applicationCode\":\"WEB\"}"));
		call(c, &a, SUBA, "pull", "DELETE", "/v1/born/0190f3a4-7c1e-7abc-9def-0123456789ab", "q3", NULL);
		assert_int_equal(a.status, 204);
		call(c, &a, SUBA, "pull", "GET", "/v1/born", "q4", NULL);
		expect_problem(&a, 404, "pubsub.no_event");
		call(c, &a, SUBA, "pull", "DELETE", "/v1/born/0190f3a4-7c1e-7abc-9def-0123456789ab", "q5", NULL);
		expect_problem(&a, 404, "pubsub.no_event");

		/* Paths that are not the API. */
		call(c, &a, SUBA, "api", "GET", "/v2/eventType", "x1", NULL);
		expect_problem(&a, 404, "not_found");
		call(c, &a, SUBA, "pub", "POST", "/v1/born/a/b", "x2", "{}");
		expect_problem(&a, 404, "not_found");
		call(c, &a, SUBA, "api", "GET", "/v1//subs", "x3", NULL);
		expect_problem(&a, 404, "not_found");

		/* Deleting the type: owner only; its subscriptions go too. */
		call(c, &a, SUBA, "api", "DELETE", "/v1/eventType/born", "d1", NULL);
		expect_problem(&a, 403, "pubsub.not_owner");
		call(c, &a, OWNER, "api", "DELETE", "/v1/eventType/born", "d2", NULL);
		assert_int_equal(a.status, 204);
		call(c, &a, SUBA, "api", "GET", "/v1/subs/born", "d3", NULL);
		expect_problem(&a, 404, "pubsub.subscription_unknown");

		buf_release(&a.out);
		close_db(d, c);
	}
}

/* The room's routes: the router decides 404 and 405 (with the methods
 * for Allow), HEAD is GET without the body, and a final '/' ends a path. */
static void room_routes(void **state)
{
	fx *f = *state;
	int i;

	for (i = 0; i < f->n; i++) {
		db *d;
		db_conn *c;
		buf out;
		pubsub_call k = {.provider = OWNER, .client = SUBA, .service_code = "api", .message_id = "r1"};
		pubsub_answer a = {.out = &out};

		buf_init(&out, 1 << 20);
		open_db(f, i, &d, &c);
		k.method = "PUT";
		k.path = "/v1/eventType/born";
		assert_int_equal(pubsub_room_answer(c, NULL, &k, &a), EGOV_OK);
		assert_int_equal(a.status, 405);
		assert_string_equal(a.allow, "GET, HEAD, DELETE");
		assert_non_null(strstr(out.data, "\"code\":\"method_not_allowed\""));
		k.method = "DELETE";
		k.path = "/v1/subs";
		assert_int_equal(pubsub_room_answer(c, NULL, &k, &a), EGOV_OK);
		assert_int_equal(a.status, 405);
		assert_string_equal(a.allow, "GET, HEAD");
		k.method = "GET";
		k.path = "/v1/nothing";
		assert_int_equal(pubsub_room_answer(c, NULL, &k, &a), EGOV_OK);
		assert_int_equal(a.status, 404);
		assert_string_equal(a.allow, "");
		k.service_code = "pull";
		k.method = "POST";
		k.path = "/v1/born/id1";
		assert_int_equal(pubsub_room_answer(c, NULL, &k, &a), EGOV_OK);
		assert_int_equal(a.status, 405);
		assert_string_equal(a.allow, "DELETE");

		/* GET and HEAD of the same list: the same status, no body. */
		assert_int_equal(pubsub_event_type_create(c, OWNER, "born", "{}"), EGOV_OK);
		k.service_code = "api";
		k.method = "GET";
		k.path = "/v1/eventType/";
		assert_int_equal(pubsub_room_answer(c, NULL, &k, &a), EGOV_OK);
		assert_int_equal(a.status, 200);
		assert_string_equal(out.data, "[\"born\"]");
		k.method = "HEAD";
		assert_int_equal(pubsub_room_answer(c, NULL, &k, &a), EGOV_OK);
		assert_int_equal(a.status, 200);
		assert_int_equal(out.len, 0);

		/* Not a room's call at all. */
		k.service_code = "persons";
		assert_int_equal(pubsub_room_answer(c, NULL, &k, &a), EGOV_EINVAL);

		buf_release(&out);
		close_db(d, c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(backoff),
		cmocka_unit_test(validators),
		cmocka_unit_test_setup_teardown(event_types, setup, teardown),
		cmocka_unit_test_setup_teardown(subscriptions, setup, teardown),
		cmocka_unit_test_setup_teardown(outbox_states, setup, teardown),
		cmocka_unit_test_setup_teardown(restart_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(fifo_order, setup, teardown),
		cmocka_unit_test_setup_teardown(pull_and_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(push_urls, setup, teardown),
		cmocka_unit_test_setup_teardown(room, setup, teardown),
		cmocka_unit_test_setup_teardown(room_routes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
