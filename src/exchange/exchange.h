/*
 * exchange.h: the data exchange's public header, what the rest of the
 * program may use of it (docs/exchange.md). The module itself is its
 * descriptor (exchange.c, listed in src/modules.c); its rooms and their
 * headers are private:
 *
 *   wire/      identifiers, the headers and paths of a call, the signed
 *              canonical texts, access rules (the wire format)
 *   keys/      a gateway's signing keys, ES256, the files of DATA/exchange
 *   conf/      the signed global configuration: parsed, verified, in force,
 *              downloaded by gateways
 *   registry/  the central node's registry: store, admin API, commands,
 *              the configuration it publishes and the key that signs it
 *   log/       the message log (a chain-log user), its sealer, verifier,
 *              archives and command
 *   gateway/   service calls: back-ends, replay window, exchanges in
 *              flight, the inbound verifier, provider and consumer sides,
 *              received pushes, metaservices, figures
 *   pubsub/    publish/subscribe: storage, the rooms' operations, push
 *              delivery
 *
 * What is here: the [exchange] settings, the configuration in force and
 * the registry's state, which the staff console shows, and the console's
 * handlers that the module routes.
 */
#ifndef EGOV_EXCHANGE_EXCHANGE_H
#define EGOV_EXCHANGE_EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/db.h"
#include "core/err.h"
#include "core/http.h"
#include "core/module.h"

/* ---- the [exchange] section (exchange_config.c) ------------------------------- */

typedef struct exchange_config {
	char *instance;            /* "MO" */
	int conf_validity_s;       /* central: lifetime of a published global configuration */
	char *central_url;         /* gateway: base URL of the central node */
	char *central_cert;        /* gateway: PEM of the central's configuration signing certificate */
	char *gateway_url;         /* gateway: its own peer URL as registered ("https://host:port") */
	int conf_refresh_s;        /* gateway: seconds between downloads */
	int federation_refresh_s;  /* gateway: seconds between downloads of a trusted instance's */
	int clock_skew_s;          /* accepted difference of signed-at times */
	int backend_timeout_ms;    /* default back-end timeout */
	int timestamp_interval_s;  /* seconds between seals of the message log */
	int timestamp_grace_s;     /* unsealed this long: refuse new exchanges */
	int retry_ms;              /* pub/sub: first redelivery delay; doubles */
	int retry_max_s;           /* pub/sub: longest redelivery delay */
} exchange_config;
extern const config_section exchange_config_section;
/* The [exchange] values of cfg; the keys' defaults when cfg is NULL or
 * holds no such section (a bare egov_config). Never NULL. */
const exchange_config *exchange_settings(const egov_config *cfg);
/* Whether cfg is a gateway's (server.role). */
bool exchange_is_gateway(const egov_config *cfg);

/* ---- the global configuration in force on a gateway ---------------------------- */

typedef struct exchange_conf exchange_conf; /* parsed, immutable, refcounted */

/* The configuration in force on this node, with a reference taken (NULL if
 * none has been loaded or it has expired: *why then says which, as a
 * problem code "exchange.conf_missing" / "exchange.conf_expired").
 * Release with exchange_conf_put(). Safe from any thread. */
exchange_conf *exchange_conf_get(const char **why);
void exchange_conf_put(exchange_conf *cf);
int64_t exchange_conf_version(const exchange_conf *cf);
/* When it was generated and when it expires (unix us). */
int64_t exchange_conf_generated_us(const exchange_conf *cf);
int64_t exchange_conf_expires_us(const exchange_conf *cf);

/* ---- the central node's registry -------------------------------------------------- */

/* The registry's version (bumped by every change). */
egov_err exchange_registry_version(db_conn *c, int64_t *version);
/* The current signed configuration the central node serves (cached until
 * the registry or the certificates' status change, or it is half-way to
 * expiry). The caller frees *jws. EGOV_ENOTFOUND when the central signing
 * key is missing (run egov exchange central init). */
egov_err exchange_conf_current(db_conn *c, char **jws, size_t *len, int64_t *version);

/* The module's migrations in order (its descriptor's list), for tools and
 * tests that make the exchange's tables on a database of their own. */
const db_migration *exchange_migrations(size_t *n);

/* ---- the staff console (exchange_web.c) ------------------------------------------------ */

/* The registry page the console serves (the descriptor's .pages) and
 * GET /api/v1/exchange/console (the configuration in force and each
 * certificate's standing). */
#define EXCHANGE_WEB_NPAGES 1
extern const console_page exchange_web_pages[EXCHANGE_WEB_NPAGES];
egov_err exchange_web_console(req *r);

#endif
