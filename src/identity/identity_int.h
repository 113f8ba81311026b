/*
 * identity_int.h: helpers shared by the files of the identity module only.
 */
#ifndef EGOV_IDENTITY_INT_H
#define EGOV_IDENTITY_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/db.h"
#include "core/err.h"
#include "identity/identity.h"

/* A fresh 256-bit random token, base64url without padding (43 chars). */
egov_err identity_random_token(char out[IDENTITY_TOKEN_LEN + 1]);
/* base64url without padding; out must hold 4*ceil(n/3)+1. */
void identity_b64url(const unsigned char *in, size_t n, char *out);
/* SHA-256 hex of a NUL-terminated string. */
void identity_hash_hex(const char *s, char out[65]);
/* Copies s (NULL as "") into dst of size n, truncating only if it cannot
 * fit (callers size dst from the same limits that validated s). */
void identity_copy(char *dst, size_t n, const char *s);
/* Code points in a valid UTF-8 string. */
size_t identity_utf8_len(const char *s);
/* Lower-cases ASCII letters in place. */
void identity_ascii_lower(char *s);
/* RFC 3339 of identity_now_us(). */
void identity_now_rfc3339(char out[32]);

/* Migrations, for the module descriptor. */
const db_migration *identity_migrations(size_t *n);
/* `egov user|dept|role ...` */
int identity_command(const char *name, int argc, char **argv, db *d);
/* Demo data: departments and a demo resident/civil servant. */
egov_err identity_demo(db_conn *c);

/* The route table (identity_http.c). */
extern const route identity_routes[];
extern const size_t identity_routes_count;

#endif
