/*
 * jsonschema_format.c: the "format" keyword's names, and the checks that
 * run when a schema is compiled with JSONSCHEMA_FORMAT_ASSERT: the formats
 * residents' forms and messages carry (dates, times, durations, e-mail
 * addresses, URIs, identifiers, IP addresses) and a few cheap ones.
 *
 * Each check is a small hand-written parser of the RFC's grammar over a
 * NUL-terminated UTF-8 string, with no allocation and no regex. Formats of
 * internationalised names (idn-email, idn-hostname, iri, iri-reference)
 * and uri-template are known names but not asserted: asking to assert them
 * is refused at compile time (schema.format_unsupported) rather than
 * passed silently.
 */
#include <stdbool.h>
#include <string.h>

#include "core/jsonschema_int.h"
#include "core/banned.h"

enum {
	F_DATE_TIME = 1,
	F_DATE,
	F_TIME,
	F_DURATION,
	F_EMAIL,
	F_HOSTNAME,
	F_IPV4,
	F_IPV6,
	F_URI,
	F_URI_REFERENCE,
	F_UUID,
	F_JSON_POINTER,
	F_RELATIVE_JSON_POINTER,
	F_REGEX,
};

static const struct {
	const char *name;
	int id;
} formats[] = {
	{"date", F_DATE},
	{"date-time", F_DATE_TIME},
	{"duration", F_DURATION},
	{"email", F_EMAIL},
	{"hostname", F_HOSTNAME},
	{"idn-email", JS_FMT_UNCHECKED},
	{"idn-hostname", JS_FMT_UNCHECKED},
	{"ipv4", F_IPV4},
	{"ipv6", F_IPV6},
	{"iri", JS_FMT_UNCHECKED},
	{"iri-reference", JS_FMT_UNCHECKED},
	{"json-pointer", F_JSON_POINTER},
	{"regex", F_REGEX},
	{"relative-json-pointer", F_RELATIVE_JSON_POINTER},
	{"time", F_TIME},
	{"uri", F_URI},
	{"uri-reference", F_URI_REFERENCE},
	{"uri-template", JS_FMT_UNCHECKED},
	{"uuid", F_UUID},
};

int js_format_id(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof formats / sizeof formats[0]; i++)
		if (strcmp(formats[i].name, name) == 0)
			return formats[i].id;
	return JS_FMT_UNKNOWN;
}

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool hexdig(char c)
{
	return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* n digits at *p as a number, advancing; -1 if not n digits. */
static int num(const char **p, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (!digit((*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

/* ---- dates and times (RFC 3339 section 5.6) ------------------------------- */

static bool full_date(const char **p)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, m, d;

	if ((y = num(p, 4)) < 0 || *(*p)++ != '-' || (m = num(p, 2)) < 0 || *(*p)++ != '-' || (d = num(p, 2)) < 0)
		return false;
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return false;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return false;
	return true;
}

static bool full_time(const char **p)
{
	int h, mi, s, oh = 0, om = 0, sign = 0;

	if ((h = num(p, 2)) < 0 || *(*p)++ != ':' || (mi = num(p, 2)) < 0 || *(*p)++ != ':' || (s = num(p, 2)) < 0)
		return false;
	if (h > 23 || mi > 59 || s > 60)
		return false;
	if (**p == '.') {
		(*p)++;
		if (!digit(**p))
			return false;
		while (digit(**p))
			(*p)++;
	}
	if (**p == 'Z' || **p == 'z') {
		(*p)++;
	} else if (**p == '+' || **p == '-') {
		sign = **p == '+' ? 1 : -1;
		(*p)++;
		if ((oh = num(p, 2)) < 0 || *(*p)++ != ':' || (om = num(p, 2)) < 0 || oh > 23 || om > 59)
			return false;
	} else {
		return false;
	}
	if (s == 60) {
		/* a leap second is the last second of a UTC day */
		int utc = ((h * 60 + mi - sign * (oh * 60 + om)) % 1440 + 1440) % 1440;
		if (utc != 23 * 60 + 59)
			return false;
	}
	return true;
}

static bool is_date(const char *s)
{
	return full_date(&s) && *s == '\0';
}

static bool is_time(const char *s)
{
	return full_time(&s) && *s == '\0';
}

static bool is_date_time(const char *s)
{
	if (!full_date(&s) || (*s != 'T' && *s != 't'))
		return false;
	s++;
	return full_time(&s) && *s == '\0';
}

/* RFC 3339 appendix A, designators in order: PnYnMnDTnHnMnS or PnW. */
static bool is_duration(const char *s)
{
	static const char date_units[] = "YMD", time_units[] = "HMS";
	const char *u = date_units;
	bool any = false, in_time = false, any_time = false;

	if (*s++ != 'P' || !*s)
		return false;
	if (digit(*s)) {
		const char *q = s;
		while (digit(*q))
			q++;
		if (*q == 'W')
			return q[1] == '\0';
	}
	while (*s) {
		const char *found;
		if (*s == 'T') {
			if (in_time)
				return false;
			in_time = true;
			u = time_units;
			s++;
			if (!*s)
				return false;
			continue;
		}
		if (!digit(*s))
			return false;
		while (digit(*s))
			s++;
		if (!*s || !(found = strchr(u, *s)))
			return false;
		u = found + 1;
		s++;
		any = true;
		if (in_time)
			any_time = true;
	}
	return any && (!in_time || any_time);
}

/* ---- names and addresses --------------------------------------------------- */

static bool is_ipv4_at(const char **p)
{
	int part, n;

	for (part = 0; part < 4; part++) {
		int v = 0;
		if (part && *(*p)++ != '.')
			return false;
		for (n = 0; digit(**p) && n < 4; n++, (*p)++)
			v = v * 10 + (**p - '0');
		if (n == 0 || n > 3 || v > 255 || (n > 1 && (*p)[-n] == '0'))
			return false;
	}
	return true;
}

static bool is_ipv4(const char *s)
{
	return is_ipv4_at(&s) && *s == '\0';
}

/* RFC 4291 section 2.2: eight groups, "::" once, an IPv4 tail. */
static bool is_ipv6_n(const char *s, size_t len)
{
	size_t i = 0;
	int groups = 0;
	bool gap = false;

	if (len >= 2 && s[0] == ':' && s[1] == ':') {
		gap = true;
		i = 2;
		if (i == len)
			return true;
	} else if (len && s[0] == ':') {
		return false;
	}
	while (i < len) {
		size_t n = 0, start = i;
		while (i < len && hexdig(s[i]) && n < 5)
			i++, n++;
		if (i < len && s[i] == '.') {
			/* an IPv4 tail takes two groups */
			char tail[16];
			const char *t = tail;
			if (len - start >= sizeof tail)
				return false;
			memcpy(tail, s + start, len - start);
			tail[len - start] = '\0';
			if (!is_ipv4_at(&t) || *t)
				return false;
			groups += 2;
			i = len;
			break;
		}
		if (n == 0 || n > 4)
			return false;
		groups++;
		if (i == len)
			break;
		if (s[i] != ':')
			return false;
		i++;
		if (i < len && s[i] == ':') {
			if (gap)
				return false;
			gap = true;
			i++;
			if (i == len)
				break;
		} else if (i == len) {
			return false;
		}
	}
	return gap ? groups < 8 : groups == 8;
}

static bool is_ipv6(const char *s)
{
	return is_ipv6_n(s, strlen(s));
}

/* RFC 1123 host names: labels of letters, digits and inner hyphens. */
static bool is_hostname_n(const char *s, size_t len)
{
	size_t i = 0, label = 0;

	if (len == 0 || len > 253)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (alpha(c) || digit(c) || c == '-') {
			if ((label == 0 && c == '-') || ++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && s[len - 1] != '-';
}

static bool is_hostname(const char *s)
{
	return is_hostname_n(s, strlen(s));
}

static bool atext(char c)
{
	return alpha(c) || digit(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/* RFC 5321 section 4.1.2 Mailbox: a dot-atom or quoted local part, and a
 * domain or an address literal. */
static bool is_email(const char *s)
{
	const char *at, *d;
	size_t dl;

	if (*s == '"') {
		s++;
		while (*s && *s != '"') {
			if (*s == '\\') {
				s++;
				if ((unsigned char)*s < 0x20 || *s == 0x7F)
					return false;
			} else if ((unsigned char)*s < 0x20 || *s == 0x7F) {
				return false;
			}
			s++;
		}
		if (*s++ != '"' || *s != '@')
			return false;
		at = s;
	} else {
		bool prev_dot = true;
		for (; *s && *s != '@'; s++) {
			if (*s == '.') {
				if (prev_dot)
					return false;
				prev_dot = true;
			} else if (atext(*s)) {
				prev_dot = false;
			} else {
				return false;
			}
		}
		if (*s != '@' || prev_dot)
			return false;
		at = s;
	}
	d = at + 1;
	dl = strlen(d);
	if (dl >= 2 && d[0] == '[' && d[dl - 1] == ']') {
		char lit[64];
		const char *l = lit;
		if (dl - 2 >= sizeof lit)
			return false;
		memcpy(lit, d + 1, dl - 2);
		lit[dl - 2] = '\0';
		if (strncmp(lit, "IPv6:", 5) == 0)
			return is_ipv6(lit + 5);
		return is_ipv4_at(&l) && *l == '\0';
	}
	return is_hostname_n(d, dl);
}

static bool is_uuid(const char *s)
{
	static const int groups[] = {8, 4, 4, 4, 12};
	int g, i;

	for (g = 0; g < 5; g++) {
		if (g && *s++ != '-')
			return false;
		for (i = 0; i < groups[g]; i++)
			if (!hexdig(*s++))
				return false;
	}
	return *s == '\0';
}

/* ---- URIs (RFC 3986 section 3) --------------------------------------------- */

static bool unreserved(char c)
{
	return alpha(c) || digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static bool sub_delim(char c)
{
	return c && strchr("!$&'()*+,;=", c) != NULL;
}

/* Skips characters of a component: unreserved, sub-delims, %XX and the
 * extra ones allowed there. */
static const char *span(const char *s, const char *extra)
{
	for (;;) {
		if (*s == '%') {
			if (!hexdig(s[1]) || !hexdig(s[2]))
				return s;
			s += 3;
		} else if (*s && (unreserved(*s) || sub_delim(*s) || strchr(extra, *s))) {
			s++;
		} else {
			return s;
		}
	}
}

static bool authority(const char **p)
{
	const char *s = *p, *end = s + strcspn(s, "/?#"), *at = NULL, *q;

	for (q = s; q < end; q++)
		if (*q == '@')
			at = q;
	if (at) {
		if (span(s, ":") != at)
			return false;
		s = at + 1;
	}
	if (*s == '[') {
		const char *close = memchr(s, ']', (size_t)(end - s));
		if (!close || !is_ipv6_n(s + 1, (size_t)(close - s - 1)))
			return false;
		s = close + 1;
	} else {
		s = span(s, "");
	}
	if (*s == ':') {
		s++;
		while (digit(*s))
			s++;
	}
	if (s != end)
		return false;
	*p = end;
	return true;
}

/* The part after the scheme (or all of a relative reference). */
static bool uri_rest(const char *s, bool relative)
{
	if (s[0] == '/' && s[1] == '/') {
		s += 2;
		if (!authority(&s))
			return false;
	} else if (relative) {
		/* path-noscheme: no ':' in the first segment */
		const char *seg = span(s, "@");
		if (*seg == ':')
			return false;
	}
	s = span(s, ":@/");
	if (*s == '?')
		s = span(s + 1, ":@/?");
	if (*s == '#')
		s = span(s + 1, ":@/?");
	return *s == '\0';
}

static bool is_uri(const char *s)
{
	const char *p = s;

	if (!alpha(*p))
		return false;
	while (alpha(*p) || digit(*p) || *p == '+' || *p == '-' || *p == '.')
		p++;
	if (*p != ':')
		return false;
	return uri_rest(p + 1, false);
}

static bool is_uri_reference(const char *s)
{
	return is_uri(s) || uri_rest(s, true);
}

/* ---- JSON pointers (RFC 6901, relative pointers draft 01) ------------------- */

static bool is_json_pointer(const char *s)
{
	if (*s && *s != '/')
		return false;
	for (; *s; s++)
		if (*s == '~' && s[1] != '0' && s[1] != '1')
			return false;
	return true;
}

static bool is_relative_json_pointer(const char *s)
{
	if (!digit(*s))
		return false;
	if (*s == '0' && digit(s[1]))
		return false;
	while (digit(*s))
		s++;
	if (*s == '#')
		return s[1] == '\0';
	return is_json_pointer(s);
}

static bool is_regex(const char *s)
{
	js_regex *re = NULL;
	const char *why;
	bool ok = js_regex_compile(s, &re, &why) == EGOV_OK;

	js_regex_free(re);
	return ok;
}

size_t js_format_cost(int id)
{
	return id == F_REGEX ? JSONSCHEMA_REGEX_STEP_COST : 1;
}

bool js_format_check(int id, const char *s)
{
	switch (id) {
	case F_DATE_TIME: return is_date_time(s);
	case F_DATE: return is_date(s);
	case F_TIME: return is_time(s);
	case F_DURATION: return is_duration(s);
	case F_EMAIL: return is_email(s);
	case F_HOSTNAME: return is_hostname(s);
	case F_IPV4: return is_ipv4(s);
	case F_IPV6: return is_ipv6(s);
	case F_URI: return is_uri(s);
	case F_URI_REFERENCE: return is_uri_reference(s);
	case F_UUID: return is_uuid(s);
	case F_JSON_POINTER: return is_json_pointer(s);
	case F_RELATIVE_JSON_POINTER: return is_relative_json_pointer(s);
	case F_REGEX: return is_regex(s);
	default: return true;
	}
}
