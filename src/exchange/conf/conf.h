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
 *   federation.c  the configurations of the other instances this one
 *               trusts (federation): their download job and kept copies
 *
 * The central node builds and signs the document from its registry
 * (registry/publish.c); it reads it back with exchange_conf_parse().
 *
 * Federation: the configuration in force is the local instance's, with
 * the configurations of the instances it trusts (its "federation" list)
 * attached. Every lookup by identifier goes to the configuration of the
 * identifier's instance (the local one, or an attached one that has not
 * expired), and an access right is always read from the configuration of
 * the service's instance: the provider's registry grants access.
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

/* An instance this one trusts, as its registry publishes it: where its
 * central node serves its configuration and the certificate that must
 * sign it. Strings owned by the conf. */
typedef struct exchange_federation {
	char instance[EXCHANGE_PART_MAX + 1];
	const char *url;      /* base URL of its central node */
	const char *pem;      /* its configuration signing certificate */
	char sha256[65];      /* SHA-256 of that certificate's DER, hex */
} exchange_federation;

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
/* The hex SHA-256 of the certificate whose signature the document was
 * accepted with. */
const char *exchange_conf_signer(const exchange_conf *cf);
/* The configuration that speaks for the instance of id (an identifier, or
 * an instance alone): cf itself for its own instance, an attached
 * federated one that has not expired, else NULL. */
const exchange_conf *exchange_conf_of_instance(const exchange_conf *cf, const char *id);
/* Lookups by identifier, each in the configuration of the identifier's
 * instance (exchange_conf_of_instance); NULL when unknown. Pointers live
 * as long as the reference. */
const exchange_subsystem *exchange_conf_subsystem(const exchange_conf *cf, const char *id);
const exchange_service *exchange_conf_service(const exchange_conf *cf, const char *id);
bool exchange_conf_member_known(const exchange_conf *cf, const char *member_id);
/* Whether an event type is known (id as a service id: the owner subsystem
 * plus /NAME). */
bool exchange_conf_event_type_known(const exchange_conf *cf, const char *id);
/* Whether client may call method on path of service: the access rights
 * of the service's instance (a client may be of another one). */
bool exchange_conf_allowed(const exchange_conf *cf, const char *client, const char *service, const char *method,
			   const char *path);
/* The certificate of a subsystem by usage whose SHA-256 (hex) is sha256;
 * NULL if it is not in the configuration. */
const exchange_cert *exchange_conf_cert(const exchange_conf *cf, const char *subsystem, const char *usage,
					const char *sha256);
/* Iteration for the metaservices and the console. fn returning non-zero
 * stops. each_subsystem and each_access walk cf's own lists; each_service
 * with a subsystem walks that subsystem's in its instance's
 * configuration, with NULL all of cf's own. */
void exchange_conf_each_subsystem(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_subsystem *s),
				  void *ctx);
void exchange_conf_each_service(const exchange_conf *cf, const char *subsystem,
				int (*fn)(void *ctx, const exchange_service *s), void *ctx);
void exchange_conf_each_access(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_access *a), void *ctx);
/* The instances cf's registry trusts, as it published them. */
void exchange_conf_each_federation(const exchange_conf *cf, int (*fn)(void *ctx, const exchange_federation *f),
				   void *ctx);
/* The federated configurations attached to cf (the one in force): at
 * most max into out, borrowed for as long as the caller holds cf.
 * Expired ones are included (the caller may show them). */
size_t exchange_conf_attached(const exchange_conf *cf, const exchange_conf **out, size_t max);
/* Figures for `egov exchange conf show`. */
typedef struct exchange_conf_counts {
	size_t members, subsystems, services, access, event_types, federation;
} exchange_conf_counts;
void exchange_conf_count(const exchange_conf *cf, exchange_conf_counts *out);

/* Makes cf (a reference the caller gives up) the local instance's
 * configuration in force, unless its version is lower than the current
 * one (EGOV_ECONFLICT, cf released). The federated configurations held
 * are attached to it as far as its federation list still names their
 * instance and signer; the others are dropped. */
egov_err exchange_conf_install(exchange_conf *cf);
/* Holds cf (a reference the caller gives up), the configuration of an
 * instance the local one trusts, and attaches it while the local
 * configuration names that instance and the certificate that signed cf.
 * EGOV_ECONFLICT (cf released) when its version is lower than the one
 * held from the same signer; EGOV_ENOTFOUND (released) when the local
 * configuration in force does not trust it (any more). */
egov_err exchange_conf_install_federated(exchange_conf *cf);
/* Drops the configurations in force, federated ones too (tests, shutdown). */
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

/* ---- federated instances (federation.c) ---------------------------------------------- */

/* Gateway side, after exchange_conf_start(): loads the kept copies of the
 * configurations of the instances the configuration in force trusts
 * (DATA/exchange/globalconf-INSTANCE.jws); the federation job keeps them
 * fresh from then on. */
void exchange_federation_start(const egov_config *cfg);
void exchange_federation_stop(void);
/* The download job: each trusted instance's configuration from the URL its
 * trusting registry published, every exchange.federation_refresh_s, and
 * at once when the local configuration names a new one. */
extern const job exchange_federation_job;
/* `egov exchange conf show` on a gateway: the kept copies of federated
 * configurations the kept local one trusts. */
void exchange_federation_show_kept(const exchange_conf *local);

#endif
