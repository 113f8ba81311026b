/*
 * refusals.c: refused messages written to the audit log off the request
 * path. audit_append() waits for its commit; a refusal is answered at
 * once, so its record is queued here and the refusals job writes it. The
 * queue is bounded (EXCHANGE_REFUSALS_QUEUE_MAX) so a flood of bad
 * requests cannot grow memory: past it, the drop is logged. What the job
 * did not write when it stopped, the module's stop writes.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/json.h"
#include "core/log.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

/* Records one pass writes before it looks at the queue again. */
#define REFUSALS_BATCH 64

typedef struct refusal {
	char *actor, *action, *object, *details;
} refusal;

static struct {
	pthread_mutex_t mu;
	refusal q[EXCHANGE_REFUSALS_QUEUE_MAX];
	size_t head, len;
} rq = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void refusal_free(refusal *it)
{
	free(it->actor);
	free(it->action);
	free(it->object);
	free(it->details);
}

void gateway_audit(const char *actor, const char *action, const char *object, const char *details)
{
	refusal it = {strdup(actor), strdup(action), strdup(object), details ? strdup(details) : NULL};
	bool queued = false;

	if (it.actor && it.action && it.object && it.details) {
		pthread_mutex_lock(&rq.mu);
		if (rq.len < EXCHANGE_REFUSALS_QUEUE_MAX) {
			rq.q[(rq.head + rq.len) % EXCHANGE_REFUSALS_QUEUE_MAX] = it;
			rq.len++;
			queued = true;
		}
		pthread_mutex_unlock(&rq.mu);
	}
	if (!queued) {
		log_warn("exchange.audit_dropped", "%s %s: audit queue full or stopped", action, object);
		refusal_free(&it);
		return;
	}
	job_wake(&gateway_refusals_job);
}

void gateway_audit_refusal(const char *code, const char *client, const char *service, const char *mid,
			   const char *reason, const char *ip)
{
	buf d;
	jw w;

	buf_init(&d, AUDIT_DETAILS_MAX);
	jw_init(&w, &d);
	jw_obj_begin(&w);
	jw_kstr(&w, "client", client && *client ? client : "");
	jw_kstr(&w, "service", service ? service : "");
	jw_kstr(&w, "message_id", mid ? mid : "");
	jw_kstr(&w, "reason", reason ? reason : "");
	jw_kstr(&w, "ip", ip ? ip : "");
	jw_obj_end(&w);
	gateway_audit(client && exchange_id_valid(client, EXCHANGE_ID_SUBSYSTEM) ? client : "peer", code,
		      service && *service ? service : "exchange", w.err ? NULL : d.data);
	buf_release(&d);
}

/* Writes up to max queued records; how many were left. */
static size_t write_some(size_t max)
{
	refusal batch[REFUSALS_BATCH];
	size_t n = 0, i, left;

	if (max > REFUSALS_BATCH)
		max = REFUSALS_BATCH;
	pthread_mutex_lock(&rq.mu);
	while (rq.len && n < max) {
		batch[n++] = rq.q[rq.head];
		rq.head = (rq.head + 1) % EXCHANGE_REFUSALS_QUEUE_MAX;
		rq.len--;
	}
	left = rq.len;
	pthread_mutex_unlock(&rq.mu);
	for (i = 0; i < n; i++) {
		egov_err err = audit_available() ? audit_append(batch[i].actor, batch[i].action, batch[i].object,
							       batch[i].details, NULL)
						    : EGOV_EUNAVAILABLE;
		if (err)
			log_warn("exchange.audit_failed", "%s: %s", batch[i].action, egov_err_name(err));
		refusal_free(&batch[i]);
	}
	return left;
}

static int64_t refusals_pass(job_ctx *j)
{
	(void)j;
	return write_some(REFUSALS_BATCH) ? 0 : -1;
}

const job gateway_refusals_job = {.name = "exchange.refusals", .run = refusals_pass};

void gateway_refusals_flush(void)
{
	while (write_some(REFUSALS_BATCH)) {
	}
}
