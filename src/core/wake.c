/*
 * wake.c: releasing a group commit's callers as a binary tree (wake.h).
 */
#include <errno.h>

#include "core/wake.h"
#include "core/banned.h"

egov_err wake_init(wake_node *w)
{
	w->child[0] = w->child[1] = NULL;
	return sem_init(&w->sem, 0, 0) == 0 ? EGOV_OK : EGOV_EINTERNAL;
}

void wake_destroy(wake_node *w)
{
	sem_destroy(&w->sem);
}

void wake_tree_release(size_t n, wake_node *(*at)(void *ctx, size_t i), void *ctx)
{
	size_t i;

	for (i = 0; i < n; i++) {
		wake_node *w = at(ctx, i);
		w->child[0] = 2 * i + 1 < n ? at(ctx, 2 * i + 1) : NULL;
		w->child[1] = 2 * i + 2 < n ? at(ctx, 2 * i + 2) : NULL;
	}
	if (n)
		sem_post(&at(ctx, 0)->sem);
}

void wake_wait(wake_node *w)
{
	while (sem_wait(&w->sem) != 0 && errno == EINTR)
		;
	if (w->child[0])
		sem_post(&w->child[0]->sem);
	if (w->child[1])
		sem_post(&w->child[1]->sem);
}
