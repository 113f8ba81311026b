/*
 * chainlog_hash.c: the chain log's record hash and its hex form
 * (chainlog.h), defined once so that writing and verifying can never
 * disagree: SHA-256 over the previous hash as 32 raw bytes, then seq and
 * each hashed column, in descriptor order, as an 8-byte big-endian length
 * and its bytes (integers as decimal text).
 */
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "core/chainlog.h"
#include "core/banned.h"

egov_err chainlog_hasher_init(chainlog_hasher *h)
{
	h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	h->ctx = EVP_MD_CTX_new();
	h->owns = true;
	if (!h->md || !h->ctx) {
		chainlog_hasher_release(h);
		return EGOV_ENOMEM;
	}
	return EGOV_OK;
}

void chainlog_hasher_release(chainlog_hasher *h)
{
	if (h->owns) {
		EVP_MD_CTX_free(h->ctx);
		EVP_MD_free(h->md);
	}
	h->ctx = NULL;
	h->md = NULL;
	h->owns = false;
}

static int hash_field(EVP_MD_CTX *ctx, const char *s, size_t n)
{
	unsigned char len[8];
	uint64_t v = n;
	int i;

	for (i = 7; i >= 0; i--) {
		len[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
	return EVP_DigestUpdate(ctx, len, 8) && EVP_DigestUpdate(ctx, s, n);
}

/* Decimal text of v, as snprintf("%" PRId64) would write it. */
static size_t format_int(int64_t v, char out[24])
{
	char tmp[24];
	size_t n = 0, i = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		out[i++] = '-';
	while (n)
		out[i++] = tmp[--n];
	out[i] = '\0';
	return i;
}

egov_err chainlog_hash(const chainlog_desc *d, chainlog_hasher *h, const unsigned char prev[CHAINLOG_HASH_LEN],
		       int64_t seq, const db_param *vals, const char *time, unsigned char out[CHAINLOG_HASH_LEN])
{
	EVP_MD_CTX *ctx = h->ctx;
	unsigned int outlen = 0;
	const char *s;
	char num[24];
	size_t i, n;

	if (!EVP_DigestInit_ex(ctx, h->md ? h->md : EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, prev, CHAINLOG_HASH_LEN))
		return EGOV_EINTERNAL;
	n = format_int(seq, num);
	if (!hash_field(ctx, num, n))
		return EGOV_EINTERNAL;
	for (i = 0; i < d->ncols; i++) {
		switch (d->cols[i].kind) {
		case CHAINLOG_STORED:
			continue;
		case CHAINLOG_INT:
			if (vals[i].type != DBP_INT)
				return EGOV_EINVAL;
			n = format_int(vals[i].i, num);
			s = num;
			break;
		case CHAINLOG_TIME:
			s = time ? time : vals[i].type == DBP_TEXT ? vals[i].p : NULL;
			if (!s)
				return EGOV_EINVAL;
			n = strlen(s);
			break;
		default:
			if (vals[i].type != DBP_TEXT || !vals[i].p)
				return EGOV_EINVAL;
			s = vals[i].p;
			n = strlen(s);
			break;
		}
		if (!hash_field(ctx, s, n))
			return EGOV_EINTERNAL;
	}
	if (!EVP_DigestFinal_ex(ctx, out, &outlen) || outlen != CHAINLOG_HASH_LEN)
		return EGOV_EINTERNAL;
	return EGOV_OK;
}

void chainlog_hex_encode(const unsigned char in[CHAINLOG_HASH_LEN], char out[CHAINLOG_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < CHAINLOG_HASH_LEN; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[CHAINLOG_HEX_LEN] = '\0';
}

/* Digit values for lower-case hex, 0 for anything else; 1 is added so that
 * 0 can mean "not a digit". A table, as branching on random hex digits
 * mispredicts about every other character and dominated verification. */
static const unsigned char hex_plus1[256] = {
	['0'] = 1,  ['1'] = 2,	['2'] = 3,  ['3'] = 4,	['4'] = 5,  ['5'] = 6,	['6'] = 7,  ['7'] = 8,
	['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

bool chainlog_hex_decode(const char *hex, unsigned char out[CHAINLOG_HASH_LEN])
{
	const unsigned char *h = (const unsigned char *)hex;
	unsigned bad = 0, hi, lo;
	int i;

	if (!hex || strnlen(hex, CHAINLOG_HEX_LEN + 1) != CHAINLOG_HEX_LEN)
		return false;
	for (i = 0; i < CHAINLOG_HASH_LEN; i++) {
		hi = hex_plus1[h[2 * i]];
		lo = hex_plus1[h[2 * i + 1]];
		bad |= (hi == 0) | (lo == 0);
		out[i] = (unsigned char)((hi - 1) << 4 | ((lo - 1) & 0xf));
	}
	return !bad;
}
