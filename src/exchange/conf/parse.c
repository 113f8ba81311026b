/*
 * parse.c: a signed global configuration, checked and bound.
 *
 * A document is a compact JWS (docs/exchange.md): a header naming ES256,
 * the type egov-globalconf and the signer's certificate in x5c, a
 * payload, a signature. Nothing of it is believed before the signature
 * verified against the pinned certificate (exchange.central_cert on a
 * gateway), and the header's certificate must be that certificate: the
 * copy is there for offline readers, never as a source of trust.
 *
 * Both JSON parts are bound through the kernel's binder (core/json.h,
 * arrays of objects for the lists) into the structs below, then copied
 * into the configuration's arena and indexed. Members the tables do not
 * name are passed over, so a newer central node may add some. Each
 * subsystem's TLS pins are computed here, once per configuration, rather
 * than on every call to its gateway.
 *
 * A service's OpenAPI description is taken as the JSON text the central
 * node sent, not bound: it is a document of its owner's, with as many
 * members as it needs.
 *
 * The "federation" list names the other instances the registry trusts:
 * each with its central node's URL and configuration signing certificate,
 * whose SHA-256 must be the one published beside it. The configuration
 * remembers the SHA-256 of the certificate that signed it (its signer), so
 * a federated one is attached only while the trusting registry still
 * names that very certificate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/b64url.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "exchange/conf/conf_int.h"
#include "exchange/keys/keys.h"
#include "core/banned.h"

/* ---- the bound document -------------------------------------------------------- */

typedef struct jws_header {
	const char *alg, *typ;
	json_str_array x5c;
} jws_header;

static const json_field header_fields[] = {
	{.name = "alg", .type = JSON_T_STRING, .offset = offsetof(jws_header, alg), .required = true},
	{.name = "typ", .type = JSON_T_STRING, .offset = offsetof(jws_header, typ), .required = true},
	{.name = "x5c", .type = JSON_T_STRING_ARRAY, .offset = offsetof(jws_header, x5c), .required = true,
	 .max_len = 8},
};

typedef struct b_id {
	const char *id;
} b_id;

static const json_field id_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(b_id, id), .required = true,
	 .max_len = EXCHANGE_ID_MAX},
};

typedef struct b_cert {
	const char *usage, *serial, *sha256, *pem;
} b_cert;

static const json_field cert_fields[] = {
	{.name = "usage", .type = JSON_T_STRING, .offset = offsetof(b_cert, usage), .required = true, .max_len = 8},
	{.name = "serial", .type = JSON_T_STRING, .offset = offsetof(b_cert, serial), .required = true,
	 .max_len = sizeof(((exchange_cert *)0)->serial) - 1},
	{.name = "sha256", .type = JSON_T_STRING, .offset = offsetof(b_cert, sha256), .required = true, .max_len = 64},
	{.name = "pem", .type = JSON_T_STRING, .offset = offsetof(b_cert, pem), .required = true,
	 .max_len = EXCHANGE_PEM_MAX},
};

typedef struct b_sub {
	const char *id, *gateway;
	json_obj_array certs;
} b_sub;

static const json_field sub_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(b_sub, id), .required = true,
	 .max_len = EXCHANGE_ID_MAX},
	{.name = "gateway", .type = JSON_T_STRING, .offset = offsetof(b_sub, gateway), .required = true,
	 .max_len = EXCHANGE_URL_MAX},
	{.name = "certs", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(b_sub, certs), .required = true,
	 .fields = cert_fields, .nfields = sizeof cert_fields / sizeof cert_fields[0], .elem_size = sizeof(b_cert),
	 .max_len = EXCHANGE_CONF_ITEMS_MAX},
};

typedef struct b_service {
	const char *id, *title, *log;
	int64_t max_body, timeout_ms;
} b_service;

static const json_field service_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(b_service, id), .required = true,
	 .max_len = EXCHANGE_ID_MAX},
	{.name = "title", .type = JSON_T_STRING, .offset = offsetof(b_service, title), .max_len = EXCHANGE_NAME_MAX},
	{.name = "log", .type = JSON_T_STRING, .offset = offsetof(b_service, log), .required = true, .max_len = 8},
	{.name = "max_body", .type = JSON_T_INT, .offset = offsetof(b_service, max_body), .required = true, .min = 1,
	 .max = INT64_MAX},
	/* Optional: configurations before it was published lack it. */
	{.name = "timeout_ms", .type = JSON_T_INT, .offset = offsetof(b_service, timeout_ms),
	 .min = EXCHANGE_TIMEOUT_MIN_MS, .max = EXCHANGE_TIMEOUT_MAX_MS},
};

typedef struct b_access {
	const char *client, *service, *methods, *paths;
} b_access;

static const json_field access_fields[] = {
	{.name = "client", .type = JSON_T_STRING, .offset = offsetof(b_access, client), .required = true,
	 .max_len = EXCHANGE_ID_MAX},
	{.name = "service", .type = JSON_T_STRING, .offset = offsetof(b_access, service), .required = true,
	 .max_len = EXCHANGE_ID_MAX},
	{.name = "methods", .type = JSON_T_STRING, .offset = offsetof(b_access, methods), .required = true,
	 .max_len = EXCHANGE_RULE_MAX},
	{.name = "paths", .type = JSON_T_STRING, .offset = offsetof(b_access, paths), .required = true,
	 .max_len = EXCHANGE_RULE_MAX},
};

typedef struct b_fed {
	const char *instance, *url, *sha256, *pem;
} b_fed;

static const json_field fed_fields[] = {
	{.name = "instance", .type = JSON_T_STRING, .offset = offsetof(b_fed, instance), .required = true,
	 .max_len = EXCHANGE_PART_MAX},
	{.name = "url", .type = JSON_T_STRING, .offset = offsetof(b_fed, url), .required = true,
	 .max_len = EXCHANGE_URL_MAX},
	{.name = "sha256", .type = JSON_T_STRING, .offset = offsetof(b_fed, sha256), .required = true, .max_len = 64},
	{.name = "pem", .type = JSON_T_STRING, .offset = offsetof(b_fed, pem), .required = true,
	 .max_len = EXCHANGE_PEM_MAX},
};

typedef struct b_doc {
	const char *instance, *generated_at, *expires_at, *tsa_url;
	int64_t version;
	json_obj_array members, subsystems, services, access, event_types, federation;
} b_doc;

#define LIST(nm, member, tbl, elem, req)                                                                            \
	{.name = nm, .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(b_doc, member), .required = req, .fields = tbl, \
	 .nfields = sizeof tbl / sizeof tbl[0], .elem_size = sizeof(elem), .max_len = EXCHANGE_CONF_ITEMS_MAX}

static const json_field doc_fields[] = {
	{.name = "instance", .type = JSON_T_STRING, .offset = offsetof(b_doc, instance), .required = true,
	 .max_len = EXCHANGE_PART_MAX},
	{.name = "version", .type = JSON_T_INT, .offset = offsetof(b_doc, version), .required = true},
	{.name = "generated_at", .type = JSON_T_STRING, .offset = offsetof(b_doc, generated_at), .required = true},
	{.name = "expires_at", .type = JSON_T_STRING, .offset = offsetof(b_doc, expires_at), .required = true},
	{.name = "tsa_url", .type = JSON_T_STRING, .offset = offsetof(b_doc, tsa_url)},
	LIST("members", members, id_fields, b_id, true),
	LIST("subsystems", subsystems, sub_fields, b_sub, true),
	LIST("services", services, service_fields, b_service, true),
	LIST("access", access, access_fields, b_access, true),
	/* Optional: configurations before pub/sub lack it. */
	LIST("event_types", event_types, id_fields, b_id, false),
	/* Optional: configurations before federation lack it. */
	{.name = "federation", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(b_doc, federation),
	 .fields = fed_fields, .nfields = sizeof fed_fields / sizeof fed_fields[0], .elem_size = sizeof(b_fed),
	 .max_len = EXCHANGE_FEDERATION_MAX},
};

/* ---- from the bound document into the configuration -------------------------------- */

/* Each list's entries are checked as docs/exchange.md describes them; a
 * central node never makes one that is not (EGOV_EINVAL). Strings point
 * into cf's arena already (bound there). */

static egov_err take_subsystem(exchange_conf *cf, const b_sub *in, exchange_subsystem *sub)
{
	const b_cert *bc = in->certs.items;
	exchange_cert *out;
	const char **tls;
	size_t k, ntls = 0;
	buf pins;
	egov_err err;

	if (!exchange_id_valid(in->id, EXCHANGE_ID_SUBSYSTEM))
		return EGOV_EINVAL;
	memcpy(sub->id, in->id, strlen(in->id) + 1);
	sub->gateway_url = in->gateway;
	sub->ncerts = in->certs.n;
	if (!(out = arena_alloc(&cf->a, (sub->ncerts + 1) * sizeof *out)) ||
	    !(tls = arena_alloc(&cf->a, (sub->ncerts + 1) * sizeof *tls)))
		return EGOV_ENOMEM;
	for (k = 0; k < sub->ncerts; k++) {
		if ((strcmp(bc[k].usage, "sign") != 0 && strcmp(bc[k].usage, "tls") != 0) ||
		    !exchange_sha256_hex_valid(bc[k].sha256))
			return EGOV_EINVAL;
		memcpy(out[k].usage, bc[k].usage, strlen(bc[k].usage) + 1);
		memcpy(out[k].serial, bc[k].serial, strlen(bc[k].serial) + 1);
		memcpy(out[k].sha256, bc[k].sha256, 65);
		out[k].pem = bc[k].pem;
		if (strcmp(bc[k].usage, "tls") == 0)
			tls[ntls++] = bc[k].pem;
	}
	sub->certs = out;
	sub->tls_pins = NULL;
	buf_init(&pins, (ntls + 1) * 64);
	err = ntls ? exchange_pins_add(tls, ntls, &pins) : EGOV_ENOTFOUND;
	if (!err && !(sub->tls_pins = arena_strdup(&cf->a, pins.data)))
		err = EGOV_ENOMEM;
	buf_release(&pins);
	return err == EGOV_ENOTFOUND ? EGOV_OK : err;
}

/* A trusted instance: another instance than this one's, a central node's
 * URL, and a certificate whose SHA-256 is the one published with it. */
static egov_err take_federation(exchange_conf *cf, const b_fed *in, exchange_federation *f)
{
	if (!exchange_id_part_valid(in->instance) || strcmp(in->instance, cf->instance) == 0 ||
	    !exchange_conf_url_valid(in->url) || !exchange_sha256_hex_valid(in->sha256) ||
	    !exchange_pem_matches(in->sha256, in->pem))
		return EGOV_EINVAL;
	memcpy(f->instance, in->instance, strlen(in->instance) + 1);
	memcpy(f->sha256, in->sha256, 65);
	f->url = in->url;
	f->pem = in->pem;
	return EGOV_OK;
}

/* The OpenAPI descriptions, in the services' order, as the text the
 * central node sent. */
static egov_err take_openapi(exchange_conf *cf, const cJSON *payload)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(payload, "services"), *it;
	size_t i = 0;

	cJSON_ArrayForEach(it, arr)
	{
		const cJSON *oa = cJSON_GetObjectItemCaseSensitive(it, "openapi");
		char *text;

		if (i >= cf->nservices)
			return EGOV_EINVAL;
		if (cJSON_IsObject(oa)) {
			if (!(text = cJSON_PrintUnformatted(oa)))
				return EGOV_ENOMEM;
			cf->services[i].openapi = arena_strdup(&cf->a, text);
			cJSON_free(text);
			if (!cf->services[i].openapi)
				return EGOV_ENOMEM;
		}
		i++;
	}
	return EGOV_OK;
}

static egov_err take(exchange_conf *cf, const b_doc *d, const cJSON *payload)
{
	const b_id *ids;
	const b_sub *subs = d->subsystems.items;
	const b_service *svcs = d->services.items;
	const b_access *acc = d->access.items;
	const b_fed *feds = d->federation.items;
	size_t i;
	egov_err err;

	if (time_parse_rfc3339(d->generated_at, &cf->generated_us) ||
	    time_parse_rfc3339(d->expires_at, &cf->expires_us))
		return EGOV_EINVAL;
	memcpy(cf->instance, d->instance, strlen(d->instance) + 1);
	cf->version = d->version;
	cf->tsa_url = d->tsa_url ? d->tsa_url : "";

	cf->nmembers = d->members.n;
	cf->nsubs = d->subsystems.n;
	cf->nservices = d->services.n;
	cf->naccess = d->access.n;
	cf->nevent_types = d->event_types.n;
	cf->nfeds = d->federation.n;
	if (!(cf->feds = arena_alloc(&cf->a, (cf->nfeds + 1) * sizeof *cf->feds)) ||
	    !(cf->members = arena_alloc(&cf->a, (cf->nmembers + 1) * sizeof *cf->members)) ||
	    !(cf->subs = arena_alloc(&cf->a, (cf->nsubs + 1) * sizeof *cf->subs)) ||
	    !(cf->services = arena_alloc(&cf->a, (cf->nservices + 1) * sizeof *cf->services)) ||
	    !(cf->access = arena_alloc(&cf->a, (cf->naccess + 1) * sizeof *cf->access)) ||
	    !(cf->event_types = arena_alloc(&cf->a, (cf->nevent_types + 1) * sizeof *cf->event_types)))
		return EGOV_ENOMEM;

	for (i = 0, ids = d->members.items; i < cf->nmembers; i++) {
		if (!exchange_id_valid(ids[i].id, EXCHANGE_ID_MEMBER))
			return EGOV_EINVAL;
		cf->members[i] = ids[i].id;
	}
	for (i = 0; i < cf->nsubs; i++)
		if ((err = take_subsystem(cf, &subs[i], &cf->subs[i])))
			return err;
	for (i = 0; i < cf->nservices; i++) {
		exchange_service *sv = &cf->services[i];
		if (!exchange_id_valid(svcs[i].id, EXCHANGE_ID_SERVICE) ||
		    (strcmp(svcs[i].log, "full") != 0 && strcmp(svcs[i].log, "digest") != 0))
			return EGOV_EINVAL;
		memcpy(sv->id, svcs[i].id, strlen(svcs[i].id) + 1);
		memcpy(sv->log_mode, svcs[i].log, strlen(svcs[i].log) + 1);
		sv->max_body = svcs[i].max_body;
		sv->timeout_ms = svcs[i].timeout_ms;
		sv->title = svcs[i].title ? svcs[i].title : "";
		sv->openapi = NULL;
	}
	for (i = 0; i < cf->naccess; i++) {
		exchange_access *ac = &cf->access[i];
		if (!exchange_id_valid(acc[i].client, EXCHANGE_ID_SUBSYSTEM) ||
		    !exchange_id_valid(acc[i].service, EXCHANGE_ID_SERVICE) || !exchange_methods_valid(acc[i].methods) ||
		    !exchange_paths_valid(acc[i].paths))
			return EGOV_EINVAL;
		memcpy(ac->client, acc[i].client, strlen(acc[i].client) + 1);
		memcpy(ac->service, acc[i].service, strlen(acc[i].service) + 1);
		ac->methods = acc[i].methods;
		ac->paths = acc[i].paths;
	}
	for (i = 0, ids = d->event_types.items; i < cf->nevent_types; i++) {
		if (!exchange_id_valid(ids[i].id, EXCHANGE_ID_SERVICE))
			return EGOV_EINVAL;
		cf->event_types[i] = ids[i].id;
	}
	for (i = 0; i < cf->nfeds; i++)
		if ((err = take_federation(cf, &feds[i], &cf->feds[i])))
			return err;
	if ((err = take_openapi(cf, payload)))
		return err;
	return exchange_conf_index(cf);
}

/* ---- the signed document ---------------------------------------------------------------- */

/* One base64url part of the JWS, checked (UTF-8, depth) and parsed; NULL
 * when it is not JSON. The caller deletes the tree. */
static cJSON *decode_json_part(const char *s, size_t len)
{
	unsigned char *raw = malloc(len / 4 * 3 + 3);
	size_t n = 0;
	cJSON *j = NULL;

	if (raw && !b64url_decode(s, len, raw, len / 4 * 3 + 3, &n) &&
	    !json_precheck((const char *)raw, n, EGOV_JSON_DEPTH_MAX))
		j = cJSON_ParseWithLength((const char *)raw, n);
	free(raw);
	return j;
}

/* Whether the header's first x5c certificate (base64 DER) is pin_der. */
static bool x5c_is(const char *b64, const unsigned char *pin_der, size_t pin_len)
{
	size_t bl = strlen(b64), n;
	unsigned char *der = malloc(bl / 4 * 3 + 3);
	int got;
	bool same = false;

	if (der && (got = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)bl)) >= 0) {
		n = (size_t)got - (bl >= 1 && b64[bl - 1] == '=') - (bl >= 2 && b64[bl - 2] == '=');
		same = n == pin_len && memcmp(der, pin_der, n) == 0;
	}
	free(der);
	return same;
}

/* The header: ES256, egov-globalconf, and x5c the pinned certificate. */
static bool header_ok(const char *part, size_t len, const char *pinned_pem)
{
	jws_header h = {0};
	unsigned char *pin = NULL;
	cJSON *tree = decode_json_part(part, len);
	arena a;
	int pin_len = 0;
	bool ok = false;

	arena_init(&a, 64 * 1024);
	if (tree && !json_bind_tree(&a, tree, header_fields, sizeof header_fields / sizeof header_fields[0],
				    JSON_BIND_SKIP_UNKNOWN, &h, NULL) &&
	    strcmp(h.alg, "ES256") == 0 && strcmp(h.typ, "egov-globalconf") == 0 && h.x5c.n >= 1 &&
	    (pin = exchange_pem_der(pinned_pem, &pin_len)))
		ok = x5c_is(h.x5c.items[0], pin, (size_t)pin_len);
	OPENSSL_free(pin);
	cJSON_Delete(tree);
	arena_release(&a);
	return ok;
}

egov_err exchange_conf_parse(const char *jws, size_t len, const char *pinned_pem, const char *instance,
			     int64_t now_us, exchange_conf **out, const char **why)
{
	const char *dot1, *dot2;
	cJSON *payload = NULL;
	char *signing = NULL, *sig = NULL;
	exchange_conf *cf = NULL;
	b_doc doc = {0};
	egov_err err = EGOV_EAUTH;

	*out = NULL;
	*why = "exchange.conf_signature";
	if (!jws || len == 0 || len > EXCHANGE_CONF_MAX || memchr(jws, '\0', len) || !pinned_pem)
		goto out;
	dot1 = memchr(jws, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - jws)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - jws)))
		goto out;
	if (!header_ok(jws, (size_t)(dot1 - jws), pinned_pem))
		goto out;
	if (!(signing = strndup(jws, (size_t)(dot2 - jws))) ||
	    !(sig = strndup(dot2 + 1, len - (size_t)(dot2 + 1 - jws)))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	if (exchange_verify(pinned_pem, signing, (size_t)(dot2 - jws), sig))
		goto out;

	err = EGOV_EINVAL;
	*why = "exchange.conf_invalid";
	if (!(payload = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1))))
		goto out;
	if (!(cf = exchange_conf_new(EXCHANGE_CONF_MAX * 2))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	err = json_bind_tree(&cf->a, payload, doc_fields, sizeof doc_fields / sizeof doc_fields[0],
			     JSON_BIND_SKIP_UNKNOWN, &doc, NULL);
	if (err == EGOV_ELIMIT)
		err = EGOV_EINVAL; /* bigger than a configuration may be */
	if (err || (err = take(cf, &doc, payload)))
		goto out;
	err = EGOV_EINVAL;
	if (instance && strcmp(cf->instance, instance) != 0) {
		*why = "exchange.conf_instance";
		goto out;
	}
	if (now_us && now_us >= cf->expires_us) {
		*why = "exchange.conf_expired";
		goto out;
	}
	{
		int dlen = 0;
		unsigned char *der = exchange_pem_der(pinned_pem, &dlen);
		if (!der) {
			err = EGOV_ENOMEM;
			goto out;
		}
		crypto_sha256_hex(der, (size_t)dlen, cf->signer);
		OPENSSL_free(der);
	}
	*out = cf;
	cf = NULL;
	*why = NULL;
	err = EGOV_OK;
out:
	exchange_conf_put(cf);
	cJSON_Delete(payload);
	free(signing);
	free(sig);
	return err;
}
