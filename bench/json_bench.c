/*
 * json_bench.c: the measurement behind egov's JSON parser choice.
 *
 *   gcc -std=c11 -D_GNU_SOURCE -O2 -Isrc $(pkg-config --cflags libcjson jansson) \
 *       -o build/json_bench bench/json_bench.c src/core/json.c src/core/utf8.c src/core/buf.c \
 *       src/core/arena.c src/core/err.c $(pkg-config --libs libcjson jansson)
 *   build/json_bench [seconds_per_case]       (needs libjansson-dev)
 *
 * Each case parses a body and binds the same fields into the same C struct:
 *   cjson    json_bind(): json_precheck() + cJSON + the field-table walk
 *   jansson  json_loadb(JSON_REJECT_DUPLICATES) + a hand-written walk doing
 *            the same checks (unknown fields, types, lengths, ranges) and
 *            the same copies into the arena
 * on a ~300-byte request (an appointment booking) and a ~100 KB document
 * (a notice with a long body and many recipients). It also times the
 * precheck alone, to show what closing cJSON's UTF-8 gap costs.
 *
 * One line per figure, `name key=value ...`, for scripts/bench.sh; ratio is
 * jansson time over cjson time (above 1: cjson faster).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* jansson and json.h both name a type json_type; rename jansson's here
 * (a typedef name is not part of its ABI). */
#define json_type jansson_json_type
#include <jansson.h>
#undef json_type

#include "core/json.h"
#include "core/limits.h"

typedef struct applicant {
	const char *name, *id_no, *phone, *email;
} applicant;

typedef struct booking {
	const char *service_id;
	applicant who;
	int64_t slot;
	const char *language;
	const char *notes;
	json_str_array tags;
	bool consent;
} booking;

static const json_field applicant_fields[] = {
	{.name = "name", .type = JSON_T_STRING, .offset = offsetof(applicant, name), .required = true,
	 .min_len = 1, .max_len = 200},
	{.name = "id_no", .type = JSON_T_STRING, .offset = offsetof(applicant, id_no), .required = true,
	 .max_len = 32},
	{.name = "phone", .type = JSON_T_STRING, .offset = offsetof(applicant, phone), .max_len = 32},
	{.name = "email", .type = JSON_T_STRING, .offset = offsetof(applicant, email), .max_len = 254},
};

static const json_field booking_fields[] = {
	{.name = "service_id", .type = JSON_T_STRING, .offset = offsetof(booking, service_id), .required = true,
	 .max_len = 64},
	{.name = "applicant", .type = JSON_T_OBJECT, .offset = offsetof(booking, who), .required = true,
	 .fields = applicant_fields, .nfields = 4},
	{.name = "slot", .type = JSON_T_INT, .offset = offsetof(booking, slot), .required = true, .min = 1,
	 .max = 4102444800},
	{.name = "language", .type = JSON_T_STRING, .offset = offsetof(booking, language), .max_len = 8},
	{.name = "notes", .type = JSON_T_STRING, .offset = offsetof(booking, notes), .max_len = 2000},
	{.name = "tags", .type = JSON_T_STRING_ARRAY, .offset = offsetof(booking, tags), .max_len = 8},
	{.name = "consent", .type = JSON_T_BOOL, .offset = offsetof(booking, consent), .required = true},
};

typedef struct notice {
	const char *title;
	const char *body;
	int64_t priority;
	json_str_array recipients;
} notice;

#define RECIPIENTS 900

static const json_field notice_fields[] = {
	{.name = "title", .type = JSON_T_STRING, .offset = offsetof(notice, title), .required = true,
	 .max_len = 300},
	{.name = "body", .type = JSON_T_STRING, .offset = offsetof(notice, body), .required = true,
	 .max_len = 65536},
	{.name = "priority", .type = JSON_T_INT, .offset = offsetof(notice, priority), .min = 0, .max = 9},
	{.name = "recipients", .type = JSON_T_STRING_ARRAY, .offset = offsetof(notice, recipients),
	 .max_len = 1000},
};

static const char small_body[] =
	"{\"service_id\":\"svc-0192f3a4-7c1e-7b3a\",\"applicant\":{\"name\":\"\xE9\x99\xB3\xE5\xA4\xA7\xE6\x96\x87\","
	"\"id_no\":\"A1234567\",\"phone\":\"+853 6612 3456\",\"email\":\"chan.taiman@example.mo\"},"
	"\"slot\":1717400400,\"language\":\"zh-Hant\",\"notes\":\"Please call before 10:00; "
	"wheelchair access needed.\",\"tags\":[\"urgent\",\"kiosk\"],\"consent\":true}";

/* ---- jansson walk doing what json_bind does for these two tables ---- */

static int j_str(arena *a, json_t *v, size_t min, size_t max, const char **dst)
{
	size_t n;
	if (!json_is_string(v))
		return -1;
	n = json_string_length(v);
	if (n < min || n > max || memchr(json_string_value(v), '\0', n))
		return -1;
	return (*dst = arena_strndup(a, json_string_value(v), n)) ? 0 : -1;
}

static int j_int(json_t *v, int64_t min, int64_t max, int64_t *dst)
{
	json_int_t i;
	if (!json_is_integer(v))
		return -1;
	i = json_integer_value(v);
	if (i < min || i > max)
		return -1;
	*dst = i;
	return 0;
}

static int j_arr(arena *a, json_t *v, size_t max, json_str_array *dst)
{
	size_t i, n;
	json_t *it;
	if (!json_is_array(v) || (n = json_array_size(v)) > max)
		return -1;
	dst->items = n ? arena_alloc(a, n * sizeof *dst->items) : NULL;
	if (n && !dst->items)
		return -1;
	json_array_foreach(v, i, it)
	{
		if (j_str(a, it, 0, EGOV_JSON_STRING_MAX, &dst->items[i]))
			return -1;
	}
	dst->n = n;
	return 0;
}

static int j_booking(arena *a, const char *text, size_t len, booking *b)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v, *w;
	const char *k, *k2;
	int rc = -1, seen_id = 0, seen_ap = 0, seen_slot = 0, seen_consent = 0;

	if (!root || !json_is_object(root) || json_object_size(root) > EGOV_JSON_MEMBERS_MAX)
		goto out;
	json_object_foreach(root, k, v)
	{
		if (!strcmp(k, "service_id")) {
			if (j_str(a, v, 0, 64, &b->service_id))
				goto out;
			seen_id = 1;
		} else if (!strcmp(k, "applicant")) {
			int sn = 0, si = 0;
			if (!json_is_object(v))
				goto out;
			json_object_foreach(v, k2, w)
			{
				if (!strcmp(k2, "name")) {
					if (j_str(a, w, 1, 200, &b->who.name))
						goto out;
					sn = 1;
				} else if (!strcmp(k2, "id_no")) {
					if (j_str(a, w, 0, 32, &b->who.id_no))
						goto out;
					si = 1;
				} else if (!strcmp(k2, "phone")) {
					if (j_str(a, w, 0, 32, &b->who.phone))
						goto out;
				} else if (!strcmp(k2, "email")) {
					if (j_str(a, w, 0, 254, &b->who.email))
						goto out;
				} else {
					goto out;
				}
			}
			if (!sn || !si)
				goto out;
			seen_ap = 1;
		} else if (!strcmp(k, "slot")) {
			if (j_int(v, 1, 4102444800, &b->slot))
				goto out;
			seen_slot = 1;
		} else if (!strcmp(k, "language")) {
			if (j_str(a, v, 0, 8, &b->language))
				goto out;
		} else if (!strcmp(k, "notes")) {
			if (j_str(a, v, 0, 2000, &b->notes))
				goto out;
		} else if (!strcmp(k, "tags")) {
			if (j_arr(a, v, 8, &b->tags))
				goto out;
		} else if (!strcmp(k, "consent")) {
			if (!json_is_boolean(v))
				goto out;
			b->consent = json_is_true(v);
			seen_consent = 1;
		} else {
			goto out;
		}
	}
	rc = seen_id && seen_ap && seen_slot && seen_consent ? 0 : -1;
out:
	json_decref(root);
	return rc;
}

static int j_notice(arena *a, const char *text, size_t len, notice *n)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
	const char *k;
	int rc = -1, st = 0, sb = 0;

	if (!root || !json_is_object(root) || json_object_size(root) > EGOV_JSON_MEMBERS_MAX)
		goto out;
	json_object_foreach(root, k, v)
	{
		if (!strcmp(k, "title")) {
			if (j_str(a, v, 0, 300, &n->title))
				goto out;
			st = 1;
		} else if (!strcmp(k, "body")) {
			if (j_str(a, v, 0, 65536, &n->body))
				goto out;
			sb = 1;
		} else if (!strcmp(k, "priority")) {
			if (j_int(v, 0, 9, &n->priority))
				goto out;
		} else if (!strcmp(k, "recipients")) {
			if (j_arr(a, v, 1000, &n->recipients))
				goto out;
		} else {
			goto out;
		}
	}
	rc = st && sb ? 0 : -1;
out:
	json_decref(root);
	return rc;
}

/* ---- timing ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: immune to a busy machine's waits */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum { CJSON_SMALL, JANSSON_SMALL, CJSON_BIG, JANSSON_BIG, PRECHECK_SMALL, PRECHECK_BIG };

static int run_once(int which, const char *text, size_t len)
{
	arena a;
	booking b;
	notice n;
	json_error je;
	int rc = 0;

	arena_init(&a, EGOV_REQUEST_ARENA_MAX);
	memset(&b, 0, sizeof b);
	memset(&n, 0, sizeof n);
	switch (which) {
	case CJSON_SMALL:
		rc = json_bind(&a, text, len, booking_fields, 7, &b, &je) ? -1 : 0;
		break;
	case JANSSON_SMALL:
		rc = j_booking(&a, text, len, &b);
		break;
	case CJSON_BIG:
		rc = json_bind(&a, text, len, notice_fields, 4, &n, &je) ? -1 : 0;
		break;
	case JANSSON_BIG:
		rc = j_notice(&a, text, len, &n);
		break;
	default:
		rc = json_precheck(text, len, EGOV_JSON_DEPTH_MAX) ? -1 : 0;
		break;
	}
	arena_release(&a);
	return rc;
}

/* Microseconds per operation, running for at least `seconds`. */
static double measure(int which, const char *text, size_t len, double seconds)
{
	long iters = 0, batch = 16;
	double t0, t;

	if (run_once(which, text, len)) {
		fprintf(stderr, "json_bench: case %d rejected its input\n", which);
		exit(1);
	}
	t0 = now();
	do {
		long i;
		for (i = 0; i < batch; i++)
			(void)run_once(which, text, len);
		iters += batch;
		t = now() - t0;
	} while (t < seconds);
	return t * 1e6 / (double)iters;
}

static char *big_document(size_t *len)
{
	buf b;
	size_t i;

	buf_init(&b, 1 << 20);
	buf_adds(&b, "{\"title\":\"\xE9\xA3\x9F\xE5\x93\x81\xE5\xAE\x89\xE5\x85\xA8\xE9\x80\x9A\xE5\xA0\xB1 "
		     "Food safety notice 2024/117\",\"priority\":3,\"body\":\"");
	for (i = 0; i < 250; i++)
		buf_addf(&b, "Paragraph %zu: \xE6\x9C\xAC\xE5\xB1\x80\xE6\x8F\x90\xE9\x86\x92\xE5\xB8\x82\xE6\xB0\x91 "
			     "the batch \\\"%zu-B\\\" of frozen goods is recalled; A v\xC3\xADtima deve contactar "
			     "o centro.\\n",
			 i, i * 7);
	buf_adds(&b, "\",\"recipients\":[");
	for (i = 0; i < RECIPIENTS; i++)
		buf_addf(&b, "%s\"dept-%04zu@gov.example.mo;unit=inspection;ref=0192f3a4-7c1e-7b3a-%012zu\"",
			 i ? "," : "", i, i * 31);
	buf_adds(&b, "]}");
	if (!b.data)
		exit(1);
	return buf_detach(&b, len);
}

/* The machine may be shared (builds, tests): rounds alternate the cases and
 * each keeps its best round, which is the least disturbed one. */
#define ROUNDS 5
#define NCASES 6

int main(int argc, char **argv)
{
	double secs = argc > 1 ? strtod(argv[1], NULL) : 1.0;
	size_t small_len = strlen(small_body), big_len;
	char *big = big_document(&big_len);
	double best[NCASES];
	int r, k;

	if (!(secs > 0))
		secs = 1.0;
	for (k = 0; k < NCASES; k++)
		best[k] = 1e300;
	for (r = 0; r < ROUNDS; r++) {
		for (k = 0; k < NCASES; k++) {
			int small = k == CJSON_SMALL || k == JANSSON_SMALL || k == PRECHECK_SMALL;
			double us = measure(k, small ? small_body : big, small ? small_len : big_len, secs / ROUNDS);
			if (us < best[k])
				best[k] = us;
		}
	}
	printf("json_small bytes=%zu cjson_us=%.3f jansson_us=%.3f ratio=%.2f precheck_us=%.3f\n", small_len,
	       best[CJSON_SMALL], best[JANSSON_SMALL], best[JANSSON_SMALL] / best[CJSON_SMALL], best[PRECHECK_SMALL]);
	printf("json_big bytes=%zu cjson_us=%.1f jansson_us=%.1f ratio=%.2f precheck_us=%.1f\n", big_len,
	       best[CJSON_BIG], best[JANSSON_BIG], best[JANSSON_BIG] / best[CJSON_BIG], best[PRECHECK_BIG]);
	free(big);
	return 0;
}
