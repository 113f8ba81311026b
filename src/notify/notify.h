/*
 * notify.h: delivery of the mail outbox over SMTP.
 *
 * Other modules queue mail by inserting rows into notify_outbox (identity
 * does so through identity_mail_send(); the table is created by identity's
 * migrations, this module adds its delivery columns). A background thread
 * started by `egov serve` claims due rows, sends each over SMTP and records
 * the outcome.
 *
 * Invariants:
 * - At-least-once delivery: a row is claimed by pushing its next attempt
 *   into the future (a lease) and counting the attempt in one transaction,
 *   then sent, then marked sent. A node that dies mid-send leaves the lease
 *   to expire and the message is tried again; receivers can deduplicate by
 *   the Message-ID, which is derived from the row id and stays the same.
 * - Any number of nodes may run the thread against one PostgreSQL database:
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

/* Fills *out from the [mail] keys of cfg (borrowing its strings). */
void notify_settings_from_config(const egov_config *cfg, notify_settings *out);

/* Starts the delivery thread on its own connection to d. Copies what it
 * needs from cfg. EGOV_EINVAL if mail.from is not a usable address,
 * EGOV_ECONFLICT if already running, EGOV_EINTERNAL if the thread cannot
 * start. */
egov_err notify_start(db *d, const egov_config *cfg);
/* Stops and joins the thread (a send in progress finishes or times out
 * first). Safe to call when it is not running. */
void notify_stop(void);
/* Asks the thread to look at the outbox now instead of at its next poll
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
