#!/usr/bin/env bash
# cloneiso's test command (README, .ci/run): on a fresh Debian/Ubuntu machine with Go it
# installs and starts what the tests need, then runs the format and vet checks, every
# test with the race detector and the real services required, and each fuzz target for a
# short bounded time.
#
#   PostgreSQL  $CLONEISO_TEST_DATABASE_URL if set; else the server on 127.0.0.1:5432 if
#               one answers; else an ephemeral cluster made here with initdb/pg_ctl
#               (PostgreSQL installed from the distribution's packages if missing).
#   PgBouncer   $CLONEISO_TEST_PGBOUNCER_URL if set; else pgbouncer (installed from the
#               distribution's packages if missing) started here in transaction-pooling
#               mode on a free loopback port in front of the test PostgreSQL, with one
#               server connection per database and role.
#   MinIO       $CLONEISO_TEST_S3_ENDPOINT if set; else internal/ci/minio.sh builds the
#               pinned MinIO with `go install` (cached in the Go bin directory) and starts
#               it on a free loopback port.
#
# Environment: CLONEISO_TEST_EPHEMERAL_PG=1 (ignore a server on 5432, as on a fresh
# machine), FUZZTIME (default 3s per fuzz target; 0 skips fuzzing beyond the seeds),
# TESTFLAGS (extra flags for go test, e.g. -run or -v).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is required (https://go.dev/dl/)"

state=$(mktemp -d "${TMPDIR:-/tmp}/cloneiso-test.XXXXXX")
chmod 755 "$state"
pg_dir=""
pg_bin=""
as_pg=()
cleanup() {
	if [[ -x internal/ci/minio.sh ]]; then internal/ci/minio.sh stop "$state" || true; fi
	if [[ -f $state/pgbouncer/pgbouncer.pid ]]; then kill "$(cat "$state/pgbouncer/pgbouncer.pid")" 2>/dev/null || true; fi
	if [[ -n $pg_dir ]]; then "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
	rm -rf "$state"
}
trap cleanup EXIT

sudo_cmd() {
	if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi
}

apt_install() {
	command -v apt-get >/dev/null || die "cannot install $* (no apt-get); install it yourself"
	say "installing $* from the distribution's packages"
	sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# --- PostgreSQL -------------------------------------------------------------------------
if [[ -n ${CLONEISO_TEST_DATABASE_URL:-} ]]; then
	say "PostgreSQL: using CLONEISO_TEST_DATABASE_URL"
elif [[ ${CLONEISO_TEST_EPHEMERAL_PG:-} != 1 ]] && port_open 5432; then
	say "PostgreSQL: using the server on 127.0.0.1:5432"
else
	find_pg_bin() {
		if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
		ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
	}
	pg_bin=$(find_pg_bin)
	if [[ -z $pg_bin || ! -x $pg_bin/initdb ]]; then
		apt_install postgresql
		pg_bin=$(find_pg_bin)
	fi
	[[ -x $pg_bin/initdb ]] || die "initdb not found after installing PostgreSQL"
	pg_dir="$state/pg"
	mkdir -p "$pg_dir"
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run PostgreSQL as"
		chown postgres "$pg_dir"
		as_pg=(runuser -u postgres --)
	fi
	port=""
	for p in $(seq 55432 55532); do if ! port_open "$p"; then port=$p; break; fi; done
	[[ -n $port ]] || die "no free port for PostgreSQL"
	say "PostgreSQL: starting an ephemeral cluster on 127.0.0.1:$port"
	"${as_pg[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --no-sync >"$state/initdb.log" 2>&1 ||
		{ cat "$state/initdb.log" >&2; die "initdb failed"; }
	"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $port -k $pg_dir -c fsync=off -c max_connections=200" start >/dev/null ||
		{ cat "$pg_dir/log" >&2; die "PostgreSQL did not start"; }
	export CLONEISO_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
fi

# --- PgBouncer --------------------------------------------------------------------------
# Transaction pooling with default_pool_size=1: consecutive clients of a database and
# role share one server connection, so the tests can show that nothing of a scoped
# operation survives into the next client's transaction (internal/pgtest.Bouncer).
if [[ -n ${CLONEISO_TEST_PGBOUNCER_URL:-} ]]; then
	say "PgBouncer: using CLONEISO_TEST_PGBOUNCER_URL"
else
	find_pgbouncer() { command -v pgbouncer || { [[ -x /usr/sbin/pgbouncer ]] && echo /usr/sbin/pgbouncer; } || true; }
	pgbouncer_bin=$(find_pgbouncer)
	if [[ -z $pgbouncer_bin ]]; then
		apt_install pgbouncer
		pgbouncer_bin=$(find_pgbouncer)
	fi
	[[ -n $pgbouncer_bin ]] || die "pgbouncer not found after installing it"
	pg_target=${CLONEISO_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
	pg_target=${pg_target#*://}
	pg_target=${pg_target#*@}
	pg_target=${pg_target%%/*}
	pg_target=${pg_target%%\?*}
	pgb_port=""
	for p in $(seq 56432 56532); do if ! port_open "$p"; then pgb_port=$p; break; fi; done
	[[ -n $pgb_port ]] || die "no free port for PgBouncer"
	pgb_dir="$state/pgbouncer"
	mkdir -p "$pgb_dir"
	printf '"postgres" ""\n"cloneiso_app_test" "cloneiso_app_test"\n' >"$pgb_dir/userlist.txt"
	cat >"$pgb_dir/pgbouncer.ini" <<-EOF
		[databases]
		* = host=${pg_target%:*} port=${pg_target##*:}
		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $pgb_port
		unix_socket_dir =
		auth_type = trust
		auth_file = $pgb_dir/userlist.txt
		logfile = $pgb_dir/pgbouncer.log
		pidfile = $pgb_dir/pgbouncer.pid
		pool_mode = transaction
		default_pool_size = 1
		max_client_conn = 1000
		server_reset_query =
		ignore_startup_parameters = extra_float_digits
	EOF
	as_pgb=()
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user to run PgBouncer as"
		chown -R postgres "$pgb_dir"
		as_pgb=(runuser -u postgres --)
	fi
	say "PgBouncer: starting transaction pooling on 127.0.0.1:$pgb_port in front of $pg_target"
	"${as_pgb[@]}" "$pgbouncer_bin" -d "$pgb_dir/pgbouncer.ini" >"$state/pgbouncer.out" 2>&1 ||
		{ cat "$state/pgbouncer.out" "$pgb_dir/pgbouncer.log" >&2 2>/dev/null; die "PgBouncer did not start"; }
	for _ in $(seq 1 150); do port_open "$pgb_port" && break; sleep 0.2; done
	port_open "$pgb_port" || { cat "$pgb_dir/pgbouncer.log" >&2; die "PgBouncer does not listen on $pgb_port"; }
	export CLONEISO_TEST_PGBOUNCER_URL="postgres://postgres@127.0.0.1:$pgb_port/postgres?sslmode=disable"
fi

# --- MinIO ------------------------------------------------------------------------------
if [[ -x internal/ci/minio.sh ]]; then
	command -v curl >/dev/null || apt_install curl
	internal/ci/minio.sh start "$state"
	if [[ -f $state/minio.env ]]; then
		# shellcheck disable=SC1091
		source "$state/minio.env"
	fi
	[[ -n ${CLONEISO_TEST_S3_ENDPOINT:-} ]] || die "MinIO did not start and CLONEISO_TEST_S3_ENDPOINT is not set"
fi

# pdftotext (poppler-utils): the baseline of ingest/extract's PDF benchmark.
command -v pdftotext >/dev/null || apt_install poppler-utils

export CLONEISO_REQUIRE_SERVICES=1
# PDFium's WebAssembly module is compiled once for the whole run, not once per test
# binary (minutes under the race detector); the directory is private to this run.
export CLONEISO_PDFIUM_CACHE_DIR="$state/pdfium-cache"
mkdir -m 700 -p "$CLONEISO_PDFIUM_CACHE_DIR"
# The adversarial suite's mutation tests: one build per switched-off isolation mechanism.
export CLONEISO_MUTATION_TESTS=${CLONEISO_MUTATION_TESTS:-1}

# --- Checks and tests -------------------------------------------------------------------
say "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
[[ -z $unformatted ]] || die "gofmt would change: $unformatted"
say "go mod tidy -diff"
go mod tidy -diff || die "go.mod/go.sum are not tidy: run go mod tidy"
say "go vet"
go vet ./...
say "staticcheck"
# Pinned; go run builds it once into the build cache (outside this module's go.mod).
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
for mod in $(git ls-files '*/go.mod' 2>/dev/null || find . -mindepth 2 -name go.mod); do
	dir=$(dirname "$mod")
	say "nested module $dir: build and vet"
	(cd "$dir" && go build ./... && go vet ./...) || die "nested module $dir does not build or vet"
done
say "go test -race"
# shellcheck disable=SC2086
go test -race -count=1 -timeout 30m ${TESTFLAGS:-} $(go list ./... | grep -v '/internal/adversarial$') | tee "$state/test.log"
say "adversarial suite (attack matrix, mechanisms, mutation tests)"
# shellcheck disable=SC2086
go test -race -count=1 -timeout 30m -v ${TESTFLAGS:-} ./internal/adversarial >"$state/adversarial.log" 2>&1 ||
	{ grep -Ev '^(=== |\s+--- PASS)' "$state/adversarial.log" >&2; die "adversarial suite failed"; }

fuzztime=${FUZZTIME:-3s}
if [[ $fuzztime != 0 ]]; then
	total=0
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
			say "fuzz $pkg $target for $fuzztime"
			# Go's fuzzing coordinator sometimes ends a time-bounded run with a bare
			# "context deadline exceeded" and no failing input (a race in its own
			# shutdown, golang/go#75804, fixed in Go 1.27); that is the engine stopping,
			# not a finding, so such a run is repeated, up to three runs in all. A real
			# finding always names the input it wrote ("Failing input written to ...").
			for attempt in 1 2 3; do
				if out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" 2>&1); then break; fi
				if [[ $attempt -lt 3 ]] && grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
					say "fuzz $target: the engine stopped with 'context deadline exceeded' and no failing input; running it again"
					continue
				fi
				printf '%s\n' "$out" >&2
				die "fuzz target $target failed"
			done
			execs=$(printf '%s\n' "$out" | grep -o 'execs: [0-9]*' | tail -n 1 | grep -o '[0-9]*' || echo 0)
			total=$((total + ${execs:-0}))
		done
	done
fi
say "summary"
grep -o 'adversarial: .*' "$state/adversarial.log" || die "no adversarial summary"
if [[ $CLONEISO_MUTATION_TESTS == 1 ]]; then
	# One row per mutant (an isolation mechanism switched off): caught means the test
	# named for it failed in `go test -json`, not a build error or another test.
	printf '| %-58s | %-70s | %-6s |\n' "mutant" "expected test" "caught"
	grep -o 'sensitivity: |.*' "$state/adversarial.log" | sed 's/^sensitivity: //' || die "no mutation table"
	grep -o 'sensitivity: [0-9].*' "$state/adversarial.log" || die "no mutation summary"
fi
go test -count=1 -v -run '^TestLoad$' ./internal/loadtest 2>&1 | grep -o 'LOAD SUMMARY.*' || die "no load summary"
[[ $fuzztime == 0 ]] || say "fuzzing: $total executions beyond the seed corpora"
say "all tests passed"
