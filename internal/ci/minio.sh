#!/usr/bin/env bash
# Starts and stops a throwaway MinIO server for cloneiso's S3 tests.
#
#   internal/ci/minio.sh start <statedir>
#       If CLONEISO_TEST_S3_ENDPOINT is already set, does nothing. Otherwise installs the
#       pinned MinIO with `go install` (cached in $(go env GOPATH)/bin) if it is missing or
#       a different version, starts it on a free 127.0.0.1 port with a fresh data
#       directory under <statedir> and random root credentials, waits for its health
#       endpoint, and writes <statedir>/minio.env (export lines for
#       CLONEISO_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _REGION) and
#       <statedir>/minio.pid. Fails loudly if MinIO does not come up.
#   internal/ci/minio.sh stop <statedir>
#       Kills the server recorded in <statedir>/minio.pid and removes its data, env and
#       pid files. Does nothing if no server was started there.
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
START_TIMEOUT=${MINIO_START_TIMEOUT:-60}

die() { echo "minio.sh: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop <statedir>"; }

[[ $# -eq 2 ]] || usage
cmd=$1
statedir=$2

gobin() {
	local b
	b=$(go env GOBIN)
	[[ -n $b ]] || b="$(go env GOPATH | cut -d: -f1)/bin"
	echo "$b"
}

ensure_minio() {
	local bin="$(gobin)/minio"
	if [[ -x $bin ]] && go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$MINIO_MODULE[[:space:]]+$MINIO_VERSION([[:space:]]|$)"; then
		echo "$bin"
		return
	fi
	echo "minio.sh: installing $MINIO_MODULE@$MINIO_VERSION (takes a few minutes)" >&2
	# go install refuses to overwrite a file that is not a Go binary.
	rm -f -- "$bin"
	# Outside any module, so the project's go.mod is neither read nor changed.
	(cd / && GOFLAGS= GO111MODULE=on go install "$MINIO_MODULE@$MINIO_VERSION") >&2 ||
		die "go install $MINIO_MODULE@$MINIO_VERSION failed"
	[[ -x $bin ]] || die "MinIO binary not found at $bin after go install"
	echo "$bin"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! port_in_use "$p"; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

random_string() { # length
	LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1" || true
}

start() {
	command -v curl >/dev/null || die "curl is required to wait for MinIO's health endpoint"
	command -v go >/dev/null || die "go is required to install MinIO"
	if [[ -n ${CLONEISO_TEST_S3_ENDPOINT:-} ]]; then
		echo "minio.sh: CLONEISO_TEST_S3_ENDPOINT is set ($CLONEISO_TEST_S3_ENDPOINT); not starting MinIO" >&2
		return
	fi
	mkdir -p "$statedir"
	statedir=$(cd "$statedir" && pwd)
	if [[ -f $statedir/minio.pid ]] && kill -0 "$(cat "$statedir/minio.pid")" 2>/dev/null; then
		die "a MinIO started from $statedir is still running (pid $(cat "$statedir/minio.pid")); stop it first"
	fi
	local bin access secret data port console pid attempt deadline
	bin=$(ensure_minio)
	access="ci$(random_string 18)"
	secret=$(random_string 40)
	data=$(mktemp -d "$statedir/minio-data.XXXXXX")
	for attempt in 1 2 3 4 5; do
		port=$(free_port)
		console=$(free_port)
		[[ $port != "$console" ]] || continue
		MINIO_ROOT_USER=$access MINIO_ROOT_PASSWORD=$secret MINIO_BROWSER=off \
			MINIO_UPDATE=off MINIO_CI_CD=1 \
			setsid "$bin" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console" "$data" \
			>"$statedir/minio.log" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$statedir/minio.pid"
		deadline=$((SECONDS + START_TIMEOUT))
		while ((SECONDS < deadline)); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break # exited, e.g. the port was taken meanwhile; retry
			fi
			# live answers 200 before the object layer is up (it then only adds
			# "x-minio-server-status: offline"; S3 calls fail "Server not initialized yet").
			if hdr=$(curl -fs -D - -o /dev/null --max-time 2 "http://127.0.0.1:$port/minio/health/live") &&
				! grep -qi '^x-minio-server-status: *offline' <<<"$hdr"; then
				cat >"$statedir/minio.env" <<ENV
export CLONEISO_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export CLONEISO_TEST_S3_ACCESS_KEY=$access
export CLONEISO_TEST_S3_SECRET_KEY=$secret
export CLONEISO_TEST_S3_REGION=us-east-1
ENV
				echo "$data" >"$statedir/minio.datadir"
				echo "minio.sh: MinIO (pid $pid) listening on http://127.0.0.1:$port; source $statedir/minio.env" >&2
				return
			fi
			sleep 0.3
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			echo "--- minio.log ---" >&2
			cat "$statedir/minio.log" >&2 || true
			rm -f "$statedir/minio.pid"
			die "MinIO did not answer its health endpoint within ${START_TIMEOUT}s"
		fi
		echo "minio.sh: MinIO exited during start (attempt $attempt); retrying on another port" >&2
	done
	echo "--- minio.log ---" >&2
	cat "$statedir/minio.log" >&2 || true
	rm -f "$statedir/minio.pid"
	die "MinIO failed to start"
}

stop() {
	[[ -d $statedir ]] || return 0
	local pid i
	if [[ -f $statedir/minio.pid ]]; then
		pid=$(cat "$statedir/minio.pid")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			for i in $(seq 1 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
		fi
		rm -f "$statedir/minio.pid"
	fi
	if [[ -f $statedir/minio.datadir ]]; then
		rm -rf -- "$(cat "$statedir/minio.datadir")"
		rm -f "$statedir/minio.datadir"
	fi
	rm -f "$statedir/minio.env" "$statedir/minio.log"
}

case $cmd in
start) start ;;
stop) stop ;;
*) usage ;;
esac
