#!/usr/bin/env bash
# Installs what egov needs on Debian 12, only what is missing (idempotent).
#   install-deps.sh build   compiler and libraries for `make run`
#   install-deps.sh test    + PostgreSQL 15, clang/libFuzzer, cmocka, Chromium,
#                             CJK fonts, the JSON Schema Test Suite, Node.js and
#                             the npm packages in package.json
#   install-deps.sh bench   + nginx, wrk and glewlwyd (measured beside egov's
#                             trust layer, bench/glewlwyd_bench.sh)
# Runs apt-get as root (or through sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-build}

build_pkgs="build-essential pkg-config libmicrohttpd-dev libcjson-dev libsqlite3-dev libpq-dev
	libssl-dev libsodium-dev libqrencode-dev libgnutls28-dev libcurl4-openssl-dev libpcre2-dev libyaml-dev ca-certificates curl"
# The official JSON Schema Test Suite (tests/unit/test_jsonschema.c runs it)
# comes with Debian's libtest-json-schema-acceptance-perl, which ships the
# suite's files; the npm package of the suite fetches them from GitHub at
# install time, which an offline machine or CI cannot. PyYAML (python3-yaml)
# reads back the YAML that getOpenAPI writes (tests/api/exchange_im.test.mjs).
test_pkgs="postgresql-15 clang libclang-rt-14-dev libcmocka-dev chromium fonts-noto-cjk sqlite3 openssl
	nodejs npm procps iproute2 libtest-json-schema-acceptance-perl python3-yaml"
bench_pkgs="nginx-light wrk libjansson-dev glewlwyd"

case "$what" in
build) pkgs="$build_pkgs" ;;
test) pkgs="$build_pkgs $test_pkgs" ;;
bench) pkgs="$build_pkgs $test_pkgs $bench_pkgs" ;;
*) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in $pkgs; do
	# Node.js may come from elsewhere than Debian (a newer one); keep it.
	if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
	if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
	if [ "$p" = nginx-light ] && command -v nginx >/dev/null; then continue; fi
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# glewlwyd is only measured beside egov (bench/glewlwyd_bench.sh skips,
	# saying why, when it is absent): a failure to install it must not stop
	# the benchmarks, so it goes on its own after the rest.
	rest=()
	for p in "${missing[@]}"; do [ "$p" = glewlwyd ] || rest+=("$p"); done
	[ ${#rest[@]} -eq 0 ] || $sudo apt-get install -y -qq --no-install-recommends "${rest[@]}" >/dev/null
	# The Debian package creates and may start its own cluster; tests use a
	# throwaway one of their own, so the packaged one is not needed running.
	if [ ${#rest[@]} -ne ${#missing[@]} ]; then
		$sudo apt-get install -y -qq --no-install-recommends glewlwyd >/dev/null ||
			echo "install-deps: glewlwyd did not install; the trust benchmark will skip it" >&2
	fi
fi

if [ "$what" != build ]; then
	# playwright-core (browser tests) needs Node.js 20 or newer; Debian 12's
	# own nodejs package is 18. Say so plainly rather than fail obscurely.
	node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
	if [ "$node_major" -lt 20 ]; then
		echo "install-deps: Node.js $(node --version 2>/dev/null || echo missing) found; the browser tests need Node.js >= 20" >&2
	fi
	if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/axe-core ] || [ ! -d node_modules/ajv ] \
		|| [ package.json -nt node_modules/.package-lock.json ]; then
		echo "install-deps: npm install"
		npm install --no-audit --no-fund --silent
	fi
fi
