package memvector_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// TestQueryEmptyNamespace is issue 23's deterministic reproduction: a query on a
// namespace an empty upsert touched used to panic (index out of range) in the engine.
func TestQueryEmptyNamespace(t *testing.T) {
	ctx := context.Background()
	d, err := memvector.NewDriver(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Upsert(ctx, "ns", nil); err != nil {
		t.Fatal(err)
	}
	ms, err := d.Query(ctx, "ns", &driver.Query{Vector: []float32{1, 0}, TopK: 3})
	if err != nil || len(ms) != 0 {
		t.Fatalf("query on an empty namespace: %v, %v", ms, err)
	}
	if st, err := d.Stats(ctx, "ns"); err != nil || st.VectorCount != 0 {
		t.Fatalf("stats: %+v, %v", st, err)
	}
}

// TestConcurrentNamespaces runs upserts, deletes (of records, and of whole
// namespaces), empty upserts, queries, lists, fetches and stats at the same time on one
// namespace that is created and emptied over and over, and on its neighbours, whose
// content is fixed. Each round starts every operation behind one barrier (a closed
// channel), so they overlap without sleeping. Every answer about the churning namespace
// holds only its own records; every answer about a neighbour is its full, unchanged
// content. Run it with -race.
func TestConcurrentNamespaces(t *testing.T) {
	ctx := context.Background()
	d, err := memvector.NewDriver(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	const churn = "clone-b"
	// Neighbours: a prefix of churn's name, names sorting just before and after it, and
	// one that extends it.
	neighbours := []string{"clone-", "clone-a", "clone-c", "clone-b2"}
	want := map[string]map[string]driver.Vector{}
	for i, ns := range neighbours {
		want[ns] = map[string]driver.Vector{}
		var vs []driver.Vector
		for j := range 5 {
			v := driver.Vector{ID: fmt.Sprintf("%s-%d", ns, j), Values: []float32{float32(i + 1), float32(j + 1)},
				Metadata: map[string]any{"ns": ns, "j": float64(j)}}
			vs = append(vs, v)
		}
		if err := d.Upsert(ctx, ns, vs); err != nil {
			t.Fatal(err)
		}
		// The baseline is what the index holds (values come back with float32
		// rounding from the normalization), read before anything runs concurrently.
		got, err := d.Fetch(ctx, ns, []string{vs[0].ID, vs[1].ID, vs[2].ID, vs[3].ID, vs[4].ID})
		if err != nil || len(got) != len(vs) {
			t.Fatalf("fetch %s: %v, %v", ns, got, err)
		}
		for _, v := range got {
			want[ns][v.ID] = v
		}
	}
	checkNeighbour := func(ns string) {
		ms, err := d.Query(ctx, ns, &driver.Query{Vector: []float32{1, 1}, TopK: 10, IncludeValues: true})
		if err != nil || len(ms) != len(want[ns]) {
			t.Errorf("query %s: %d matches, %v; want %d", ns, len(ms), err, len(want[ns]))
		}
		for _, m := range ms {
			if w, ok := want[ns][m.ID]; !ok || !slices.Equal(m.Values, w.Values) || !maps.Equal(m.Metadata, w.Metadata) {
				t.Errorf("query %s: match %+v; want %+v", ns, m, w)
			}
		}
		p, err := d.List(ctx, ns, &driver.ListRequest{Limit: 100})
		if err != nil || !slices.Equal(p.IDs, slices.Sorted(maps.Keys(want[ns]))) {
			t.Errorf("list %s: %+v, %v", ns, p, err)
		}
		if st, err := d.Stats(ctx, ns); err != nil || st.VectorCount != len(want[ns]) {
			t.Errorf("stats %s: %+v, %v", ns, st, err)
		}
	}
	// checkChurn accepts any state of churn (it may be anywhere between created and
	// dropped) but only churn's own records.
	own := func(where, id string, md map[string]any) {
		if !strings.HasPrefix(id, churn+"/") || md != nil && md["ns"] != churn {
			t.Errorf("%s %s: foreign record %q %v", where, churn, id, md)
		}
	}
	checkChurn := func() {
		ms, err := d.Query(ctx, churn, &driver.Query{Vector: []float32{1, 0}, TopK: 10})
		if err != nil {
			t.Errorf("query %s: %v", churn, err)
		}
		for _, m := range ms {
			own("query", m.ID, m.Metadata)
		}
		p, err := d.List(ctx, churn, &driver.ListRequest{Limit: 100})
		if err != nil {
			t.Errorf("list %s: %v", churn, err)
			return
		}
		for _, id := range p.IDs {
			own("list", id, nil)
		}
		// At most the previous round's stayer (this round's namespace delete may not
		// have run yet) and this round's three records.
		if st, err := d.Stats(ctx, churn); err != nil || st.VectorCount < 0 || st.VectorCount > 4 {
			t.Errorf("stats %s: %+v, %v", churn, st, err)
		}
	}
	const rounds = 300
	for r := range rounds {
		ids := []string{fmt.Sprintf("%s/%d-a", churn, r), fmt.Sprintf("%s/%d-b", churn, r)}
		ops := []func(){
			// Fill churn and empty it again: it is created, emptied and dropped.
			func() {
				var vs []driver.Vector
				for i, id := range ids {
					vs = append(vs, driver.Vector{ID: id, Values: []float32{1, float32(i)}, Metadata: map[string]any{"ns": churn}})
				}
				if err := d.Upsert(ctx, churn, vs); err != nil {
					t.Errorf("upsert: %v", err)
				}
				if err := d.Delete(ctx, churn, ids); err != nil {
					t.Errorf("delete: %v", err)
				}
			},
			// One record that stays until the next round's namespace delete.
			func() {
				v := driver.Vector{ID: fmt.Sprintf("%s/%d-c", churn, r), Values: []float32{0, 1}, Metadata: map[string]any{"ns": churn}}
				if err := d.Upsert(ctx, churn, []driver.Vector{v}); err != nil {
					t.Errorf("upsert: %v", err)
				}
			},
			func() {
				if err := d.DeleteNamespace(ctx, churn); err != nil {
					t.Errorf("delete namespace: %v", err)
				}
			},
			func() {
				if err := d.Upsert(ctx, churn, nil); err != nil {
					t.Errorf("empty upsert: %v", err)
				}
			},
			checkChurn,
			checkChurn,
			func() {
				vs, err := d.Fetch(ctx, churn, ids)
				if err != nil {
					t.Errorf("fetch: %v", err)
				}
				for _, v := range vs {
					own("fetch", v.ID, v.Metadata)
				}
			},
		}
		for _, ns := range neighbours {
			ops = append(ops, func() { checkNeighbour(ns) })
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, op := range ops {
			wg.Go(func() {
				<-start
				op()
			})
		}
		close(start) // the barrier: every operation of the round starts now
		wg.Wait()
		if t.Failed() {
			t.Fatalf("round %d failed", r)
		}
	}
	for _, ns := range neighbours {
		checkNeighbour(ns)
		vs, err := d.Fetch(ctx, ns, slices.Collect(maps.Keys(want[ns])))
		if err != nil || len(vs) != len(want[ns]) {
			t.Fatalf("fetch %s: %d, %v", ns, len(vs), err)
		}
		for _, v := range vs {
			if w := want[ns][v.ID]; !slices.Equal(v.Values, w.Values) || !maps.Equal(v.Metadata, w.Metadata) {
				t.Fatalf("%s: %+v; want %+v", ns, v, w)
			}
		}
	}
}
