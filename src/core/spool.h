/*
 * spool.h: a body too large to keep in memory, written to an unlinked
 * temporary file while it arrives, with its SHA-256 computed on the way.
 *
 * Used by the HTTP server (request bodies of routes marked .spool) and the
 * HTTP client (large response bodies). The file lives in the spool
 * directory (DATA/tmp, set once by spool_set_dir) and has no name
 * (O_TMPFILE, or mkstemp then unlink): it disappears when its last
 * descriptor is closed, even if the process dies.
 *
 * Lifecycle: spool_init() on caller-owned storage (no file yet),
 * spool_write() opens the file on the first call, spool_finish() gives the
 * digest, spool_release() closes the file. spool_detach_fd() moves the
 * descriptor out (the caller closes it). Not thread-safe: one owner.
 */
#ifndef EGOV_CORE_SPOOL_H
#define EGOV_CORE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* Bodies up to this many bytes stay in memory; larger ones are spooled.
 * A quarter of a MiB keeps every API body and the common exchange
 * payloads in memory (no file, no extra copy) while capping what a
 * request in flight holds at about that. */
#define SPOOL_THRESHOLD (256 * 1024)

typedef struct spool {
	int fd;        /* -1 until the file is opened */
	size_t len;    /* bytes written */
	void *sha;     /* EVP_MD_CTX *, NULL until opened */
	bool finished; /* spool_finish() ran: digest is final */
	unsigned char digest[32];
} spool;

/* Sets the directory temporary files go to (copied). Before any spool is
 * used; without it, "/tmp". */
egov_err spool_set_dir(const char *dir);

void spool_init(spool *s);
void spool_release(spool *s);
/* Appends bytes (opening the file first if needed). EGOV_EIO when the file
 * cannot be made or written (disk full), EGOV_ENOMEM. */
egov_err spool_write(spool *s, const void *data, size_t len);
/* Finishes the digest (once; later calls give the same). */
egov_err spool_finish(spool *s, unsigned char out[32]);
/* Moves the descriptor out: the caller closes it. s keeps no file. */
int spool_detach_fd(spool *s);

/* Reads len bytes at offset off of fd into p (pread, retried). */
egov_err spool_pread(int fd, void *p, size_t len, size_t off);

#endif
