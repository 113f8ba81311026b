/*
 * exchange_gateway.c: the gateway role's data path (docs/exchange.md,
 * "Calling a service").
 *
 *   consumer side  /r1/{instance}/{class}/{member}/{subsystem}/{service}/...
 *                  on the main listener: checks the calling subsystem,
 *                  signs, sends to the provider's gateway over mutual TLS,
 *                  verifies the signed answer, logs, answers.
 *   provider side  /peer/v1/r1/{service id}/... on the peer listener:
 *                  checks the TLS peer, the signature, the time, replay,
 *                  the access right and the size; forwards to the
 *                  back-end; signs the answer, logs, answers.
 *
 * No thread waits on the network or on a commit: a handler defers its
 * answer (req_defer), the calls go through httpc (one event thread), and
 * the answer goes out from the log writer's callback once the record is
 * durable (req_resume). An exchange's state (struct xchg) belongs to one
 * thread at a time: the handler until it hands it to httpc, then the httpc
 * callback until it hands it to the log writer, whose callback answers and
 * frees it.
 *
 * Also here: the canonical texts that are signed, the provider's back-end
 * table (exchange_backend, `egov exchange backend ...`), the in-memory
 * replay window (reloaded from the message log at start), refusals
 * audited off the request path, and the module descriptor. The parsing of
 * outside input and the signed texts are in exchange_wire.c. Metaservices and /metrics figures are in exchange_meta.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/crypto.h"
#include "core/httpc.h"
#include "core/i18n.h"
#include "core/json.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/module.h"
#include "core/spool.h"
#include "core/timeutil.h"
#include "core/utf8.h"
#include "exchange/exchange_int.h"
#include "core/banned.h"

/* A message id (X-Road-Id): printable, no spaces, short enough to index. */
#define MSGID_MAX EXCHANGE_MSGID_MAX
/* X-Road-Represented-Party and X-Egov-Data-Subject are identifiers;
 * X-Egov-Purpose is a short phrase. Longer is refused, never cut. */
#define PARTY_MAX 256
#define PURPOSE_MAX 512
/* What the consumer waits for the provider beyond the service's back-end
 * timeout: the provider answers 504 itself first, with a signature. */
#define PROVIDER_MARGIN_MS 5000
/* Problem documents a provider sends are small; a service's max_body may
 * be smaller still. */
#define PROBLEM_BODY_MAX (64 * 1024)

enum { SIDE_CONSUMER = 0, SIDE_PROVIDER = 1 };

/* ---- small helpers ---------------------------------------------------------- */

static const egov_config *cfg(void)
{
	return app()->config;
}

static bool is_gateway(void)
{
	return cfg() && cfg()->role && strcmp(cfg()->role, "gateway") == 0;
}

/* Two gateway URLs are the same modulo a trailing '/'. */
static bool url_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la && a[la - 1] == '/')
		la--;
	while (lb && b[lb - 1] == '/')
		lb--;
	return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

static bool msgid_valid(const char *s)
{
	return exchange_msgid_valid(s);
}

/* Free text in a header: UTF-8 without control characters (it goes into
 * a signed line-based text and into the log). */
static bool text_valid(const char *s, size_t max)
{
	return exchange_text_valid(s, max);
}

/* The decoded segments of {*rest}, split in the request's arena. */
static size_t split_rest(req *r, const char *rest, const char **parts, size_t max)
{
	char *copy;

	if (!rest || !*rest)
		return 0;
	copy = arena_strdup(req_arena(r), rest);
	return copy ? exchange_split_rest(copy, parts, max) : 0;
}

/* Joins parts[0..n) with '/' into out. */
static bool join_id(const char *const *parts, size_t n, char out[EXCHANGE_ID_MAX])
{
	return exchange_join_id(parts, n, out);
}

/* The raw (still percent-encoded) path-and-query after the first nsegs
 * segments of the request target: what is signed and forwarded, so the
 * provider sees exactly the bytes the caller sent. "/" when nothing
 * follows. */
static const char *raw_tail(req *r, int nsegs)
{
	return exchange_raw_tail(req_arena(r), req_target(r), nsegs);
}

/* The decoded path after the first nsegs segments (for access rules). */
static const char *decoded_tail(const char *const *parts, size_t nparts, size_t skip, req *r)
{
	return exchange_decoded_tail(req_arena(r), parts, nparts, skip);
}

/* The canonical texts (exchange_canon_request/response) are in
 * exchange_wire.c with the rest of the parsing of outside input. */

/* ---- peer TLS files ------------------------------------------------------------ */

/* The client certificate, key and CA bundle for calls to other gateways,
 * fixed at start. */
static char peer_ca_path[4096];

static egov_err append_file(FILE *out, const char *path)
{
	FILE *in = fopen(path, "rb");
	char chunk[4096];
	size_t n;

	if (!in)
		return EGOV_EIO;
	while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
		if (fwrite(chunk, 1, n, out) != n) {
			fclose(in);
			return EGOV_EIO;
		}
	fclose(in);
	return EGOV_OK;
}

/* server.peer_tls_ca, or else the node's own platform CA (root and
 * issuing certificates, written once as one bundle for libcurl). */
static egov_err peer_ca_prepare(const egov_config *c)
{
	char dir[4096], tmp[4096], root[4096], issuing[4096];
	FILE *f;
	egov_err err = EGOV_OK;

	if (c->peer_tls_ca && *c->peer_tls_ca) {
		snprintf(peer_ca_path, sizeof peer_ca_path, "%s", c->peer_tls_ca);
		return EGOV_OK;
	}
	if (strlen(c->data_dir) > sizeof dir - 64)
		return EGOV_EINVAL;
	snprintf(dir, sizeof dir, "%s/exchange", c->data_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return EGOV_EIO;
	snprintf(root, sizeof root, "%s/pki/root.crt", c->data_dir);
	snprintf(issuing, sizeof issuing, "%s/pki/issuing.crt", c->data_dir);
	snprintf(peer_ca_path, sizeof peer_ca_path, "%s/exchange/peer-ca.pem", c->data_dir);
	snprintf(tmp, sizeof tmp, "%s/exchange/peer-ca.pem.tmp", c->data_dir);
	f = fopen(tmp, "wb");
	if (!f)
		return EGOV_EIO;
	if (append_file(f, root) || append_file(f, issuing))
		err = EGOV_EIO;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		err = EGOV_EIO;
	fclose(f);
	if (!err && rename(tmp, peer_ca_path) != 0)
		err = EGOV_EIO;
	if (err)
		unlink(tmp);
	return err;
}

/* ---- the back-end table (provider side) ------------------------------------ */

/* IF NOT EXISTS: the exchange module's migrations (exchange.c) create it
 * as one of their versions, on databases where an earlier release had
 * already made it under a migration of its own. */
const char exchange_backend_schema[] = "CREATE TABLE IF NOT EXISTS exchange_backend ("
				       " service TEXT PRIMARY KEY,"
				       " url TEXT NOT NULL,"
				       " timeout_ms INTEGER NOT NULL DEFAULT 0,"
				       " updated_at TEXT NOT NULL)";

typedef struct backend {
	char service[EXCHANGE_ID_MAX];
	char *url;
	int timeout_ms; /* 0: exchange.backend_timeout_ms */
} backend;

/* A snapshot reloaded by the housekeeping thread: lookups never touch
 * the database. */
static struct {
	pthread_mutex_t mu;
	backend *v;
	size_t n;
} backends = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool backend_url_valid(const char *u)
{
	size_t i, n = strlen(u);

	if (n < 8 || n > 1024 || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0))
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f || u[i] == '?' || u[i] == '#' || u[i] == '"' ||
		    u[i] == '\\')
			return false;
	return true;
}

static egov_err backends_load(db_conn *c)
{
	db_rows *rows = NULL;
	backend *v = NULL, *old;
	size_t n = 0, alloc = 0, oldn, i;
	bool more;
	egov_err err;

	if ((err = db_query(c, "SELECT service, url, timeout_ms FROM exchange_backend ORDER BY service", NULL, 0,
			    &rows)))
		return err;
	while (!(err = db_rows_next(rows, &more)) && more) {
		const char *s = db_rows_text(rows, 0), *u = db_rows_text(rows, 1);
		if (!s || !u || strlen(s) >= EXCHANGE_ID_MAX)
			continue;
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			backend *p = realloc(v, na * sizeof *p);
			if (!p) {
				err = EGOV_ENOMEM;
				break;
			}
			v = p;
			alloc = na;
		}
		snprintf(v[n].service, sizeof v[n].service, "%s", s);
		v[n].url = strdup(u);
		v[n].timeout_ms = (int)db_rows_int(rows, 2);
		if (!v[n].url) {
			err = EGOV_ENOMEM;
			break;
		}
		n++;
	}
	db_rows_free(rows);
	if (err) {
		for (i = 0; i < n; i++)
			free(v[i].url);
		free(v);
		return err;
	}
	pthread_mutex_lock(&backends.mu);
	old = backends.v;
	oldn = backends.n;
	backends.v = v;
	backends.n = n;
	pthread_mutex_unlock(&backends.mu);
	for (i = 0; i < oldn; i++)
		free(old[i].url);
	free(old);
	return EGOV_OK;
}

/* Copies the back-end of service into the request's arena, with the
 * timeout set on this gateway (0 when none). */
static bool backend_find(req *r, const char *service, const char **url, int *timeout_ms)
{
	size_t i;
	bool found = false;

	pthread_mutex_lock(&backends.mu);
	for (i = 0; i < backends.n; i++)
		if (strcmp(backends.v[i].service, service) == 0) {
			*url = arena_strdup(req_arena(r), backends.v[i].url);
			*timeout_ms = backends.v[i].timeout_ms; /* 0: not set here */
			found = *url != NULL;
			break;
		}
	pthread_mutex_unlock(&backends.mu);
	return found;
}

/* How long the provider waits for the back-end: the service's timeout in
 * the configuration (the consumer waits as long plus a margin), which a
 * timeout set on this gateway may only lower. */
static int backend_timeout(const exchange_service *svc, int local_ms)
{
	int64_t t = svc->timeout_ms > 0 ? svc->timeout_ms : exchange_settings(cfg())->backend_timeout_ms;

	if (local_ms > 0 && local_ms < t)
		t = local_ms;
	return (int)t;
}

/* ---- replay window (provider side) ----------------------------------------
 * A message id is remembered per client until its signed-at time leaves
 * the clock-skew window (after that the time check refuses it); the log's
 * uniqueness on (side, client, message id) refuses it for good. Keys are
 * 64 bits of SHA-256(client "\n" id) in sharded open-addressing tables. */
#define REPLAY_SHARDS 16
#define REPLAY_SHARD_MAX (1u << 20)

typedef struct replay_slot {
	uint64_t key; /* 0: empty */
	int64_t expires_us;
} replay_slot;

static struct replay_shard {
	pthread_mutex_t mu;
	replay_slot *slots;
	size_t cap, used;
} replay[REPLAY_SHARDS];
static pthread_once_t replay_once = PTHREAD_ONCE_INIT;

static void replay_init(void)
{
	size_t i;
	for (i = 0; i < REPLAY_SHARDS; i++)
		pthread_mutex_init(&replay[i].mu, NULL);
}

static void replay_put(replay_slot *slots, size_t cap, uint64_t key, int64_t expires)
{
	size_t i = (size_t)key & (cap - 1);
	while (slots[i].key)
		i = (i + 1) & (cap - 1);
	slots[i].key = key;
	slots[i].expires_us = expires;
}

/* Drops expired entries, growing the table if the live ones need it. */
static bool replay_rehash(struct replay_shard *sh, int64_t now)
{
	size_t i, live = 0, cap = sh->cap ? sh->cap : 1024;
	replay_slot *ns;

	for (i = 0; i < sh->cap; i++)
		live += sh->slots[i].key && sh->slots[i].expires_us > now;
	while ((live + 1) * 2 > cap)
		cap *= 2;
	if (cap > REPLAY_SHARD_MAX)
		return false;
	ns = calloc(cap, sizeof *ns);
	if (!ns)
		return false;
	for (i = 0; i < sh->cap; i++)
		if (sh->slots[i].key && sh->slots[i].expires_us > now)
			replay_put(ns, cap, sh->slots[i].key, sh->slots[i].expires_us);
	free(sh->slots);
	sh->slots = ns;
	sh->cap = cap;
	sh->used = live;
	return true;
}

/* 0: first time (now remembered until expires), 1: seen, -1: no room. */
int exchange_replay_seen(const char *client, const char *mid, int64_t now, int64_t expires)
{
	unsigned char h[32];
	uint64_t key;
	struct replay_shard *sh;
	size_t i;
	int rc = 0;
	buf b;

	pthread_once(&replay_once, replay_init);
	buf_init(&b, 2 * EXCHANGE_ID_MAX);
	if (buf_adds(&b, client) || buf_addc(&b, '\n') || buf_adds(&b, mid)) {
		buf_release(&b);
		return -1;
	}
	crypto_sha256(b.data, b.len, h);
	buf_release(&b);
	memcpy(&key, h, sizeof key);
	if (!key)
		key = 1;
	sh = &replay[h[8] % REPLAY_SHARDS];
	pthread_mutex_lock(&sh->mu);
	if ((sh->used + 1) * 2 > sh->cap && !replay_rehash(sh, now)) {
		rc = -1;
		goto out;
	}
	for (i = (size_t)key & (sh->cap - 1); sh->slots[i].key; i = (i + 1) & (sh->cap - 1)) {
		if (sh->slots[i].key != key)
			continue;
		if (sh->slots[i].expires_us > now) {
			rc = 1;
		} else {
			sh->slots[i].expires_us = expires;
		}
		goto out;
	}
	sh->slots[i].key = key;
	sh->slots[i].expires_us = expires;
	sh->used++;
out:
	pthread_mutex_unlock(&sh->mu);
	return rc;
}

/* At start: the message ids the provider side logged within the window,
 * so that a replay across a restart is refused before it reaches the
 * back-end (the log's uniqueness alone would refuse it only after). */
typedef struct replay_load {
	int64_t now, skew;
	size_t kept, full;
} replay_load;

static int replay_load_one(void *ctx, const char *client, const char *mid, int64_t signed_at_us)
{
	replay_load *l = ctx;
	int64_t expires = signed_at_us + l->skew;
	int rc;

	if (expires <= l->now)
		return 0;
	rc = exchange_replay_seen(client, mid, l->now, expires);
	if (rc < 0) {
		l->full++;
		return 1;
	}
	l->kept += rc == 0;
	return 0;
}

static egov_err replay_preload(db_conn *conn, const egov_config *c)
{
	replay_load l = {.now = time_now_us(), .skew = (int64_t)exchange_settings(c)->clock_skew_s * 1000000};
	size_t seen = 0;
	egov_err err;

	/* A record logged at time T was signed within the skew of T, so its
	 * window closes by T + 2 * skew. */
	err = exchange_log_recent(conn, l.now - 2 * l.skew, replay_load_one, &l, &seen);
	if (err)
		return err;
	if (l.full)
		log_warn("exchange.replay_window", "replay window full after %zu of %zu logged message ids", l.kept,
			 seen);
	log_info("exchange.replay_window", "%zu message ids of the last %d s reloaded from the message log", l.kept,
		 2 * exchange_settings(c)->clock_skew_s);
	return EGOV_OK;
}

/* ---- housekeeping: refusals to the audit log, back-end reloads ------------
 * audit_append() waits for its commit; a refusal is answered at once and
 * its audit record is written here. The queue is bounded so a flood of
 * bad requests cannot grow memory: past it, the drop is logged. */
#define AUDIT_QUEUE_MAX 1024
#define BACKEND_RELOAD_US (1000 * 1000)

typedef struct audit_item {
	char *actor, *action, *object, *details;
} audit_item;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	audit_item q[AUDIT_QUEUE_MAX];
	size_t head, len;
	bool running, stop;
	pthread_t thread;
} hk = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void audit_item_free(audit_item *it)
{
	free(it->actor);
	free(it->action);
	free(it->object);
	free(it->details);
}

/* Queues an audit record of a refused exchange; never blocks. */
static void audit_refusal(const char *action, const char *client, const char *service, const char *mid,
			  const char *reason, const char *ip)
{
	audit_item it = {0};
	buf d;
	jw w;
	bool queued = false;

	buf_init(&d, AUDIT_DETAILS_MAX);
	jw_init(&w, &d);
	jw_obj_begin(&w);
	jw_kstr(&w, "client", client && *client ? client : "");
	jw_kstr(&w, "service", service ? service : "");
	jw_kstr(&w, "message_id", mid ? mid : "");
	jw_kstr(&w, "reason", reason ? reason : "");
	jw_kstr(&w, "ip", ip ? ip : "");
	jw_obj_end(&w);
	it.actor = strdup(client && exchange_id_valid(client, EXCHANGE_ID_SUBSYSTEM) ? client : "peer");
	it.action = strdup(action);
	it.object = strdup(service && *service ? service : "exchange");
	it.details = w.err ? NULL : buf_detach(&d, NULL);
	buf_release(&d);
	if (it.actor && it.action && it.object && it.details) {
		pthread_mutex_lock(&hk.mu);
		if (hk.running && hk.len < AUDIT_QUEUE_MAX) {
			hk.q[(hk.head + hk.len) % AUDIT_QUEUE_MAX] = it;
			hk.len++;
			queued = true;
			pthread_cond_signal(&hk.cv);
		}
		pthread_mutex_unlock(&hk.mu);
	}
	if (!queued) {
		log_warn("exchange.audit_dropped", "%s %s: audit queue full or stopped", action,
			 service ? service : "");
		audit_item_free(&it);
	}
}

static void *housekeeping_main(void *arg)
{
	int64_t last_reload = time_mono_us();

	(void)arg;
	for (;;) {
		audit_item batch[64];
		size_t n = 0, i;
		struct timespec until;

		pthread_mutex_lock(&hk.mu);
		if (hk.stop && !hk.len) {
			pthread_mutex_unlock(&hk.mu);
			return NULL;
		}
		if (!hk.len) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000 * 1000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&hk.cv, &hk.mu, &until);
		}
		while (hk.len && n < sizeof batch / sizeof batch[0]) {
			batch[n++] = hk.q[hk.head];
			hk.head = (hk.head + 1) % AUDIT_QUEUE_MAX;
			hk.len--;
		}
		pthread_mutex_unlock(&hk.mu);
		for (i = 0; i < n; i++) {
			egov_err err = audit_available() ? audit_append(batch[i].actor, batch[i].action,
								   batch[i].object, batch[i].details, NULL)
						    : EGOV_EUNAVAILABLE;
			if (err)
				log_warn("exchange.audit_failed", "%s: %s", batch[i].action, egov_err_name(err));
			audit_item_free(&batch[i]);
		}
		if (time_mono_us() - last_reload >= BACKEND_RELOAD_US) {
			db_conn *c;
			last_reload = time_mono_us();
			if (app()->db && !db_thread_conn(app()->db, &c) && backends_load(c))
				log_warn("exchange.backends", "reloading the back-end table failed: %s",
					 db_conn_errmsg(c));
		}
	}
	return NULL;
}

/* ---- exchanges in flight ------------------------------------------------------ */

typedef struct xchg {
	req *r;
	exchange_conf *cf;
	int side;
	int64_t t0_us;
	const exchange_service *svc;
	char client[EXCHANGE_ID_MAX];
	char service[EXCHANGE_ID_MAX];
	char provider[EXCHANGE_ID_MAX];
	const char *service_code;
	char message_id[MSGID_MAX + 1];
	const char *method;
	const char *path;         /* raw path-and-query after the service code */
	const char *content_type; /* the request's, "" if none */
	const char *rp, *ds, *purpose;
	const char *req_body;
	size_t req_len;
	char req_sha[65], req_sig[128], req_cert[65], req_at[32];
	/* the response */
	int status;
	char resp_ct[128];
	buf resp_body;
	size_t resp_len;          /* of the body answered (resp_body is handed over) */
	char resp_sha[65], resp_sig[128], resp_cert[65], resp_at[32];
	bool signed_resp;         /* resp_sig/cert/at are set */
	/* Large bodies (over SPOOL_THRESHOLD) stay in files: the request's
	 * spooled body (owned by the request), and the response's (owned
	 * here until answer() hands it to the response). -1: in memory. */
	int req_fd;
	int resp_fd;
	size_t resp_fd_len;
	struct xchg *bnext;       /* the body store's queue */
	void (*logged)(void *ctx, egov_err err); /* after the body store */
	bool known;               /* client and service are configuration ids (metrics labels) */
} xchg;

static xchg *xchg_new(req *r, exchange_conf *cf, int side)
{
	xchg *x = calloc(1, sizeof *x);

	if (!x)
		return NULL;
	x->r = r;
	x->cf = cf;
	x->side = side;
	x->t0_us = time_mono_us();
	x->content_type = "";
	x->rp = x->ds = x->purpose = "";
	x->req_fd = x->resp_fd = -1;
	buf_init(&x->resp_body, EGOV_RESPONSE_MAX);
	return x;
}

static void xchg_free(xchg *x)
{
	if (!x)
		return;
	if (x->cf)
		exchange_conf_put(x->cf);
	buf_release(&x->resp_body);
	if (x->resp_fd >= 0)
		close(x->resp_fd);
	free(x);
}

/* Ends a deferred exchange: figures, resume the connection, free. The
 * answer must have been set. */
static void xchg_done(xchg *x)
{
	if (x->known)
		exchange_metrics_observe(x->client, x->service, x->side, x->status, time_mono_us() - x->t0_us,
					 x->req_len, x->resp_len);
	req_resume(x->r);
	xchg_free(x);
}

/* The same for an exchange answered before it was deferred. */
static void xchg_end(xchg *x)
{
	if (x->known)
		exchange_metrics_observe(x->client, x->service, x->side, x->status, time_mono_us() - x->t0_us,
					 x->req_len, x->resp_len);
	xchg_free(x);
}

static void hex32(const unsigned char d[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
}

/* Takes the request body: in memory, or spooled by the kernel (its
 * digest computed while it arrived), into x->req_body/req_fd, req_len
 * and req_sha. */
static egov_err take_request_body(xchg *x)
{
	unsigned char d[32];
	size_t len = 0;
	egov_err err;

	x->req_body = req_body(x->r, &len);
	x->req_len = x->req_body ? len : 0;
	if (!x->req_body && (x->req_fd = req_body_fd(x->r, &len)) >= 0)
		x->req_len = len;
	if ((err = req_body_sha256(x->r, d)))
		return err;
	hex32(d, x->req_sha);
	return EGOV_OK;
}

/* Takes an httpc response's body: its buf, or its spooled file with the
 * digest httpc computed on the way (then resp_sha is set too). */
static void take_response_body(xchg *x, httpc_response *resp)
{
	buf_release(&x->resp_body);
	if (x->resp_fd >= 0)
		close(x->resp_fd);
	x->resp_fd = -1;
	if (resp->spooled) {
		x->resp_fd_len = resp->body_len;
		hex32(resp->body_sha256, x->resp_sha);
		x->resp_fd = httpc_response_take_fd(resp);
		buf_init(&x->resp_body, EGOV_RESPONSE_MAX);
		return;
	}
	/* buf structs move as a whole. */
	x->resp_body = resp->body;
	buf_init(&resp->body, 0);
}

/* Forgets a spooled response body (a problem document replaces it). */
static void drop_response_file(xchg *x)
{
	if (x->resp_fd >= 0)
		close(x->resp_fd);
	x->resp_fd = -1;
	x->resp_fd_len = 0;
}

/* Builds a problem document as resp_problem() does, into out, so that it
 * can be signed before it is sent. */
static egov_err problem_body(req *r, int status, const char *code, const char *field, const char *detail,
			     buf *out)
{
	char key[96], type[96];
	jw w;

	snprintf(key, sizeof key, "problem.%s", code);
	snprintf(type, sizeof type, "urn:egov:problem:%s", code);
	buf_reset(out);
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "type", type);
	jw_kstr(&w, "title", i18n_text(req_lang(r), key));
	jw_kint(&w, "status", status);
	jw_kstr(&w, "code", code);
	if (detail)
		jw_kstr(&w, "detail", detail);
	if (field)
		jw_kstr(&w, "field", field);
	jw_kstr(&w, "instance", req_path(r));
	jw_kstr(&w, "request_id", req_id(r));
	jw_obj_end(&w);
	return w.err;
}

/* A refusal on the consumer side, or one the provider cannot sign. */
static egov_err refuse(req *r, int status, const char *code, const char *field, const char *detail)
{
	exchange_metrics_error(code);
	return resp_problem(r, status, code, field, detail);
}

static void log_sign_certs(const exchange_conf *cf, const char *subsystem);
static void fill_log_rec(const xchg *x, exchange_log_rec *rec);

/* ---- large bodies and the message log --------------------------------------
 * The message log keeps bodies in its rows (and in memory on the way). A
 * spooled body is not loaded for it: an exchange of a "full" service with
 * a body over SPOOL_THRESHOLD is logged by digest (log mode "digest"), and
 * both its bodies go to the blob store (DATA/blobs) named by their
 * SHA-256: the digests the record holds and the signatures cover.
 * blob_put_fd() fsyncs, so that runs on a thread of its own, before the
 * record is appended: an answered exchange's bodies are durable too. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	xchg *head, *tail;
	bool running, stop;
	pthread_t thread;
} bodies = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void log_append(xchg *x)
{
	exchange_log_rec rec;
	egov_err err;

	fill_log_rec(x, &rec);
	err = exchange_log_append_async(&rec, x->logged, x);
	if (err)
		x->logged(x, err);
}

static egov_err body_store(int fd, const char *data, size_t len, const char *sha)
{
	blob_store *bs = app()->blobs;
	char hex[65];
	egov_err err;

	if (!bs)
		return EGOV_EUNAVAILABLE;
	if (fd >= 0)
		err = blob_put_fd(bs, fd, len, hex);
	else
		err = blob_put(bs, data ? data : "", len, hex);
	if (!err && strcmp(hex, sha) != 0)
		err = EGOV_ECORRUPT; /* the file changed under us */
	return err;
}

static void *bodies_main(void *arg)
{
	(void)arg;
	for (;;) {
		xchg *x;
		egov_err err;

		pthread_mutex_lock(&bodies.mu);
		while (!bodies.head && !bodies.stop)
			pthread_cond_wait(&bodies.cv, &bodies.mu);
		x = bodies.head;
		if (x) {
			bodies.head = x->bnext;
			if (!bodies.head)
				bodies.tail = NULL;
		}
		pthread_mutex_unlock(&bodies.mu);
		if (!x)
			return NULL;
		err = body_store(x->req_fd, x->req_body, x->req_len, x->req_sha);
		if (!err)
			err = body_store(x->resp_fd, x->resp_body.data, x->resp_fd >= 0 ? x->resp_fd_len : x->resp_body.len,
					 x->resp_sha);
		if (err) {
			log_error("exchange.body_store", "%s %s: %s", x->service, x->message_id, egov_err_name(err));
			x->logged(x, EGOV_EUNAVAILABLE);
		} else {
			log_append(x);
		}
	}
}

/* Logs x, then calls done(x, err) (on another thread). */
static void log_exchange(xchg *x, void (*done)(void *ctx, egov_err err))
{
	bool queued = false;

	x->logged = done;
	if (!(x->svc && strcmp(x->svc->log_mode, "full") == 0 && (x->req_fd >= 0 || x->resp_fd >= 0))) {
		log_append(x);
		return;
	}
	pthread_mutex_lock(&bodies.mu);
	if (bodies.running && !bodies.stop) {
		x->bnext = NULL;
		if (bodies.tail)
			bodies.tail->bnext = x;
		else
			bodies.head = x;
		bodies.tail = x;
		queued = true;
		pthread_cond_signal(&bodies.cv);
	}
	pthread_mutex_unlock(&bodies.mu);
	if (!queued)
		done(x, EGOV_EUNAVAILABLE);
}

/* ---- provider: signing and answering ------------------------------------ */

/* Signs x's response (status, resp_ct, resp_body) with the provider
 * subsystem's key. */
static egov_err provider_sign(xchg *x)
{
	exchange_canon_resp c = {0};
	buf canon;
	egov_err err;

	if (x->resp_fd < 0) /* a spooled body's digest came with it */
		crypto_sha256_hex(x->resp_body.data ? x->resp_body.data : "", x->resp_body.len, x->resp_sha);
	time_format_rfc3339(time_now_us(), 3, x->resp_at);
	c.message_id = x->message_id;
	c.service = x->service;
	c.status = x->status;
	c.content_type = x->resp_ct;
	c.request_sig = x->req_sig;
	c.signed_at = x->resp_at;
	c.body_sha256 = x->resp_sha;
	buf_init(&canon, 64 * 1024);
	err = exchange_canon_response(&c, &canon);
	if (!err)
		err = exchange_sign(x->provider, canon.data, canon.len, x->resp_sig, x->resp_cert);
	buf_release(&canon);
	x->signed_resp = !err;
	return err;
}

/* Answers r with x's response and, when signed, its signature headers. */
static void answer(xchg *x, bool with_signature)
{
	req *r = x->r;
	const char *ct = x->resp_ct[0] ? x->resp_ct : NULL;
	egov_err err;

	resp_header(r, "X-Road-Id", x->message_id);
	if (with_signature && x->signed_resp) {
		resp_header(r, "X-Egov-Signed-At", x->resp_at);
		resp_header(r, "X-Egov-Signer-Cert", x->resp_cert);
		resp_header(r, "X-Egov-Signature", x->resp_sig);
	}
	/* The answer takes the body's bytes (or its file). */
	x->resp_len = x->resp_body.len;
	if (x->resp_fd >= 0) {
		x->resp_len = x->resp_fd_len;
		err = resp_fd(r, x->status, ct, x->resp_fd, x->resp_fd_len);
		x->resp_fd = -1;
	} else if (x->resp_body.data)
		err = resp_buf(r, x->status, ct, &x->resp_body);
	else
		err = resp_bytes(r, x->status, ct, "", 0, false);
	if (err)
		resp_problem(r, 503, "unavailable", NULL, NULL);
}

/* A signed problem from the provider, not logged (the request was not
 * shown to be authentic, or logging itself failed). */
static void provider_problem_now(xchg *x, int status, const char *code, const char *detail)
{
	drop_response_file(x);
	exchange_metrics_error(code);
	x->status = status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "application/problem+json");
	if (problem_body(x->r, status, code, NULL, detail, &x->resp_body) || provider_sign(x)) {
		resp_problem(x->r, status, code, NULL, detail);
		return;
	}
	answer(x, true);
}

static void audit_x(xchg *x, const char *code, const char *reason)
{
	audit_refusal(code, x->client, x->service, x->message_id, reason, req_remote_ip(x->r));
}

static void provider_logged(void *ctx, egov_err err)
{
	xchg *x = ctx;

	if (err == EGOV_ECONFLICT) {
		/* The durable check: this id was logged before (a replay that
		 * outlived the in-memory window, e.g. across a restart). */
		audit_x(x, "exchange.replay", "message id already in the log");
		buf_reset(&x->resp_body);
		provider_problem_now(x, 409, "exchange.replay", NULL);
	} else if (err) {
		log_error("exchange.log_failed", "provider %s %s: %s", x->service, x->message_id, egov_err_name(err));
		buf_reset(&x->resp_body);
		provider_problem_now(x, 503, "unavailable", "message log unavailable");
	} else {
		answer(x, true);
	}
	xchg_done(x);
}

static void fill_log_rec(const xchg *x, exchange_log_rec *rec)
{
	/* A spooled body is never loaded to be logged: such an exchange is
	 * logged by digest, its bodies kept in the blob store (log_exchange). */
	bool full = x->svc && strcmp(x->svc->log_mode, "full") == 0 && x->req_fd < 0 && x->resp_fd < 0;

	memset(rec, 0, sizeof *rec);
	rec->side = x->side == SIDE_PROVIDER ? "provider" : "consumer";
	rec->message_id = x->message_id;
	rec->client = x->client;
	rec->service = x->service;
	rec->method = x->method;
	rec->path = x->path;
	rec->represented_party = x->rp;
	rec->data_subject = x->ds;
	rec->purpose = x->purpose;
	rec->status = x->status;
	rec->request_sig = x->req_sig;
	rec->request_signer_cert = x->req_cert;
	rec->request_body_sha256 = x->req_sha;
	rec->request_body = full ? x->req_body : NULL;
	rec->request_body_len = x->req_len;
	rec->response_sig = x->resp_sig;
	rec->response_signer_cert = x->resp_cert;
	rec->response_body_sha256 = x->resp_sha;
	rec->response_body = full ? x->resp_body.data : NULL;
	rec->response_body_len = x->resp_body.len;
	rec->request_signed_at = x->req_at;
	rec->response_signed_at = x->resp_at;
	rec->request_content_type = x->content_type;
	rec->response_content_type = x->resp_ct;
}

/* Signs x's response, logs the exchange and answers once it is durable. */
static void provider_finish(xchg *x)
{
	if (provider_sign(x)) {
		log_error("exchange.sign_failed", "no signing key for %s", x->provider);
		resp_problem(x->r, 500, "internal", NULL, "cannot sign the response");
		xchg_done(x);
		return;
	}
	log_exchange(x, provider_logged);
}

/* A refusal of an authentic request: signed, logged, counted. */
static void provider_refuse_logged(xchg *x, int status, const char *code, const char *detail)
{
	drop_response_file(x);
	exchange_metrics_error(code);
	x->status = status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "application/problem+json");
	if (problem_body(x->r, status, code, NULL, detail, &x->resp_body)) {
		resp_problem(x->r, status, code, NULL, detail);
		xchg_done(x);
		return;
	}
	provider_finish(x);
}

static void provider_backend_got(void *ctx, httpc_response *resp)
{
	xchg *x = ctx;

	if (resp->err) {
		log_warn("exchange.backend", "%s %s: %s", x->service, x->message_id, resp->errmsg);
		if (resp->err == EGOV_EBUSY)
			provider_refuse_logged(x, 504, "exchange.backend_timeout", NULL);
		else if (resp->err == EGOV_ELIMIT)
			provider_refuse_logged(x, 502, "exchange.response_too_large", NULL);
		else
			provider_refuse_logged(x, 502, "exchange.backend_unavailable", NULL);
		return;
	}
	x->status = resp->status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "%s",
		 resp->content_type[0] ? resp->content_type : "application/octet-stream");
	take_response_body(x, resp);
	provider_finish(x);
}

/* Adds "Name: value" to an httpc header list. */
static bool add_header(req *r, const char **h, size_t *n, const char *name, const char *value)
{
	size_t ln = strlen(name), lv = strlen(value);
	char *s;

	if (*n >= HTTPC_HEADERS_MAX)
		return false;
	s = arena_alloc(req_arena(r), ln + lv + 3);
	if (!s)
		return false;
	memcpy(s, name, ln);
	s[ln] = ':';
	s[ln + 1] = ' ';
	memcpy(s + ln + 2, value, lv + 1);
	if (!*value)
		s[ln + 1] = '\0'; /* "Name:" removes a header libcurl would add */
	h[(*n)++] = s;
	return true;
}

static void provider_forward(xchg *x, const char *url_base, int timeout_ms)
{
	req *r = x->r;
	httpc_request rq = {0};
	size_t nh = 0;
	const char *accept = req_header(r, "Accept");
	char *url;
	size_t lb = strlen(url_base), lp = strlen(x->path);
	egov_err err;

	while (lb && url_base[lb - 1] == '/')
		lb--;
	url = arena_alloc(req_arena(r), lb + lp + 1);
	if (!url) {
		provider_refuse_logged(x, 503, "unavailable", NULL);
		return;
	}
	memcpy(url, url_base, lb);
	memcpy(url + lb, x->path, lp + 1);
	rq.method = x->method;
	rq.url = url;
	rq.body = x->req_len ? x->req_body : NULL;
	rq.body_len = x->req_len;
	rq.body_from_fd = x->req_fd >= 0;
	rq.body_fd = x->req_fd;
	rq.spool_over = SPOOL_THRESHOLD;
	rq.timeout_ms = timeout_ms;
	rq.response_max = (size_t)(x->svc->max_body > 0 ? x->svc->max_body : EGOV_BODY_MAX_UPLOAD);
	add_header(r, rq.headers, &nh, "Content-Type", x->content_type);
	add_header(r, rq.headers, &nh, "Expect", "");
	if (accept)
		add_header(r, rq.headers, &nh, "Accept", accept);
	add_header(r, rq.headers, &nh, "X-Road-Client", x->client);
	add_header(r, rq.headers, &nh, "X-Road-Service", x->service);
	add_header(r, rq.headers, &nh, "X-Road-Id", x->message_id);
	if (*x->rp)
		add_header(r, rq.headers, &nh, "X-Road-Represented-Party", x->rp);
	if (*x->ds)
		add_header(r, rq.headers, &nh, "X-Egov-Data-Subject", x->ds);
	if (*x->purpose)
		add_header(r, rq.headers, &nh, "X-Egov-Purpose", x->purpose);
	add_header(r, rq.headers, &nh, "X-Request-Id", req_id(r));
	err = httpc_send(&rq, provider_backend_got, x);
	if (err) {
		httpc_response fake = {0};
		fake.err = EGOV_EUNAVAILABLE;
		snprintf(fake.errmsg, sizeof fake.errmsg, "httpc_send: %s", egov_err_name(err));
		provider_backend_got(x, &fake);
	}
}

/* The pub/sub room answers on this (blocking pool) thread. */
static void provider_pubsub(xchg *x, const char *tail)
{
	buf out;
	const char *ct = NULL;
	int status = 500;
	egov_err err;

	buf_init(&out, EGOV_RESPONSE_MAX);
	err = exchange_pubsub_handle(x->provider, x->client, x->service_code, x->method, tail, x->message_id,
				     x->req_body, x->req_len, &status, &out, &ct);
	if (err) {
		buf_release(&out);
		log_warn("exchange.pubsub", "%s %s: %s", x->service, x->message_id, egov_err_name(err));
		provider_refuse_logged(x, egov_err_http_status(err), err == EGOV_ENOTFOUND ? "not_found" : "internal",
				       NULL);
		return;
	}
	x->status = status;
	snprintf(x->resp_ct, sizeof x->resp_ct, "%s", ct && *ct ? ct : "application/json");
	buf_release(&x->resp_body);
	x->resp_body = out;
	provider_finish(x);
}

/* /peer/v1/r1/{instance}/{class}/{member}/{subsystem}/{service}/{path...} */
egov_err exchange_provider_call(req *r)
{
	const egov_config *c = cfg();
	const char *parts[EGOV_PATH_SEGMENTS_MAX];
	const char *why = NULL, *client, *mid, *at, *cert, *sig, *tail, *h, *access_path;
	exchange_conf *cf = NULL;
	const exchange_cert *signer;
	const void *der;
	size_t nparts, der_len;
	char tls_sha[65];
	int64_t signed_us, now = time_now_us(), skew;
	int seen;
	xchg *x;
	buf canon;
	egov_err err;

	if (!is_gateway())
		return refuse(r, 404, "not_found", NULL, NULL);
	nparts = split_rest(r, req_path(r) + strlen("/peer/v1/r1/"), parts, EGOV_PATH_SEGMENTS_MAX);
	cf = exchange_conf_get(&why);
	if (!cf)
		return refuse(r, 503, why ? why : "exchange.conf_missing", NULL, NULL);
	x = xchg_new(r, cf, SIDE_PROVIDER);
	if (!x) {
		exchange_conf_put(cf);
		return EGOV_ENOMEM;
	}
	/* Until the service is known to be ours there is no key to sign a
	 * refusal with. */
	if (nparts < 5 || !join_id(parts, 5, x->service) || !exchange_id_valid(x->service, EXCHANGE_ID_SERVICE) ||
	    !(x->svc = exchange_conf_service(cf, x->service)) || !join_id(parts, 4, x->provider) ||
	    !exchange_has_key(x->provider)) {
		xchg_free(x);
		return refuse(r, 404, "exchange.unknown_service", NULL, NULL);
	}
	x->service_code = parts[4];
	x->method = req_method_name(r);

	/* Refusals up to the replay check are answered at once, signed, and
	 * not logged: the request is not shown to be authentic. */
	client = req_header(r, "X-Road-Client");
	if (!client || !exchange_id_valid(client, EXCHANGE_ID_SUBSYSTEM)) {
		provider_problem_now(x, 400, "exchange.client_invalid", NULL);
		goto answered;
	}
	snprintf(x->client, sizeof x->client, "%s", client);
	mid = req_header(r, "X-Road-Id");
	if (mid && msgid_valid(mid))
		snprintf(x->message_id, sizeof x->message_id, "%s", mid);
	/* The TLS peer must be a gateway registered for the client. */
	der = req_client_cert(r, &der_len);
	if (!der) {
		audit_x(x, "exchange.signature_invalid", "no TLS client certificate");
		provider_problem_now(x, 401, "exchange.signature_invalid", "no TLS client certificate");
		goto answered;
	}
	crypto_sha256_hex(der, der_len, tls_sha);
	if (!exchange_conf_cert(cf, client, "tls", tls_sha)) {
		audit_x(x, "exchange.signature_invalid", "TLS certificate not in the configuration for the client");
		provider_problem_now(x, 401, "exchange.signature_invalid",
				     "TLS certificate not in the configuration for the client");
		goto answered;
	}
	at = req_header(r, "X-Egov-Signed-At");
	cert = req_header(r, "X-Egov-Signer-Cert");
	sig = req_header(r, "X-Egov-Signature");
	if (!exchange_sig_headers_valid(mid, at, cert, sig) || strlen(sig) >= sizeof x->req_sig ||
	    strlen(at) >= sizeof x->req_at) {
		audit_x(x, "exchange.signature_invalid", "signature headers missing or malformed");
		provider_problem_now(x, 401, "exchange.signature_invalid", "signature headers missing or malformed");
		goto answered;
	}
	signer = exchange_conf_cert(cf, client, "sign", cert);
	if (!signer) {
		audit_x(x, "exchange.signature_invalid", "signer certificate not in the configuration");
		provider_problem_now(x, 401, "exchange.signature_invalid", "signer certificate not in the configuration");
		goto answered;
	}
	snprintf(x->req_cert, sizeof x->req_cert, "%s", cert);
	snprintf(x->req_sig, sizeof x->req_sig, "%s", sig);
	snprintf(x->req_at, sizeof x->req_at, "%s", at);
	if (take_request_body(x)) {
		provider_problem_now(x, 503, "unavailable", NULL);
		goto answered;
	}
	h = req_header(r, "Content-Type");
	x->content_type = h ? h : "";
	h = req_header(r, "X-Road-Represented-Party");
	x->rp = h ? h : "";
	h = req_header(r, "X-Egov-Data-Subject");
	x->ds = h ? h : "";
	h = req_header(r, "X-Egov-Purpose");
	x->purpose = h ? h : "";
	tail = raw_tail(r, 8); /* peer v1 r1 I C M S SERVICE */
	x->path = tail ? tail : "/";
	{
		exchange_canon_req cr = {x->message_id, x->client, x->service, x->method, x->path, x->content_type,
					 x->rp, x->ds, x->purpose, x->req_at, x->req_sha};
		buf_init(&canon, 64 * 1024);
		err = exchange_canon_request(&cr, &canon);
		if (!err)
			err = exchange_verify(signer->pem, canon.data, canon.len, x->req_sig);
		buf_release(&canon);
	}
	if (err) {
		audit_x(x, "exchange.signature_invalid", "signature does not verify");
		provider_problem_now(x, 401, "exchange.signature_invalid", "signature does not verify");
		goto answered;
	}
	skew = (int64_t)exchange_settings(c)->clock_skew_s * 1000000;
	if (time_parse_rfc3339(x->req_at, &signed_us) || signed_us < now - skew || signed_us > now + skew) {
		audit_x(x, "exchange.signature_invalid", "signed-at outside the allowed clock skew");
		provider_problem_now(x, 401, "exchange.signature_invalid", "signed-at outside the allowed clock skew");
		goto answered;
	}
	seen = exchange_replay_seen(x->client, x->message_id, now, signed_us + skew);
	if (seen == 1) {
		audit_x(x, "exchange.replay", "message id seen in the replay window");
		provider_problem_now(x, 409, "exchange.replay", NULL);
		goto answered;
	}
	if (seen < 0) {
		provider_problem_now(x, 503, "unavailable", "replay window full");
		goto answered;
	}
	/* From here the request is authentic: every answer is logged, after
	 * its record is durable, so the answer is deferred. */
	exchange_log_cert(x->req_cert, signer->pem);
	log_sign_certs(cf, x->provider);
	x->known = true;
	req_defer(r);
	access_path = decoded_tail(parts, nparts, 5, r);
	if (!access_path || !exchange_conf_allowed(cf, x->client, x->service, x->method, access_path)) {
		audit_x(x, "exchange.access_denied", "no access right for this method and path");
		provider_refuse_logged(x, 403, "exchange.access_denied", NULL);
		return EGOV_OK;
	}
	if (x->svc->max_body > 0 && (int64_t)x->req_len > x->svc->max_body) {
		provider_refuse_logged(x, 413, "exchange.payload_too_large", NULL);
		return EGOV_OK;
	}
	if (exchange_pubsub_reserved(x->service_code)) {
		if (!req_route(r)->blocking) {
			provider_refuse_logged(x, 404, "exchange.unknown_service", NULL);
			return EGOV_OK;
		}
		provider_pubsub(x, access_path);
		return EGOV_OK;
	}
	{
		const char *url;
		int timeout_ms;
		if (!backend_find(r, x->service, &url, &timeout_ms)) {
			provider_refuse_logged(x, 502, "exchange.backend_unavailable", "no back-end configured");
			return EGOV_OK;
		}
		provider_forward(x, url, backend_timeout(x->svc, timeout_ms));
	}
	return EGOV_OK;

answered:
	xchg_end(x);
	return EGOV_OK;
}

/* ---- consumer side ---------------------------------------------------------------- */

/* The public-key pins (libcurl's "sha256//B64;...") of a subsystem's tls
 * certificates, computed once per configuration version: parsing
 * certificates on every call would cost more than the call. */
#define PINS_MAX 256

static struct {
	pthread_mutex_t mu;
	int64_t version;
	struct pin {
		char subsystem[EXCHANGE_ID_MAX];
		char *pins; /* NULL: none */
	} v[PINS_MAX];
	size_t n;
} pins = {.mu = PTHREAD_MUTEX_INITIALIZER, .version = -1};

static void pins_clear(void)
{
	size_t i;
	for (i = 0; i < pins.n; i++)
		free(pins.v[i].pins);
	pins.n = 0;
}

static char *pins_compute(const exchange_conf *cf, const char *subsystem)
{
	const exchange_subsystem *s = exchange_conf_subsystem(cf, subsystem);
	buf out;
	size_t i;

	buf_init(&out, 64 * 1024);
	for (i = 0; s && i < s->ncerts; i++) {
		BIO *bio;
		X509 *x509 = NULL;
		unsigned char *spki = NULL, hash[32], b64[48];
		int len;

		if (strcmp(s->certs[i].usage, "tls") != 0 || !s->certs[i].pem)
			continue;
		bio = BIO_new_mem_buf(s->certs[i].pem, -1);
		if (bio)
			x509 = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		BIO_free(bio);
		if (!x509)
			continue;
		len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x509), &spki);
		X509_free(x509);
		if (len <= 0)
			continue;
		SHA256(spki, (size_t)len, hash);
		OPENSSL_free(spki);
		EVP_EncodeBlock(b64, hash, sizeof hash);
		if ((out.len && buf_addc(&out, ';')) || buf_adds(&out, "sha256//") || buf_adds(&out, (char *)b64)) {
			buf_release(&out);
			return NULL;
		}
	}
	return out.len ? buf_detach(&out, NULL) : NULL;
}

/* The pins of subsystem, copied into the request's arena; NULL if it has
 * no tls certificate in the configuration. */
static const char *pins_get(req *r, const exchange_conf *cf, const char *subsystem)
{
	const char *out = NULL;
	size_t i;

	pthread_mutex_lock(&pins.mu);
	if (pins.version != exchange_conf_version(cf)) {
		pins_clear();
		pins.version = exchange_conf_version(cf);
	}
	for (i = 0; i < pins.n; i++)
		if (strcmp(pins.v[i].subsystem, subsystem) == 0)
			break;
	if (i == pins.n) {
		if (pins.n == PINS_MAX)
			pins_clear();
		i = pins.n++;
		snprintf(pins.v[i].subsystem, sizeof pins.v[i].subsystem, "%s", subsystem);
		pins.v[i].pins = pins_compute(cf, subsystem);
	}
	if (pins.v[i].pins)
		out = arena_strdup(req_arena(r), pins.v[i].pins);
	pthread_mutex_unlock(&pins.mu);
	return out;
}

static void consumer_logged(void *ctx, egov_err err)
{
	xchg *x = ctx;

	if (err == EGOV_ECONFLICT) {
		exchange_metrics_error("exchange.replay");
		x->status = 409;
		resp_problem(x->r, 409, "exchange.replay", "X-Road-Id", NULL);
	} else if (err) {
		log_error("exchange.log_failed", "consumer %s %s: %s", x->service, x->message_id, egov_err_name(err));
		exchange_metrics_error("unavailable");
		x->status = 503;
		resp_problem(x->r, 503, "unavailable", NULL, "message log unavailable");
	} else {
		answer(x, false);
	}
	xchg_done(x);
}

static void consumer_fail(xchg *x, int status, const char *code, const char *detail)
{
	exchange_metrics_error(code);
	x->status = status;
	buf_reset(&x->resp_body);
	drop_response_file(x);
	resp_problem(x->r, status, code, NULL, detail);
	xchg_done(x);
}

static void consumer_got(void *ctx, httpc_response *resp)
{
	xchg *x = ctx;
	const char *mid, *at, *cert, *sig;
	const exchange_cert *signer;
	exchange_canon_resp c = {0};
	buf canon;
	egov_err err;

	if (resp->err) {
		log_warn("exchange.provider", "%s %s: %s", x->service, x->message_id, resp->errmsg);
		if (resp->err == EGOV_EBUSY)
			consumer_fail(x, 504, "exchange.backend_timeout", "the provider's gateway did not answer in time");
		else
			consumer_fail(x, 502, "exchange.provider_unreachable", NULL);
		return;
	}
	mid = httpc_header(resp, "x-road-id");
	at = httpc_header(resp, "x-egov-signed-at");
	cert = httpc_header(resp, "x-egov-signer-cert");
	sig = httpc_header(resp, "x-egov-signature");
	if (!mid || strcmp(mid, x->message_id) != 0 || !at || !cert || !sig || strlen(sig) >= sizeof x->resp_sig ||
	    strlen(at) >= sizeof x->resp_at || strlen(cert) >= sizeof x->resp_cert) {
		consumer_fail(x, 502, "exchange.response_invalid", "response not signed");
		return;
	}
	signer = exchange_conf_cert(x->cf, x->provider, "sign", cert);
	if (!signer) {
		consumer_fail(x, 502, "exchange.response_invalid", "signer certificate not in the configuration");
		return;
	}
	snprintf(x->resp_at, sizeof x->resp_at, "%s", at);
	snprintf(x->resp_cert, sizeof x->resp_cert, "%s", cert);
	snprintf(x->resp_sig, sizeof x->resp_sig, "%s", sig);
	snprintf(x->resp_ct, sizeof x->resp_ct, "%s", resp->content_type);
	x->status = resp->status;
	take_response_body(x, resp);
	if (x->resp_fd < 0)
		crypto_sha256_hex(x->resp_body.data ? x->resp_body.data : "", x->resp_body.len, x->resp_sha);
	c.message_id = x->message_id;
	c.service = x->service;
	c.status = x->status;
	c.content_type = x->resp_ct;
	c.request_sig = x->req_sig;
	c.signed_at = x->resp_at;
	c.body_sha256 = x->resp_sha;
	buf_init(&canon, 64 * 1024);
	err = exchange_canon_response(&c, &canon);
	if (!err)
		err = exchange_verify(signer->pem, canon.data, canon.len, x->resp_sig);
	buf_release(&canon);
	if (err) {
		consumer_fail(x, 502, "exchange.response_invalid", "response signature does not verify");
		return;
	}
	x->signed_resp = true;
	log_exchange(x, consumer_logged);
}

/* Remembers the signing certificates of a subsystem for the log. */
static void log_sign_certs(const exchange_conf *cf, const char *subsystem)
{
	const exchange_subsystem *s = exchange_conf_subsystem(cf, subsystem);
	size_t i;

	for (i = 0; s && i < s->ncerts; i++)
		if (strcmp(s->certs[i].usage, "sign") == 0)
			exchange_log_cert(s->certs[i].sha256, s->certs[i].pem);
}

static const char *client_header(req *r)
{
	const char *h = req_header(r, "X-Road-Client");
	return h ? h : req_header(r, "Information-Mediator-Client");
}

/* An optional free-text header; false (answered) when malformed. */
static bool opt_header(req *r, const char *name, size_t max, const char **out)
{
	const char *h = req_header(r, name);

	*out = h ? h : "";
	if (h && !text_valid(h, max)) {
		refuse(r, 400, "exchange.header_invalid", name, NULL);
		return false;
	}
	return true;
}

/* /r1/{instance}/{class}/{member}/{subsystem}/{service}/{path...} and the
 * metaservices under /r1. */
egov_err exchange_consumer_call(req *r)
{
	const egov_config *c = cfg();
	const char *parts[EGOV_PATH_SEGMENTS_MAX];
	const char *why = NULL, *client, *mid, *h, *access_path;
	const exchange_subsystem *cs, *ps;
	exchange_conf *cf;
	char member[EXCHANGE_ID_MAX];
	size_t nparts;
	bool handled = false;
	xchg *x;
	httpc_request rq = {0};
	size_t nh = 0;
	buf canon;
	char *url;
	egov_err err;

	if (!is_gateway())
		return refuse(r, 404, "not_found", NULL, NULL);
	nparts = split_rest(r, req_param(r, "rest"), parts, EGOV_PATH_SEGMENTS_MAX);
	client = client_header(r);
	if (client && !exchange_id_valid(client, EXCHANGE_ID_SUBSYSTEM))
		return refuse(r, 400, "exchange.client_invalid", "X-Road-Client", NULL);
	cf = exchange_conf_get(&why);
	if (!cf)
		return refuse(r, 503, why ? why : "exchange.conf_missing", NULL, NULL);
	err = exchange_meta_answer(r, cf, client ? client : "", parts, nparts, &handled);
	if (handled) {
		exchange_conf_put(cf);
		return err;
	}
	if (!client) {
		exchange_conf_put(cf);
		return refuse(r, 400, "exchange.client_invalid", "X-Road-Client", NULL);
	}
	cs = exchange_conf_subsystem(cf, client);
	if (!cs || !cs->gateway_url || !url_eq(cs->gateway_url, exchange_settings(c)->gateway_url) || !exchange_has_key(client)) {
		exchange_conf_put(cf);
		return refuse(r, 403, "exchange.client_not_local", "X-Road-Client", NULL);
	}
	if (nparts < 3 || !join_id(parts, 3, member) || !exchange_id_valid(member, EXCHANGE_ID_MEMBER) ||
	    !exchange_conf_member_known(cf, member)) {
		exchange_conf_put(cf);
		return refuse(r, 404, "exchange.unknown_member", NULL, NULL);
	}
	x = xchg_new(r, cf, SIDE_CONSUMER);
	if (!x) {
		exchange_conf_put(cf);
		return EGOV_ENOMEM;
	}
	snprintf(x->client, sizeof x->client, "%s", client);
	if (nparts < 4 || !join_id(parts, 4, x->provider) || !exchange_id_valid(x->provider, EXCHANGE_ID_SUBSYSTEM) ||
	    !(ps = exchange_conf_subsystem(cf, x->provider)) || !ps->gateway_url || !*ps->gateway_url) {
		xchg_free(x);
		return refuse(r, 404, "exchange.unknown_subsystem", NULL, NULL);
	}
	if (nparts < 5 || !join_id(parts, 5, x->service) || !exchange_id_valid(x->service, EXCHANGE_ID_SERVICE) ||
	    !(x->svc = exchange_conf_service(cf, x->service))) {
		xchg_free(x);
		return refuse(r, 404, "exchange.unknown_service", NULL, NULL);
	}
	x->service_code = parts[4];
	x->method = req_method_name(r);
	access_path = decoded_tail(parts, nparts, 5, r);
	if (!access_path || !exchange_conf_allowed(cf, x->client, x->service, x->method, access_path)) {
		xchg_free(x);
		return refuse(r, 403, "exchange.access_denied", NULL, NULL);
	}
	if ((err = take_request_body(x))) {
		xchg_free(x);
		return err;
	}
	if (x->svc->max_body > 0 && (int64_t)x->req_len > x->svc->max_body) {
		xchg_free(x);
		return refuse(r, 413, "exchange.payload_too_large", NULL, NULL);
	}
	if (exchange_pubsub_reserved(x->service_code) &&
	    (err = exchange_pubsub_consumer_note(x->client, x->provider, x->service_code, x->method, access_path,
						 req_header(r, "X-Egov-Push-Url")))) {
		xchg_free(x);
		if (err == EGOV_EINVAL)
			return refuse(r, 400, "pubsub.push_url_invalid", "X-Egov-Push-Url", NULL);
		return err;
	}
	if (exchange_log_sealing_overdue()) {
		xchg_free(x);
		return refuse(r, 503, "exchange.timestamping_overdue", NULL, NULL);
	}
	mid = req_header(r, "X-Road-Id");
	if (mid && !msgid_valid(mid)) {
		xchg_free(x);
		return refuse(r, 400, "exchange.header_invalid", "X-Road-Id", NULL);
	}
	if (!opt_header(r, "X-Road-Represented-Party", PARTY_MAX, &x->rp) ||
	    !opt_header(r, "X-Egov-Data-Subject", PARTY_MAX, &x->ds) ||
	    !opt_header(r, "X-Egov-Purpose", PURPOSE_MAX, &x->purpose)) {
		xchg_free(x);
		return EGOV_OK;
	}
	if (mid)
		snprintf(x->message_id, sizeof x->message_id, "%s", mid);
	else if ((err = uuid_v7(x->message_id))) {
		xchg_free(x);
		return err;
	}
	h = req_header(r, "Content-Type");
	x->content_type = h ? h : "";
	if (!text_valid(x->content_type, sizeof x->resp_ct - 1)) {
		xchg_free(x);
		return refuse(r, 400, "exchange.header_invalid", "Content-Type", NULL);
	}
	x->path = raw_tail(r, 6); /* r1 I C M S SERVICE */
	if (!x->path) {
		xchg_free(x);
		return EGOV_ENOMEM;
	}
	time_format_rfc3339(time_now_us(), 3, x->req_at);
	{
		exchange_canon_req cr = {x->message_id, x->client, x->service, x->method, x->path, x->content_type,
					 x->rp, x->ds, x->purpose, x->req_at, x->req_sha};
		buf_init(&canon, 64 * 1024);
		err = exchange_canon_request(&cr, &canon);
		if (!err)
			err = exchange_sign(x->client, canon.data, canon.len, x->req_sig, x->req_cert);
		buf_release(&canon);
	}
	if (err) {
		xchg_free(x);
		if (err == EGOV_ENOTFOUND)
			return refuse(r, 403, "exchange.client_not_local", "X-Road-Client", NULL);
		return err;
	}
	log_sign_certs(cf, x->client);
	log_sign_certs(cf, x->provider);
	x->known = true;

	{
		const char *base = ps->gateway_url;
		size_t lb = strlen(base), ls = strlen(x->service), lp = strlen(x->path);
		static const char mid_part[] = "/peer/v1/r1/";
		while (lb && base[lb - 1] == '/')
			lb--;
		url = arena_alloc(req_arena(r), lb + sizeof mid_part + ls + lp + 1);
		if (!url) {
			xchg_free(x);
			return EGOV_ENOMEM;
		}
		memcpy(url, base, lb);
		memcpy(url + lb, mid_part, sizeof mid_part - 1);
		memcpy(url + lb + sizeof mid_part - 1, x->service, ls);
		memcpy(url + lb + sizeof mid_part - 1 + ls, x->path, lp + 1);
	}
	rq.method = x->method;
	rq.url = url;
	rq.body = x->req_len ? x->req_body : NULL;
	rq.body_len = x->req_len;
	rq.body_from_fd = x->req_fd >= 0;
	rq.body_fd = x->req_fd;
	rq.spool_over = SPOOL_THRESHOLD;
	/* The provider waits up to the service's timeout and then answers a
	 * signed 504 itself. */
	rq.timeout_ms = (int)(x->svc->timeout_ms > 0 ? x->svc->timeout_ms : exchange_settings(c)->backend_timeout_ms) +
			PROVIDER_MARGIN_MS;
	rq.response_max = (size_t)(x->svc->max_body > PROBLEM_BODY_MAX ? x->svc->max_body : PROBLEM_BODY_MAX);
	rq.client_cert = c->peer_tls_cert;
	rq.client_key = c->peer_tls_key;
	rq.ca_file = peer_ca_path[0] ? peer_ca_path : NULL;
	/* The TLS server must be a gateway registered for the provider. */
	rq.pinned_pubkey = pins_get(r, cf, x->provider);
	if (!rq.pinned_pubkey) {
		xchg_free(x);
		return refuse(r, 502, "exchange.provider_unreachable", NULL, "no TLS certificate for the provider");
	}
	add_header(r, rq.headers, &nh, "Content-Type", x->content_type);
	add_header(r, rq.headers, &nh, "Expect", "");
	if ((h = req_header(r, "Accept")))
		add_header(r, rq.headers, &nh, "Accept", h);
	if ((h = req_header(r, "Accept-Language")))
		add_header(r, rq.headers, &nh, "Accept-Language", h);
	add_header(r, rq.headers, &nh, "X-Request-Id", req_id(r));
	add_header(r, rq.headers, &nh, "X-Road-Client", x->client);
	add_header(r, rq.headers, &nh, "X-Road-Id", x->message_id);
	if (*x->rp)
		add_header(r, rq.headers, &nh, "X-Road-Represented-Party", x->rp);
	if (*x->ds)
		add_header(r, rq.headers, &nh, "X-Egov-Data-Subject", x->ds);
	if (*x->purpose)
		add_header(r, rq.headers, &nh, "X-Egov-Purpose", x->purpose);
	add_header(r, rq.headers, &nh, "X-Egov-Signed-At", x->req_at);
	add_header(r, rq.headers, &nh, "X-Egov-Signer-Cert", x->req_cert);
	add_header(r, rq.headers, &nh, "X-Egov-Signature", x->req_sig);
	req_defer(r);
	err = httpc_send(&rq, consumer_got, x);
	if (err) {
		httpc_response fake = {0};
		fake.err = EGOV_EUNAVAILABLE;
		snprintf(fake.errmsg, sizeof fake.errmsg, "httpc_send: %s", egov_err_name(err));
		consumer_got(x, &fake);
	}
	return EGOV_OK;
}

/* GovStack's listClients at the root, as an X-Road security server has it. */
egov_err exchange_list_clients_root(req *r)
{
	static const char *const parts[] = {"listClients"};
	const char *why = NULL;
	exchange_conf *cf;
	bool handled = false;
	egov_err err;

	if (!is_gateway())
		return refuse(r, 404, "not_found", NULL, NULL);
	cf = exchange_conf_get(&why);
	if (!cf)
		return refuse(r, 503, why ? why : "exchange.conf_missing", NULL, NULL);
	err = exchange_meta_answer(r, cf, "", parts, 1, &handled);
	exchange_conf_put(cf);
	return handled ? err : refuse(r, 404, "not_found", NULL, NULL);
}

/* Head time, both sides (before the body is read): the service's
 * max_body in the configuration in force becomes the request's body
 * limit, so an oversized body is refused with 413
 * exchange.payload_too_large on its Content-Length without being read,
 * and a chunked one is cut at the limit. */
egov_err exchange_service_limit_head(req *r)
{
	const char *parts[6], *why = NULL, *cl = req_header(r, "Content-Length");
	char service[EXCHANGE_ID_MAX];
	const exchange_service *svc;
	exchange_conf *cf;

	if (!is_gateway() || ((!cl || strcmp(cl, "0") == 0) && !req_header(r, "Transfer-Encoding")))
		return EGOV_OK; /* no body: nothing to limit */
	if (split_rest(r, req_param(r, "rest"), parts, 6) < 5 || !join_id(parts, 5, service) ||
	    !exchange_id_valid(service, EXCHANGE_ID_SERVICE))
		return EGOV_OK; /* the handler refuses it */
	if (!(cf = exchange_conf_get(&why)))
		return EGOV_OK;
	svc = exchange_conf_service(cf, service);
	if (svc && svc->max_body > 0) {
		req_body_limit(r, (size_t)svc->max_body, "exchange.payload_too_large");
		if (cl && strtoull(cl, NULL, 10) > (unsigned long long)svc->max_body)
			exchange_metrics_error("exchange.payload_too_large");
	}
	exchange_conf_put(cf);
	return EGOV_OK;
}

/* ---- CLI: egov exchange backend ... ------------------------------------------------ */

static int backend_usage(void)
{
	fputs("usage: egov exchange backend set SERVICE URL [--timeout-ms N]\n"
	      "       egov exchange backend list\n"
	      "       egov exchange backend remove SERVICE\n",
	      stderr);
	return 2;
}

int exchange_gateway_command(int argc, char **argv, db *d)
{
	db_conn *c = NULL;
	int rc = 2;
	egov_err err;

	if (argc < 2)
		return backend_usage();
	if (db_conn_open(d, &c)) {
		fprintf(stderr, "egov: cannot open the database\n");
		return 2;
	}
	if (strcmp(argv[1], "set") == 0) {
		long timeout = 0;
		char now[32];
		int i;
		if (argc < 4) {
			rc = backend_usage();
			goto out;
		}
		for (i = 4; i < argc; i++) {
			char *end;
			if (strcmp(argv[i], "--timeout-ms") != 0 || i + 1 >= argc) {
				fprintf(stderr, "egov: %s: unknown option or missing value\n", argv[i]);
				rc = 1;
				goto out;
			}
			errno = 0;
			timeout = strtol(argv[++i], &end, 10);
			if (errno || *end || timeout < 10 || timeout > 600000) {
				fprintf(stderr, "egov: --timeout-ms: expected 10..600000\n");
				rc = 1;
				goto out;
			}
		}
		if (!exchange_id_valid(argv[2], EXCHANGE_ID_SERVICE)) {
			fprintf(stderr, "egov: %s: not a service id (INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE)\n", argv[2]);
			rc = 1;
			goto out;
		}
		if (!backend_url_valid(argv[3])) {
			fprintf(stderr, "egov: %s: expected an http:// or https:// URL without query\n", argv[3]);
			rc = 1;
			goto out;
		}
		time_format_rfc3339(time_now_us(), 0, now);
		{
			db_param p[] = {DBP_S(argv[2]), DBP_S(argv[3]), DBP_I(timeout), DBP_S(now)};
			err = db_exec(c,
				      "INSERT INTO exchange_backend (service, url, timeout_ms, updated_at) VALUES (?, ?, ?, ?)"
				      " ON CONFLICT (service) DO UPDATE SET url = excluded.url,"
				      " timeout_ms = excluded.timeout_ms, updated_at = excluded.updated_at",
				      p, 4, NULL);
		}
		if (err) {
			fprintf(stderr, "egov: %s\n", db_conn_errmsg(c));
			goto out;
		}
		printf("%s -> %s\n", argv[2], argv[3]);
		rc = 0;
	} else if (strcmp(argv[1], "list") == 0) {
		db_rows *rows = NULL;
		bool more;
		if (db_query(c, "SELECT service, url, timeout_ms FROM exchange_backend ORDER BY service", NULL, 0,
			     &rows)) {
			fprintf(stderr, "egov: %s\n", db_conn_errmsg(c));
			goto out;
		}
		while (!db_rows_next(rows, &more) && more)
			printf("%s\t%s\t%lld\n", db_rows_text(rows, 0), db_rows_text(rows, 1),
			       (long long)db_rows_int(rows, 2));
		db_rows_free(rows);
		rc = 0;
	} else if (strcmp(argv[1], "remove") == 0 && argc == 3) {
		db_param p[] = {DBP_S(argv[2])};
		int64_t changes = 0;
		if (db_exec(c, "DELETE FROM exchange_backend WHERE service = ?", p, 1, &changes)) {
			fprintf(stderr, "egov: %s\n", db_conn_errmsg(c));
			goto out;
		}
		if (!changes) {
			fprintf(stderr, "egov: %s: no back-end set\n", argv[2]);
			rc = 1;
			goto out;
		}
		rc = 0;
	} else {
		rc = backend_usage();
	}
out:
	db_conn_close(c);
	return rc;
}

/* ---- module --------------------------------------------------------------------- */

egov_err exchange_gateway_start(const egov_config *c)
{
	db_conn *conn;
	egov_err err;

	if (strcmp(c->role, "gateway") != 0)
		return EGOV_OK;
	if (c->peer_tls_cert[0] && (err = peer_ca_prepare(c))) {
		log_error("exchange.start", "cannot write the peer CA bundle from %s/pki", c->data_dir);
		return err;
	}
	if ((err = db_thread_conn(app()->db, &conn)) || (err = backends_load(conn)))
		return err;
	if ((err = replay_preload(conn, c))) {
		log_error("exchange.start", "cannot read recent message ids from the message log: %s",
			  db_conn_errmsg(conn));
		return err;
	}
	pthread_mutex_lock(&bodies.mu);
	bodies.stop = false;
	bodies.running = pthread_create(&bodies.thread, NULL, bodies_main, NULL) == 0;
	pthread_mutex_unlock(&bodies.mu);
	if (!bodies.running)
		return EGOV_EINTERNAL;
	pthread_mutex_lock(&hk.mu);
	hk.stop = false;
	hk.running = pthread_create(&hk.thread, NULL, housekeeping_main, NULL) == 0;
	pthread_mutex_unlock(&hk.mu);
	return hk.running ? EGOV_OK : EGOV_EINTERNAL;
}

/* Writes the refusals still queued to the audit log, stops the thread and
 * frees the back-end table. */
void exchange_gateway_stop(void)
{
	size_t i;
	bool running;

	pthread_mutex_lock(&hk.mu);
	running = hk.running;
	hk.stop = true;
	pthread_cond_signal(&hk.cv);
	pthread_mutex_unlock(&hk.mu);
	if (running)
		pthread_join(hk.thread, NULL);
	pthread_mutex_lock(&hk.mu);
	hk.running = false;
	pthread_mutex_unlock(&hk.mu);
	/* The body store finishes what is queued (their callbacks run). */
	pthread_mutex_lock(&bodies.mu);
	running = bodies.running;
	bodies.stop = true;
	pthread_cond_signal(&bodies.cv);
	pthread_mutex_unlock(&bodies.mu);
	if (running)
		pthread_join(bodies.thread, NULL);
	bodies.running = false;
	pthread_mutex_lock(&backends.mu);
	for (i = 0; i < backends.n; i++)
		free(backends.v[i].url);
	free(backends.v);
	backends.v = NULL;
	backends.n = 0;
	pthread_mutex_unlock(&backends.mu);
	pthread_mutex_lock(&pins.mu);
	pins_clear();
	pthread_mutex_unlock(&pins.mu);
	for (i = 0; i < REPLAY_SHARDS; i++) {
		free(replay[i].slots);
		replay[i].slots = NULL;
		replay[i].cap = replay[i].used = 0;
	}
}
