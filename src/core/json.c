/*
 * json.c: JSON at the edge: json_bind() turns a request body into a typed
 * C struct through a field table; jw_* write compact JSON into a buf.
 *
 * Parser choice: cJSON. Parse + bind, precheck included, runs about 2x
 * faster than jansson on a 300-byte request and 3-3.5x on a 100 KB
 * document (bench/json_bench.c), but cJSON is lenient in two ways we cannot
 * accept: it passes invalid UTF-8 through, and it keeps duplicate object
 * keys (so "first wins" vs "last wins" would be up to whoever reads the
 * tree). json_precheck() closes the first gap (and a few smaller ones:
 * control bytes, sloppy numbers, a BOM, escaped NUL, depth) before cJSON
 * sees the bytes; the duplicate check in the walk closes the second.
 *
 * json_bind_tree() runs the same walk over a tree its caller parsed; the
 * first invariant below is then the caller's to keep.
 *
 * Invariants:
 *  - Every byte json_bind() accepted is strict RFC 8259 JSON in UTF-8 with
 *    no escaped NUL, nested at most EGOV_JSON_DEPTH_MAX deep.
 *  - No object that reaches the caller (bound or JSON_T_RAW) has a
 *    duplicate key or more than EGOV_JSON_MEMBERS_MAX members.
 *  - The cJSON tree never outlives json_bind(); everything handed out lives
 *    in the caller's arena.
 *  - Memory for an array of objects is allocated only after its element
 *    count was checked against the field's limit, in one piece.
 *  - Integers are exact: cJSON holds numbers as doubles, so only integral
 *    values within +-(2^53 - 1) are taken (larger ones are json.out_of_range
 *    because 2^53 + 1 cannot be told from 2^53).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/utf8.h"
#include "core/json.h"
#include "core/limits.h"
#include "core/banned.h"

/* ---- precheck ------------------------------------------------------------ */

/* Length of the strict UTF-8 sequence at p (Unicode 15, table 3-7: no
 * overlongs, no surrogates, nothing above U+10FFFF), or 0 if invalid. */

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of an RFC 8259 number at p, or 0 if the grammar fails. cJSON hands
 * whatever strtod() takes ("01", "1.", "-.5"), which we do not. */
static size_t number_len(const unsigned char *p, size_t left)
{
	size_t i = 0;

	if (i < left && p[i] == '-')
		i++;
	if (i < left && p[i] == '0') {
		i++;
	} else if (i < left && p[i] >= '1' && p[i] <= '9') {
		while (i < left && is_digit(p[i]))
			i++;
	} else {
		return 0;
	}
	if (i < left && p[i] == '.') {
		i++;
		if (i >= left || !is_digit(p[i]))
			return 0;
		while (i < left && is_digit(p[i]))
			i++;
	}
	if (i < left && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		if (i < left && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= left || !is_digit(p[i]))
			return 0;
		while (i < left && is_digit(p[i]))
			i++;
	}
	/* "01" or "1.2.3" would otherwise read as two tokens here */
	if (i < left && (is_digit(p[i]) || strchr(".eE+-", p[i])) && p[i] != '\0')
		return 0;
	return i;
}

const char *json_precheck(const char *s, size_t len, size_t depth_max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, depth = 0, n;
	int in_str = 0;

	while (i < len) {
		unsigned char c = p[i];

		if (c >= 0x80) {
			if (!(n = utf8_seq_len(p + i, len - i)))
				return "json.invalid_utf8";
			if (!in_str)
				return "json.malformed"; /* includes a BOM */
			i += n;
			continue;
		}
		if (in_str) {
			/* the common case, plain ASCII text, in a tight loop */
			while (c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && ++i < len)
				c = p[i];
			if (i == len)
				break;
			if (c >= 0x80)
				continue;
			if (c == '"') {
				in_str = 0;
			} else if (c == '\\') {
				if (i + 1 >= len)
					return "json.malformed";
				c = p[++i];
				if (c == 'u') {
					if (len - i < 5 || !is_hex(p[i + 1]) || !is_hex(p[i + 2]) || !is_hex(p[i + 3]) ||
					    !is_hex(p[i + 4]))
						return "json.malformed";
					if (memcmp(p + i + 1, "0000", 4) == 0)
						return "json.nul";
					i += 4;
				} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
					return "json.malformed";
				}
			} else if (c < 0x20) {
				return "json.malformed"; /* raw control characters must be escaped */
			}
			i++;
			continue;
		}
		switch (c) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case '"':
			in_str = 1;
			break;
		case '{': case '[':
			if (++depth > depth_max)
				return "json.too_deep";
			break;
		case '}': case ']':
			if (depth == 0)
				return "json.malformed";
			depth--;
			break;
		case '-': case '0': case '1': case '2': case '3': case '4':
		case '5': case '6': case '7': case '8': case '9':
			if (!(n = number_len(p + i, len - i)))
				return "json.malformed";
			i += n;
			continue;
		default:
			/* cJSON skips every byte <= ' ' as whitespace; JSON does not. */
			if (c < 0x20 || c == 0x7F)
				return "json.malformed";
			break;
		}
		i++;
	}
	if (in_str || depth != 0)
		return "json.malformed";
	return NULL;
}

/* ---- binding ------------------------------------------------------------- */

typedef struct bind_ctx {
	arena *a;
	json_error *jerr;
	unsigned flags; /* JSON_BIND_* */
	char path[sizeof(((json_error *)0)->field)];
	size_t plen;
} bind_ctx;

/* Appends to the field path; a path too long for json_error is cut, which
 * only shortens the message a client sees. Returns the old length. */
static size_t path_push(bind_ctx *c, const char *name, size_t index, int is_index)
{
	size_t old = c->plen, room = sizeof c->path - c->plen;
	int n;

	if (is_index)
		n = snprintf(c->path + c->plen, room, "[%zu]", index);
	else
		n = snprintf(c->path + c->plen, room, "%s%s", c->plen ? "." : "", name);
	if (n < 0)
		n = 0;
	c->plen += (size_t)n < room ? (size_t)n : room - 1;
	return old;
}

static void path_pop(bind_ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static egov_err fail(bind_ctx *c, egov_err err, const char *code)
{
	c->jerr->code = code;
	memcpy(c->jerr->field, c->path, c->plen + 1);
	return err;
}

static size_t count_children(const cJSON *item)
{
	size_t n = 0;
	const cJSON *ch;

	for (ch = item->child; ch; ch = ch->next)
		n++;
	return n;
}

static int cmp_keys(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* A JSON_T_RAW value is handed on as text, so its objects get the same
 * duplicate and member-count rules as bound ones. Depth is bounded by the
 * precheck, so the recursion is too. */
static egov_err check_raw(bind_ctx *c, const cJSON *item)
{
	const char *keys[EGOV_JSON_MEMBERS_MAX];
	const cJSON *ch;
	size_t n = 0, i, old;
	egov_err err = EGOV_OK;

	if (cJSON_IsObject(item)) {
		if (count_children(item) > EGOV_JSON_MEMBERS_MAX)
			return fail(c, EGOV_EINVAL, "json.too_large");
		for (ch = item->child; ch; ch = ch->next)
			keys[n++] = ch->string;
		qsort(keys, n, sizeof keys[0], cmp_keys);
		for (i = 1; i < n; i++) {
			if (strcmp(keys[i - 1], keys[i]) == 0) {
				old = path_push(c, keys[i], 0, 0);
				err = fail(c, EGOV_EINVAL, "json.duplicate_field");
				path_pop(c, old);
				return err;
			}
		}
		for (ch = item->child; ch && !err; ch = ch->next) {
			old = path_push(c, ch->string, 0, 0);
			err = check_raw(c, ch);
			path_pop(c, old);
		}
	} else if (cJSON_IsArray(item)) {
		for (ch = item->child, i = 0; ch && !err; ch = ch->next, i++) {
			old = path_push(c, NULL, i, 1);
			err = check_raw(c, ch);
			path_pop(c, old);
		}
	}
	return err;
}

static egov_err take_string(bind_ctx *c, const cJSON *item, size_t max, size_t min, const char **dst)
{
	size_t n;
	char *s;

	if (!cJSON_IsString(item) || !item->valuestring)
		return fail(c, EGOV_EINVAL, "json.wrong_type");
	n = strlen(item->valuestring);
	if (n > max)
		return fail(c, EGOV_EINVAL, "json.too_long");
	if (n < min)
		return fail(c, EGOV_EINVAL, "json.too_short");
	if (!(s = arena_strndup(c->a, item->valuestring, n)))
		return fail(c, EGOV_ELIMIT, "json.too_large");
	*dst = s;
	return EGOV_OK;
}

/* Largest integer a double holds exactly together with its neighbours. */
#define JSON_INT_EXACT_MAX 9007199254740991.0 /* 2^53 - 1 */

static egov_err take_int(bind_ctx *c, const cJSON *item, const json_field *f, int64_t *dst)
{
	double d;
	int64_t v;

	if (!cJSON_IsNumber(item))
		return fail(c, EGOV_EINVAL, "json.wrong_type");
	d = item->valuedouble;
	if (!isfinite(d) || fabs(d) > JSON_INT_EXACT_MAX)
		return fail(c, EGOV_EINVAL, "json.out_of_range");
	v = (int64_t)d; /* defined: |d| < 2^63 here */
	if ((double)v != d)
		return fail(c, EGOV_EINVAL, "json.wrong_type");
	if ((f->min != 0 || f->max != 0) && (v < f->min || v > f->max))
		return fail(c, EGOV_EINVAL, "json.out_of_range");
	*dst = v;
	return EGOV_OK;
}

static egov_err take_str_array(bind_ctx *c, const cJSON *item, const json_field *f, json_str_array *dst)
{
	size_t max = f->max_len ? f->max_len : EGOV_JSON_ARRAY_MAX;
	size_t n, i, old;
	const cJSON *ch;
	const char **items = NULL;
	egov_err err = EGOV_OK;

	if (!cJSON_IsArray(item))
		return fail(c, EGOV_EINVAL, "json.wrong_type");
	n = count_children(item);
	if (n > max)
		return fail(c, EGOV_EINVAL, "json.too_long");
	if (n && !(items = arena_alloc(c->a, n * sizeof *items)))
		return fail(c, EGOV_ELIMIT, "json.too_large");
	for (ch = item->child, i = 0; ch && !err; ch = ch->next, i++) {
		old = path_push(c, NULL, i, 1);
		err = take_string(c, ch, EGOV_JSON_STRING_MAX, f->min_len, &items[i]);
		path_pop(c, old);
	}
	if (!err) {
		dst->items = items;
		dst->n = n;
	}
	return err;
}

static egov_err bind_object(bind_ctx *c, const cJSON *obj, const json_field *fields, size_t nfields, void *base);

/* The count is known (and checked) before the structs are allocated; a
 * count the body only claims is never trusted, as it is the parsed tree. */
static egov_err take_obj_array(bind_ctx *c, const cJSON *item, const json_field *f, json_obj_array *dst)
{
	size_t max = f->max_len ? f->max_len : EGOV_JSON_ARRAY_MAX;
	size_t n, i, old;
	const cJSON *ch;
	char *items = NULL;
	egov_err err = EGOV_OK;

	if (!f->elem_size || (f->nfields && !f->fields))
		return fail(c, EGOV_EINTERNAL, "json.malformed"); /* a table bug, not the client's */
	if (!cJSON_IsArray(item))
		return fail(c, EGOV_EINVAL, "json.wrong_type");
	n = count_children(item);
	if (n > max)
		return fail(c, EGOV_EINVAL, "json.too_long");
	if (n < f->min_len)
		return fail(c, EGOV_EINVAL, "json.too_short");
	if (n && (n > SIZE_MAX / f->elem_size || !(items = arena_alloc(c->a, n * f->elem_size))))
		return fail(c, EGOV_ELIMIT, "json.too_large");
	for (ch = item->child, i = 0; ch && !err; ch = ch->next, i++) {
		old = path_push(c, NULL, i, 1);
		err = bind_object(c, ch, f->fields, f->nfields, items + i * f->elem_size);
		path_pop(c, old);
	}
	if (!err) {
		dst->items = items;
		dst->n = n;
	}
	return err;
}

static egov_err take_raw(bind_ctx *c, const cJSON *item, const char **dst)
{
	char *text = NULL, *s;
	egov_err err;

	if ((err = check_raw(c, item)))
		goto out;
	if (!(text = cJSON_PrintUnformatted(item))) {
		err = fail(c, EGOV_ENOMEM, "json.too_large");
		goto out;
	}
	if (!(s = arena_strdup(c->a, text))) {
		err = fail(c, EGOV_ELIMIT, "json.too_large");
		goto out;
	}
	*dst = s;
out:
	cJSON_free(text);
	return err;
}

static egov_err bind_value(bind_ctx *c, const cJSON *item, const json_field *f, void *base)
{
	void *dst = (char *)base + f->offset;
	egov_err err = EGOV_OK;

	if (cJSON_IsNull(item)) {
		if (!f->nullable)
			return fail(c, EGOV_EINVAL, "json.wrong_type");
	} else {
		switch (f->type) {
		case JSON_T_STRING:
			err = take_string(c, item, f->max_len ? f->max_len : EGOV_JSON_STRING_MAX, f->min_len,
					  (const char **)dst);
			break;
		case JSON_T_INT:
			err = take_int(c, item, f, (int64_t *)dst);
			break;
		case JSON_T_BOOL:
			if (!cJSON_IsBool(item))
				return fail(c, EGOV_EINVAL, "json.wrong_type");
			*(bool *)dst = cJSON_IsTrue(item);
			break;
		case JSON_T_STRING_ARRAY:
			err = take_str_array(c, item, f, (json_str_array *)dst);
			break;
		case JSON_T_OBJECT:
			err = bind_object(c, item, f->fields, f->nfields, dst);
			break;
		case JSON_T_RAW:
			err = take_raw(c, item, (const char **)dst);
			break;
		case JSON_T_OBJECT_ARRAY:
			err = take_obj_array(c, item, f, (json_obj_array *)dst);
			break;
		default:
			return fail(c, EGOV_EINTERNAL, "json.wrong_type");
		}
	}
	if (!err && f->present_offset > 0)
		*(bool *)((char *)base + f->present_offset) = true;
	return err;
}

static egov_err bind_object(bind_ctx *c, const cJSON *obj, const json_field *fields, size_t nfields, void *base)
{
	unsigned char seen[EGOV_JSON_MEMBERS_MAX] = {0};
	const cJSON *m;
	size_t i, old;
	egov_err err = EGOV_OK;

	if (!cJSON_IsObject(obj))
		return fail(c, EGOV_EINVAL, "json.not_object");
	if (nfields > EGOV_JSON_MEMBERS_MAX || (nfields && !fields))
		return fail(c, EGOV_EINTERNAL, "json.malformed"); /* a table bug, not the client's */
	if (count_children(obj) > EGOV_JSON_MEMBERS_MAX)
		return fail(c, EGOV_EINVAL, "json.too_large");
	for (m = obj->child; m && !err; m = m->next) {
		for (i = 0; i < nfields; i++)
			if (strcmp(fields[i].name, m->string) == 0)
				break;
		if (i == nfields && (c->flags & JSON_BIND_SKIP_UNKNOWN))
			continue;
		old = path_push(c, m->string, 0, 0);
		if (i == nfields)
			err = fail(c, EGOV_EINVAL, "json.unknown_field");
		else if (seen[i])
			err = fail(c, EGOV_EINVAL, "json.duplicate_field");
		else {
			seen[i] = 1;
			err = bind_value(c, m, &fields[i], base);
		}
		path_pop(c, old);
	}
	for (i = 0; i < nfields && !err; i++) {
		if (fields[i].required && !seen[i]) {
			old = path_push(c, fields[i].name, 0, 0);
			err = fail(c, EGOV_EINVAL, "json.missing_field");
			path_pop(c, old);
		}
	}
	return err;
}

egov_err json_bind(arena *a, const char *body, size_t len, const json_field *fields, size_t nfields, void *out,
		   json_error *jerr)
{
	json_error scratch;
	bind_ctx c;
	cJSON *root = NULL;
	const char *code, *end = NULL;
	size_t i;
	egov_err err = EGOV_OK;

	if (!jerr)
		jerr = &scratch;
	jerr->code = NULL;
	jerr->field[0] = '\0';
	memset(&c, 0, sizeof c);
	c.a = a;
	c.jerr = jerr;
	if (!body || len == 0) {
		err = fail(&c, EGOV_EINVAL, "json.malformed");
		goto out;
	}
	if ((code = json_precheck(body, len, EGOV_JSON_DEPTH_MAX))) {
		err = fail(&c, EGOV_EINVAL, code);
		goto out;
	}
	/* Not require_null_terminated: body is len bytes, not a C string.
	 * The trailing-bytes check below gives the same strictness. */
	root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!root || !end || end < body || end > body + len) {
		err = fail(&c, EGOV_EINVAL, "json.malformed");
		goto out;
	}
	for (i = (size_t)(end - body); i < len; i++) {
		if (!strchr(" \t\r\n", body[i]) || body[i] == '\0') {
			err = fail(&c, EGOV_EINVAL, "json.malformed");
			goto out;
		}
	}
	err = bind_object(&c, root, fields, nfields, out);
out:
	cJSON_Delete(root);
	return err;
}

egov_err json_bind_tree(arena *a, const cJSON *root, const json_field *fields, size_t nfields, unsigned flags,
			void *out, json_error *jerr)
{
	json_error scratch;
	bind_ctx c;

	if (!jerr)
		jerr = &scratch;
	jerr->code = NULL;
	jerr->field[0] = '\0';
	memset(&c, 0, sizeof c);
	c.a = a;
	c.jerr = jerr;
	c.flags = flags;
	if (!root)
		return fail(&c, EGOV_EINVAL, "json.malformed");
	return bind_object(&c, root, fields, nfields, out);
}

/* ---- writer -------------------------------------------------------------- */

void jw_init(jw *w, buf *b)
{
	memset(w, 0, sizeof *w);
	w->b = b;
}

static void jw_set(jw *w, egov_err err)
{
	if (!w->err)
		w->err = err;
}

/* A value or key inside a container needs a comma unless it is the first.
 * jw_key() clears the flag so the value after it goes without one. */
static int before_value(jw *w)
{
	if (w->err)
		return 0;
	if (w->depth > 0) {
		if (w->need_comma[w->depth - 1])
			jw_set(w, buf_addc(w->b, ','));
		w->need_comma[w->depth - 1] = true;
	}
	return !w->err;
}

static void container_begin(jw *w, char c)
{
	if (!before_value(w))
		return;
	if (w->depth >= EGOV_JSON_DEPTH_MAX_WRITER) {
		jw_set(w, EGOV_EINTERNAL);
		return;
	}
	jw_set(w, buf_addc(w->b, c));
	w->need_comma[w->depth++] = false;
}

static void container_end(jw *w, char c)
{
	if (w->err)
		return;
	if (w->depth == 0) {
		jw_set(w, EGOV_EINTERNAL);
		return;
	}
	w->depth--;
	jw_set(w, buf_addc(w->b, c));
}

void jw_obj_begin(jw *w)
{
	container_begin(w, '{');
}

void jw_obj_end(jw *w)
{
	container_end(w, '}');
}

void jw_arr_begin(jw *w)
{
	container_begin(w, '[');
}

void jw_arr_end(jw *w)
{
	container_end(w, ']');
}

static void put_string(jw *w, const char *s)
{
	egov_err err = buf_addc(w->b, '"');
	if (!err)
		err = buf_add_json_str(w->b, s);
	if (!err)
		err = buf_addc(w->b, '"');
	jw_set(w, err);
}

void jw_key(jw *w, const char *key)
{
	if (!before_value(w))
		return;
	if (w->depth == 0 || !key) {
		jw_set(w, EGOV_EINTERNAL);
		return;
	}
	put_string(w, key);
	if (!w->err)
		jw_set(w, buf_addc(w->b, ':'));
	w->need_comma[w->depth - 1] = false;
}

void jw_str(jw *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	if (before_value(w))
		put_string(w, s);
}

void jw_int(jw *w, int64_t v)
{
	if (before_value(w))
		jw_set(w, buf_addf(w->b, "%" PRId64, v));
}

void jw_bool(jw *w, bool v)
{
	if (before_value(w))
		jw_set(w, buf_adds(w->b, v ? "true" : "false"));
}

void jw_null(jw *w)
{
	if (before_value(w))
		jw_set(w, buf_adds(w->b, "null"));
}

void jw_raw(jw *w, const char *json)
{
	if (!json) {
		jw_null(w);
		return;
	}
	if (before_value(w))
		jw_set(w, buf_adds(w->b, json));
}

void jw_kstr(jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_str(w, s);
}

void jw_kint(jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	jw_int(w, v);
}

void jw_kbool(jw *w, const char *key, bool v)
{
	jw_key(w, key);
	jw_bool(w, v);
}
