/*
 * notify_limits.h: every limit the notify module puts on what it is given
 * (by modules that queue mail, by the configuration, by an SMTP server),
 * each with its reason. The kernel's own limits are in core/limits.h.
 *
 * Over a limit notify_enqueue() refuses the message (EGOV_EINVAL), the
 * configuration is refused at start, and an SMTP reply over its limit
 * fails that attempt: never a truncation.
 */
#ifndef EGOV_NOTIFY_LIMITS_H
#define EGOV_NOTIFY_LIMITS_H

/* An address, bytes: RFC 5321's limit on a path. */
#define NOTIFY_ADDR_MAX 254
/* The display name in mail.from, bytes: a department's name, with room. */
#define NOTIFY_NAME_MAX 256
/* A subject, bytes: far past any real one, yet bounded (it is encoded
 * into one header). */
#define NOTIFY_SUBJECT_MAX 1024u
/* A body, bytes: a body that still fits NOTIFY_MESSAGE_MAX once base64
 * (4/3) and line breaks are added. Mail is for notices and links, not
 * documents. */
#define NOTIFY_BODY_MAX (2u * 1024u * 1024u)
/* A formatted message (headers and encoded body), bytes. */
#define NOTIFY_MESSAGE_MAX (4u * 1024u * 1024u)
/* A line of a message body, characters before CRLF: RFC 5322 §2.1.1. */
#define NOTIFY_LINE_MAX 998
/* One SMTP reply, all its lines, bytes: servers send a few hundred;
 * past it the attempt fails rather than reading without end. */
#define NOTIFY_REPLY_MAX 16384
/* The last error kept on an outbox row, bytes: the reply's first line is
 * what an operator needs. */
#define NOTIFY_ERRTEXT_MAX 300
/* Messages one delivery pass sends before it looks again (and lets a
 * stop in): bounds a pass's length behind a slow server. */
#define NOTIFY_PASS_MAX 200

#endif
