/*
 * group_commit.c: the queue and the serving thread of a group committer
 * (group_commit.h).
 *
 * The wake-up policy: an appender signals the thread when the queue
 * becomes non-empty and when it reaches the size of the last group; in
 * between the thread may be lingering on a timer for that group to form
 * again. Without the linger a committer whose callers all return at once
 * would commit the first one or two to come back, each paying a whole
 * fsync, while the rest are still waking up.
 */
#include <errno.h>
#include <time.h>

#include "core/group_commit.h"
#include "core/timeutil.h"
#include "core/banned.h"

/* Waits (mu held) until the group that was just released has queued again
 * or the linger time passed. A lone sequential caller has group 1 and
 * never waits; nor does a run for kicked work with nothing queued. */
static void linger(group_commit *g)
{
	struct timespec until;
	int64_t deadline;

	if (!g->head || g->queued >= g->group || g->closing || g->linger_us <= 0)
		return;
	deadline = time_mono_us() + g->linger_us;
	until.tv_sec = (time_t)(deadline / 1000000);
	until.tv_nsec = (long)(deadline % 1000000) * 1000;
	while (g->queued < g->group && !g->closing)
		if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT)
			break;
}

/* Detaches the next batch (mu held): a prefix of the queue. */
static gc_item *take(group_commit *g, int mode, size_t *count)
{
	const group_commit_ops *o = g->ops;
	gc_item *first = g->head, *last = NULL, *it;
	size_t n = 0, bytes = 0;

	for (it = g->head; it && n < o->batch_max; it = it->next) {
		if (n && o->batch_bytes && bytes + it->bytes > o->batch_bytes)
			break;
		if (o->fits && !o->fits(g->ctx, it, mode))
			break;
		bytes += it->bytes;
		last = it;
		n++;
	}
	*count = n;
	if (!last)
		return NULL;
	g->head = last->next;
	if (!g->head)
		g->tail = NULL;
	last->next = NULL;
	g->queued -= n;
	g->queued_bytes -= bytes;
	return first;
}

static void *serve(void *arg)
{
	group_commit *g = arg;
	const group_commit_ops *o = g->ops;
	int64_t t0, took;
	gc_item *items;
	egov_err begun;
	size_t n;
	int mode;

	pthread_mutex_lock(&g->mu);
	for (;;) {
		while (!g->head && !g->kicked && !g->closing)
			pthread_cond_wait(&g->cv, &g->mu);
		if (!g->head && !g->kicked)
			break;
		linger(g);
		mode = o->mode ? o->mode(g->ctx, g->head) : 0;
		begun = EGOV_OK;
		if (o->begin) {
			pthread_mutex_unlock(&g->mu);
			begun = o->begin(g->ctx, mode);
			pthread_mutex_lock(&g->mu);
		}
		g->kicked = false;
		items = take(g, mode, &n);
		pthread_mutex_unlock(&g->mu);

		t0 = time_mono_us();
		o->run(g->ctx, items, n, mode, begun);
		took = time_mono_us() - t0;

		pthread_mutex_lock(&g->mu);
		if (n)
			g->group = n;
		/* Waiting longer than a run takes would cost more than the
		 * commit it saves. */
		g->linger_us = took < o->linger_max_us ? took : o->linger_max_us;
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

egov_err group_commit_start(group_commit *g, const group_commit_ops *ops, void *ctx)
{
	pthread_condattr_t attr;

	*g = (group_commit){.ops = ops, .ctx = ctx, .group = 1};
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&g->thread, NULL, serve, g) != 0) {
		pthread_cond_destroy(&g->cv);
		pthread_mutex_destroy(&g->mu);
		return EGOV_EINTERNAL;
	}
	g->started = g->inited = true;
	return EGOV_OK;
}

egov_err group_commit_queue(group_commit *g, gc_item *it)
{
	egov_err err = EGOV_OK;

	it->next = NULL;
	pthread_mutex_lock(&g->mu);
	if (g->closing) {
		err = EGOV_EUNAVAILABLE;
		goto out;
	}
	if (g->ops->queue_bytes_max && g->queued_bytes + it->bytes > g->ops->queue_bytes_max) {
		err = EGOV_EBUSY;
		goto out;
	}
	if (g->tail)
		g->tail->next = it;
	else
		g->head = it;
	g->tail = it;
	g->queued++;
	g->queued_bytes += it->bytes;
	/* Wake the thread when work appears and when the group is complete;
	 * between the two it may be lingering on a timer. */
	if (g->queued == 1 || g->queued >= g->group)
		pthread_cond_signal(&g->cv);
out:
	pthread_mutex_unlock(&g->mu);
	return err;
}

void group_commit_kick(group_commit *g)
{
	pthread_mutex_lock(&g->mu);
	if (!g->closing) {
		g->kicked = true;
		pthread_cond_signal(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
}

void group_commit_stop(group_commit *g)
{
	if (!g->started)
		return;
	pthread_mutex_lock(&g->mu);
	g->closing = true;
	pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL); /* serves what is queued first */
	g->started = false;
}

void group_commit_release(group_commit *g)
{
	if (!g->inited)
		return;
	group_commit_stop(g);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	g->inited = false;
}
