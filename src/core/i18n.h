/*
 * i18n.h: message catalogues for every text a person reads.
 *
 * Catalogues are the JSON files web/i18n/{zh-Hant,pt,en}.json: flat objects
 * of key -> text. The pages use them (rendered server-side, see web.h) and so
 * do problem titles ("problem.<code>"). zh-Hant is the default language.
 * Lookups fall back to English, then to the key itself, so a missing text
 * shows up in tests instead of crashing.
 */
#ifndef EGOV_CORE_I18N_H
#define EGOV_CORE_I18N_H

#include <stddef.h>

#include "core/err.h"

#define I18N_NLANG 3
extern const char *const i18n_langs[I18N_NLANG]; /* "zh-Hant", "pt", "en" */

/* Loads the three catalogues from dir (e.g. "web/i18n"). */
egov_err i18n_load(const char *dir, char *errmsg, size_t errlen);
void i18n_free(void);

/* Index of a language tag we serve, or -1. Accepts "zh-Hant", "zh-TW",
 * "zh-HK", "zh-MO", "zh" (all zh-Hant), "pt", "pt-PT", "pt-BR", "en", "en-*". */
int i18n_lang_index(const char *tag);
/* Best language for an Accept-Language header value (q-values honoured);
 * zh-Hant when nothing matches. Returns the canonical tag. */
const char *i18n_negotiate(const char *accept_language);
/* Text for key in lang (canonical tag); never NULL. */
const char *i18n_text(const char *lang, const char *key);
/* 1 if the key exists in the language's own catalogue (no fallback). */
int i18n_has(const char *lang, const char *key);

#endif
