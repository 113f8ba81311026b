/*
 * config.c: the configuration machinery: defaults, the file parser, the
 * environment, config_set and the cross-key rules, all driven by the key
 * tables of the sections (the kernel's in config_keys.c, each module's in
 * the module), which also write the documented example file
 * (config_doc.c), so a key cannot be parsed one way and documented
 * another.
 *
 * A "slot" is one section with the struct that holds its values: the
 * kernel's four sections hold theirs in egov_config itself, each module's
 * section in a struct of its own that config_init allocates. Slots are
 * walked in a fixed order, the kernel's then the modules' in module order,
 * and that order is the order of the documented file, of the finish steps
 * and of the sections named in messages.
 *
 * Invariants: after config_init every string value is a heap copy (or NULL
 * if memory ran out, which config_finish reports); a failed set leaves the
 * value as it was. Values are validated when set, so a value always
 * satisfies its key's type and range; config_finish adds the rules that
 * span keys and fills derived defaults. Secret values (the operator token,
 * database URLs that may hold a password, the SMTP password) are never
 * echoed in error messages.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config_int.h"
#include "core/limits.h"
#include "core/module.h"
#include "core/banned.h"

extern char **environ;

/* One section and the struct of its values. */
typedef struct slot {
	const config_section *s;
	void *values; /* NULL: a module's struct that could not be allocated */
} slot;

static size_t slot_count(const egov_config *c)
{
	return CONFIG_KERNEL_SECTIONS + c->nsections;
}

static slot slot_at(const egov_config *c, size_t i)
{
	if (i < CONFIG_KERNEL_SECTIONS)
		return (slot){&config_kernel_sections[i], (void *)(uintptr_t)c};
	return (slot){c->sections[i - CONFIG_KERNEL_SECTIONS], c->values[i - CONFIG_KERNEL_SECTIONS]};
}

/* ---- field access ---- */

static char **str_field(void *values, const config_key *k)
{
	return (char **)(void *)((char *)values + k->offset);
}

static int *int_field(void *values, const config_key *k)
{
	return (int *)(void *)((char *)values + k->offset);
}

static bool *bool_field(void *values, const config_key *k)
{
	return (bool *)(void *)((char *)values + k->offset);
}

static bool is_string(const config_key *k)
{
	return k->type == CONFIG_STRING || k->type == CONFIG_ENUM;
}

/* ---- messages ---- */

void config_key_expect(const config_key *k, char *out, size_t outlen)
{
	size_t used;
	int i;

	switch (k->type) {
	case CONFIG_INT:
		snprintf(out, outlen, "an integer from %lld to %lld", k->min, k->max);
		break;
	case CONFIG_BOOL:
		snprintf(out, outlen, "true or false");
		break;
	case CONFIG_ENUM:
		used = (size_t)snprintf(out, outlen, "one of");
		for (i = 0; k->allowed[i] && used < outlen; i++)
			used += (size_t)snprintf(out + used, outlen - used, "%s%s",
						 i ? ", " : " ", k->allowed[i]);
		break;
	case CONFIG_STRING:
		snprintf(out, outlen, "%s", k->expect);
		break;
	}
}

/* The value as shown in a message: quoted, cut short, controls masked;
 * secrets are not shown at all. */
static void show_value(const config_key *k, const char *v, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (k->secret) {
		snprintf(out, outlen, "the value");
		return;
	}
	if (outlen < 8) {
		if (outlen)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (i = 0; v[i] && o + 5 < outlen; i++)
		out[o++] = ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) ? '?' : v[i];
	if (v[i]) {
		out[o++] = '.';
		out[o++] = '.';
		out[o++] = '.';
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* "section.key: <value> <why> (expected ...)" */
static void key_error(const config_section *s, const config_key *k, const char *value, const char *why, char *msg,
		      size_t len)
{
	char expect[256], shown[80];

	config_key_expect(k, expect, sizeof expect);
	show_value(k, value, shown, sizeof shown);
	snprintf(msg, len, "%s.%s: %s %s (expected %s)", s->name, k->name, shown, why, expect);
}

/* ---- setting one key ---- */

static egov_err key_set(slot sl, const config_key *k, const char *v, char *msg, size_t len)
{
	char why[128] = "";
	long long n;
	size_t i;
	char *copy = NULL;
	char **field;
	egov_err err = EGOV_OK;

	switch (k->type) {
	case CONFIG_INT:
		if (!config_parse_ll(v, &n)) {
			key_error(sl.s, k, v, "is not an integer", msg, len);
			err = EGOV_EINVAL;
		} else if (n < k->min || n > k->max) {
			key_error(sl.s, k, v, "is out of range", msg, len);
			err = EGOV_EINVAL;
		} else {
			*int_field(sl.values, k) = (int)n;
		}
		goto out;
	case CONFIG_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1")) {
			*bool_field(sl.values, k) = true;
		} else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") ||
			   !strcmp(v, "0")) {
			*bool_field(sl.values, k) = false;
		} else {
			key_error(sl.s, k, v, "is not a boolean", msg, len);
			err = EGOV_EINVAL;
		}
		goto out;
	case CONFIG_ENUM:
		for (i = 0; k->allowed[i]; i++)
			if (!strcmp(v, k->allowed[i]))
				break;
		if (!k->allowed[i]) {
			key_error(sl.s, k, v, "is not allowed", msg, len);
			err = EGOV_EINVAL;
			goto out;
		}
		break;
	case CONFIG_STRING:
		for (i = 0; v[i]; i++) {
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
				key_error(sl.s, k, v, "contains a control character", msg, len);
				err = EGOV_EINVAL;
				goto out;
			}
		}
		if (k->check && !k->check(v, why, sizeof why)) {
			key_error(sl.s, k, v, why, msg, len);
			err = EGOV_EINVAL;
			goto out;
		}
		break;
	}
	copy = strdup(v);
	if (!copy) {
		snprintf(msg, len, "%s.%s: out of memory", sl.s->name, k->name);
		err = EGOV_ENOMEM;
		goto out;
	}
	field = str_field(sl.values, k);
	free(*field);
	*field = copy;
	copy = NULL;
out:
	free(copy);
	return err;
}

/* The slot named section[0..slen), or -1. */
static long slot_find(const egov_config *c, const char *section, size_t slen)
{
	size_t i;

	for (i = 0; i < slot_count(c); i++) {
		const char *name = slot_at(c, i).s->name;
		if (strlen(name) == slen && !memcmp(name, section, slen))
			return (long)i;
	}
	return -1;
}

/* The key name[0..nlen) of section s, or NULL. */
static const config_key *key_find(const config_section *s, const char *name, size_t nlen)
{
	size_t i;

	for (i = 0; i < s->nkeys; i++)
		if (strlen(s->keys[i].name) == nlen && !memcmp(s->keys[i].name, name, nlen))
			return &s->keys[i];
	return NULL;
}

/* Lists the keys of a section ("listen, threads, ...") for messages. */
static void section_keys(const config_section *s, char *out, size_t outlen)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < s->nkeys && used < outlen; i++)
		used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", s->keys[i].name);
}

/* Lists the sections ("server, data, ...") for messages. */
static void section_names(const egov_config *c, char *out, size_t outlen)
{
	size_t i, used = 0;

	out[0] = '\0';
	for (i = 0; i < slot_count(c) && used < outlen; i++)
		used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", slot_at(c, i).s->name);
}

/* ---- public: lifecycle ---- */

static void section_defaults(const config_section *s, void *values)
{
	size_t i;

	for (i = 0; i < s->nkeys; i++) {
		const config_key *k = &s->keys[i];
		switch (k->type) {
		case CONFIG_INT:
			*int_field(values, k) = (int)k->int_default;
			break;
		case CONFIG_BOOL:
			*bool_field(values, k) = k->int_default != 0;
			break;
		case CONFIG_STRING:
		case CONFIG_ENUM:
			/* NULL on out of memory; config_finish reports it. */
			*str_field(values, k) = strdup(k->str_default);
			break;
		}
	}
}

void config_init_sections(egov_config *c, const config_section *const *sections, size_t n)
{
	size_t i;

	memset(c, 0, sizeof *c);
	for (i = 0; i < CONFIG_KERNEL_SECTIONS; i++)
		section_defaults(&config_kernel_sections[i], c);
	if (n == 0)
		return;
	c->sections = calloc(n, sizeof *c->sections);
	c->values = calloc(n, sizeof *c->values);
	if (!c->sections || !c->values) {
		free(c->sections);
		free(c->values);
		c->sections = NULL;
		c->values = NULL;
		c->oom = true;
		return;
	}
	c->nsections = n;
	for (i = 0; i < n; i++) {
		c->sections[i] = sections[i];
		c->values[i] = calloc(1, sections[i]->size ? sections[i]->size : 1);
		if (c->values[i])
			section_defaults(sections[i], c->values[i]);
		else
			c->oom = true;
	}
}

egov_err config_module_sections(const config_section ***out, size_t *n)
{
	size_t i;

	*out = NULL;
	*n = 0;
	if (!(*out = calloc(egov_modules_count + 1, sizeof **out)))
		return EGOV_ENOMEM;
	for (i = 0; i < egov_modules_count; i++)
		if (egov_modules[i]->config)
			(*out)[(*n)++] = egov_modules[i]->config;
	return EGOV_OK;
}

void config_init(egov_config *c)
{
	const config_section **secs = NULL;
	size_t n = 0;
	bool oom = config_module_sections(&secs, &n) != EGOV_OK;

	config_init_sections(c, secs, n);
	c->oom = c->oom || oom;
	free(secs);
}

static void values_release(const config_section *s, void *values)
{
	size_t i;

	for (i = 0; i < s->nkeys; i++) {
		if (is_string(&s->keys[i])) {
			char **f = str_field(values, &s->keys[i]);
			free(*f);
			*f = NULL;
		}
	}
}

void config_release(egov_config *c)
{
	size_t i;

	for (i = 0; i < CONFIG_KERNEL_SECTIONS; i++)
		values_release(&config_kernel_sections[i], c);
	for (i = 0; i < c->nsections; i++) {
		if (!c->values[i])
			continue;
		if (c->sections[i]->release)
			c->sections[i]->release(c->values[i]);
		values_release(c->sections[i], c->values[i]);
		free(c->values[i]);
	}
	free(c->sections);
	free(c->values);
	memset(c, 0, sizeof *c);
}

const void *config_section_values(const egov_config *c, const config_section *s)
{
	size_t i;

	for (i = 0; c && i < c->nsections; i++)
		if (c->sections[i] == s)
			return c->values[i];
	return NULL;
}

egov_err config_set(egov_config *c, const char *key, const char *value, char *errmsg, size_t errlen)
{
	const char *dot = strchr(key, '.');
	const config_key *k = NULL;
	long si = -1;

	if (dot && (si = slot_find(c, key, (size_t)(dot - key))) >= 0 && slot_at(c, (size_t)si).values)
		k = key_find(slot_at(c, (size_t)si).s, dot + 1, strlen(dot + 1));
	if (!k) {
		snprintf(errmsg, errlen, "%s: unknown key (expected section.key, e.g. server.listen)",
			 key);
		return EGOV_EINVAL;
	}
	return key_set(slot_at(c, (size_t)si), k, value, errmsg, errlen);
}

/* ---- the file ---- */

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

static char *trim(char *s, char **end)
{
	char *e = *end;

	while (s < e && is_space(*s))
		s++;
	while (e > s && (is_space(e[-1]) || e[-1] == '\r'))
		e--;
	*e = '\0';
	*end = e;
	return s;
}

static bool rest_is_comment(const char *p)
{
	while (is_space(*p))
		p++;
	return *p == '\0' || *p == '#' || *p == ';';
}

/* Parses the value part of "key = value" in place. Quoted: "..." with \" and
 * \\ escapes, then only a comment may follow. Unquoted: up to the first '#'
 * or ';', trimmed. Returns NULL and a reason on malformed input. */
static char *parse_value(char *p, const char **why)
{
	char *start, *o;

	while (is_space(*p))
		p++;
	if (*p != '"') {
		char *e;
		start = p;
		while (*p && *p != '#' && *p != ';')
			p++;
		e = p;
		while (e > start && is_space(e[-1]))
			e--;
		*e = '\0';
		return start;
	}
	start = o = ++p;
	for (;; p++) {
		if (*p == '\0') {
			*why = "unterminated quoted value (expected a closing \")";
			return NULL;
		}
		if (*p == '"')
			break;
		if (*p == '\\') {
			if (p[1] != '"' && p[1] != '\\') {
				*why = "unknown escape in quoted value (expected \\\" or \\\\)";
				return NULL;
			}
			p++;
		}
		*o++ = *p;
	}
	if (!rest_is_comment(p + 1)) {
		*why = "text after the closing quote (expected only a comment)";
		return NULL;
	}
	*o = '\0';
	return start;
}

static egov_err read_file(const char *path, buf *out, char *errmsg, size_t errlen)
{
	int fd = -1;
	struct stat st;
	char chunk[8192];
	char ebuf[128];
	egov_err err = EGOV_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno == ENOENT ? EGOV_ENOTFOUND : EGOV_EIO;
		snprintf(errmsg, errlen, "%s: cannot open: %s", path,
			 strerror_r(errno, ebuf, sizeof ebuf));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		err = EGOV_EINVAL;
		snprintf(errmsg, errlen, "%s: not a regular file (expected a config file)", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = EGOV_EIO;
			snprintf(errmsg, errlen, "%s: cannot read: %s", path,
				 strerror_r(errno, ebuf, sizeof ebuf));
			goto out;
		}
		if (n == 0)
			break;
		err = buf_add(out, chunk, (size_t)n);
		if (err == EGOV_ELIMIT) {
			snprintf(errmsg, errlen, "%s: file too large (expected at most %d bytes)",
				 path, EGOV_CONFIG_FILE_MAX);
			goto out;
		}
		if (err) {
			snprintf(errmsg, errlen, "%s: out of memory", path);
			goto out;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	return err;
}

egov_err config_load_file(egov_config *c, const char *path, char *errmsg, size_t errlen)
{
	buf text;
	int *seen = NULL; /* per slot and key: the line that set it, 0 if none */
	size_t *base = NULL, nkeys = 0, i;
	long section = -1;
	char *p, *end;
	int line = 0;
	char msg[512];
	egov_err err;

	buf_init(&text, EGOV_CONFIG_FILE_MAX);
	err = EGOV_ENOMEM;
	if (!(base = calloc(slot_count(c), sizeof *base))) {
		snprintf(errmsg, errlen, "%s: out of memory", path);
		goto out;
	}
	for (i = 0; i < slot_count(c); i++) {
		base[i] = nkeys;
		nkeys += slot_at(c, i).s->nkeys;
	}
	if (!(seen = calloc(nkeys + 1, sizeof *seen))) {
		snprintf(errmsg, errlen, "%s: out of memory", path);
		goto out;
	}
	err = read_file(path, &text, errmsg, errlen);
	if (err)
		goto out;
	if (text.len == 0)
		goto out;
	if (memchr(text.data, '\0', text.len)) {
		snprintf(errmsg, errlen, "%s: contains a NUL byte (expected a text file)", path);
		err = EGOV_EINVAL;
		goto out;
	}
	p = text.data;
	end = text.data + text.len;
	if (text.len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
		p += 3; /* UTF-8 byte order mark, as some editors write */
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *le = nl ? nl : end;
		char *s, *eq, *kend, *value;
		const char *why = NULL;
		const config_key *k;
		slot sl;
		size_t klen;

		line++;
		if ((size_t)(le - p) > EGOV_CONFIG_LINE_MAX) {
			snprintf(errmsg, errlen, "%s:%d: line too long (expected at most %d bytes)",
				 path, line, EGOV_CONFIG_LINE_MAX);
			err = EGOV_ELIMIT;
			goto out;
		}
		s = trim(p, &le);
		p = nl ? nl + 1 : end;
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			char *n = s + 1, *ne;
			if (!close || !rest_is_comment(close + 1)) {
				snprintf(errmsg, errlen, "%s:%d: malformed section line (expected [section])",
					 path, line);
				err = EGOV_EINVAL;
				goto out;
			}
			ne = close;
			n = trim(n, &ne);
			section = slot_find(c, n, (size_t)(ne - n));
			if (section < 0 || !slot_at(c, (size_t)section).values) {
				char known[256];
				section_names(c, known, sizeof known);
				snprintf(errmsg, errlen, "%s:%d: [%.64s]: unknown section (expected one of %s)",
					 path, line, n, known);
				err = EGOV_EINVAL;
				goto out;
			}
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			snprintf(errmsg, errlen, "%s:%d: malformed line (expected key = value or [section])",
				 path, line);
			err = EGOV_EINVAL;
			goto out;
		}
		kend = eq;
		while (kend > s && is_space(kend[-1]))
			kend--;
		klen = (size_t)(kend - s);
		for (i = 0; i < klen; i++) {
			if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
				klen = 0;
		}
		if (klen == 0) {
			snprintf(errmsg, errlen,
				 "%s:%d: malformed key (expected key = value, the key in a-z, 0-9 and _)",
				 path, line);
			err = EGOV_EINVAL;
			goto out;
		}
		*kend = '\0';
		if (section < 0) {
			snprintf(errmsg, errlen, "%s:%d: %s: key outside a section (expected a [section] line first)",
				 path, line, s);
			err = EGOV_EINVAL;
			goto out;
		}
		sl = slot_at(c, (size_t)section);
		k = key_find(sl.s, s, klen);
		if (!k) {
			char known[256];
			section_keys(sl.s, known, sizeof known);
			snprintf(errmsg, errlen, "%s:%d: %s.%s: unknown key (expected one of %s)", path,
				 line, sl.s->name, s, known);
			err = EGOV_EINVAL;
			goto out;
		}
		i = base[section] + (size_t)(k - sl.s->keys);
		if (seen[i]) {
			snprintf(errmsg, errlen, "%s:%d: %s.%s: duplicate key (first set on line %d)", path,
				 line, sl.s->name, k->name, seen[i]);
			err = EGOV_EINVAL;
			goto out;
		}
		seen[i] = line;
		value = parse_value(eq + 1, &why);
		if (!value) {
			snprintf(errmsg, errlen, "%s:%d: %s.%s: %s", path, line, sl.s->name, k->name, why);
			err = EGOV_EINVAL;
			goto out;
		}
		err = key_set(sl, k, value, msg, sizeof msg);
		if (err) {
			snprintf(errmsg, errlen, "%s:%d: %s", path, line, msg);
			goto out;
		}
	}
out:
	if (text.data)
		memset(text.data, 0, text.len); /* the file may hold the operator token */
	buf_release(&text);
	free(seen);
	free(base);
	return err;
}

/* ---- the environment ---- */

void config_env_name(const config_section *s, const config_key *k, char *out, size_t outlen)
{
	size_t i;

	snprintf(out, outlen, "EGOV_%s_%s", s->name, k->name);
	for (i = 0; out[i]; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/* A variable that starts like one of ours but names no key is a typo the
 * operator wants to hear about; other EGOV_* variables (EGOV_BIN,
 * EGOV_TEST_PG_URL, ...) belong to tools and are left alone. */
static egov_err env_check_unknown(const egov_config *c, char *errmsg, size_t errlen)
{
	char **e;
	char name[160], prefix[80];
	size_t i, j;

	for (e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t nlen = eq ? (size_t)(eq - *e) : strlen(*e);
		const config_section *ours = NULL;
		bool known = false;

		if (strncmp(*e, "EGOV_", 5) != 0)
			continue;
		for (i = 0; i < slot_count(c) && !ours; i++) {
			snprintf(prefix, sizeof prefix, "EGOV_%s_", slot_at(c, i).s->name);
			for (j = 0; prefix[j]; j++)
				prefix[j] = (char)toupper((unsigned char)prefix[j]);
			if (nlen > strlen(prefix) && !strncmp(*e, prefix, strlen(prefix)))
				ours = slot_at(c, i).s;
		}
		if (!ours)
			continue;
		for (i = 0; i < ours->nkeys && !known; i++) {
			config_env_name(ours, &ours->keys[i], name, sizeof name);
			known = strlen(name) == nlen && !strncmp(*e, name, nlen);
		}
		if (!known) {
			snprintf(errmsg, errlen,
				 "environment %.*s: unknown variable (expected EGOV_SECTION_KEY for a "
				 "key in docs/configuration.md, e.g. EGOV_SERVER_LISTEN)",
				 (int)(nlen > 64 ? 64 : nlen), *e);
			return EGOV_EINVAL;
		}
	}
	return EGOV_OK;
}

egov_err config_load_env(egov_config *c, char *errmsg, size_t errlen)
{
	char name[160], msg[512];
	size_t i, j;
	egov_err err;

	err = env_check_unknown(c, errmsg, errlen);
	for (i = 0; !err && i < slot_count(c); i++) {
		slot sl = slot_at(c, i);
		for (j = 0; sl.values && !err && j < sl.s->nkeys; j++) {
			const char *v;
			config_env_name(sl.s, &sl.s->keys[j], name, sizeof name);
			v = getenv(name);
			if (!v)
				continue;
			err = key_set(sl, &sl.s->keys[j], v, msg, sizeof msg);
			if (err)
				snprintf(errmsg, errlen, "environment %s: %s", name, msg);
		}
	}
	return err;
}

/* ---- cross-key rules ---- */

egov_err config_finish(egov_config *c, char *errmsg, size_t errlen)
{
	size_t i, j;
	egov_err err = EGOV_OK;

	for (i = 0; i < slot_count(c); i++) {
		slot sl = slot_at(c, i);
		if (!sl.values) {
			snprintf(errmsg, errlen, "[%s]: out of memory", sl.s->name);
			err = EGOV_ENOMEM;
			goto out;
		}
		for (j = 0; j < sl.s->nkeys; j++) {
			if (is_string(&sl.s->keys[j]) && !*str_field(sl.values, &sl.s->keys[j])) {
				snprintf(errmsg, errlen, "%s.%s: out of memory", sl.s->name, sl.s->keys[j].name);
				err = EGOV_ENOMEM;
				goto out;
			}
		}
		/* Two sections of one name: a module declared a kernel's (or
		 * another module's) section; the first would take every key. */
		if (slot_find(c, sl.s->name, strlen(sl.s->name)) != (long)i) {
			snprintf(errmsg, errlen, "[%s]: declared twice (a module's section must have a name of its own)",
				 sl.s->name);
			err = EGOV_EINTERNAL;
			goto out;
		}
	}
	if (c->oom) {
		snprintf(errmsg, errlen, "configuration: out of memory");
		err = EGOV_ENOMEM;
		goto out;
	}
	for (i = 0; i < slot_count(c); i++) {
		slot sl = slot_at(c, i);
		if (sl.s->finish && (err = sl.s->finish(sl.values, c, errmsg, errlen)))
			goto out;
	}
out:
	return err;
}
