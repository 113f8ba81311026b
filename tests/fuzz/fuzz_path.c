/*
 * fuzz_path.c: libFuzzer target for uri_path_parse().
 *
 * Invariants checked on every accepted path: decoded starts with '/'; no
 * segment is empty, ".", "..", or holds '/', '\' or a control byte; decoded
 * is exactly "/" + segments joined by '/' (+ '/' when trailing_slash), so no
 * NUL hid inside a segment; at most EGOV_PATH_SEGMENTS_MAX segments. A
 * refusal always names a "uri." reason and leaves *out empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/uri.h"
#include "core/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	arena a;
	uri_path p;
	const char *why = NULL;
	egov_err err;
	char *raw;
	size_t i, pos = 1, dlen;

	if (size > 2 * EGOV_URI_MAX)
		return 0;
	raw = malloc(size ? size : 1); /* exact size: ASan sees a read past len */
	if (!raw)
		return 0;
	memcpy(raw, data, size);
	arena_init(&a, EGOV_REQUEST_ARENA_MAX);
	err = uri_path_parse(&a, raw, size, &p, &why);
	if (err == EGOV_EINVAL) {
		if (!why || strncmp(why, "uri.", 4) != 0 || p.decoded || p.segs || p.nsegs || p.trailing_slash)
			abort();
	} else if (err != EGOV_OK) {
		abort();
	} else {
		if (why || !p.decoded || p.decoded[0] != '/' || p.nsegs > EGOV_PATH_SEGMENTS_MAX)
			abort();
		if (p.trailing_slash && p.nsegs == 0)
			abort();
		dlen = strlen(p.decoded);
		for (i = 0; i < p.nsegs; i++) {
			const char *s = p.segs[i];
			size_t n = strlen(s), k;
			if (n == 0 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
				abort();
			for (k = 0; k < n; k++) {
				unsigned char c = (unsigned char)s[k];
				if (c == '/' || c == '\\' || c < 0x20 || c == 0x7F)
					abort();
			}
			if (pos + n > dlen || memcmp(p.decoded + pos, s, n) != 0)
				abort();
			pos += n;
			if (i + 1 < p.nsegs) {
				if (p.decoded[pos] != '/')
					abort();
				pos++;
			}
		}
		if (p.trailing_slash) {
			if (p.decoded[pos] != '/')
				abort();
			pos++;
		}
		if (p.nsegs == 0)
			pos = 1;
		if (pos != dlen || dlen > size + 1)
			abort();
	}
	arena_release(&a);
	free(raw);
	return 0;
}
