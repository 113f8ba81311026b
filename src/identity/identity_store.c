/*
 * identity_store.c: the identity tables (migrations), accounts, mailed
 * tokens, the outbox and the module's small shared helpers. Storage only:
 * no HTTP here.
 *
 * Invariants: e-mail is stored lower-cased and UNIQUE (so a registration
 * race ends in EGOV_ECONFLICT, never a duplicate); tokens are stored as
 * SHA-256 hex and consumed with one conditional UPDATE, so a token can be
 * used once even by concurrent requests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/b64url.h"
#include "core/crypto.h"
#include "core/timeutil.h"
#include "identity/identity_int.h"
#include "notify/notify.h"
#include "core/banned.h"

/* ---- helpers ------------------------------------------------------------ */

static int64_t (*clock_fn)(void);

void identity_set_clock(int64_t (*now_us)(void))
{
	clock_fn = now_us;
}

int64_t identity_now_us(void)
{
	return clock_fn ? clock_fn() : time_now_us();
}

void identity_now_rfc3339(char out[32])
{
	time_format_rfc3339(identity_now_us(), 6, out);
}


egov_err identity_random_token(char out[IDENTITY_TOKEN_LEN + 1])
{
	unsigned char raw[32];
	egov_err err = crypto_random(raw, sizeof raw);

	if (!err)
		b64url_encode(raw, sizeof raw, out);
	sodium_memzero(raw, sizeof raw);
	return err;
}

void identity_hash_hex(const char *s, char out[65])
{
	crypto_sha256_hex(s, strlen(s), out);
}

void identity_copy(char *dst, size_t n, const char *s)
{
	size_t l;

	if (!s)
		s = "";
	l = strlen(s);
	if (l >= n)
		l = n - 1;
	memcpy(dst, s, l);
	dst[l] = '\0';
}

size_t identity_utf8_len(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

void identity_ascii_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* ---- accounts ------------------------------------------------------------ */

static const char *const kind_names[] = {"resident", "staff", "system"};

const char *identity_kind_name(identity_kind k)
{
	return (unsigned)k < 3 ? kind_names[k] : "resident";
}

egov_err identity_kind_parse(const char *s, identity_kind *out)
{
	int i;

	for (i = 0; s && i < 3; i++) {
		if (strcmp(s, kind_names[i]) == 0) {
			*out = (identity_kind)i;
			return EGOV_OK;
		}
	}
	return EGOV_EINVAL;
}

int identity_email_valid(const char *s)
{
	const char *at, *dot;
	size_t len;

	if (!s)
		return 0;
	len = strlen(s);
	if (len < 3 || len > IDENTITY_EMAIL_MAX)
		return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == ',' || *p == ';' ||
		    *p == '"' || *p == '\\')
			return 0;
	at = strchr(s, '@');
	if (!at || at == s || strchr(at + 1, '@'))
		return 0;
	dot = strrchr(at + 1, '.');
	return dot && dot > at + 1 && dot[1] != '\0';
}

static int locale_valid(const char *s)
{
	return strcmp(s, "zh-Hant") == 0 || strcmp(s, "pt") == 0 || strcmp(s, "en") == 0;
}

#define ACCOUNT_COLS                                                                                  \
	"id, kind, email, display_name, locale, email_verified, disabled, locked, totp_enabled,"      \
	" password_hash IS NOT NULL, created_at"

static void read_account(db_rows *rows, identity_account *a)
{
	memset(a, 0, sizeof *a);
	identity_copy(a->id, sizeof a->id, db_rows_text(rows, 0));
	if (identity_kind_parse(db_rows_text(rows, 1), &a->kind))
		a->kind = IDENTITY_RESIDENT;
	identity_copy(a->email, sizeof a->email, db_rows_text(rows, 2));
	identity_copy(a->display_name, sizeof a->display_name, db_rows_text(rows, 3));
	identity_copy(a->locale, sizeof a->locale, db_rows_text(rows, 4));
	a->email_verified = db_rows_int(rows, 5) != 0;
	a->disabled = db_rows_int(rows, 6) != 0;
	a->locked = db_rows_int(rows, 7) != 0;
	a->totp_enabled = db_rows_int(rows, 8) != 0;
	/* PostgreSQL answers a boolean expression as "t"/"f" text. */
	{
		const char *t = db_rows_text(rows, 9);
		a->has_password = t && (t[0] == '1' || t[0] == 't');
	}
	identity_copy(a->created_at, sizeof a->created_at, db_rows_text(rows, 10));
}

static egov_err get_one(db_conn *c, const char *sql, const char *key, identity_account *out)
{
	db_rows *rows = NULL;
	db_param p[1] = {DBP_S(key)};
	bool has = false;
	egov_err err;

	if ((err = db_query(c, sql, p, 1, &rows)))
		goto out;
	if ((err = db_rows_next(rows, &has)))
		goto out;
	if (!has) {
		err = EGOV_ENOTFOUND;
		goto out;
	}
	read_account(rows, out);
out:
	db_rows_free(rows);
	return err;
}

egov_err identity_account_get(db_conn *c, const char *id, identity_account *out)
{
	if (!id || strlen(id) > 36)
		return EGOV_ENOTFOUND;
	return get_one(c, "SELECT " ACCOUNT_COLS " FROM identity_account WHERE id = ?", id, out);
}

egov_err identity_account_get_by_email(db_conn *c, const char *email, identity_account *out)
{
	char low[IDENTITY_EMAIL_MAX + 1];

	if (!email || strlen(email) > IDENTITY_EMAIL_MAX)
		return EGOV_ENOTFOUND;
	identity_copy(low, sizeof low, email);
	identity_ascii_lower(low);
	return get_one(c, "SELECT " ACCOUNT_COLS " FROM identity_account WHERE email = ?", low, out);
}

egov_err identity_account_check(const identity_account_new *in, const char **code)
{
	const char *locale = in->locale ? in->locale : "zh-Hant";
	size_t nlen;

	*code = NULL;
	if (!identity_email_valid(in->email)) {
		*code = "identity.email_invalid";
		return EGOV_EINVAL;
	}
	nlen = in->display_name ? identity_utf8_len(in->display_name) : 0;
	if (nlen < 1 || nlen > IDENTITY_NAME_MAX) {
		*code = "identity.name_invalid";
		return EGOV_EINVAL;
	}
	if (!locale_valid(locale)) {
		*code = "identity.locale_invalid";
		return EGOV_EINVAL;
	}
	return in->password ? identity_password_policy(in->password, code) : EGOV_OK;
}

egov_err identity_account_create(db_conn *c, const identity_account_new *in, identity_account *out,
				 const char **code, int64_t *retry_after_ms)
{
	char email[IDENTITY_EMAIL_MAX + 1], id[37], now[32], hash[128] = "";
	const char *locale = in->locale ? in->locale : "zh-Hant", *pw_hash = NULL;
	egov_err err;

	if ((err = identity_account_check(in, code)))
		return err;
	if (in->password) {
		if ((err = identity_password_hash(in->password, hash, retry_after_ms))) {
			if (err == EGOV_EBUSY)
				*code = "identity.busy";
			return err;
		}
		pw_hash = hash;
	} else if (in->password_hash) {
		pw_hash = in->password_hash;
	}
	identity_copy(email, sizeof email, in->email);
	identity_ascii_lower(email);
	if ((err = uuid_v7(id)))
		return err;
	identity_now_rfc3339(now);
	{
		db_param p[] = {DBP_S(id),
				DBP_S(identity_kind_name(in->kind)),
				DBP_S(email),
				DBP_S(in->display_name),
				DBP_S(locale),
				pw_hash ? DBP_S(pw_hash) : DBP_NULLV,
				DBP_I(in->email_verified ? 1 : 0),
				DBP_S(now),
				DBP_S(now)};
		err = db_exec(c,
			      "INSERT INTO identity_account (id, kind, email, display_name, locale, password_hash,"
			      " email_verified, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			      p, 9, NULL);
	}
	sodium_memzero(hash, sizeof hash);
	if (err == EGOV_ECONFLICT)
		*code = "identity.email_taken";
	if (!err)
		err = identity_account_get(c, id, out);
	return err;
}

static egov_err set_flag(db_conn *c, const char *sql, const char *id)
{
	char now[32];
	int64_t n = 0;
	db_param p[2];
	egov_err err;

	identity_now_rfc3339(now);
	p[0] = DBP_S(now);
	p[1] = DBP_S(id);
	if ((err = db_exec(c, sql, p, 2, &n)))
		return err;
	return n ? EGOV_OK : EGOV_ENOTFOUND;
}

egov_err identity_account_set_email_verified(db_conn *c, const char *id)
{
	return set_flag(c, "UPDATE identity_account SET email_verified = 1, updated_at = ? WHERE id = ?", id);
}

egov_err identity_account_disable(db_conn *c, const char *id)
{
	egov_err err = set_flag(c, "UPDATE identity_account SET disabled = 1, updated_at = ? WHERE id = ?", id);

	if (!err)
		err = identity_session_revoke_all(c, id, NULL, NULL);
	return err;
}

egov_err identity_account_list(db_conn *c, int (*fn)(void *ctx, const identity_account *a), void *ctx)
{
	db_rows *rows = NULL;
	identity_account a;
	bool has = false;
	egov_err err;

	if ((err = db_query(c, "SELECT " ACCOUNT_COLS " FROM identity_account ORDER BY email", NULL, 0, &rows)))
		goto out;
	while (!(err = db_rows_next(rows, &has)) && has) {
		read_account(rows, &a);
		if (fn(ctx, &a))
			break;
	}
out:
	db_rows_free(rows);
	return err;
}

/* ---- mailed tokens ------------------------------------------------------- */

static const char *purpose_name(identity_token_purpose p)
{
	return p == IDENTITY_TOKEN_RESET_PASSWORD ? "reset_password" : "verify_email";
}

egov_err identity_token_issue(db_conn *c, identity_token_purpose p, const char *account_id, int ttl_s,
			      char token_out[IDENTITY_TOKEN_LEN + 1])
{
	char hash[65];
	egov_err err;

	if ((err = identity_random_token(token_out)))
		return err;
	identity_hash_hex(token_out, hash);
	{
		db_param prm[] = {DBP_S(hash), DBP_S(purpose_name(p)), DBP_S(account_id),
				  DBP_I(identity_now_us() + (int64_t)ttl_s * 1000000)};
		err = db_exec(c,
			      "INSERT INTO identity_token (token_hash, purpose, account_id, expires)"
			      " VALUES (?, ?, ?, ?)",
			      prm, 4, NULL);
	}
	return err;
}

egov_err identity_token_peek(db_conn *c, identity_token_purpose p, const char *token)
{
	char hash[65];
	int64_t one = 0;
	bool found = false;
	egov_err err;

	if (!token || strlen(token) != IDENTITY_TOKEN_LEN)
		return EGOV_EINVAL;
	identity_hash_hex(token, hash);
	{
		db_param prm[] = {DBP_S(hash), DBP_S(purpose_name(p)), DBP_I(identity_now_us())};
		if ((err = db_query_int(c,
					"SELECT 1 FROM identity_token WHERE token_hash = ? AND purpose = ?"
					" AND used IS NULL AND expires > ?",
					prm, 3, &one, &found)))
			return err;
	}
	return found ? EGOV_OK : EGOV_EINVAL;
}

egov_err identity_token_consume(db_conn *c, identity_token_purpose p, const char *token, char account_id_out[37])
{
	char hash[65];
	char *acct = NULL;
	int64_t now = identity_now_us(), n = 0;
	egov_err err;

	if (!token || strlen(token) != IDENTITY_TOKEN_LEN)
		return EGOV_EINVAL;
	identity_hash_hex(token, hash);
	{
		/* One conditional UPDATE marks it used: of two concurrent
		 * consumers exactly one sees a changed row. */
		db_param prm[] = {DBP_I(now), DBP_S(hash), DBP_S(purpose_name(p)), DBP_I(now)};
		if ((err = db_exec(c,
				   "UPDATE identity_token SET used = ? WHERE token_hash = ? AND purpose = ?"
				   " AND used IS NULL AND expires > ?",
				   prm, 4, &n)))
			return err;
	}
	if (n != 1)
		return EGOV_EINVAL;
	{
		db_param prm[] = {DBP_S(hash)};
		if ((err = db_query_text(c, "SELECT account_id FROM identity_token WHERE token_hash = ?", prm, 1,
					 &acct)))
			return err;
	}
	if (!acct)
		return EGOV_EINVAL;
	identity_copy(account_id_out, 37, acct);
	free(acct);
	return EGOV_OK;
}

/* ---- mail (queued in notify's outbox) -------------------------------------- */

static char public_url[512];

void identity_set_public_url(const char *url)
{
	identity_copy(public_url, sizeof public_url, url);
	if (public_url[0] && public_url[strlen(public_url) - 1] == '/')
		public_url[strlen(public_url) - 1] = '\0';
}

const char *identity_public_url(void)
{
	return public_url;
}

typedef struct mail_template {
	const char *key;
	const char *subject[3]; /* zh-Hant, pt, en */
	const char *body[3];    /* "%s" = the link (templates with a link only) */
	int has_link;
} mail_template;

static const mail_template templates[] = {
	{"verify_email",
	 {"請確認您的電郵地址", "Confirme o seu endereço de correio electrónico", "Confirm your e-mail address"},
	 {"您好，\n\n請於 24 小時內開啟以下連結，確認您的電郵地址：\n%s\n\n如您沒有申請帳戶，請忽略本郵件。\n",
	  "Olá,\n\nAbra a seguinte ligação nas próximas 24 horas para confirmar o seu endereço:\n%s\n\n"
	  "Se não criou uma conta, ignore esta mensagem.\n",
	  "Hello,\n\nOpen this link within 24 hours to confirm your e-mail address:\n%s\n\n"
	  "If you did not create an account, ignore this message.\n"},
	 1},
	{"reset_password",
	 {"重設密碼", "Redefinir a palavra-passe", "Reset your password"},
	 {"您好，\n\n請於 1 小時內開啟以下連結以重設密碼：\n%s\n\n如您沒有提出要求，請忽略本郵件，您的密碼不會改變。\n",
	  "Olá,\n\nAbra a seguinte ligação na próxima hora para redefinir a sua palavra-passe:\n%s\n\n"
	  "Se não fez este pedido, ignore esta mensagem; a palavra-passe não muda.\n",
	  "Hello,\n\nOpen this link within one hour to reset your password:\n%s\n\n"
	  "If you did not ask for this, ignore this message; your password stays the same.\n"},
	 1},
	{"account_locked",
	 {"您的帳戶已被鎖定", "A sua conta foi bloqueada", "Your account has been locked"},
	 {"您好，\n\n由於多次輸入錯誤的密碼，您的帳戶已被鎖定。請透過「忘記密碼」重設密碼以解除鎖定。\n"
	  "如這些嘗試並非由您作出，有人可能正在猜測您的密碼。\n",
	  "Olá,\n\nA sua conta foi bloqueada após muitas tentativas com a palavra-passe errada. Redefina a "
	  "palavra-passe para a desbloquear.\nSe não foi o próprio, alguém pode estar a tentar adivinhá-la.\n",
	  "Hello,\n\nYour account was locked after many attempts with a wrong password. Reset your password to "
	  "unlock it.\nIf this was not you, someone may be trying to guess it.\n"},
	 0},
	{"password_changed",
	 {"您的密碼已更改", "A sua palavra-passe foi alterada", "Your password was changed"},
	 {"您好，\n\n您的密碼剛被更改，所有其他登入工作階段已被登出。如非您本人操作，請立即聯絡我們。\n",
	  "Olá,\n\nA sua palavra-passe acabou de ser alterada e as outras sessões foram terminadas. Se não foi o "
	  "próprio, contacte-nos de imediato.\n",
	  "Hello,\n\nYour password was just changed and your other sessions were signed out. If this was not "
	  "you, contact us at once.\n"},
	 0},
};

egov_err identity_mail_send(db_conn *c, const char *to, const char *template_key, const char *lang,
			    const char *link)
{
	static const char *const langs[3] = {"zh-Hant", "pt", "en"};
	const mail_template *t = NULL;
	int li = 0;
	size_t i;
	buf body;
	egov_err err;

	for (i = 0; i < sizeof templates / sizeof templates[0]; i++)
		if (strcmp(templates[i].key, template_key) == 0)
			t = &templates[i];
	if (!t || !identity_email_valid(to) || (t->has_link && !link))
		return EGOV_EINVAL;
	if (lang && strcmp(lang, "pt") == 0)
		li = 1;
	else if (lang && strcmp(lang, "en") == 0)
		li = 2;
	buf_init(&body, 64 * 1024);
	if (t->has_link) {
		/* The template is ours and has exactly one %s. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		err = buf_addf(&body, t->body[li], link);
#pragma GCC diagnostic pop
	} else {
		err = buf_adds(&body, t->body[li]);
	}
	if (!err) {
		notify_message m = {.to = to, .subject = t->subject[li], .body = body.data, .template_key = t->key,
				    .lang = langs[li]};
		err = notify_enqueue(c, &m, NULL);
	}
	buf_release(&body);
	return err;
}
