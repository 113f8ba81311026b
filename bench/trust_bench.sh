# trust_bench.sh: the "trust layer" section of scripts/bench.sh, sourced by
# it (uses its helpers: say, kv, section, verdict, fcmp, fdiv, mib,
# pick_port, owns_port, stop_pid, rss_kb, status_field, start_egov, and its
# PIDS, RES, TMP, EGOV, READY, NCPU, PKGS, WARN, BUILD, SUMMARY).
#
# Measured in one run, each beside its reference:
#   argon2    bench/trust_bench hash: Argon2id (t=2, m=19 MiB, p=1) through
#             libsodium, median of 20, before and after the login runs; the
#             hashing ceiling is NCPU / hash time (the faster of the two
#             medians: noise only ever slows a run down). The same hash with
#             its working memory kept (as egov's slots run it) is printed
#             beside it for comparison; the verdicts use the plain one.
#   logins    POST /api/v1/identity/login, correct passwords, 8 accounts
#             round robin, CONC = NCPU (judged) and 2 x NCPU (shape): logins/s
#             >= 0.8 x ceiling, p50 <= 1.2 x hash time.
#   overload  10 x the load of the ceiling: 10 x NCPU / hash time logins
#             per second, paced (each latency counted from when the request
#             was due), over 10 x (slots + queue) = 30 x NCPU connections for
#             10 s; then a flood: the same connections each sending again the
#             moment they are answered. Judged on both: process alive and
#             /healthz answering during and after, VmRSS/VmHWM sampled every
#             100 ms <= 64 MiB + 19 MiB x NCPU, every 429 with Retry-After;
#             on the 10x run: 429 latency p50 and p99 <= 5 ms; its p99.9,
#             max and answers over 5 ms are printed beside two references
#             run in the same section, nginx answering a fixed 429 to the
#             same paced load beside NCPU Argon2id hash loops and with
#             nothing else running (the flood's latency is also
#             printed); when that unloaded reference's own p99 is over
#             5 ms the machine was too busy to judge and the verdict is
#             NOISY. With server.threads = 4 x NCPU (EGOV_SERVER_THREADS);
#             the flood is repeated with the default (one thread per core)
#             for information.
#   refresh   a confidential client, one refresh token per worker from a full
#             code flow (bench/trust_bench.mjs), each worker rotating its own
#             chain for 10 s: grants/s per core >= 2,000.
#   sessions  10,000 live sessions made by real logins (there is no cheaper
#             legitimate path, and no test-only one), each then used once
#             (GET /api/v1/identity/me) on a freshly started node, whose idle
#             VmRSS must be <= 64 MiB.
#   glewlwyd  bench/glewlwyd_bench.sh: Debian's glewlwyd set up from its
#             own SQL and admin API, the same login and refresh runs against
#             it, printed beside egov's with the ratio (information only;
#             skipped with the reason printed when it cannot run).
#
# Knobs: BENCH_TRUST (1; 0 skips the section), BENCH_TRUST_SECONDS (10),
# BENCH_TRUST_SESSIONS (10000), BENCH_TRUST_SESSIONS_MAX_S (600: bound on
# the logins that make the sessions), BENCH_TRUST_REFRESH_WORKERS (16),
# BENCH_TRUST_THREADS (4 x NCPU).
#
# Invariants: the nodes listen on 127.0.0.1 (start_egov checks the port is
# theirs), run on their own data directory under $TMP, and are stopped by
# PID before the section ends; every load run is bounded in time.
# shellcheck shell=bash disable=SC2154,SC2034,SC2086,SC2046

TRUST_SECS=${BENCH_TRUST_SECONDS:-10}
TRUST_SESSIONS=${BENCH_TRUST_SESSIONS:-10000}
TRUST_SESSIONS_MAX_S=${BENCH_TRUST_SESSIONS_MAX_S:-600}
TRUST_REFRESH_WORKERS=${BENCH_TRUST_REFRESH_WORKERS:-16}
TRUST_THREADS=${BENCH_TRUST_THREADS:-$((4 * NCPU))}
TRUST_ACCOUNTS=8
TRUST_PW=violet-harbour-lantern-bench
TRUST_ADMIN=trust-bench-admin-token-0123456789abcdefghijkl
TRUST_BIN=$ROOT/$BUILD/trust_bench
TRUST_DATA=$TMP/trust-data
TRUST_COOKIES=$TMP/trust-cookies.txt
TRUST_SLOTS=$NCPU
TRUST_QUEUE=$((2 * NCPU))

# tv FILE LINE_PREFIX KEY: the value of KEY= on the line starting with
# LINE_PREFIX (trust_bench's output format).
tv() {
	awk -v p="$2" -v k="$3" '$1 == p { for (i = 2; i <= NF; i++) { n = index($i, "="); if (substr($i, 1, n - 1) == k) { print substr($i, n + 1); exit } } }' "$1" 2>/dev/null || true
}
# tn: the same, 0 when missing (for arithmetic and numeric tests).
tn() { local v; v=$(tv "$@"); echo "${v:-0}"; }
tsv() { grep -m1 "^$1=" "$SUMMARY" | cut -d= -f2 || true; }

trust_start() { # LOG THREADS: a node on the trust data dir; sets EGOV_PID/PORT
	local saved=$DATA log=$1 threads=$2
	DATA=$TRUST_DATA
	start_egov "$log" EGOV_SERVER_ADMIN_TOKEN="$TRUST_ADMIN" EGOV_SERVER_THREADS="$threads"
	DATA=$saved
}

trust_hash() { # OUT: the reference, 20 hashes
	"$TRUST_BIN" hash 20 >"$1"
	say "  argon2id reference: median $(tv "$1" argon2.hash median_ms) ms wall, $(tv "$1" argon2.hash cpu_median_ms) ms CPU (min $(tv "$1" argon2.hash min_ms), max $(tv "$1" argon2.hash max_ms))"
}

# trust_login_line OUT LABEL: one line of a login run's figures.
trust_login_line() {
	local o=$1
	printf '  %-28s %7.1f ok/s  p50 %7.2f ms  p99 %7.2f ms  429 %5s  other %4s  errors %3s  srv-CPU %5.1f s  gen-CPU %4.2f s\n' \
		"$2" "$(tv "$o" trust.ok per_s)" "$(tv "$o" trust.ok p50_ms)" "$(tv "$o" trust.ok p99_ms)" \
		"$(tv "$o" trust.busy count)" "$(tv "$o" trust.other count)" "$(tv "$o" trust.run errors)" \
		"$(tv "$o" trust.run server_cpu_s)" "$(tv "$o" trust.run gen_cpu_s)"
}

trust_overload() { # LABEL OUT [RATE]: overload against the running node
	local label=$1 o=$2 rate=${3:-0} conc=$((10 * (TRUST_SLOTS + TRUST_QUEUE))) pace=()
	[ "$rate" -gt 0 ] && pace=(-R "$rate") && label="$label, $rate/s paced"
	"$TRUST_BIN" login -p "$EGOV_PORT" -c "$conc" -d "$TRUST_SECS" -W 1 -a "$TRUST_ACCOUNTS" -w "$TRUST_PW" \
		-o "$TRUST_COOKIES" -P "$EGOV_PID" -H "${pace[@]}" >"$o" 2>&1 || true
	T_ALIVE=0
	kill -0 "$EGOV_PID" 2>/dev/null && curl -fsS -m 2 "http://127.0.0.1:$EGOV_PORT/healthz" >/dev/null 2>&1 && T_ALIVE=1
	trust_login_line "$o" "$label, c=$conc"
	say "    429: $(tv "$o" trust.busy count) answers, $(tv "$o" trust.busy per_s)/s, p50 $(tv "$o" trust.busy p50_ms) ms, p99 $(tv "$o" trust.busy p99_ms) ms, max $(tv "$o" trust.busy max_ms) ms, without Retry-After: $(tv "$o" trust.busy no_retry_after)"
	say "    memory: VmRSS max $(mib "$(tv "$o" trust.mem rss_max_kb)") MiB, VmHWM $(mib "$(tv "$o" trust.mem hwm_kb)") MiB, threads $(tv "$o" trust.mem threads_max); /healthz during: $(tv "$o" trust.probe ok) ok, $(tv "$o" trust.probe fail) failed, max $(tv "$o" trust.probe max_ms) ms; alive after: $([ "$T_ALIVE" = 1 ] && echo yes || echo NO)"
}

trust_kv_load() { # PREFIX OUT: the summary keys of an overload or flood run
	local p=$1 o=$2
	kv "$p.ok_per_s" "$(tv "$o" trust.ok per_s)"
	kv "$p.busy_count" "$(tv "$o" trust.busy count)"
	kv "$p.busy_per_s" "$(tv "$o" trust.busy per_s)"
	kv "$p.busy_p50_ms" "$(tv "$o" trust.busy p50_ms)"
	kv "$p.busy_p99_ms" "$(tv "$o" trust.busy p99_ms)"
	kv "$p.busy_max_ms" "$(tv "$o" trust.busy max_ms)"
	kv "$p.busy_over_5ms" "$(tv "$o" trust.busy over_5ms)"
	kv "$p.busy_no_retry_after" "$(tv "$o" trust.busy no_retry_after)"
	kv "$p.other" "$(tv "$o" trust.other count)"
	kv "$p.errors" "$(tv "$o" trust.run errors)"
	kv "$p.rss_max_kb" "$(tv "$o" trust.mem rss_max_kb)"
	kv "$p.hwm_kb" "$(tv "$o" trust.mem hwm_kb)"
	kv "$p.probe_fail" "$(tv "$o" trust.probe fail)"
	kv "$p.probe_max_ms" "$(tv "$o" trust.probe max_ms)"
}

section "trust layer (logins, overload, refresh grants, sessions; ${TRUST_SECS}s per load run)"
if ! gcc -std=c11 -D_GNU_SOURCE $WARN -O2 -g -Isrc $(pkg-config --cflags libsodium) -o "$TRUST_BIN" \
	bench/trust_bench.c src/core/lend.c $(pkg-config --libs libsodium) -lpthread >"$RES/trust_bench.build.log" 2>&1; then
	say "  trust_bench does not compile, section skipped (see $RES/trust_bench.build.log)"
	return 0
fi
"${EGOV_ENV[@]}" "$EGOV" init --demo --data "$TRUST_DATA" >"$RES/trust-init.log" 2>&1 ||
	{ say "  egov init failed, section skipped (see $RES/trust-init.log)"; return 0; }
for i in $(seq 0 $((TRUST_ACCOUNTS - 1))); do
	printf '%s\n' "$TRUST_PW" | "${EGOV_ENV[@]}" "$EGOV" user add --email "trust-bench-$i@example.mo" \
		--name "Bench $i" --kind resident --password-stdin --data "$TRUST_DATA" >>"$RES/trust-init.log" 2>&1 ||
		{ say "  egov user add failed, section skipped (see $RES/trust-init.log)"; return 0; }
done
: >"$TRUST_COOKIES"

# ---- Argon2id reference and password logins (node A: threads = 4 x cores)
trust_hash "$RES/trust-hash-1.txt"
trust_start trust-egov-a.log "$TRUST_THREADS"
say "  node A: pid $EGOV_PID, port $EGOV_PORT, server.threads=$TRUST_THREADS, hashing slots $TRUST_SLOTS, queue $TRUST_QUEUE (defaults: cores, 2 x cores)"
for c in "$NCPU" $((2 * NCPU)); do
	"$TRUST_BIN" login -p "$EGOV_PORT" -c "$c" -d "$TRUST_SECS" -W 2 -a "$TRUST_ACCOUNTS" -w "$TRUST_PW" \
		-o "$TRUST_COOKIES" -P "$EGOV_PID" >"$RES/trust-login-c$c.txt" 2>&1 || true
	trust_login_line "$RES/trust-login-c$c.txt" "logins, c=$c"
done
trust_hash "$RES/trust-hash-2.txt"
H1=$(tv "$RES/trust-hash-1.txt" argon2.hash median_ms)
H2=$(tv "$RES/trust-hash-2.txt" argon2.hash median_ms)
HASH_MS=$(awk -v a="${H1:-0}" -v b="${H2:-0}" 'BEGIN { print (a > 0 && (a < b || b <= 0)) ? a : b }')
HASH_CPU=$(tv "$RES/trust-hash-1.txt" argon2.hash cpu_median_ms)
CEIL=$(awk -v h="$HASH_MS" -v n="$NCPU" 'BEGIN { if (h > 0) printf "%.1f", n * 1000 / h; else print 0 }')
L=$RES/trust-login-c$NCPU.txt
L_RPS=$(tv "$L" trust.ok per_s)
L_P50=$(tv "$L" trust.ok p50_ms)
L_RATIO=$(fdiv "${L_RPS:-0}" "$CEIL")
L_LAT=$(fdiv "${L_P50:-0}" "$HASH_MS")
# Robust to other work on the machine: logins per server CPU-second against
# hashes per CPU-second of the reference.
L_N=$(tv "$L" trust.run answers_all)
L_CPU=$(tv "$L" trust.run server_cpu_s)
L_EFF=$(awk -v n="${L_N:-0}" -v c="${L_CPU:-0}" -v h="${HASH_CPU:-0}" 'BEGIN { if (c > 0 && h > 0) printf "%.2f", n / c * h / 1000; else print "nan" }')
say "  hashing ceiling: $NCPU cores / $HASH_MS ms = $CEIL hashes/s; logins at c=$NCPU: $L_RPS/s = ${L_RATIO}x ceiling, p50 = ${L_LAT}x hash time"
say "  CPU view: the server spent $L_CPU CPU-s on $L_N logins (warm-up included): ${L_EFF}x the reference's hashes per CPU-s ($HASH_CPU ms CPU each)"
"$TRUST_BIN" hash 10 noinit >"$RES/trust-hash-noinit.txt" 2>&1 || true
say "  diagnostic: the same hash without sodium_init() (libsodium's portable Argon2 code): median $(tv "$RES/trust-hash-noinit.txt" argon2.hash_noinit median_ms) ms wall, $(tv "$RES/trust-hash-noinit.txt" argon2.hash_noinit cpu_median_ms) ms CPU"
kv trust.hash_noinit_cpu_ms "$(tv "$RES/trust-hash-noinit.txt" argon2.hash_noinit cpu_median_ms)"
"$TRUST_BIN" hash 20 kept >"$RES/trust-hash-kept.txt" 2>&1 || true
HASH_KEPT=$(tv "$RES/trust-hash-kept.txt" argon2.hash_kept median_ms)
say "  for comparison, the same hash with its working memory kept between hashes (how egov's slots run it, src/core/lend.h): median ${HASH_KEPT:-?} ms wall, $(tv "$RES/trust-hash-kept.txt" argon2.hash_kept cpu_median_ms) ms CPU; logins at c=$NCPU against that: $(fdiv "${L_RPS:-0}" "$(awk -v h="${HASH_KEPT:-0}" -v n="$NCPU" 'BEGIN { if (h > 0) printf "%.1f", n * 1000 / h; else print 0 }')")x its ceiling, p50 $(fdiv "${L_P50:-0}" "${HASH_KEPT:-0}")x"
kv trust.hash_kept_ms "$HASH_KEPT"
kv trust.hash_kept_cpu_ms "$(tv "$RES/trust-hash-kept.txt" argon2.hash_kept cpu_median_ms)"
kv trust.hash_ms "$HASH_MS"
kv trust.hash_cpu_ms "$HASH_CPU"
kv trust.hash_ms_before "$H1"
kv trust.hash_ms_after "$H2"
kv trust.ceiling_per_s "$CEIL"
kv trust.login.conc "$NCPU"
kv trust.login.per_s "$L_RPS"
kv trust.login.p50_ms "$L_P50"
kv trust.login.p99_ms "$(tv "$L" trust.ok p99_ms)"
kv trust.login.ratio_ceiling "$L_RATIO"
kv trust.login.p50_ratio_hash "$L_LAT"
kv trust.login.cpu_efficiency "$L_EFF"
kv trust.login.non_ok "$(( $(tn "$L" trust.busy count) + $(tn "$L" trust.other count) + $(tn "$L" trust.run errors) ))"
kv trust.login_c$((2 * NCPU)).per_s "$(tv "$RES/trust-login-c$((2 * NCPU)).txt" trust.ok per_s)"
kv trust.login_c$((2 * NCPU)).p50_ms "$(tv "$RES/trust-login-c$((2 * NCPU)).txt" trust.ok p50_ms)"
ok=0; fcmp "$L_RATIO" '>=' 0.8 && ok=1; verdict trust.login.rate $ok >/dev/null
ok=0; fcmp "$L_LAT" '<=' 1.2 && ok=1; verdict trust.login.p50 $ok >/dev/null
ok=0; [ "$(tv "$L" trust.busy count)" = 0 ] && [ "$(tv "$L" trust.other count)" = 0 ] && ok=1
verdict trust.login.no_throttle $ok >/dev/null

# ---- overload, judged configuration: 10 x the load the ceiling allows
# (10 x cores / hash time logins per second, paced, latency counted from
# when each request was due), then a flood (every connection sends again
# the moment it is answered: tens of thousands per second).
MEM_CAP=$((64 * 1024 + 19 * 1024 * NCPU))
O_RATE=$(awk -v c="$CEIL" 'BEGIN { printf "%d", 10 * c + 0.5 }')
O=$RES/trust-overload-a.txt
trust_overload "overload 10x, threads=$TRUST_THREADS" "$O" "$O_RATE"
O_ALIVE=$T_ALIVE
# The platform's references for the 429 tail: nginx answering a fixed 429 to
# the same paced load from the same generator, once beside NCPU loops of the
# same Argon2id hash egov's slots run (kept memory), which keep the cores
# and the memory bus as busy as in egov's run, and once with nothing else
# running: what the machine, its scheduler and the generator add by
# themselves to the cheapest possible refusal.
N=$RES/trust-overload-nginx.txt
NU=$RES/trust-overload-nginx-unloaded.txt
trust_ref() { # OUT HOGS: nginx's fixed 429 under the 10x paced load
	local out=$1 nhogs=$2 hogs=() h
	for _ in $(seq 1 "$nhogs"); do
		timeout $((TRUST_SECS + 3)) "$TRUST_BIN" hash 1000000 kept >/dev/null 2>&1 &
		hogs+=("$!")
		PIDS+=("$!")
	done
	"$TRUST_BIN" login -p "$n_port" -c $((10 * (TRUST_SLOTS + TRUST_QUEUE))) -d "$TRUST_SECS" -W 1 \
		-a "$TRUST_ACCOUNTS" -w "$TRUST_PW" -R "$O_RATE" >"$out" 2>&1 || true
	for h in "${hogs[@]}"; do stop_pid "$h"; done
}
trust_tail() { # OUT: the 429 tail of a run, as printed
	echo "p50 $(tv "$1" trust.busy p50_ms) ms, p99 $(tv "$1" trust.busy p99_ms) ms, p99.9 $(tv "$1" trust.busy p999_ms) ms, max $(tv "$1" trust.busy max_ms) ms, over 5 ms: $(tv "$1" trust.busy over_5ms) of $(tv "$1" trust.busy count)"
}
say "    egov's 429s: $(trust_tail "$O")"
if command -v nginx >/dev/null; then
	mkdir -p "$TMP/trust-nginx"
	n_user=""
	[ "$(id -u)" -eq 0 ] && n_user="user root;"
	n_port=$(pick_port) || n_port=""
	if [ -n "$n_port" ]; then
		sed -e "s|@USER_LINE@|$n_user|" -e "s|@PREFIX@|$TMP/trust-nginx|g" -e "s|@LISTEN@|127.0.0.1:$n_port|" \
			bench/trust_nginx.conf >"$TMP/trust-nginx/nginx.conf"
		nginx -e stderr -c "$TMP/trust-nginx/nginx.conf" -p "$TMP/trust-nginx" >>"$RES/trust-nginx.log" 2>&1 &
		n_pid=$!
		PIDS+=("$n_pid")
		if "$READY" wait "$n_port" 15 >/dev/null && owns_port "$n_pid" "$n_port"; then
			trust_ref "$N" "$TRUST_SLOTS"
			say "    reference, nginx's fixed 429, same load, beside $TRUST_SLOTS Argon2id hash loops: $(trust_tail "$N")"
			trust_ref "$NU" 0
			say "    reference, nginx's fixed 429, same load, nothing else running: $(trust_tail "$NU")"
		else
			say "    reference: nginx did not come up (see $RES/trust-nginx.log)"
		fi
		stop_pid "$n_pid"
	fi
else
	say "    reference: nginx is not installed, so the 429 tail has no reference"
fi
F=$RES/trust-flood-a.txt
trust_overload "flood, threads=$TRUST_THREADS" "$F"
F_ALIVE=$T_ALIVE
O_RSS=$(tv "$O" trust.mem rss_max_kb)
O_HWM=$(tv "$O" trust.mem hwm_kb)
F_RSS=$(tv "$F" trust.mem rss_max_kb)
F_HWM=$(tv "$F" trust.mem hwm_kb)
O_P50=$(tv "$O" trust.busy p50_ms)
O_P99=$(tv "$O" trust.busy p99_ms)
O_MAX=$(tv "$O" trust.busy max_ms)
kv trust.overload.conc $((10 * (TRUST_SLOTS + TRUST_QUEUE)))
kv trust.overload.rate_per_s "$O_RATE"
kv trust.overload.threads "$TRUST_THREADS"
trust_kv_load trust.overload "$O"
trust_kv_load trust.flood "$F"
ok=0; [ "$O_ALIVE" = 1 ] && [ "$F_ALIVE" = 1 ] && [ "$(tv "$O" trust.probe fail)" = 0 ] &&
	[ "$(tv "$F" trust.probe fail)" = 0 ] && ok=1
verdict trust.overload.alive $ok >/dev/null
ok=0; [ "${O_RSS:-999999999}" -le "$MEM_CAP" ] && [ "${O_HWM:-999999999}" -le "$MEM_CAP" ] &&
	[ "${F_RSS:-999999999}" -le "$MEM_CAP" ] && [ "${F_HWM:-999999999}" -le "$MEM_CAP" ] && ok=1
verdict trust.overload.memory $ok >/dev/null
ok=0; [ "$(tn "$O" trust.busy count)" -gt 0 ] && [ "$(tv "$O" trust.busy no_retry_after)" = 0 ] &&
	[ "$(tv "$O" trust.other count)" = 0 ] && [ "$(tn "$F" trust.busy count)" -gt 0 ] &&
	[ "$(tv "$F" trust.busy no_retry_after)" = 0 ] && [ "$(tv "$F" trust.other count)" = 0 ] && ok=1
verdict trust.overload.429 $ok >/dev/null
# Judged: p50 and p99 within 5 ms. The tail beyond p99 (p99.9, max, the
# share over 5 ms) is printed beside the two references and not judged: on
# the 2-vCPU machines this runs on, nginx's fixed 429 with nothing else
# running has maxima of 25-35 ms and a p99.9 of 4-20 ms by itself
# (docs/benchmarks.md), so a maximum of 5 ms is below what any server can
# be measured at here; a stall of egov's own (a lock held across a hash, a
# generator or server falling behind) moves p99 and fails the verdict.
# When the unloaded reference itself misses 5 ms at p99, the machine was
# too busy in this run for a 5 ms target to be judged: the verdict says
# NOISY (neither met nor missed) and the figures stay printed.
NU_P99=$(tv "$NU" trust.busy p99_ms)
if [ -n "$NU_P99" ] && fcmp "$NU_P99" '>' 5; then
	kv trust.overload.429_latency.verdict NOISY
	say "    NOTE: nginx's fixed 429 with nothing else running had a p99 of $NU_P99 ms in this run: the"
	say "    machine was too busy for the 5 ms target to be judged (verdict NOISY); rerun when it is quiet."
else
	ok=0; fcmp "$O_P50" '<=' 5 && fcmp "$O_P99" '<=' 5 && ok=1
	verdict trust.overload.429_latency $ok >/dev/null
fi
kv trust.overload.busy_p999_ms "$(tv "$O" trust.busy p999_ms)"
kv trust.overload.busy_over_5ms "$(tv "$O" trust.busy over_5ms)"
for ref in nginx:"$N" nginx_unloaded:"$NU"; do
	f=${ref#*:}
	ref=${ref%%:*}
	kv "trust.overload.ref_$ref.p50_ms" "$(tv "$f" trust.busy p50_ms)"
	kv "trust.overload.ref_$ref.p99_ms" "$(tv "$f" trust.busy p99_ms)"
	kv "trust.overload.ref_$ref.p999_ms" "$(tv "$f" trust.busy p999_ms)"
	kv "trust.overload.ref_$ref.max_ms" "$(tv "$f" trust.busy max_ms)"
	kv "trust.overload.ref_$ref.over_5ms" "$(tv "$f" trust.busy over_5ms)"
	kv "trust.overload.ref_$ref.count" "$(tv "$f" trust.busy count)"
done

# ---- refresh-token grants
R=$RES/trust-refresh.txt
if node bench/trust_bench.mjs "http://127.0.0.1:$EGOV_PORT" "$TRUST_ADMIN" trust-bench-0@example.mo "$TRUST_PW" \
	"$TRUST_REFRESH_WORKERS" "$TMP" >"$RES/trust-refresh-setup.txt" 2>&1; then
	"$TRUST_BIN" refresh -p "$EGOV_PORT" -d "$TRUST_SECS" -W 2 -t "$TMP/refresh-tokens.txt" \
		-A "$(cat "$TMP/client-authz.txt")" -P "$EGOV_PID" >"$R" 2>&1 || true
	R_RPS=$(tv "$R" trust.ok per_s)
	R_CORE=$(awk -v r="${R_RPS:-0}" -v n="$NCPU" 'BEGIN { printf "%.0f", r / n }')
	R_CPU=$(tv "$R" trust.run server_cpu_s)
	R_PCPU=$(awk -v n="$(tn "$R" trust.run answers_all)" -v c="${R_CPU:-0}" 'BEGIN { if (c > 0) printf "%.0f", n / c; else print 0 }')
	say "  refresh grants, $TRUST_REFRESH_WORKERS rotating chains: $R_RPS/s = $R_CORE/s per core (p50 $(tv "$R" trust.ok p50_ms) ms, p99 $(tv "$R" trust.ok p99_ms) ms, max $(tv "$R" trust.ok max_ms) ms); failures $(tv "$R" trust.other count), broken chains $(tv "$R" trust.run broken_chains)"
	say "    server CPU $R_CPU s over $((TRUST_SECS + 2)) s (warm-up included): about $R_PCPU grants per server CPU-s; generator CPU $(tv "$R" trust.run gen_cpu_s) s"
	kv trust.refresh.workers "$TRUST_REFRESH_WORKERS"
	kv trust.refresh.per_s "$R_RPS"
	kv trust.refresh.per_core "$R_CORE"
	kv trust.refresh.per_cpu_s "$R_PCPU"
	kv trust.refresh.p50_ms "$(tv "$R" trust.ok p50_ms)"
	kv trust.refresh.p99_ms "$(tv "$R" trust.ok p99_ms)"
	kv trust.refresh.failures "$(( $(tn "$R" trust.other count) + $(tn "$R" trust.run errors) ))"
	ok=0; fcmp "$R_CORE" '>=' 2000 && [ "$(tv "$R" trust.run broken_chains)" = 0 ] && ok=1
	verdict trust.refresh $ok >/dev/null
else
	say "  refresh setup failed (see $RES/trust-refresh-setup.txt)"
	kv trust.refresh.verdict ERROR
fi

# ---- 10,000 sessions by real logins, then node A's idle memory
have=$(wc -l <"$TRUST_COOKIES")
need=$((TRUST_SESSIONS - have))
if [ "$need" -gt 0 ]; then
	S=$RES/trust-sessions-logins.txt
	"$TRUST_BIN" login -p "$EGOV_PORT" -c $((2 * NCPU)) -n "$need" -d "$TRUST_SESSIONS_MAX_S" \
		-a "$TRUST_ACCOUNTS" -w "$TRUST_PW" -o "$TRUST_COOKIES" -P "$EGOV_PID" >"$S" 2>&1 || true
	trust_login_line "$S" "logins for sessions, c=$((2 * NCPU))"
	say "    $(tv "$S" trust.ok count) logins in $(tv "$S" trust.run elapsed_s) s (bounded at ${TRUST_SESSIONS_MAX_S}s)"
fi
SESSIONS=$(wc -l <"$TRUST_COOKIES")
sleep 2
A_IDLE=$(rss_kb "$EGOV_PID")
A_HWM=$(status_field "$EGOV_PID" VmHWM)
say "  node A after all of the above, idle: VmRSS $(mib "$A_IDLE") MiB (VmHWM $(mib "$A_HWM") MiB, $(status_field "$EGOV_PID" Threads) threads)"
kv trust.node_a.idle_kb "$A_IDLE"
kv trust.node_a.hwm_kb "$A_HWM"
stop_pid "$EGOV_PID"

# ---- node B (default threads): use every session once, idle memory, then
# the overload again for information.
trust_start trust-egov-b.log 0
G=$RES/trust-sessions-me.txt
"$TRUST_BIN" get -p "$EGOV_PORT" -c $((2 * NCPU)) -u /api/v1/identity/me -k "$TRUST_COOKIES" -P "$EGOV_PID" >"$G" 2>&1 || true
LIVE=$(tv "$G" trust.ok count)
sleep 2
B_IDLE=$(rss_kb "$EGOV_PID")
B_HWM=$(status_field "$EGOV_PID" VmHWM)
say "  node B (server.threads default = $NCPU): $LIVE of $SESSIONS session cookies answered 200 on GET /api/v1/identity/me ($(tv "$G" trust.ok per_s)/s)"
say "  idle with $LIVE live sessions: VmRSS $(mib "$B_IDLE") MiB (VmHWM $(mib "$B_HWM") MiB)"
kv trust.sessions.made "$SESSIONS"
kv trust.sessions.live "$LIVE"
kv trust.sessions.idle_kb "$B_IDLE"
kv trust.sessions.hwm_kb "$B_HWM"
ok=0; [ "${LIVE:-0}" -ge "$TRUST_SESSIONS" ] && [ "$B_IDLE" -le 65536 ] && ok=1
verdict trust.sessions.idle $ok >/dev/null
O2=$RES/trust-overload-b.txt
trust_overload "flood, threads=default ($NCPU)" "$O2"
trust_kv_load trust.overload_default "$O2"
kv trust.overload_default.alive "$T_ALIVE"
stop_pid "$EGOV_PID"

# ---- glewlwyd, the same login and refresh runs (sets GLEW_ROW)
# shellcheck source=bench/glewlwyd_bench.sh
. bench/glewlwyd_bench.sh

# ---- table
say ""
printf '  %-44s %-22s %-22s %s\n' "trust figure" measured target verdict
trow() { printf '  %-44s %-22s %-22s %s\n' "$1" "$2" "$3" "$(grep -m1 "^$4.verdict=" "$SUMMARY" | cut -d= -f2)"; }
trow "argon2id hash (ref.), ceiling $NCPU cores" "$HASH_MS ms, $CEIL/s" "reference" none
trow "logins/s at c=$NCPU, x ceiling" "$L_RPS/s = ${L_RATIO}x" ">= 0.8x" trust.login.rate
trow "  p50, x hash time" "$L_P50 ms = ${L_LAT}x" "<= 1.2x" trust.login.p50
trow "  429/other answers to correct logins" "$(tsv trust.login.non_ok)" "0" trust.login.no_throttle
trow "overload 10x ($O_RATE/s) and flood, c=$((10 * (TRUST_SLOTS + TRUST_QUEUE))): alive" "probe fail $(tsv trust.overload.probe_fail)+$(tsv trust.flood.probe_fail)" "alive, /healthz ok" trust.overload.alive
trow "  VmRSS max / VmHWM (10x; flood)" "$(mib "${O_RSS:-0}")/$(mib "${O_HWM:-0}"); $(mib "${F_RSS:-0}")/$(mib "${F_HWM:-0}") MiB" "<= $(mib "$MEM_CAP") MiB" trust.overload.memory
trow "  excess answered 429 + Retry-After" "$(tsv trust.overload.busy_count)+$(tsv trust.flood.busy_count) x 429" "all" trust.overload.429
trow "  429 latency p50/p99 at 10x" "$O_P50/$O_P99 ms" "<= 5 ms" trust.overload.429_latency
trow "    p99.9/max, answers over 5 ms" "$(tsv trust.overload.busy_p999_ms)/$O_MAX ms, $(tsv trust.overload.busy_over_5ms)" "information" none
trow "  (nginx fixed 429, same load, hashing)" "$(tsv trust.overload.ref_nginx.p50_ms)/$(tsv trust.overload.ref_nginx.p99_ms)/$(tsv trust.overload.ref_nginx.p999_ms)/$(tsv trust.overload.ref_nginx.max_ms) ms, $(tsv trust.overload.ref_nginx.over_5ms)" "information" none
trow "  (nginx fixed 429, same load, unloaded)" "$(tsv trust.overload.ref_nginx_unloaded.p50_ms)/$(tsv trust.overload.ref_nginx_unloaded.p99_ms)/$(tsv trust.overload.ref_nginx_unloaded.p999_ms)/$(tsv trust.overload.ref_nginx_unloaded.max_ms) ms, $(tsv trust.overload.ref_nginx_unloaded.over_5ms)" "information" none
trow "  (flood: 429 p50/p99/max)" "$(tsv trust.flood.busy_p50_ms)/$(tsv trust.flood.busy_p99_ms)/$(tsv trust.flood.busy_max_ms) ms" "information" none
trow "refresh grants/s per core" "${R_CORE:-?}/s" ">= 2,000/s" trust.refresh
trow "idle VmRSS, $LIVE live sessions" "$(mib "$B_IDLE") MiB" "<= 64 MiB" trust.sessions.idle
trow "glewlwyd beside egov (egov/glewlwyd)" "$GLEW_ROW" "ratio if possible" none
