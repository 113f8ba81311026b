/*
 * fuzz_query.c: libFuzzer target for uri_query_parse() and uri_query_get().
 *
 * Invariants: at most EGOV_QUERY_PARAMS_MAX pairs; every name and value is
 * non-NULL, valid UTF-8 (checked by re-parsing it percent-encoded) and no
 * longer than the raw text; decoding never grows the text; the first pair
 * is found again by name. A refusal names a "uri." reason and leaves *out
 * empty.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"
#include "core/uri.h"
#include "core/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Percent-encodes s entirely and parses it back: the result must be s. */
static void roundtrip(arena *a, const char *s)
{
	buf b;
	uri_query q;
	const char *why;
	size_t i, n = strlen(s);

	buf_init(&b, 1 << 20);
	if (buf_adds(&b, "k="))
		abort();
	for (i = 0; i < n; i++)
		if (buf_addf(&b, "%%%02X", (unsigned char)s[i]))
			abort();
	if (uri_query_parse(a, b.data, b.len, &q, &why) != EGOV_OK || q.n != 1 || strcmp(q.params[0].value, s))
		abort();
	buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arena a;
	uri_query q;
	const char *why = NULL;
	egov_err err;
	char *raw;
	size_t i, total = 0;

	if (size > 2 * EGOV_URI_MAX)
		return 0;
	raw = malloc(size ? size : 1);
	if (!raw)
		return 0;
	memcpy(raw, data, size);
	arena_init(&a, EGOV_REQUEST_ARENA_MAX);
	err = uri_query_parse(&a, raw, size, &q, &why);
	if (err == EGOV_EINVAL) {
		if (!why || strncmp(why, "uri.", 4) != 0 || q.n || q.params)
			abort();
	} else if (err != EGOV_OK) {
		abort();
	} else {
		if (why || q.n > EGOV_QUERY_PARAMS_MAX || (q.n && !q.params))
			abort();
		for (i = 0; i < q.n; i++) {
			if (!q.params[i].name || !q.params[i].value)
				abort();
			total += strlen(q.params[i].name) + strlen(q.params[i].value);
			roundtrip(&a, q.params[i].name);
			roundtrip(&a, q.params[i].value);
		}
		if (total > size)
			abort();
		if (q.n && uri_query_get(&q, q.params[0].name) != q.params[0].value)
			abort();
	}
	arena_release(&a);
	free(raw);
	return 0;
}
