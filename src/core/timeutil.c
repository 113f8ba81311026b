/* timeutil.c: RFC 3339 formatting and parsing, UUIDv7; see timeutil.h. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "core/banned.h"

int64_t time_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char *put(char *p, int v, int width)
{
	int i;
	for (i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + width;
}

void time_format_rfc3339(int64_t us, int frac_digits, char out[32])
{
	time_t secs = (time_t)(us / 1000000);
	int64_t frac = us % 1000000;
	struct tm tm;
	char *p = out;

	if (frac < 0) {
		frac += 1000000;
		secs -= 1;
	}
	gmtime_r(&secs, &tm);
	p = put(p, (tm.tm_year + 1900) % 10000, 4);
	*p++ = '-';
	p = put(p, tm.tm_mon + 1, 2);
	*p++ = '-';
	p = put(p, tm.tm_mday, 2);
	*p++ = 'T';
	p = put(p, tm.tm_hour, 2);
	*p++ = ':';
	p = put(p, tm.tm_min, 2);
	*p++ = ':';
	p = put(p, tm.tm_sec, 2);
	if (frac_digits == 6) {
		*p++ = '.';
		p = put(p, (int)frac, 6);
	} else if (frac_digits == 3) {
		*p++ = '.';
		p = put(p, (int)(frac / 1000), 3);
	}
	*p++ = 'Z';
	*p = '\0';
}

static int digits(const char *s, int n, int *out)
{
	int v = 0, i;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

static int64_t days_from_civil(int y, int m, int d)
{
	/* Howard Hinnant's algorithm: days since 1970-01-01. */
	int era, yoe, doy, doe;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t)era * 146097 + doe - 719468;
}

egov_err time_parse_rfc3339(const char *s, int64_t *us_out)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0, dim;
	int64_t frac_us = 0, t;
	const char *p;

	if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || digits(s + 11, 2, &h) || s[13] != ':' ||
	    digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
		return EGOV_EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || h > 23 || mi > 59 || se > 59)
		return EGOV_EINVAL;
	dim = mdays[mo - 1] + (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	if (d < 1 || d > dim)
		return EGOV_EINVAL;
	p = s + 19;
	if (*p == '.') {
		int n = 0;
		int64_t scale = 100000;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (++n > 9)
				return EGOV_EINVAL;
			frac_us += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
		if (n == 0)
			return EGOV_EINVAL;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return EGOV_EINVAL;
		p += 6;
	} else {
		return EGOV_EINVAL;
	}
	if (*p)
		return EGOV_EINVAL;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	t -= sign * (oh * 3600 + om * 60);
	*us_out = t * 1000000 + frac_us;
	return EGOV_OK;
}

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid_last_ms;
static unsigned uuid_seq;

egov_err uuid_v7(char out[37])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	int64_t ms = time_now_us() / 1000;
	unsigned seq;
	int i, j;

	if (crypto_random(b + 6, 10))
		return EGOV_EIO;
	/* Monotonic within the process: same millisecond -> 12-bit counter in
	 * rand_a, so ids sort by creation order. */
	pthread_mutex_lock(&uuid_lock);
	if (ms <= uuid_last_ms) {
		ms = uuid_last_ms;
		if (++uuid_seq > 0xfff) {
			ms = ++uuid_last_ms;
			uuid_seq = 0;
		}
	} else {
		uuid_last_ms = ms;
		uuid_seq = 0;
	}
	seq = uuid_seq;
	pthread_mutex_unlock(&uuid_lock);
	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (unsigned char)(0x70 | ((seq >> 8) & 0x0f));
	b[7] = (unsigned char)(seq & 0xff);
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	for (i = 0, j = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[j++] = '-';
		out[j++] = hex[b[i] >> 4];
		out[j++] = hex[b[i] & 15];
	}
	out[36] = '\0';
	return EGOV_OK;
}

int uuid_valid(const char *s)
{
	int i;
	for (i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return 0;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
			return 0;
		}
	}
	return s[36] == '\0';
}
