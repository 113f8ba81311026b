/*
 * yaml.c: a JSON document written as YAML, for getOpenAPI's text/yaml
 * representation (GovStack IM Directory Services). The emitter is
 * libyaml's (Debian's libyaml), driven by events from the cJSON tree, so
 * quoting, escaping and indentation are libyaml's well-tried rules and not
 * ours.
 *
 * What stays ours is which plain scalars a reader would take for another
 * type: YAML readers resolve plain "yes", "off", "null", "~", "1.10" or
 * "2024-01-01" to booleans, nulls, numbers or dates (YAML 1.1 readers such
 * as PyYAML the most eagerly). Every JSON string that could read as
 * anything but a string is emitted quoted; libyaml also quotes whatever
 * cannot be plain at all ("- x", "a: b", a trailing space). Numbers are
 * written so that both YAML 1.1 and 1.2 read them as numbers (an exponent
 * gets a fraction: 1e+21 becomes 1.0e+21). Invariant: the YAML reads back
 * as the JSON value it was made from.
 */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#include "core/limits.h"
#include "exchange/wire/wire.h"
#include "core/banned.h"

typedef struct yaml_out {
	buf *out;
	egov_err err;
} yaml_out;

static int write_out(void *data, unsigned char *bytes, size_t size)
{
	yaml_out *y = data;

	if (!y->err)
		y->err = buf_add(y->out, bytes, size);
	return y->err ? 0 : 1;
}

/* Whether a plain scalar s could be read as something other than a
 * string: empty, the YAML 1.1 booleans and nulls, anything that starts
 * like a number, a date or a time (a digit, or a sign or dot before a
 * digit), the infinities and NaN, and the merge and value keys. */
static bool looks_typed(const char *s)
{
	static const char *const words[] = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~",
					    ".inf", ".nan", "<<", "="};
	const char *t = s;
	size_t i;

	if (!*s)
		return true;
	if ((s[0] >= '0' && s[0] <= '9') ||
	    ((s[0] == '-' || s[0] == '+' || s[0] == '.') && ((s[1] >= '0' && s[1] <= '9') || s[1] == '.')))
		return true;
	if (*t == '-' || *t == '+')
		t++;
	for (i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strcasecmp(t, words[i]) == 0 || strcasecmp(s, words[i]) == 0)
			return true;
	return false;
}

static egov_err emit(yaml_emitter_t *e, yaml_event_t *ev, const yaml_out *y)
{
	if (yaml_emitter_emit(e, ev))
		return EGOV_OK;
	return y->err ? y->err : EGOV_EINVAL;
}

static egov_err scalar(yaml_emitter_t *e, const yaml_out *y, const char *text, bool typed_ok)
{
	yaml_event_t ev;
	size_t n = strlen(text);

	if (n > INT_MAX)
		return EGOV_ELIMIT;
	/* A string that could read as another type may not be plain: with
	 * plain_implicit off libyaml quotes it. */
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)text, (int)n,
					  typed_ok || !looks_typed(text), 1, YAML_ANY_SCALAR_STYLE))
		return EGOV_ENOMEM;
	return emit(e, &ev, y);
}

/* A JSON number as both YAML 1.1 and 1.2 read a number: cJSON's text,
 * with ".0" before an exponent that has no fraction. */
static egov_err number(yaml_emitter_t *e, const yaml_out *y, const cJSON *item)
{
	char *text = cJSON_PrintUnformatted(item), out[64];
	const char *exp;
	size_t at;
	egov_err err;

	if (!text)
		return EGOV_ENOMEM;
	exp = strpbrk(text, "eE");
	if (exp && !memchr(text, '.', (size_t)(exp - text)) && strlen(text) + 3 < sizeof out) {
		at = (size_t)(exp - text);
		memcpy(out, text, at);
		memcpy(out + at, ".0", 2);
		memcpy(out + at + 2, exp, strlen(exp) + 1);
		err = scalar(e, y, out, true);
	} else {
		err = scalar(e, y, text, true);
	}
	cJSON_free(text);
	return err;
}

static egov_err node(yaml_emitter_t *e, const yaml_out *y, const cJSON *item)
{
	yaml_event_t ev;
	const cJSON *it;
	egov_err err;

	if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
		bool obj = cJSON_IsObject(item);
		if (!(obj ? yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE)
			  : yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE)))
			return EGOV_ENOMEM;
		if ((err = emit(e, &ev, y)))
			return err;
		cJSON_ArrayForEach(it, item)
		{
			if ((obj && (err = scalar(e, y, it->string ? it->string : "", false))) || (err = node(e, y, it)))
				return err;
		}
		if (!(obj ? yaml_mapping_end_event_initialize(&ev) : yaml_sequence_end_event_initialize(&ev)))
			return EGOV_ENOMEM;
		return emit(e, &ev, y);
	}
	if (cJSON_IsString(item))
		return scalar(e, y, item->valuestring, false);
	if (cJSON_IsNumber(item))
		return number(e, y, item);
	if (cJSON_IsBool(item))
		return scalar(e, y, cJSON_IsTrue(item) ? "true" : "false", true);
	return scalar(e, y, "null", true);
}

egov_err exchange_json_to_yaml(const char *json, size_t len, buf *out)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	yaml_out y = {.out = out};
	cJSON *doc = NULL;
	bool started = false;
	egov_err err = EGOV_EINVAL;

	buf_reset(out);
	if (!json || json_precheck(json, len, EGOV_JSON_DEPTH_MAX) || !(doc = cJSON_ParseWithLength(json, len)))
		goto out;
	err = EGOV_ENOMEM;
	if (!yaml_emitter_initialize(&e))
		goto out;
	started = true;
	yaml_emitter_set_output(&e, write_out, &y);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_indent(&e, 2);
	yaml_emitter_set_width(&e, -1); /* no folding of long lines */
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || (err = emit(&e, &ev, &y)))
		goto out;
	err = EGOV_ENOMEM;
	if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) || (err = emit(&e, &ev, &y)))
		goto out;
	if ((err = node(&e, &y, doc)))
		goto out;
	err = EGOV_ENOMEM;
	if (!yaml_document_end_event_initialize(&ev, 1) || (err = emit(&e, &ev, &y)))
		goto out;
	err = EGOV_ENOMEM;
	if (!yaml_stream_end_event_initialize(&ev) || (err = emit(&e, &ev, &y)))
		goto out;
	err = yaml_emitter_flush(&e) ? y.err : (y.err ? y.err : EGOV_EINVAL);
out:
	if (started)
		yaml_emitter_delete(&e);
	cJSON_Delete(doc);
	return err;
}
