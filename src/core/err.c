/*
 * err.c: the error table: for each egov_err its name, its HTTP status and
 * the problem code a client sees when a handler returns it unanswered.
 *
 * The one mapping from errors to the wire: the HTTP layer answers an error
 * with egov_err_http_status() and egov_err_problem_code(), and so does every
 * module that answers one itself. Problem codes are documented in
 * docs/api/problems.md and are stable: changing one here changes the API.
 */
#include "core/err.h"
#include "core/banned.h"

static const struct {
	const char *name;
	int status;
	const char *problem;
} err_table[EGOV_ERR__COUNT] = {
	[EGOV_OK] = {"ok", 200, "internal"}, /* never answered as a problem */
	[EGOV_ENOMEM] = {"out_of_memory", 503, "unavailable"},
	[EGOV_EINVAL] = {"invalid", 400, "bad_request"},
	[EGOV_ENOTFOUND] = {"not_found", 404, "not_found"},
	[EGOV_ECONFLICT] = {"conflict", 409, "conflict"},
	[EGOV_ELIMIT] = {"too_large", 413, "payload_too_large"},
	[EGOV_EPERM] = {"forbidden", 403, "forbidden"},
	[EGOV_EAUTH] = {"unauthorized", 401, "unauthorized"},
	[EGOV_EBUSY] = {"busy", 429, "too_many_requests"},
	[EGOV_EDB] = {"database", 500, "internal"},
	[EGOV_EIO] = {"io", 500, "internal"},
	[EGOV_EUNAVAILABLE] = {"unavailable", 503, "unavailable"},
	[EGOV_EINTERNAL] = {"internal", 500, "internal"},
	[EGOV_ECORRUPT] = {"corrupt", 500, "internal"},
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

const char *egov_err_problem_code(egov_err err)
{
	if ((unsigned)err >= EGOV_ERR__COUNT)
		return "internal";
	return err_table[err].problem;
}
