/*
 * uri.h: parsers for the request target, written for hostile input (fuzzed
 * by tests/fuzz/fuzz_path.c and fuzz_query.c).
 *
 * uri_path_parse() takes the raw path (before '?', still percent-encoded),
 * decodes it and splits it into segments. It refuses (EGOV_EINVAL, with a
 * reason code) rather than normalises anything dangerous:
 *   uri.bad_escape     '%' not followed by two hex digits
 *   uri.nul            a decoded NUL byte
 *   uri.encoded_slash  "%2F" or "%5C" (a slash hidden inside a segment)
 *   uri.dot_segment    a "." or ".." segment (path traversal)
 *   uri.backslash      a literal '\'
 *   uri.not_absolute   the path does not start with '/'
 *   uri.invalid_utf8   decoded bytes are not UTF-8
 *   uri.too_many       more than EGOV_PATH_SEGMENTS_MAX segments
 *   uri.control        a control byte (< 0x20 or 0x7F), raw or escaped; no
 *                      route needs one and it would reach logs and headers
 * Empty segments ("//") are dropped; a trailing slash is remembered. The
 * root "/" has no segments, decoded "/" and trailing_slash false.
 *
 * uri_query_parse() splits "a=1&b=%20x" into decoded name/value pairs
 * ('+' is a space, as in forms). raw is the text after '?'. Empty pairs
 * ("a=1&&b") are skipped; a pair without '=' has the value "". Bad escapes,
 * NUL, invalid UTF-8 or more than EGOV_QUERY_PARAMS_MAX pairs are
 * EGOV_EINVAL with a reason code (control bytes are allowed: a textarea
 * sent by GET has newlines).
 *
 * On EGOV_EINVAL *why is the code and *out is zeroed; a full arena is
 * EGOV_ELIMIT with *why NULL.
 *
 * All output is allocated from the arena.
 */
#ifndef EGOV_CORE_URI_H
#define EGOV_CORE_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "core/arena.h"
#include "core/err.h"

typedef struct uri_path {
	const char *decoded;   /* "/a/b" rebuilt from the segments (+ trailing '/') */
	const char **segs;     /* decoded segments */
	size_t nsegs;
	bool trailing_slash;
} uri_path;

typedef struct uri_param {
	const char *name;
	const char *value;
} uri_param;

typedef struct uri_query {
	uri_param *params;
	size_t n;
} uri_query;

/* raw: len bytes (not NUL-terminated necessarily). *why gets a code on EINVAL. */
egov_err uri_path_parse(arena *a, const char *raw, size_t len, uri_path *out, const char **why);
egov_err uri_query_parse(arena *a, const char *raw, size_t len, uri_query *out, const char **why);
/* First value of name, or NULL. */
const char *uri_query_get(const uri_query *q, const char *name);
/* Lenient percent-decoding of n bytes of s into out (room for n + 1 bytes;
 * NUL-terminated): "%XX" becomes its byte, anything else (a '%' without two
 * hex digits, '+') stays as it is. For values that are not paths or query
 * parameters, such as base64 in a URL or an escaped PEM header. Returns the
 * decoded length. */
size_t uri_pct_decode(const char *s, size_t n, char *out);

#endif
