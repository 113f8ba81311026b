/*
 * console.h: the staff console, one page frame for every module's staff
 * pages. It offers nothing to call: a module adds a page by declaring it
 * in its descriptor (.pages, console_page in core/module.h), and the
 * console, the last module, serves it.
 *
 *   GET  /staff              the landing page: the menu's entries as cards
 *   GET  /staff/NAME...      a module's page inside the frame
 *   GET  /staff/signed-out   after log-out
 *   POST /staff/logout       the frame's log-out form (session + CSRF)
 *
 * Nobody signed in is sent to /login.html?return=PATH (lang= kept); a
 * person signed in who holds none of a page's permissions gets the 403
 * page inside the frame, audited as staff.page_forbidden; an unknown page
 * under /staff/ is a 404 inside the frame. The landing page is open to
 * staff.console and to whoever may open at least one page.
 */
#ifndef EGOV_CONSOLE_CONSOLE_H
#define EGOV_CONSOLE_CONSOLE_H

struct egov_module;
extern const struct egov_module console_module;

#endif
