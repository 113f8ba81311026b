/*
 * web.c: the static front end, read once at start and served from memory.
 *
 * Invariants: after web_load() succeeds, the table holds one entry per
 * regular file under the web directory, sorted by its URL path ("/css/x.css")
 * with no duplicates; an HTML file holds one rendered variant per language,
 * any other file one. Every variant has its SHA-256 ETag and MIME type. The
 * table is written only by web_load()/web_free(), before the server's threads
 * start and after they stop, so web_find() needs no lock and never touches
 * the file system. Names starting with "." are not part of the site, but for
 * a top-level ".well-known" directory (so no entry has a "." or ".."
 * segment); a symbolic link is followed only to a
 * regular file inside the directory, and never for directories, so a link
 * cannot pull in anything outside the tree or loop. A failed load leaves
 * nothing loaded.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/i18n.h"
#include "core/web.h"
#include "core/banned.h"

/* The web directory is written by us, not by clients, but it is still read
 * defensively: the front end is tens of files and well under 1 MiB, so these
 * caps only stop a misconfigured directory (say, the data directory by
 * mistake) from eating the server's memory. */
#define WEB_FILES_MAX 2048
#define WEB_FILE_BYTES_MAX (8 * 1024 * 1024)
#define WEB_TOTAL_BYTES_MAX (64 * 1024 * 1024) /* every stored variant counted */
#define WEB_DEPTH_MAX 16
#define WEB_PATH_MAX 1024
#define TEMPLATE_KEY_MAX 128

typedef struct web_entry {
	char *path; /* URL path, e.g. "/index.html" */
	int per_lang;
	web_file files[I18N_NLANG]; /* only [0] unless per_lang */
	char *data[I18N_NLANG];     /* owned bytes behind files[].data */
	char *etag[I18N_NLANG];     /* owned strings behind files[].etag */
} web_entry;

typedef struct web_table {
	web_entry *v;
	size_t n, alloc;
	size_t total; /* bytes stored, for WEB_TOTAL_BYTES_MAX */
} web_table;

static web_table site;

static void entry_release(web_entry *e)
{
	int i;

	free(e->path);
	for (i = 0; i < I18N_NLANG; i++) {
		free(e->data[i]);
		free(e->etag[i]);
	}
	memset(e, 0, sizeof *e);
}

static void table_release(web_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		entry_release(&t->v[i]);
	free(t->v);
	memset(t, 0, sizeof *t);
}

void web_free(void)
{
	table_release(&site);
}

static const struct {
	const char *ext;
	const char *mime;
} mime_types[] = {
	{"html", "text/html; charset=utf-8"},
	{"css", "text/css; charset=utf-8"},
	{"js", "text/javascript; charset=utf-8"},
	{"mjs", "text/javascript; charset=utf-8"},
	{"json", "application/json"},
	{"svg", "image/svg+xml; charset=utf-8"},
	{"png", "image/png"},
	{"ico", "image/x-icon"},
	{"woff2", "font/woff2"},
	{"txt", "text/plain; charset=utf-8"},
	{"webmanifest", "application/manifest+json"},
};

const char *web_mime_type(const char *name)
{
	const char *slash, *dot;
	size_t i;

	if (!name)
		return "application/octet-stream";
	slash = strrchr(name, '/');
	dot = strrchr(slash ? slash : name, '.');
	if (!dot || dot[1] == '\0')
		return "application/octet-stream";
	for (i = 0; i < sizeof mime_types / sizeof mime_types[0]; i++)
		if (strcasecmp(dot + 1, mime_types[i].ext) == 0)
			return mime_types[i].mime;
	return "application/octet-stream";
}

static int is_template(const char *name)
{
	size_t n = strlen(name);
	return n >= 5 && strcasecmp(name + n - 5, ".html") == 0;
}

static egov_err etag_make(const char *data, size_t len, char **out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	egov_err err = EGOV_OK;
	buf b;

	buf_init(&b, 2 * EVP_MAX_MD_SIZE + 2);
	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL)) {
		err = EGOV_EINTERNAL;
		goto out;
	}
	if ((err = buf_addc(&b, '"')) || (err = buf_add_hex(&b, md, mdlen)) || (err = buf_addc(&b, '"')))
		goto out;
	*out = buf_detach(&b, NULL);
	if (!*out)
		err = EGOV_ENOMEM;
out:
	buf_release(&b);
	return err;
}

static int key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-' || c == ':';
}

static unsigned line_of(const char *start, const char *p)
{
	unsigned line = 1;
	for (; start < p; start++)
		if (*start == '\n')
			line++;
	return line;
}

/* Partials: web/partials/NAME.html, included with {{>NAME}}. They are
 * templates themselves (one level: a partial cannot include another) and
 * are not served. root_dir is set while web_load() runs. */
#define PARTIALS_DIR "partials"
#define PARTIAL_NAME_MAX 64
static const char *root_dir;

static egov_err render(const char *rel, const char *src, size_t len, const char *lang, buf *out,
		       char *errmsg, size_t errlen, int depth);
static egov_err read_fd(int fd, const char *rel, char **out, size_t *len_out, char *errmsg, size_t errlen);

static egov_err include_partial(const char *rel, const char *name, const char *lang, buf *out, char *errmsg,
				size_t errlen, int depth)
{
	char path[PATH_MAX], prel[PARTIAL_NAME_MAX + 32];
	char *src = NULL;
	size_t len = 0;
	int fd = -1;
	egov_err err;

	if (depth > 0) {
		snprintf(errmsg, errlen, "%s: partial {{>%s}} inside a partial", rel, name);
		return EGOV_EINVAL;
	}
	snprintf(prel, sizeof prel, "/" PARTIALS_DIR "/%s.html", name);
	snprintf(path, sizeof path, "%s%s", root_dir ? root_dir : ".", prel);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(errmsg, errlen, "%s: partial {{>%s}}: %s: %s", rel, name, prel, strerror(errno));
		return EGOV_ENOTFOUND;
	}
	err = read_fd(fd, prel, &src, &len, errmsg, errlen);
	close(fd);
	if (!err)
		err = render(prel, src, len, lang, out, errmsg, errlen, depth + 1);
	free(src);
	return err;
}

/*
 * Renders template src for language lang into out. Placeholders:
 *   {{key}}           catalogue text, HTML-escaped
 *   {{lang}}          the language tag
 *   {{dir}}           "ltr" (all our languages are)
 *   {{current:TAG}}   "page" when TAG is the language, else "false"; for
 *                     aria-current on the language switch
 *   {{>NAME}}         the partial web/partials/NAME.html, rendered here
 * Anything else that starts with "{{" is an error, so no page can ship with
 * an unresolved placeholder.
 */
static egov_err render(const char *rel, const char *src, size_t len, const char *lang, buf *out,
		       char *errmsg, size_t errlen, int depth)
{
	egov_err err = EGOV_OK;
	const char *p = src, *end = src + len;
	char key[TEMPLATE_KEY_MAX + 1];

	while (p < end) {
		const char *open = memmem(p, (size_t)(end - p), "{{", 2);
		const char *k, *close;
		size_t klen;

		if (!open) {
			err = buf_add(out, p, (size_t)(end - p));
			goto out;
		}
		if ((err = buf_add(out, p, (size_t)(open - p))))
			goto out;
		k = open + 2;
		if (k < end && *k == '>') {
			char name[PARTIAL_NAME_MAX + 1];
			size_t nlen;
			for (close = k + 1; close < end && ((*close >= 'a' && *close <= 'z') ||
							    (*close >= '0' && *close <= '9') || *close == '-');
			     close++)
				;
			nlen = (size_t)(close - k - 1);
			if (nlen == 0 || nlen > PARTIAL_NAME_MAX || end - close < 2 || close[0] != '}' ||
			    close[1] != '}') {
				snprintf(errmsg, errlen, "%s:%u: malformed partial", rel, line_of(src, open));
				err = EGOV_EINVAL;
				goto out;
			}
			memcpy(name, k + 1, nlen);
			name[nlen] = '\0';
			if ((err = include_partial(rel, name, lang, out, errmsg, errlen, depth)))
				goto out;
			p = close + 2;
			continue;
		}
		for (close = k; close < end && key_char(*close); close++)
			;
		klen = (size_t)(close - k);
		if (klen == 0 || klen > TEMPLATE_KEY_MAX || end - close < 2 || close[0] != '}' || close[1] != '}') {
			snprintf(errmsg, errlen, "%s:%u: malformed placeholder", rel, line_of(src, open));
			err = EGOV_EINVAL;
			goto out;
		}
		memcpy(key, k, klen);
		key[klen] = '\0';
		if (strcmp(key, "lang") == 0) {
			err = buf_adds(out, lang);
		} else if (strcmp(key, "dir") == 0) {
			err = buf_adds(out, "ltr");
		} else if (strncmp(key, "current:", 8) == 0) {
			if (i18n_lang_index(key + 8) < 0 || strcmp(i18n_langs[i18n_lang_index(key + 8)], key + 8) != 0) {
				snprintf(errmsg, errlen, "%s:%u: unknown language in {{%s}}", rel,
					 line_of(src, open), key);
				err = EGOV_EINVAL;
				goto out;
			}
			err = buf_adds(out, strcmp(key + 8, lang) == 0 ? "page" : "false");
		} else if (!i18n_has(lang, key)) {
			snprintf(errmsg, errlen, "%s:%u: template key \"%s\" missing in language %s", rel,
				 line_of(src, open), key, lang);
			err = EGOV_ENOTFOUND;
			goto out;
		} else {
			err = buf_add_html(out, i18n_text(lang, key));
		}
		if (err)
			goto out;
		p = close + 2;
	}
out:
	if (err == EGOV_ELIMIT)
		snprintf(errmsg, errlen, "%s: the web directory is larger than %d bytes", rel, WEB_TOTAL_BYTES_MAX);
	return err;
}

static egov_err table_push(web_table *t, web_entry **out)
{
	if (t->n == t->alloc) {
		size_t n = t->alloc ? t->alloc * 2 : 64;
		web_entry *v = realloc(t->v, n * sizeof *v);
		if (!v)
			return EGOV_ENOMEM;
		t->v = v;
		t->alloc = n;
	}
	*out = &t->v[t->n++];
	memset(*out, 0, sizeof **out);
	return EGOV_OK;
}

/* Reads an open regular file of at most WEB_FILE_BYTES_MAX bytes. */
static egov_err read_fd(int fd, const char *rel, char **out, size_t *len_out, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	struct stat st;
	char *data = NULL;
	size_t have = 0, size;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(errmsg, errlen, "%s: not a regular file", rel);
		err = EGOV_EIO;
		goto out;
	}
	if (st.st_size > WEB_FILE_BYTES_MAX) {
		snprintf(errmsg, errlen, "%s: larger than %d bytes", rel, WEB_FILE_BYTES_MAX);
		err = EGOV_ELIMIT;
		goto out;
	}
	size = (size_t)st.st_size;
	if (!(data = malloc(size + 1))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	while (have < size) {
		ssize_t r = read(fd, data + have, size - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(errmsg, errlen, "%s: %s", rel, r < 0 ? strerror(errno) : "shrank while read");
			err = EGOV_EIO;
			goto out;
		}
		have += (size_t)r;
	}
	data[size] = '\0';
	*out = data;
	*len_out = size;
	data = NULL;
out:
	free(data);
	return err;
}

static egov_err add_variant(web_table *t, web_entry *e, int i, char *data, size_t len, const char *mime,
			    const char *rel, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;

	if (len > WEB_TOTAL_BYTES_MAX - t->total) {
		snprintf(errmsg, errlen, "%s: the web directory is larger than %d bytes", rel, WEB_TOTAL_BYTES_MAX);
		free(data);
		err = EGOV_ELIMIT;
		goto out;
	}
	t->total += len;
	e->data[i] = data;
	if ((err = etag_make(data, len, &e->etag[i])))
		goto out;
	e->files[i].data = e->data[i];
	e->files[i].len = len;
	e->files[i].etag = e->etag[i];
	e->files[i].mime = mime;
	e->files[i].per_lang = e->per_lang;
out:
	return err;
}

static egov_err add_file(web_table *t, int fd, const char *rel, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	web_entry *e = NULL;
	char *src = NULL;
	size_t len = 0;
	const char *mime = web_mime_type(rel);
	int i;

	if (t->n >= WEB_FILES_MAX) {
		snprintf(errmsg, errlen, "%s: the web directory has more than %d files", rel, WEB_FILES_MAX);
		err = EGOV_ELIMIT;
		goto out;
	}
	if ((err = read_fd(fd, rel, &src, &len, errmsg, errlen)))
		goto out;
	if ((err = table_push(t, &e)))
		goto out;
	if (!(e->path = strdup(rel))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	if (!is_template(rel)) {
		err = add_variant(t, e, 0, src, len, mime, rel, errmsg, errlen);
		src = NULL;
		goto out;
	}
	e->per_lang = 1;
	for (i = 0; i < I18N_NLANG; i++) {
		buf b;
		size_t outlen = 0;
		char *page;

		buf_init(&b, WEB_TOTAL_BYTES_MAX - t->total);
		err = render(rel, src, len, i18n_langs[i], &b, errmsg, errlen, 0);
		if (err) {
			buf_release(&b);
			goto out;
		}
		page = buf_detach(&b, &outlen);
		if (!page) {
			err = EGOV_ENOMEM;
			goto out;
		}
		if ((err = add_variant(t, e, i, page, outlen, mime, rel, errmsg, errlen)))
			goto out;
	}
out:
	free(src);
	return err;
}

/* Walks root_real + rel (rel "" or "/sub"), adding every file. */
static egov_err walk(web_table *t, const char *root_real, const char *rel, int depth, char *errmsg,
		     size_t errlen)
{
	egov_err err = EGOV_OK;
	char dirpath[PATH_MAX], full[PATH_MAX], childrel[WEB_PATH_MAX];
	char *real = NULL;
	DIR *d = NULL;
	struct dirent *de;
	int fd = -1, w;

	if (depth > WEB_DEPTH_MAX) {
		snprintf(errmsg, errlen, "%s: nested deeper than %d", rel, WEB_DEPTH_MAX);
		err = EGOV_ELIMIT;
		goto out;
	}
	w = snprintf(dirpath, sizeof dirpath, "%s%s", root_real, rel);
	if (w < 0 || (size_t)w >= sizeof dirpath) {
		snprintf(errmsg, errlen, "%s: path too long", rel);
		err = EGOV_EINVAL;
		goto out;
	}
	if (!(d = opendir(dirpath))) {
		snprintf(errmsg, errlen, "%s: %s", dirpath, strerror(errno));
		err = EGOV_EIO;
		goto out;
	}
	for (;;) {
		struct stat st;

		errno = 0;
		if (!(de = readdir(d))) {
			if (errno) {
				snprintf(errmsg, errlen, "%s: %s", dirpath, strerror(errno));
				err = EGOV_EIO;
			}
			break;
		}
		/* Hidden names (., .., editor and VCS files) are never part of the
		 * site, except RFC 8615's /.well-known/ at the top. */
		if (de->d_name[0] == '.' && !(depth == 0 && strcmp(de->d_name, ".well-known") == 0))
			continue;
		if (depth == 0 && strcmp(de->d_name, PARTIALS_DIR) == 0)
			continue; /* included by pages, not served */
		w = snprintf(childrel, sizeof childrel, "%s/%s", rel, de->d_name);
		if (w < 0 || (size_t)w >= sizeof childrel) {
			snprintf(errmsg, errlen, "%s/%s: path longer than %d", rel, de->d_name, WEB_PATH_MAX);
			err = EGOV_ELIMIT;
			goto out;
		}
		w = snprintf(full, sizeof full, "%s%s", root_real, childrel);
		if (w < 0 || (size_t)w >= sizeof full) {
			snprintf(errmsg, errlen, "%s: path too long", childrel);
			err = EGOV_EINVAL;
			goto out;
		}
		if (lstat(full, &st) != 0) {
			snprintf(errmsg, errlen, "%s: %s", childrel, strerror(errno));
			err = EGOV_EIO;
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			if ((err = walk(t, root_real, childrel, depth + 1, errmsg, errlen)))
				goto out;
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			size_t rl = strlen(root_real);
			free(real);
			real = realpath(full, NULL);
			if (!real || strncmp(real, root_real, rl) != 0 || real[rl] != '/' ||
			    stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
				snprintf(errmsg, errlen,
					 "%s: symbolic link to something other than a file inside the web directory",
					 childrel);
				err = EGOV_EINVAL;
				goto out;
			}
		} else if (!S_ISREG(st.st_mode)) {
			continue; /* sockets, fifos, devices: not content */
		}
		fd = open(real ? real : full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0) {
			snprintf(errmsg, errlen, "%s: %s", childrel, strerror(errno));
			err = EGOV_EIO;
			goto out;
		}
		if ((err = add_file(t, fd, childrel, errmsg, errlen)))
			goto out;
		close(fd);
		fd = -1;
		free(real);
		real = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	if (d)
		closedir(d);
	free(real);
	return err;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const web_entry *)a)->path, ((const web_entry *)b)->path);
}

static int path_cmp(const void *key, const void *e)
{
	return strcmp(key, ((const web_entry *)e)->path);
}

egov_err web_load(const char *dir, char *errmsg, size_t errlen)
{
	egov_err err = EGOV_OK;
	web_table t = {0};
	char *root_real = NULL;

	web_free();
	if (!dir || !(root_real = realpath(dir, NULL))) {
		snprintf(errmsg, errlen, "%s: %s", dir ? dir : "(null)", strerror(errno));
		err = EGOV_EIO;
		goto out;
	}
	root_dir = root_real;
	err = walk(&t, root_real, "", 0, errmsg, errlen);
	root_dir = NULL;
	if (err)
		goto out;
	qsort(t.v, t.n, sizeof *t.v, entry_cmp);
	site = t;
	memset(&t, 0, sizeof t);
out:
	table_release(&t);
	free(root_real);
	return err;
}

const web_file *web_find(const char *path, const char *lang)
{
	char full[WEB_PATH_MAX + sizeof "index.html"];
	const web_entry *e;
	size_t n;
	int idx;

	if (!path || path[0] != '/' || site.n == 0)
		return NULL;
	n = strlen(path);
	if (n >= WEB_PATH_MAX)
		return NULL;
	memcpy(full, path, n + 1);
	if (path[n - 1] == '/')
		memcpy(full + n, "index.html", sizeof "index.html");
	e = bsearch(full, site.v, site.n, sizeof *site.v, path_cmp);
	if (!e)
		return NULL;
	if (!e->per_lang)
		return &e->files[0];
	idx = i18n_lang_index(lang);
	return &e->files[idx >= 0 ? idx : 0];
}
