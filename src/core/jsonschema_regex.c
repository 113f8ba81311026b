/*
 * jsonschema_regex.c: the regular expressions of "pattern" and
 * "patternProperties" (and the "regex" format): ECMA-262 syntax, as JSON
 * Schema asks, run by PCRE2 with limits.
 *
 * egov writes no regex engine. It translates the ECMA-262 pattern (the
 * syntax of the "u" flag, which JSON Schema patterns use) into PCRE2's, so
 * that what differs between the two means what ECMA-262 says:
 *   - \d \w \b are ASCII (PCRE2 without UCP: the same);
 *   - \s and \S are ECMA's white space and line terminators, spelled out;
 *   - "." excludes the four line terminators, not only \n;
 *   - $ matches only at the end (PCRE2_DOLLAR_ENDONLY), [] matches nothing
 *     and [^] anything (PCRE2_ALLOW_EMPTY_CLASS);
 *   - \cX, \0, \xHH, \uHHHH (surrogate pairs joined), \u{H...} become
 *     \x{...}; \v is the vertical tab (PCRE2: a class);
 *   - what the "u" flag makes a syntax error is refused: unknown escapes
 *     (\a, \e, \Q, \z ...), a lone { } or ], a quantifier after a
 *     quantifier (PCRE2 would read a++ as possessive), (?i) and the other
 *     PCRE2 group syntaxes.
 * Lookbehind must have a bounded length (a PCRE2 restriction); a pattern
 * using more is refused at compile time rather than run differently.
 *
 * Invariants: a pattern is matched with PCRE2_UTF against a subject PCRE2
 * checks as UTF-8; every match runs under the match context's limits
 * (JSONSCHEMA_REGEX_MATCH_LIMIT, JSONSCHEMA_REGEX_HEAP_LIMIT_KIB), so a
 * catastrophic pattern ends with -1, never a hang. Compiled code and the
 * match context are read-only after compilation and shared by threads;
 * match data (the scratch) is per validation.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <stdlib.h>
#include <string.h>

#include <pcre2.h>

#include "core/jsonschema_int.h"
#include "core/utf8.h"
#include "core/banned.h"

struct js_regex {
	pcre2_code *code;
};

/* ECMA-262 WhiteSpace and LineTerminator, as a class body. */
#define ECMA_SPACE \
	"\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"

typedef struct tr {
	const char *p;   /* cursor in the pattern */
	buf *out;
	egov_err err;
	const char *why;
	unsigned groups; /* capturing groups in the pattern */
} tr;

static void emit(tr *t, const char *s)
{
	if (!t->err)
		t->err = buf_adds(t->out, s);
}

static void emitn(tr *t, const char *s, size_t n)
{
	if (!t->err)
		t->err = buf_add(t->out, s, n);
}

static void emit_cp(tr *t, unsigned long cp)
{
	if (!t->err)
		t->err = buf_addf(t->out, "\\x{%lX}", cp);
}

static void fail(tr *t, const char *why)
{
	if (!t->err) {
		t->err = EGOV_EINVAL;
		t->why = why;
	}
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_syntax_char(char c)
{
	return c && strchr("^$\\.*+?()[]{}|/", c) != NULL;
}

/* Reads n hex digits at p; -1 if they are not there. */
static long hex_n(const char *p, int n)
{
	long v = 0;
	int i, h;

	for (i = 0; i < n; i++) {
		if ((h = hexval(p[i])) < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* \u escapes (t->p after the 'u'): a code point, or -1 (t failed). */
static long unicode_escape(tr *t)
{
	long v, lo;

	if (*t->p == '{') {
		const char *q = t->p + 1;
		v = 0;
		if (!*q || *q == '}')
			return fail(t, "bad \\u{...} escape"), -1;
		while (*q && *q != '}') {
			int h = hexval(*q++);
			if (h < 0 || v > 0x10FFFF)
				return fail(t, "bad \\u{...} escape"), -1;
			v = v * 16 + h;
		}
		if (*q != '}' || v > 0x10FFFF)
			return fail(t, "bad \\u{...} escape"), -1;
		t->p = q + 1;
	} else {
		if ((v = hex_n(t->p, 4)) < 0)
			return fail(t, "bad \\u escape"), -1;
		t->p += 4;
		if (v >= 0xD800 && v <= 0xDBFF && t->p[0] == '\\' && t->p[1] == 'u' &&
		    (lo = hex_n(t->p + 2, 4)) >= 0xDC00 && lo <= 0xDFFF) {
			v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
			t->p += 6;
		}
	}
	if (v >= 0xD800 && v <= 0xDFFF)
		return fail(t, "lone surrogate"), -1;
	return v;
}

/* General categories by the long names and aliases ECMA-262 accepts;
 * PCRE2 10.42 knows the short ones. */
static const char *const categories[][2] = {
	{"Cased_Letter", "LC"}, {"Close_Punctuation", "Pe"}, {"Connector_Punctuation", "Pc"},
	{"Control", "Cc"}, {"Currency_Symbol", "Sc"}, {"Dash_Punctuation", "Pd"}, {"Decimal_Number", "Nd"},
	{"Enclosing_Mark", "Me"}, {"Final_Punctuation", "Pf"}, {"Format", "Cf"}, {"Initial_Punctuation", "Pi"},
	{"Letter", "L"}, {"Letter_Number", "Nl"}, {"Line_Separator", "Zl"}, {"Lowercase_Letter", "Ll"},
	{"Mark", "M"}, {"Math_Symbol", "Sm"}, {"Modifier_Letter", "Lm"}, {"Modifier_Symbol", "Sk"},
	{"Nonspacing_Mark", "Mn"}, {"Number", "N"}, {"Open_Punctuation", "Ps"}, {"Other", "C"},
	{"Other_Letter", "Lo"}, {"Other_Number", "No"}, {"Other_Punctuation", "Po"}, {"Other_Symbol", "So"},
	{"Paragraph_Separator", "Zp"}, {"Private_Use", "Co"}, {"Punctuation", "P"}, {"Separator", "Z"},
	{"Space_Separator", "Zs"}, {"Spacing_Mark", "Mc"}, {"Surrogate", "Cs"}, {"Symbol", "S"},
	{"Titlecase_Letter", "Lt"}, {"Unassigned", "Cn"}, {"Uppercase_Letter", "Lu"}, {"cntrl", "Cc"},
	{"Combining_Mark", "M"}, {"digit", "Nd"}, {"punct", "P"},
};

/* \p{...} and \P{...} (t->p at 'p' or 'P'): the "General_Category=" and
 * "Script=" prefixes go, long category names become PCRE2's short ones. */
static void property_escape(tr *t)
{
	char neg = *t->p;
	const char *name = t->p + 2, *end, *eq;
	size_t n;

	if (t->p[1] != '{' || !(end = strchr(name, '}')) || end == name)
		return fail(t, "bad \\p escape");
	for (n = 0; name + n < end; n++) {
		char c = name[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '='))
			return fail(t, "bad \\p escape");
	}
	eq = memchr(name, '=', (size_t)(end - name));
	emit(t, neg == 'P' ? "\\P{" : "\\p{");
	if (eq) {
		size_t kl = (size_t)(eq - name);
		if ((kl == 16 && memcmp(name, "General_Category", 16) == 0) || (kl == 2 && memcmp(name, "gc", 2) == 0) ||
		    (kl == 6 && memcmp(name, "Script", 6) == 0) || (kl == 2 && memcmp(name, "sc", 2) == 0)) {
			name = eq + 1;
		} else if ((kl == 17 && memcmp(name, "Script_Extensions", 17) == 0) ||
			   (kl == 3 && memcmp(name, "scx", 3) == 0)) {
			emit(t, "scx:");
			name = eq + 1;
		} else {
			return fail(t, "unknown Unicode property");
		}
	}
	for (n = 0; n < sizeof categories / sizeof categories[0]; n++) {
		if (strlen(categories[n][0]) == (size_t)(end - name) && !memcmp(categories[n][0], name, (size_t)(end - name))) {
			emit(t, categories[n][1]);
			emit(t, "}");
			t->p = end + 1;
			return;
		}
	}
	emitn(t, name, (size_t)(end - name));
	emit(t, "}");
	t->p = end + 1;
}

/* The escapes common to classes and the outside: control escapes and
 * code points. t->p is after the backslash. True if handled. */
static bool char_escape(tr *t, bool in_class)
{
	char c = *t->p;
	long v;

	switch (c) {
	case 't': emit(t, "\\t"); break;
	case 'n': emit(t, "\\n"); break;
	case 'v': emit(t, "\\x{0B}"); break;
	case 'f': emit(t, "\\f"); break;
	case 'r': emit(t, "\\r"); break;
	case 'c':
		if (!((t->p[1] >= 'a' && t->p[1] <= 'z') || (t->p[1] >= 'A' && t->p[1] <= 'Z'))) {
			fail(t, "bad \\c escape");
			return true;
		}
		emit_cp(t, (unsigned long)(t->p[1] % 32));
		t->p += 2;
		return true;
	case '0':
		if (t->p[1] >= '0' && t->p[1] <= '9') {
			fail(t, "octal escape");
			return true;
		}
		emit(t, "\\x{0}");
		break;
	case 'x':
		if ((v = hex_n(t->p + 1, 2)) < 0) {
			fail(t, "bad \\x escape");
			return true;
		}
		emit_cp(t, (unsigned long)v);
		t->p += 3;
		return true;
	case 'u':
		t->p++;
		if ((v = unicode_escape(t)) >= 0)
			emit_cp(t, (unsigned long)v);
		return true;
	case 'p':
	case 'P':
		property_escape(t);
		return true;
	case 'd': case 'D': case 'w': case 'W':
		emitn(t, t->p - 1, 2);
		break;
	default:
		if (is_syntax_char(c) || (in_class && c == '-')) {
			if (c == '/') {
				emit(t, "/");
			} else {
				char e[3] = {'\\', c, '\0'};
				emit(t, e);
			}
			break;
		}
		return false;
	}
	t->p++;
	return true;
}

/* A class, t->p after '['. \S cannot be said inside a PCRE2 class whose
 * \s is ASCII, so a class holding it becomes an alternation. */
static void char_class(tr *t)
{
	buf body;
	buf *outer = t->out;
	bool neg = false, has_S = false;

	buf_init(&body, JSONSCHEMA_PATTERN_MAX * 32);
	t->out = &body;
	emit(t, "");
	if (*t->p == '^') {
		neg = true;
		t->p++;
	}
	while (!t->err && *t->p && *t->p != ']') {
		char c = *t->p;
		if (c == '\\') {
			t->p++;
			if (*t->p == 's') {
				emit(t, ECMA_SPACE);
				t->p++;
			} else if (*t->p == 'S') {
				has_S = true;
				t->p++;
			} else if (*t->p == 'b') {
				emit(t, "\\x{08}");
				t->p++;
			} else if (!char_escape(t, true)) {
				fail(t, "unknown escape in class");
			}
		} else if (c == '[') {
			emit(t, "\\[");
			t->p++;
		} else {
			emitn(t, t->p, 1);
			t->p++;
		}
	}
	t->out = outer;
	if (!t->err && *t->p != ']')
		fail(t, "unterminated class");
	if (!t->err) {
		t->p++;
		if (!has_S) {
			emit(t, neg ? "[^" : "[");
			emitn(t, body.data, body.len);
			emit(t, "]");
		} else if (body.len == 0) {
			emit(t, neg ? "[" ECMA_SPACE "]" : "[^" ECMA_SPACE "]");
		} else if (!neg) {
			emit(t, "(?:[");
			emitn(t, body.data, body.len);
			emit(t, "]|[^" ECMA_SPACE "])");
		} else {
			emit(t, "(?:(?![");
			emitn(t, body.data, body.len);
			emit(t, "])[" ECMA_SPACE "])");
		}
	}
	buf_release(&body);
}

/* {n}, {n,}, {n,m} at t->p; false if it is not one. */
static bool quantifier_braces(tr *t)
{
	const char *q = t->p + 1;
	unsigned long lo = 0, hi = 0;
	bool has_hi = false, comma = false;

	if (!(*q >= '0' && *q <= '9'))
		return false;
	while (*q >= '0' && *q <= '9') {
		lo = lo < 100000 ? lo * 10 + (unsigned long)(*q - '0') : 100000;
		q++;
	}
	if (*q == ',') {
		comma = true;
		q++;
		if (*q >= '0' && *q <= '9') {
			has_hi = true;
			while (*q >= '0' && *q <= '9') {
				hi = hi < 100000 ? hi * 10 + (unsigned long)(*q - '0') : 100000;
				q++;
			}
		}
	}
	if (*q != '}')
		return false;
	if (comma && has_hi && hi < lo) {
		fail(t, "numbers out of order in {}");
		return true;
	}
	emitn(t, t->p, (size_t)(q + 1 - t->p));
	t->p = q + 1;
	return true;
}

/* Group names: ASCII letters, digits and '_' (PCRE2 takes no more). */
static bool group_name(tr *t, const char *q, const char **end)
{
	const char *s = q;

	if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '_'))
		return false;
	while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '_')
		q++;
	if (*q != '>' || q - s > 32)
		return false;
	*end = q;
	return true;
}

/* Counts capturing groups, so that \N can be checked against them. */
static unsigned count_groups(const char *p)
{
	unsigned n = 0;
	bool in_class = false;

	for (; *p; p++) {
		if (*p == '\\') {
			if (p[1])
				p++;
		} else if (in_class) {
			if (*p == ']')
				in_class = false;
		} else if (*p == '[') {
			in_class = true;
		} else if (*p == '(') {
			if (p[1] != '?' || (p[2] == '<' && p[3] != '=' && p[3] != '!'))
				n++;
		}
	}
	return n;
}

static void translate(tr *t)
{
	bool can_repeat = false; /* an atom precedes: a quantifier may follow */

	while (!t->err && *t->p) {
		char c = *t->p;
		const char *end;

		switch (c) {
		case '\\':
			t->p++;
			c = *t->p;
			if (c == 's' || c == 'S') {
				emit(t, c == 's' ? "[" ECMA_SPACE "]" : "[^" ECMA_SPACE "]");
				t->p++;
				can_repeat = true;
			} else if (c == 'b' || c == 'B') {
				emitn(t, t->p - 1, 2);
				t->p++;
				can_repeat = false;
			} else if (c >= '1' && c <= '9') {
				unsigned long n = 0;
				while (*t->p >= '0' && *t->p <= '9' && n < 100000)
					n = n * 10 + (unsigned long)(*t->p++ - '0');
				if (n > t->groups)
					return fail(t, "reference to a missing group");
				if (!t->err)
					t->err = buf_addf(t->out, "(?:\\g{%lu})", n);
				can_repeat = true;
			} else if (c == 'k') {
				if (t->p[1] != '<' || !group_name(t, t->p + 2, &end))
					return fail(t, "bad \\k escape");
				emit(t, "\\k<");
				emitn(t, t->p + 2, (size_t)(end - (t->p + 2)));
				emit(t, ">");
				t->p = end + 1;
				can_repeat = true;
			} else if (char_escape(t, false)) {
				can_repeat = true;
			} else {
				return fail(t, "unknown escape");
			}
			break;
		case '[':
			t->p++;
			char_class(t);
			can_repeat = true;
			break;
		case '(':
			if (t->p[1] == '?') {
				const char *q = t->p + 2;
				if (*q == ':' || *q == '=' || *q == '!') {
					emitn(t, t->p, 3);
					t->p += 3;
				} else if (*q == '<' && (q[1] == '=' || q[1] == '!')) {
					emitn(t, t->p, 4);
					t->p += 4;
				} else if (*q == '<' && group_name(t, q + 1, &end)) {
					emitn(t, t->p, (size_t)(end + 1 - t->p));
					t->p = end + 1;
				} else {
					return fail(t, "unsupported group syntax");
				}
			} else {
				emit(t, "(");
				t->p++;
			}
			can_repeat = false;
			break;
		case ')':
			emit(t, ")");
			t->p++;
			can_repeat = true;
			break;
		case '*':
		case '+':
		case '?':
		case '{':
			if (!can_repeat)
				return fail(t, "nothing to repeat");
			if (c == '{') {
				if (!quantifier_braces(t))
					return fail(t, "lone {");
			} else {
				emitn(t, t->p, 1);
				t->p++;
			}
			if (*t->p == '?') {
				emit(t, "?");
				t->p++;
			}
			can_repeat = false;
			break;
		case '}':
		case ']':
			return fail(t, "lone bracket");
		case '.':
			emit(t, "[^\\n\\r\\x{2028}\\x{2029}]");
			t->p++;
			can_repeat = true;
			break;
		case '^':
		case '$':
		case '|':
			emitn(t, t->p, 1);
			t->p++;
			can_repeat = false;
			break;
		default: {
			/* a literal: a whole UTF-8 sequence */
			size_t n = utf8_seq_len((const unsigned char *)t->p, strlen(t->p));
			if (!n)
				return fail(t, "not UTF-8");
			emitn(t, t->p, n);
			t->p += n;
			can_repeat = true;
			break;
		}
		}
	}
}

egov_err js_regex_compile(const char *pattern, js_regex **out, const char **why)
{
	buf b;
	tr t = {.p = pattern, .out = &b};
	pcre2_compile_context *cc = NULL;
	pcre2_code *code = NULL;
	js_regex *re = NULL;
	int ecode;
	PCRE2_SIZE eoff;
	egov_err err;

	*out = NULL;
	*why = NULL;
	buf_init(&b, JSONSCHEMA_PATTERN_MAX * 32);
	if (strlen(pattern) > JSONSCHEMA_PATTERN_MAX) {
		*why = "pattern too long";
		err = EGOV_ELIMIT;
		goto out;
	}
	if (!utf8_valid_str(pattern)) {
		*why = "not UTF-8";
		err = EGOV_EINVAL;
		goto out;
	}
	t.groups = count_groups(pattern);
	emit(&t, "");
	translate(&t);
	if ((err = t.err) != EGOV_OK) {
		*why = t.why ? t.why : "pattern too long";
		goto out;
	}
	if (!(cc = pcre2_compile_context_create(NULL))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	pcre2_set_parens_nest_limit(cc, 64);
	code = pcre2_compile((PCRE2_SPTR)b.data, b.len,
			     PCRE2_UTF | PCRE2_NO_UTF_CHECK | PCRE2_DOLLAR_ENDONLY | PCRE2_ALLOW_EMPTY_CLASS |
				     PCRE2_NEVER_BACKSLASH_C,
			     &ecode, &eoff, cc);
	if (!code) {
		*why = ecode == PCRE2_ERROR_NOMEMORY ? "out of memory" : "PCRE2 refused it";
		err = ecode == PCRE2_ERROR_NOMEMORY ? EGOV_ENOMEM : EGOV_EINVAL;
		goto out;
	}
	/* JIT where the platform has it: faster, and the match limit holds */
	(void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
	if (!(re = calloc(1, sizeof *re))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	re->code = code;
	code = NULL;
	*out = re;
	err = EGOV_OK;
out:
	pcre2_code_free(code);
	pcre2_compile_context_free(cc);
	buf_release(&b);
	return err;
}

void js_regex_free(js_regex *re)
{
	if (!re)
		return;
	pcre2_code_free(re->code);
	free(re);
}

void *js_regex_limits_new(void)
{
	pcre2_match_context *mc = pcre2_match_context_create(NULL);

	if (mc) {
		pcre2_set_match_limit(mc, JSONSCHEMA_REGEX_MATCH_LIMIT);
		pcre2_set_depth_limit(mc, JSONSCHEMA_REGEX_MATCH_LIMIT);
		pcre2_set_heap_limit(mc, JSONSCHEMA_REGEX_HEAP_LIMIT_KIB);
	}
	return mc;
}

void js_regex_limits_free(void *mctx)
{
	pcre2_match_context_free(mctx);
}

void *js_regex_scratch_new(void)
{
	/* one pair: a match, not its groups, is all a validator asks */
	return pcre2_match_data_create(1, NULL);
}

void js_regex_scratch_free(void *scratch)
{
	pcre2_match_data_free(scratch);
}

int js_regex_search(const js_regex *re, void *mctx, void *scratch, const char *s, size_t len)
{
	int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, 0, 0, scratch, mctx);

	if (rc >= 0)
		return 1; /* 0: matched, the ovector too small for the groups */
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
		return -2;
	return -1;
}
