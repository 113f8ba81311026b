#!/usr/bin/env bash
# Runs every test layer of egov and ends with a summary: each layer's count
# and wall time (the builds' too), the run's wall time, and last the line
# "total: N passed, M failed".
#   lint       banned libc functions (scripts/check-banned.sh)
#   unit       cmocka unit tests, on SQLite and PostgreSQL
#   api        the real `egov serve` over HTTP, on SQLite and PostgreSQL (node:test)
#   crash      egov killed with SIGKILL under audited writes, restarted: nothing
#              lost, nothing unaudited
#   browser    pages in Debian's Chromium (playwright-core, axe-core)
#   asan       built with AddressSanitizer + UBSan: the unit tests on both
#              backends, and the API files of asan_api (below) on SQLite
#   fuzz       each libFuzzer target for FUZZ_SECONDS (default 10)
# A throwaway PostgreSQL 15 cluster is started on 127.0.0.1 for the run and
# removed afterwards. LAYERS="unit api" runs a subset.
#
# Within a layer each test file (unit binary, API or browser file, fuzz
# target) runs in a process of its own, two at once: API files spend most of
# their time waiting on timers, sockets and disk, not on the CPU. Browser
# files, which keep Chromium busy, run one at a time (two at once were no
# faster on two cores). TEST_JOBS sets one number for every layer. Files
# never share a PostgreSQL database: each worker has its own for the unit
# tests (which drop and recreate what they use), and API files make their
# own (tests/lib/egov.mjs). The files that took longest in the last run
# (build/test-times.txt) start first, so that none starts alone at the end.
# A line is printed for each file as it ends: its time, counts and name.
set -u
cd "$(dirname "$0")/.." || exit 1
root=$(pwd)
layers=${LAYERS:-"lint unit api crash browser asan fuzz"}
jobs=$(nproc 2>/dev/null || echo 2)
par=${TEST_JOBS:-2}
browser_par=${TEST_JOBS:-1}
times_file="$root/build/test-times.txt"

# The crash test is a layer of its own: it kills its nodes, so it runs alone.
api_files=()
for f in tests/api/*.test.mjs; do
	[ "$f" = tests/api/crash.test.mjs ] || api_files+=("$f")
done

# The API files the sanitizer pass runs, on SQLite. AddressSanitizer finds
# memory errors where outside input decides what is allocated, copied and
# freed, and where a request's memory outlives or races its connection; so:
# the files that feed egov's parsers (HTTP framing and headers, JSON bodies,
# paths, queries, forms, JWTs, CSRs, OCSP requests, certificates, SMTP
# replies, signed exchange messages forged and replayed, the exchange's
# global configuration), that stream large bodies, and that drop, flood or
# stop the server mid-request. Left out are the files that check storage,
# rendering and timing (audit, system, exchange_console, exchange_hardening,
# exchange_log) and the PostgreSQL half: the storage code of both backends
# runs under the sanitizer in the unit tests, and above it a request takes
# the same path on either backend. docs/testing.md says the same.
asan_api="kernel notices static oidc pki certlogin certlink account_self identity notify cli slow
	exchange_gateway exchange_stream exchange_pubsub exchange_registry exchange_failures exchange_im
	exchange_federation"

total_pass=0
total_fail=0
summary=()
work=$(mktemp -d /tmp/egov-test-run-XXXXXX)
pgdir="$work/pg"
pg_urls=()
chmod 755 "$work"

cleanup() {
	[ -d "$pgdir" ] && scripts/pg-test-cluster.sh stop "$pgdir" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

has_layer() { [[ " $layers " == *" $1 "* ]]; }

# Wall-clock seconds since the epoch, with tenths; layers are timed with it.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
run_start=$(now)

record() { # layer pass fail [seconds]
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	summary+=("$(printf '%-10s %5d passed, %d failed %9s' "$1" "$2" "$3" "${4:+$4 s}")")
}

# Counts a TAP stream: node's "# pass/# fail/# cancelled" totals, or
# top-level "ok"/"not ok" lines (cmocka).
tap_counts() { # file -> "pass fail"
	local f=$1 p fl c
	if grep -qE '^# pass [0-9]+' "$f"; then
		p=$(grep -E '^# pass [0-9]+' "$f" | tail -1 | awk '{print $3}')
		fl=$(grep -E '^# fail [0-9]+' "$f" | tail -1 | awk '{print $3}')
		c=$(grep -E '^# cancelled [0-9]+' "$f" | tail -1 | awk '{print $3}')
		fl=$((${fl:-0} + ${c:-0}))
	else
		p=$(grep -cE '^ok [0-9]+' "$f")
		fl=$(grep -cE '^not ok [0-9]+' "$f")
	fi
	echo "${p:-0} ${fl:-0}"
}

# The libFuzzer driver's last line: "fuzz: N passed, M failed".
fuzz_counts() { # file -> "pass fail"
	local line
	line=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
	echo "$line" | awk '{ print ($2 == "" ? 0 : $2), ($4 == "" ? 0 : $4) }'
}

executables() { # paths -> those that are executable files (not make's .d files)
	local f
	for f in "$@"; do [ -f "$f" ] && [ -x "$f" ] && echo "$f"; done
}

file_name() { # path -> name shown and used for its output
	local n=${1##*/}
	n=${n%.test.mjs}
	echo "$n"
}

# Orders files so that the longest of the last run come first (files not
# timed yet before them, as they may be long).
longest_first() { # layer files...
	local layer=$1 f t
	shift
	for f in "$@"; do
		t=$( [ -f "$times_file" ] && awk -v k="$layer/$(file_name "$f")" '$1 == k { print $2 }' "$times_file")
		echo "${t:-100000} $f"
	done | sort -k1,1 -rn -s | cut -d' ' -f2
}

# Runs one file of a layer; writes NAME.out (its output) and NAME.rc ("exit
# seconds") in the layer's directory and prints a line for it.
run_one() { # layer kind slot file
	local layer=$1 kind=$2 slot=$3 f=$4 name out t0 rc secs cp cf
	name=$(file_name "$f")
	out="$work/$layer/$name"
	t0=$(now)
	case $kind in
	unit)
		env "${file_env[@]}" ${pg_urls[$slot]:+EGOV_TEST_PG_URL=${pg_urls[$slot]}} \
			CMOCKA_MESSAGE_OUTPUT=TAP timeout 600 "$f" >"$out.out" 2>&1
		;;
	node)
		env "${file_env[@]}" timeout 900 node --test --test-reporter=tap "$f" >"$out.out" 2>&1
		;;
	fuzz)
		env "${file_env[@]}" FUZZ_NO_BUILD=1 scripts/fuzz.sh "$f" >"$out.out" 2>&1
		;;
	esac
	rc=$?
	secs=$(since "$t0")
	echo "$rc $secs" >"$out.rc"
	if [ "$kind" = fuzz ]; then
		read -r cp cf < <(fuzz_counts "$out.out")
	else
		read -r cp cf < <(tap_counts "$out.out")
	fi
	if [ "$rc" -ne 0 ] && [ "$cf" -eq 0 ]; then cf=1; fi
	printf '   %7s s  %4d passed, %d failed  %s\n' "$secs" "$cp" "$cf" "$name"
}

# A worker takes the next file from the layer's list until none is left.
worker() { # layer kind slot
	local list="$work/$1/files" next="$work/$1/next" i f
	while :; do
		# shellcheck disable=SC2016 # expanded by the inner shell
		i=$(flock "$next.lock" bash -c 'i=$(cat "$1"); echo $((i + 1)) >"$1"; echo "$i"' _ "$next")
		f=$(sed -n "${i}p" "$list")
		[ -n "$f" ] || break
		run_one "$1" "$2" "$3" "$f"
	done
}

# Runs a layer's files, n at once, with the environment in file_env; sets
# layer_pass and layer_fail, prints what failed, and keeps each file's time
# for the ordering of the next run.
run_files() { # layer kind n files...
	local layer=$1 kind=$2 n=$3 i f name rc secs cp cf
	shift 3
	layer_pass=0
	layer_fail=0
	mkdir -p "$work/$layer"
	longest_first "$layer" "$@" >"$work/$layer/files"
	echo 1 >"$work/$layer/next"
	for ((i = 0; i < n; i++)); do
		worker "$layer" "$kind" "$i" &
	done
	wait
	for f in "$@"; do
		name=$(file_name "$f")
		read -r rc secs <"$work/$layer/$name.rc" || { rc=1; secs=0; }
		if [ "$kind" = fuzz ]; then
			read -r cp cf < <(fuzz_counts "$work/$layer/$name.out")
		else
			read -r cp cf < <(tap_counts "$work/$layer/$name.out")
		fi
		if [ "$rc" -ne 0 ] && [ "$cf" -eq 0 ]; then cf=1; fi
		if [ "$cf" -ne 0 ]; then
			{
				echo "--- $layer: $name failed (exit $rc):"
				if [ "$kind" = node ]; then
					grep -B2 -A25 -E '^\s*not ok' "$work/$layer/$name.out" | head -150
				else
					grep -E '^not ok|^#|ERROR|FAIL|Sanitizer|runtime error' "$work/$layer/$name.out" | head -40
				fi
			} >&2
		fi
		layer_pass=$((layer_pass + cp))
		layer_fail=$((layer_fail + cf))
		if [ -d "$root/build" ]; then
			touch "$times_file"
			awk -v k="$layer/$name" '$1 != k' "$times_file" >"$times_file.new"
			echo "$layer/$name $secs" >>"$times_file.new"
			mv "$times_file.new" "$times_file"
		fi
	done
}

echo "== build"
t0=$(now)
if ! make -s -j"$jobs" BUILD=build build unit >"$work/build.log" 2>&1; then
	cat "$work/build.log"
	record build 0 1 "$(since "$t0")"
	echo "total: $total_pass passed, $total_fail failed"
	exit 1
fi
record build 0 0 "$(since "$t0")"

if has_layer unit || has_layer api || has_layer crash || has_layer asan; then
	echo "== postgres: starting a throwaway cluster"
	if EGOV_TEST_PG_URL=$(scripts/pg-test-cluster.sh start "$pgdir"); then
		export EGOV_TEST_PG_URL
		echo "   $EGOV_TEST_PG_URL"
		# One database per worker for the unit tests.
		pg_urls=("$EGOV_TEST_PG_URL")
		for ((i = 1; i < par; i++)); do
			if ! url=$(scripts/pg-test-cluster.sh createdb "$pgdir" "egov_test_w$i"); then
				record postgres 0 1
				par=$i
				break
			fi
			pg_urls+=("$url")
		done
	else
		echo "   could not start PostgreSQL: storage tests run on SQLite only, which counts as a failure"
		record postgres 0 1
		unset EGOV_TEST_PG_URL
	fi
fi

if has_layer lint; then
	echo "== lint"
	t0=$(now)
	if scripts/check-banned.sh; then record lint 1 0 "$(since "$t0")"; else record lint 0 1 "$(since "$t0")"; fi
fi

if has_layer unit; then
	echo "== unit"
	t0=$(now)
	file_env=()
	# shellcheck disable=SC2046 # paths without spaces
	run_files unit unit "$par" $(executables build/tests/test_*)
	record unit "$layer_pass" "$layer_fail" "$(since "$t0")"
fi

if has_layer api; then
	echo "== api"
	t0=$(now)
	file_env=(EGOV_BIN="$root/build/egov")
	run_files api node "$par" "${api_files[@]}"
	record api "$layer_pass" "$layer_fail" "$(since "$t0")"
fi

if has_layer crash; then
	echo "== crash"
	t0=$(now)
	file_env=(EGOV_BIN="$root/build/egov")
	run_files crash node 1 tests/api/crash.test.mjs
	record crash "$layer_pass" "$layer_fail" "$(since "$t0")"
fi

if has_layer browser; then
	echo "== browser"
	t0=$(now)
	file_env=(EGOV_BIN="$root/build/egov")
	run_files browser node "$browser_par" tests/browser/*.test.mjs
	record browser "$layer_pass" "$layer_fail" "$(since "$t0")"
fi

if has_layer asan; then
	echo "== asan: building with AddressSanitizer + UndefinedBehaviorSanitizer"
	t0=$(now)
	if make -s -j"$jobs" BUILD=build/asan SAN=1 build unit >"$work/asan-build.log" 2>&1; then
		record asan-build 0 0 "$(since "$t0")"
		san=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
			UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
		echo "== asan-unit"
		t0=$(now)
		file_env=("${san[@]}")
		# shellcheck disable=SC2046 # paths without spaces
		run_files asan-unit unit "$par" $(executables build/asan/tests/test_*)
		record asan-unit "$layer_pass" "$layer_fail" "$(since "$t0")"
		echo "== asan-api (SQLite)"
		t0=$(now)
		file_env=("${san[@]}" EGOV_BIN="$root/build/asan/egov" EGOV_TEST_SANITIZER=1 EGOV_TEST_PG_URL=)
		# shellcheck disable=SC2046 # paths without spaces
		run_files asan-api node "$par" $(for n in $asan_api; do echo "tests/api/$n.test.mjs"; done)
		record asan-api "$layer_pass" "$layer_fail" "$(since "$t0")"
	else
		cat "$work/asan-build.log"
		record asan-build 0 1 "$(since "$t0")"
	fi
fi

if has_layer fuzz; then
	echo "== fuzz"
	t0=$(now)
	if make -s fuzz-build >"$work/fuzz-build.log" 2>&1; then
		file_env=(FUZZ_SECONDS="${FUZZ_SECONDS:-10}")
		# shellcheck disable=SC2046 # target names
		run_files fuzz fuzz "$par" $(for s in tests/fuzz/fuzz_*.c; do t=${s##*/}; echo "${t%.c}"; done)
		record fuzz "$layer_pass" "$layer_fail" "$(since "$t0")"
	else
		cat "$work/fuzz-build.log"
		record fuzz 0 1 "$(since "$t0")"
	fi
fi

echo
echo "== summary"
for s in "${summary[@]}"; do echo "   $s"; done
printf '   %-10s %36s\n' "wall time" "$(since "$run_start") s"
echo "total: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
