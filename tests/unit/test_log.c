/*
 * test_log.c: every operational log line is one valid JSON object with the
 * message intact (quotes, newlines, control bytes and non-ASCII text survive
 * a round trip through cJSON), levels filter, long lines are capped, lines
 * from many threads never interleave, and the access log gets the caller's
 * bytes as they are.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <cjson/cJSON.h>
#include <pthread.h>

#include "core/log.h"
#include "testutil.h"
#include "core/banned.h"

typedef struct fixture {
	char *dir;
	char path[512];
	char access[512];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->dir = test_tmpdir();
	if (!f->dir)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/egov.log", f->dir);
	snprintf(f->access, sizeof f->access, "%s/access.log", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	log_close();
	log_set_level(LOG_INFO);
	test_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *data = NULL;
	long n;

	*len = 0;
	if (!fp)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
		data = malloc((size_t)n + 1);
		if (data && fread(data, 1, (size_t)n, fp) == (size_t)n) {
			data[n] = '\0';
			*len = (size_t)n;
		} else {
			free(data);
			data = NULL;
		}
	}
	fclose(fp);
	return data;
}

/* Splits the file into lines, each of which must be a JSON object ending in
 * '\n'; returns them parsed (caller frees with free_lines). */
static cJSON **read_lines(const char *path, int *count)
{
	size_t len;
	char *data = read_all(path, &len);
	cJSON **out = NULL;
	char *p;
	int n = 0, cap = 0;

	assert_non_null(data);
	if (len > 0)
		assert_int_equal(data[len - 1], '\n');
	for (p = data; *p;) {
		char *nl = strchr(p, '\n');
		cJSON *j;
		assert_non_null(nl);
		*nl = '\0';
		j = cJSON_Parse(p);
		if (!j || !cJSON_IsObject(j))
			fail_msg("line %d is not a JSON object: %s", n + 1, p);
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			out = realloc(out, (size_t)cap * sizeof *out);
			assert_non_null(out);
		}
		out[n++] = j;
		p = nl + 1;
	}
	free(data);
	*count = n;
	return out;
}

static void free_lines(cJSON **lines, int n)
{
	int i;
	for (i = 0; i < n; i++)
		cJSON_Delete(lines[i]);
	free(lines);
}

static const char *field(const cJSON *j, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_line_shape(void **state)
{
	fixture *f = *state;
	cJSON **lines;
	const char *ts;
	int n;

	assert_int_equal(log_open(f->path, NULL, LOG_INFO), EGOV_OK);
	log_info("serve.ready", "listening on %s", "127.0.0.1:8081");
	log_close();

	lines = read_lines(f->path, &n);
	assert_int_equal(n, 1);
	assert_string_equal(field(lines[0], "level"), "info");
	assert_string_equal(field(lines[0], "event"), "serve.ready");
	assert_string_equal(field(lines[0], "msg"), "listening on 127.0.0.1:8081");
	assert_null(cJSON_GetObjectItemCaseSensitive(lines[0], "truncated"));
	/* 2026-11-26T12:00:00.123Z */
	ts = field(lines[0], "ts");
	assert_non_null(ts);
	assert_int_equal(strlen(ts), 24);
	assert_int_equal(ts[4], '-');
	assert_int_equal(ts[7], '-');
	assert_int_equal(ts[10], 'T');
	assert_int_equal(ts[13], ':');
	assert_int_equal(ts[16], ':');
	assert_int_equal(ts[19], '.');
	assert_int_equal(ts[23], 'Z');
	assert_true(strncmp(ts, "20", 2) == 0);
	free_lines(lines, n);
}

static void test_escaping(void **state)
{
	fixture *f = *state;
	static const char tricky[] = "say \"hi\"\nnext\\line\ttab\x01 \xe6\xbe\xb3\xe9\x96\x80 "
				     "S\xc3\xa3o Paulo \xf0\x9f\x98\x80 </script>";
	cJSON **lines;
	size_t len;
	char *raw, *p;
	int n;

	assert_int_equal(log_open(f->path, NULL, LOG_DEBUG), EGOV_OK);
	log_warn("test.\"event\"", "%s", tricky);
	log_error("test.invalid", "a\xff" "b\xc3(c\xed\xa0\x80" "d");
	log_close();

	raw = read_all(f->path, &len);
	assert_non_null(raw);
	/* One physical line per message, whatever the message held. */
	for (n = 0, p = raw; (p = strchr(p, '\n')); p++)
		n++;
	assert_int_equal(n, 2);
	assert_int_equal(raw[len - 1], '\n');
	/* Non-ASCII text is kept as UTF-8, not \u-escaped. */
	assert_non_null(strstr(raw, "\xe6\xbe\xb3\xe9\x96\x80"));
	free(raw);

	lines = read_lines(f->path, &n);
	assert_int_equal(n, 2);
	assert_string_equal(field(lines[0], "level"), "warn");
	assert_string_equal(field(lines[0], "event"), "test.\"event\"");
	assert_string_equal(field(lines[0], "msg"), tricky);
	/* Bytes that are not UTF-8 become U+FFFD so the line stays valid. */
	assert_string_equal(field(lines[1], "level"), "error");
	assert_string_equal(field(lines[1], "msg"),
			    "a\xef\xbf\xbd" "b\xef\xbf\xbd(c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d");
	free_lines(lines, n);
}

static void test_level_filter(void **state)
{
	fixture *f = *state;
	cJSON **lines;
	int n;

	assert_int_equal(log_open(f->path, NULL, LOG_WARN), EGOV_OK);
	log_msg(LOG_DEBUG, "t.debug", "hidden");
	log_info("t.info", "hidden");
	log_warn("t.warn", "shown");
	log_error("t.error", "shown");
	log_set_level(LOG_DEBUG);
	log_debug("t.debug2", "shown");
	log_set_level(LOG_ERROR);
	log_warn("t.warn2", "hidden");
	log_msg((log_level)42, "t.bogus", "hidden");
	log_close();

	lines = read_lines(f->path, &n);
	assert_int_equal(n, 3);
	assert_string_equal(field(lines[0], "event"), "t.warn");
	assert_string_equal(field(lines[1], "event"), "t.error");
	assert_string_equal(field(lines[2], "event"), "t.debug2");
	assert_string_equal(field(lines[2], "level"), "debug");
	free_lines(lines, n);
}

static void test_level_parse(void **state)
{
	log_level l = LOG_ERROR;

	(void)state;
	assert_int_equal(log_level_parse("debug", &l), EGOV_OK);
	assert_int_equal(l, LOG_DEBUG);
	assert_int_equal(log_level_parse("warn", &l), EGOV_OK);
	assert_int_equal(l, LOG_WARN);
	assert_int_equal(log_level_parse("error", &l), EGOV_OK);
	assert_int_equal(l, LOG_ERROR);
	assert_int_equal(log_level_parse("info", &l), EGOV_OK);
	assert_int_equal(l, LOG_INFO);
	assert_int_equal(log_level_parse("INFO", &l), EGOV_EINVAL);
	assert_int_equal(log_level_parse("", &l), EGOV_EINVAL);
}

/* A message longer than a line is cut on a character boundary and flagged. */
static void test_long_line_capped(void **state)
{
	fixture *f = *state;
	size_t big = 20000, i;
	char *msg = malloc(big + 1);
	cJSON **lines;
	const char *got;
	const cJSON *tr;
	size_t len;
	char *raw;
	int n;

	assert_non_null(msg);
	/* 3-byte characters with a quote now and then, so the cut can fall
	 * inside a character or an escape. */
	for (i = 0; i + 3 <= big; i += 3) {
		if (i % 30 == 0)
			memcpy(msg + i, "\"\"\"", 3);
		else
			memcpy(msg + i, "\xe6\xbe\xb3", 3);
	}
	msg[i] = '\0';

	assert_int_equal(log_open(f->path, NULL, LOG_INFO), EGOV_OK);
	log_info("t.long", "%s", msg);
	log_info("t.after", "short");
	log_close();

	raw = read_all(f->path, &len);
	assert_non_null(raw);
	assert_true(strchr(raw, '\n') - raw + 1 <= 4096);
	free(raw);

	lines = read_lines(f->path, &n);
	assert_int_equal(n, 2);
	got = field(lines[0], "msg");
	assert_non_null(got);
	assert_true(strlen(got) > 1000);
	assert_true(strlen(got) < big);
	assert_true(strncmp(got, msg, strlen(got)) == 0);
	assert_int_equal(strlen(got) % 3, 0); /* whole characters only */
	tr = cJSON_GetObjectItemCaseSensitive(lines[0], "truncated");
	assert_true(cJSON_IsTrue(tr));
	assert_string_equal(field(lines[1], "msg"), "short");
	free_lines(lines, n);
	free(msg);
}

static void test_access_log(void **state)
{
	fixture *f = *state;
	static const char line1[] = "{\"method\":\"GET\",\"path\":\"/\"}\n";
	static const char line2[] = "not even json, written as is\n";
	char *raw;
	size_t len;

	assert_int_equal(log_access_enabled(), 0);
	log_access_write(line1, strlen(line1)); /* off: goes nowhere */

	assert_int_equal(log_open(f->path, f->access, LOG_INFO), EGOV_OK);
	assert_int_equal(log_access_enabled(), 1);
	log_access_write(line1, strlen(line1));
	log_access_write(line2, strlen(line2));
	log_info("t.op", "operational line");
	log_close();
	assert_int_equal(log_access_enabled(), 0);

	raw = read_all(f->access, &len);
	assert_non_null(raw);
	assert_int_equal(len, strlen(line1) + strlen(line2));
	assert_true(strncmp(raw, line1, strlen(line1)) == 0);
	assert_string_equal(raw + strlen(line1), line2);
	free(raw);
	/* The operational line went to its own file only. */
	raw = read_all(f->path, &len);
	assert_non_null(strstr(raw, "operational line"));
	free(raw);

	/* Appending: reopening keeps what is there. */
	assert_int_equal(log_open(f->path, f->access, LOG_INFO), EGOV_OK);
	log_access_write(line2, strlen(line2));
	log_close();
	raw = read_all(f->access, &len);
	assert_int_equal(len, strlen(line1) + 2 * strlen(line2));
	free(raw);

	assert_int_equal(log_open(f->path, "off", LOG_INFO), EGOV_OK);
	assert_int_equal(log_access_enabled(), 0);
	assert_int_equal(log_open(f->path, "-", LOG_INFO), EGOV_OK);
	assert_int_equal(log_access_enabled(), 1);
}

static void test_open_failure_keeps_old(void **state)
{
	fixture *f = *state;
	char bad[600];
	cJSON **lines;
	int n;

	snprintf(bad, sizeof bad, "%s/no/such/dir/egov.log", f->dir);
	assert_int_equal(log_open(f->path, NULL, LOG_INFO), EGOV_OK);
	assert_int_equal(log_open(bad, NULL, LOG_INFO), EGOV_EIO);
	assert_int_equal(log_open(f->path, bad, LOG_INFO), EGOV_EIO);
	log_info("t.still", "still here");
	log_close();
	lines = read_lines(f->path, &n);
	assert_int_equal(n, 1);
	assert_string_equal(field(lines[0], "msg"), "still here");
	free_lines(lines, n);
}

#define THREADS 8
#define PER_THREAD 400

static void *log_worker(void *arg)
{
	int id = (int)(intptr_t)arg, i;
	char pad[900];

	memset(pad, 'x', sizeof pad - 1);
	pad[sizeof pad - 1] = '\0';
	for (i = 0; i < PER_THREAD; i++)
		log_info("t.thread", "thread %d line %d %s", id, i, pad);
	return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
	fixture *f = *state;
	pthread_t th[THREADS];
	int seen[THREADS] = {0};
	cJSON **lines;
	int i, n;

	assert_int_equal(log_open(f->path, NULL, LOG_INFO), EGOV_OK);
	for (i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, log_worker, (void *)(intptr_t)i), 0);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	log_close();

	lines = read_lines(f->path, &n);
	assert_int_equal(n, THREADS * PER_THREAD);
	for (i = 0; i < n; i++) {
		int id = -1, k = -1;
		const char *m = field(lines[i], "msg");
		assert_non_null(m);
		assert_int_equal(sscanf(m, "thread %d line %d", &id, &k), 2);
		assert_true(id >= 0 && id < THREADS);
		assert_int_equal(k, seen[id]); /* each thread's lines in order */
		seen[id]++;
	}
	free_lines(lines, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_line_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
		cmocka_unit_test(test_level_parse),
		cmocka_unit_test_setup_teardown(test_long_line_capped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_access_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_failure_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_do_not_interleave, setup, teardown),
	};
	return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
