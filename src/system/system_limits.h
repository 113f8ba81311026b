/*
 * system_limits.h: the system module's limits, each with its reason. Its
 * routes (/healthz, /readyz, /metrics, /api/openapi.json,
 * /api/v1/version) take no body and read no parameter, so nothing a
 * client sends reaches it beyond what the kernel bounds (core/limits.h);
 * what it bounds is its own answers.
 */
#ifndef EGOV_SYSTEM_LIMITS_H
#define EGOV_SYSTEM_LIMITS_H

/* /readyz and /api/v1/version: a handful of short fields. */
#define SYSTEM_SMALL_ANSWER_MAX 1024
/* A module's reason for not being ready, in /readyz's problem detail:
 * one line. */
#define SYSTEM_READY_DETAIL_MAX 160

#endif
