/*
 * console_frame.c: the staff console's templates. At start each rendered
 * template (the kernel has put the catalogue texts in, per language) is
 * split once at its slots (<!--console:NAME-->, see console_int.h) into a
 * list of segments; a request walks the frame's list and writes each
 * segment, filling a slot from its view.
 *
 * Invariants: a parsed template's literal segments point into the web
 * table's bytes, which stay loaded while the server runs; every text a
 * view brings is HTML-escaped on the way out, so a name or a query string
 * cannot close an attribute or open an element; an if segment knows where
 * its end is, so rendering never searches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console/console_int.h"
#include "core/banned.h"

#define MARK_OPEN "<!--console:"
#define MARK_CLOSE "-->"
#define SLOT_NAME_MAX 32
#define TPL_SEGS_MAX 256 /* our templates have a few dozen; a loop in one is a bug */

typedef enum seg_kind {
	SEG_TEXT,
	SEG_TITLE,
	SEG_CSRF,
	SEG_PERSON,
	SEG_SCRIPT,
	SEG_HREF,
	SEG_MENU,
	SEG_CARDS,
	SEG_CONTENT,
	SEG_IF,
	SEG_END,
} seg_kind;

typedef enum cond { COND_PERSON, COND_MENU, COND_CARDS, COND_NO_CARDS } cond;

typedef struct seg {
	seg_kind kind;
	int arg;        /* SEG_HREF: language index; SEG_IF: its cond */
	size_t end;     /* SEG_IF: index of its SEG_END */
	const char *text; /* SEG_TEXT */
	size_t len;
} seg;

struct console_tpl {
	seg *v;
	size_t n;
};

static const struct {
	const char *name;
	seg_kind kind;
	int arg;
} slot_names[] = {
	{"title", SEG_TITLE, 0},
	{"csrf", SEG_CSRF, 0},
	{"person", SEG_PERSON, 0},
	{"script", SEG_SCRIPT, 0},
	{"menu", SEG_MENU, 0},
	{"cards", SEG_CARDS, 0},
	{"content", SEG_CONTENT, 0},
	{"if:person", SEG_IF, COND_PERSON},
	{"if:menu", SEG_IF, COND_MENU},
	{"if:cards", SEG_IF, COND_CARDS},
	{"if:no-cards", SEG_IF, COND_NO_CARDS},
	{"end", SEG_END, 0},
};

void console_tpl_free(console_tpl *t)
{
	if (!t)
		return;
	free(t->v);
	free(t);
}

static egov_err push(console_tpl *t, seg s, const char *name, char *errmsg, size_t errlen)
{
	if (t->n >= TPL_SEGS_MAX) {
		snprintf(errmsg, errlen, "%s: more than %d parts", name, TPL_SEGS_MAX);
		return EGOV_ELIMIT;
	}
	t->v[t->n++] = s;
	return EGOV_OK;
}

/* The segment a slot name stands for; false if it is no slot of ours. */
static bool slot_of(const char *nm, seg *out)
{
	size_t i;
	int li;

	memset(out, 0, sizeof *out);
	for (i = 0; i < sizeof slot_names / sizeof slot_names[0]; i++)
		if (strcmp(slot_names[i].name, nm) == 0) {
			out->kind = slot_names[i].kind;
			out->arg = slot_names[i].arg;
			return true;
		}
	if (strncmp(nm, "href:", 5) == 0 && (li = i18n_lang_index(nm + 5)) >= 0 &&
	    strcmp(i18n_langs[li], nm + 5) == 0) {
		out->kind = SEG_HREF;
		out->arg = li;
		return true;
	}
	return false;
}

egov_err console_tpl_parse(const char *name, const char *data, size_t len, bool frame, console_tpl **out,
			   char *errmsg, size_t errlen)
{
	const char *p = data, *end = data + len;
	console_tpl *t = NULL;
	size_t open_if = (size_t)-1, contents = 0;
	egov_err err = EGOV_OK;

	*out = NULL;
	if (!(t = calloc(1, sizeof *t)) || !(t->v = calloc(TPL_SEGS_MAX, sizeof *t->v))) {
		err = EGOV_ENOMEM;
		goto out;
	}
	while (p < end) {
		const char *m = memmem(p, (size_t)(end - p), MARK_OPEN, sizeof MARK_OPEN - 1);
		const char *nm, *close;
		char slot[SLOT_NAME_MAX + 1];
		seg s;

		if (!m) {
			err = push(t, (seg){.kind = SEG_TEXT, .text = p, .len = (size_t)(end - p)}, name, errmsg, errlen);
			break;
		}
		if (m > p && (err = push(t, (seg){.kind = SEG_TEXT, .text = p, .len = (size_t)(m - p)}, name, errmsg,
					 errlen)))
			goto out;
		nm = m + sizeof MARK_OPEN - 1;
		close = memmem(nm, (size_t)(end - nm), MARK_CLOSE, sizeof MARK_CLOSE - 1);
		if (!close || (size_t)(close - nm) > SLOT_NAME_MAX) {
			snprintf(errmsg, errlen, "%s: a console slot that does not end", name);
			err = EGOV_EINVAL;
			goto out;
		}
		memcpy(slot, nm, (size_t)(close - nm));
		slot[close - nm] = '\0';
		if (!slot_of(slot, &s)) {
			snprintf(errmsg, errlen, "%s: unknown console slot \"%s\"", name, slot);
			err = EGOV_EINVAL;
			goto out;
		}
		if (s.kind == SEG_IF && open_if != (size_t)-1) {
			snprintf(errmsg, errlen, "%s: console slot \"%s\" inside another if", name, slot);
			err = EGOV_EINVAL;
			goto out;
		}
		if (s.kind == SEG_END) {
			if (open_if == (size_t)-1) {
				snprintf(errmsg, errlen, "%s: console slot \"end\" without its if", name);
				err = EGOV_EINVAL;
				goto out;
			}
			t->v[open_if].end = t->n;
			open_if = (size_t)-1;
		} else if (s.kind == SEG_IF) {
			open_if = t->n;
		} else if (s.kind == SEG_CONTENT) {
			contents++;
		}
		if ((err = push(t, s, name, errmsg, errlen)))
			goto out;
		p = close + sizeof MARK_CLOSE - 1;
	}
	if (err)
		goto out;
	if (open_if != (size_t)-1) {
		snprintf(errmsg, errlen, "%s: a console if without its end", name);
		err = EGOV_EINVAL;
		goto out;
	}
	if (contents != (frame ? 1u : 0u)) {
		snprintf(errmsg, errlen, "%s: %s", name,
			 frame ? "the frame needs exactly one content slot" : "a page's content has no content slot");
		err = EGOV_EINVAL;
		goto out;
	}
	*out = t;
	t = NULL;
out:
	console_tpl_free(t);
	return err;
}

static bool holds(const console_view *v, int c)
{
	switch (c) {
	case COND_PERSON:
		return v->person != NULL;
	case COND_MENU:
		return v->nmenu > 0;
	case COND_CARDS:
		return v->ncards > 0;
	default:
		return v->ncards == 0;
	}
}

static egov_err add_attr(buf *out, const char *name, const char *value)
{
	egov_err err;

	if ((err = buf_addc(out, ' ')) || (err = buf_adds(out, name)) || (err = buf_adds(out, "=\"")) ||
	    (err = buf_add_html(out, value)))
		return err;
	return buf_addc(out, '"');
}

static egov_err add_menu(buf *out, const console_view *v)
{
	egov_err err = EGOV_OK;
	size_t i;

	for (i = 0; !err && i < v->nmenu; i++) {
		const console_link *l = &v->menu[i];
		if ((err = buf_adds(out, "<li class=\"console-nav__item\"><a class=\"console-nav__link\"")) ||
		    (err = add_attr(out, "href", l->href)) ||
		    (l->current && (err = buf_adds(out, " aria-current=\"page\""))) || (err = buf_addc(out, '>')) ||
		    (err = buf_add_html(out, l->label)))
			break;
		err = buf_adds(out, "</a></li>\n");
	}
	return err;
}

static egov_err add_cards(buf *out, const console_view *v)
{
	egov_err err = EGOV_OK;
	size_t i;

	for (i = 0; !err && i < v->ncards; i++) {
		const console_link *l = &v->cards[i];
		if ((err = buf_adds(out, "<li class=\"card\"><h3><a")) || (err = add_attr(out, "href", l->href)) ||
		    (err = buf_addc(out, '>')) || (err = buf_add_html(out, l->label)) ||
		    (err = buf_adds(out, "</a></h3><p>")) || (err = buf_add_html(out, l->summary ? l->summary : "")))
			break;
		err = buf_adds(out, "</p></li>\n");
	}
	return err;
}

static egov_err render(const console_tpl *t, const console_view *v, buf *out)
{
	egov_err err = EGOV_OK;
	size_t i;

	for (i = 0; !err && i < t->n; i++) {
		const seg *s = &t->v[i];
		switch (s->kind) {
		case SEG_TEXT:
			err = buf_add(out, s->text, s->len);
			break;
		case SEG_TITLE:
			err = buf_add_html(out, v->title ? v->title : "");
			break;
		case SEG_CSRF:
			err = v->person ? buf_add_html(out, v->csrf ? v->csrf : "") : EGOV_OK;
			break;
		case SEG_PERSON:
			err = v->person ? buf_add_html(out, v->person) : EGOV_OK;
			break;
		case SEG_SCRIPT:
			if (v->script && !(err = buf_adds(out, "<script")) && !(err = add_attr(out, "src", v->script)))
				err = buf_adds(out, " defer></script>");
			break;
		case SEG_HREF:
			err = buf_add_html(out, v->lang_href[s->arg] ? v->lang_href[s->arg] : "");
			break;
		case SEG_MENU:
			err = add_menu(out, v);
			break;
		case SEG_CARDS:
			err = add_cards(out, v);
			break;
		case SEG_CONTENT:
			/* Parsing left no content slot in a content template, so
			 * this goes one level deep only. */
			err = v->content ? render(v->content, v, out) : EGOV_OK;
			break;
		case SEG_IF:
			if (!holds(v, s->arg))
				i = s->end;
			break;
		case SEG_END:
			break;
		}
	}
	return err;
}

egov_err console_render(const console_tpl *frame, const console_view *v, buf *out)
{
	return render(frame, v, out);
}
