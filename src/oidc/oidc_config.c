/*
 * oidc_config.c: the OIDC module's [oidc] configuration section. Its rule
 * across keys: an empty oidc.issuer is pki.public_url, read through pki.h
 * (the PKI module comes before this one, so its value is finished).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oidc/oidc_int.h"
#include "pki/pki.h"
#include "core/banned.h"

#define OFF(field) offsetof(oidc_config, field)

static const config_key keys[] = {
	{
		.name = "issuer", .type = CONFIG_STRING, .offset = OFF(issuer),
		.str_default = "", .check = config_check_http_url,
		.expect = "\"\" or an http:// or https:// URL without a trailing slash",
		.desc = "Empty means pki.public_url. Issuer identifier of the OpenID Connect provider: the "
			"\"iss\" of every token and the base of the discovery "
			"document's endpoint URLs. Departments' applications "
			"compare it exactly, so set it to the public URL.",
	},
	{
		.name = "key_rotation_days", .type = CONFIG_INT,
		.offset = OFF(key_rotation_days), .int_default = 30, .min = 1, .max = 3650,
		.desc = "Days an ES256 signing key stays the active one before a new "
			"key takes over. The previous key stays in the JWKS until the "
			"tokens it signed have expired.",
	},
	{
		.name = "access_token_ttl", .type = CONFIG_INT,
		.offset = OFF(access_token_ttl_s), .int_default = 300, .min = 60, .max = 600,
		.desc = "Seconds an access token or ID token is valid (5 to 10 "
			"minutes is the usual range; refresh tokens renew them).",
	},
};

static egov_err finish(void *values, const egov_config *cfg, char *errmsg, size_t errlen)
{
	oidc_config *oc = values;
	char *copy;

	if (oc->issuer[0])
		return EGOV_OK;
	if (!(copy = strdup(pki_public_url(cfg)))) {
		snprintf(errmsg, errlen, "oidc.issuer: cannot derive from pki.public_url (%s)",
			 egov_err_name(EGOV_ENOMEM));
		return EGOV_ENOMEM;
	}
	free(oc->issuer);
	oc->issuer = copy;
	return EGOV_OK;
}

const config_section oidc_config_section = {
	.name = "oidc",
	.desc = "The OpenID Connect provider: its issuer and its signing keys' and tokens' lifetimes.",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(oidc_config),
	.finish = finish,
};
