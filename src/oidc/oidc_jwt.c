/*
 * oidc_jwt.c: ES256 signing and verification of compact JWS tokens, the
 * DER <-> raw (r||s) conversion JOSE needs, registered-claim checks, PKCE
 * and the module's clock.
 *
 * Invariants: only P-256 keys and SHA-256 (ES256) are used; a signature
 * is checked before any claim is believed; OpenSSL errors are errors, never
 * a "valid".
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "oidc/oidc_int.h"
#include "core/banned.h"

static int64_t (*clock_fn)(void);

int64_t oidc_now(void)
{
	return clock_fn ? clock_fn() : time_now_us() / 1000000;
}

void oidc_set_clock(int64_t (*now_s)(void))
{
	clock_fn = now_s;
}

egov_err oidc_random_token(char out[OIDC_TOKEN_LEN + 1])
{
	unsigned char r[32];
	egov_err err;

	if ((err = crypto_random(r, sizeof r)))
		return err;
	b64url_encode(r, sizeof r, out);
	OPENSSL_cleanse(r, sizeof r);
	return EGOV_OK;
}

egov_err jwt_sig_der_to_raw(const unsigned char *der, size_t derlen, unsigned char raw[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = NULL;
	const BIGNUM *r = NULL, *s = NULL;
	egov_err err = EGOV_EINVAL;

	if (!der || derlen == 0 || derlen > 80)
		goto out;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (!sig || p != der + derlen)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_num_bytes(r) > 32 || BN_num_bytes(s) > 32)
		goto out;
	if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32)
		goto out;
	err = EGOV_OK;
out:
	ECDSA_SIG_free(sig);
	return err;
}

egov_err jwt_sig_raw_to_der(const unsigned char raw[64], unsigned char *der, size_t derlen, size_t *outlen)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
	unsigned char *p = der;
	int n;
	egov_err err = EGOV_ENOMEM;

	*outlen = 0;
	if (!sig || !r || !s)
		goto out;
	if (!ECDSA_SIG_set0(sig, r, s))
		goto out;
	r = s = NULL; /* owned by sig now */
	n = i2d_ECDSA_SIG(sig, NULL);
	if (n <= 0 || (size_t)n > derlen) {
		err = EGOV_ELIMIT;
		goto out;
	}
	n = i2d_ECDSA_SIG(sig, &p);
	if (n <= 0)
		goto out;
	*outlen = (size_t)n;
	err = EGOV_OK;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return err;
}

/* A signing context per thread for the key it last signed with: OpenSSL 3
 * looks up the provider's ECDSA implementation and copies the key into a
 * new context for every EVP_DigestSignInit (measured about a quarter of a
 * signature). The context keeps its own reference to the key, so a key
 * retired meanwhile stays valid until the thread signs with another. */
static pthread_key_t sign_tls;
static pthread_once_t sign_once = PTHREAD_ONCE_INIT;
static bool sign_tls_ok;

static void sign_ctx_free(void *p)
{
	EVP_PKEY_CTX_free(p);
}

static void sign_tls_init(void)
{
	sign_tls_ok = pthread_key_create(&sign_tls, sign_ctx_free) == 0;
}

/* The calling thread's context for key (NULL when out of memory). */
static EVP_PKEY_CTX *sign_ctx(EVP_PKEY *key)
{
	EVP_PKEY_CTX *pc;

	pthread_once(&sign_once, sign_tls_init);
	pc = sign_tls_ok ? pthread_getspecific(sign_tls) : NULL;
	if (pc && EVP_PKEY_CTX_get0_pkey(pc) == key)
		return pc;
	EVP_PKEY_CTX_free(pc);
	if (sign_tls_ok)
		pthread_setspecific(sign_tls, NULL);
	if (!(pc = EVP_PKEY_CTX_new(key, NULL)))
		return NULL;
	if (EVP_PKEY_sign_init(pc) != 1) {
		EVP_PKEY_CTX_free(pc);
		return NULL;
	}
	if (sign_tls_ok)
		pthread_setspecific(sign_tls, pc);
	return pc;
}

egov_err jwt_sign(EVP_PKEY *key, const char *kid, const char *typ, const char *payload_json, buf *out)
{
	char hdr[160], *b64 = NULL;
	size_t plen = strlen(payload_json), hlen, start = out->len, derlen = 0;
	unsigned char der[80], raw[64];
	char sigb64[90];
	unsigned char digest[32];
	EVP_PKEY_CTX *pc;
	egov_err err = EGOV_ENOMEM;
	int n;

	n = snprintf(hdr, sizeof hdr, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"%s\"}", kid, typ);
	if (n < 0 || (size_t)n >= sizeof hdr) {
		err = EGOV_EINVAL;
		goto out;
	}
	hlen = (size_t)n;
	if (!(b64 = malloc(plen / 3 * 4 + 8)))
		goto out;
	{
		char hb64[220];
		b64url_encode((const unsigned char *)hdr, hlen, hb64);
		if ((err = buf_adds(out, hb64)) || (err = buf_addc(out, '.')))
			goto out;
	}
	b64url_encode((const unsigned char *)payload_json, plen, b64);
	if ((err = buf_adds(out, b64)))
		goto out;
	err = EGOV_EINTERNAL;
	if (!(pc = sign_ctx(key)))
		goto out;
	crypto_sha256(out->data + start, out->len - start, digest);
	derlen = sizeof der;
	if (EVP_PKEY_sign(pc, der, &derlen, digest, sizeof digest) != 1)
		goto out;
	if ((err = jwt_sig_der_to_raw(der, derlen, raw)))
		goto out;
	b64url_encode(raw, sizeof raw, sigb64);
	if ((err = buf_addc(out, '.')) || (err = buf_adds(out, sigb64)))
		goto out;
	err = EGOV_OK;
out:
	if (err && out->data) {
		out->len = start;
		out->data[start] = '\0';
	}
	free(b64);
	return err;
}

egov_err jwt_verify_sig(const char *tok, const jwt_parsed *p, EVP_PKEY *key)
{
	unsigned char der[80];
	size_t derlen = 0;
	EVP_MD_CTX *md = NULL;
	egov_err err = EGOV_EAUTH;

	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 256)
		goto out;
	if (jwt_sig_raw_to_der(p->sig, der, sizeof der, &derlen))
		goto out;
	if (!(md = EVP_MD_CTX_new()))
		goto out;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
		goto out;
	if (EVP_DigestVerify(md, der, derlen, (const unsigned char *)tok, p->signing_len) == 1)
		err = EGOV_OK;
out:
	EVP_MD_CTX_free(md);
	return err;
}

static int num_claim(const cJSON *payload, const char *name, int64_t *v)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(payload, name);

	if (!j)
		return 0;
	if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 1e12)
		return -1;
	*v = (int64_t)j->valuedouble;
	return 1;
}

egov_err jwt_check_claims(const cJSON *payload, const char *iss, const char *aud, int64_t now, const char **why)
{
	const cJSON *j;
	int64_t exp = 0, nbf = 0, iat = 0;
	int rc;

	*why = "jwt.exp";
	if (num_claim(payload, "exp", &exp) != 1)
		return EGOV_EAUTH;
	*why = "jwt.expired";
	if (exp + OIDC_LEEWAY_S <= now)
		return EGOV_EAUTH;
	*why = "jwt.nbf";
	if ((rc = num_claim(payload, "nbf", &nbf)) < 0 || (rc == 1 && nbf > now + OIDC_LEEWAY_S))
		return EGOV_EAUTH;
	*why = "jwt.iat";
	if ((rc = num_claim(payload, "iat", &iat)) < 0 || (rc == 1 && iat > now + OIDC_LEEWAY_S))
		return EGOV_EAUTH;
	*why = "jwt.iss";
	j = cJSON_GetObjectItemCaseSensitive(payload, "iss");
	if (!cJSON_IsString(j) || strcmp(j->valuestring, iss) != 0)
		return EGOV_EAUTH;
	if (aud) {
		*why = "jwt.aud";
		j = cJSON_GetObjectItemCaseSensitive(payload, "aud");
		if (cJSON_IsString(j)) {
			if (strcmp(j->valuestring, aud) != 0)
				return EGOV_EAUTH;
		} else if (cJSON_IsArray(j)) {
			const cJSON *e;
			int found = 0;
			cJSON_ArrayForEach(e, j) {
				if (cJSON_IsString(e) && strcmp(e->valuestring, aud) == 0)
					found = 1;
			}
			if (!found)
				return EGOV_EAUTH;
		} else {
			return EGOV_EAUTH;
		}
	}
	*why = NULL;
	return EGOV_OK;
}

void oidc_pkce_s256(const char *verifier, char challenge[44])
{
	unsigned char h[32];

	crypto_sha256(verifier, strlen(verifier), h);
	b64url_encode(h, sizeof h, challenge);
}

int oidc_pkce_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return 0;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '.' || c == '_' || c == '~'))
			return 0;
		if (n >= OIDC_PKCE_MAX)
			return 0;
	}
	return n >= OIDC_PKCE_MIN;
}
