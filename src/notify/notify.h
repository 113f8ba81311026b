/*
 * notify.h: the mail outbox and its delivery over SMTP.
 *
 * Other modules queue mail with notify_enqueue(), inside their own
 * transaction, so a message is queued exactly when what it tells of
 * commits (identity does so through identity_mail_send()). The outbox table,
 * notify_outbox, is this module's alone. A kernel job (core/jobs.h,
 * "notify.outbox", declared in the module's descriptor) claims due rows
 * through the kernel's lease claim (core/lease.h), sends each over SMTP
 * and records the outcome.
 *
 * Invariants:
 * - At-least-once delivery: a row is claimed by pushing its next attempt
 *   into the future (a lease) and counting the attempt in one transaction,
 *   then sent, then marked sent. A node that dies mid-send leaves the lease
 *   to expire and the message is tried again; receivers can deduplicate by
 *   the Message-ID, which is derived from the row id and stays the same.
 * - Any number of nodes may run the job against one PostgreSQL database:
 *   claims use SELECT ... FOR UPDATE SKIP LOCKED there (SQLite serialises
 *   writers with BEGIN IMMEDIATE).
 * - A transient failure (no connection, 4xx, timeout, TLS refused) retries
 *   after retry_ms, doubling per attempt up to a day; after max_attempts the
 *   row is marked failed. A permanent refusal (5xx to MAIL FROM, RCPT TO or
 *   DATA) marks it failed at once. A row is never sent again once sent_at
 *   or failed_at is set.
 */
#ifndef EGOV_NOTIFY_NOTIFY_H
#define EGOV_NOTIFY_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "core/db.h"
#include "core/err.h"

typedef enum notify_starttls { NOTIFY_TLS_OFF, NOTIFY_TLS_OPPORTUNISTIC, NOTIFY_TLS_REQUIRED } notify_starttls;

/* What delivery needs from the configuration ([mail] keys). The strings
 * are borrowed from the config, which must outlive their use. */
typedef struct notify_settings {
	const char *smtp_host;
	int smtp_port;
	const char *from;      /* "Name <local@domain>" or "local@domain" */
	notify_starttls starttls;
	const char *user;      /* "" = no AUTH */
	const char *password;
	int poll_ms;
	int retry_ms;
	int max_attempts;
	int timeout_s;
} notify_settings;

/* A message: what notify_enqueue() queues (to, subject, body, template_key,
 * lang; id optional) and what delivery formats (id, from, to, subject,
 * body). */
typedef struct notify_message {
	const char *id;           /* the outbox row id, a UUID: the Message-ID's left part */
	const char *from;         /* mail.from as configured (delivery fills it) */
	const char *to;           /* recipient address */
	const char *subject;      /* UTF-8 */
	const char *body;         /* UTF-8, '\n' or CRLF line breaks */
	const char *template_key; /* what kind of message ("verify_email"); NULL: none */
	const char *lang;         /* its language ("zh-Hant", "pt", "en"); NULL: none */
} notify_message;

/* Queues m in the outbox on c, inside the caller's transaction if one is
 * open: the message is sent only if that transaction commits. m->id NULL
 * has one made (UUIDv7). id_out (optional, 37 bytes) receives the id.
 * EGOV_EINVAL when to, subject or body is missing, to holds a control
 * character, or one is longer than the outbox takes (NOTIFY_ADDR_MAX,
 * 1 KiB subject, 2 MiB body); the database's error otherwise. Nothing is sent before the
 * delivery job's next look (notify_wake() asks for it now). */
egov_err notify_enqueue(db_conn *c, const notify_message *m, char id_out[37]);

/* Fills *out from the [mail] section of cfg (borrowing its strings).
 * EGOV_ENOTFOUND if cfg holds no [mail] section. */
egov_err notify_settings_from_config(const egov_config *cfg, notify_settings *out);

/* Starts delivery outside `egov serve` (which starts the module's job
 * itself): the [mail] settings of cfg and the delivery job (core/jobs.h,
 * "notify.outbox") with its own connection to d. Copies what it needs.
 * EGOV_EINVAL if mail.from is not a usable address (or cfg holds no [mail]
 * section), EGOV_ECONFLICT if already running, EGOV_EINTERNAL if the job's
 * thread cannot start. */
egov_err notify_start(db *d, const egov_config *cfg);
/* Stops the job (a send in progress finishes or times out first) and
 * drops the settings. Safe to call when it is not running. */
void notify_stop(void);
/* Asks the delivery job to look at the outbox now instead of at its next poll
 * (after a module queued mail). Safe to call when it is not running. */
void notify_wake(void);

/* One delivery pass on connection c: claims and sends due messages until
 * none is due or max_messages were handled. *sent and *failed (optional)
 * count the messages delivered and marked failed in this pass. EGOV_EDB
 * (or the backend's error) if the outbox cannot be read; a failed send is
 * not an error of the pass. */
egov_err notify_deliver_due(db_conn *c, const notify_settings *s, int max_messages, int *sent, int *failed);

struct egov_module;
extern const struct egov_module notify_module;

#endif
