/*
 * oidc.h: the OpenID Connect provider of the trust layer.
 *
 * Departments' applications register as clients (admin API) and sign
 * residents and civil servants in with the authorization-code flow and
 * PKCE. Tokens are ES256 JWTs signed with keys that rotate with overlap;
 * refresh tokens are opaque, rotate on each use and revoke their family on
 * reuse. Access tokens also authenticate calls to the egov API: this
 * module is the router's authenticator of AUTH_BEARER.
 *
 * Other modules need only the descriptor; everything else is private to
 * src/oidc/ (see oidc_int.h).
 */
#ifndef EGOV_OIDC_OIDC_H
#define EGOV_OIDC_OIDC_H

struct egov_module;
extern const struct egov_module oidc_module;

#endif
