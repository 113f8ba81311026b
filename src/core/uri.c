/*
 * uri.c: decodes and splits the request path and query string; see uri.h
 * for the contract and the reason codes.
 *
 * Everything here reads attacker bytes, so it refuses instead of repairing:
 * a path that would need normalising ("..", "%2F", "\") is an error, not a
 * different path. Both parsers are one linear pass with no recursion, read
 * exactly len bytes (raw need not be NUL-terminated), count before they
 * allocate, and allocate only from the arena, never more than about 2 * len
 * bytes plus a bounded pointer array.
 *
 * Invariants of a parsed path: decoded starts with '/'; no segment is empty,
 * ".", "..", or holds '/', '\', a control byte or invalid UTF-8; decoded is
 * exactly "/" + segments joined by "/" (+ "/" when trailing_slash). The
 * root "/" has no segments and no trailing slash.
 */
#include <stdint.h>
#include <string.h>

#include "core/utf8.h"
#include "core/limits.h"
#include "core/uri.h"
#include "core/banned.h"

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t uri_pct_decode(const char *s, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return o;
}


enum { DEC_PATH = 1, DEC_FORM = 2 };

/* Decodes src[0..n) into dst (room for n bytes plus a NUL) and checks it.
 * DEC_PATH refuses slashes, backslashes and control bytes (none belongs in
 * a segment, and they would reach logs and redirects); DEC_FORM reads '+'
 * as a space. Returns the decoded length through *outlen, or the reason. */
static const char *decode(const char *src, size_t n, char *dst, int mode, size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = s[i];
		int escaped = 0;

		if (c == '%') {
			int hi, lo;
			if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
				return "uri.bad_escape";
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			escaped = 1;
		} else if (c == '+' && (mode & DEC_FORM)) {
			c = ' ';
		}
		if (c == '\0')
			return "uri.nul";
		if (mode & DEC_PATH) {
			if (escaped && (c == '/' || c == '\\'))
				return "uri.encoded_slash";
			if (c == '\\')
				return "uri.backslash";
			if (c < 0x20 || c == 0x7F)
				return "uri.control";
		}
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	if (!utf8_valid(dst, o))
		return "uri.invalid_utf8";
	*outlen = o;
	return NULL;
}

egov_err uri_path_parse(arena *a, const char *raw, size_t len, uri_path *out, const char **why)
{
	const char *segs[EGOV_PATH_SEGMENTS_MAX];
	const char *reason = NULL;
	char *store = NULL, *dec = NULL, *d;
	const char **arr = NULL;
	size_t nsegs = 0, used = 0, i = 0, k;
	egov_err err = EGOV_OK;

	memset(out, 0, sizeof *out);
	if (len == 0 || !raw || raw[0] != '/') {
		reason = "uri.not_absolute";
		goto out;
	}
	/* Segments are NUL-terminated in store; each NUL takes the place of
	 * the '/' before its segment, so len + 1 bytes always suffice. */
	if (!(store = arena_alloc(a, len + 1)) || !(dec = arena_alloc(a, len + 2))) {
		err = EGOV_ELIMIT;
		goto out;
	}
	while (i < len) {
		size_t start, n;
		char *seg = store + used;

		while (i < len && raw[i] == '/')
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && raw[i] != '/')
			i++;
		if ((reason = decode(raw + start, i - start, seg, DEC_PATH, &n)))
			goto out;
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
			reason = "uri.dot_segment";
			goto out;
		}
		if (nsegs == EGOV_PATH_SEGMENTS_MAX) {
			reason = "uri.too_many";
			goto out;
		}
		segs[nsegs++] = seg;
		used += n + 1;
	}
	if (nsegs && !(arr = arena_alloc(a, nsegs * sizeof *arr))) {
		err = EGOV_ELIMIT;
		goto out;
	}
	d = dec;
	*d++ = '/';
	for (k = 0; k < nsegs; k++) {
		size_t n = strlen(segs[k]);
		arr[k] = segs[k];
		memcpy(d, segs[k], n);
		d += n;
		if (k + 1 < nsegs)
			*d++ = '/';
	}
	out->trailing_slash = nsegs > 0 && raw[len - 1] == '/';
	if (out->trailing_slash)
		*d++ = '/';
	*d = '\0';
	out->decoded = dec;
	out->segs = arr;
	out->nsegs = nsegs;
out:
	if (reason) {
		err = EGOV_EINVAL;
		memset(out, 0, sizeof *out);
	}
	if (why)
		*why = reason;
	return err;
}

egov_err uri_query_parse(arena *a, const char *raw, size_t len, uri_query *out, const char **why)
{
	const char *reason = NULL;
	uri_param *params = NULL;
	size_t count = 0, i, n = 0;
	egov_err err = EGOV_OK;

	memset(out, 0, sizeof *out);
	if (!raw)
		len = 0;
	/* Count the non-empty pairs first so the limit holds before any
	 * allocation sized by the client. */
	for (i = 0; i < len;) {
		size_t start = i;
		while (i < len && raw[i] != '&')
			i++;
		if (i > start && ++count > EGOV_QUERY_PARAMS_MAX) {
			reason = "uri.too_many";
			goto out;
		}
		i++;
	}
	if (count && !(params = arena_alloc(a, count * sizeof *params))) {
		err = EGOV_ELIMIT;
		goto out;
	}
	for (i = 0; i < len && n < count;) {
		size_t start = i, eq, nl, vl;
		char *name, *value;

		while (i < len && raw[i] != '&')
			i++;
		if (i == start) {
			i++;
			continue;
		}
		for (eq = start; eq < i && raw[eq] != '='; eq++)
			;
		name = arena_alloc(a, eq - start + 1);
		value = arena_alloc(a, eq < i ? i - eq : 1);
		if (!name || !value) {
			err = EGOV_ELIMIT;
			goto out;
		}
		if ((reason = decode(raw + start, eq - start, name, DEC_FORM, &nl)))
			goto out;
		if (eq < i && (reason = decode(raw + eq + 1, i - eq - 1, value, DEC_FORM, &vl)))
			goto out;
		params[n].name = name;
		params[n].value = value;
		n++;
		i++;
	}
	out->params = params;
	out->n = n;
out:
	if (reason)
		err = EGOV_EINVAL;
	if (err)
		memset(out, 0, sizeof *out);
	if (why)
		*why = reason;
	return err;
}

const char *uri_query_get(const uri_query *q, const char *name)
{
	size_t i;

	if (!q || !name)
		return NULL;
	for (i = 0; i < q->n; i++)
		if (strcmp(q->params[i].name, name) == 0)
			return q->params[i].value;
	return NULL;
}
