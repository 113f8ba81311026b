/*
 * signed.c: a signed message checked against the global configuration:
 * its signer must be a sign certificate of the subsystem that claims it
 * there, and the signature over the canonical text must verify with that
 * certificate. Used for requests arriving at a gateway (the inbound
 * verifier, gateway/verify.c) and for the signed answers a gateway gets
 * back (a service call's response, a push's answer), so both directions
 * apply one rule.
 */
#include <string.h>

#include "exchange/conf/conf.h"
#include "exchange/keys/keys.h"
#include "core/banned.h"

egov_err exchange_conf_verify_signed(const exchange_conf *cf, const char *subsystem, const char *cert_sha256,
				     const buf *text, const char *sig, const exchange_cert **signer,
				     const char **why)
{
	const exchange_cert *c = exchange_conf_cert(cf, subsystem, "sign", cert_sha256);

	if (signer)
		*signer = c;
	if (!c) {
		*why = "signer certificate not in the configuration";
		return EGOV_EAUTH;
	}
	if (exchange_verify(c->pem, text->data ? text->data : "", text->len, sig)) {
		*why = "signature does not verify";
		return EGOV_EAUTH;
	}
	*why = NULL;
	return EGOV_OK;
}

egov_err exchange_conf_verify_answer(const exchange_conf *cf, const char *subsystem, const char *service,
				     const char *message_id, const char *request_sig, const exchange_answer *a,
				     const exchange_cert **signer, const char **why)
{
	exchange_canon_resp c = {0};
	buf text;
	egov_err err;

	if (signer)
		*signer = NULL;
	if (!a->message_id || strcmp(a->message_id, message_id) != 0 || !a->signed_at || !a->signer_cert ||
	    !a->sig || strlen(a->sig) >= EXCHANGE_SIG_MAX || strlen(a->signed_at) >= EXCHANGE_SIGNED_AT_MAX ||
	    strlen(a->signer_cert) >= 65) {
		*why = "response not signed";
		return EGOV_EAUTH;
	}
	if (!exchange_conf_cert(cf, subsystem, "sign", a->signer_cert)) {
		*why = "signer certificate not in the configuration";
		return EGOV_EAUTH;
	}
	c.message_id = message_id;
	c.service = service;
	c.status = a->status;
	c.content_type = a->content_type;
	c.request_sig = request_sig;
	c.signed_at = a->signed_at;
	c.body_sha256 = a->body_sha256;
	buf_init(&text, 64 * 1024);
	err = exchange_canon_response(&c, &text);
	if (!err)
		err = exchange_conf_verify_signed(cf, subsystem, a->signer_cert, &text, a->sig, signer, why);
	else
		err = EGOV_EAUTH;
	buf_release(&text);
	if (err)
		*why = "response signature does not verify";
	return err;
}
