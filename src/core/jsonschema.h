/*
 * jsonschema.h: JSON Schema (draft 2020-12) in the kernel: compile a schema
 * once, validate cJSON trees against it many times, from any thread.
 *
 * Supported: core ($schema, $id, $ref, $anchor, $defs, $dynamicRef,
 * $dynamicAnchor, $comment), applicator (allOf, anyOf, oneOf, not,
 * if/then/else, dependentSchemas, prefixItems, items, contains, properties,
 * patternProperties, additionalProperties, propertyNames), unevaluated
 * (unevaluatedItems, unevaluatedProperties), validation (type, enum, const,
 * multipleOf, maximum, exclusiveMaximum, minimum, exclusiveMinimum,
 * maxLength, minLength (code points), pattern (ECMA-262, run by PCRE2),
 * maxItems, minItems, uniqueItems, maxContains, minContains, maxProperties,
 * minProperties, required, dependentRequired), format (an annotation; with
 * JSONSCHEMA_FORMAT_ASSERT an assertion for date, date-time, time,
 * duration, email, hostname, ipv4, ipv6, uri, uri-reference, uuid,
 * json-pointer, relative-json-pointer and regex), and the meta-data and
 * content keywords, which are annotations and ignored.
 *
 * Not supported, refused at compile time: a $schema other than 2020-12
 * (so no custom vocabularies), a $ref to a document the caller did not
 * register (nothing is ever fetched), and, unless JSONSCHEMA_ALLOW_UNKNOWN,
 * any keyword not listed above: a misspelt "maxLenght" in a form definition
 * is an error, not a constraint silently ignored.
 *
 * Errors (jsonschema_error) carry a stable code a caller can translate,
 * the keyword, a JSON pointer and a short parameter:
 *   validation (pointer: the instance location, e.g. "/members/3/code")
 *     schema.type              param: the allowed types, "integer,null"
 *     schema.enum, schema.const
 *     schema.minimum, schema.maximum, schema.exclusive_minimum,
 *     schema.exclusive_maximum, schema.multiple_of     param: the bound
 *     schema.min_length, schema.max_length             param: the bound
 *     schema.pattern           param: the pattern (cut to fit)
 *     schema.format            param: the format name
 *     schema.min_items, schema.max_items, schema.unique_items,
 *     schema.contains, schema.min_contains, schema.max_contains,
 *     schema.min_properties, schema.max_properties     param: the bound
 *     schema.required, schema.dependent_required: the pointer names the
 *                              missing member itself ("/applicant/name"),
 *                              so a form can link the error to its field;
 *                              param: the member's name
 *     schema.additional_properties, schema.unevaluated_properties,
 *     schema.property_names: the pointer names the member
 *     schema.items, schema.unevaluated_items: the pointer names the item
 *     schema.any_of, schema.one_of, schema.not: none of (or more than one
 *                              of, or the negated) subschemas matched;
 *                              their own errors are not reported
 *     schema.false             the false schema: nothing is valid here
 *     schema.too_deep          the instance nests over the limit
 *     schema.too_complex       the work budget or a regex match limit ran out
 *   compilation (pointer: the place in the schema, e.g. "/properties/age/minimum")
 *     schema.not_schema        neither an object nor a boolean
 *     schema.keyword_invalid   a keyword's value has the wrong form
 *     schema.unknown_keyword   not a supported keyword (strict mode)
 *     schema.unsupported_dialect  $schema other than draft 2020-12
 *     schema.duplicate_keyword the same member twice in a schema object
 *     schema.id_invalid, schema.anchor_invalid, schema.duplicate_id
 *     schema.ref_unresolved    no registered document, anchor or pointer
 *     schema.ref_loop          a $ref cycle without progress in the instance
 *     schema.ref_chain_too_long  over JSONSCHEMA_REF_CHAIN_MAX
 *     schema.pattern_invalid   not an ECMA-262 expression PCRE2 can run
 *     schema.format_unknown    format not defined by 2020-12 (strict mode)
 *     schema.format_unsupported  asserting a format egov cannot check
 *     schema.too_deep, schema.too_large  over a limit of jsonschema_limits.h
 *
 * Ownership: a jsonschema and a jsonschema_registry keep their own copies
 * of the documents given to them; the caller's trees stay the caller's.
 * A compiled jsonschema does not refer to the registry it was compiled
 * with, which may be freed or changed afterwards.
 *
 * Threads: a compiled jsonschema is immutable; any number of threads may
 * validate against it at once. A registry may be read by concurrent
 * compilations but not changed while one runs.
 */
#ifndef EGOV_CORE_JSONSCHEMA_H
#define EGOV_CORE_JSONSCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/jsonschema_limits.h"

struct cJSON;

typedef struct jsonschema jsonschema;
typedef struct jsonschema_registry jsonschema_registry;

typedef struct jsonschema_error {
	const char *code;    /* "schema.max_length"; static storage */
	const char *keyword; /* "maxLength"; static storage, "" when none applies */
	char pointer[JSONSCHEMA_POINTER_MAX]; /* JSON pointer; "" is the whole document */
	char param[JSONSCHEMA_PARAM_MAX];     /* see the codes above; "" when none */
} jsonschema_error;

typedef struct jsonschema_errors {
	jsonschema_error items[JSONSCHEMA_ERRORS_MAX];
	size_t n;
	bool truncated; /* there were more than JSONSCHEMA_ERRORS_MAX */
} jsonschema_errors;

/* Compilation flags. */
#define JSONSCHEMA_FORMAT_ASSERT 1u  /* "format" fails values that do not conform */
#define JSONSCHEMA_ALLOW_UNKNOWN 2u  /* unknown keywords and formats are ignored, as the
					specification allows, instead of refused */

typedef struct jsonschema_options {
	unsigned flags;                      /* JSONSCHEMA_* above */
	const jsonschema_registry *registry; /* documents a $ref may reach; NULL: none */
	const char *base_uri;                /* the schema's URI when it has no $id; NULL:
						an internal one ("egov:/schema") */
} jsonschema_options;

/* A new, empty registry of documents a schema may refer to by URI. The
 * caller frees it with jsonschema_registry_free(). EGOV_ENOMEM. */
egov_err jsonschema_registry_new(jsonschema_registry **out);
void jsonschema_registry_free(jsonschema_registry *reg);

/* Adds a copy of doc under uri, an absolute URI without a fragment (the
 * document's $id, if any, is known too once it is compiled in). The
 * document is checked when a schema that reaches it is compiled.
 * EGOV_EINVAL: uri not absolute, has a fragment or is too long;
 * EGOV_ECONFLICT: uri already registered; EGOV_ELIMIT: more than
 * JSONSCHEMA_DOCUMENTS_MAX * 4 documents; EGOV_ENOMEM. */
egov_err jsonschema_registry_add(jsonschema_registry *reg, const char *uri, const struct cJSON *doc);

/* Compiles schema (an object or a boolean). On success *out is a new
 * jsonschema the caller frees with jsonschema_free(). On failure *out is
 * NULL and errs (if not NULL) lists the problems (up to
 * JSONSCHEMA_ERRORS_MAX): EGOV_EINVAL for a schema that is not valid or
 * uses what is not supported, EGOV_ELIMIT over a limit, EGOV_ENOMEM.
 * opt may be NULL (strict, format as annotation, no registry). */
egov_err jsonschema_compile(const struct cJSON *schema, const jsonschema_options *opt, jsonschema **out,
			    jsonschema_errors *errs);

/* Validates instance against a compiled schema. EGOV_OK: valid.
 * EGOV_EINVAL: not valid; errs (if not NULL) says where and why, errors
 * of the most specific subschemas first found. EGOV_ELIMIT: a limit was
 * reached (schema.too_deep, schema.too_complex in errs); the instance is
 * to be treated as invalid. EGOV_ENOMEM. Never changes the instance;
 * safe to call from many threads at once. */
egov_err jsonschema_validate(const jsonschema *s, const struct cJSON *instance, jsonschema_errors *errs);

void jsonschema_free(jsonschema *s);

#endif
