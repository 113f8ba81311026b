/*
 * verify.c: the one verifier of a signed message arriving at this gateway
 * from another gateway: a service call on the provider side, a push on the
 * subscriber side. One set of checks, one replay rule, one set of problem
 * codes:
 *
 *   400 exchange.client_invalid     X-Road-Client is not a subsystem id
 *   401 exchange.signature_invalid  no TLS client certificate, or not a
 *                                   tls certificate of the client in the
 *                                   configuration; signature headers
 *                                   missing or malformed; the signer not a
 *                                   sign certificate of the client; the
 *                                   signature does not verify; the signing
 *                                   time outside exchange.clock_skew_s
 *   409 exchange.replay             the message id seen from that client
 *                                   while its signing time is in the window
 *   503 unavailable                 the replay window is full
 *
 * The 401s and the 409 are audited by the caller (the verdict says so),
 * which also decides how to answer: the provider signs its refusals once
 * the service is known to be served here; a push is refused unsigned.
 */
#include <string.h>

#include "core/crypto.h"
#include "core/timeutil.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

static egov_err refuse(inbound_why *why, int status, const char *code, const char *reason, bool audit)
{
	why->status = status;
	why->code = code;
	why->reason = reason;
	why->audit = audit;
	return status == 503 ? EGOV_EUNAVAILABLE : EGOV_EAUTH;
}

static egov_err unsigned_(inbound_why *why, const char *reason)
{
	return refuse(why, 401, "exchange.signature_invalid", reason, true);
}

static int64_t skew_us(void)
{
	return (int64_t)gateway_room_get()->xc->clock_skew_s * 1000000;
}

egov_err inbound_verify(req *r, const exchange_conf *cf, const inbound_msg *m, int64_t now, inbound *in,
			inbound_why *why)
{
	const char *mid = req_header(r, "X-Road-Id"), *at = req_header(r, "X-Egov-Signed-At"),
		   *cert = req_header(r, "X-Egov-Signer-Cert"), *sig = req_header(r, "X-Egov-Signature");
	const void *der;
	char tls_sha[65];
	size_t der_len = 0;
	const char *reason = NULL;
	exchange_canon_req c = {0};
	buf text;
	egov_err err;

	memset(in, 0, sizeof *in);
	*why = (inbound_why){0};
	if (mid && exchange_msgid_valid(mid))
		memcpy(in->message_id, mid, strlen(mid) + 1);
	if (!m->client || !exchange_id_valid(m->client, EXCHANGE_ID_SUBSYSTEM))
		return refuse(why, 400, "exchange.client_invalid", NULL, false);
	/* The TLS peer must be a gateway registered for the client. */
	if (!(der = req_client_cert(r, &der_len)))
		return unsigned_(why, "no TLS client certificate");
	crypto_sha256_hex(der, der_len, tls_sha);
	if (!exchange_conf_cert(cf, m->client, "tls", tls_sha))
		return unsigned_(why, "TLS certificate not in the configuration for the client");
	if (!exchange_sig_headers_valid(mid, at, cert, sig))
		return unsigned_(why, "signature headers missing or malformed");
	memcpy(in->signed_at, at, strlen(at) + 1);
	memcpy(in->signer_cert, cert, strlen(cert) + 1);
	memcpy(in->sig, sig, strlen(sig) + 1);
	c = (exchange_canon_req){in->message_id, m->client,  m->service, m->method,    m->path,      m->content_type,
				 m->rp,		 m->ds,	     m->purpose, in->signed_at, m->body_sha256};
	buf_init(&text, 64 * 1024);
	err = exchange_canon_request(&c, &text);
	if (!err)
		err = exchange_conf_verify_signed(cf, m->client, in->signer_cert, &text, in->sig, &in->signer, &reason);
	buf_release(&text);
	if (err)
		return unsigned_(why, reason ? reason : "signature does not verify");
	if (time_parse_rfc3339(in->signed_at, &in->signed_us) || in->signed_us < now - skew_us() ||
	    in->signed_us > now + skew_us())
		return unsigned_(why, "signed-at outside the allowed clock skew");
	return EGOV_OK;
}

egov_err inbound_accept(const char *client, const inbound *in, int64_t now, inbound_why *why)
{
	/* Remembered until the signing time leaves the window: after that the
	 * time check above refuses the message anyway. */
	switch (exchange_replay_seen(client, in->message_id, now, in->signed_us + skew_us())) {
	case 0:
		return EGOV_OK;
	case 1:
		return refuse(why, 409, "exchange.replay", "message id seen in the replay window", true);
	default:
		return refuse(why, 503, "unavailable", "replay window full", false);
	}
}
