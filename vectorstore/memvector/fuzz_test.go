package memvector_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/drivertest"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// FuzzScopedQuery checks that no filter makes a clone's query or delete-by-filter see
// or change another clone's vectors, panic, or fail with an unclassified error.
func FuzzScopedQuery(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"owner":"b"}`, `{"clone_id":{"$ne":"x"}}`, `{"$or":[{"owner":"b"},{"n":{"$gte":0}}]}`,
		`{"tenant_id":{"$exists":true}}`, `{"n":{"$in":[1,2,"3"]}}`, `{"$and":[{"owner":{"$nin":["a"]}}]}`,
	} {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	x, err := memvector.Open(2, nil)
	if err != nil {
		f.Fatal(err)
	}
	a, b := drivertest.NewClone(f), drivertest.NewClone(f)
	for _, c := range []struct {
		owner string
		vals  []float32
	}{{"a", []float32{1, 0}}, {"b", []float32{0, 1}}} {
		cc := a
		if c.owner == "b" {
			cc = b
		}
		var vs []vectorstore.Vector
		for i := range 4 {
			vs = append(vs, vectorstore.Vector{ID: string(rune('p' + i)), Values: c.vals, Metadata: map[string]any{"owner": c.owner, "n": i}})
		}
		if err := x.Upsert(ctx, cc, vs); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			return
		}
		ms, err := x.Query(ctx, a, vectorstore.Query{Vector: []float32{1, 1}, TopK: 100, IncludeMetadata: true, Filter: m})
		if err != nil {
			if errs.KindOf(err) == errs.Unknown {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		for _, mt := range ms {
			if mt.Metadata["owner"] != "a" {
				t.Fatalf("filter %s returned another clone's vector %+v", data, mt)
			}
		}
		if len(m) > 0 {
			if err := x.DeleteByFilter(ctx, a, m); err != nil && errs.KindOf(err) == errs.Unknown {
				t.Fatalf("unclassified error: %v", err)
			}
			st, err := x.Stats(ctx, b)
			if err != nil || st.VectorCount != 4 {
				t.Fatalf("after a's delete by %s, b has %+v, %v", data, st, err)
			}
			// Restore a's vectors for the next input.
			var vs []vectorstore.Vector
			for i := range 4 {
				vs = append(vs, vectorstore.Vector{ID: string(rune('p' + i)), Values: []float32{1, 0}, Metadata: map[string]any{"owner": "a", "n": i}})
			}
			if err := x.Upsert(ctx, a, vs); err != nil {
				t.Fatal(err)
			}
		}
	})
}
