/*
 * module.c: the kernel's walks over every module's hooks that more than
 * one caller needs (`egov verify` and the audit module's `egov audit
 * verify`; the /metrics handler). The rest of the contract is driven by
 * main.c and the router. See module.h.
 */
#include "core/module.h"
#include "core/banned.h"

int egov_modules_verify(db_conn *c, const egov_config *cfg, FILE *out)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < egov_modules_count && rc == 0; i++)
		if (egov_modules[i]->verify)
			rc = egov_modules[i]->verify(c, cfg, out);
	return rc;
}

egov_err egov_modules_metrics(buf *out)
{
	size_t i;
	egov_err err = EGOV_OK;

	for (i = 0; i < egov_modules_count && !err; i++)
		if (egov_modules[i]->metrics)
			err = egov_modules[i]->metrics(out);
	return err;
}
