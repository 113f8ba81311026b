/*
 * problem.c: problem documents a gateway builds itself instead of letting
 * the kernel answer with one, because it signs them (a provider's
 * refusals, a pub/sub room's answers, a subscriber gateway's answer when
 * its back-end cannot be reached) before they are sent. The members are
 * those of the kernel's resp_problem(), so a caller cannot tell who wrote
 * one. Not in wire.c: the title comes from the message catalogues, which
 * the fuzz target does not load.
 */
#include <stdio.h>

#include "core/i18n.h"
#include "exchange/wire/wire.h"
#include "core/banned.h"

egov_err exchange_problem_json(const exchange_problem *p, buf *out)
{
	char key[96], type[96];
	jw w;

	snprintf(key, sizeof key, "problem.%s", p->code);
	snprintf(type, sizeof type, "urn:egov:problem:%s", p->code);
	buf_reset(out);
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "type", type);
	jw_kstr(&w, "title", i18n_text(p->lang ? p->lang : "en", key));
	jw_kint(&w, "status", p->status);
	jw_kstr(&w, "code", p->code);
	if (p->detail)
		jw_kstr(&w, "detail", p->detail);
	if (p->field)
		jw_kstr(&w, "field", p->field);
	if (p->instance)
		jw_kstr(&w, "instance", p->instance);
	if (p->request_id)
		jw_kstr(&w, "request_id", p->request_id);
	jw_obj_end(&w);
	return w.err;
}
