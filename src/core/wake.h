/*
 * wake.h: release the callers of one group commit as a binary tree.
 *
 * A group committer (the audit writer, the database's batch writer) settles
 * hundreds of callers at once. Woken through one mutex and condition
 * variable, each of them would queue on that mutex again just to return;
 * woken one by one, the committer would make hundreds of system calls
 * before it could start the next group. Instead each caller sleeps on a
 * semaphore of its own; the committer links the group into a binary tree
 * (caller i wakes callers 2i+1 and 2i+2) and posts the root only, and each
 * caller, once woken, posts its two children before it returns.
 *
 * Invariants:
 * - A node lives on its caller's stack: the committer must not touch any
 *   node of the group after wake_tree_release(), and a caller must not
 *   return before wake_wait() has released its children.
 * - Every node of a released group is posted exactly once.
 */
#ifndef EGOV_CORE_WAKE_H
#define EGOV_CORE_WAKE_H

#include <semaphore.h>
#include <stddef.h>

#include "core/err.h"

typedef struct wake_node {
	sem_t sem;
	struct wake_node *child[2];
} wake_node;

egov_err wake_init(wake_node *w); /* EGOV_EINTERNAL if the semaphore cannot be made */
void wake_destroy(wake_node *w);

/* The committer: links the group's n nodes, at(ctx, i) for i < n, into a
 * tree and posts its root. Nothing is posted when n is 0. */
void wake_tree_release(size_t n, wake_node *(*at)(void *ctx, size_t i), void *ctx);

/* A caller: sleeps until its group is released, then wakes its children. */
void wake_wait(wake_node *w);

#endif
