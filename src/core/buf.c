/* buf.c: growable buffer with a cap; see buf.h for the contract. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/banned.h"

void buf_init(buf *b, size_t cap_max)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->cap_max = cap_max;
}

void buf_release(buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

void buf_reset(buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *buf_detach(buf *b, size_t *len_out)
{
	char *p = b->data;
	if (!p) {
		p = calloc(1, 1);
	}
	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

static egov_err grow(buf *b, size_t extra)
{
	size_t need, n;
	char *p;

	if (extra > b->cap_max || b->len > b->cap_max - extra)
		return EGOV_ELIMIT;
	need = b->len + extra + 1;
	if (need <= b->alloc)
		return EGOV_OK;
	/* Start at 512: most JSON answers fit, saving the 64-128-256 regrowth. */
	n = b->alloc ? b->alloc : 512;
	while (n < need)
		n = n > (SIZE_MAX / 2) ? need : n * 2;
	if (n > b->cap_max + 1)
		n = b->cap_max + 1;
	p = realloc(b->data, n);
	if (!p)
		return EGOV_ENOMEM;
	b->data = p;
	b->alloc = n;
	return EGOV_OK;
}

egov_err buf_add(buf *b, const void *data, size_t len)
{
	egov_err err = grow(b, len);
	if (err)
		return err;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return EGOV_OK;
}

egov_err buf_adds(buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

egov_err buf_addc(buf *b, char c)
{
	return buf_add(b, &c, 1);
}

egov_err buf_vaddf(buf *b, const char *fmt, va_list ap)
{
	va_list cp;
	size_t room = b->alloc > b->len ? b->alloc - b->len : 0;
	int n;
	egov_err err;

	/* Try in place first: most appends fit, and then one pass suffices. */
	va_copy(cp, ap);
	n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, cp);
	va_end(cp);
	if (n < 0)
		return EGOV_EINTERNAL;
	if ((size_t)n < room) {
		if (b->len + (size_t)n > b->cap_max) {
			b->data[b->len] = '\0';
			return EGOV_ELIMIT;
		}
		b->len += (size_t)n;
		return EGOV_OK;
	}
	if (room)
		b->data[b->len] = '\0';
	err = grow(b, (size_t)n);
	if (err)
		return err;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return EGOV_OK;
}

egov_err buf_addf(buf *b, const char *fmt, ...)
{
	va_list ap;
	egov_err err;

	va_start(ap, fmt);
	err = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return err;
}

egov_err buf_add_json_str(buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	const unsigned char *run = p;
	egov_err err = EGOV_OK;

	for (; *p; p++) {
		const char *esc = NULL;
		char u[6];
		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		if ((err = buf_add(b, run, (size_t)(p - run))))
			return err;
		switch (*p) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		default:
			u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0';
			u[4] = hex[*p >> 4]; u[5] = hex[*p & 15];
			err = buf_add(b, u, 6);
			break;
		}
		if (esc)
			err = buf_adds(b, esc);
		if (err)
			return err;
		run = p + 1;
	}
	return buf_add(b, run, (size_t)(p - run));
}

egov_err buf_add_html(buf *b, const char *s)
{
	const char *run = s, *p = s;
	egov_err err;

	for (; *p; p++) {
		const char *esc;
		switch (*p) {
		case '&': esc = "&amp;"; break;
		case '<': esc = "&lt;"; break;
		case '>': esc = "&gt;"; break;
		case '"': esc = "&quot;"; break;
		case '\'': esc = "&#39;"; break;
		default: continue;
		}
		if ((err = buf_add(b, run, (size_t)(p - run))) || (err = buf_adds(b, esc)))
			return err;
		run = p + 1;
	}
	return buf_add(b, run, (size_t)(p - run));
}

egov_err buf_add_hex(buf *b, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	egov_err err = grow(b, n * 2);
	size_t i;

	if (err)
		return err;
	for (i = 0; i < n; i++) {
		b->data[b->len++] = hex[p[i] >> 4];
		b->data[b->len++] = hex[p[i] & 15];
	}
	b->data[b->len] = '\0';
	return EGOV_OK;
}
