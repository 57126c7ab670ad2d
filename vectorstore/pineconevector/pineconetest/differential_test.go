package pineconetest

// Differential test: the emulator's own filter evaluation and brute-force ranking
// against the SDK's (vectorstore/filter and vectorstore/internal/engine), over random
// filters, metadata and vectors from a fixed seed. The two were written independently;
// a difference is a bug in one of them.

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cloneiso/cloneiso/vectorstore/filter"
	"github.com/cloneiso/cloneiso/vectorstore/internal/engine"
)

type generator struct{ rng *rand.Rand }

var (
	genFields  = []string{"a", "b", "c", "tags"}
	genStrings = []string{"x", "y", "z"}
)

func (g generator) pick(xs []string) string { return xs[g.rng.IntN(len(xs))] }

// scalar returns a random string, number (integers and halves, so equalities happen)
// or boolean.
func (g generator) scalar() any {
	switch g.rng.IntN(3) {
	case 0:
		return g.pick(genStrings)
	case 1:
		return float64(g.rng.IntN(9)-2) / 2
	}
	return g.rng.IntN(2) == 0
}

func (g generator) metadata() map[string]any {
	md := map[string]any{}
	for _, f := range genFields {
		if g.rng.IntN(4) == 0 {
			continue // absent
		}
		if f == "tags" || g.rng.IntN(6) == 0 {
			l := make([]string, g.rng.IntN(4))
			for i := range l {
				l[i] = g.pick(genStrings)
			}
			md[f] = l
			continue
		}
		md[f] = g.scalar()
	}
	if len(md) == 0 && g.rng.IntN(2) == 0 {
		return nil
	}
	return md
}

func (g generator) operand(op string) any {
	switch op {
	case "$gt", "$gte", "$lt", "$lte":
		return float64(g.rng.IntN(9)-2) / 2
	case "$in", "$nin":
		l := make([]any, 1+g.rng.IntN(3))
		for i := range l {
			l[i] = g.scalar()
		}
		return l
	case "$exists":
		return g.rng.IntN(2) == 0
	}
	return g.scalar()
}

var genOps = []string{"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"}

// filter returns a random valid filter object in the JSON shape a client sends.
func (g generator) filter(depth int) map[string]any {
	m := map[string]any{}
	for range 1 + g.rng.IntN(2) {
		if depth < 3 && g.rng.IntN(4) == 0 {
			kids := make([]any, 1+g.rng.IntN(3))
			for i := range kids {
				kids[i] = g.filter(depth + 1)
			}
			m[[]string{"$and", "$or"}[g.rng.IntN(2)]] = kids
			continue
		}
		f := g.pick(genFields)
		if g.rng.IntN(5) == 0 {
			m[f] = g.scalar() // implicit $eq
			continue
		}
		ops := map[string]any{}
		for range 1 + g.rng.IntN(2) {
			op := genOps[g.rng.IntN(len(genOps))]
			ops[op] = g.operand(op)
		}
		m[f] = ops
	}
	return m
}

func TestDifferentialFilter(t *testing.T) {
	g := generator{rand.New(rand.NewPCG(19, 2026))}
	const filters, recordsPerFilter = 20000, 8
	cases := 0
	for i := range filters {
		m := g.filter(0)
		sdk, err1 := filter.Parse(m)
		emu, err2 := compileFilter(m)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("filter %v: SDK error %v, emulator error %v", m, err1, err2)
		}
		if err1 != nil {
			t.Fatalf("filter %d: the generator made an invalid filter %v: %v", i, m, err1)
		}
		for range recordsPerFilter {
			md := g.metadata()
			if got, want := emu.matches(md), sdk.Match(md); got != want {
				t.Fatalf("filter %s on metadata %v: emulator %v, SDK %v", sdk, md, got, want)
			}
			cases++
		}
	}
	t.Logf("%d filter evaluations agree", cases)
}

func TestDifferentialRanking(t *testing.T) {
	g := generator{rand.New(rand.NewPCG(19, 7))}
	ctx := context.Background()
	metrics := map[string]engine.Metric{"cosine": engine.Cosine, "dotproduct": engine.DotProduct, "euclidean": engine.Euclidean}
	const dim, datasets, queriesPerDataset, records = 8, 60, 40, 150
	cases := 0
	for ds := range datasets {
		name := []string{"cosine", "dotproduct", "euclidean"}[ds%3]
		eng := engine.New(dim, &engine.Options{Metric: metrics[name], TrackedKeys: []string{"a"}, Workers: 1})
		d := &namespaceData{records: map[string]*record{}}
		var recs []engine.Record
		for range records {
			v := make([]float32, dim)
			for j := range v {
				if ds%2 == 0 {
					v[j] = float32(g.rng.IntN(5) - 2) // small integers: many exact ties
				} else {
					v[j] = float32(g.rng.NormFloat64())
				}
			}
			v[g.rng.IntN(dim)] = 1 + float32(g.rng.IntN(3)) // never all zero
			id := fmt.Sprintf("r%03d", g.rng.IntN(1000))
			md := g.metadata()
			if ds%4 == 1 && md != nil {
				md["a"] = "same" // a tracked key every record agrees on
			}
			recs = append(recs, engine.Record{ID: id, Values: v, Metadata: md})
			d.records[id] = newRecord(id, v, nil, md) // a repeated ID replaces, as in the engine
		}
		eng.Upsert("ns", recs)
		exact := ds%2 == 0 && name != "cosine"
		for range queriesPerDataset {
			q := make([]float32, dim)
			for j := range q {
				q[j] = float32(g.rng.IntN(5) - 2)
			}
			q[g.rng.IntN(dim)] = 2
			k := 1 + g.rng.IntN(20)
			var fm map[string]any
			if g.rng.IntN(3) > 0 {
				fm = g.filter(1)
			}
			sdk, err := filter.Parse(fm)
			if err != nil {
				t.Fatal(err)
			}
			emu, err := compileFilter(fm)
			if err != nil {
				t.Fatal(err)
			}
			want, err := eng.Query(ctx, "ns", q, k, sdk, false)
			if err != nil {
				t.Fatal(err)
			}
			got := rank(name, d, q, nil, emu, k)
			if len(got) != len(want) {
				t.Fatalf("%s dataset %d, filter %s, k %d: emulator %d matches, SDK %d", name, ds, sdk, k, len(got), len(want))
			}
			qNorm := norm(q)
			for i := range got {
				gs, ws := got[i].score, float64(want[i].Score)
				tol := 1e-4 * math.Max(1, math.Abs(gs))
				if math.Abs(gs-ws) > tol {
					t.Fatalf("%s dataset %d, rank %d: emulator %s %v, SDK %s %v", name, ds, i, got[i].r.id, gs, want[i].ID, ws)
				}
				if got[i].r.id != want[i].ID {
					// With small integers, dot products and distances are exact in float32
					// too: ties must break the same way (ascending ID). Otherwise only a
					// tie within float32 rounding may order differently: the SDK's record
					// must score the same in the emulator's exact arithmetic.
					other := d.records[want[i].ID]
					if exact || other == nil || math.Abs(score(name, q, qNorm, nil, other)-gs) > tol {
						t.Fatalf("%s dataset %d, rank %d: emulator %s, SDK %s (not a tie)", name, ds, i, got[i].r.id, want[i].ID)
					}
				}
				cases++
			}
		}
	}
	t.Logf("%d ranked positions agree", cases)
}
