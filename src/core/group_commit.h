/*
 * group_commit.h: a queue that one thread serves in groups, the core that
 * the database's batch writer (db_batch.c) and the chain-log writer
 * (chainlog.c) share.
 *
 * Callers queue items and wait (or are called back) in their own way; the
 * serving thread wakes when work appears, optionally lingers for the group
 * it released last to queue again, takes a prefix of the queue as one
 * batch and hands it to the user's run(), which settles every item of it
 * (one transaction, one commit, one fsync for all of them). What a batch
 * is and how its callers learn the outcome is the user's: this file only
 * owns the queue, the thread, the wake-up policy and draining at stop.
 *
 * Invariants:
 * - Only the serving thread removes items; an item belongs to the user
 *   again once run() was handed it, and the core never touches it after.
 * - Items are taken in queue order, as a prefix: fits() refusing an item
 *   ends the batch there, and the item waits for the next one.
 * - group_commit_stop() serves everything queued before it returns; a
 *   queue call that races with it gets EGOV_EUNAVAILABLE and nothing is
 *   queued.
 */
#ifndef EGOV_CORE_GROUP_COMMIT_H
#define EGOV_CORE_GROUP_COMMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Embedded first in the user's item. bytes counts against the limits. */
typedef struct gc_item {
	struct gc_item *next;
	size_t bytes;
} gc_item;

typedef struct group_commit_ops {
	size_t batch_max;       /* items per batch (required, >= 1) */
	size_t batch_bytes;     /* bytes per batch; 0: no limit. The first item always fits. */
	size_t queue_bytes_max; /* bytes waiting; past it group_commit_queue() refuses: 0: no limit */
	/* Longest the thread waits for the group it released last to queue
	 * again before it takes a batch (at most as long as the last run
	 * took); 0: take at once. */
	int64_t linger_max_us;
	/* Optional, queue lock held: looks at the waiting items (the list
	 * from q, NULL when only kicked) and picks a mode for the batch. */
	int (*mode)(void *ctx, const gc_item *q);
	/* Optional, no lock held, before the batch is taken: for a user that
	 * opens its transaction first, so that items queued while it waits
	 * for the database's write lock join this batch. */
	egov_err (*begin)(void *ctx, int mode);
	/* Optional, queue lock held: whether it may join a batch of mode. */
	bool (*fits)(void *ctx, const gc_item *it, int mode);
	/* Settles a batch, no lock held: items is a NULL-terminated list of n
	 * (n may be 0 after group_commit_kick()); begun is begin()'s result
	 * (EGOV_OK without begin). Every item must be settled. */
	void (*run)(void *ctx, gc_item *items, size_t n, int mode, egov_err begun);
} group_commit_ops;

/* Caller-owned; the fields are private to group_commit.c. */
typedef struct group_commit {
	const group_commit_ops *ops;
	void *ctx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	gc_item *head, *tail;
	size_t queued, queued_bytes;
	size_t group;      /* size of the last batch: the callers likely to come back */
	int64_t linger_us; /* how long the last run took, capped */
	bool kicked, closing, started, inited;
	pthread_t thread;
} group_commit;

/* Starts the serving thread. ops and ctx must outlive group_commit_stop().
 * EGOV_EINTERNAL if the thread cannot be made (nothing to stop then). */
egov_err group_commit_start(group_commit *g, const group_commit_ops *ops, void *ctx);
/* Queues it (it->bytes set by the caller). EGOV_EUNAVAILABLE once stopping
 * began, EGOV_EBUSY when queue_bytes_max would be passed; the item is not
 * queued then and stays the caller's. */
egov_err group_commit_queue(group_commit *g, gc_item *it);
/* Makes the thread run once even with nothing queued (work of the user's
 * that is not an item). Coalesced; harmless while stopping. */
void group_commit_kick(group_commit *g);
/* Serves what is queued and stops the thread; queue calls afterwards get
 * EGOV_EUNAVAILABLE. Does nothing for a g that is not running. */
void group_commit_stop(group_commit *g);
/* Stops g if it runs and releases it. Does nothing for a g that never
 * started. */
void group_commit_release(group_commit *g);

#endif
