#!/usr/bin/env bash
# The lint layer for banned libc functions. The compiler is the first net:
# src/core/banned.h turns a call to any of them into a compile error that
# names the replacement:
#   strcpy/strcat/sprintf/vsprintf -> buf_* or snprintf with a checked result
#   strncpy/strncat                -> snprintf or memcpy with explicit lengths
#   strtok                         -> strtok_r or a cursor parser
#   atoi/atol/atoll                -> strtoll with range checks (atoi is silent on junk)
#   gets                           -> fgets
#   gmtime/localtime/ctime/asctime -> the _r variants (the plain ones are not thread-safe)
# This script checks that the net is in place and works, and greps as a
# second net. It fails if:
#   1. a C file of src/, tests/unit or tests/fuzz does not include
#      "core/banned.h" as its last #include (after every system header:
#      before them it would rewrite glibc's own declarations), or a header
#      includes it;
#   2. a call to a banned function compiles after banned.h, or the file
#      without the call does not compile (the proof that the header works);
#   3. the grep finds a call in a source or header file.
set -u
cd "$(dirname "$0")/.."
banned='strcpy strcat strncpy strncat sprintf vsprintf strtok atoi atol atoll gets gmtime localtime ctime asctime'
fail=0

# 1. banned.h is every C file's last include, and no header's.
missing=""
for f in $(find src tests/unit tests/fuzz -name '*.c' | sort); do
	last=$(grep -E '^[[:space:]]*#[[:space:]]*include' "$f" | tail -n 1 | tr -d '[:space:]')
	[ "$last" = '#include"core/banned.h"' ] || missing="$missing  $f\n"
done
if [ -n "$missing" ]; then
	echo "banned.h is not the last #include of:"
	printf '%b' "$missing"
	fail=1
fi
in_headers=$(grep -lE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"core/banned\.h"' \
	$(find src tests/unit tests/fuzz -name '*.h' ! -path src/core/banned.h) 2>/dev/null || true)
if [ -n "$in_headers" ]; then
	echo "banned.h is included by a header (it must come after every system header of a .c file):"
	echo "$in_headers"
	fail=1
fi

# 2. Proof that the header works: with it, a call to each banned function
# fails to compile with the message naming the replacement; without the
# call the same file compiles. The system headers come first, as in the
# sources.
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prelude='#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/banned.h"
'
printf '%s\nint banned_probe(void);\nint banned_probe(void) { return 0; }\n' "$prelude" >"$tmp/clean.c"
if ! "$cc" -std=c11 -D_GNU_SOURCE -Wall -Werror -Isrc -fsyntax-only "$tmp/clean.c" 2>"$tmp/clean.err"; then
	echo "banned.h: a file that calls nothing banned does not compile:"
	cat "$tmp/clean.err"
	fail=1
fi
for fn in $banned; do
	printf '%s\nvoid banned_probe(void);\nvoid banned_probe(void) { (void)%s(0); }\n' "$prelude" "$fn" >"$tmp/$fn.c"
	if "$cc" -std=c11 -D_GNU_SOURCE -Isrc -fsyntax-only "$tmp/$fn.c" 2>"$tmp/$fn.err"; then
		echo "banned.h: a call to $fn() after banned.h compiles"
		fail=1
	elif ! grep -q "sorry_${fn}_is_banned_use_" "$tmp/$fn.err"; then
		echo "banned.h: a call to $fn() fails to compile, but not with banned.h's message:"
		cat "$tmp/$fn.err"
		fail=1
	fi
done

# 3. The grep, as a second net (comments excepted).
pattern="\\b($(echo "$banned" | tr ' ' '|'))[[:space:]]*\\("
hits=$(grep -rnE "$pattern" src tests/unit tests/fuzz --include='*.c' --include='*.h' |
	grep -v '^src/core/banned\.h:' | grep -vE '^\S+:[0-9]+:\s*(\*|//)' || true)
if [ -n "$hits" ]; then
	echo "banned functions used:"
	echo "$hits"
	fail=1
fi
exit $fail
