#!/usr/bin/env bash
# Throwaway PostgreSQL 15 clusters for tests and benchmarks.
#
#   pg-test-cluster.sh start DIR          create a cluster in DIR, start it, create
#                                         database egov_test, print its URL
#   pg-test-cluster.sh createdb DIR NAME  create another database, print its URL
#   pg-test-cluster.sh stop DIR           stop the cluster and remove DIR
#
# The server listens on 127.0.0.1 only, on a free port below 32768 (the
# ephemeral range starts there, so a client socket cannot take it between the
# check and the bind); its unix socket lives inside DIR. fsync and
# synchronous_commit keep their defaults so tests see real durability.
# Authentication is trust: the cluster is for tests, on loopback only.
#
# Invariants: stdout carries exactly one line, the URL, on success; every
# diagnostic goes to stderr. DIR is only ever removed if it holds the marker
# file this script writes, so `stop` cannot delete a directory it did not
# create. When run as root the server runs as the `postgres` OS user.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
MARKER=.egov-pg-test-cluster
DBNAME=egov_test

die() {
	echo "pg-test-cluster: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start DIR | stop DIR | createdb DIR NAME" >&2
	exit 2
}

# Runs a command as the user that owns the cluster.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

port_in_use() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Htln "sport = :$port" 2>/dev/null)" ]
	else
		# Something answering a connect is a port in use.
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
	fi
}

pick_port() {
	local i port
	for i in $(seq 1 200); do
		port=$((20000 + RANDOM % 12000))
		[ "$port" -eq 8080 ] && continue
		if ! port_in_use "$port"; then
			echo "$port"
			return 0
		fi
	done
	return 1
}

# The postgres user must be able to reach DIR: give search (not read)
# permission on parents that lack it, as mktemp -d makes 0700 directories.
open_parents() {
	local d
	d=$(dirname "$1")
	while [ "$d" != "/" ] && [ -n "$d" ]; do
		if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
			chmod o+x "$d" || die "cannot give postgres access to $d"
		fi
		d=$(dirname "$d")
	done
}

url_for() {
	echo "postgres://postgres@127.0.0.1:$1/$2"
}

cmd_start() {
	local dir=$1 port attempt
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 not found in $PGBIN (apt-get install postgresql-15)"
	if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		die "$dir exists and is not empty"
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	# A unix socket path is limited to 107 bytes.
	if [ ${#dir} -gt 80 ]; then
		die "$dir is too long for a unix socket path; use a shorter directory"
	fi
	touch "$dir/$MARKER"
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "no postgres OS user (is postgresql-15 installed?)"
		open_parents "$dir"
		chown -R postgres: "$dir"
	fi
	chmod 700 "$dir"

	as_owner "$PGBIN/initdb" -D "$dir/data" --auth=trust -U postgres -E UTF8 \
		--locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; die "initdb failed"; }

	for attempt in 1 2 3 4 5; do
		port=$(pick_port) || die "no free port found"
		if as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir" \
			start >/dev/null 2>&1; then
			echo "$port" >"$dir/port"
			break
		fi
		# The port may have been taken after the check; try another.
		echo "pg-test-cluster: start on port $port failed, retrying" >&2
		port=""
	done
	[ -n "$port" ] || { tail -n 20 "$dir/server.log" >&2 2>/dev/null; die "could not start the server"; }

	# pg_ctl -w already waited for readiness; check TCP as clients will use it.
	for attempt in $(seq 1 100); do
		if "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; then
			break
		fi
		sleep 0.1
	done
	"$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DBNAME" >&2 ||
		die "createdb $DBNAME failed"
	url_for "$port" "$DBNAME"
}

cmd_createdb() {
	local dir=$1 name=$2 port
	[[ "$name" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "bad database name: $name"
	[ -f "$dir/port" ] || die "no cluster in $dir"
	port=$(cat "$dir/port")
	"$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$name" >&2 ||
		die "createdb $name failed"
	url_for "$port" "$name"
}

cmd_stop() {
	local dir=$1
	[ -e "$dir" ] || return 0
	[ -f "$dir/$MARKER" ] || die "$dir was not made by this script; not touching it"
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
			echo "pg-test-cluster: pg_ctl stop failed (server already gone?)" >&2
	fi
	rm -rf "$dir"
}

[ $# -ge 2 ] || usage
case "$1" in
start) [ $# -eq 2 ] || usage; cmd_start "$2" ;;
stop) [ $# -eq 2 ] || usage; cmd_stop "$2" ;;
createdb) [ $# -eq 3 ] || usage; cmd_createdb "$2" "$3" ;;
*) usage ;;
esac
