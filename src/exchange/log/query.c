/*
 * query.c: `egov exchange log verify|archive|show|list`: the
 * operator's and the resident's questions to the message log ("who used my
 * data and why"), answered as text or JSON lines on stdout.
 *
 * Exit status: 0 when the answer is complete (verify: everything
 * verified; show: the exchange was found), 1 when a check failed or show
 * found nothing, 2 for usage and read errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "exchange/log/exlog_int.h"
#include "core/banned.h"

/* One line of `show`: a record with two bodies at the largest service
 * limit, base64. */

/* Prints every record matching where (one parameter) as JSON lines. */
static egov_err print_records(db *d, const char *where, const char *value, bool with_bodies, int64_t *count)
{
	char sql[sizeof EXLOG_ROW_COLS + 256];
	db_conn *c = NULL;
	db_rows *r = NULL;
	bool has = false;
	exlog_row row;
	db_param p[] = {DBP_S(value)};
	buf b;
	egov_err err;

	*count = 0;
	buf_init(&b, EXLOG_LINE_MAX);
	snprintf(sql, sizeof sql, "SELECT %s FROM exchange_log WHERE %s ORDER BY seq", EXLOG_ROW_COLS, where);
	if ((err = db_conn_open(d, &c)) || (err = db_query(c, sql, p, 1, &r)))
		goto out;
	while (!(err = db_rows_next(r, &has)) && has) {
		exlog_row_from_db(r, &row);
		buf_reset(&b);
		if ((err = exlog_record_json(&b, &row, with_bodies)))
			goto out;
		fwrite(b.data, 1, b.len, stdout);
		(*count)++;
	}
out:
	db_rows_free(r);
	if (c)
		db_conn_close(c);
	buf_release(&b);
	return err;
}

/* ---- the command ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fputs("usage: egov exchange log verify [--file ARCHIVE] [--anchor CA.pem]\n"
	      "       egov exchange log archive --out FILE [--from SEQ]\n"
	      "       egov exchange log show --message-id ID\n"
	      "       egov exchange log list --subject ID\n",
	      f);
}

/* The value after flag name in argv, or NULL; *bad when a flag is unknown
 * or lacks its value. */
static const char *flag(int argc, char **argv, const char *name, const char *const *known, bool *bad)
{
	const char *v = NULL;
	int i, k;

	for (i = 2; i < argc; i++) {
		for (k = 0; known[k] && strcmp(argv[i], known[k]) != 0; k++)
			;
		if (!known[k] || i + 1 >= argc) {
			*bad = true;
			return NULL;
		}
		if (strcmp(argv[i], name) == 0)
			v = argv[i + 1];
		i++;
	}
	return v;
}

static void print_result(const exlog_verify_result *r)
{
	if (r->fault == EXLOG_FAULT_NONE)
		printf("chain intact: %" PRId64 " records, head %s\n", r->records, r->head);
	else
		printf("chain BROKEN at record %" PRId64 ": %s%s%s (%" PRId64 " records before it are intact)\n",
		       r->first_bad, exlog_fault_name(r->fault), r->chain_why[0] ? ", " : "", r->chain_why, r->records);
	if (r->sig_bad)
		printf("signatures BAD at record %" PRId64 ": %s (%" PRId64 " signatures verified)\n", r->sig_bad,
		       r->sig_why, r->signatures);
	else
		printf("signatures verified: %" PRId64 "\n", r->signatures);
	if (r->seal_failed)
		printf("seal BAD (sealing up to record %" PRId64 "): %s (%" PRId64 " seals verified)\n", r->seal_bad,
		       r->seal_why, r->seals);
	else
		printf("seals verified: %" PRId64 ", sealed up to record %" PRId64 " (%" PRId64
		       " records after the last seal)\n",
		       r->seals, r->sealed_to, r->last_seq > r->sealed_to ? r->last_seq - r->sealed_to : 0);
	printf("%s\n", exlog_verify_ok(r) ? "OK" : "FAILED");
}

static int cmd_verify(int argc, char **argv, db *d, const egov_config *cfg)
{
	static const char *const known[] = {"--file", "--anchor", NULL};
	exlog_verify_result res;
	char anchor[4096] = "";
	const char *file, *a;
	bool bad = false;
	egov_err err;

	file = flag(argc, argv, "--file", known, &bad);
	a = flag(argc, argv, "--anchor", known, &bad);
	if (bad) {
		usage(stderr);
		return 2;
	}
	if (a)
		snprintf(anchor, sizeof anchor, "%s", a);
	else if (cfg)
		exlog_default_anchor(cfg, anchor, sizeof anchor);
	if (*anchor && access(anchor, R_OK) != 0) {
		fprintf(stderr, "egov: exchange log verify: cannot read the anchor %s\n", anchor);
		return 2;
	}
	if (file && access(file, R_OK) != 0) {
		fprintf(stderr, "egov: exchange log verify: cannot read %s\n", file);
		return 2;
	}
	err = file ? exlog_verify_file(file, anchor, &res) : exlog_verify_db(d, anchor, &res);
	if (err == EGOV_ENOTFOUND) {
		fprintf(stderr, "egov: exchange log verify: the anchor %s holds no certificate\n", anchor);
		return 2;
	}
	if (err == EGOV_ECORRUPT) {
		fprintf(stderr, "egov: exchange log verify: %s is not a message log archive\n", file ? file : "the log");
		return 1;
	}
	if (err) {
		fprintf(stderr, "egov: exchange log verify: %s\n", egov_err_name(err));
		return 2;
	}
	if (!*anchor)
		printf("no trust anchor (give --anchor): seals cannot be checked\n");
	print_result(&res);
	return exlog_verify_ok(&res) ? 0 : 1;
}

static bool parse_seq(const char *s, int64_t *out)
{
	char *end = NULL;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || !end || *end || end == s || v < 1)
		return false;
	*out = v;
	return true;
}

static int cmd_archive(int argc, char **argv, db *d)
{
	static const char *const known[] = {"--out", "--from", NULL};
	const char *out, *from_s;
	int64_t from = 1, n = 0;
	bool bad = false;
	egov_err err;

	out = flag(argc, argv, "--out", known, &bad);
	from_s = flag(argc, argv, "--from", known, &bad);
	if (bad || !out || (from_s && !parse_seq(from_s, &from))) {
		usage(stderr);
		return 2;
	}
	if ((err = exlog_archive(d, out, from, &n))) {
		fprintf(stderr, "egov: exchange log archive: cannot write %s: %s\n", out, egov_err_name(err));
		return 2;
	}
	printf("archived %" PRId64 " records from %" PRId64 " to %s\n", n, from, out);
	return 0;
}

static int cmd_query(int argc, char **argv, db *d, const char *name, const char *where, bool bodies)
{
	const char *const known[] = {name, NULL};
	const char *v;
	int64_t n = 0;
	bool bad = false;
	egov_err err;

	v = flag(argc, argv, name, known, &bad);
	if (bad || !v || !*v) {
		usage(stderr);
		return 2;
	}
	if ((err = print_records(d, where, v, bodies, &n))) {
		fprintf(stderr, "egov: exchange log: cannot read the log: %s\n", egov_err_name(err));
		return 2;
	}
	/* show names one exchange: finding none is a failure; list asks
	 * what there is, and nothing is an answer. */
	return n || strcmp(name, "--subject") == 0 ? 0 : 1;
}

int exchange_log_command(int argc, char **argv, db *d, const egov_config *cfg)
{
	const char *sub = argc >= 2 ? argv[1] : "";

	if (strcmp(sub, "verify") == 0)
		return cmd_verify(argc, argv, d, cfg);
	if (strcmp(sub, "archive") == 0)
		return cmd_archive(argc, argv, d);
	if (strcmp(sub, "show") == 0)
		return cmd_query(argc, argv, d, "--message-id", "message_id = ?", true);
	if (strcmp(sub, "list") == 0)
		return cmd_query(argc, argv, d, "--subject", "data_subject = ?", false);
	usage(stderr);
	return 2;
}
