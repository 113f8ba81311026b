/*
 * conf.h: the signed global configuration as a gateway holds it
 * (docs/exchange.md, "The global configuration").
 *
 *   conf.c      the parsed configuration: its lookups and the one in force
 *   parse.c     a signed document checked (JWS by the pinned certificate)
 *               and bound into a configuration, with each subsystem's TLS
 *               pins computed once
 *   signed.c    a signed request or answer checked against it: the signer
 *               certificate of a subsystem and its signature
 *   download.c  the gateway's download job, the kept copy in
 *               DATA/exchange/globalconf.jws, `egov exchange conf show`
 *
 * The central node builds and signs the document from its registry
 * (registry/publish.c); it reads it back with exchange_conf_parse().
 */
#ifndef EGOV_EXCHANGE_CONF_CONF_H
#define EGOV_EXCHANGE_CONF_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/jobs.h"
#include "exchange/exchange.h"
#include "exchange/wire/wire.h"

typedef struct exchange_cert {
	char usage[8];        /* "sign" or "tls" */
	char serial[40];
	char sha256[65];      /* SHA-256 of the DER certificate, hex */
	const char *pem;      /* owned by the conf */
} exchange_cert;

/* A subsystem and a service begin with their id: the lookups rely on it. */
typedef struct exchange_subsystem {
	char id[EXCHANGE_ID_MAX];
	const char *gateway_url;   /* "https://host:port" of its gateway */
	const exchange_cert *certs;
	size_t ncerts;
	/* libcurl's public-key pins of its tls certificates ("sha256//B64;
	 * ..."), computed when the configuration was parsed: its gateway is
	 * known by these keys, not by its host name. NULL: it has none. */
	const char *tls_pins;
} exchange_subsystem;

typedef struct exchange_service {
	char id[EXCHANGE_ID_MAX];  /* a subsystem id plus /SERVICE */
	char log_mode[8];          /* "full" or "digest" */
	int64_t max_body;          /* bytes, request and response */
	const char *openapi;       /* JSON text or NULL */
	const char *title;         /* or "" */
	/* How long the provider waits for the back-end (ms), published so
	 * the consumer waits as long; 0 in an older configuration without
	 * it: this node's exchange.backend_timeout_ms. */
	int64_t timeout_ms;
} exchange_service;

/* An access right of client on a service. */
typedef struct exchange_access {
	char client[EXCHANGE_ID_MAX];
	char service[EXCHANGE_ID_MAX];
	const char *methods; /* "GET,POST" or "*" */
	const char *paths;   /* comma-separated: "*", exact paths, or prefixes ending in a slash and a star */
} exchange_access;

/* ---- the parsed configuration (conf.c) ----------------------------------------------- */

const char *exchange_conf_instance(const exchange_conf *cf);
const char *exchange_conf_tsa_url(const exchange_conf *cf); /* "" if none */
/* Lookups; NULL when unknown. Pointers live as long as the reference. */
const exchange_subsystem *exchange_conf_subsystem(const exchange_conf *cf, const char *id);
const exchange_service *exchange_conf_service(const exchange_conf *cf, const char *id);
bool exchange_conf_member_known(const exchange_conf *cf, const char *member_id);
/* Whether an event type is known (id as a service id: the owner subsystem
 * plus /NAME). */
bool exchange_conf_event_type_known(const exchange_conf *cf, const char *id);
/* Whether client may call method on path of service (access rights). */
bool exchange_conf_allowed(const exchange_conf *cf, const char *client, const char *service, const char *method,
			   const char *path);
/* The certificate of a subsystem by usage whose SHA-256 (hex) is sha256;
 * NULL if it is not in the configuration. */
const exchange_cert *exchange_conf_cert(const exchange_conf *cf, const char *subsystem, const char *usage,
					const char *sha256);
/* Iteration for the metaservices and the console. fn returning non-zero
 * stops; each_service with subsystem NULL walks all. */
void exchange_conf_each_subsystem(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_subsystem *s),
				  void *ctx);
void exchange_conf_each_service(const exchange_conf *cf, const char *subsystem,
				int (*fn)(void *ctx, const exchange_service *s), void *ctx);
void exchange_conf_each_access(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_access *a), void *ctx);
/* Figures for `egov exchange conf show`. */
typedef struct exchange_conf_counts {
	size_t members, subsystems, services, access, event_types;
} exchange_conf_counts;
void exchange_conf_count(const exchange_conf *cf, exchange_conf_counts *out);

/* Makes cf (a reference the caller gives up) the configuration in force,
 * unless its version is lower than the current one (EGOV_ECONFLICT, cf
 * released). */
egov_err exchange_conf_install(exchange_conf *cf);
/* Drops the configuration in force (tests, shutdown). */
void exchange_conf_clear(void);

/* ---- parsing (parse.c) ------------------------------------------------------------------ */

/* Parses and verifies a signed global configuration (JWS, docs/exchange.md):
 * ES256 by the certificate pinned_pem (the x5c must be that certificate),
 * instance as configured, not expired at now_us (0: not checked). On
 * success *out holds one reference. On refusal EGOV_EAUTH (signature,
 * certificate) or EGOV_EINVAL (shape, instance, expired) with *why one of
 * "exchange.conf_signature", "exchange.conf_invalid",
 * "exchange.conf_instance", "exchange.conf_expired". */
egov_err exchange_conf_parse(const char *jws, size_t len, const char *pinned_pem, const char *instance,
			     int64_t now_us, exchange_conf **out, const char **why);

/* ---- signed messages (signed.c) ---------------------------------------------------------- */

/* Whether sig (base64url ES256) over text verifies with the sign
 * certificate cert_sha256 of subsystem in cf. EGOV_EAUTH when that
 * certificate is not in the configuration (*why "signer certificate not in
 * the configuration") or the signature does not verify (*why "signature
 * does not verify"). *signer (may be NULL) gets the certificate. */
egov_err exchange_conf_verify_signed(const exchange_conf *cf, const char *subsystem, const char *cert_sha256,
				     const buf *text, const char *sig, const exchange_cert **signer,
				     const char **why);
/* A signed answer to a request this gateway signed (a service call's
 * response, a push's answer): the signature headers of the answer, what
 * the answer was, and who must have signed it. */
typedef struct exchange_answer {
	const char *message_id;  /* X-Road-Id of the answer: must be the request's */
	const char *signed_at, *signer_cert, *sig;
	int status;
	const char *content_type;
	const char *body_sha256;
} exchange_answer;
/* Checks a answer from subsystem to the request message_id of service
 * whose signature was request_sig: present and well-formed headers, the
 * signer in cf, the canonical response's signature. EGOV_EAUTH with *why
 * ("response not signed", ...) when it is not one. *signer (may be NULL)
 * gets the signer's certificate. */
egov_err exchange_conf_verify_answer(const exchange_conf *cf, const char *subsystem, const char *service,
				     const char *message_id, const char *request_sig, const exchange_answer *a,
				     const exchange_cert **signer, const char **why);

/* ---- the gateway's copy (download.c) ------------------------------------------------------ */

/* Gateway side: checks the settings, loads DATA/exchange/globalconf.jws
 * if present; the download job keeps it fresh from then on. cfg must
 * outlive the room (the node's configuration). */
egov_err exchange_conf_start(const egov_config *cfg);
void exchange_conf_stop(void);
/* Whether this node keeps a gateway's copy (between start and stop). */
bool exchange_conf_serving(void);
/* One download now (the job's pass; tests). *why as for
 * exchange_conf_parse, or "exchange.conf_unreachable". */
egov_err exchange_conf_refresh(const char **why);
/* The download job: every exchange.conf_refresh_s on a gateway. */
extern const job exchange_conf_job;
/* `egov exchange conf show` on a gateway: the kept copy. */
int exchange_conf_show_kept(const egov_config *cfg);
/* Prints the summary of cf (the command's output, central or gateway). */
void exchange_conf_print(const exchange_conf *cf);

#endif
