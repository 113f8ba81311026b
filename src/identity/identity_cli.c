/*
 * identity_cli.c: the operator's commands and the module's demo data.
 *
 *   egov user add --email E --name N --kind resident|staff|system [--locale L] [--password-stdin]
 *   egov user list
 *   egov user disable --email E
 *   egov dept add --code C --name N [--parent P]
 *   egov dept list
 *   egov role grant|revoke --email E --role R --dept C
 *
 * An operator vouches for the addresses they add, so accounts made here
 * start verified. Every change is audited with actor "operator:cli", in
 * the transaction that makes it: both are there, or neither.
 * Exit status: 0 done, 1 refused (bad input, conflict, not found), 2 error.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "audit/audit.h"
#include "core/app.h"
#include "identity/identity_int.h"
#include "core/banned.h"

typedef struct cli_opts {
	const char *email, *name, *kind, *locale, *code, *parent, *role, *dept;
	int password_stdin;
} cli_opts;

static int parse(int argc, char **argv, int first, cli_opts *o)
{
	int i;

	for (i = first; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		if (strcmp(a, "--password-stdin") == 0) {
			o->password_stdin = 1;
			continue;
		}
		if (strcmp(a, "--email") == 0)
			dst = &o->email;
		else if (strcmp(a, "--name") == 0)
			dst = &o->name;
		else if (strcmp(a, "--kind") == 0)
			dst = &o->kind;
		else if (strcmp(a, "--locale") == 0)
			dst = &o->locale;
		else if (strcmp(a, "--code") == 0)
			dst = &o->code;
		else if (strcmp(a, "--parent") == 0)
			dst = &o->parent;
		else if (strcmp(a, "--role") == 0)
			dst = &o->role;
		else if (strcmp(a, "--dept") == 0)
			dst = &o->dept;
		if (!dst || i + 1 >= argc) {
			fprintf(stderr, "egov: %s: %s\n", a, dst ? "needs a value" : "unknown option");
			return -1;
		}
		*dst = argv[++i];
	}
	return 0;
}

static int need(const char *v, const char *flag)
{
	if (v)
		return 0;
	fprintf(stderr, "egov: %s is required\n", flag);
	return -1;
}

static int exit_for(egov_err err)
{
	return err == EGOV_EINVAL || err == EGOV_ECONFLICT || err == EGOV_ENOTFOUND ? 1 : 2;
}

/* The command's audit record, inside the transaction that makes its
 * change (so a change is never made without one). */
static egov_err audit_cli(db_conn *c, const char *action, const char *object)
{
	if (!audit_available())
		return EGOV_OK;
	return audit_append_tx(c, "operator:cli", action, object, NULL, NULL);
}

static int print_account(void *ctx, const identity_account *a)
{
	(void)ctx;
	printf("%s\t%s\t%s\t%s%s%s\t%s\n", a->id, identity_kind_name(a->kind), a->email,
	       a->disabled ? "disabled" : a->locked ? "locked" : "active", a->email_verified ? "" : ",unverified",
	       a->totp_enabled ? ",totp" : "", a->display_name);
	return 0;
}

static int print_dept(void *ctx, const identity_dept *d)
{
	(void)ctx;
	printf("%s\t%s\t%s\n", d->code, d->parent[0] ? d->parent : "-", d->name);
	return 0;
}

static int user_add(db_conn *c, const cli_opts *o)
{
	identity_account_new nw = {0};
	identity_account a;
	char pw[IDENTITY_PASSWORD_BYTES_MAX + 2] = "", object[48], hash[128] = "";
	const char *code = NULL;
	int64_t retry = 0;
	int rc = 1;
	egov_err err;

	if (need(o->email, "--email") || need(o->name, "--name") || need(o->kind, "--kind"))
		return 2;
	if (identity_kind_parse(o->kind, &nw.kind)) {
		fprintf(stderr, "egov: --kind: resident, staff or system\n");
		return 2;
	}
	if (o->password_stdin) {
		size_t n;
		if (!fgets(pw, sizeof pw, stdin)) {
			fprintf(stderr, "egov: --password-stdin: nothing on standard input\n");
			return 2;
		}
		n = strlen(pw);
		while (n > 0 && (pw[n - 1] == '\n' || pw[n - 1] == '\r'))
			pw[--n] = '\0';
		nw.password = pw;
	}
	nw.email = o->email;
	nw.display_name = o->name;
	nw.locale = o->locale;
	nw.email_verified = true;
	/* Hashed before the transaction, which then holds the write lock
	 * only for the rows. */
	if (!(err = identity_account_check(&nw, &code)) && nw.password &&
	    !(err = identity_password_hash(nw.password, hash, &retry))) {
		nw.password = NULL;
		nw.password_hash = hash;
	} else if (err == EGOV_EBUSY) {
		code = "identity.busy";
	}
	sodium_memzero(pw, sizeof pw);
	if (!err && !(err = db_begin(c))) {
		if (!(err = identity_account_create(c, &nw, &a, &code, &retry))) {
			snprintf(object, sizeof object, "account:%s", a.id);
			err = audit_cli(c, "identity.user_add", object);
		}
		err = db_end(c, err);
	}
	sodium_memzero(hash, sizeof hash);
	if (err) {
		fprintf(stderr, "egov: user add: %s\n", code ? code : egov_err_name(err));
		rc = exit_for(err);
		goto out;
	}
	printf("%s\n", a.id);
	rc = 0;
out:
	return rc;
}

static int user_cmd(db_conn *c, int argc, char **argv)
{
	cli_opts o = {0};
	identity_account a;
	char object[48];
	egov_err err;

	if (argc < 2 || parse(argc, argv, 2, &o))
		goto usage;
	if (strcmp(argv[1], "add") == 0)
		return user_add(c, &o);
	if (strcmp(argv[1], "list") == 0) {
		err = identity_account_list(c, print_account, NULL);
		return err ? 2 : 0;
	}
	if (strcmp(argv[1], "disable") == 0) {
		if (need(o.email, "--email"))
			return 2;
		if ((err = db_begin(c)))
			return exit_for(err);
		if (!(err = identity_account_get_by_email(c, o.email, &a)) && !(err = identity_account_disable(c, a.id))) {
			snprintf(object, sizeof object, "account:%s", a.id);
			err = audit_cli(c, "identity.user_disable", object);
		}
		if ((err = db_end(c, err))) {
			fprintf(stderr, "egov: user disable: %s\n", egov_err_name(err));
			return exit_for(err);
		}
		return 0;
	}
usage:
	fprintf(stderr, "usage: egov user add --email E --name N --kind resident|staff|system [--password-stdin]\n"
			"       egov user list | egov user disable --email E\n");
	return 2;
}

static int dept_cmd(db_conn *c, int argc, char **argv)
{
	cli_opts o = {0};
	char object[64];
	egov_err err;

	if (argc < 2 || parse(argc, argv, 2, &o))
		goto usage;
	if (strcmp(argv[1], "list") == 0)
		return identity_dept_list(c, print_dept, NULL) ? 2 : 0;
	if (strcmp(argv[1], "add") == 0) {
		if (need(o.code, "--code") || need(o.name, "--name"))
			return 2;
		if ((err = db_begin(c)))
			return exit_for(err);
		if (!(err = identity_dept_create(c, o.code, o.name, o.parent))) {
			snprintf(object, sizeof object, "dept:%s", o.code);
			err = audit_cli(c, "identity.dept_add", object);
		}
		if ((err = db_end(c, err))) {
			fprintf(stderr, "egov: dept add: %s\n",
				err == EGOV_ENOTFOUND ? "no such parent department" : egov_err_name(err));
			return exit_for(err);
		}
		return 0;
	}
usage:
	fprintf(stderr, "usage: egov dept add --code C --name N [--parent P] | egov dept list\n");
	return 2;
}

static int role_cmd(db_conn *c, int argc, char **argv)
{
	cli_opts o = {0};
	identity_account a;
	char object[48];
	int grant;
	egov_err err;

	if (argc < 2 || parse(argc, argv, 2, &o))
		goto usage;
	grant = strcmp(argv[1], "grant") == 0;
	if (!grant && strcmp(argv[1], "revoke") != 0)
		goto usage;
	if (need(o.email, "--email") || need(o.role, "--role") || need(o.dept, "--dept"))
		return 2;
	if ((err = identity_account_get_by_email(c, o.email, &a))) {
		fprintf(stderr, "egov: role %s: no account %s\n", argv[1], o.email);
		return exit_for(err);
	}
	if ((err = db_begin(c)))
		return exit_for(err);
	err = grant ? identity_role_grant(c, a.id, o.role, o.dept) : identity_role_revoke(c, a.id, o.role, o.dept);
	if (!err) {
		snprintf(object, sizeof object, "account:%s", a.id);
		err = audit_cli(c, grant ? "identity.role_grant" : "identity.role_revoke", object);
	}
	if ((err = db_end(c, err))) {
		fprintf(stderr, "egov: role %s: %s\n", argv[1],
			err == EGOV_EINVAL ? "unknown role" : err == EGOV_ECONFLICT ? "already granted" : egov_err_name(err));
		return exit_for(err);
	}
	return 0;
usage:
	fprintf(stderr, "usage: egov role grant|revoke --email E --role R --dept C\n");
	return 2;
}

int identity_cli_run(int argc, char **argv, db *d)
{
	db_conn *c = NULL;
	int rc;

	if (db_conn_open(d, &c)) {
		fprintf(stderr, "egov: cannot connect to the database\n");
		return 2;
	}
	if (strcmp(argv[0], "user") == 0)
		rc = user_cmd(c, argc, argv);
	else if (strcmp(argv[0], "dept") == 0)
		rc = dept_cmd(c, argc, argv);
	else
		rc = role_cmd(c, argc, argv);
	db_conn_close(c);
	return rc;
}

/* ---- demo data ------------------------------------------------------------------- */

static const struct {
	const char *code, *name, *parent;
} demo_depts[] = {
	{"GOV", "澳門特別行政區政府 Governo da RAEM Government of the Macao SAR", NULL},
	{"SAFP", "行政公職局 Direcção dos Serviços de Administração e Função Pública", "GOV"},
	{"SAFP-DI", "資訊廳 Departamento de Informática", "SAFP"},
	{"IAM", "市政署 Instituto para os Assuntos Municipais", "GOV"},
	{"IAM-FS", "食品安全廳 Departamento de Segurança Alimentar", "IAM"},
};

/* Demo accounts, for a newcomer's `make run` only (the passwords are
 * public here): an administrator, a civil servant who edits notices, and a
 * resident. */
static const struct {
	const char *email, *name, *password, *role, *dept;
	identity_kind kind;
} demo_users[] = {
	{"admin@demo.egov.mo", "Demo Administrator", "demo-admin-2026", "admin", "GOV", IDENTITY_STAFF},
	{"editor@demo.egov.mo", "陳小明 Chan Siu Ming", "demo-editor-2026", "notice_editor", "IAM-FS", IDENTITY_STAFF},
	{"resident@demo.egov.mo", "Maria da Silva", "demo-resident-2026", NULL, NULL, IDENTITY_RESIDENT},
};

egov_err identity_demo(db_conn *c)
{
	identity_account a;
	identity_dept d;
	size_t i;
	egov_err err = EGOV_OK;

	for (i = 0; !err && i < sizeof demo_depts / sizeof demo_depts[0]; i++) {
		if (identity_dept_get(c, demo_depts[i].code, &d) == EGOV_OK)
			continue;
		err = identity_dept_create(c, demo_depts[i].code, demo_depts[i].name, demo_depts[i].parent);
	}
	for (i = 0; !err && i < sizeof demo_users / sizeof demo_users[0]; i++) {
		identity_account_new nw = {.kind = demo_users[i].kind,
					   .email = demo_users[i].email,
					   .display_name = demo_users[i].name,
					   .password = demo_users[i].password,
					   .email_verified = true};
		const char *code = NULL;
		int64_t retry = 0;
		if (identity_account_get_by_email(c, demo_users[i].email, &a) == EGOV_OK)
			continue;
		if ((err = identity_account_create(c, &nw, &a, &code, &retry)))
			break;
		if (demo_users[i].role)
			err = identity_role_grant(c, a.id, demo_users[i].role, demo_users[i].dept);
	}
	return err;
}
