/*
 * fuzz_json.c: libFuzzer target for json_bind() with a table holding every
 * field type (string, int, bool, string array, nested object, raw, and an
 * array of objects holding another array of objects).
 *
 * The input is copied to the very end of a page followed by an inaccessible
 * page: libcjson is not built with ASan, so this is what turns a read past
 * len inside cJSON into a crash. After a successful bind it checks what the
 * handler would rely on: limits held, strings are UTF-8 without NUL, raw
 * text is strict JSON, and the writer's output of the bound values is too.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/json.h"
#include "core/limits.h"
#include "core/banned.h"

typedef struct inner {
	const char *id;
	int64_t n;
	json_str_array list;
	bool n_present;
} inner;

typedef struct cell {
	const char *v;
	bool b;
} cell;

typedef struct row {
	const char *id;
	int64_t n;
	json_obj_array cells; /* of cell */
} row;

typedef struct doc {
	const char *title;
	int64_t size;
	int64_t any;
	bool flag;
	json_str_array tags;
	inner in;
	const char *extra;
	const char *opt;
	json_obj_array rows; /* of row */
	bool opt_present;
} doc;

static const json_field cell_fields[] = {
	{.name = "v", .type = JSON_T_STRING, .offset = offsetof(cell, v), .max_len = 8, .min_len = 1},
	{.name = "b", .type = JSON_T_BOOL, .offset = offsetof(cell, b)},
};

static const json_field row_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(row, id), .required = true, .max_len = 16},
	{.name = "n", .type = JSON_T_INT, .offset = offsetof(row, n), .min = -5, .max = 5},
	{.name = "cells", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(row, cells), .fields = cell_fields,
	 .nfields = sizeof cell_fields / sizeof cell_fields[0], .elem_size = sizeof(cell), .max_len = 4},
};

static const json_field inner_fields[] = {
	{.name = "id", .type = JSON_T_STRING, .offset = offsetof(inner, id), .required = true, .max_len = 16},
	{.name = "n", .type = JSON_T_INT, .offset = offsetof(inner, n), .nullable = true, .min = -5, .max = 5,
	 .present_offset = JSON_PRESENT(inner, n_present)},
	{.name = "list", .type = JSON_T_STRING_ARRAY, .offset = offsetof(inner, list)},
};

static const json_field doc_fields[] = {
	{.name = "title", .type = JSON_T_STRING, .offset = offsetof(doc, title), .min_len = 1, .max_len = 64},
	{.name = "size", .type = JSON_T_INT, .offset = offsetof(doc, size), .min = 0, .max = 1000000},
	{.name = "any", .type = JSON_T_INT, .offset = offsetof(doc, any)},
	{.name = "flag", .type = JSON_T_BOOL, .offset = offsetof(doc, flag)},
	{.name = "tags", .type = JSON_T_STRING_ARRAY, .offset = offsetof(doc, tags), .max_len = 8, .min_len = 1},
	{.name = "in", .type = JSON_T_OBJECT, .offset = offsetof(doc, in), .fields = inner_fields,
	 .nfields = sizeof inner_fields / sizeof inner_fields[0], .nullable = true},
	{.name = "extra", .type = JSON_T_RAW, .offset = offsetof(doc, extra)},
	{.name = "opt", .type = JSON_T_STRING, .offset = offsetof(doc, opt), .nullable = true,
	 .present_offset = JSON_PRESENT(doc, opt_present)},
	{.name = "rows", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(doc, rows), .fields = row_fields,
	 .nfields = sizeof row_fields / sizeof row_fields[0], .elem_size = sizeof(row), .max_len = 16,
	 .min_len = 1, .nullable = true},
};

static void check_str(const char *s, size_t min, size_t max)
{
	size_t n;

	if (!s)
		return;
	n = strlen(s);
	if (n < min || n > max)
		abort();
	/* a JSON string of s must pass the precheck (so s is UTF-8) */
	{
		char *q = malloc(n + 2);
		if (!q)
			abort();
		q[0] = '"';
		memcpy(q + 1, s, n);
		q[n + 1] = '"';
		/* s may hold '"' or '\\' or control bytes, which are fine in C but
		 * not raw in JSON: test only the UTF-8 part of the verdict */
		const char *why = json_precheck(q, n + 2, 1);
		free(q);
		if (why && strcmp(why, "json.invalid_utf8") == 0)
			abort();
	}
}

static void check_array(const json_str_array *a, size_t max_items, size_t min)
{
	size_t i;

	if (a->n > max_items || (a->n && !a->items))
		abort();
	for (i = 0; i < a->n; i++) {
		if (!a->items[i])
			abort();
		check_str(a->items[i], min, EGOV_JSON_STRING_MAX);
	}
}

/* What a handler relies on after a bind: counts within limits, required
 * members there, values in range. */
static void check_rows(const json_obj_array *a)
{
	const row *r = a->items;
	size_t i, k;

	if (a->n > 16 || (a->n && !a->items) || (!a->n && a->items))
		abort();
	for (i = 0; i < a->n; i++) {
		const cell *c = r[i].cells.items;
		if (!r[i].id)
			abort();
		check_str(r[i].id, 0, 16);
		if (r[i].n < -5 || r[i].n > 5 || r[i].cells.n > 4 || (r[i].cells.n && !c))
			abort();
		for (k = 0; k < r[i].cells.n; k++)
			check_str(c[k].v, 1, 8);
	}
}

static void write_back(const doc *d)
{
	buf b;
	jw w;
	size_t i;

	buf_init(&b, 1 << 20);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "title", d->title);
	jw_kint(&w, "size", d->size);
	jw_kint(&w, "any", d->any);
	jw_kbool(&w, "flag", d->flag);
	jw_key(&w, "tags");
	jw_arr_begin(&w);
	for (i = 0; i < d->tags.n; i++)
		jw_str(&w, d->tags.items[i]);
	jw_arr_end(&w);
	jw_key(&w, "in");
	jw_obj_begin(&w);
	jw_kstr(&w, "id", d->in.id);
	jw_kint(&w, "n", d->in.n);
	jw_obj_end(&w);
	jw_key(&w, "extra");
	jw_raw(&w, d->extra);
	jw_kstr(&w, "opt", d->opt);
	jw_key(&w, "rows");
	jw_arr_begin(&w);
	for (i = 0; i < d->rows.n; i++) {
		const row *r = (const row *)d->rows.items + i;
		size_t k;
		jw_obj_begin(&w);
		jw_kstr(&w, "id", r->id);
		jw_kint(&w, "n", r->n);
		jw_key(&w, "cells");
		jw_arr_begin(&w);
		for (k = 0; k < r->cells.n; k++) {
			const cell *c = (const cell *)r->cells.items + k;
			jw_obj_begin(&w);
			jw_kstr(&w, "v", c->v);
			jw_kbool(&w, "b", c->b);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	if (w.err || w.depth != 0)
		abort();
	if (json_precheck(b.data, b.len, EGOV_JSON_DEPTH_MAX + 2) != NULL)
		abort();
	buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = (size + page - 1) / page * page;
	unsigned char *map;
	char *body;
	arena a;
	doc d;
	json_error je;
	egov_err err;

	if (size > EGOV_BODY_MAX_DEFAULT)
		return 0;
	map = mmap(NULL, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return 0;
	if (mprotect(map + span, page, PROT_NONE) != 0)
		abort();
	body = (char *)map + span - size;
	if (size)
		memcpy(body, data, size);

	memset(&d, 0, sizeof d);
	memset(&je, 0x55, sizeof je);
	arena_init(&a, EGOV_REQUEST_ARENA_MAX);
	err = json_bind(&a, body, size, doc_fields, sizeof doc_fields / sizeof doc_fields[0], &d, &je);
	if (err) {
		if (!je.code || strncmp(je.code, "json.", 5) != 0)
			abort();
		if (memchr(je.field, '\0', sizeof je.field) == NULL)
			abort();
	} else {
		if (je.code)
			abort();
		check_str(d.title, 1, 64);
		if (d.size < 0 || d.size > 1000000)
			abort();
		if (d.any > 9007199254740991LL || d.any < -9007199254740991LL)
			abort();
		check_array(&d.tags, 8, 1);
		check_str(d.in.id, 0, 16);
		if (d.in.n < -5 || d.in.n > 5)
			abort();
		check_array(&d.in.list, EGOV_JSON_ARRAY_MAX, 0);
		check_str(d.opt, 0, EGOV_JSON_STRING_MAX);
		if (d.opt && !d.opt_present)
			abort();
		check_rows(&d.rows);
		if (d.extra && json_precheck(d.extra, strlen(d.extra), EGOV_JSON_DEPTH_MAX) != NULL)
			abort();
		write_back(&d);
	}
	/* the precheck alone must agree with itself on the same bytes */
	(void)json_precheck(body, size, EGOV_JSON_DEPTH_MAX);
	arena_release(&a);
	munmap(map, span + page);
	return 0;
}
