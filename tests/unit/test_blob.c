/*
 * test_blob.c: the content-addressed blob store: names are SHA-256 of the
 * bytes, puts are idempotent and durable, damaged files are detected, and
 * names from outside never reach the file system unchecked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "core/blob.h"
#include "testutil.h"
#include "core/banned.h"

/* SHA-256("abc"), from FIPS 180-2. */
#define ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define EMPTY_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct fixture {
	char *dir;
	blob_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char path[600];
	if (!f || !(f->dir = test_tmpdir()))
		return -1;
	snprintf(path, sizeof path, "%s/blobs", f->dir);
	if (blob_store_open(path, &f->s) != EGOV_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	blob_store_free(f->s);
	test_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void test_put_get(void **state)
{
	struct fixture *f = *state;
	char hex[65], path[700];
	void *data = NULL;
	size_t len = 0;
	int exists = -1;
	struct stat st;

	assert_int_equal(blob_put(f->s, "abc", 3, hex), EGOV_OK);
	assert_string_equal(hex, ABC_HEX);
	snprintf(path, sizeof path, "%s/blobs/ba/%s", f->dir, &ABC_HEX[2]);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 3);

	assert_int_equal(blob_exists(f->s, ABC_HEX, &exists), EGOV_OK);
	assert_int_equal(exists, 1);
	assert_int_equal(blob_get(f->s, ABC_HEX, 1024, &data, &len), EGOV_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(data, "abc", 3);
	free(data);

	/* Empty blob and bytes with zeros. */
	assert_int_equal(blob_put(f->s, NULL, 0, hex), EGOV_OK);
	assert_string_equal(hex, EMPTY_HEX);
	assert_int_equal(blob_get(f->s, EMPTY_HEX, 0, &data, &len), EGOV_OK);
	assert_int_equal(len, 0);
	free(data);
	static const unsigned char zeros[5] = {0, 0, 1, 0, 0};
	assert_int_equal(blob_put(f->s, zeros, sizeof zeros, hex), EGOV_OK);
	assert_int_equal(blob_get(f->s, hex, 5, &data, &len), EGOV_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(data, zeros, 5);
	free(data);
}

static void test_idempotent(void **state)
{
	struct fixture *f = *state;
	char a[65], b[65], path[700];
	struct stat st1, st2;

	assert_int_equal(blob_put(f->s, "same bytes", 10, a), EGOV_OK);
	snprintf(path, sizeof path, "%s/blobs/%.2s/%s", f->dir, a, a + 2);
	assert_int_equal(stat(path, &st1), 0);
	assert_int_equal(blob_put(f->s, "same bytes", 10, b), EGOV_OK);
	assert_string_equal(a, b);
	assert_int_equal(stat(path, &st2), 0);
	assert_true(st1.st_ino == st2.st_ino); /* not rewritten */
	/* No temporary files are left behind. */
	snprintf(path, sizeof path, "rmdir %s/blobs/tmp", f->dir);
	assert_int_equal(system(path), 0);
}

static void test_missing_and_delete(void **state)
{
	struct fixture *f = *state;
	char hex[65];
	void *data = (void *)&hex;
	size_t len = 9;
	int exists = -1;

	assert_int_equal(blob_get(f->s, ABC_HEX, 100, &data, &len), EGOV_ENOTFOUND);
	assert_null(data);
	assert_int_equal(blob_exists(f->s, ABC_HEX, &exists), EGOV_OK);
	assert_int_equal(exists, 0);
	assert_int_equal(blob_put(f->s, "abc", 3, hex), EGOV_OK);
	assert_int_equal(blob_delete(f->s, hex), EGOV_OK);
	assert_int_equal(blob_exists(f->s, ABC_HEX, &exists), EGOV_OK);
	assert_int_equal(exists, 0);
	assert_int_equal(blob_delete(f->s, hex), EGOV_ENOTFOUND);
}

static void test_corrupt(void **state)
{
	struct fixture *f = *state;
	char hex[65], path[700];
	void *data = NULL;
	size_t len = 0;
	int fd;

	assert_int_equal(blob_put(f->s, "abc", 3, hex), EGOV_OK);
	snprintf(path, sizeof path, "%s/blobs/ba/%s", f->dir, &ABC_HEX[2]);
	/* Same size, different bytes: only the hash can tell. */
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "abd", 3, 0), 3);
	close(fd);
	assert_int_equal(blob_get(f->s, ABC_HEX, 100, &data, &len), EGOV_ECORRUPT);
	assert_null(data);
	/* Truncated: detected too, and a new put repairs it. */
	assert_int_equal(truncate(path, 1), 0);
	assert_int_equal(blob_get(f->s, ABC_HEX, 100, &data, &len), EGOV_ECORRUPT);
	assert_int_equal(blob_put(f->s, "abc", 3, hex), EGOV_OK);
	assert_int_equal(blob_get(f->s, ABC_HEX, 100, &data, &len), EGOV_OK);
	free(data);
}

static void test_bad_names(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"",
		"abc",
		"../../../../../../../../../../../../../../../../../../../../etc/passwd",
		"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", /* upper case */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",   /* 63 */
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0", /* 65 */
		"ba/816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a\n",
	};
	size_t i, len;
	void *data;
	int exists;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(blob_get(f->s, bad[i], 100, &data, &len), EGOV_EINVAL);
		assert_int_equal(blob_exists(f->s, bad[i], &exists), EGOV_EINVAL);
		assert_int_equal(blob_delete(f->s, bad[i]), EGOV_EINVAL);
	}
	assert_int_equal(blob_get(f->s, NULL, 100, &data, &len), EGOV_EINVAL);
}

static void test_size_cap(void **state)
{
	struct fixture *f = *state;
	char hex[65];
	unsigned char big[4096];
	void *data = NULL;
	size_t len = 0;

	memset(big, 'x', sizeof big);
	assert_int_equal(blob_put(f->s, big, sizeof big, hex), EGOV_OK);
	assert_int_equal(blob_get(f->s, hex, sizeof big - 1, &data, &len), EGOV_ELIMIT);
	assert_null(data);
	assert_int_equal(blob_get(f->s, hex, sizeof big, &data, &len), EGOV_OK);
	assert_int_equal(len, sizeof big);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idempotent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_and_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
	};
	return cmocka_run_group_tests_name("blob", tests, NULL, NULL);
}
