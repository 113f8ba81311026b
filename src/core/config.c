/*
 * config.c: egov's configuration keys, their parsing and their documentation.
 *
 * Every key is declared exactly once, in the const table `keys` below, with
 * its type, place in egov_config, default, range or allowed values and a
 * description. Everything else is driven by that table: defaults
 * (config_init), the file parser, environment variables, config_set and the
 * documented example file (config_write_defaults), so a key cannot be parsed
 * one way and documented another.
 *
 * Invariants: after config_init every string field is a heap copy (or NULL if
 * memory ran out, which config_finish reports); a failed set leaves the field
 * as it was. Values are validated when set, so a value in egov_config always
 * satisfies its key's type and range; config_finish adds the rules that span
 * keys and fills the defaults derived from data.dir. Secret values (the
 * operator token, database URLs that may hold a password) are never echoed in
 * error messages.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/limits.h"
#include "core/banned.h"

extern char **environ;

typedef enum key_type { KEY_STRING, KEY_INT, KEY_BOOL, KEY_ENUM } key_type;

/* Extra validation for a string key. Returns false and a short reason
 * ("is too short: 12 characters") in why when value is refused. */
typedef bool (*key_check)(const char *value, char *why, size_t whylen);

typedef struct key_def {
	const char *section;
	const char *name;
	key_type type;
	size_t offset;              /* into egov_config */
	const char *str_default;    /* KEY_STRING, KEY_ENUM */
	long long int_default;      /* KEY_INT, KEY_BOOL */
	long long min, max;         /* KEY_INT */
	const char *const *allowed; /* KEY_ENUM, NULL-terminated */
	key_check check;            /* KEY_STRING, optional */
	const char *expect;         /* KEY_STRING: what a valid value looks like */
	bool secret;                /* never echo the value */
	const char *desc;
} key_def;

static bool check_listen(const char *v, char *why, size_t whylen);
static bool check_listen_opt(const char *v, char *why, size_t whylen);
static bool check_token(const char *v, char *why, size_t whylen);
static bool check_database(const char *v, char *why, size_t whylen);
static bool check_nonempty(const char *v, char *why, size_t whylen);
static bool check_http_url(const char *v, char *why, size_t whylen);
static bool check_oid(const char *v, char *why, size_t whylen);
static bool check_ip_list(const char *v, char *why, size_t whylen);

static const char *const roles[] = {"standalone", "central", "gateway", NULL};
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const starttls_modes[] = {"off", "opportunistic", "required", NULL};
static const char *const sections[] = {"server", "data", "web", "log", "pki", "oidc", "mail", "exchange", NULL};

#define OFF(field) offsetof(egov_config, field)

static const key_def keys[] = {
	{
		.section = "server", .name = "listen", .type = KEY_STRING, .offset = OFF(listen),
		.str_default = "127.0.0.1:8080", .check = check_listen,
		.expect = "ADDR:PORT with an IPv4 address, or [IPv6]:PORT; port 1-65535",
		.desc = "Address and port the HTTP server listens on. Keep a loopback "
			"address (127.0.0.1 or [::1]) behind a reverse proxy that "
			"terminates TLS; 0.0.0.0 or [::] listen on every interface.",
	},
	{
		.section = "server", .name = "threads", .type = KEY_INT, .offset = OFF(threads),
		.int_default = 0, .min = 0, .max = 256,
		.desc = "Number of HTTP worker threads; each worker holds its own "
			"database connection. 0 means one per CPU core.",
	},
	{
		.section = "server", .name = "connections_max", .type = KEY_INT,
		.offset = OFF(connections_max), .int_default = EGOV_CONNECTIONS_MAX_DEFAULT,
		.min = 1, .max = 1000000,
		.desc = "Most client connections open at once; more are refused until "
			"one closes.",
	},
	{
		.section = "server", .name = "connections_per_ip", .type = KEY_INT,
		.offset = OFF(connections_per_ip), .int_default = EGOV_CONNECTIONS_PER_IP_DEFAULT,
		.min = 1, .max = 1000000,
		.desc = "Most connections open at once from one client address, so one "
			"client cannot take them all. Must not exceed "
			"server.connections_max.",
	},
	{
		.section = "server", .name = "timeout_s", .type = KEY_INT, .offset = OFF(timeout_s),
		.int_default = EGOV_CONNECTION_TIMEOUT_DEFAULT, .min = 1, .max = 3600,
		.desc = "Seconds a connection may sit idle or trickle bytes before it is "
			"closed: the defence against slow clients.",
	},
	{
		.section = "server", .name = "drain_s", .type = KEY_INT, .offset = OFF(drain_s),
		.int_default = 10, .min = 0, .max = 600,
		.desc = "On SIGTERM, seconds to let requests in flight finish before the "
			"process exits. 0 exits at once.",
	},
	{
		.section = "server", .name = "admin_token", .type = KEY_STRING,
		.offset = OFF(admin_token), .str_default = "", .check = check_token, .secret = true,
		.expect = "\"\" or at least 32 characters",
		.desc = "Bearer token for the operator endpoints. Empty means no "
			"operator token is accepted. Prefer the environment variable "
			"EGOV_SERVER_ADMIN_TOKEN, which keeps the secret out of files.",
	},
	{
		.section = "server", .name = "role", .type = KEY_ENUM, .offset = OFF(role),
		.str_default = "standalone", .allowed = roles,
		.desc = "What this node is. standalone: the central services and demo "
			"departments in one process. central: identity provider, CA, "
			"registry of members and services, portal and e-services. "
			"gateway: one department's exchange node.",
	},
	{
		.section = "server", .name = "tls_cert", .type = KEY_STRING, .offset = OFF(tls_cert),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Server certificate (PEM, leaf first, then intermediates). "
			"With server.tls_key set too, egov serves HTTPS only on "
			"server.listen and asks clients for a certificate (certificate "
			"login). Both empty means plain HTTP.",
	},
	{
		.section = "server", .name = "tls_key", .type = KEY_STRING, .offset = OFF(tls_key),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Private key of server.tls_cert (PEM, unencrypted). Set both "
			"or neither.",
	},
	{
		.section = "server", .name = "tls_client_ca", .type = KEY_STRING,
		.offset = OFF(tls_client_ca), .str_default = "",
		.expect = "\"\" or a path to a PEM file",
		.desc = "PEM bundle of CAs whose client certificates are requested "
			"during the TLS handshake. Empty means the platform issuing "
			"CA plus pki.trust_anchors. A certificate is always verified "
			"by egov itself (chain, validity, revocation, usage).",
	},
	{
		.section = "server", .name = "trusted_proxies", .type = KEY_STRING,
		.offset = OFF(trusted_proxies), .str_default = "", .check = check_ip_list,
		.expect = "\"\" or comma-separated IP addresses",
		.desc = "Addresses of TLS-terminating proxies whose X-Client-Cert "
			"header (URL-encoded PEM, as nginx's $ssl_client_escaped_cert) "
			"is taken as the client certificate. Empty means the header "
			"is never believed.",
	},	{
		.section = "server", .name = "peer_listen", .type = KEY_STRING, .offset = OFF(peer_listen),
		.str_default = "", .check = check_listen_opt, .expect = "\"\" or ADDR:PORT",
		.desc = "A second listener for other egov nodes (gateway to gateway): "
			"HTTPS only, a client certificate required, and only the routes "
			"meant for peers. Empty: none.",
	},
	{
		.section = "server", .name = "peer_tls_cert", .type = KEY_STRING, .offset = OFF(peer_tls_cert),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Certificate of the peer listener (PEM, leaf first); also the "
			"client certificate this node presents to its peers.",
	},
	{
		.section = "server", .name = "peer_tls_key", .type = KEY_STRING, .offset = OFF(peer_tls_key),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "Private key of server.peer_tls_cert (PEM, unencrypted).",
	},
	{
		.section = "server", .name = "peer_tls_ca", .type = KEY_STRING, .offset = OFF(peer_tls_ca),
		.str_default = "", .expect = "\"\" or a path to a PEM file",
		.desc = "CA certificates (PEM bundle) that peers' certificates must "
			"chain to, for both directions. Empty: DATA/pki/root.crt and "
			"DATA/pki/issuing.crt.",
	},

	{
		.section = "data", .name = "dir", .type = KEY_STRING, .offset = OFF(data_dir),
		.str_default = "./var", .check = check_nonempty, .expect = "a directory path",
		.desc = "Data directory: the SQLite database, documents (blobs/) and "
			"the access log live here unless placed elsewhere. DATA/egov.conf "
			"is read when no --config is given.",
	},
	{
		.section = "data", .name = "database", .type = KEY_STRING, .offset = OFF(database),
		.str_default = "", .check = check_database, .secret = true,
		.expect = "\"\", sqlite:PATH, postgres://... or postgresql://...",
		.desc = "Database URL. Empty means sqlite:DATA/egov.db. sqlite:PATH "
			"opens an embedded SQLite file; postgres:// or postgresql:// "
			"URLs (libpq connection URIs) open PostgreSQL.",
	},
	{
		.section = "web", .name = "dir", .type = KEY_STRING, .offset = OFF(web_dir),
		.str_default = "web", .check = check_nonempty, .expect = "a directory path",
		.desc = "Directory holding the web portal's templates, translations "
			"and static files.",
	},
	{
		.section = "log", .name = "file", .type = KEY_STRING, .offset = OFF(log_file),
		.str_default = "-", .check = check_nonempty, .expect = "\"-\" or a file path",
		.desc = "Operational log, one JSON object per line. \"-\" means "
			"standard error; otherwise a file, opened for appending.",
	},
	{
		.section = "log", .name = "access", .type = KEY_STRING, .offset = OFF(access_log),
		.str_default = "", .expect = "\"\", \"-\", \"off\" or a file path",
		.desc = "Access log, one JSON line per request. Empty means "
			"DATA/access.log; \"-\" means standard error; \"off\" turns "
			"it off.",
	},
	{
		.section = "log", .name = "level", .type = KEY_ENUM, .offset = OFF(log_level),
		.str_default = "info", .allowed = levels,
		.desc = "Least severe level of operational log lines that are written.",
	},
	{
		.section = "pki", .name = "public_url", .type = KEY_STRING, .offset = OFF(pki_public_url),
		.str_default = "", .check = check_http_url,
		.expect = "\"\" or an http:// or https:// URL without a trailing slash",
		.desc = "Public base URL of this node, as people and other systems "
			"reach it (behind a proxy: the proxy's URL). Issued "
			"certificates point at PUBLIC_URL/pki/issuing.crl (CRL) and "
			"PUBLIC_URL/pki/ocsp (OCSP), so changing it only affects "
			"certificates issued afterwards; mailed links start with it. "
			"Empty means http://SERVER.LISTEN.",
	},
	{
		.section = "pki", .name = "trust_anchors", .type = KEY_STRING,
		.offset = OFF(pki_trust_anchors), .str_default = "",
		.expect = "\"\" or a path to a PEM file",
		.desc = "PEM bundle of extra CA certificates trusted for certificate "
			"login besides the platform CA (e.g. a national CA). Empty "
			"means only the platform CA.",
	},
	{
		.section = "pki", .name = "trust_anchor_crls", .type = KEY_STRING,
		.offset = OFF(pki_trust_anchor_crls), .str_default = "",
		.expect = "\"\" or a path to a PEM or DER CRL file",
		.desc = "Certificate revocation lists of the pki.trust_anchors CAs: "
			"a PEM bundle of CRLs or one DER CRL. Read at start and again "
			"whenever the file changes (replace it with a rename). A "
			"certificate whose issuer has a CRL here is refused when "
			"listed, or when the CRL is stale or badly signed. Empty "
			"means the revocation of external certificates is not "
			"checked.",
	},
	{
		.section = "pki", .name = "checkpoint_every", .type = KEY_INT,
		.offset = OFF(pki_checkpoint_every), .int_default = 1000, .min = 1, .max = 100000000,
		.desc = "Audit records between two signed, timestamped checkpoints of "
			"the audit chain's head. Truncating the chain is detectable up "
			"to the last checkpoint.",
	},
	{
		.section = "pki", .name = "tsa_policy", .type = KEY_STRING, .offset = OFF(pki_tsa_policy),
		.str_default = "2.25.3706810965685816365986010801573439615", .check = check_oid,
		.expect = "a dotted object identifier such as 1.2.3.4",
		.desc = "Policy OID the RFC 3161 time-stamping authority puts in its "
			"tokens.",
	},
	{
		.section = "oidc", .name = "issuer", .type = KEY_STRING, .offset = OFF(oidc_issuer),
		.str_default = "", .check = check_http_url,
		.expect = "\"\" or an http:// or https:// URL without a trailing slash",
		.desc = "Empty means pki.public_url. Issuer identifier of the OpenID Connect provider: the "
			"\"iss\" of every token and the base of the discovery "
			"document's endpoint URLs. Departments' applications "
			"compare it exactly, so set it to the public URL.",
	},
	{
		.section = "oidc", .name = "key_rotation_days", .type = KEY_INT,
		.offset = OFF(oidc_key_rotation_days), .int_default = 30, .min = 1, .max = 3650,
		.desc = "Days an ES256 signing key stays the active one before a new "
			"key takes over. The previous key stays in the JWKS until the "
			"tokens it signed have expired.",
	},
	{
		.section = "oidc", .name = "access_token_ttl", .type = KEY_INT,
		.offset = OFF(oidc_access_token_ttl_s), .int_default = 300, .min = 60, .max = 600,
		.desc = "Seconds an access token or ID token is valid (5 to 10 "
			"minutes is the usual range; refresh tokens renew them).",
	},
	{
		.section = "exchange", .name = "instance", .type = KEY_STRING, .offset = OFF(exchange_instance),
		.str_default = "MO", .expect = "1 to 64 of A-Z a-z 0-9 _ . -",
		.desc = "Identifier of this data exchange instance (the first part of "
			"every member, subsystem and service identifier).",
	},
	{
		.section = "exchange", .name = "conf_validity_s", .type = KEY_INT,
		.offset = OFF(exchange_conf_validity_s), .int_default = 600, .min = 10, .max = 604800,
		.desc = "Central node: seconds a published global configuration stays "
			"valid. Gateways keep working from their last valid copy while "
			"the central node is unreachable, until it expires.",
	},
	{
		.section = "exchange", .name = "central_url", .type = KEY_STRING,
		.offset = OFF(exchange_central_url), .str_default = "",
		.expect = "\"\" or an http(s) URL",
		.desc = "Gateway: base URL of the central node, from which the global "
			"configuration is downloaded (GET /exchange/v1/globalconf).",
	},
	{
		.section = "exchange", .name = "central_cert", .type = KEY_STRING,
		.offset = OFF(exchange_central_cert), .str_default = "",
		.expect = "\"\" or a path to a PEM file",
		.desc = "Gateway: the central node's configuration signing certificate "
			"(DATA/exchange/central.crt on the central node). A global "
			"configuration not signed by it is refused.",
	},
	{
		.section = "exchange", .name = "gateway_url", .type = KEY_STRING,
		.offset = OFF(exchange_gateway_url), .str_default = "",
		.expect = "\"\" or https://HOST:PORT",
		.desc = "Gateway: this gateway's peer address as registered for its "
			"subsystems. The gateway serves the subsystems registered with "
			"this address whose signing keys it holds.",
	},
	{
		.section = "exchange", .name = "conf_refresh_s", .type = KEY_INT,
		.offset = OFF(exchange_conf_refresh_s), .int_default = 60, .min = 1, .max = 86400,
		.desc = "Gateway: seconds between two downloads of the global configuration.",
	},
	{
		.section = "exchange", .name = "clock_skew_s", .type = KEY_INT,
		.offset = OFF(exchange_clock_skew_s), .int_default = 300, .min = 1, .max = 3600,
		.desc = "Largest accepted difference between a message's signing time "
			"and this node's clock; message ids are remembered this long to "
			"refuse replays.",
	},
	{
		.section = "exchange", .name = "backend_timeout_ms", .type = KEY_INT,
		.offset = OFF(exchange_backend_timeout_ms), .int_default = 30000, .min = 10, .max = 600000,
		.desc = "Gateway: how long the provider's gateway waits for a back-end, "
			"and the consumer's for the provider (plus a margin), before 504.",
	},
	{
		.section = "exchange", .name = "timestamp_interval_s", .type = KEY_INT,
		.offset = OFF(exchange_timestamp_interval_s), .int_default = 60, .min = 1, .max = 86400,
		.desc = "Gateway: seconds between two seals of the message log (one "
			"RFC 3161 timestamp covers every record since the last).",
	},
	{
		.section = "exchange", .name = "timestamp_grace_s", .type = KEY_INT,
		.offset = OFF(exchange_timestamp_grace_s), .int_default = 14400, .min = 1, .max = 604800,
		.desc = "Gateway: when the message log has records unsealed for longer "
			"than this (the TSA unreachable), new exchanges are refused with "
			"503 until a seal succeeds.",
	},
	{
		.section = "exchange", .name = "retry_ms", .type = KEY_INT, .offset = OFF(exchange_retry_ms),
		.int_default = 1000, .min = 10, .max = 86400000,
		.desc = "Publish/subscribe: delay before the first redelivery of an "
			"event a subscriber did not accept; each further one waits twice "
			"as long, up to exchange.retry_max_s.",
	},
	{
		.section = "exchange", .name = "retry_max_s", .type = KEY_INT, .offset = OFF(exchange_retry_max_s),
		.int_default = 3600, .min = 1, .max = 86400,
		.desc = "Publish/subscribe: longest delay between two redeliveries.",
	},
	{
		.section = "mail", .name = "smtp_host", .type = KEY_STRING, .offset = OFF(mail_smtp_host),
		.str_default = "127.0.0.1", .check = check_nonempty,
		.expect = "a host name or IP address",
		.desc = "SMTP server the outbox delivers mail to (a relay of the "
			"department's mail system, or a local mail catcher in "
			"development).",
	},
	{
		.section = "mail", .name = "smtp_port", .type = KEY_INT, .offset = OFF(mail_smtp_port),
		.int_default = 25, .min = 1, .max = 65535,
		.desc = "TCP port of the SMTP server (25 or 587 for submission).",
	},
	{
		.section = "mail", .name = "from", .type = KEY_STRING, .offset = OFF(mail_from),
		.str_default = "egov <no-reply@egov.invalid>", .check = check_nonempty,
		.expect = "an address, optionally as \"Name <local@domain>\"",
		.desc = "Sender of every message: the From header and, for the "
			"address part, the SMTP envelope sender.",
	},
	{
		.section = "mail", .name = "starttls", .type = KEY_ENUM, .offset = OFF(mail_starttls),
		.str_default = "opportunistic", .allowed = starttls_modes,
		.desc = "off: never encrypt. opportunistic: encrypt when the server "
			"offers STARTTLS, without checking its certificate. required: "
			"refuse to send unless STARTTLS succeeds with a certificate "
			"valid for smtp_host.",
	},
	{
		.section = "mail", .name = "user", .type = KEY_STRING, .offset = OFF(mail_user),
		.str_default = "",
		.expect = "\"\" or a user name",
		.desc = "User name for SMTP AUTH (PLAIN or LOGIN). Empty means no "
			"AUTH. Credentials are only sent over TLS or to a loopback "
			"server.",
	},
	{
		.section = "mail", .name = "password", .type = KEY_STRING, .offset = OFF(mail_password),
		.str_default = "", .secret = true,
		.expect = "\"\" or a password",
		.desc = "Password for SMTP AUTH. Prefer the environment variable "
			"EGOV_MAIL_PASSWORD to writing it in a file.",
	},
	{
		.section = "mail", .name = "poll_ms", .type = KEY_INT, .offset = OFF(mail_poll_ms),
		.int_default = 1000, .min = 10, .max = 3600000,
		.desc = "Milliseconds between two looks at the outbox for mail that "
			"is due.",
	},
	{
		.section = "mail", .name = "retry_ms", .type = KEY_INT, .offset = OFF(mail_retry_ms),
		.int_default = 60000, .min = 10, .max = 86400000,
		.desc = "Delay before the first retry of a message that could not be "
			"delivered; each further retry waits twice as long (capped at "
			"one day).",
	},
	{
		.section = "mail", .name = "max_attempts", .type = KEY_INT, .offset = OFF(mail_max_attempts),
		.int_default = 10, .min = 1, .max = 100,
		.desc = "Delivery attempts before a message is marked failed. A "
			"permanent refusal (5xx to MAIL, RCPT or DATA) fails it at once.",
	},
	{
		.section = "mail", .name = "timeout_s", .type = KEY_INT, .offset = OFF(mail_timeout_s),
		.int_default = 30, .min = 1, .max = 600,
		.desc = "Seconds to wait for the SMTP server to connect or answer "
			"one command before the attempt counts as failed.",
	},
};

#define KEY_COUNT (sizeof keys / sizeof keys[0])

/* ---- field access ---- */

static char **str_field(egov_config *c, const key_def *k)
{
	return (char **)(void *)((char *)c + k->offset);
}

static int *int_field(egov_config *c, const key_def *k)
{
	return (int *)(void *)((char *)c + k->offset);
}

static bool *bool_field(egov_config *c, const key_def *k)
{
	return (bool *)(void *)((char *)c + k->offset);
}

/* ---- number and value checks ---- */

/* Whole-string base-10 integer; no sign but '-', no spaces, no junk. */
static bool parse_ll(const char *s, long long *out)
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

	if (!parse_ll(s, &v) || v < 1 || v > 65535)
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

static bool check_listen(const char *v, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t len;

	if (listen_parse(v, &ss, &len))
		return true;
	snprintf(why, whylen, "is not a valid address and port");
	return false;
}

static bool check_listen_opt(const char *v, char *why, size_t whylen)
{
	return !v[0] || check_listen(v, why, whylen);
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
static bool check_ip_list(const char *v, char *why, size_t whylen)
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

static bool check_nonempty(const char *v, char *why, size_t whylen)
{
	if (v[0] != '\0')
		return true;
	snprintf(why, whylen, "is empty");
	return false;
}

/* An absolute http(s) URL with a host and no trailing slash, query or
 * fragment: it is the prefix of URLs written into certificates. */
static bool check_http_url(const char *v, char *why, size_t whylen)
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
static bool check_oid(const char *v, char *why, size_t whylen)
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

/* ---- messages ---- */

/* What a valid value looks like, for errors and documentation. */
static void key_expect(const key_def *k, char *out, size_t outlen)
{
	size_t used;
	int i;

	switch (k->type) {
	case KEY_INT:
		snprintf(out, outlen, "an integer from %lld to %lld", k->min, k->max);
		break;
	case KEY_BOOL:
		snprintf(out, outlen, "true or false");
		break;
	case KEY_ENUM:
		used = (size_t)snprintf(out, outlen, "one of");
		for (i = 0; k->allowed[i] && used < outlen; i++)
			used += (size_t)snprintf(out + used, outlen - used, "%s%s",
						 i ? ", " : " ", k->allowed[i]);
		break;
	case KEY_STRING:
		snprintf(out, outlen, "%s", k->expect);
		break;
	}
}

/* The value as shown in a message: quoted, cut short, controls masked;
 * secrets are not shown at all. */
static void show_value(const key_def *k, const char *v, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (k->secret) {
		snprintf(out, outlen, "the value");
		return;
	}
	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (i = 0; v[i] && o + 5 < outlen; i++)
		out[o++] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
	if (v[i]) {
		out[o++] = '.';
		out[o++] = '.';
		out[o++] = '.';
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* "section.key: <value> <why> (expected ...)" */
static void key_error(const key_def *k, const char *value, const char *why, char *msg, size_t len)
{
	char expect[256], shown[80];

	key_expect(k, expect, sizeof expect);
	show_value(k, value, shown, sizeof shown);
	snprintf(msg, len, "%s.%s: %s %s (expected %s)", k->section, k->name, shown, why, expect);
}

/* ---- setting one key ---- */

static egov_err key_set(egov_config *c, const key_def *k, const char *v, char *msg, size_t len)
{
	char why[128] = "";
	long long n;
	size_t i;
	char *copy = NULL;
	char **field;
	egov_err err = EGOV_OK;

	switch (k->type) {
	case KEY_INT:
		if (!parse_ll(v, &n)) {
			key_error(k, v, "is not an integer", msg, len);
			err = EGOV_EINVAL;
		} else if (n < k->min || n > k->max) {
			key_error(k, v, "is out of range", msg, len);
			err = EGOV_EINVAL;
		} else {
			*int_field(c, k) = (int)n;
		}
		goto out;
	case KEY_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1")) {
			*bool_field(c, k) = true;
		} else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") ||
			   !strcmp(v, "0")) {
			*bool_field(c, k) = false;
		} else {
			key_error(k, v, "is not a boolean", msg, len);
			err = EGOV_EINVAL;
		}
		goto out;
	case KEY_ENUM:
		for (i = 0; k->allowed[i]; i++)
			if (!strcmp(v, k->allowed[i]))
				break;
		if (!k->allowed[i]) {
			key_error(k, v, "is not allowed", msg, len);
			err = EGOV_EINVAL;
			goto out;
		}
		break;
	case KEY_STRING:
		for (i = 0; v[i]; i++) {
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
				key_error(k, v, "contains a control character", msg, len);
				err = EGOV_EINVAL;
				goto out;
			}
		}
		if (k->check && !k->check(v, why, sizeof why)) {
			key_error(k, v, why, msg, len);
			err = EGOV_EINVAL;
			goto out;
		}
		break;
	}
	copy = strdup(v);
	if (!copy) {
		snprintf(msg, len, "%s.%s: out of memory", k->section, k->name);
		err = EGOV_ENOMEM;
		goto out;
	}
	field = str_field(c, k);
	free(*field);
	*field = copy;
	copy = NULL;
out:
	free(copy);
	return err;
}

static const key_def *key_find(const char *section, size_t slen, const char *name, size_t nlen)
{
	size_t i;

	for (i = 0; i < KEY_COUNT; i++) {
		const key_def *k = &keys[i];
		if (strlen(k->section) == slen && !memcmp(k->section, section, slen) &&
		    strlen(k->name) == nlen && !memcmp(k->name, name, nlen))
			return k;
	}
	return NULL;
}

/* Lists the keys of a section ("listen, threads, ...") for messages. */
static void section_keys(const char *section, char *out, size_t outlen)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < KEY_COUNT && used < outlen; i++)
		if (!strcmp(keys[i].section, section))
			used += (size_t)snprintf(out + used, outlen - used, "%s%s",
						 used ? ", " : "", keys[i].name);
}

static const char *section_find(const char *s, size_t len)
{
	size_t i;

	for (i = 0; sections[i]; i++)
		if (strlen(sections[i]) == len && !memcmp(sections[i], s, len))
			return sections[i];
	return NULL;
}

/* ---- public: lifecycle ---- */

void config_init(egov_config *c)
{
	size_t i;

	memset(c, 0, sizeof *c);
	for (i = 0; i < KEY_COUNT; i++) {
		const key_def *k = &keys[i];
		switch (k->type) {
		case KEY_INT:
			*int_field(c, k) = (int)k->int_default;
			break;
		case KEY_BOOL:
			*bool_field(c, k) = k->int_default != 0;
			break;
		case KEY_STRING:
		case KEY_ENUM:
			/* NULL on out of memory; config_finish reports it. */
			*str_field(c, k) = strdup(k->str_default);
			break;
		}
	}
}

void config_release(egov_config *c)
{
	size_t i;

	for (i = 0; i < KEY_COUNT; i++) {
		const key_def *k = &keys[i];
		if (k->type == KEY_STRING || k->type == KEY_ENUM) {
			char **f = str_field(c, k);
			free(*f);
			*f = NULL;
		}
	}
}

egov_err config_set(egov_config *c, const char *key, const char *value, char *errmsg, size_t errlen)
{
	const char *dot = strchr(key, '.');
	const key_def *k = NULL;

	if (dot)
		k = key_find(key, (size_t)(dot - key), dot + 1, strlen(dot + 1));
	if (!k) {
		snprintf(errmsg, errlen, "%s: unknown key (expected section.key, e.g. server.listen)",
			 key);
		return EGOV_EINVAL;
	}
	return key_set(c, k, value, errmsg, errlen);
}

/* ---- the file ---- */

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char *trim(char *s, char **end)
{
	char *e = *end;

	while (s < e && is_space(*s))
		s++;
	while (e > s && (is_space(e[-1]) || e[-1] == '\r'))
		e--;
	*e = '\0';
	*end = e;
	return s;
}

static bool rest_is_comment(const char *p)
{
	while (is_space(*p))
		p++;
	return *p == '\0' || *p == '#' || *p == ';';
}

/* Parses the value part of "key = value" in place. Quoted: "..." with \" and
 * \\ escapes, then only a comment may follow. Unquoted: up to the first '#'
 * or ';', trimmed. Returns NULL and a reason on malformed input. */
static char *parse_value(char *p, const char **why)
{
	char *start, *o;

	while (is_space(*p))
		p++;
	if (*p != '"') {
		char *e;
		start = p;
		while (*p && *p != '#' && *p != ';')
			p++;
		e = p;
		while (e > start && is_space(e[-1]))
			e--;
		*e = '\0';
		return start;
	}
	start = o = ++p;
	for (;; p++) {
		if (*p == '\0') {
			*why = "unterminated quoted value (expected a closing \")";
			return NULL;
		}
		if (*p == '"')
			break;
		if (*p == '\\') {
			if (p[1] != '"' && p[1] != '\\') {
				*why = "unknown escape in quoted value (expected \\\" or \\\\)";
				return NULL;
			}
			p++;
		}
		*o++ = *p;
	}
	if (!rest_is_comment(p + 1)) {
		*why = "text after the closing quote (expected only a comment)";
		return NULL;
	}
	*o = '\0';
	return start;
}

static egov_err read_file(const char *path, buf *out, char *errmsg, size_t errlen)
{
	int fd = -1;
	struct stat st;
	char chunk[8192];
	char ebuf[128];
	egov_err err = EGOV_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno == ENOENT ? EGOV_ENOTFOUND : EGOV_EIO;
		snprintf(errmsg, errlen, "%s: cannot open: %s", path,
			 strerror_r(errno, ebuf, sizeof ebuf));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err = EGOV_EINVAL;
		snprintf(errmsg, errlen, "%s: not a regular file (expected a config file)", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = EGOV_EIO;
			snprintf(errmsg, errlen, "%s: cannot read: %s", path,
				 strerror_r(errno, ebuf, sizeof ebuf));
			goto out;
		}
		if (n == 0)
			break;
		err = buf_add(out, chunk, (size_t)n);
		if (err == EGOV_ELIMIT) {
			snprintf(errmsg, errlen, "%s: file too large (expected at most %d bytes)",
				 path, EGOV_CONFIG_FILE_MAX);
			goto out;
		}
		if (err) {
			snprintf(errmsg, errlen, "%s: out of memory", path);
			goto out;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	return err;
}

egov_err config_load_file(egov_config *c, const char *path, char *errmsg, size_t errlen)
{
	buf text;
	int seen[KEY_COUNT] = {0};
	const char *section = NULL;
	char *p, *end;
	int line = 0;
	char msg[512];
	egov_err err;

	buf_init(&text, EGOV_CONFIG_FILE_MAX);
	err = read_file(path, &text, errmsg, errlen);
	if (err)
		goto out;
	if (text.len == 0)
		goto out;
	if (memchr(text.data, '\0', text.len)) {
		snprintf(errmsg, errlen, "%s: contains a NUL byte (expected a text file)", path);
		err = EGOV_EINVAL;
		goto out;
	}
	p = text.data;
	end = text.data + text.len;
	if (text.len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3; /* UTF-8 byte order mark, as some editors write */
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		char *s, *eq, *kend, *value;
		const char *why = NULL;
		const key_def *k;
		size_t klen;

		line++;
		if ((size_t)(le - p) > EGOV_CONFIG_LINE_MAX) {
			snprintf(errmsg, errlen, "%s:%d: line too long (expected at most %d bytes)",
				 path, line, EGOV_CONFIG_LINE_MAX);
			err = EGOV_ELIMIT;
			goto out;
		}
		s = trim(p, &le);
		p = nl ? nl + 1 : end;
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			char *n = s + 1, *ne;
			if (!close || !rest_is_comment(close + 1)) {
				snprintf(errmsg, errlen, "%s:%d: malformed section line (expected [section])",
					 path, line);
				err = EGOV_EINVAL;
				goto out;
			}
			ne = close;
			n = trim(n, &ne);
			section = section_find(n, (size_t)(ne - n));
			if (!section) {
				snprintf(errmsg, errlen,
					 "%s:%d: [%.64s]: unknown section (expected one of server, data, web, log, pki, oidc, mail, exchange)",
					 path, line, n);
				err = EGOV_EINVAL;
				goto out;
			}
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			snprintf(errmsg, errlen, "%s:%d: malformed line (expected key = value or [section])",
				 path, line);
			err = EGOV_EINVAL;
			goto out;
		}
		kend = eq;
		while (kend > s && is_space(kend[-1]))
			kend--;
		klen = (size_t)(kend - s);
		for (size_t i = 0; i < klen; i++) {
			if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
				klen = 0;
		}
		if (klen == 0) {
			snprintf(errmsg, errlen,
				 "%s:%d: malformed key (expected key = value, the key in a-z, 0-9 and _)",
				 path, line);
			err = EGOV_EINVAL;
			goto out;
		}
		*kend = '\0';
		if (!section) {
			snprintf(errmsg, errlen, "%s:%d: %s: key outside a section (expected a [section] line first)",
				 path, line, s);
			err = EGOV_EINVAL;
			goto out;
		}
		k = key_find(section, strlen(section), s, klen);
		if (!k) {
			char known[256];
			section_keys(section, known, sizeof known);
			snprintf(errmsg, errlen, "%s:%d: %s.%s: unknown key (expected one of %s)", path,
				 line, section, s, known);
			err = EGOV_EINVAL;
			goto out;
		}
		if (seen[k - keys]) {
			snprintf(errmsg, errlen, "%s:%d: %s.%s: duplicate key (first set on line %d)", path,
				 line, k->section, k->name, seen[k - keys]);
			err = EGOV_EINVAL;
			goto out;
		}
		seen[k - keys] = line;
		value = parse_value(eq + 1, &why);
		if (!value) {
			snprintf(errmsg, errlen, "%s:%d: %s.%s: %s", path, line, k->section, k->name, why);
			err = EGOV_EINVAL;
			goto out;
		}
		err = key_set(c, k, value, msg, sizeof msg);
		if (err) {
			snprintf(errmsg, errlen, "%s:%d: %s", path, line, msg);
			goto out;
		}
	}
out:
	if (text.data)
		memset(text.data, 0, text.len); /* the file may hold the operator token */
	buf_release(&text);
	return err;
}

/* ---- the environment ---- */

/* "EGOV_SERVER_LISTEN" for server.listen. */
static void env_name(const key_def *k, char *out, size_t outlen)
{
	size_t i;

	snprintf(out, outlen, "EGOV_%s_%s", k->section, k->name);
	for (i = 0; out[i]; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/* A variable that starts like one of ours but names no key is a typo the
 * operator wants to hear about; other EGOV_* variables (EGOV_BIN,
 * EGOV_TEST_PG_URL, ...) belong to tools and are left alone. */
static egov_err env_check_unknown(char *errmsg, size_t errlen)
{
	char **e;
	char name[96], prefix[32];
	size_t i, j;

	for (e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t nlen = eq ? (size_t)(eq - *e) : strlen(*e);
		bool ours = false, known = false;

		if (strncmp(*e, "EGOV_", 5) != 0)
			continue;
		for (i = 0; sections[i] && !ours; i++) {
			snprintf(prefix, sizeof prefix, "EGOV_%s_", sections[i]);
			for (j = 0; prefix[j]; j++)
				prefix[j] = (char)toupper((unsigned char)prefix[j]);
			ours = nlen > strlen(prefix) && !strncmp(*e, prefix, strlen(prefix));
		}
		if (!ours)
			continue;
		for (i = 0; i < KEY_COUNT && !known; i++) {
			env_name(&keys[i], name, sizeof name);
			known = strlen(name) == nlen && !strncmp(*e, name, nlen);
		}
		if (!known) {
			snprintf(errmsg, errlen,
				 "environment %.*s: unknown variable (expected EGOV_SECTION_KEY for a "
				 "key in docs/configuration.md, e.g. EGOV_SERVER_LISTEN)",
				 (int)(nlen > 64 ? 64 : nlen), *e);
			return EGOV_EINVAL;
		}
	}
	return EGOV_OK;
}

egov_err config_load_env(egov_config *c, char *errmsg, size_t errlen)
{
	char name[96], msg[512];
	size_t i;
	egov_err err;

	err = env_check_unknown(errmsg, errlen);
	if (err)
		goto out;
	for (i = 0; i < KEY_COUNT; i++) {
		const char *v;
		env_name(&keys[i], name, sizeof name);
		v = getenv(name);
		if (!v)
			continue;
		err = key_set(c, &keys[i], v, msg, sizeof msg);
		if (err) {
			snprintf(errmsg, errlen, "environment %s: %s", name, msg);
			goto out;
		}
	}
out:
	return err;
}

/* ---- cross-key rules ---- */

/* *out = prefix + dir + "/" + leaf, without doubling a trailing slash. */
static egov_err join_data(const char *prefix, const char *dir, const char *leaf, char **out)
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

egov_err config_finish(egov_config *c, char *errmsg, size_t errlen)
{
	size_t i;
	egov_err err = EGOV_OK;

	for (i = 0; i < KEY_COUNT; i++) {
		if ((keys[i].type == KEY_STRING || keys[i].type == KEY_ENUM) && !*str_field(c, &keys[i])) {
			snprintf(errmsg, errlen, "%s.%s: out of memory", keys[i].section, keys[i].name);
			err = EGOV_ENOMEM;
			goto out;
		}
	}
	if (c->connections_per_ip > c->connections_max) {
		snprintf(errmsg, errlen,
			 "server.connections_per_ip: %d is more than server.connections_max %d "
			 "(expected at most server.connections_max)",
			 c->connections_per_ip, c->connections_max);
		err = EGOV_EINVAL;
		goto out;
	}
	if (!c->tls_cert[0] != !c->tls_key[0]) {
		snprintf(errmsg, errlen, "%s: is set without %s (expected both or neither)",
			 c->tls_cert[0] ? "server.tls_cert" : "server.tls_key",
			 c->tls_cert[0] ? "server.tls_key" : "server.tls_cert");
		err = EGOV_EINVAL;
		goto out;
	}
	if (c->peer_listen[0] && (!c->peer_tls_cert[0] || !c->peer_tls_key[0])) {
		snprintf(errmsg, errlen, "%s: is empty while server.peer_listen is set (expected a PEM file)",
			 c->peer_tls_cert[0] ? "server.peer_tls_key" : "server.peer_tls_cert");
		err = EGOV_EINVAL;
		goto out;
	}
	if (c->database[0] == '\0') {
		err = join_data("sqlite:", c->data_dir, "egov.db", &c->database);
		if (err) {
			snprintf(errmsg, errlen, "data.database: cannot derive from data.dir (%s)",
				 egov_err_name(err));
			goto out;
		}
	}
	if (c->pki_public_url[0] == '\0') {
		char *url = NULL;
		err = join_data("http://", c->listen, "", &url);
		if (!err) {
			url[strlen(url) - 1] = '\0'; /* join_data's '/' */
			free(c->pki_public_url);
			c->pki_public_url = url;
		}
	}
	if (!err && c->oidc_issuer[0] == '\0') {
		char *copy = strdup(c->pki_public_url);
		if (copy) {
			free(c->oidc_issuer);
			c->oidc_issuer = copy;
		} else {
			err = EGOV_ENOMEM;
		}
	}
	if (err) {
		snprintf(errmsg, errlen, "pki.public_url: cannot derive from server.listen (%s)", egov_err_name(err));
		goto out;
	}
	if (c->access_log[0] == '\0') {
		err = join_data("", c->data_dir, "access.log", &c->access_log);
		if (err) {
			snprintf(errmsg, errlen, "log.access: cannot derive from data.dir (%s)",
				 egov_err_name(err));
			goto out;
		}
	}
out:
	return err;
}

egov_err config_listen_addr(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen)
{
	return listen_parse(listen, ss, sslen) ? EGOV_OK : EGOV_EINVAL;
}

/* ---- documentation ---- */

/* Needs quotes to read back as the same string. */
static bool needs_quotes(const char *v)
{
	size_t n = strlen(v);

	return n == 0 || is_space(v[0]) || is_space(v[n - 1]) || v[0] == '"' ||
	       strpbrk(v, "#;") != NULL;
}

static egov_err add_value(buf *out, const char *v)
{
	egov_err err = EGOV_OK;

	if (!needs_quotes(v))
		return buf_adds(out, v);
	err = buf_addc(out, '"');
	for (; !err && *v; v++) {
		if (*v == '"' || *v == '\\')
			err = buf_addc(out, '\\');
		if (!err)
			err = buf_addc(out, *v);
	}
	if (!err)
		err = buf_addc(out, '"');
	return err;
}

/* Writes text as "# " comment lines wrapped before column 78. */
static egov_err add_wrapped(buf *out, const char *prefix, const char *text)
{
	const size_t width = 76;
	const char *p = text;
	egov_err err = EGOV_OK;

	while (!err && *p) {
		size_t room = width - strlen(prefix), n = strlen(p), cut;
		if (n <= room) {
			cut = n;
		} else {
			cut = room;
			while (cut > 0 && p[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = room;
		}
		err = buf_addf(out, "%s%.*s\n", prefix, (int)cut, p);
		p += cut;
		while (*p == ' ')
			p++;
	}
	return err;
}

static const char file_head[] =
	"# egov configuration.\n"
	"#\n"
	"# Every key is listed with its description, accepted values and default;\n"
	"# the commented-out line shows the default. Uncomment a line to change it.\n"
	"# Sources, later ones winning: defaults, this file (--config FILE, or\n"
	"# DATA/egov.conf), environment variables (EGOV_SECTION_KEY), then\n"
	"# command-line flags. Values may be quoted (\"...\") to hold # or ;.\n"
	"# Relative paths are taken from the directory egov is started in.\n"
	"# Generated by `egov config defaults`; see docs/configuration.md.\n";

egov_err config_write_defaults(buf *out)
{
	const char *section = NULL;
	char expect[256], env[96], num[32], line[512];
	size_t i;
	egov_err err;

	err = buf_adds(out, file_head);
	for (i = 0; !err && i < KEY_COUNT; i++) {
		const key_def *k = &keys[i];
		if (!section || strcmp(section, k->section) != 0) {
			section = k->section;
			err = buf_addf(out, "\n[%s]\n", section);
		}
		key_expect(k, expect, sizeof expect);
		env_name(k, env, sizeof env);
		if (!err)
			err = buf_adds(out, "\n");
		if (!err)
			err = add_wrapped(out, "# ", k->desc);
		snprintf(line, sizeof line, "Accepts: %s", expect);
		if (!err)
			err = add_wrapped(out, "# ", line);
		if (!err)
			err = buf_addf(out, "# Environment: %s\n", env);
		if (!err)
			err = buf_addf(out, "# %s = ", k->name);
		if (!err) {
			switch (k->type) {
			case KEY_INT:
				snprintf(num, sizeof num, "%lld", k->int_default);
				err = buf_adds(out, num);
				break;
			case KEY_BOOL:
				err = buf_adds(out, k->int_default ? "true" : "false");
				break;
			case KEY_STRING:
			case KEY_ENUM:
				err = add_value(out, k->str_default);
				break;
			}
		}
		if (!err)
			err = buf_addc(out, '\n');
	}
	return err;
}
