/*
 * exchange.c: the data exchange's one module descriptor: its route table
 * (the handlers are the rooms'), its migrations, its jobs, its hooks and
 * the `egov exchange ...` command, which hands each subcommand to the room
 * that owns it. The rooms are listed in exchange.h; each holds what it
 * needs (the database, the settings) from the start hook here, which calls
 * them in order (keys, registry; on a gateway the global configuration,
 * message log, gateway and push delivery), and the stop hook in reverse.
 * Its page in the staff console (exchange_web.c) is declared here as .pages.
 */
#include <stdio.h>
#include <string.h>

#include "core/app.h"
#include "core/limits.h"
#include "core/module.h"
#include "exchange/conf/conf.h"
#include "exchange/gateway/gateway.h"
#include "exchange/keys/keys.h"
#include "exchange/log/exlog.h"
#include "exchange/pubsub/pubsub.h"
#include "exchange/registry/registry.h"
#include "core/banned.h"

#define PERM_ADMIN "exchange.admin"

/* A registry list's four routes: read with the session, a token or the
 * operator's key; change with the session's CSRF token too. */
#define ADMIN_ROUTES(kind, body)                                                                   \
	{.method = HTTP_GET, .path = "/api/v1/exchange/" kind, .auth = AUTH_API, .perm = PERM_ADMIN, \
	 .handler = exchange_http_list},                                                           \
	{.method = HTTP_POST, .path = "/api/v1/exchange/" kind, .auth = AUTH_API | AUTH_CSRF,        \
	 .perm = PERM_ADMIN, .body_max = (body), .handler = exchange_http_add},                    \
	{.method = HTTP_GET, .path = "/api/v1/exchange/" kind "/{*rest}", .auth = AUTH_API,         \
	 .perm = PERM_ADMIN, .handler = exchange_http_get},                                        \
	{.method = HTTP_DELETE, .path = "/api/v1/exchange/" kind "/{*rest}",                        \
	 .auth = AUTH_API | AUTH_CSRF, .perm = PERM_ADMIN, .handler = exchange_http_remove}

#define ANY_TYPE "*"
/* Service calls: bodies over SPOOL_THRESHOLD are spooled to a file, and
 * the service's max_body is applied when the head is in. */
#define R1(m) {.method = m, .path = "/r1/{*rest}", .body_max = EGOV_BODY_MAX_SPOOLED, .content_type = ANY_TYPE, \
	       .handler = exchange_consumer_call, .name = "/r1", .spool = true, .head = exchange_service_limit_head}
#define PEER(m) {.method = m, .path = "/peer/v1/r1/{*rest}", .body_max = EGOV_BODY_MAX_SPOOLED, \
		 .content_type = ANY_TYPE, .handler = exchange_provider_call, .name = "/peer/v1/r1", \
		 .auth = AUTH_PEER, .peer = true, .spool = true, .head = exchange_service_limit_head}
/* Calls to the pub/sub rooms (service codes api, pub, pull) touch the
 * database: their handler runs on the blocking pool. More literal
 * segments win in the router, so these take those codes from PEER(). The
 * room's own operations are a route table of the room (pubsub/room.c),
 * matched once the call is verified. */
#define ROOM(m, code) {.method = m, .path = "/peer/v1/r1/{i}/{c}/{m}/{s}/" code "/{*rest}", \
		       .body_max = EGOV_BODY_MAX_UPLOAD, .content_type = ANY_TYPE, .handler = exchange_provider_call, \
		       .name = "/peer/v1/r1 pubsub", .auth = AUTH_PEER, .peer = true, .blocking = true}
#define ROOMS(code) ROOM(HTTP_GET, code), ROOM(HTTP_POST, code), ROOM(HTTP_PUT, code), ROOM(HTTP_PATCH, code), \
	ROOM(HTTP_DELETE, code)

static const route routes[] = {
	{.method = HTTP_GET, .path = "/exchange/v1/globalconf", .handler = exchange_http_globalconf},
	{.method = HTTP_GET, .path = "/api/v1/exchange/status", .auth = AUTH_API, .perm = PERM_ADMIN, .handler = exchange_http_status},
	{.method = HTTP_GET, .path = "/api/v1/exchange/console", .auth = AUTH_API, .perm = PERM_ADMIN, .handler = exchange_web_console},
	ADMIN_ROUTES("members", EXCHANGE_ITEM_BODY_MAX),
	ADMIN_ROUTES("subsystems", EXCHANGE_ITEM_BODY_MAX),
	ADMIN_ROUTES("services", EXCHANGE_SERVICE_BODY_MAX),
	ADMIN_ROUTES("event-types", EXCHANGE_ITEM_BODY_MAX),
	{.method = HTTP_GET, .path = "/api/v1/exchange/access", .auth = AUTH_API, .perm = PERM_ADMIN, .handler = exchange_http_list},
	{.method = HTTP_POST,
	 .path = "/api/v1/exchange/access",
	 .auth = AUTH_API | AUTH_CSRF, .perm = PERM_ADMIN,
	 .body_max = EXCHANGE_ITEM_BODY_MAX,
	 .handler = exchange_http_add},
	{.method = HTTP_DELETE,
	 .path = "/api/v1/exchange/access/{*rest}",
	 .auth = AUTH_API | AUTH_CSRF, .perm = PERM_ADMIN,
	 .handler = exchange_http_remove},
	{.method = HTTP_GET, .path = "/api/v1/exchange/certs", .auth = AUTH_API, .perm = PERM_ADMIN, .handler = exchange_http_list},
	{.method = HTTP_POST,
	 .path = "/api/v1/exchange/certs",
	 .auth = AUTH_API | AUTH_CSRF, .perm = PERM_ADMIN,
	 .body_max = EXCHANGE_CERT_BODY_MAX,
	 .handler = exchange_http_cert_add},
	{.method = HTTP_GET, .path = "/api/v1/exchange/certs/{sha256}", .auth = AUTH_API, .perm = PERM_ADMIN, .handler = exchange_http_get},
	{.method = HTTP_DELETE,
	 .path = "/api/v1/exchange/certs/{sha256}",
	 .auth = AUTH_API | AUTH_CSRF, .perm = PERM_ADMIN,
	 .handler = exchange_http_remove},
	/* Federation: the other instances this registry trusts. */
	{.method = HTTP_GET, .path = "/api/v1/exchange/trusts", .auth = AUTH_API, .perm = PERM_ADMIN, .handler = exchange_http_list},
	{.method = HTTP_POST,
	 .path = "/api/v1/exchange/trusts",
	 .auth = AUTH_API | AUTH_CSRF, .perm = PERM_ADMIN,
	 .body_max = EXCHANGE_CERT_BODY_MAX,
	 .handler = exchange_http_trust_add},
	{.method = HTTP_GET, .path = "/api/v1/exchange/trusts/{instance}", .auth = AUTH_API, .perm = PERM_ADMIN,
	 .handler = exchange_http_get},
	{.method = HTTP_DELETE,
	 .path = "/api/v1/exchange/trusts/{instance}",
	 .auth = AUTH_API | AUTH_CSRF, .perm = PERM_ADMIN,
	 .handler = exchange_http_remove},
	/* The gateway: service calls (R1), the provider side (PEER) with
	 * the pub/sub rooms (ROOMS), and pushes between gateways. */
	R1(HTTP_GET), R1(HTTP_POST), R1(HTTP_PUT), R1(HTTP_PATCH), R1(HTTP_DELETE), R1(HTTP_OPTIONS),
	{.method = HTTP_GET, .path = "/listClients", .handler = exchange_list_clients_root},
	PEER(HTTP_GET), PEER(HTTP_POST), PEER(HTTP_PUT), PEER(HTTP_PATCH), PEER(HTTP_DELETE), PEER(HTTP_OPTIONS),
	ROOMS("api"), ROOMS("pub"), ROOMS("pull"),
	{.method = HTTP_POST, .path = "/peer/v1/push/{*rest}", .body_max = PUBSUB_EVENT_MAX + 64 * 1024,
	 .content_type = "application/json", .handler = exchange_push_receive, .name = "/peer/v1/push", .auth = AUTH_PEER, .peer = true},
};

/* The rooms' schemas, one list. Versions 3 to 5 were once migrations of
 * the parts' own descriptors (recorded as exchange_log, exchange_gateway
 * and exchange_pubsub, each a single version); their tables are created
 * IF NOT EXISTS, so on a database that has them already the versions are
 * recorded and change nothing, and on a new one they make them. The rows
 * of the old names stay in schema_migrations, unread. */
static const db_migration migrations[] = {
	{.version = 1, .name = "registry", .sql = exchange_registry_schema_v1},
	{.version = 2, .name = "shared_tls_certs_service_timeout", .sql = exchange_registry_schema_v2},
	{.version = 3, .name = "message_log", .sql_sqlite = exlog_schema_sqlite, .sql_postgres = exlog_schema_postgres},
	{.version = 4, .name = "backends", .sql = exchange_backend_schema},
	{.version = 5, .name = "pubsub", .sql_sqlite = pubsub_schema_sqlite, .sql_postgres = pubsub_schema_postgres},
	{.version = 6, .name = "federation", .sql = exchange_registry_schema_v3},
};

const db_migration *exchange_migrations(size_t *n)
{
	*n = sizeof migrations / sizeof migrations[0];
	return migrations;
}

/* The jobs run on every node, in this order, and stopped in reverse; each
 * does nothing on a node whose room was not started (not a gateway). */
static const job *const jobs[] = {
	&exchange_conf_job, &exchange_federation_job, &exlog_sealer_job, &gateway_backends_job, &gateway_bodies_job, &gateway_refusals_job,
	&pubsub_delivery_job,
};

static void stop(void);

/* Every node keeps the registry's and the log's tables (the central node
 * its registry, any node `egov exchange log`); only a gateway downloads
 * the global configuration, runs the message log and the data path. A
 * room that fails stops those started before it. */
static egov_err start(const egov_config *cfg)
{
	db *d = app()->db;
	egov_err err;

	if ((err = exchange_keys_setup(cfg->data_dir)))
		return err;
	registry_setup(d, cfg);
	if (!exchange_is_gateway(cfg))
		return EGOV_OK;
	if ((err = exchange_conf_start(cfg)))
		return err;
	exchange_federation_start(cfg);
	if ((err = exchange_log_start(d, cfg)) ||
	    (err = exchange_gateway_start(d, cfg, app()->blobs)) || (err = pubsub_delivery_start(cfg)))
		stop();
	return err;
}

static void stop(void)
{
	pubsub_delivery_stop();
	exchange_gateway_stop();
	exchange_log_stop();
	exchange_federation_stop();
	exchange_conf_stop();
}

static egov_err metrics(buf *out)
{
	egov_err err;

	if ((err = exchange_log_metrics(out)) || (err = exchange_metrics_write(out)))
		return err;
	return pubsub_push_metrics(out);
}

static void help(FILE *f)
{
	fputs("usage: egov exchange <command> [options]\n"
	      "registry (central node):\n"
	      "  member add ID NAME | list | remove ID            ID = INSTANCE/CLASS/CODE\n"
	      "  subsystem add ID --gateway https://HOST:PORT | list [MEMBER] | remove ID\n"
	      "  service add ID [--title T] [--log full|digest] [--max-body N] [--openapi FILE]\n"
	      "          | list [SUBSYSTEM] | remove ID           ID = SUBSYSTEM/SERVICE\n"
	      "  event-type add ID | list [SUBSYSTEM] | remove ID  ID = SUBSYSTEM/NAME\n"
	      "  access grant CLIENT SERVICE [--methods GET,POST|*] [--paths /a/*,/b|*]\n"
	      "         (CLIENT may be of a trusted instance)\n"
	      "         | revoke CLIENT SERVICE | list [SUBSYSTEM|SERVICE]\n"
	      "  cert issue SUBSYSTEM --usage sign|tls --csr FILE  issue with the platform CA, print the PEM\n"
	      "  cert add SUBSYSTEM --usage sign|tls FILE          register a certificate issued elsewhere\n"
	      "  cert list [SUBSYSTEM] | remove SHA256\n"
	      "  trust add INSTANCE --url URL --cert FILE        trust another instance's central node\n"
	      "        | list | remove INSTANCE                    (its configuration signing certificate)\n"
	      "  central init                                      make DATA/exchange/central.key and .crt\n"
	      "  conf show                                         the global configuration (central: current;\n"
	      "                                                    gateway: the kept copy)\n"
	      "gateway:\n"
	      "  keygen SUBSYSTEM                                  make its signing key, print a CSR\n"
	      "  cert install SUBSYSTEM FILE                       install its certificate beside the key\n"
	      "  backend set|list|remove ...                       back-end URLs of provided services\n"
	      "  log verify|archive ...                            the message log\n"
	      "  pubsub ...                                        publish/subscribe\n"
	      "Exit status: 0 done, 1 refused (bad input, conflict, not found), 2 error.\n",
	      f);
}

/* `egov exchange conf show`: the central node's current document, or a
 * gateway's kept copy. */
static int conf_show(int argc, char **argv, db *d, const egov_config *cfg)
{
	if (argc != 3 || strcmp(argv[1], "conf") != 0 || strcmp(argv[2], "show") != 0)
		return -1;
	return exchange_is_gateway(cfg) ? exchange_conf_show_kept(cfg) : registry_conf_show(d);
}

static int command(int argc, char **argv, db *d)
{
	const egov_config *cfg = app()->config;
	int rc;

	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	/* The rooms a command uses hold the node's settings, as in serve. */
	if (exchange_keys_setup(cfg->data_dir)) {
		fprintf(stderr, "egov: data.dir: too long for DATA/exchange\n");
		return 2;
	}
	registry_setup(d, cfg);
	if (strcmp(argv[1], "log") == 0)
		return exchange_log_command(argc - 1, argv + 1, d, cfg);
	if (strcmp(argv[1], "pubsub") == 0)
		return exchange_pubsub_command(argc - 1, argv + 1, d);
	if (strcmp(argv[1], "backend") == 0)
		return exchange_gateway_command(argc - 1, argv + 1, d);
	if ((rc = exchange_keys_command(argc, argv)) != -1 || (rc = exchange_central_command(argc, argv, d)) != -1 ||
	    (rc = conf_show(argc, argv, d, cfg)) != -1 || (rc = exchange_registry_command(argc, argv, d)) != -1)
		return rc;
	help(stderr);
	return 2;
}

/* A gateway is ready once it holds a valid global configuration: before
 * that every exchange would be refused with 503. */
static const char *ready(void)
{
	const char *why = NULL;
	exchange_conf *cf;

	if (!exchange_conf_serving())
		return NULL;
	if (!(cf = exchange_conf_get(&why)))
		return why ? why : "exchange.conf_missing";
	exchange_conf_put(cf);
	return NULL;
}

static const module_command commands[] = {
	{.name = "exchange", .usage = "help|member|service|... the data exchange (docs/exchange.md)",
	 .run = command},
};

const egov_module exchange_module = {
	.name = "exchange",
	.config = &exchange_config_section,
	.migrations = migrations,
	.nmigrations = sizeof migrations / sizeof migrations[0],
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.commands = commands,
	.ncommands = sizeof commands / sizeof commands[0],
	.jobs = jobs,
	.njobs = sizeof jobs / sizeof jobs[0],
	.metrics = metrics,
	.ready = ready,
	.start = start,
	.stop = stop,
	.pages = exchange_web_pages,
	.npages = EXCHANGE_WEB_NPAGES,
};
