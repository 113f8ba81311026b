/*
 * fuzz_jwt.c: the strict compact-JWS parser (src/oidc/oidc_jwt_parse.c)
 * and base64url decoder on arbitrary bytes. Parsing must never crash, leak
 * or accept a token whose header does not say ES256 with a kid.
 *
 * Built by `make fuzz-build` (src/oidc/oidc_jwt_parse.c is in FUZZ_LIB).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/oidc_int.h"
#include "core/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char out[OIDC_JWT_MAX];
	jwt_parsed p;
	const char *why = NULL;
	size_t n = 0;

	if (jwt_parse((const char *)data, size, &p, &why) == EGOV_OK) {
		if (!p.payload || !cJSON_IsObject(p.payload) || !p.kid[0] || p.signing_len >= size)
			abort();
		jwt_parsed_release(&p);
	}
	if (b64url_decode((const char *)data, size, out, sizeof out, &n) == EGOV_OK) {
		char back[OIDC_JWT_MAX * 2];
		/* Canonical: decoding then encoding gives the input back. */
		if (n * 4 / 3 + 4 < sizeof back) {
			b64url_encode(out, n, back);
			if (strlen(back) != size || memcmp(back, data, size) != 0)
				abort();
		}
	}
	return 0;
}
