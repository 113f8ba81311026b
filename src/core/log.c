/*
 * log.c: the operational log, and where both logs go (log_open, log_close).
 * The access log's lines and their buffering are in accesslog.c.
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
#include "core/log_int.h"
#include "core/utf8.h"
#include "core/banned.h"

/* PIPE_BUF on Linux: a write of at most this many bytes to a pipe (stderr
 * under a supervisor) is atomic too, not only to an O_APPEND file. */
#define LOG_LINE_MAX 4096

/* Longest formatted message before escaping; more is cut anyway. */
#define LOG_MSG_MAX LOG_LINE_MAX

/* Room kept for what follows the message: "\",\"truncated\":true}\n". */
#define LOG_TAIL_ROOM 32

static atomic_int log_fd = 2;
static atomic_int log_min = LOG_INFO;
static bool log_fd_owned;

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
	log_fd_owned = fd_owned;
	atomic_store(&log_min, (int)min);
	log_access_start(afd, afd_owned);
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
	int fd;

	log_access_stop();
	fd = atomic_exchange(&log_fd, 2);
	if (log_fd_owned && fd >= 0)
		close(fd);
	log_fd_owned = false;
}

void log_set_level(log_level min)
{
	atomic_store(&log_min, (int)min);
}

/* One write(2) for the whole line; a short write (disk full, signal) is
 * finished with more writes rather than lost. */
void log_write_all(int fd, const char *p, size_t n)
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
	log_write_all(atomic_load(&log_fd), line.data, line.len);
out:
	buf_release(&body);
	buf_release(&line);
}
