/*
 * recent.c: the message ids a provider gateway answered lately,
 * read back from its message log at start.
 *
 * The provider refuses a replayed message id from memory (a window of
 * exchange.clock_skew_s around the signed-at time); the log's uniqueness
 * on (side, client, message id) only refuses it once the back-end has
 * been called again. After a restart the memory is empty, so the gateway
 * reloads the ids whose window is still open from the log before it
 * serves: a replay is then refused before it is forwarded.
 *
 * The log's seq and time grow together (one writer, times never go
 * back), so the scan walks the primary key backwards in pages and stops at
 * the first record older than the cut-off: a start costs the recent
 * records, not the whole log.
 */
#include <stdio.h>
#include <string.h>

#include "core/timeutil.h"
#include "exchange/log/exlog_int.h"
#include "core/banned.h"

#define RECENT_PAGE 1000

egov_err exchange_log_recent(db_conn *c, int64_t since_us, int (*fn)(void *ctx, const char *client,
								     const char *message_id, int64_t signed_at_us),
			     void *ctx, size_t *count)
{
	char cutoff[32];
	int64_t below = INT64_MAX;
	size_t n = 0;
	egov_err err = EGOV_OK;

	if (count)
		*count = 0;
	/* The log's times have six fractional digits and a Z: same width, so
	 * text order is time order. */
	time_format_rfc3339(since_us, 6, cutoff);
	for (;;) {
		db_param p[2] = {DBP_I(below), DBP_I(RECENT_PAGE)};
		db_rows *rows = NULL;
		bool more = false, done = false;
		size_t page = 0;

		if ((err = db_query(c,
				    "SELECT seq, time, client, message_id, request_signed_at FROM exchange_log"
				    " WHERE seq < ? AND side = 'provider' ORDER BY seq DESC LIMIT ?",
				    p, 2, &rows)))
			return err;
		while (!(err = db_rows_next(rows, &more)) && more) {
			const char *t = db_rows_text(rows, 1), *client = db_rows_text(rows, 2),
				   *mid = db_rows_text(rows, 3), *at = db_rows_text(rows, 4);
			int64_t at_us;

			page++;
			below = db_rows_int(rows, 0);
			if (!t || strcmp(t, cutoff) < 0) {
				done = true;
				break;
			}
			if (!client || !mid || !at || time_parse_rfc3339(at, &at_us))
				continue;
			n++;
			if (fn(ctx, client, mid, at_us)) {
				done = true;
				break;
			}
		}
		db_rows_free(rows);
		if (err || done || page < RECENT_PAGE)
			break;
	}
	if (count)
		*count = n;
	return err;
}
