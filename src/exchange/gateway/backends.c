/*
 * backends.c: the provider gateway's back-ends: the URL (and optionally a
 * lower timeout) each provided service is forwarded to, kept in the table
 * exchange_backend, set with `egov exchange backend ...`, and held in
 * memory as a snapshot that the backends job reloads every second, so a
 * call never reads the table.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "exchange/gateway/gateway_int.h"
#include "core/banned.h"

/* How often the table is read again: a back-end set from the command
 * line is used within this. */
#define BACKEND_RELOAD_MS 1000

/* IF NOT EXISTS: the exchange module's migrations (exchange.c) create it
 * as one of their versions, on databases where an earlier release had
 * already made it under a migration of its own. */
const char exchange_backend_schema[] = "CREATE TABLE IF NOT EXISTS exchange_backend ("
				       " service TEXT PRIMARY KEY,"
				       " url TEXT NOT NULL,"
				       " timeout_ms INTEGER NOT NULL DEFAULT 0,"
				       " updated_at TEXT NOT NULL)";

typedef struct backend {
	char service[EXCHANGE_ID_MAX];
	char *url;
	int timeout_ms; /* 0: exchange.backend_timeout_ms */
} backend;

/* A snapshot reloaded by the backends job: lookups never touch the
 * database. */
static struct {
	pthread_mutex_t mu;
	backend *v;
	size_t n;
} backends = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool backend_url_valid(const char *u)
{
	size_t i, n = strlen(u);

	if (n < 8 || n > EXCHANGE_BACKEND_URL_MAX || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0))
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f || u[i] == '?' || u[i] == '#' || u[i] == '"' ||
		    u[i] == '\\')
			return false;
	return true;
}

egov_err gateway_backends_load(db_conn *c)
{
	db_rows *rows = NULL;
	backend *v = NULL, *old;
	size_t n = 0, alloc = 0, oldn, i;
	bool more;
	egov_err err;

	if ((err = db_query(c, "SELECT service, url, timeout_ms FROM exchange_backend ORDER BY service", NULL, 0,
			    &rows)))
		return err;
	while (!(err = db_rows_next(rows, &more)) && more) {
		const char *s = db_rows_text(rows, 0), *u = db_rows_text(rows, 1);
		if (!s || !u || strlen(s) >= EXCHANGE_ID_MAX)
			continue;
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			backend *p = realloc(v, na * sizeof *p);
			if (!p) {
				err = EGOV_ENOMEM;
				break;
			}
			v = p;
			alloc = na;
		}
		snprintf(v[n].service, sizeof v[n].service, "%s", s);
		v[n].url = strdup(u);
		v[n].timeout_ms = (int)db_rows_int(rows, 2);
		if (!v[n].url) {
			err = EGOV_ENOMEM;
			break;
		}
		n++;
	}
	db_rows_free(rows);
	if (err) {
		for (i = 0; i < n; i++)
			free(v[i].url);
		free(v);
		return err;
	}
	pthread_mutex_lock(&backends.mu);
	old = backends.v;
	oldn = backends.n;
	backends.v = v;
	backends.n = n;
	pthread_mutex_unlock(&backends.mu);
	for (i = 0; i < oldn; i++)
		free(old[i].url);
	free(old);
	return EGOV_OK;
}

/* Copies the back-end of service into the request's arena, with the
 * timeout set on this gateway (0 when none). */
bool gateway_backend_find(req *r, const char *service, const char **url, int *timeout_ms)
{
	size_t i;
	bool found = false;

	pthread_mutex_lock(&backends.mu);
	for (i = 0; i < backends.n; i++)
		if (strcmp(backends.v[i].service, service) == 0) {
			*url = arena_strdup(req_arena(r), backends.v[i].url);
			*timeout_ms = backends.v[i].timeout_ms; /* 0: not set here */
			found = *url != NULL;
			break;
		}
	pthread_mutex_unlock(&backends.mu);
	return found;
}

/* How long the provider waits for the back-end: the service's timeout in
 * the configuration (the consumer waits as long plus a margin), which a
 * timeout set on this gateway may only lower. */
int gateway_backend_timeout(const exchange_service *svc, int local_ms)
{
	int64_t t = svc->timeout_ms > 0 ? svc->timeout_ms : gateway_room_get()->xc->backend_timeout_ms;

	if (local_ms > 0 && local_ms < t)
		t = local_ms;
	return (int)t;
}


void gateway_backends_clear(void)
{
	size_t i;

	pthread_mutex_lock(&backends.mu);
	for (i = 0; i < backends.n; i++)
		free(backends.v[i].url);
	free(backends.v);
	backends.v = NULL;
	backends.n = 0;
	pthread_mutex_unlock(&backends.mu);
}

static int64_t reload_pass(job_ctx *j)
{
	db_conn *c;
	egov_err err;

	if (!gateway_room_get()->d)
		return -1; /* not a gateway: until woken */
	if ((err = job_conn(j, &c)) || (err = gateway_backends_load(c)))
		job_fail(j, err, "reloading the back-end table failed");
	return BACKEND_RELOAD_MS;
}

const job gateway_backends_job = {.name = "exchange.backends", .run = reload_pass};

/* ---- egov exchange backend ... ------------------------------------------------------- */

static int backend_usage(void)
{
	fputs("usage: egov exchange backend set SERVICE URL [--timeout-ms N]\n"
	      "       egov exchange backend list\n"
	      "       egov exchange backend remove SERVICE\n",
	      stderr);
	return 2;
}

int exchange_gateway_command(int argc, char **argv, db *d)
{
	db_conn *c = NULL;
	int rc = 2;
	egov_err err;

	if (argc < 2)
		return backend_usage();
	if (db_conn_open(d, &c)) {
		fprintf(stderr, "egov: cannot open the database\n");
		return 2;
	}
	if (strcmp(argv[1], "set") == 0) {
		long timeout = 0;
		char now[32];
		int i;
		if (argc < 4) {
			rc = backend_usage();
			goto out;
		}
		for (i = 4; i < argc; i++) {
			char *end;
			if (strcmp(argv[i], "--timeout-ms") != 0 || i + 1 >= argc) {
				fprintf(stderr, "egov: %s: unknown option or missing value\n", argv[i]);
				rc = 1;
				goto out;
			}
			errno = 0;
			timeout = strtol(argv[++i], &end, 10);
			if (errno || *end || timeout < 10 || timeout > 600000) {
				fprintf(stderr, "egov: --timeout-ms: expected 10..600000\n");
				rc = 1;
				goto out;
			}
		}
		if (!exchange_id_valid(argv[2], EXCHANGE_ID_SERVICE)) {
			fprintf(stderr, "egov: %s: not a service id (INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE)\n", argv[2]);
			rc = 1;
			goto out;
		}
		if (!backend_url_valid(argv[3])) {
			fprintf(stderr, "egov: %s: expected an http:// or https:// URL without query\n", argv[3]);
			rc = 1;
			goto out;
		}
		time_format_rfc3339(time_now_us(), 0, now);
		{
			db_param p[] = {DBP_S(argv[2]), DBP_S(argv[3]), DBP_I(timeout), DBP_S(now)};
			err = db_exec(c,
				      "INSERT INTO exchange_backend (service, url, timeout_ms, updated_at) VALUES (?, ?, ?, ?)"
				      " ON CONFLICT (service) DO UPDATE SET url = excluded.url,"
				      " timeout_ms = excluded.timeout_ms, updated_at = excluded.updated_at",
				      p, 4, NULL);
		}
		if (err) {
			fprintf(stderr, "egov: %s\n", db_conn_errmsg(c));
			goto out;
		}
		printf("%s -> %s\n", argv[2], argv[3]);
		rc = 0;
	} else if (strcmp(argv[1], "list") == 0) {
		db_rows *rows = NULL;
		bool more;
		if (db_query(c, "SELECT service, url, timeout_ms FROM exchange_backend ORDER BY service", NULL, 0,
			     &rows)) {
			fprintf(stderr, "egov: %s\n", db_conn_errmsg(c));
			goto out;
		}
		while (!db_rows_next(rows, &more) && more)
			printf("%s\t%s\t%lld\n", db_rows_text(rows, 0), db_rows_text(rows, 1),
			       (long long)db_rows_int(rows, 2));
		db_rows_free(rows);
		rc = 0;
	} else if (strcmp(argv[1], "remove") == 0 && argc == 3) {
		db_param p[] = {DBP_S(argv[2])};
		int64_t changes = 0;
		if (db_exec(c, "DELETE FROM exchange_backend WHERE service = ?", p, 1, &changes)) {
			fprintf(stderr, "egov: %s\n", db_conn_errmsg(c));
			goto out;
		}
		if (!changes) {
			fprintf(stderr, "egov: %s: no back-end set\n", argv[2]);
			rc = 1;
			goto out;
		}
		rc = 0;
	} else {
		rc = backend_usage();
	}
out:
	db_conn_close(c);
	return rc;
}

