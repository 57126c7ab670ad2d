package pineconetest_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// connect returns a go-pinecone connection to namespace ns of a new emulator.
func connect(t *testing.T, opts *pineconetest.Options, ns string) (*pineconetest.Server, *pinecone.IndexConnection) {
	t.Helper()
	srv := pineconetest.Start(t, opts)
	pc, err := pinecone.NewClientBase(pinecone.NewClientBaseParams{Headers: map[string]string{"Api-Key": opts.APIKey}})
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pc.Index(pinecone.NewIndexConnParams{Host: srv.Host(), Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	return srv, idx
}

func vec(id string, md map[string]any, values ...float32) *pinecone.Vector {
	v := &pinecone.Vector{Id: id, Values: &values}
	if md != nil {
		m, err := pinecone.NewMetadata(md)
		if err != nil {
			panic(err)
		}
		v.Metadata = m
	}
	return v
}

func matchIDs(res *pinecone.QueryVectorsResponse) []string {
	var out []string
	for _, m := range res.Matches {
		out = append(out, m.Vector.Id)
	}
	return out
}

func code(err error) codes.Code { return status.Code(err) }

func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		metric string
		want   []string
		scores []float32
	}{
		// query (1, 1): a = (2, 0), b = (1, 1), c = (0, 3)
		{"cosine", []string{"b", "a", "c"}, []float32{1, float32(1 / math.Sqrt2), float32(1 / math.Sqrt2)}},
		{"dotproduct", []string{"c", "a", "b"}, []float32{3, 2, 2}},
		{"euclidean", []string{"b", "a", "c"}, []float32{0, 2, 5}},
	} {
		t.Run(tc.metric, func(t *testing.T) {
			ctx := context.Background()
			_, idx := connect(t, &pineconetest.Options{Dimension: 2, Metric: tc.metric}, "ns")
			if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("c", nil, 0, 3), vec("a", nil, 2, 0), vec("b", nil, 1, 1)}); err != nil {
				t.Fatal(err)
			}
			res, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 1}, TopK: 3})
			if err != nil {
				t.Fatal(err)
			}
			if got := matchIDs(res); !slices.Equal(got, tc.want) {
				t.Fatalf("order = %v, want %v (ties by ascending ID)", got, tc.want)
			}
			for i, m := range res.Matches {
				if math.Abs(float64(m.Score-tc.scores[i])) > 1e-5 {
					t.Errorf("score of %s = %v, want %v", m.Vector.Id, m.Score, tc.scores[i])
				}
				if m.Vector.Values != nil || m.Vector.Metadata != nil {
					t.Errorf("values or metadata returned without being asked for")
				}
			}
		})
	}
}

func TestSemantics(t *testing.T) {
	ctx := context.Background()
	srv, idx := connect(t, &pineconetest.Options{Dimension: 3, APIKey: "k"}, "ns1")
	_, err := idx.UpsertVectors(ctx, []*pinecone.Vector{
		vec("a", map[string]any{"genre": "drama", "year": 2020, "tags": []any{"x", "y"}}, 1, 0, 0),
		vec("b", map[string]any{"genre": "comedy", "year": 2022}, 0.9, 0.1, 0),
		vec("c", nil, 0, 1, 0),
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("FilterBeforeRanking", func(t *testing.T) {
		f, _ := pinecone.NewMetadataFilter(map[string]any{"$or": []any{
			map[string]any{"year": map[string]any{"$gte": 2021}},
			map[string]any{"tags": map[string]any{"$in": []any{"y"}}},
		}})
		res, err := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{0, 1, 0}, TopK: 10, MetadataFilter: f, IncludeMetadata: true, IncludeValues: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := matchIDs(res); !slices.Equal(got, []string{"b", "a"}) {
			t.Fatalf("filtered = %v, want [b a]", got)
		}
		if md := res.Matches[0].Vector.Metadata.AsMap(); md["genre"] != "comedy" {
			t.Errorf("metadata = %v", md)
		}
		if v := *res.Matches[1].Vector.Values; !slices.Equal(v, []float32{1, 0, 0}) {
			t.Errorf("values = %v", v)
		}
	})

	t.Run("QueryByID", func(t *testing.T) {
		res, err := idx.QueryByVectorId(ctx, &pinecone.QueryByVectorIdRequest{VectorId: "a", TopK: 2})
		if err != nil {
			t.Fatal(err)
		}
		if got := matchIDs(res); !slices.Equal(got, []string{"a", "b"}) {
			t.Fatalf("query by ID = %v", got)
		}
	})

	t.Run("EmptyNamespace", func(t *testing.T) {
		other := idx.WithNamespace("nobody")
		res, err := other.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0, 0}, TopK: 3})
		if err != nil || len(res.Matches) != 0 {
			t.Fatalf("query of an empty namespace = %v, %v", res, err)
		}
		f, err := other.FetchVectors(ctx, []string{"a"})
		if err != nil || len(f.Vectors) != 0 {
			t.Fatalf("fetch from another namespace = %v, %v", f, err)
		}
		if _, err := other.DescribeNamespace(ctx, "nobody"); code(err) != codes.NotFound {
			t.Fatalf("DescribeNamespace of a missing namespace: %v", err)
		}
		if err := other.DeleteNamespace(ctx, "nobody"); code(err) != codes.NotFound {
			t.Fatalf("DeleteNamespace of a missing namespace: %v", err)
		}
	})

	t.Run("DeleteMissingID", func(t *testing.T) {
		if err := idx.DeleteVectorsById(ctx, []string{"never-existed"}); err != nil {
			t.Fatalf("deleting a missing ID: %v", err)
		}
	})

	t.Run("StatsAndNamespaces", func(t *testing.T) {
		def := idx.WithNamespace("")
		if _, err := def.UpsertVectors(ctx, []*pinecone.Vector{vec("d", nil, 1, 1, 1)}); err != nil {
			t.Fatal(err)
		}
		st, err := idx.DescribeIndexStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.TotalVectorCount != 4 || st.Namespaces["ns1"].VectorCount != 3 || st.Namespaces["__default__"].VectorCount != 1 || *st.Dimension != 3 {
			t.Fatalf("stats = %+v", st)
		}
		limit := uint32(1)
		ls, err := idx.ListNamespaces(ctx, &pinecone.ListNamespacesParams{Limit: &limit})
		if err != nil || len(ls.Namespaces) != 1 || ls.Namespaces[0].Name != "__default__" || ls.Pagination == nil {
			t.Fatalf("ListNamespaces page 1 = %+v, %v", ls, err)
		}
		ls, err = idx.ListNamespaces(ctx, &pinecone.ListNamespacesParams{Limit: &limit, PaginationToken: &ls.Pagination.Next})
		if err != nil || len(ls.Namespaces) != 1 || ls.Namespaces[0].Name != "ns1" || ls.Namespaces[0].RecordCount != 3 {
			t.Fatalf("ListNamespaces page 2 = %+v, %v", ls, err)
		}
		if err := def.DeleteAllVectorsInNamespace(ctx); err != nil {
			t.Fatal(err)
		}
		// A serverless namespace outlives its records.
		if ns := srv.Namespaces(); len(ns) != 2 || ns["ns1"] != 3 || ns["__default__"] != 0 {
			t.Fatalf("namespaces after deleting every record of the default one = %v", ns)
		}
		if err := def.DeleteNamespace(ctx, "__default__"); err != nil {
			t.Fatal(err)
		}
		if ns := srv.Namespaces(); len(ns) != 1 || ns["ns1"] != 3 {
			t.Fatalf("namespaces after deleting the default one = %v", ns)
		}
	})

	t.Run("InvalidArguments", func(t *testing.T) {
		_, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("z", nil, 1, 0)})
		if code(err) != codes.InvalidArgument {
			t.Errorf("dimension mismatch: %v", err)
		}
		_, err = idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0, 0}, TopK: 0})
		if code(err) != codes.InvalidArgument {
			t.Errorf("top_k 0: %v", err)
		}
		_, err = idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0, 0}, TopK: pineconetest.MaxTopK + 1})
		if code(err) != codes.InvalidArgument {
			t.Errorf("top_k 10001: %v", err)
		}
		f, _ := pinecone.NewMetadataFilter(map[string]any{"genre": map[string]any{"$regex": "d.*"}})
		_, err = idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 0, 0}, TopK: 1, MetadataFilter: f})
		if code(err) != codes.InvalidArgument {
			t.Errorf("unsupported operator: %v", err)
		}
		big := make([]byte, 41*1024)
		for i := range big {
			big[i] = 'x'
		}
		_, err = idx.UpsertVectors(ctx, []*pinecone.Vector{vec("z", map[string]any{"t": string(big)}, 1, 0, 0)})
		if code(err) != codes.InvalidArgument {
			t.Errorf("metadata over 40 KB: %v", err)
		}
		var many []*pinecone.Vector
		for i := range 1001 {
			many = append(many, vec(fmt.Sprint(i), nil, 1, 0, 0))
		}
		if _, err = idx.UpsertVectors(ctx, many); code(err) != codes.InvalidArgument {
			t.Errorf("1001 vectors in one upsert: %v", err)
		}
	})

	t.Run("APIKey", func(t *testing.T) {
		pc, _ := pinecone.NewClientBase(pinecone.NewClientBaseParams{Headers: map[string]string{"Api-Key": "wrong"}})
		bad, err := pc.Index(pinecone.NewIndexConnParams{Host: srv.Host(), Namespace: "ns1"})
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		if _, err := bad.FetchVectors(ctx, []string{"a"}); code(err) != codes.Unauthenticated {
			t.Fatalf("wrong API key: %v", err)
		}
	})

	t.Run("FailNext", func(t *testing.T) {
		srv.FailNext("Fetch", 1, codes.ResourceExhausted, "slow down")
		if _, err := idx.FetchVectors(ctx, []string{"a"}); code(err) != codes.ResourceExhausted {
			t.Fatalf("injected fault: %v", err)
		}
		if _, err := idx.FetchVectors(ctx, []string{"a"}); err != nil {
			t.Fatalf("after the fault: %v", err)
		}
	})
}

func TestList(t *testing.T) {
	ctx := context.Background()
	_, idx := connect(t, &pineconetest.Options{Dimension: 2}, "ns")
	var vs []*pinecone.Vector
	for i := range 7 {
		vs = append(vs, vec(fmt.Sprintf("doc1#%d", i), nil, 1, float32(i)))
	}
	vs = append(vs, vec("doc2#0", nil, 1, 0))
	if _, err := idx.UpsertVectors(ctx, vs); err != nil {
		t.Fatal(err)
	}
	prefix, limit := "doc1#", uint32(3)
	var got []string
	var token *string
	for {
		res, err := idx.ListVectors(ctx, &pinecone.ListVectorsRequest{Prefix: &prefix, Limit: &limit, PaginationToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range res.VectorIds {
			got = append(got, *id)
		}
		if res.NextPaginationToken == nil {
			break
		}
		token = res.NextPaginationToken
	}
	want := []string{"doc1#0", "doc1#1", "doc1#2", "doc1#3", "doc1#4", "doc1#5", "doc1#6"}
	if !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
}

func TestUpdateAndFetchByMetadata(t *testing.T) {
	ctx := context.Background()
	_, idx := connect(t, &pineconetest.Options{Dimension: 2}, "ns")
	_, err := idx.UpsertVectors(ctx, []*pinecone.Vector{
		vec("a", map[string]any{"kind": "x"}, 1, 0),
		vec("b", map[string]any{"kind": "y"}, 0, 1),
		vec("c", map[string]any{"kind": "x"}, 1, 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	md, _ := pinecone.NewMetadata(map[string]any{"tag": "t"})
	// A missing ID: no change, no error (documented).
	if err := idx.UpdateVector(ctx, &pinecone.UpdateVectorRequest{Id: "missing", Metadata: md}); err != nil {
		t.Fatalf("update of a missing ID: %v", err)
	}
	if err := idx.UpdateVector(ctx, &pinecone.UpdateVectorRequest{Id: "b", Values: []float32{2, 0}, Metadata: md}); err != nil {
		t.Fatal(err)
	}
	res, err := idx.FetchVectors(ctx, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	b := res.Vectors["b"]
	if got := b.Metadata.AsMap(); got["tag"] != "t" || got["kind"] != "y" || !slices.Equal(*b.Values, []float32{2, 0}) {
		t.Fatalf("after update: %v %v", *b.Values, got)
	}

	f, _ := pinecone.NewMetadataFilter(map[string]any{"kind": "x"})
	dry := true
	ur, err := idx.UpdateVectorsByMetadata(ctx, &pinecone.UpdateVectorsByMetadataRequest{Filter: f, Metadata: md, DryRun: &dry})
	if err != nil || ur.MatchedRecords != 2 {
		t.Fatalf("dry run = %+v, %v", ur, err)
	}
	tagged, _ := pinecone.NewMetadataFilter(map[string]any{"tag": "t"})
	fr, err := idx.FetchVectorsByMetadata(ctx, &pinecone.FetchVectorsByMetadataRequest{Filter: tagged})
	if err != nil || len(fr.Vectors) != 1 {
		t.Fatalf("after the dry run %d tagged, %v; want 1", len(fr.Vectors), err)
	}
	ur, err = idx.UpdateVectorsByMetadata(ctx, &pinecone.UpdateVectorsByMetadataRequest{Filter: f, Metadata: md})
	if err != nil || ur.MatchedRecords != 2 {
		t.Fatalf("update by metadata = %+v, %v", ur, err)
	}
	limit := uint32(2)
	fr, err = idx.FetchVectorsByMetadata(ctx, &pinecone.FetchVectorsByMetadataRequest{Filter: tagged, Limit: &limit})
	if err != nil || len(fr.Vectors) != 2 || fr.Pagination == nil {
		t.Fatalf("page 1 = %+v, %v", fr, err)
	}
	fr, err = idx.FetchVectorsByMetadata(ctx, &pinecone.FetchVectorsByMetadataRequest{Filter: tagged, Limit: &limit, PaginationToken: &fr.Pagination.Next})
	if err != nil || len(fr.Vectors) != 1 || fr.Pagination != nil {
		t.Fatalf("page 2 = %+v, %v", fr, err)
	}
	if _, ok := fr.Vectors["c"]; !ok {
		t.Fatalf("page 2 = %v, want c", fr.Vectors)
	}
}
