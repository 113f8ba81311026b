/*
 * info_limits.h: every limit the notices module puts on what it is given,
 * each with its reason. The kernel's own limits are in core/limits.h.
 *
 * Over a limit the answer is a 400 naming the field (or 413 for a body
 * over the route's limit), never a truncation.
 */
#ifndef EGOV_INFO_LIMITS_H
#define EGOV_INFO_LIMITS_H

/* Notices per page of the list: a page people scroll, and one query's
 * worth of rows; ?limit= over it is refused. */
#define INFO_LIST_LIMIT_DEFAULT 20
#define INFO_LIST_LIMIT_MAX 100
/* A title and a body, characters per language: a headline, and a notice
 * that fits a screen or two (longer texts are documents, not notices).
 * The JSON fields allow 4 bytes per character; the characters are
 * counted after binding. */
#define INFO_TITLE_MAX 200
#define INFO_BODY_MAX 4000
/* A category ("food_safety") and a published_at (RFC 3339 with
 * microseconds and an offset): our own short words and one timestamp. */
#define INFO_CATEGORY_FIELD_MAX 32
#define INFO_TIME_FIELD_MAX 40
/* A notice as JSON, the route's body limit: real notices take a few KiB.
 * It binds before the per-field limits do: three bodies of INFO_BODY_MAX
 * characters of 3 or 4 bytes each are over it, and answered 413. */
#define INFO_NOTICE_BODY_MAX (16 * 1024)

#endif
