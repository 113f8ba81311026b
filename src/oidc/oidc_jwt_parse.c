/*
 * oidc_jwt_parse.c: the strict parser of compact JWS tokens (base64url is
 * core/b64url.h),
 * the one parser of outside input in the module (fuzzed by
 * tests/fuzz/fuzz_jwt.c). No cryptography here, so the fuzz target links
 * only the kernel's parsers and cJSON.
 *
 * Invariants: a token is accepted only in its one canonical encoding
 * (no padding, no stray bits, no whitespace); the header names ES256 and a
 * kid, so "none" and HMAC tokens never reach signature checking.
 */
#include <string.h>

#include "core/b64url.h"
#include "core/json.h"
#include "core/limits.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

static cJSON *decode_json(const char *part, size_t len, const char **why)
{
	unsigned char tmp[OIDC_JWT_MAX];
	size_t n = 0;
	cJSON *j = NULL;
	const char *code;

	if (b64url_decode(part, len, tmp, sizeof tmp - 1, &n)) {
		*why = "jwt.base64";
		return NULL;
	}
	tmp[n] = '\0';
	if (memchr(tmp, '\0', n)) {
		*why = "jwt.json";
		return NULL;
	}
	if ((code = json_precheck((const char *)tmp, n, EGOV_JSON_DEPTH_MAX))) {
		*why = "jwt.json";
		return NULL;
	}
	/* The length includes the NUL: cJSON wants to see it to accept the end. */
	j = cJSON_ParseWithLengthOpts((const char *)tmp, n + 1, NULL, 1);
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		*why = "jwt.json";
		return NULL;
	}
	return j;
}

/* Refuses duplicate member names at the top level: which one a reader
 * takes would differ between implementations. */
static int has_duplicates(const cJSON *o)
{
	const cJSON *a, *b;

	for (a = o->child; a; a = a->next)
		for (b = a->next; b; b = b->next)
			if (a->string && b->string && strcmp(a->string, b->string) == 0)
				return 1;
	return 0;
}

egov_err jwt_parse(const char *tok, size_t len, jwt_parsed *out, const char **why)
{
	const char *d1, *d2;
	cJSON *hdr = NULL, *pl = NULL;
	const cJSON *alg, *kid, *typ;
	size_t n = 0;
	egov_err err = EGOV_EAUTH;

	memset(out, 0, sizeof *out);
	*why = "jwt.malformed";
	if (!tok || len == 0 || len > OIDC_JWT_MAX || memchr(tok, '\0', len))
		goto out;
	d1 = memchr(tok, '.', len);
	if (!d1)
		goto out;
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
		goto out;
	if (d1 == tok || d2 == d1 + 1 || d2 + 1 == tok + len)
		goto out;
	if (!(hdr = decode_json(tok, (size_t)(d1 - tok), why)))
		goto out;
	*why = "jwt.header";
	if (has_duplicates(hdr) || cJSON_GetObjectItemCaseSensitive(hdr, "crit"))
		goto out;
	alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
	if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "ES256") != 0) {
		*why = "jwt.alg";
		goto out;
	}
	kid = cJSON_GetObjectItemCaseSensitive(hdr, "kid");
	if (!cJSON_IsString(kid) || !kid->valuestring[0] || strlen(kid->valuestring) > OIDC_KID_MAX) {
		*why = "jwt.kid";
		goto out;
	}
	typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");
	if (typ && (!cJSON_IsString(typ) || strlen(typ->valuestring) >= sizeof out->typ))
		goto out;
	if (!(pl = decode_json(d1 + 1, (size_t)(d2 - d1 - 1), why)))
		goto out;
	*why = "jwt.payload";
	if (has_duplicates(pl))
		goto out;
	*why = "jwt.signature";
	if (b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), out->sig, sizeof out->sig, &n) || n != 64)
		goto out;
	memcpy(out->kid, kid->valuestring, strlen(kid->valuestring) + 1);
	if (typ)
		memcpy(out->typ, typ->valuestring, strlen(typ->valuestring) + 1);
	out->signing_len = (size_t)(d2 - tok);
	out->payload = pl;
	pl = NULL;
	*why = NULL;
	err = EGOV_OK;
out:
	cJSON_Delete(hdr);
	cJSON_Delete(pl);
	return err;
}

void jwt_parsed_release(jwt_parsed *p)
{
	if (!p)
		return;
	cJSON_Delete(p->payload);
	p->payload = NULL;
}
