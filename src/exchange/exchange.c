/*
 * exchange.c: the data exchange's first module descriptor (registry,
 * global configuration, keys), its start hook and the `egov exchange ...`
 * command, which hands each subcommand to the file that owns it (the
 * message log and pub/sub have their own). The other parts
 * (exchange_log_module, exchange_gateway_module, exchange_pubsub_module)
 * register their routes and hooks themselves. The staff console's pages
 * (exchange_web.c) are routed here too.
 */
#include <stdio.h>
#include <string.h>

#include "core/app.h"
#include "core/module.h"
#include "exchange/exchange_int.h"
#include "core/banned.h"

#define PERM_ADMIN "exchange.admin"
/* A service's OpenAPI description may be up to 1 MiB of JSON. */
#define SERVICE_BODY_MAX (1536 * 1024)
#define ITEM_BODY_MAX (16 * 1024)
#define CERT_BODY_MAX (64 * 1024)

static db *the_db;
static const egov_config *the_cfg;

db *exchange_db(void)
{
	return the_db ? the_db : app()->db;
}

const egov_config *exchange_cfg(void)
{
	return the_cfg ? the_cfg : app()->config;
}

#define ADMIN_ROUTES(kind, body)                                                                                 \
	{.method = HTTP_GET, .path = "/api/v1/exchange/" kind, .perm = PERM_ADMIN, .handler = exchange_http_list}, \
		{.method = HTTP_POST,                                                                            \
		 .path = "/api/v1/exchange/" kind,                                                               \
		 .perm = PERM_ADMIN,                                                                             \
		 .body_max = (body),                                                                             \
		 .handler = exchange_http_add},                                                                  \
		{.method = HTTP_GET,                                                                             \
		 .path = "/api/v1/exchange/" kind "/{*rest}",                                                    \
		 .perm = PERM_ADMIN,                                                                             \
		 .handler = exchange_http_get},                                                                  \
	{                                                                                                        \
		.method = HTTP_DELETE, .path = "/api/v1/exchange/" kind "/{*rest}", .perm = PERM_ADMIN,          \
		.handler = exchange_http_remove                                                                  \
	}

static const route routes[] = {
	{.method = HTTP_GET, .path = "/exchange/v1/globalconf", .handler = exchange_http_globalconf},
	{.method = HTTP_GET, .path = "/api/v1/exchange/status", .perm = PERM_ADMIN, .handler = exchange_http_status},
	{.method = HTTP_GET, .path = "/api/v1/exchange/console", .perm = PERM_ADMIN, .handler = exchange_web_console},
	/* Pages of the staff console: they check who asks themselves, so
	 * that nobody signed in is sent to log in and the others get a page. */
	{.method = HTTP_GET, .path = "/staff", .handler = exchange_web_page},
	{.method = HTTP_GET, .path = "/staff/exchange", .handler = exchange_web_page},
	ADMIN_ROUTES("members", ITEM_BODY_MAX),
	ADMIN_ROUTES("subsystems", ITEM_BODY_MAX),
	ADMIN_ROUTES("services", SERVICE_BODY_MAX),
	ADMIN_ROUTES("event-types", ITEM_BODY_MAX),
	{.method = HTTP_GET, .path = "/api/v1/exchange/access", .perm = PERM_ADMIN, .handler = exchange_http_list},
	{.method = HTTP_POST,
	 .path = "/api/v1/exchange/access",
	 .perm = PERM_ADMIN,
	 .body_max = ITEM_BODY_MAX,
	 .handler = exchange_http_add},
	{.method = HTTP_DELETE,
	 .path = "/api/v1/exchange/access/{*rest}",
	 .perm = PERM_ADMIN,
	 .handler = exchange_http_remove},
	{.method = HTTP_GET, .path = "/api/v1/exchange/certs", .perm = PERM_ADMIN, .handler = exchange_http_list},
	{.method = HTTP_POST,
	 .path = "/api/v1/exchange/certs",
	 .perm = PERM_ADMIN,
	 .body_max = CERT_BODY_MAX,
	 .handler = exchange_http_cert_add},
	{.method = HTTP_GET, .path = "/api/v1/exchange/certs/{sha256}", .perm = PERM_ADMIN, .handler = exchange_http_get},
	{.method = HTTP_DELETE,
	 .path = "/api/v1/exchange/certs/{sha256}",
	 .perm = PERM_ADMIN,
	 .handler = exchange_http_remove},
};

static egov_err start(const egov_config *cfg)
{
	the_db = app()->db;
	the_cfg = cfg;
	if (cfg->role && strcmp(cfg->role, "gateway") == 0)
		return exchange_conf_start(cfg);
	return EGOV_OK;
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
	      "         | revoke CLIENT SERVICE | list [SUBSYSTEM|SERVICE]\n"
	      "  cert issue SUBSYSTEM --usage sign|tls --csr FILE  issue with the platform CA, print the PEM\n"
	      "  cert add SUBSYSTEM --usage sign|tls FILE          register a certificate issued elsewhere\n"
	      "  cert list [SUBSYSTEM] | remove SHA256\n"
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

static int command(const char *name, int argc, char **argv, db *d)
{
	int rc;

	if (strcmp(name, "exchange") != 0)
		return -1;
	if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
		help(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "log") == 0)
		return exchange_log_command(argc - 1, argv + 1, d);
	if (strcmp(argv[1], "pubsub") == 0)
		return exchange_pubsub_command(argc - 1, argv + 1, d);
	if (strcmp(argv[1], "backend") == 0)
		return exchange_gateway_command(argc - 1, argv + 1, d);
	if ((rc = exchange_keys_command(argc, argv)) != -1 || (rc = exchange_central_command(argc, argv, d)) != -1 ||
	    (rc = exchange_conf_command(argc, argv, d)) != -1 || (rc = exchange_registry_command(argc, argv, d)) != -1)
		return rc;
	help(stderr);
	return 2;
}

/* A gateway is ready once it holds a valid global configuration: before
 * that every exchange would be refused with 503. */
static const char *ready(void)
{
	const egov_config *c = exchange_cfg();
	const char *why = NULL;
	exchange_conf *cf;

	if (!c || strcmp(c->role, "gateway") != 0)
		return NULL;
	if (!(cf = exchange_conf_get(&why)))
		return why ? why : "exchange.conf_missing";
	exchange_conf_put(cf);
	return NULL;
}

const egov_module exchange_module = {
	.name = "exchange",
	.routes = routes,
	.nroutes = sizeof routes / sizeof routes[0],
	.migrations = exchange_migrations,
	.command = command,
	.start = start,
	.ready = ready,
};
