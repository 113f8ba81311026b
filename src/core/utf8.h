/*
 * utf8.h: strict UTF-8 checks for input from outside. Strict means: no
 * overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF,
 * no sequence cut short. One implementation for every parser in egov (JSON,
 * paths and queries, passwords, catalogues, audit fields, mail headers).
 */
#ifndef EGOV_CORE_UTF8_H
#define EGOV_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length (1-4) of the valid sequence starting at p, with left bytes
 * available; 0 if the bytes there are not valid UTF-8. */
size_t utf8_seq_len(const unsigned char *p, size_t left);
/* Whether the len bytes at s are valid UTF-8 (NUL bytes count as valid). */
bool utf8_valid(const char *s, size_t len);
/* Whether the NUL-terminated string s is valid UTF-8. */
bool utf8_valid_str(const char *s);

#endif
