/*
 * config_int.h: what the configuration machinery (config.c) and the
 * kernel's own sections (config_keys.c) share. Not for modules: they use
 * core/config.h.
 */
#ifndef EGOV_CORE_CONFIG_INT_H
#define EGOV_CORE_CONFIG_INT_H

#include "core/config.h"

/* [server], [data], [web] and [log], in that order. Their values are the
 * fields of egov_config itself (size 0 marks that), and their finish steps
 * run before the modules'. */
#define CONFIG_KERNEL_SECTIONS 4
extern const config_section config_kernel_sections[CONFIG_KERNEL_SECTIONS];

/* Whole-string base-10 integer; no sign but '-', no spaces, no junk. */
bool config_parse_ll(const char *s, long long *out);

/* *out = prefix + dir + "/" + leaf, without doubling a trailing slash of
 * dir; the old *out is freed. EGOV_ENOMEM, or EGOV_ELIMIT past PATH_MAX. */
egov_err config_join_path(const char *prefix, const char *dir, const char *leaf, char **out);

/* What a valid value of k looks like, for errors and documentation. */
void config_key_expect(const config_key *k, char *out, size_t outlen);
/* "EGOV_SERVER_LISTEN" for server.listen. */
void config_env_name(const config_section *s, const config_key *k, char *out, size_t outlen);
/* The sections the modules of src/modules.c declare, in module order, in
 * a malloc'd array the caller frees. EGOV_ENOMEM. */
egov_err config_module_sections(const config_section ***out, size_t *n);

#endif
