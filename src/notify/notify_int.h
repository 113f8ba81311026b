/*
 * notify_int.h: the parts of the notify module shared by its files and its
 * unit tests: message formatting (message.c) and the SMTP client (smtp.c).
 */
#ifndef EGOV_NOTIFY_INT_H
#define EGOV_NOTIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "notify/notify.h"
#include "notify/notify_limits.h"

/* ---- notify_config.c: the [mail] section --------------------------------- */

/* Its values, as config_section_values gives them (strings owned by the
 * configuration). */
typedef struct notify_config {
	char *smtp_host;    /* SMTP relay the outbox delivers to */
	int smtp_port;
	char *from;         /* "Name <addr>" or "addr" */
	char *starttls;     /* off | opportunistic | required */
	char *user;         /* "" = no AUTH */
	char *password;
	int poll_ms;        /* outbox poll interval */
	int retry_ms;       /* first retry delay; doubles per attempt */
	int max_attempts;   /* then the message is marked failed */
	int timeout_s;      /* connect and per-command timeout */
} notify_config;
extern const config_section notify_config_section;

/* ---- message.c (pure) ---------------------------------------------------- */

/* Splits "Name <local@domain>" or "local@domain" into the address (for the
 * envelope) and the display name ("" if none). EGOV_EINVAL when there is no
 * plausible address or a control character anywhere (header injection). */
egov_err notify_address_parse(const char *from, char addr[NOTIFY_ADDR_MAX + 1], char name[NOTIFY_NAME_MAX + 1]);
/* 1 if s is an address safe to put in an envelope and a header: one '@',
 * no spaces, controls, '<', '>' or quotes, <= NOTIFY_ADDR_MAX bytes. */
int notify_address_valid(const char *s);

/* Appends "Name: value\r\n". A value with bytes outside printable ASCII is
 * written as RFC 2047 encoded-words (UTF-8, base64) folded onto
 * continuation lines, never splitting a UTF-8 sequence; CR and LF in value
 * never reach the output. */
egov_err notify_header_add(buf *out, const char *name, const char *value);

/* Appends text with every line break made CRLF and every line that starts
 * with '.' given a second one (RFC 5321 4.5.2), ending in CRLF. The caller
 * sends ".\r\n" after it. */
egov_err notify_dot_stuff(const char *text, size_t len, buf *out);

/* The RFC 5322 Date of us ("Thu, 26 Nov 2026 12:34:56 +0000"). */
void notify_date_format(int64_t us, char out[40]);

/* Formats m (its id, from, to, subject and body) as a complete message
 * (headers, blank line, body) with CRLF line breaks, not yet dot-stuffed: Date, From, To, Subject, Message-ID,
 * MIME-Version, Content-Type text/plain; charset=utf-8, and
 * Content-Transfer-Encoding 7bit for short-lined ASCII bodies, base64
 * otherwise. EGOV_EINVAL for an unusable from/to or a body that is not
 * UTF-8. */
egov_err notify_message_format(const notify_message *m, int64_t now_us, buf *out);

/* Delay before the retry after the attempts-th failed attempt: retry_ms,
 * doubled per further attempt, capped at one day. */
int64_t notify_backoff_ms(int attempts, int retry_ms);

/* ---- smtp.c --------------------------------------------------------------- */

/* Parses one SMTP reply at the start of data[0..len). When the reply is
 * complete (its last line "ddd text" ends in LF), *complete = true,
 * *consumed = its length and *code = ddd; otherwise *complete = false.
 * EGOV_EINVAL for a line that does not start with three digits and a
 * space, '-' or line end, or lines of one reply with different codes. */
egov_err notify_reply_parse(const char *data, size_t len, bool *complete, size_t *consumed, int *code);
/* 1 if the EHLO reply text (all lines, as received) names the extension
 * keyword kw on one of its lines (case-insensitive); *params (optional)
 * points into text at what follows it on that line. */
int notify_reply_has_ext(const char *text, const char *kw, const char **params);

/* The outcome of one SMTP transaction. */
typedef enum notify_send_result {
	NOTIFY_SENT,      /* the server accepted the message (250 after DATA) */
	NOTIFY_TRANSIENT, /* try again later */
	NOTIFY_PERMANENT, /* 5xx to MAIL, RCPT or DATA: do not try again */
} notify_send_result;

/* Sends one formatted message (from notify_message_format) to `to` through
 * the server in s, with from_addr as the envelope sender. *result says what
 * happened; why (optional) receives a short reason (the server's reply or
 * the local error) for the log and the outbox row. Never fails otherwise. */
void notify_smtp_send(const notify_settings *s, const char *from_addr, const char *to, const char *message,
		      size_t len, notify_send_result *result, char *why, size_t whylen);

#endif
