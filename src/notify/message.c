/*
 * message.c: formatting of outgoing mail, with no I/O: addresses, RFC 2047
 * headers, RFC 5322 dates, MIME bodies, dot-stuffing and retry delays.
 *
 * Invariants: everything written is CRLF-terminated 7-bit text with lines
 * of at most 998 bytes (headers are folded, non-ASCII bodies are base64),
 * so the message passes any SMTP server without 8BITMIME; no CR or LF from
 * a value can start a new header line.
 */
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/utf8.h"
#include "notify/notify_int.h"
#include "core/banned.h"

/* Longest run of header text bytes put into one encoded-word: 39 bytes are
 * 52 base64 characters, so "=?UTF-8?B?...?=" stays within 64 and a folded
 * line within the 78 that RFC 5322 recommends. */
#define WORD_BYTES 39

int notify_address_valid(const char *s)
{
	size_t n = strlen(s), i, at = 0, ats = 0;

	if (n == 0 || n > NOTIFY_ADDR_MAX)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= ' ' || ch == 0x7f || ch == '<' || ch == '>' || ch == '"' || ch == '(' || ch == ')' ||
		    ch == ',' || ch == ';' || ch == '\\')
			return 0;
		if (ch == '@') {
			ats++;
			at = i;
		}
	}
	return ats == 1 && at > 0 && at + 1 < n;
}

egov_err notify_address_parse(const char *from, char addr[NOTIFY_ADDR_MAX + 1], char name[NOTIFY_NAME_MAX + 1])
{
	const char *lt, *gt, *p;
	size_t nlen, alen;
	egov_err err = EGOV_EINVAL;

	addr[0] = name[0] = '\0';
	for (p = from; *p; p++) {
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			goto out;
	}
	lt = strchr(from, '<');
	if (!lt) {
		if (!notify_address_valid(from))
			goto out;
		snprintf(addr, NOTIFY_ADDR_MAX + 1, "%s", from);
		err = EGOV_OK;
		goto out;
	}
	gt = strchr(lt, '>');
	if (!gt || gt[1] != '\0')
		goto out;
	alen = (size_t)(gt - lt - 1);
	if (alen == 0 || alen > NOTIFY_ADDR_MAX)
		goto out;
	memcpy(addr, lt + 1, alen);
	addr[alen] = '\0';
	if (!notify_address_valid(addr))
		goto out;
	/* The display name, trimmed and unquoted; quotes inside are refused
	 * rather than escaped, since nobody needs them in a sender name. */
	p = from;
	while (p < lt && *p == ' ')
		p++;
	nlen = (size_t)(lt - p);
	while (nlen && p[nlen - 1] == ' ')
		nlen--;
	if (nlen >= 2 && p[0] == '"' && p[nlen - 1] == '"') {
		p++;
		nlen -= 2;
	}
	if (nlen > NOTIFY_NAME_MAX || memchr(p, '"', nlen) || memchr(p, '<', nlen) || memchr(p, '>', nlen))
		goto out;
	memcpy(name, p, nlen);
	name[nlen] = '\0';
	err = EGOV_OK;
out:
	if (err)
		addr[0] = name[0] = '\0';
	return err;
}

static int needs_encoding(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < ' ' || ch >= 0x7f)
			return 1;
	}
	return 0;
}

static egov_err add_base64(buf *out, const unsigned char *p, size_t n)
{
	unsigned char tmp[4 * ((WORD_BYTES + 2) / 3) + 1];
	egov_err err = EGOV_OK;
	size_t i, chunk;

	/* 57 input bytes make one 76-character line; callers wrap. */
	for (i = 0; i < n && !err; i += chunk) {
		chunk = n - i < WORD_BYTES ? n - i : WORD_BYTES;
		int m = EVP_EncodeBlock(tmp, p + i, (int)chunk);
		err = buf_add(out, tmp, (size_t)m);
	}
	return err;
}

egov_err notify_header_add(buf *out, const char *name, const char *value)
{
	size_t n = strlen(value), i = 0, take;
	unsigned char clean[WORD_BYTES];
	egov_err err;

	if ((err = buf_adds(out, name)) || (err = buf_adds(out, ": ")))
		goto out;
	if (!needs_encoding(value)) {
		err = buf_adds(out, value);
		goto crlf;
	}
	while (i < n) {
		size_t j, k = 0;
		take = n - i < WORD_BYTES ? n - i : WORD_BYTES;
		/* Back up to a UTF-8 sequence boundary (never below one byte). */
		while (take > 1 && i + take < n && ((unsigned char)value[i + take] & 0xC0) == 0x80)
			take--;
		for (j = 0; j < take; j++) {
			unsigned char ch = (unsigned char)value[i + j];
			clean[k++] = (ch == '\r' || ch == '\n' || ch == '\t') ? ' ' : ch;
		}
		if (i > 0 && (err = buf_adds(out, "\r\n ")))
			goto out;
		if ((err = buf_adds(out, "=?UTF-8?B?")) || (err = add_base64(out, clean, k)) ||
		    (err = buf_adds(out, "?=")))
			goto out;
		i += take;
	}
crlf:
	err = buf_adds(out, "\r\n");
out:
	return err;
}

egov_err notify_dot_stuff(const char *text, size_t len, buf *out)
{
	size_t i = 0;
	egov_err err = EGOV_OK;
	int bol = 1;

	while (i < len && !err) {
		char ch = text[i];
		if (bol && ch == '.' && (err = buf_addc(out, '.')))
			break;
		bol = 0;
		if (ch == '\r' && i + 1 < len && text[i + 1] == '\n') {
			i++;
			ch = '\n';
		}
		if (ch == '\r' || ch == '\n') {
			err = buf_add(out, "\r\n", 2);
			bol = 1;
		} else {
			err = buf_addc(out, ch);
		}
		i++;
	}
	if (!err && !bol)
		err = buf_add(out, "\r\n", 2);
	return err;
}

void notify_date_format(int64_t us, char out[40])
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 40, "Thu, 01 Jan 1970 00:00:00 +0000");
		return;
	}
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}


/* ASCII without controls other than CR, LF and TAB, lines <= 998 bytes:
 * can go as 7bit. */
static int body_is_7bit(const char *s, size_t n)
{
	size_t i, line = 0;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\n' || ch == '\r') {
			line = 0;
			continue;
		}
		if (ch >= 0x7f || (ch < ' ' && ch != '\t') || ++line > NOTIFY_LINE_MAX)
			return 0;
	}
	return 1;
}

/* The body with CRLF line breaks, as base64 in 76-character lines. */
static egov_err add_body_base64(buf *out, const char *body, size_t n)
{
	buf crlf;
	unsigned char line[80];
	egov_err err;
	size_t i;

	buf_init(&crlf, NOTIFY_MESSAGE_MAX);
	for (i = 0, err = EGOV_OK; i < n && !err; i++) {
		if (body[i] == '\r' && i + 1 < n && body[i + 1] == '\n')
			continue;
		err = (body[i] == '\n' || body[i] == '\r') ? buf_add(&crlf, "\r\n", 2) : buf_addc(&crlf, body[i]);
	}
	for (i = 0; !err && i < crlf.len; i += 57) {
		size_t chunk = crlf.len - i < 57 ? crlf.len - i : 57;
		int m = EVP_EncodeBlock(line, (const unsigned char *)crlf.data + i, (int)chunk);
		if (!(err = buf_add(out, line, (size_t)m)))
			err = buf_add(out, "\r\n", 2);
	}
	buf_release(&crlf);
	return err;
}

egov_err notify_message_format(const notify_message *m, int64_t now_us, buf *out)
{
	char addr[NOTIFY_ADDR_MAX + 1], name[NOTIFY_NAME_MAX + 1], date[40];
	const char *domain;
	size_t blen = strlen(m->body);
	buf from;
	egov_err err;

	buf_init(&from, 4096);
	if ((err = notify_address_parse(m->from, addr, name)))
		goto out;
	if (!notify_address_valid(m->to) || !utf8_valid(m->body, blen) ||
	    !utf8_valid_str(m->subject) || strpbrk(m->id, "\r\n<>@ ")) {
		err = EGOV_EINVAL;
		goto out;
	}
	domain = strchr(addr, '@') + 1;
	notify_date_format(now_us, date);
	/* From: an encoded display name must stand outside the angle brackets,
	 * so the header is assembled by hand. */
	if (name[0] && needs_encoding(name)) {
		if ((err = notify_header_add(&from, "X", name)))
			goto out;
		from.len -= 2; /* drop CRLF */
		if ((err = buf_addf(out, "From: %.*s <%s>\r\n", (int)(from.len - 3), from.data + 3, addr)))
			goto out;
	} else if (name[0]) {
		if ((err = buf_addf(out, "From: \"%s\" <%s>\r\n", name, addr)))
			goto out;
	} else if ((err = buf_addf(out, "From: %s\r\n", addr))) {
		goto out;
	}
	if ((err = buf_addf(out, "Date: %s\r\nTo: %s\r\n", date, m->to)) ||
	    (err = notify_header_add(out, "Subject", m->subject)) ||
	    (err = buf_addf(out, "Message-ID: <%s@%s>\r\nMIME-Version: 1.0\r\n"
				 "Content-Type: text/plain; charset=utf-8\r\n",
			    m->id, domain)))
		goto out;
	if (body_is_7bit(m->body, blen)) {
		if ((err = buf_adds(out, "Content-Transfer-Encoding: 7bit\r\n\r\n")))
			goto out;
		for (size_t i = 0; i < blen && !err; i++) {
			if (m->body[i] == '\r' && i + 1 < blen && m->body[i + 1] == '\n')
				continue;
			err = (m->body[i] == '\n' || m->body[i] == '\r') ? buf_add(out, "\r\n", 2)
									 : buf_addc(out, m->body[i]);
		}
		if (!err && (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0))
			err = buf_add(out, "\r\n", 2);
	} else if (!(err = buf_adds(out, "Content-Transfer-Encoding: base64\r\n\r\n"))) {
		err = add_body_base64(out, m->body, blen);
	}
out:
	buf_release(&from);
	return err;
}

int64_t notify_backoff_ms(int attempts, int retry_ms)
{
	const int64_t cap = 24LL * 3600 * 1000;
	int64_t d = retry_ms > 0 ? retry_ms : 1;
	int i;

	for (i = 1; i < attempts && d < cap; i++)
		d *= 2;
	return d < cap ? d : cap;
}
