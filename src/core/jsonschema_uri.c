/*
 * jsonschema_uri.c: URI references and JSON pointers for the JSON Schema
 * validator: resolving a $id or $ref against the base URI in force
 * (RFC 3986 section 5.2), finding the value a fragment's JSON pointer
 * names (RFC 6901), and building the pointers errors carry.
 *
 * Only syntax: nothing here reaches the network or the file system. A
 * resolved URI is compared byte for byte with the URIs the compilation
 * knows; no other normalisation is applied, as the specification asks.
 */
#include <stdio.h>
#include <string.h>

#include "core/jsonschema_int.h"
#include "core/banned.h"

typedef struct uri_parts {
	const char *scheme, *auth, *path, *query, *frag;
	size_t scheme_len, auth_len, path_len, query_len, frag_len;
	bool has_scheme, has_auth, has_query, has_frag;
} uri_parts;

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t scheme_len(const char *s)
{
	size_t i = 0;

	if (!is_alpha(s[0]))
		return 0;
	while (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	return s[i] == ':' ? i : 0;
}

bool js_uri_has_scheme(const char *s)
{
	return scheme_len(s) > 0;
}

/* RFC 3986 appendix B, by hand. */
static void uri_split(const char *s, uri_parts *u)
{
	size_t n;

	memset(u, 0, sizeof *u);
	if ((n = scheme_len(s))) {
		u->has_scheme = true;
		u->scheme = s;
		u->scheme_len = n;
		s += n + 1;
	}
	if (s[0] == '/' && s[1] == '/') {
		s += 2;
		u->has_auth = true;
		u->auth = s;
		u->auth_len = strcspn(s, "/?#");
		s += u->auth_len;
	}
	u->path = s;
	u->path_len = strcspn(s, "?#");
	s += u->path_len;
	if (*s == '?') {
		u->has_query = true;
		u->query = ++s;
		u->query_len = strcspn(s, "#");
		s += u->query_len;
	}
	if (*s == '#') {
		u->has_frag = true;
		u->frag = ++s;
		u->frag_len = strlen(s);
	}
}

/* RFC 3986 section 5.2.4, on path (len bytes), appended to out. The
 * output never grows past the input, so a scratch copy bounds it. */
static egov_err remove_dots(buf *out, const char *path, size_t len)
{
	buf in, o;
	egov_err err;
	size_t i = 0;

	buf_init(&in, len + 1);
	buf_init(&o, len + 1);
	if ((err = buf_add(&in, path, len)) != EGOV_OK || (err = buf_add(&o, "", 0)) != EGOV_OK)
		goto out;
	while (i < in.len) {
		const char *p = in.data + i;
		size_t left = in.len - i;

		if (left >= 3 && memcmp(p, "../", 3) == 0) {
			i += 3;
		} else if (left >= 2 && memcmp(p, "./", 2) == 0) {
			i += 2;
		} else if (left >= 3 && memcmp(p, "/./", 3) == 0) {
			i += 2;
		} else if (left == 2 && memcmp(p, "/.", 2) == 0) {
			in.data[i + 1] = '/';
			i += 1;
		} else if ((left >= 4 && memcmp(p, "/../", 4) == 0) || (left == 3 && memcmp(p, "/..", 3) == 0)) {
			char *cut;
			if (left == 3) {
				in.data[i + 2] = '/';
				i += 2;
			} else {
				i += 3;
			}
			cut = o.len ? memrchr(o.data, '/', o.len) : NULL;
			o.len = cut ? (size_t)(cut - o.data) : 0;
			o.data[o.len] = '\0';
		} else if ((left == 1 && p[0] == '.') || (left == 2 && memcmp(p, "..", 2) == 0)) {
			i += left;
		} else {
			size_t seg = 1;
			while (seg < left && p[seg] != '/')
				seg++;
			if (p[0] != '/') {
				seg = 0;
				while (seg < left && p[seg] != '/')
					seg++;
			}
			if ((err = buf_add(&o, p, seg)) != EGOV_OK)
				goto out;
			i += seg;
		}
	}
	err = buf_add(out, o.data, o.len);
out:
	buf_release(&in);
	buf_release(&o);
	return err;
}

egov_err js_uri_resolve(buf *out, const char *base, const char *ref)
{
	uri_parts b, r;
	egov_err err = EGOV_OK;

	uri_split(base, &b);
	uri_split(ref, &r);
	if (r.has_scheme) {
		err = buf_add(out, r.scheme, r.scheme_len + 1);
		if (!err && r.has_auth && !(err = buf_adds(out, "//")))
			err = buf_add(out, r.auth, r.auth_len);
		if (!err)
			err = remove_dots(out, r.path, r.path_len);
		if (!err && r.has_query && !(err = buf_addc(out, '?')))
			err = buf_add(out, r.query, r.query_len);
		goto frag;
	}
	if (b.has_scheme && (err = buf_add(out, b.scheme, b.scheme_len + 1)) != EGOV_OK)
		goto out;
	if (r.has_auth) {
		if (!(err = buf_adds(out, "//")) && !(err = buf_add(out, r.auth, r.auth_len)))
			err = remove_dots(out, r.path, r.path_len);
		if (!err && r.has_query && !(err = buf_addc(out, '?')))
			err = buf_add(out, r.query, r.query_len);
		goto frag;
	}
	if (b.has_auth && ((err = buf_adds(out, "//")) || (err = buf_add(out, b.auth, b.auth_len))))
		goto out;
	if (r.path_len == 0) {
		if ((err = buf_add(out, b.path, b.path_len)) != EGOV_OK)
			goto out;
		if (r.has_query) {
			if (!(err = buf_addc(out, '?')))
				err = buf_add(out, r.query, r.query_len);
		} else if (b.has_query) {
			if (!(err = buf_addc(out, '?')))
				err = buf_add(out, b.query, b.query_len);
		}
	} else {
		if (r.path[0] == '/') {
			err = remove_dots(out, r.path, r.path_len);
		} else {
			/* merge (section 5.2.3), then remove dot segments */
			buf m;
			const char *slash = b.path_len ? memrchr(b.path, '/', b.path_len) : NULL;

			buf_init(&m, out->cap_max);
			if (b.has_auth && b.path_len == 0)
				err = buf_addc(&m, '/');
			else if (slash)
				err = buf_add(&m, b.path, (size_t)(slash - b.path) + 1);
			if (!err)
				err = buf_add(&m, r.path, r.path_len);
			if (!err)
				err = remove_dots(out, m.data ? m.data : "", m.len);
			buf_release(&m);
		}
		if (!err && r.has_query && !(err = buf_addc(out, '?')))
			err = buf_add(out, r.query, r.query_len);
	}
frag:
	if (!err && r.has_frag && !(err = buf_addc(out, '#')))
		err = buf_add(out, r.frag, r.frag_len);
	if (!err && !out->data)
		err = buf_add(out, "", 0);
out:
	return err;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes one reference token (percent-escapes, then ~1 and ~0) from
 * [s, end) into tok (cap bytes). False if malformed or too long. */
static bool pointer_token(const char *s, const char *end, char *tok, size_t cap)
{
	size_t n = 0;

	while (s < end) {
		int c = (unsigned char)*s++;

		if (c == '%') {
			int h, l;
			if (end - s < 2 || (h = hexval(s[0])) < 0 || (l = hexval(s[1])) < 0)
				return false;
			c = h * 16 + l;
			s += 2;
			if (c == 0)
				return false;
		}
		if (n + 1 >= cap)
			return false;
		tok[n++] = (char)c;
	}
	tok[n] = '\0';
	/* ~1 then ~0, in place; "~" followed by anything else is malformed */
	{
		size_t i, o = 0;
		for (i = 0; i < n; i++) {
			if (tok[i] == '~') {
				if (i + 1 >= n || (tok[i + 1] != '0' && tok[i + 1] != '1'))
					return false;
				tok[o++] = tok[i + 1] == '1' ? '/' : '~';
				i++;
			} else {
				tok[o++] = tok[i];
			}
		}
		tok[o] = '\0';
	}
	return true;
}

const cJSON *js_pointer_get(const cJSON *root, const char *fragment)
{
	char tok[JSONSCHEMA_URI_MAX + 1];
	const char *p = fragment;
	const cJSON *cur = root;

	if (*p == '\0')
		return root;
	if (*p != '/')
		return NULL;
	while (cur && *p == '/') {
		const char *end = strchr(p + 1, '/');

		if (!end)
			end = p + strlen(p);
		if (!pointer_token(p + 1, end, tok, sizeof tok))
			return NULL;
		if (cJSON_IsArray(cur)) {
			size_t i, idx = 0;
			const cJSON *it;
			if (!tok[0] || (tok[0] == '0' && tok[1]))
				return NULL;
			for (i = 0; tok[i]; i++) {
				if (!is_digit(tok[i]) || idx > 100000000)
					return NULL;
				idx = idx * 10 + (size_t)(tok[i] - '0');
			}
			for (it = cur->child, i = 0; it && i < idx; it = it->next, i++)
				;
			cur = it;
		} else if (cJSON_IsObject(cur)) {
			const cJSON *it;
			for (it = cur->child; it; it = it->next)
				if (it->string && strcmp(it->string, tok) == 0)
					break;
			cur = it;
		} else {
			return NULL;
		}
		p = end;
	}
	return cur;
}

size_t js_pointer_push(char *p, size_t cap, size_t len, const char *token)
{
	const char *s;

	if (len + 1 >= cap)
		return len;
	p[len++] = '/';
	for (s = token; *s && len + 1 < cap; s++) {
		if (*s == '~' || *s == '/') {
			if (len + 2 >= cap)
				break;
			p[len++] = '~';
			p[len++] = *s == '~' ? '0' : '1';
		} else {
			p[len++] = *s;
		}
	}
	p[len] = '\0';
	return len;
}

size_t js_pointer_push_index(char *p, size_t cap, size_t len, size_t index)
{
	char num[24];

	snprintf(num, sizeof num, "%zu", index);
	return js_pointer_push(p, cap, len, num);
}
