/*
 * smtp.c: an SMTP client (RFC 5321) for one message per connection: EHLO
 * (HELO as fallback), STARTTLS through OpenSSL (RFC 3207), AUTH PLAIN or
 * LOGIN (RFC 4954), MAIL/RCPT/DATA with dot-stuffing, QUIT.
 *
 * Invariants: every read and write is bounded by mail.timeout_s (socket
 * timeouts, and a non-blocking connect with poll); a reply is capped at
 * NOTIFY_REPLY_MAX bytes; credentials are only sent over TLS or to a
 * loopback server, and wiped from memory afterwards; with starttls =
 * required the server's certificate must verify for smtp_host.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "notify/notify_int.h"
#include "core/banned.h"

egov_err notify_reply_parse(const char *data, size_t len, bool *complete, size_t *consumed, int *code)
{
	size_t pos = 0;
	int first = -1;
	egov_err err = EGOV_OK;

	*complete = false;
	*consumed = 0;
	*code = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t llen;
		int c;
		char sep;
		if (!nl)
			break; /* the line is still arriving */
		llen = (size_t)(nl - (data + pos));
		if (llen && data[pos + llen - 1] == '\r')
			llen--;
		if (llen < 3 || data[pos] < '2' || data[pos] > '5' || data[pos + 1] < '0' || data[pos + 1] > '9' ||
		    data[pos + 2] < '0' || data[pos + 2] > '9') {
			err = EGOV_EINVAL;
			goto out;
		}
		c = (data[pos] - '0') * 100 + (data[pos + 1] - '0') * 10 + (data[pos + 2] - '0');
		sep = llen > 3 ? data[pos + 3] : ' ';
		if ((sep != ' ' && sep != '-') || (first >= 0 && c != first)) {
			err = EGOV_EINVAL;
			goto out;
		}
		first = c;
		pos = (size_t)(nl - data) + 1;
		if (sep == ' ') {
			*complete = true;
			*consumed = pos;
			*code = c;
			goto out;
		}
	}
out:
	return err;
}

int notify_reply_has_ext(const char *text, const char *kw, const char **params)
{
	size_t kl = strlen(kw);
	const char *line = text;

	while (line && *line) {
		/* Each line is "250-KEYWORD params" or "250 KEYWORD params". */
		if (strlen(line) > 4 + kl && strncasecmp(line + 4, kw, kl) == 0 &&
		    (line[4 + kl] == ' ' || line[4 + kl] == '\r' || line[4 + kl] == '\n' || line[4 + kl] == '=')) {
			if (params)
				*params = line + 4 + kl;
			return 1;
		}
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return 0;
}

/* ---- the connection -------------------------------------------------------- */

typedef struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	char in[NOTIFY_REPLY_MAX];
	size_t inlen;
	buf reply;        /* the last reply's text, all lines */
	char *why;
	size_t whylen;
} conn;

/* Keeps the first reason only: later failures are consequences. */
static void set_why(conn *c, const char *what, const char *detail)
{
	if (c->why && c->whylen && !c->why[0])
		snprintf(c->why, c->whylen, "%s%s%s", what, detail && *detail ? ": " : "", detail ? detail : "");
}

static egov_err conn_open(conn *c, const char *host, int port, int timeout_s)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC}, *res = NULL, *ai;
	struct timeval tv = {.tv_sec = timeout_s};
	char portstr[8];
	egov_err err = EGOV_EUNAVAILABLE;
	int rc;

	snprintf(portstr, sizeof portstr, "%d", port);
	if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		set_why(c, "cannot resolve smtp_host", gai_strerror(rc));
		goto out;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0, fl;
		socklen_t sl = sizeof soerr;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
			set_why(c, "connect", strerror(errno));
			close(fd);
			continue;
		}
		pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
		if (poll(&pfd, 1, timeout_s * 1000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
		    soerr != 0) {
			set_why(c, "connect", soerr ? strerror(soerr) : "timed out");
			close(fd);
			continue;
		}
		fcntl(fd, F_SETFL, fl);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		c->fd = fd;
		err = EGOV_OK;
		break;
	}
out:
	if (res)
		freeaddrinfo(res);
	return err;
}

static void conn_close(conn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->ctx = NULL;
	c->fd = -1;
}

static egov_err conn_write(conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;
		if (c->ssl) {
			int m = SSL_write(c->ssl, p, n > (1u << 30) ? (1 << 30) : (int)n);
			w = m > 0 ? m : -1;
		} else {
			w = send(c->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
		}
		if (w <= 0) {
			set_why(c, "write to SMTP server failed", NULL);
			return EGOV_EIO;
		}
		p += w;
		n -= (size_t)w;
	}
	return EGOV_OK;
}

/* Reads one complete reply into c->reply (NUL-terminated); *code its code. */
static egov_err conn_reply(conn *c, int *code)
{
	bool complete = false;
	size_t used = 0;
	egov_err err;

	for (;;) {
		ssize_t r;
		if ((err = notify_reply_parse(c->in, c->inlen, &complete, &used, code))) {
			set_why(c, "malformed reply from SMTP server", NULL);
			return EGOV_EIO;
		}
		if (complete)
			break;
		if (c->inlen == sizeof c->in) {
			set_why(c, "reply from SMTP server too long", NULL);
			return EGOV_EIO;
		}
		if (c->ssl) {
			int m = SSL_read(c->ssl, c->in + c->inlen, (int)(sizeof c->in - c->inlen));
			r = m > 0 ? m : -1;
		} else {
			r = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
			if (r < 0 && errno == EINTR)
				continue;
		}
		if (r <= 0) {
			set_why(c, r == 0 ? "SMTP server closed the connection" : "SMTP server did not answer in time", NULL);
			return EGOV_EIO;
		}
		c->inlen += (size_t)r;
	}
	buf_reset(&c->reply);
	err = buf_add(&c->reply, c->in, used);
	if (!err)
		err = buf_addc(&c->reply, '\0');
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	return err;
}

/* Sends a command line (CRLF added) and reads the reply. */
static egov_err command(conn *c, const char *line, int *code)
{
	egov_err err;

	if ((err = conn_write(c, line, strlen(line))) || (err = conn_write(c, "\r\n", 2)))
		return err;
	return conn_reply(c, code);
}

/* The reply's first line without the code, for messages. */
static void reply_why(conn *c, const char *what)
{
	char line[200];
	size_t n = 0;
	const char *p = c->reply.data ? c->reply.data : "";

	while (p[n] && p[n] != '\r' && p[n] != '\n' && n < sizeof line - 1)
		n++;
	memcpy(line, p, n);
	line[n] = '\0';
	if (c->why && c->whylen && !c->why[0])
		snprintf(c->why, c->whylen, "%s: %s", what, line);
}

static int host_is_loopback(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0 ||
	       strncmp(host, "127.", 4) == 0;
}

/* The EHLO argument: the address literal of our end of the connection. */
static void ehlo_name(int fd, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char a[INET6_ADDRSTRLEN] = "";

	snprintf(out, n, "localhost");
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	if (ss.ss_family == AF_INET && inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, a, sizeof a))
		snprintf(out, n, "[%s]", a);
	else if (ss.ss_family == AF_INET6 &&
		 inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, a, sizeof a))
		snprintf(out, n, "[IPv6:%s]", a);
}

static egov_err hello(conn *c, int *code)
{
	char name[80], line[100];
	egov_err err;

	ehlo_name(c->fd, name, sizeof name);
	snprintf(line, sizeof line, "EHLO %s", name);
	if ((err = command(c, line, code)))
		return err;
	if (*code / 100 == 5) {
		/* A server without ESMTP: plain HELO, no extensions. */
		snprintf(line, sizeof line, "HELO %s", name);
		if ((err = command(c, line, code)))
			return err;
		buf_reset(&c->reply);
		buf_addc(&c->reply, '\0');
	}
	return EGOV_OK;
}

static egov_err starttls(conn *c, const notify_settings *s)
{
	int code = 0;
	egov_err err = EGOV_EIO;

	if ((err = command(c, "STARTTLS", &code)))
		goto out;
	if (code != 220) {
		reply_why(c, "STARTTLS refused");
		err = EGOV_EIO;
		goto out;
	}
	err = EGOV_EIO;
	/* Bytes the server sent before the handshake would be a plaintext
	 * injection (CVE-2011-0411 class): refuse them. */
	if (c->inlen) {
		set_why(c, "SMTP server sent data after STARTTLS", NULL);
		goto out;
	}
	if (!(c->ctx = SSL_CTX_new(TLS_client_method())) || !SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION))
		goto tls_fail;
	if (s->starttls == NOTIFY_TLS_REQUIRED) {
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
		if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
			goto tls_fail;
	}
	if (!(c->ssl = SSL_new(c->ctx)) || SSL_set_fd(c->ssl, c->fd) != 1)
		goto tls_fail;
	SSL_set_tlsext_host_name(c->ssl, s->smtp_host);
	if (s->starttls == NOTIFY_TLS_REQUIRED && SSL_set1_host(c->ssl, s->smtp_host) != 1)
		goto tls_fail;
	if (SSL_connect(c->ssl) != 1)
		goto tls_fail;
	err = EGOV_OK;
	goto out;
tls_fail:
	{
		char e[160];
		ERR_error_string_n(ERR_get_error(), e, sizeof e);
		set_why(c, "TLS handshake with SMTP server failed", e);
	}
	ERR_clear_error();
out:
	return err;
}

static egov_err b64(const char *in, size_t n, char *out, size_t outlen)
{
	if (4 * ((n + 2) / 3) + 1 > outlen)
		return EGOV_ELIMIT;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	return EGOV_OK;
}

static egov_err auth(conn *c, const notify_settings *s, const char *ehlo)
{
	char raw[1024], enc[1400], line[1500];
	const char *mechs = NULL;
	size_t ul = strlen(s->user), pl = strlen(s->password);
	int code = 0;
	egov_err err = EGOV_EIO;

	if (!notify_reply_has_ext(ehlo, "AUTH", &mechs)) {
		set_why(c, "SMTP server offers no AUTH", NULL);
		goto out;
	}
	if (ul + pl + 2 > sizeof raw) {
		set_why(c, "mail.user or mail.password too long", NULL);
		goto out;
	}
	if (strcasestr(mechs, "PLAIN")) {
		raw[0] = '\0';
		memcpy(raw + 1, s->user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, s->password, pl);
		if (b64(raw, ul + pl + 2, enc, sizeof enc))
			goto out;
		snprintf(line, sizeof line, "AUTH PLAIN %s", enc);
		if ((err = command(c, line, &code)))
			goto out;
	} else if (strcasestr(mechs, "LOGIN")) {
		if ((err = command(c, "AUTH LOGIN", &code)))
			goto out;
		if (code == 334) {
			if ((err = b64(s->user, ul, enc, sizeof enc)) || (err = command(c, enc, &code)))
				goto out;
		}
		if (code == 334) {
			if ((err = b64(s->password, pl, enc, sizeof enc)) || (err = command(c, enc, &code)))
				goto out;
		}
	} else {
		set_why(c, "SMTP server offers neither AUTH PLAIN nor LOGIN", NULL);
		goto out;
	}
	err = EGOV_EIO;
	if (code != 235) {
		reply_why(c, "AUTH refused");
		goto out;
	}
	err = EGOV_OK;
out:
	OPENSSL_cleanse(raw, sizeof raw);
	OPENSSL_cleanse(enc, sizeof enc);
	OPENSSL_cleanse(line, sizeof line);
	return err;
}

void notify_smtp_send(const notify_settings *s, const char *from_addr, const char *to, const char *message,
		      size_t len, notify_send_result *result, char *why, size_t whylen)
{
	conn c = {.fd = -1, .why = why, .whylen = whylen};
	char line[NOTIFY_ADDR_MAX + 32];
	buf data;
	char *ehlo = NULL;
	int code = 0;

	*result = NOTIFY_TRANSIENT;
	if (why && whylen)
		why[0] = '\0';
	buf_init(&c.reply, NOTIFY_REPLY_MAX + 1);
	buf_init(&data, NOTIFY_MESSAGE_MAX + NOTIFY_MESSAGE_MAX / 64);
	if (!notify_address_valid(from_addr) || !notify_address_valid(to)) {
		set_why(&c, "invalid sender or recipient address", NULL);
		*result = NOTIFY_PERMANENT;
		goto out;
	}
	if (conn_open(&c, s->smtp_host, s->smtp_port, s->timeout_s > 0 ? s->timeout_s : 30))
		goto out;
	if (conn_reply(&c, &code))
		goto out;
	if (code != 220) {
		reply_why(&c, "greeting");
		goto out;
	}
	if (hello(&c, &code))
		goto out;
	if (code != 250) {
		reply_why(&c, "EHLO refused");
		goto out;
	}
	if (s->starttls != NOTIFY_TLS_OFF) {
		if (notify_reply_has_ext(c.reply.data, "STARTTLS", NULL)) {
			if (starttls(&c, s) || hello(&c, &code))
				goto out;
			if (code != 250) {
				reply_why(&c, "EHLO after STARTTLS refused");
				goto out;
			}
		} else if (s->starttls == NOTIFY_TLS_REQUIRED) {
			set_why(&c, "mail.starttls is required but the SMTP server does not offer STARTTLS", NULL);
			goto out;
		}
	}
	if (s->user && s->user[0]) {
		if (!c.ssl && !host_is_loopback(s->smtp_host)) {
			set_why(&c, "refusing to send SMTP credentials without TLS", NULL);
			goto out;
		}
		if (!(ehlo = strdup(c.reply.data ? c.reply.data : "")))
			goto out;
		if (auth(&c, s, ehlo))
			goto out;
	}
	snprintf(line, sizeof line, "MAIL FROM:<%s>", from_addr);
	if (command(&c, line, &code))
		goto out;
	if (code != 250) {
		reply_why(&c, "MAIL FROM refused");
		goto refused;
	}
	snprintf(line, sizeof line, "RCPT TO:<%s>", to);
	if (command(&c, line, &code))
		goto out;
	if (code != 250 && code != 251) {
		reply_why(&c, "RCPT TO refused");
		goto refused;
	}
	if (command(&c, "DATA", &code))
		goto out;
	if (code != 354) {
		reply_why(&c, "DATA refused");
		goto refused;
	}
	if (notify_dot_stuff(message, len, &data) || buf_add(&data, ".\r\n", 3)) {
		set_why(&c, "message too large", NULL);
		*result = NOTIFY_PERMANENT;
		goto out;
	}
	if (conn_write(&c, data.data, data.len) || conn_reply(&c, &code))
		goto out;
	if (code != 250) {
		reply_why(&c, "message refused");
		goto refused;
	}
	*result = NOTIFY_SENT;
	/* The message is accepted; a failing QUIT changes nothing. */
	command(&c, "QUIT", &code);
	goto out;
refused:
	if (code / 100 == 5)
		*result = NOTIFY_PERMANENT;
	if (command(&c, "QUIT", &code)) {
		/* closing anyway */
	}
out:
	free(ehlo);
	conn_close(&c);
	buf_release(&data);
	buf_release(&c.reply);
}
