/*
 * fuzz_jsonschema.c: libFuzzer target for the JSON Schema validator: a
 * schema and an instance, both from the input, compiled and validated.
 *
 * Input: one byte of flags (format assertion, unknown keywords allowed),
 * then the schema's JSON text, a NUL byte, and the instance's JSON text.
 * Both are parsed by cJSON as they come, without the edge's precheck, so
 * the validator also meets what only a lenient parser lets through
 * (invalid UTF-8 in strings and keys, duplicate keys). A registry holds
 * one document, so that references between documents are reached too.
 *
 * Checked after each run: compilation and validation end (the sanitizers
 * and libFuzzer's timeout catch crashes and hangs); a refusal carries at
 * least one error whose code starts "schema." and whose pointer and param
 * are NUL-terminated; a schema validates an instance the same way twice.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/jsonschema.h"
#include "core/banned.h"

static jsonschema_registry *registry;

static void check_errors(const jsonschema_errors *e, egov_err err)
{
	size_t i;

	if (err == EGOV_OK) {
		if (e->n != 0)
			abort();
		return;
	}
	if (err == EGOV_ENOMEM)
		return;
	if (e->n == 0 || e->n > JSONSCHEMA_ERRORS_MAX)
		abort();
	for (i = 0; i < e->n; i++) {
		const jsonschema_error *x = &e->items[i];
		if (!x->code || strncmp(x->code, "schema.", 7) != 0 || !x->keyword)
			abort();
		if (!memchr(x->pointer, '\0', sizeof x->pointer) || !memchr(x->param, '\0', sizeof x->param))
			abort();
		if (x->pointer[0] && x->pointer[0] != '/' && !strchr(x->pointer, '#'))
			abort();
	}
}

static void setup(void)
{
	cJSON *doc = cJSON_Parse("{\"$defs\": {\"s\": {\"type\": \"string\", \"maxLength\": 3},"
				 " \"n\": {\"$dynamicAnchor\": \"n\", \"type\": \"integer\"}},"
				 " \"type\": \"object\", \"properties\": {\"a\": {\"$ref\": \"#/$defs/s\"}}}");

	if (!doc || jsonschema_registry_new(&registry) != EGOV_OK ||
	    jsonschema_registry_add(registry, "https://egov.example/r.json", doc) != EGOV_OK)
		abort();
	cJSON_Delete(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data + 1, *nul;
	cJSON *schema = NULL, *instance = NULL;
	jsonschema_options opt = {0};
	jsonschema_errors errs;
	jsonschema *s = NULL;
	egov_err err, again;

	if (!registry)
		setup();
	if (size < 2 || size > 64 * 1024)
		return 0;
	opt.flags = data[0] & (JSONSCHEMA_FORMAT_ASSERT | JSONSCHEMA_ALLOW_UNKNOWN);
	opt.registry = (data[0] & 4) ? registry : NULL;
	nul = memchr(text, '\0', size - 1);
	if (!nul)
		return 0;
	schema = cJSON_ParseWithLength(text, (size_t)(nul - text));
	instance = cJSON_ParseWithLength(nul + 1, size - 1 - (size_t)(nul + 1 - text));
	if (!schema)
		goto out;
	memset(&errs, 0x55, sizeof errs);
	err = jsonschema_compile(schema, &opt, &s, &errs);
	if ((err == EGOV_OK) != (s != NULL))
		abort();
	check_errors(&errs, err);
	if (!s || !instance)
		goto out;
	err = jsonschema_validate(s, instance, &errs);
	if (err != EGOV_OK && err != EGOV_EINVAL && err != EGOV_ELIMIT && err != EGOV_ENOMEM)
		abort();
	check_errors(&errs, err);
	again = jsonschema_validate(s, instance, NULL);
	if (err != EGOV_ENOMEM && again != EGOV_ENOMEM && (err == EGOV_OK) != (again == EGOV_OK))
		abort();
	/* the schema against itself: any JSON is an instance */
	check_errors(&errs, jsonschema_validate(s, schema, &errs));
out:
	jsonschema_free(s);
	cJSON_Delete(schema);
	cJSON_Delete(instance);
	return 0;
}
