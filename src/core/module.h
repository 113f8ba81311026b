/*
 * module.h: how a module plugs into the kernel. Each module exports one
 * const egov_module; src/modules.c lists them all, in dependency order.
 */
#ifndef EGOV_CORE_MODULE_H
#define EGOV_CORE_MODULE_H

#include <stddef.h>

#include "core/config.h"
#include "core/db.h"
#include "core/err.h"
#include "core/http.h"

typedef struct egov_module {
	const char *name;
	const route *routes;
	size_t nroutes;
	/* The module's schema migrations (and their count in *n); NULL if it
	 * keeps no tables. A function, so a module can keep its list private. */
	const db_migration *(*migrations)(size_t *n);
	/* Inserts demo data for `egov init --demo` (idempotent); may be NULL. */
	egov_err (*demo)(db_conn *c);
	/* Runs `egov NAME ...` for a command the module owns (argv[0] is NAME,
	 * the global options already removed; d is open and migrated). Returns
	 * -1 when NAME is not the module's, else the exit status. May be NULL. */
	int (*command)(const char *name, int argc, char **argv, db *d);
	/* `egov serve` calls this, in module order, once the database, the
	 * migrations and the audit log are up and before the first request:
	 * for hooks into the kernel (the authoriser) and between modules.
	 * May be NULL. */
	egov_err (*start)(const egov_config *cfg);
	/* `egov serve` calls this at shutdown, in reverse module order, after
	 * the HTTP server drained and before the audit log and the database
	 * close: stop the module's threads, flush what they hold. Also called
	 * when a later module failed to start. May be NULL. */
	void (*stop)(void);
	/* /readyz asks this of every module: NULL when the module can serve,
	 * else a short reason ("conf_missing") that makes the node not ready.
	 * Must be cheap and must not block. May be NULL. */
	const char *(*ready)(void);
	/* Background jobs (core/jobs.h): started after .start, stopped before .stop. */
	const struct job *const *jobs;
	size_t njobs;
} egov_module;

extern const egov_module *const egov_modules[];
extern const size_t egov_modules_count;

#endif
