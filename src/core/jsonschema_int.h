/*
 * jsonschema_int.h: the compiled form of a JSON Schema, shared by the
 * files of the validator (compile, validate, format, regex, uri) and by
 * nobody else.
 *
 * A compiled schema is a graph of js_node, one per subschema reached, all
 * allocated in the jsonschema's arena and pointing into its own copies of
 * the documents. After jsonschema_compile() returns, nothing in it
 * changes: validation only reads it.
 */
#ifndef EGOV_CORE_JSONSCHEMA_INT_H
#define EGOV_CORE_JSONSCHEMA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/jsonschema.h"

/* Instance types, as the "type" keyword names them (integer is a number
 * with no fraction). */
enum {
	JS_T_NULL = 1,
	JS_T_BOOLEAN = 2,
	JS_T_OBJECT = 4,
	JS_T_ARRAY = 8,
	JS_T_NUMBER = 16,
	JS_T_STRING = 32,
	JS_T_INTEGER = 64,
};

/* ---- regular expressions (jsonschema_regex.c) ---------------------------- */

typedef struct js_regex js_regex;

/* Translates an ECMA-262 pattern (the "u" flag's syntax) into PCRE2's and
 * compiles it. *out is the caller's to free with js_regex_free(); NULL and
 * EGOV_EINVAL (*why set to a short reason) if the pattern is not valid or
 * not supported; EGOV_ELIMIT if too long; EGOV_ENOMEM. */
egov_err js_regex_compile(const char *pattern, js_regex **out, const char **why);
void js_regex_free(js_regex *re);
/* A match context holding the limits of jsonschema_limits.h; shared,
 * read-only, by every match of a compiled schema. NULL when out of memory. */
void *js_regex_limits_new(void);
void js_regex_limits_free(void *mctx);
/* Per-validation scratch for matches (not shared between threads). */
void *js_regex_scratch_new(void);
void js_regex_scratch_free(void *scratch);
/* 1: s (len bytes, UTF-8) has a match; 0: none; -1: the match limit was
 * reached (the caller fails the validation); -2: s is not UTF-8 (which no
 * string bound at the edge is: a pattern cannot match it). */
int js_regex_search(const js_regex *re, void *mctx, void *scratch, const char *s, size_t len);

/* ---- formats (jsonschema_format.c) --------------------------------------- */

enum {
	JS_FMT_UNKNOWN = -1, /* a name 2020-12 does not define */
	JS_FMT_UNCHECKED = 0 /* defined, but egov does not assert it */
	/* > 0: asserted, see jsonschema_format.c */
};

/* The id of a format name: JS_FMT_UNKNOWN, JS_FMT_UNCHECKED or > 0. */
int js_format_id(const char *name);
/* Whether s conforms to the asserted format id (> 0). */
bool js_format_check(int id, const char *s);
/* What checking format id costs of the validation's work budget: "regex"
 * compiles a pattern, the others are a linear scan. */
size_t js_format_cost(int id);

/* ---- URIs and JSON pointers (jsonschema_uri.c) --------------------------- */

/* Whether s starts with a scheme ("https:", "urn:"). */
bool js_uri_has_scheme(const char *s);
/* Resolves ref against base (RFC 3986 section 5.2, dot segments removed)
 * into out. EGOV_ELIMIT over out's cap, EGOV_ENOMEM. */
egov_err js_uri_resolve(buf *out, const char *base, const char *ref);
/* The value at a JSON pointer given as a URI fragment (percent-encoded,
 * without the '#'), from root; NULL if there is none or it is malformed. */
const cJSON *js_pointer_get(const cJSON *root, const char *fragment);
/* Appends "/" and token escaped (~0, ~1) to a pointer of len bytes in p
 * (cap bytes); cut short, still NUL-terminated, when it does not fit.
 * Returns the new length. */
size_t js_pointer_push(char *p, size_t cap, size_t len, const char *token);
size_t js_pointer_push_index(char *p, size_t cap, size_t len, size_t index);

/* ---- the compiled schema -------------------------------------------------- */

typedef struct js_node js_node;
typedef struct js_resource js_resource;

typedef struct js_named {
	const char *name; /* in the document copy */
	js_node *schema;
} js_named;

typedef struct js_patprop {
	js_regex *re;
	js_node *schema;
} js_patprop;

typedef struct js_depreq {
	const char *name;
	const char **names;
	size_t n;
} js_depreq;

typedef struct js_dynanchor {
	const char *name;
	const cJSON *json;
	js_node *node; /* compiled once some $dynamicRef may choose it */
} js_dynanchor;

/* A schema resource: a document root or a subschema with $id. */
struct js_resource {
	const char *uri;         /* absolute, without fragment */
	const cJSON *root;
	js_dynanchor *dyn;       /* its $dynamicAnchors */
	size_t ndyn, dyncap;
	js_resource *next;       /* every resource of the compilation */
};

struct js_node {
	const cJSON *json;
	js_resource *resource;
	const char *where;       /* JSON pointer in its document, for compile errors */

	bool is_bool, bool_value;
	bool wants_ann;          /* unevaluatedItems or unevaluatedProperties here */

	unsigned types;          /* JS_T_* of "type"; 0: no type keyword */
	const cJSON *enum_;      /* array */
	const cJSON *const_;

	bool has_min, has_max, has_xmin, has_xmax, has_mult;
	double min, max, xmin, xmax, mult;

	size_t min_len, max_len; /* max: SIZE_MAX when absent */
	js_regex *pattern;
	const char *pattern_src;
	int format;              /* > 0 when asserted */
	const char *format_name;

	size_t min_items, max_items;
	bool unique;
	js_node *contains;
	size_t min_contains, max_contains; /* min 1 by default */

	size_t min_props, max_props;
	const char **required;
	size_t nrequired;
	js_depreq *depreq;
	size_t ndepreq;

	js_node *ref;
	js_node *dynref;         /* static target of $dynamicRef */
	const char *dyn_anchor;  /* its anchor name when the resolution is dynamic */

	js_node **all_of, **any_of, **one_of;
	size_t nall_of, nany_of, none_of;
	js_node *not_, *if_, *then_, *else_;
	js_named *dep_schemas;
	size_t ndep_schemas;

	js_node **prefix;
	size_t nprefix;
	js_node *items;

	js_named *props;         /* sorted by name (bytes) */
	size_t nprops;
	js_patprop *patprops;
	size_t npatprops;
	js_node *additional;
	js_node *prop_names;

	js_node *uneval_items, *uneval_props;

	/* compile bookkeeping */
	bool queued;
	unsigned char mark;      /* cycle check: 0 new, 1 on the path, 2 done */
	unsigned short chain;    /* longest in-place chain from here */
};

struct jsonschema {
	arena mem;
	cJSON **docs;            /* the copies this schema owns */
	size_t ndocs;
	js_regex **regexes;      /* compiled patterns, freed with the schema */
	size_t nregexes, regexcap;
	js_resource *resources;
	void *mctx;              /* regex match limits, shared read-only */
	js_node *root;
	bool dynamic;            /* some $dynamicRef resolves dynamically */
};

/* ---- compilation (jsonschema_index.c, jsonschema_compile.c) ---------------- */

/* A hash map with pointer keys or NUL-terminated string keys; keys are
 * kept by reference and must outlive it. */
typedef struct js_map_ent {
	const void *key; /* NULL: empty slot */
	void *val;
} js_map_ent;

typedef struct js_map {
	js_map_ent *e;
	size_t cap, n;
	bool str; /* keys are NUL-terminated strings, else pointers */
} js_map;

/* What indexing learnt about one schema object (or boolean schema). */
typedef struct js_loc {
	const cJSON *json;
	const char *base; /* base URI in force inside it (its own $id applied) */
	js_resource *res;
	const char *where;
	js_node *node;
} js_loc;

typedef struct js_cc {
	jsonschema *s;
	unsigned flags;
	const jsonschema_registry *reg;
	jsonschema_errors *errs;
	bool failed;
	egov_err fatal;    /* out of memory or over a limit: stop */
	js_map locs;          /* cJSON * -> js_loc */
	js_map uris;          /* resource URI -> js_resource */
	js_map anchors;       /* "uri#name" -> const cJSON * */
	js_node **nodes;   /* every node, in creation order: also the work queue */
	size_t nnodes, nodecap, next;
	buf tmp;
} js_cc;

void *js_map_get(const js_map *m, const void *key);
/* EGOV_ECONFLICT if key is there already; EGOV_ENOMEM. */
egov_err js_map_put(js_map *m, const void *key, void *val);
void js_map_release(js_map *m);

/* Keeps a compile error (where + "/" + keyword); marks the compilation failed. */
void js_cc_error(js_cc *c, const char *where, const char *keyword, const char *code, const char *param);
/* Out of memory or over a limit: the first such error stops compilation. */
void js_cc_fatal(js_cc *c, egov_err err, const char *where, const char *code);
/* From the schema's arena; NULL (and fatal) over JSONSCHEMA_COMPILE_MEMORY_MAX. */
void *js_cc_alloc(js_cc *c, size_t n);
char *js_cc_strdup(js_cc *c, const char *s);
/* where + "/token" (or "/token/i"), in the arena; NULL stays NULL. */
const char *js_cc_where(js_cc *c, const char *where, const char *token);
const char *js_cc_where_index(js_cc *c, const char *where, const char *token, size_t i);
/* Takes ownership of doc, keeps it in the schema and indexes it under uri. */
js_resource *js_cc_load(js_cc *c, cJSON *doc, const char *uri, const char *where);
/* The node of the schema at j (made and queued for compiling the first
 * time), or NULL (an error is kept). res: the resource j is reached in. */
js_node *js_cc_node(js_cc *c, const cJSON *j, js_resource *res, const char *where);
/* The node a $ref or $dynamicRef of the schema at l names; *frag is its
 * fragment. NULL with schema.ref_unresolved kept. */
js_node *js_cc_resolve(js_cc *c, const js_loc *l, const char *kw, const char *ref, const char **frag);
/* Refuses cycles and over-long chains of in-place applicators. */
void js_cc_check_chains(js_cc *c);

/* Equality of JSON values as JSON Schema defines it (numbers by value,
 * object members in any order). *steps is charged per value compared;
 * false once it passes the budget (the caller checks). */
bool js_json_equal(const cJSON *a, const cJSON *b, size_t *steps);

#endif
