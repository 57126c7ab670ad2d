package engine

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

func randVec(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// bruteForce ranks recs against q the slow, obvious way.
func bruteForce(m Metric, recs map[string][]float32, md map[string]map[string]any, q []float32, k int, f *filter.Filter) []string {
	type sc struct {
		id    string
		score float64
	}
	var all []sc
	for id, v := range recs {
		if !f.Match(md[id]) {
			continue
		}
		var s float64
		switch m {
		case Cosine:
			var dot, nq, nv float64
			for i := range q {
				dot += float64(q[i]) * float64(v[i])
				nq += float64(q[i]) * float64(q[i])
				nv += float64(v[i]) * float64(v[i])
			}
			s = dot / math.Sqrt(nq*nv)
		case DotProduct:
			for i := range q {
				s += float64(q[i]) * float64(v[i])
			}
		case Euclidean:
			for i := range q {
				d := float64(q[i]) - float64(v[i])
				s -= d * d
			}
		}
		all = append(all, sc{id, s})
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].score != all[j].score {
			return all[i].score > all[j].score
		}
		return all[i].id < all[j].id
	})
	var out []string
	for i := 0; i < len(all) && i < k; i++ {
		out = append(out, all[i].id)
	}
	return out
}

func TestQueryMatchesBruteForce(t *testing.T) {
	const dim, n = 24, 5000 // several blocks, parallel scan
	for _, m := range []Metric{Cosine, DotProduct, Euclidean} {
		t.Run(m.String(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(m)))
			e := New(dim, &Options{Metric: m, Workers: 3, TrackedKeys: []string{"scope"}})
			recs := map[string][]float32{}
			md := map[string]map[string]any{}
			var batch []Record
			for i := range n {
				id := fmt.Sprintf("id%05d", i)
				v := randVec(r, dim)
				recs[id] = v
				md[id] = map[string]any{"scope": "s", "mod": float64(i % 7)}
				batch = append(batch, Record{ID: id, Values: v, Metadata: md[id]})
			}
			e.Upsert("ns", batch)
			// Delete a spread of records, including ones in the last block.
			var del []string
			for i := 0; i < n; i += 13 {
				del = append(del, fmt.Sprintf("id%05d", i))
			}
			if got := e.Delete("ns", del); got != len(del) {
				t.Fatalf("Delete = %d, want %d", got, len(del))
			}
			for _, id := range del {
				delete(recs, id)
			}
			if c := e.Count("ns"); c != len(recs) {
				t.Fatalf("Count = %d, want %d", c, len(recs))
			}
			filters := []string{`{}`, `{"mod":{"$lt":2}}`, `{"scope":"s"}`, `{"scope":"other"}`, `{"$and":[{"scope":"s"},{"mod":3}]}`}
			for _, fs := range filters {
				f, err := filter.ParseJSON([]byte(fs))
				if err != nil {
					t.Fatal(err)
				}
				for range 3 {
					q := randVec(r, dim)
					hits, err := e.Query(context.Background(), "ns", q, 10, f, false)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					for _, h := range hits {
						got = append(got, h.ID)
					}
					if want := bruteForce(m, recs, md, q, 10, f); !slices.Equal(got, want) {
						t.Fatalf("filter %s: got %v, want %v", fs, got, want)
					}
				}
			}
		})
	}
}

func TestValuesRoundTripAndBlocks(t *testing.T) {
	e := New(3, nil)
	var recs []Record
	for i := range 2*blockVectors + 5 {
		recs = append(recs, Record{ID: fmt.Sprint(i), Values: []float32{float32(i + 1), 2, 3}})
	}
	e.Upsert("ns", recs)
	got := e.Fetch("ns", []string{"0", "2000"})
	if len(got) != 2 || math.Abs(float64(got[1].Values[0]-2001)) > 1e-2 || math.Abs(float64(got[0].Values[2]-3)) > 1e-5 {
		t.Fatalf("Fetch = %+v", got)
	}
	var ids []string
	for i := range 2*blockVectors + 5 {
		if i != 7 {
			ids = append(ids, fmt.Sprint(i))
		}
	}
	e.Delete("ns", ids)
	s := e.get("ns")
	if len(s.blocks) != 1 || len(s.ids) != 1 || s.ids[0] != "7" {
		t.Fatalf("after deleting all but one: %d blocks, ids %v", len(s.blocks), s.ids)
	}
	e.Delete("ns", []string{"7"})
	if e.get("ns") != nil {
		t.Fatal("an empty namespace was kept")
	}
}

func TestResolveTrackedKeys(t *testing.T) {
	e := New(2, &Options{TrackedKeys: []string{"clone_id"}})
	e.Upsert("ns", []Record{
		{ID: "a", Values: []float32{1, 0}, Metadata: map[string]any{"clone_id": "A"}},
		{ID: "b", Values: []float32{0, 1}, Metadata: map[string]any{"clone_id": "A"}},
	})
	s := e.get("ns")
	f, _ := filter.ParseJSON([]byte(`{"clone_id":"A","x":{"$exists":false}}`))
	r, known, _ := e.resolve(s, f)
	if known || r.String() != `{"x":{"$exists":false}}` {
		t.Fatalf("resolve = %s, %v", r, known)
	}
	// A planted record with another scope makes the condition per-record again.
	e.Upsert("ns", []Record{{ID: "p", Values: []float32{1, 1}, Metadata: map[string]any{"clone_id": "B"}}})
	f, _ = filter.ParseJSON([]byte(`{"clone_id":"A"}`))
	if _, known, _ := e.resolve(s, f); known {
		t.Fatal("a mixed namespace resolved the scope condition as constant")
	}
	hits, _ := e.Query(context.Background(), "ns", []float32{1, 1}, 10, f, false)
	for _, h := range hits {
		if h.ID == "p" {
			t.Fatal("the planted record matched the scope filter")
		}
	}
	// Replacing the planted record restores uniformity.
	e.Upsert("ns", []Record{{ID: "p", Values: []float32{1, 1}, Metadata: map[string]any{"clone_id": "A"}}})
	if _, known, out := e.resolve(s, f); !known || !out {
		t.Fatal("uniform namespace not resolved")
	}
}

func TestConcurrentUse(t *testing.T) {
	e := New(8, &Options{Workers: 2})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			ns := fmt.Sprint("ns", w%2)
			for i := range 300 {
				id := fmt.Sprint(w, "-", i%50)
				e.Upsert(ns, []Record{{ID: id, Values: randVec(r, 8), Metadata: map[string]any{"w": float64(w)}}})
				if _, err := e.Query(context.Background(), ns, randVec(r, 8), 5, nil, true); err != nil {
					t.Error(err)
					return
				}
				if i%7 == 0 {
					e.Delete(ns, []string{id})
				}
				e.List(ns, fmt.Sprint(w, "-"), "", 10)
				e.Namespaces()
			}
		}()
	}
	wg.Wait()
	for ns, n := range e.Namespaces() {
		ids, _ := e.List(ns, "", "", 1000)
		if len(ids) != n || !strings.HasPrefix(ns, "ns") {
			t.Fatalf("namespace %s: %d IDs listed, count %d", ns, len(ids), n)
		}
	}
}

func TestDot(t *testing.T) {
	for n := range 20 {
		a, b := make([]float32, n), make([]float32, n)
		var want float32
		for i := range a {
			a[i], b[i] = float32(i+1), float32(2*i-3)
			want += a[i] * b[i]
		}
		if got := Dot(a, b); math.Abs(float64(got-want)) > 1e-3 {
			t.Errorf("Dot of length %d = %v, want %v", n, got, want)
		}
	}
}

func TestUpdateAndFetchByFilter(t *testing.T) {
	e := New(2, &Options{TrackedKeys: []string{"clone_id"}})
	e.Upsert("ns", []Record{
		{ID: "a", Values: []float32{1, 0}, Metadata: map[string]any{"clone_id": "A", "kind": "x"}},
		{ID: "b", Values: []float32{0, 1}, Metadata: map[string]any{"clone_id": "A", "kind": "y"}},
		{ID: "c", Values: []float32{1, 1}, Metadata: map[string]any{"clone_id": "A", "kind": "x"}},
	})
	if e.Update("ns", "missing", []float32{1, 1}, nil) {
		t.Fatal("Update of a missing ID reported success")
	}
	if !e.Update("ns", "a", []float32{0, 3}, map[string]any{"n": 1.0}) {
		t.Fatal("Update of a present ID failed")
	}
	r := e.Fetch("ns", []string{"a"})[0]
	if math.Abs(float64(r.Values[1]-3)) > 1e-5 || r.Metadata["n"] != 1.0 || r.Metadata["kind"] != "x" || r.Metadata["clone_id"] != "A" {
		t.Fatalf("after Update: %+v", r)
	}
	x, _ := filter.ParseJSON([]byte(`{"kind":"x"}`))
	if n := e.UpdateByFilter("ns", x, map[string]any{"tag": "t"}, true); n != 2 {
		t.Fatalf("dry run matched %d, want 2", n)
	}
	tagged, _ := filter.ParseJSON([]byte(`{"tag":"t"}`))
	if recs, _ := e.FetchByFilter("ns", tagged, "", 10); len(recs) != 0 {
		t.Fatalf("dry run changed records: %v", recs)
	}
	if n := e.UpdateByFilter("ns", x, map[string]any{"tag": "t"}, false); n != 2 {
		t.Fatalf("update matched %d, want 2", n)
	}
	recs, more := e.FetchByFilter("ns", tagged, "", 1)
	if len(recs) != 1 || recs[0].ID != "a" || !more {
		t.Fatalf("page 1 = %v, %v", recs, more)
	}
	recs, more = e.FetchByFilter("ns", tagged, "a", 1)
	if len(recs) != 1 || recs[0].ID != "c" || more {
		t.Fatalf("page 2 = %v, %v", recs, more)
	}
}

// TestNoLostWritesWhenNamespaceEmpties: a namespace is dropped when its last record is
// deleted; an upsert racing with that must not land in the dropped namespace.
func TestNoLostWritesWhenNamespaceEmpties(t *testing.T) {
	e := New(2, nil)
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("w", w)
			for range 2000 {
				e.Upsert("ns", []Record{{ID: id, Values: []float32{1, 1}}})
				if len(e.Fetch("ns", []string{id})) != 1 {
					errc <- fmt.Errorf("%s: an acknowledged upsert is not visible", id)
					return
				}
				e.Delete("ns", []string{id})
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestExtremeMagnitudes(t *testing.T) {
	for _, scale := range []float32{1e-30, 1e-20, 1, 1e20, 1e30} {
		e := New(3, nil)
		e.Upsert("ns", []Record{
			{ID: "a", Values: []float32{scale, 0, 0}},
			{ID: "b", Values: []float32{0, scale, scale}},
		})
		hits, err := e.Query(context.Background(), "ns", []float32{scale, scale / 10, 0}, 2, nil, true)
		if err != nil || len(hits) != 2 || hits[0].ID != "a" {
			t.Fatalf("scale %g: %+v, %v", scale, hits, err)
		}
		if s := hits[0].Score; math.IsNaN(float64(s)) || s < 0.99 || s > 1.0001 {
			t.Fatalf("scale %g: cosine %v", scale, s)
		}
		if v := hits[0].Values[0]; math.Abs(float64(v/scale)-1) > 1e-5 {
			t.Fatalf("scale %g: values %v", scale, hits[0].Values)
		}
	}
}

func TestQueryDimensionGuard(t *testing.T) {
	e := New(4, nil)
	e.Upsert("ns", []Record{{ID: "a", Values: []float32{1, 0, 0, 0}}})
	for _, q := range [][]float32{{1, 0, 0}, {1, 0, 0, 0, 0, 0, 0, 0, 0}} {
		if _, err := e.Query(context.Background(), "ns", q, 1, nil, false); err == nil {
			t.Fatalf("query of length %d accepted by a dimension-4 engine", len(q))
		}
	}
}

// TestRangeMetadataMatchesMetadata: the snapshot writer reads metadata through
// RangeMetadata; it must yield exactly what Metadata returns, tracked keys (stored
// apart) and untracked ones, a tracked key with a non-string value, and no metadata.
func TestRangeMetadataMatchesMetadata(t *testing.T) {
	e := New(2, &Options{TrackedKeys: []string{"tenant_id", "clone_id"}})
	e.Upsert("ns", []Record{
		{ID: "a", Values: []float32{1, 0}, Metadata: map[string]any{"tenant_id": "t", "clone_id": "c", "n": 1.0, "tags": []string{"x"}}},
		{ID: "b", Values: []float32{0, 1}, Metadata: map[string]any{"tenant_id": 7.0, "ok": true}},
		{ID: "c", Values: []float32{1, 1}},
		{ID: "d", Values: []float32{1, 2}, Metadata: map[string]any{"clone_id": "c"}},
	})
	err := e.Dump(func(ns string, v *SpaceView) error {
		for i := range v.Len() {
			want := v.Metadata(i)
			got := map[string]any{}
			n := v.RangeMetadata(i, func(k string, val any) {
				if _, dup := got[k]; dup {
					t.Errorf("record %s: key %s twice", v.ID(i), k)
				}
				got[k] = val
			})
			if n != len(want) || v.RangeMetadata(i, nil) != n || fmt.Sprint(got) != fmt.Sprint(want) && len(want) > 0 {
				t.Errorf("record %s: RangeMetadata gave %d %v, Metadata %v", v.ID(i), n, got, want)
			}
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
}
