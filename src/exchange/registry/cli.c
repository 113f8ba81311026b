/*
 * cli.c: the registry's commands on the central node: `egov exchange
 * member|subsystem|service|event-type add|list|remove`, `access
 * grant|revoke|list`, `cert issue|add|list|remove` and `trust
 * add|list|remove` (federation). Each change goes
 * through the same store functions as the admin API and is audited with
 * the actor operator:cli. Exit status: 0 done, 1 refused, 2 error.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange/keys/keys.h"
#include "exchange/registry/registry_int.h"
#include "core/banned.h"

typedef struct cli {
	const char *gateway, *openapi, *log, *title, *methods, *paths, *usage, *csr, *name, *max_body, *timeout_ms;
	const char *url, *cert;
	const char *pos[3];
	int npos;
} cli;

static int cli_parse(int argc, char **argv, int first, cli *o)
{
	static const struct {
		const char *flag;
		size_t off;
	} flags[] = {
		{"--gateway", offsetof(cli, gateway)}, {"--openapi", offsetof(cli, openapi)},
		{"--log", offsetof(cli, log)},	       {"--title", offsetof(cli, title)},
		{"--methods", offsetof(cli, methods)}, {"--paths", offsetof(cli, paths)},
		{"--usage", offsetof(cli, usage)},     {"--csr", offsetof(cli, csr)},
		{"--name", offsetof(cli, name)},       {"--max-body", offsetof(cli, max_body)},
		{"--timeout-ms", offsetof(cli, timeout_ms)},
		{"--url", offsetof(cli, url)},	       {"--cert", offsetof(cli, cert)},
	};
	int i;
	size_t k;

	for (i = first; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0) {
			if (o->npos >= 3) {
				fprintf(stderr, "egov: %s: too many arguments\n", argv[i]);
				return -1;
			}
			o->pos[o->npos++] = argv[i];
			continue;
		}
		for (k = 0; k < sizeof flags / sizeof flags[0]; k++)
			if (strcmp(argv[i], flags[k].flag) == 0)
				break;
		if (k == sizeof flags / sizeof flags[0] || i + 1 >= argc) {
			fprintf(stderr, "egov: %s: %s\n", argv[i],
				k == sizeof flags / sizeof flags[0] ? "unknown option" : "needs a value");
			return -1;
		}
		*(const char **)((char *)o + flags[k].off) = argv[++i];
	}
	return 0;
}

static int cli_fail(egov_err err, const reg_why *why)
{
	if (why->code)
		fprintf(stderr, "egov: %s%s%s%s%s\n", why->field ? why->field : "", why->field ? ": " : "", why->code,
			why->detail ? ": " : "", why->detail ? why->detail : "");
	else
		fprintf(stderr, "egov: %s\n", egov_err_name(err));
	return err == EGOV_EINVAL || err == EGOV_ECONFLICT || err == EGOV_ENOTFOUND || err == EGOV_EAUTH ? 1 : 2;
}

static int cli_list(db_conn *c, exchange_reg_kind kind, const char *filter)
{
	return exchange_reg_print(c, kind, filter) ? 2 : 0;
}

static int cli_add(db_conn *c, exchange_reg_item *it, const char *verb)
{
	reg_why why = {0};
	bool replaced = false;
	egov_err err = exchange_reg_add(c, it, &replaced, &why);

	if (err)
		return cli_fail(err, &why);
	exchange_reg_audit("operator:cli", it->kind, replaced ? "change" : verb, it, NULL);
	return 0;
}

static int cli_remove(db_conn *c, exchange_reg_item *it)
{
	reg_why why = {0};
	egov_err err = exchange_reg_remove(c, it, &why);

	if (err)
		return cli_fail(err, &why);
	exchange_reg_audit("operator:cli", it->kind, "remove", it, NULL);
	return 0;
}

static int usage_err(const char *u)
{
	fprintf(stderr, "usage: egov exchange %s\n", u);
	return 2;
}

static int cmd_simple(db_conn *c, exchange_reg_kind kind, const char *verb, const cli *o)
{
	exchange_reg_item it = {.kind = kind, .id = o->pos[0]};
	buf doc = {0};
	int rc;

	if (strcmp(verb, "list") == 0)
		return cli_list(c, kind, o->pos[0]);
	if (!o->pos[0])
		return usage_err("member|subsystem|service|event-type add|remove ID ...");
	if (strcmp(verb, "remove") == 0)
		return cli_remove(c, &it);
	if (strcmp(verb, "add") != 0)
		return usage_err("member|subsystem|service|event-type add|list|remove ...");
	it.name = o->name ? o->name : o->pos[1];
	it.gateway = o->gateway;
	it.title = o->title;
	it.log_mode = o->log;
	if (o->max_body) {
		char *end;
		it.max_body = strtoll(o->max_body, &end, 10);
		if (!*o->max_body || *end || it.max_body < 1) {
			fprintf(stderr, "egov: --max-body: a number of bytes\n");
			return 2;
		}
	}
	if (o->timeout_ms) {
		char *end;
		it.timeout_ms = strtoll(o->timeout_ms, &end, 10);
		if (!*o->timeout_ms || *end || it.timeout_ms < EXCHANGE_TIMEOUT_MIN_MS || it.timeout_ms > EXCHANGE_TIMEOUT_MAX_MS) {
			fprintf(stderr, "egov: --timeout-ms: 10 to 600000 milliseconds\n");
			return 2;
		}
	}
	if (o->openapi) {
		if (exchange_file_read(o->openapi, EXCHANGE_OPENAPI_MAX, &doc)) {
			fprintf(stderr, "egov: --openapi: cannot read %s (at most 1 MiB)\n", o->openapi);
			return 2;
		}
		it.openapi = doc.data;
	}
	if (kind == EXCHANGE_REG_MEMBER && !it.name) {
		fprintf(stderr, "egov: member add ID NAME (or --name NAME)\n");
		return 2;
	}
	rc = cli_add(c, &it, "add");
	buf_release(&doc);
	return rc;
}

static int cmd_access(db_conn *c, const char *verb, const cli *o)
{
	exchange_reg_item it = {.kind = EXCHANGE_REG_ACCESS, .client = o->pos[0], .service = o->pos[1]};

	if (strcmp(verb, "list") == 0)
		return cli_list(c, EXCHANGE_REG_ACCESS, o->pos[0]);
	if (!o->pos[0] || !o->pos[1])
		return usage_err("access grant|revoke CLIENT SERVICE [--methods GET,POST] [--paths /a/*,/b]");
	if (strcmp(verb, "revoke") == 0) {
		if (!exchange_id_valid(it.client, EXCHANGE_ID_SUBSYSTEM) ||
		    !exchange_id_valid(it.service, EXCHANGE_ID_SERVICE)) {
			fprintf(stderr, "egov: not a CLIENT subsystem and a SERVICE id\n");
			return 1;
		}
		return cli_remove(c, &it);
	}
	if (strcmp(verb, "grant") != 0)
		return usage_err("access grant|revoke|list ...");
	it.methods = o->methods ? o->methods : "*";
	it.paths = o->paths ? o->paths : "*";
	return cli_add(c, &it, "add");
}

static int cmd_cert(db_conn *c, const char *verb, const cli *o)
{
	exchange_reg_item it = {.kind = EXCHANGE_REG_CERT};
	reg_why why = {0};
	char sha[65];
	char *pem = NULL;
	buf in = {0};
	egov_err err;
	int rc = 2;

	if (strcmp(verb, "list") == 0)
		return cli_list(c, EXCHANGE_REG_CERT, o->pos[0]);
	if (strcmp(verb, "remove") == 0) {
		if (!o->pos[0])
			return usage_err("cert remove SHA256 [SUBSYSTEM]");
		it.id = it.sha256 = o->pos[0];
		/* With a subsystem only that registration goes. */
		if (o->pos[1])
			it.id = o->pos[1];
		return cli_remove(c, &it);
	}
	if (strcmp(verb, "issue") != 0 && strcmp(verb, "add") != 0)
		return usage_err("cert issue|add|list|remove|install ...");
	if (!o->pos[0] || !o->usage || (strcmp(verb, "issue") == 0 ? !o->csr : !o->pos[1]))
		return usage_err("cert issue SUBSYSTEM --usage sign|tls --csr FILE\n"
				 "       egov exchange cert add SUBSYSTEM --usage sign|tls FILE");
	if (registry_open_pki())
		return 2;
	if (exchange_file_read(strcmp(verb, "issue") == 0 ? o->csr : o->pos[1], EXCHANGE_PEM_MAX, &in)) {
		fprintf(stderr, "egov: cannot read %s\n", strcmp(verb, "issue") == 0 ? o->csr : o->pos[1]);
		return 2;
	}
	if (strcmp(verb, "issue") == 0)
		err = exchange_reg_cert_issue(c, o->pos[0], o->usage, in.data, in.len, sha, &pem, &why);
	else
		err = exchange_reg_cert_add(c, o->pos[0], o->usage, in.data, sha, &why);
	if (err) {
		rc = cli_fail(err, &why);
		goto out;
	}
	it.id = o->pos[0];
	it.usage = o->usage;
	it.sha256 = sha;
	exchange_reg_audit("operator:cli", EXCHANGE_REG_CERT, "add", &it, NULL);
	if (pem)
		fputs(pem, stdout);
	else
		printf("%s\n", sha);
	rc = 0;
out:
	free(pem);
	buf_release(&in);
	return rc;
}

/* trust add INSTANCE --url URL --cert FILE | list | remove INSTANCE */
static int cmd_trust(db_conn *c, const char *verb, const cli *o)
{
	exchange_reg_item it = {.kind = EXCHANGE_REG_TRUST, .id = o->pos[0]};
	reg_why why = {0};
	bool replaced = false;
	char sha[65];
	buf pem = {0};
	egov_err err;

	if (strcmp(verb, "list") == 0)
		return cli_list(c, EXCHANGE_REG_TRUST, NULL);
	if (strcmp(verb, "remove") == 0) {
		if (!o->pos[0])
			return usage_err("trust remove INSTANCE");
		return cli_remove(c, &it);
	}
	if (strcmp(verb, "add") != 0 || !o->pos[0] || !o->url || !o->cert)
		return usage_err("trust add INSTANCE --url URL --cert FILE | list | remove INSTANCE");
	if (exchange_file_read(o->cert, EXCHANGE_PEM_FILE_MAX, &pem)) {
		fprintf(stderr, "egov: --cert: cannot read %s\n", o->cert);
		return 2;
	}
	err = exchange_reg_trust_add(c, o->pos[0], o->url, pem.data, sha, &replaced, &why);
	buf_release(&pem);
	if (err)
		return cli_fail(err, &why);
	it.url = o->url;
	it.sha256 = sha;
	exchange_reg_audit("operator:cli", EXCHANGE_REG_TRUST, replaced ? "change" : "add", &it, NULL);
	printf("%s\n", sha);
	return 0;
}

int exchange_registry_command(int argc, char **argv, db *d)
{
	static const struct {
		const char *name;
		exchange_reg_kind kind;
	} simple[] = {
		{"member", EXCHANGE_REG_MEMBER},
		{"subsystem", EXCHANGE_REG_SUBSYSTEM},
		{"service", EXCHANGE_REG_SERVICE},
		{"event-type", EXCHANGE_REG_EVENT_TYPE},
	};
	cli o = {0};
	db_conn *c = NULL;
	size_t i;

	if (argc < 3)
		return -1;
	for (i = 0; i < sizeof simple / sizeof simple[0]; i++)
		if (strcmp(argv[1], simple[i].name) == 0)
			break;
	if (i == sizeof simple / sizeof simple[0] && strcmp(argv[1], "access") != 0 && strcmp(argv[1], "cert") != 0 &&
	    strcmp(argv[1], "trust") != 0)
		return -1;
	if (cli_parse(argc, argv, 3, &o))
		return 2;
	if (db_thread_conn(d, &c)) {
		fprintf(stderr, "egov: cannot connect to the database\n");
		return 2;
	}
	if (i < sizeof simple / sizeof simple[0])
		return cmd_simple(c, simple[i].kind, argv[2], &o);
	if (strcmp(argv[1], "access") == 0)
		return cmd_access(c, argv[2], &o);
	if (strcmp(argv[1], "trust") == 0)
		return cmd_trust(c, argv[2], &o);
	return cmd_cert(c, argv[2], &o);
}

