/*
 * config.h: egov's configuration.
 *
 * Sources, later ones winning: built-in defaults, the config file
 * (--config FILE, or DATA/egov.conf if it exists), environment variables
 * (EGOV_<SECTION>_<KEY>, e.g. EGOV_SERVER_LISTEN), then command-line flags.
 * The file is INI-like: "[section]" lines and "key = value" lines, '#' and
 * ';' comments, values optionally "quoted". Every key is declared once in config.c with its type, default,
 * range and description; `egov config defaults` prints them all as a
 * documented file. An unknown key or a bad value is refused with a message
 * that names the key.
 */
#ifndef EGOV_CORE_CONFIG_H
#define EGOV_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct egov_config {
	/* [server] */
	char *listen;            /* "127.0.0.1:8080" */
	int threads;             /* 0 = number of cores */
	int connections_max;
	int connections_per_ip;
	int timeout_s;           /* idle / slow-client timeout */
	int drain_s;             /* SIGTERM: seconds to let requests finish */
	char *admin_token;       /* operator bearer token; "" = none */
	char *role;              /* standalone | central | gateway */
	char *tls_cert;          /* PEM path; "" = plain HTTP (with tls_key) */
	char *tls_key;           /* PEM path; both or neither */
	char *tls_client_ca;     /* PEM bundle of client CAs; "" = issuing CA + pki.trust_anchors */
	char *trusted_proxies;   /* comma-separated IPs whose X-Client-Cert is believed; "" = none */
	char *peer_listen;       /* second, mutual-TLS listener for other nodes; "" = none */
	char *peer_tls_cert;     /* its certificate (PEM) */
	char *peer_tls_key;      /* its key (PEM) */
	char *peer_tls_ca;       /* CAs peers' certificates must chain to; "" = DATA/pki/root.crt */
	/* [data] */
	char *data_dir;          /* "./var" */
	char *database;          /* "" = sqlite:DATA/egov.db (config_finish) */
	/* [web] */
	char *web_dir;           /* "web" */
	/* [log] */
	char *log_file;          /* "-" = stderr */
	char *access_log;        /* "" = DATA/access.log (config_finish), "-" = stderr, "off" */
	char *log_level;         /* debug|info|warn|error */
	/* [pki] */
	char *pki_public_url;    /* base URL put in certificates (CRL, OCSP) */
	char *pki_trust_anchors; /* PEM bundle of extra trust anchors; "" = none */
	char *pki_trust_anchor_crls; /* CRLs (PEM bundle or DER) of those anchors; "" = none */
	int pki_checkpoint_every; /* audit records between timestamped checkpoints */
	char *pki_tsa_policy;    /* TSA policy OID */
	/* [oidc] */
	char *oidc_issuer;       /* issuer URL of the OpenID provider */
	int oidc_key_rotation_days; /* days a signing key stays the active one */
	int oidc_access_token_ttl_s; /* lifetime of access and ID tokens */
	/* [exchange] */
	char *exchange_instance;       /* "MO" */
	int exchange_conf_validity_s;  /* central: lifetime of a published global configuration */
	char *exchange_central_url;    /* gateway: base URL of the central node */
	char *exchange_central_cert;   /* gateway: PEM of the central's configuration signing certificate */
	char *exchange_gateway_url;    /* gateway: its own peer URL as registered ("https://host:port") */
	int exchange_conf_refresh_s;   /* gateway: seconds between downloads */
	int exchange_clock_skew_s;     /* accepted difference of signed-at times */
	int exchange_backend_timeout_ms; /* default back-end timeout */
	int exchange_timestamp_interval_s; /* seconds between seals of the message log */
	int exchange_timestamp_grace_s;    /* unsealed this long: refuse new exchanges */
	int exchange_retry_ms;         /* pub/sub: first redelivery delay; doubles */
	int exchange_retry_max_s;      /* pub/sub: longest redelivery delay */
	/* [mail] */
	char *mail_smtp_host;    /* SMTP relay the outbox delivers to */
	int mail_smtp_port;
	char *mail_from;         /* "Name <addr>" or "addr" */
	char *mail_starttls;     /* off | opportunistic | required */
	char *mail_user;         /* "" = no AUTH */
	char *mail_password;
	int mail_poll_ms;        /* outbox poll interval */
	int mail_retry_ms;       /* first retry delay; doubles per attempt */
	int mail_max_attempts;   /* then the message is marked failed */
	int mail_timeout_s;      /* connect and per-command timeout */
} egov_config;

/* Fills defaults. */
void config_init(egov_config *c);
void config_release(egov_config *c);
/* Reads a file over the current values. errmsg names file, line and key. */
egov_err config_load_file(egov_config *c, const char *path, char *errmsg, size_t errlen);
/* Applies EGOV_* environment variables. */
egov_err config_load_env(egov_config *c, char *errmsg, size_t errlen);
/* Sets one key ("server.listen") from text, validating it. */
egov_err config_set(egov_config *c, const char *key, const char *value, char *errmsg, size_t errlen);
/* Cross-key checks and derived defaults (database from data_dir, ...). */
egov_err config_finish(egov_config *c, char *errmsg, size_t errlen);
/* Writes every key with its description and default, as a config file. */
egov_err config_write_defaults(buf *out);
/* Parses a server.listen value ("127.0.0.1:8080", "[::1]:8080") into a
 * socket address for bind(2). EGOV_EINVAL if it is not one. */
egov_err config_listen_addr(const char *listen, struct sockaddr_storage *ss, socklen_t *sslen);

#endif
