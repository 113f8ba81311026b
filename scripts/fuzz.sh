#!/usr/bin/env bash
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c) for FUZZ_SECONDS each
# (default 15), starting from a temporary copy of tests/fuzz/seeds/<target>/
# so the checked-in seeds never change. Fails if any target crashes, leaks,
# times out or trips a sanitizer; the input that did it is kept in
# build/fuzz/artifacts/<target>/.
#
# Usage: scripts/fuzz.sh [target ...]      e.g. scripts/fuzz.sh fuzz_json
# Env:   FUZZ_SECONDS   seconds per target (default 15)
#        FUZZ_NO_BUILD=1 skip `make fuzz-build` (use binaries already built)
#        FUZZ_BIN_DIR   where the binaries are (default build/fuzz)
# Prints one line per target and a last line "fuzz: N passed, M failed".
set -u
cd "$(dirname "$0")/.."

# UBSan only reports and carries on unless told to stop; a report is a failure.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
seconds=${FUZZ_SECONDS:-15}
bindir=${FUZZ_BIN_DIR:-build/fuzz}

if [ "$#" -gt 0 ]; then
	targets=("$@")
else
	targets=()
	for src in tests/fuzz/fuzz_*.c; do
		[ -e "$src" ] || continue
		t=${src##*/}
		targets+=("${t%.c}")
	done
fi
if [ "${#targets[@]}" -eq 0 ]; then
	echo "fuzz: no targets in tests/fuzz"
	exit 1
fi

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
	bins=()
	for t in "${targets[@]}"; do bins+=("build/fuzz/$t"); done
	if ! make --no-print-directory "${bins[@]}" >/dev/null; then
		echo "fuzz: build failed (make ${bins[*]})"
		exit 1
	fi
fi

work=$(mktemp -d /tmp/egov-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
for t in "${targets[@]}"; do
	bin="$bindir/$t"
	if [ ! -x "$bin" ]; then
		echo "$t: FAILED (no binary $bin)"
		failed=$((failed + 1))
		continue
	fi
	corpus="$work/$t"
	arts="build/fuzz/artifacts/$t"
	mkdir -p "$corpus" "$arts"
	if [ -d "tests/fuzz/seeds/$t" ]; then
		cp -r "tests/fuzz/seeds/$t/." "$corpus/"
	fi
	log="$work/$t.log"
	"$bin" -max_total_time="$seconds" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$arts/" "$corpus" >"$log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
		cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
		echo "$t: ok (${runs:-?} runs in ${seconds}s, coverage ${cov:-?}, corpus $(ls "$corpus" | wc -l))"
		passed=$((passed + 1))
	else
		cp "$log" "$arts/last.log"
		what=$(grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|runtime error' "$log")
		echo "$t: FAILED (${what:-exit $rc}; input and log in $arts/)"
		failed=$((failed + 1))
	fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
