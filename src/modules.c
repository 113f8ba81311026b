/*
 * modules.c: every module egov runs, in dependency order (a module's
 * migrations may refer to tables of the modules before it). Adding a module
 * means adding its descriptor here and nowhere else.
 */
#include "core/module.h"
#include "core/banned.h"

extern const egov_module system_module;
extern const egov_module audit_module;
extern const egov_module identity_module;
extern const egov_module notify_module;
extern const egov_module info_module;
extern const egov_module pki_module;
extern const egov_module oidc_module;
extern const egov_module identity_cert_module;
extern const egov_module exchange_module;
extern const egov_module exchange_log_module;
extern const egov_module exchange_gateway_module;
extern const egov_module exchange_pubsub_module;

const egov_module *const egov_modules[] = {
	&system_module,
	&audit_module,
	&identity_module,
	&notify_module, /* after identity: extends its notify_outbox */
	&info_module,
	&pki_module,
	&oidc_module, /* after identity: bearer tokens resolve to its accounts */
	&identity_cert_module, /* after pki: certificate login verifies with it */
	&exchange_module, /* the registry; the other exchange parts use its tables and conf */
	&exchange_log_module,
	&exchange_gateway_module,
	&exchange_pubsub_module,
};
const size_t egov_modules_count = sizeof egov_modules / sizeof egov_modules[0];
