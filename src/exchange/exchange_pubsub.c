/*
 * exchange_pubsub.c: GovStack Information Mediator publish/subscribe. The
 * room of a provider subsystem lives on its gateway: the provider path of
 * the gateway verifies a call (TLS peer, signature, replay, access right on
 * PROVIDER/api, /pub or /pull) and hands it here on the blocking pool. The
 * answers follow GovStack_IM_PubSub_API.yaml (paths, bodies, and its
 * status codes, including 204 for "no event type"); refusals are problem
 * documents with English titles, as the caller's language is not known on
 * the provider's side.
 *
 * Also: the module descriptor (tables, the peer push route, the delivery
 * thread on gateways), the consumer-side hook that records push URLs and
 * `egov exchange pubsub ...`.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/i18n.h"
#include "core/log.h"
#include "core/module.h"
#include "core/timeutil.h"
#include "exchange/exchange_pubsub_int.h"
#include "core/banned.h"

#define CT_JSON "application/json"
#define CT_PROBLEM "application/problem+json"
/* Arena for binding one request body. */
#define BIND_ARENA_MAX (PUBSUB_EVENT_MAX * 2 + 64 * 1024)

bool exchange_pubsub_reserved(const char *service_code)
{
	return service_code &&
	       (!strcmp(service_code, "api") || !strcmp(service_code, "pub") || !strcmp(service_code, "pull"));
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '-';
}

bool pubsub_name_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++)
		if (n >= PUBSUB_NAME_MAX || !name_char(s[n]))
			return false;
	return n > 0;
}

bool pubsub_event_id_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	for (n = 0; s[n]; n++)
		if (n >= PUBSUB_EVENT_ID_MAX || !(name_char(s[n]) || s[n] == ':'))
			return false;
	return n > 0;
}

bool pubsub_url_valid(const char *url)
{
	const char *host, *end;
	size_t n;

	if (!url)
		return false;
	if (!strncmp(url, "http://", 7))
		host = url + 7;
	else if (!strncmp(url, "https://", 8))
		host = url + 8;
	else
		return false;
	for (n = 0; url[n]; n++)
		if (n >= PUBSUB_URL_MAX || (unsigned char)url[n] <= 0x20 || url[n] == 0x7f || url[n] == '\\')
			return false;
	end = host + strcspn(host, "/?#");
	if (end == host || memchr(host, '@', (size_t)(end - host)))
		return false;
	return strchr(url, '#') == NULL;
}

/* ---- answers -------------------------------------------------------------- */

typedef struct answer {
	int *status;
	buf *out;
	const char **ctype;
} answer;

static egov_err problem(const answer *a, int status, const char *code, const char *field, const char *detail)
{
	char key[96], type[96];
	jw w;

	snprintf(key, sizeof key, "problem.%s", code);
	snprintf(type, sizeof type, "urn:egov:problem:%s", code);
	buf_reset(a->out);
	jw_init(&w, a->out);
	jw_obj_begin(&w);
	jw_kstr(&w, "type", type);
	jw_kstr(&w, "title", i18n_text("en", key));
	jw_kint(&w, "status", status);
	jw_kstr(&w, "code", code);
	if (detail)
		jw_kstr(&w, "detail", detail);
	if (field)
		jw_kstr(&w, "field", field);
	jw_obj_end(&w);
	*a->status = status;
	*a->ctype = CT_PROBLEM;
	return w.err;
}

static egov_err empty(const answer *a, int status)
{
	buf_reset(a->out);
	*a->status = status;
	*a->ctype = NULL;
	return EGOV_OK;
}

static egov_err json_done(const answer *a, int status, jw *w)
{
	*a->status = status;
	*a->ctype = CT_JSON;
	return w->err;
}

/* Maps a storage error to the problem for the object it concerns, or
 * returns it when it is no caller's fault. */
static egov_err store_error(const answer *a, egov_err err, const char *notfound_code, const char *conflict_code)
{
	if (err == EGOV_ENOTFOUND && notfound_code)
		return problem(a, 404, notfound_code, NULL, NULL);
	if (err == EGOV_ECONFLICT && conflict_code)
		return problem(a, 409, conflict_code, NULL, NULL);
	return err;
}

/* {"instanceId":..,"memberClass":..,"memberCode":..,"applicationCode":..} */
static void write_party(jw *w, const char *key, const char *subsystem)
{
	static const char *const names[] = {"instanceId", "memberClass", "memberCode", "applicationCode"};
	const char *p = subsystem;
	char part[EXCHANGE_PART_MAX + 1];
	int i;

	jw_key(w, key);
	jw_obj_begin(w);
	for (i = 0; i < 4 && p; i++) {
		size_t n = strcspn(p, "/");
		snprintf(part, sizeof part, "%.*s", (int)(n < EXCHANGE_PART_MAX ? n : EXCHANGE_PART_MAX), p);
		jw_kstr(w, names[i], part);
		p = p[n] ? p + n + 1 : NULL;
	}
	jw_obj_end(w);
}

static void write_sub(jw *w, const pubsub_sub *s)
{
	jw_obj_begin(w);
	jw_kstr(w, "id", s->id);
	write_party(w, "subscriberId", s->subscriber);
	jw_kstr(w, "eventType", s->event_type);
	jw_kstr(w, "delivery", s->push ? "PUSH" : "PULL");
	jw_key(w, "options");
	jw_obj_begin(w);
	jw_kint(w, "TTL", s->ttl_s);
	jw_kbool(w, "FIFO", s->fifo);
	jw_obj_end(w);
	jw_obj_end(w);
}

/* An EventItem; with_status adds this room's delivery figures. */
static void write_event(jw *w, const pubsub_event *e, bool with_status)
{
	char t[32];
	int i;

	jw_obj_begin(w);
	jw_kstr(w, "id", e->id);
	jw_kint(w, "sequence", e->seq);
	write_party(w, "publisherId", e->publisher);
	jw_kstr(w, "eventType", e->event_type);
	jw_key(w, "event");
	jw_raw(w, e->payload);
	time_format_rfc3339(e->created_us, 3, t);
	jw_kstr(w, "publishedAt", t);
	if (with_status) {
		jw_kbool(w, "cancelled", e->cancelled);
		jw_key(w, "deliveries");
		jw_obj_begin(w);
		for (i = 0; i < 4; i++)
			jw_kint(w, pubsub_state_name((pubsub_state)i), e->count[i]);
		jw_obj_end(w);
	}
	jw_obj_end(w);
}

/* ---- request bodies -------------------------------------------------------- */

static egov_err bind_body(const answer *a, arena *ar, const void *body, size_t len, const json_field *f, size_t n,
		     void *out, bool *bad)
{
	json_error jerr = {0};
	egov_err err;

	*bad = false;
	err = json_bind(ar, body, len, f, n, out, &jerr);
	if (err == EGOV_EINVAL || (err == EGOV_ELIMIT && jerr.code)) {
		*bad = true;
		return problem(a, 400, jerr.code ? jerr.code : "json.malformed", jerr.field[0] ? jerr.field : NULL,
			       NULL);
	}
	return err;
}

typedef struct et_body {
	const char *eventType;
	const char *schema;
} et_body;

static const json_field et_fields[] = {
	{.name = "eventType", .type = JSON_T_STRING, .offset = offsetof(et_body, eventType), .required = true,
	 .max_len = PUBSUB_NAME_MAX, .min_len = 1},
	{.name = "schema", .type = JSON_T_RAW, .offset = offsetof(et_body, schema), .required = true},
};

typedef struct pub_body {
	const char *eventType;
	const char *event;
} pub_body;

static const json_field pub_fields[] = {
	{.name = "eventType", .type = JSON_T_STRING, .offset = offsetof(pub_body, eventType), .required = true,
	 .max_len = PUBSUB_NAME_MAX, .min_len = 1},
	{.name = "event", .type = JSON_T_RAW, .offset = offsetof(pub_body, event), .required = true},
};

typedef struct party_body {
	const char *instanceId, *memberClass, *memberCode, *applicationCode;
} party_body;

static const json_field party_fields[] = {
	{.name = "instanceId", .type = JSON_T_STRING, .offset = offsetof(party_body, instanceId),
	 .max_len = EXCHANGE_PART_MAX},
	{.name = "memberClass", .type = JSON_T_STRING, .offset = offsetof(party_body, memberClass),
	 .max_len = EXCHANGE_PART_MAX},
	{.name = "memberCode", .type = JSON_T_STRING, .offset = offsetof(party_body, memberCode),
	 .max_len = EXCHANGE_PART_MAX},
	{.name = "applicationCode", .type = JSON_T_STRING, .offset = offsetof(party_body, applicationCode),
	 .max_len = EXCHANGE_PART_MAX},
};

typedef struct opts_body {
	int64_t ttl;
	bool fifo;
	bool has_ttl, has_fifo;
} opts_body;

static const json_field opts_fields[] = {
	{.name = "TTL", .type = JSON_T_INT, .offset = offsetof(opts_body, ttl), .min = 1, .max = PUBSUB_TTL_MAX,
	 .present_offset = JSON_PRESENT(opts_body, has_ttl)},
	{.name = "FIFO", .type = JSON_T_BOOL, .offset = offsetof(opts_body, fifo),
	 .present_offset = JSON_PRESENT(opts_body, has_fifo)},
};

typedef struct sub_body {
	const char *id;
	party_body subscriberId;
	const char *eventType;
	const char *delivery;
	opts_body options;
	bool has_subscriber, has_delivery;
} sub_body;

static const json_field sub_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(sub_body, id), .max_len = 64},
	{.name = "subscriberId", .type = JSON_T_OBJECT, .offset = offsetof(sub_body, subscriberId),
	 .fields = party_fields, .nfields = 4, .present_offset = JSON_PRESENT(sub_body, has_subscriber)},
	{.name = "eventType", .type = JSON_T_STRING, .offset = offsetof(sub_body, eventType), .required = true,
	 .max_len = PUBSUB_NAME_MAX, .min_len = 1},
	{.name = "delivery", .type = JSON_T_STRING, .offset = offsetof(sub_body, delivery), .max_len = 8,
	 .present_offset = JSON_PRESENT(sub_body, has_delivery)},
	{.name = "options", .type = JSON_T_OBJECT, .offset = offsetof(sub_body, options), .fields = opts_fields,
	 .nfields = 2},
};

static bool json_object_text(const char *raw)
{
	return raw && raw[0] == '{';
}

/* ---- the room's operations ----------------------------------------------- */

typedef struct call {
	db_conn *c;
	const exchange_conf *cf; /* NULL: no registry check (tests) */
	const char *provider, *client, *method, *message_id;
	const void *body;
	size_t len;
	const char *seg[4]; /* path segments after /v1 */
	int nseg;
	arena ar;
	answer a;
} call;

static bool is(const call *k, const char *m)
{
	return !strcmp(k->method, m);
}

/* The registry decides which event types exist (the configuration's
 * event_types, OWNER/NAME); the room keeps their schemas, subscriptions
 * and events. Creating, subscribing to and publishing an event type the
 * configuration does not list is refused. */
static bool registered(const call *k, const char *name)
{
	char id[EXCHANGE_ID_MAX + PUBSUB_NAME_MAX + 2];

	if (!k->cf)
		return true;
	snprintf(id, sizeof id, "%s/%s", k->provider, name);
	return exchange_conf_event_type_known(k->cf, id);
}

static egov_err event_types(call *k)
{
	et_body b = {0};
	char *schema = NULL;
	bool bad = false;
	int n = 0;
	jw w;
	egov_err err = EGOV_OK;

	if (k->nseg == 1 && is(k, "GET")) {
		jw_init(&w, k->a.out);
		if ((err = pubsub_event_type_list(k->c, k->provider, &w, &n)))
			goto out;
		err = n ? json_done(&k->a, 200, &w) : empty(&k->a, 204);
		goto out;
	}
	if (k->nseg == 1 && is(k, "POST")) {
		/* Only the room's owner defines what may be published in it. */
		if (strcmp(k->client, k->provider) != 0) {
			err = problem(&k->a, 403, "pubsub.not_owner", NULL, NULL);
			goto out;
		}
		if ((err = bind_body(&k->a, &k->ar, k->body, k->len, et_fields, 2, &b, &bad)) || bad)
			goto out;
		if (!pubsub_name_valid(b.eventType)) {
			err = problem(&k->a, 400, "pubsub.event_type_invalid", "eventType", NULL);
			goto out;
		}
		if (!json_object_text(b.schema) || strlen(b.schema) > PUBSUB_SCHEMA_MAX) {
			err = problem(&k->a, 400, "pubsub.schema_invalid", "schema", NULL);
			goto out;
		}
		if (!registered(k, b.eventType)) {
			err = problem(&k->a, 404, "exchange.unknown_event_type", "eventType", NULL);
			goto out;
		}
		err = pubsub_event_type_create(k->c, k->provider, b.eventType, b.schema);
		if (err) {
			err = store_error(&k->a, err, NULL, "pubsub.event_type_exists");
			goto out;
		}
		log_info("exchange.pubsub", "event type %s/%s created", k->provider, b.eventType);
		jw_init(&w, k->a.out);
		jw_obj_begin(&w);
		jw_kstr(&w, "eventType", b.eventType);
		jw_key(&w, "schema");
		jw_raw(&w, b.schema);
		jw_obj_end(&w);
		err = json_done(&k->a, 200, &w);
		goto out;
	}
	if (k->nseg == 2 && (is(k, "GET") || is(k, "DELETE"))) {
		if (!pubsub_name_valid(k->seg[1])) {
			err = problem(&k->a, 400, "pubsub.event_type_invalid", "eventType", NULL);
			goto out;
		}
		if (is(k, "DELETE")) {
			if (strcmp(k->client, k->provider) != 0) {
				err = problem(&k->a, 403, "pubsub.not_owner", NULL, NULL);
				goto out;
			}
			err = pubsub_event_type_delete(k->c, k->provider, k->seg[1]);
			err = err ? store_error(&k->a, err, "pubsub.event_type_unknown", NULL) : empty(&k->a, 204);
			goto out;
		}
		err = pubsub_event_type_get(k->c, k->provider, k->seg[1], &schema);
		if (err == EGOV_ENOTFOUND) {
			err = empty(&k->a, 204); /* as the GovStack API says */
			goto out;
		}
		if (err)
			goto out;
		jw_init(&w, k->a.out);
		jw_obj_begin(&w);
		jw_kstr(&w, "eventType", k->seg[1]);
		jw_key(&w, "schema");
		jw_raw(&w, schema);
		jw_obj_end(&w);
		err = json_done(&k->a, 200, &w);
		goto out;
	}
	err = problem(&k->a, k->nseg <= 2 ? 405 : 404, k->nseg <= 2 ? "method_not_allowed" : "not_found", NULL, NULL);
out:
	free(schema);
	return err;
}

/* Whether the subscriberId of a body (when given) names the caller. */
static bool party_is(const party_body *p, const char *subsystem)
{
	const char *v[4] = {p->instanceId, p->memberClass, p->memberCode, p->applicationCode};
	const char *s = subsystem;
	int i;

	for (i = 0; i < 4; i++) {
		size_t n = strcspn(s, "/");
		if (v[i] && (strlen(v[i]) != n || strncmp(v[i], s, n) != 0))
			return false;
		s += n;
		if (*s)
			s++;
	}
	return true;
}

typedef struct list_ctx {
	jw *w;
	int n;
} list_ctx;

static int list_one(void *ctx, const pubsub_sub *s)
{
	list_ctx *l = ctx;
	write_sub(l->w, s);
	l->n++;
	return 0;
}

static egov_err subscriptions(call *k)
{
	sub_body b = {0};
	pubsub_sub s = {0};
	const char *et = k->nseg == 2 ? k->seg[1] : NULL;
	bool bad = false;
	list_ctx l;
	jw w;
	egov_err err = EGOV_OK;

	if (k->nseg == 1) {
		if (!is(k, "GET"))
			return problem(&k->a, 405, "method_not_allowed", NULL, NULL);
		jw_init(&w, k->a.out);
		l = (list_ctx){.w = &w};
		jw_arr_begin(&w);
		if ((err = pubsub_sub_each(k->c, k->provider, k->client, list_one, &l)))
			return err;
		jw_arr_end(&w);
		/* GovStack answers 404 "Subscription missing" for none. */
		return l.n ? json_done(&k->a, 200, &w) : problem(&k->a, 404, "pubsub.subscription_unknown", NULL, NULL);
	}
	if (k->nseg != 2)
		return problem(&k->a, 404, "not_found", NULL, NULL);
	if (!pubsub_name_valid(et))
		return problem(&k->a, 400, "pubsub.event_type_invalid", "eventType", NULL);
	if (is(k, "GET") || is(k, "DELETE")) {
		if (is(k, "DELETE")) {
			err = pubsub_sub_delete(k->c, k->provider, et, k->client);
			return err ? store_error(&k->a, err, "pubsub.subscription_unknown", NULL) : empty(&k->a, 204);
		}
		if ((err = pubsub_sub_get(k->c, k->provider, et, k->client, &s)))
			return store_error(&k->a, err, "pubsub.subscription_unknown", NULL);
		jw_init(&w, k->a.out);
		write_sub(&w, &s);
		return json_done(&k->a, 200, &w);
	}
	if (!is(k, "POST") && !is(k, "PATCH"))
		return problem(&k->a, 405, "method_not_allowed", NULL, NULL);
	/* POST may come without a body: subscribe with the defaults. */
	if (k->len || is(k, "PATCH")) {
		if ((err = bind_body(&k->a, &k->ar, k->body, k->len, sub_fields, 5, &b, &bad)) || bad)
			return err;
		if (strcmp(b.eventType, et) != 0)
			return problem(&k->a, 400, "pubsub.event_type_mismatch", "eventType", NULL);
		if (b.has_subscriber && !party_is(&b.subscriberId, k->client))
			return problem(&k->a, 400, "pubsub.subscriber_mismatch", "subscriberId", NULL);
		if (b.has_delivery && strcmp(b.delivery, "PUSH") != 0 && strcmp(b.delivery, "PULL") != 0)
			return problem(&k->a, 400, "pubsub.delivery_invalid", "delivery", NULL);
	}
	if (is(k, "POST") && !registered(k, et))
		return problem(&k->a, 404, "exchange.unknown_event_type", NULL, NULL);
	if (is(k, "POST")) {
		s = (pubsub_sub){.push = true, .ttl_s = PUBSUB_TTL_DEFAULT};
		snprintf(s.provider, sizeof s.provider, "%s", k->provider);
		snprintf(s.event_type, sizeof s.event_type, "%s", et);
		snprintf(s.subscriber, sizeof s.subscriber, "%s", k->client);
	} else if ((err = pubsub_sub_get(k->c, k->provider, et, k->client, &s))) {
		return store_error(&k->a, err, "pubsub.subscription_unknown", NULL);
	}
	if (b.has_delivery)
		s.push = !strcmp(b.delivery, "PUSH");
	if (b.options.has_ttl)
		s.ttl_s = b.options.ttl;
	if (b.options.has_fifo)
		s.fifo = b.options.fifo;
	if (is(k, "POST")) {
		err = pubsub_sub_create(k->c, &s);
		if (err)
			return store_error(&k->a, err, "pubsub.event_type_unknown", "pubsub.subscription_exists");
		log_info("exchange.pubsub", "%s subscribed to %s/%s (%s)", s.subscriber, s.provider, s.event_type,
			 s.push ? "push" : "pull");
	} else if ((err = pubsub_sub_update(k->c, &s))) {
		return store_error(&k->a, err, "pubsub.subscription_unknown", NULL);
	}
	jw_init(&w, k->a.out);
	write_sub(&w, &s);
	/* The GovStack API answers 200 to addSub and 201 to patchSub. */
	return json_done(&k->a, is(k, "POST") ? 200 : 201, &w);
}

static egov_err publish(call *k)
{
	pub_body b = {0};
	pubsub_event e = {0};
	int64_t seq = 0;
	int fanout = 0;
	bool bad = false;
	jw w;
	egov_err err = EGOV_OK;

	if (k->nseg < 2 || k->nseg > 3)
		return problem(&k->a, 404, "not_found", NULL, NULL);
	if (!pubsub_name_valid(k->seg[1]))
		return problem(&k->a, 400, "pubsub.event_type_invalid", "eventType", NULL);
	if (k->nseg == 3) {
		if (!is(k, "GET") && !is(k, "DELETE"))
			return problem(&k->a, 405, "method_not_allowed", NULL, NULL);
		if (!pubsub_event_id_valid(k->seg[2]))
			return problem(&k->a, 404, "pubsub.event_unknown", NULL, NULL);
		if ((err = pubsub_event_get(k->c, k->provider, k->seg[1], k->seg[2], &e)))
			return store_error(&k->a, err, "pubsub.event_unknown", NULL);
		/* Its publisher and the room's owner may see or stop it. */
		if (strcmp(k->client, e.publisher) != 0 && strcmp(k->client, k->provider) != 0) {
			err = problem(&k->a, 403, "pubsub.not_publisher", NULL, NULL);
		} else if (is(k, "DELETE")) {
			err = pubsub_event_cancel(k->c, k->provider, k->seg[1], k->seg[2]);
			err = err ? store_error(&k->a, err, "pubsub.event_unknown", NULL) : empty(&k->a, 204);
		} else {
			jw_init(&w, k->a.out);
			write_event(&w, &e, true);
			err = json_done(&k->a, 200, &w);
		}
		pubsub_event_release(&e);
		return err;
	}
	if (!is(k, "POST"))
		return problem(&k->a, 405, "method_not_allowed", NULL, NULL);
	if ((err = bind_body(&k->a, &k->ar, k->body, k->len, pub_fields, 2, &b, &bad)) || bad)
		return err;
	if (strcmp(b.eventType, k->seg[1]) != 0)
		return problem(&k->a, 400, "pubsub.event_type_mismatch", "eventType", NULL);
	if (!json_object_text(b.event) || strlen(b.event) > PUBSUB_EVENT_MAX)
		return problem(&k->a, 400, "pubsub.event_invalid", "event", NULL);
	if (!registered(k, k->seg[1]))
		return problem(&k->a, 404, "exchange.unknown_event_type", NULL, NULL);
	/* The publishing exchange's message id is the event's id: it is
	 * already unique per client (replays are refused), and it is the id
	 * subscribers see in X-Road-Id. */
	if (!pubsub_event_id_valid(k->message_id))
		return problem(&k->a, 400, "pubsub.event_id_invalid", "X-Road-Id", NULL);
	err = pubsub_event_publish(k->c, k->provider, k->seg[1], k->client, k->message_id, b.event, time_now_us(),
				   &seq, &fanout);
	if (err)
		return store_error(&k->a, err, "pubsub.event_type_unknown", "pubsub.event_exists");
	if (fanout)
		pubsub_delivery_wake();
	jw_init(&w, k->a.out);
	jw_obj_begin(&w);
	jw_kstr(&w, "id", k->message_id);
	jw_obj_end(&w);
	return json_done(&k->a, 201, &w);
}

static egov_err pull(call *k)
{
	pubsub_delivery d = {0};
	jw w;
	egov_err err;

	if (k->nseg < 2 || k->nseg > 3)
		return problem(&k->a, 404, "not_found", NULL, NULL);
	if (!pubsub_name_valid(k->seg[1]))
		return problem(&k->a, 400, "pubsub.event_type_invalid", "eventType", NULL);
	if (k->nseg == 3) {
		if (!is(k, "DELETE"))
			return problem(&k->a, 405, "method_not_allowed", NULL, NULL);
		if (!pubsub_event_id_valid(k->seg[2]))
			return problem(&k->a, 404, "pubsub.no_event", NULL, NULL);
		err = pubsub_pull_confirm(k->c, k->provider, k->seg[1], k->client, k->seg[2]);
		return err ? store_error(&k->a, err, "pubsub.no_event", "pubsub.not_pull") : empty(&k->a, 204);
	}
	if (!is(k, "GET"))
		return problem(&k->a, 405, "method_not_allowed", NULL, NULL);
	if ((err = pubsub_pull_next(k->c, k->provider, k->seg[1], k->client, time_now_us(), &d)))
		return store_error(&k->a, err, "pubsub.no_event", "pubsub.not_pull");
	jw_init(&w, k->a.out);
	write_event(&w, &d.ev, false);
	err = json_done(&k->a, 200, &w);
	pubsub_delivery_release(&d);
	return err;
}

egov_err pubsub_handle_on(db_conn *c, const exchange_conf *cf, const char *provider, const char *client, const char *service_code,
			  const char *method, const char *path, const char *message_id, const void *body,
			  size_t len, int *status, buf *out, const char **content_type)
{
	call k = {.c = c, .cf = cf, .provider = provider, .client = client, .method = method, .message_id = message_id,
		  .body = body, .len = len, .a = {.status = status, .out = out, .ctype = content_type}};
	char *copy = NULL, *p, *save = NULL;
	egov_err err;

	*status = 500;
	*content_type = NULL;
	arena_init(&k.ar, BIND_ARENA_MAX);
	if (!exchange_pubsub_reserved(service_code) || !exchange_id_valid(provider, EXCHANGE_ID_SUBSYSTEM) ||
	    !exchange_id_valid(client, EXCHANGE_ID_SUBSYSTEM) || !path) {
		err = EGOV_EINVAL;
		goto out;
	}
	/* The segments after /v1, without the query (no operation takes
	 * one). Empty segments ("//") are not a path of this API. */
	copy = strndup(path, strcspn(path, "?"));
	if (!copy) {
		err = EGOV_ENOMEM;
		goto out;
	}
	p = copy;
	if (strncmp(p, "/v1/", 4) != 0 || strstr(p, "//")) {
		err = problem(&k.a, 404, "not_found", NULL, NULL);
		goto out;
	}
	for (p = strtok_r(p + 4, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (k.nseg == 4) {
			err = problem(&k.a, 404, "not_found", NULL, NULL);
			goto out;
		}
		k.seg[k.nseg++] = p;
	}
	if (!strcmp(service_code, "api")) {
		if (k.nseg && !strcmp(k.seg[0], "eventType"))
			err = event_types(&k);
		else if (k.nseg && !strcmp(k.seg[0], "subs"))
			err = subscriptions(&k);
		else
			err = problem(&k.a, 404, "not_found", NULL, NULL);
		goto out;
	}
	/* pub and pull: /v1/{eventType}[/{eventId}]; seg[0] stands for
	 * "v1"'s successor, so shift the frame by one. */
	if (k.nseg < 1 || k.nseg > 2) {
		err = problem(&k.a, 404, "not_found", NULL, NULL);
		goto out;
	}
	memmove(&k.seg[1], &k.seg[0], sizeof k.seg[0] * 2);
	k.seg[0] = service_code;
	k.nseg++;
	err = !strcmp(service_code, "pub") ? publish(&k) : pull(&k);
out:
	free(copy);
	arena_release(&k.ar);
	return err;
}

egov_err exchange_pubsub_handle(const char *provider, const char *client, const char *service_code,
				const char *method, const char *path, const char *message_id, const void *body,
				size_t len, int *status, buf *out, const char **content_type)
{
	exchange_conf *cf = NULL;
	const char *why = NULL;
	db_conn *c = NULL;
	egov_err err;

	if ((err = db_thread_conn(exchange_db(), &c)))
		return err;
	/* The provider path holds a configuration; should it have expired
	 * in between, refuse rather than skip the registry check. */
	if (!(cf = exchange_conf_get(&why)))
		return EGOV_EUNAVAILABLE;
	err = pubsub_handle_on(c, cf, provider, client, service_code, method, path, message_id, body, len, status,
			       out, content_type);
	exchange_conf_put(cf);
	return err;
}

/* ---- consumer side: recording a push URL ------------------------------------ */

egov_err exchange_pubsub_consumer_note(const char *client, const char *provider, const char *service_code,
				       const char *method, const char *path, const char *push_url)
{
	char et[EXCHANGE_ID_MAX + PUBSUB_NAME_MAX + 2], name[PUBSUB_NAME_MAX + 1];
	db_conn *c = NULL;
	size_t n;
	egov_err err;

	if (!push_url)
		return EGOV_OK;
	if (!service_code || strcmp(service_code, "api") != 0 || !path || strncmp(path, "/v1/subs/", 9) != 0 ||
	    (strcmp(method, "POST") != 0 && strcmp(method, "PATCH") != 0))
		return EGOV_OK;
	n = strcspn(path + 9, "/?");
	if (n == 0 || n > PUBSUB_NAME_MAX || (path[9 + n] && path[9 + n] != '?'))
		return EGOV_OK; /* not a subscription: the provider will say so */
	snprintf(name, sizeof name, "%.*s", (int)n, path + 9);
	if (!pubsub_name_valid(name) || !pubsub_url_valid(push_url))
		return EGOV_EINVAL;
	snprintf(et, sizeof et, "%s/%s", provider, name);
	if ((err = db_thread_conn(exchange_db(), &c)))
		return err;
	if ((err = pubsub_push_url_set(c, client, et, push_url)))
		return err;
	log_info("exchange.pubsub", "push URL of %s for %s set by its subscription", client, et);
	return EGOV_OK;
}

/* ---- the module --------------------------------------------------------------- */

egov_err pubsub_start(const egov_config *cfg)
{
	if (!cfg->role || strcmp(cfg->role, "gateway") != 0)
		return EGOV_OK;
	return pubsub_delivery_start(app()->db, cfg);
}

/* ---- egov exchange pubsub ... ----------------------------------------------------- */

static int usage(void)
{
	fprintf(stderr, "usage: egov exchange pubsub push-url set SUBSYSTEM EVENTTYPE URL\n"
			"       egov exchange pubsub push-url delete SUBSYSTEM EVENTTYPE\n"
			"       egov exchange pubsub push-url list\n"
			"       egov exchange pubsub status\n"
			"EVENTTYPE is the provider subsystem and the name: MO/GOV/DSAJ/REG/person-changed\n");
	return 2;
}

static int print_push_url(void *ctx, const char *subscriber, const char *et, const char *url)
{
	(void)ctx;
	printf("%s\t%s\t%s\n", subscriber, et, url);
	return 0;
}

/* Whether s is PROVIDER_SUBSYSTEM/NAME. */
static bool event_type_id_valid(const char *s)
{
	char sub[EXCHANGE_ID_MAX];
	const char *slash = strrchr(s, '/');

	if (!slash || (size_t)(slash - s) >= sizeof sub)
		return false;
	snprintf(sub, sizeof sub, "%.*s", (int)(slash - s), s);
	return exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM) && pubsub_name_valid(slash + 1);
}

int exchange_pubsub_command(int argc, char **argv, db *d)
{
	db_conn *c = NULL;
	int64_t count[4];
	egov_err err;
	int rc = 1, i;

	if (argc < 2)
		return usage();
	if ((err = db_thread_conn(d, &c))) {
		fprintf(stderr, "egov: cannot open the database: %s\n", egov_err_name(err));
		return 1;
	}
	if (!strcmp(argv[1], "push-url") && argc == 6 && !strcmp(argv[2], "set")) {
		if (!exchange_id_valid(argv[3], EXCHANGE_ID_SUBSYSTEM) || !event_type_id_valid(argv[4])) {
			fprintf(stderr, "egov: SUBSYSTEM or EVENTTYPE is not a valid identifier\n");
			return 2;
		}
		if (!pubsub_url_valid(argv[5])) {
			fprintf(stderr, "egov: URL must be an http(s) URL without user info\n");
			return 2;
		}
		err = pubsub_push_url_set(c, argv[3], argv[4], argv[5]);
	} else if (!strcmp(argv[1], "push-url") && argc == 5 && !strcmp(argv[2], "delete")) {
		err = pubsub_push_url_delete(c, argv[3], argv[4]);
	} else if (!strcmp(argv[1], "push-url") && argc == 3 && !strcmp(argv[2], "list")) {
		err = pubsub_push_url_each(c, print_push_url, NULL);
	} else if (!strcmp(argv[1], "status") && argc == 2) {
		if (!(err = pubsub_outbox_counts(c, count)))
			for (i = 0; i < 4; i++)
				printf("%s\t%lld\n", pubsub_state_name((pubsub_state)i), (long long)count[i]);
	} else {
		return usage();
	}
	if (err == EGOV_ENOTFOUND)
		fprintf(stderr, "egov: no such push URL\n");
	else if (err)
		fprintf(stderr, "egov: %s: %s\n", egov_err_name(err), db_conn_errmsg(c));
	else
		rc = 0;
	return rc;
}
