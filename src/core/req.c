/*
 * req.c: what handlers call: request accessors and the resp_*() family.
 *
 * A response is built into an MHD response object at once; http_mhd.c
 * queues it after the handler returns. Every response gets the same security
 * headers here, in req_finish_response(), so no route can forget them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/i18n.h"
#include "core/json.h"
#include "core/log.h"
#include "core/req_int.h"
#include "core/banned.h"

/* One policy for every page and API answer: nothing inline, nothing from
 * elsewhere, no framing. */
#define CSP_HEAD "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	    "object-src 'none'; base-uri 'none'; form-action 'self'"
#define CSP_TAIL "; frame-ancestors 'none'"
#define CSP CSP_HEAD CSP_TAIL
/* A year, the preload lists' minimum; no includeSubDomains: other services
 * under the same domain may not speak HTTPS, and that is theirs to decide. */
#define HSTS "max-age=31536000"

http_method req_method(const req *r) { return r->method; }
const char *req_method_name(const req *r) { return r->method_name; }
const char *req_path(const req *r) { return r->path.decoded ? r->path.decoded : "/"; }
const char *req_target(const req *r) { return r->raw_uri ? r->raw_uri : "/"; }
arena *req_arena(req *r) { return &r->arena; }
const char *req_id(const req *r) { return r->id; }
const char *req_lang(const req *r) { return r->lang; }
const char *req_remote_ip(const req *r) { return r->ip; }
const route *req_route(const req *r) { return r->match.route; }

const char *req_param(req *r, const char *name)
{
	const route_match *m = &r->match;
	size_t i, len, total = 0;
	char *joined, *p;

	if (m->rest_index == SIZE_MAX || strlen(name) != m->rest_name_len ||
	    memcmp(name, m->rest_name, m->rest_name_len) != 0)
		return route_match_param(m, name);
	/* {*rest}: the remaining segments joined with '/', from the arena. */
	for (i = m->rest_index; i < r->path.nsegs; i++)
		total += strlen(r->path.segs[i]) + 1;
	joined = arena_alloc(&r->arena, total + 1);
	if (!joined)
		return NULL;
	for (p = joined, i = m->rest_index; i < r->path.nsegs; i++) {
		len = strlen(r->path.segs[i]);
		if (p != joined)
			*p++ = '/';
		memcpy(p, r->path.segs[i], len);
		p += len;
	}
	*p = '\0';
	return joined;
}

const char *req_query(const req *r, const char *name)
{
	return uri_query_get(&r->query, name);
}

const char *req_header(const req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_cookie(const req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

const char *req_body(const req *r, size_t *len)
{
	if (len)
		*len = r->body.len;
	return r->has_body ? r->body.data : NULL;
}

int req_body_fd(const req *r, size_t *len)
{
	if (r->spool.fd < 0)
		return -1;
	if (len)
		*len = r->spool.len;
	return r->spool.fd;
}

egov_err req_body_sha256(req *r, unsigned char out[32])
{
	if (r->spool.fd >= 0)
		return spool_finish(&r->spool, out);
	crypto_sha256(r->has_body && r->body.data ? r->body.data : "", r->has_body ? r->body.len : 0, out);
	return EGOV_OK;
}

void req_body_limit(req *r, size_t max, const char *code)
{
	if (max < r->body_max)
		r->body_max = max;
	r->limit_code = code;
}

void http_etag(const void *data, size_t len, char out[20])
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = data;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
	size_t i;
	int k;

	/* 8 bytes a step, multiply-xorshift (as in wyhash/murmur finalisers). */
	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v;
		memcpy(&v, p + i, 8);
		h ^= v * 0xbf58476d1ce4e5b9ull;
		h = (h << 27 | h >> 37) * 0x94d049bb133111ebull;
	}
	for (; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	h ^= h >> 31;
	h *= 0xd6e8feb86659fd93ull;
	h ^= h >> 32;
	out[0] = '"';
	for (k = 0; k < 16; k++)
		out[1 + k] = hex[(h >> (60 - 4 * k)) & 15];
	out[17] = '"';
	out[18] = '\0';
}

int req_etag_matches(const req *r, const char *etag)
{
	const char *p = req_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
	size_t elen = strlen(etag);

	if (!p)
		return 0;
	while (*p) {
		const char *start;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		if (*p != '"')
			return 0; /* malformed: treat as no match */
		start = p++;
		while (*p && *p != '"')
			p++;
		if (*p != '"')
			return 0;
		p++;
		if ((size_t)(p - start) == elen && memcmp(start, etag, elen) == 0)
			return 1;
	}
	return 0;
}

egov_err req_json(req *r, const json_field *fields, size_t nfields, void *out)
{
	json_error jerr = {0};
	egov_err err;

	err = json_bind(&r->arena, r->body.data ? r->body.data : "", r->body.len, fields, nfields, out, &jerr);
	if (err == EGOV_EINVAL || err == EGOV_ELIMIT) {
		resp_problem(r, 400, jerr.code ? jerr.code : "json.malformed", jerr.field[0] ? jerr.field : NULL,
			     NULL);
		return EGOV_EINVAL;
	}
	return err;
}

egov_err resp_header(req *r, const char *name, const char *value)
{
	if (r->resp)
		return MHD_add_response_header(r->resp, name, value) == MHD_YES ? EGOV_OK : EGOV_ENOMEM;
	if (r->nextra == REQ_EXTRA_HEADERS_MAX)
		return EGOV_ELIMIT;
	r->extra[r->nextra].name = arena_strdup(&r->arena, name);
	r->extra[r->nextra].value = arena_strdup(&r->arena, value);
	if (!r->extra[r->nextra].name || !r->extra[r->nextra].value)
		return EGOV_ENOMEM;
	r->nextra++;
	return EGOV_OK;
}

static egov_err set_response(req *r, int status, struct MHD_Response *resp, size_t len, const char *ctype)
{
	size_t i;

	if (!resp)
		return EGOV_ENOMEM;
	if (r->resp) /* a second answer replaces the first */
		MHD_destroy_response(r->resp);
	r->resp = resp;
	r->status = status;
	r->resp_len = len;
	if (ctype && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES)
		return EGOV_ENOMEM;
	for (i = 0; i < r->nextra; i++)
		if (MHD_add_response_header(resp, r->extra[i].name, r->extra[i].value) != MHD_YES)
			return EGOV_ENOMEM;
	r->nextra = 0;
	return EGOV_OK;
}

egov_err resp_json(req *r, int status, buf *b)
{
	return resp_buf(r, status, "application/json", b);
}

egov_err resp_jw(req *r, int status, jw *w)
{
	if (w->err) {
		buf_release(w->b);
		return w->err;
	}
	return resp_json(r, status, w->b);
}

egov_err resp_buf(req *r, int status, const char *content_type, buf *b)
{
	size_t len;
	char *data = buf_detach(b, &len);
	struct MHD_Response *resp;

	if (!data)
		return EGOV_ENOMEM;
	resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		free(data);
	return set_response(r, status, resp, len, content_type);
}

egov_err resp_bytes(req *r, int status, const char *content_type, const void *data, size_t len, bool copy)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		len, (void *)(uintptr_t)data, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	return set_response(r, status, resp, len, content_type);
}

egov_err resp_empty(req *r, int status)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	return set_response(r, status, resp, 0, NULL);
}

egov_err resp_fd(req *r, int status, const char *content_type, int fd, size_t len)
{
	struct MHD_Response *resp = MHD_create_response_from_fd((size_t)len, fd);

	if (!resp) {
		close(fd);
		return EGOV_ENOMEM;
	}
	return set_response(r, status, resp, len, content_type);
}

egov_err resp_problem(req *r, int status, const char *code, const char *field, const char *detail)
{
	char key[96], type[96];
	buf b;
	jw w;
	egov_err err;

	snprintf(key, sizeof key, "problem.%s", code);
	snprintf(type, sizeof type, "urn:egov:problem:%s", code);
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	/* A URN: stable, and documented in docs/api/problems.md without
	 * depending on a domain name. */
	jw_kstr(&w, "type", type);
	jw_kstr(&w, "title", i18n_text(r->lang, key));
	jw_kint(&w, "status", status);
	jw_kstr(&w, "code", code);
	if (detail)
		jw_kstr(&w, "detail", detail);
	if (field)
		jw_kstr(&w, "field", field);
	jw_kstr(&w, "instance", r->path.decoded ? r->path.decoded : "/");
	jw_kstr(&w, "request_id", r->id);
	jw_obj_end(&w);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	{
		size_t len;
		char *data = buf_detach(&b, &len);
		struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
		if (!resp)
			free(data);
		err = set_response(r, status, resp, len, "application/problem+json");
	}
	if (!err && status == 405 && r->allow[0])
		err = resp_header(r, MHD_HTTP_HEADER_ALLOW, r->allow);
	if (!err && status == 401)
		err = resp_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"egov\"");
	return err;
}

egov_err resp_csp_form_action(req *r, const char *origin)
{
	const char *p = strstr(origin, "://");
	size_t i;

	if (!p || (strncmp(origin, "https://", 8) != 0 && strncmp(origin, "http://", 7) != 0) || !p[3])
		return EGOV_EINVAL;
	for (i = 0; origin[i]; i++) {
		char c = origin[i];
		/* No path, no spaces, quotes or ';' that could end the directive. */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '-' || c == ':' || c == '[' || c == ']' || (c == '/' && origin + i < p + 3)))
			return EGOV_EINVAL;
	}
	r->csp_form_action = arena_strdup(&r->arena, origin);
	return r->csp_form_action ? EGOV_OK : EGOV_ENOMEM;
}

/* Strict-Transport-Security when egov itself speaks HTTPS to browsers (the
 * main listener with server.tls_cert): never over plain HTTP, where a
 * browser ignores it and a proxy in front (which terminates TLS) sets its
 * own; never on the peer listener, whose clients are gateways. */
static egov_err resp_hsts(req *r)
{
	if (r->peer || !req_is_tls(r))
		return EGOV_OK;
	return MHD_add_response_header(r->resp, "Strict-Transport-Security", HSTS) == MHD_YES ? EGOV_OK
											      : EGOV_ENOMEM;
}

egov_err req_finish_response(req *r)
{
	struct MHD_Response *resp = r->resp;
	/* On every response: what the issue and OWASP's API guidance require. */
	static const char *const always[][2] = {
		{"Content-Security-Policy", CSP},
		{"X-Content-Type-Options", "nosniff"},
		{"Referrer-Policy", "no-referrer"},
	};
	/* Only where a browser renders the answer as a document: legacy
	 * framing defence, window isolation and feature policy. On JSON they
	 * mean nothing, and each header is three allocations in MHD. */
	static const char *const documents[][2] = {
		{"X-Frame-Options", "DENY"},
		{"Cross-Origin-Opener-Policy", "same-origin"},
		{"Permissions-Policy", "camera=(), microphone=(), geolocation=()"},
	};
	const char *ctype = MHD_get_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE);
	size_t i;

	for (i = 0; i < sizeof always / sizeof always[0]; i++) {
		const char *value = always[i][1];
		char csp[sizeof CSP + 256];
		if (i == 0 && r->csp_form_action) {
			snprintf(csp, sizeof csp, "%s %s%s", CSP_HEAD, r->csp_form_action, CSP_TAIL);
			value = csp;
		}
		if (MHD_add_response_header(resp, always[i][0], value) != MHD_YES)
			return EGOV_ENOMEM;
	}
	if (ctype && strncmp(ctype, "text/html", 9) == 0)
		for (i = 0; i < sizeof documents / sizeof documents[0]; i++)
			if (MHD_add_response_header(resp, documents[i][0], documents[i][1]) != MHD_YES)
				return EGOV_ENOMEM;
	if (resp_hsts(r))
		return EGOV_ENOMEM;
	if (MHD_add_response_header(resp, "X-Request-Id", r->id) != MHD_YES ||
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_LANGUAGE, r->lang) != MHD_YES)
		return EGOV_ENOMEM;
	return EGOV_OK;
}
