/*
 * lend.c: mmap()/munmap() that hand a lent area to the calling thread's
 * matching request (see lend.h for why and the invariants).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/lend.h"
#include "core/banned.h"

#if defined(__SANITIZE_ADDRESS__)
#define LEND_INTERPOSE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEND_INTERPOSE 0
#endif
#endif
#if !defined(LEND_INTERPOSE) && defined(__linux__) && defined(SYS_mmap) && UINTPTR_MAX == UINT64_MAX
#define LEND_INTERPOSE 1
#endif
#ifndef LEND_INTERPOSE
#define LEND_INTERPOSE 0
#endif

static __thread lend_area *lent;
static __thread bool taken;

static void *kernel_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
#if LEND_INTERPOSE
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
#else
	return mmap(addr, len, prot, flags, fd, off);
#endif
}

static int kernel_munmap(void *addr, size_t len)
{
#if LEND_INTERPOSE
	return (int)syscall(SYS_munmap, addr, len);
#else
	return munmap(addr, len);
#endif
}

#if LEND_INTERPOSE
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	lend_area *a = lent;

	if (a && !taken && !addr && len == a->len && fd == -1 && (flags & MAP_ANONYMOUS) && (flags & MAP_PRIVATE) &&
	    !(flags & MAP_FIXED) && (prot & PROT_READ) && (prot & PROT_WRITE)) {
		taken = true;
		return a->base;
	}
	return kernel_mmap(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len)
{
	lend_area *a = lent;

	if (a && taken && (char *)addr >= (char *)a->base && (char *)addr < (char *)a->base + a->len)
		return 0;
	return kernel_munmap(addr, len);
}
#endif

bool lend_supported(void)
{
	return LEND_INTERPOSE;
}

egov_err lend_area_alloc(lend_area *a, size_t len)
{
	void *p = kernel_mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED) {
		a->base = NULL;
		a->len = 0;
		return EGOV_ENOMEM;
	}
	a->base = p;
	a->len = len;
	return EGOV_OK;
}

void lend_area_free(lend_area *a)
{
	if (a->base)
		kernel_munmap(a->base, a->len);
	a->base = NULL;
	a->len = 0;
}

void lend_begin(lend_area *a)
{
	taken = false;
	lent = a && a->base ? a : NULL;
}

bool lend_end(void)
{
	bool was = taken;

	if (was && lent)
		explicit_bzero(lent->base, lent->len);
	lent = NULL;
	taken = false;
	return was;
}
