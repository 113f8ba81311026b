/*
 * info.h: public information published by departments (news, food safety,
 * traffic, heritage) as trilingual notices. The first module on the kernel,
 * and the one the read benchmark uses.
 */
#ifndef EGOV_INFO_INFO_H
#define EGOV_INFO_INFO_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/db.h"
#include "core/err.h"

typedef struct notice {
	const char *id;           /* UUIDv7 */
	const char *category;     /* news | food_safety | traffic | heritage */
	const char *title[3];     /* zh-Hant, pt, en */
	const char *body[3];
	const char *published_at; /* RFC 3339 UTC, microseconds */
	const char *created_at;
} notice;

/* 1 if s is one of the categories. */
int info_category_valid(const char *s);

/* Inserts n (whose id and created_at it fills from the arena). */
egov_err info_notice_create(db_conn *c, arena *a, notice *n);
/* Reads one; EGOV_ENOTFOUND if there is none. Strings from the arena. */
egov_err info_notice_get(db_conn *c, arena *a, const char *id, notice *out);
/* Newest first; after_* (both or neither) continue from a cursor.
 * *count receives how many were read (<= limit). */
egov_err info_notice_list(db_conn *c, arena *a, const char *after_published, const char *after_id, int limit,
			  notice *out, int *count);

#endif
