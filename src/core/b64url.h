/*
 * b64url.h: base64url (RFC 4648 section 5), no padding.
 */
#ifndef EGOV_CORE_B64URL_H
#define EGOV_CORE_B64URL_H

#include <stddef.h>

#include "core/err.h"

/* Encodes n bytes into out (needs 4*ceil(n/3)+1 bytes, NUL-terminated);
 * cannot fail. */
void b64url_encode(const unsigned char *in, size_t n, char *out);
/* Strict decode: only [A-Za-z0-9_-], no '=', no length 4k+1, unused bits
 * zero (so one encoding per value). EGOV_EINVAL otherwise, EGOV_ELIMIT if
 * out is too small. *n = bytes written. */
egov_err b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *n);

#endif
