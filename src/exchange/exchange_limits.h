/*
 * exchange_limits.h: every limit of the data exchange, in one place, each
 * with the reason for its value (as src/core/limits.h does for the
 * kernel). Going over a limit on outside input is a refusal that names
 * it (a 400, 413 or 502 problem), never a silent truncation; the limits on
 * our own tables and queues say what happens past them.
 *
 * Included by every room of the exchange that bounds something; it
 * depends on nothing but core/limits.h.
 */
#ifndef EGOV_EXCHANGE_LIMITS_H
#define EGOV_EXCHANGE_LIMITS_H

#include "core/limits.h"

/* ---- identifiers and the headers of a call ---------------------------------- */

/* One part of an identifier (INSTANCE, CLASS, CODE, SUBSYSTEM, SERVICE):
 * X-Road's own limit, and short enough that a whole service id stays a
 * sane URL segment, file name and log field. */
#define EXCHANGE_PART_MAX 64
/* A whole identifier, INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE with its NUL:
 * the size of the buffers that hold one. */
#define EXCHANGE_ID_MAX (5 * (EXCHANGE_PART_MAX + 1))
/* X-Road-Id: 1 to 64 of [A-Za-z0-9._:-]. A UUID is 36; the rest is room
 * for a caller's own scheme, and the log indexes it. */
#define EXCHANGE_MSGID_MAX 64
/* X-Egov-Signed-At with its NUL: an RFC 3339 time with milliseconds is
 * 24 bytes; anything longer is not one. */
#define EXCHANGE_SIGNED_AT_MAX 32
/* X-Egov-Signature with its NUL: ES256's 64 raw bytes are 86 characters
 * of base64url. */
#define EXCHANGE_SIG_MAX 128
/* X-Road-Represented-Party and X-Egov-Data-Subject are identifiers;
 * X-Egov-Purpose is a short phrase. They are signed and logged, so a
 * longer one is refused (400 exchange.header_invalid), never cut. */
#define EXCHANGE_PARTY_MAX 256
#define EXCHANGE_PURPOSE_MAX 512
/* A Content-Type kept with an exchange (it is a line of the signed texts):
 * with its NUL, the size of the buffers that hold one. */
#define EXCHANGE_CONTENT_TYPE_MAX 128
/* A provider's problem documents are small; the consumer reads up to this
 * much even when a service's max_body is smaller still. */
#define EXCHANGE_PROBLEM_BODY_MAX (64 * 1024)
/* A service's back-end timeout (ms), as exchange.backend_timeout_ms
 * allows: long enough for a slow register query, short enough that a
 * caller is not left waiting for minutes. */
#define EXCHANGE_TIMEOUT_MIN_MS 10
#define EXCHANGE_TIMEOUT_MAX_MS 600000
/* A service registered without max_body gets 1 MiB, enough for the JSON
 * documents services exchange; larger ones are registered as such. */
#define EXCHANGE_MAX_BODY_DEFAULT (1024 * 1024)

/* ---- keys, certificates and files --------------------------------------------- */

/* One certificate as PEM: a P-256 certificate is under 1 KiB; 16 KiB
 * leaves room for long names and extensions (registry, global
 * configuration, message log alike). */
#define EXCHANGE_PEM_MAX (16 * 1024)
/* A key, certificate or CSR file read by a command or at start. */
#define EXCHANGE_PEM_FILE_MAX (64 * 1024)
/* Verification keys kept by certificate: a configuration holds a few per
 * subsystem; past this the cache starts over rather than grow. */
#define EXCHANGE_VERIFY_CACHE_MAX 4096
/* A path under the data directory. */
#define EXCHANGE_PATH_MAX 4096

/* ---- the global configuration ------------------------------------------------- */

/* The largest signed configuration accepted or built: thousands of
 * subsystems with their certificates and OpenAPI documents. */
#define EXCHANGE_CONF_MAX (64 * 1024 * 1024)
/* Entries of one list of the configuration (members, subsystems, a
 * subsystem's certificates, services, access rights, event types). The
 * document's size above is the real bound; this only keeps a count from
 * being absurd before the entries are allocated. */
#define EXCHANGE_CONF_ITEMS_MAX 1000000
/* A gateway URL of the configuration or the registry: https://HOST:PORT. */
#define EXCHANGE_URL_MAX 255
/* A rule of an access right (its methods or its paths, comma-separated). */
#define EXCHANGE_RULE_MAX 1024
/* A service's title and a member's name: 200 characters of up to 4 bytes. */
#define EXCHANGE_NAME_MAX 800
/* One service's OpenAPI description. */
#define EXCHANGE_OPENAPI_MAX (1024 * 1024)
/* Other instances one instance may trust (federation): every gateway
 * downloads each one's configuration on every refresh and holds it in
 * memory, and X-Road federations join a handful of instances, not
 * hundreds. */
#define EXCHANGE_FEDERATION_MAX 64

/* ---- the registry's admin API ------------------------------------------------------ */

/* A service with its OpenAPI description (up to 1 MiB of JSON, some of it
 * escaped), other items (ids, names, rules) and a certificate or CSR. */
#define EXCHANGE_SERVICE_BODY_MAX (1536 * 1024)
#define EXCHANGE_ITEM_BODY_MAX (16 * 1024)
#define EXCHANGE_CERT_BODY_MAX (64 * 1024)

/* ---- the gateway ------------------------------------------------------------------- */

/* A back-end URL set on a provider gateway. */
#define EXCHANGE_BACKEND_URL_MAX 1024
/* Message ids one shard of the replay window holds (16 shards): about
 * 16 million ids within exchange.clock_skew_s; past it new exchanges are
 * refused (503) rather than replays let through. */
#define EXCHANGE_REPLAY_SHARD_MAX (1u << 20)
/* Refusals waiting to be audited: a flood of bad requests must not grow
 * memory; past it a refusal is logged and its audit record dropped. */
#define EXCHANGE_REFUSALS_QUEUE_MAX 1024
/* Operational figures: series (client, service, side) and statuses per
 * series. Labels are configuration ids, but a configuration may be large;
 * past these the figures go to "other". */
#define EXCHANGE_SERIES_MAX 4096
#define EXCHANGE_STATUSES_MAX 8

/* ---- the message log --------------------------------------------------------------- */

/* Free texts of a record. They come from headers and paths the kernel
 * already bounded; these keep one record from being absurd. */
#define EXLOG_TEXT_MAX 1024
#define EXLOG_PATH_MAX 8192
#define EXLOG_SIG_MAX 128
/* One line of an archive or of `log show`: a record with two bodies at
 * the largest service limit, in base64. */
#define EXLOG_LINE_MAX (256u << 20)
/* A canonical text rebuilt to verify a logged signature. */
#define EXLOG_CANON_MAX (64 * 1024)
/* A TSA's answer is a few kilobytes; more is not a timestamp reply. */
#define EXLOG_TSA_REPLY_MAX (64 * 1024)
/* Certificates remembered as stored; past this every call queues again
 * (harmless: INSERT ... DO NOTHING). */
#define EXLOG_KNOWN_CERTS_MAX 1024

/* ---- publish/subscribe -------------------------------------------------------------- */

/* An event type name: one identifier part. */
#define PUBSUB_NAME_MAX EXCHANGE_PART_MAX
/* Event ids are message ids of the exchange that published them; they
 * travel in a URL path segment: 1 to 128 of [A-Za-z0-9_.:-]. */
#define PUBSUB_EVENT_ID_MAX 128
/* An event's JSON and an event type's schema: documents, not files. */
#define PUBSUB_EVENT_MAX (1024 * 1024)
#define PUBSUB_SCHEMA_MAX (256 * 1024)
/* Subscription TTL: seconds an event stays deliverable, at most 30 days
 * (GovStack's default is 3600). */
#define PUBSUB_TTL_MAX (30 * 86400)
/* A push URL a subscriber configures. */
#define PUBSUB_URL_MAX 2048
/* Pushes in flight from one gateway at once: each holds an event in
 * memory; more are claimed as these finish. */
#define PUBSUB_INFLIGHT_MAX 64
/* Why a push attempt failed, as kept in the outbox. */
#define PUBSUB_WHY_MAX 512
/* A subscriber's answer to a push (its back-end's, signed). */
#define PUBSUB_RESPONSE_MAX (1024 * 1024)
/* The arena one room request is bound in: an event and its copy. */
#define PUBSUB_BIND_ARENA_MAX (PUBSUB_EVENT_MAX * 2 + 64 * 1024)

#endif
