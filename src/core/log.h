/*
 * log.h: operational logging. One JSON object per line, to stderr by
 * default or to a file. The access log (one line per request, accesslog.c)
 * is written by the HTTP layer through log_access_write().
 *
 * Thread-safe: each line goes out in a single write(2) with O_APPEND.
 */
#ifndef EGOV_CORE_LOG_H
#define EGOV_CORE_LOG_H

#include "core/err.h"

typedef enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* path NULL or "-" = stderr. access_path NULL or "off" = access log off,
 * "-" = stderr. Files are created (0640) and appended to. Fails with
 * EGOV_EIO, keeping the previous destinations, if a file cannot be opened.
 * Call before other threads log (and again only while none do). */
egov_err log_open(const char *path, const char *access_path, log_level min);
void log_close(void);
void log_set_level(log_level min);
/* "debug", "info", "warn", "error" (config's log.level) to a level. */
egov_err log_level_parse(const char *name, log_level *out);

/* A message with an event name, e.g. log_msg(LOG_INFO, "serve.ready", "listening on %s", addr). */
void log_msg(log_level lvl, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes a complete, already-formatted JSON line (newline included). */
void log_access_write(const char *line, size_t len);
int log_access_enabled(void);

#define log_debug(ev, ...) log_msg(LOG_DEBUG, ev, __VA_ARGS__)
#define log_info(ev, ...) log_msg(LOG_INFO, ev, __VA_ARGS__)
#define log_warn(ev, ...) log_msg(LOG_WARN, ev, __VA_ARGS__)
#define log_error(ev, ...) log_msg(LOG_ERROR, ev, __VA_ARGS__)

#endif
