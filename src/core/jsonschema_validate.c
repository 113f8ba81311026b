/*
 * jsonschema_validate.c: applies a compiled JSON Schema to a cJSON tree.
 *
 * One recursive walk, eval(), over the schema graph and the instance
 * together. Annotations, which unevaluatedItems and unevaluatedProperties
 * read, are kept only where such a keyword may read them: a bitmap of the
 * members (or items) of the instance value being evaluated, filled by the
 * keywords that evaluate them and merged upwards from the subschemas that
 * passed (a failing subschema's annotations are dropped, as 2020-12 says).
 *
 * Errors are reported only where they decide the result: inside anyOf,
 * oneOf, not and if the walk is "quiet", and the combinator reports its
 * own error. Once the result is known and no more errors can be kept, the
 * walk stops.
 *
 * Invariants:
 *  - The schema is only read: many threads validate against one at once.
 *    Everything per call (pointer, scope, budget, regex scratch) lives in
 *    the js_vctx on the caller's stack or is freed before returning.
 *  - Recursion is bounded: the instance is measured first (at most
 *    JSONSCHEMA_INSTANCE_DEPTH_MAX deep), compilation bounded in-place
 *    chains, and JSONSCHEMA_EVAL_DEPTH_MAX backs both.
 *  - Work is bounded by JSONSCHEMA_EVAL_STEPS_MAX; a limit reached is
 *    EGOV_ELIMIT with schema.too_complex or schema.too_deep, never a pass.
 */
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/jsonschema_int.h"
#include "core/banned.h"

/* ---- JSON equality and hashing -------------------------------------------- */

static int jtype(const cJSON *v)
{
	return v->type & 0xFF;
}

bool js_json_equal(const cJSON *a, const cJSON *b, size_t *steps)
{
	const cJSON *x, *y;

	if (++*steps > JSONSCHEMA_EVAL_STEPS_MAX)
		return false;
	if (jtype(a) != jtype(b))
		return false;
	switch (jtype(a)) {
	case cJSON_Number:
		return a->valuedouble == b->valuedouble;
	case cJSON_String:
		return strcmp(a->valuestring, b->valuestring) == 0;
	case cJSON_Array:
		for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
			if (!js_json_equal(x, y, steps))
				return false;
		return !x && !y;
	case cJSON_Object: {
		size_t na = 0, nb = 0;
		for (x = a->child; x; x = x->next)
			na++;
		for (y = b->child; y; y = y->next)
			nb++;
		if (na != nb)
			return false;
		for (x = a->child; x; x = x->next) {
			for (y = b->child; y; y = y->next) {
				if (++*steps > JSONSCHEMA_EVAL_STEPS_MAX)
					return false;
				if (strcmp(x->string, y->string) == 0)
					break;
			}
			if (!y || !js_json_equal(x, y, steps))
				return false;
		}
		return true;
	}
	default:
		return true; /* null, true, false */
	}
}

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

/* A hash that equal values (by js_json_equal) share: members of an object
 * are summed so that their order does not count. */
static uint64_t json_hash(const cJSON *v)
{
	uint64_t h = (uint64_t)jtype(v) * 0x9E3779B97F4A7C15ull;
	const cJSON *x;

	switch (jtype(v)) {
	case cJSON_Number: {
		double d = v->valuedouble == 0 ? 0 : v->valuedouble; /* -0 == 0 */
		uint64_t bits;
		memcpy(&bits, &d, sizeof bits);
		return mix(h ^ bits);
	}
	case cJSON_String:
		return mix(h ^ hash_str(v->valuestring));
	case cJSON_Array:
		for (x = v->child; x; x = x->next)
			h = mix(h * 31 + json_hash(x));
		return h;
	case cJSON_Object: {
		uint64_t sum = 0;
		for (x = v->child; x; x = x->next)
			sum += mix(hash_str(x->string) * 7 + json_hash(x));
		return mix(h ^ sum);
	}
	default:
		return h;
	}
}

/* ---- annotations ---------------------------------------------------------- */

/* Which members (by position) or items of one instance value some keyword
 * evaluated. */
typedef struct ann {
	size_t n;
	uint64_t *bits;
	uint64_t small[2];
} ann;

static bool ann_init(ann *a, size_t n)
{
	a->n = n;
	a->small[0] = a->small[1] = 0;
	a->bits = a->small;
	if (n > 128 && !(a->bits = calloc((n + 63) / 64, sizeof *a->bits))) {
		a->bits = NULL;
		return false;
	}
	return true;
}

static void ann_release(ann *a)
{
	if (a->bits && a->bits != a->small)
		free(a->bits);
	a->bits = NULL;
}

static void ann_set(ann *a, size_t i)
{
	if (a && i < a->n)
		a->bits[i / 64] |= 1ull << (i % 64);
}

static bool ann_get(const ann *a, size_t i)
{
	return i < a->n && (a->bits[i / 64] >> (i % 64)) & 1;
}

static void ann_merge(ann *dst, const ann *src)
{
	size_t i;

	for (i = 0; i < (dst->n + 63) / 64; i++)
		dst->bits[i] |= src->bits[i];
}

/* ---- the walk ------------------------------------------------------------- */

typedef struct js_vctx {
	const jsonschema *s;
	jsonschema_errors *errs;
	size_t steps;
	unsigned depth;
	unsigned quiet;     /* > 0: inside anyOf, oneOf, not, if: errors not kept */
	bool stop;          /* the result is known (or a limit was reached) */
	egov_err limit;     /* EGOV_ELIMIT or EGOV_ENOMEM once one was reached */
	void *scratch;      /* regex match data, made at the first match */
	char ptr[JSONSCHEMA_POINTER_MAX];
	size_t plen;
	const js_resource *scope[JSONSCHEMA_EVAL_DEPTH_MAX + 1];
	size_t nscope;
} js_vctx;

static void report(js_vctx *v, const char *code, const char *kw, const char *extra, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Keeps an error at the current pointer (plus extra, a member name, when
 * not NULL). Errors reported outside any quiet part decide the result:
 * when no more can be kept, the walk may stop. */
static void report(js_vctx *v, const char *code, const char *kw, const char *extra, const char *fmt, ...)
{
	jsonschema_error *e;
	va_list ap;

	if (v->quiet)
		return;
	if (!v->errs || v->errs->n >= JSONSCHEMA_ERRORS_MAX) {
		if (v->errs)
			v->errs->truncated = true;
		v->stop = true;
		return;
	}
	e = &v->errs->items[v->errs->n++];
	e->code = code;
	e->keyword = kw;
	memcpy(e->pointer, v->ptr, v->plen + 1);
	if (extra)
		js_pointer_push(e->pointer, sizeof e->pointer, v->plen, extra);
	va_start(ap, fmt);
	vsnprintf(e->param, sizeof e->param, fmt, ap);
	va_end(ap);
}

static void hit_limit(js_vctx *v, egov_err err, const char *code)
{
	unsigned quiet = v->quiet;

	if (v->limit)
		return;
	v->limit = err;
	v->quiet = 0;
	if (v->errs && v->errs->n >= JSONSCHEMA_ERRORS_MAX)
		v->errs->n--; /* the reason the result is unknown must be there */
	report(v, code, "", NULL, "%s", "");
	v->quiet = quiet;
	v->stop = true;
}

static bool charge(js_vctx *v, size_t n)
{
	v->steps += n;
	if (v->steps > JSONSCHEMA_EVAL_STEPS_MAX) {
		hit_limit(v, EGOV_ELIMIT, "schema.too_complex");
		return false;
	}
	return true;
}

static bool equal(js_vctx *v, const cJSON *a, const cJSON *b)
{
	bool eq = js_json_equal(a, b, &v->steps);

	if (v->steps > JSONSCHEMA_EVAL_STEPS_MAX) {
		hit_limit(v, EGOV_ELIMIT, "schema.too_complex");
		return false;
	}
	return eq;
}

/* 1 match, 0 none, -1 a limit (reported). */
static int search(js_vctx *v, const js_regex *re, const char *s)
{
	int rc;

	if (!charge(v, JSONSCHEMA_REGEX_STEP_COST))
		return -1;
	if (!v->scratch && !(v->scratch = js_regex_scratch_new())) {
		hit_limit(v, EGOV_ENOMEM, "schema.too_complex");
		return -1;
	}
	rc = js_regex_search(re, v->s->mctx, v->scratch, s, strlen(s));
	if (rc == -2)
		return 0;
	if (rc < 0)
		hit_limit(v, EGOV_ELIMIT, "schema.too_complex");
	return rc;
}

static unsigned type_of(const cJSON *i)
{
	switch (jtype(i)) {
	case cJSON_NULL: return JS_T_NULL;
	case cJSON_True: case cJSON_False: return JS_T_BOOLEAN;
	case cJSON_Object: return JS_T_OBJECT;
	case cJSON_Array: return JS_T_ARRAY;
	case cJSON_String: return JS_T_STRING;
	case cJSON_Number:
		return isfinite(i->valuedouble) && floor(i->valuedouble) == i->valuedouble ? JS_T_NUMBER | JS_T_INTEGER
											   : JS_T_NUMBER;
	default: return 0;
	}
}

static void type_names(unsigned types, char *out, size_t cap)
{
	static const char *const names[] = {"null", "boolean", "object", "array", "number", "string", "integer"};
	size_t i, len = 0;

	out[0] = '\0';
	for (i = 0; i < 7; i++)
		if (types & (1u << i))
			len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s%s", len ? "," : "", names[i]);
}

static size_t code_points(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

static bool multiple_of(double x, double m)
{
	double q = x / m;

	if (!isfinite(q))
		return fmod(x, m) == 0;
	if (floor(m) == m && floor(x) == x && fabs(x) < 9007199254740992.0)
		return fmod(x, m) == 0;
	return fabs(q - nearbyint(q)) <= fmax(1e-9, fabs(q) * 4 * DBL_EPSILON);
}

static bool eval(js_vctx *v, const js_node *n, const cJSON *inst, ann *out);

/* Applies sub to inst in a quiet part; annotations (when out) merged on
 * success only. */
static bool eval_quiet(js_vctx *v, const js_node *sub, const cJSON *inst, ann *out)
{
	ann a;
	bool ok;

	v->quiet++;
	if (out) {
		if (!ann_init(&a, out->n)) {
			v->quiet--;
			hit_limit(v, EGOV_ENOMEM, "schema.too_complex");
			return false;
		}
		ok = eval(v, sub, inst, &a);
		if (ok)
			ann_merge(out, &a);
		ann_release(&a);
	} else {
		ok = eval(v, sub, inst, NULL);
	}
	v->quiet--;
	return ok;
}

/* Evaluates a child value (member or item) under its pointer segment. */
static bool eval_child(js_vctx *v, const js_node *sub, const cJSON *child, const char *name, size_t index)
{
	size_t saved = v->plen;
	bool ok;

	v->plen = name ? js_pointer_push(v->ptr, sizeof v->ptr, v->plen, name)
		       : js_pointer_push_index(v->ptr, sizeof v->ptr, v->plen, index);
	ok = eval(v, sub, child, NULL);
	v->plen = saved;
	v->ptr[saved] = '\0';
	return ok;
}

static const js_node *find_prop(const js_node *n, const char *name)
{
	size_t lo = 0, hi = n->nprops;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, n->props[mid].name);
		if (c == 0)
			return n->props[mid].schema;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static const cJSON *find_member(js_vctx *v, const cJSON *obj, const char *name)
{
	const cJSON *m;

	for (m = obj->child; m; m = m->next) {
		if (!charge(v, 1))
			return NULL;
		if (strcmp(m->string, name) == 0)
			return m;
	}
	return NULL;
}

/* A failed keyword fails the schema. Inside a quiet part nothing more is
 * to learn (a failing schema's annotations are dropped); outside, the walk
 * goes on to find more errors until none can be kept. */
#define FAIL()                            \
	do {                              \
		ok = false;               \
		if (v->stop || v->quiet)  \
			goto out;         \
	} while (0)

static bool eval_object(js_vctx *v, const js_node *n, const cJSON *inst, ann *local)
{
	const cJSON *m;
	size_t i, k, count = 0;
	bool ok = true;

	for (m = inst->child; m; m = m->next)
		count++;
	if (count < n->min_props) {
		report(v, "schema.min_properties", "minProperties", NULL, "%zu", n->min_props);
		FAIL();
	}
	if (count > n->max_props) {
		report(v, "schema.max_properties", "maxProperties", NULL, "%zu", n->max_props);
		FAIL();
	}
	for (i = 0; i < n->nrequired; i++) {
		if (!find_member(v, inst, n->required[i]) && !v->stop) {
			report(v, "schema.required", "required", n->required[i], "%s", n->required[i]);
			FAIL();
		}
		if (v->stop)
			FAIL();
	}
	for (i = 0; i < n->ndepreq; i++) {
		if (!find_member(v, inst, n->depreq[i].name))
			continue;
		for (k = 0; k < n->depreq[i].n; k++) {
			if (!find_member(v, inst, n->depreq[i].names[k]) && !v->stop) {
				report(v, "schema.dependent_required", "dependentRequired", n->depreq[i].names[k], "%s",
				       n->depreq[i].names[k]);
				FAIL();
			}
			if (v->stop)
				FAIL();
		}
	}
	for (i = 0; i < n->ndep_schemas; i++) {
		if (find_member(v, inst, n->dep_schemas[i].name) && !eval(v, n->dep_schemas[i].schema, inst, local))
			FAIL();
		if (v->stop)
			FAIL();
	}
	for (m = inst->child, i = 0; m; m = m->next, i++) {
		const js_node *p = n->nprops ? find_prop(n, m->string) : NULL;
		bool matched = false;

		if (n->prop_names) {
			cJSON name = {.type = cJSON_String, .valuestring = m->string};
			size_t saved = v->plen;
			bool good;
			v->plen = js_pointer_push(v->ptr, sizeof v->ptr, v->plen, m->string);
			v->quiet++;
			good = eval(v, n->prop_names, &name, NULL);
			v->quiet--;
			if (!good)
				report(v, "schema.property_names", "propertyNames", NULL, "%s", "");
			v->plen = saved;
			v->ptr[saved] = '\0';
			if (!good)
				FAIL();
		}
		if (p) {
			matched = true;
			ann_set(local, i);
			if (!eval_child(v, p, m, m->string, 0))
				FAIL();
		}
		for (k = 0; k < n->npatprops; k++) {
			int rc = search(v, n->patprops[k].re, m->string);
			if (rc < 0)
				FAIL();
			if (rc == 1) {
				matched = true;
				ann_set(local, i);
				if (!eval_child(v, n->patprops[k].schema, m, m->string, 0))
					FAIL();
			}
		}
		if (!matched && n->additional) {
			ann_set(local, i);
			if (n->additional->is_bool && !n->additional->bool_value) {
				report(v, "schema.additional_properties", "additionalProperties", m->string, "%s", "");
				FAIL();
			} else if (!eval_child(v, n->additional, m, m->string, 0)) {
				FAIL();
			}
		}
	}
out:
	return ok;
}

static bool eval_array(js_vctx *v, const js_node *n, const cJSON *inst, ann *local)
{
	const cJSON *it;
	size_t i, count = 0, found = 0;
	bool ok = true;

	for (it = inst->child; it; it = it->next)
		count++;
	if (count < n->min_items) {
		report(v, "schema.min_items", "minItems", NULL, "%zu", n->min_items);
		FAIL();
	}
	if (count > n->max_items) {
		report(v, "schema.max_items", "maxItems", NULL, "%zu", n->max_items);
		FAIL();
	}
	for (it = inst->child, i = 0; it; it = it->next, i++) {
		const js_node *sub = i < n->nprefix ? n->prefix[i] : n->items;
		if (!sub)
			continue;
		ann_set(local, i);
		if (sub->is_bool && !sub->bool_value) {
			size_t saved = v->plen;
			v->plen = js_pointer_push_index(v->ptr, sizeof v->ptr, v->plen, i);
			report(v, "schema.items", i < n->nprefix ? "prefixItems" : "items", NULL, "%s", "");
			v->plen = saved;
			v->ptr[saved] = '\0';
			FAIL();
		} else if (!eval_child(v, sub, it, NULL, i)) {
			FAIL();
		}
	}
	if (n->contains) {
		v->quiet++;
		for (it = inst->child, i = 0; it && !v->stop; it = it->next, i++) {
			if (eval_child(v, n->contains, it, NULL, i)) {
				found++;
				ann_set(local, i);
			}
		}
		v->quiet--;
		if (v->stop)
			FAIL();
		if (found < n->min_contains) {
			if (n->min_contains == 1)
				report(v, "schema.contains", "contains", NULL, "%s", "");
			else
				report(v, "schema.min_contains", "minContains", NULL, "%zu", n->min_contains);
			FAIL();
		}
		if (found > n->max_contains) {
			report(v, "schema.max_contains", "maxContains", NULL, "%zu", n->max_contains);
			FAIL();
		}
	}
	if (n->unique && count > 1) {
		struct hv {
			uint64_t h;
			const cJSON *v;
		} *hs = malloc(count * sizeof *hs), t;
		size_t a, b;
		bool dup = false;
		if (!hs) {
			hit_limit(v, EGOV_ENOMEM, "schema.too_complex");
			FAIL();
		}
		for (it = inst->child, i = 0; it; it = it->next, i++)
			hs[i] = (struct hv){json_hash(it), it};
		/* insertion sort would be quadratic on a hostile array: sort by hash */
		for (a = count / 2; a-- > 0;) { /* heapify */
			size_t r = a;
			for (;;) {
				size_t c2 = 2 * r + 1;
				if (c2 >= count)
					break;
				if (c2 + 1 < count && hs[c2 + 1].h > hs[c2].h)
					c2++;
				if (hs[r].h >= hs[c2].h)
					break;
				t = hs[r], hs[r] = hs[c2], hs[c2] = t;
				r = c2;
			}
		}
		for (b = count; b-- > 1;) {
			size_t r = 0;
			t = hs[0], hs[0] = hs[b], hs[b] = t;
			for (;;) {
				size_t c2 = 2 * r + 1;
				if (c2 >= b)
					break;
				if (c2 + 1 < b && hs[c2 + 1].h > hs[c2].h)
					c2++;
				if (hs[r].h >= hs[c2].h)
					break;
				t = hs[r], hs[r] = hs[c2], hs[c2] = t;
				r = c2;
			}
		}
		for (a = 0; a < count && !dup && !v->stop; a++)
			for (b = a + 1; b < count && hs[b].h == hs[a].h && !dup && !v->stop; b++)
				dup = equal(v, hs[a].v, hs[b].v);
		free(hs);
		if (dup) {
			report(v, "schema.unique_items", "uniqueItems", NULL, "%s", "");
			FAIL();
		}
		if (v->stop)
			FAIL();
	}
out:
	return ok;
}

static bool eval_scalar(js_vctx *v, const js_node *n, const cJSON *inst)
{
	bool ok = true;

	if (cJSON_IsString(inst)) {
		const char *s = inst->valuestring;
		if (n->min_len || n->max_len != SIZE_MAX) {
			size_t len = code_points(s);
			if (len < n->min_len) {
				report(v, "schema.min_length", "minLength", NULL, "%zu", n->min_len);
				FAIL();
			}
			if (len > n->max_len) {
				report(v, "schema.max_length", "maxLength", NULL, "%zu", n->max_len);
				FAIL();
			}
		}
		if (n->pattern) {
			int rc = search(v, n->pattern, s);
			if (rc < 0)
				FAIL();
			if (rc == 0) {
				report(v, "schema.pattern", "pattern", NULL, "%s", n->pattern_src);
				FAIL();
			}
		}
		if (n->format > 0 && !charge(v, js_format_cost(n->format)))
			FAIL();
		if (n->format > 0 && !js_format_check(n->format, s)) {
			report(v, "schema.format", "format", NULL, "%s", n->format_name);
			FAIL();
		}
	} else if (cJSON_IsNumber(inst)) {
		double d = inst->valuedouble;
		if (n->has_min && !(d >= n->min)) {
			report(v, "schema.minimum", "minimum", NULL, "%.17g", n->min);
			FAIL();
		}
		if (n->has_max && !(d <= n->max)) {
			report(v, "schema.maximum", "maximum", NULL, "%.17g", n->max);
			FAIL();
		}
		if (n->has_xmin && !(d > n->xmin)) {
			report(v, "schema.exclusive_minimum", "exclusiveMinimum", NULL, "%.17g", n->xmin);
			FAIL();
		}
		if (n->has_xmax && !(d < n->xmax)) {
			report(v, "schema.exclusive_maximum", "exclusiveMaximum", NULL, "%.17g", n->xmax);
			FAIL();
		}
		if (n->has_mult && !multiple_of(d, n->mult)) {
			report(v, "schema.multiple_of", "multipleOf", NULL, "%.17g", n->mult);
			FAIL();
		}
	}
out:
	return ok;
}

/* The target of a $dynamicRef: the outermost schema resource in the
 * dynamic scope that has a $dynamicAnchor of the name, else the static one. */
static const js_node *dynamic_target(const js_vctx *v, const js_node *n)
{
	size_t i, k;

	if (!n->dyn_anchor)
		return n->dynref;
	for (i = 0; i < v->nscope; i++) {
		const js_resource *r = v->scope[i];
		for (k = 0; k < r->ndyn; k++)
			if (r->dyn[k].node && strcmp(r->dyn[k].name, n->dyn_anchor) == 0)
				return r->dyn[k].node;
	}
	return n->dynref;
}

static bool eval_inplace(js_vctx *v, const js_node *n, const cJSON *inst, ann *local)
{
	size_t i, passed;
	bool ok = true;

	if (n->ref && !eval(v, n->ref, inst, local))
		FAIL();
	if (n->dynref && !eval(v, dynamic_target(v, n), inst, local))
		FAIL();
	for (i = 0; i < n->nall_of; i++)
		if (!eval(v, n->all_of[i], inst, local))
			FAIL();
	if (n->nany_of) {
		for (i = 0, passed = 0; i < n->nany_of && !v->stop; i++)
			if (eval_quiet(v, n->any_of[i], inst, local) && ++passed && !local)
				break;
		if (v->stop)
			FAIL();
		if (!passed) {
			report(v, "schema.any_of", "anyOf", NULL, "%s", "");
			FAIL();
		}
	}
	if (n->none_of) {
		for (i = 0, passed = 0; i < n->none_of && !v->stop; i++)
			if (eval_quiet(v, n->one_of[i], inst, passed ? NULL : local))
				passed++;
		if (v->stop)
			FAIL();
		if (passed != 1) {
			report(v, "schema.one_of", "oneOf", NULL, "%zu", passed);
			FAIL();
		}
	}
	if (n->not_) {
		bool r = eval_quiet(v, n->not_, inst, NULL);
		if (v->stop)
			FAIL();
		if (r) {
			report(v, "schema.not", "not", NULL, "%s", "");
			FAIL();
		}
	}
	if (n->if_) {
		bool r = eval_quiet(v, n->if_, inst, local);
		if (v->stop)
			FAIL();
		if (r && n->then_ && !eval(v, n->then_, inst, local))
			FAIL();
		if (!r && n->else_ && !eval(v, n->else_, inst, local))
			FAIL();
	}
out:
	return ok;
}

static bool eval_unevaluated(js_vctx *v, const js_node *n, const cJSON *inst, ann *local)
{
	const cJSON *c;
	size_t i;
	bool ok = true;

	if (cJSON_IsObject(inst) && n->uneval_props) {
		for (c = inst->child, i = 0; c; c = c->next, i++) {
			if (ann_get(local, i))
				continue;
			ann_set(local, i);
			if (n->uneval_props->is_bool && !n->uneval_props->bool_value) {
				report(v, "schema.unevaluated_properties", "unevaluatedProperties", c->string, "%s", "");
				FAIL();
			} else if (!eval_child(v, n->uneval_props, c, c->string, 0)) {
				FAIL();
			}
		}
	}
	if (cJSON_IsArray(inst) && n->uneval_items) {
		for (c = inst->child, i = 0; c; c = c->next, i++) {
			if (ann_get(local, i))
				continue;
			ann_set(local, i);
			if (n->uneval_items->is_bool && !n->uneval_items->bool_value) {
				size_t saved = v->plen;
				v->plen = js_pointer_push_index(v->ptr, sizeof v->ptr, v->plen, i);
				report(v, "schema.unevaluated_items", "unevaluatedItems", NULL, "%s", "");
				v->plen = saved;
				v->ptr[saved] = '\0';
				FAIL();
			} else if (!eval_child(v, n->uneval_items, c, NULL, i)) {
				FAIL();
			}
		}
	}
out:
	return ok;
}

static bool eval(js_vctx *v, const js_node *n, const cJSON *inst, ann *out)
{
	ann mine, *local = out;
	bool ok = true, pushed = false, own = false;
	unsigned t;

	if (v->stop)
		return false;
	if (!charge(v, 1))
		return false;
	if (v->depth >= JSONSCHEMA_EVAL_DEPTH_MAX) {
		hit_limit(v, EGOV_ELIMIT, "schema.too_deep");
		return false;
	}
	if (n->is_bool) {
		if (!n->bool_value)
			report(v, "schema.false", "", NULL, "%s", "");
		return n->bool_value;
	}
	v->depth++;
	if (v->s->dynamic && (v->nscope == 0 || v->scope[v->nscope - 1] != n->resource)) {
		v->scope[v->nscope++] = n->resource;
		pushed = true;
	}
	t = type_of(inst);
	if (n->wants_ann && !out && (t & (JS_T_OBJECT | JS_T_ARRAY))) {
		if (!ann_init(&mine, (size_t)cJSON_GetArraySize(inst))) {
			hit_limit(v, EGOV_ENOMEM, "schema.too_complex");
			ok = false;
			goto out;
		}
		local = &mine;
		own = true;
	}
	if (n->types && !(n->types & t)) {
		char names[JSONSCHEMA_PARAM_MAX];
		type_names(n->types, names, sizeof names);
		report(v, "schema.type", "type", NULL, "%s", names);
		FAIL();
	}
	if (n->const_ && !equal(v, inst, n->const_)) {
		if (!v->stop)
			report(v, "schema.const", "const", NULL, "%s", "");
		FAIL();
	}
	if (n->enum_) {
		const cJSON *e;
		bool any = false;
		for (e = n->enum_->child; e && !any && !v->stop; e = e->next)
			any = equal(v, inst, e);
		if (!any) {
			if (!v->stop)
				report(v, "schema.enum", "enum", NULL, "%s", "");
			FAIL();
		}
	}
	if (!eval_scalar(v, n, inst))
		FAIL();
	if (!eval_inplace(v, n, inst, local))
		FAIL();
	if (t & JS_T_OBJECT) {
		if (!eval_object(v, n, inst, local))
			FAIL();
	} else if (t & JS_T_ARRAY) {
		if (!eval_array(v, n, inst, local))
			FAIL();
	}
	if (n->wants_ann && local && !eval_unevaluated(v, n, inst, local))
		FAIL();
out:
	if (own)
		ann_release(&mine);
	if (pushed)
		v->nscope--;
	v->depth--;
	return ok;
}

/* Measures the instance's nesting against the limit, without recursing
 * past it. */
static bool depth_ok(const cJSON *i, unsigned depth)
{
	const cJSON *c;

	if (!cJSON_IsArray(i) && !cJSON_IsObject(i))
		return true;
	if (depth >= JSONSCHEMA_INSTANCE_DEPTH_MAX)
		return false;
	for (c = i->child; c; c = c->next)
		if (!depth_ok(c, depth + 1))
			return false;
	return true;
}

egov_err jsonschema_validate(const jsonschema *s, const cJSON *instance, jsonschema_errors *errs)
{
	js_vctx *v;
	egov_err err;
	bool ok;

	if (errs)
		memset(errs, 0, sizeof *errs);
	if (!(v = calloc(1, sizeof *v)))
		return EGOV_ENOMEM;
	v->s = s;
	v->errs = errs;
	if (!instance || !depth_ok(instance, 0)) {
		hit_limit(v, EGOV_ELIMIT, "schema.too_deep");
		err = EGOV_ELIMIT;
		goto out;
	}
	ok = eval(v, s->root, instance, NULL);
	err = v->limit ? v->limit : ok ? EGOV_OK : EGOV_EINVAL;
out:
	js_regex_scratch_free(v->scratch);
	free(v);
	return err;
}
