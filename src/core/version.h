/* version.h: egov's version (semantic versioning). */
#ifndef EGOV_CORE_VERSION_H
#define EGOV_CORE_VERSION_H
#define EGOV_VERSION "0.1.0"
#endif
