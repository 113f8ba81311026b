/*
 * main.c: the egov command line. Each command sets up only what it needs:
 *
 *   egov serve   [--config FILE] [--data DIR] [--listen ADDR:PORT] [--database URL]
 *   egov init    [--demo] [same flags]     data directory, schema, modules' init, demo data
 *   egov migrate [same flags]              apply pending schema migrations
 *   egov verify  [same flags]              every module's integrity check
 *   egov config defaults                   every key with its default, as a file
 *   egov config check [same flags]         validate the configuration
 *   egov NAME ... [same flags]             a module's command (egov help lists them)
 *   egov version
 *
 * main.c knows no module by name: it drives them through their descriptors
 * (core/module.h) in the order of src/modules.c.
 *
 * Exit status: 0 success, 1 a check failed (verify found tampering, config
 * check found an error), 2 usage or runtime error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/app.h"
#include "core/blob.h"
#include "core/config.h"
#include "core/httpc.h"
#include "core/i18n.h"
#include "core/jobs.h"
#include "core/log.h"
#include "core/module.h"
#include "core/router.h"
#include "core/server.h"
#include "core/timeutil.h"
#include "core/version.h"
#include "core/web.h"
#include "core/banned.h"

typedef struct opts {
	const char *config, *data, *listen, *database;
	int demo;
} opts;

static void usage(FILE *f)
{
	size_t i, j;

	fputs("usage: egov <command> [options]\n"
	      "\n"
	      "commands:\n"
	      "  serve          run the node (HTTP API, pages, background work)\n"
	      "  init [--demo]  create the data directory and schema (and demo data)\n"
	      "  migrate        apply pending schema migrations\n"
	      "  verify         check what every module stores (the audit chain, ...)\n"
	      "  config defaults | config check\n"
	      "  version\n",
	      f);
	for (i = 0; i < egov_modules_count; i++)
		for (j = 0; j < egov_modules[i]->ncommands; j++)
			fprintf(f, "  %-14s %s\n", egov_modules[i]->commands[j].name,
				egov_modules[i]->commands[j].usage ? egov_modules[i]->commands[j].usage : "");
	fputs("\n"
	      "options:\n"
	      "  --config FILE      configuration file (default DATA/egov.conf if present)\n"
	      "  --data DIR         data directory (default ./var)\n"
	      "  --listen ADDR:PORT where to serve HTTP (default 127.0.0.1:8080)\n"
	      "  --database URL     sqlite:PATH or postgres://... (default sqlite:DATA/egov.db)\n"
	      "\n"
	      "Every configuration key can also be set as EGOV_<SECTION>_<KEY>; see docs/configuration.md.\n",
	      f);
}

static int parse_opts(int argc, char **argv, int first, opts *o)
{
	int i;

	for (i = first; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (strcmp(a, "--demo") == 0) {
			o->demo = 1;
			continue;
		}
		if (strcmp(a, "--config") == 0)
			dst = &o->config;
		else if (strcmp(a, "--data") == 0)
			dst = &o->data;
		else if (strcmp(a, "--listen") == 0)
			dst = &o->listen;
		else if (strcmp(a, "--database") == 0)
			dst = &o->database;
		if (!dst || i + 1 >= argc) {
			fprintf(stderr, "egov: %s: %s\n", a, dst ? "needs a value" : "unknown option");
			return -1;
		}
		*dst = argv[++i];
	}
	return 0;
}

/* Defaults, then the file, then the environment, then the flags. */
static int load_config(const opts *o, egov_config *cfg)
{
	char err[512], path[4096];
	const char *file = o->config;

	config_init(cfg);
	if (!file) {
		const char *dir = o->data ? o->data : getenv("EGOV_DATA_DIR");
		snprintf(path, sizeof path, "%s/egov.conf", dir ? dir : cfg->data_dir);
		if (access(path, F_OK) == 0)
			file = path;
	}
	if ((file && config_load_file(cfg, file, err, sizeof err)) || config_load_env(cfg, err, sizeof err) ||
	    (o->data && config_set(cfg, "data.dir", o->data, err, sizeof err)) ||
	    (o->listen && config_set(cfg, "server.listen", o->listen, err, sizeof err)) ||
	    (o->database && config_set(cfg, "data.database", o->database, err, sizeof err)) ||
	    config_finish(cfg, err, sizeof err)) {
		fprintf(stderr, "egov: configuration: %s\n", err);
		config_release(cfg);
		return -1;
	}
	return 0;
}

static int ensure_dir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	fprintf(stderr, "egov: cannot create %s: %s\n", path, strerror(errno));
	return -1;
}

static int open_db(const egov_config *cfg, db **out)
{
	char err[512] = "";

	if (db_open(cfg->database, out, err, sizeof err)) {
		fprintf(stderr, "egov: data.database: %s\n", err[0] ? err : "cannot open");
		return -1;
	}
	return 0;
}

static int migrate_all(db *d, int *applied_total)
{
	db_conn *c = NULL;
	size_t i;
	int rc = 0;

	*applied_total = 0;
	if (db_conn_open(d, &c)) {
		fprintf(stderr, "egov: cannot connect to the database\n");
		return -1;
	}
	for (i = 0; i < egov_modules_count; i++) {
		const egov_module *m = egov_modules[i];
		int applied = 0;
		if (!m->nmigrations)
			continue;
		if (db_migrate(c, m->name, m->migrations, m->nmigrations, &applied)) {
			fprintf(stderr, "egov: migrating %s failed: %s\n", m->name, db_conn_errmsg(c));
			rc = -1;
			break;
		}
		*applied_total += applied;
	}
	db_conn_close(c);
	return rc;
}

static int cmd_init(const opts *o)
{
	egov_config cfg;
	char path[4096], err[512];
	db *d = NULL;
	db_conn *c = NULL;
	int rc = 2, applied = 0;
	size_t i;

	if (load_config(o, &cfg))
		return 2;
	snprintf(path, sizeof path, "%s/blobs", cfg.data_dir);
	if (ensure_dir(cfg.data_dir) || ensure_dir(path) || open_db(&cfg, &d) || migrate_all(d, &applied))
		goto out;
	for (i = 0; i < egov_modules_count; i++) {
		if (egov_modules[i]->init && egov_modules[i]->init(&cfg, err, sizeof err)) {
			fprintf(stderr, "egov: %s: %s\n", egov_modules[i]->name, err);
			goto out;
		}
	}
	if (o->demo) {
		if (db_conn_open(d, &c))
			goto out;
		for (i = 0; i < egov_modules_count; i++) {
			if (egov_modules[i]->demo && egov_modules[i]->demo(c)) {
				fprintf(stderr, "egov: demo data for %s failed: %s\n", egov_modules[i]->name,
					db_conn_errmsg(c));
				goto out;
			}
		}
	}
	printf("egov: data directory %s ready (%s, %d migrations applied%s)\n", cfg.data_dir, db_kind_name(d),
	       applied, o->demo ? ", demo data" : "");
	rc = 0;
out:
	if (c)
		db_conn_close(c);
	if (d)
		db_close(d);
	config_release(&cfg);
	return rc;
}

static int cmd_migrate(const opts *o)
{
	egov_config cfg;
	db *d = NULL;
	int rc = 2, applied = 0;

	if (load_config(o, &cfg))
		return 2;
	if (!open_db(&cfg, &d) && !migrate_all(d, &applied)) {
		printf("egov: %d migrations applied\n", applied);
		rc = 0;
	}
	if (d)
		db_close(d);
	config_release(&cfg);
	return rc;
}

/* Every module's integrity check, on a database opened read-only in spirit:
 * nothing is migrated or written. */
static int cmd_verify(const opts *o)
{
	egov_config cfg;
	db *d = NULL;
	db_conn *c = NULL;
	int rc = 2;

	if (load_config(o, &cfg))
		return 2;
	if (open_db(&cfg, &d))
		goto out;
	if (db_conn_open(d, &c)) {
		fprintf(stderr, "egov: verify: cannot connect to the database\n");
		goto out;
	}
	app()->config = &cfg;
	rc = egov_modules_verify(c, &cfg, stdout);
	app()->config = NULL;
out:
	if (c)
		db_conn_close(c);
	if (d)
		db_close(d);
	config_release(&cfg);
	return rc;
}

static int cmd_config(int argc, char **argv)
{
	opts o = {0};
	egov_config cfg;
	buf b;

	if (argc >= 3 && strcmp(argv[2], "defaults") == 0) {
		buf_init(&b, 1 << 20);
		if (config_write_defaults(&b)) {
			buf_release(&b);
			return 2;
		}
		fwrite(b.data, 1, b.len, stdout);
		buf_release(&b);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[2], "check") == 0) {
		if (parse_opts(argc, argv, 3, &o))
			return 2;
		if (load_config(&o, &cfg))
			return 1;
		printf("configuration valid (listen %s, database %s)\n", cfg.listen, cfg.database);
		config_release(&cfg);
		return 0;
	}
	usage(stderr);
	return 2;
}

static int build_router(router **out)
{
	char err[256];
	size_t i;

	if (router_new(out))
		return -1;
	for (i = 0; i < egov_modules_count; i++) {
		const egov_module *m = egov_modules[i];
		if (m->nroutes && router_add(*out, m->routes, m->nroutes, err, sizeof err)) {
			fprintf(stderr, "egov: module %s: %s\n", m->name, err);
			return -1;
		}
	}
	return 0;
}

/* Stops the first *started modules in reverse order (and forgets them). */
static void stop_modules(size_t *started)
{
	while (*started > 0) {
		(*started)--;
		jobs_stop(egov_modules[*started]->jobs, egov_modules[*started]->njobs);
		if (egov_modules[*started]->stop)
			egov_modules[*started]->stop();
	}
}

static int cmd_serve(const opts *o)
{
	int64_t t0 = time_mono_us();
	egov_config cfg;
	char err[512], path[4096];
	router *rt = NULL;
	server *srv = NULL;
	log_level lvl = LOG_INFO;
	int rc = 2, applied = 0, sig;
	size_t i, started = 0;

	/* Before any thread starts, so that only the main thread takes
	 * SIGTERM/SIGINT and drains. */
	server_block_signals();
	app()->started_unix_ms = time_now_us() / 1000;
	if (load_config(o, &cfg))
		return 2;
	app()->config = &cfg;
	log_level_parse(cfg.log_level, &lvl);
	if (log_open(cfg.log_file, strcmp(cfg.access_log, "off") == 0 ? NULL : cfg.access_log, lvl)) {
		fprintf(stderr, "egov: log.file/log.access: cannot open %s or %s\n", cfg.log_file, cfg.access_log);
		goto out;
	}
	snprintf(path, sizeof path, "%s/i18n", cfg.web_dir);
	if (i18n_load(path, err, sizeof err) || web_load(cfg.web_dir, err, sizeof err)) {
		fprintf(stderr, "egov: web.dir: %s\n", err);
		goto out;
	}
	if (ensure_dir(cfg.data_dir))
		goto out;
	snprintf(path, sizeof path, "%s/blobs", cfg.data_dir);
	if (ensure_dir(path) || blob_store_open(path, &app()->blobs)) {
		fprintf(stderr, "egov: data.dir: cannot open blob store %s\n", path);
		goto out;
	}
	if (open_db(&cfg, &app()->db) || migrate_all(app()->db, &applied))
		goto out;
	if (httpc_start()) {
		fprintf(stderr, "egov: cannot start the HTTP client\n");
		goto out;
	}
	for (i = 0; i < egov_modules_count; i++) {
		if (egov_modules[i]->start && egov_modules[i]->start(&cfg)) {
			fprintf(stderr, "egov: module %s: cannot start (see the log)\n", egov_modules[i]->name);
			goto out;
		}
		started = i + 1;
		if (jobs_start(app()->db, egov_modules[i]->jobs, egov_modules[i]->njobs)) {
			fprintf(stderr, "egov: module %s: cannot start its jobs (see the log)\n", egov_modules[i]->name);
			goto out;
		}
	}
	if (build_router(&rt))
		goto out;
	if (server_start(&cfg, rt, &srv, err, sizeof err)) {
		fprintf(stderr, "egov: %s\n", err);
		goto out;
	}
	log_info("serve.ready", "egov %s listening on %s://%s (%s, %d migrations applied, ready in %.1f ms)",
		 EGOV_VERSION, cfg.tls_cert[0] ? "https" : "http", cfg.listen, db_kind_name(app()->db), applied, (double)(time_mono_us() - t0) / 1e3);
	sig = server_wait_signal();
	log_info("serve.stop", "signal %d: draining for up to %d s", sig, cfg.drain_s);
	server_drain(srv, cfg.drain_s);
	/* What could still complete a deferred request stops while its
	 * connection is open: the HTTP client fails the calls in flight, the
	 * modules flush their writers (each answers and resumes its requests);
	 * only then are the connections closed. */
	httpc_stop();
	stop_modules(&started);
	server_stop(srv, cfg.drain_s);
	srv = NULL;
	rc = 0;
out:
	stop_modules(&started);
	httpc_stop();
	if (app()->db)
		db_close(app()->db);
	app()->db = NULL;
	if (app()->blobs)
		blob_store_free(app()->blobs);
	app()->blobs = NULL;
	router_free(rt);
	web_free();
	i18n_free();
	if (rc == 0)
		log_info("serve.exit", "stopped cleanly");
	log_close();
	app()->config = NULL;
	config_release(&cfg);
	return rc;
}

/* The module command called name, and its module; NULL if none. */
static const module_command *find_command(const char *name)
{
	size_t i, j;

	for (i = 0; i < egov_modules_count; i++)
		for (j = 0; j < egov_modules[i]->ncommands; j++)
			if (strcmp(egov_modules[i]->commands[j].name, name) == 0)
				return &egov_modules[i]->commands[j];
	return NULL;
}

/* A command owned by a module: the global options are taken out of argv
 * and the rest handed to the module, with what its flags ask for set up. */
static int cmd_module(const module_command *mc, int argc, char **argv)
{
	static const char *const globals[] = {"--config", "--data", "--listen", "--database"};
	egov_config cfg;
	opts o = {0};
	char **rest = calloc((size_t)argc + 1, sizeof *rest);
	int i, j, n = 0, rc = 2, applied = 0;
	db *d = NULL;

	if (!rest)
		return 2;
	for (i = 1; i < argc; i++) {
		for (j = 0; j < 4; j++)
			if (strcmp(argv[i], globals[j]) == 0 && i + 1 < argc)
				break;
		if (j < 4) {
			char *two[2] = {argv[i], argv[i + 1]};
			if (parse_opts(2, two, 0, &o))
				goto out;
			i++;
			continue;
		}
		rest[n++] = argv[i];
	}
	if (load_config(&o, &cfg))
		goto out;
	if (!(mc->flags & MODULE_COMMAND_NO_DB)) {
		if (open_db(&cfg, &d))
			goto out_cfg;
		if (!(mc->flags & MODULE_COMMAND_READ_ONLY) && migrate_all(d, &applied))
			goto out_cfg;
	}
	app()->db = d;
	app()->config = &cfg;
	rc = mc->run(n, rest, d);
out_cfg:
	app()->db = NULL;
	app()->config = NULL;
	if (d)
		db_close(d);
	config_release(&cfg);
out:
	free(rest);
	return rc;
}

int main(int argc, char **argv)
{
	opts o = {0};
	const char *cmd = argc > 1 ? argv[1] : NULL;
	const module_command *mc;

	if (!cmd || strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("egov %s\n", EGOV_VERSION);
		return 0;
	}
	if (strcmp(cmd, "config") == 0)
		return cmd_config(argc, argv);
	if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "init") != 0 && strcmp(cmd, "migrate") != 0 &&
	    strcmp(cmd, "verify") != 0) {
		if ((mc = find_command(cmd)))
			return cmd_module(mc, argc, argv);
		fprintf(stderr, "egov: unknown command \"%s\"\n", cmd);
		usage(stderr);
		return 2;
	}
	if (parse_opts(argc, argv, 2, &o))
		return 2;
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(&o);
	if (strcmp(cmd, "init") == 0)
		return cmd_init(&o);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(&o);
	return cmd_migrate(&o);
}
