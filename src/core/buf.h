/*
 * buf.h: a growable byte buffer with a mandatory size cap.
 *
 * Invariants: b->data is NUL-terminated whenever b->data != NULL, and
 * b->len <= b->cap_max. Growing past cap_max is an error (EGOV_ELIMIT),
 * never a silent truncation. Lifecycle words as in git: buf_init() on
 * caller-owned storage, buf_release() frees the bytes, buf_detach() moves
 * them out to the caller (who frees them with free()).
 */
#ifndef EGOV_CORE_BUF_H
#define EGOV_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "core/err.h"

typedef struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap_max;
} buf;

void buf_init(buf *b, size_t cap_max);
void buf_release(buf *b);
void buf_reset(buf *b); /* len = 0, keeps the allocation */
char *buf_detach(buf *b, size_t *len_out);

egov_err buf_add(buf *b, const void *data, size_t len);
egov_err buf_adds(buf *b, const char *s);
egov_err buf_addc(buf *b, char c);
egov_err buf_addf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
egov_err buf_vaddf(buf *b, const char *fmt, va_list ap);
/* Appends s as the body of a JSON string (no quotes), escaping as RFC 8259 asks. */
egov_err buf_add_json_str(buf *b, const char *s);
/* Appends s HTML-escaped (& < > " '). */
egov_err buf_add_html(buf *b, const char *s);
egov_err buf_add_hex(buf *b, const unsigned char *p, size_t n);

#endif
