/*
 * crypto.h: the few primitives the kernel needs, over OpenSSL. Key
 * management, signatures and certificates belong to the trust layer.
 */
#ifndef EGOV_CORE_CRYPTO_H
#define EGOV_CORE_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

/* SHA-256 of data as 64 lower-case hex digits plus NUL. Cannot fail. */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
void crypto_sha256(const void *data, size_t len, unsigned char out[32]);
/* Cryptographically secure random bytes (getrandom). */
egov_err crypto_random(void *out, size_t len);
/* Constant-time comparison of two strings (length may leak, content does not). */
bool crypto_streq(const char *a, const char *b);

#endif
