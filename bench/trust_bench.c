/*
 * trust_bench: load generator and Argon2id reference for the trust-layer
 * benchmarks in scripts/bench.sh (the figures are explained in
 * docs/benchmarks.md, "Trust layer").
 *
 *   trust_bench hash [N [noinit|kept]]
 *       The reference: N (default 20) Argon2id hashes with libsodium's
 *       crypto_pwhash_str_alg at the OWASP parameters egov uses (t=2,
 *       m=19 MiB, p=1), one after the other on one thread. Prints the
 *       wall time and the thread's CPU time (user + kernel) per hash:
 *         argon2.hash n=N median_ms=X min_ms=X max_ms=X cpu_median_ms=X
 *   trust_bench login -p PORT -c CONC (-d SECS | -n COUNT | both) -a ACCOUNTS -w PASSWORD
 *               [-W WARMUP_S] [-o COOKIES_OUT] [-P SERVER_PID] [-H]
 *       POST /api/v1/identity/login with correct credentials of accounts
 *       trust-bench-<i>@example.mo, i = 0..ACCOUNTS-1, round robin, from
 *       CONC keep-alive connections. -o writes each session cookie
 *       ("egov_sid=...") obtained to a file, one a line.
 *   trust_bench refresh -p PORT -d SECS -t TOKENS_FILE -A AUTHORIZATION [-W WARMUP_S] [-P PID]
 *       One worker per line of TOKENS_FILE (a refresh token each), looping
 *       POST /oidc/token grant_type=refresh_token, always with the newest
 *       token of its rotation chain (client_secret_basic: -A is the whole
 *       Authorization header value). A worker whose grant fails stops (its
 *       chain is broken) and the failure is counted.
 *   trust_bench get -p PORT -c CONC -u PATH -k COOKIES_FILE
 *       GET PATH once with every cookie of COOKIES_FILE; counts 200s.
 *
 * For another server measured beside egov (bench/glewlwyd_bench.sh), the
 * paths and the login body can be changed; without these options the
 * requests are byte for byte egov's:
 *   -L PATH   login: POST to PATH instead of /api/v1/identity/login
 *   -U        login: body {"username":"trust-bench-<i>","password":...}
 *             instead of {"email":"trust-bench-<i>@example.mo",...}
 *   -E PATH   refresh: POST to PATH instead of /oidc/token
 *
 * Common options: -T THREADS sets how many loop threads drive the
 * connections (default: one per core, at most one per connection); -R RATE
 * paces the requests instead (with -d): RATE per second in all, each sent
 * when due on an idle connection, its latency counted from when it was due
 * (coordinated omission corrected, as in wrk2), so a server that falls
 * behind shows it; -P PID
 * samples that process every 100 ms (VmRSS, VmHWM, threads) and its CPU
 * time over the run; -H probes GET /healthz on a fresh
 * connection every 200 ms while the load runs (liveness under overload).
 * The generator's own CPU time is printed too, so a reader can tell whether
 * the generator, rather than the server, was the bottleneck.
 *
 * Output: key=value lines on stdout, one line per figure group:
 *   trust.run, trust.ok (2xx), trust.busy (429), trust.other, trust.mem,
 *   trust.probe.
 * Latencies are per request, from the first byte sent to the last byte of
 * the answer received, in ms; each class prints p50, p90, p99, p99.9 and
 * max, and how many answers took over 5 ms (over_5ms).
 *
 * Invariants: connects to 127.0.0.1 only; every thread is joined before
 * exit; every socket has a receive timeout, so a stuck server makes the run
 * report errors instead of hanging; the run is bounded by -d or -n.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/lend.h"

#define RESP_MAX (64 * 1024)
#define REQ_MAX 4096
#define TOKEN_MAX 256
#define RECV_TIMEOUT_S 30

enum mode { MODE_LOGIN, MODE_REFRESH, MODE_GET };

typedef struct sample {
	int status;
	int has_retry_after;
	double ms;
} sample;

typedef struct samples {
	sample *v;
	size_t n, cap;
} samples;

typedef struct answer answer;

/* One keep-alive connection and the chain of requests it sends, one at a
 * time. Driven by a loop thread (below). */
typedef struct worker {
	int id;
	int fd;
	char token[TOKEN_MAX]; /* refresh mode: the newest token of the chain */
	samples s;
	uint64_t errors;   /* connection-level failures */
	uint64_t done;     /* answers received, warm-up included */
	bool broken;       /* refresh chain broken */
	bool finished;     /* no more requests to send */
	bool inflight;     /* a request is sent or being sent, its answer not read */
	FILE *cookies_out; /* shared, under out_mu */
	uint64_t seq;
	double t0, retry_at;
	char req[REQ_MAX];
	size_t req_len, req_off;
	answer *a;
	size_t have;
} worker;

static struct {
	enum mode mode;
	int port, conc, accounts, count, threads;
	double rate; /* -R: requests per second in all, paced; 0 = closed loop */
	double secs, warmup;
	const char *password, *cookies_out, *tokens_file, *authz, *path, *cookies_in;
	const char *login_path, *token_path;
	int server_pid;
	bool probe, login_user;
} opt = {.conc = 1, .accounts = 1, .path = "/", .login_path = "/api/v1/identity/login", .token_path = "/oidc/token"};

static double t_start, t_measure, t_end; /* monotonic seconds */
static atomic_int issued;                /* count mode: requests started */
static atomic_bool stopping;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static char **cookie_list;
static size_t cookie_n;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void samples_add(samples *s, int status, int has_ra, double ms)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		sample *v = realloc(s->v, cap * sizeof *v);
		if (!v)
			return;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = (sample){.status = status, .has_retry_after = has_ra, .ms = ms};
}

static int connect_local(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
	struct timeval tv = {.tv_sec = RECV_TIMEOUT_S};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Case-insensitive search for a header line "\r\nName:" within the head. */
static const char *find_header(const char *head, size_t head_len, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i + nl + 3 <= head_len; i++) {
		if (head[i] == '\r' && head[i + 1] == '\n' && strncasecmp(head + i + 2, name, nl) == 0 &&
		    head[i + 2 + nl] == ':') {
			const char *v = head + i + 3 + nl;
			while (*v == ' ')
				v++;
			return v;
		}
	}
	return NULL;
}

struct answer {
	int status;
	int has_retry_after;
	int close;
	char *body; /* points into head, NUL-terminated */
	size_t body_len;
	char head[RESP_MAX];
};

/* Parses the first `have` bytes of a->head (Content-Length bodies only:
 * egov sends no chunked answers to these calls): 1 when a whole answer is
 * there, 0 when more is needed, -1 when it cannot be one. */
static int parse_answer(answer *a, size_t have)
{
	const char *end, *cl, *cn;
	size_t head_len, want;

	a->head[have] = '\0';
	end = strstr(a->head, "\r\n\r\n");
	if (!end)
		return have >= sizeof a->head - 1 ? -1 : 0;
	head_len = (size_t)(end - a->head) + 4;
	if (sscanf(a->head, "HTTP/1.%*d %d", &a->status) != 1)
		return -1;
	cl = find_header(a->head, head_len, "Content-Length");
	cn = find_header(a->head, head_len, "Connection");
	want = cl ? strtoul(cl, NULL, 10) : 0;
	if (head_len + want >= sizeof a->head)
		return -1;
	if (have < head_len + want)
		return 0;
	a->has_retry_after = find_header(a->head, head_len, "Retry-After") != NULL;
	a->close = cn && strncasecmp(cn, "close", 5) == 0;
	a->body = a->head + head_len;
	a->body_len = want;
	a->body[want] = '\0';
	return 1;
}

/* Reads one answer from a blocking socket. 0 on success. */
static int read_answer(int fd, answer *a)
{
	size_t have = 0;
	int p;

	for (;;) {
		ssize_t r = recv(fd, a->head + have, sizeof a->head - 1 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		have += (size_t)r;
		if ((p = parse_answer(a, have)) != 0)
			return p > 0 ? 0 : -1;
	}
}

/* Copies the JSON string value of "key" in body into out. */
static int json_str(const char *body, const char *key, char *out, size_t outlen)
{
	char pat[64];
	const char *p, *q;

	snprintf(pat, sizeof pat, "\"%s\":\"", key);
	p = strstr(body, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	q = strchr(p, '"');
	if (!q || (size_t)(q - p) >= outlen)
		return -1;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return 0;
}

/* Builds the next request of worker w into out; 0 = nothing left to do. */
static size_t build_request(worker *w, uint64_t seq, char *out, size_t cap)
{
	char body[1024];
	int n = 0, bl = 0;

	switch (opt.mode) {
	case MODE_LOGIN:
		if (opt.login_user)
			bl = snprintf(body, sizeof body, "{\"username\":\"trust-bench-%d\",\"password\":\"%s\"}",
				      (int)((uint64_t)w->id + seq * (uint64_t)opt.conc) % opt.accounts, opt.password);
		else
			bl = snprintf(body, sizeof body, "{\"email\":\"trust-bench-%d@example.mo\",\"password\":\"%s\"}",
				      (int)((uint64_t)w->id + seq * (uint64_t)opt.conc) % opt.accounts, opt.password);
		n = snprintf(out, cap,
			     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "User-Agent: trust_bench\r\nContent-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%s",
			     opt.login_path, bl, body);
		break;
	case MODE_REFRESH:
		bl = snprintf(body, sizeof body, "grant_type=refresh_token&refresh_token=%s", w->token);
		n = snprintf(out, cap,
			     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
			     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
			     opt.token_path, opt.authz, bl, body);
		break;
	case MODE_GET: {
		int i = atomic_fetch_add(&issued, 1);
		if ((size_t)i >= cookie_n)
			return 0;
		n = snprintf(out, cap, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: %s\r\n\r\n", opt.path,
			     cookie_list[i]);
		break;
	}
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static bool may_start(void)
{
	if (atomic_load(&stopping))
		return false;
	if (opt.mode == MODE_GET)
		return true;
	if (opt.count > 0 && atomic_fetch_add(&issued, 1) >= opt.count)
		return false;
	/* -n with -d: whichever comes first bounds the run. */
	return (opt.count > 0 && opt.secs <= 0) || now_s() < t_end;
}

/* ---- the load: loop threads, each driving its share of the connections --
 *
 * Like wrk, a few threads (-T, default one per core, at most one per
 * connection) each run an epoll loop over many non-blocking connections,
 * rather than a thread per connection: with 60 connections on 2 cores,
 * 60 generator threads would queue behind each other for a core, and the
 * latency printed would be largely the generator's own wait to run. A
 * latency is taken from just before the request is sent to the moment the
 * loop has read the whole answer. */

typedef struct loop {
	pthread_t th;
	worker **ws;
	int n;
	double next_due, interval; /* paced mode */
} loop;

static void conn_close(int ep, worker *w)
{
	if (w->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
		close(w->fd);
	}
	w->fd = -1;
}

static void conn_fail(int ep, worker *w)
{
	w->errors++;
	conn_close(ep, w);
	if (w->inflight && opt.mode == MODE_REFRESH)
		w->broken = true; /* we cannot know whether the token was spent */
	w->inflight = false;
	w->retry_at = now_s() + 0.01;
}

/* Sends what is left of the request; -1 on a broken connection. */
static int conn_send(int ep, worker *w)
{
	struct epoll_event ev = {.data.ptr = w};

	while (w->req_off < w->req_len) {
		ssize_t n = send(w->fd, w->req + w->req_off, w->req_len - w->req_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ev.events = EPOLLIN | EPOLLOUT;
			return epoll_ctl(ep, EPOLL_CTL_MOD, w->fd, &ev);
		}
		if (n <= 0)
			return -1;
		w->req_off += (size_t)n;
	}
	ev.events = EPOLLIN;
	return epoll_ctl(ep, EPOLL_CTL_MOD, w->fd, &ev);
}

/* Connects w if it is not connected; false (and a retry planned) if not. */
static bool conn_open(int ep, worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};

	if (w->fd >= 0)
		return true;
	if ((w->fd = connect_local()) < 0) {
		w->errors++;
		w->retry_at = now_s() + 0.01;
		return false;
	}
	fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, w->fd, &ev) != 0) {
		conn_fail(ep, w);
		return false;
	}
	return true;
}

/* Starts w's next request, connecting first if needed. The latency will
 * count from t0 when given (the paced mode's scheduled time), else from
 * now. */
static void conn_start(int ep, worker *w, double t0)
{
	size_t n;

	if (w->broken || !may_start() || (n = build_request(w, w->seq, w->req, sizeof w->req)) == 0) {
		w->finished = true;
		conn_close(ep, w);
		return;
	}
	if (!conn_open(ep, w))
		return;
	w->seq++;
	w->req_len = n;
	w->req_off = 0;
	w->have = 0;
	w->inflight = true;
	w->t0 = t0 > 0 ? t0 : now_s();
	if (conn_send(ep, w) != 0)
		conn_fail(ep, w);
}

/* A whole answer is in w->a: record it and act on it. */
static void conn_answered(int ep, worker *w)
{
	answer *a = w->a;
	double t1 = now_s();

	w->inflight = false;
	w->done++;
	if (opt.count > 0 || opt.mode == MODE_GET || (w->t0 >= t_measure && t1 <= t_end))
		samples_add(&w->s, a->status, a->has_retry_after, (t1 - w->t0) * 1000.0);
	if (opt.mode == MODE_REFRESH) {
		if (a->status != 200 || json_str(a->body, "refresh_token", w->token, sizeof w->token) != 0)
			w->broken = true;
	} else if (opt.mode == MODE_LOGIN && a->status == 200 && w->cookies_out) {
		const char *sc = find_header(a->head, (size_t)(a->body - a->head), "Set-Cookie");
		if (sc) {
			size_t l = strcspn(sc, ";\r\n");
			pthread_mutex_lock(&out_mu);
			fprintf(w->cookies_out, "%.*s\n", (int)l, sc);
			pthread_mutex_unlock(&out_mu);
		}
	}
	if (a->close)
		conn_close(ep, w);
}

static void conn_readable(int ep, worker *w)
{
	for (;;) {
		ssize_t r = recv(w->fd, w->a->head + w->have, sizeof w->a->head - 1 - w->have, 0);
		int p;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0 || !w->inflight) {
			conn_fail(ep, w);
			return;
		}
		w->have += (size_t)r;
		if ((p = parse_answer(w->a, w->have)) < 0) {
			conn_fail(ep, w);
			return;
		}
		if (p > 0) {
			conn_answered(ep, w);
			if (opt.rate <= 0)
				conn_start(ep, w, 0);
			return;
		}
	}
}

/* One of l's connections that could send now, or NULL (paced mode). */
static worker *loop_idle(const loop *l, double now)
{
	for (int i = 0; i < l->n; i++) {
		worker *c = l->ws[i];
		if (!c->inflight && !c->finished && now >= c->retry_at)
			return c;
	}
	return NULL;
}

/* The paced mode (-R): the loop's next send is due at l->next_due, one
 * every nloops / rate seconds, on whichever of its connections is idle. A
 * send that finds none idle waits for one and still counts its latency
 * from when it was due (as wrk2 does), so a server that falls behind
 * cannot hide it by slowing the generator down. */
static void paced_sends(int ep, loop *l, double now)
{
	while (now >= l->next_due && now < t_end) {
		worker *w = loop_idle(l, now);
		if (!w)
			return;
		conn_start(ep, w, l->next_due);
		l->next_due += l->interval;
	}
}

static void *loop_run(void *arg)
{
	loop *l = arg;
	struct epoll_event evs[64];
	int ep = epoll_create1(EPOLL_CLOEXEC), active = l->n;

	if (ep < 0)
		return NULL;
	for (int i = 0; i < l->n; i++) {
		if (opt.rate > 0)
			conn_open(ep, l->ws[i]);
		else
			conn_start(ep, l->ws[i], 0);
	}
	while (active > 0) {
		struct timespec tmo = {.tv_nsec = 10000000};
		double now = now_s();
		int k;
		/* Paced: sleep until the next send is due; when it is due already
		 * but every connection is busy (or the run is over and answers
		 * are outstanding), until an answer comes: never spin, or the
		 * generator takes the cores from the server it measures. */
		if (opt.rate > 0 && now < t_end && l->next_due > now && l->next_due - now < 0.01)
			tmo.tv_nsec = (long)((l->next_due - now) * 1e9);
		else if (opt.rate > 0 && now < t_end && l->next_due <= now && loop_idle(l, now))
			tmo.tv_nsec = 0;
		k = epoll_pwait2(ep, evs, 64, &tmo, NULL);
		for (int i = 0; i < k; i++) {
			worker *w = evs[i].data.ptr;
			if (w->fd < 0)
				continue;
			if ((evs[i].events & EPOLLOUT) && w->req_off < w->req_len && conn_send(ep, w) != 0) {
				conn_fail(ep, w);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_readable(ep, w);
		}
		now = now_s();
		if (opt.rate > 0)
			paced_sends(ep, l, now);
		active = 0;
		for (int i = 0; i < l->n; i++) {
			worker *w = l->ws[i];
			if (w->inflight && now - w->t0 > RECV_TIMEOUT_S)
				conn_fail(ep, w); /* a stuck server: count it, do not hang */
			if (opt.rate > 0 && !w->inflight && !w->finished && now >= t_end) {
				w->finished = true;
				conn_close(ep, w);
			}
			if (opt.rate <= 0 && !w->inflight && !w->finished && now >= w->retry_at)
				conn_start(ep, w, 0);
			active += w->finished ? 0 : 1;
		}
	}
	close(ep);
	return NULL;
}

/* ---- process sampling and liveness probe --------------------------------- */

static struct {
	long rss_max_kb, hwm_kb, rss_last_kb;
	int threads_max, nsamples, gone;
} mem;

static void status_read(int pid, long *rss, long *hwm, int *threads)
{
	char path[64], line[256];
	FILE *f;

	*rss = *hwm = -1;
	*threads = 0;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			*hwm = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "Threads:", 8) == 0)
			*threads = (int)strtol(line + 8, NULL, 10);
	}
	fclose(f);
}

static double proc_cpu_s(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (!(f = fopen(path, "r")))
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void *sampler_run(void *arg)
{
	(void)arg;
	while (!atomic_load(&stopping)) {
		long rss, hwm;
		int th;
		status_read(opt.server_pid, &rss, &hwm, &th);
		if (rss < 0) {
			mem.gone = 1;
		} else {
			if (rss > mem.rss_max_kb)
				mem.rss_max_kb = rss;
			mem.hwm_kb = hwm;
			mem.rss_last_kb = rss;
			if (th > mem.threads_max)
				mem.threads_max = th;
			mem.nsamples++;
		}
		usleep(100000);
	}
	return NULL;
}

static struct {
	int ok, fail;
	double max_ms, sum_ms;
} probe;

static void *probe_run(void *arg)
{
	(void)arg;
	static const char rq[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	answer *a = malloc(sizeof *a);
	if (!a)
		return NULL;
	while (!atomic_load(&stopping)) {
		double t0 = now_s(), ms;
		int fd = connect_local();
		bool ok = fd >= 0 && send_all(fd, rq, sizeof rq - 1) == 0 && read_answer(fd, a) == 0 && a->status == 200;
		if (fd >= 0)
			close(fd);
		ms = (now_s() - t0) * 1000.0;
		if (ok) {
			probe.ok++;
			probe.sum_ms += ms;
			if (ms > probe.max_ms)
				probe.max_ms = ms;
		} else {
			probe.fail++;
		}
		usleep(200000);
	}
	free(a);
	return NULL;
}

/* ---- statistics ----------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	size_t i;
	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* Prints count, rate and latency percentiles of the samples whose status
 * satisfies pick, as "trust.<name> ...". */
static void report_class(const char *name, worker *ws, int nw, int (*pick)(int), double elapsed)
{
	size_t n = 0, k = 0, no_ra = 0;
	double *v;

	for (int i = 0; i < nw; i++)
		for (size_t j = 0; j < ws[i].s.n; j++)
			n += pick(ws[i].s.v[j].status) ? 1 : 0;
	v = malloc((n ? n : 1) * sizeof *v);
	if (!v)
		return;
	for (int i = 0; i < nw; i++)
		for (size_t j = 0; j < ws[i].s.n; j++)
			if (pick(ws[i].s.v[j].status)) {
				v[k++] = ws[i].s.v[j].ms;
				no_ra += ws[i].s.v[j].has_retry_after ? 0 : 1;
			}
	qsort(v, n, sizeof *v, cmp_double);
	for (k = n; k > 0 && v[k - 1] > 5.0; k--)
		;
	printf("trust.%s count=%zu per_s=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f "
	       "over_5ms=%zu no_retry_after=%zu\n",
	       name, n, elapsed > 0 ? (double)n / elapsed : 0, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99),
	       pct(v, n, 99.9), n ? v[n - 1] : 0, n - k, no_ra);
	free(v);
}

static int is_ok(int s) { return s >= 200 && s < 300; }
static int is_busy(int s) { return s == 429; }
static int is_other(int s) { return !is_ok(s) && !is_busy(s); }

/* ---- modes ------------------------------------------------------------------ */

static int run_hash(int n, const char *variant)
{
	char out[crypto_pwhash_STRBYTES];
	double *ms = calloc((size_t)n, sizeof *ms), *cpu = calloc((size_t)n, sizeof *cpu);
	bool noinit = strcmp(variant, "noinit") == 0, kept = strcmp(variant, "kept") == 0;
	lend_area area = {0};
	int rc = 1;

	/* "noinit" measures what a program that never called sodium_init()
	 * gets: libsodium then keeps its portable Argon2 code instead of the
	 * SIMD one it picks at initialisation. A diagnostic, not the reference. */
	if (!ms || !cpu || (!noinit && sodium_init() < 0))
		goto out;
	/* "kept" is how egov's hashing slots call the same function: with the
	 * working memory kept between hashes and lent to libsodium
	 * (src/core/lend.h) instead of mapped and faulted in afresh. Not the
	 * reference either: it shows what the kept memory saves. */
	if (kept && lend_area_alloc(&area, 19456u * 1024u) != EGOV_OK)
		goto out;
	for (int i = 0; i < n; i++) {
		struct timespec c0, c1;
		double t0 = now_s();
		/* Thread CPU time counts the kernel's work too: faulting in the
		 * 19 MiB is a real part of each hash's cost. */
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		if (kept)
			lend_begin(&area);
		if (crypto_pwhash_str_alg(out, "trust-bench reference password", 30, 2, 19456u * 1024u,
					  crypto_pwhash_ALG_ARGON2ID13) != 0) {
			fprintf(stderr, "trust_bench: crypto_pwhash_str_alg failed (out of memory?)\n");
			goto out;
		}
		if (kept && !lend_end()) {
			fprintf(stderr, "trust_bench: the kept memory was not used (no interposition in this build)\n");
			goto out;
		}
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		ms[i] = (now_s() - t0) * 1000.0;
		cpu[i] = (double)(c1.tv_sec - c0.tv_sec) * 1000.0 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
	}
	qsort(ms, (size_t)n, sizeof *ms, cmp_double);
	qsort(cpu, (size_t)n, sizeof *cpu, cmp_double);
	printf("argon2.hash%s n=%d median_ms=%.2f min_ms=%.2f max_ms=%.2f cpu_median_ms=%.2f\n",
	       noinit ? "_noinit" : kept ? "_kept" : "", n,
	       n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2, ms[0], ms[n - 1],
	       n % 2 ? cpu[n / 2] : (cpu[n / 2 - 1] + cpu[n / 2]) / 2);
	rc = 0;
out:
	lend_area_free(&area);
	free(ms);
	free(cpu);
	return rc;
}

static int load_lines(const char *path, char ***out, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[TOKEN_MAX];
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			char **v = realloc(*out, cap * sizeof *v);
			if (!v) {
				fclose(f);
				return -1;
			}
			*out = v;
		}
		(*out)[(*n)++] = strdup(line);
	}
	fclose(f);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: trust_bench hash [N]\n"
			"       trust_bench login|refresh|get -p PORT [-c CONC] [-d SECS | -n COUNT] [-W WARMUP]\n"
			"                   [-a ACCOUNTS -w PASSWORD] [-o COOKIES_OUT] [-t TOKENS -A AUTHZ]\n"
			"                   [-u PATH -k COOKIES] [-P SERVER_PID] [-H] [-T THREADS] [-R RATE]\n"
			"                   [-L LOGIN_PATH] [-U] [-E TOKEN_PATH]\n");
}

int main(int argc, char **argv)
{
	worker *ws = NULL, **wp = NULL;
	loop *loops = NULL;
	int nloops = 1;
	pthread_t sampler, prober;
	char **tokens = NULL;
	size_t ntokens = 0;
	FILE *cookies_out = NULL;
	double cpu0 = 0, cpu1 = 0, elapsed;
	struct rusage ru;
	uint64_t errors = 0, done = 0;
	int c, broken = 0, rc = 1;

	if (argc < 2) {
		usage();
		return 2;
	}
	if (strcmp(argv[1], "hash") == 0)
		return run_hash(argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20, argc > 3 ? argv[3] : "");
	if (strcmp(argv[1], "login") == 0)
		opt.mode = MODE_LOGIN;
	else if (strcmp(argv[1], "refresh") == 0)
		opt.mode = MODE_REFRESH;
	else if (strcmp(argv[1], "get") == 0)
		opt.mode = MODE_GET;
	else {
		usage();
		return 2;
	}
	optind = 2;
	while ((c = getopt(argc, argv, "p:c:d:n:W:a:w:o:t:A:u:k:P:HT:L:UE:R:")) != -1) {
		switch (c) {
		case 'p': opt.port = (int)strtol(optarg, NULL, 10); break;
		case 'c': opt.conc = (int)strtol(optarg, NULL, 10); break;
		case 'd': opt.secs = strtod(optarg, NULL); break;
		case 'n': opt.count = (int)strtol(optarg, NULL, 10); break;
		case 'W': opt.warmup = strtod(optarg, NULL); break;
		case 'a': opt.accounts = (int)strtol(optarg, NULL, 10); break;
		case 'w': opt.password = optarg; break;
		case 'o': opt.cookies_out = optarg; break;
		case 't': opt.tokens_file = optarg; break;
		case 'A': opt.authz = optarg; break;
		case 'u': opt.path = optarg; break;
		case 'k': opt.cookies_in = optarg; break;
		case 'P': opt.server_pid = (int)strtol(optarg, NULL, 10); break;
		case 'H': opt.probe = true; break;
		case 'T': opt.threads = (int)strtol(optarg, NULL, 10); break;
		case 'R': opt.rate = strtod(optarg, NULL); break;
		case 'L': opt.login_path = optarg; break;
		case 'U': opt.login_user = true; break;
		case 'E': opt.token_path = optarg; break;
		default: usage(); return 2;
		}
	}
	if (opt.port <= 0 || opt.conc <= 0 || opt.accounts <= 0 || opt.rate < 0 || (opt.rate > 0 && opt.secs <= 0) ||
	    (opt.mode == MODE_LOGIN && (!opt.password || (opt.secs <= 0 && opt.count <= 0))) ||
	    (opt.mode == MODE_REFRESH && (!opt.tokens_file || !opt.authz || opt.secs <= 0)) ||
	    (opt.mode == MODE_GET && !opt.cookies_in)) {
		usage();
		return 2;
	}
	if (opt.mode == MODE_REFRESH) {
		if (load_lines(opt.tokens_file, &tokens, &ntokens) != 0 || ntokens == 0) {
			fprintf(stderr, "trust_bench: no refresh tokens in %s\n", opt.tokens_file);
			return 1;
		}
		opt.conc = (int)ntokens;
	}
	if (opt.mode == MODE_GET && load_lines(opt.cookies_in, &cookie_list, &cookie_n) != 0) {
		fprintf(stderr, "trust_bench: cannot read %s\n", opt.cookies_in);
		return 1;
	}
	if (opt.cookies_out && !(cookies_out = fopen(opt.cookies_out, "a"))) {
		fprintf(stderr, "trust_bench: cannot write %s\n", opt.cookies_out);
		return 1;
	}
	nloops = opt.threads > 0 ? opt.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (nloops < 1)
		nloops = 1;
	if (nloops > opt.conc)
		nloops = opt.conc;
	ws = calloc((size_t)opt.conc, sizeof *ws);
	wp = calloc((size_t)opt.conc, sizeof *wp);
	loops = calloc((size_t)nloops, sizeof *loops);
	if (!ws || !wp || !loops)
		goto out;
	if (opt.server_pid > 0) {
		cpu0 = proc_cpu_s(opt.server_pid);
		pthread_create(&sampler, NULL, sampler_run, NULL);
	}
	if (opt.probe)
		pthread_create(&prober, NULL, probe_run, NULL);
	t_start = now_s();
	t_measure = t_start + opt.warmup;
	t_end = t_measure + opt.secs;
	for (int i = 0; i < opt.conc; i++) {
		ws[i].id = i;
		ws[i].fd = -1;
		ws[i].cookies_out = cookies_out;
		if (tokens)
			snprintf(ws[i].token, sizeof ws[i].token, "%s", tokens[i]);
		if (!(ws[i].a = malloc(sizeof *ws[i].a)))
			goto out;
		wp[i] = &ws[i];
	}
	/* Each loop drives a contiguous share of the connections. */
	for (int t = 0; t < nloops; t++) {
		loops[t].ws = wp + t * (opt.conc / nloops) + (t < opt.conc % nloops ? t : opt.conc % nloops);
		loops[t].n = opt.conc / nloops + (t < opt.conc % nloops ? 1 : 0);
		/* Paced: the loops' schedules interleave, rate / nloops each. */
		loops[t].interval = opt.rate > 0 ? nloops / opt.rate : 0;
		loops[t].next_due = t_start + (opt.rate > 0 ? t / opt.rate : 0);
		pthread_create(&loops[t].th, NULL, loop_run, &loops[t]);
	}
	for (int t = 0; t < nloops; t++)
		pthread_join(loops[t].th, NULL);
	for (int i = 0; i < opt.conc; i++) {
		errors += ws[i].errors;
		done += ws[i].done;
		broken += ws[i].broken ? 1 : 0;
	}
	elapsed = (opt.count > 0 || opt.mode == MODE_GET) ? now_s() - t_start : opt.secs;
	atomic_store(&stopping, true);
	if (opt.server_pid > 0) {
		pthread_join(sampler, NULL);
		cpu1 = proc_cpu_s(opt.server_pid);
	}
	if (opt.probe)
		pthread_join(prober, NULL);
	getrusage(RUSAGE_SELF, &ru);
	printf("trust.run mode=%s conc=%d elapsed_s=%.2f errors=%" PRIu64 " answers_all=%" PRIu64 " broken_chains=%d gen_cpu_s=%.2f"
	       " server_cpu_s=%.2f\n",
	       argv[1], opt.conc, elapsed, errors, done, broken,
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		       (double)ru.ru_stime.tv_usec / 1e6,
	       cpu1 - cpu0);
	report_class("ok", ws, opt.conc, is_ok, elapsed);
	report_class("busy", ws, opt.conc, is_busy, elapsed);
	report_class("other", ws, opt.conc, is_other, elapsed);
	if (opt.server_pid > 0)
		printf("trust.mem samples=%d rss_max_kb=%ld rss_last_kb=%ld hwm_kb=%ld threads_max=%d gone=%d\n",
		       mem.nsamples, mem.rss_max_kb, mem.rss_last_kb, mem.hwm_kb, mem.threads_max, mem.gone);
	if (opt.probe)
		printf("trust.probe ok=%d fail=%d mean_ms=%.2f max_ms=%.2f\n", probe.ok, probe.fail,
		       probe.ok ? probe.sum_ms / probe.ok : 0, probe.max_ms);
	rc = 0;
out:
	if (cookies_out)
		fclose(cookies_out);
	for (int i = 0; ws && i < opt.conc; i++) {
		free(ws[i].s.v);
		free(ws[i].a);
	}
	free(ws);
	free(wp);
	free(loops);
	for (size_t i = 0; i < ntokens; i++)
		free(tokens[i]);
	free(tokens);
	for (size_t i = 0; i < cookie_n; i++)
		free(cookie_list[i]);
	free(cookie_list);
	return rc;
}
