/*
 * trust_bench: load generator and Argon2id reference for the trust-layer
 * benchmarks in scripts/bench.sh (the figures are explained in
 * docs/benchmarks.md, "Trust layer").
 *
 *   trust_bench hash [N [noinit]]
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
 * Common options: -P PID samples that process every 100 ms (VmRSS, VmHWM,
 * threads) and its CPU time over the run; -H probes GET /healthz on a fresh
 * connection every 200 ms while the load runs (liveness under overload).
 * The generator's own CPU time is printed too, so a reader can tell whether
 * the generator, rather than the server, was the bottleneck.
 *
 * Output: key=value lines on stdout, one line per figure group:
 *   trust.run, trust.ok (2xx), trust.busy (429), trust.other, trust.mem,
 *   trust.probe.
 * Latencies are per request, from the first byte sent to the last byte of
 * the answer received, in ms.
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

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

typedef struct worker {
	int id;
	pthread_t th;
	int fd;
	char token[TOKEN_MAX]; /* refresh mode: the newest token of the chain */
	samples s;
	uint64_t errors;   /* connection-level failures */
	uint64_t done;     /* answers received, warm-up included */
	bool broken;       /* refresh chain broken */
	FILE *cookies_out; /* shared, under out_mu */
} worker;

static struct {
	enum mode mode;
	int port, conc, accounts, count;
	double secs, warmup;
	const char *password, *cookies_out, *tokens_file, *authz, *path, *cookies_in;
	int server_pid;
	bool probe;
} opt = {.conc = 1, .accounts = 1, .path = "/"};

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

typedef struct answer {
	int status;
	int has_retry_after;
	int close;
	char *body; /* points into the worker's buffer, NUL-terminated */
	size_t body_len;
	char head[RESP_MAX];
} answer;

/* Reads one answer (Content-Length bodies only: egov sends no chunked
 * answers to these calls). 0 on success. */
static int read_answer(int fd, answer *a)
{
	size_t have = 0, head_len = 0, want = 0;
	char *end = NULL;

	for (;;) {
		ssize_t r;
		if (have >= sizeof a->head - 1)
			return -1;
		r = recv(fd, a->head + have, sizeof a->head - 1 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		have += (size_t)r;
		a->head[have] = '\0';
		if (!end) {
			end = strstr(a->head, "\r\n\r\n");
			if (!end)
				continue;
			head_len = (size_t)(end - a->head) + 4;
			const char *cl = find_header(a->head, head_len, "Content-Length");
			const char *cn = find_header(a->head, head_len, "Connection");
			if (sscanf(a->head, "HTTP/1.%*d %d", &a->status) != 1)
				return -1;
			want = cl ? strtoul(cl, NULL, 10) : 0;
			a->has_retry_after = find_header(a->head, head_len, "Retry-After") != NULL;
			a->close = cn && strncasecmp(cn, "close", 5) == 0;
		}
		if (have >= head_len + want)
			break;
	}
	a->body = a->head + head_len;
	a->body_len = want;
	a->body[want] = '\0';
	return 0;
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
		bl = snprintf(body, sizeof body, "{\"email\":\"trust-bench-%d@example.mo\",\"password\":\"%s\"}",
			      (int)((uint64_t)w->id + seq * (uint64_t)opt.conc) % opt.accounts, opt.password);
		n = snprintf(out, cap,
			     "POST /api/v1/identity/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "User-Agent: trust_bench\r\nContent-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%s",
			     bl, body);
		break;
	case MODE_REFRESH:
		bl = snprintf(body, sizeof body, "grant_type=refresh_token&refresh_token=%s", w->token);
		n = snprintf(out, cap,
			     "POST /oidc/token HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
			     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
			     opt.authz, bl, body);
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

static void *worker_run(void *arg)
{
	worker *w = arg;
	char req[REQ_MAX];
	answer *a = malloc(sizeof *a);
	uint64_t seq = 0;

	if (!a)
		return NULL;
	w->fd = -1;
	while (!w->broken && may_start()) {
		size_t n = build_request(w, seq++, req, sizeof req);
		double t0, t1;
		if (n == 0)
			break;
		if (w->fd < 0 && (w->fd = connect_local()) < 0) {
			w->errors++;
			usleep(10000);
			continue;
		}
		t0 = now_s();
		if (send_all(w->fd, req, n) != 0 || read_answer(w->fd, a) != 0) {
			w->errors++;
			close(w->fd);
			w->fd = -1;
			if (opt.mode == MODE_REFRESH)
				w->broken = true; /* we cannot know whether the token was spent */
			continue;
		}
		t1 = now_s();
		w->done++;
		if (opt.count > 0 || opt.mode == MODE_GET || (t0 >= t_measure && t1 <= t_end))
			samples_add(&w->s, a->status, a->has_retry_after, (t1 - t0) * 1000.0);
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
		if (a->close) {
			close(w->fd);
			w->fd = -1;
		}
	}
	if (w->fd >= 0)
		close(w->fd);
	free(a);
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
	printf("trust.%s count=%zu per_s=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f no_retry_after=%zu\n",
	       name, n, elapsed > 0 ? (double)n / elapsed : 0, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99),
	       n ? v[n - 1] : 0, no_ra);
	free(v);
}

static int is_ok(int s) { return s >= 200 && s < 300; }
static int is_busy(int s) { return s == 429; }
static int is_other(int s) { return !is_ok(s) && !is_busy(s); }

/* ---- modes ------------------------------------------------------------------ */

static int run_hash(int n, bool noinit)
{
	char out[crypto_pwhash_STRBYTES];
	double *ms = calloc((size_t)n, sizeof *ms), *cpu = calloc((size_t)n, sizeof *cpu);
	int rc = 1;

	/* "noinit" measures what a program that never called sodium_init()
	 * gets: libsodium then keeps its portable Argon2 code instead of the
	 * SIMD one it picks at initialisation. A diagnostic, not the reference. */
	if (!ms || !cpu || (!noinit && sodium_init() < 0))
		goto out;
	for (int i = 0; i < n; i++) {
		struct timespec c0, c1;
		double t0 = now_s();
		/* Thread CPU time counts the kernel's work too: faulting in the
		 * 19 MiB is a real part of each hash's cost. */
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		if (crypto_pwhash_str_alg(out, "trust-bench reference password", 30, 2, 19456u * 1024u,
					  crypto_pwhash_ALG_ARGON2ID13) != 0) {
			fprintf(stderr, "trust_bench: crypto_pwhash_str_alg failed (out of memory?)\n");
			goto out;
		}
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		ms[i] = (now_s() - t0) * 1000.0;
		cpu[i] = (double)(c1.tv_sec - c0.tv_sec) * 1000.0 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
	}
	qsort(ms, (size_t)n, sizeof *ms, cmp_double);
	qsort(cpu, (size_t)n, sizeof *cpu, cmp_double);
	printf("argon2.hash%s n=%d median_ms=%.2f min_ms=%.2f max_ms=%.2f cpu_median_ms=%.2f\n", noinit ? "_noinit" : "", n,
	       n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2, ms[0], ms[n - 1],
	       n % 2 ? cpu[n / 2] : (cpu[n / 2 - 1] + cpu[n / 2]) / 2);
	rc = 0;
out:
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
			"                   [-u PATH -k COOKIES] [-P SERVER_PID] [-H]\n");
}

int main(int argc, char **argv)
{
	worker *ws = NULL;
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
		return run_hash(argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20, argc > 3 && strcmp(argv[3], "noinit") == 0);
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
	while ((c = getopt(argc, argv, "p:c:d:n:W:a:w:o:t:A:u:k:P:H")) != -1) {
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
		default: usage(); return 2;
		}
	}
	if (opt.port <= 0 || opt.conc <= 0 || opt.accounts <= 0 ||
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
	ws = calloc((size_t)opt.conc, sizeof *ws);
	if (!ws)
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
		ws[i].cookies_out = cookies_out;
		if (tokens)
			snprintf(ws[i].token, sizeof ws[i].token, "%s", tokens[i]);
		pthread_create(&ws[i].th, NULL, worker_run, &ws[i]);
	}
	for (int i = 0; i < opt.conc; i++) {
		pthread_join(ws[i].th, NULL);
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
	for (int i = 0; ws && i < opt.conc; i++)
		free(ws[i].s.v);
	free(ws);
	for (size_t i = 0; i < ntokens; i++)
		free(tokens[i]);
	free(tokens);
	for (size_t i = 0; i < cookie_n; i++)
		free(cookie_list[i]);
	free(cookie_list);
	return rc;
}
