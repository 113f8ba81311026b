/*
 * room.c: a provider subsystem's publish/subscribe room (GovStack
 * Information Mediator PubSub). The gateway verifies a call to one of the
 * reserved services (TLS peer, signature, replay, access right on
 * PROVIDER/api, /pub or /pull) and hands it here on the blocking pool; the
 * answer comes back as a status and body that the gateway signs and logs.
 *
 * The room's operations are route entries of their own, matched by the
 * kernel's router (core/router.h), which also decides 404 and 405 and the
 * Allow header. They are not in the module's HTTP route table: a call
 * reaches them only inside a verified exchange, so every answer, a 405
 * included, is signed and logged like the rest; an HTTP route would be
 * answered by the kernel before the signature is checked.
 *
 * The answers follow GovStack_IM_PubSub_API.yaml (paths, bodies, and its
 * status codes, including 204 for "no event type"); refusals are problem
 * documents with English titles, as the caller's language is not known on
 * the provider's side.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/router.h"
#include "core/timeutil.h"
#include "exchange/conf/conf.h"
#include "exchange/pubsub/pubsub_int.h"
#include "core/banned.h"

#define CT_JSON "application/json"
#define CT_PROBLEM "application/problem+json"

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

/* ---- a call and its answer ---------------------------------------------------------- */

typedef struct call {
	db_conn *c;
	const exchange_conf *cf; /* NULL: no registry check (tests) */
	const pubsub_call *k;
	const char *event_type;  /* {eventType}, when the route has one */
	const char *event_id;    /* {eventId} */
	arena ar;
	pubsub_answer *a;
} call;

static egov_err problem(call *k, int status, const char *code, const char *field)
{
	exchange_problem p = {.status = status, .code = code, .lang = "en", .field = field};

	k->a->status = status;
	k->a->content_type = CT_PROBLEM;
	return exchange_problem_json(&p, k->a->out);
}

static egov_err empty(call *k, int status)
{
	buf_reset(k->a->out);
	k->a->status = status;
	k->a->content_type = NULL;
	return EGOV_OK;
}

/* Starts a JSON answer; done() finishes it with its status. */
static jw *json_begin(call *k, jw *w)
{
	buf_reset(k->a->out);
	jw_init(w, k->a->out);
	return w;
}

static egov_err done(call *k, int status, const jw *w)
{
	k->a->status = status;
	k->a->content_type = CT_JSON;
	return w->err;
}

/* Maps a storage error to the problem for the object it concerns, or
 * returns it when it is no caller's fault. */
static egov_err store_error(call *k, egov_err err, const char *notfound_code, const char *conflict_code)
{
	if (err == EGOV_ENOTFOUND && notfound_code)
		return problem(k, 404, notfound_code, NULL);
	if (err == EGOV_ECONFLICT && conflict_code)
		return problem(k, 409, conflict_code, NULL);
	return err;
}

static bool is_owner(const call *k)
{
	return strcmp(k->k->client, k->k->provider) == 0;
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
	snprintf(id, sizeof id, "%s/%s", k->k->provider, name);
	return exchange_conf_event_type_known(k->cf, id);
}

static void write_sub(jw *w, const pubsub_sub *s)
{
	jw_obj_begin(w);
	jw_kstr(w, "id", s->id);
	jw_key(w, "subscriberId");
	jw_obj_begin(w);
	exchange_id_json(w, s->subscriber);
	jw_obj_end(w);
	jw_kstr(w, "eventType", s->event_type);
	jw_kstr(w, "delivery", s->push ? "PUSH" : "PULL");
	jw_key(w, "options");
	jw_obj_begin(w);
	jw_kint(w, "TTL", s->ttl_s);
	jw_kbool(w, "FIFO", s->fifo);
	jw_obj_end(w);
	jw_obj_end(w);
}

void pubsub_event_json(jw *w, const pubsub_event *e, bool with_status)
{
	char t[32];
	int i;

	jw_obj_begin(w);
	jw_kstr(w, "id", e->id);
	jw_kint(w, "sequence", e->seq);
	jw_key(w, "publisherId");
	jw_obj_begin(w);
	exchange_id_json(w, e->publisher);
	jw_obj_end(w);
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

/* ---- request bodies ------------------------------------------------------------------ */

/* Binds the call's body by f; a body that does not bind is answered 400
 * with the binder's code and field (*bad set). */
static egov_err bind_body(call *k, const json_field *f, size_t n, void *out, bool *bad)
{
	json_error jerr = {0};
	egov_err err;

	*bad = false;
	err = json_bind(&k->ar, k->k->body, k->k->len, f, n, out, &jerr);
	if (err == EGOV_EINVAL || (err == EGOV_ELIMIT && jerr.code)) {
		*bad = true;
		return problem(k, 400, jerr.code ? jerr.code : "json.malformed", jerr.field[0] ? jerr.field : NULL);
	}
	return err;
}

/* A body naming its event type and carrying a JSON document:
 * createEventType's schema, publishEvent's event. */
typedef struct typed_body {
	const char *eventType;
	const char *doc;
} typed_body;

#define TYPED_FIELDS(doc_name)                                                                                     \
	{                                                                                                          \
		{.name = "eventType", .type = JSON_T_STRING, .offset = offsetof(typed_body, eventType),          \
		 .required = true, .max_len = PUBSUB_NAME_MAX, .min_len = 1},                                      \
		{.name = doc_name, .type = JSON_T_RAW, .offset = offsetof(typed_body, doc), .required = true}      \
	}
static const json_field et_fields[] = TYPED_FIELDS("schema");
static const json_field pub_fields[] = TYPED_FIELDS("event");

typedef struct party_body {
	const char *instanceId, *memberClass, *memberCode, *applicationCode;
} party_body;

/* Each part of a subscriber's id, by GovStack's name for it. */
#define PART(nm) {.name = #nm, .type = JSON_T_STRING, .offset = offsetof(party_body, nm), .max_len = EXCHANGE_PART_MAX}
static const json_field party_fields[] = {PART(instanceId), PART(memberClass), PART(memberCode),
					  PART(applicationCode)};

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

/* ---- event types ---------------------------------------------------------------------- */

static egov_err event_type_list(call *k)
{
	int n = 0;
	jw w;
	egov_err err;

	if ((err = pubsub_event_type_list(k->c, k->k->provider, json_begin(k, &w), &n)))
		return err;
	return n ? done(k, 200, &w) : empty(k, 204);
}

/* Only the room's owner defines what may be published in it. */
static egov_err event_type_create(call *k)
{
	typed_body b = {0};
	bool bad = false;
	jw w;
	egov_err err;

	if (!is_owner(k))
		return problem(k, 403, "pubsub.not_owner", NULL);
	if ((err = bind_body(k, et_fields, 2, &b, &bad)) || bad)
		return err;
	if (!pubsub_name_valid(b.eventType))
		return problem(k, 400, "pubsub.event_type_invalid", "eventType");
	if (!json_object_text(b.doc) || strlen(b.doc) > PUBSUB_SCHEMA_MAX)
		return problem(k, 400, "pubsub.schema_invalid", "schema");
	if (!registered(k, b.eventType))
		return problem(k, 404, "exchange.unknown_event_type", "eventType");
	if ((err = pubsub_event_type_create(k->c, k->k->provider, b.eventType, b.doc)))
		return store_error(k, err, NULL, "pubsub.event_type_exists");
	log_info("exchange.pubsub", "event type %s/%s created", k->k->provider, b.eventType);
	json_begin(k, &w);
	jw_obj_begin(&w);
	jw_kstr(&w, "eventType", b.eventType);
	jw_key(&w, "schema");
	jw_raw(&w, b.doc);
	jw_obj_end(&w);
	return done(k, 200, &w);
}

static egov_err event_type_get(call *k)
{
	char *schema = NULL;
	jw w;
	egov_err err;

	err = pubsub_event_type_get(k->c, k->k->provider, k->event_type, &schema);
	if (err == EGOV_ENOTFOUND)
		return empty(k, 204); /* as the GovStack API says */
	if (err)
		return err;
	json_begin(k, &w);
	jw_obj_begin(&w);
	jw_kstr(&w, "eventType", k->event_type);
	jw_key(&w, "schema");
	jw_raw(&w, schema);
	jw_obj_end(&w);
	free(schema);
	return done(k, 200, &w);
}

static egov_err event_type_delete(call *k)
{
	egov_err err;

	if (!is_owner(k))
		return problem(k, 403, "pubsub.not_owner", NULL);
	err = pubsub_event_type_delete(k->c, k->k->provider, k->event_type);
	return err ? store_error(k, err, "pubsub.event_type_unknown", NULL) : empty(k, 204);
}

/* ---- subscriptions: the caller's own ---------------------------------------------------- */

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

static egov_err sub_list(call *k)
{
	list_ctx l;
	jw w;
	egov_err err;

	l = (list_ctx){.w = json_begin(k, &w)};
	jw_arr_begin(&w);
	if ((err = pubsub_sub_each(k->c, k->k->provider, k->k->client, list_one, &l)))
		return err;
	jw_arr_end(&w);
	/* GovStack answers 404 "Subscription missing" for none. */
	return l.n ? done(k, 200, &w) : problem(k, 404, "pubsub.subscription_unknown", NULL);
}

static egov_err sub_get(call *k)
{
	pubsub_sub s = {0};
	jw w;
	egov_err err;

	if ((err = pubsub_sub_get(k->c, k->k->provider, k->event_type, k->k->client, &s)))
		return store_error(k, err, "pubsub.subscription_unknown", NULL);
	write_sub(json_begin(k, &w), &s);
	return done(k, 200, &w);
}

static egov_err sub_delete(call *k)
{
	egov_err err = pubsub_sub_delete(k->c, k->k->provider, k->event_type, k->k->client);

	return err ? store_error(k, err, "pubsub.subscription_unknown", NULL) : empty(k, 204);
}

/* POST (addSub) and PATCH (patchSub). POST may come without a body:
 * subscribe with the defaults. */
static egov_err sub_write(call *k)
{
	bool create = strcmp(k->k->method, "POST") == 0, bad = false;
	sub_body b = {0};
	pubsub_sub s = {0};
	jw w;
	egov_err err;

	if (k->k->len || !create) {
		if ((err = bind_body(k, sub_fields, 5, &b, &bad)) || bad)
			return err;
		if (strcmp(b.eventType, k->event_type) != 0)
			return problem(k, 400, "pubsub.event_type_mismatch", "eventType");
		if (b.has_subscriber && !party_is(&b.subscriberId, k->k->client))
			return problem(k, 400, "pubsub.subscriber_mismatch", "subscriberId");
		if (b.has_delivery && strcmp(b.delivery, "PUSH") != 0 && strcmp(b.delivery, "PULL") != 0)
			return problem(k, 400, "pubsub.delivery_invalid", "delivery");
	}
	if (create) {
		if (!registered(k, k->event_type))
			return problem(k, 404, "exchange.unknown_event_type", NULL);
		s = (pubsub_sub){.push = true, .ttl_s = PUBSUB_TTL_DEFAULT};
		pubsub_copy(s.provider, sizeof s.provider, k->k->provider);
		pubsub_copy(s.event_type, sizeof s.event_type, k->event_type);
		pubsub_copy(s.subscriber, sizeof s.subscriber, k->k->client);
	} else if ((err = pubsub_sub_get(k->c, k->k->provider, k->event_type, k->k->client, &s))) {
		return store_error(k, err, "pubsub.subscription_unknown", NULL);
	}
	if (b.has_delivery)
		s.push = !strcmp(b.delivery, "PUSH");
	if (b.options.has_ttl)
		s.ttl_s = b.options.ttl;
	if (b.options.has_fifo)
		s.fifo = b.options.fifo;
	if (create) {
		if ((err = pubsub_sub_create(k->c, &s)))
			return store_error(k, err, "pubsub.event_type_unknown", "pubsub.subscription_exists");
		log_info("exchange.pubsub", "%s subscribed to %s/%s (%s)", s.subscriber, s.provider, s.event_type,
			 s.push ? "push" : "pull");
	} else if ((err = pubsub_sub_update(k->c, &s))) {
		return store_error(k, err, "pubsub.subscription_unknown", NULL);
	}
	write_sub(json_begin(k, &w), &s);
	/* The GovStack API answers 200 to addSub and 201 to patchSub. */
	return done(k, create ? 200 : 201, &w);
}

/* ---- publishing ------------------------------------------------------------------------- */

static egov_err publish(call *k)
{
	typed_body b = {0};
	int64_t seq = 0;
	int fanout = 0;
	bool bad = false;
	jw w;
	egov_err err;

	if ((err = bind_body(k, pub_fields, 2, &b, &bad)) || bad)
		return err;
	if (strcmp(b.eventType, k->event_type) != 0)
		return problem(k, 400, "pubsub.event_type_mismatch", "eventType");
	if (!json_object_text(b.doc) || strlen(b.doc) > PUBSUB_EVENT_MAX)
		return problem(k, 400, "pubsub.event_invalid", "event");
	if (!registered(k, k->event_type))
		return problem(k, 404, "exchange.unknown_event_type", NULL);
	/* The publishing exchange's message id is the event's id: it is
	 * already unique per client (replays are refused), and it is the id
	 * subscribers see in X-Road-Id. */
	if (!pubsub_event_id_valid(k->k->message_id))
		return problem(k, 400, "pubsub.event_id_invalid", "X-Road-Id");
	err = pubsub_event_publish(k->c, k->k->provider, k->event_type, k->k->client, k->k->message_id, b.doc,
				   time_now_us(), &seq, &fanout);
	if (err)
		return store_error(k, err, "pubsub.event_type_unknown", "pubsub.event_exists");
	if (fanout)
		job_wake(&pubsub_delivery_job);
	json_begin(k, &w);
	jw_obj_begin(&w);
	jw_kstr(&w, "id", k->k->message_id);
	jw_obj_end(&w);
	return done(k, 201, &w);
}

/* getStatus and deleteEvent: its publisher and the room's owner may see
 * or stop an event. */
static egov_err event_status(call *k)
{
	pubsub_event e = {0};
	bool del = strcmp(k->k->method, "DELETE") == 0;
	jw w;
	egov_err err;

	if (!pubsub_event_id_valid(k->event_id))
		return problem(k, 404, "pubsub.event_unknown", NULL);
	if ((err = pubsub_event_get(k->c, k->k->provider, k->event_type, k->event_id, &e)))
		return store_error(k, err, "pubsub.event_unknown", NULL);
	if (strcmp(k->k->client, e.publisher) != 0 && !is_owner(k)) {
		err = problem(k, 403, "pubsub.not_publisher", NULL);
	} else if (del) {
		err = pubsub_event_cancel(k->c, k->k->provider, k->event_type, k->event_id);
		err = err ? store_error(k, err, "pubsub.event_unknown", NULL) : empty(k, 204);
	} else {
		pubsub_event_json(json_begin(k, &w), &e, true);
		err = done(k, 200, &w);
	}
	pubsub_event_release(&e);
	return err;
}

/* ---- pulling ------------------------------------------------------------------------------- */

static egov_err pull_next(call *k)
{
	pubsub_delivery d = {0};
	jw w;
	egov_err err;

	if ((err = pubsub_pull_next(k->c, k->k->provider, k->event_type, k->k->client, time_now_us(), &d)))
		return store_error(k, err, "pubsub.no_event", "pubsub.not_pull");
	pubsub_event_json(json_begin(k, &w), &d.ev, false);
	err = done(k, 200, &w);
	pubsub_delivery_release(&d);
	return err;
}

static egov_err pull_confirm(call *k)
{
	egov_err err;

	if (!pubsub_event_id_valid(k->event_id))
		return problem(k, 404, "pubsub.no_event", NULL);
	err = pubsub_pull_confirm(k->c, k->k->provider, k->event_type, k->k->client, k->event_id);
	return err ? store_error(k, err, "pubsub.no_event", "pubsub.not_pull") : empty(k, 204);
}

/* ---- the room's routes ------------------------------------------------------------------------ */

typedef egov_err (*room_op)(call *k);

/* The room's operations: a route and what answers it, one line each. The
 * path is the service code, then what follows it. */
#define ROOM_ROUTES(X)                                                      \
	X(HTTP_GET, "/api/v1/eventType", event_type_list)                   \
	X(HTTP_POST, "/api/v1/eventType", event_type_create)                \
	X(HTTP_GET, "/api/v1/eventType/{eventType}", event_type_get)        \
	X(HTTP_DELETE, "/api/v1/eventType/{eventType}", event_type_delete)  \
	X(HTTP_GET, "/api/v1/subs", sub_list)                               \
	X(HTTP_GET, "/api/v1/subs/{eventType}", sub_get)                    \
	X(HTTP_POST, "/api/v1/subs/{eventType}", sub_write)                 \
	X(HTTP_PATCH, "/api/v1/subs/{eventType}", sub_write)                \
	X(HTTP_DELETE, "/api/v1/subs/{eventType}", sub_delete)              \
	X(HTTP_POST, "/pub/v1/{eventType}", publish)                        \
	X(HTTP_GET, "/pub/v1/{eventType}/{eventId}", event_status)          \
	X(HTTP_DELETE, "/pub/v1/{eventType}/{eventId}", event_status)       \
	X(HTTP_GET, "/pull/v1/{eventType}", pull_next)                      \
	X(HTTP_DELETE, "/pull/v1/{eventType}/{eventId}", pull_confirm)

/* Never called: the room's routes are matched by the gateway inside a
 * verified exchange, not served by the HTTP layer (the router wants a
 * handler on every route). */
static egov_err not_served(req *r)
{
	(void)r;
	return EGOV_EINTERNAL;
}

#define AS_ROUTE(m, p, op) {.method = m, .path = p, .name = #op, .handler = not_served},
#define AS_OP(m, p, op) op,
static const route room_routes[] = {ROOM_ROUTES(AS_ROUTE)};
static const room_op room_ops[] = {ROOM_ROUTES(AS_OP)};

static router *room_router;
static pthread_once_t room_once = PTHREAD_ONCE_INIT;

/* Compiled once; the table is ours, so a failure is a bug (logged, and
 * every call is answered 500). */
static void room_router_make(void)
{
	char errmsg[256];

	if (router_new(&room_router) ||
	    router_add(room_router, room_routes, sizeof room_routes / sizeof room_routes[0], errmsg, sizeof errmsg)) {
		log_error("exchange.pubsub", "the room's routes: %s", room_router ? errmsg : "out of memory");
		router_free(room_router);
		room_router = NULL;
	}
}

/* Splits "{code}{path}" without its query into segments (decoded
 * already); false for an empty segment ("//"), which no operation has. A
 * final '/' ends the path. */
static bool room_segments(const pubsub_call *pc, char *copy, size_t len, const char **segs, size_t *n)
{
	char *p, *slash;
	int w = snprintf(copy, len, "%s%.*s", pc->service_code, (int)strcspn(pc->path, "?"), pc->path);

	*n = 0;
	if (w < 0 || (size_t)w >= len)
		return false;
	for (p = copy; *p; p = slash + 1) {
		if (*p == '/' || *n == EGOV_PATH_SEGMENTS_MAX)
			return false;
		segs[(*n)++] = p;
		if (!(slash = strchr(p, '/')))
			break;
		*slash = '\0';
	}
	return true;
}

egov_err pubsub_room_answer(db_conn *c, const exchange_conf *cf, const pubsub_call *pc, pubsub_answer *a)
{
	call k = {.c = c, .cf = cf, .k = pc, .a = a};
	const char *segs[EGOV_PATH_SEGMENTS_MAX];
	char *copy = NULL;
	size_t nsegs = 0, len;
	route_match m;
	http_method meth;
	egov_err err;

	a->status = 500;
	a->content_type = NULL;
	a->allow[0] = '\0';
	arena_init(&k.ar, PUBSUB_BIND_ARENA_MAX);
	if (!exchange_pubsub_reserved(pc->service_code) || !exchange_id_valid(pc->provider, EXCHANGE_ID_SUBSYSTEM) ||
	    !exchange_id_valid(pc->client, EXCHANGE_ID_SUBSYSTEM) || !pc->path || !pc->method) {
		err = EGOV_EINVAL;
		goto out;
	}
	pthread_once(&room_once, room_router_make);
	if (!room_router) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	len = strlen(pc->service_code) + strlen(pc->path) + 1;
	if (!(copy = malloc(len))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	meth = http_method_parse(pc->method);
	if (!meth || !room_segments(pc, copy, len, segs, &nsegs)) {
		err = problem(&k, 404, "not_found", NULL);
		goto out;
	}
	switch (router_match(room_router, meth, segs, nsegs, &m)) {
	case 200:
		k.event_type = route_match_param(&m, "eventType");
		k.event_id = route_match_param(&m, "eventId");
		if (k.event_type && !pubsub_name_valid(k.event_type)) {
			err = problem(&k, 400, "pubsub.event_type_invalid", "eventType");
			break;
		}
		err = room_ops[m.index](&k);
		/* HEAD is GET without the body, which the answer's digest
		 * then covers. */
		if (!err && meth == HTTP_HEAD)
			buf_reset(a->out);
		break;
	case 405:
		http_allow_string(m.allow, a->allow, sizeof a->allow);
		err = problem(&k, 405, "method_not_allowed", NULL);
		break;
	default:
		err = problem(&k, 404, "not_found", NULL);
	}
out:
	free(copy);
	arena_release(&k.ar);
	return err;
}

/* ---- consumer side: recording a push URL ------------------------------------------------------ */

egov_err exchange_pubsub_consumer_note(db_conn *c, const char *client, const char *provider,
				       const char *service_code, const char *method, const char *path,
				       const char *push_url)
{
	char et[EXCHANGE_ID_MAX + PUBSUB_NAME_MAX + 2], name[PUBSUB_NAME_MAX + 1];
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
	if ((err = pubsub_push_url_set(c, client, et, push_url)))
		return err;
	log_info("exchange.pubsub", "push URL of %s for %s set by its subscription", client, et);
	return EGOV_OK;
}
