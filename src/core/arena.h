/*
 * arena.h: a per-request bump allocator.
 *
 * Everything allocated from an arena lives until arena_release(); nothing
 * is freed one by one. Allocation is capped (cap_max bytes in total) so a
 * request cannot make the server allocate without bound: over the cap,
 * arena_alloc() returns NULL and the caller answers EGOV_ELIMIT/ENOMEM.
 */
#ifndef EGOV_CORE_ARENA_H
#define EGOV_CORE_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk;

typedef struct arena {
	arena_chunk *head;
	size_t used_total;
	size_t cap_max;
} arena;

void arena_init(arena *a, size_t cap_max);
void arena_release(arena *a);
/* Frees every chunk but the first one allocated and forgets everything
 * allocated: the arena is empty again and its next small allocations need
 * no malloc. For objects reused across requests. */
void arena_reset(arena *a);
/* Returns zeroed memory aligned for any type, or NULL over the cap. */
void *arena_alloc(arena *a, size_t n);
char *arena_strndup(arena *a, const char *s, size_t n);
char *arena_strdup(arena *a, const char *s);

#endif
