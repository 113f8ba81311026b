/*
 * json.h: JSON at the edge. Parse once into typed C structs through a
 * declarative field table; write responses with a small streaming writer.
 *
 * json_bind() accepts only what the table names. It rejects, with a stable
 * code and the dotted path of the offending field:
 *   json.malformed        not JSON
 *   json.invalid_utf8     bytes that are not UTF-8 (cJSON would accept them)
 *   json.too_deep         nesting over EGOV_JSON_DEPTH_MAX
 *   json.not_object       top level (or a nested object field) is not an object
 *   json.unknown_field    a member the table does not name
 *   json.duplicate_field  the same member twice (no first-wins/last-wins games)
 *   json.missing_field    a required member absent
 *   json.wrong_type       e.g. a string where an integer belongs
 *   json.too_long         a string over max_len bytes or an array over max_len items
 *   json.out_of_range     an integer outside [min, max]
 *   json.too_large        more members than EGOV_JSON_MEMBERS_MAX (also: the
 *                         arena is full, returned as EGOV_ELIMIT)
 *   json.too_short        a string under min_len bytes
 *   json.nul              an escaped \u0000 in any string or key (it would
 *                         cut a C string short); reported for the document
 *                         (field ""), as the precheck finds it before parsing
 *
 * Beyond RFC 8259 nothing is accepted: no BOM, no raw control characters in
 * strings, no "01"/"1."/"-.5", no trailing bytes but whitespace.
 *
 * Integers: cJSON keeps numbers as doubles, so JSON_T_INT takes any number
 * whose value is integral (1, 1.0 and 1e2 alike) and refuses 1.5 as
 * wrong_type; values beyond +-(2^53 - 1) (2^53 + 1 has no double) are
 * out_of_range whatever min/max say.
 *
 * Members absent from the body leave the out struct untouched (start from a
 * zeroed or defaulted struct). JSON null is wrong_type unless the field is
 * nullable; a nullable null leaves the member as it was and still sets the
 * presence flag (PATCH can tell "clear" from "absent").
 *
 * JSON_T_OBJECT members are structs embedded in the parent (not pointers);
 * their fields' offsets and presence flags are relative to that struct.
 * JSON_T_STRING_ARRAY: max_len limits the items (default EGOV_JSON_ARRAY_MAX),
 * each item is a string of at most EGOV_JSON_STRING_MAX and at least min_len
 * bytes. JSON_T_RAW values obey the same duplicate and member limits.
 *
 * JSON_T_OBJECT_ARRAY: an array of objects, each bound by .fields into a
 * struct of .elem_size bytes; the member is a json_obj_array whose items
 * point at n such structs, zeroed before binding (absent members stay
 * zero). max_len limits the count (default EGOV_JSON_ARRAY_MAX), min_len is
 * the least count (json.too_short); an element that is not an object is
 * json.not_object. Errors inside an element name it by index:
 * "members[3].code", "subsystems[0].certs[2].usage". The count is checked
 * before anything is allocated.
 *
 *	typedef struct member { const char *code; int64_t level; } member;
 *	static const json_field member_fields[] = {
 *		{.name = "code", .type = JSON_T_STRING, .offset = offsetof(member, code), .required = true},
 *		{.name = "level", .type = JSON_T_INT, .offset = offsetof(member, level), .min = 1, .max = 9},
 *	};
 *	{.name = "members", .type = JSON_T_OBJECT_ARRAY, .offset = offsetof(doc, members),
 *	 .fields = member_fields, .nfields = 2, .elem_size = sizeof(member), .max_len = 100},
 *	...
 *	const member *m = doc.members.items; // doc.members.n of them
 *
 * Strings and arrays are copied into the caller's arena (the request's, or
 * one the caller keeps longer), so the out struct lives as long as it.
 */
#ifndef EGOV_CORE_JSON_H
#define EGOV_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"

typedef enum json_type {
	JSON_T_STRING,       /* const char * */
	JSON_T_INT,          /* int64_t; JSON numbers with a fraction are wrong_type */
	JSON_T_BOOL,         /* bool */
	JSON_T_STRING_ARRAY, /* json_str_array */
	JSON_T_OBJECT,       /* nested struct described by .fields */
	JSON_T_RAW,          /* const char *: the member re-serialised compactly (any type) */
	JSON_T_OBJECT_ARRAY, /* json_obj_array of structs described by .fields and .elem_size */
} json_type;

typedef struct json_str_array {
	const char **items;
	size_t n;
} json_str_array;

typedef struct json_obj_array {
	void *items; /* n structs of the field's elem_size, in the arena */
	size_t n;
} json_obj_array;

typedef struct json_field {
	const char *name;
	json_type type;
	size_t offset;          /* offsetof(struct, member) */
	bool required;
	bool nullable;          /* JSON null accepted and leaves the member zero */
	size_t max_len;         /* strings: bytes, arrays: items; 0 = default limit */
	size_t min_len;         /* strings: bytes (e.g. 1 for non-empty); object arrays: items */
	int64_t min, max;       /* ints; both 0 = full int64 range */
	const struct json_field *fields; /* JSON_T_OBJECT, JSON_T_OBJECT_ARRAY (each element) */
	size_t nfields;
	ssize_t present_offset; /* > 0: offset of a bool set when the member was present */
	size_t elem_size;       /* JSON_T_OBJECT_ARRAY: sizeof the element struct */
} json_field;

/* Marks where a bool "was this member present" lives; use in a field as
 * .present_offset = JSON_PRESENT(struct, member). Leave 0 for untracked
 * (offset 0 can never be a presence flag in practice: tables put the flag
 * after the members). */
#define JSON_PRESENT(type, member) ((ssize_t)offsetof(type, member))

typedef struct json_error {
	const char *code;  /* one of the codes above */
	char field[128];   /* dotted path, e.g. "address.street" or "tags[3]"; "" for the document */
} json_error;

/* Parses body and fills out (a struct described by fields). On failure
 * returns EGOV_EINVAL (or EGOV_ENOMEM/ELIMIT) and fills *jerr. */
egov_err json_bind(arena *a, const char *body, size_t len, const json_field *fields, size_t nfields,
		   void *out, json_error *jerr);

/* Binds an already parsed cJSON tree (root must be an object) by the same
 * rules, for a caller that holds one: the claims of a verified token. The
 * precheck did not see the tree's text, so its strings are only as strict
 * as the parser that made it; use it for text already checked or of our
 * own making. flags: 0, or JSON_BIND_SKIP_UNKNOWN to pass over members the
 * tables do not name (at every level) instead of refusing them, as RFC 7519
 * asks of claims. The tree stays the caller's. */
struct cJSON;
#define JSON_BIND_SKIP_UNKNOWN 1u
egov_err json_bind_tree(arena *a, const struct cJSON *root, const json_field *fields, size_t nfields,
			unsigned flags, void *out, json_error *jerr);

/* Checks UTF-8 validity (no overlongs, no surrogates, <= U+10FFFF) and the
 * bracket depth outside strings in one pass. Returns NULL if fine, else the
 * json error code. */
const char *json_precheck(const char *s, size_t len, size_t depth_max);

/* Deepest nesting the writer produces; our responses nest far less. */
#define EGOV_JSON_DEPTH_MAX_WRITER 16

/* ---- writer -------------------------------------------------------------
 * Appends compact JSON to a buf. Errors are sticky: check w.err at the end. */
typedef struct jw {
	buf *b;
	egov_err err;
	int depth;
	bool need_comma[EGOV_JSON_DEPTH_MAX_WRITER];
} jw;

void jw_init(jw *w, buf *b);
void jw_obj_begin(jw *w);
void jw_obj_end(jw *w);
void jw_arr_begin(jw *w);
void jw_arr_end(jw *w);
void jw_key(jw *w, const char *key);
void jw_str(jw *w, const char *s); /* NULL writes null */
void jw_int(jw *w, int64_t v);
void jw_bool(jw *w, bool v);
void jw_null(jw *w);
void jw_raw(jw *w, const char *json); /* already-valid JSON text */
/* key + value shorthands */
void jw_kstr(jw *w, const char *key, const char *s);
void jw_kint(jw *w, const char *key, int64_t v);
void jw_kbool(jw *w, const char *key, bool v);

#endif
