/*
 * lend.h: lend a resident memory area to the next anonymous mapping a
 * library call on this thread makes, instead of letting the kernel map,
 * fault in, zero and free fresh pages for it.
 *
 * Why: libsodium maps Argon2id's working memory (19 MiB at egov's
 * parameters) with MAP_POPULATE and unmaps it again for every hash. The
 * kernel's share of that (4,864 page faults, zeroing, memory-cgroup
 * charging, freeing, and in a multi-threaded process a TLB shootdown on
 * every other CPU) measured a third of the hash's CPU time on the 2-core
 * virtual machines egov is benchmarked on (docs/benchmarks.md, "Trust
 * layer"). The hashing slots keep one area each and lend it around each
 * call into libsodium; the cryptography stays libsodium's.
 *
 * How: this object defines mmap() and munmap() in the executable, which
 * the dynamic linker binds every library's calls to ahead of the C
 * library's. While an area is lent on the calling thread, a request for
 * an anonymous private mapping of exactly the area's length at no fixed
 * address gets the area, and munmap() of (part of) a lent area is a
 * no-op. Every other call goes to the kernel unchanged (the raw system
 * call), from any thread. Nothing is interposed under AddressSanitizer,
 * which intercepts mmap itself: there lend_end() always reports the area
 * unused and hashing works as before.
 *
 * Invariants:
 * - An area is lent to one thread at a time (the caller's slot), for one
 *   call: lend_begin() ... lend_end() on the same thread, not nested.
 * - lend_end() wipes the area when it was used (explicit_bzero), so no
 *   memory derived from a password outlives the call, as with munmap().
 */
#ifndef EGOV_CORE_LEND_H
#define EGOV_CORE_LEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

typedef struct lend_area {
	void *base; /* NULL until lend_area_alloc() */
	size_t len;
} lend_area;

/* Maps and faults in len bytes (the kernel's mapping, not a lent one). */
egov_err lend_area_alloc(lend_area *a, size_t len);
void lend_area_free(lend_area *a);

/* Lends a (allocated) to this thread's next matching mapping. */
void lend_begin(lend_area *a);
/* Ends the loan; true when a library took the area (then it is wiped). */
bool lend_end(void);

/* Whether this build interposes mmap at all (false under sanitizers). */
bool lend_supported(void);

#endif
