/*
 * replay.c: the gateway's replay window. A message id is remembered per
 * client until its signed-at time leaves the clock-skew window (after that
 * the signing-time check refuses it); the message log's uniqueness on
 * (side, client, message id) refuses it for good. One window serves every
 * signed message this gateway receives: service calls and pushes. Keys
 * are 64 bits of SHA-256(client "\n" id) in sharded open-addressing
 * tables, bounded per shard (EXCHANGE_REPLAY_SHARD_MAX).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

/* Shards of the window, each with its own lock: receiving threads
 * rarely wait for each other. */
#define REPLAY_SHARDS 16

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
	if (cap > EXCHANGE_REPLAY_SHARD_MAX)
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

egov_err gateway_replay_preload(db_conn *conn, int64_t skew_us)
{
	replay_load l = {.now = time_now_us(), .skew = skew_us};
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
	log_info("exchange.replay_window", "%zu message ids of the last %lld s reloaded from the message log", l.kept,
		 (long long)(2 * skew_us / 1000000));
	return EGOV_OK;
}

void gateway_replay_clear(void)
{
	size_t i;

	pthread_once(&replay_once, replay_init);
	for (i = 0; i < REPLAY_SHARDS; i++) {
		pthread_mutex_lock(&replay[i].mu);
		free(replay[i].slots);
		replay[i].slots = NULL;
		replay[i].cap = replay[i].used = 0;
		pthread_mutex_unlock(&replay[i].mu);
	}
}
