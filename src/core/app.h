/*
 * app.h: the running node's shared state, set up once by `egov serve` (or a
 * command) before any request or job runs, read-only afterwards.
 */
#ifndef EGOV_CORE_APP_H
#define EGOV_CORE_APP_H

#include "core/blob.h"
#include "core/config.h"
#include "core/db.h"

typedef struct egov_app {
	const egov_config *config;
	db *db;
	blob_store *blobs;
	long long started_unix_ms;
} egov_app;

/* The process's app; fields are NULL until set up. */
egov_app *app(void);

#endif
