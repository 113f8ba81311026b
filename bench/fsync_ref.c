/*
 * fsync_ref.c: the disk's durable-commit latency, as a reference for the
 * data exchange benchmark. Writes like a SQLite WAL commit (three 4 KiB
 * pages with their 24-byte frame headers, appended, wrapping at 4 MiB like
 * a checkpointed WAL that is reused) and fdatasync()s after each commit.
 *
 * Usage: fsync_ref FILE COUNT
 * Prints: fsync_ref p50_ms=X p99_ms=Y n=COUNT
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	static char page[4096 + 24];
	long n, i, k;
	off_t off = 0;
	double *t;
	int fd;

	if (argc != 3 || (n = strtol(argv[2], NULL, 10)) < 10 || n > 100000) {
		fprintf(stderr, "usage: fsync_ref FILE COUNT(10..100000)\n");
		return 2;
	}
	if ((fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 || !(t = calloc((size_t)n, sizeof *t))) {
		perror(argv[1]);
		return 1;
	}
	memset(page, 'w', sizeof page);
	for (i = 0; i < n; i++) {
		double t0;
		for (k = 0; k < 3; k++) {
			if (pwrite(fd, page, sizeof page, off) != (ssize_t)sizeof page) {
				perror("pwrite");
				return 1;
			}
			off += (off_t)sizeof page;
		}
		if (off > 4 * 1024 * 1024)
			off = 0;
		t0 = now_ms();
		if (fdatasync(fd) != 0) {
			perror("fdatasync");
			return 1;
		}
		t[i] = now_ms() - t0;
	}
	qsort(t, (size_t)n, sizeof *t, cmp);
	printf("fsync_ref p50_ms=%.3f p99_ms=%.3f n=%ld\n", t[n / 2], t[(n * 99) / 100], n);
	close(fd);
	unlink(argv[1]);
	free(t);
	return 0;
}
