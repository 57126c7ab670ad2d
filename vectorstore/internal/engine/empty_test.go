package engine

import (
	"context"
	"testing"
)

// TestQueryEmptyNamespace: a namespace with no records answers a query with nothing,
// whatever made it empty, instead of indexing the heap of a worker that was never
// started (issue 23: zero blocks, zero workers, heaps[0]).
func TestQueryEmptyNamespace(t *testing.T) {
	ctx := context.Background()
	q := []float32{1, 0}
	for _, m := range []Metric{Cosine, DotProduct, Euclidean} {
		e := New(2, &Options{Metric: m, Workers: 2})
		// An upsert of nothing creates no namespace.
		e.Upsert("ns", nil)
		if hits, err := e.Query(ctx, "ns", q, 3, nil, false); err != nil || len(hits) != 0 {
			t.Fatalf("%v: after an empty upsert: %v, %v", m, hits, err)
		}
		if ns := e.Namespaces(); len(ns) != 0 {
			t.Fatalf("%v: an empty upsert created %v", m, ns)
		}
		// The namespace an upsert has created but not yet filled (what a concurrent
		// query sees between getOrCreate and the upsert's lock).
		e.getOrCreate("ns")
		if hits, err := e.Query(ctx, "ns", q, 3, nil, true); err != nil || len(hits) != 0 {
			t.Fatalf("%v: created, not filled: %v, %v", m, hits, err)
		}
		// A namespace emptied by deletes; the query before the delete proves the record
		// was there.
		e.Upsert("ns", []Record{{ID: "a", Values: []float32{1, 1}}})
		if hits, err := e.Query(ctx, "ns", q, 3, nil, false); err != nil || len(hits) != 1 {
			t.Fatalf("%v: one record: %v, %v", m, hits, err)
		}
		s := e.get("ns")
		s.mu.Lock()
		e.removeSlot(s, 0) // emptied, not yet dropped
		s.mu.Unlock()
		if hits, err := e.Query(ctx, "ns", q, 3, nil, false); err != nil || len(hits) != 0 {
			t.Fatalf("%v: emptied: %v, %v", m, hits, err)
		}
		if n := e.DeleteByFilter("ns", nil); n != 0 {
			t.Fatalf("%v: delete in the emptied namespace removed %d", m, n)
		}
	}
}
