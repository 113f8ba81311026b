/*
 * test_config.c: configuration defaults, the file format, every kind of
 * refused value (with the key named in the message), environment overrides,
 * cross-key rules, modules' sections (a made-up one through
 * config_init_sections, and the real ones of src/modules.c), and that
 * config/egov.conf.example is exactly what config_write_defaults() writes.
 * Runs from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/config.h"
#include "core/limits.h"
#include "pki/pki.h"
#include "testutil.h"
#include "core/banned.h"

#define EXAMPLE_PATH "config/egov.conf.example"

typedef struct fixture {
	char *dir;
	char path[512];
	egov_config cfg;
	char msg[1024];
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	f->dir = test_tmpdir();
	if (!f->dir)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/test.conf", f->dir);
	config_init(&f->cfg);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	config_release(&f->cfg);
	test_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

static void write_bytes(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Writes text to the fixture's file and loads it over f->cfg. */
static egov_err load_text(fixture *f, const char *text)
{
	f->msg[0] = '\0';
	write_bytes(f->path, text, strlen(text));
	return config_load_file(&f->cfg, f->path, f->msg, sizeof f->msg);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected \"%s\" in message \"%s\"", needle, hay);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;

	assert_string_equal(c->listen, "127.0.0.1:8080");
	assert_int_equal(c->threads, 0);
	assert_int_equal(c->connections_max, EGOV_CONNECTIONS_MAX_DEFAULT);
	assert_int_equal(c->connections_per_ip, EGOV_CONNECTIONS_PER_IP_DEFAULT);
	assert_int_equal(c->timeout_s, EGOV_CONNECTION_TIMEOUT_DEFAULT);
	assert_int_equal(c->drain_s, 10);
	assert_string_equal(c->admin_token, "");
	assert_string_equal(c->role, "standalone");
	assert_string_equal(c->data_dir, "./var");
	assert_string_equal(c->database, "");
	assert_string_equal(c->web_dir, "web");
	assert_string_equal(c->log_file, "-");
	assert_string_equal(c->access_log, "");
	assert_string_equal(c->log_level, "info");

	assert_int_equal(config_finish(c, f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(c->database, "sqlite:./var/egov.db");
	assert_string_equal(c->access_log, "./var/access.log");
	/* Finishing again changes nothing. */
	assert_int_equal(config_finish(c, f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(c->database, "sqlite:./var/egov.db");
}

static void test_derived_from_data_dir(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;

	assert_int_equal(config_set(c, "data.dir", "/srv/egov/", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_finish(c, f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(c->database, "sqlite:/srv/egov/egov.db");
	assert_string_equal(c->access_log, "/srv/egov/access.log");
}

static void test_explicit_values_not_derived(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;

	assert_int_equal(config_set(c, "data.database", "postgresql://u@localhost/egov", f->msg,
				    sizeof f->msg), EGOV_OK);
	assert_int_equal(config_set(c, "log.access", "off", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_finish(c, f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(c->database, "postgresql://u@localhost/egov");
	assert_string_equal(c->access_log, "off");
}

/* ---- the file format ---- */

static void test_file_parsing(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;
	egov_err err = load_text(f,
		"\xef\xbb\xbf# comment line\n"
		"; another comment\n"
		"\n"
		"   [ server ]   # trailing comment\n"
		"listen=[::1]:9090\n"
		"\tthreads   =   4   ; inline comment\n"
		"connections_max = 500\r\n"
		"admin_token = \"0123456789abcdef#0123456789abcdef;\"  # quoted, with # and ;\n"
		"role = gateway\n"
		"[data]\n"
		"dir = /tmp/egov data\n"
		"database = \"sqlite:/tmp/with \\\"quote\\\" and \\\\ slash.db\"\n"
		"[log]\n"
		"level = debug\n"
		"access = \"\"\n"
		"[server]\n"
		"drain_s = 0");
	assert_int_equal(err, EGOV_OK);
	assert_string_equal(c->listen, "[::1]:9090");
	assert_int_equal(c->threads, 4);
	assert_int_equal(c->connections_max, 500);
	assert_string_equal(c->admin_token, "0123456789abcdef#0123456789abcdef;");
	assert_string_equal(c->role, "gateway");
	assert_string_equal(c->data_dir, "/tmp/egov data");
	assert_string_equal(c->database, "sqlite:/tmp/with \"quote\" and \\ slash.db");
	assert_string_equal(c->log_level, "debug");
	assert_string_equal(c->access_log, "");
	assert_int_equal(c->drain_s, 0);
	/* Keys the file does not name keep their values. */
	assert_int_equal(c->timeout_s, EGOV_CONNECTION_TIMEOUT_DEFAULT);
	assert_string_equal(c->web_dir, "web");
}

static void test_empty_file(void **state)
{
	fixture *f = *state;

	assert_int_equal(load_text(f, ""), EGOV_OK);
	assert_int_equal(load_text(f, "# only comments\n\n[server]\n"), EGOV_OK);
	assert_string_equal(f->cfg.listen, "127.0.0.1:8080");
}

/* ---- errors: each names file, line and key ---- */

typedef struct bad_case {
	const char *text;
	egov_err err;
	const char *want[3]; /* substrings of the message */
} bad_case;

static const bad_case bad_cases[] = {
	/* unknown key and section */
	{"[server]\nlisten_port = 1\n", EGOV_EINVAL,
	 {"test.conf:2: server.listen_port: unknown key", "expected one of listen, threads"}},
	{"[srv]\nlisten = 1\n", EGOV_EINVAL,
	 {"test.conf:1: [srv]: unknown section", "(expected one of server, data, web, log, system, pki, mail, oidc, exchange)"}},
	{"listen = 127.0.0.1:1\n", EGOV_EINVAL,
	 {"test.conf:1: listen: key outside a section"}},
	/* not integers */
	{"[server]\nthreads = four\n", EGOV_EINVAL,
	 {"test.conf:2: server.threads: \"four\" is not an integer",
	  "(expected an integer from 0 to 256)"}},
	{"[server]\nthreads = 4x\n", EGOV_EINVAL, {"test.conf:2: server.threads:", "not an integer"}},
	{"[server]\nthreads = 0x10\n", EGOV_EINVAL, {"server.threads:", "not an integer"}},
	{"[server]\nthreads = +4\n", EGOV_EINVAL, {"server.threads:", "not an integer"}},
	{"[server]\nthreads =\n", EGOV_EINVAL, {"server.threads: \"\" is not an integer"}},
	{"[server]\ntimeout_s = 99999999999999999999999\n", EGOV_EINVAL,
	 {"server.timeout_s:", "not an integer"}},
	/* out of range */
	{"[server]\nthreads = 257\n", EGOV_EINVAL,
	 {"test.conf:2: server.threads: \"257\" is out of range", "(expected an integer from 0 to 256)"}},
	{"[server]\nthreads = -1\n", EGOV_EINVAL, {"server.threads: \"-1\" is out of range"}},
	{"[server]\ntimeout_s = 0\n", EGOV_EINVAL,
	 {"server.timeout_s:", "out of range", "from 1 to 3600"}},
	{"[server]\ndrain_s = 601\n", EGOV_EINVAL, {"server.drain_s:", "out of range"}},
	{"[server]\nconnections_max = 1000001\n", EGOV_EINVAL, {"server.connections_max:", "out of range"}},
	{"[server]\nconnections_per_ip = 0\n", EGOV_EINVAL, {"server.connections_per_ip:", "out of range"}},
	/* enums */
	{"[server]\nrole = hub\n", EGOV_EINVAL,
	 {"test.conf:2: server.role: \"hub\" is not allowed",
	  "(expected one of standalone, central, gateway)"}},
	{"[log]\nlevel = Info\n", EGOV_EINVAL,
	 {"log.level: \"Info\" is not allowed", "(expected one of debug, info, warn, error)"}},
	/* listen addresses */
	{"[server]\nlisten = localhost:8080\n", EGOV_EINVAL,
	 {"test.conf:2: server.listen: \"localhost:8080\" is not a valid address",
	  "(expected ADDR:PORT with an IPv4 address, or [IPv6]:PORT; port 1-65535)"}},
	{"[server]\nlisten = 127.0.0.1\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = 127.0.0.1:\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = :8080\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = 127.0.0.1:0\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = 127.0.0.1:65536\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = 127.0.0.1:80a\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = 256.0.0.1:80\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = ::1:8080\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = [::1]8080\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = [127.0.0.1]:80\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	{"[server]\nlisten = []:80\n", EGOV_EINVAL, {"server.listen:", "not a valid address"}},
	/* secrets: named, never echoed */
	{"[server]\nadmin_token = tooshort\n", EGOV_EINVAL,
	 {"test.conf:2: server.admin_token: the value is too short: 8 characters",
	  "(expected \"\" or at least 32 characters)"}},
	{"[data]\ndatabase = mysql://root:pw@db/egov\n", EGOV_EINVAL,
	 {"test.conf:2: data.database: the value has an unknown scheme",
	  "(expected \"\", sqlite:PATH, postgres://... or postgresql://...)"}},
	{"[data]\ndatabase = sqlite:\n", EGOV_EINVAL, {"data.database:", "names no file"}},
	{"[data]\ndatabase = postgres:/x\n", EGOV_EINVAL, {"data.database:", "unknown scheme"}},
	{"[data]\ndir = \"\"\n", EGOV_EINVAL, {"data.dir: \"\" is empty", "(expected a directory path)"}},
	{"[log]\nfile =\n", EGOV_EINVAL, {"log.file:", "is empty"}},
	/* structure */
	{"[server]\nlisten = 127.0.0.1:1\nthreads = 2\nlisten = 127.0.0.1:2\n", EGOV_EINVAL,
	 {"test.conf:4: server.listen: duplicate key (first set on line 2)"}},
	{"[server]\nthreads = 2\n[server]\nthreads = 3\n", EGOV_EINVAL,
	 {"test.conf:4: server.threads: duplicate key"}},
	{"[server]\njust some words\n", EGOV_EINVAL,
	 {"test.conf:2: malformed line", "(expected key = value or [section])"}},
	{"[server\n", EGOV_EINVAL, {"test.conf:1: malformed section line"}},
	{"[server] junk\n", EGOV_EINVAL, {"test.conf:1: malformed section line"}},
	{"[server]\nLISTEN = 127.0.0.1:1\n", EGOV_EINVAL, {"test.conf:2: malformed key"}},
	{"[server]\n= 5\n", EGOV_EINVAL, {"test.conf:2: malformed key"}},
	{"[server]\nrole = \"central\n", EGOV_EINVAL,
	 {"test.conf:2: server.role: unterminated quoted value"}},
	{"[server]\nrole = \"central\" extra\n", EGOV_EINVAL,
	 {"test.conf:2: server.role: text after the closing quote"}},
	{"[server]\nrole = \"cen\\tral\"\n", EGOV_EINVAL,
	 {"test.conf:2: server.role: unknown escape"}},
};

static void test_bad_files(void **state)
{
	fixture *f = *state;
	size_t i;
	int j;

	for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		const bad_case *bc = &bad_cases[i];
		egov_err err;

		config_release(&f->cfg);
		config_init(&f->cfg);
		err = load_text(f, bc->text);
		if (err != bc->err)
			fail_msg("case %zu (%s): got %s, want %s; message \"%s\"", i, bc->text,
				 egov_err_name(err), egov_err_name(bc->err), f->msg);
		/* Every message starts with the file's path. */
		assert_true(strncmp(f->msg, f->path, strlen(f->path)) == 0);
		for (j = 0; j < 3 && bc->want[j]; j++)
			assert_contains(f->msg, bc->want[j]);
	}
}

static void test_secrets_not_echoed(void **state)
{
	fixture *f = *state;

	assert_int_equal(load_text(f, "[server]\nadmin_token = s3cr3t-but-short\n"), EGOV_EINVAL);
	assert_null(strstr(f->msg, "s3cr3t"));
	assert_int_equal(load_text(f, "[data]\ndatabase = mysql://root:hunter2@db/egov\n"), EGOV_EINVAL);
	assert_null(strstr(f->msg, "hunter2"));
}

static void test_line_too_long(void **state)
{
	fixture *f = *state;
	size_t n = EGOV_CONFIG_LINE_MAX + 64;
	char *text = malloc(n + 32);
	size_t len;

	assert_non_null(text);
	len = (size_t)snprintf(text, n + 32, "[web]\ndir = ");
	memset(text + len, 'a', n - len);
	text[n] = '\n';
	text[n + 1] = '\0';
	assert_int_equal(load_text(f, text), EGOV_ELIMIT);
	assert_contains(f->msg, "test.conf:2: line too long");
	assert_contains(f->msg, "(expected at most 4096 bytes)");

	/* A line of exactly the limit is fine. */
	len = (size_t)snprintf(text, n + 32, "[web]\ndir = ");
	memset(text + len, 'a', 6 + EGOV_CONFIG_LINE_MAX - len);
	text[6 + EGOV_CONFIG_LINE_MAX] = '\n';
	text[6 + EGOV_CONFIG_LINE_MAX + 1] = '\0';
	assert_int_equal(load_text(f, text), EGOV_OK);
	assert_int_equal(strlen(f->cfg.web_dir), EGOV_CONFIG_LINE_MAX - 6);
	free(text);
}

static void test_file_too_large(void **state)
{
	fixture *f = *state;
	size_t n = EGOV_CONFIG_FILE_MAX + 1;
	char *text = malloc(n + 1);
	size_t i;

	assert_non_null(text);
	for (i = 0; i < n; i++)
		text[i] = (i % 64 == 63) ? '\n' : '#';
	text[n] = '\0';
	assert_int_equal(load_text(f, text), EGOV_ELIMIT);
	assert_contains(f->msg, "file too large");
	/* Exactly at the cap is accepted. */
	text[n - 1] = '\0';
	assert_int_equal(load_text(f, text), EGOV_OK);
	free(text);
}

static void test_nul_byte(void **state)
{
	fixture *f = *state;

	write_bytes(f->path, "[server]\nrole = central\0x\n", 26);
	assert_int_equal(config_load_file(&f->cfg, f->path, f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "NUL byte");
}

static void test_missing_file(void **state)
{
	fixture *f = *state;
	char path[600];

	snprintf(path, sizeof path, "%s/no-such.conf", f->dir);
	assert_int_equal(config_load_file(&f->cfg, path, f->msg, sizeof f->msg), EGOV_ENOTFOUND);
	assert_contains(f->msg, path);
	assert_contains(f->msg, "cannot open");
	/* A directory is not a config file. */
	assert_int_equal(config_load_file(&f->cfg, f->dir, f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "not a regular file");
}

/* ---- config_set ---- */

static void test_set(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;

	assert_int_equal(config_set(c, "server.threads", "8", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(c->threads, 8);
	/* A refused value leaves the old one. */
	assert_int_equal(config_set(c, "server.threads", "eight", f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_int_equal(c->threads, 8);
	assert_contains(f->msg, "server.threads: \"eight\" is not an integer");
	assert_int_equal(config_set(c, "server.listen", "nope", f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_string_equal(c->listen, "127.0.0.1:8080");

	assert_int_equal(config_set(c, "server.nope", "1", f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "server.nope: unknown key");
	assert_int_equal(config_set(c, "listen", "1", f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "listen: unknown key");

	/* Control characters (only reachable from flags and environment). */
	assert_int_equal(config_set(c, "web.dir", "a\nb", f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "web.dir: \"a?b\" contains a control character");

	assert_int_equal(config_set(c, "server.admin_token", "0123456789abcdef0123456789abcdef",
				    f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(c->admin_token, "0123456789abcdef0123456789abcdef");
	assert_int_equal(config_set(c, "server.admin_token", "", f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(c->admin_token, "");
	assert_int_equal(config_set(c, "data.database", "postgres://h/db", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_set(c, "data.database", "sqlite:x.db", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_set(c, "server.listen", "0.0.0.0:1", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_set(c, "server.listen", "[::]:65535", f->msg, sizeof f->msg), EGOV_OK);
}

static void test_listen_addr(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)&ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)&ss;

	(void)state;
	assert_int_equal(config_listen_addr("127.0.0.1:8081", &ss, &len), EGOV_OK);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(s4->sin_port), 8081);
	assert_int_equal(ntohl(s4->sin_addr.s_addr), 0x7f000001);

	assert_int_equal(config_listen_addr("[::1]:443", &ss, &len), EGOV_OK);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(s6->sin6_port), 443);
	assert_true(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));

	assert_int_equal(config_listen_addr("127.0.0.1", &ss, &len), EGOV_EINVAL);
}

/* ---- environment ---- */

static void test_env_overrides_file(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;

	assert_int_equal(load_text(f, "[server]\nlisten = 127.0.0.1:7000\nthreads = 2\n"
				      "[log]\nlevel = warn\n"), EGOV_OK);
	setenv("EGOV_SERVER_LISTEN", "[::1]:7001", 1);
	setenv("EGOV_LOG_LEVEL", "error", 1);
	setenv("EGOV_SERVER_ADMIN_TOKEN", "", 1);
	setenv("EGOV_TEST_SOMETHING", "ignored: not a section prefix", 1);
	assert_int_equal(config_load_env(c, f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(c->listen, "[::1]:7001");
	assert_string_equal(c->log_level, "error");
	assert_int_equal(c->threads, 2); /* the file's, no variable for it */
	assert_string_equal(c->admin_token, "");
	unsetenv("EGOV_SERVER_LISTEN");
	unsetenv("EGOV_LOG_LEVEL");
	unsetenv("EGOV_SERVER_ADMIN_TOKEN");
	unsetenv("EGOV_TEST_SOMETHING");
}

static void test_env_errors(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;

	setenv("EGOV_SERVER_THREADS", "many", 1);
	assert_int_equal(config_load_env(c, f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "environment EGOV_SERVER_THREADS: server.threads: \"many\" is not an integer");
	unsetenv("EGOV_SERVER_THREADS");

	setenv("EGOV_DATA_DATABASE", "oracle://x", 1);
	assert_int_equal(config_load_env(c, f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "environment EGOV_DATA_DATABASE: data.database:");
	unsetenv("EGOV_DATA_DATABASE");

	/* A misspelt variable of one of our sections is refused, not ignored. */
	setenv("EGOV_SERVER_LISTN", "127.0.0.1:1", 1);
	assert_int_equal(config_load_env(c, f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "environment EGOV_SERVER_LISTN: unknown variable");
	unsetenv("EGOV_SERVER_LISTN");

	assert_int_equal(config_load_env(c, f->msg, sizeof f->msg), EGOV_OK);
}

/* ---- cross-key rules ---- */

static void test_finish_cross_keys(void **state)
{
	fixture *f = *state;
	egov_config *c = &f->cfg;

	assert_int_equal(load_text(f, "[server]\nconnections_max = 10\nconnections_per_ip = 11\n"), EGOV_OK);
	assert_int_equal(config_finish(c, f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "server.connections_per_ip: 11 is more than server.connections_max 10");
	assert_int_equal(config_set(c, "server.connections_per_ip", "10", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_finish(c, f->msg, sizeof f->msg), EGOV_OK);
}


/* ---- modules' sections ---- */

/* A module's section as a module declares it: its own struct, a string
 * with a check, an int, a bool, an enum, a secret, and a finish step that
 * derives a default from the kernel's values. */
typedef struct fake_values {
	char *url;
	int count;
	bool on;
	char *mode;
	char *secret;
	int finished; /* set by finish: it ran, after the kernel's */
} fake_values;

static const char *const fake_modes[] = {"a", "b", NULL};

static const config_key fake_keys[] = {
	{.name = "url", .type = CONFIG_STRING, .offset = offsetof(fake_values, url), .str_default = "",
	 .check = config_check_http_url, .expect = "an http(s) URL", .desc = "A URL."},
	{.name = "count", .type = CONFIG_INT, .offset = offsetof(fake_values, count), .int_default = 7, .min = 1,
	 .max = 9, .desc = "A count."},
	{.name = "on", .type = CONFIG_BOOL, .offset = offsetof(fake_values, on), .int_default = 1, .desc = "A flag."},
	{.name = "mode", .type = CONFIG_ENUM, .offset = offsetof(fake_values, mode), .str_default = "a",
	 .allowed = fake_modes, .desc = "A mode."},
	{.name = "secret", .type = CONFIG_STRING, .offset = offsetof(fake_values, secret), .str_default = "",
	 .check = config_check_nonempty, .expect = "a secret", .secret = true, .desc = "A secret."},
};

static egov_err fake_finish(void *values, const egov_config *cfg, char *errmsg, size_t errlen)
{
	fake_values *v = values;
	char *url;

	/* The kernel's finish ran first: data.database is derived already. */
	if (strncmp(cfg->database, "sqlite:", 7) != 0 && strncmp(cfg->database, "postgres", 8) != 0) {
		snprintf(errmsg, errlen, "fake: the kernel's values are not finished");
		return EGOV_EINTERNAL;
	}
	if (v->count == 9) {
		snprintf(errmsg, errlen, "fake.count: 9 is not allowed with fake.on");
		return EGOV_EINVAL;
	}
	v->finished++;
	if (v->url[0])
		return EGOV_OK;
	if (!(url = malloc(strlen(cfg->listen) + 8)))
		return EGOV_ENOMEM;
	snprintf(url, strlen(cfg->listen) + 8, "http://%s", cfg->listen);
	free(v->url);
	v->url = url;
	return EGOV_OK;
}

static const config_section fake_section = {
	.name = "fake",
	.desc = "A module's section, for the tests.",
	.keys = fake_keys,
	.nkeys = sizeof fake_keys / sizeof fake_keys[0],
	.size = sizeof(fake_values),
	.finish = fake_finish,
};

static const config_section *const fake_sections[] = {&fake_section};
static const config_section other_section = {.name = "other", .keys = fake_keys, .nkeys = 1, .size = 8};

static int setup_fake(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	if (!f || !(f->dir = test_tmpdir()))
		return -1;
	snprintf(f->path, sizeof f->path, "%s/test.conf", f->dir);
	config_init_sections(&f->cfg, fake_sections, 1);
	*state = f;
	return 0;
}

static void test_module_section_defaults_and_sources(void **state)
{
	fixture *f = *state;
	const fake_values *v = config_section_values(&f->cfg, &fake_section);

	assert_non_null(v);
	assert_null(config_section_values(&f->cfg, &other_section));
	assert_string_equal(v->url, "");
	assert_int_equal(v->count, 7);
	assert_true(v->on);
	assert_string_equal(v->mode, "a");
	/* The file, then the environment, then config_set, as for the kernel's keys. */
	assert_int_equal(load_text(f, "[server]\nthreads = 2\n[fake]\ncount = 3\non = no\nmode = b\n"), EGOV_OK);
	assert_int_equal(v->count, 3);
	assert_false(v->on);
	assert_string_equal(v->mode, "b");
	assert_int_equal(f->cfg.threads, 2);
	setenv("EGOV_FAKE_COUNT", "4", 1);
	assert_int_equal(config_load_env(&f->cfg, f->msg, sizeof f->msg), EGOV_OK);
	unsetenv("EGOV_FAKE_COUNT");
	assert_int_equal(v->count, 4);
	assert_int_equal(config_set(&f->cfg, "fake.url", "https://egov.example", f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(v->url, "https://egov.example");
	assert_int_equal(config_finish(&f->cfg, f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(v->finished, 1);
	assert_string_equal(v->url, "https://egov.example"); /* set: not derived */
}

static void test_module_section_errors(void **state)
{
	fixture *f = *state;
	const fake_values *v = config_section_values(&f->cfg, &fake_section);

	assert_int_equal(load_text(f, "[fake]\nnope = 1\n"), EGOV_EINVAL);
	assert_contains(f->msg, "test.conf:2: fake.nope: unknown key (expected one of url, count, on, mode, secret)");
	assert_int_equal(load_text(f, "[fake]\ncount = 10\n"), EGOV_EINVAL);
	assert_contains(f->msg, "test.conf:2: fake.count: \"10\" is out of range (expected an integer from 1 to 9)");
	assert_int_equal(load_text(f, "[fake]\nurl = ftp://x\n"), EGOV_EINVAL);
	assert_contains(f->msg, "fake.url: \"ftp://x\" is not an http:// or https:// URL with a host");
	assert_int_equal(load_text(f, "[fake]\nsecret = \"\"\n"), EGOV_EINVAL);
	assert_contains(f->msg, "fake.secret: the value is empty (expected a secret)");
	assert_int_equal(load_text(f, "[fake]\nmode = c\n"), EGOV_EINVAL);
	assert_contains(f->msg, "fake.mode: \"c\" is not allowed (expected one of a, b)");
	assert_int_equal(load_text(f, "[pki]\ncheckpoint_every = 5\n"), EGOV_EINVAL);
	assert_contains(f->msg, "[pki]: unknown section (expected one of server, data, web, log, fake)");
	setenv("EGOV_FAKE_CUONT", "4", 1);
	assert_int_equal(config_load_env(&f->cfg, f->msg, sizeof f->msg), EGOV_EINVAL);
	unsetenv("EGOV_FAKE_CUONT");
	assert_contains(f->msg, "environment EGOV_FAKE_CUONT: unknown variable");
	assert_int_equal(config_set(&f->cfg, "fake.count", "9", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_finish(&f->cfg, f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_contains(f->msg, "fake.count: 9 is not allowed with fake.on");
	/* A value the finish step derives, from the kernel's keys. */
	assert_int_equal(config_set(&f->cfg, "fake.count", "2", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_set(&f->cfg, "server.listen", "[::1]:9000", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_finish(&f->cfg, f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(v->url, "http://[::1]:9000");
}

/* A module may not take a section's name that is already taken. */
static void test_module_section_twice(void **state)
{
	static const config_section dup = {.name = "server", .keys = fake_keys, .nkeys = 1, .size = sizeof(fake_values)};
	static const config_section *const secs[] = {&dup};
	egov_config c;
	char msg[256];

	(void)state;
	config_init_sections(&c, secs, 1);
	assert_int_equal(config_finish(&c, msg, sizeof msg), EGOV_EINTERNAL);
	assert_non_null(strstr(msg, "[server]: declared twice"));
	config_release(&c);
}

/* The modules of src/modules.c: their keys, their finish steps in module
 * order (oidc.issuer from pki.public_url from server.listen). */
static void test_modules_sections(void **state)
{
	fixture *f = *state;

	assert_int_equal(load_text(f, "[mail]\nsmtp_port = 587\npassword = hunter2-but-fine\n"
				      "[exchange]\ninstance = EE\n[oidc]\naccess_token_ttl = 600\n"),
			 EGOV_OK);
	assert_int_equal(config_set(&f->cfg, "server.listen", "127.0.0.1:9443", f->msg, sizeof f->msg), EGOV_OK);
	assert_int_equal(config_finish(&f->cfg, f->msg, sizeof f->msg), EGOV_OK);
	assert_string_equal(pki_public_url(&f->cfg), "http://127.0.0.1:9443");
	assert_int_equal(load_text(f, "[oidc]\naccess_token_ttl = 30\n"), EGOV_EINVAL);
	assert_contains(f->msg, "oidc.access_token_ttl: \"30\" is out of range (expected an integer from 60 to 600)");
	assert_int_equal(load_text(f, "[mail]\npassword = \"a\\tb\"\n"), EGOV_EINVAL);
	assert_contains(f->msg, "mail.password: unknown escape");
	assert_int_equal(config_set(&f->cfg, "mail.password", "x\ny", f->msg, sizeof f->msg), EGOV_EINVAL);
	assert_null(strstr(f->msg, "x?y"));
	assert_contains(f->msg, "mail.password: the value contains a control character");
	assert_int_equal(config_set(&f->cfg, "pki.public_url", "https://egov.example/", f->msg, sizeof f->msg),
			 EGOV_EINVAL);
	assert_contains(f->msg, "pki.public_url: \"https://egov.example/\" ends with '/'");
	/* Without a [pki] section, nothing to read. */
	assert_string_equal(pki_public_url(NULL), "");
}

/* ---- the documented defaults ---- */

static char *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *data = NULL;
	long n;

	if (!fp)
		return NULL;
	if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0) {
		data = malloc((size_t)n + 1);
		if (data && fread(data, 1, (size_t)n, fp) == (size_t)n) {
			data[n] = '\0';
			*len = (size_t)n;
		} else {
			free(data);
			data = NULL;
		}
	}
	fclose(fp);
	return data;
}

static void test_example_file_matches(void **state)
{
	buf b;
	size_t len = 0;
	char *file = read_all(EXAMPLE_PATH, &len);

	(void)state;
	if (!file)
		fail_msg("cannot read %s (run the tests from the repository root)", EXAMPLE_PATH);
	buf_init(&b, 1 << 20);
	assert_int_equal(config_write_defaults(&b), EGOV_OK);
	if (b.len != len || memcmp(b.data, file, len) != 0)
		fail_msg("%s differs from config_write_defaults(); regenerate it with "
			 "`build/egov config defaults > %s`", EXAMPLE_PATH, EXAMPLE_PATH);
	buf_release(&b);
	free(file);
}

/* Uncommenting every "# key = default" line of the documented file gives a
 * config that loads and equals the built-in defaults: the docs' defaults and
 * quoting are the real ones. */
static void test_defaults_file_round_trip(void **state)
{
	fixture *f = *state;
	egov_config d;
	buf b, out;
	const char *p;

	buf_init(&b, 1 << 20);
	buf_init(&out, 1 << 20);
	assert_int_equal(config_write_defaults(&b), EGOV_OK);
	for (p = b.data; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) + 1 : strlen(p);
		bool is_key = n > 2 && p[0] == '#' && p[1] == ' ' && p[2] >= 'a' && p[2] <= 'z' &&
			      memchr(p, '=', n) && !memchr(p, '.', (size_t)((const char *)memchr(p, '=', n) - p));
		if (is_key)
			assert_int_equal(buf_add(&out, p + 2, n - 2), EGOV_OK);
		else
			assert_int_equal(buf_add(&out, p, n), EGOV_OK);
		p += n;
	}
	assert_non_null(strstr(out.data, "\nlisten = 127.0.0.1:8080\n"));
	assert_non_null(strstr(out.data, "\nadmin_token = \"\"\n"));
	config_release(&f->cfg);
	config_init(&f->cfg);
	config_init(&d);
	if (load_text(f, out.data) != EGOV_OK)
		fail_msg("defaults file does not load: %s", f->msg);
	assert_string_equal(f->cfg.listen, d.listen);
	assert_int_equal(f->cfg.threads, d.threads);
	assert_int_equal(f->cfg.connections_max, d.connections_max);
	assert_int_equal(f->cfg.connections_per_ip, d.connections_per_ip);
	assert_int_equal(f->cfg.timeout_s, d.timeout_s);
	assert_int_equal(f->cfg.drain_s, d.drain_s);
	assert_string_equal(f->cfg.admin_token, d.admin_token);
	assert_string_equal(f->cfg.role, d.role);
	assert_string_equal(f->cfg.data_dir, d.data_dir);
	assert_string_equal(f->cfg.database, d.database);
	assert_string_equal(f->cfg.web_dir, d.web_dir);
	assert_string_equal(f->cfg.log_file, d.log_file);
	assert_string_equal(f->cfg.access_log, d.access_log);
	assert_string_equal(f->cfg.log_level, d.log_level);
	config_release(&d);
	buf_release(&b);
	buf_release(&out);
}

static void test_write_defaults_cap(void **state)
{
	buf b;

	(void)state;
	buf_init(&b, 100);
	assert_int_equal(config_write_defaults(&b), EGOV_ELIMIT);
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_derived_from_data_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_explicit_values_not_derived, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_parsing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_not_echoed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set, setup, teardown),
		cmocka_unit_test(test_listen_addr),
		cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_finish_cross_keys, setup, teardown),
		cmocka_unit_test(test_example_file_matches),
		cmocka_unit_test_setup_teardown(test_defaults_file_round_trip, setup, teardown),
		cmocka_unit_test(test_write_defaults_cap),
		cmocka_unit_test_setup_teardown(test_module_section_defaults_and_sources, setup_fake, teardown),
		cmocka_unit_test_setup_teardown(test_module_section_errors, setup_fake, teardown),
		cmocka_unit_test(test_module_section_twice),
		cmocka_unit_test_setup_teardown(test_modules_sections, setup, teardown),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
