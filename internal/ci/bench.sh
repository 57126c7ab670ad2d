#!/usr/bin/env bash
# Regenerates BENCHMARKS.md: runs every benchmark of the SDK together with its baseline
# (the raw client, the bare driver or a peer library, measured in the same run) and
# writes the results, the ratios, the machine and this command.
#
#   internal/ci/bench.sh               # bounded run (about 10-15 minutes on 2 cores)
#   BENCH_FULL=1 internal/ci/bench.sh  # the long versions (100k-vector indexes, 1M-row backfill)
#
# PostgreSQL: $CLONEISO_TEST_DATABASE_URL, else the server on 127.0.0.1:5432, else an
# ephemeral cluster that the benchmarks start from the system's initdb (run
# internal/ci/test.sh once on a fresh machine: it installs PostgreSQL if needed).
# MinIO: $CLONEISO_TEST_S3_ENDPOINT, else internal/ci/minio.sh starts one.
# Services are required (CLONEISO_REQUIRE_SERVICES=1): a missing one fails the run.
# OUT (default BENCHMARKS.md) is where the report goes.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
out=${OUT:-BENCHMARKS.md}
full=${BENCH_FULL:-0}

say() { printf '==> %s\n' "$*" >&2; }

state=$(mktemp -d "${TMPDIR:-/tmp}/cloneiso-bench.XXXXXX")
cleanup() {
	internal/ci/minio.sh stop "$state" || true
	rm -rf "$state"
}
trap cleanup EXIT

internal/ci/minio.sh start "$state" >&2
if [[ -f $state/minio.env ]]; then
	# shellcheck disable=SC1091
	source "$state/minio.env"
fi
export CLONEISO_REQUIRE_SERVICES=1

if [[ $full == 1 ]]; then
	vsizes="10000x384,10000x1536,100000x384,100000x1536"
	rows=1000000 naive=20000 scale=3
else
	vsizes="10000x384,10000x1536"
	rows=200000 naive=5000 scale=1
fi

results="$state/results.md"
summary="$state/summary.md"
started=$(date -u +%s)

# section TITLE BASELINE PAIRS DIR PKG BENCH BENCHTIME [ENV...]
#   Runs one benchmark and appends its section. PAIRS is a space-separated list of
#   "numerator:denominator" name suffixes whose ns/op ratio is computed (e.g.
#   "/scoped:/raw"); "-" for none (the benchmark reports its own ratios).
section() {
	local title=$1 baseline=$2 pairs=$3 dir=$4 pkg=$5 bench=$6 benchtime=$7
	shift 7
	local cmd="go test -run '^\$' -bench '$bench' -benchtime $benchtime -timeout 60m $pkg"
	if [[ $# -gt 0 ]]; then cmd="$* $cmd"; fi
	if [[ $dir != . ]]; then cmd="(cd $dir && $cmd)"; fi
	say "$title: $cmd"
	local raw="$state/raw.txt" t0=$SECONDS
	if ! (cd "$dir" && env "$@" go test -run '^$' -bench "$bench" -benchtime "$benchtime" -timeout 60m "$pkg") >"$raw" 2>&1; then
		cat "$raw" >&2
		echo "bench.sh: $title failed" >&2
		exit 1
	fi
	{
		printf '## %s\n\nBaseline: %s\n\n```\n%s\n```\n\n' "$title" "$baseline" "$cmd"
		printf '```\n'
		grep -E '^Benchmark' "$raw" | sed -E 's/-[0-9]+([[:space:]])/\1/'
		printf '```\n\n'
		if [[ $pairs != - ]]; then
			printf '| benchmark | time vs baseline | ns/op | baseline ns/op |\n|---|---|---|---|\n'
			grep -E '^Benchmark' "$raw" | sed -E 's/-[0-9]+([[:space:]])/\1/' | awk -v pairs="$pairs" '
				{ for (i = 3; i < NF; i++) if ($(i+1) == "ns/op") ns[$1] = $i; order[n++] = $1 }
				END {
					np = split(pairs, p, " ")
					for (k = 0; k < n; k++) {
						name = order[k]
						for (j = 1; j <= np; j++) {
							split(p[j], ab, ":")
							la = length(ab[1])
							if (substr(name, length(name) - la + 1) != ab[1]) continue
							base = substr(name, 1, length(name) - la) ab[2]
							if (!(base in ns) || ns[base] == 0) continue
							printf "| `%s` vs `%s` | %.2fx | %s | %s |\n", name, ab[2], ns[name] / ns[base], ns[name], ns[base]
						}
					}
				}' | tee -a "$summary"
			printf '\n'
		fi
		# Ratios the benchmarks report themselves (measured interleaved).
		grep -E '^Benchmark' "$raw" | sed -E 's/-[0-9]+([[:space:]])/\1/' | awk '
			{ for (i = 3; i < NF; i++) if ($(i+1) ~ /^(ratio|cpu-ratio|x-verify|scoped\/raw|chromem\/scoped|scoped\/bare|scoped\/floor|crowded\/alone|x-faster|durable\/memory|durable\/memory-throughput|durable-shm\/memory-throughput|durable\/fsync-per-vector-throughput|open\/read|open\/read-cpu|snapshot-rss\/index)$/)
				printf "| `%s` | %s = %s |  |  |\n", $1, $(i+1), $i }' >>"$summary"
		printf '(%d s)\n\n' $((SECONDS - t0))
	} >>"$results"
}

section "SQL: scoped wrapper vs raw sqlx (interleaved; ratio = scoped/raw)" \
	"the identical raw sqlx statement on the same database (PostgreSQL: raw as the owner without RLS and with binary_parameters, scoped as the application role with RLS; get-vs-stock-lib-pq: raw through a stock lib/pq DSN)" \
	- ./clone/clonesql . 'ScopedRatio' "$((scale * 2000))x"
section "SQL: one round trip on pgx — scoped vs raw on the same driver, loopback and 1 ms one way (interleaved; ratio = scoped/raw)" \
	"the identical raw sqlx statement on the same driver and network path (raw as the owner with an explicit WHERE, scoped as the application role with RLS); pgx through clonesql.OpenPgx (default statement cache), libpq through clonesql.OpenPostgres (binary_parameters); 1ms: internal/pgproxy delays every client-to-server chunk by 1 ms" \
	- ./clone/clonesql . 'DriverRatio' "$((scale * 1000))x"
section "SQL: row-level security policy vs explicit WHERE (1,000,000 rows, 100 clones; interleaved; ratio = RLS/WHERE)" \
	"the same statement with an explicit WHERE run by a role RLS does not apply to, in the same transaction shape" \
	- ./clone/clonesql . 'RLSRatio' "$((scale * 300))x"
section "SQL: loading chunks by key from a clone of 10,000 chunks" \
	"keys=1 (a key must cost about the same however many are asked for)" \
	"keys=5:keys=1" ./clone/records . 'GetChunks' "$((scale * 3000))x"
section "HTTP middleware vs bare JWT verification" \
	"jwtauth verification alone; the ratio sub-benchmarks interleave both (x-verify = middleware/verify)" \
	"/middleware:/verify" ./clone/clonehttp . 'Middleware' "${scale}s"
section "Vectors: embedded index vs chromem-go and the memory-read floor" \
	"chromem-go (peer), the bare driver without the scoped wrapper, and a plain streaming pass over the same float32 data (floor)" \
	"/memvector:/chromem /memvector:/memvector-bare /memvector:/floor" ./vectorstore/internal/bench . '^BenchmarkQuery$|^BenchmarkNeighbour$' "$((scale * 300))x" BENCH_SIZES="$vsizes"
section "Vectors: interleaved rounds (medians)" \
	"each round queries the scoped index, the bare driver, chromem-go and the floor back to back, so load affects all alike; CompareNeighbour: a clone alone vs next to a clone with 100k vectors" \
	- ./vectorstore/internal/bench . 'Compare$|CompareNeighbour' "$((scale * 20))x" BENCH_SIZES="$vsizes"
section "Vectors: scoped wrapper vs bare driver (interleaved pairs)" \
	"the bare memvector driver on the same namespace, alternating order" \
	- ./vectorstore/internal/bench . 'WrapperOverhead' "$((scale * 2000))x"
section "Vectors: durable embedded index (write-ahead log, group commit, snapshot)" \
	"the same index in memory only (durable/memory: throughput ratio, at least 0.5 wanted), an fsync-per-vector log (durable/fsync-per-vector, at least 20), the floor: the in-memory round beside the cheapest durable write of its log bytes (memory/floor bounds durable/memory; durable/floor: how near the index comes to it), the bare driver (scoped/bare upsert, at most 1.5), reading the snapshot file (open/read with a 10,000-record log, at most 2); snapshot-rss/index: resident memory a compaction adds over the index size (at most 1.2); DiskCPUCost: CPU work done while the disk writes the log's kind of groups, over without (1 where I/O costs no CPU)" \
	- ./vectorstore/memvector . '^Benchmark(DurableUpsert|ScopedUpsert|DurableQuery|Open|DiskCPUCost)$' "$((scale * 20))x"
section "Vectors: dot product kernel" \
	"the portable Go loop" \
	"/kernel:/portable" ./vectorstore/internal/engine . 'Dot' "${scale}s"
section "Objects: scoped bucket vs raw aws-sdk-go-v2 on MinIO" \
	"the raw aws-sdk-go-v2 client on the same server, bucket and HTTP client (Overhead interleaves both: scoped/raw of medians)" \
	"/scoped:/raw" ./objectstore/s3object . 'PutGet|Overhead' "$((scale * 200))x"
section "Ingestion: chunker vs langchaingo" \
	"langchaingo's text splitter (peer) on the same documents, by tokens and by runes" \
	"/cloneiso:/langchaingo-tokens /cloneiso:/langchaingo-runes" ./ingest/internal/bench . 'Chunker' "${scale}s"
section "Ingestion: token counting" "none (absolute cost)" - ./ingest/token . 'Count' "${scale}s"
section "Ingestion: PDF extraction vs pdftotext, DOCX throughput, memory per concurrent PDF" \
	"poppler's pdftotext (a process per document) on the same 4 PDFs of 20 pages (interleaved: ratio = cloneiso/pdftotext of median wall times, cpu-ratio of median CPU times; interleaved-clone: the four documents of one clone, sharing an instance); skipped without pdftotext" \
	"/cloneiso:/pdftotext" ./ingest/extract . 'PDF|DOCX' "$((scale * 5))x"
section "Ingestion: end to end, 8 Markdown documents of 32 KiB" \
	"the embedded backends vs the real ones (PostgreSQL, Pinecone emulator, MinIO)" \
	- ./ingest . 'Ingest' "$((scale * 5))x"
section "Retrieval: latency breakdown with two clones of 10,000 chunks" \
	"none: the breakdown (embed, vector query, SQL load, prompt) shows where time goes" \
	- ./rag . 'Retrieve' "$((scale * 200))x"
section "Legacy migration: keyset backfill vs row-by-row updates" \
	"one UPDATE per row in its own transaction, on a sample of the same table (x-faster = ratio of rates)" \
	- ./migrate/legacy . 'Backfill' 1x CLONEISO_BENCH_ROWS=$rows CLONEISO_BENCH_NAIVE_ROWS=$naive

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //' || true)
{
	printf '# cloneiso benchmarks\n\n'
	printf 'Generated by `internal/ci/bench.sh`%s on %s in %d minutes; do not edit by hand.\n' \
		"$([[ $full == 1 ]] && echo ' (BENCH_FULL=1)')" "$(date -u '+%Y-%m-%d %H:%M UTC')" $((($(date -u +%s) - started + 59) / 60))
	printf 'Every benchmark runs with its baseline in the same process and run, so the ratios\n'
	printf 'compare like with like; absolute numbers depend on the machine and its load.\n\n'
	printf '| machine | |\n|---|---|\n'
	printf '| Go | `%s` |\n' "$(go version)"
	printf '| CPU | %s |\n' "${cpu:-unknown}"
	printf '| cores | %s |\n' "$(nproc 2>/dev/null || echo '?')"
	printf '| load average at the end | %s |\n' "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
	printf '| PostgreSQL | %s |\n' "${CLONEISO_TEST_DATABASE_URL:+\$CLONEISO_TEST_DATABASE_URL}${CLONEISO_TEST_DATABASE_URL:-127.0.0.1:5432 or an ephemeral cluster (internal/pgtest)}"
	printf '| S3 | MinIO (internal/ci/minio.sh) |\n\n'
	if [[ $full != 1 ]]; then
		printf 'This is the bounded run: vector indexes of 10,000 vectors, a %s-row backfill and short\n' "$rows"
		printf 'bench times. `BENCH_FULL=1 internal/ci/bench.sh` adds the 100,000-vector indexes and the\n'
		printf '1,000,000-row backfill.\n\n'
	fi
	printf '## Summary: every ratio\n\n'
	printf 'Time of the SDK path divided by its baseline (below 1: faster), and the ratios the\n'
	printf 'benchmarks report from interleaved runs (x-verify: middleware/verification;\n'
	printf 'chromem/scoped: how many times faster than chromem-go; x-faster: backfill/naive rate).\n'
	printf 'Rows with ns/op come from sub-benchmarks run one after the other and move with the\n'
	printf "machine's load; the reported ratios (ratio, x-verify, scoped/raw, scoped/bare, crowded/alone,\n"
	printf 'chromem/scoped) interleave both sides and are the ones to trust on a busy machine.\n'
	printf 'Details, raw output and commands follow.\n\n'
	printf '| benchmark | ratio | ns/op | baseline ns/op |\n|---|---|---|---|\n'
	cat "$summary"
	printf '\n'
	cat "$results"
} >"$root/$out"
say "wrote $out"
