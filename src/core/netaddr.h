/*
 * netaddr.h: IP addresses and lists of addresses and CIDR ranges, as an
 * operator writes them in the configuration (server.trusted_proxies,
 * system.metrics_allow) and as peers and forwarding headers present them.
 *
 * An address is kept as 16 bytes: IPv6 as is, IPv4 as its IPv4-mapped
 * IPv6 form (::ffff:a.b.c.d), so that one comparison serves both families
 * and an IPv4 client on a dual-stack listener (which the kernel reports as
 * ::ffff:a.b.c.d) matches an IPv4 entry. A range is an address and a
 * prefix length over those 128 bits; an IPv4 range a.b.c.d/n is /96+n.
 */
#ifndef EGOV_CORE_NETADDR_H
#define EGOV_CORE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

/* Entries in one configured list: a few proxies or monitoring hosts, not
 * a firewall. */
#define NETADDR_LIST_MAX 32
/* "ffff:ffff:...:255.255.255.255" and a NUL. */
#define NETADDR_TEXT_MAX 46

typedef struct netaddr {
	unsigned char b[16];
} netaddr;

typedef struct netaddr_range {
	netaddr addr; /* host bits past the prefix are zero */
	unsigned bits; /* 0-128 */
} netaddr_range;

typedef struct netaddr_list {
	netaddr_range r[NETADDR_LIST_MAX];
	size_t n;
} netaddr_list;

/* Parses an IPv4 or IPv6 address of exactly len bytes (no brackets, no
 * port, no zone). False if it is not one. */
bool netaddr_parse(const char *text, size_t len, netaddr *out);

/* Writes the address as text: dotted IPv4 for an IPv4-mapped address,
 * else RFC 5952 IPv6. out holds NETADDR_TEXT_MAX bytes. */
void netaddr_format(const netaddr *a, char out[NETADDR_TEXT_MAX]);

/* Parses a comma-separated list of addresses and CIDR ranges ("10.0.0.0/8,
 * ::1, 192.0.2.7"); spaces around items are allowed, "" is an empty list.
 * Host bits set past a range's prefix are refused (10.0.0.1/8 is a typo or
 * a misunderstanding, never silently widened). On a refusal, why says
 * which item and why ("has \"10.0.0.1/8\", whose host bits are set"). out
 * may be NULL to check only. */
bool netaddr_list_parse(const char *text, netaddr_list *out, char *why, size_t whylen);

/* Whether a is inside one of the list's ranges. */
bool netaddr_list_has(const netaddr_list *l, const netaddr *a);

/* Whether a is a loopback address (127.0.0.0/8, ::1). */
bool netaddr_is_loopback(const netaddr *a);

/* The /64 network of an IPv6 address (host bits zeroed), the address
 * itself for IPv4: the unit one subscriber usually holds, for counters
 * keyed by client address. */
void netaddr_client_net(const netaddr *a, netaddr *out);

#endif
