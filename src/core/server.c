/*
 * server.c: the HTTP server's daemons: the main listener and the peer
 * listener (libmicrohttpd with epoll and a worker per core), start,
 * signals, drain and stop.
 *
 * The request life cycle is in http_mhd.c (the callbacks given to the
 * daemons below), the blocking pool in pool.c, the access log in
 * accesslog.c; http_int.h is the interface between them.
 *
 * Invariants: each daemon's listener (its routes, metrics labels and slots)
 * lives in the server struct and outlives every request of that daemon:
 * the daemons are stopped before it is freed. The blocking pool runs from
 * before the main daemon starts until after every connection has been
 * drained or closed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_int.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "core/server.h"
#include "core/server_conn.h"
#include "core/server_tls.h"
#include "core/spool.h"
#include "core/timeutil.h"
#include "core/banned.h"

struct server {
	struct MHD_Daemon *d;
	struct MHD_Daemon *pd; /* the peer listener (server.peer_listen), or NULL */
	http_listener main_l, peer_l;
	bool pool_running;
	bool watching; /* server_conn_start ran */
	bool drained;
	const egov_config *cfg;
	const char **labels;
};

/* libmicrohttpd's own messages (malformed requests, failed TLS handshakes)
 * go to the operational log at debug level, one line each. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_msg(LOG_DEBUG, "http.mhd", "%s", msg);
}

/* ---- signals ------------------------------------------------------------- */

void server_block_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int server_wait_signal(void)
{
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	while (sigwait(&set, &sig) != 0)
		;
	return sig;
}

/* ---- start, drain, stop -------------------------------------------------- */

/* The peer listener: a second daemon on server.peer_listen, HTTPS with a
 * client certificate asked for (and checked per request in http_mhd.c's
 * setup), the same callbacks; its listener (peer_l) marks its requests. */
static egov_err peer_start(server *s, const egov_config *cfg, unsigned threads, char *errmsg, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TLS;
	egov_err err;

	if (config_listen_addr(cfg->peer_listen, &ss, &sslen)) {
		snprintf(errmsg, errlen, "server.peer_listen: cannot parse \"%s\" as ADDR:PORT", cfg->peer_listen);
		return EGOV_EINVAL;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if ((err = server_tls_peer_open(cfg, errmsg, errlen)))
		return err;
	s->peer_l = s->main_l;
	s->peer_l.peer = true;
	s->pd = MHD_start_daemon(
		flags, 0, NULL, NULL, http_access_cb, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->connections_max,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(EGOV_HEADER_BYTES_MAX + 8 * 1024),
		MHD_OPTION_URI_LOG_CALLBACK, http_uri_cb, &s->peer_l,
		MHD_OPTION_NOTIFY_CONNECTION, server_conn_notify, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, http_completed_cb, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_STRICT_FOR_CLIENT, (int)0, /* see the main listener */
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_ARRAY, server_tls_peer_options(),
		MHD_OPTION_END);
	if (!s->pd) {
		snprintf(errmsg, errlen,
			 "server.peer_listen: cannot listen on %s: %s (or server.peer_tls_cert/key refused: see the log)",
			 cfg->peer_listen, strerror(errno));
		server_tls_peer_close();
		return EGOV_EIO;
	}
	return EGOV_OK;
}

egov_err server_start(const egov_config *cfg, const router *rt, server **out, char *errmsg, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	server *s = NULL;
	egov_err err = EGOV_OK;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
			 MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME;
	unsigned threads;
	size_t i, n;
	long ncpu;

	*out = NULL;
	if (config_listen_addr(cfg->listen, &ss, &sslen)) {
		snprintf(errmsg, errlen, "server.listen: cannot parse \"%s\" as ADDR:PORT", cfg->listen);
		return EGOV_EINVAL;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	s = calloc(1, sizeof *s);
	if (!s)
		return EGOV_ENOMEM;
	s->cfg = cfg;
	n = router_count(rt);
	s->labels = calloc(n + 2, sizeof *s->labels);
	if (!s->labels) {
		err = EGOV_ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const route *r = router_get(rt, i);
		s->labels[i] = r->name ? r->name : r->path;
	}
	s->labels[n] = "static";
	s->labels[n + 1] = "unmatched";
	s->main_l = (http_listener){
		.rt = rt, .labels = s->labels, .slot_static = n, .slot_unmatched = n + 1, .peer = false};
	if ((err = metrics_init(s->labels, n + 2)))
		goto out;
	http_request_ids_init();
	{
		/* Spooled bodies (routes .spool, the HTTP client's large answers)
		 * go to DATA/tmp: the data disk, not a tmpfs in memory. */
		char tmpdir[4096];
		snprintf(tmpdir, sizeof tmpdir, "%s/tmp", cfg->data_dir);
		if (spool_set_dir(tmpdir))
			log_warn("serve.spool", "cannot use %s for spooled bodies; using /tmp", tmpdir);
	}

	/* HTTPS when server.tls_cert/tls_key are set: MHD gets the keys and
	 * the client CA list through MHD_OPTION_ARRAY below (empty when off,
	 * so plain HTTP is served exactly as without TLS). */
	{
		bool tls_on = false;
		if ((err = server_tls_open(cfg, &tls_on, errmsg, errlen)))
			goto out;
		if (tls_on)
			flags |= MHD_USE_TLS;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	threads = cfg->threads > 0 ? (unsigned)cfg->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
	/* Blocking handlers wait on admission control (hashing slots = cores)
	 * or on group commits (db_batch, the audit log), or answer 429 at once:
	 * 8 threads per core keep enough of them waiting together that commits
	 * are shared. */
	if ((err = pool_start((size_t)(ncpu > 0 ? ncpu : 1) * 8, http_run_offloaded)))
		goto out;
	s->pool_running = true;
	if ((err = server_conn_start(cfg->head_timeout_s)))
		goto out;
	s->watching = true;
	s->d = MHD_start_daemon(
		flags, 0, NULL, NULL, http_access_cb, NULL,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->connections_max,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
		/* The request head must fit: limits.h's header budget plus room
		 * for MHD's bookkeeping and the response headers. No more: MHD
		 * zeroes the whole pool for every request (measured 7 % of a
		 * small GET at 32 KiB; 24 KiB still lets
		 * egov answer 431 itself, with a problem document). */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(EGOV_HEADER_BYTES_MAX + 8 * 1024),
		MHD_OPTION_URI_LOG_CALLBACK, http_uri_cb, &s->main_l,
		MHD_OPTION_NOTIFY_CONNECTION, server_conn_notify, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, http_completed_cb, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		/* Not strict: MHD 0.9.75's strict mode answers a request
		 * without Host with its header block twice. The checks it
		 * would make (Host, spaces in the target) are made in
		 * server_conn_head_refusal() instead. */
		MHD_OPTION_STRICT_FOR_CLIENT, (int)0,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_ARRAY, server_tls_options(),
		MHD_OPTION_END);
	if (!s->d) {
		snprintf(errmsg, errlen, "server.listen: cannot listen on %s: %s%s", cfg->listen, strerror(errno),
			 (flags & MHD_USE_TLS) ? " (or server.tls_cert/tls_key refused: see the log)" : "");
		err = EGOV_EIO;
		goto out;
	}
	if (cfg->peer_listen && cfg->peer_listen[0] && (err = peer_start(s, cfg, threads, errmsg, errlen)))
		goto out;
	*out = s;
	s = NULL;
out:
	if (s) {
		if (s->d)
			MHD_stop_daemon(s->d);
		if (s->pool_running)
			pool_stop();
		if (s->watching)
			server_conn_stop();
		server_tls_close();
		server_tls_peer_close();
		metrics_free();
		free(s->labels);
		free(s);
	}
	return err;
}

static void wait_inflight(int64_t deadline)
{
	while (http_inflight() > 0 && time_mono_us() < deadline) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

void server_drain(server *s, int drain_s)
{
	MHD_socket ls;

	if (!s || s->drained)
		return;
	s->drained = true;
	/* Stop accepting; let requests in flight finish. */
	ls = MHD_quiesce_daemon(s->d);
	if (ls != MHD_INVALID_SOCKET)
		close(ls);
	if (s->pd && (ls = MHD_quiesce_daemon(s->pd)) != MHD_INVALID_SOCKET)
		close(ls);
	wait_inflight(time_mono_us() + (int64_t)drain_s * 1000000);
}

void server_stop(server *s, int drain_s)
{
	if (!s)
		return;
	server_drain(s, drain_s);
	/* Answers that the caller's shutdown steps completed (deferred
	 * requests failed or flushed) still need a moment to be sent. */
	wait_inflight(time_mono_us() + 1000000);
	pool_stop();
	if (http_inflight() > 0)
		log_warn("serve.drain", "%ld requests still in flight after %d s; closing", http_inflight(), drain_s);
	MHD_stop_daemon(s->d);
	if (s->pd)
		MHD_stop_daemon(s->pd);
	server_conn_stop();
	server_tls_close();
	server_tls_peer_close();
	metrics_free();
	free(s->labels);
	free(s);
}
