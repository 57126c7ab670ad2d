package pineconetest_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"google.golang.org/grpc/codes"

	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// Values come back bit for bit, whatever the metric, after an upsert and after an
// update, from Fetch, Query and FetchByMetadata.
func TestExactRoundTrip(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const dim = 384
	random := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64()) * 0.037
		}
		return v
	}
	for _, metric := range []string{"cosine", "dotproduct", "euclidean"} {
		t.Run(metric, func(t *testing.T) {
			_, idx := connect(t, &pineconetest.Options{Dimension: dim, Metric: metric}, "ns")
			want := map[string][]float32{}
			var vs []*pinecone.Vector
			for i := range 20 {
				id := fmt.Sprint("v", i)
				want[id] = random()
				vs = append(vs, vec(id, map[string]any{"k": "x"}, want[id]...))
			}
			if _, err := idx.UpsertVectors(ctx, vs); err != nil {
				t.Fatal(err)
			}
			want["v3"] = random()
			if err := idx.UpdateVector(ctx, &pinecone.UpdateVectorRequest{Id: "v3", Values: want["v3"]}); err != nil {
				t.Fatal(err)
			}
			check := func(how, id string, got *[]float32) {
				t.Helper()
				if got == nil || !slices.Equal(*got, want[id]) {
					t.Fatalf("%s: values of %s differ from what was written", how, id)
				}
			}
			res, err := idx.FetchVectors(ctx, []string{"v0", "v3", "v19"})
			if err != nil || len(res.Vectors) != 3 {
				t.Fatalf("Fetch = %v, %v", res, err)
			}
			for id, v := range res.Vectors {
				check("Fetch", id, v.Values)
			}
			q, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: want["v3"], TopK: 20, IncludeValues: true})
			if err != nil || len(q.Matches) != 20 {
				t.Fatalf("Query = %v, %v", q, err)
			}
			for _, m := range q.Matches {
				check("Query", m.Vector.Id, m.Vector.Values)
			}
			f, _ := pinecone.NewMetadataFilter(map[string]any{"k": "x"})
			fm, err := idx.FetchVectorsByMetadata(ctx, &pinecone.FetchVectorsByMetadataRequest{Filter: f})
			if err != nil || len(fm.Vectors) != 20 {
				t.Fatalf("FetchByMetadata = %v, %v", fm, err)
			}
			for id, v := range fm.Vectors {
				check("FetchByMetadata", id, v.Values)
			}
		})
	}
}

func TestDescribeIndexStatsFilter(t *testing.T) {
	ctx := context.Background()
	seed := func(t *testing.T, idx *pinecone.IndexConnection) {
		t.Helper()
		_, err := idx.UpsertVectors(ctx, []*pinecone.Vector{
			vec("a", map[string]any{"k": "x"}, 1, 0), vec("b", map[string]any{"k": "y"}, 0, 1), vec("c", nil, 1, 1),
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	empty, _ := pinecone.NewMetadataFilter(map[string]any{})
	kx, _ := pinecone.NewMetadataFilter(map[string]any{"k": "x"})

	t.Run("ServerlessRefuses", func(t *testing.T) {
		_, idx := connect(t, &pineconetest.Options{Dimension: 2}, "ns")
		seed(t, idx)
		for _, f := range []*pinecone.MetadataFilter{empty, kx} {
			if _, err := idx.DescribeIndexStatsFiltered(ctx, f); code(err) != codes.InvalidArgument {
				t.Errorf("filtered stats on a serverless index: %v, want INVALID_ARGUMENT", err)
			}
		}
		if st, err := idx.DescribeIndexStats(ctx); err != nil || st.TotalVectorCount != 3 {
			t.Fatalf("unfiltered stats = %+v, %v", st, err)
		}
	})
	t.Run("Pod", func(t *testing.T) {
		_, idx := connect(t, &pineconetest.Options{Dimension: 2, Kind: pineconetest.Pod}, "ns")
		seed(t, idx)
		st, err := idx.DescribeIndexStatsFiltered(ctx, empty)
		if err != nil || st.TotalVectorCount != 3 || st.Namespaces["ns"].VectorCount != 3 {
			t.Fatalf("stats filtered by {} = %+v, %v; want all 3", st, err)
		}
		st, err = idx.DescribeIndexStatsFiltered(ctx, kx)
		if err != nil || st.TotalVectorCount != 1 || st.Namespaces["ns"].VectorCount != 1 {
			t.Fatalf("stats filtered by k=x = %+v, %v; want 1", st, err)
		}
		bad, _ := pinecone.NewMetadataFilter(map[string]any{"k": map[string]any{"$like": "x"}})
		if _, err := idx.DescribeIndexStatsFiltered(ctx, bad); code(err) != codes.InvalidArgument {
			t.Fatalf("stats with a bad filter: %v", err)
		}
	})
}

func sparse(indices []uint32, values []float32) *pinecone.SparseValues {
	return &pinecone.SparseValues{Indices: indices, Values: values}
}

func TestSparseValues(t *testing.T) {
	ctx := context.Background()
	_, idx := connect(t, &pineconetest.Options{Dimension: 2, Metric: "dotproduct"}, "ns")
	a := vec("a", nil, 1, 0)
	a.SparseValues = sparse([]uint32{7, 3}, []float32{0.5, 2})
	b := vec("b", nil, 1, 0)
	b.SparseValues = sparse([]uint32{9}, []float32{1})
	if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{a, b, vec("c", nil, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	res, err := idx.FetchVectors(ctx, []string{"a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if sv := res.Vectors["a"].SparseValues; sv == nil || !slices.Equal(sv.Indices, []uint32{7, 3}) || !slices.Equal(sv.Values, []float32{0.5, 2}) {
		t.Fatalf("fetched sparse values = %+v, want them as upserted", sv)
	}
	if sv := res.Vectors["c"].SparseValues; sv != nil {
		t.Fatalf("a record without sparse values fetched %+v", sv)
	}

	// Hybrid query: dense scores tie at 1; the sparse part decides.
	q := func(s *pinecone.SparseValues) []string {
		t.Helper()
		r, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0}, SparseValues: s, TopK: 3, IncludeValues: true})
		if err != nil {
			t.Fatal(err)
		}
		if s != nil && r.Matches[0].Vector.SparseValues == nil {
			t.Fatalf("query with include_values returned no sparse values")
		}
		return matchIDs(r)
	}
	if got := q(sparse([]uint32{9}, []float32{3})); !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Fatalf("sparse query toward b = %v", got)
	}
	if got := q(sparse([]uint32{3}, []float32{1})); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("sparse query toward a = %v", got)
	}
	// Update replaces the sparse values.
	if err := idx.UpdateVector(ctx, &pinecone.UpdateVectorRequest{Id: "c", SparseValues: sparse([]uint32{1}, []float32{10})}); err != nil {
		t.Fatal(err)
	}
	if got := q(sparse([]uint32{1}, []float32{1})); got[0] != "c" {
		t.Fatalf("after the sparse update = %v, want c first", got)
	}

	many := make([]uint32, pineconetest.MaxSparseValues+1)
	manyVals := make([]float32, len(many))
	for i := range many {
		many[i], manyVals[i] = uint32(i), 1
	}
	for name, sv := range map[string]*pinecone.SparseValues{
		"duplicate indices": sparse([]uint32{1, 1}, []float32{1, 2}),
		"length mismatch":   sparse([]uint32{1, 2}, []float32{1}),
		"NaN":               sparse([]uint32{1}, []float32{float32(math.NaN())}),
		"too many":          sparse(many, manyVals),
	} {
		bad := vec("bad", nil, 1, 0)
		bad.SparseValues = sv
		if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{bad}); code(err) != codes.InvalidArgument {
			t.Errorf("upsert with %s: %v, want INVALID_ARGUMENT", name, err)
		}
		if err := idx.UpdateVector(ctx, &pinecone.UpdateVectorRequest{Id: "a", SparseValues: sv}); code(err) != codes.InvalidArgument {
			t.Errorf("update with %s: %v, want INVALID_ARGUMENT", name, err)
		}
		if _, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0}, SparseValues: sv, TopK: 1}); code(err) != codes.InvalidArgument {
			t.Errorf("query with %s: %v, want INVALID_ARGUMENT", name, err)
		}
	}
	if res, _ := idx.FetchVectors(ctx, []string{"bad"}); len(res.Vectors) != 0 {
		t.Fatal("a refused upsert wrote")
	}
	onlySparse := &pinecone.Vector{Id: "s", SparseValues: sparse([]uint32{1}, []float32{1})}
	if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{onlySparse}); code(err) != codes.InvalidArgument {
		t.Errorf("sparse values without dense values in a dense index: %v", err)
	}

	// Sparse queries need the dotproduct metric.
	_, cos := connect(t, &pineconetest.Options{Dimension: 2}, "ns")
	if _, err := cos.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0}, SparseValues: sparse([]uint32{1}, []float32{1}), TopK: 1}); code(err) != codes.InvalidArgument {
		t.Fatalf("sparse query on a cosine index: %v", err)
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	ctx := context.Background()
	t.Run("Serverless", func(t *testing.T) {
		srv, idx := connect(t, &pineconetest.Options{Dimension: 2}, "ns")
		d, err := idx.CreateNamespace(ctx, &pinecone.CreateNamespaceParams{Name: "made", Schema: &pinecone.MetadataSchema{Fields: map[string]pinecone.MetadataSchemaField{"k": {Filterable: true}}}})
		if err != nil || d.Name != "made" || d.RecordCount != 0 {
			t.Fatalf("CreateNamespace = %+v, %v", d, err)
		}
		if _, err := idx.CreateNamespace(ctx, &pinecone.CreateNamespaceParams{Name: "made"}); code(err) != codes.AlreadyExists {
			t.Fatalf("creating it again: %v, want ALREADY_EXISTS", err)
		}
		if _, err := idx.CreateNamespace(ctx, &pinecone.CreateNamespaceParams{Name: ""}); code(err) != codes.InvalidArgument {
			t.Fatalf("creating an unnamed namespace: %v", err)
		}
		if d, err := idx.DescribeNamespace(ctx, "made"); err != nil || d.RecordCount != 0 {
			t.Fatalf("DescribeNamespace of the new namespace = %+v, %v", d, err)
		}
		// Upserted into, emptied: it stays until DeleteNamespace.
		if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("a", nil, 1, 0)}); err != nil {
			t.Fatal(err)
		}
		if err := idx.DeleteVectorsById(ctx, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if d, err := idx.DescribeNamespace(ctx, "ns"); err != nil || d.RecordCount != 0 {
			t.Fatalf("DescribeNamespace after the last record was deleted = %+v, %v; want it to exist with 0", d, err)
		}
		ls, err := idx.ListNamespaces(ctx, nil)
		if err != nil || len(ls.Namespaces) != 2 || ls.TotalCount != 2 {
			t.Fatalf("ListNamespaces = %+v, %v", ls, err)
		}
		if err := idx.DeleteNamespace(ctx, "ns"); err != nil {
			t.Fatal(err)
		}
		if _, err := idx.DescribeNamespace(ctx, "ns"); code(err) != codes.NotFound {
			t.Fatalf("after DeleteNamespace: %v", err)
		}
		if ns := srv.Namespaces(); len(ns) != 1 {
			t.Fatalf("namespaces = %v", ns)
		}
	})
	t.Run("Pod", func(t *testing.T) {
		srv, idx := connect(t, &pineconetest.Options{Dimension: 2, Kind: pineconetest.Pod}, "ns")
		if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("a", nil, 1, 0)}); err != nil {
			t.Fatal(err)
		}
		if err := idx.DeleteVectorsById(ctx, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if ns := srv.Namespaces(); len(ns) != 0 {
			t.Fatalf("a pod namespace outlived its last record: %v", ns)
		}
	})
}

func readUnits(u *pinecone.Usage) uint32 {
	if u == nil {
		return 0
	}
	return u.ReadUnits
}

func TestUsage(t *testing.T) {
	ctx := context.Background()
	f, _ := pinecone.NewMetadataFilter(map[string]any{"k": "x"})
	for _, kind := range []string{pineconetest.Serverless, pineconetest.Pod} {
		t.Run(kind, func(t *testing.T) {
			_, idx := connect(t, &pineconetest.Options{Dimension: 2, Kind: kind}, "ns")
			var vs []*pinecone.Vector
			var ids []string
			for i := range 25 {
				ids = append(ids, fmt.Sprint("v", i))
				vs = append(vs, vec(ids[i], map[string]any{"k": "x"}, 1, float32(i)))
			}
			if _, err := idx.UpsertVectors(ctx, vs); err != nil {
				t.Fatal(err)
			}
			q, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0}, TopK: 3})
			if err != nil {
				t.Fatal(err)
			}
			fr, err := idx.FetchVectors(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			if kind == pineconetest.Pod {
				if q.Usage != nil || fr.Usage != nil {
					t.Fatalf("a pod index reported usage: %+v %+v", q.Usage, fr.Usage)
				}
				return
			}
			if readUnits(q.Usage) != 1 {
				t.Errorf("query usage = %+v, want 1 read unit", q.Usage)
			}
			if readUnits(fr.Usage) != 3 {
				t.Errorf("fetch of 25 usage = %+v, want 3 read units (1 per 10 records)", fr.Usage)
			}
			if fr, err := idx.FetchVectors(ctx, []string{"missing"}); err != nil || readUnits(fr.Usage) != 1 {
				t.Errorf("fetch of nothing usage = %+v, %v; want the minimum of 1", fr, err)
			}
			lr, err := idx.ListVectors(ctx, &pinecone.ListVectorsRequest{})
			if err != nil || readUnits(lr.Usage) != 1 {
				t.Errorf("list usage = %+v, %v; want 1", lr, err)
			}
			fm, err := idx.FetchVectorsByMetadata(ctx, &pinecone.FetchVectorsByMetadataRequest{Filter: f})
			if err != nil || readUnits(fm.Usage) != 3 {
				t.Errorf("fetch by metadata usage = %+v, %v; want 3", fm, err)
			}
		})
	}
}

func TestPodRefusesServerlessOperations(t *testing.T) {
	ctx := context.Background()
	_, idx := connect(t, &pineconetest.Options{Dimension: 2, Kind: pineconetest.Pod}, "ns")
	if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("a", map[string]any{"k": "x"}, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	f, _ := pinecone.NewMetadataFilter(map[string]any{"k": "x"})
	md, _ := pinecone.NewMetadata(map[string]any{"j": "y"})
	calls := map[string]func() error{
		"List": func() error { _, err := idx.ListVectors(ctx, &pinecone.ListVectorsRequest{}); return err },
		"CreateNamespace": func() error {
			_, err := idx.CreateNamespace(ctx, &pinecone.CreateNamespaceParams{Name: "x"})
			return err
		},
		"ListNamespaces": func() error { _, err := idx.ListNamespaces(ctx, nil); return err },
		"DescribeNamespace": func() error {
			_, err := idx.DescribeNamespace(ctx, "ns")
			return err
		},
		"DeleteNamespace": func() error { return idx.DeleteNamespace(ctx, "ns") },
		"FetchByMetadata": func() error {
			_, err := idx.FetchVectorsByMetadata(ctx, &pinecone.FetchVectorsByMetadataRequest{Filter: f})
			return err
		},
		"UpdateByMetadata": func() error {
			_, err := idx.UpdateVectorsByMetadata(ctx, &pinecone.UpdateVectorsByMetadataRequest{Filter: f, Metadata: md})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); code(err) != codes.Unimplemented {
			t.Errorf("%s on a pod index: %v, want UNIMPLEMENTED", name, err)
		}
	}
	// What pods do have still works.
	if err := idx.DeleteVectorsByFilter(ctx, f); err != nil {
		t.Fatalf("delete by filter on a pod index: %v", err)
	}
	if st, err := idx.DescribeIndexStats(ctx); err != nil || st.TotalVectorCount != 0 {
		t.Fatalf("stats = %+v, %v", st, err)
	}
}

func TestLimits(t *testing.T) {
	ctx := context.Background()
	_, idx := connect(t, &pineconetest.Options{Dimension: 2}, "ns")
	big := strings.Repeat("x", 30*1024)

	t.Run("MetadataMergedByUpdate", func(t *testing.T) {
		if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("m", map[string]any{"a": big, "tag": "t"}, 1, 0)}); err != nil {
			t.Fatal(err)
		}
		more, _ := pinecone.NewMetadata(map[string]any{"b": big}) // each under 40 KB, merged over
		if err := idx.UpdateVector(ctx, &pinecone.UpdateVectorRequest{Id: "m", Metadata: more}); code(err) != codes.InvalidArgument {
			t.Fatalf("update by ID merging past 40 KB: %v, want INVALID_ARGUMENT", err)
		}
		f, _ := pinecone.NewMetadataFilter(map[string]any{"tag": "t"})
		if _, err := idx.UpdateVectorsByMetadata(ctx, &pinecone.UpdateVectorsByMetadataRequest{Filter: f, Metadata: more}); code(err) != codes.InvalidArgument {
			t.Fatalf("update by filter merging past 40 KB: %v, want INVALID_ARGUMENT", err)
		}
		res, _ := idx.FetchVectors(ctx, []string{"m"})
		if md := res.Vectors["m"].Metadata.AsMap(); md["b"] != nil {
			t.Fatal("a refused update changed the record")
		}
	})

	t.Run("TopKAndResponseSize", func(t *testing.T) {
		var vs []*pinecone.Vector
		for i := range 300 {
			vs = append(vs, vec(fmt.Sprintf("big%03d", i), map[string]any{"text": big}, 1, float32(i)))
		}
		for i := 0; i < len(vs); i += 50 {
			if _, err := idx.UpsertVectors(ctx, vs[i:i+50]); err != nil {
				t.Fatal(err)
			}
		}
		// top_k 10,000 is allowed with metadata; 300 records of 30 KB make 9 MB: over the cap.
		_, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0}, TopK: pineconetest.MaxTopK, IncludeMetadata: true})
		if code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "4194304") {
			t.Fatalf("a 9 MB query response: %v, want INVALID_ARGUMENT naming the 4 MB limit", err)
		}
		res, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0}, TopK: pineconetest.MaxTopK})
		if err != nil || len(res.Matches) != 301 {
			t.Fatalf("top_k 10000 without metadata = %d matches, %v", len(res.Matches), err)
		}
		res, err = idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0}, TopK: 100, IncludeMetadata: true})
		if err != nil || len(res.Matches) != 100 {
			t.Fatalf("3 MB response = %d matches, %v", len(res.Matches), err)
		}
	})

	t.Run("ListLimitAbove100", func(t *testing.T) {
		limit := uint32(250)
		res, err := idx.ListVectors(ctx, &pinecone.ListVectorsRequest{Limit: &limit})
		if err != nil || len(res.VectorIds) != 250 || res.NextPaginationToken == nil {
			t.Fatalf("list with limit 250 = %d IDs, %v", len(res.VectorIds), err)
		}
		zero := uint32(0)
		if _, err := idx.ListVectors(ctx, &pinecone.ListVectorsRequest{Limit: &zero}); code(err) != codes.InvalidArgument {
			t.Fatalf("list with limit 0: %v", err)
		}
	})
}

// listenable returns a free port of the loopback address host, or skips.
func freePort(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("no %s loopback here: %v", host, err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	return port
}

func TestListenAddress(t *testing.T) {
	ctx := context.Background()
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			var srv *pineconetest.Server
			var addr string
			for attempt := 0; ; attempt++ {
				addr = net.JoinHostPort(host, freePort(t, host))
				var err error
				srv, err = pineconetest.NewServer(&pineconetest.Options{Dimension: 2, Addr: addr})
				if err == nil {
					break
				}
				// Another process took the port between our probe and our listen: retry.
				if !errors.Is(err, syscall.EADDRINUSE) && !strings.Contains(err.Error(), "address already in use") || attempt == 5 {
					t.Fatal(err)
				}
			}
			defer srv.Close()
			if srv.Addr() != addr || srv.Host() != "http://"+addr {
				t.Fatalf("Addr %q Host %q, want %q", srv.Addr(), srv.Host(), addr)
			}
			pc, _ := pinecone.NewClientBase(pinecone.NewClientBaseParams{})
			idx, err := pc.Index(pinecone.NewIndexConnParams{Host: srv.Host(), Namespace: "ns"})
			if err != nil {
				t.Fatal(err)
			}
			defer idx.Close()
			if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("a", nil, 1, 0)}); err != nil {
				t.Fatalf("upsert over %s: %v", addr, err)
			}
		})
	}
	if _, err := pineconetest.NewServer(&pineconetest.Options{Dimension: 2, Addr: "not an address"}); err == nil {
		t.Fatal("a bad address was accepted")
	}
}
