/*
 * blob.h: content-addressed storage for documents and attachments.
 *
 * A blob is named by the SHA-256 of its bytes (64 lower-case hex digits)
 * and stored at DIR/ab/cdef... . blob_put() writes to a temporary file,
 * fsyncs it, renames it into place and fsyncs the directory, so that when
 * it returns EGOV_OK the bytes are durable and the caller may commit the
 * row that refers to them. Storing the same bytes twice is a no-op.
 */
#ifndef EGOV_CORE_BLOB_H
#define EGOV_CORE_BLOB_H

#include <stddef.h>

#include "core/err.h"

typedef struct blob_store blob_store;

egov_err blob_store_open(const char *dir, blob_store **out);
void blob_store_free(blob_store *s);

/* hex_out receives the 64-digit name plus NUL. */
egov_err blob_put(blob_store *s, const void *data, size_t len, char hex_out[65]);
/* The same for len bytes of fd from offset 0 (read with pread, in
 * pieces: the bytes are never all in memory), for large bodies kept in a
 * spool file. */
egov_err blob_put_fd(blob_store *s, int fd, size_t len, char hex_out[65]);
/* Reads a whole blob into malloc'd memory (caller frees); verifies the hash,
 * EGOV_ECORRUPT if the file no longer matches its name. max caps the size. */
egov_err blob_get(blob_store *s, const char *hex, size_t max, void **data, size_t *len);
egov_err blob_exists(blob_store *s, const char *hex, int *exists);
egov_err blob_delete(blob_store *s, const char *hex);

#endif
