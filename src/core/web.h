/*
 * web.h: the static front end under web/, served from memory.
 *
 * At start every file under the web directory is read once. HTML files are
 * templates: each {{key}} is replaced by the catalogue text for the key
 * (HTML-escaped), {{lang}} by the language tag, {{dir}} by "ltr",
 * {{current:TAG}} by "page" in the TAG rendering and "false" in the others
 * (for aria-current on the language switch), and a page is rendered once per
 * language; any other "{{" is a load error. Every rendered variant and every other file
 * carries a strong ETag (SHA-256 of its bytes) and its MIME type. Lookup is by
 * exact path in that table, so ".." or any path not in the tree cannot be
 * served: there is no file-system access at request time.
 */
#ifndef EGOV_CORE_WEB_H
#define EGOV_CORE_WEB_H

#include <stddef.h>

#include "core/err.h"

typedef struct web_file {
	const char *data;
	size_t len;
	const char *etag; /* quoted, e.g. "\"3f2a...\"" */
	const char *mime; /* e.g. "text/html; charset=utf-8" */
	int per_lang;     /* 1 if rendered per language (send Vary) */
} web_file;

/* Loads dir (and renders templates with the catalogues already loaded by
 * i18n_load()). A template key missing from a catalogue is an error naming
 * the file, key and language. */
egov_err web_load(const char *dir, char *errmsg, size_t errlen);
void web_free(void);

/* Finds a file for a decoded request path ("/" means "/index.html"; a path
 * ending in "/" gets "index.html"). lang picks the rendered variant. */
const web_file *web_find(const char *path, const char *lang);

/* MIME type for a file name by extension; "application/octet-stream" if unknown. */
const char *web_mime_type(const char *name);

#endif
