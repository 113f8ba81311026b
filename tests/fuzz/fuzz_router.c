/*
 * fuzz_router.c: libFuzzer target for the request path as the server sees
 * it: uri_path_parse() then router_match() against a fixed table with
 * literals, parameters, a "{*rest}" tail and overlapping patterns.
 *
 * The first input byte picks the method; the rest is the raw path.
 * Invariants: router_match() answers 200, 404 or 405 only; a 200 names a
 * route of the table whose method fits, whose literal segments equal the
 * path's, and whose parameters point at the path's own segments; a 405
 * lists methods that do not include the one asked for; the same path
 * matched twice gives the same answer (no hidden state).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/router.h"
#include "core/uri.h"
#include "core/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static egov_err handler(req *r)
{
	(void)r;
	return EGOV_OK;
}

static const route routes[] = {
	{.method = HTTP_GET, .path = "/", .handler = handler},
	{.method = HTTP_GET, .path = "/api/v1/version", .handler = handler},
	{.method = HTTP_GET, .path = "/api/v1/notices", .handler = handler},
	{.method = HTTP_POST, .path = "/api/v1/notices", .body_max = 4096, .handler = handler},
	{.method = HTTP_GET, .path = "/api/v1/notices/{id}", .handler = handler},
	{.method = HTTP_GET, .path = "/api/v1/notices/latest", .handler = handler},
	{.method = HTTP_PUT, .path = "/api/v1/notices/{id}", .body_max = 4096, .handler = handler},
	{.method = HTTP_DELETE, .path = "/api/v1/notices/{id}", .handler = handler},
	{.method = HTTP_GET, .path = "/api/v1/users/{uid}/docs/{doc}", .handler = handler},
	{.method = HTTP_PATCH, .path = "/api/v1/users/{uid}", .body_max = 1024, .handler = handler},
	{.method = HTTP_GET, .path = "/static/{*file}", .handler = handler},
	{.method = HTTP_HEAD, .path = "/health", .handler = handler},
	{.method = HTTP_OPTIONS, .path = "/api/v1/{*any}", .handler = handler},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static const http_method methods[] = {HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_PUT, HTTP_PATCH, HTTP_DELETE, HTTP_OPTIONS};

static router *rt;

static int is_param(const char *pat, size_t len)
{
	return len >= 3 && pat[0] == '{' && pat[len - 1] == '}';
}

/* The literal segments of the route's pattern equal the path's. */
static void check_literals(const route *r, const char *const *segs, size_t nsegs)
{
	const char *p = r->path;
	size_t i = 0;

	while (*p) {
		const char *s;
		size_t len;
		while (*p == '/')
			p++;
		if (!*p)
			break;
		s = p;
		while (*p && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (is_param(s, len)) {
			if (s[1] == '*') {
				if (i >= nsegs)
					abort();
				return;
			}
		} else if (i >= nsegs || strlen(segs[i]) != len || memcmp(segs[i], s, len) != 0) {
			abort();
		}
		i++;
	}
	if (i != nsegs)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errmsg[256];
	arena a;
	uri_path p;
	route_match m, m2;
	const char *why;
	http_method meth;
	size_t i, k;
	int status;
	char *raw;

	if (!rt) {
		if (router_new(&rt) || router_add(rt, routes, NROUTES, errmsg, sizeof errmsg))
			abort();
	}
	if (size < 1 || size > EGOV_URI_MAX)
		return 0;
	meth = methods[data[0] % (sizeof methods / sizeof methods[0])];
	raw = malloc(size - 1 ? size - 1 : 1);
	if (!raw)
		return 0;
	memcpy(raw, data + 1, size - 1);
	arena_init(&a, EGOV_REQUEST_ARENA_MAX);
	if (uri_path_parse(&a, raw, size - 1, &p, &why) != EGOV_OK)
		goto out;
	status = router_match(rt, meth, p.segs, p.nsegs, &m);
	if (router_match(rt, meth, p.segs, p.nsegs, &m2) != status || m.route != m2.route)
		abort();
	switch (status) {
	case 200:
		if (!m.route || m.index >= router_count(rt) || router_get(rt, m.index) != m.route)
			abort();
		if (m.route->method != meth && !(meth == HTTP_HEAD && m.route->method == HTTP_GET))
			abort();
		if (m.nparams > ROUTER_PARAMS_MAX)
			abort();
		check_literals(m.route, p.segs, p.nsegs);
		for (i = 0; i < m.nparams; i++) {
			int found = 0;
			if (!m.names[i] || !m.values[i] || m.name_lens[i] == 0)
				abort();
			for (k = 0; k < p.nsegs; k++)
				found |= m.values[i] == p.segs[k];
			if (!found)
				abort();
		}
		break;
	case 404:
		if (m.route || m.allow)
			abort();
		break;
	case 405:
		if (m.route || !m.allow || (m.allow & meth))
			abort();
		break;
	default:
		abort();
	}
out:
	arena_release(&a);
	free(raw);
	return 0;
}
