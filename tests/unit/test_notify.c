/*
 * test_notify.c: mail formatting (addresses, RFC 2047 headers, dates,
 * bodies, dot-stuffing), SMTP reply parsing, back-off, and the outbox
 * delivery end to end against a scripted SMTP server on loopback: sent,
 * retried after a transient failure, failed at once on a 5xx, failed after
 * max_attempts, and never sent twice.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/db.h"
#include "core/module.h"
#include "core/timeutil.h"
#include "notify/notify.h"
#include "notify/notify_int.h"
#include "testutil.h"
#include "core/banned.h"

/* ---- pure parts ------------------------------------------------------------ */

static void address_parse(void **state)
{
	char a[NOTIFY_ADDR_MAX + 1], n[NOTIFY_NAME_MAX + 1];

	assert_int_equal(notify_address_parse("egov <no-reply@egov.invalid>", a, n), EGOV_OK);
	assert_string_equal(a, "no-reply@egov.invalid");
	assert_string_equal(n, "egov");
	assert_int_equal(notify_address_parse("\"Serviços\" <x@y.mo>", a, n), EGOV_OK);
	assert_string_equal(n, "Serviços");
	assert_int_equal(notify_address_parse("plain@example.org", a, n), EGOV_OK);
	assert_string_equal(a, "plain@example.org");
	assert_string_equal(n, "");
	assert_int_equal(notify_address_parse("no at sign", a, n), EGOV_EINVAL);
	assert_int_equal(notify_address_parse("x <a@b>\r\nBcc: evil@x", a, n), EGOV_EINVAL);
	assert_int_equal(notify_address_parse("x <a@b> trailing", a, n), EGOV_EINVAL);
	assert_int_equal(notify_address_parse("<>", a, n), EGOV_EINVAL);
	assert_true(notify_address_valid("a@b.c"));
	assert_false(notify_address_valid("a@@b"));
	assert_false(notify_address_valid("a b@c"));
	assert_false(notify_address_valid("a@b>\r\nRCPT TO:<c@d"));
	assert_false(notify_address_valid("@b"));
	assert_false(notify_address_valid("a@"));
}

static char *b64dec(const char *s, size_t n)
{
	char *out = calloc(1, n + 4);
	int m = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	assert_true(m >= 0);
	return out;
}

/* Decodes every =?UTF-8?B?...?= word of a header line back to text. */
static void decode_words(const char *hdr, char *out, size_t outlen)
{
	const char *p = hdr;
	size_t o = 0;

	out[0] = '\0';
	while ((p = strstr(p, "=?UTF-8?B?"))) {
		const char *e = strstr(p + 10, "?=");
		size_t n = (size_t)(e - (p + 10));
		char *d = b64dec(p + 10, n);
		/* EVP_DecodeBlock keeps padding bytes as NULs. */
		size_t dl = n / 4 * 3 - (n >= 1 && p[10 + n - 1] == '=') - (n >= 2 && p[10 + n - 2] == '=');
		assert_true(o + dl < outlen);
		memcpy(out + o, d, dl);
		o += dl;
		out[o] = '\0';
		free(d);
		p = e + 2;
	}
}

static void header_encoding(void **state)
{
	buf b;
	char text[1024];
	const char *subj = "驗證您的電子郵件地址 — 澳門特別行政區政府一戶通帳戶的確認郵件，請於二十四小時內完成";

	buf_init(&b, 1 << 16);
	assert_int_equal(notify_header_add(&b, "Subject", "Plain ASCII"), EGOV_OK);
	assert_int_equal(b.len, strlen("Subject: Plain ASCII\r\n"));
	assert_memory_equal(b.data, "Subject: Plain ASCII\r\n", b.len);
	buf_reset(&b);
	assert_int_equal(notify_header_add(&b, "Subject", subj), EGOV_OK);
	assert_int_equal(buf_addc(&b, '\0'), EGOV_OK);
	/* Folded, every physical line within 78 characters, round-trips. */
	for (const char *l = b.data; *l;) {
		const char *e = strstr(l, "\r\n");
		assert_non_null(e);
		assert_true(e - l <= 78);
		l = e + 2;
		if (*l)
			assert_int_equal(*l, ' ');
	}
	assert_non_null(strstr(b.data, "\r\n =?UTF-8?B?"));
	decode_words(b.data, text, sizeof text);
	assert_string_equal(text, subj);
	/* CR/LF in a value can never start a new header. */
	buf_reset(&b);
	assert_int_equal(notify_header_add(&b, "Subject", "Olá\r\nBcc: x@y"), EGOV_OK);
	assert_int_equal(buf_addc(&b, '\0'), EGOV_OK);
	assert_null(strstr(b.data, "Bcc"));
	decode_words(b.data, text, sizeof text);
	assert_string_equal(text, "Olá  Bcc: x@y");
	buf_release(&b);
}

static void dot_stuffing(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"hello", "hello\r\n"},
		{".", "..\r\n"},
		{"a\n.b\n..c\n", "a\r\n..b\r\n...c\r\n"},
		{"a\r\n.\r\nb", "a\r\n..\r\nb\r\n"},
		{"lone\rcr", "lone\r\ncr\r\n"},
		{"x.\n y", "x.\r\n y\r\n"},
		{"", ""},
	};
	buf b;

	buf_init(&b, 4096);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_reset(&b);
		assert_int_equal(notify_dot_stuff(cases[i].in, strlen(cases[i].in), &b), EGOV_OK);
		assert_int_equal(b.len, strlen(cases[i].out));
		assert_memory_equal(b.data, cases[i].out, b.len);
	}
	buf_release(&b);
}

static void reply_parsing(void **state)
{
	bool complete;
	size_t used;
	int code;
	const char *ehlo = "250-mail.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH LOGIN PLAIN\r\nextra";
	const char *p = NULL;

	assert_int_equal(notify_reply_parse("220 ready\r\n", 11, &complete, &used, &code), EGOV_OK);
	assert_true(complete);
	assert_int_equal(used, 11);
	assert_int_equal(code, 220);
	assert_int_equal(notify_reply_parse(ehlo, strlen(ehlo), &complete, &used, &code), EGOV_OK);
	assert_true(complete);
	assert_int_equal(used, strlen(ehlo) - 5);
	assert_int_equal(code, 250);
	/* Not yet complete: continuation only, or a last line without LF. */
	assert_int_equal(notify_reply_parse("250-a\r\n250 b", 12, &complete, &used, &code), EGOV_OK);
	assert_false(complete);
	assert_int_equal(notify_reply_parse("", 0, &complete, &used, &code), EGOV_OK);
	assert_false(complete);
	/* Bare "354\r\n" and bare LF are tolerated. */
	assert_int_equal(notify_reply_parse("354\n", 4, &complete, &used, &code), EGOV_OK);
	assert_true(complete);
	assert_int_equal(code, 354);
	/* Malformed. */
	assert_int_equal(notify_reply_parse("hello\r\n", 7, &complete, &used, &code), EGOV_EINVAL);
	assert_int_equal(notify_reply_parse("25\r\n", 4, &complete, &used, &code), EGOV_EINVAL);
	assert_int_equal(notify_reply_parse("250-a\r\n251 b\r\n", 14, &complete, &used, &code), EGOV_EINVAL);
	assert_int_equal(notify_reply_parse("250+a\r\n", 7, &complete, &used, &code), EGOV_EINVAL);
	assert_int_equal(notify_reply_parse("650 a\r\n", 7, &complete, &used, &code), EGOV_EINVAL);
	/* Extensions. */
	assert_true(notify_reply_has_ext(ehlo, "starttls", NULL));
	assert_true(notify_reply_has_ext(ehlo, "AUTH", &p));
	assert_non_null(strstr(p, "PLAIN"));
	assert_false(notify_reply_has_ext(ehlo, "AUTH=LOGIN", NULL));
	assert_false(notify_reply_has_ext(ehlo, "8BITMIME", NULL));
	assert_false(notify_reply_has_ext(ehlo, "PIPE", NULL));
}

static void message_format(void **state)
{
	buf b;
	char *text;
	notify_message m = {.id = "0190f0c2-0000-7000-8000-000000000001",
			    .from = "澳門政府 <no-reply@gov.mo>",
			    .to = "ana@example.org",
			    .subject = "Verifique o seu endereço",
			    .body = "Olá,\nabra a ligação:\nhttp://x/verify.html?token=abc\n.\n"};
	const char *cte;

	buf_init(&b, NOTIFY_MESSAGE_MAX);
	/* 2026-11-26T12:34:56Z is a Thursday. */
	assert_int_equal(notify_message_format(&m, 1795696496LL * 1000000, &b), EGOV_OK);
	assert_int_equal(buf_addc(&b, '\0'), EGOV_OK);
	assert_non_null(strstr(b.data, "Date: Thu, 26 Nov 2026 12:34:56 +0000\r\n"));
	assert_non_null(strstr(b.data, "From: =?UTF-8?B?"));
	assert_non_null(strstr(b.data, "?= <no-reply@gov.mo>\r\n"));
	assert_non_null(strstr(b.data, "To: ana@example.org\r\n"));
	assert_non_null(strstr(b.data, "Subject: =?UTF-8?B?"));
	assert_non_null(strstr(b.data, "Message-ID: <0190f0c2-0000-7000-8000-000000000001@gov.mo>\r\n"));
	assert_non_null(strstr(b.data, "MIME-Version: 1.0\r\n"));
	assert_non_null(strstr(b.data, "Content-Type: text/plain; charset=utf-8\r\n"));
	cte = strstr(b.data, "Content-Transfer-Encoding: base64\r\n\r\n");
	assert_non_null(cte);
	cte += strlen("Content-Transfer-Encoding: base64\r\n\r\n");
	{
		/* Body lines of at most 76, decoding to the CRLF body. */
		char joined[512] = "";
		size_t o = 0;
		for (const char *l = cte; *l;) {
			const char *e = strstr(l, "\r\n");
			assert_true(e - l <= 76);
			memcpy(joined + o, l, (size_t)(e - l));
			o += (size_t)(e - l);
			l = e + 2;
		}
		text = b64dec(joined, o);
		assert_string_equal(text, "Olá,\r\nabra a ligação:\r\nhttp://x/verify.html?token=abc\r\n.\r\n");
		free(text);
	}
	/* No bare LF anywhere. */
	for (size_t i = 0; i + 1 < b.len; i++)
		if (b.data[i] == '\n')
			assert_int_equal(b.data[i - 1], '\r');

	/* ASCII goes as 7bit, with the From name quoted. */
	buf_reset(&b);
	m.from = "egov <no-reply@egov.invalid>";
	m.subject = "Verify";
	m.body = "Hello\nhttp://x/?t=1";
	assert_int_equal(notify_message_format(&m, 0, &b), EGOV_OK);
	assert_int_equal(buf_addc(&b, '\0'), EGOV_OK);
	assert_non_null(strstr(b.data, "From: \"egov\" <no-reply@egov.invalid>\r\n"));
	assert_non_null(strstr(b.data, "Content-Transfer-Encoding: 7bit\r\n\r\nHello\r\nhttp://x/?t=1\r\n"));

	/* Refused: bad recipient, invalid UTF-8, header injection in to. */
	buf_reset(&b);
	m.to = "x@y\r\nBcc: z@w";
	assert_int_equal(notify_message_format(&m, 0, &b), EGOV_EINVAL);
	m.to = "ana@example.org";
	m.body = "bad \xC3\x28 utf8";
	assert_int_equal(notify_message_format(&m, 0, &b), EGOV_EINVAL);
	m.body = "overlong \xC0\xAF";
	assert_int_equal(notify_message_format(&m, 0, &b), EGOV_EINVAL);
	buf_release(&b);
}

static void backoff(void **state)
{
	assert_int_equal(notify_backoff_ms(1, 1000), 1000);
	assert_int_equal(notify_backoff_ms(2, 1000), 2000);
	assert_int_equal(notify_backoff_ms(5, 1000), 16000);
	assert_int_equal(notify_backoff_ms(80, 60000), 24LL * 3600 * 1000);
	assert_int_equal(notify_backoff_ms(0, 0), 1);
}

/* ---- a scripted SMTP server ------------------------------------------------ */

typedef struct fake_smtp {
	int lfd, port;
	pthread_t thread;
	volatile int rcpt_code;    /* answer to RCPT TO */
	volatile int close_at_once; /* accept and close: a broken server */
	volatile int sessions, delivered;
	char last_data[8192];
	volatile int stop;
} fake_smtp;

static int read_line(int fd, char *out, size_t n)
{
	size_t i = 0;
	char ch;

	while (i + 1 < n) {
		if (recv(fd, &ch, 1, 0) != 1)
			return -1;
		if (ch == '\n')
			break;
		if (ch != '\r')
			out[i++] = ch;
	}
	out[i] = '\0';
	return 0;
}

static void say(int fd, const char *s)
{
	if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0)
		return;
}

static void *fake_run(void *arg)
{
	fake_smtp *f = arg;
	char line[1024];

	for (;;) {
		int fd = accept(f->lfd, NULL, NULL);
		if (fd < 0 || f->stop) {
			if (fd >= 0)
				close(fd);
			break;
		}
		f->sessions++;
		if (f->close_at_once) {
			close(fd);
			continue;
		}
		say(fd, "220 fake ESMTP\r\n");
		while (read_line(fd, line, sizeof line) == 0) {
			if (strncmp(line, "EHLO", 4) == 0) {
				say(fd, "250-fake\r\n250 8BITMIME\r\n");
			} else if (strncmp(line, "MAIL", 4) == 0) {
				say(fd, "250 ok\r\n");
			} else if (strncmp(line, "RCPT", 4) == 0) {
				char r[64];
				snprintf(r, sizeof r, "%d rcpt\r\n", f->rcpt_code);
				say(fd, r);
			} else if (strcmp(line, "DATA") == 0) {
				size_t o = 0;
				say(fd, "354 go\r\n");
				while (read_line(fd, line, sizeof line) == 0 && strcmp(line, ".") != 0) {
					size_t l = strlen(line);
					if (o + l + 2 < sizeof f->last_data) {
						memcpy(f->last_data + o, line, l);
						o += l;
						f->last_data[o++] = '\n';
					}
				}
				f->last_data[o] = '\0';
				f->delivered++;
				say(fd, "250 queued\r\n");
			} else if (strcmp(line, "QUIT") == 0) {
				say(fd, "221 bye\r\n");
				break;
			} else {
				say(fd, "502 no\r\n");
			}
		}
		close(fd);
	}
	return NULL;
}

static void fake_start(fake_smtp *f)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	int one = 1;

	memset(f, 0, sizeof *f);
	f->rcpt_code = 250;
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	getsockname(f->lfd, (struct sockaddr *)&a, &al);
	f->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(fake_smtp *f)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				.sin_port = htons((uint16_t)f->port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	f->stop = 1;
	/* Wake accept() with one last connection. */
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		/* the thread is gone already */
	}
	close(fd);
	pthread_join(f->thread, NULL);
	close(f->lfd);
}

/* ---- the outbox end to end ---------------------------------------------- */

typedef struct fixture {
	char *dir;
	db *d;
	db_conn *c;
	fake_smtp smtp;
	notify_settings s;
} fixture;

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof *fx);
	char url[600], err[256];
	const db_migration *m;
	size_t n;

	fx->dir = test_tmpdir();
	snprintf(url, sizeof url, "sqlite:%s/notify.db", fx->dir);
	if (db_open(url, &fx->d, err, sizeof err) || db_conn_open(fx->d, &fx->c))
		return -1;
	m = notify_module.migrations;
	n = notify_module.nmigrations;
	if (db_migrate(fx->c, "notify", m, n, NULL))
		return -1;
	fake_start(&fx->smtp);
	fx->s = (notify_settings){.smtp_host = "127.0.0.1", .smtp_port = fx->smtp.port,
				  .from = "egov <no-reply@egov.invalid>", .starttls = NOTIFY_TLS_OPPORTUNISTIC,
				  .user = "", .password = "", .poll_ms = 50, .retry_ms = 1, .max_attempts = 3,
				  .timeout_s = 5};
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;

	fake_stop(&fx->smtp);
	db_conn_close(fx->c);
	db_close(fx->d);
	test_rmrf(fx->dir);
	free(fx->dir);
	free(fx);
	return 0;
}

static void queue(fixture *fx, const char *id, const char *to, const char *body)
{
	db_param p[] = {DBP_S(id), DBP_S(to), DBP_S("Assunto"), DBP_S(body), DBP_S("2026-01-01T00:00:00Z")};
	assert_int_equal(db_exec(fx->c, "INSERT INTO notify_outbox (id, to_addr, subject, body, created_at)"
					" VALUES (?, ?, ?, ?, ?)",
				 p, 5, NULL),
			 EGOV_OK);
}

static int64_t col_int(fixture *fx, const char *sql, const char *id)
{
	db_param p[] = {DBP_S(id)};
	int64_t v = -1;
	bool found = false;
	assert_int_equal(db_query_int(fx->c, sql, p, 1, &v, &found), EGOV_OK);
	assert_true(found);
	return v;
}

static void wait_due(void)
{
	usleep(20000); /* longer than retry_ms doubled a few times */
}

static void outbox_sends_once(void **state)
{
	fixture *fx = *state;
	int sent = -1, failed = -1;

	queue(fx, "m1", "ana@example.org", "line one\n.dot line\n");
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(sent, 1);
	assert_int_equal(failed, 0);
	assert_int_equal(fx->smtp.delivered, 1);
	/* The server received the dot-stuffed line and un-stuffs nothing
	 * itself: the wire had "..dot line". */
	assert_non_null(strstr(fx->smtp.last_data, "\n..dot line\n"));
	assert_non_null(strstr(fx->smtp.last_data, "Message-ID: <m1@egov.invalid>"));
	assert_int_equal(col_int(fx, "SELECT sent_at IS NOT NULL FROM notify_outbox WHERE id = ?", "m1"), 1);
	assert_int_equal(col_int(fx, "SELECT attempts FROM notify_outbox WHERE id = ?", "m1"), 1);
	/* Never twice. */
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(sent, 0);
	assert_int_equal(fx->smtp.delivered, 1);
}

static void outbox_retries_transient(void **state)
{
	fixture *fx = *state;
	int sent = -1, failed = -1;

	fx->smtp.rcpt_code = 451;
	fx->s.retry_ms = 3600000;
	queue(fx, "m2", "bo@example.org", "hi");
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 1, &sent, &failed), EGOV_OK);
	assert_int_equal(sent, 0);
	assert_int_equal(failed, 0);
	assert_int_equal(col_int(fx, "SELECT attempts FROM notify_outbox WHERE id = ?", "m2"), 1);
	assert_int_equal(col_int(fx, "SELECT sent_at IS NULL AND failed_at IS NULL FROM notify_outbox WHERE id = ?", "m2"), 1);
	assert_int_equal(col_int(fx, "SELECT last_error LIKE '%451%' FROM notify_outbox WHERE id = ?", "m2"), 1);
	/* Not due again before the back-off. */
	fx->smtp.rcpt_code = 250;
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(sent, 0);
	/* Once due, delivered. */
	assert_int_equal(db_exec(fx->c, "UPDATE notify_outbox SET next_attempt_us = 0", NULL, 0, NULL), EGOV_OK);
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(sent, 1);
	assert_int_equal(col_int(fx, "SELECT attempts FROM notify_outbox WHERE id = ?", "m2"), 2);
}

static void outbox_permanent_fails_at_once(void **state)
{
	fixture *fx = *state;
	int sent = -1, failed = -1;

	fx->smtp.rcpt_code = 550;
	queue(fx, "m3", "nobody@example.org", "hi");
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(failed, 1);
	assert_int_equal(col_int(fx, "SELECT failed_at IS NOT NULL AND attempts = 1 FROM notify_outbox WHERE id = ?", "m3"), 1);
	fx->smtp.rcpt_code = 250;
	wait_due();
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(sent, 0);
	assert_int_equal(fx->smtp.delivered, 0);
}

static void outbox_gives_up_after_max_attempts(void **state)
{
	fixture *fx = *state;
	int sent = -1, failed = -1, i;

	fx->smtp.close_at_once = 1;
	fx->s.retry_ms = 3600000;
	queue(fx, "m4", "cy@example.org", "hi");
	for (i = 0; i < 3; i++) {
		assert_int_equal(db_exec(fx->c, "UPDATE notify_outbox SET next_attempt_us = 0 WHERE failed_at IS NULL",
					 NULL, 0, NULL),
				 EGOV_OK);
		assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
		assert_int_equal(failed, i == 2 ? 1 : 0);
	}
	assert_int_equal(col_int(fx, "SELECT attempts FROM notify_outbox WHERE id = ?", "m4"), 3);
	assert_int_equal(col_int(fx, "SELECT failed_at IS NOT NULL FROM notify_outbox WHERE id = ?", "m4"), 1);
	assert_int_equal(fx->smtp.sessions, 3);
}

static void outbox_connection_refused(void **state)
{
	fixture *fx = *state;
	int sent = -1, failed = -1;
	notify_settings s = fx->s;

	/* A port nobody listens on: the port of a socket just closed. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	s.smtp_port = ntohs(a.sin_port);
	s.retry_ms = 3600000;
	queue(fx, "m5", "di@example.org", "hi");
	assert_int_equal(notify_deliver_due(fx->c, &s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(sent + failed, 0);
	assert_int_equal(col_int(fx, "SELECT last_error LIKE 'connect%' FROM notify_outbox WHERE id = ?", "m5"), 1);
	assert_int_equal(col_int(fx, "SELECT next_attempt_us > 0 FROM notify_outbox WHERE id = ?", "m5"), 1);
}

/* notify_enqueue() writes on the caller's connection and inside its
 * transaction: a rolled-back change queues nothing. */
static void enqueue_in_transaction(void **state)
{
	fixture *fx = *state;
	notify_message m = {.to = "eva@example.org", .subject = "Assunto", .body = "corpo\n",
			    .template_key = "verify_email", .lang = "pt"};
	char id[37] = "";
	int sent = -1, failed = -1;

	assert_int_equal(db_begin(fx->c), EGOV_OK);
	assert_int_equal(notify_enqueue(fx->c, &m, id), EGOV_OK);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(db_rollback(fx->c), EGOV_OK);
	assert_int_equal(col_int(fx, "SELECT COUNT(*) FROM notify_outbox WHERE id = ?", id), 0);

	assert_int_equal(db_begin(fx->c), EGOV_OK);
	assert_int_equal(notify_enqueue(fx->c, &m, id), EGOV_OK);
	assert_int_equal(db_commit(fx->c), EGOV_OK);
	assert_int_equal(col_int(fx, "SELECT COUNT(*) FROM notify_outbox WHERE id = ? AND template = 'verify_email'"
				     " AND lang = 'pt' AND attempts = 0 AND sent_at IS NULL", id),
			 1);
	/* A given id is kept; it is the Message-ID's left part. */
	m.id = "m-given";
	m.template_key = m.lang = NULL;
	assert_int_equal(notify_enqueue(fx->c, &m, NULL), EGOV_OK);
	assert_int_equal(col_int(fx, "SELECT COUNT(*) FROM notify_outbox WHERE id = ? AND template IS NULL", "m-given"),
			 1);
	assert_int_equal(notify_deliver_due(fx->c, &fx->s, 10, &sent, &failed), EGOV_OK);
	assert_int_equal(sent, 2);
	assert_non_null(strstr(fx->smtp.last_data, "Message-ID: <"));

	/* What makes a row unusable is refused, nothing queued. */
	m.id = NULL;
	m.to = "";
	assert_int_equal(notify_enqueue(fx->c, &m, NULL), EGOV_EINVAL);
	m.to = "eva@example.org\r\nBcc: x@example.org";
	assert_int_equal(notify_enqueue(fx->c, &m, NULL), EGOV_EINVAL);
	m.to = "eva@example.org";
	m.subject = "";
	assert_int_equal(notify_enqueue(fx->c, &m, NULL), EGOV_EINVAL);
	m.subject = "Assunto";
	m.body = NULL;
	assert_int_equal(notify_enqueue(fx->c, &m, NULL), EGOV_EINVAL);
	assert_int_equal(col_int(fx, "SELECT COUNT(*) FROM notify_outbox WHERE id <> ?", "-"), 2);
}

static void thread_delivers(void **state)
{
	fixture *fx = *state;
	egov_config cfg;
	char url[600], port[16];
	int i;

	snprintf(url, sizeof url, "sqlite:%s/notify.db", fx->dir);
	snprintf(port, sizeof port, "%d", fx->smtp.port);
	config_init(&cfg);
	assert_int_equal(config_set(&cfg, "mail.smtp_host", "127.0.0.1", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.smtp_port", port, NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.from", "egov <no-reply@egov.invalid>", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.starttls", "off", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.user", "", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.password", "", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.poll_ms", "20", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.retry_ms", "10", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.max_attempts", "3", NULL, 0), EGOV_OK);
	assert_int_equal(config_set(&cfg, "mail.timeout_s", "5", NULL, 0), EGOV_OK);
	assert_int_equal(notify_start(fx->d, &cfg), EGOV_OK);
	assert_int_equal(notify_start(fx->d, &cfg), EGOV_ECONFLICT);
	queue(fx, "t1", "ed@example.org", "hi");
	notify_wake();
	for (i = 0; i < 200 && fx->smtp.delivered < 1; i++)
		usleep(10000);
	notify_stop();
	notify_stop();
	assert_int_equal(fx->smtp.delivered, 1);
	assert_int_equal(config_set(&cfg, "mail.from", "not an address", NULL, 0), EGOV_OK);
	assert_int_equal(notify_start(fx->d, &cfg), EGOV_EINVAL);
	config_release(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(address_parse),
		cmocka_unit_test(header_encoding),
		cmocka_unit_test(dot_stuffing),
		cmocka_unit_test(reply_parsing),
		cmocka_unit_test(message_format),
		cmocka_unit_test(backoff),
		cmocka_unit_test_setup_teardown(outbox_sends_once, setup, teardown),
		cmocka_unit_test_setup_teardown(outbox_retries_transient, setup, teardown),
		cmocka_unit_test_setup_teardown(outbox_permanent_fails_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(outbox_gives_up_after_max_attempts, setup, teardown),
		cmocka_unit_test_setup_teardown(outbox_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(enqueue_in_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(thread_delivers, setup, teardown),
	};
	return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
