/*
 * modules.c: every module egov runs, in dependency order (a module's
 * migrations may refer to tables of the modules before it). Adding a module
 * means adding its descriptor here and nowhere else.
 */
#include "core/module.h"

extern const egov_module system_module;
extern const egov_module audit_module;
extern const egov_module info_module;

const egov_module *const egov_modules[] = {
	&system_module,
	&audit_module,
	&info_module,
};
const size_t egov_modules_count = sizeof egov_modules / sizeof egov_modules[0];
