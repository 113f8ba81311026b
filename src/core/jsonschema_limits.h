/*
 * jsonschema_limits.h: every limit the JSON Schema validator puts on a
 * schema and on an instance, each with its reason.
 *
 * Schemas come from departments (form definitions, event types) and may be
 * imported from outside; instances come from residents. Neither may make
 * the validator crash, recurse without bound or run for long: over a limit,
 * compilation is refused with an error naming the place, and validation
 * fails with schema.too_deep or schema.too_complex (EGOV_ELIMIT), never a
 * truncation and never a silent pass.
 */
#ifndef EGOV_CORE_JSONSCHEMA_LIMITS_H
#define EGOV_CORE_JSONSCHEMA_LIMITS_H

/* Nesting of a schema document (objects and arrays). A form of pages,
 * groups and repeating groups nests about 10 deep; 64 leaves room for
 * generated schemas and keeps the compiler's recursion shallow. */
#define JSONSCHEMA_SCHEMA_DEPTH_MAX 64

/* Subschemas in one compiled schema, every document it reaches counted.
 * The 2020-12 meta-schema has about 150; a 100-question form about 300. */
#define JSONSCHEMA_NODES_MAX 20000

/* Documents one compilation may take from the registry: a form refers to
 * a few shared definitions (addresses, names), not to hundreds. */
#define JSONSCHEMA_DOCUMENTS_MAX 64

/* Memory one compiled schema may hold besides its copy of the documents
 * (nodes, tables, regular expressions' metadata). */
#define JSONSCHEMA_COMPILE_MEMORY_MAX (16u * 1024 * 1024)

/* Longest chain of $ref, $dynamicRef and in-place applicators (allOf,
 * anyOf, oneOf, not, if/then/else, dependentSchemas) applied to one
 * instance location. Real schemas chain a handful; a cycle (a $ref loop)
 * is refused at compile time whatever its length, and this bound keeps an
 * acyclic chain from recursing thousands deep. */
#define JSONSCHEMA_REF_CHAIN_MAX 32

/* Length of a $id, $ref, $dynamicRef or registered URI, in bytes. */
#define JSONSCHEMA_URI_MAX 2048

/* Nesting of an instance. Bodies bound by core/json.c nest at most
 * EGOV_JSON_DEPTH_MAX (32); a tree from elsewhere may be deeper, and
 * validation recurses along it. */
#define JSONSCHEMA_INSTANCE_DEPTH_MAX 64

/* Recursion of one validation: instance depth times in-place chains is
 * bounded by the two limits above; this is the backstop that holds even
 * for $dynamicRef, whose target is chosen while validating. */
#define JSONSCHEMA_EVAL_DEPTH_MAX 1024

/* Work one validation may do, in steps: a subschema applied to a value is
 * a step, so is a comparison of two values (enum, const, uniqueItems) and
 * a member looked up; a regular-expression match costs
 * JSONSCHEMA_REGEX_STEP_COST. A 100-field form takes about 1,000 steps;
 * the budget stops a schema that nests anyOf under anyOf through shared
 * $refs (exponential work) within milliseconds. */
#define JSONSCHEMA_EVAL_STEPS_MAX 1000000

/* Errors kept from one validation or compilation: enough for every field
 * of a page of a form; past it, errors_truncated is set. */
#define JSONSCHEMA_ERRORS_MAX 32

/* Bytes of a JSON pointer kept in an error; a longer one is cut, which
 * only shortens what a person sees. */
#define JSONSCHEMA_POINTER_MAX 256

/* Bytes of an error's parameter (a bound, a property name, a type list). */
#define JSONSCHEMA_PARAM_MAX 96

/* Source length of a pattern (pattern, patternProperties keys): form
 * fields use patterns of tens of bytes. */
#define JSONSCHEMA_PATTERN_MAX 1024

/* Backtracking work one regular-expression match may do (PCRE2's match
 * limit). Sensible patterns need a few per character; a catastrophic one
 * ((a+)+$ against "aaaa...b") hits the limit within about a millisecond,
 * and the validation fails with schema.too_complex. */
#define JSONSCHEMA_REGEX_MATCH_LIMIT 50000

/* Heap the interpreter may use for one match's backtracking frames, KiB. */
#define JSONSCHEMA_REGEX_HEAP_LIMIT_KIB 1024

/* What one match costs of JSONSCHEMA_EVAL_STEPS_MAX: so at most
 * 1,000,000 / 250 = 4,000 matches of at most 50,000 backtracking steps
 * each, well under a second even for a schema and an instance written to
 * be slow, while a form with hundreds of patterned fields stays far from
 * the budget. */
#define JSONSCHEMA_REGEX_STEP_COST 250

#endif
