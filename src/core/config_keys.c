/*
 * config_keys.c: the kernel's four configuration sections, [server],
 * [data], [web] and [log]: their keys (type, place in egov_config, default,
 * range, description), their cross-key rules and derived defaults, and the
 * value checks that modules' sections share (config_check_*).
 *
 * The keys of a module live in the module (its config_section); the
 * machinery that reads, sets, checks and documents them all is config.c.
 * Values are validated when set; the finish steps here add the rules that
 * span keys and fill the defaults derived from data.dir.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config_int.h"
#include "core/limits.h"
#include "core/netaddr.h"
#include "core/server_tls.h"
#include "core/banned.h"

static bool check_token(const char *v, char *why, size_t whylen);
static bool check_database(const char *v, char *why, size_t whylen);

static const char *const roles[] = {"standalone", "central", "gateway", NULL};
static const char *const proxy_headers[] = {"x-forwarded-for", "forwarded", NULL};
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};

#define OFF(field) offsetof(egov_config, field)

static const config_key server_keys[] = {
	{
		.name = "listen", .type = CONFIG_STRING, .offset = OFF(listen),
		.str_default = "127.0.0.1:8080", .check = config_check_listen,
		.expect = "ADDR:PORT with an IPv4 address, or [IPv6]:PORT; port 1-65535",
		.desc = "Address and port the HTTP server listens on. Keep a loopback "
			"address (127.0.0.1 or [::1]) behind a reverse proxy that "
			"terminates TLS; 0.0.0.0 or [::] listen on every interface.",
	},
	{
		.name = "threads", .type = CONFIG_INT, .offset = OFF(threads),
		.int_default = 0, .min = 0, .max = 256,
		.desc = "Number of HTTP worker threads; each worker holds its own "
			"database connection. 0 means one per CPU core.",
	},
	{
		.name = "connections_max", .type = CONFIG_INT,
		.offset = OFF(connections_max), .int_default = EGOV_CONNECTIONS_MAX_DEFAULT,
		.min = 1, .max = 1000000,
		.desc = "Most client connections open at once; more are refused until "
			"one closes.",
	},
	{
		.name = "connections_per_ip", .type = CONFIG_INT,
		.offset = OFF(connections_per_ip), .int_default = EGOV_CONNECTIONS_PER_IP_DEFAULT,
		.min = 1, .max = 1000000,
		.desc = "Most connections open at once from one client address, so one "
			"client cannot take them all. Must not exceed "
			"server.connections_max.",
	},
	{
		.name = "timeout_s", .type = CONFIG_INT, .offset = OFF(timeout_s),
		.int_default = EGOV_CONNECTION_TIMEOUT_DEFAULT, .min = 1, .max = 3600,
		.desc = "Seconds a connection may sit idle or trickle bytes before it is "
			"closed: the defence against slow clients.",
	},
	{
		.name = "head_timeout_s", .type = CONFIG_INT, .offset = OFF(head_timeout_s),
		.int_default = EGOV_HEAD_TIMEOUT_DEFAULT, .min = 1, .max = 3600,
		.desc = "Seconds within which a whole request head (request line and "
			"headers) must arrive, counted from the connection's opening or "
			"its previous answer; a client that trickles a head is "
			"disconnected then, however often it sends a byte.",
	},
	{
		.name = "drain_s", .type = CONFIG_INT, .offset = OFF(drain_s),
		.int_default = 10, .min = 0, .max = 600,
		.desc = "On SIGTERM, seconds to let requests in flight finish before the "
			"process exits. 0 exits at once.",
	},
	{
		.name = "admin_token", .type = CONFIG_STRING,
		.offset = OFF(admin_token), .str_default = "", .check = check_token, .secret = true,
		.expect = "\"\" or at least 32 characters",
		.desc = "Bearer token for the operator endpoints. Empty means no "
			"operator token is accepted. Prefer the environment variable "
			"EGOV_SERVER_ADMIN_TOKEN, which keeps the secret out of files.",
	},
	{
		.name = "role", .type = CONFIG_ENUM, .offset = OFF(role),
		.str_default = "standalone", .allowed = roles,
		.desc = "What this node is. standalone: the central services and demo "
			"departments in one process. central: identity provider, CA, "
			"registry of members and services, portal and e-services. "
			"gateway: one department's exchange node.",
	},
	{
		.name = "tls_cert", .type = CONFIG_STRING, .offset = OFF(tls_cert),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Server certificate (PEM, leaf first, then intermediates). "
			"With server.tls_key set too, egov serves HTTPS only on "
			"server.listen and asks clients for a certificate (certificate "
			"login). Both empty means plain HTTP.",
	},
	{
		.name = "tls_key", .type = CONFIG_STRING, .offset = OFF(tls_key),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Private key of server.tls_cert (PEM, unencrypted). Set both "
			"or neither.",
	},
	{
		.name = "tls_client_ca", .type = CONFIG_STRING,
		.offset = OFF(tls_client_ca), .str_default = "",
		.expect = "\"\" or a path to a PEM file",
		.desc = "PEM bundle of CAs whose client certificates are requested "
			"during the TLS handshake. Empty means the platform issuing "
			"CA plus pki.trust_anchors. A certificate is always verified "
			"by egov itself (chain, validity, revocation, usage).",
	},
	{
		.name = "tls_priorities", .type = CONFIG_STRING, .offset = OFF(tls_priorities),
		.str_default = SERVER_TLS_PRIORITIES_DEFAULT, .check = server_tls_check_priorities,
		.expect = "a GnuTLS priority string",
		.desc = "Protocol versions and cipher suites of both HTTPS listeners "
			"(server.listen with server.tls_cert, and server.peer_listen), as "
			"a GnuTLS priority string. The default allows TLS 1.2 and 1.3 "
			"only, with forward-secret (ECDHE) key exchange and AEAD "
			"ciphers (AES-GCM, ChaCha20-Poly1305).",
	},
	{
		.name = "trusted_proxies", .type = CONFIG_STRING,
		.offset = OFF(trusted_proxies), .str_default = "", .check = config_check_net_list,
		.expect = "\"\" or comma-separated IP addresses and CIDR ranges",
		.desc = "Reverse proxies in front of egov (addresses or CIDR ranges). "
			"From these peers, and only from them, the header named by "
			"server.proxy_header gives the client's address (the right-most "
			"address in it that is not itself a trusted proxy), used by the "
			"access log, the login throttle and audit records; and the "
			"X-Client-Cert header (URL-encoded PEM, as nginx's "
			"$ssl_client_escaped_cert) is taken as the client certificate. "
			"Empty means both headers are ignored from everyone.",
	},
	{
		.name = "proxy_header", .type = CONFIG_ENUM, .offset = OFF(proxy_header),
		.str_default = "x-forwarded-for", .allowed = proxy_headers,
		.desc = "The header the trusted proxies set to name the client: "
			"x-forwarded-for (nginx: proxy_set_header X-Forwarded-For "
			"$proxy_add_x_forwarded_for) or forwarded (RFC 7239). The other "
			"one is ignored, since a client may have sent it.",
	},
	{
		.name = "peer_listen", .type = CONFIG_STRING, .offset = OFF(peer_listen),
		.str_default = "", .check = config_check_listen_opt, .expect = "\"\" or ADDR:PORT",
		.desc = "A second listener for other egov nodes (gateway to gateway): "
			"HTTPS only, a client certificate required, and only the routes "
			"meant for peers. Empty: none.",
	},
	{
		.name = "peer_tls_cert", .type = CONFIG_STRING, .offset = OFF(peer_tls_cert),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Certificate of the peer listener (PEM, leaf first); also the "
			"client certificate this node presents to its peers.",
	},
	{
		.name = "peer_tls_key", .type = CONFIG_STRING, .offset = OFF(peer_tls_key),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Private key of server.peer_tls_cert (PEM, unencrypted).",
	},
	{
		.name = "peer_tls_ca", .type = CONFIG_STRING, .offset = OFF(peer_tls_ca),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "CA certificates (PEM bundle) that peers' certificates must "
			"chain to, for both directions. Empty: DATA/pki/root.crt and "
			"DATA/pki/issuing.crt.",
	},
};

static const config_key data_keys[] = {
	{
		.name = "dir", .type = CONFIG_STRING, .offset = OFF(data_dir),
		.str_default = "./var", .check = config_check_nonempty, .expect = "a directory path",
		.desc = "Data directory: the SQLite database, documents (blobs/) and "
			"the access log live here unless placed elsewhere. DATA/egov.conf "
			"is read when no --config is given.",
	},
	{
		.name = "database", .type = CONFIG_STRING, .offset = OFF(database),
		.str_default = "", .check = check_database, .secret = true,
		.expect = "\"\", sqlite:PATH, postgres://... or postgresql://...",
		.desc = "Database URL. Empty means sqlite:DATA/egov.db. sqlite:PATH "
			"opens an embedded SQLite file; postgres:// or postgresql:// "
			"URLs (libpq connection URIs) open PostgreSQL.",
	},
};

static const config_key web_keys[] = {
	{
		.name = "dir", .type = CONFIG_STRING, .offset = OFF(web_dir),
		.str_default = "web", .check = config_check_nonempty, .expect = "a directory path",
		.desc = "Directory holding the web portal's templates, translations "
			"and static files.",
	},
};

static const config_key log_keys[] = {
	{
		.name = "file", .type = CONFIG_STRING, .offset = OFF(log_file),
		.str_default = "-", .check = config_check_nonempty, .expect = "\"-\" or a file path",
		.desc = "Operational log, one JSON object per line. \"-\" means "
			"standard error; otherwise a file, opened for appending.",
	},
	{
		.name = "access", .type = CONFIG_STRING, .offset = OFF(access_log),
		.str_default = "", .expect = "\"\", \"-\", \"off\" or a file path",
		.desc = "Access log, one JSON line per request. Empty means "
			"DATA/access.log; \"-\" means standard error; \"off\" turns "
			"it off.",
	},
	{
		.name = "level", .type = CONFIG_ENUM, .offset = OFF(log_level),
		.str_default = "info", .allowed = levels,
		.desc = "Least severe level of operational log lines that are written.",
	},
};

/* ---- value checks ---- */


/* Whole-string base-10 integer; no sign but '-', no spaces, no junk. */
bool config_parse_ll(const char *s, long long *out)
{
	char *end = NULL;
	long long v;

	if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end != '\0')
		return false;
	*out = v;
	return true;
}

static bool parse_port(const char *s, int *port)
{
	long long v;

	if (!config_parse_ll(s, &v) || v < 1 || v > 65535)
		return false;
	*port = (int)v;
	return true;
}

/* Splits "ADDR:PORT" / "[V6]:PORT" into a socket address. */
static bool listen_parse(const char *v, struct sockaddr_storage *ss, socklen_t *sslen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *h, *p;
	size_t hlen;
	int port;

	memset(ss, 0, sizeof *ss);
	if (v[0] == '[') {
		const char *close = strchr(v, ']');
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;
		if (!close || close[1] != ':')
			return false;
		h = v + 1;
		hlen = (size_t)(close - h);
		p = close + 2;
		if (hlen == 0 || hlen >= sizeof host)
			return false;
		memcpy(host, h, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1 || !parse_port(p, &port))
			return false;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*sslen = sizeof *s6;
	} else {
		const char *colon = strrchr(v, ':');
		struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
		if (!colon)
			return false;
		hlen = (size_t)(colon - v);
		if (hlen == 0 || hlen >= sizeof host)
			return false;
		memcpy(host, v, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1 || !parse_port(colon + 1, &port))
			return false;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*sslen = sizeof *s4;
	}
	return true;
}

bool config_check_listen(const char *v, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (listen_parse(v, &ss, &len))
		return true;
	snprintf(why, whylen, "is not a valid address and port");
	return false;
}

bool config_check_listen_opt(const char *v, char *why, size_t whylen)
{
	return !v[0] || config_check_listen(v, why, whylen);
}

#define ADMIN_TOKEN_MIN 32

static bool check_token(const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);

	if (n == 0 || n >= ADMIN_TOKEN_MIN)
		return true;
	snprintf(why, whylen, "is too short: %zu characters", n);
	return false;
}

static bool check_database(const char *v, char *why, size_t whylen)
{
	if (v[0] == '\0')
		return true;
	if (strncmp(v, "sqlite:", 7) == 0) {
		if (v[7] != '\0')
			return true;
		snprintf(why, whylen, "names no file after sqlite:");
		return false;
	}
	if ((strncmp(v, "postgres://", 11) == 0) || (strncmp(v, "postgresql://", 13) == 0))
		return true;
	snprintf(why, whylen, "has an unknown scheme");
	return false;
}

/* Each comma-separated item (spaces around it allowed) must be an IPv4 or
 * IPv6 address: a typo must not silently trust nobody or somebody else. */
bool config_check_ip_list(const char *v, char *why, size_t whylen)
{
	const char *p = v;

	while (*p) {
		char item[INET6_ADDRSTRLEN + 1];
		unsigned char addr[sizeof(struct in6_addr)];
		size_t n;

		while (*p == ' ' || *p == ',')
			p++;
		n = strcspn(p, ", ");
		if (n == 0)
			break;
		if (n >= sizeof item) {
			snprintf(why, whylen, "has an item that is not an IP address");
			return false;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (inet_pton(AF_INET, item, addr) != 1 && inet_pton(AF_INET6, item, addr) != 1) {
			snprintf(why, whylen, "has \"%s\", which is not an IP address", item);
			return false;
		}
		p += n;
	}
	return true;
}

bool config_check_net_list(const char *v, char *why, size_t whylen)
{
	return netaddr_list_parse(v, NULL, why, whylen);
}

bool config_check_nonempty(const char *v, char *why, size_t whylen)
{
	if (v[0] != '\0')
		return true;
	snprintf(why, whylen, "is empty");
	return false;
}

/* An absolute http(s) URL with a host and no trailing slash, query or
 * fragment: it is the prefix of URLs written into certificates. */
bool config_check_http_url(const char *v, char *why, size_t whylen)
{
	const char *host = NULL;
	size_t n = strlen(v), i;

	if (n == 0) /* derived in config_finish */
		return true;
	if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	if (!host || !*host || *host == '/') {
		snprintf(why, whylen, "is not an http:// or https:// URL with a host");
		return false;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#' || ch == '"' || ch == ',') {
			snprintf(why, whylen, "has a character not allowed here at position %zu", i + 1);
			return false;
		}
	}
	if (v[n - 1] == '/') {
		snprintf(why, whylen, "ends with '/'");
		return false;
	}
	return true;
}

/* Dotted decimal OID with at least two arcs, the first 0, 1 or 2. */
bool config_check_oid(const char *v, char *why, size_t whylen)
{
	int arcs = 0;
	const char *p = v;

	if (!(p[0] >= '0' && p[0] <= '2') || p[1] != '.')
		goto bad;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			goto bad;
		while (isdigit((unsigned char)*p))
			p++;
		arcs++;
		if (*p == '.') {
			p++;
			if (!*p)
				goto bad;
		} else if (*p) {
			goto bad;
		}
	}
	if (arcs >= 2 && strlen(v) <= 128)
		return true;
bad:
	snprintf(why, whylen, "is not a dotted object identifier");
	return false;
}

/* ---- cross-key rules ---- */

egov_err config_join_path(const char *prefix, const char *dir, const char *leaf, char **out)
{
	size_t n = strlen(dir);
	buf b;
	egov_err err;

	while (n > 1 && dir[n - 1] == '/')
		n--;
	buf_init(&b, PATH_MAX + 16);
	err = buf_addf(&b, "%s%.*s/%s", prefix, (int)n, dir, leaf);
	if (err) {
		buf_release(&b);
		return err;
	}
	free(*out);
	*out = buf_detach(&b, NULL);
	return *out ? EGOV_OK : EGOV_ENOMEM;
}

static egov_err server_finish(void *values, const egov_config *cfg, char *errmsg, size_t errlen)
{
	const egov_config *c = values;

	(void)cfg;
	if (c->connections_per_ip > c->connections_max) {
		snprintf(errmsg, errlen,
			 "server.connections_per_ip: %d is more than server.connections_max %d "
			 "(expected at most server.connections_max)",
			 c->connections_per_ip, c->connections_max);
		return EGOV_EINVAL;
	}
	if (!c->tls_cert[0] != !c->tls_key[0]) {
		snprintf(errmsg, errlen, "%s: is set without %s (expected both or neither)",
			 c->tls_cert[0] ? "server.tls_cert" : "server.tls_key",
			 c->tls_cert[0] ? "server.tls_key" : "server.tls_cert");
		return EGOV_EINVAL;
	}
	if (c->peer_listen[0] && (!c->peer_tls_cert[0] || !c->peer_tls_key[0])) {
		snprintf(errmsg, errlen, "%s: is empty while server.peer_listen is set (expected a PEM file)",
			 c->peer_tls_cert[0] ? "server.peer_tls_key" : "server.peer_tls_cert");
		return EGOV_EINVAL;
	}
	return EGOV_OK;
}

static egov_err data_finish(void *values, const egov_config *cfg, char *errmsg, size_t errlen)
{
	egov_config *c = values;
	egov_err err = EGOV_OK;

	(void)cfg;
	if (c->database[0] == '\0') {
		err = config_join_path("sqlite:", c->data_dir, "egov.db", &c->database);
		if (err)
			snprintf(errmsg, errlen, "data.database: cannot derive from data.dir (%s)", egov_err_name(err));
	}
	return err;
}

static egov_err log_finish(void *values, const egov_config *cfg, char *errmsg, size_t errlen)
{
	egov_config *c = values;
	egov_err err = EGOV_OK;

	(void)cfg;
	if (c->access_log[0] == '\0') {
		err = config_join_path("", c->data_dir, "access.log", &c->access_log);
		if (err)
			snprintf(errmsg, errlen, "log.access: cannot derive from data.dir (%s)", egov_err_name(err));
	}
	return err;
}

#define KEYS(k) .keys = k, .nkeys = sizeof k / sizeof k[0]

const config_section config_kernel_sections[CONFIG_KERNEL_SECTIONS] = {
	{.name = "server", .desc = "The HTTP server: listeners, threads, limits, TLS and the node's role.",
	 KEYS(server_keys), .finish = server_finish},
	{.name = "data", .desc = "Where the data lives: the data directory and the database.", KEYS(data_keys),
	 .finish = data_finish},
	{.name = "web", .desc = "The web portal's templates, translations and static files.", KEYS(web_keys)},
	{.name = "log", .desc = "The operational log and the access log.", KEYS(log_keys), .finish = log_finish},
};

egov_err config_listen_addr(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen)
{
	return listen_parse(listen, ss, sslen) ? EGOV_OK : EGOV_EINVAL;
}
