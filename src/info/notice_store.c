/*
 * notice_store.c: notices in the database. Storage only: no HTTP here.
 * published_at is stored as RFC 3339 UTC with six fraction digits, so text
 * order is time order on both backends.
 */
#include <string.h>

#include "core/timeutil.h"
#include "info/info.h"
#include "core/banned.h"

static const char *const categories[] = {"news", "food_safety", "traffic", "heritage"};

int info_category_valid(const char *s)
{
	size_t i;
	for (i = 0; i < sizeof categories / sizeof categories[0]; i++)
		if (strcmp(s, categories[i]) == 0)
			return 1;
	return 0;
}

#define COLS "id, category, title_zh, title_pt, title_en, body_zh, body_pt, body_en, published_at, created_at"

static egov_err read_row(db_rows *rows, arena *a, notice *n)
{
	const char **dst[] = {&n->id,      &n->category, &n->title[0], &n->title[1],     &n->title[2],
			      &n->body[0], &n->body[1],  &n->body[2],  &n->published_at, &n->created_at};
	size_t i;

	for (i = 0; i < sizeof dst / sizeof dst[0]; i++) {
		const char *t = db_rows_text(rows, (int)i);
		*dst[i] = arena_strdup(a, t ? t : "");
		if (!*dst[i])
			return EGOV_ENOMEM;
	}
	return EGOV_OK;
}

egov_err info_notice_create(db_conn *c, arena *a, notice *n)
{
	char id[37], now[32];
	db_param p[10];
	egov_err err;

	if ((err = uuid_v7(id)))
		return err;
	time_format_rfc3339(time_now_us(), 6, now);
	n->id = arena_strdup(a, id);
	n->created_at = arena_strdup(a, now);
	if (!n->published_at)
		n->published_at = n->created_at;
	if (!n->id || !n->created_at)
		return EGOV_ENOMEM;
	p[0] = DBP_S(n->id);
	p[1] = DBP_S(n->category);
	p[2] = DBP_S(n->title[0]);
	p[3] = DBP_S(n->title[1]);
	p[4] = DBP_S(n->title[2]);
	p[5] = DBP_S(n->body[0]);
	p[6] = DBP_S(n->body[1]);
	p[7] = DBP_S(n->body[2]);
	p[8] = DBP_S(n->published_at);
	p[9] = DBP_S(n->created_at);
	return db_exec(c, "INSERT INTO info_notice (" COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", p, 10, NULL);
}

egov_err info_notice_get(db_conn *c, arena *a, const char *id, notice *out)
{
	db_param p[1] = {DBP_S(id)};
	db_rows *rows = NULL;
	bool has = false;
	egov_err err;

	err = db_query(c, "SELECT " COLS " FROM info_notice WHERE id = ?", p, 1, &rows);
	if (!err)
		err = db_rows_next(rows, &has);
	if (!err && !has)
		err = EGOV_ENOTFOUND;
	if (!err)
		err = read_row(rows, a, out);
	db_rows_free(rows);
	return err;
}

egov_err info_notice_list(db_conn *c, arena *a, const char *after_published, const char *after_id, int limit,
			  notice *out, int *count)
{
	db_rows *rows = NULL;
	db_param p[3];
	bool has = false;
	egov_err err;
	int n = 0;

	if (after_published && after_id) {
		p[0] = DBP_S(after_published);
		p[1] = DBP_S(after_id);
		p[2] = DBP_I(limit);
		err = db_query(c,
			       "SELECT " COLS " FROM info_notice WHERE (published_at, id) < (?, ?) "
			       "ORDER BY published_at DESC, id DESC LIMIT ?",
			       p, 3, &rows);
	} else {
		p[0] = DBP_I(limit);
		err = db_query(c, "SELECT " COLS " FROM info_notice ORDER BY published_at DESC, id DESC LIMIT ?", p, 1,
			       &rows);
	}
	while (!err && n < limit && !(err = db_rows_next(rows, &has)) && has)
		err = read_row(rows, a, &out[n++]);
	db_rows_free(rows);
	*count = n;
	return err;
}
