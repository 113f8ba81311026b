/* crypto.c: hashing and randomness for the kernel; see crypto.h. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "core/crypto.h"
#include "core/banned.h"

/* SHA256() looks the algorithm up in OpenSSL 3's provider tables on every
 * call (5 % of a small request's time); fetch it once instead. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void crypto_sha256(const void *data, size_t len, unsigned char out[32])
{
	pthread_once(&sha256_once, sha256_fetch);
	if (!sha256_md || !EVP_Digest(data, len, out, NULL, sha256_md, NULL))
		SHA256(data, len, out);
}

void crypto_sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	int i;

	crypto_sha256(data, len, md);
	for (i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

egov_err crypto_random(void *out, size_t len)
{
	unsigned char *p = out;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return EGOV_EIO;
		}
		p += n;
		len -= (size_t)n;
	}
	return EGOV_OK;
}

bool crypto_streq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}
