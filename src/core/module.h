/*
 * module.h: how a module plugs into the kernel. Each module exports one
 * const egov_module built with designated initializers; src/modules.c
 * lists them all, in dependency order (a module may use the modules
 * before it, never those after it). The kernel drives every module through
 * this descriptor only and knows none by name: adding a module is its
 * folder plus one line in src/modules.c.
 *
 * Every field is optional except name. The order of events in `egov serve`:
 * configuration (each module's .config section read and finished), logs,
 * web files, data directory and blobs, database and every module's
 * .migrations, the HTTP client, each module's .start in module order, the
 * router (every module's .routes), the server. At shutdown: drain, the
 * HTTP client, each started module's .stop in reverse order, the server,
 * the database. `egov init` runs the migrations, each module's .init, then
 * (with --demo) each .demo; `egov verify` runs each .verify; `egov NAME`
 * runs the module command NAME; /metrics asks each .metrics and /readyz
 * each .ready, in module order. The staff console (src/console/, the last
 * module) reads every module's .pages when it starts and serves them.
 */
#ifndef EGOV_CORE_MODULE_H
#define EGOV_CORE_MODULE_H

#include <stddef.h>
#include <stdio.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/db.h"
#include "core/err.h"
#include "core/http.h"

/* What a module command needs set up before it runs. */
typedef enum module_command_flags {
	/* The default: the database opened and migrated (and the audit log
	 * open), app()->db and app()->config set. */
	MODULE_COMMAND_DB = 0,
	/* No database: d is NULL (key generation, file work). */
	MODULE_COMMAND_NO_DB = 1u << 0,
	/* The database opened but neither migrated nor written to: checks
	 * that must leave what they check as they found it. */
	MODULE_COMMAND_READ_ONLY = 1u << 1,
} module_command_flags;

/*
 * A page of the staff console. The kernel only carries these: the console
 * module reads every module's pages when it starts (refusing to start on a
 * page it cannot serve) and serves each inside its one frame (header with
 * the signed-in person and log-out, the menu of the pages the person may
 * use, language switch, CSRF token), after checking who asks: nobody
 * signed in is sent to log in and back, a person holding none of perms
 * gets the console's 403 page (audited as staff.page_forbidden).
 */
typedef struct console_page {
	/* "/staff/exchange": under /staff/, one or more segments of a-z, 0-9
	 * and '-'. The console's routes cover all of /staff/. */
	const char *path;
	/* Catalogue keys (web/i18n): the menu entry, the card title on /staff
	 * and the document title; the card's text. */
	const char *label;
	const char *summary;
	/* NULL-terminated; holding any one of them lets a person in. */
	const char *const *perms;
	/* The template holding only the page's main content, under web/staff/
	 * ("/staff/exchange.html"), so that it is never served on its own. */
	const char *content;
	/* The page's script ("/js/staff-exchange.js"), or NULL. It finds the
	 * session's CSRF token in <meta name="csrf-token">. */
	const char *script;
	/* Place in the menu and on /staff: lower first, ties by path. */
	int order;
} console_page;

/* `egov NAME ...`: one top-level command of a module. */
typedef struct module_command {
	const char *name;  /* "user" */
	const char *usage; /* its arguments, one line for `egov help` ("add|list ...") */
	/* argv[0] is name, the global options (--config, --data, --listen,
	 * --database) already taken out; d as flags say. Returns the exit
	 * status: 0 done, 1 refused or a check failed, 2 usage or error. */
	int (*run)(int argc, char **argv, db *d);
	unsigned flags; /* module_command_flags */
} module_command;

typedef struct egov_module {
	const char *name;
	/* Its [section] of the configuration: keys, the struct of values
	 * (config_section_values), the finish step. */
	const config_section *config;
	/* Its schema: versions from 1, never edited once applied. The
	 * migrations of a module may refer to tables of modules before it. */
	const db_migration *migrations;
	size_t nmigrations;
	const route *routes;
	size_t nroutes;
	const module_command *commands;
	size_t ncommands;
	/* Appends the module's /metrics families (Prometheus text) to out on
	 * every scrape, after the kernel's. Must not block. */
	egov_err (*metrics)(buf *out);
	/* /readyz: NULL when the module can serve, else a short reason
	 * ("conf_missing") that makes the node not ready. Cheap, non-blocking. */
	const char *(*ready)(void);
	/* `egov init`, after the migrations: prepare what the module keeps in
	 * the data directory (the PKI: its CA). Idempotent. errmsg says what
	 * failed. */
	egov_err (*init)(const egov_config *cfg, char *errmsg, size_t errlen);
	/* `egov init --demo`: demo data (idempotent). */
	egov_err (*demo)(db_conn *c);
	/* `egov serve`, in module order, once the database, the migrations,
	 * the audit log and the HTTP client are up and before the first
	 * request: load keys, start threads, install hooks into the kernel
	 * (the authoriser, the TLS trust bundles) and between modules. A
	 * failure is logged by the module and stops the start: the modules
	 * started before it are stopped in reverse order. */
	egov_err (*start)(const egov_config *cfg);
	/* `egov serve` at shutdown, in reverse module order, after the server
	 * drained and before its connections close: stop the module's threads,
	 * flush what they hold, answer the requests they deferred. */
	void (*stop)(void);
	/* Integrity check of what the module stores, run by `egov verify` in
	 * module order (the database opened read-only, nothing written). Prints
	 * its findings to out; returns 0 intact, 1 a fault found, 2 it could
	 * not check (said on stderr). */
	int (*verify)(db_conn *c, const egov_config *cfg, FILE *out);
	/* Background jobs (core/jobs.h): started after .start, stopped before .stop. */
	const struct job *const *jobs;
	size_t njobs;
	/* Its pages in the staff console (console_page above). */
	const console_page *pages;
	size_t npages;
} egov_module;

extern const egov_module *const egov_modules[];
extern const size_t egov_modules_count;

/* Runs every module's .verify in module order on c, stopping at the first
 * that does not return 0 (a later check may rely on what an earlier one
 * proved: the audit chain before the checkpoints that anchor it). Returns
 * that status, or 0. */
int egov_modules_verify(db_conn *c, const egov_config *cfg, FILE *out);

/* Appends every module's .metrics families, in module order. */
egov_err egov_modules_metrics(buf *out);

#endif
