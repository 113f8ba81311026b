/*
 * identity_roles.c: the department tree, role grants and the permissions
 * roles carry. Roles and their permissions are a const table here, so a
 * permission is a code review away from appearing, never a row in a table.
 *
 * Invariants: departments form a tree (a parent must exist before its
 * children, and a code never changes, so no cycle can be made); a grant
 * names an existing account, role and department.
 */
#include <stdio.h>
#include <string.h>

#include "identity/identity_int.h"
#include "core/banned.h"

typedef struct role_def {
	const char *name;
	const char *const *perms;
} role_def;

static const char *const perms_admin[] = {"*", NULL};
static const char *const perms_identity_admin[] = {"identity.admin", NULL};
static const char *const perms_auditor[] = {"audit.read", NULL};
static const char *const perms_notice_editor[] = {"info.notice.write", NULL};
static const char *const perms_client_admin[] = {"oidc.client.write", NULL};
static const char *const perms_staff[] = {"staff.console", NULL};
static const char *const perms_exchange_admin[] = {"exchange.admin", NULL};

static const role_def roles[] = {
	{"admin", perms_admin},
	{"identity_admin", perms_identity_admin},
	{"auditor", perms_auditor},
	{"notice_editor", perms_notice_editor},
	{"client_admin", perms_client_admin},
	{"staff", perms_staff},
	{"exchange_admin", perms_exchange_admin},
};

const char *const *identity_role_perms(const char *role)
{
	size_t i;

	for (i = 0; role && i < sizeof roles / sizeof roles[0]; i++)
		if (strcmp(roles[i].name, role) == 0)
			return roles[i].perms;
	return NULL;
}

int identity_role_valid(const char *role)
{
	return identity_role_perms(role) != NULL;
}

static int role_has(const char *role, const char *perm, bool allow_star)
{
	const char *const *p = identity_role_perms(role);

	for (; p && *p; p++)
		if ((allow_star && strcmp(*p, "*") == 0) || strcmp(*p, perm) == 0)
			return 1;
	return 0;
}

/* ---- departments ------------------------------------------------------------ */

static int code_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > IDENTITY_CODE_MAX)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-'))
			return 0;
	return 1;
}

egov_err identity_dept_get(db_conn *c, const char *code, identity_dept *out)
{
	db_rows *rows = NULL;
	db_param p[1] = {DBP_S(code)};
	bool has = false;
	egov_err err;

	if (!code_valid(code))
		return EGOV_ENOTFOUND;
	if ((err = db_query(c, "SELECT code, name, parent FROM identity_dept WHERE code = ?", p, 1, &rows)) ||
	    (err = db_rows_next(rows, &has)))
		goto out;
	if (!has) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	identity_copy(out->code, sizeof out->code, db_rows_text(rows, 0));
	identity_copy(out->name, sizeof out->name, db_rows_text(rows, 1));
	identity_copy(out->parent, sizeof out->parent, db_rows_text(rows, 2));
out:
	db_rows_free(rows);
	return err;
}

egov_err identity_dept_create(db_conn *c, const char *code, const char *name, const char *parent)
{
	identity_dept pd;
	char now[32];
	size_t nlen = name ? identity_utf8_len(name) : 0;
	egov_err err;

	if (!code_valid(code) || nlen < 1 || nlen > IDENTITY_NAME_MAX)
		return EGOV_EINVAL;
	if (parent && !*parent)
		parent = NULL;
	if (parent && (err = identity_dept_get(c, parent, &pd)))
		return err;
	identity_now_rfc3339(now);
	{
		db_param p[] = {DBP_S(code), DBP_S(name), parent ? DBP_S(parent) : DBP_NULLV, DBP_S(now)};
		err = db_exec(c, "INSERT INTO identity_dept (code, name, parent, created_at) VALUES (?, ?, ?, ?)", p, 4,
			      NULL);
	}
	return err;
}

egov_err identity_dept_list(db_conn *c, int (*fn)(void *ctx, const identity_dept *d), void *ctx)
{
	db_rows *rows = NULL;
	identity_dept d;
	bool has = false;
	egov_err err;

	if ((err = db_query(c, "SELECT code, name, parent FROM identity_dept ORDER BY code", NULL, 0, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		identity_copy(d.code, sizeof d.code, db_rows_text(rows, 0));
		identity_copy(d.name, sizeof d.name, db_rows_text(rows, 1));
		identity_copy(d.parent, sizeof d.parent, db_rows_text(rows, 2));
		if (fn(ctx, &d))
			break;
	}
out:
	db_rows_free(rows);
	return err;
}

/* ---- grants ---------------------------------------------------------------- */

egov_err identity_role_grant(db_conn *c, const char *account_id, const char *role, const char *dept)
{
	identity_account a;
	identity_dept d;
	char now[32];
	egov_err err;

	if (!identity_role_valid(role))
		return EGOV_EINVAL;
	if ((err = identity_account_get(c, account_id, &a)) || (err = identity_dept_get(c, dept, &d)))
		return err;
	identity_now_rfc3339(now);
	{
		db_param p[] = {DBP_S(account_id), DBP_S(role), DBP_S(dept), DBP_S(now)};
		err = db_exec(c, "INSERT INTO identity_grant (account_id, role, dept, created_at) VALUES (?, ?, ?, ?)",
			      p, 4, NULL);
	}
	return err;
}

egov_err identity_role_revoke(db_conn *c, const char *account_id, const char *role, const char *dept)
{
	db_param p[] = {DBP_S(account_id), DBP_S(role), DBP_S(dept)};
	int64_t n = 0;
	egov_err err;

	if ((err = db_exec(c, "DELETE FROM identity_grant WHERE account_id = ? AND role = ? AND dept = ?", p, 3, &n)))
		return err;
	return n ? EGOV_OK : EGOV_ENOTFOUND;
}

egov_err identity_role_list(db_conn *c, const char *account_id, int (*fn)(void *ctx, const identity_grant *g),
			    void *ctx)
{
	db_rows *rows = NULL;
	db_param p[] = {DBP_S(account_id)};
	identity_grant g;
	bool has = false;
	egov_err err;

	if ((err = db_query(c, "SELECT role, dept FROM identity_grant WHERE account_id = ? ORDER BY dept, role", p, 1,
			    &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		identity_copy(g.role, sizeof g.role, db_rows_text(rows, 0));
		identity_copy(g.dept, sizeof g.dept, db_rows_text(rows, 1));
		if (fn(ctx, &g))
			break;
	}
out:
	db_rows_free(rows);
	return err;
}

/* Whether anc is dept or one of its ancestors. The tree is shallow
 * (bureau > department > division), so walking up row by row is cheap;
 * the depth cap guards against a cycle made by hand in the database. */
static egov_err dept_within(db_conn *c, const char *dept, const char *anc, bool *yes)
{
	identity_dept d;
	char cur[IDENTITY_CODE_MAX + 1];
	int depth;
	egov_err err = EGOV_OK;

	*yes = false;
	identity_copy(cur, sizeof cur, dept);
	for (depth = 0; depth < 16 && cur[0]; depth++) {
		if (strcmp(cur, anc) == 0) {
			*yes = true;
			break;
		}
		if ((err = identity_dept_get(c, cur, &d))) {
			if (err == EGOV_ENOTFOUND)
				err = EGOV_OK;
			break;
		}
		identity_copy(cur, sizeof cur, d.parent);
	}
	return err;
}

egov_err identity_permission_has(db_conn *c, const char *account_id, const char *perm, const char *dept,
				 bool *allowed)
{
	db_rows *rows = NULL;
	identity_grant g[64];
	bool root[64], has = false;
	int n = 0, i;
	identity_account a;
	egov_err err;

	*allowed = false;
	if ((err = identity_account_get(c, account_id, &a)))
		return err == EGOV_ENOTFOUND ? EGOV_OK : err;
	if (a.disabled)
		return EGOV_OK;
	{
		db_param p[] = {DBP_S(account_id)};
		if ((err = db_query(c,
				    "SELECT g.role, g.dept, d.parent IS NULL FROM identity_grant g"
				    " JOIN identity_dept d ON d.code = g.dept WHERE g.account_id = ? ORDER BY g.dept",
				    p, 1, &rows)))
			goto out;
	}
	while (n < 64 && !(err = db_rows_next(rows, &has)) && has) {
		const char *t = db_rows_text(rows, 2);
		identity_copy(g[n].role, sizeof g[n].role, db_rows_text(rows, 0));
		identity_copy(g[n].dept, sizeof g[n].dept, db_rows_text(rows, 1));
		root[n] = t && (t[0] == '1' || t[0] == 't');
		n++;
	}
	db_rows_free(rows);
	rows = NULL;
	if (err)
		goto out;
	for (i = 0; i < n && !*allowed; i++) {
		if (!dept) {
			*allowed = role_has(g[i].role, perm, root[i]);
		} else if (role_has(g[i].role, perm, true)) {
			bool within = false;
			if ((err = dept_within(c, dept, g[i].dept, &within)))
				goto out;
			*allowed = within;
		}
	}
out:
	db_rows_free(rows);
	return err;
}
