/*
 * wire.c: the gateway's parsing of what arrives from outside, as pure
 * functions (no request, no database, no keys), so that the gateway and
 * the fuzz target (tests/fuzz/fuzz_exchange.c) run the same code:
 *
 *   - the X-Road-Id and free-text headers,
 *   - the path after /r1 (or /peer/v1/r1) split into the service id and
 *     what follows it, both raw (signed and forwarded byte for byte) and
 *     decoded (matched against access rules),
 *   - the shape of the signature headers of a signed message,
 *   - the canonical texts that are signed (docs/exchange.md),
 *   - the methods and paths of an access rule, a gateway's address and a
 *     central node's,
 *   - the Accept header of a metaservice (which representation to answer).
 *
 * Everything here depends only on buf, arena, the JSON writer and utf8.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/arena.h"
#include "core/utf8.h"
#include "exchange/wire/wire.h"
#include "core/banned.h"

bool exchange_msgid_valid(const char *s)
{
	size_t i, n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > EXCHANGE_MSGID_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

bool exchange_text_valid(const char *s, size_t max)
{
	size_t i, n;

	if (!s)
		return false;
	n = strlen(s);
	if (n > max || !utf8_valid(s, n))
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

size_t exchange_split_rest(char *rest, const char **parts, size_t max)
{
	size_t n = 0;

	if (!rest)
		return 0;
	while (*rest && n < max) {
		char *slash = strchr(rest, '/');
		parts[n++] = rest;
		if (!slash)
			break;
		*slash = '\0';
		rest = slash + 1;
	}
	return n;
}

bool exchange_join_id(const char *const *parts, size_t n, char out[EXCHANGE_ID_MAX])
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		size_t len = strlen(parts[i]);
		if (used + len + 2 > EXCHANGE_ID_MAX)
			return false;
		if (i)
			out[used++] = '/';
		memcpy(out + used, parts[i], len);
		used += len;
		out[used] = '\0';
	}
	return true;
}

const char *exchange_raw_tail(arena *a, const char *target, int nsegs)
{
	const char *p = target;
	char *q;
	size_t n;
	int i;

	if (!p)
		return NULL;
	for (i = 0; i < nsegs; i++) {
		while (*p == '/')
			p++;
		if (!*p || *p == '?')
			return NULL;
		while (*p && *p != '/' && *p != '?')
			p++;
	}
	if (*p == '/')
		return p;
	/* Nothing or only a query: the path is "/". */
	n = strlen(p);
	q = arena_alloc(a, n + 2);
	if (!q)
		return NULL;
	q[0] = '/';
	memcpy(q + 1, p, n + 1);
	return q;
}

bool exchange_raw_parts_nonempty(const char *target, int skip, int nid)
{
	const char *p = target;
	int i;

	if (!p)
		return true;
	for (i = 0; i < skip + nid; i++) {
		const char *seg;
		if (*p != '/')
			return true; /* the path ended (or its query begins) */
		seg = ++p;
		while (*p && *p != '/' && *p != '?')
			p++;
		if (i >= skip && p == seg)
			return false;
	}
	return true;
}

const char *exchange_decoded_tail(arena *a, const char *const *parts, size_t nparts, size_t skip)
{
	size_t i, k, total = 1;
	char *out, *p;

	/* A '?' here came from "%3F" inside a segment: it stays "%3F", as
	 * access rules read a '?' as the start of a query and would match
	 * "/public%3Fx" as "/public". */
	for (i = skip; i < nparts; i++) {
		total += strlen(parts[i]) + 1;
		for (k = 0; parts[i][k]; k++)
			total += parts[i][k] == '?' ? 2 : 0;
	}
	out = arena_alloc(a, total + 1);
	if (!out)
		return NULL;
	p = out;
	*p++ = '/';
	for (i = skip; i < nparts; i++) {
		if (i > skip)
			*p++ = '/';
		for (k = 0; parts[i][k]; k++) {
			if (parts[i][k] == '?') {
				memcpy(p, "%3F", 3);
				p += 3;
			} else {
				*p++ = parts[i][k];
			}
		}
	}
	*p = '\0';
	return out;
}

/* base64url without padding. */
static bool b64url(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_'))
			return false;
	}
	return true;
}

bool exchange_sha256_hex_valid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

bool exchange_sig_headers_valid(const char *mid, const char *signed_at, const char *cert, const char *sig)
{
	size_t n;

	if (!exchange_msgid_valid(mid) || !signed_at || !cert || !sig)
		return false;
	/* The time is parsed later (RFC 3339); here only what fits the
	 * buffers and a signed line: no control characters. */
	n = strlen(signed_at);
	if (n == 0 || n >= EXCHANGE_SIGNED_AT_MAX || !exchange_text_valid(signed_at, n))
		return false;
	return exchange_sha256_hex_valid(cert) && b64url(sig, EXCHANGE_SIG_MAX - 1);
}

/* ---- canonical texts ---------------------------------------------------------- */

static egov_err canon_line(buf *out, const char *s, bool first)
{
	egov_err err;

	if (!s)
		s = "";
	/* One field per line: a field with a line break would let two
	 * different exchanges sign alike. */
	if (strpbrk(s, "\r\n"))
		return EGOV_EINVAL;
	if (!first && (err = buf_addc(out, '\n')))
		return err;
	return buf_adds(out, s);
}

egov_err exchange_canon_request(const exchange_canon_req *c, buf *out)
{
	const char *fields[] = {c->message_id, c->client, c->service, c->method, c->path, c->content_type,
				c->represented_party, c->data_subject, c->purpose, c->signed_at, c->body_sha256};
	egov_err err;
	size_t i;

	buf_reset(out);
	if ((err = canon_line(out, "egov-exchange/1 request", true)))
		return err;
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if ((err = canon_line(out, fields[i], false)))
			return err;
	return EGOV_OK;
}

egov_err exchange_canon_response(const exchange_canon_resp *c, buf *out)
{
	char status[16];
	const char *fields[7];
	egov_err err;
	size_t i;

	if (c->status < 100 || c->status > 999)
		return EGOV_EINVAL;
	snprintf(status, sizeof status, "%d", c->status);
	fields[0] = c->message_id;
	fields[1] = c->service;
	fields[2] = status;
	fields[3] = c->content_type;
	fields[4] = c->request_sig;
	fields[5] = c->signed_at;
	fields[6] = c->body_sha256;
	buf_reset(out);
	if ((err = canon_line(out, "egov-exchange/1 response", true)))
		return err;
	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if ((err = canon_line(out, fields[i], false)))
			return err;
	return EGOV_OK;
}

/* ---- access rules ----------------------------------------------------------- */

bool exchange_rule_method_allowed(const char *list, const char *method)
{
	size_t n = strlen(method);

	if (strcmp(list, "*") == 0)
		return true;
	while (*list) {
		const char *end = strchr(list, ',');
		size_t len = end ? (size_t)(end - list) : strlen(list);
		if (len == n && strncmp(list, method, n) == 0)
			return true;
		if (!end)
			break;
		list = end + 1;
	}
	return false;
}

bool exchange_rule_path_allowed(const char *list, const char *path)
{
	size_t plen;

	if (!path || !*path || *path == '?')
		path = "/";
	plen = strcspn(path, "?");
	/* A dot segment could climb out of an allowed prefix on the back-end. */
	if (strstr(path, "/../") || (plen >= 3 && strncmp(path + plen - 3, "/..", 3) == 0))
		return false;
	if (strcmp(list, "*") == 0)
		return true;
	while (*list) {
		const char *end = strchr(list, ',');
		size_t len = end ? (size_t)(end - list) : strlen(list);
		if (len >= 2 && list[len - 1] == '*') {
			if (plen >= len - 1 && strncmp(path, list, len - 1) == 0)
				return true;
		} else if (len == plen && strncmp(path, list, len) == 0) {
			return true;
		}
		if (!end)
			break;
		list = end + 1;
	}
	return false;
}

static const char *const known_methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

/* Calls ok(item, len) for each item of a comma-separated list; false when
 * an item is refused or the list is empty, over max or ends in a comma. */
static bool each_item(const char *s, size_t max, bool (*ok)(const char *item, size_t len))
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > max)
		return false;
	if (strcmp(s, "*") == 0)
		return true;
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		if (!ok(s, len))
			return false;
		if (!end)
			break;
		s = end + 1;
		if (!*s)
			return false;
	}
	return true;
}

static bool method_item_valid(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof known_methods / sizeof known_methods[0]; i++)
		if (strlen(known_methods[i]) == len && strncmp(known_methods[i], s, len) == 0)
			return true;
	return false;
}

/* One path rule: an exact path, or a prefix ending in a slash and a star
 * (a slash and a star alone: every path). */
static bool path_item_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || s[0] != '/')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch >= 0x7f || ch == ',' || ch == '?' || ch == '#' || ch == '\\')
			return false;
		if (ch == '*' && (i != len - 1 || s[i - 1] != '/'))
			return false;
	}
	return true;
}

bool exchange_methods_valid(const char *s)
{
	return each_item(s, EXCHANGE_RULE_MAX, method_item_valid);
}

bool exchange_paths_valid(const char *s)
{
	return each_item(s, EXCHANGE_RULE_MAX, path_item_valid);
}

bool exchange_gateway_url_valid(const char *s)
{
	const char *host, *colon;
	size_t n = s ? strlen(s) : 0, i;

	if (n < 9 || n > EXCHANGE_URL_MAX || strncmp(s, "https://", 8) != 0)
		return false;
	host = s + 8;
	/* host[:port], nothing after: the peer path is fixed by the protocol. */
	for (i = 0; host[i]; i++) {
		char ch = host[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '-' || ch == ':' || ch == '[' || ch == ']'))
			return false;
	}
	colon = strrchr(host, ':');
	if (colon && !strchr(colon, ']')) {
		long port;
		char *end;
		if (colon == host)
			return false;
		port = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || port < 1 || port > 65535)
			return false;
	}
	return host[0] != '\0' && host[0] != ':';
}

bool exchange_url_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la && a[la - 1] == '/')
		la--;
	while (lb && b[lb - 1] == '/')
		lb--;
	return la == lb && la > 0 && strncasecmp(a, b, la) == 0;
}

bool exchange_conf_url_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0, i, start;

	if (n == 0 || n > EXCHANGE_URL_MAX)
		return false;
	if (strncmp(s, "http://", 7) == 0)
		start = 7;
	else if (strncmp(s, "https://", 8) == 0)
		start = 8;
	else
		return false;
	/* host[:port]: no user part, which would hide the real host. */
	for (i = start; s[i] && s[i] != '/'; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '-' || ch == ':' || ch == '[' || ch == ']'))
			return false;
	}
	if (i == start || s[start] == ':')
		return false;
	/* A path, without a query or fragment: the document's path is added. */
	for (; s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#' || ch == '\\')
			return false;
	}
	return true;
}

/* ---- content negotiation ----------------------------------------------------- */

/* A qvalue (RFC 9110 12.4.2): "0", "1", "0.xyz", "1.000"; in thousandths,
 * -1 when it is not one. */
static int qvalue(const char *s, size_t n)
{
	int q;
	size_t i;

	if (n == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	q = (s[0] - '0') * 1000;
	if (n == 1)
		return q;
	if (s[1] != '.' || n > 5)
		return -1;
	for (i = 2; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || (q == 1000 && s[i] != '0'))
			return -1;
		q += (s[i] - '0') * (i == 2 ? 100 : i == 3 ? 10 : 1);
	}
	return q;
}

static bool ieq(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && strncasecmp(a, b, an) == 0;
}

static size_t trim(const char **s, size_t n)
{
	while (n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		n--;
	}
	while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t'))
		n--;
	return n;
}

/* How specifically the range (type/subtype, n bytes) matches offer: 3 the
 * same type and subtype, 2 the type with a star, 1 the star alone, 0 not
 * at all. */
static int range_match(const char *range, size_t n, const char *offer)
{
	const char *slash = memchr(range, '/', n), *oslash = strchr(offer, '/');
	size_t tn, sn;

	if (!slash || !oslash)
		return 0;
	tn = (size_t)(slash - range);
	sn = n - tn - 1;
	if (ieq(range, tn, "*", 1) && ieq(slash + 1, sn, "*", 1))
		return 1;
	if (!ieq(range, tn, offer, (size_t)(oslash - offer)))
		return 0;
	if (ieq(slash + 1, sn, "*", 1))
		return 2;
	return ieq(slash + 1, sn, oslash + 1, strlen(oslash + 1)) ? 3 : 0;
}

int exchange_accept_pick(const char *accept, const char *const *offers, size_t n)
{
	enum { OFFERS_MAX = 8 };
	int best_spec[OFFERS_MAX] = {0}, q_of[OFFERS_MAX] = {0};
	const char *p = accept;
	size_t i;
	int pick = -1, best_q = 0;

	if (n == 0 || n > OFFERS_MAX)
		return -1;
	if (!accept || strspn(accept, " \t") == strlen(accept))
		return 0; /* no preference: the first offer */
	while (p && *p) {
		const char *end = strchr(p, ','), *semi, *elem = p;
		size_t len = end ? (size_t)(end - p) : strlen(p), rlen;
		int q = 1000;
		bool bad = false;

		p = end ? end + 1 : NULL;
		len = trim(&elem, len);
		if (len == 0)
			continue;
		semi = memchr(elem, ';', len);
		rlen = semi ? (size_t)(semi - elem) : len;
		/* Parameters: only q counts (other media type parameters are
		 * not told apart here); a q that is not a qvalue drops the range. */
		while (semi && !bad) {
			const char *par = semi + 1, *next = memchr(par, ';', len - (size_t)(par - elem));
			size_t plen = next ? (size_t)(next - par) : len - (size_t)(par - elem);
			plen = trim(&par, plen);
			if (plen >= 2 && (par[0] == 'q' || par[0] == 'Q') && par[1] == '=') {
				const char *v = par + 2;
				size_t vn = trim(&v, plen - 2);
				if ((q = qvalue(v, vn)) < 0)
					bad = true;
			}
			semi = next;
		}
		rlen = trim(&elem, rlen);
		if (bad || rlen == 0)
			continue;
		for (i = 0; i < n; i++) {
			int spec = range_match(elem, rlen, offers[i]);
			if (spec > best_spec[i]) {
				best_spec[i] = spec;
				q_of[i] = q;
			}
		}
	}
	for (i = 0; i < n; i++) {
		if (best_spec[i] && q_of[i] > best_q) {
			best_q = q_of[i];
			pick = (int)i;
		}
	}
	return pick;
}
