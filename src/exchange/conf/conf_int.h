/*
 * conf_int.h: the parsed global configuration's struct, shared by conf.c
 * (lookups, the one in force) and parse.c (which fills it). Not for the
 * other rooms: they use conf.h.
 *
 * Everything a configuration points to lives in its arena; the lists are
 * sorted by id by exchange_conf_index() so lookups are binary searches,
 * and an id appears at most once in each.
 */
#ifndef EGOV_EXCHANGE_CONF_CONF_INT_H
#define EGOV_EXCHANGE_CONF_CONF_INT_H

#include <stdatomic.h>

#include "core/arena.h"
#include "exchange/conf/conf.h"

struct exchange_conf {
	atomic_int refs;
	int64_t version, generated_us, expires_us;
	char instance[EXCHANGE_PART_MAX + 1];
	char signer[65];            /* SHA-256 of the certificate that signed it */
	const char *tsa_url;
	arena a;
	const char **members;
	size_t nmembers;
	exchange_subsystem *subs;
	size_t nsubs;
	exchange_service *services;
	size_t nservices;
	exchange_access *access;
	size_t naccess;
	const char **event_types;
	size_t nevent_types;
	exchange_federation *feds;  /* the instances this one trusts, by instance */
	size_t nfeds;
	/* A view: the configuration in force is a copy of the local one's
	 * fields (pointing into base's arena; its own arena is empty) with
	 * references to base and to the federated configurations attached. */
	struct exchange_conf *base;
	struct exchange_conf *attached[EXCHANGE_FEDERATION_MAX];
	size_t nattached;
};

/* A configuration with one reference and an empty arena of cap bytes;
 * NULL when out of memory. Freed by its last exchange_conf_put(). */
exchange_conf *exchange_conf_new(size_t cap);
/* Sorts the lists for the lookups; EGOV_EINVAL when an id is there twice. */
egov_err exchange_conf_index(exchange_conf *cf);

#endif
