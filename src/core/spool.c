/*
 * spool.c: unlinked temporary files with an incremental SHA-256 (spool.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/spool.h"
#include "core/banned.h"

static char spool_dir[4096] = "/tmp";

egov_err spool_set_dir(const char *dir)
{
	if (!dir || !*dir || strlen(dir) >= sizeof spool_dir)
		return EGOV_EINVAL;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return EGOV_EIO;
	snprintf(spool_dir, sizeof spool_dir, "%s", dir);
	return EGOV_OK;
}

void spool_init(spool *s)
{
	memset(s, 0, sizeof *s);
	s->fd = -1;
}

void spool_release(spool *s)
{
	if (s->fd >= 0)
		close(s->fd);
	if (s->sha)
		EVP_MD_CTX_free(s->sha);
	spool_init(s);
}

/* O_TMPFILE where the file system has it; else a named file unlinked at
 * once, so that no name is ever left behind. */
static int open_tmp(void)
{
	char path[4200];
	int fd;

	fd = open(spool_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof path, "%s/spool.XXXXXX", spool_dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

egov_err spool_write(spool *s, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (s->finished)
		return EGOV_EINVAL;
	if (s->fd < 0) {
		if (!(s->sha = EVP_MD_CTX_new()))
			return EGOV_ENOMEM;
		if (EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1)
			return EGOV_EINTERNAL;
		if ((s->fd = open_tmp()) < 0)
			return EGOV_EIO;
	}
	if (len && EVP_DigestUpdate(s->sha, data, len) != 1)
		return EGOV_EINTERNAL;
	while (len > 0) {
		ssize_t w = write(s->fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return EGOV_EIO;
		}
		p += w;
		len -= (size_t)w;
		s->len += (size_t)w;
	}
	return EGOV_OK;
}

egov_err spool_finish(spool *s, unsigned char out[32])
{
	unsigned int n = 0;

	if (!s->finished) {
		if (!s->sha) {
			/* Nothing was written: the digest of no bytes. */
			if (!(s->sha = EVP_MD_CTX_new()) || EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL) != 1)
				return EGOV_ENOMEM;
		}
		if (EVP_DigestFinal_ex(s->sha, s->digest, &n) != 1 || n != 32)
			return EGOV_EINTERNAL;
		s->finished = true;
	}
	memcpy(out, s->digest, 32);
	return EGOV_OK;
}

int spool_detach_fd(spool *s)
{
	int fd = s->fd;

	s->fd = -1;
	return fd;
}

egov_err spool_pread(int fd, void *p, size_t len, size_t off)
{
	unsigned char *q = p;

	while (len > 0) {
		ssize_t n = pread(fd, q, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return EGOV_EIO;
		}
		if (n == 0)
			return EGOV_EIO; /* the file is shorter than it should be */
		q += n;
		len -= (size_t)n;
		off += (size_t)n;
	}
	return EGOV_OK;
}
