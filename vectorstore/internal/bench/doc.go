// Package bench holds the benchmarks of the embedded vector index against
// github.com/philippgille/chromem-go, the memory-read floor, the scoped wrapper against
// the bare driver, and one clone's latency against another clone's corpus size.
//
// It is a separate module so that chromem-go stays out of the SDK's go.mod; it uses the
// SDK from this checkout (replace directive). Run from this directory:
//
//	go test -run '^$' -bench . -benchtime 20x -timeout 60m
//
// Select sizes with BENCH_SIZES, e.g. BENCH_SIZES=100000x1536 (default: all four of
// 10000x384, 10000x1536, 100000x384, 100000x1536). Each size is generated once from a
// fixed seed and every contender runs on the same data in the same process.
package bench
