# glewlwyd_bench.sh: Debian's glewlwyd (a C OpenID Connect server) measured
# on the same machine, in the same run and with the same load generator as
# egov's trust layer. Sourced by bench/trust_bench.sh after egov's runs, whose
# figures it prints beside glewlwyd's (uses say, kv, fdiv, pick_port,
# owns_port, stop_pid, tv, tn and PIDS, RES, TMP, NCPU, TRUST_*, L_*, R_*).
# glewlwyd's figures are information: nothing here is judged.
#
# Setup (throwaway, under $TMP/glewlwyd): a SQLite database initialised from
# the SQL glewlwyd ships (/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz:
# the core tables, the database user and client backends, an administrator),
# a config file listening on 127.0.0.1 on a free port below 32768, then
# bench/glewlwyd_bench.mjs through glewlwyd's admin API: the scope "openid"
# made to require the password, an OpenID Connect plugin instance (code and
# refresh-token grants, ES256, one-time-use refresh tokens), the 8 accounts
# trust-bench-<i> with egov's bench password, one confidential client, and 16
# refresh tokens from 16 authorization-code flows.
#
# Measured, as for egov:
#   logins    POST /api/auth/ {"username","password"} (glewlwyd's password
#             login; each answer opens a session), correct passwords, 8
#             accounts round robin, CONC = NCPU, 10 s after 2 s of warm-up.
#   refresh   16 workers, each rotating its own chain on /api/oidc/token/
#             (client_secret_basic) for 10 s after 2 s of warm-up.
# Printed beside egov's figures of this run with the ratio egov / glewlwyd,
# and the server CPU time per answer of each (which holds up when other jobs
# share the cores).
#
# Any missing piece or failed setup step skips this part with the reason
# printed and the logs left in $RES (trust-glewlwyd*.log/txt); it never fails
# the bench. Invariants: glewlwyd listens on 127.0.0.1 only, the port is
# checked to be its own, and it is stopped by PID before this file returns.
# shellcheck shell=bash disable=SC2154,SC2034

GLEW_DIR=$TMP/glewlwyd
GLEW_LOG=$RES/trust-glewlwyd.log
GLEW_SCHEMA=/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz
GLEW_ROW="skipped"
GLEW_PID=""

glew_skip() {
	say "  glewlwyd: skipped ($1)"
	kv trust.glewlwyd skipped
	kv trust.glewlwyd.reason "$1"
}

# glew_conf PORT: the config file (libconfig syntax). Only what differs from
# glewlwyd's defaults and the packaged /etc/glewlwyd/glewlwyd.conf: the
# address, port and URL, plain HTTP cookies (loopback, no TLS), the module
# paths and the database. Log level INFO as packaged.
glew_conf() {
	cat >"$GLEW_DIR/glewlwyd.conf" <<EOF
port=$1
bind_address="127.0.0.1"
external_url="http://127.0.0.1:$1"
login_url="login.html"
api_prefix="api"
log_mode="console"
log_level="INFO"
cookie_secure=0
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie"
profile_session_authentication="cookie"
login_api_enabled=true
user_module_path="/usr/lib/glewlwyd/user"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3" path = "$GLEW_DIR/glewlwyd.db" };
EOF
}

# glew_start: glewlwyd on a free port; sets GLEW_PID and GLEW_PORT, or fails.
# It has no /healthz: GET /config (its public configuration) answering 200
# is the sign it is up.
glew_start() {
	local attempt port pid
	for attempt in 1 2 3; do
		port=$(pick_port) || return 1
		glew_conf "$port"
		glewlwyd -c "$GLEW_DIR/glewlwyd.conf" >>"$GLEW_LOG" 2>&1 &
		pid=$!
		PIDS+=("$pid")
		for _ in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			if curl -fsS -m 1 -o /dev/null "http://127.0.0.1:$port/config" 2>/dev/null && owns_port "$pid" "$port"; then
				GLEW_PID=$pid
				GLEW_PORT=$port
				return 0
			fi
			sleep 0.1
		done
		say "  glewlwyd did not come up on port $port (attempt $attempt)"
		stop_pid "$pid"
	done
	return 1
}

# glew_line LABEL EGOV GLEW UNIT: one figure of each and the ratio.
glew_line() {
	printf '  %-34s egov %9s %-6s glewlwyd %9s %-6s egov/glewlwyd %s\n' "$1" "$2" "$4" "$3" "$4" "$(fdiv "${2:-0}" "${3:-0}")"
}

# Server CPU milliseconds per answer of a trust_bench output file.
glew_cpu_ms() {
	awk -v n="$(tn "$1" trust.run answers_all)" -v c="$(tn "$1" trust.run server_cpu_s)" \
		'BEGIN { if (n > 0) printf "%.2f", c * 1000 / n; else print 0 }'
}

glew_main() {
	local t tok=$TMP/glewlwyd-tokens gl=$RES/trust-glewlwyd-login.txt gr=$RES/trust-glewlwyd-refresh.txt
	local stored iter journal g_rps g_p50 gr_rps gr_p50 e_rcpu

	for t in glewlwyd:glewlwyd sqlite3:sqlite3 node:nodejs curl:curl; do
		command -v "${t%%:*}" >/dev/null ||
			{ glew_skip "${t%%:*} is not installed (Debian package ${t#*:}; scripts/install-deps.sh bench installs it)"; return 0; }
	done
	[ -r "$GLEW_SCHEMA" ] || { glew_skip "no $GLEW_SCHEMA (the SQL glewlwyd ships)"; return 0; }
	mkdir -p "$GLEW_DIR" "$tok"
	: >"$GLEW_LOG"
	say "  glewlwyd $(glewlwyd -v 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n 1): set up from its own SQL and admin API (log: $GLEW_LOG)"
	if ! zcat "$GLEW_SCHEMA" | sqlite3 "$GLEW_DIR/glewlwyd.db" >>"$GLEW_LOG" 2>&1; then
		glew_skip "its SQL schema did not load into SQLite, see $GLEW_LOG"
		return 0
	fi
	glew_start || { glew_skip "it did not start on 127.0.0.1, see $GLEW_LOG"; return 0; }
	if ! node bench/glewlwyd_bench.mjs setup "http://127.0.0.1:$GLEW_PORT" "$TRUST_PW" "$TRUST_ACCOUNTS" \
		"$TRUST_REFRESH_WORKERS" "$tok" >"$RES/trust-glewlwyd-setup.txt" 2>&1; then
		glew_skip "setup through its admin API failed: $(tail -n 1 "$RES/trust-glewlwyd-setup.txt")"
		return 0
	fi
	# The hash glewlwyd stored for the accounts: on SQLite its database user
	# backend keeps base64(PBKDF2-HMAC-SHA256 digest + salt),ITERATIONS.
	stored=$(sqlite3 "$GLEW_DIR/glewlwyd.db" "SELECT guw_password FROM g_user_password WHERE gu_id = (SELECT gu_id FROM g_user WHERE gu_username = 'trust-bench-0')" 2>>"$GLEW_LOG" || true)
	iter=${stored##*,}
	case "$iter" in '' | *[!0-9]*) iter="?" ;; esac
	say "  glewlwyd: pid $GLEW_PID, port $GLEW_PORT; SQLite; passwords PBKDF2-HMAC-SHA256, $iter iterations; OIDC plugin: ES256, one-time-use refresh tokens; $(tv "$RES/trust-glewlwyd-setup.txt" glewlwyd.setup tokens) refresh tokens from code flows"

	"$TRUST_BIN" login -p "$GLEW_PORT" -c "$NCPU" -d "$TRUST_SECS" -W 2 -a "$TRUST_ACCOUNTS" -w "$TRUST_PW" \
		-L /api/auth/ -U -P "$GLEW_PID" >"$gl" 2>&1 || true
	trust_login_line "$gl" "glewlwyd logins, c=$NCPU"
	"$TRUST_BIN" refresh -p "$GLEW_PORT" -d "$TRUST_SECS" -W 2 -t "$tok/refresh-tokens.txt" \
		-A "$(cat "$tok/client-authz.txt")" -E /api/oidc/token/ -P "$GLEW_PID" >"$gr" 2>&1 || true
	say "  glewlwyd refresh grants, $TRUST_REFRESH_WORKERS rotating chains: $(tv "$gr" trust.ok per_s)/s (p50 $(tv "$gr" trust.ok p50_ms) ms, p99 $(tv "$gr" trust.ok p99_ms) ms); failures $(tv "$gr" trust.other count), broken chains $(tv "$gr" trust.run broken_chains); server CPU $(tv "$gr" trust.run server_cpu_s) s"
	journal=$(sqlite3 "$GLEW_DIR/glewlwyd.db" "PRAGMA journal_mode" 2>>"$GLEW_LOG" || echo "?")
	say "  glewlwyd idle after the runs: VmRSS $(mib "$(rss_kb "$GLEW_PID")") MiB"
	stop_pid "$GLEW_PID"

	g_rps=$(tv "$gl" trust.ok per_s)
	g_p50=$(tv "$gl" trust.ok p50_ms)
	gr_rps=$(tv "$gr" trust.ok per_s)
	gr_p50=$(tv "$gr" trust.ok p50_ms)
	e_rcpu=""
	[ -s "${R:-}" ] && e_rcpu=$(glew_cpu_ms "$R")
	say "  beside egov (same run, same generator, same concurrency):"
	glew_line "logins/s, c=$NCPU" "${L_RPS:-}" "$g_rps" "/s"
	glew_line "  p50" "${L_P50:-}" "$g_p50" "ms"
	glew_line "  server CPU per login" "$(glew_cpu_ms "$L")" "$(glew_cpu_ms "$gl")" "ms"
	glew_line "refresh grants/s, $TRUST_REFRESH_WORKERS chains" "${R_RPS:-}" "$gr_rps" "/s"
	glew_line "  p50" "$(tv "${R:-/dev/null}" trust.ok p50_ms)" "$gr_p50" "ms"
	glew_line "  server CPU per grant" "$e_rcpu" "$(glew_cpu_ms "$gr")" "ms"
	say "  (a latency ratio below 1 means egov answers faster.) What differs: egov hashes with Argon2id"
	say "  t=2 m=19 MiB (memory-hard; $HASH_MS ms here), glewlwyd with PBKDF2-HMAC-SHA256 x $iter (not memory-hard),"
	say "  so the login rows compare the two servers' shipped password hashing as much as their code. Both"
	say "  rotate refresh tokens with reuse detection and sign ES256 access tokens (glewlwyd's refresh answer"
	say "  carries no ID token). Storage: egov SQLite in WAL mode, synchronous=FULL; glewlwyd SQLite with"
	say "  journal_mode '$journal' (its default), each grant disabling the old token and storing the new one"
	say "  and the access token."
	GLEW_ROW="logins ${g_rps:-?}/s ($(fdiv "${L_RPS:-0}" "${g_rps:-0}")x), grants ${gr_rps:-?}/s ($(fdiv "${R_RPS:-0}" "${gr_rps:-0}")x)"

	kv trust.glewlwyd measured
	kv trust.glewlwyd.version "$(glewlwyd -v 2>/dev/null | grep -o '[0-9][0-9.]*' | head -n 1)"
	kv trust.glewlwyd.pbkdf2_iterations "$iter"
	kv trust.glewlwyd.journal_mode "$journal"
	kv trust.glewlwyd.login.conc "$NCPU"
	kv trust.glewlwyd.login.per_s "$g_rps"
	kv trust.glewlwyd.login.p50_ms "$g_p50"
	kv trust.glewlwyd.login.p99_ms "$(tv "$gl" trust.ok p99_ms)"
	kv trust.glewlwyd.login.cpu_ms "$(glew_cpu_ms "$gl")"
	kv trust.glewlwyd.login.non_ok "$(($(tn "$gl" trust.busy count) + $(tn "$gl" trust.other count) + $(tn "$gl" trust.run errors)))"
	kv trust.glewlwyd.login.ratio "$(fdiv "${L_RPS:-0}" "${g_rps:-0}")"
	kv trust.glewlwyd.login.p50_ratio "$(fdiv "${L_P50:-0}" "${g_p50:-0}")"
	kv trust.glewlwyd.refresh.workers "$TRUST_REFRESH_WORKERS"
	kv trust.glewlwyd.refresh.per_s "$gr_rps"
	kv trust.glewlwyd.refresh.p50_ms "$gr_p50"
	kv trust.glewlwyd.refresh.p99_ms "$(tv "$gr" trust.ok p99_ms)"
	kv trust.glewlwyd.refresh.cpu_ms "$(glew_cpu_ms "$gr")"
	kv trust.glewlwyd.refresh.failures "$(($(tn "$gr" trust.other count) + $(tn "$gr" trust.run errors)))"
	kv trust.glewlwyd.refresh.broken_chains "$(tv "$gr" trust.run broken_chains)"
	kv trust.glewlwyd.refresh.ratio "$(fdiv "${R_RPS:-0}" "${gr_rps:-0}")"
}

glew_main
if [ -n "$GLEW_PID" ]; then stop_pid "$GLEW_PID"; fi
