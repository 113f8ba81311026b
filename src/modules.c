/*
 * modules.c: every module egov runs, in dependency order: a module may call
 * (through their public headers) and refer in its migrations to the modules
 * before it, never to those after it. Adding a module means adding its
 * descriptor here and nowhere else.
 *
 *   system    the node's own endpoints (health, readiness, metrics)
 *   audit     the hash-chained audit log every module below writes to
 *   pki       the platform CA; knows no accounts (owners are opaque)
 *   notify    the mail outbox and its delivery, beneath its first writer
 *   identity  accounts and sessions; issues certificates through pki,
 *             queues mail through notify
 *   oidc      the OpenID provider, built on identity's accounts
 *   info      public notices
 *   exchange  the data exchange, on pki (keys), identity (staff) and audit
 *   console   the staff console: one frame for every module's staff pages
 *             (their .pages), on identity (sessions, permissions)
 */
#include "core/module.h"
#include "core/banned.h"

extern const egov_module system_module;
extern const egov_module audit_module;
extern const egov_module pki_module;
extern const egov_module notify_module;
extern const egov_module identity_module;
extern const egov_module oidc_module;
extern const egov_module info_module;
extern const egov_module exchange_module;
extern const egov_module console_module;

const egov_module *const egov_modules[] = {
	&system_module,
	&audit_module,
	&pki_module,
	&notify_module,
	&identity_module,
	&oidc_module,
	&info_module,
	&exchange_module,
	&console_module,
};
const size_t egov_modules_count = sizeof egov_modules / sizeof egov_modules[0];
