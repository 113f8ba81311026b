/*
 * wire.h: the exchange's wire format, shared by every room: identifiers,
 * the headers and paths of a call, the canonical texts that are signed,
 * the rules of an access right, and the problem documents gateways send
 * each other. docs/exchange.md describes them.
 *
 *   id.c       identifiers (MO/GOV/DSAJ[/SUBSYSTEM[/SERVICE]])
 *   wire.c     the parsing of outside input and the signed texts, as pure
 *              functions (buf, arena, json writer and utf8 only): the
 *              fuzz target tests/fuzz/fuzz_exchange.c runs them too
 *   problem.c  a problem document built to be signed before it is sent
 *   yaml.c     a JSON document written as YAML (getOpenAPI's text/yaml)
 *
 * Nothing here keeps state; everything is safe from any thread.
 */
#ifndef EGOV_EXCHANGE_WIRE_WIRE_H
#define EGOV_EXCHANGE_WIRE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "exchange/exchange_limits.h"

/* ---- identifiers (id.c) ------------------------------------------------------ */

typedef enum exchange_id_kind {
	EXCHANGE_ID_MEMBER = 3,    /* INSTANCE/CLASS/CODE */
	EXCHANGE_ID_SUBSYSTEM = 4, /* INSTANCE/CLASS/CODE/SUBSYSTEM */
	EXCHANGE_ID_SERVICE = 5,   /* INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE */
} exchange_id_kind;

/* Whether s is a well-formed identifier of that kind: each part 1 to
 * EXCHANGE_PART_MAX of [A-Za-z0-9_.-]. */
bool exchange_id_valid(const char *s, exchange_id_kind kind);
/* Whether s is one part of an identifier: 1 to EXCHANGE_PART_MAX of
 * [A-Za-z0-9_.-] (an instance, a member class or code, a subsystem or
 * service code). */
bool exchange_id_part_valid(const char *s);
/* Copies the first n parts of id into out (e.g. the member of a subsystem).
 * EGOV_EINVAL if id has fewer parts. */
egov_err exchange_id_prefix(const char *id, int n, char out[EXCHANGE_ID_MAX]);
/* Writes the parts of id as the members GovStack names them (instanceId,
 * memberClass, memberCode, applicationCode, serviceCode) into the object
 * w is in. */
void exchange_id_json(jw *w, const char *id);
/* Whether id names a thing of instance (its first part). */
bool exchange_id_in_instance(const char *id, const char *instance);

/* ---- the headers and path of a call (wire.c) --------------------------------- */

bool exchange_msgid_valid(const char *s);
/* Free text in a header: at most max bytes of UTF-8, no control
 * characters (it goes into a signed line-based text and into the log). */
bool exchange_text_valid(const char *s, size_t max);
/* Exactly 64 lower-case hex digits (a SHA-256 as the exchange writes it). */
bool exchange_sha256_hex_valid(const char *s);
/* Splits a router {*rest} value (decoded segments joined by '/') in place
 * into at most max parts; returns how many. */
size_t exchange_split_rest(char *rest, const char **parts, size_t max);
/* Joins parts[0..n) with '/'; false if it does not fit. */
bool exchange_join_id(const char *const *parts, size_t n, char out[EXCHANGE_ID_MAX]);
/* The raw (still percent-encoded) path-and-query of target after its first
 * nsegs segments: what is signed and forwarded. "/" (plus the query) when
 * nothing follows; NULL when target has fewer segments or a is full. */
const char *exchange_raw_tail(arena *a, const char *target, int nsegs);
/* Whether the nid segments of target (a raw request target) after its
 * first skip are each non-empty. The router reads "a//b" as "a/b", but
 * an identifier part may not be empty: such a path is malformed, not
 * another identifier. Segments target does not have are not checked. */
bool exchange_raw_parts_nonempty(const char *target, int skip, int nid);
/* "/" plus parts[skip..nparts) joined by '/': the decoded path that access
 * rules are matched against (a decoded '?' written back as "%3F", so that
 * it is never read as the start of a query). */
const char *exchange_decoded_tail(arena *a, const char *const *parts, size_t nparts, size_t skip);
/* The shape of the signature headers of a signed message: a valid message
 * id, a signed-at that fits (parsed later), a signer certificate hash (64
 * lowercase hex) and a base64url signature that fits. */
bool exchange_sig_headers_valid(const char *mid, const char *signed_at, const char *cert, const char *sig);

/* ---- the canonical texts (wire.c) ---------------------------------------------- */

/* The canonical request or response text of docs/exchange.md, built into
 * out (reset first). EGOV_EINVAL when a field holds a line break (two
 * different exchanges would sign alike) or a status is not three digits. */
typedef struct exchange_canon_req {
	const char *message_id, *client, *service, *method, *path, *content_type, *represented_party,
		*data_subject, *purpose, *signed_at, *body_sha256;
} exchange_canon_req;
typedef struct exchange_canon_resp {
	const char *message_id, *service, *content_type, *request_sig, *signed_at, *body_sha256;
	int status;
} exchange_canon_resp;
egov_err exchange_canon_request(const exchange_canon_req *c, buf *out);
egov_err exchange_canon_response(const exchange_canon_resp *c, buf *out);

/* ---- access rules (wire.c) ------------------------------------------------------ */

/* The shape of a rule as registered: methods "*" or a list like "GET,POST";
 * paths "*" or exact paths and prefixes ending in a slash and a star. */
bool exchange_methods_valid(const char *s);
bool exchange_paths_valid(const char *s);
/* Whether method is in a list like "GET,POST" or "*"; whether path (a
 * query after '?' is ignored) matches "*", an exact path or a prefix
 * ending in a slash and a star. A path with a ".." segment never matches. */
bool exchange_rule_method_allowed(const char *list, const char *method);
bool exchange_rule_path_allowed(const char *list, const char *path);
/* A gateway's address as registered: https://HOST[:PORT], nothing after. */
bool exchange_gateway_url_valid(const char *s);
/* Two gateway URLs are the same modulo case and a trailing '/'. */
bool exchange_url_eq(const char *a, const char *b);
/* A central node's base URL as a trusting registry publishes it for its
 * gateways: http:// or https://, a host[:port] and an optional path, no
 * query, fragment, user part, space or control character, at most
 * EXCHANGE_URL_MAX bytes. */
bool exchange_conf_url_valid(const char *s);

/* ---- content negotiation (wire.c) ----------------------------------------------- */

/* Which of offers[0..n) (media types "type/subtype", in the server's order
 * of preference) an Accept header value asks for (RFC 9110 12.5.1): each
 * offer takes the q of the most specific media range that matches it (the
 * type and subtype, else the type with a star, else the star alone;
 * case-insensitive), the highest q above 0 wins and a tie goes to the
 * earlier offer. accept NULL or empty: offer 0.
 * -1 when nothing offered is acceptable (the caller answers 406). Ranges
 * with a q that is not a qvalue are passed over. */
int exchange_accept_pick(const char *accept, const char *const *offers, size_t n);

/* ---- YAML (yaml.c) -------------------------------------------------------------- */

/* The JSON text json (len bytes, a document this node already checked)
 * written as a YAML 1.2 document into out (reset first), emitted by
 * libyaml: object members in their order, strings that a YAML reader
 * would take for something else (true, no, null, 1e3, ~, "") quoted, so
 * that the YAML reads back as the same JSON value. EGOV_EINVAL when json
 * does not parse, EGOV_ELIMIT / EGOV_ENOMEM when out is full. */
egov_err exchange_json_to_yaml(const char *json, size_t len, buf *out);

/* ---- problem documents (problem.c) ---------------------------------------------- */

/* A problem document as the kernel's resp_problem() writes it, into out
 * (reset first), so that a gateway can sign it before it is sent: the
 * title in lang from the catalogues, detail, field, instance and
 * request_id only when not NULL. */
typedef struct exchange_problem {
	int status;
	const char *code, *lang, *field, *detail, *instance, *request_id;
} exchange_problem;
egov_err exchange_problem_json(const exchange_problem *p, buf *out);

#endif
