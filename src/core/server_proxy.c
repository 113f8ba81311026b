/*
 * server_proxy.c: the client's address behind trusted reverse proxies
 * (server.trusted_proxies, server.proxy_header); see server_proxy.h.
 *
 * Behind a proxy every connection comes from the proxy, so without this
 * the access log, the login throttle and audit records would all name the
 * proxy, and one client's bad logins would block everyone's. A forwarding
 * header is a list of hops, each appended by the proxy that received the
 * request from that hop; only the entries appended by proxies we trust are
 * true, and everything to the left of the first untrusted hop may be
 * forged by that hop. So the client is the right-most address that is not
 * a trusted proxy: walking from the right, each trusted proxy vouches for
 * the hop to its left, and the first hop that is not one is the client.
 *
 * Invariants: the header is read only when the connection's own peer is a
 * trusted proxy; the other forwarding header (X-Forwarded-For when the
 * proxies set Forwarded, and the reverse) is never read, since a client
 * may have sent it and the proxy passed it on untouched. A hop that is not
 * an address ("unknown", an obfuscated RFC 7239 name, garbage) ends the
 * walk at the trusted proxy that reported it. Nothing here allocates more
 * than bounded arrays on the stack.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/netaddr.h"
#include "core/req_int.h"
#include "core/server_proxy.h"
#include "core/banned.h"

/* Header lines and hops looked at per request. The client is near the
 * right end; a longer chain than this is not a deployment we serve. */
#define PROXY_LINES_MAX 16
#define PROXY_HOPS_MAX 64

static struct {
	netaddr_list trusted;
	bool forwarded; /* RFC 7239 Forwarded, else X-Forwarded-For */
} px;

egov_err server_proxy_open(const egov_config *cfg, char *errmsg, size_t errlen)
{
	char why[128];

	px.trusted.n = 0;
	px.forwarded = cfg->proxy_header && strcmp(cfg->proxy_header, "forwarded") == 0;
	if (!netaddr_list_parse(cfg->trusted_proxies ? cfg->trusted_proxies : "", &px.trusted, why, sizeof why)) {
		snprintf(errmsg, errlen, "server.trusted_proxies: %s (expected IP addresses and CIDR ranges)", why);
		return EGOV_EINVAL;
	}
	return EGOV_OK;
}

/* ---- reading the header ------------------------------------------------ */

typedef struct lines {
	const char *v[PROXY_LINES_MAX];
	size_t n, seen;
	const char *name;
} lines;

/* Keeps the last PROXY_LINES_MAX lines of the header, in order. */
static enum MHD_Result take_line(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	lines *l = cls;

	(void)kind;
	if (!value || strcasecmp(key, l->name) != 0)
		return MHD_YES;
	if (l->n == PROXY_LINES_MAX) {
		memmove(l->v, l->v + 1, (PROXY_LINES_MAX - 1) * sizeof l->v[0]);
		l->n--;
	}
	l->v[l->n++] = value;
	l->seen++;
	return MHD_YES;
}

typedef struct span {
	const char *p;
	size_t n;
} span;

static span trim(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return (span){p, n};
}

/* An address as a hop names it: "a.b.c.d", "a.b.c.d:port", an IPv6
 * address, or "[v6]" / "[v6]:port". */
static bool hop_addr(span s, netaddr *out)
{
	const char *colon;

	if (s.n && s.p[0] == '"') { /* RFC 7239 quoted-string */
		if (s.n < 2 || s.p[s.n - 1] != '"')
			return false;
		s.p++;
		s.n -= 2;
	}
	if (s.n && s.p[0] == '[') {
		const char *close = memchr(s.p, ']', s.n);
		if (!close)
			return false;
		if ((size_t)(close - s.p) + 1 != s.n && close[1] != ':')
			return false;
		return netaddr_parse(s.p + 1, (size_t)(close - s.p) - 1, out);
	}
	colon = memchr(s.p, ':', s.n);
	if (colon && memchr(s.p, '.', s.n) && !memchr(colon + 1, ':', s.n - (size_t)(colon - s.p) - 1))
		s.n = (size_t)(colon - s.p); /* IPv4 with a port */
	return netaddr_parse(s.p, s.n, out);
}

/* The for= parameter of one RFC 7239 forwarded-element; empty if none. */
static span forwarded_for(span e)
{
	size_t i = 0;

	while (i < e.n) {
		size_t start = i, end;
		bool quoted = false;
		span pair;

		for (end = i; end < e.n && (quoted || e.p[end] != ';'); end++)
			if (e.p[end] == '"')
				quoted = !quoted;
		pair = trim(e.p + start, end - start);
		if (pair.n > 4 && strncasecmp(pair.p, "for=", 4) == 0)
			return trim(pair.p + 4, pair.n - 4);
		i = end + 1;
	}
	return (span){e.p, 0};
}

/* Splits one header line into its hops (comma-separated, commas inside a
 * quoted string kept), appending to hops; returns the new count. */
static size_t split_hops(const char *line, span *hops, size_t n)
{
	size_t len = strlen(line), i = 0;

	while (i <= len && n < PROXY_HOPS_MAX) {
		size_t end;
		bool quoted = false;

		for (end = i; end < len && (quoted || line[end] != ','); end++)
			if (line[end] == '"')
				quoted = !quoted;
		hops[n++] = trim(line + i, end - i);
		i = end + 1;
	}
	return n;
}

void server_proxy_resolve(req *r)
{
	lines l = {.n = 0, .seen = 0};
	span hops[PROXY_HOPS_MAX];
	netaddr peer, cur;
	size_t nh = 0, i;

	r->proxied = false;
	r->via[0] = '\0';
	if (px.trusted.n == 0 || !netaddr_parse(r->ip, strlen(r->ip), &peer) || !netaddr_list_has(&px.trusted, &peer))
		return;
	r->proxied = true;
	l.name = px.forwarded ? "Forwarded" : "X-Forwarded-For";
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, take_line, &l);
	for (i = 0; i < l.n; i++)
		nh = split_hops(l.v[i], hops, nh);
	cur = peer;
	/* Right to left: each trusted hop vouches for the one before it. */
	for (i = nh; i-- > 0;) {
		span h = px.forwarded ? forwarded_for(hops[i]) : hops[i];
		netaddr a;

		if (!hop_addr(h, &a))
			break;
		cur = a;
		if (!netaddr_list_has(&px.trusted, &a))
			break;
	}
	if (memcmp(&cur, &peer, sizeof cur) != 0) {
		memcpy(r->via, r->ip, sizeof r->via);
		netaddr_format(&cur, r->ip);
	}
}

bool server_proxy_peer_trusted(const req *r)
{
	return r->proxied;
}
