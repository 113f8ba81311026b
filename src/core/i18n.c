/*
 * i18n.c: the three message catalogues and language negotiation.
 *
 * Invariants: after i18n_load() succeeds, each language holds a copy of its
 * catalogue as an array of (key, text) pairs sorted by key with no duplicate
 * keys, every text valid UTF-8; lookups are a binary search and never
 * allocate. The tables are written only by i18n_load()/i18n_free(), which run
 * before the server's threads start and after they stop, so readers need no
 * lock. A failed load leaves nothing loaded.
 */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/utf8.h"
#include "core/i18n.h"
#include "core/banned.h"

/* A catalogue is written by us, but it is still parsed defensively: a few
 * hundred texts take tens of KiB, so 1 MiB and 8192 keys are far above need. */
#define CATALOGUE_BYTES_MAX (1024 * 1024)
#define CATALOGUE_KEYS_MAX 8192
#define KEY_MAX 128

const char *const i18n_langs[I18N_NLANG] = {"zh-Hant", "pt", "en"};

enum { LANG_ZH = 0, LANG_PT = 1, LANG_EN = 2 };

typedef struct entry {
	char *key;
	char *text;
} entry;

typedef struct catalogue {
	entry *v;
	size_t n;
} catalogue;

static catalogue cats[I18N_NLANG];

static void catalogue_release(catalogue *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		free(c->v[i].key);
		free(c->v[i].text);
	}
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

void i18n_free(void)
{
	int i;

	for (i = 0; i < I18N_NLANG; i++)
		catalogue_release(&cats[i]);
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static int key_cmp(const void *key, const void *e)
{
	return strcmp(key, ((const entry *)e)->key);
}


static egov_err read_file(const char *path, char **out, size_t *len_out, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	FILE *f = NULL;
	char *data = NULL;
	size_t n;

	if (!(f = fopen(path, "rb"))) {
		snprintf(errmsg, errlen, "%s: %s", path, strerror(errno));
		err = EGOV_EIO;
		goto out;
	}
	if (!(data = malloc(CATALOGUE_BYTES_MAX + 1))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	n = fread(data, 1, CATALOGUE_BYTES_MAX + 1, f);
	if (ferror(f)) {
		snprintf(errmsg, errlen, "%s: read error", path);
		err = EGOV_EIO;
		goto out;
	}
	if (n > CATALOGUE_BYTES_MAX) {
		snprintf(errmsg, errlen, "%s: larger than %d bytes", path, CATALOGUE_BYTES_MAX);
		err = EGOV_ELIMIT;
		goto out;
	}
	data[n] = '\0';
	*out = data;
	*len_out = n;
	data = NULL;
out:
	if (f)
		fclose(f);
	free(data);
	return err;
}

static egov_err catalogue_load(catalogue *c, const char *path, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	char *text = NULL;
	size_t len = 0, n = 0, i, filled = 0;
	cJSON *root = NULL;
	const cJSON *it;
	entry *v = NULL;

	if ((err = read_file(path, &text, &len, errmsg, errlen)))
		goto out;
	if (!(root = cJSON_ParseWithLength(text, len)) || !cJSON_IsObject(root)) {
		snprintf(errmsg, errlen, "%s: not a JSON object", path);
		err = EGOV_EINVAL;
		goto out;
	}
	cJSON_ArrayForEach(it, root) n++;
	if (n > CATALOGUE_KEYS_MAX) {
		snprintf(errmsg, errlen, "%s: more than %d keys", path, CATALOGUE_KEYS_MAX);
		err = EGOV_ELIMIT;
		goto out;
	}
	if (!(v = calloc(n ? n : 1, sizeof *v))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	cJSON_ArrayForEach(it, root) {
		size_t klen = it->string ? strlen(it->string) : 0;

		if (klen == 0 || klen > KEY_MAX) {
			snprintf(errmsg, errlen, "%s: key empty or longer than %d bytes", path, KEY_MAX);
			err = EGOV_EINVAL;
			goto out;
		}
		if (!cJSON_IsString(it)) {
			snprintf(errmsg, errlen, "%s: \"%s\" is not a string", path, it->string);
			err = EGOV_EINVAL;
			goto out;
		}
		if (!utf8_valid_str(it->string) ||
		    !utf8_valid_str(it->valuestring)) {
			snprintf(errmsg, errlen, "%s: \"%s\" is not valid UTF-8", path, it->string);
			err = EGOV_EINVAL;
			goto out;
		}
		/* Counted before the copies so a failure frees exactly what exists. */
		v[filled].key = strdup(it->string);
		v[filled].text = strdup(it->valuestring);
		filled++;
		if (!v[filled - 1].key || !v[filled - 1].text) {
			err = EGOV_ENOMEM;
			goto out;
		}
	}
	qsort(v, n, sizeof *v, entry_cmp);
	for (i = 1; i < n; i++) {
		if (strcmp(v[i - 1].key, v[i].key) == 0) {
			snprintf(errmsg, errlen, "%s: duplicate key \"%s\"", path, v[i].key);
			err = EGOV_EINVAL;
			goto out;
		}
	}
	c->v = v;
	c->n = n;
	v = NULL;
out:
	if (v) {
		catalogue tmp = {v, filled};
		catalogue_release(&tmp);
	}
	cJSON_Delete(root);
	free(text);
	return err;
}

egov_err i18n_load(const char *dir, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	char path[4096];
	int i;

	i18n_free();
	for (i = 0; i < I18N_NLANG; i++) {
		int w = snprintf(path, sizeof path, "%s/%s.json", dir, i18n_langs[i]);
		if (w < 0 || (size_t)w >= sizeof path) {
			snprintf(errmsg, errlen, "%s: path too long", dir);
			err = EGOV_EINVAL;
			goto out;
		}
		if ((err = catalogue_load(&cats[i], path, errmsg, errlen)))
			goto out;
	}
out:
	if (err)
		i18n_free();
	return err;
}

/* Compares the primary subtag of tag (up to '-' or end) with p, ignoring case. */
static int primary_is(const char *tag, size_t len, const char *p)
{
	size_t plen = strlen(p);
	return len >= plen && strncasecmp(tag, p, plen) == 0 && (len == plen || tag[plen] == '-');
}

/* Language index for the tag tag[0..len), or -1. Chinese in any script or
 * region gets zh-Hant: it is the only Chinese we have, and a reader of
 * Simplified reads it far better than a fallback to English. */
static int lang_index_n(const char *tag, size_t len)
{
	if (primary_is(tag, len, "zh"))
		return LANG_ZH;
	if (primary_is(tag, len, "pt"))
		return LANG_PT;
	if (primary_is(tag, len, "en"))
		return LANG_EN;
	return -1;
}

int i18n_lang_index(const char *tag)
{
	if (!tag)
		return -1;
	return lang_index_n(tag, strlen(tag));
}

/* Parses a q-value ("1", "1.000", "0", "0.5" ...) in thousandths, or -1 if
 * it is not one (RFC 9110 12.4.2: at most three decimals, at most 1). */
static int parse_q(const char *s, size_t len)
{
	int q, i;
	size_t k;

	if (len == 0 || (s[0] != '0' && s[0] != '1'))
		return -1;
	q = (s[0] - '0') * 1000;
	if (len == 1)
		return q;
	if (s[1] != '.' || len > 5)
		return -1;
	for (k = 2, i = 100; k < len; k++, i /= 10) {
		if (s[k] < '0' || s[k] > '9')
			return -1;
		q += (s[k] - '0') * i;
	}
	return q > 1000 ? -1 : q;
}

static int is_ows(char c)
{
	return c == ' ' || c == '\t';
}

const char *i18n_negotiate(const char *accept_language)
{
	const char *p = accept_language;
	int best = -1, best_q = 0;
	int items = 0;

	if (!p)
		return i18n_langs[LANG_ZH];
	/* Bounded by the header limits; the item cap stops pathological lists. */
	while (*p && items < 64) {
		const char *item = p, *end, *tag_end, *semi;
		size_t tag_len;
		int q = 1000, idx;

		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		p = *end ? end + 1 : end;
		items++;
		while (item < end && is_ows(*item))
			item++;
		for (semi = item; semi < end && *semi != ';'; semi++)
			;
		tag_end = semi;
		if (semi == end)
			semi = NULL;
		while (tag_end > item && is_ows(tag_end[-1]))
			tag_end--;
		tag_len = (size_t)(tag_end - item);
		if (tag_len == 0)
			continue;
		if (semi) {
			const char *qs = semi + 1, *qe = end;
			while (qs < qe && is_ows(*qs))
				qs++;
			while (qe > qs && is_ows(qe[-1]))
				qe--;
			if (qe - qs < 2 || (qs[0] != 'q' && qs[0] != 'Q') || qs[1] != '=')
				continue;
			q = parse_q(qs + 2, (size_t)(qe - qs - 2));
			if (q < 0)
				continue;
		}
		if (tag_len == 1 && item[0] == '*')
			idx = LANG_ZH;
		else
			idx = lang_index_n(item, tag_len);
		/* Strictly greater: among equal q-values the first listed wins. */
		if (idx >= 0 && q > best_q) {
			best = idx;
			best_q = q;
		}
	}
	return i18n_langs[best >= 0 ? best : LANG_ZH];
}

static const char *lookup(int lang, const char *key)
{
	const catalogue *c;
	const entry *hit;

	if (lang < 0 || lang >= I18N_NLANG || !key)
		return NULL;
	c = &cats[lang];
	if (c->n == 0)
		return NULL;
	hit = bsearch(key, c->v, c->n, sizeof *c->v, key_cmp);
	return hit ? hit->text : NULL;
}

const char *i18n_text(const char *lang, const char *key)
{
	const char *t = lookup(i18n_lang_index(lang), key);

	if (!t)
		t = lookup(LANG_EN, key);
	return t ? t : (key ? key : "");
}

int i18n_has(const char *lang, const char *key)
{
	return lookup(i18n_lang_index(lang), key) != NULL;
}
