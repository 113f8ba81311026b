/* arena.c: bump allocator in linked chunks; see arena.h. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/banned.h"

struct arena_chunk {
	arena_chunk *next;
	size_t size;
	size_t used;
	alignas(max_align_t) unsigned char mem[];
};

#define ARENA_CHUNK_MIN 4096

void arena_init(arena *a, size_t cap_max)
{
	a->head = NULL;
	a->used_total = 0;
	a->cap_max = cap_max;
}

void arena_release(arena *a)
{
	arena_chunk *c = a->head;
	while (c) {
		arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used_total = 0;
}

void arena_reset(arena *a)
{
	arena_chunk *c = a->head, *keep = NULL;

	while (c) {
		arena_chunk *next = c->next;
		if (next)
			free(c);
		else
			keep = c; /* the oldest chunk is last in the list */
		c = next;
	}
	if (keep)
		keep->used = 0;
	a->head = keep;
	a->used_total = 0;
}

void *arena_alloc(arena *a, size_t n)
{
	const size_t align = alignof(max_align_t);
	arena_chunk *c = a->head;
	size_t need = (n + align - 1) & ~(align - 1);
	void *p;

	if (n == 0)
		need = align;
	if (need < n || need > a->cap_max || a->used_total > a->cap_max - need)
		return NULL;
	if (!c || c->size - c->used < need) {
		size_t size = need > ARENA_CHUNK_MIN ? need : ARENA_CHUNK_MIN;
		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->size = size;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	p = c->mem + c->used;
	c->used += need;
	a->used_total += need;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}
