/*
 * pki_module.c: the PKI module's contract with the kernel beyond its
 * routes: its [pki] configuration section and its hooks (init makes the CA,
 * start loads it, anchors the audit chain and hands the kernel the
 * platform's CA bundles, verify checks the audit checkpoints). The
 * descriptor, beside the routes and the schema, is in pki_http.c.
 *
 * Invariants: the kernel reads no PKI file itself; the TLS trust bundles
 * it needs come from trust_bundle() once the start hook installed it. The
 * messages about those files keep the configuration key they stand in for
 * ("server.tls_client_ca (default: DATA/pki/issuing.crt): ...").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/app.h"
#include "core/log.h"
#include "core/server_tls.h"
#include "pki/pki_int.h"
#include "core/banned.h"

/* ---- configuration ---------------------------------------------------------- */

#define OFF(field) offsetof(pki_config, field)

static const config_key keys[] = {
	{
		.name = "public_url", .type = CONFIG_STRING, .offset = OFF(public_url),
		.str_default = "", .check = config_check_http_url,
		.expect = "\"\" or an http:// or https:// URL without a trailing slash",
		.desc = "Public base URL of this node, as people and other systems "
			"reach it (behind a proxy: the proxy's URL). Issued "
			"certificates point at PUBLIC_URL/pki/issuing.crl (CRL) and "
			"PUBLIC_URL/pki/ocsp (OCSP), so changing it only affects "
			"certificates issued afterwards; mailed links start with it. "
			"Empty means http://SERVER.LISTEN.",
	},
	{
		.name = "trust_anchors", .type = CONFIG_STRING,
		.offset = OFF(trust_anchors), .str_default = "",
		.expect = "\"\" or a path to a PEM file",
		.desc = "PEM bundle of extra CA certificates trusted for certificate "
			"login besides the platform CA (e.g. a national CA). Empty "
			"means only the platform CA.",
	},
	{
		.name = "trust_anchor_crls", .type = CONFIG_STRING,
		.offset = OFF(trust_anchor_crls), .str_default = "",
		.expect = "\"\" or a path to a PEM or DER CRL file",
		.desc = "Certificate revocation lists of the pki.trust_anchors CAs: "
			"a PEM bundle of CRLs or one DER CRL. Read at start and again "
			"whenever the file changes (replace it with a rename). A "
			"certificate whose issuer has a CRL here is refused when "
			"listed, or when the CRL is stale or badly signed. Empty "
			"means the revocation of external certificates is not "
			"checked.",
	},
	{
		.name = "checkpoint_every", .type = CONFIG_INT,
		.offset = OFF(checkpoint_every), .int_default = 1000, .min = 1, .max = 100000000,
		.desc = "Audit records between two signed, timestamped checkpoints of "
			"the audit chain's head. Truncating the chain is detectable up "
			"to the last checkpoint.",
	},
	{
		.name = "tsa_policy", .type = CONFIG_STRING, .offset = OFF(tsa_policy),
		.str_default = PKI_TSA_POLICY_DEFAULT, .check = config_check_oid,
		.expect = "a dotted object identifier such as 1.2.3.4",
		.desc = "Policy OID the RFC 3161 time-stamping authority puts in its "
			"tokens.",
	},
};

/* pki.public_url defaults to the address egov listens on. */
static egov_err finish(void *values, const egov_config *cfg, char *errmsg, size_t errlen)
{
	pki_config *pc = values;
	buf b;
	egov_err err;

	if (pc->public_url[0])
		return EGOV_OK;
	buf_init(&b, 512);
	err = buf_addf(&b, "http://%s", cfg->listen);
	if (err) {
		buf_release(&b);
		snprintf(errmsg, errlen, "pki.public_url: cannot derive from server.listen (%s)", egov_err_name(err));
		return err;
	}
	free(pc->public_url);
	pc->public_url = buf_detach(&b, NULL);
	return EGOV_OK;
}

const config_section pki_config_section = {
	.name = "pki",
	.desc = "The platform CA: its public URL, extra trust anchors, audit checkpoints, time stamps.",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(pki_config),
	.finish = finish,
};

const char *pki_public_url(const egov_config *cfg)
{
	const pki_config *pc = config_section_values(cfg, &pki_config_section);

	return pc && pc->public_url ? pc->public_url : "";
}

/* ---- hooks ------------------------------------------------------------------- */

egov_err pki_module_init(const egov_config *cfg, char *errmsg, size_t errlen)
{
	return pki_ca_init(cfg->data_dir, errmsg, errlen);
}

/* Appends one CA file of DATA/pki; the message names the key it stands
 * in for and the default it read. */
static egov_err add_pki_file(const egov_config *cfg, const char *key, const char *file, buf *pem, char *errmsg,
			     size_t errlen)
{
	char path[4200];
	egov_err err;

	snprintf(path, sizeof path, "%s/pki/%s", cfg->data_dir, file);
	err = server_tls_read_pem(path, pem);
	if (err)
		snprintf(errmsg, errlen, "%s (default: DATA/pki/%s): cannot read the PEM file (%s)", key, file,
			 err == EGOV_EIO ? strerror(errno) : egov_err_name(err));
	return err;
}

/* The kernel's default trust bundles (server_tls_set_trust). Clients: the
 * issuing CA and pki.trust_anchors, who may log in with a certificate.
 * Peers: the platform's root and issuing CA. */
static egov_err trust_bundle(server_trust_kind kind, const egov_config *cfg, const char *key, buf *pem,
			     char *errmsg, size_t errlen)
{
	const pki_config *pc = config_section_values(cfg, &pki_config_section);
	egov_err err;

	if (kind == SERVER_TRUST_PEER)
		return (err = add_pki_file(cfg, key, "root.crt", pem, errmsg, errlen))
			       ? err
			       : add_pki_file(cfg, key, "issuing.crt", pem, errmsg, errlen);
	if ((err = add_pki_file(cfg, key, "issuing.crt", pem, errmsg, errlen)))
		return err;
	if (pc && pc->trust_anchors[0] && (err = server_tls_read_pem(pc->trust_anchors, pem)))
		snprintf(errmsg, errlen, "pki.trust_anchors: cannot read the PEM file (%s)",
			 err == EGOV_EIO ? strerror(errno) : egov_err_name(err));
	return err;
}

/* Loads the CA, anchors the audit chain with timestamped checkpoints and
 * gives the kernel the CA bundles for TLS. The CA stays loaded until the
 * process exits (pki.h), so there is no stop hook. */
egov_err pki_module_start(const egov_config *cfg)
{
	const pki_config *pc = config_section_values(cfg, &pki_config_section);
	char err[512];

	if (pki_open(cfg, err, sizeof err)) {
		log_error("pki.start", "pki: %s", err);
		return EGOV_EINVAL;
	}
	if (pki_audit_checkpoints_start(app()->db, pc ? pc->checkpoint_every : 1000)) {
		log_error("pki.start", "pki: cannot register the audit checkpoints");
		return EGOV_EINVAL;
	}
	server_tls_set_trust(trust_bundle);
	return EGOV_OK;
}

/* `egov verify`: the timestamped checkpoints of the audit chain. */
int pki_module_verify(db_conn *c, const egov_config *cfg, FILE *out)
{
	pki_checkpoint_result cp;
	egov_err err = pki_audit_checkpoints_verify(c, cfg->data_dir, &cp);

	if (err == EGOV_ENOTFOUND) {
		fprintf(out, "no CA in %s/pki: checkpoints not checked\n", cfg->data_dir);
		return 0;
	}
	if (err) {
		fprintf(stderr, "egov: audit verify: cannot read the checkpoints: %s\n", db_conn_errmsg(c));
		return 2;
	}
	if (cp.first_bad) {
		fprintf(out, "audit checkpoint BAD at record %lld: %s (%lld checkpoints before it verified)\n",
			(long long)cp.first_bad, cp.why, (long long)cp.checked);
		return 1;
	}
	fprintf(out, "%lld checkpoints verified\n", (long long)cp.checked);
	return 0;
}
