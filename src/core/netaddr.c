/*
 * netaddr.c: IP addresses and CIDR lists; see netaddr.h.
 *
 * Text comes from an operator's configuration or from a client's headers,
 * so every parser takes a length, copies into a bounded buffer first and
 * refuses rather than repairs. inet_pton does the address syntax.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/netaddr.h"
#include "core/banned.h"

static const unsigned char v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool is_v4(const netaddr *a)
{
	return memcmp(a->b, v4_prefix, sizeof v4_prefix) == 0;
}

bool netaddr_parse(const char *text, size_t len, netaddr *out)
{
	char tmp[NETADDR_TEXT_MAX + 1];

	if (!text || len == 0 || len >= sizeof tmp)
		return false;
	memcpy(tmp, text, len);
	tmp[len] = '\0';
	memset(out, 0, sizeof *out);
	if (inet_pton(AF_INET, tmp, out->b + 12) == 1) {
		memcpy(out->b, v4_prefix, sizeof v4_prefix);
		return true;
	}
	return inet_pton(AF_INET6, tmp, out->b) == 1;
}

void netaddr_format(const netaddr *a, char out[NETADDR_TEXT_MAX])
{
	if (is_v4(a)) {
		if (!inet_ntop(AF_INET, a->b + 12, out, NETADDR_TEXT_MAX))
			out[0] = '\0';
	} else if (!inet_ntop(AF_INET6, a->b, out, NETADDR_TEXT_MAX)) {
		out[0] = '\0';
	}
}

/* Whether a and b agree on the first bits bits. */
static bool prefix_equal(const netaddr *a, const netaddr *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a->b, b->b, full) != 0)
		return false;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((a->b[full] & mask) != (b->b[full] & mask))
			return false;
	}
	return true;
}

static bool host_bits_zero(const netaddr *a, unsigned bits)
{
	unsigned i;

	for (i = bits; i < 128; i++)
		if (a->b[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

/* One item, "ADDR" or "ADDR/BITS". */
static bool parse_item(const char *item, size_t n, netaddr_range *out)
{
	const char *slash = memchr(item, '/', n);
	size_t alen = slash ? (size_t)(slash - item) : n;
	unsigned bits, max;
	size_t i;

	if (!netaddr_parse(item, alen, &out->addr))
		return false;
	max = is_v4(&out->addr) ? 32 : 128;
	bits = max;
	if (slash) {
		const char *d = slash + 1;
		size_t dn = n - alen - 1;
		if (dn == 0 || dn > 3)
			return false;
		for (bits = 0, i = 0; i < dn; i++) {
			if (!isdigit((unsigned char)d[i]))
				return false;
			bits = bits * 10 + (unsigned)(d[i] - '0');
		}
		if (bits > max)
			return false;
	}
	out->bits = max == 32 ? 96 + bits : bits;
	return true;
}

bool netaddr_list_parse(const char *text, netaddr_list *out, char *why, size_t whylen)
{
	netaddr_list tmp;
	const char *p = text ? text : "";

	tmp.n = 0;
	while (*p) {
		char shown[64];
		size_t n;

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ", ");
		if (n == 0)
			break;
		snprintf(shown, sizeof shown, "%.*s%s", n > 48 ? 48 : (int)n, p, n > 48 ? "..." : "");
		if (tmp.n == NETADDR_LIST_MAX) {
			snprintf(why, whylen, "has more than %d items", NETADDR_LIST_MAX);
			return false;
		}
		if (!parse_item(p, n, &tmp.r[tmp.n])) {
			snprintf(why, whylen, "has \"%s\", which is not an IP address or CIDR range", shown);
			return false;
		}
		if (!host_bits_zero(&tmp.r[tmp.n].addr, tmp.r[tmp.n].bits)) {
			snprintf(why, whylen, "has \"%s\", whose host bits are set", shown);
			return false;
		}
		tmp.n++;
		p += n;
	}
	if (out)
		*out = tmp;
	return true;
}

bool netaddr_list_has(const netaddr_list *l, const netaddr *a)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (prefix_equal(&l->r[i].addr, a, l->r[i].bits))
			return true;
	return false;
}

bool netaddr_is_loopback(const netaddr *a)
{
	static const unsigned char v6_loop[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

	return (is_v4(a) && a->b[12] == 127) || memcmp(a->b, v6_loop, 16) == 0;
}

void netaddr_client_net(const netaddr *a, netaddr *out)
{
	*out = *a;
	if (!is_v4(a))
		memset(out->b + 8, 0, 8);
}
