/*
 * log_int.h: between the operational log (log.c, which also opens and
 * closes both destinations in log_open / log_close) and the access log
 * (accesslog.c). Nothing else includes it.
 */
#ifndef EGOV_CORE_LOG_INT_H
#define EGOV_CORE_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>

/* Writes all n bytes to fd in as few write(2) calls as it takes (one, but
 * for a short write on a full disk or a signal); gives up silently on an
 * error, since there is nowhere left to report it. */
void log_write_all(int fd, const char *p, size_t n);

/* Makes fd the access log's destination (-1: off) and starts its flusher;
 * owned: log_access_stop() closes it. Called with the access log stopped,
 * while no other thread logs. */
void log_access_start(int fd, bool owned);

/* Writes out every buffered line, stops the flusher and closes an owned
 * destination; the access log is off afterwards. */
void log_access_stop(void);

#endif
