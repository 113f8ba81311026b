/*
 * pool.h: the blocking pool, private to the kernel's HTTP layer (http_mhd.c
 * hands requests to it, server.c starts and stops it; modules never see it:
 * they mark a route .blocking).
 *
 * A fixed set of threads, at a lower priority than the HTTP workers, runs
 * the handlers of .blocking routes. The queue is bounded; handing a request
 * over never blocks the caller (pool.c says why, with the measurements).
 * A request belongs to the pool from pool_submit() until its run function
 * has returned.
 */
#ifndef EGOV_CORE_POOL_H
#define EGOV_CORE_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/http.h"

/* Starts nthreads threads; each request handed over is passed to run() on
 * one of them. Fails with EGOV_ENOMEM or EGOV_EINTERNAL (no thread could
 * start), with nothing left running. One pool per process. */
egov_err pool_start(size_t nthreads, void (*run)(req *r));

/* Hands r to the pool; false if the queue is full or the pool is stopping
 * (the caller answers 503). Never blocks. */
bool pool_submit(req *r);

/* Refuses new hand-overs, lets every queued request run, then joins the
 * threads. Does nothing when the pool is not running. */
void pool_stop(void);

#endif
