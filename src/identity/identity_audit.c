/*
 * identity_audit.c: the identity module's audit records of requests: who
 * (account:<id>, anonymous, system), what, and the request's address and
 * id, appended inside the transaction of the change they record.
 */
#include <stdio.h>

#include "audit/audit.h"
#include "identity/identity_int.h"
#include "core/banned.h"

egov_err identity_audit(req *r, db_conn *c, const char *actor, const char *action, const char *object,
			const char *extra_k, const char *extra_v)
{
	buf b;
	jw w;
	egov_err err;

	if (!audit_available())
		return EGOV_OK;
	buf_init(&b, 4096);
	jw_init(&w, &b);
	jw_obj_begin(&w);
	jw_kstr(&w, "ip", req_remote_ip(r));
	jw_kstr(&w, "request_id", req_id(r));
	if (extra_k)
		jw_kstr(&w, extra_k, extra_v);
	jw_obj_end(&w);
	if (!(err = w.err))
		err = c ? audit_append_tx(c, actor, action, object, b.data, NULL)
			: audit_append(actor, action, object, b.data, NULL);
	buf_release(&b);
	return err;
}

void identity_actor_of(const char *account_id, char out[48])
{
	snprintf(out, 48, "account:%s", account_id);
}
