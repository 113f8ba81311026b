/*
 * cli.c: `egov exchange pubsub push-url set|delete|list` (the subscriber
 * gateway's push URLs, set by an operator rather than by a subscription)
 * and `egov exchange pubsub status` (the outbox by state).
 */
#include <stdio.h>
#include <string.h>

#include "exchange/pubsub/pubsub_int.h"
#include "core/banned.h"

static int usage(void)
{
	fprintf(stderr, "usage: egov exchange pubsub push-url set SUBSYSTEM EVENTTYPE URL\n"
			"       egov exchange pubsub push-url delete SUBSYSTEM EVENTTYPE\n"
			"       egov exchange pubsub push-url list\n"
			"       egov exchange pubsub status\n"
			"EVENTTYPE is the provider subsystem and the name: MO/GOV/DSAJ/REG/person-changed\n");
	return 2;
}

static int print_push_url(void *ctx, const char *subscriber, const char *et, const char *url)
{
	(void)ctx;
	printf("%s\t%s\t%s\n", subscriber, et, url);
	return 0;
}

/* Whether s is PROVIDER_SUBSYSTEM/NAME. */
static bool event_type_id_valid(const char *s)
{
	char sub[EXCHANGE_ID_MAX];
	const char *slash = strrchr(s, '/');

	if (!slash || (size_t)(slash - s) >= sizeof sub)
		return false;
	snprintf(sub, sizeof sub, "%.*s", (int)(slash - s), s);
	return exchange_id_valid(sub, EXCHANGE_ID_SUBSYSTEM) && pubsub_name_valid(slash + 1);
}

int exchange_pubsub_command(int argc, char **argv, db *d)
{
	db_conn *c = NULL;
	int64_t count[4];
	egov_err err;
	int rc = 1, i;

	if (argc < 2)
		return usage();
	if ((err = db_thread_conn(d, &c))) {
		fprintf(stderr, "egov: cannot open the database: %s\n", egov_err_name(err));
		return 1;
	}
	if (!strcmp(argv[1], "push-url") && argc == 6 && !strcmp(argv[2], "set")) {
		if (!exchange_id_valid(argv[3], EXCHANGE_ID_SUBSYSTEM) || !event_type_id_valid(argv[4])) {
			fprintf(stderr, "egov: SUBSYSTEM or EVENTTYPE is not a valid identifier\n");
			return 2;
		}
		if (!pubsub_url_valid(argv[5])) {
			fprintf(stderr, "egov: URL must be an http(s) URL without user info\n");
			return 2;
		}
		err = pubsub_push_url_set(c, argv[3], argv[4], argv[5]);
	} else if (!strcmp(argv[1], "push-url") && argc == 5 && !strcmp(argv[2], "delete")) {
		err = pubsub_push_url_delete(c, argv[3], argv[4]);
	} else if (!strcmp(argv[1], "push-url") && argc == 3 && !strcmp(argv[2], "list")) {
		err = pubsub_push_url_each(c, print_push_url, NULL);
	} else if (!strcmp(argv[1], "status") && argc == 2) {
		if (!(err = pubsub_outbox_counts(c, count)))
			for (i = 0; i < 4; i++)
				printf("%s\t%lld\n", pubsub_state_name((pubsub_state)i), (long long)count[i]);
	} else {
		return usage();
	}
	if (err == EGOV_ENOTFOUND)
		fprintf(stderr, "egov: no such push URL\n");
	else if (err)
		fprintf(stderr, "egov: %s: %s\n", egov_err_name(err), db_conn_errmsg(c));
	else
		rc = 0;
	return rc;
}
