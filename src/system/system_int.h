/* system_int.h: private to the system module. */
#ifndef EGOV_SYSTEM_INT_H
#define EGOV_SYSTEM_INT_H

#include <stddef.h>

/* The embedded OpenAPI description. */
const char *system_openapi(size_t *len);

#endif
