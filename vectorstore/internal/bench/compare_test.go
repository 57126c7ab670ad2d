package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/philippgille/chromem-go"

	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[len(s)/2])
}

// BenchmarkCompare runs every contender once per round, interleaved, on the same data,
// and reports medians and ratios, so that load from other processes on the machine
// affects all contenders alike. One b.N iteration is one round.
//
// Metrics: floor-ns, scoped-ns, bare-ns, chromem-ns (median latency of one top-10
// query, or of one streaming pass for the floor); chromem/scoped (speed-up over
// chromem-go), scoped/floor (distance from the memory-read floor), scoped/bare (wrapper
// overhead); mem/raw and chromem-mem/raw (heap held divided by the raw float32 size).
func BenchmarkCompare(b *testing.B) {
	ctx := context.Background()
	for _, sz := range sizes(b) {
		b.Run(fmt.Sprintf("n=%d/dim=%d", sz.n, sz.dim), func(b *testing.B) {
			data := gen(1, sz.n, sz.dim)
			queries := gen(2, 64, sz.dim)
			q := func(i int) []float32 { i %= 64; return queries[i*sz.dim : (i+1)*sz.dim] }
			raw := float64(sz.n * sz.dim * 4)
			blocks := blocked(data, sz.dim)

			before := heap()
			d, err := memvector.NewDriver(sz.dim, nil)
			if err != nil {
				b.Fatal(err)
			}
			x, err := vectorstore.NewIndex(d, nil)
			if err != nil {
				b.Fatal(err)
			}
			cc := newClone(b)
			load(b, x, cc, data, sz.n, sz.dim)
			memRatio := float64(heap()-before) / raw
			ns, _ := vectorstore.Namespace(cc)

			before = heap()
			col, err := chromem.NewDB().CreateCollection("bench", nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			docs := make([]chromem.Document, sz.n)
			for i := range docs {
				docs[i] = chromem.Document{ID: fmt.Sprintf("doc%07d", i), Embedding: data[i*sz.dim : (i+1)*sz.dim : (i+1)*sz.dim]}
			}
			if err := col.AddDocuments(ctx, docs, runtime.GOMAXPROCS(0)); err != nil {
				b.Fatal(err)
			}
			docs = nil
			chromemRatio := float64(heap()-before) / raw

			var floor, scoped, bare, chr []time.Duration
			i := 0
			for b.Loop() {
				var ms []vectorstore.Match
				var rs []chromem.Result
				runs := []func(){
					func() {
						t := time.Now()
						sinkF += streamSum(blocks)
						floor = append(floor, time.Since(t))
					},
					func() {
						t := time.Now()
						var err error
						ms, err = x.Query(ctx, cc, vectorstore.Query{Vector: q(i), TopK: 10})
						scoped = append(scoped, time.Since(t))
						if err != nil || len(ms) != 10 {
							b.Fatal(err)
						}
					},
					func() {
						t := time.Now()
						dm, err := d.Query(ctx, ns, &driver.Query{Vector: q(i), TopK: 10})
						bare = append(bare, time.Since(t))
						if err != nil || len(dm) != 10 {
							b.Fatal(err)
						}
					},
					func() {
						t := time.Now()
						var err error
						rs, err = col.QueryEmbedding(ctx, q(i), 10, nil, nil)
						chr = append(chr, time.Since(t))
						if err != nil || len(rs) != 10 {
							b.Fatal(err)
						}
					},
				}
				// Rotate the order every round, so no contender always runs first or
				// right after another.
				for j := range runs {
					runs[(i+j)%len(runs)]()
				}
				if rs[0].ID != ms[0].ID {
					b.Fatalf("chromem-go and memvector disagree on the best match: %s vs %s", rs[0].ID, ms[0].ID)
				}
				i++
				// Collect chromem-go's per-query garbage between rounds (untimed), so no
				// contender pays GC assists for another's allocations.
				b.StopTimer()
				runtime.GC()
				b.StartTimer()
			}
			fm, sm, bm, cm := median(floor), median(scoped), median(bare), median(chr)
			b.ReportMetric(fm, "floor-ns")
			b.ReportMetric(sm, "scoped-ns")
			b.ReportMetric(bm, "bare-ns")
			b.ReportMetric(cm, "chromem-ns")
			b.ReportMetric(cm/sm, "chromem/scoped")
			b.ReportMetric(sm/fm, "scoped/floor")
			b.ReportMetric(sm/bm, "scoped/bare")
			b.ReportMetric(memRatio, "mem/raw")
			b.ReportMetric(chromemRatio, "chromem-mem/raw")
			b.ReportMetric(0, "ns/op")
			runtime.KeepAlive(data)
			runtime.KeepAlive(blocks)
		})
	}
}

// BenchmarkCompareNeighbour interleaves queries of a clone with 10k vectors in an index
// where another clone has 0 vectors and in one where another clone has 100k, and
// reports the ratio of the median latencies (1.0: no effect of the neighbour).
func BenchmarkCompareNeighbour(b *testing.B) {
	ctx := context.Background()
	const dim, mine, other = 384, 10000, 100000
	data := gen(3, mine, dim)
	queries := gen(4, 64, dim)
	alone, err := memvector.Open(dim, nil)
	if err != nil {
		b.Fatal(err)
	}
	crowded, err := memvector.Open(dim, nil)
	if err != nil {
		b.Fatal(err)
	}
	me := newClone(b)
	load(b, alone, me, data, mine, dim)
	load(b, crowded, me, data, mine, dim)
	load(b, crowded, newClone(b), gen(5, other, dim), other, dim)
	var ta, tc []time.Duration
	i := 0
	for b.Loop() {
		v := queries[(i%64)*dim : (i%64+1)*dim]
		t := time.Now()
		if _, err := alone.Query(ctx, me, vectorstore.Query{Vector: v, TopK: 10}); err != nil {
			b.Fatal(err)
		}
		ta = append(ta, time.Since(t))
		t = time.Now()
		if _, err := crowded.Query(ctx, me, vectorstore.Query{Vector: v, TopK: 10}); err != nil {
			b.Fatal(err)
		}
		tc = append(tc, time.Since(t))
		i++
	}
	b.ReportMetric(median(ta), "alone-ns")
	b.ReportMetric(median(tc), "crowded-ns")
	b.ReportMetric(median(tc)/median(ta), "crowded/alone")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkWrapperOverhead measures the scoped portable type against the bare driver on
// one clone's namespace, alternating the order, with many short rounds so that the
// medians are stable on a shared machine. One b.N iteration is one pair of queries.
func BenchmarkWrapperOverhead(b *testing.B) {
	ctx := context.Background()
	for _, sz := range []size{{2000, 1536}, {20000, 384}} {
		b.Run(fmt.Sprintf("n=%d/dim=%d", sz.n, sz.dim), func(b *testing.B) {
			data := gen(6, sz.n, sz.dim)
			queries := gen(7, 64, sz.dim)
			d, err := memvector.NewDriver(sz.dim, nil)
			if err != nil {
				b.Fatal(err)
			}
			x, err := vectorstore.NewIndex(d, nil)
			if err != nil {
				b.Fatal(err)
			}
			cc := newClone(b)
			load(b, x, cc, data, sz.n, sz.dim)
			ns, _ := vectorstore.Namespace(cc)
			var scoped, bare []time.Duration
			i := 0
			for b.Loop() {
				v := queries[(i%64)*sz.dim : (i%64+1)*sz.dim]
				s := func() {
					t := time.Now()
					if _, err := x.Query(ctx, cc, vectorstore.Query{Vector: v, TopK: 10}); err != nil {
						b.Fatal(err)
					}
					scoped = append(scoped, time.Since(t))
				}
				r := func() {
					t := time.Now()
					if _, err := d.Query(ctx, ns, &driver.Query{Vector: v, TopK: 10}); err != nil {
						b.Fatal(err)
					}
					bare = append(bare, time.Since(t))
				}
				if i%2 == 0 {
					s()
					r()
				} else {
					r()
					s()
				}
				i++
			}
			b.ReportMetric(median(scoped), "scoped-ns")
			b.ReportMetric(median(bare), "bare-ns")
			b.ReportMetric(median(scoped)/median(bare), "scoped/bare")
			b.ReportMetric(0, "ns/op")
		})
	}
}
