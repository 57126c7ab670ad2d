#!/usr/bin/env bash
# Long fuzzing runs. The test command (internal/ci/test.sh) fuzzes every target for a
# few seconds; this script runs each chosen target for as long as you like.
#
#   internal/ci/fuzz.sh                          # every fuzz target, FUZZTIME each (default 5m)
#   FUZZTIME=30m internal/ci/fuzz.sh FuzzCompile FuzzCursor
#   internal/ci/fuzz.sh ./clone/records          # the targets of one package
#   internal/ci/fuzz.sh -l                       # list the targets
#
# Arguments are target names (FuzzX) or package paths (./dir/...): a target name runs
# that target wherever it is defined. Environment: FUZZTIME (per target, a Go duration
# or Nx for N executions), FUZZPARALLEL (workers; default GOMAXPROCS).
#
# A failing target does not stop the others. Go writes each failing input to
# <package>/testdata/fuzz/<Target>/; the script lists those files at the end and exits
# non-zero. Commit them: they are then seeds, and `go test` (and so the test command)
# replays them on every run. Fix the code, not the seed.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'fuzz.sh: %s\n' "$*" >&2; exit 1; }
command -v go >/dev/null || die "Go is required"

# targets prints "package target" for every fuzz target of the module.
targets() {
	local pkg dir
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed "s|^func |$pkg |" || true
	done
}

all=$(targets)
if [[ ${1:-} == -l ]]; then
	printf '%s\n' "$all"
	exit 0
fi

chosen=""
if [[ $# -eq 0 ]]; then
	chosen=$all
else
	for arg in "$@"; do
		case $arg in
		Fuzz*)
			match=$(printf '%s\n' "$all" | awk -v t="$arg" '$2 == t')
			[[ -n $match ]] || die "no fuzz target $arg (see internal/ci/fuzz.sh -l)"
			;;
		*)
			pkgs=$(go list "$arg") || die "no package $arg"
			match=$(printf '%s\n' "$all" | awk 'NR==FNR { want[$1]; next } $1 in want' <(printf '%s\n' "$pkgs") -)
			[[ -n $match ]] || die "no fuzz target in $arg"
			;;
		esac
		chosen+="$match"$'\n'
	done
fi

fuzztime=${FUZZTIME:-5m}
parallel=()
[[ -z ${FUZZPARALLEL:-} ]] || parallel=(-parallel "$FUZZPARALLEL")
before=$(git ls-files --others --exclude-standard -- '*/testdata/fuzz/*' 'testdata/fuzz/*' | sort)
failed=()
while read -r pkg target; do
	[[ -n $target ]] || continue
	say "fuzz $pkg $target for $fuzztime"
	# -timeout 0: go test's default 10-minute limit would end long runs as failures.
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -timeout 0 "${parallel[@]}" "$pkg"; then
		failed+=("$pkg $target")
	fi
done <<<"$chosen"

after=$(git ls-files --others --exclude-standard -- '*/testdata/fuzz/*' 'testdata/fuzz/*' | sort)
new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d')
if [[ ${#failed[@]} -gt 0 ]]; then
	printf 'fuzz.sh: failing targets:\n' >&2
	printf '  %s\n' "${failed[@]}" >&2
	if [[ -n $new ]]; then
		printf 'fuzz.sh: new failing inputs (commit them as seeds once the bug is fixed):\n' >&2
		printf '  %s\n' $new >&2
	fi
	exit 1
fi
say "all fuzz targets passed"
