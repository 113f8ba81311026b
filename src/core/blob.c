/*
 * blob.c: the content-addressed blob store of blob.h.
 *
 * Layout: DIR/ab/cdef... holds the blob whose SHA-256 is abcdef...; DIR/tmp
 * holds files being written. A blob appears under its name only by
 * rename(2) after its bytes were fsynced, and the rename is made durable by
 * fsyncing the directory, so a name never refers to a partial file, even
 * after a crash (a crash leaves at most a stray file in DIR/tmp).
 *
 * Names from callers are untrusted: they are checked to be exactly 64
 * lower-case hex digits before any path is built from them, and every file
 * operation is relative to the store's directory descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/blob.h"
#include "core/banned.h"

struct blob_store {
	int dirfd;
};

static atomic_uint tmp_counter;

static bool name_ok(const char *hex)
{
	size_t i;
	if (!hex)
		return false;
	for (i = 0; i < 64; i++) {
		char ch = hex[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
			return false;
	}
	return hex[64] == '\0';
}

static egov_err sha256_hex(const void *data, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	unsigned int i;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
		return EGOV_EINTERNAL;
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
	return EGOV_OK;
}

/* "ab/cdef..." for a valid name. */
static void rel_path(const char *hex, char out[67])
{
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '/';
	memcpy(out + 3, hex + 2, 63); /* 62 digits and the NUL */
}

static egov_err fsync_dir_at(int dirfd, const char *sub)
{
	egov_err err = EGOV_OK;
	int fd = openat(dirfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		err = EGOV_EIO;
	if (fd >= 0)
		close(fd);
	return err;
}

egov_err blob_store_open(const char *dir, blob_store **out)
{
	egov_err err = EGOV_OK;
	blob_store *s = NULL;
	int fd = -1;

	*out = NULL;
	if (!dir || !*dir)
		return EGOV_EINVAL;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		err = EGOV_EIO;
		goto out;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = EGOV_EIO;
		goto out;
	}
	if (mkdirat(fd, "tmp", 0700) != 0 && errno != EEXIST) {
		err = EGOV_EIO;
		goto out;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		err = EGOV_ENOMEM;
		goto out;
	}
	s->dirfd = fd;
	fd = -1;
	*out = s;
out:
	if (fd >= 0)
		close(fd);
	return err;
}

void blob_store_free(blob_store *s)
{
	if (!s)
		return;
	close(s->dirfd);
	free(s);
}

static egov_err write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return EGOV_EIO;
		}
		p += w;
		len -= (size_t)w;
	}
	return EGOV_OK;
}

egov_err blob_put(blob_store *s, const void *data, size_t len, char hex_out[65])
{
	egov_err err;
	char hex[65], rel[67], sub[3], tmp[96];
	struct stat st;
	int fd = -1;
	bool tmp_made = false;

	hex_out[0] = '\0';
	if (!data && len)
		return EGOV_EINVAL;
	err = sha256_hex(data ? data : "", len, hex);
	if (err)
		goto out;
	rel_path(hex, rel);
	/* Already stored: the name is the content, so nothing to do unless a
	 * damaged file (wrong size) is there to be replaced. */
	if (fstatat(s->dirfd, rel, &st, 0) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len)
		goto done;

	memcpy(sub, hex, 2);
	sub[2] = '\0';
	if (mkdirat(s->dirfd, sub, 0700) == 0) {
		/* A new subdirectory must itself be durable in DIR. */
		if (fsync(s->dirfd) != 0) {
			err = EGOV_EIO;
			goto out;
		}
	} else if (errno != EEXIST) {
		err = EGOV_EIO;
		goto out;
	}
	snprintf(tmp, sizeof tmp, "tmp/%s.%ld.%u", hex, (long)getpid(), atomic_fetch_add(&tmp_counter, 1));
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = EGOV_EIO;
		goto out;
	}
	tmp_made = true;
	err = write_all(fd, data, len);
	if (err)
		goto out;
	if (fsync(fd) != 0 || close(fd) != 0) {
		fd = -1;
		err = EGOV_EIO;
		goto out;
	}
	fd = -1;
	if (renameat(s->dirfd, tmp, s->dirfd, rel) != 0) {
		err = EGOV_EIO;
		goto out;
	}
	tmp_made = false;
	err = fsync_dir_at(s->dirfd, sub);
	if (err)
		goto out;
done:
	memcpy(hex_out, hex, 65);
out:
	if (fd >= 0)
		close(fd);
	if (tmp_made)
		unlinkat(s->dirfd, tmp, 0);
	return err;
}

/* Copies len bytes of in (from offset 0) to out, hashing them into hex. */
static egov_err copy_hashed(int in, int out, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char chunk[64 * 1024], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	egov_err err = EGOV_OK;
	size_t off = 0;

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		err = EGOV_ENOMEM;
		goto out;
	}
	while (off < len) {
		size_t n = len - off < sizeof chunk ? len - off : sizeof chunk;
		ssize_t got = pread(in, chunk, n, (off_t)off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			err = EGOV_EIO;
			goto out;
		}
		if (EVP_DigestUpdate(ctx, chunk, (size_t)got) != 1) {
			err = EGOV_EINTERNAL;
			goto out;
		}
		if ((err = write_all(out, chunk, (size_t)got)))
			goto out;
		off += (size_t)got;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
out:
	EVP_MD_CTX_free(ctx);
	return err;
}

egov_err blob_put_fd(blob_store *s, int in, size_t len, char hex_out[65])
{
	egov_err err;
	char hex[65], rel[67], sub[3], tmp[96];
	struct stat st;
	int fd = -1;
	unsigned seq = atomic_fetch_add(&tmp_counter, 1);

	hex_out[0] = '\0';
	/* The name is known only once the bytes are read: copy to a temporary
	 * file first, then rename it to its hash (or drop it if stored). */
	snprintf(tmp, sizeof tmp, "tmp/fd.%ld.%u", (long)getpid(), seq);
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return EGOV_EIO;
	err = copy_hashed(in, fd, len, hex);
	if (!err && (fsync(fd) != 0))
		err = EGOV_EIO;
	if (close(fd) != 0 && !err)
		err = EGOV_EIO;
	if (err)
		goto out;
	rel_path(hex, rel);
	if (fstatat(s->dirfd, rel, &st, 0) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size == len)
		goto done;
	memcpy(sub, hex, 2);
	sub[2] = '\0';
	if (mkdirat(s->dirfd, sub, 0700) == 0) {
		if (fsync(s->dirfd) != 0) {
			err = EGOV_EIO;
			goto out;
		}
	} else if (errno != EEXIST) {
		err = EGOV_EIO;
		goto out;
	}
	if (renameat(s->dirfd, tmp, s->dirfd, rel) != 0) {
		err = EGOV_EIO;
		goto out;
	}
	if ((err = fsync_dir_at(s->dirfd, sub)))
		return err;
	memcpy(hex_out, hex, 65);
	return EGOV_OK;
done:
	memcpy(hex_out, hex, 65);
out:
	unlinkat(s->dirfd, tmp, 0);
	return err;
}

egov_err blob_get(blob_store *s, const char *hex, size_t max, void **data, size_t *len)
{
	egov_err err = EGOV_OK;
	char rel[67], check[65];
	struct stat st;
	unsigned char *buf = NULL;
	size_t size, got = 0;
	int fd = -1;

	*data = NULL;
	*len = 0;
	if (!name_ok(hex))
		return EGOV_EINVAL;
	rel_path(hex, rel);
	fd = openat(s->dirfd, rel, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		err = errno == ENOENT ? EGOV_ENOTFOUND : EGOV_EIO;
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err = EGOV_EIO;
		goto out;
	}
	size = (size_t)st.st_size;
	if (size > max) {
		err = EGOV_ELIMIT;
		goto out;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		err = EGOV_ENOMEM;
		goto out;
	}
	while (got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = EGOV_EIO;
			goto out;
		}
		if (r == 0)
			break; /* shrank under us: the hash check below fails */
		got += (size_t)r;
	}
	err = sha256_hex(buf, got, check);
	if (err)
		goto out;
	if (memcmp(check, hex, 64) != 0) {
		err = EGOV_ECORRUPT;
		goto out;
	}
	*data = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return err;
}

egov_err blob_exists(blob_store *s, const char *hex, int *exists)
{
	char rel[67];
	struct stat st;

	*exists = 0;
	if (!name_ok(hex))
		return EGOV_EINVAL;
	rel_path(hex, rel);
	if (fstatat(s->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		*exists = S_ISREG(st.st_mode);
		return EGOV_OK;
	}
	return errno == ENOENT ? EGOV_OK : EGOV_EIO;
}

egov_err blob_delete(blob_store *s, const char *hex)
{
	char rel[67];

	if (!name_ok(hex))
		return EGOV_EINVAL;
	rel_path(hex, rel);
	if (unlinkat(s->dirfd, rel, 0) != 0)
		return errno == ENOENT ? EGOV_ENOTFOUND : EGOV_EIO;
	return EGOV_OK;
}
