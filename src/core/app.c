/* app.c: the process's one egov_app; see app.h. */
#include "core/app.h"
#include "core/banned.h"

static egov_app the_app;

egov_app *app(void)
{
	return &the_app;
}
