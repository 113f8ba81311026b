/*
 * jsonschema_compile.c: turns a JSON Schema document into the graph of
 * js_node that validation walks: each keyword checked for form (as the
 * 2020-12 meta-schema would) and compiled; jsonschema_compile() and
 * jsonschema_free(). Indexing, references and the registry are in
 * jsonschema_index.c.
 *
 * Nodes are compiled from a work queue: a $ref only enqueues its target,
 * so the compiler never recurses along references and a $ref cycle costs
 * nothing here (it is refused afterwards, see js_cc_check_chains()).
 *
 * Invariants:
 *  - Every error names the keyword and the JSON pointer of the schema
 *    place; compilation carries on after one to report more (up to
 *    JSONSCHEMA_ERRORS_MAX), but never returns a schema that had one.
 *  - Strict by default: a keyword outside the supported vocabularies, a
 *    format 2020-12 does not define, a $schema other than 2020-12 and a
 *    name twice in one object are errors.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/jsonschema_int.h"
#include "core/utf8.h"
#include "core/banned.h"

#define DEFAULT_BASE "egov:/schema"
#define DIALECT "https://json-schema.org/draft/2020-12/schema"

/* ---- keywords ------------------------------------------------------------- */

static bool is_schema(const cJSON *v)
{
	return cJSON_IsObject(v) || cJSON_IsBool(v);
}

static js_node *sub(js_cc *c, js_node *n, const cJSON *v, const char *kw)
{
	if (!is_schema(v)) {
		js_cc_error(c, n->where, kw, "schema.not_schema", "");
		return NULL;
	}
	return js_cc_node(c, v, n->resource, n->where);
}

static js_node **sub_array(js_cc *c, js_node *n, const cJSON *v, const char *kw, size_t *count)
{
	js_node **a;
	const cJSON *it;
	size_t i = 0, k = (size_t)cJSON_GetArraySize(v);

	*count = 0;
	if (!cJSON_IsArray(v) || k == 0) {
		js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a non-empty array of schemas");
		return NULL;
	}
	if (!(a = js_cc_alloc(c, k * sizeof *a)))
		return NULL;
	for (it = v->child; it; it = it->next)
		a[i++] = sub(c, n, it, kw);
	*count = k;
	return a;
}

static bool number_ok(const cJSON *v)
{
	return cJSON_IsNumber(v) && isfinite(v->valuedouble);
}

static bool count_ok(js_cc *c, js_node *n, const cJSON *v, const char *kw, size_t *out)
{
	double d = v->valuedouble;

	if (!number_ok(v) || d < 0 || floor(d) != d) {
		js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a non-negative integer");
		return false;
	}
	*out = d >= (double)SIZE_MAX ? SIZE_MAX : (size_t)d;
	return true;
}

static bool string_list(js_cc *c, js_node *n, const cJSON *v, const char *kw, const char ***out, size_t *count)
{
	const cJSON *it, *jt;
	const char **a;
	size_t i = 0, k = (size_t)cJSON_GetArraySize(v);

	if (!cJSON_IsArray(v))
		goto bad;
	for (it = v->child; it; it = it->next) {
		if (!cJSON_IsString(it))
			goto bad;
		for (jt = v->child; jt != it; jt = jt->next)
			if (strcmp(jt->valuestring, it->valuestring) == 0)
				goto bad;
	}
	if (k && !(a = js_cc_alloc(c, k * sizeof *a)))
		return false;
	if (!k)
		a = NULL;
	for (it = v->child; it; it = it->next)
		a[i++] = it->valuestring;
	*out = a;
	*count = k;
	return true;
bad:
	js_cc_error(c, n->where, kw, "schema.keyword_invalid", "an array of unique strings");
	return false;
}

static int cmp_named(const void *a, const void *b)
{
	return strcmp(((const js_named *)a)->name, ((const js_named *)b)->name);
}

static js_named *named_schemas(js_cc *c, js_node *n, const cJSON *v, const char *kw, size_t *count)
{
	js_named *a;
	const cJSON *it;
	size_t i = 0, k = (size_t)cJSON_GetArraySize(v);

	*count = 0;
	if (!cJSON_IsObject(v)) {
		js_cc_error(c, n->where, kw, "schema.keyword_invalid", "an object of schemas");
		return NULL;
	}
	if (!k)
		return NULL;
	if (!(a = js_cc_alloc(c, k * sizeof *a)))
		return NULL;
	for (it = v->child; it; it = it->next) {
		a[i].name = it->string;
		if (!is_schema(it))
			js_cc_error(c, js_cc_where(c, n->where, kw), it->string, "schema.not_schema", "");
		else
			a[i].schema = js_cc_node(c, it, n->resource, n->where);
		i++;
	}
	*count = k;
	return a;
}

static unsigned type_bit(const char *t)
{
	static const struct {
		const char *name;
		unsigned bit;
	} types[] = {
		{"null", JS_T_NULL}, {"boolean", JS_T_BOOLEAN}, {"object", JS_T_OBJECT}, {"array", JS_T_ARRAY},
		{"number", JS_T_NUMBER}, {"string", JS_T_STRING}, {"integer", JS_T_INTEGER},
	};
	size_t i;

	for (i = 0; i < sizeof types / sizeof types[0]; i++)
		if (strcmp(types[i].name, t) == 0)
			return types[i].bit;
	return 0;
}

static void kw_type(js_cc *c, js_node *n, const cJSON *v)
{
	const cJSON *it;
	unsigned b;

	if (cJSON_IsString(v) && (b = type_bit(v->valuestring))) {
		n->types = b;
		return;
	}
	if (cJSON_IsArray(v) && v->child) {
		for (it = v->child; it; it = it->next) {
			if (!cJSON_IsString(it) || !(b = type_bit(it->valuestring)) || (n->types & b))
				goto bad;
			n->types |= b;
		}
		return;
	}
bad:
	n->types = 0;
	js_cc_error(c, n->where, "type", "schema.keyword_invalid", "a type name or an array of unique ones");
}

static void kw_pattern(js_cc *c, js_node *n, const char *kw, const char *src, js_regex **out)
{
	const char *why = NULL;
	egov_err err = js_regex_compile(src, out, &why);
	jsonschema *s = c->s;

	if (err == EGOV_ENOMEM) {
		js_cc_fatal(c, err, n->where, "schema.too_large");
		return;
	}
	if (err) {
		js_cc_error(c, n->where, kw, "schema.pattern_invalid", why ? why : src);
		return;
	}
	if (s->nregexes == s->regexcap) {
		size_t ncap = s->regexcap ? s->regexcap * 2 : 8;
		js_regex **nr = realloc(s->regexes, ncap * sizeof *nr);
		if (!nr) {
			js_regex_free(*out);
			*out = NULL;
			js_cc_fatal(c, EGOV_ENOMEM, n->where, "schema.too_large");
			return;
		}
		s->regexes = nr;
		s->regexcap = ncap;
	}
	s->regexes[s->nregexes++] = *out;
}

static void kw_format(js_cc *c, js_node *n, const cJSON *v)
{
	int id;

	if (!cJSON_IsString(v)) {
		js_cc_error(c, n->where, "format", "schema.keyword_invalid", "a string");
		return;
	}
	id = js_format_id(v->valuestring);
	n->format_name = v->valuestring;
	if (c->flags & JSONSCHEMA_ALLOW_UNKNOWN) {
		if (id > 0 && (c->flags & JSONSCHEMA_FORMAT_ASSERT))
			n->format = id;
		return;
	}
	if (id == JS_FMT_UNKNOWN)
		js_cc_error(c, n->where, "format", "schema.format_unknown", v->valuestring);
	else if (id == JS_FMT_UNCHECKED && (c->flags & JSONSCHEMA_FORMAT_ASSERT))
		js_cc_error(c, n->where, "format", "schema.format_unsupported", v->valuestring);
	else if (c->flags & JSONSCHEMA_FORMAT_ASSERT)
		n->format = id;
}

static void kw_ref(js_cc *c, js_node *n, const js_loc *l, const cJSON *v, bool dynamic)
{
	const char *kw = dynamic ? "$dynamicRef" : "$ref";
	const char *frag = "";
	js_node *t;
	size_t i;

	if (!cJSON_IsString(v) || strlen(v->valuestring) > JSONSCHEMA_URI_MAX) {
		js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a URI reference");
		return;
	}
	if (!(t = js_cc_resolve(c, l, kw, v->valuestring, &frag)))
		return;
	if (!dynamic) {
		n->ref = t;
		return;
	}
	n->dynref = t;
	/* dynamic only when the fragment is a name and the first target is
	 * a $dynamicAnchor of that name (the "bookend") */
	if (*frag && *frag != '/') {
		for (i = 0; i < t->resource->ndyn; i++) {
			if (t->resource->dyn[i].json == t->json && strcmp(t->resource->dyn[i].name, frag) == 0) {
				n->dyn_anchor = js_cc_strdup(c, frag);
				c->s->dynamic = true;
				break;
			}
		}
	}
}

/* Annotations and meta-data: checked for form, never applied. */
static void kw_annotation(js_cc *c, js_node *n, const char *kw, const cJSON *v)
{
	bool ok = true;

	if (!strcmp(kw, "$id") || !strcmp(kw, "$anchor") || !strcmp(kw, "$dynamicAnchor"))
		ok = true; /* checked, with their own codes, while indexing */
	else if (!strcmp(kw, "title") || !strcmp(kw, "description") || !strcmp(kw, "$comment") ||
		 !strcmp(kw, "contentEncoding") || !strcmp(kw, "contentMediaType"))
		ok = cJSON_IsString(v);
	else if (!strcmp(kw, "deprecated") || !strcmp(kw, "readOnly") || !strcmp(kw, "writeOnly"))
		ok = cJSON_IsBool(v);
	else if (!strcmp(kw, "examples"))
		ok = cJSON_IsArray(v);
	else if (!strcmp(kw, "$vocabulary")) {
		const cJSON *it;
		ok = cJSON_IsObject(v);
		for (it = ok ? v->child : NULL; it; it = it->next)
			ok = ok && cJSON_IsBool(it) && js_uri_has_scheme(it->string);
	}
	if (!ok)
		js_cc_error(c, n->where, kw, "schema.keyword_invalid", "");
}

static const char *const annotation_keywords[] = {
	"$anchor", "$comment", "$dynamicAnchor", "$id", "$vocabulary", "contentEncoding", "contentMediaType",
	"default", "deprecated", "description", "examples", "readOnly", "title", "writeOnly",
};

/* Returns false if kw is not a keyword of the supported vocabularies. */
static bool compile_keyword(js_cc *c, js_node *n, const js_loc *l, const cJSON *v)
{
	const char *kw = v->string;
	size_t i;

	if (!strcmp(kw, "$schema")) {
		if (!cJSON_IsString(v))
			js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a URI");
		else if (strcmp(v->valuestring, DIALECT) != 0 && strcmp(v->valuestring, DIALECT "#") != 0)
			js_cc_error(c, n->where, kw, "schema.unsupported_dialect", v->valuestring);
	} else if (!strcmp(kw, "$ref")) {
		kw_ref(c, n, l, v, false);
	} else if (!strcmp(kw, "$dynamicRef")) {
		kw_ref(c, n, l, v, true);
	} else if (!strcmp(kw, "$defs")) {
		size_t k = 0;
		(void)named_schemas(c, n, v, kw, &k);
	} else if (!strcmp(kw, "contentSchema")) {
		(void)sub(c, n, v, kw);
	} else if (!strcmp(kw, "type")) {
		kw_type(c, n, v);
	} else if (!strcmp(kw, "enum")) {
		if (!cJSON_IsArray(v))
			js_cc_error(c, n->where, kw, "schema.keyword_invalid", "an array");
		else
			n->enum_ = v;
	} else if (!strcmp(kw, "const")) {
		n->const_ = v;
	} else if (!strcmp(kw, "multipleOf")) {
		if (!number_ok(v) || v->valuedouble <= 0)
			js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a number above 0");
		else
			n->has_mult = true, n->mult = v->valuedouble;
	} else if (!strcmp(kw, "maximum") || !strcmp(kw, "minimum") || !strcmp(kw, "exclusiveMaximum") ||
		   !strcmp(kw, "exclusiveMinimum")) {
		if (!number_ok(v))
			js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a number");
		else if (kw[0] == 'm' && kw[1] == 'a')
			n->has_max = true, n->max = v->valuedouble;
		else if (kw[0] == 'm')
			n->has_min = true, n->min = v->valuedouble;
		else if (kw[9] == 'M' && kw[10] == 'a')
			n->has_xmax = true, n->xmax = v->valuedouble;
		else
			n->has_xmin = true, n->xmin = v->valuedouble;
	} else if (!strcmp(kw, "maxLength")) {
		count_ok(c, n, v, kw, &n->max_len);
	} else if (!strcmp(kw, "minLength")) {
		count_ok(c, n, v, kw, &n->min_len);
	} else if (!strcmp(kw, "pattern")) {
		if (!cJSON_IsString(v)) {
			js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a string");
		} else {
			n->pattern_src = v->valuestring;
			kw_pattern(c, n, kw, v->valuestring, &n->pattern);
		}
	} else if (!strcmp(kw, "format")) {
		kw_format(c, n, v);
	} else if (!strcmp(kw, "maxItems")) {
		count_ok(c, n, v, kw, &n->max_items);
	} else if (!strcmp(kw, "minItems")) {
		count_ok(c, n, v, kw, &n->min_items);
	} else if (!strcmp(kw, "uniqueItems")) {
		if (!cJSON_IsBool(v))
			js_cc_error(c, n->where, kw, "schema.keyword_invalid", "a boolean");
		else
			n->unique = cJSON_IsTrue(v);
	} else if (!strcmp(kw, "maxContains")) {
		count_ok(c, n, v, kw, &n->max_contains);
	} else if (!strcmp(kw, "minContains")) {
		count_ok(c, n, v, kw, &n->min_contains);
	} else if (!strcmp(kw, "maxProperties")) {
		count_ok(c, n, v, kw, &n->max_props);
	} else if (!strcmp(kw, "minProperties")) {
		count_ok(c, n, v, kw, &n->min_props);
	} else if (!strcmp(kw, "required")) {
		string_list(c, n, v, kw, &n->required, &n->nrequired);
	} else if (!strcmp(kw, "dependentRequired")) {
		const cJSON *it;
		size_t k = (size_t)cJSON_GetArraySize(v);
		if (!cJSON_IsObject(v)) {
			js_cc_error(c, n->where, kw, "schema.keyword_invalid", "an object of string arrays");
		} else if (k && (n->depreq = js_cc_alloc(c, k * sizeof *n->depreq)) != NULL) {
			for (it = v->child; it; it = it->next) {
				js_depreq *d = &n->depreq[n->ndepreq++];
				d->name = it->string;
				string_list(c, n, it, kw, &d->names, &d->n);
			}
		}
	} else if (!strcmp(kw, "allOf")) {
		n->all_of = sub_array(c, n, v, kw, &n->nall_of);
	} else if (!strcmp(kw, "anyOf")) {
		n->any_of = sub_array(c, n, v, kw, &n->nany_of);
	} else if (!strcmp(kw, "oneOf")) {
		n->one_of = sub_array(c, n, v, kw, &n->none_of);
	} else if (!strcmp(kw, "not")) {
		n->not_ = sub(c, n, v, kw);
	} else if (!strcmp(kw, "if")) {
		n->if_ = sub(c, n, v, kw);
	} else if (!strcmp(kw, "then")) {
		n->then_ = sub(c, n, v, kw);
	} else if (!strcmp(kw, "else")) {
		n->else_ = sub(c, n, v, kw);
	} else if (!strcmp(kw, "dependentSchemas")) {
		n->dep_schemas = named_schemas(c, n, v, kw, &n->ndep_schemas);
	} else if (!strcmp(kw, "prefixItems")) {
		n->prefix = sub_array(c, n, v, kw, &n->nprefix);
	} else if (!strcmp(kw, "items")) {
		n->items = sub(c, n, v, kw);
	} else if (!strcmp(kw, "contains")) {
		n->contains = sub(c, n, v, kw);
	} else if (!strcmp(kw, "properties")) {
		n->props = named_schemas(c, n, v, kw, &n->nprops);
		if (n->nprops > 1)
			qsort(n->props, n->nprops, sizeof *n->props, cmp_named);
	} else if (!strcmp(kw, "patternProperties")) {
		size_t k = 0;
		js_named *named = named_schemas(c, n, v, kw, &k);
		if (k && named && (n->patprops = js_cc_alloc(c, k * sizeof *n->patprops)) != NULL) {
			for (i = 0; i < k; i++) {
				n->patprops[i].schema = named[i].schema;
				kw_pattern(c, n, kw, named[i].name, &n->patprops[i].re);
			}
			n->npatprops = k;
		}
	} else if (!strcmp(kw, "additionalProperties")) {
		n->additional = sub(c, n, v, kw);
	} else if (!strcmp(kw, "propertyNames")) {
		n->prop_names = sub(c, n, v, kw);
	} else if (!strcmp(kw, "unevaluatedItems")) {
		n->uneval_items = sub(c, n, v, kw);
	} else if (!strcmp(kw, "unevaluatedProperties")) {
		n->uneval_props = sub(c, n, v, kw);
	} else {
		for (i = 0; i < sizeof annotation_keywords / sizeof annotation_keywords[0]; i++) {
			if (!strcmp(kw, annotation_keywords[i])) {
				kw_annotation(c, n, kw, v);
				return true;
			}
		}
		return false;
	}
	return true;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first member name that appears twice in obj, or NULL. */
static const char *duplicate_member(js_cc *c, const cJSON *obj)
{
	const char *small[32], **names = small, *dup = NULL;
	size_t n = (size_t)cJSON_GetArraySize(obj), i = 0;
	const cJSON *m;

	if (n < 2)
		return NULL;
	if (n > sizeof small / sizeof small[0] && !(names = malloc(n * sizeof *names))) {
		js_cc_fatal(c, EGOV_ENOMEM, "", "schema.too_large");
		return NULL;
	}
	for (m = obj->child; m; m = m->next)
		names[i++] = m->string ? m->string : "";
	qsort(names, n, sizeof *names, cmp_str);
	for (i = 1; i < n && !dup; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			dup = names[i];
	if (names != small)
		free(names);
	return dup;
}

static void compile_node(js_cc *c, js_node *n)
{
	const cJSON *j = n->json, *m;
	const js_loc *l = js_map_get(&c->locs, j);
	const char *dup;

	n->max_len = n->max_items = n->max_props = n->max_contains = SIZE_MAX;
	n->min_contains = 1;
	if (cJSON_IsBool(j)) {
		n->is_bool = true;
		n->bool_value = cJSON_IsTrue(j);
		return;
	}
	if (!cJSON_IsObject(j) || !l) {
		js_cc_error(c, n->where, "", "schema.not_schema", "");
		n->is_bool = true;
		return;
	}
	if ((dup = duplicate_member(c, j)) != NULL) {
		/* which of the two would count is exactly the ambiguity refused */
		js_cc_error(c, n->where, "", "schema.duplicate_keyword", dup);
		n->is_bool = true;
		return;
	}
	for (m = j->child; m && !c->fatal; m = m->next) {
		if (!compile_keyword(c, n, l, m) && !(c->flags & JSONSCHEMA_ALLOW_UNKNOWN))
			js_cc_error(c, n->where, m->string, "schema.unknown_keyword", m->string);
	}
	/* the objects under properties, patternProperties, dependentSchemas and
	 * $defs may repeat names too */
	for (m = j->child; m && !c->fatal; m = m->next) {
		if (cJSON_IsObject(m) && (!strcmp(m->string, "properties") || !strcmp(m->string, "patternProperties") ||
					  !strcmp(m->string, "dependentSchemas") || !strcmp(m->string, "$defs") ||
					  !strcmp(m->string, "dependentRequired")) &&
		    (dup = duplicate_member(c, m)) != NULL)
			js_cc_error(c, js_cc_where(c, n->where, m->string), "", "schema.duplicate_keyword", dup);
	}
	n->wants_ann = n->uneval_items || n->uneval_props;
}

/* ---- the entry point ------------------------------------------------------ */

egov_err jsonschema_compile(const cJSON *schema, const jsonschema_options *opt, jsonschema **out,
			    jsonschema_errors *errs)
{
	jsonschema_errors local;
	js_cc c;
	cJSON *copy = NULL;
	js_resource *root_res;
	bool more;
	egov_err err;

	memset(&c, 0, sizeof c);
	*out = NULL;
	if (!errs)
		errs = &local;
	memset(errs, 0, sizeof *errs);
	c.errs = errs;
	c.flags = opt ? opt->flags : 0;
	c.reg = opt ? opt->registry : NULL;
	c.uris.str = true;
	c.anchors.str = true;
	buf_init(&c.tmp, JSONSCHEMA_URI_MAX * 4);
	if (!(c.s = calloc(1, sizeof *c.s))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	arena_init(&c.s->mem, JSONSCHEMA_COMPILE_MEMORY_MAX);
	if (!schema || !is_schema(schema)) {
		js_cc_error(&c, "", "", "schema.not_schema", "");
		goto done;
	}
	if (opt && opt->base_uri && (!js_uri_has_scheme(opt->base_uri) || strchr(opt->base_uri, '#') ||
				     strlen(opt->base_uri) > JSONSCHEMA_URI_MAX)) {
		js_cc_error(&c, "", "$id", "schema.id_invalid", opt->base_uri);
		goto done;
	}
	if (!(copy = cJSON_Duplicate(schema, 1))) {
		js_cc_fatal(&c, EGOV_ENOMEM, "", "schema.too_large");
		goto done;
	}
	root_res = js_cc_load(&c, copy, opt && opt->base_uri ? opt->base_uri : DEFAULT_BASE, "");
	if (!root_res)
		goto done;
	c.s->root = js_cc_node(&c, root_res->root, root_res, "");
	do {
		js_resource *r;
		size_t i;
		while (c.next < c.nnodes && !c.fatal)
			compile_node(&c, c.nodes[c.next++]);
		more = false;
		/* a dynamic reference may land on any $dynamicAnchor of its name,
		 * in any document reached so far: all of them become nodes */
		for (r = c.s->dynamic ? c.s->resources : NULL; r && !c.fatal; r = r->next)
			for (i = 0; i < r->ndyn; i++)
				if (!r->dyn[i].node && (r->dyn[i].node = js_cc_node(&c, r->dyn[i].json, r, "")) != NULL)
					more = true;
	} while ((more || c.next < c.nnodes) && !c.fatal);
	if (!c.failed)
		js_cc_check_chains(&c);
	if (!c.failed && c.s->nregexes && !(c.s->mctx = js_regex_limits_new()))
		js_cc_fatal(&c, EGOV_ENOMEM, "", "schema.too_large");
done:
	err = c.fatal ? c.fatal : c.failed ? EGOV_EINVAL : EGOV_OK;
	if (err == EGOV_OK) {
		*out = c.s;
		c.s = NULL;
	}
out:
	jsonschema_free(c.s);
	js_map_release(&c.locs);
	js_map_release(&c.uris);
	js_map_release(&c.anchors);
	free(c.nodes);
	buf_release(&c.tmp);
	return err;
}

void jsonschema_free(jsonschema *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->nregexes; i++)
		js_regex_free(s->regexes[i]);
	free(s->regexes);
	for (i = 0; i < s->ndocs; i++)
		cJSON_Delete(s->docs[i]);
	free(s->docs);
	js_regex_limits_free(s->mctx);
	arena_release(&s->mem);
	free(s);
}
