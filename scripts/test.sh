#!/usr/bin/env bash
# Runs every test layer of egov and prints one summary line at the end:
#   lint       banned libc functions (scripts/check-banned.sh)
#   unit       cmocka unit tests, on SQLite and PostgreSQL
#   api        the real `egov serve` over HTTP, on SQLite and PostgreSQL (node:test)
#   crash      egov killed with SIGKILL under audited writes, restarted: nothing
#              lost, nothing unaudited; only when EGOV_TEST_CRASH=1
#   browser    pages in Debian's Chromium (playwright-core, axe-core)
#   asan       unit and API tests again, built with AddressSanitizer + UBSan
#   fuzz       each libFuzzer target for FUZZ_SECONDS (default 10)
# A throwaway PostgreSQL 15 cluster is started on 127.0.0.1 for the run and
# removed afterwards. LAYERS="unit api" runs a subset.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
layers=${LAYERS:-"lint unit api crash browser asan fuzz"}
# The crash test (SIGKILL under audited writes) is a layer of its own.
api_files=$(ls tests/api/*.test.mjs | grep -v '/crash\.test\.mjs$')
jobs=$(nproc 2>/dev/null || echo 2)
total_pass=0
total_fail=0
summary=()
work=$(mktemp -d /tmp/egov-test-run-XXXXXX)
pgdir="$work/pg"
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

# Counts a TAP stream: top-level "ok"/"not ok" lines, or node's "# pass/# fail" totals.
tap_counts() { # file -> "pass fail"
	local f=$1 p fl
	if grep -qE '^# pass [0-9]+' "$f"; then
		p=$(grep -E '^# pass [0-9]+' "$f" | tail -1 | awk '{print $3}')
		fl=$(grep -E '^# fail [0-9]+' "$f" | tail -1 | awk '{print $3}')
	else
		p=$(grep -cE '^ok [0-9]+' "$f")
		fl=$(grep -cE '^not ok [0-9]+' "$f")
	fi
	echo "${p:-0} ${fl:-0}"
}

run_unit() { # build-dir layer-name
	local dir=$1 name=$2 p=0 f=0 t out rc cp cf
	for t in "$dir"/tests/test_*; do
		[ -x "$t" ] || continue
		out="$work/$name-$(basename "$t").tap"
		CMOCKA_MESSAGE_OUTPUT=TAP timeout 600 "$t" >"$out" 2>&1
		rc=$?
		read -r cp cf < <(tap_counts "$out")
		if [ "$rc" -ne 0 ] && [ "$cf" -eq 0 ]; then cf=1; fi
		if [ "$cf" -ne 0 ]; then
			{
				echo "--- $name: $(basename "$t") failed (exit $rc):"
				grep -E '^not ok|^#|ERROR|FAIL|Sanitizer|runtime error' "$out" | head -40
			} >&2
		fi
		p=$((p + cp))
		f=$((f + cf))
	done
	echo "$p $f"
}

run_node() { # layer files [env...]
	local name=$1 files=$2 out rc cp cf
	shift 2
	out="$work/$name.tap"
	# shellcheck disable=SC2086 # files is a list of paths without spaces
	env "$@" timeout 1200 node --test --test-concurrency=1 --test-reporter=tap $files >"$out" 2>&1
	rc=$?
	read -r cp cf < <(tap_counts "$out")
	if [ "$rc" -ne 0 ] && [ "$cf" -eq 0 ]; then cf=1; fi
	if [ "$cf" -ne 0 ]; then
		{
			echo "--- $name failures:"
			grep -B2 -A25 -E '^\s*not ok' "$out" | head -150
		} >&2
	fi
	echo "$cp $cf"
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
	read -r p f < <(run_unit build unit)
	record unit "$p" "$f" "$(since "$t0")"
fi

if has_layer api; then
	echo "== api"
	t0=$(now)
	read -r p f < <(run_node api "$api_files" EGOV_BIN="$root/build/egov")
	record api "$p" "$f" "$(since "$t0")"
fi

if has_layer crash; then
	echo "== crash"
	if [ "${EGOV_TEST_CRASH:-0}" = 1 ]; then
		t0=$(now)
		read -r p f < <(run_node crash tests/api/crash.test.mjs EGOV_BIN="$root/build/egov")
		record crash "$p" "$f" "$(since "$t0")"
	else
		echo "   skipped: set EGOV_TEST_CRASH=1 to run tests/api/crash.test.mjs"
		summary+=("$(printf '%-10s skipped (EGOV_TEST_CRASH=1 runs it)' crash)")
	fi
fi

if has_layer browser; then
	echo "== browser"
	t0=$(now)
	read -r p f < <(run_node browser "$(ls tests/browser/*.test.mjs)" EGOV_BIN="$root/build/egov")
	record browser "$p" "$f" "$(since "$t0")"
fi

if has_layer asan; then
	echo "== asan: building with AddressSanitizer + UndefinedBehaviorSanitizer"
	t0=$(now)
	if make -s -j"$jobs" BUILD=build/asan SAN=1 build unit >"$work/asan-build.log" 2>&1; then
		record asan-build 0 0 "$(since "$t0")"
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=23
		export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
		t0=$(now)
		read -r p f < <(run_unit build/asan asan-unit)
		record asan-unit "$p" "$f" "$(since "$t0")"
		t0=$(now)
		read -r p f < <(run_node asan-api "$api_files" EGOV_BIN="$root/build/asan/egov" EGOV_TEST_SANITIZER=1)
		record asan-api "$p" "$f" "$(since "$t0")"
		unset ASAN_OPTIONS UBSAN_OPTIONS
	else
		cat "$work/asan-build.log"
		record asan-build 0 1 "$(since "$t0")"
	fi
fi

if has_layer fuzz; then
	echo "== fuzz"
	t0=$(now)
	out="$work/fuzz.log"
	FUZZ_SECONDS=${FUZZ_SECONDS:-10} scripts/fuzz.sh >"$out" 2>&1
	rc=$?
	line=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
	p=$(echo "$line" | awk '{print $2}')
	f=$(echo "$line" | awk '{print $4}')
	p=${p:-0}
	f=${f:-0}
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
	[ "$f" -ne 0 ] && tail -40 "$out"
	record fuzz "$p" "$f" "$(since "$t0")"
fi

echo
echo "== summary"
for s in "${summary[@]}"; do echo "   $s"; done
printf '   %-10s %36s\n' "wall time" "$(since "$run_start") s"
echo "total: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
