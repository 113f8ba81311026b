/*
 * oidc_jwt_parse.c: base64url and the strict parser of compact JWS tokens,
 * the one parser of outside input in the module (fuzzed by
 * tests/fuzz/fuzz_jwt.c). No cryptography here, so the fuzz target links
 * only the kernel's parsers and cJSON.
 *
 * Invariants: a token is accepted only in its one canonical encoding
 * (no padding, no stray bits, no whitespace); the header names ES256 and a
 * kid, so "none" and HMAC tokens never reach signature checking.
 */
#include <string.h>

#include "core/json.h"
#include "core/limits.h"
#include "oidc/oidc_int.h"

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void oidc_b64url_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url_chars[v >> 18 & 63];
		out[o++] = b64url_chars[v >> 12 & 63];
		out[o++] = b64url_chars[v >> 6 & 63];
		out[o++] = b64url_chars[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url_chars[v >> 18 & 63];
		out[o++] = b64url_chars[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url_chars[v >> 18 & 63];
		out[o++] = b64url_chars[v >> 12 & 63];
		out[o++] = b64url_chars[v >> 6 & 63];
	}
	out[o] = '\0';
}

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

egov_err oidc_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *n)
{
	size_t i, o = 0, need;
	uint32_t acc = 0;
	int bits = 0;

	*n = 0;
	if (len % 4 == 1)
		return EGOV_EINVAL;
	need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (need > outlen)
		return EGOV_ELIMIT;
	for (i = 0; i < len; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			return EGOV_EINVAL;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* Leftover bits must be zero: otherwise two texts decode alike. */
	if (acc != 0)
		return EGOV_EINVAL;
	*n = o;
	return EGOV_OK;
}

static cJSON *decode_json(const char *part, size_t len, const char **why)
{
	unsigned char tmp[OIDC_JWT_MAX];
	size_t n = 0;
	cJSON *j = NULL;
	const char *code;

	if (oidc_b64url_decode(part, len, tmp, sizeof tmp - 1, &n)) {
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
	if (oidc_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - tok), out->sig, sizeof out->sig, &n) || n != 64)
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
