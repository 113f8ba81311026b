/*
 * fuzz_exchange.c: libFuzzer target for the gateway's parsing of what
 * arrives from outside (src/exchange/exchange_wire.c, exchange_id.c).
 *
 * Input: lines separated by '\n':
 *   0  a request target (path?query) as a caller sends it to /r1/...
 *   1  X-Road-Client        2  X-Road-Id          3  X-Egov-Signed-At
 *   4  X-Egov-Signer-Cert   5  X-Egov-Signature   6  an access rule's methods
 *   7  an access rule's paths                     8  a method
 *   9  an Accept header (getOpenAPI), also read as a central node's URL
 *
 * Invariants:
 *   - The target is split as the router does (uri_path_parse, then the
 *     {*rest} after "r1" joined by '/'); exchange_split_rest gives back
 *     exactly those segments.
 *   - A service id made of the first five parts is a valid id only if it
 *     has five parts of [A-Za-z0-9_.-]{1,64}.
 *   - What is signed and forwarded (the raw tail after six segments)
 *     starts with '/', is the rest of the target, and decodes to the same
 *     segments as the decoded tail that access rules are matched against;
 *     the decoded tail holds no '?' (a query never hides in it).
 *   - An access rule allows a path only as an independent reading of the
 *     rules does: '*', an exact path, or a prefix ending in a slash and a
 *     star; never a path with a ".." segment.
 *   - Accepted signature headers have a valid message id, a 64-hex signer
 *     hash and a base64url signature, and fit their buffers.
 *   - The canonical request built from any fields is refused exactly when
 *     a field holds a line break (here a '\r': the fields are lines);
 *     otherwise it has 12 lines.
 *   - An identifier part is never more than one part; a path whose
 *     identifier parts are said to have an empty one has "//" or ends in
 *     '/' there.
 *   - Content negotiation picks one of the offers or none; with no Accept
 *     the first; a header without any '/' accepts nothing.
 *   - An accepted central node URL is http(s), without a user part, a
 *     query, a fragment or a space.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/uri.h"
#include "exchange/wire/wire.h"
#include "core/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NFIELDS 10
#define MAXPARTS EGOV_PATH_SEGMENTS_MAX

static const char *field(char **f, int i)
{
	return f[i] ? f[i] : "";
}

/* The independent reading of an access rule's paths. */
static bool oracle_path(const char *list, const char *path)
{
	size_t plen = strcspn(path, "?");
	const char *p = list;

	if (strstr(path, "/../") || (plen >= 3 && strncmp(path + plen - 3, "/..", 3) == 0))
		return false;
	if (strcmp(list, "*") == 0)
		return true;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len >= 2 && p[len - 2] == '/' && p[len - 1] == '*') {
			if (plen >= len - 1 && memcmp(path, p, len - 1) == 0)
				return true;
		} else if (len >= 2 && p[len - 1] == '*') {
			/* "x*" without the slash: the rule checker refuses it, and
			 * the matcher reads it as a prefix too. */
			if (plen >= len - 1 && memcmp(path, p, len - 1) == 0)
				return true;
		} else if (len == plen && memcmp(path, p, len) == 0) {
			return true;
		}
		if (!end)
			return false;
		p = end + 1;
	}
}

static void check_target(arena *a, const char *target)
{
	size_t plen = strcspn(target, "?"), i, n, nparts;
	uri_path up, rp;
	const char *why = NULL, *parts[MAXPARTS], *raw, *dec;
	char *rest, id[EXCHANGE_ID_MAX];
	buf b;

	if (uri_path_parse(a, target, plen, &up, &why) != EGOV_OK || up.nsegs < 1 || strcmp(up.segs[0], "r1") != 0)
		return;
	/* {*rest}: the decoded segments after "r1" joined by '/'. */
	buf_init(&b, 1 << 20);
	for (i = 1; i < up.nsegs; i++)
		if ((i > 1 && buf_addc(&b, '/')) || buf_adds(&b, up.segs[i]))
			abort();
	rest = arena_strdup(a, b.data ? b.data : "");
	buf_release(&b);
	if (!rest)
		return;
	nparts = exchange_split_rest(rest, parts, MAXPARTS);
	if (nparts != up.nsegs - 1)
		abort();
	for (i = 0; i < nparts; i++)
		if (strcmp(parts[i], up.segs[i + 1]) != 0)
			abort();

	for (n = 1; n <= 5 && n <= nparts; n++) {
		if (!exchange_join_id(parts, n, id))
			continue;
		if (exchange_id_valid(id, EXCHANGE_ID_SERVICE)) {
			size_t k, slashes = 0;
			for (k = 0; id[k]; k++)
				slashes += id[k] == '/';
			if (n != 5 || slashes != 4)
				abort();
		}
	}
	if (nparts < 5)
		return;

	raw = exchange_raw_tail(a, target, 6);
	dec = exchange_decoded_tail(a, parts, nparts, 5);
	if (!raw || !dec || raw[0] != '/' || dec[0] != '/' || strchr(dec, '?'))
		abort();
	/* The raw tail is the end of the target (or "/" before a query). */
	{
		size_t lt = strlen(target), lr = strlen(raw);
		if (!(lr <= lt && strcmp(target + lt - lr, raw) == 0) &&
		    !(lr - 1 <= lt && strcmp(target + lt - (lr - 1), raw + 1) == 0))
			abort();
	}
	/* What is signed and forwarded decodes to what access rules see. */
	if (uri_path_parse(a, raw, strcspn(raw, "?"), &rp, &why) != EGOV_OK)
		abort();
	if (rp.nsegs != nparts - 5)
		abort();
	for (i = 0; i < rp.nsegs; i++)
		if (strcmp(rp.segs[i], parts[i + 5]) != 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy, *f[NFIELDS] = {0}, *p;
	arena a;
	int i;
	buf b;

	if (size > 2 * EGOV_URI_MAX)
		return 0;
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	p = copy;
	for (i = 0; i < NFIELDS && p; i++) {
		char *nl = strchr(p, '\n');
		f[i] = p;
		if (nl)
			*nl = '\0';
		p = nl ? nl + 1 : NULL;
	}
	arena_init(&a, EGOV_REQUEST_ARENA_MAX);

	check_target(&a, field(f, 0));

	/* Identifier parts, and empty parts a router would hide. */
	if (exchange_id_part_valid(field(f, 1)) && (strchr(field(f, 1), '/') || strlen(field(f, 1)) > EXCHANGE_PART_MAX))
		abort();
	if (!exchange_raw_parts_nonempty(field(f, 0), 1, 5)) {
		const char *t = field(f, 0);
		size_t pl = strcspn(t, "?");
		if (!memmem(t, pl, "//", 2) && !(pl > 0 && t[pl - 1] == '/'))
			abort();
	}

	/* Content negotiation. */
	{
		static const char *const offers[] = {"application/json", "text/yaml"};
		const char *acc = field(f, 9);
		int pick = exchange_accept_pick(acc, offers, 2);
		if (pick < -1 || pick > 1 || (strspn(acc, " \t") == strlen(acc) && pick != 0) ||
		    (!strchr(acc, '/') && strspn(acc, " \t") != strlen(acc) && pick != -1))
			abort();
		if (exchange_accept_pick(NULL, offers, 2) != 0)
			abort();
	}

	/* A central node's URL. */
	if (exchange_conf_url_valid(field(f, 9))) {
		const char *u = field(f, 9), *host = strstr(u, "://");
		if ((strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) || strpbrk(u, "?# \t\r") ||
		    strlen(u) > EXCHANGE_URL_MAX || !host || memchr(host + 3, '@', strcspn(host + 3, "/")))
			abort();
	}

	/* X-Road-Client and the identifiers. */
	if (exchange_id_valid(field(f, 1), EXCHANGE_ID_SUBSYSTEM)) {
		char member[EXCHANGE_ID_MAX];
		if (exchange_id_prefix(field(f, 1), 3, member) != EGOV_OK || !exchange_id_valid(member, EXCHANGE_ID_MEMBER))
			abort();
	}

	/* The provider's signature headers. */
	if (exchange_sig_headers_valid(field(f, 2), field(f, 3), field(f, 4), field(f, 5))) {
		if (!exchange_msgid_valid(field(f, 2)) || strlen(field(f, 2)) > EXCHANGE_MSGID_MAX ||
		    strlen(field(f, 3)) >= EXCHANGE_SIGNED_AT_MAX || strlen(field(f, 4)) != 64 ||
		    strlen(field(f, 5)) >= EXCHANGE_SIG_MAX || strpbrk(field(f, 5), "+/="))
			abort();
	}

	/* Access rules. */
	if (f[6] && f[7] && f[8]) {
		bool m = exchange_rule_method_allowed(f[6], f[8]);
		bool pa = exchange_rule_path_allowed(f[7], f[0]);
		if (m && strcmp(f[6], "*") != 0 && !strstr(f[6], f[8]))
			abort();
		if (pa != oracle_path(f[7], *f[0] && *f[0] != '?' ? f[0] : "/"))
			abort();
	}

	/* The canonical request: one field per line, or refused. */
	{
		exchange_canon_req c = {field(f, 2), field(f, 1), field(f, 0), field(f, 8), field(f, 0), field(f, 6),
					field(f, 7), "", "", field(f, 3), field(f, 4)};
		egov_err err;
		size_t k, lines = 1;
		bool cr = false;
		for (i = 0; i < 9; i++) /* the fields of the text: 0 to 8, but 5 */
			cr = cr || (i != 5 && strchr(field(f, i), '\r'));
		buf_init(&b, 1 << 20);
		err = exchange_canon_request(&c, &b);
		if (err == EGOV_OK) {
			for (k = 0; k < b.len; k++)
				lines += b.data[k] == '\n';
			if (lines != 12 || cr)
				abort();
		} else if (err != EGOV_EINVAL || !cr) {
			abort();
		}
		buf_release(&b);
	}

	arena_release(&a);
	free(copy);
	return 0;
}
