package memvector_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// Fixed identities and record IDs, so the seed corpus can name them: the fuzzer cannot
// guess a random UUID, but it mutates the real ones the seeds give it.
var (
	fuzzTenant      = uuid.MustParse("0b5e7a4c-1d2e-4f60-8a9b-0c1d2e3f4a5b")
	fuzzOtherTenant = uuid.MustParse("7c6d5e4f-3a2b-4c1d-9e8f-7a6b5c4d3e2f")
	fuzzA           = uuid.MustParse("a0a0a0a0-1111-4222-8333-444455556666") // the fuzzed clone
	fuzzB           = uuid.MustParse("b0b0b0b0-1111-4222-8333-444455556666") // another tenant's clone
	fuzzC           = uuid.MustParse("c0c0c0c0-1111-4222-8333-444455556666") // a's tenant, another clone
	fuzzBIDs        = []string{"3f1c9a52-8a0e-4d8b-9b1e-2a7c5d9e0f11", "3f1c9a52-8a0e-4d8b-9b1e-2a7c5d9e0f12", "doc-b-1#0"}
	fuzzCIDs        = []string{"9d2e7b61-4c3a-4e5f-8a1b-6c7d8e9f0a21", "doc-c-1#0", "shared-id"}
	fuzzAIDs        = []string{"doc-a-1#0", "doc-a-1#1", "shared-id"}
)

func fuzzClone(t testing.TB, tenant, id uuid.UUID) clone.CloneContext {
	t.Helper()
	cc, err := clone.New(tenant, id, clone.Principal{Subject: "fuzz-" + id.String()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

func fuzzVectors(owner string, ids []string, v []float32) []vectorstore.Vector {
	var vs []vectorstore.Vector
	for i, id := range ids {
		vs = append(vs, vectorstore.Vector{ID: id, Values: v, Metadata: map[string]any{"owner": owner, "n": float64(i), "tags": []string{owner, id}}})
	}
	return vs
}

// FuzzScopedQuery runs one fuzzed operation set as clone a: an upsert of a fuzzed ID
// with fuzzed metadata, a query and a delete-by-filter with a fuzzed filter, a fetch
// and a delete of the fuzzed ID together with the other clones' real IDs, and a listing
// with a fuzzed prefix and page token that follows every next-page token. Clone b (another
// tenant) and clone c (a's tenant) hold records whose IDs the seeds offer, one of them
// also an ID of a's. Every answer to a holds only a's records, errors are classified,
// and after every input b's and c's full state (IDs, values, metadata, count) is
// unchanged.
func FuzzScopedQuery(f *testing.F) {
	tok := func(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }
	for _, s := range []struct {
		id, filter, prefix, token string
	}{
		{"new", `{}`, "", ""},
		{fuzzBIDs[0], `{"owner":"b"}`, "", ""},
		{fuzzCIDs[0], `{"clone_id":{"$ne":"x"}}`, "3f1c", tok(fuzzBIDs[0])},
		{"shared-id", `{"$or":[{"owner":"b"},{"n":{"$gte":0}}]}`, "shared", tok("")},
		{fuzzBIDs[2], `{"tenant_id":{"$exists":true}}`, "doc-", tok("doc-b-0")},
		{fuzzCIDs[1], `{"clone_id":"` + fuzzC.String() + `"}`, "doc-c", tok(fuzzCIDs[0])},
		{"x", `{"tenant_id":"` + fuzzOtherTenant.String() + `","clone_id":"` + fuzzB.String() + `"}`, "", "!!"},
		{"y", `{"n":{"$in":[1,2,"3"]}}`, "", tok("\x00")},
		{"z", `{"$and":[{"owner":{"$nin":["a"]}}]}`, "", tok(fuzzAIDs[0])},
		{"t", `{"tags":{"$in":["b","c","` + fuzzBIDs[0] + `"]}}`, "", ""},
	} {
		f.Add(s.id, []byte(s.filter), s.prefix, s.token, uint8(2))
	}
	ctx := context.Background()
	x, err := memvector.Open(2, nil)
	if err != nil {
		f.Fatal(err)
	}
	a, b, c := fuzzClone(f, fuzzTenant, fuzzA), fuzzClone(f, fuzzOtherTenant, fuzzB), fuzzClone(f, fuzzTenant, fuzzC)
	// b's and c's vectors point where the queries look, so a leak would rank first.
	for _, o := range []struct {
		cc  clone.CloneContext
		vs  []vectorstore.Vector
		ids []string
	}{
		{b, fuzzVectors("b", fuzzBIDs, []float32{1, 1}), fuzzBIDs},
		{c, fuzzVectors("c", fuzzCIDs, []float32{1, 1}), fuzzCIDs},
	} {
		if err := x.Upsert(ctx, o.cc, o.vs); err != nil {
			f.Fatal(err)
		}
	}
	type state struct {
		vectors []vectorstore.Vector
		ids     []string
		count   int
	}
	// stateOf reads everything the clone can see of itself.
	stateOf := func(t testing.TB, cc clone.CloneContext, ids []string) state {
		t.Helper()
		vs, err := x.Fetch(ctx, cc, ids)
		if err != nil {
			t.Fatal(err)
		}
		var s state
		s.vectors = vs
		token := ""
		for {
			p, err := x.List(ctx, cc, &vectorstore.ListOptions{Limit: 2, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			s.ids = append(s.ids, p.IDs...)
			if token = p.NextPageToken; token == "" {
				break
			}
		}
		st, err := x.Stats(ctx, cc)
		if err != nil {
			t.Fatal(err)
		}
		s.count = st.VectorCount
		return s
	}
	same := func(s, w state) bool {
		return slices.Equal(s.ids, w.ids) && s.count == w.count &&
			slices.EqualFunc(s.vectors, w.vectors, func(v, w vectorstore.Vector) bool {
				return v.ID == w.ID && slices.Equal(v.Values, w.Values) && maps.EqualFunc(v.Metadata, w.Metadata, func(p, q any) bool {
					if ps, ok := p.([]string); ok {
						qs, ok := q.([]string)
						return ok && slices.Equal(ps, qs)
					}
					return p == q
				})
			})
	}
	wantB, wantC := stateOf(f, b, fuzzBIDs), stateOf(f, c, fuzzCIDs)
	if len(wantB.vectors) != len(fuzzBIDs) || wantB.count != len(fuzzBIDs) || len(wantC.ids) != len(fuzzCIDs) {
		f.Fatalf("setup: b %+v, c %+v", wantB, wantC)
	}
	classified := func(t *testing.T, what string, err error) bool {
		t.Helper()
		if err != nil && errs.KindOf(err) == errs.Unknown {
			t.Fatalf("%s: unclassified error: %v", what, err)
		}
		return err == nil
	}

	f.Fuzz(func(t *testing.T, id string, data []byte, prefix, token string, limit uint8) {
		// a starts every input from its own baseline.
		if err := x.DeleteAll(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := x.Upsert(ctx, a, fuzzVectors("a", fuzzAIDs, []float32{1, 0})); err != nil {
			t.Fatal(err)
		}
		aIDs := slices.Clone(fuzzAIDs)
		var md map[string]any
		if json.Unmarshal(data, &md) != nil {
			md = nil
		}
		// Upsert: whatever the metadata says, the record is a's.
		um := maps.Clone(md)
		if um == nil {
			um = map[string]any{}
		}
		um["owner"] = "a"
		if classified(t, "upsert", x.Upsert(ctx, a, []vectorstore.Vector{{ID: id, Values: []float32{1, 0.5}, Metadata: um}})) {
			aIDs = append(aIDs, id)
		}
		mine := func(what, id string, m map[string]any) {
			t.Helper()
			if !slices.Contains(aIDs, id) || m != nil && m["owner"] != "a" {
				t.Fatalf("%s returned %q %v, not one of a's records %q", what, id, m, aIDs)
			}
		}
		ms, err := x.Query(ctx, a, vectorstore.Query{Vector: []float32{1, 1}, TopK: 100, IncludeMetadata: true, IncludeValues: true, Filter: md})
		if classified(t, "query", err) {
			for _, m := range ms {
				mine("query", m.ID, m.Metadata)
			}
		}
		vs, err := x.Fetch(ctx, a, append([]string{id}, append(slices.Clone(fuzzBIDs), fuzzCIDs...)...))
		if classified(t, "fetch", err) {
			for _, v := range vs {
				mine("fetch", v.ID, v.Metadata)
			}
		}
		// List from the fuzzed token, then follow the pages: no page holds another
		// clone's ID, and no ID comes twice.
		seen := map[string]bool{}
		for pages := 0; pages < 10; pages++ {
			p, err := x.List(ctx, a, &vectorstore.ListOptions{Prefix: prefix, Limit: int(limit % 5), PageToken: token})
			if !classified(t, "list", err) {
				break
			}
			for _, lid := range p.IDs {
				mine("list", lid, nil)
				if seen[lid] {
					t.Fatalf("list returned %q twice", lid)
				}
				seen[lid] = true
			}
			if token = p.NextPageToken; token == "" {
				break
			}
		}
		if len(md) > 0 {
			classified(t, "delete by filter", x.DeleteByFilter(ctx, a, md))
		}
		classified(t, "delete", x.Delete(ctx, a, append([]string{id}, append(slices.Clone(fuzzBIDs), fuzzCIDs...)...)))

		if got := stateOf(t, b, fuzzBIDs); !same(got, wantB) {
			t.Fatalf("b changed by a's operations (id %q, filter %s): %+v; want %+v", id, data, got, wantB)
		}
		if got := stateOf(t, c, fuzzCIDs); !same(got, wantC) {
			t.Fatalf("c (a's tenant) changed by a's operations (id %q, filter %s): %+v; want %+v", id, data, got, wantC)
		}
	})
}
