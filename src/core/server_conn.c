/*
 * server_conn.c: per-connection state of the HTTP layer, and the work-
 * arounds for what libmicrohttpd 0.9.75 (Debian 12's) gets wrong about a
 * request head; see server_conn.h.
 *
 * What MHD 0.9.75 does, and what egov does about it:
 * - It restarts its idle timeout on every byte, so a client that trickles a
 *   request head one byte at a time holds a connection for ever. Here: a
 *   head deadline per connection (server.head_timeout_s). The watcher
 *   thread shuts down (shutdown(2)) a connection whose head is late; MHD
 *   then sees the end of the stream on its next read and closes it itself,
 *   so the descriptor stays MHD's to close.
 * - In strict mode it answers an HTTP/1.1 request without Host with its
 *   header block written twice. server.c runs MHD in its default mode,
 *   which does not check Host, and server_conn_head_refusal() refuses a
 *   missing or repeated Host (RFC 9112 3.2) with a problem document.
 *   The default mode also lets spaces through in a request target, and
 *   either mode a space in a header name ("Name :"), which the same
 *   function refuses (RFC 9112 3.2, 5.1).
 * - It never answers a transfer coding other than chunked: it waits for a
 *   body it cannot delimit until the idle timeout. Refused here with 501
 *   (RFC 9112 6.1), and Transfer-Encoding with Content-Length with 400
 *   (RFC 9112 6.3: a request smuggling vector behind a proxy).
 * - A request line without any space it closes without an answer. egov
 *   never sees such a request (no callback runs), so it cannot answer it;
 *   see docs/architecture.md for why this one is left as it is.
 *
 * Invariants: a server_conn is on the watch list from MHD's STARTED
 * notification to its CLOSED one, and MHD closes the descriptor only after
 * CLOSED; the watcher shuts a descriptor down only under the list's lock
 * and only while its connection is on the list, so it never touches a
 * descriptor that was closed and reused.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "core/log.h"
#include "core/req_int.h"
#include "core/server_conn.h"
#include "core/timeutil.h"
#include "core/banned.h"

/* How often the watcher looks: a late head is dropped within this much of
 * its deadline. */
#define WATCH_TICK_MS 250

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	server_conn head; /* sentinel of the circular list */
	int64_t timeout_us;
	pthread_t thread;
	bool running, stopping;
} w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void list_init(void)
{
	if (!w.head.next)
		w.head.next = w.head.prev = &w.head;
}

void server_conn_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
			enum MHD_ConnectionNotificationCode toe)
{
	server_conn *sc;

	(void)cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		sc = calloc(1, sizeof *sc);
		*socket_context = sc;
		if (!sc)
			return;
		sc->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
		atomic_store(&sc->head_by_us, w.timeout_us ? time_mono_us() + w.timeout_us : 0);
		pthread_mutex_lock(&w.mu);
		list_init();
		sc->next = &w.head;
		sc->prev = w.head.prev;
		w.head.prev->next = sc;
		w.head.prev = sc;
		pthread_mutex_unlock(&w.mu);
		return;
	}
	sc = *socket_context;
	*socket_context = NULL;
	if (!sc)
		return;
	pthread_mutex_lock(&w.mu);
	sc->prev->next = sc->next;
	sc->next->prev = sc->prev;
	pthread_mutex_unlock(&w.mu);
	free(sc);
}

server_conn *server_conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

void server_conn_head_done(struct MHD_Connection *conn)
{
	server_conn *sc = server_conn_of(conn);

	if (sc)
		atomic_store_explicit(&sc->head_by_us, 0, memory_order_relaxed);
}

void server_conn_head_wait(struct MHD_Connection *conn)
{
	server_conn *sc = server_conn_of(conn);

	if (sc && w.timeout_us)
		atomic_store_explicit(&sc->head_by_us, time_mono_us() + w.timeout_us, memory_order_relaxed);
}

/* ---- the watcher --------------------------------------------------------- */

static void drop_late(int64_t now)
{
	server_conn *sc;

	pthread_mutex_lock(&w.mu);
	list_init();
	for (sc = w.head.next; sc != &w.head; sc = sc->next) {
		int64_t by = atomic_load_explicit(&sc->head_by_us, memory_order_relaxed);
		if (by && now > by && !sc->dropped && sc->fd != MHD_INVALID_SOCKET) {
			sc->dropped = true;
			shutdown(sc->fd, SHUT_RDWR);
			log_msg(LOG_DEBUG, "http.head_timeout", "request head not whole in time; connection dropped");
		}
	}
	pthread_mutex_unlock(&w.mu);
}

static void *watch_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&w.mu);
	while (!w.stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += WATCH_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w.cv, &w.mu, &ts);
		if (w.stopping)
			break;
		pthread_mutex_unlock(&w.mu);
		drop_late(time_mono_us());
		pthread_mutex_lock(&w.mu);
	}
	pthread_mutex_unlock(&w.mu);
	return NULL;
}

egov_err server_conn_start(int head_timeout_s)
{
	w.timeout_us = (int64_t)head_timeout_s * 1000000;
	w.stopping = false;
	if (pthread_create(&w.thread, NULL, watch_main, NULL) != 0)
		return EGOV_EINTERNAL;
	w.running = true;
	return EGOV_OK;
}

void server_conn_stop(void)
{
	if (!w.running)
		return;
	pthread_mutex_lock(&w.mu);
	w.stopping = true;
	pthread_cond_signal(&w.cv);
	pthread_mutex_unlock(&w.mu);
	pthread_join(w.thread, NULL);
	w.running = false;
}

/* ---- the head's checks ----------------------------------------------------- */

typedef struct head_count {
	unsigned host, te, cl;
	const char *te_value;
	bool bad_name;
} head_count;

/* RFC 9110 5.1: a field name is a token. MHD 0.9.75 keeps "Name :" with
 * its space, which RFC 9112 5.1 requires a server to refuse: a proxy may
 * read such a header differently (request smuggling). */
static bool is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", c)))
			return false;
	}
	return true;
}

static enum MHD_Result count(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	head_count *h = cls;

	(void)kind;
	if (!is_token(key))
		h->bad_name = true;
	if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
		h->host++;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		h->te++;
		h->te_value = value;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		h->cl++;
	}
	return MHD_YES;
}

/* "chunked", with optional whitespace around it, in any case. */
static bool is_chunked(const char *v)
{
	size_t n;

	if (!v)
		return false;
	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	return n == 7 && strncasecmp(v, "chunked", 7) == 0;
}

const char *server_conn_head_refusal(const struct req *r, const char *version, int *status)
{
	head_count h = {0, 0, 0, NULL, false};
	size_t i;

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count, &h);
	*status = 400;
	if (h.bad_name)
		return "bad_request";
	if (h.host > 1 || (h.host == 0 && version && strcmp(version, MHD_HTTP_VERSION_1_0) != 0))
		return "bad_request";
	for (i = 0; r->raw_uri && i < r->raw_uri_len; i++)
		if ((unsigned char)r->raw_uri[i] <= ' ' || r->raw_uri[i] == 0x7f)
			return "bad_request";
	if (h.te) {
		if (h.cl)
			return "bad_request";
		if (h.te > 1 || !is_chunked(h.te_value)) {
			*status = 501;
			return "transfer_encoding_unsupported";
		}
	}
	return NULL;
}
