/*
 * router.h: matches a method and decoded path segments against the route
 * tables every module exports.
 *
 * Patterns are compiled once at start: "/api/v1/notices/{id}" becomes
 * literal, literal, literal, parameter. A final "{*name}" takes the rest of
 * the path (at least one segment). Literal segments beat parameters when two
 * patterns could match the same path, so "/notices/latest" wins over
 * "/notices/{id}" whatever the table order. HEAD is answered by GET routes.
 *
 * The router is immutable after router_add(); matching is thread-safe and
 * allocates nothing (parameters point into the caller's segments).
 */
#ifndef EGOV_CORE_ROUTER_H
#define EGOV_CORE_ROUTER_H

#include <stddef.h>

#include "core/err.h"
#include "core/http.h"

#define ROUTER_PARAMS_MAX 8

typedef struct router router;

typedef struct route_match {
	const route *route;
	size_t index;          /* position among all routes, for metrics */
	size_t nparams;
	const char *names[ROUTER_PARAMS_MAX]; /* point into the pattern: not NUL-terminated */
	size_t name_lens[ROUTER_PARAMS_MAX];
	/* For a final {*rest}: the index of its first segment; SIZE_MAX if none.
	 * values[] then holds that first segment; route_match_rest() joins them. */
	size_t rest_index;
	const char *rest_name;
	size_t rest_name_len;
	const char *values[ROUTER_PARAMS_MAX];
	unsigned allow;        /* on 405: the methods the path accepts (http_method bits) */
} route_match;

egov_err router_new(router **out);
void router_free(router *rt);
/* Adds a table. Refuses a malformed pattern, a duplicate method+pattern, a
 * body limit over EGOV_BODY_MAX_UPLOAD, or .auth bits that contradict each
 * other (http.h), with a message naming the route. */
egov_err router_add(router *rt, const route *routes, size_t n, char *errmsg, size_t errlen);
size_t router_count(const router *rt);
const route *router_get(const router *rt, size_t index);

/* Returns 200 (match filled), 404 (no route has this path) or 405 (the path
 * exists for other methods; match->allow says which). */
int router_match(const router *rt, http_method m, const char *const *segs, size_t nsegs, route_match *match);

/* The value of parameter name in a match, or NULL. For the {*rest}
 * parameter this is only its first segment: use req_param(), which joins. */
const char *route_match_param(const route_match *m, const char *name);

/* "GET", "POST", ...; NULL for an unknown bit. */
const char *http_method_name(http_method m);
/* Parses a method token; 0 if unknown. */
http_method http_method_parse(const char *s);
/* Writes "GET, HEAD, POST" for an allow mask into buf (always NUL-terminated). */
void http_allow_string(unsigned allow, char *buf, size_t len);

#endif
