/*
 * auth.c: who is calling. The route contract's .auth and .perm, checked by
 * the router before a handler runs, through authenticators that modules
 * install (sessions and CSRF, access tokens) and the kernel's own checks
 * (the operator token, the peer listener's certificates); the principal a
 * handler reads with req_principal().
 *
 * Invariants:
 * - The kernel knows no module: it knows kinds of credential, and asks
 *   whoever installed the authenticator for a kind. Authenticators and
 *   the permission check are installed by start hooks, before the server
 *   starts, and only read afterwards.
 * - A handler of a route with .auth or .perm runs only once the caller is
 *   known (and, with .perm, holds it); a refusal is answered here, before
 *   the handler, so no handler checks credentials itself.
 * - The principal lives in the request's arena, from authentication to the
 *   end of the request; a public route's is the static anonymous one.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/app.h"
#include "core/crypto.h"
#include "core/http_int.h"
#include "core/banned.h"

static http_authenticator session_auth, bearer_auth;
static http_permission_check permission_check;

static const principal anonymous = {.kind = PRINCIPAL_ANONYMOUS, .scope = "", .actor = "anonymous"};

const principal *req_principal(const req *r)
{
	return r->principal ? r->principal : &anonymous;
}

void http_set_authenticator(unsigned kind, http_authenticator fn)
{
	if (kind == AUTH_SESSION)
		session_auth = fn;
	else if (kind == AUTH_BEARER)
		bearer_auth = fn;
}

void http_set_permission_check(http_permission_check fn)
{
	permission_check = fn;
}

bool req_is_operator(const req *r)
{
	const char *token = app()->config ? app()->config->admin_token : NULL;
	const char *h = req_header(r, "Authorization");

	if (!token || !*token || !h || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	return crypto_streq(h + 7, token);
}

bool route_is_peer(const route *rt)
{
	return rt->peer || (rt->auth & AUTH_PEER);
}

unsigned route_auth_of(const route *rt, http_method m)
{
	if (rt->auth || !rt->perm)
		return rt->auth;
	/* A permission route written before .auth: what the permission
	 * authoriser accepted, CSRF for the methods that change state. */
	return AUTH_API | (m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS ? 0u : AUTH_CSRF);
}

static void set_actor(principal *p)
{
	switch (p->kind) {
	case PRINCIPAL_SESSION:
	case PRINCIPAL_BEARER:
		snprintf(p->actor, sizeof p->actor, "account:%s", p->account_id);
		break;
	case PRINCIPAL_OPERATOR:
		snprintf(p->actor, sizeof p->actor, "operator");
		break;
	case PRINCIPAL_PEER:
		snprintf(p->actor, sizeof p->actor, "peer");
		break;
	default:
		snprintf(p->actor, sizeof p->actor, "anonymous");
		break;
	}
	if (!p->scope)
		p->scope = "";
}

/* Finds the caller among the credentials auth names. EGOV_ENOTFOUND: none
 * was presented (or, AUTH_OPTIONAL, none checked out). */
static egov_err find_caller(req *r, unsigned auth, const char *perm, const char *scope, principal *p,
			    const char **code)
{
	const char *h = req_header(r, "Authorization");
	egov_err err = EGOV_ENOTFOUND;

	memset(p, 0, sizeof *p);
	*code = NULL;
	if (r->peer && route_is_peer(r->match.route)) {
		/* The handshake and setup() checked the certificate. */
		p->kind = PRINCIPAL_PEER;
		return EGOV_OK;
	}
	if (h && (auth & (AUTH_BEARER | AUTH_OPERATOR))) {
		if ((auth & AUTH_OPERATOR) && req_is_operator(r)) {
			p->kind = PRINCIPAL_OPERATOR;
			return EGOV_OK;
		}
		/* A header that is not ours, or a token nobody checks: refused
		 * rather than passed over, as the cookie is not looked at. */
		err = EGOV_EAUTH;
		if ((auth & AUTH_BEARER) && bearer_auth)
			err = bearer_auth(r, auth, perm, scope, p, code);
		if (err == EGOV_ENOTFOUND)
			err = EGOV_EAUTH;
	} else if ((auth & AUTH_SESSION) && session_auth) {
		err = session_auth(r, auth, perm, scope, p, code);
	} else if ((auth & AUTH_BEARER) && bearer_auth && !(auth & (AUTH_SESSION | AUTH_OPERATOR))) {
		/* A bearer-only route (an OAuth resource) answers a missing token
		 * its own way. */
		err = bearer_auth(r, auth, perm, scope, p, code);
	}
	if ((auth & AUTH_OPTIONAL) && err != EGOV_OK) {
		memset(p, 0, sizeof *p);
		*code = NULL;
		return EGOV_ENOTFOUND;
	}
	return err;
}

egov_err req_authenticate(req *r, unsigned auth, const principal **out, const char **code)
{
	principal *p = arena_alloc(&r->arena, sizeof *p);
	const char *c = NULL;
	egov_err err;

	*out = &anonymous;
	if (code)
		*code = NULL;
	if (!p)
		return EGOV_ENOMEM;
	err = find_caller(r, auth & ~AUTH_OPTIONAL, NULL, NULL, p, &c);
	if (err == EGOV_ENOTFOUND)
		err = EGOV_EAUTH;
	if (err) {
		if (code)
			*code = c;
		return err;
	}
	set_actor(p);
	r->principal = p;
	*out = p;
	return EGOV_OK;
}

/* Answers a refusal: the authenticator's own answer, else a problem
 * document (the authenticator's code, except on permission routes). */
static void refuse(req *r, egov_err err, const char *code)
{
	if (r->resp)
		return;
	if (code && !r->match.route->perm && (err == EGOV_EAUTH || err == EGOV_EPERM))
		resp_problem(r, egov_err_http_status(err), code, NULL, NULL);
	else
		resp_problem(r, egov_err_http_status(err), egov_err_problem_code(err), NULL, NULL);
}

bool http_authorize(req *r)
{
	const route *rt = r->match.route;
	unsigned auth = route_auth_of(rt, r->method);
	const char *code = NULL;
	principal *p;
	bool allowed = false;
	egov_err err;

	if (!auth && !route_is_peer(rt))
		return true;
	if (!(p = arena_alloc(&r->arena, sizeof *p))) {
		refuse(r, EGOV_ENOMEM, NULL);
		return false;
	}
	err = find_caller(r, auth, rt->perm, rt->scope, p, &code);
	if (err == EGOV_ENOTFOUND && (auth & AUTH_OPTIONAL))
		return true; /* anonymous */
	if (err == EGOV_ENOTFOUND)
		err = EGOV_EAUTH;
	if (err) {
		refuse(r, err, code);
		return false;
	}
	set_actor(p);
	r->principal = p;
	if (!rt->perm || p->kind == PRINCIPAL_OPERATOR)
		return true;
	if (p->kind != PRINCIPAL_PEER && permission_check && (err = permission_check(r, p, rt->perm, &allowed))) {
		refuse(r, err, NULL);
		return false;
	}
	if (!allowed) {
		refuse(r, EGOV_EPERM, NULL);
		return false;
	}
	return true;
}
