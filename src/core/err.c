/* err.c: names of egov_err values and their HTTP status. */
#include "core/err.h"

static const struct {
	const char *name;
	int status;
} err_table[EGOV_ERR__COUNT] = {
	[EGOV_OK] = {"ok", 200},
	[EGOV_ENOMEM] = {"out_of_memory", 503},
	[EGOV_EINVAL] = {"invalid", 400},
	[EGOV_ENOTFOUND] = {"not_found", 404},
	[EGOV_ECONFLICT] = {"conflict", 409},
	[EGOV_ELIMIT] = {"too_large", 413},
	[EGOV_EPERM] = {"forbidden", 403},
	[EGOV_EAUTH] = {"unauthorized", 401},
	[EGOV_EBUSY] = {"busy", 429},
	[EGOV_EDB] = {"database", 500},
	[EGOV_EIO] = {"io", 500},
	[EGOV_EUNAVAILABLE] = {"unavailable", 503},
	[EGOV_EINTERNAL] = {"internal", 500},
	[EGOV_ECORRUPT] = {"corrupt", 500},
};

const char *egov_err_name(egov_err err)
{
	if ((unsigned)err >= EGOV_ERR__COUNT)
		return "internal";
	return err_table[err].name;
}

int egov_err_http_status(egov_err err)
{
	if ((unsigned)err >= EGOV_ERR__COUNT)
		return 500;
	return err_table[err].status;
}
