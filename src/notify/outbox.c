/*
 * outbox.c: the outbox (notify_outbox): its schema, queueing into it, the
 * delivery job over it, and the module's descriptor.
 *
 * Invariants (see notify.h): a claim counts the attempt and leases the row
 * in one transaction before any byte goes to the SMTP server; the outcome
 * is written afterwards on the same connection; rows with sent_at or
 * failed_at set are never claimed again. Timestamps for scheduling
 * (next_attempt_us) are microseconds since the epoch.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/app.h"
#include "core/jobs.h"
#include "core/lease.h"
#include "core/log.h"
#include "core/module.h"
#include "core/timeutil.h"
#include "notify/notify.h"
#include "notify/notify_int.h"
#include "core/banned.h"

/* How long a claimed row stays leased: longer than any one SMTP
 * transaction can take (about ten commands, each bounded by timeout_s). */
#define LEASE_S(timeout_s) (12 * (int64_t)(timeout_s) + 30)

/*
 * The outbox belongs to this module, which runs before identity (its first
 * writer). It used to be created by identity's first migration, and this
 * module's version 1 only added the delivery columns; both were introduced
 * together and applied by the same `egov migrate`, identity's first. The
 * two now converge:
 * - a fresh database: version 1 here creates the whole table (identity's
 *   columns, then the delivery columns, with both indexes), and identity's
 *   first migration no longer creates it;
 * - an existing database has both migrations recorded as applied, so
 *   nothing re-runs, and its table already has exactly these columns and
 *   indexes (the delivery columns last, as ALTER TABLE put them).
 * Only a database whose migration stopped between identity's version 1
 * and this one (each runs in its own transaction) would find the table
 * present here: version 1 then fails with "already exists" rather than
 * guess which columns it holds. Recorded versions are never edited again.
 */
static const db_migration migrations[] = {
	{.version = 1,
	 .name = "outbox",
	 .sql = "CREATE TABLE notify_outbox ("
		" id TEXT PRIMARY KEY,"
		" to_addr TEXT NOT NULL,"
		" subject TEXT NOT NULL,"
		" body TEXT NOT NULL,"
		" template TEXT,"
		" lang TEXT,"
		" created_at TEXT NOT NULL,"
		" sent_at TEXT,"
		" attempts INTEGER NOT NULL DEFAULT 0,"
		" next_attempt_us BIGINT NOT NULL DEFAULT 0,"
		" failed_at TEXT,"
		" last_error TEXT);"
		"CREATE INDEX notify_outbox_unsent ON notify_outbox (sent_at, created_at);"
		"CREATE INDEX notify_outbox_due ON notify_outbox (next_attempt_us)"
		" WHERE sent_at IS NULL AND failed_at IS NULL;"},
};

egov_err notify_settings_from_config(const egov_config *cfg, notify_settings *out)
{
	const notify_config *mc = config_section_values(cfg, &notify_config_section);

	if (!mc)
		return EGOV_ENOTFOUND;
	*out = (notify_settings){
		.smtp_host = mc->smtp_host,
		.smtp_port = mc->smtp_port,
		.from = mc->from,
		.starttls = NOTIFY_TLS_OPPORTUNISTIC,
		.user = mc->user,
		.password = mc->password,
		.poll_ms = mc->poll_ms,
		.retry_ms = mc->retry_ms,
		.max_attempts = mc->max_attempts,
		.timeout_s = mc->timeout_s,
	};
	if (mc->starttls && strcmp(mc->starttls, "off") == 0)
		out->starttls = NOTIFY_TLS_OFF;
	else if (mc->starttls && strcmp(mc->starttls, "required") == 0)
		out->starttls = NOTIFY_TLS_REQUIRED;
	return EGOV_OK;
}

/* ---- queueing -------------------------------------------------------------- */

#define CONTROLS "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16" \
		 "\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f"

egov_err notify_enqueue(db_conn *c, const notify_message *m, char id_out[37])
{
	char id[37], now[32];
	egov_err err;

	/* Only what makes a row unusable is refused here; an address the SMTP
	 * server will not take fails at delivery, like any refused one. */
	if (!m->to || !m->to[0] || strlen(m->to) > NOTIFY_ADDR_MAX || strcspn(m->to, CONTROLS) != strlen(m->to) ||
	    !m->subject || !m->subject[0] || strlen(m->subject) > NOTIFY_SUBJECT_MAX || !m->body ||
	    strlen(m->body) > NOTIFY_BODY_MAX || (m->id && (!m->id[0] || strlen(m->id) > 36)))
		return EGOV_EINVAL;
	if (m->id)
		snprintf(id, sizeof id, "%s", m->id);
	else if ((err = uuid_v7(id)))
		return err;
	time_format_rfc3339(time_now_us(), 6, now);
	{
		db_param p[] = {DBP_S(id), DBP_S(m->to), DBP_S(m->subject), DBP_S(m->body),
				m->template_key ? DBP_S(m->template_key) : DBP_NULLV, m->lang ? DBP_S(m->lang) : DBP_NULLV,
				DBP_S(now)};
		err = db_exec(c,
			      "INSERT INTO notify_outbox (id, to_addr, subject, body, template, lang, created_at)"
			      " VALUES (?, ?, ?, ?, ?, ?, ?)",
			      p, 7, NULL);
	}
	if (!err && id_out)
		memcpy(id_out, id, sizeof id);
	return err;
}

/* ---- one message ----------------------------------------------------------- */

typedef struct claimed {
	char *id, *to, *subject, *body;
	int attempts; /* including this one */
} claimed;

static void claimed_release(claimed *m)
{
	free(m->id);
	free(m->to);
	free(m->subject);
	free(m->body);
	*m = (claimed){0};
}

static char *dup_col(db_rows *r, int col)
{
	const char *t = db_rows_text(r, col);
	return strdup(t ? t : "");
}

/* The outbox as the kernel's lease claim sees it: due rows are those neither
 * sent nor failed whose next attempt has come, most overdue first. */
static const lease_spec outbox_lease = {
	.table = "notify_outbox",
	.key = "id",
	.due = "next_attempt_us",
	.attempts = "attempts",
	.pending = "sent_at IS NULL AND failed_at IS NULL",
	.order = "next_attempt_us, created_at",
	.columns = "id, to_addr, subject, body",
};

static egov_err take_row(void *ctx, db_rows *row, int64_t attempt)
{
	claimed *m = ctx;

	m->id = dup_col(row, 0);
	m->to = dup_col(row, 1);
	m->subject = dup_col(row, 2);
	m->body = dup_col(row, 3);
	m->attempts = (int)attempt;
	return m->id && m->to && m->subject && m->body ? EGOV_OK : EGOV_ENOMEM;
}

/* Claims the most overdue message: *found false if none is due. The lease
 * outlasts any one SMTP transaction, so a node that dies mid-send leaves
 * the row to be tried again once it runs out. */
static egov_err claim(db_conn *c, const notify_settings *s, claimed *m, bool *found)
{
	int64_t now = time_now_us();
	int n = 0;
	egov_err err;

	*found = false;
	err = lease_claim(c, &outbox_lease, now, LEASE_S(s->timeout_s) * 1000000, 1, NULL, 0, take_row, m, &n);
	*found = !err && n == 1;
	if (!*found)
		claimed_release(m);
	return err;
}

static egov_err record(db_conn *c, const notify_settings *s, const claimed *m, notify_send_result res,
		       const char *why, bool *failed)
{
	char now3339[32];
	int64_t now = time_now_us();
	db_param p[3];

	*failed = false;
	time_format_rfc3339(now, 3, now3339);
	if (res == NOTIFY_SENT) {
		p[0] = DBP_S(now3339);
		p[1] = DBP_S(m->id);
		return db_exec(c, "UPDATE notify_outbox SET sent_at = ?, last_error = NULL WHERE id = ?", p, 2, NULL);
	}
	if (res == NOTIFY_PERMANENT || m->attempts >= s->max_attempts) {
		*failed = true;
		p[0] = DBP_S(now3339);
		p[1] = DBP_S(why);
		p[2] = DBP_S(m->id);
		return db_exec(c, "UPDATE notify_outbox SET failed_at = ?, last_error = ? WHERE id = ?", p, 3, NULL);
	}
	p[0] = DBP_I(now + notify_backoff_ms(m->attempts, s->retry_ms) * 1000);
	p[1] = DBP_S(why);
	p[2] = DBP_S(m->id);
	return db_exec(c, "UPDATE notify_outbox SET next_attempt_us = ?, last_error = ? WHERE id = ?", p, 3, NULL);
}

/* Set by notify_stop(): a pass ends after the message it is sending, so
 * that a node that is asked to stop does not first work through a long
 * queue (each unsent message stays due and goes out on the next start, or
 * from another node). */
static atomic_bool stopping;

egov_err notify_deliver_due(db_conn *c, const notify_settings *s, int max_messages, int *sent, int *failed)
{
	char from_addr[NOTIFY_ADDR_MAX + 1], from_name[NOTIFY_NAME_MAX + 1], why[NOTIFY_ERRTEXT_MAX];
	claimed m = {0};
	buf msg;
	bool found = false, gave_up = false;
	egov_err err = EGOV_OK;
	int n;

	if (sent)
		*sent = 0;
	if (failed)
		*failed = 0;
	buf_init(&msg, NOTIFY_MESSAGE_MAX);
	if ((err = notify_address_parse(s->from, from_addr, from_name)))
		goto out;
	for (n = 0; n < max_messages && !atomic_load(&stopping); n++) {
		notify_send_result res = NOTIFY_TRANSIENT;
		notify_message nm;
		if ((err = claim(c, s, &m, &found)) || !found)
			goto out;
		nm = (notify_message){.id = m.id, .from = s->from, .to = m.to, .subject = m.subject, .body = m.body};
		buf_reset(&msg);
		why[0] = '\0';
		if (notify_message_format(&nm, time_now_us(), &msg)) {
			res = NOTIFY_PERMANENT;
			snprintf(why, sizeof why, "message cannot be formatted (bad address, encoding or size)");
		} else {
			notify_smtp_send(s, from_addr, m.to, msg.data, msg.len, &res, why, sizeof why);
		}
		if ((err = record(c, s, &m, res, why, &gave_up)))
			goto out;
		if (res == NOTIFY_SENT) {
			log_info("notify.sent", "message %s delivered (attempt %d)", m.id, m.attempts);
			if (sent)
				(*sent)++;
		} else if (gave_up) {
			log_warn("notify.failed", "message %s failed after %d attempt(s): %s", m.id, m.attempts, why);
			if (failed)
				(*failed)++;
		} else {
			log_info("notify.retry", "message %s attempt %d: %s", m.id, m.attempts, why);
		}
		claimed_release(&m);
	}
out:
	claimed_release(&m);
	buf_release(&msg);
	return err;
}

/* ---- the delivery job ------------------------------------------------------ */

/* What delivery uses between the module's start and stop: copies of the
 * [mail] settings (the configuration may be released first in tests).
 * Written only while the job is not running (start, stop), read by its
 * passes. */
static struct {
	pthread_mutex_t mu;
	bool running;
	char *host, *from, *user, *password;
	notify_settings s;
} delivery = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* One pass: send what is due, up to NOTIFY_PASS_MAX messages; if the pass was
 * full, more may be waiting, so run again at once. */
static int64_t deliver_pass(job_ctx *j)
{
	db_conn *c = NULL;
	int sent = 0, failed = 0;
	egov_err err;

	if ((err = job_conn(j, &c)) ||
	    (err = notify_deliver_due(c, &delivery.s, NOTIFY_PASS_MAX, &sent, &failed))) {
		job_fail(j, err, "cannot read the outbox: %s", c ? db_conn_errmsg(c) : "no connection");
		return -1;
	}
	return delivery.s.poll_ms;
}

/* Runs when woken (notify_wake) or after the poll interval the pass asks
 * for (mail.poll_ms). */
static void deliver_interrupt(void)
{
	/* A pass ends after the message it is sending: a node stopping with
	 * mail queued must not wait for the rest of the pass's 200 sends. */
	atomic_store(&stopping, true);
}

static const job outbox_job = {
	.name = "notify.outbox", .period_ms = 0, .run = deliver_pass, .interrupt = deliver_interrupt};
static const job *const outbox_jobs[] = {&outbox_job};

static void free_copies(void)
{
	free(delivery.host);
	free(delivery.from);
	free(delivery.user);
	if (delivery.password) {
		OPENSSL_cleanse(delivery.password, strlen(delivery.password));
		free(delivery.password);
	}
	delivery.host = delivery.from = delivery.user = delivery.password = NULL;
}

/* Takes the [mail] settings for delivery. Caller holds delivery.mu. */
static egov_err settings_take(const egov_config *cfg)
{
	char addr[NOTIFY_ADDR_MAX + 1], name[NOTIFY_NAME_MAX + 1];

	if (delivery.running)
		return EGOV_ECONFLICT;
	if (notify_settings_from_config(cfg, &delivery.s)) {
		log_error("notify.config", "no [mail] section in the configuration");
		return EGOV_EINVAL;
	}
	if (notify_address_parse(delivery.s.from, addr, name)) {
		log_error("notify.config", "mail.from is not a usable address: %s", delivery.s.from);
		return EGOV_EINVAL;
	}
	delivery.host = strdup(delivery.s.smtp_host);
	delivery.from = strdup(delivery.s.from);
	delivery.user = strdup(delivery.s.user);
	delivery.password = strdup(delivery.s.password);
	if (!delivery.host || !delivery.from || !delivery.user || !delivery.password) {
		free_copies();
		return EGOV_ENOMEM;
	}
	delivery.s.smtp_host = delivery.host;
	delivery.s.from = delivery.from;
	delivery.s.user = delivery.user;
	delivery.s.password = delivery.password;
	delivery.running = true;
	atomic_store(&stopping, false);
	log_info("notify.start", "mail delivery to %s:%d every %d ms", delivery.s.smtp_host, delivery.s.smtp_port,
		 delivery.s.poll_ms);
	return EGOV_OK;
}

static void settings_drop(void)
{
	pthread_mutex_lock(&delivery.mu);
	if (delivery.running) {
		free_copies();
		delivery.running = false;
	}
	pthread_mutex_unlock(&delivery.mu);
}

/* The module's start hook: the kernel starts the job (.jobs) after it. */
static egov_err module_start(const egov_config *cfg)
{
	egov_err err;

	pthread_mutex_lock(&delivery.mu);
	err = settings_take(cfg);
	pthread_mutex_unlock(&delivery.mu);
	return err;
}

egov_err notify_start(db *d, const egov_config *cfg)
{
	egov_err err = module_start(cfg);

	if (!err && (err = jobs_start(d, outbox_jobs, 1)))
		settings_drop();
	return err;
}

void notify_stop(void)
{
	jobs_stop(outbox_jobs, 1);
	settings_drop();
}

void notify_wake(void)
{
	job_wake(&outbox_job);
}

/* ---- the module ---------------------------------------------------------------- */

const egov_module notify_module = {
	.name = "notify",
	.config = &notify_config_section,
	.migrations = migrations,
	.nmigrations = sizeof migrations / sizeof migrations[0],
	.start = module_start,
	.stop = settings_drop,
	.jobs = outbox_jobs,
	.njobs = 1,
};
