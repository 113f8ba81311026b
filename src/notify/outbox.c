/*
 * outbox.c: the outbox (notify_outbox): its schema, queueing into it, the
 * delivery thread over it, and the module's descriptor.
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
#include <time.h>

#include <openssl/crypto.h>

#include "core/app.h"
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

/* Serving: delivery runs on its own thread from the start hook on. */
static egov_err start(const egov_config *cfg)
{
	return notify_start(app()->db, cfg);
}

const egov_module notify_module = {
	.name = "notify",
	.config = &notify_config_section,
	.migrations = migrations,
	.nmigrations = sizeof migrations / sizeof migrations[0],
	.start = start,
	.stop = notify_stop,
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

/* Claims the most overdue message: *found false if none is due. */
static egov_err claim(db_conn *c, const notify_settings *s, claimed *m, bool *found)
{
	int64_t now = time_now_us(), lease = now + LEASE_S(s->timeout_s) * 1000000;
	db_param p[2] = {DBP_I(now)};
	db_rows *rows = NULL;
	bool has = false, open = false;
	const char *sql = db_conn_kind(c) == DB_POSTGRES
		? "SELECT id, to_addr, subject, body, attempts FROM notify_outbox"
		  " WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_us <= ?"
		  " ORDER BY next_attempt_us, created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
		: "SELECT id, to_addr, subject, body, attempts FROM notify_outbox"
		  " WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_us <= ?"
		  " ORDER BY next_attempt_us, created_at LIMIT 1";
	egov_err err;

	*found = false;
	if ((err = db_begin(c)))
		goto out;
	open = true;
	if ((err = db_query(c, sql, p, 1, &rows)) || (err = db_rows_next(rows, &has)))
		goto out;
	if (has) {
		m->id = dup_col(rows, 0);
		m->to = dup_col(rows, 1);
		m->subject = dup_col(rows, 2);
		m->body = dup_col(rows, 3);
		m->attempts = (int)db_rows_int(rows, 4) + 1;
		if (!m->id || !m->to || !m->subject || !m->body) {
			err = EGOV_ENOMEM;
			goto out;
		}
	}
	db_rows_free(rows);
	rows = NULL;
	if (has) {
		p[0] = DBP_I(lease);
		p[1] = DBP_S(m->id);
		if ((err = db_exec(c, "UPDATE notify_outbox SET next_attempt_us = ?, attempts = attempts + 1 WHERE id = ?",
				   p, 2, NULL)))
			goto out;
	}
	err = db_commit(c);
	open = false;
	*found = has && !err;
out:
	db_rows_free(rows);
	if (open)
		db_rollback(c);
	if (err || !*found)
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

/* ---- the thread ------------------------------------------------------------ */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool running, stop, wake;
	db *d;
	char *host, *from, *user, *password;
	notify_settings s;
} worker = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *run(void *arg)
{
	db_conn *c = NULL;
	bool db_failing = false;
	struct timespec until;

	(void)arg;
	pthread_mutex_lock(&worker.mu);
	while (!worker.stop) {
		egov_err err;
		pthread_mutex_unlock(&worker.mu);
		if (!c && db_conn_open(worker.d, &c))
			c = NULL;
		err = c ? notify_deliver_due(c, &worker.s, NOTIFY_PASS_MAX, NULL, NULL) : EGOV_EUNAVAILABLE;
		/* Logged on change only, so a missing database does not flood
		 * the log every poll. */
		if (err && !db_failing)
			log_warn("notify.outbox", "cannot read the outbox: %s", c ? db_conn_errmsg(c) : "no connection");
		else if (!err && db_failing)
			log_info("notify.outbox", "outbox readable again");
		db_failing = err != EGOV_OK;
		if (err && c) {
			db_conn_close(c);
			c = NULL;
		}
		pthread_mutex_lock(&worker.mu);
		if (worker.stop)
			break;
		if (!worker.wake) {
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += worker.s.poll_ms / 1000;
			until.tv_nsec += (long)(worker.s.poll_ms % 1000) * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			while (!worker.stop && !worker.wake &&
			       pthread_cond_timedwait(&worker.cond, &worker.mu, &until) == 0) {
			}
		}
		worker.wake = false;
	}
	pthread_mutex_unlock(&worker.mu);
	if (c)
		db_conn_close(c);
	return NULL;
}

static void free_copies(void)
{
	free(worker.host);
	free(worker.from);
	free(worker.user);
	if (worker.password) {
		OPENSSL_cleanse(worker.password, strlen(worker.password));
		free(worker.password);
	}
	worker.host = worker.from = worker.user = worker.password = NULL;
}

egov_err notify_start(db *d, const egov_config *cfg)
{
	char addr[NOTIFY_ADDR_MAX + 1], name[NOTIFY_NAME_MAX + 1];
	pthread_condattr_t ca;
	egov_err err = EGOV_OK;

	pthread_mutex_lock(&worker.mu);
	if (worker.running) {
		err = EGOV_ECONFLICT;
		goto out;
	}
	if (notify_settings_from_config(cfg, &worker.s)) {
		log_error("notify.config", "no [mail] section in the configuration");
		err = EGOV_EINVAL;
		goto out;
	}
	if (notify_address_parse(worker.s.from, addr, name)) {
		log_error("notify.config", "mail.from is not a usable address: %s", worker.s.from);
		err = EGOV_EINVAL;
		goto out;
	}
	worker.host = strdup(worker.s.smtp_host);
	worker.from = strdup(worker.s.from);
	worker.user = strdup(worker.s.user);
	worker.password = strdup(worker.s.password);
	if (!worker.host || !worker.from || !worker.user || !worker.password) {
		free_copies();
		err = EGOV_ENOMEM;
		goto out;
	}
	worker.s.smtp_host = worker.host;
	worker.s.from = worker.from;
	worker.s.user = worker.user;
	worker.s.password = worker.password;
	worker.d = d;
	worker.stop = worker.wake = false;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&worker.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&worker.thread, NULL, run, NULL) != 0) {
		pthread_cond_destroy(&worker.cond);
		free_copies();
		err = EGOV_EINTERNAL;
		goto out;
	}
	worker.running = true;
	log_info("notify.start", "mail delivery to %s:%d every %d ms", worker.s.smtp_host, worker.s.smtp_port,
		 worker.s.poll_ms);
out:
	pthread_mutex_unlock(&worker.mu);
	return err;
}

void notify_stop(void)
{
	pthread_mutex_lock(&worker.mu);
	if (!worker.running) {
		pthread_mutex_unlock(&worker.mu);
		return;
	}
	worker.stop = true;
	atomic_store(&stopping, true);
	pthread_cond_signal(&worker.cond);
	pthread_mutex_unlock(&worker.mu);
	pthread_join(worker.thread, NULL);
	atomic_store(&stopping, false);
	pthread_mutex_lock(&worker.mu);
	pthread_cond_destroy(&worker.cond);
	free_copies();
	worker.running = false;
	pthread_mutex_unlock(&worker.mu);
}

void notify_wake(void)
{
	pthread_mutex_lock(&worker.mu);
	if (worker.running) {
		worker.wake = true;
		pthread_cond_signal(&worker.cond);
	}
	pthread_mutex_unlock(&worker.mu);
}
