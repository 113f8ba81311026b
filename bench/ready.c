/*
 * ready: small timing helpers for scripts/bench.sh.
 *
 *   ready start RUNS [-t TEMPLATE=OUTPUT] [-o LOGFILE] -- PROGRAM ARGS...
 *       RUNS times: pick a free loopback port, write OUTPUT from TEMPLATE with
 *       every "{PORT}" replaced (optional; for servers that take their port
 *       from a file, such as nginx), fork and exec PROGRAM with "{PORT}"
 *       replaced in its arguments, poll GET /healthz on 127.0.0.1:PORT until
 *       the answer is 200, and record the wall time from fork to that answer.
 *       The server is then stopped (SIGTERM to its process group, SIGKILL
 *       after 5 s) before the next run. Prints one line per run and a summary:
 *         ready.start runs=N min_ms=X median_ms=X max_ms=X
 *   ready wait PORT [TIMEOUT_S]
 *       Wait until GET /healthz on 127.0.0.1:PORT answers 200; prints the
 *       time waited. Exit status 1 on timeout.
 *   ready fsync DIR [SECONDS]
 *       Durable-write reference: 4 KiB pwrite + fdatasync, overwriting in
 *       place in a preallocated file, and 4 KiB append + fdatasync, each for
 *       SECONDS (default 2). Prints:
 *         fsync.overwrite ops_per_s=N mean_us=X
 *         fsync.append ops_per_s=N mean_us=X
 *
 * Invariants: every socket is bound or connected to 127.0.0.1 only. Every
 * process this program starts is in its own process group and is gone (waited
 * for) before the next run starts or the program exits. Ports are taken below
 * 32768, outside Linux's default ephemeral range, so a client socket cannot
 * grab the port between the check and the server's bind. The poll client
 * closes with an RST (SO_LINGER 0) so that neither side leaves TIME_WAIT.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS_MAX 1000
#define ARGS_MAX 64
#define ARG_BYTES 4096
#define TEMPLATE_MAX (1 << 20)
#define START_TIMEOUT_MS 10000.0
#define POLL_INTERVAL_NS 500000L /* 0.5 ms between connection attempts */
#define FSYNC_BLOCK 4096
#define FSYNC_FILE_BYTES (16L << 20)

/* The server being timed, so a signal to this program stops it too. */
static volatile sig_atomic_t current_child;

static void on_signal(int sig)
{
	if (current_child > 0)
		kill(-(pid_t)current_child, SIGKILL);
	_exit(128 + sig);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ns(long ns)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ns};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
	}
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* A port is free if we can bind it on 127.0.0.1 right now. */
static int port_free(int port)
{
	struct sockaddr_in a;
	int fd, ok = 0, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		ok = 1;
	close(fd);
	return ok;
}

static int pick_port(void)
{
	int i, port;

	for (i = 0; i < 500; i++) {
		port = 20000 + (int)((unsigned)rand() % 12000u);
		if (port != 8080 && port_free(port))
			return port;
	}
	return -1;
}

/*
 * One attempt: connect, send GET /healthz, read the status line.
 * Returns 1 on a 200 answer, 0 on anything else (refused, other status,
 * short read); the caller retries.
 */
static int healthz_once(int port)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "User-Agent: egov-bench-ready\r\n\r\n";
	struct sockaddr_in a;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct pollfd pfd;
	char resp[64];
	size_t got = 0;
	ssize_t n;
	int fd, ok = 0, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		goto out;
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
		goto out;
	pfd.fd = fd;
	pfd.events = POLLIN;
	while (got < 12) {
		if (poll(&pfd, 1, 2000) <= 0)
			goto out;
		n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	resp[got] = '\0';
	ok = strncmp(resp, "HTTP/1.1 200", 12) == 0 || strncmp(resp, "HTTP/1.0 200", 12) == 0;
out:
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	return ok;
}

/* Replaces every "{PORT}" in src; returns -1 if the result does not fit. */
static int subst_port(const char *src, int port, char *dst, size_t cap)
{
	char portstr[16];
	size_t plen, o = 0;
	const char *p = src;

	plen = (size_t)snprintf(portstr, sizeof(portstr), "%d", port);
	while (*p != '\0') {
		if (strncmp(p, "{PORT}", 6) == 0) {
			if (o + plen >= cap)
				return -1;
			memcpy(dst + o, portstr, plen);
			o += plen;
			p += 6;
		} else {
			if (o + 1 >= cap)
				return -1;
			dst[o++] = *p++;
		}
	}
	dst[o] = '\0';
	return 0;
}

static int write_template(const char *tmpl, const char *outpath, int port)
{
	FILE *in = NULL, *out = NULL;
	char *src = NULL, *dst = NULL;
	size_t n;
	int rc = -1;

	in = fopen(tmpl, "r");
	if (in == NULL)
		goto out;
	src = malloc(TEMPLATE_MAX);
	dst = malloc(TEMPLATE_MAX + 4096);
	if (src == NULL || dst == NULL)
		goto out;
	n = fread(src, 1, TEMPLATE_MAX - 1, in);
	if (ferror(in) || n == TEMPLATE_MAX - 1)
		goto out;
	src[n] = '\0';
	if (subst_port(src, port, dst, TEMPLATE_MAX + 4096) != 0)
		goto out;
	out = fopen(outpath, "w");
	if (out == NULL)
		goto out;
	if (fputs(dst, out) == EOF)
		goto out;
	rc = 0;
out:
	if (out != NULL && fclose(out) != 0)
		rc = -1;
	if (in != NULL)
		fclose(in);
	free(src);
	free(dst);
	return rc;
}

/* Stops the process group led by pid and reaps pid. */
static void stop_child(pid_t pid)
{
	double deadline;
	int status;

	kill(-pid, SIGTERM);
	deadline = now_ms() + 5000.0;
	while (now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			goto reaped;
		sleep_ns(2000000L);
	}
	kill(-pid, SIGKILL);
	waitpid(pid, &status, 0);
reaped:
	/* Workers a master left behind (nginx) share its group. */
	kill(-pid, SIGKILL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One timed start; returns the time to the first 200 in ms, or < 0. */
static double start_once(char **argv_tmpl, int argc_tmpl, const char *tmpl,
			 const char *tmpl_out, const char *logpath)
{
	static char argbuf[ARGS_MAX][ARG_BYTES];
	char *args[ARGS_MAX + 1];
	double t0, t = -1.0;
	pid_t pid;
	int i, port, status, logfd;

	port = pick_port();
	if (port < 0) {
		fprintf(stderr, "ready: no free port\n");
		return -1.0;
	}
	for (i = 0; i < argc_tmpl; i++) {
		if (subst_port(argv_tmpl[i], port, argbuf[i], ARG_BYTES) != 0) {
			fprintf(stderr, "ready: argument too long\n");
			return -1.0;
		}
		args[i] = argbuf[i];
	}
	args[argc_tmpl] = NULL;
	if (tmpl != NULL && write_template(tmpl, tmpl_out, port) != 0) {
		fprintf(stderr, "ready: cannot write %s from %s\n", tmpl_out, tmpl);
		return -1.0;
	}

	t0 = now_ms();
	pid = fork();
	if (pid < 0) {
		perror("ready: fork");
		return -1.0;
	}
	if (pid == 0) {
		setpgid(0, 0);
		logfd = open(logpath != NULL ? logpath : "/dev/null",
			     O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (logfd >= 0) {
			dup2(logfd, 1);
			dup2(logfd, 2);
		}
		execvp(args[0], args);
		_exit(127);
	}
	setpgid(pid, pid); /* both sides, so the group exists before any kill */
	current_child = pid;

	while (now_ms() - t0 < START_TIMEOUT_MS) {
		if (healthz_once(port)) {
			t = now_ms() - t0;
			break;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr, "ready: %s exited before answering (status %d)\n",
				args[0], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			kill(-pid, SIGKILL);
			current_child = 0;
			return -1.0;
		}
		sleep_ns(POLL_INTERVAL_NS);
	}
	if (t < 0)
		fprintf(stderr, "ready: no 200 from /healthz on port %d within %.0f ms\n", port,
			START_TIMEOUT_MS);
	stop_child(pid);
	current_child = 0;
	return t;
}

static int cmd_start(int argc, char **argv)
{
	double times[RUNS_MAX], sorted[RUNS_MAX], med;
	const char *tmpl = NULL, *tmpl_out = NULL, *logpath = NULL;
	char *eq;
	long runs;
	int i, n = 0;

	if (argc < 2 || parse_long(argv[1], 1, RUNS_MAX, &runs) != 0)
		goto usage;
	for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			eq = strchr(argv[++i], '=');
			if (eq == NULL)
				goto usage;
			*eq = '\0';
			tmpl = argv[i];
			tmpl_out = eq + 1;
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			logpath = argv[++i];
		} else {
			goto usage;
		}
	}
	if (i >= argc - 1 || argc - i - 1 > ARGS_MAX)
		goto usage;
	argv += i + 1;
	argc -= i + 1;

	for (i = 0; i < runs; i++) {
		times[n] = start_once(argv, argc, tmpl, tmpl_out, logpath);
		if (times[n] < 0)
			return 1;
		printf("ready.run n=%d ms=%.2f\n", i + 1, times[n]);
		fflush(stdout);
		n++;
	}
	memcpy(sorted, times, sizeof(double) * (size_t)n);
	qsort(sorted, (size_t)n, sizeof(double), cmp_double);
	med = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0;
	printf("ready.start runs=%d min_ms=%.2f median_ms=%.2f max_ms=%.2f\n", n, sorted[0], med,
	       sorted[n - 1]);
	return 0;
usage:
	fprintf(stderr, "usage: ready start RUNS [-t TEMPLATE=OUTPUT] [-o LOG] -- PROGRAM ARGS...\n");
	return 2;
}

static int cmd_wait(int argc, char **argv)
{
	long port, timeout_s = 10;
	double t0;

	if (argc < 2 || parse_long(argv[1], 1, 65535, &port) != 0 ||
	    (argc > 2 && parse_long(argv[2], 1, 600, &timeout_s) != 0)) {
		fprintf(stderr, "usage: ready wait PORT [TIMEOUT_S]\n");
		return 2;
	}
	t0 = now_ms();
	while (now_ms() - t0 < (double)timeout_s * 1e3) {
		if (healthz_once((int)port)) {
			printf("ready.wait port=%ld ms=%.2f\n", port, now_ms() - t0);
			return 0;
		}
		sleep_ns(2 * POLL_INTERVAL_NS);
	}
	fprintf(stderr, "ready: no 200 from 127.0.0.1:%ld/healthz within %ld s\n", port, timeout_s);
	return 1;
}

/* Runs write+fdatasync for `seconds`; append grows the file, otherwise overwrite in place. */
static int fsync_loop(const char *path, int append, double seconds, long *ops, double *elapsed_ms)
{
	static char block[FSYNC_BLOCK];
	double t0;
	off_t off = 0;
	long n = 0;
	int fd, rc = -1;

	memset(block, 'x', sizeof(block));
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (!append) {
		/* Preallocate with real writes so fdatasync has no size change to log. */
		for (off = 0; off < FSYNC_FILE_BYTES; off += FSYNC_BLOCK)
			if (pwrite(fd, block, FSYNC_BLOCK, off) != FSYNC_BLOCK)
				goto out;
		if (fsync(fd) != 0)
			goto out;
		off = 0;
	}
	t0 = now_ms();
	while (now_ms() - t0 < seconds * 1e3) {
		if (pwrite(fd, block, FSYNC_BLOCK, off) != FSYNC_BLOCK)
			goto out;
		if (fdatasync(fd) != 0)
			goto out;
		off += FSYNC_BLOCK;
		if (!append && off >= FSYNC_FILE_BYTES)
			off = 0;
		n++;
	}
	*elapsed_ms = now_ms() - t0;
	*ops = n;
	rc = 0;
out:
	close(fd);
	unlink(path);
	return rc;
}

static int cmd_fsync(int argc, char **argv)
{
	static const char *const names[] = {"overwrite", "append"};
	char path[4096];
	double ms;
	long secs = 2, ops;
	int mode;

	if (argc < 2 || (argc > 2 && parse_long(argv[2], 1, 60, &secs) != 0)) {
		fprintf(stderr, "usage: ready fsync DIR [SECONDS]\n");
		return 2;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/fsync-probe.%ld", argv[1], (long)getpid()) >=
	    sizeof(path))
		return 2;
	for (mode = 0; mode < 2; mode++) {
		if (fsync_loop(path, mode, (double)secs, &ops, &ms) != 0 || ops == 0) {
			perror("ready: fsync probe");
			return 1;
		}
		printf("fsync.%s ops_per_s=%.0f mean_us=%.1f\n", names[mode], (double)ops * 1e3 / ms,
		       ms * 1e3 / (double)ops);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGHUP, on_signal);
	srand((unsigned)getpid() ^ (unsigned)time(NULL));
	if (argc >= 2 && strcmp(argv[1], "start") == 0)
		rc = cmd_start(argc - 1, argv + 1);
	else if (argc >= 2 && strcmp(argv[1], "wait") == 0)
		rc = cmd_wait(argc - 1, argv + 1);
	else if (argc >= 2 && strcmp(argv[1], "fsync") == 0)
		rc = cmd_fsync(argc - 1, argv + 1);
	else
		fprintf(stderr, "usage: ready start|wait|fsync ...\n");
	return rc;
}
