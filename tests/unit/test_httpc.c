/*
 * test_httpc.c: the HTTP client against a small HTTP/1.1 server on
 * 127.0.0.1 that this test runs in a thread (real sockets, keep-alive),
 * and its TLS floor against `openssl s_server`.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <cmocka.h>

#include "core/crypto.h"
#include "core/httpc.h"
#include "core/spool.h"
#include "testutil.h"
#include "core/banned.h"

static int lfd;
static int port;
static atomic_int accepts;
static atomic_bool srv_stop;

/* Reads one request (head + Content-Length body) from fd into buf. */
static int read_request(int fd, char *req, size_t cap, size_t *body_off, size_t *body_len)
{
	size_t n = 0;
	char *end = NULL;

	while (!end) {
		ssize_t k = recv(fd, req + n, cap - 1 - n, 0);
		if (k <= 0)
			return -1;
		n += (size_t)k;
		req[n] = '\0';
		end = strstr(req, "\r\n\r\n");
		if (!end && n >= cap - 1)
			return -1;
	}
	*body_off = (size_t)(end + 4 - req);
	*body_len = 0;
	{
		const char *cl = strcasestr(req, "\r\ncontent-length:");
		if (cl && cl < end)
			*body_len = strtoul(cl + 17, NULL, 10);
	}
	while (n < *body_off + *body_len) {
		ssize_t k = recv(fd, req + n, cap - 1 - n, 0);
		if (k <= 0)
			return -1;
		n += (size_t)k;
	}
	return 0;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *req = malloc(1 << 20);
	const size_t cap = 1 << 20;

	for (;;) {
		size_t off, blen;
		char head[256];
		if (!req || read_request(fd, req, cap, &off, &blen))
			break;
		if (strncmp(req, "GET /ok ", 8) == 0) {
			const char *r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Test: a b\r\n"
					"Content-Length: 5\r\n\r\nhello";
			send_all(fd, r, strlen(r));
		} else if (strncmp(req, "POST /echo ", 11) == 0) {
			snprintf(head, sizeof head,
				 "HTTP/1.1 201 Created\r\nContent-Type: application/octet-stream\r\n"
				 "Content-Length: %zu\r\n\r\n",
				 blen);
			send_all(fd, head, strlen(head));
			send_all(fd, req + off, blen);
		} else if (strncmp(req, "GET /big ", 9) == 0) {
			static char big[100000];
			memset(big, 'x', sizeof big); /* same bytes from every thread */
			snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof big);
			send_all(fd, head, strlen(head));
			send_all(fd, big, sizeof big);
		} else if (strncmp(req, "GET /slow ", 10) == 0) {
			struct timespec ts = {1, 500 * 1000 * 1000};
			nanosleep(&ts, NULL);
			send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38);
		} else {
			const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
			send_all(fd, r, strlen(r));
		}
	}
	free(req);
	close(fd);
	return NULL;
}

static void *srv_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&srv_stop)) {
		pthread_t t;
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		atomic_fetch_add(&accepts, 1);
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
	return NULL;
}

static int setup_srv(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	pthread_t t;
	int one = 1;

	(void)state;
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&a, &len))
		return -1;
	port = ntohs(a.sin_port);
	if (pthread_create(&t, NULL, srv_main, NULL))
		return -1;
	pthread_detach(t);
	return httpc_start() ? -1 : 0;
}

static int teardown_srv(void **state)
{
	(void)state;
	httpc_stop();
	atomic_store(&srv_stop, true);
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	return 0;
}

static void url(char *out, size_t n, const char *path)
{
	snprintf(out, n, "http://127.0.0.1:%d%s", port, path);
}

typedef struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	egov_err err;
	int status;
	char body[256];
	size_t body_len;
	char xtest[32];
	char ctype[128];
} waiter;

static void on_done(void *ctx, httpc_response *resp)
{
	waiter *w = ctx;

	pthread_mutex_lock(&w->mu);
	w->err = resp->err;
	w->status = resp->status;
	w->body_len = resp->body.len;
	if (resp->body.len < sizeof w->body)
		memcpy(w->body, resp->body.data ? resp->body.data : "", resp->body.len);
	snprintf(w->xtest, sizeof w->xtest, "%s", httpc_header(resp, "x-test") ? httpc_header(resp, "x-test") : "");
	snprintf(w->ctype, sizeof w->ctype, "%s", resp->content_type);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void wait_for(waiter *w)
{
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

#define WAITER_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0, {0}, 0, {0}, {0}}

static void test_async_get_and_keepalive(void **state)
{
	char u[128];
	int before;
	int i;

	(void)state;
	url(u, sizeof u, "/ok");
	before = atomic_load(&accepts);
	for (i = 0; i < 5; i++) {
		waiter w = WAITER_INIT;
		httpc_request rq = {.method = "GET", .url = u};
		assert_int_equal(httpc_send(&rq, on_done, &w), EGOV_OK);
		wait_for(&w);
		assert_int_equal(w.err, EGOV_OK);
		assert_int_equal(w.status, 200);
		assert_int_equal(w.body_len, 5);
		assert_memory_equal(w.body, "hello", 5);
		assert_string_equal(w.xtest, "a b");
		assert_string_equal(w.ctype, "text/plain");
	}
	/* One connection, kept alive for all five. */
	assert_int_equal(atomic_load(&accepts) - before, 1);
}

static void test_async_post_echo(void **state)
{
	char u[128];
	waiter w = WAITER_INIT;
	static const char body[] = "{\"a\":1}";
	httpc_request rq = {.method = "POST", .body = body, .body_len = sizeof body - 1,
			    .headers = {"Content-Type: application/json", NULL}};

	(void)state;
	url(u, sizeof u, "/echo");
	rq.url = u;
	assert_int_equal(httpc_send(&rq, on_done, &w), EGOV_OK);
	wait_for(&w);
	assert_int_equal(w.status, 201);
	assert_int_equal(w.body_len, sizeof body - 1);
	assert_memory_equal(w.body, body, sizeof body - 1);
}

static void test_sync_and_limits(void **state)
{
	char u[128];
	httpc_response resp;
	httpc_request rq = {.method = "GET"};

	(void)state;
	url(u, sizeof u, "/big");
	rq.url = u;
	assert_int_equal(httpc_send_sync(&rq, &resp), EGOV_OK);
	assert_int_equal(resp.err, EGOV_OK);
	assert_int_equal(resp.body.len, 100000);
	httpc_response_release(&resp);

	rq.response_max = 1000;
	assert_int_equal(httpc_send_sync(&rq, &resp), EGOV_OK);
	assert_int_equal(resp.err, EGOV_ELIMIT);
	httpc_response_release(&resp);

	rq.response_max = 0;
	url(u, sizeof u, "/slow");
	rq.timeout_ms = 200;
	assert_int_equal(httpc_send_sync(&rq, &resp), EGOV_OK);
	assert_int_equal(resp.err, EGOV_EBUSY);
	assert_int_equal(resp.status, 0);
	httpc_response_release(&resp);
}

/* A request body sent from a file, and a response body over spool_over
 * spooled with its digest; under it, in memory as before. */
static void test_spooled_bodies(void **state)
{
	char u[128], *dir = test_tmpdir(), sub[600];
	size_t n = 600000, i;
	unsigned char *p = malloc(n), *back = malloc(n), want[32];
	httpc_response resp;
	httpc_request rq = {.method = "POST", .headers = {"Content-Type: application/octet-stream", NULL}};
	spool s;
	int fd;

	(void)state;
	assert_non_null(p);
	assert_non_null(back);
	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 31 + (i >> 11));
	snprintf(sub, sizeof sub, "%s/tmp", dir);
	assert_int_equal(spool_set_dir(sub), EGOV_OK);
	spool_init(&s);
	assert_int_equal(spool_write(&s, p, n), EGOV_OK);
	url(u, sizeof u, "/echo");
	rq.url = u;
	rq.body_from_fd = true;
	rq.body_fd = s.fd;
	rq.body_len = n;
	rq.spool_over = SPOOL_THRESHOLD;
	assert_int_equal(httpc_send_sync(&rq, &resp), EGOV_OK);
	assert_int_equal(resp.err, EGOV_OK);
	assert_int_equal(resp.status, 201);
	assert_true(resp.spooled);
	assert_int_equal(resp.body.len, 0);
	assert_int_equal(resp.body_len, n);
	crypto_sha256(p, n, want);
	assert_memory_equal(resp.body_sha256, want, 32);
	fd = httpc_response_take_fd(&resp);
	assert_true(fd >= 0);
	assert_int_equal(httpc_response_take_fd(&resp), -1);
	assert_int_equal(spool_pread(fd, back, n, 0), EGOV_OK);
	assert_memory_equal(back, p, n);
	close(fd);
	httpc_response_release(&resp);

	/* The same asynchronously, and the response cap still applies. */
	{
		waiter w = WAITER_INIT;
		rq.response_max = n - 1;
		assert_int_equal(httpc_send(&rq, on_done, &w), EGOV_OK);
		wait_for(&w);
		assert_int_equal(w.err, EGOV_ELIMIT);
		rq.response_max = 0;
	}
	/* Under the threshold the body stays in memory. */
	rq.body_len = 1000;
	assert_int_equal(httpc_send_sync(&rq, &resp), EGOV_OK);
	assert_int_equal(resp.status, 201);
	assert_false(resp.spooled);
	assert_int_equal(resp.body.len, 1000);
	assert_memory_equal(resp.body.data, p, 1000);
	httpc_response_release(&resp);
	/* A body from a file that is too short fails the request. */
	rq.body_len = n + 10;
	assert_int_equal(httpc_send_sync(&rq, &resp), EGOV_OK);
	assert_int_not_equal(resp.err, EGOV_OK);
	httpc_response_release(&resp);

	spool_release(&s);
	free(p);
	free(back);
	test_rmrf(dir);
	free(dir);
}

static void test_refused_and_bad(void **state)
{
	waiter w = WAITER_INIT;
	httpc_request rq = {.method = "GET", .url = "http://127.0.0.1:1/x", .timeout_ms = 2000};
	httpc_request bad = {.method = "BREW", .url = "http://127.0.0.1:1/"};
	httpc_request badurl = {.method = "GET", .url = "file:///etc/passwd"};

	(void)state;
	assert_int_equal(httpc_send(&rq, on_done, &w), EGOV_OK);
	wait_for(&w);
	assert_int_equal(w.err, EGOV_EUNAVAILABLE);
	assert_int_equal(httpc_send(&bad, on_done, &w), EGOV_EINVAL);
	assert_int_equal(httpc_send(&badurl, on_done, &w), EGOV_EINVAL);
}

/* Many requests in flight at once complete, each exactly once. */
static atomic_int many_done;
static void on_many(void *ctx, httpc_response *resp)
{
	(void)ctx;
	if (resp->err == EGOV_OK && resp->status == 200)
		atomic_fetch_add(&many_done, 1);
	else
		atomic_fetch_add(&many_done, 1000);
}

static void test_many_in_flight(void **state)
{
	char u[128];
	int i;
	httpc_request rq = {.method = "GET"};

	(void)state;
	url(u, sizeof u, "/ok");
	rq.url = u;
	for (i = 0; i < 200; i++)
		assert_int_equal(httpc_send(&rq, on_many, NULL), EGOV_OK);
	for (i = 0; i < 1000 && atomic_load(&many_done) < 200; i++) {
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	assert_int_equal(atomic_load(&many_done), 200);
}

/* ---- the TLS floor: against `openssl s_server` ---------------------------- */

extern char **environ;

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), p = -1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		p = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return p;
}

/* Starts `openssl s_server -www` with the extra arguments on a free port and
 * waits until it accepts; returns its pid, the port through *p. */
static pid_t s_server(const char *dir, const char *const *extra, int *p)
{
	char cert[600], key[600], accept_[16];
	const char *argv[24];
	size_t n = 0, i;
	pid_t pid;

	*p = free_port();
	snprintf(cert, sizeof cert, "%s/srv.pem", dir);
	snprintf(key, sizeof key, "%s/srv.key", dir);
	snprintf(accept_, sizeof accept_, "%d", *p);
	argv[n++] = "openssl";
	argv[n++] = "s_server";
	argv[n++] = "-quiet";
	argv[n++] = "-www";
	argv[n++] = "-accept";
	argv[n++] = accept_;
	argv[n++] = "-cert";
	argv[n++] = cert;
	argv[n++] = "-key";
	argv[n++] = key;
	for (i = 0; extra[i]; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	{
		/* Its output would keep the test's pipes open. */
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
		assert_int_equal(posix_spawnp(&pid, "openssl", &fa, NULL, (char *const *)(uintptr_t)argv, environ), 0);
		posix_spawn_file_actions_destroy(&fa);
	}
	for (i = 0; i < 200; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*p)};
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int ok;
		struct timespec ts = {0, 20 * 1000 * 1000};
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (ok)
			break;
		nanosleep(&ts, NULL);
	}
	return pid;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* One GET to a server started with extra; the server is stopped before the
 * caller asserts anything, so a failure leaves nothing running. */
static egov_err tls_get(const char *dir, const char *const *extra, int *status)
{
	char u[64], ca[600];
	httpc_response resp;
	httpc_request rq = {.method = "GET", .timeout_ms = 5000};
	egov_err err;

	int p;
	pid_t pid = s_server(dir, extra, &p);

	snprintf(u, sizeof u, "https://127.0.0.1:%d/", p);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	rq.url = u;
	rq.ca_file = ca;
	assert_int_equal(httpc_send_sync(&rq, &resp), EGOV_OK);
	err = resp.err;
	*status = resp.status;
	httpc_response_release(&resp);
	stop(pid);
	return err;
}

/* Calls to other servers hold the listeners' floor: a server that offers
 * only TLS 1.1, or only a CBC suite with SHA-1, is refused; TLS 1.2 with an
 * AEAD suite and TLS 1.3 are spoken. */
static void test_tls_floor(void **state)
{
	char *dir = test_tmpdir(), cmd[2048];
	static const char *const tls11[] = {"-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", NULL};
	static const char *const cbc[] = {"-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:@SECLEVEL=0",
					  NULL};
	static const char *const tls12[] = {"-tls1_2", NULL};
	static const char *const tls13[] = {"-tls1_3", NULL};
	int status;

	(void)state;
	snprintf(cmd, sizeof cmd,
		 "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		 "-keyout ca.key -out ca.pem -subj /CN=ca 2>/dev/null && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr "
		 "-subj /CN=127.0.0.1 2>/dev/null && printf 'subjectAltName=IP:127.0.0.1\n' > ext && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext "
		 "-out srv.pem 2>/dev/null",
		 dir);
	assert_int_equal(system(cmd), 0);

	assert_int_equal(tls_get(dir, tls11, &status), EGOV_EUNAVAILABLE);
	assert_int_equal(tls_get(dir, cbc, &status), EGOV_EUNAVAILABLE);
	assert_int_equal(tls_get(dir, tls12, &status), EGOV_OK);
	assert_int_equal(status, 200);
	assert_int_equal(tls_get(dir, tls13, &status), EGOV_OK);
	assert_int_equal(status, 200);
	test_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_async_get_and_keepalive),
		cmocka_unit_test(test_async_post_echo),
		cmocka_unit_test(test_sync_and_limits),
		cmocka_unit_test(test_refused_and_bad),
		cmocka_unit_test(test_spooled_bodies),
		cmocka_unit_test(test_many_in_flight),
		cmocka_unit_test(test_tls_floor),
	};
	return cmocka_run_group_tests(tests, setup_srv, teardown_srv);
}
