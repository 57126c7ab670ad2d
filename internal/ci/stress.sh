#!/usr/bin/env bash
# Runs the README's test command (internal/ci/test.sh) N times in a row (default 5) while
# CPU-bound processes keep every core busy, and stops at the first failure: a test that
# depends on timing fails here long before it fails in CI.
#
#   internal/ci/stress.sh [N]
#
# One `yes > /dev/null` per core (nproc) runs for the whole loop and is killed on exit.
# Environment: as test.sh (FUZZTIME, TESTFLAGS, CLONEISO_MUTATION_TESTS, ...); each run's
# output goes to a log file named at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${1:-5}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "stress.sh: N must be a positive integer, not '$runs'" >&2; exit 2; }

logdir=$(mktemp -d "${TMPDIR:-/tmp}/cloneiso-stress.XXXXXX")
burners=()
stop_burners() {
	for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null || true; done
	burners=()
}
trap stop_burners EXIT
trap 'exit 130' INT TERM

cores=$(nproc 2>/dev/null || echo 2)
for _ in $(seq "$cores"); do
	yes >/dev/null &
	burners+=($!)
done
echo "==> stress: $runs runs of internal/ci/test.sh with $cores CPU-bound processes; logs in $logdir" >&2

for i in $(seq "$runs"); do
	log="$logdir/run-$i.log"
	start=$SECONDS
	if ! internal/ci/test.sh >"$log" 2>&1; then
		echo "==> stress: run $i of $runs FAILED after $((SECONDS - start)) s; its output:" >&2
		grep -E -- '--- FAIL|^FAIL|panic:|test.sh: ' "$log" >&2 || tail -n 50 "$log" >&2
		echo "==> stress: full log: $log" >&2
		exit 1
	fi
	echo "==> stress: run $i of $runs passed in $((SECONDS - start)) s" >&2
done
echo "==> stress: all $runs runs passed under load; logs in $logdir" >&2
