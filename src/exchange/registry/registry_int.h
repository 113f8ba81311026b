/*
 * registry_int.h: what the registry's files share and no other room uses:
 * the room's database and settings, and the small helpers its storage,
 * API and commands have in common.
 */
#ifndef EGOV_EXCHANGE_REGISTRY_REGISTRY_INT_H
#define EGOV_EXCHANGE_REGISTRY_REGISTRY_INT_H

#include "exchange/registry/registry.h"

/* The calling thread's connection to the room's database. */
egov_err registry_conn(db_conn **c);
/* The room's [exchange] values and node configuration (registry_setup). */
const exchange_config *registry_settings(void);
const egov_config *registry_config(void);
/* Sets a refusal's reason (w may be NULL). */
void reg_why_set(reg_why *w, const char *code, const char *field, const char *detail);
/* Whether a row with the first parameter bound to id exists for sql. */
egov_err registry_exists(db_conn *c, const char *sql, const char *id, bool *found);
/* The list query of kind: one item by id, a list filtered by its parent,
 * or all, in id order. */
const char *registry_list_sql(exchange_reg_kind kind, bool one, bool filtered);

#endif
