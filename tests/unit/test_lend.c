/*
 * test_lend.c: lending a kept memory area to libsodium's Argon2id
 * (core/lend.h): the hash is the same with and without the loan, the
 * area is taken only by the matching mapping of the lending thread, it is
 * wiped afterwards, and every other mapping still reaches the kernel.
 * Under AddressSanitizer nothing is interposed: the loans are never taken
 * and hashing works as before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <sys/mman.h>

#include "core/lend.h"
#include "identity/identity.h"
#include "testutil.h"
#include "core/banned.h"

#define MEM IDENTITY_ARGON2_MEMLIMIT
#define OPS IDENTITY_ARGON2_OPSLIMIT
#define PW "violet-harbour-lantern"

static int setup(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_same_hash_with_and_without(void **state)
{
	lend_area a;
	char lent_hash[crypto_pwhash_STRBYTES], own_hash[crypto_pwhash_STRBYTES];
	bool taken;

	(void)state;
	assert_int_equal(lend_area_alloc(&a, MEM), EGOV_OK);
	memset(a.base, 0xa5, a.len); /* not zero: the hash must not care */

	lend_begin(&a);
	assert_int_equal(crypto_pwhash_str_alg(lent_hash, PW, strlen(PW), OPS, MEM, crypto_pwhash_ALG_ARGON2ID13), 0);
	taken = lend_end();
	assert_int_equal(taken, lend_supported());
	if (taken)
		assert_true(all_zero(a.base, a.len)); /* wiped after the call */

	/* A hash made in the lent area verifies in libsodium's own memory,
	 * and one made in its own memory verifies in the lent area. */
	assert_int_equal(crypto_pwhash_str_verify(lent_hash, PW, strlen(PW)), 0);
	assert_int_equal(crypto_pwhash_str_alg(own_hash, PW, strlen(PW), OPS, MEM, crypto_pwhash_ALG_ARGON2ID13), 0);
	lend_begin(&a);
	assert_int_equal(crypto_pwhash_str_verify(own_hash, PW, strlen(PW)), 0);
	assert_int_equal(lend_end(), lend_supported());
	lend_begin(&a);
	assert_int_not_equal(crypto_pwhash_str_verify(own_hash, "another-password-x", 18), 0);
	assert_int_equal(lend_end(), lend_supported());
	lend_area_free(&a);
}

static void test_other_mappings_reach_the_kernel(void **state)
{
	lend_area a;
	void *p, *q;

	(void)state;
	assert_int_equal(lend_area_alloc(&a, 1 << 20), EGOV_OK);
	lend_begin(&a);
	/* Another size, a file-less shared one, a fixed address hint: all the
	 * kernel's, and each can be unmapped for real. */
	p = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED && p != a.base);
	q = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(q != MAP_FAILED && q != a.base);
	assert_int_equal(munmap(p, 2 << 20), 0);
	assert_int_equal(munmap(q, 1 << 20), 0);
	/* The matching request gets the area; unmapping it is a no-op. */
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (lend_supported()) {
		assert_ptr_equal(p, a.base);
		/* Only once per loan. */
		q = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(q != MAP_FAILED && q != a.base);
		assert_int_equal(munmap(q, 1 << 20), 0);
	}
	memset(p, 0x5a, 1 << 20);
	assert_int_equal(munmap(p, 1 << 20), 0);
	assert_int_equal(lend_end(), lend_supported());
	if (lend_supported())
		assert_true(all_zero(a.base, a.len)); /* still mapped, and wiped */
	/* After the loan the same request is the kernel's again. */
	p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(p != MAP_FAILED && p != a.base);
	assert_int_equal(munmap(p, 1 << 20), 0);
	lend_area_free(&a);
}

static void *other_thread(void *arg)
{
	void **out = arg;

	*out = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return NULL;
}

static void test_loan_is_per_thread(void **state)
{
	lend_area a;
	pthread_t t;
	void *p = NULL;

	(void)state;
	assert_int_equal(lend_area_alloc(&a, 1 << 20), EGOV_OK);
	lend_begin(&a);
	assert_int_equal(pthread_create(&t, NULL, other_thread, &p), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(p != MAP_FAILED && p != a.base);
	assert_int_equal(munmap(p, 1 << 20), 0);
	assert_false(lend_end()); /* nobody on this thread asked */
	lend_area_free(&a);
}

static void test_slots_keep_their_memory(void **state)
{
	identity_admission_stats before, after;
	char hash[crypto_pwhash_STRBYTES];
	bool ok = false;
	int64_t retry = 0;

	(void)state;
	identity_admission_init(1, 1);
	identity_admission_stats_get(&before);
	assert_int_equal(identity_password_hash(PW, hash, &retry), EGOV_OK);
	assert_int_equal(identity_password_verify(hash, PW, &ok, &retry), EGOV_OK);
	assert_true(ok);
	assert_int_equal(identity_password_verify(hash, "another-password-x", &ok, &retry), EGOV_OK);
	assert_false(ok);
	identity_admission_stats_get(&after);
	assert_int_equal(after.admitted - before.admitted, 3);
	assert_int_equal(after.kept_memory - before.kept_memory, lend_supported() ? 3 : 0);
	/* A hash from the slots verifies in libsodium's own memory. */
	assert_int_equal(crypto_pwhash_str_verify(hash, PW, strlen(PW)), 0);
	identity_admission_init(0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_hash_with_and_without),
		cmocka_unit_test(test_other_mappings_reach_the_kernel),
		cmocka_unit_test(test_loan_is_per_thread),
		cmocka_unit_test(test_slots_keep_their_memory),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
