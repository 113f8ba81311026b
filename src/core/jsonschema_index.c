/*
 * jsonschema_index.c: the first half of compiling a JSON Schema: the
 * registry of documents a $ref may reach, indexing documents (base URIs,
 * schema resources, $id, $anchor, $dynamicAnchor), turning places into
 * nodes, resolving references, and the check of in-place chains. The
 * keywords themselves are compiled in jsonschema_compile.c.
 *
 * Indexing walks each document through the keywords whose values are
 * schemas (never into enum, const or unknown keywords, where a "$id" is
 * only data), noting for every schema object the base URI in force, its
 * schema resource and its place. Documents are taken from the registry
 * when a $ref first names them: nothing is ever fetched, and a $ref to a
 * document neither compiled in nor registered is schema.ref_unresolved.
 *
 * Invariants:
 *  - A place is indexed once; a node is made once per place and queued,
 *    so following references never recurses.
 *  - No cycle of in-place applicators ($ref, allOf, ...) that would apply
 *    a schema to the same instance location forever survives compilation,
 *    and no chain of them is longer than JSONSCHEMA_REF_CHAIN_MAX: so
 *    validation's recursion is bounded by the instance's depth.
 *  - Every limit of jsonschema_limits.h on a schema's size is checked here,
 *    before the memory it bounds is taken.
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


/* ---- a small hash map: pointer keys or string keys --------------------- */


static uint64_t map_hash(const js_map *m, const void *key)
{
	uint64_t h = 1469598103934665603ull;

	if (m->str) {
		const unsigned char *s;
		for (s = key; *s; s++)
			h = (h ^ *s) * 1099511628211ull;
	} else {
		uintptr_t v = (uintptr_t)key;
		h = (h ^ (v >> 4)) * 1099511628211ull;
		h ^= h >> 29;
	}
	return h;
}

static bool map_eq(const js_map *m, const void *a, const void *b)
{
	return m->str ? strcmp(a, b) == 0 : a == b;
}

void *js_map_get(const js_map *m, const void *key)
{
	size_t i;

	if (!m->cap)
		return NULL;
	for (i = map_hash(m, key) & (m->cap - 1); m->e[i].key; i = (i + 1) & (m->cap - 1))
		if (map_eq(m, m->e[i].key, key))
			return m->e[i].val;
	return NULL;
}

/* Adds key (kept by reference: it must outlive the map). EGOV_ECONFLICT
 * if present. */
egov_err js_map_put(js_map *m, const void *key, void *val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 64, k;
		js_map_ent *ne = calloc(ncap, sizeof *ne);
		if (!ne)
			return EGOV_ENOMEM;
		for (k = 0; k < m->cap; k++) {
			if (!m->e[k].key)
				continue;
			for (i = map_hash(m, m->e[k].key) & (ncap - 1); ne[i].key; i = (i + 1) & (ncap - 1))
				;
			ne[i] = m->e[k];
		}
		free(m->e);
		m->e = ne;
		m->cap = ncap;
	}
	for (i = map_hash(m, key) & (m->cap - 1); m->e[i].key; i = (i + 1) & (m->cap - 1))
		if (map_eq(m, m->e[i].key, key))
			return EGOV_ECONFLICT;
	m->e[i].key = key;
	m->e[i].val = val;
	m->n++;
	return EGOV_OK;
}

void js_map_release(js_map *m)
{
	free(m->e);
	memset(m, 0, sizeof *m);
}

/* ---- the registry --------------------------------------------------------- */

typedef struct reg_doc {
	char *uri;
	cJSON *doc;
} reg_doc;

struct jsonschema_registry {
	reg_doc *docs;
	size_t n, cap;
};

egov_err jsonschema_registry_new(jsonschema_registry **out)
{
	*out = calloc(1, sizeof **out);
	return *out ? EGOV_OK : EGOV_ENOMEM;
}

void jsonschema_registry_free(jsonschema_registry *reg)
{
	size_t i;

	if (!reg)
		return;
	for (i = 0; i < reg->n; i++) {
		free(reg->docs[i].uri);
		cJSON_Delete(reg->docs[i].doc);
	}
	free(reg->docs);
	free(reg);
}

static const cJSON *registry_find(const jsonschema_registry *reg, const char *uri)
{
	size_t i;

	for (i = 0; reg && i < reg->n; i++)
		if (strcmp(reg->docs[i].uri, uri) == 0)
			return reg->docs[i].doc;
	return NULL;
}

egov_err jsonschema_registry_add(jsonschema_registry *reg, const char *uri, const cJSON *doc)
{
	reg_doc d = {NULL, NULL};
	egov_err err;

	if (!uri || !doc || strlen(uri) > JSONSCHEMA_URI_MAX || !js_uri_has_scheme(uri) || strchr(uri, '#')) {
		err = EGOV_EINVAL;
		goto out;
	}
	if (registry_find(reg, uri)) {
		err = EGOV_ECONFLICT;
		goto out;
	}
	if (reg->n >= JSONSCHEMA_DOCUMENTS_MAX * 4) {
		err = EGOV_ELIMIT;
		goto out;
	}
	if (reg->n == reg->cap) {
		size_t ncap = reg->cap ? reg->cap * 2 : 8;
		reg_doc *nd = realloc(reg->docs, ncap * sizeof *nd);
		if (!nd) {
			err = EGOV_ENOMEM;
			goto out;
		}
		reg->docs = nd;
		reg->cap = ncap;
	}
	if (!(d.uri = strdup(uri)) || !(d.doc = cJSON_Duplicate(doc, 1))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	reg->docs[reg->n++] = d;
	d.uri = NULL;
	d.doc = NULL;
	err = EGOV_OK;
out:
	free(d.uri);
	cJSON_Delete(d.doc);
	return err;
}

/* ---- compile context ------------------------------------------------------ */



void js_cc_error(js_cc *c, const char *where, const char *keyword, const char *code, const char *param)
{
	jsonschema_errors *e = c->errs;
	jsonschema_error *x;
	size_t len;

	c->failed = true;
	if (e->n >= JSONSCHEMA_ERRORS_MAX) {
		e->truncated = true;
		return;
	}
	x = &e->items[e->n++];
	x->code = code;
	x->keyword = keyword ? keyword : "";
	len = (size_t)snprintf(x->pointer, sizeof x->pointer, "%s", where ? where : "");
	if (len >= sizeof x->pointer)
		len = sizeof x->pointer - 1;
	if (keyword && *keyword)
		js_pointer_push(x->pointer, sizeof x->pointer, len, keyword);
	snprintf(x->param, sizeof x->param, "%s", param ? param : "");
}

void js_cc_fatal(js_cc *c, egov_err err, const char *where, const char *code)
{
	if (!c->fatal) {
		c->fatal = err;
		js_cc_error(c, where, "", code, "");
	}
}

void *js_cc_alloc(js_cc *c, size_t n)
{
	void *p = arena_alloc(&c->s->mem, n);

	if (!p)
		js_cc_fatal(c, EGOV_ELIMIT, "", "schema.too_large");
	return p;
}

char *js_cc_strdup(js_cc *c, const char *s)
{
	char *p = arena_strdup(&c->s->mem, s);

	if (!p)
		js_cc_fatal(c, EGOV_ELIMIT, "", "schema.too_large");
	return p;
}

const char *js_cc_where(js_cc *c, const char *where, const char *token)
{
	char p[JSONSCHEMA_POINTER_MAX];
	size_t len;

	if (!where)
		return NULL;
	len = (size_t)snprintf(p, sizeof p, "%s", where);

	if (len >= sizeof p)
		len = sizeof p - 1;
	js_pointer_push(p, sizeof p, len, token);
	return js_cc_strdup(c, p);
}

const char *js_cc_where_index(js_cc *c, const char *where, const char *token, size_t i)
{
	char p[JSONSCHEMA_POINTER_MAX];
	size_t len;

	if (!where)
		return NULL;
	len = (size_t)snprintf(p, sizeof p, "%s", where);

	if (len >= sizeof p)
		len = sizeof p - 1;
	len = js_pointer_push(p, sizeof p, len, token);
	js_pointer_push_index(p, sizeof p, len, i);
	return js_cc_strdup(c, p);
}

static const cJSON *member(const cJSON *obj, const char *name)
{
	const cJSON *m;

	for (m = obj->child; m; m = m->next)
		if (m->string && strcmp(m->string, name) == 0)
			return m;
	return NULL;
}

/* ---- indexing ------------------------------------------------------------- */

static js_resource *new_resource(js_cc *c, const char *uri, const cJSON *root, const char *where)
{
	js_resource *r = js_cc_alloc(c, sizeof *r);
	egov_err err;

	if (!r || !(r->uri = js_cc_strdup(c, uri)))
		return NULL;
	r->root = root;
	if ((err = js_map_put(&c->uris, r->uri, r)) != EGOV_OK) {
		if (err == EGOV_ECONFLICT)
			js_cc_error(c, where, "$id", "schema.duplicate_id", uri);
		else
			js_cc_fatal(c, err, where, "schema.too_large");
		return NULL;
	}
	r->next = c->s->resources;
	c->s->resources = r;
	return r;
}

static bool anchor_name_ok(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '.' || *s == '_'))
			return false;
	return true;
}

static void add_anchor(js_cc *c, js_resource *r, const cJSON *j, const char *kw, const char *where, bool dynamic)
{
	const cJSON *a = member(j, kw);
	char *key;
	egov_err err;

	if (!a)
		return;
	if (!cJSON_IsString(a) || !anchor_name_ok(a->valuestring)) {
		js_cc_error(c, where, kw, "schema.anchor_invalid", cJSON_IsString(a) ? a->valuestring : "");
		return;
	}
	if (dynamic) {
		if (r->ndyn == r->dyncap) {
			size_t ncap = r->dyncap ? r->dyncap * 2 : 4;
			js_dynanchor *nd = js_cc_alloc(c, ncap * sizeof *nd);
			if (!nd)
				return;
			if (r->ndyn)
				memcpy(nd, r->dyn, r->ndyn * sizeof *nd);
			r->dyn = nd;
			r->dyncap = ncap;
		}
		r->dyn[r->ndyn].name = a->valuestring;
		r->dyn[r->ndyn].json = j;
		r->dyn[r->ndyn].node = NULL;
		r->ndyn++;
	}
	buf_reset(&c->tmp);
	if (buf_addf(&c->tmp, "%s#%s", r->uri, a->valuestring) != EGOV_OK || !(key = js_cc_strdup(c, c->tmp.data))) {
		js_cc_fatal(c, EGOV_ELIMIT, where, "schema.too_large");
		return;
	}
	err = js_map_put(&c->anchors, key, (void *)(uintptr_t)j);
	/* $dynamicAnchor also names the place as a plain anchor; the same name
	 * twice on one object is one anchor */
	if (err == EGOV_ECONFLICT && js_map_get(&c->anchors, key) != j)
		js_cc_error(c, where, kw, "schema.duplicate_id", a->valuestring);
	else if (err && err != EGOV_ECONFLICT)
		js_cc_fatal(c, err, where, "schema.too_large");
}

typedef enum { SUB_ONE, SUB_ARRAY, SUB_OBJECT } sub_kind;

static const struct {
	const char *name;
	sub_kind kind;
} sub_keywords[] = {
	{"$defs", SUB_OBJECT}, {"properties", SUB_OBJECT}, {"patternProperties", SUB_OBJECT},
	{"dependentSchemas", SUB_OBJECT}, {"allOf", SUB_ARRAY}, {"anyOf", SUB_ARRAY}, {"oneOf", SUB_ARRAY},
	{"prefixItems", SUB_ARRAY}, {"items", SUB_ONE}, {"additionalProperties", SUB_ONE},
	{"unevaluatedItems", SUB_ONE}, {"unevaluatedProperties", SUB_ONE}, {"contains", SUB_ONE},
	{"propertyNames", SUB_ONE}, {"not", SUB_ONE}, {"if", SUB_ONE}, {"then", SUB_ONE}, {"else", SUB_ONE},
	{"contentSchema", SUB_ONE},
};

static void index_schema(js_cc *c, const cJSON *j, const char *base, js_resource *res, const char *where, int depth);

static void index_children(js_cc *c, const cJSON *j, const char *base, js_resource *res, const char *where, int depth)
{
	const cJSON *m, *v;
	size_t k, i;

	for (m = j->child; m && !c->fatal; m = m->next) {
		for (k = 0; k < sizeof sub_keywords / sizeof sub_keywords[0]; k++)
			if (m->string && strcmp(m->string, sub_keywords[k].name) == 0)
				break;
		if (k == sizeof sub_keywords / sizeof sub_keywords[0])
			continue;
		if (sub_keywords[k].kind == SUB_ONE) {
			index_schema(c, m, base, res, js_cc_where(c, where, m->string), depth + 1);
		} else if (sub_keywords[k].kind == SUB_ARRAY && cJSON_IsArray(m)) {
			for (v = m->child, i = 0; v && !c->fatal; v = v->next, i++)
				index_schema(c, v, base, res, js_cc_where_index(c, where, m->string, i), depth + 2);
		} else if (sub_keywords[k].kind == SUB_OBJECT && cJSON_IsObject(m)) {
			for (v = m->child; v && !c->fatal; v = v->next) {
				const char *w = js_cc_where(c, js_cc_where(c, where, m->string), v->string);
				index_schema(c, v, base, res, w, depth + 2);
			}
		}
	}
}

static void index_schema(js_cc *c, const cJSON *j, const char *base, js_resource *res, const char *where, int depth)
{
	const cJSON *id;
	js_loc *l;
	egov_err err;

	if (c->fatal || !where)
		return;
	if (depth > JSONSCHEMA_SCHEMA_DEPTH_MAX) {
		js_cc_fatal(c, EGOV_ELIMIT, where, "schema.too_deep");
		return;
	}
	if (js_map_get(&c->locs, j) || (!cJSON_IsObject(j) && !cJSON_IsBool(j)))
		return; /* seen, or not a schema (compiling says so where it matters) */
	id = cJSON_IsObject(j) ? member(j, "$id") : NULL;
	if (id) {
		char *hash;
		if (!cJSON_IsString(id) || strlen(id->valuestring) > JSONSCHEMA_URI_MAX) {
			js_cc_error(c, where, "$id", "schema.id_invalid", "");
		} else {
			buf_reset(&c->tmp);
			if ((err = js_uri_resolve(&c->tmp, base, id->valuestring)) != EGOV_OK) {
				js_cc_fatal(c, err, where, "schema.too_large");
				return;
			}
			if ((hash = strchr(c->tmp.data, '#')) && hash[1]) {
				js_cc_error(c, where, "$id", "schema.id_invalid", id->valuestring);
			} else {
				js_resource *r;
				if (hash)
					*hash = '\0';
				if ((r = new_resource(c, c->tmp.data, j, where)) != NULL) {
					res = r;
					base = r->uri;
				}
			}
		}
	}
	if (!res) {
		if (!(res = new_resource(c, base, j, where)))
			return;
		base = res->uri;
	}
	if (!(l = js_cc_alloc(c, sizeof *l)))
		return;
	l->json = j;
	l->base = base;
	l->res = res;
	l->where = where;
	if ((err = js_map_put(&c->locs, j, l)) != EGOV_OK) {
		js_cc_fatal(c, err, where, "schema.too_large");
		return;
	}
	if (!cJSON_IsObject(j))
		return;
	add_anchor(c, res, j, "$anchor", where, false);
	add_anchor(c, res, j, "$dynamicAnchor", where, true);
	index_children(c, j, base, res, where, depth);
}

/* Takes ownership of doc (kept by the schema) and indexes it. */
js_resource *js_cc_load(js_cc *c, cJSON *doc, const char *uri, const char *where)
{
	cJSON **nd;
	js_loc *l;

	if (c->s->ndocs >= JSONSCHEMA_DOCUMENTS_MAX) {
		cJSON_Delete(doc);
		js_cc_fatal(c, EGOV_ELIMIT, where, "schema.too_large");
		return NULL;
	}
	if (!(nd = realloc(c->s->docs, (c->s->ndocs + 1) * sizeof *nd))) {
		cJSON_Delete(doc);
		js_cc_fatal(c, EGOV_ENOMEM, where, "schema.too_large");
		return NULL;
	}
	c->s->docs = nd;
	nd[c->s->ndocs++] = doc;
	index_schema(c, doc, uri, NULL, where, 0);
	if (!(l = js_map_get(&c->locs, doc)))
		return NULL;
	/* known by the URI it was registered under as well as by its $id */
	if (strcmp(l->res->uri, uri) != 0 && !js_map_get(&c->uris, uri)) {
		char *u = js_cc_strdup(c, uri);
		if (u && js_map_put(&c->uris, u, l->res) != EGOV_OK)
			js_cc_fatal(c, EGOV_ENOMEM, where, "schema.too_large");
	}
	return l->res;
}

/* ---- nodes ---------------------------------------------------------------- */

js_node *js_cc_node(js_cc *c, const cJSON *j, js_resource *res, const char *where)
{
	js_loc *l;
	js_node *n;

	if (c->fatal)
		return NULL;
	if (!(l = js_map_get(&c->locs, j))) {
		/* a place indexing did not visit (inside an unknown keyword) */
		index_schema(c, j, res->uri, res, where, 0);
		if (!(l = js_map_get(&c->locs, j)))
			return NULL;
	}
	if (l->node)
		return l->node;
	if (c->nnodes >= JSONSCHEMA_NODES_MAX) {
		js_cc_fatal(c, EGOV_ELIMIT, where, "schema.too_large");
		return NULL;
	}
	if (c->nnodes == c->nodecap) {
		size_t ncap = c->nodecap ? c->nodecap * 2 : 64;
		js_node **nn = realloc(c->nodes, ncap * sizeof *nn);
		if (!nn) {
			js_cc_fatal(c, EGOV_ENOMEM, where, "schema.too_large");
			return NULL;
		}
		c->nodes = nn;
		c->nodecap = ncap;
	}
	if (!(n = js_cc_alloc(c, sizeof *n)))
		return NULL;
	n->json = j;
	n->resource = l->res;
	n->where = l->where;
	l->node = n;
	c->nodes[c->nnodes++] = n;
	return n;
}

/* Resolves a $ref or $dynamicRef of the schema at l; *frag is set to the
 * fragment (in the scratch buffer, valid until the next use of c->tmp). */
js_node *js_cc_resolve(js_cc *c, const js_loc *l, const char *kw, const char *ref, const char **frag)
{
	char *hash;
	js_resource *res;
	const cJSON *target = NULL;
	egov_err err;

	buf_reset(&c->tmp);
	if ((err = js_uri_resolve(&c->tmp, l->base, ref)) != EGOV_OK) {
		js_cc_fatal(c, err, l->where, "schema.too_large");
		return NULL;
	}
	hash = strchr(c->tmp.data, '#');
	if (hash)
		*hash = '\0';
	*frag = hash ? hash + 1 : "";
	if (!(res = js_map_get(&c->uris, c->tmp.data))) {
		const cJSON *doc = registry_find(c->reg, c->tmp.data);
		if (doc) {
			char *uri = js_cc_strdup(c, c->tmp.data);
			char *fr = js_cc_strdup(c, *frag);
			cJSON *copy = cJSON_Duplicate(doc, 1);
			if (!copy || !uri || !fr) {
				cJSON_Delete(copy);
				js_cc_fatal(c, EGOV_ENOMEM, l->where, "schema.too_large");
				return NULL;
			}
			buf_reset(&c->tmp);
			buf_addf(&c->tmp, "%s#", uri);
			res = js_cc_load(c, copy, uri, c->tmp.data ? js_cc_strdup(c, c->tmp.data) : uri);
			*frag = fr;
		}
	}
	if (res) {
		if (**frag == '\0') {
			target = res->root;
		} else if (**frag == '/') {
			target = js_pointer_get(res->root, *frag);
		} else {
			char key[JSONSCHEMA_URI_MAX * 2 + 2];
			snprintf(key, sizeof key, "%s#%s", res->uri, *frag);
			target = js_map_get(&c->anchors, key);
		}
	}
	if (!target || (!cJSON_IsObject(target) && !cJSON_IsBool(target))) {
		js_cc_error(c, l->where, kw, "schema.ref_unresolved", ref);
		return NULL;
	}
	return js_cc_node(c, target, res, l->where);
}

/* ---- cycles and chains of in-place applicators ----------------------------- */

typedef struct dyn_entry {
	const char *name;
	js_node *node;
} dyn_entry;

static int cmp_dyn(const void *a, const void *b)
{
	return strcmp(((const dyn_entry *)a)->name, ((const dyn_entry *)b)->name);
}

typedef struct frame {
	js_node *n;
	js_node **edges;
	size_t nedges, next;
} frame;

static void add_edge(js_node ***e, size_t *n, size_t *cap, js_node *t, bool *oom)
{
	if (!t)
		return;
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		js_node **ne = realloc(*e, ncap * sizeof *ne);
		if (!ne) {
			*oom = true;
			return;
		}
		*e = ne;
		*cap = ncap;
	}
	(*e)[(*n)++] = t;
}

/* The schemas applied to the same instance location as n. A dynamic
 * reference may land on any $dynamicAnchor of its name. */
static js_node **inplace_edges(const js_node *n, const dyn_entry *dyn, size_t ndyn, size_t *count, bool *oom)
{
	js_node **e = NULL;
	size_t k = 0, cap = 0, i;

	add_edge(&e, &k, &cap, n->ref, oom);
	add_edge(&e, &k, &cap, n->dynref, oom);
	if (n->dyn_anchor) {
		dyn_entry key = {n->dyn_anchor, NULL};
		const dyn_entry *hit = bsearch(&key, dyn, ndyn, sizeof *dyn, cmp_dyn);
		while (hit && hit > dyn && strcmp(hit[-1].name, n->dyn_anchor) == 0)
			hit--;
		for (; hit && hit < dyn + ndyn && strcmp(hit->name, n->dyn_anchor) == 0; hit++)
			add_edge(&e, &k, &cap, hit->node, oom);
	}
	for (i = 0; i < n->nall_of; i++)
		add_edge(&e, &k, &cap, n->all_of[i], oom);
	for (i = 0; i < n->nany_of; i++)
		add_edge(&e, &k, &cap, n->any_of[i], oom);
	for (i = 0; i < n->none_of; i++)
		add_edge(&e, &k, &cap, n->one_of[i], oom);
	add_edge(&e, &k, &cap, n->not_, oom);
	add_edge(&e, &k, &cap, n->if_, oom);
	add_edge(&e, &k, &cap, n->then_, oom);
	add_edge(&e, &k, &cap, n->else_, oom);
	for (i = 0; i < n->ndep_schemas; i++)
		add_edge(&e, &k, &cap, n->dep_schemas[i].schema, oom);
	*count = k;
	return e;
}

static void longest_chain(js_cc *c, frame *f)
{
	unsigned short longest = 0;
	size_t k;

	for (k = 0; k < f->nedges; k++)
		if (f->edges[k]->chain + 1 > longest)
			longest = (unsigned short)(f->edges[k]->chain + 1);
	f->n->chain = longest;
	f->n->mark = 2;
	if (longest > JSONSCHEMA_REF_CHAIN_MAX && !c->failed)
		js_cc_error(c, f->n->where, "", "schema.ref_chain_too_long", "");
}

void js_cc_check_chains(js_cc *c)
{
	dyn_entry *dyn = NULL;
	frame *stack = NULL;
	size_t ndyn = 0, i, k, top;
	bool oom = false;
	js_resource *r;

	for (r = c->s->resources; r; r = r->next)
		ndyn += r->ndyn;
	if (ndyn && !(dyn = calloc(ndyn, sizeof *dyn)))
		goto nomem;
	ndyn = 0;
	for (r = c->s->resources; r; r = r->next)
		for (i = 0; i < r->ndyn; i++)
			dyn[ndyn++] = (dyn_entry){r->dyn[i].name, r->dyn[i].node};
	if (ndyn)
		qsort(dyn, ndyn, sizeof *dyn, cmp_dyn);
	if (!(stack = calloc(c->nnodes + 1, sizeof *stack)))
		goto nomem;
	for (i = 0; i < c->nnodes && !c->failed; i++) {
		if (c->nodes[i]->mark)
			continue;
		top = 0;
		stack[0] = (frame){c->nodes[i], NULL, 0, 0};
		c->nodes[i]->mark = 1;
		stack[0].edges = inplace_edges(c->nodes[i], dyn, ndyn, &stack[0].nedges, &oom);
		while (!oom) {
			frame *f = &stack[top];
			if (f->next < f->nedges) {
				js_node *t = f->edges[f->next++];
				if (t->mark == 1) {
					js_cc_error(c, f->n->where, "", "schema.ref_loop", t->where);
					break;
				}
				if (t->mark == 0) {
					t->mark = 1;
					stack[++top] = (frame){t, NULL, 0, 0};
					stack[top].edges = inplace_edges(t, dyn, ndyn, &stack[top].nedges, &oom);
				}
				continue;
			}
			/* every edge done: the longest chain below n is known */
			longest_chain(c, f);
			free(f->edges);
			f->edges = NULL;
			if (top == 0)
				break;
			top--;
		}
		for (k = 0; k <= top; k++) {
			free(stack[k].edges);
			stack[k].edges = NULL;
		}
	}
	if (oom)
		goto nomem;
	goto out;
nomem:
	js_cc_fatal(c, EGOV_ENOMEM, "", "schema.too_large");
out:
	if (stack)
		for (i = 0; i <= c->nnodes; i++)
			free(stack[i].edges);
	free(stack);
	free(dyn);
}

