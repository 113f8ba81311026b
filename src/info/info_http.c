/*
 * info_http.c: the notices API (list, read, publish), the module's
 * migrations and its demo data. Validation happens here, at the edge;
 * storage is in notice_store.c. Who may publish is the route's (.auth,
 * .perm); a notice and its audit record, naming who published it, commit
 * in one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "core/app.h"
#include "core/limits.h"
#include "core/module.h"
#include "core/timeutil.h"
#include "info/info.h"
#include "info/info_limits.h"
#include "core/banned.h"


static void write_notice(jw *w, const notice *n)
{
	static const char *const langs[3] = {"zh-Hant", "pt", "en"};
	int i;

	jw_obj_begin(w);
	jw_kstr(w, "id", n->id);
	jw_kstr(w, "category", n->category);
	jw_key(w, "title");
	jw_obj_begin(w);
	for (i = 0; i < 3; i++)
		jw_kstr(w, langs[i], n->title[i]);
	jw_obj_end(w);
	jw_key(w, "body");
	jw_obj_begin(w);
	for (i = 0; i < 3; i++)
		jw_kstr(w, langs[i], n->body[i]);
	jw_obj_end(w);
	jw_kstr(w, "published_at", n->published_at);
	jw_kstr(w, "created_at", n->created_at);
	jw_obj_end(w);
}

static egov_err conn(db_conn **c)
{
	return db_thread_conn(app()->db, c);
}

static egov_err notice_get(req *r)
{
	const char *id = req_param(r, "id");
	char etag[20];
	db_conn *c = NULL;
	notice n;
	buf b;
	jw w;
	egov_err err;

	if (!uuid_valid(id))
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if ((err = conn(&c)))
		return err;
	err = info_notice_get(c, req_arena(r), id, &n);
	if (err == EGOV_ENOTFOUND)
		return resp_problem(r, 404, "not_found", NULL, NULL);
	if (err)
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	write_notice(&w, &n);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	http_etag(b.data, b.len, etag);
	resp_header(r, "ETag", etag);
	if (req_etag_matches(r, etag)) {
		buf_release(&b);
		return resp_empty(r, 304);
	}
	return resp_json(r, 200, &b);
}

/* Cursor: "<published_at>,<id>" of the last item on the previous page. */
static int parse_cursor(arena *a, const char *s, const char **pub, const char **id)
{
	const char *comma = strrchr(s, ',');
	int64_t us;
	char *p;

	if (!comma || strlen(comma + 1) != 36 || !uuid_valid(comma + 1))
		return -1;
	p = arena_strndup(a, s, (size_t)(comma - s));
	if (!p || time_parse_rfc3339(p, &us))
		return -1;
	*pub = p;
	*id = comma + 1;
	return 0;
}

static egov_err notice_list(req *r)
{
	const char *ls = req_query(r, "limit"), *cs = req_query(r, "cursor");
	const char *after_pub = NULL, *after_id = NULL;
	notice items[INFO_LIST_LIMIT_MAX + 1];
	long limit = INFO_LIST_LIMIT_DEFAULT;
	db_conn *c = NULL;
	int count = 0, i;
	buf b;
	jw w;
	egov_err err;

	if (ls) {
		char *end;
		limit = strtol(ls, &end, 10);
		if (!*ls || *end || limit < 1 || limit > INFO_LIST_LIMIT_MAX)
			return resp_problem(r, 400, "validation.invalid_field", "limit", "1..100");
	}
	if (cs && parse_cursor(req_arena(r), cs, &after_pub, &after_id))
		return resp_problem(r, 400, "validation.invalid_field", "cursor", NULL);
	if ((err = conn(&c)))
		return err;
	/* One more than asked tells whether there is a next page. */
	err = info_notice_list(c, req_arena(r), after_pub, after_id, (int)limit + 1,
				items, &count);
	if (err)
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_key(&w, "items");
	jw_arr_begin(&w);
	for (i = 0; i < count && i < limit; i++)
		write_notice(&w, &items[i]);
	jw_arr_end(&w);
	if (count > limit) {
		char cursor[80];
		snprintf(cursor, sizeof cursor, "%s,%s", items[limit - 1].published_at, items[limit - 1].id);
		jw_kstr(&w, "next_cursor", cursor);
	} else {
		jw_key(&w, "next_cursor");
		jw_null(&w);
	}
	jw_obj_end(&w);
	return resp_jw(r, 200, &w);
}

typedef struct texts {
	const char *zh, *pt, *en;
} texts;

typedef struct notice_in {
	const char *category;
	texts title, body;
	const char *published_at;
} notice_in;

#define TEXT_FIELDS(max)                                                                              \
	{                                                                                             \
		{.name = "zh-Hant", .type = JSON_T_STRING, .offset = offsetof(texts, zh), .required = true, \
		 .min_len = 1, .max_len = (max)},                                                     \
		{.name = "pt", .type = JSON_T_STRING, .offset = offsetof(texts, pt), .required = true,     \
		 .min_len = 1, .max_len = (max)},                                                     \
		{.name = "en", .type = JSON_T_STRING, .offset = offsetof(texts, en), .required = true,     \
		 .min_len = 1, .max_len = (max)},                                                     \
	}

static const json_field title_fields[] = TEXT_FIELDS(INFO_TITLE_MAX * 4);
static const json_field body_fields[] = TEXT_FIELDS(INFO_BODY_MAX * 4);

static const json_field notice_fields[] = {
	{.name = "category", .type = JSON_T_STRING, .offset = offsetof(notice_in, category), .required = true,
	 .max_len = INFO_CATEGORY_FIELD_MAX},
	{.name = "title", .type = JSON_T_OBJECT, .offset = offsetof(notice_in, title), .required = true,
	 .fields = title_fields, .nfields = 3},
	{.name = "body", .type = JSON_T_OBJECT, .offset = offsetof(notice_in, body), .required = true,
	 .fields = body_fields, .nfields = 3},
	{.name = "published_at", .type = JSON_T_STRING, .offset = offsetof(notice_in, published_at),
	 .max_len = INFO_TIME_FIELD_MAX},
};

/* Characters, not bytes: the limits people read in the API description. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static const char *check_texts(const texts *t, size_t max, const char *prefix, char *field, size_t flen)
{
	const char *vals[3] = {t->zh, t->pt, t->en};
	static const char *const names[3] = {"zh-Hant", "pt", "en"};
	int i;

	for (i = 0; i < 3; i++) {
		if (utf8_chars(vals[i]) > max) {
			snprintf(field, flen, "%s.%s", prefix, names[i]);
			return "json.too_long";
		}
	}
	return NULL;
}

static egov_err notice_create(req *r)
{
	notice_in in = {0};
	notice n = {0};
	char field[64], pub[32], loc[128], object[64], details[128];
	const char *code;
	db_conn *c = NULL;
	buf b;
	jw w;
	egov_err err;

	if ((err = req_json(r, notice_fields, sizeof notice_fields / sizeof notice_fields[0], &in)))
		return err;
	if (!info_category_valid(in.category))
		return resp_problem(r, 400, "validation.invalid_field", "category",
				    "news, food_safety, traffic or heritage");
	if ((code = check_texts(&in.title, INFO_TITLE_MAX, "title", field, sizeof field)) ||
	    (code = check_texts(&in.body, INFO_BODY_MAX, "body", field, sizeof field)))
		return resp_problem(r, 400, code, field, NULL);
	if (in.published_at) {
		int64_t us;
		if (time_parse_rfc3339(in.published_at, &us))
			return resp_problem(r, 400, "validation.invalid_field", "published_at", "RFC 3339 date-time");
		time_format_rfc3339(us, 6, pub);
		n.published_at = pub;
	}
	n.category = in.category;
	n.title[0] = in.title.zh;
	n.title[1] = in.title.pt;
	n.title[2] = in.title.en;
	n.body[0] = in.body.zh;
	n.body[1] = in.body.pt;
	n.body[2] = in.body.en;
	/* The notice and its audit record, naming who published it, commit
	 * together: no notice is ever served without its record. */
	if ((err = conn(&c)) || (err = db_begin(c)))
		return err;
	if (!(err = info_notice_create(c, req_arena(r), &n)) && audit_available()) {
		snprintf(object, sizeof object, "notice:%s", n.id);
		snprintf(details, sizeof details, "{\"category\":\"%s\",\"request_id\":\"%s\"}", n.category,
			 req_id(r));
		err = audit_append_tx(c, req_principal(r)->actor, "info.notice.create", object, details, NULL);
	}
	if ((err = db_end(c, err)))
		return err;
	buf_init(&b, EGOV_RESPONSE_MAX);
	jw_init(&w, &b);
	write_notice(&w, &n);
	if (w.err) {
		buf_release(&b);
		return w.err;
	}
	snprintf(loc, sizeof loc, "/api/v1/notices/%s", n.id);
	resp_header(r, "Location", loc);
	return resp_json(r, 201, &b);
}

static const route routes[] = {
	{.method = HTTP_GET, .path = "/api/v1/notices", .handler = notice_list},
	{.method = HTTP_GET, .path = "/api/v1/notices/{id}", .handler = notice_get},
	/* Publishing: staff with the permission (with the session's CSRF
	 * token), an application's access token for them, or the operator. */
	{.method = HTTP_POST, .path = "/api/v1/notices", .auth = AUTH_API | AUTH_CSRF, .perm = "info.notice.write",
	 .body_max = INFO_NOTICE_BODY_MAX, .handler = notice_create},
};

static const db_migration migrations[] = {
	{.version = 1,
	 .name = "notices",
	 .sql = "CREATE TABLE info_notice ("
		" id TEXT PRIMARY KEY,"
		" category TEXT NOT NULL CHECK (category IN ('news', 'food_safety', 'traffic', 'heritage')),"
		" title_zh TEXT NOT NULL, title_pt TEXT NOT NULL, title_en TEXT NOT NULL,"
		" body_zh TEXT NOT NULL, body_pt TEXT NOT NULL, body_en TEXT NOT NULL,"
		" published_at TEXT NOT NULL, created_at TEXT NOT NULL);"
		"CREATE INDEX info_notice_published ON info_notice (published_at DESC, id DESC);"},
};

static const struct {
	const char *category, *published_at;
	const char *title[3], *body[3];
} demo[] = {
	{"news", "2026-11-20T02:00:00.000000Z",
	 {"一戶通新增預約服務", "Novos serviços de marcação na Conta Única de Macau",
	  "New appointment services in Macao One Account"},
	 {"居民可透過一戶通預約更多政府服務，減少排隊時間。",
	  "Os residentes podem marcar mais serviços públicos através da Conta Única, reduzindo as filas.",
	  "Residents can book more government services through One Account and spend less time in queues."}},
	{"food_safety", "2026-11-21T03:30:00.000000Z",
	 {"食品安全提示：冬季火鍋", "Segurança alimentar: o fondue chinês de inverno",
	  "Food safety: winter hot pot"},
	 {"食材應徹底煮熟，生熟食物須分開處理。",
	  "Os alimentos devem ser bem cozinhados e os crus separados dos cozinhados.",
	  "Cook ingredients thoroughly and keep raw and cooked food apart."}},
	{"traffic", "2026-11-22T08:15:00.000000Z",
	 {"友誼大馬路交通改道", "Desvio de trânsito na Avenida da Amizade", "Traffic diversion on Avenida da Amizade"},
	 {"因道路工程，週末晚間實施臨時交通改道。",
	  "Devido a obras, haverá um desvio temporário de trânsito nas noites de fim de semana.",
	  "Road works bring a temporary diversion on weekend evenings."}},
	{"heritage", "2026-11-23T01:00:00.000000Z",
	 {"澳門歷史城區導賞活動", "Visitas guiadas ao Centro Histórico de Macau",
	  "Guided tours of the Historic Centre of Macao"},
	 {"世界遺產導賞活動現正接受報名。",
	  "Estão abertas as inscrições para as visitas guiadas ao Património Mundial.",
	  "Registration is open for guided tours of the World Heritage site."}},
};

static egov_err demo_data(db_conn *c)
{
	arena a;
	size_t i;
	int64_t have = 0;
	bool found = false;
	egov_err err;

	err = db_query_int(c, "SELECT COUNT(*) FROM info_notice", NULL, 0, &have, &found);
	if (err || have > 0)
		return err; /* idempotent: demo data only into an empty table */
	arena_init(&a, 1 << 20);
	for (i = 0; !err && i < sizeof demo / sizeof demo[0]; i++) {
		notice n = {.category = demo[i].category, .published_at = demo[i].published_at};
		memcpy(n.title, demo[i].title, sizeof n.title);
		memcpy(n.body, demo[i].body, sizeof n.body);
		err = info_notice_create(c, &a, &n);
	}
	arena_release(&a);
	return err;
}

const egov_module info_module = {
	.name = "info",
	.migrations = migrations,
	.nmigrations = sizeof migrations / sizeof migrations[0],
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.demo = demo_data,
};
