/*
 * b64url.c: base64url (RFC 4648 section 5) without padding, the one copy
 * for the project (JWS, tokens, exchange signatures). No dependencies, so
 * the fuzz targets link it.
 */
#include <stdint.h>
#include <string.h>

#include "core/b64url.h"
#include "core/banned.h"

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void b64url_encode(const unsigned char *in, size_t n, char *out)
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

egov_err b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen, size_t *n)
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
