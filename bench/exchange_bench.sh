# exchange_bench.sh: the "data exchange" section of scripts/bench.sh, sourced
# by it (uses its helpers: say, kv, section, verdict, fcmp, fdiv, mib,
# pick_port, owns_port, stop_pid, rss_kb, status_field, proc_ticks, WRK_AWK,
# and its PIDS, RES, TMP, EGOV, READY, NCPU, CLK_TCK, BUILD, ROOT).
#
# One back-end stub (nginx answering every request with the same 1,024-byte
# JSON body) and three ways to reach it with a 1,024-byte JSON POST:
#   direct    wrk -> back-end
#   nginx     wrk -> nginx proxy -> nginx proxy -> back-end (keep-alive
#             upstreams; the no-crypto reference for two hops)
#   gateways  wrk -> consumer gateway /r1/MO/GOV/DSAJ/REG/persons/bench
#             -> (mutual TLS, signed) provider gateway -> back-end; both
#             gateways verify, and log durably (log mode full) before
#             answering. Nodes from bench/exchange_nodes.mjs (the API tests'
#             fixture), on SQLite.
# Each is run twice: latency at one connection (wrk -t1 -c1: the time a call
# takes when nothing queues), and throughput at EX_CONNS connections. Judged:
#   gateway p50 - direct p50 <= 1 ms and p99 - direct p99 <= 5 ms (latency
#   runs); gateway req/s >= 0.5 x direct req/s and >= 1,000/s (throughput
#   runs; every call there is a signed, verified and logged exchange);
#   consumer gateway idle VmRSS <= 32 MiB (after start, before load).
#
# Knobs: BENCH_EXCHANGE (1; 0 skips), BENCH_EXCHANGE_SECONDS (10),
# BENCH_EXCHANGE_CONNS (32), BENCH_EXCHANGE_ROUNDS (2).
#
# Invariants: every server listens on 127.0.0.1 only (owns_port checks);
# every process started is stopped by PID; runs are bounded in time.
# shellcheck shell=bash disable=SC2154,SC2034,SC2086

EX_SECS=${BENCH_EXCHANGE_SECONDS:-10}
EX_CONNS=${BENCH_EXCHANGE_CONNS:-32}
EX_ROUNDS=${BENCH_EXCHANGE_ROUNDS:-2}
EX_WARM=3

section "data exchange (1 KiB POST and answer; latency at c=1, throughput at c=$EX_CONNS, ${EX_SECS}s per run)"

ex_fail() {
	say "  exchange: $*"
	kv exchange.error "$*"
}

ex_start_nginx() {
	local attempt prefix=$TMP/ex-nginx user_line="" b p1 p2
	[ "$(id -u)" -eq 0 ] && user_line="user root;"
	mkdir -p "$prefix"
	for attempt in 1 2 3; do
		b=$(pick_port) && p1=$(pick_port) && p2=$(pick_port) || return 1
		[ "$b" != "$p1" ] && [ "$p1" != "$p2" ] && [ "$b" != "$p2" ] || continue
		sed -e "s|@USER_LINE@|$user_line|" -e "s|@PREFIX@|$prefix|g" -e "s|@BACKEND@|127.0.0.1:$b|g" \
			-e "s|@PROXY1@|127.0.0.1:$p1|g" -e "s|@PROXY2@|127.0.0.1:$p2|g" \
			bench/exchange_nginx.conf >"$prefix/nginx.conf"
		nginx -e stderr -c "$prefix/nginx.conf" -p "$prefix" >>"$RES/exchange-nginx.log" 2>&1 &
		EX_NGINX_PID=$!
		PIDS+=("$EX_NGINX_PID")
		if "$READY" wait "$b" 15 >/dev/null && "$READY" wait "$p1" 15 >/dev/null &&
			owns_port "$EX_NGINX_PID" "$b" && owns_port "$EX_NGINX_PID" "$p1" && owns_port "$EX_NGINX_PID" "$p2"; then
			EX_BACKEND=$b
			EX_PROXY=$p1
			return 0
		fi
		stop_pid "$EX_NGINX_PID"
	done
	return 1
}

# The request: 1,024 bytes of JSON, the client header (ignored by nginx).
cat >"$TMP/ex-post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"q":"' .. string.rep("y", 1024 - 8) .. '"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Road-Client"] = "MO/GOV/DSB/APP"
LUA


declare -A EXR EXP50 EXP99 EXERR EXCPU
# ex_run NAME URL MODE(lat|tput) ROUND SERVER_PIDS...
ex_run() {
	local name=$1 url=$2 mode=$3 r=$4 t c out s0 s1
	shift 4
	if [ "$mode" = lat ]; then t=1; c=1; else t=2; c=$EX_CONNS; fi
	out=$RES/exchange-wrk-$name-$mode-r$r.txt
	wrk -t$t -c$c -d${EX_WARM}s -s "$TMP/ex-post.lua" "$url" >/dev/null 2>&1 || true
	s0=$(proc_ticks "$@")
	wrk -t$t -c$c -d${EX_SECS}s --latency -s "$TMP/ex-post.lua" "$url" >"$out" 2>&1 || true
	s1=$(proc_ticks "$@")
	read -r EXR[$name,$mode,$r] EXP50[$name,$mode,$r] EXP99[$name,$mode,$r] EXERR[$name,$mode,$r] < <(awk "$WRK_AWK" "$out")
	EXCPU[$name,$mode,$r]=$(awk -v s=$((s1 - s0)) -v hz="$CLK_TCK" -v d="$EX_SECS" 'BEGIN { printf "%.0f", s / hz / d * 100 }')
	printf '  round %-2s %-9s %-4s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  errors %-5s server CPU %4s%%\n' \
		"$r" "$name" "$mode" "${EXR[$name,$mode,$r]}" "${EXP50[$name,$mode,$r]}" "${EXP99[$name,$mode,$r]}" \
		"${EXERR[$name,$mode,$r]}" "${EXCPU[$name,$mode,$r]}"
}

# ex_best NAME MODE: the round with the most req/s (noise only slows a run).
ex_best() {
	local n=$1 m=$2 r b=""
	for r in $(seq 1 "$EX_ROUNDS"); do
		if [ -z "$b" ] || fcmp "${EXR[$n,$m,$r]}" '>' "${EXR[$n,$m,$b]}"; then b=$r; fi
	done
	echo "$b"
}

# Reference: the disk's durable-commit latency, measured here (each side of
# the pair waits for one commit before it answers, one after the other).
EX_FSYNC_P50=""
if gcc -std=c11 -D_GNU_SOURCE -O2 -o "$TMP/fsync_ref" bench/fsync_ref.c 2>"$RES/fsync_ref.build.log"; then
	"$TMP/fsync_ref" "$TMP/fsync_ref.dat" 1000 >"$RES/exchange-fsync-ref.txt" 2>&1 || true
	EX_FSYNC_P50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' "$RES/exchange-fsync-ref.txt")
	EX_FSYNC_P99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' "$RES/exchange-fsync-ref.txt")
	say "  reference: fdatasync after a 12 KiB WAL-like append: p50 ${EX_FSYNC_P50:-?} ms, p99 ${EX_FSYNC_P99:-?} ms"
	kv exchange.fsync_p50_ms "${EX_FSYNC_P50:-0}"
fi

EX_OK=1
command -v node >/dev/null || { ex_fail "node not found (scripts/install-deps.sh test)"; EX_OK=0; }
if [ $EX_OK = 1 ] && ! ex_start_nginx; then ex_fail "nginx (back-end stub and proxies) did not start"; EX_OK=0; fi
if [ $EX_OK = 1 ]; then
	EX_INFO=$TMP/ex-nodes.info
	EGOV_BIN=$EGOV node bench/exchange_nodes.mjs "http://127.0.0.1:$EX_BACKEND" "$EX_INFO" >"$RES/exchange-nodes.log" 2>&1 &
	EX_NODES_PID=$!
	PIDS+=("$EX_NODES_PID")
	for _ in $(seq 1 600); do
		[ -s "$EX_INFO" ] && break
		kill -0 "$EX_NODES_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -s "$EX_INFO" ]; then
		tail -n 20 "$RES/exchange-nodes.log"
		ex_fail "the exchange nodes did not come up (see exchange-nodes.log)"
		EX_OK=0
	fi
fi
if [ $EX_OK = 1 ]; then
	exi() { awk -F= -v k="$1" '$1 == k { print $2 }' "$EX_INFO"; }
	EX_C_PORT=$(exi consumer_port)
	EX_C_PID=$(exi consumer_pid)
	EX_P_PID=$(exi provider_pid)
	EX_CENTRAL_PID=$(exi central_pid)
	owns_port "$EX_C_PID" "$EX_C_PORT" || { ex_fail "consumer gateway port not owned by its process"; EX_OK=0; }
fi
if [ $EX_OK = 1 ]; then
	# Idle memory of each gateway: started, configuration loaded, one
	# warm-up call made by exchange_nodes.mjs, no load yet.
	sleep 2
	EX_C_RSS_IDLE=$(rss_kb "$EX_C_PID")
	EX_P_RSS_IDLE=$(rss_kb "$EX_P_PID")
	say "  consumer gateway pid $EX_C_PID port $EX_C_PORT; provider gateway pid $EX_P_PID; back-end stub and proxies: nginx pid $EX_NGINX_PID"
	EX_URL_DIRECT=http://127.0.0.1:$EX_BACKEND/persons/bench
	EX_URL_NGINX=http://127.0.0.1:$EX_PROXY/persons/bench
	EX_URL_GW=http://127.0.0.1:$EX_C_PORT/r1/MO/GOV/DSAJ/REG/persons/persons/bench
	for u in "$EX_URL_DIRECT" "$EX_URL_NGINX" "$EX_URL_GW"; do
		code=$(curl -s -o "$TMP/ex-probe" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
			-H 'X-Road-Client: MO/GOV/DSB/APP' --data '{"q":"probe"}' "$u")
		[ "$code" = 200 ] && [ "$(wc -c <"$TMP/ex-probe")" = 1024 ] ||
			{ ex_fail "probe $u answered $code"; EX_OK=0; }
	done
fi
if [ $EX_OK = 1 ]; then
	EX_NGINX_PIDS="$EX_NGINX_PID $(pgrep -P "$EX_NGINX_PID" | tr '\n' ' ')"
	for r in $(seq 1 "$EX_ROUNDS"); do
		for mode in lat tput; do
			ex_run direct "$EX_URL_DIRECT" $mode "$r" $EX_NGINX_PIDS
			ex_run nginx "$EX_URL_NGINX" $mode "$r" $EX_NGINX_PIDS
			ex_run gateways "$EX_URL_GW" $mode "$r" "$EX_C_PID" "$EX_P_PID" $EX_NGINX_PIDS
		done
	done
	sleep 2
	EX_C_RSS_LOADED=$(rss_kb "$EX_C_PID")
	EX_P_RSS_LOADED=$(rss_kb "$EX_P_PID")
	EX_C_HWM=$(status_field "$EX_C_PID" VmHWM)
	# What the gateways logged: both logs hold every answered exchange.
	EX_C_LOGGED=$(sqlite3 "$(awk -F= '$1 == "consumer_data" { print $2 }' "$EX_INFO")/egov.db" \
		"SELECT count(*) FROM exchange_log" 2>/dev/null || echo "?")
	EX_P_LOGGED=$(sqlite3 "$(awk -F= '$1 == "provider_data" { print $2 }' "$EX_INFO")/egov.db" \
		"SELECT count(*) FROM exchange_log" 2>/dev/null || echo "?")

	bl=$(ex_best direct lat); nl=$(ex_best nginx lat); gl=$(ex_best gateways lat)
	bt=$(ex_best direct tput); nt=$(ex_best nginx tput); gt=$(ex_best gateways tput)
	add50=$(awk -v g="${EXP50[gateways,lat,$gl]}" -v d="${EXP50[direct,lat,$bl]}" 'BEGIN { printf "%.3f", g - d }')
	add99=$(awk -v g="${EXP99[gateways,lat,$gl]}" -v d="${EXP99[direct,lat,$bl]}" 'BEGIN { printf "%.3f", g - d }')
	nadd50=$(awk -v g="${EXP50[nginx,lat,$nl]}" -v d="${EXP50[direct,lat,$bl]}" 'BEGIN { printf "%.3f", g - d }')
	ratio=$(fdiv "${EXR[gateways,tput,$gt]}" "${EXR[direct,tput,$bt]}")
	nratio=$(fdiv "${EXR[nginx,tput,$nt]}" "${EXR[direct,tput,$bt]}")
	gvn=$(fdiv "${EXR[gateways,tput,$gt]}" "${EXR[nginx,tput,$nt]}")
	kv exchange.direct.lat.p50_ms "${EXP50[direct,lat,$bl]}"
	kv exchange.direct.lat.p99_ms "${EXP99[direct,lat,$bl]}"
	kv exchange.nginx.lat.p50_ms "${EXP50[nginx,lat,$nl]}"
	kv exchange.gateways.lat.p50_ms "${EXP50[gateways,lat,$gl]}"
	kv exchange.gateways.lat.p99_ms "${EXP99[gateways,lat,$gl]}"
	kv exchange.direct.rps "${EXR[direct,tput,$bt]}"
	kv exchange.nginx.rps "${EXR[nginx,tput,$nt]}"
	kv exchange.gateways.rps "${EXR[gateways,tput,$gt]}"
	kv exchange.gateways.tput.p50_ms "${EXP50[gateways,tput,$gt]}"
	kv exchange.gateways.tput.p99_ms "${EXP99[gateways,tput,$gt]}"
	kv exchange.gateways.errors "${EXERR[gateways,tput,$gt]}"
	kv exchange.added_p50_ms "$add50"
	kv exchange.added_p99_ms "$add99"
	kv exchange.ratio_direct "$ratio"
	kv exchange.consumer_rss_idle_kb "$EX_C_RSS_IDLE"
	kv exchange.provider_rss_idle_kb "$EX_P_RSS_IDLE"
	say ""
	say "Data exchange result (best of $EX_ROUNDS rounds by req/s):"
	printf '  %-44s %12s %12s %12s\n' "" direct "nginx chain" "gateway pair"
	printf '  %-44s %12.3f %12.3f %12.3f\n' "c=1 p50 (ms)" "${EXP50[direct,lat,$bl]}" "${EXP50[nginx,lat,$nl]}" "${EXP50[gateways,lat,$gl]}"
	printf '  %-44s %12.3f %12.3f %12.3f\n' "c=1 p99 (ms)" "${EXP99[direct,lat,$bl]}" "${EXP99[nginx,lat,$nl]}" "${EXP99[gateways,lat,$gl]}"
	printf '  %-44s %12.0f %12.0f %12.0f\n' "c=1 req/s" "${EXR[direct,lat,$bl]}" "${EXR[nginx,lat,$nl]}" "${EXR[gateways,lat,$gl]}"
	printf '  %-44s %12.0f %12.0f %12.0f\n' "c=$EX_CONNS req/s" "${EXR[direct,tput,$bt]}" "${EXR[nginx,tput,$nt]}" "${EXR[gateways,tput,$gt]}"
	printf '  %-44s %12.3f %12.3f %12.3f\n' "c=$EX_CONNS p50 (ms)" "${EXP50[direct,tput,$bt]}" "${EXP50[nginx,tput,$nt]}" "${EXP50[gateways,tput,$gt]}"
	printf '  %-44s %12.3f %12.3f %12.3f\n' "c=$EX_CONNS p99 (ms)" "${EXP99[direct,tput,$bt]}" "${EXP99[nginx,tput,$nt]}" "${EXP99[gateways,tput,$gt]}"
	printf '  %-44s %12s %12s %12s\n' "errors (non-2xx, socket)" "${EXERR[direct,tput,$bt]}" "${EXERR[nginx,tput,$nt]}" "${EXERR[gateways,tput,$gt]}"
	say "  exchanges logged: consumer $EX_C_LOGGED, provider $EX_P_LOGGED"
	[ -n "$EX_FSYNC_P50" ] && say "  of the added p50, two durable commits in series (provider, then consumer) account for about $(awk -v f="$EX_FSYNC_P50" 'BEGIN { printf "%.3f", 2 * f }') ms (2 x the disk's fdatasync p50)"
	say "  ratios: gateway pair / direct = $ratio, nginx chain / direct = $nratio, gateway pair / nginx chain = $gvn; nginx chain adds $nadd50 ms at p50"
	say ""
	printf '  %-56s %-14s %-12s %s\n' "figure" "measured" "target" "verdict"
	printf '  %-56s %-14s %-12s %s\n' "gateway pair adds at p50 (c=1), ms" "$add50" "<= 1" \
		"$(verdict exchange.added_p50 "$(fcmp "$add50" '<=' 1 && echo 1 || echo 0)")"
	printf '  %-56s %-14s %-12s %s\n' "gateway pair adds at p99 (c=1), ms" "$add99" "<= 5" \
		"$(verdict exchange.added_p99 "$(fcmp "$add99" '<=' 5 && echo 1 || echo 0)")"
	printf '  %-56s %-14s %-12s %s\n' "throughput through the pair / direct (c=$EX_CONNS)" "$ratio" ">= 0.5" \
		"$(verdict exchange.ratio "$(fcmp "$ratio" '>=' 0.5 && echo 1 || echo 0)")"
	printf '  %-56s %-14.0f %-12s %s\n' "signed and logged exchanges/s ($NCPU cores)" "${EXR[gateways,tput,$gt]}" ">= 1000" \
		"$(verdict exchange.rate "$(fcmp "${EXR[gateways,tput,$gt]}" '>=' 1000 && [ "${EXERR[gateways,tput,$gt]}" = 0 ] && echo 1 || echo 0)")"
	printf '  %-56s %-14s %-12s %s\n' "consumer gateway idle VmRSS, MiB" "$(mib "$EX_C_RSS_IDLE")" "<= 32" \
		"$(verdict exchange.rss "$(fcmp "$EX_C_RSS_IDLE" '<=' $((32 * 1024)) && echo 1 || echo 0)")"
	say "  provider gateway idle VmRSS $(mib "$EX_P_RSS_IDLE") MiB; after load: consumer $(mib "$EX_C_RSS_LOADED") MiB (peak $(mib "$EX_C_HWM")), provider $(mib "$EX_P_RSS_LOADED") MiB"
fi
[ -n "${EX_NODES_PID:-}" ] && stop_pid "$EX_NODES_PID"
[ -n "${EX_NGINX_PID:-}" ] && stop_pid "$EX_NGINX_PID"
