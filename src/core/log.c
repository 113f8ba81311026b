/*
 * log.c: the operational log and the access log.
 *
 * Each operational line is one JSON object,
 *   {"ts":"2026-11-26T12:00:00.123Z","level":"info","event":"...","msg":"..."}
 * built in memory and handed to the kernel in a single write(2); files are
 * opened with O_APPEND, so lines from many threads (and processes) never
 * interleave. A line is at most LOG_LINE_MAX bytes: a longer message is cut
 * at a character boundary and the line says "truncated":true. Bytes that are
 * not valid UTF-8 are written as U+FFFD so every line stays valid JSON.
 *
 * Invariants: before log_open, lines go to stderr at level info and the
 * access log is off. log_open and log_close run while no other thread logs
 * (at start-up and after the workers have stopped); log_msg and
 * log_access_write may run on any thread at any time in between.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/utf8.h"

/* PIPE_BUF on Linux: a write of at most this many bytes to a pipe (stderr
 * under a supervisor) is atomic too, not only to an O_APPEND file. */
#define LOG_LINE_MAX 4096

/* Longest formatted message before escaping; more is cut anyway. */
#define LOG_MSG_MAX LOG_LINE_MAX

/* Room kept for what follows the message: "\",\"truncated\":true}\n". */
#define LOG_TAIL_ROOM 32

static atomic_int log_fd = 2;
static atomic_int access_fd = -1;
static atomic_int log_min = LOG_INFO;
static bool log_fd_owned;
static bool access_fd_owned;

static const char *const level_names[] = {
	[LOG_DEBUG] = "debug",
	[LOG_INFO] = "info",
	[LOG_WARN] = "warn",
	[LOG_ERROR] = "error",
};

egov_err log_level_parse(const char *name, log_level *out)
{
	int i;

	for (i = LOG_DEBUG; i <= LOG_ERROR; i++) {
		if (!strcmp(name, level_names[i])) {
			*out = (log_level)i;
			return EGOV_OK;
		}
	}
	return EGOV_EINVAL;
}

static egov_err open_append(const char *path, int *fd)
{
	*fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	return *fd < 0 ? EGOV_EIO : EGOV_OK;
}

static void flusher_start(void);
static void flusher_stop(void);

egov_err log_open(const char *path, const char *access_path, log_level min)
{
	int fd = 2, afd = -1;
	bool fd_owned = false, afd_owned = false;
	egov_err err = EGOV_OK;

	if (path && strcmp(path, "-") != 0) {
		err = open_append(path, &fd);
		if (err)
			goto out;
		fd_owned = true;
	}
	if (access_path && strcmp(access_path, "off") != 0) {
		if (strcmp(access_path, "-") == 0) {
			afd = 2;
		} else {
			err = open_append(access_path, &afd);
			if (err)
				goto out;
			afd_owned = true;
		}
	}
	log_close();
	atomic_store(&log_fd, fd);
	atomic_store(&access_fd, afd);
	log_fd_owned = fd_owned;
	access_fd_owned = afd_owned;
	atomic_store(&log_min, (int)min);
	if (afd >= 0)
		flusher_start();
	fd_owned = afd_owned = false;
out:
	if (fd_owned)
		close(fd);
	if (afd_owned)
		close(afd);
	return err;
}

void log_close(void)
{
	int fd, afd;

	flusher_stop();
	fd = atomic_exchange(&log_fd, 2);
	afd = atomic_exchange(&access_fd, -1);

	if (log_fd_owned && fd >= 0)
		close(fd);
	if (access_fd_owned && afd >= 0)
		close(afd);
	log_fd_owned = access_fd_owned = false;
}

void log_set_level(log_level min)
{
	atomic_store(&log_min, (int)min);
}

/* One write(2) for the whole line; a short write (disk full, signal) is
 * finished with more writes rather than lost. */
static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere left to report it */
		p += w;
		n -= (size_t)w;
	}
}

/* Length of the valid UTF-8 sequence at p (1-4) in a NUL-terminated
 * string, or 0 if invalid: a sequence is at most 4 bytes. */
static size_t utf8_len(const unsigned char *p)
{
	return utf8_seq_len(p, strnlen((const char *)p, 4));
}

/* Appends s as a JSON string body to out, which has a cap. Returns true if
 * all of s fit; otherwise out holds a prefix cut at a character boundary. */
static bool add_json_capped(buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t mark = out->len;
	char ch[5];

	if (utf8_valid_str(s)) {
		if (buf_add_json_str(out, s) == EGOV_OK)
			return true;
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	/* Character by character: invalid bytes become U+FFFD, and the cap
	 * stops the line on a whole character. */
	while (*p) {
		size_t n = utf8_len(p);
		if (n) {
			memcpy(ch, p, n);
			ch[n] = '\0';
		} else {
			memcpy(ch, "\xef\xbf\xbd", 4);
			n = 1;
		}
		if (buf_add_json_str(out, ch) != EGOV_OK)
			return false;
		p += n;
	}
	return true;
}

void log_msg(log_level lvl, const char *event, const char *fmt, ...)
{
	char msg[LOG_MSG_MAX + 1];
	char ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;
	buf line, body;
	bool whole;
	int n;

	if ((unsigned)lvl > LOG_ERROR || (int)lvl < atomic_load(&log_min))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);

	buf_init(&line, LOG_LINE_MAX);
	buf_init(&body, 0);
	if (buf_addf(&line, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\",\"event\":\"", ts,
		     now.tv_nsec / 1000000, level_names[lvl]) ||
	    !add_json_capped(&line, event ? event : "") || buf_adds(&line, "\",\"msg\":\""))
		goto out;
	if (line.len + LOG_TAIL_ROOM >= LOG_LINE_MAX)
		goto out;
	/* The message gets what is left of the line, minus room for the tail. */
	buf_init(&body, LOG_LINE_MAX - LOG_TAIL_ROOM - line.len);
	whole = add_json_capped(&body, msg) && n < (int)sizeof msg;
	if (buf_add(&line, body.data ? body.data : "", body.len) ||
	    buf_adds(&line, whole ? "\"}\n" : "\",\"truncated\":true}\n"))
		goto out;
	write_all(atomic_load(&log_fd), line.data, line.len);
out:
	buf_release(&body);
	buf_release(&line);
}

/* ---- access log buffering ----------------------------------------------
 * One write(2) per request cost a fifth of the request rate on a small JSON
 * GET (measured: 35k vs 44k req/s). So each thread appends whole lines to
 * its own buffer, and a flusher thread writes every buffer out every
 * ACCESS_FLUSH_MS, or a thread does when its buffer is full. Lines stay
 * whole (a buffer holds complete lines only); at most ACCESS_FLUSH_MS of
 * access lines can be lost in a crash. This is the access log only: the
 * audit log, which must not lose anything, is in the database. */
#define ACCESS_BUF_SIZE (32 * 1024)
#define ACCESS_FLUSH_MS 200

typedef struct abuf {
	pthread_mutex_t mu;
	size_t len;
	struct abuf *next;
	char data[ACCESS_BUF_SIZE];
} abuf;

static pthread_mutex_t abuf_list_mu = PTHREAD_MUTEX_INITIALIZER;
static abuf *abuf_list;
static _Thread_local abuf *abuf_mine;
static atomic_uint abuf_generation = 1;
static pthread_t flusher;
static atomic_bool flusher_running;
static pthread_mutex_t flusher_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flusher_cv = PTHREAD_COND_INITIALIZER;

static void abuf_flush(abuf *b, int fd)
{
	pthread_mutex_lock(&b->mu);
	if (b->len && fd >= 0)
		write_all(fd, b->data, b->len);
	b->len = 0;
	pthread_mutex_unlock(&b->mu);
}

static void abuf_flush_all(void)
{
	int fd = atomic_load(&access_fd);
	abuf *b;

	pthread_mutex_lock(&abuf_list_mu);
	for (b = abuf_list; b; b = b->next)
		abuf_flush(b, fd);
	pthread_mutex_unlock(&abuf_list_mu);
}

static void *flusher_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&flusher_mu);
	while (atomic_load(&flusher_running)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += ACCESS_FLUSH_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&flusher_cv, &flusher_mu, &ts);
		pthread_mutex_unlock(&flusher_mu);
		abuf_flush_all();
		pthread_mutex_lock(&flusher_mu);
	}
	pthread_mutex_unlock(&flusher_mu);
	return NULL;
}

static void flusher_start(void)
{
	atomic_store(&flusher_running, true);
	if (pthread_create(&flusher, NULL, flusher_main, NULL) != 0)
		atomic_store(&flusher_running, false); /* lines then go out unbuffered */
}

/* Stops the flusher, writes out and frees every buffer. */
static void flusher_stop(void)
{
	abuf *b, *next;

	if (atomic_load(&flusher_running)) {
		pthread_mutex_lock(&flusher_mu);
		atomic_store(&flusher_running, false);
		pthread_cond_signal(&flusher_cv);
		pthread_mutex_unlock(&flusher_mu);
		pthread_join(flusher, NULL);
	}
	abuf_flush_all();
	pthread_mutex_lock(&abuf_list_mu);
	for (b = abuf_list; b; b = next) {
		next = b->next;
		pthread_mutex_destroy(&b->mu);
		free(b);
	}
	abuf_list = NULL;
	atomic_fetch_add(&abuf_generation, 1);
	pthread_mutex_unlock(&abuf_list_mu);
}

static abuf *abuf_get(void)
{
	static _Thread_local unsigned my_generation;

	/* A buffer freed by flusher_stop() must not be reused after a reopen. */
	if (abuf_mine && my_generation == atomic_load(&abuf_generation))
		return abuf_mine;
	abuf_mine = calloc(1, sizeof *abuf_mine);
	if (!abuf_mine)
		return NULL;
	pthread_mutex_init(&abuf_mine->mu, NULL);
	pthread_mutex_lock(&abuf_list_mu);
	abuf_mine->next = abuf_list;
	abuf_list = abuf_mine;
	my_generation = atomic_load(&abuf_generation);
	pthread_mutex_unlock(&abuf_list_mu);
	return abuf_mine;
}

void log_access_write(const char *line, size_t len)
{
	int fd = atomic_load(&access_fd);
	abuf *b;

	if (fd < 0 || len == 0)
		return;
	if (!atomic_load(&flusher_running) || len > ACCESS_BUF_SIZE / 4 || !(b = abuf_get())) {
		write_all(fd, line, len);
		return;
	}
	pthread_mutex_lock(&b->mu);
	if (b->len + len > ACCESS_BUF_SIZE) {
		write_all(fd, b->data, b->len);
		b->len = 0;
	}
	memcpy(b->data + b->len, line, len);
	b->len += len;
	pthread_mutex_unlock(&b->mu);
}

int log_access_enabled(void)
{
	return atomic_load(&access_fd) >= 0;
}
