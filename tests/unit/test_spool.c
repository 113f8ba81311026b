/*
 * test_spool.c: spool files (core/spool.h): bytes and digest as written,
 * no name left in the spool directory, the descriptor moved out; and the
 * blob store taking a spooled body from its descriptor (blob_put_fd).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/blob.h"
#include "core/crypto.h"
#include "core/spool.h"
#include "testutil.h"
#include "core/banned.h"

static unsigned char *pattern(size_t n)
{
	unsigned char *p = malloc(n);
	size_t i;

	for (i = 0; p && i < n; i++)
		p[i] = (unsigned char)(i * 31 + (i >> 11));
	return p;
}

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_spool_bytes_and_digest(void **state)
{
	char *dir = test_tmpdir(), sub[600];
	size_t n = 3 * SPOOL_THRESHOLD + 123, off;
	unsigned char *p = pattern(n), *back = malloc(n), want[32], got[32], again[32];
	spool s;
	int fd;

	(void)state;
	assert_non_null(p);
	assert_non_null(back);
	snprintf(sub, sizeof sub, "%s/tmp", dir);
	assert_int_equal(spool_set_dir(sub), EGOV_OK);
	spool_init(&s);
	assert_int_equal(s.fd, -1);
	/* Written in uneven pieces, as bodies arrive. */
	for (off = 0; off < n;) {
		size_t k = n - off < 7777 ? n - off : 7777;
		assert_int_equal(spool_write(&s, p + off, k), EGOV_OK);
		off += k;
	}
	assert_true(s.fd >= 0);
	assert_int_equal(s.len, n);
	/* No name in the directory: the file goes with its descriptor. */
	assert_int_equal(entries(sub), 0);
	crypto_sha256(p, n, want);
	assert_int_equal(spool_finish(&s, got), EGOV_OK);
	assert_memory_equal(got, want, 32);
	assert_int_equal(spool_finish(&s, again), EGOV_OK);
	assert_memory_equal(again, want, 32);
	assert_int_not_equal(spool_write(&s, p, 1), EGOV_OK); /* finished */
	assert_int_equal(spool_pread(s.fd, back, n, 0), EGOV_OK);
	assert_memory_equal(back, p, n);
	assert_int_not_equal(spool_pread(s.fd, back, 10, n - 5), EGOV_OK); /* past the end */

	fd = spool_detach_fd(&s);
	assert_true(fd >= 0);
	assert_int_equal(s.fd, -1);
	spool_release(&s); /* does not close the detached descriptor */
	assert_int_equal(spool_pread(fd, back, 16, 0), EGOV_OK);
	close(fd);

	/* Nothing written: the digest of no bytes, no file. */
	spool_init(&s);
	assert_int_equal(spool_finish(&s, got), EGOV_OK);
	crypto_sha256("", 0, want);
	assert_memory_equal(got, want, 32);
	assert_int_equal(s.fd, -1);
	spool_release(&s);

	free(p);
	free(back);
	test_rmrf(dir);
	free(dir);
}

static void test_blob_put_fd(void **state)
{
	char *dir = test_tmpdir(), path[700], hex[65], hex2[65], want[65];
	size_t n = SPOOL_THRESHOLD * 2 + 9;
	unsigned char *p = pattern(n);
	void *data = NULL;
	size_t len = 0;
	blob_store *bs = NULL;
	spool s;
	int fd;

	(void)state;
	snprintf(path, sizeof path, "%s/tmp", dir);
	assert_int_equal(spool_set_dir(path), EGOV_OK);
	snprintf(path, sizeof path, "%s/blobs", dir);
	assert_int_equal(blob_store_open(path, &bs), EGOV_OK);
	spool_init(&s);
	assert_int_equal(spool_write(&s, p, n), EGOV_OK);
	fd = s.fd;
	/* The file position is at the end: blob_put_fd reads from offset 0. */
	assert_int_equal(blob_put_fd(bs, fd, n, hex), EGOV_OK);
	crypto_sha256_hex(p, n, want);
	assert_string_equal(hex, want);
	assert_int_equal(blob_get(bs, hex, n, &data, &len), EGOV_OK);
	assert_int_equal(len, n);
	assert_memory_equal(data, p, n);
	free(data);
	/* Again: stored once, same name, no temporary file left. */
	assert_int_equal(blob_put_fd(bs, fd, n, hex2), EGOV_OK);
	assert_string_equal(hex2, want);
	snprintf(path, sizeof path, "%s/blobs/tmp", dir);
	assert_int_equal(entries(path), 0);
	/* A length beyond the file: an error, nothing stored. */
	assert_int_not_equal(blob_put_fd(bs, fd, n + 1, hex2), EGOV_OK);
	assert_int_equal(entries(path), 0);
	spool_release(&s);
	blob_store_free(bs);
	free(p);
	test_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spool_bytes_and_digest),
		cmocka_unit_test(test_blob_put_fd),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
