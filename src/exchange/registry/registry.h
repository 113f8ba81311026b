/*
 * registry.h: the registry of the data exchange, kept by the central node
 * (roles central and standalone): members, their subsystems (with the
 * gateway that serves each), the subsystems' certificates, the services
 * they offer, access rights and pub/sub event types, the other instances
 * it trusts (federation); and the global configuration published from it.
 *
 *   store.c    schema, checks, adding and removing (one transaction with
 *              the version bump each)
 *   read.c     listing and reading items, as JSON or as the CLI's lines
 *   certs.c    certificates: issued by the platform CA from a CSR, or
 *              issued elsewhere and checked to chain to it
 *   trust.c    trusted instances: another instance's central node, by its
 *              configuration signing certificate (federation)
 *   publish.c  the global configuration built from the registry, signed
 *              with the central key, cached, served at
 *              GET /exchange/v1/globalconf
 *   central.c  the central signing key (`egov exchange central init`)
 *   http.c     the admin API under /api/v1/exchange/
 *   cli.c      `egov exchange member|subsystem|service|event-type|access|cert|trust`
 *
 * The room holds the node's database and settings (registry_setup(), from
 * the module's start hook or before a command); the functions that take a
 * connection use only it and those settings.
 */
#ifndef EGOV_EXCHANGE_REGISTRY_REGISTRY_H
#define EGOV_EXCHANGE_REGISTRY_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/db.h"
#include "core/http.h"
#include "core/json.h"
#include "exchange/exchange.h"
#include "exchange/wire/wire.h"

struct evp_pkey_st; /* OpenSSL's EVP_PKEY */

/* The node's database (for the HTTP handlers) and configuration; both
 * must outlive the room's use. d may be NULL for a command without one. */
void registry_setup(db *d, const egov_config *cfg);

/* ---- the registry's items ---------------------------------------------------------- */

typedef enum exchange_reg_kind {
	EXCHANGE_REG_MEMBER,
	EXCHANGE_REG_SUBSYSTEM,
	EXCHANGE_REG_SERVICE,
	EXCHANGE_REG_EVENT_TYPE,
	EXCHANGE_REG_ACCESS,
	EXCHANGE_REG_CERT,
	EXCHANGE_REG_TRUST,
} exchange_reg_kind;

/* One thing to add or remove; which members count depends on kind. */
typedef struct exchange_reg_item {
	exchange_reg_kind kind;
	const char *id;          /* member, subsystem, service, event type; cert: its subsystem; trust: the instance */
	const char *name;        /* member */
	const char *gateway;     /* subsystem */
	const char *title, *log_mode, *openapi; /* service; NULL = "", "full", none */
	int64_t max_body;        /* service; 0 = 1 MiB */
	int64_t timeout_ms;      /* service; 0 = exchange.backend_timeout_ms */
	const char *client, *service, *methods, *paths; /* access */
	const char *usage, *serial, *pki_serial, *not_after, *pem, *sha256; /* cert; trust: pem, sha256, not_after */
	const char *url;         /* trust: the other central node's base URL */
} exchange_reg_item;

/* Why the registry refused: a problem code, the field, a hint. */
typedef struct reg_why {
	const char *code, *field, *detail;
} reg_why;

/* ---- storage (store.c) ---------------------------------------------------------------- */

/* The registry's schema, versions 1, 2 and 6 of the module's migrations. */
extern const char exchange_registry_schema_v1[], exchange_registry_schema_v2[], exchange_registry_schema_v3[];
/* Adds (access: grants or replaces, *replaced says which) in one
 * transaction with the version bump. EGOV_EINVAL, EGOV_ENOTFOUND (the
 * parent), EGOV_ECONFLICT (exists) with *why. */
egov_err exchange_reg_add(db_conn *c, const exchange_reg_item *in, bool *replaced, reg_why *why);
/* Removes; EGOV_ENOTFOUND, EGOV_ECONFLICT (still in use) with *why. */
egov_err exchange_reg_remove(db_conn *c, const exchange_reg_item *in, reg_why *why);
/* Whether id is of this registry's instance (exchange.instance). */
bool registry_instance_ok(const char *id);
/* Whether this registry trusts the instance of id (an identifier or an
 * instance alone). */
egov_err registry_trusts(db_conn *c, const char *id, bool *found);
/* A service's back-end timeout as published: stored (ms) when set, else
 * this node's exchange.backend_timeout_ms. */
int64_t exchange_service_timeout_ms(int64_t stored);
/* The audit record of a change: action exchange.<kind>.<verb>, object
 * exchange:<id>; nothing when the audit log is not open. */
egov_err exchange_reg_audit(const char *actor, exchange_reg_kind kind, const char *verb, const exchange_reg_item *in,
			    const char *request_id);

/* ---- reading (read.c) ------------------------------------------------------------------- */

/* Writes one item (id given) or a list (filter: a parent id, or NULL).
 * A certificate by id (its SHA-256) is its registration for the subsystem
 * filter (NULL: the first), with "subsystems": all it is registered for. */
egov_err exchange_reg_write(db_conn *c, exchange_reg_kind kind, const char *id, const char *filter, jw *w,
			    bool *found);
/* Writes an access right (client, service) as stored; *found false if none. */
egov_err exchange_reg_write_access(db_conn *c, const char *client, const char *service, jw *w, bool *found);
/* Prints the list as the CLI does: tab-separated columns, "-" for none. */
egov_err exchange_reg_print(db_conn *c, exchange_reg_kind kind, const char *filter);

/* ---- certificates (certs.c) ----------------------------------------------------------- */

/* Issues a certificate for a subsystem from a CSR through the platform CA
 * (profile system_sign or system_tls_client, owner = the subsystem id) and
 * registers it; *pem_out (malloc'd) is the certificate. */
egov_err exchange_reg_cert_issue(db_conn *c, const char *sub, const char *usage, const char *csr, size_t len,
				 char sha[65], char **pem_out, reg_why *why);
/* Registers a certificate issued elsewhere; it must chain to the platform
 * CA or a trust anchor. */
egov_err exchange_reg_cert_add(db_conn *c, const char *sub, const char *usage, const char *pem, char sha[65],
			       reg_why *why);
/* Whether a registered certificate is in the next configuration: not
 * expired at now_us and, when the platform CA issued it (pki_serial), not
 * revoked there. */
bool registry_cert_current(db_conn *c, const char *pki_serial, const char *not_after, int64_t now_us);

/* ---- trusted instances (trust.c) --------------------------------------------------------- */

/* Trusts another instance (or replaces how it is trusted: *replaced):
 * its central node's base URL, from which this instance's gateways
 * download its configuration, and its configuration signing certificate
 * (PEM, an EC P-256 key, not expired), which that configuration must be
 * signed with. sha gets the certificate's SHA-256 (hex). EGOV_EINVAL
 * with *why when the instance is malformed or this one, or the URL or
 * the certificate is not acceptable. Not audited here (the caller knows
 * the actor). */
egov_err exchange_reg_trust_add(db_conn *c, const char *instance, const char *url, const char *pem, char sha[65],
				bool *replaced, reg_why *why);

/* ---- the published configuration (publish.c) -------------------------------------------- */

/* The registry's global configuration payload (JSON) as of now_us, leaving
 * out revoked and expired certificates; *version is the registry version
 * it shows. */
egov_err exchange_conf_build(db_conn *c, int64_t now_us, buf *payload, int64_t *version);
/* Signs a payload as a global configuration JWS with key and its
 * certificate (PEM) in the header's x5c. */
egov_err exchange_conf_sign(struct evp_pkey_st *key, const char *cert_pem, const char *payload, buf *jws);
/* GET /exchange/v1/globalconf. */
egov_err exchange_http_globalconf(req *r);
/* `egov exchange conf show` on the central node: the current document. */
int registry_conf_show(db *d);

/* ---- the central signing key (central.c) -------------------------------------------------- */

/* Makes DATA/exchange/central.key and .crt (platform CA, system_sign);
 * idempotent. msg says what happened. */
egov_err exchange_central_init(db_conn *c, char *msg, size_t msglen);
/* `egov exchange central init`; -1 when argv is not it. */
int exchange_central_command(int argc, char **argv, db *d);
/* Opens the platform CA for commands that issue or check certificates;
 * 0 or -1 (said on stderr). */
int registry_open_pki(void);

/* ---- the admin API (http.c) -------------------------------------------------------------- */

egov_err exchange_http_list(req *r);
egov_err exchange_http_get(req *r);
egov_err exchange_http_add(req *r);
egov_err exchange_http_remove(req *r);
egov_err exchange_http_cert_add(req *r);
egov_err exchange_http_status(req *r);
egov_err exchange_http_trust_add(req *r);

/* ---- commands (cli.c) ------------------------------------------------------------------- */

/* `egov exchange member|subsystem|service|event-type|access|cert|trust
 * ...`; -1 when argv is not one of them. */
int exchange_registry_command(int argc, char **argv, db *d);

#endif
