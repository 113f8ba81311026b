/*
 * router.c: route tables compiled into segment lists, matched linearly.
 *
 * With a few hundred routes a linear scan of pre-split patterns costs well
 * under a microsecond (bench: /api/v1/version through the full router runs
 * at nginx's rate), so no trie yet. Each match scans every route once and
 * keeps the best: more literal segments win, then table order. The scan
 * first reads a dense array of each route's segment count (a byte a route,
 * so a few cache lines for the whole table) and looks at the patterns of
 * only those that can match the request's count; the request's segment
 * lengths are measured once, not once per route.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/router.h"
#include "core/banned.h"

typedef struct seg {
	const char *text; /* literal text, or parameter name */
	size_t len;
	enum { SEG_LIT, SEG_PARAM, SEG_REST } kind;
} seg;

typedef struct compiled {
	const route *route;
	seg segs[EGOV_PATH_SEGMENTS_MAX];
	size_t nsegs;
	size_t nlit;
} compiled;

/* shape[i]: route i's segment count, with SHAPE_REST set when its last
 * segment is {*rest} (then it matches that many segments or more). */
#define SHAPE_REST 0x80

struct router {
	compiled *routes;
	unsigned char *shape;
	size_t n, alloc;
};

static const struct {
	http_method m;
	const char *name;
} methods[] = {
	{HTTP_GET, "GET"},       {HTTP_HEAD, "HEAD"},     {HTTP_POST, "POST"},
	{HTTP_PUT, "PUT"},       {HTTP_PATCH, "PATCH"},   {HTTP_DELETE, "DELETE"},
	{HTTP_OPTIONS, "OPTIONS"},
};

const char *http_method_name(http_method m)
{
	size_t i;
	for (i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (methods[i].m == m)
			return methods[i].name;
	return NULL;
}

http_method http_method_parse(const char *s)
{
	size_t i;
	for (i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (strcmp(methods[i].name, s) == 0)
			return methods[i].m;
	return 0;
}

void http_allow_string(unsigned allow, char *out, size_t len)
{
	size_t i, used = 0;

	if (allow & HTTP_GET)
		allow |= HTTP_HEAD;
	out[0] = '\0';
	for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
		int n;
		if (!(allow & methods[i].m))
			continue;
		n = snprintf(out + used, len - used, "%s%s", used ? ", " : "", methods[i].name);
		if (n < 0 || (size_t)n >= len - used)
			return;
		used += (size_t)n;
	}
}

egov_err router_new(router **out)
{
	*out = calloc(1, sizeof(router));
	return *out ? EGOV_OK : EGOV_ENOMEM;
}

void router_free(router *rt)
{
	if (!rt)
		return;
	free(rt->routes);
	free(rt->shape);
	free(rt);
}

size_t router_count(const router *rt)
{
	return rt->n;
}

const route *router_get(const router *rt, size_t index)
{
	return index < rt->n ? rt->routes[index].route : NULL;
}

static int compile(const route *r, compiled *c, char *errmsg, size_t errlen)
{
	const char *p = r->path;

	memset(c, 0, sizeof *c);
	c->route = r;
	if (!p || p[0] != '/') {
		snprintf(errmsg, errlen, "route %s: path must start with '/'", p ? p : "(null)");
		return -1;
	}
	while (*p) {
		const char *start, *end;
		seg *s;
		while (*p == '/')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != '/')
			p++;
		end = p;
		if (c->nsegs == EGOV_PATH_SEGMENTS_MAX) {
			snprintf(errmsg, errlen, "route %s: too many segments", r->path);
			return -1;
		}
		if (c->nsegs > 0 && c->segs[c->nsegs - 1].kind == SEG_REST) {
			snprintf(errmsg, errlen, "route %s: {*rest} must be last", r->path);
			return -1;
		}
		s = &c->segs[c->nsegs++];
		if (*start == '{') {
			if (end - start < 3 || end[-1] != '}') {
				snprintf(errmsg, errlen, "route %s: bad parameter segment", r->path);
				return -1;
			}
			s->kind = start[1] == '*' ? SEG_REST : SEG_PARAM;
			s->text = start + (s->kind == SEG_REST ? 2 : 1);
			s->len = (size_t)(end - 1 - s->text);
			if (s->len == 0) {
				snprintf(errmsg, errlen, "route %s: empty parameter name", r->path);
				return -1;
			}
		} else {
			s->kind = SEG_LIT;
			s->text = start;
			s->len = (size_t)(end - start);
			c->nlit++;
		}
	}
	return 0;
}

static int same_pattern(const compiled *a, const compiled *b)
{
	size_t i;
	if (a->nsegs != b->nsegs)
		return 0;
	for (i = 0; i < a->nsegs; i++) {
		if (a->segs[i].kind != b->segs[i].kind)
			return 0;
		if (a->segs[i].kind == SEG_LIT &&
		    (a->segs[i].len != b->segs[i].len || memcmp(a->segs[i].text, b->segs[i].text, a->segs[i].len)))
			return 0;
	}
	return 1;
}

egov_err router_add(router *rt, const route *routes, size_t n, char *errmsg, size_t errlen)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const route *r = &routes[i];
		compiled c;
		size_t nparams = 0;

		if (compile(r, &c, errmsg, errlen))
			return EGOV_EINVAL;
		for (j = 0; j < c.nsegs; j++)
			nparams += c.segs[j].kind != SEG_LIT;
		if (nparams > ROUTER_PARAMS_MAX) {
			snprintf(errmsg, errlen, "route %s: too many parameters", r->path);
			return EGOV_EINVAL;
		}
		if (!http_method_name(r->method) || !r->handler) {
			snprintf(errmsg, errlen, "route %s: needs one method and a handler", r->path);
			return EGOV_EINVAL;
		}
		if (r->body_max > (r->spool ? EGOV_BODY_MAX_SPOOLED : EGOV_BODY_MAX_UPLOAD)) {
			snprintf(errmsg, errlen, "route %s: body limit over EGOV_BODY_MAX_UPLOAD (or _SPOOLED)", r->path);
			return EGOV_EINVAL;
		}
		if (((r->auth & AUTH_CSRF) && !(r->auth & AUTH_SESSION)) || ((r->auth & AUTH_OPTIONAL) && r->perm) ||
		    (r->scope && !(r->auth & AUTH_BEARER)) || ((r->auth & AUTH_PEER) && (r->auth & ~AUTH_PEER))) {
			snprintf(errmsg, errlen,
				 "route %s: .auth: AUTH_CSRF needs AUTH_SESSION, AUTH_OPTIONAL takes no .perm, .scope needs "
				 "AUTH_BEARER, AUTH_PEER stands alone",
				 r->path);
			return EGOV_EINVAL;
		}
		for (j = 0; j < rt->n; j++) {
			if (rt->routes[j].route->method == r->method && same_pattern(&rt->routes[j], &c)) {
				snprintf(errmsg, errlen, "route %s %s: defined twice", http_method_name(r->method),
					 r->path);
				return EGOV_EINVAL;
			}
		}
		if (rt->n == rt->alloc) {
			size_t na = rt->alloc ? rt->alloc * 2 : 32;
			compiled *p = realloc(rt->routes, na * sizeof *p);
			unsigned char *sh;
			if (!p)
				return EGOV_ENOMEM;
			rt->routes = p;
			if (!(sh = realloc(rt->shape, na)))
				return EGOV_ENOMEM;
			rt->shape = sh;
			rt->alloc = na;
		}
		rt->shape[rt->n] = (unsigned char)(c.nsegs | (c.nsegs && c.segs[c.nsegs - 1].kind == SEG_REST ? SHAPE_REST : 0));
		rt->routes[rt->n++] = c;
	}
	return EGOV_OK;
}

/* lens[i]: strlen(segs[i]), for i < nsegs and i < EGOV_PATH_SEGMENTS_MAX. */
static int path_matches(const compiled *c, const char *const *segs, const size_t *lens, size_t nsegs)
{
	size_t i;

	for (i = 0; i < c->nsegs; i++) {
		const seg *s = &c->segs[i];
		if (s->kind == SEG_REST)
			return nsegs > i;
		if (i >= nsegs)
			return 0;
		if (s->kind == SEG_LIT && (lens[i] != s->len || memcmp(segs[i], s->text, s->len) != 0))
			return 0;
	}
	return c->nsegs == nsegs;
}

static void fill_params(const compiled *c, const char *const *segs, size_t nsegs, route_match *m)
{
	size_t i;

	m->nparams = 0;
	m->rest_index = SIZE_MAX;
	for (i = 0; i < c->nsegs; i++) {
		const seg *s = &c->segs[i];
		if (s->kind == SEG_LIT)
			continue;
		m->names[m->nparams] = s->text;
		m->name_lens[m->nparams] = s->len;
		m->values[m->nparams] = segs[i];
		m->nparams++;
		if (s->kind == SEG_REST) {
			m->rest_index = i;
			m->rest_name = s->text;
			m->rest_name_len = s->len;
			break;
		}
	}
	(void)nsegs;
}

int router_match(const router *rt, http_method meth, const char *const *segs, size_t nsegs, route_match *m)
{
	const compiled *best = NULL;
	size_t i, best_i = 0, lens[EGOV_PATH_SEGMENTS_MAX];
	unsigned allow = 0;
	http_method want = meth == HTTP_HEAD ? HTTP_GET : meth;

	memset(m, 0, sizeof *m);
	for (i = 0; i < nsegs && i < EGOV_PATH_SEGMENTS_MAX; i++)
		lens[i] = strlen(segs[i]);
	for (i = 0; i < rt->n; i++) {
		const compiled *c;
		size_t k = rt->shape[i] & (unsigned)~SHAPE_REST;
		/* A {*rest} route needs at least one segment in its place. */
		if (rt->shape[i] & SHAPE_REST ? nsegs < k : nsegs != k)
			continue;
		c = &rt->routes[i];
		if (!path_matches(c, segs, lens, nsegs))
			continue;
		allow |= c->route->method;
		if (c->route->method != want && !(meth == HTTP_HEAD && c->route->method == HTTP_HEAD))
			continue;
		if (!best || c->nlit > best->nlit) {
			best = c;
			best_i = i;
		}
	}
	if (best) {
		m->route = best->route;
		m->index = best_i;
		fill_params(best, segs, nsegs, m);
		return 200;
	}
	if (allow) {
		m->allow = allow;
		return 405;
	}
	return 404;
}

const char *route_match_param(const route_match *m, const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < m->nparams; i++)
		if (m->name_lens[i] == len && memcmp(m->names[i], name, len) == 0)
			return m->values[i];
	return NULL;
}
