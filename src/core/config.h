/*
 * config.h: egov's configuration.
 *
 * Sources, later ones winning: built-in defaults, the config file
 * (--config FILE, or DATA/egov.conf if it exists), environment variables
 * (EGOV_<SECTION>_<KEY>, e.g. EGOV_SERVER_LISTEN), then command-line flags.
 * The file is INI-like: "[section]" lines and "key = value" lines, '#' and
 * ';' comments, values optionally "quoted".
 *
 * The kernel owns four sections, [server], [data], [web] and [log], whose
 * values are the fields of egov_config. Every other section belongs to a
 * module: the module declares a config_section (its keys, the struct that
 * holds their values, a finish step) in its descriptor (core/module.h), and
 * reads its values with config_section_values(). The same machinery runs
 * over the kernel's keys and then every module's section, in module order:
 * defaults, the file parser, the environment, config_set(), the cross-key
 * rules (config_finish) and `egov config defaults`. An unknown section, an
 * unknown key or a bad value is refused with a message that names the key.
 */
#ifndef EGOV_CORE_CONFIG_H
#define EGOV_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/err.h"

/* ---- declaring keys ------------------------------------------------------ */

typedef enum config_type { CONFIG_STRING, CONFIG_INT, CONFIG_BOOL, CONFIG_ENUM } config_type;

/* Extra validation for a string key. Returns false and a short reason
 * ("is too short: 12 characters") in why when value is refused; the
 * message then reads "section.key: \"value\" <why> (expected <expect>)". */
typedef bool (*config_check)(const char *value, char *why, size_t whylen);

/* One key. Its value lives at offset in the section's struct: a char *
 * (CONFIG_STRING, CONFIG_ENUM; a heap string the machinery owns and
 * frees), an int (CONFIG_INT) or a bool (CONFIG_BOOL). */
typedef struct config_key {
	const char *name;           /* "listen": lower case, digits, '_' */
	config_type type;
	size_t offset;              /* into the section's struct */
	const char *str_default;    /* CONFIG_STRING, CONFIG_ENUM */
	long long int_default;      /* CONFIG_INT, CONFIG_BOOL */
	long long min, max;         /* CONFIG_INT */
	const char *const *allowed; /* CONFIG_ENUM, NULL-terminated */
	config_check check;         /* CONFIG_STRING, optional */
	const char *expect;         /* CONFIG_STRING: what a valid value looks like */
	bool secret;                /* never echo the value */
	const char *desc;           /* for `egov config defaults`; starts upper case, no '=' */
} config_key;

struct egov_config;

/* A module's [section]: its keys, the struct that holds their values (size
 * bytes, zeroed, then each key's default) and the rules across keys. */
typedef struct config_section {
	const char *name;   /* "exchange": the [section] and EGOV_EXCHANGE_* */
	const char *desc;   /* one line for the generated file; upper case first, no '=' */
	const config_key *keys;
	size_t nkeys;
	size_t size;        /* of the module's struct that holds the values */
	/* Frees what the module added to its struct beyond the keys' strings
	 * (those are freed generically). May be NULL. */
	void (*release)(void *values);
	/* Cross-key rules and derived defaults, run by config_finish() after
	 * every source was read, in module order, after the kernel's own. It
	 * may read the kernel's fields of cfg and (through their public
	 * headers) the values of modules before it. A string it replaces must
	 * be malloc'd (the old one freed). On a refusal: EGOV_EINVAL and a
	 * message naming the key in errmsg. May be NULL. */
	egov_err (*finish)(void *values, const struct egov_config *cfg, char *errmsg, size_t errlen);
} config_section;

typedef struct egov_config {
	/* [server] */
	char *listen;            /* "127.0.0.1:8080" */
	int threads;             /* 0 = number of cores */
	int connections_max;
	int connections_per_ip;
	int timeout_s;           /* idle / slow-client timeout */
	int head_timeout_s;      /* a request head must arrive whole within this */
	int drain_s;             /* SIGTERM: seconds to let requests finish */
	char *admin_token;       /* operator bearer token; "" = none */
	char *role;              /* standalone | central | gateway */
	char *tls_cert;          /* PEM path; "" = plain HTTP (with tls_key) */
	char *tls_key;           /* PEM path; both or neither */
	char *tls_client_ca;     /* PEM bundle of client CAs; "" = the platform's (server_tls_set_trust) */
	char *tls_priorities;    /* GnuTLS priority string of both listeners */
	char *trusted_proxies;   /* addresses and CIDR ranges whose forwarding headers and
				  * X-Client-Cert are believed; "" = none */
	char *proxy_header;      /* x-forwarded-for | forwarded: the one trusted proxies set */
	char *peer_listen;       /* second, mutual-TLS listener for other nodes; "" = none */
	char *peer_tls_cert;     /* its certificate (PEM) */
	char *peer_tls_key;      /* its key (PEM) */
	char *peer_tls_ca;       /* CAs peers' certificates must chain to; "" = the platform's */
	/* [data] */
	char *data_dir;          /* "./var" */
	char *database;          /* "" = sqlite:DATA/egov.db (config_finish) */
	/* [web] */
	char *web_dir;           /* "web" */
	/* [log] */
	char *log_file;          /* "-" = stderr */
	char *access_log;        /* "" = DATA/access.log (config_finish), "-" = stderr, "off" */
	char *log_level;         /* debug|info|warn|error */
	/* The modules' sections (config_init), in module order, and the
	 * struct of values of each; read them with config_section_values(). */
	const config_section **sections;
	void **values;
	size_t nsections;
	bool oom;               /* a value could not be allocated: config_finish fails */
} egov_config;

/* Fills the kernel's defaults and, for every module in src/modules.c that
 * declares a config_section, a struct of its defaults. Out of memory is
 * reported by config_finish(). */
void config_init(egov_config *c);
/* As config_init(), with the module sections given (for tests). sections
 * must outlive c. */
void config_init_sections(egov_config *c, const config_section *const *sections, size_t n);
/* Frees every value and the modules' structs; c is zeroed. */
void config_release(egov_config *c);
/* Reads a file over the current values. errmsg names file, line and key. */
egov_err config_load_file(egov_config *c, const char *path, char *errmsg, size_t errlen);
/* Applies EGOV_* environment variables. */
egov_err config_load_env(egov_config *c, char *errmsg, size_t errlen);
/* Sets one key ("server.listen", "pki.public_url") from text, validating it. */
egov_err config_set(egov_config *c, const char *key, const char *value, char *errmsg, size_t errlen);
/* Cross-key checks and derived defaults: the kernel's (database from
 * data_dir, ...), then each module section's finish step in module order. */
egov_err config_finish(egov_config *c, char *errmsg, size_t errlen);
/* The values of a module's section (its struct), or NULL when c holds no
 * such section (c not made by config_init, or the module not listed). */
const void *config_section_values(const egov_config *c, const config_section *s);
/* Writes every key with its description and default, as a config file:
 * the kernel's sections, then the modules' in module order. */
egov_err config_write_defaults(buf *out);
/* Parses a server.listen value ("127.0.0.1:8080", "[::1]:8080") into a
 * socket address for bind(2). EGOV_EINVAL if it is not one. */
egov_err config_listen_addr(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen);

/* ---- checks for config_key.check, shared with the modules --------------- */

/* ADDR:PORT with an IPv4 address, or [IPv6]:PORT; port 1-65535. */
bool config_check_listen(const char *v, char *why, size_t whylen);
/* "" or as config_check_listen. */
bool config_check_listen_opt(const char *v, char *why, size_t whylen);
/* Not "". */
bool config_check_nonempty(const char *v, char *why, size_t whylen);
/* "" or an absolute http(s) URL with a host and no trailing slash, query,
 * fragment, space, quote or comma: the prefix of URLs written into
 * certificates and tokens. */
bool config_check_http_url(const char *v, char *why, size_t whylen);
/* A dotted object identifier: at least two arcs, the first 0, 1 or 2. */
bool config_check_oid(const char *v, char *why, size_t whylen);
/* "" or comma-separated IPv4/IPv6 addresses. */
bool config_check_ip_list(const char *v, char *why, size_t whylen);
/* "" or comma-separated IPv4/IPv6 addresses and CIDR ranges (netaddr.h). */
bool config_check_net_list(const char *v, char *why, size_t whylen);

#endif
