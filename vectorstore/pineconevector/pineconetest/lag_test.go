package pineconetest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func count(t *testing.T, idx *pinecone.IndexConnection) int {
	t.Helper()
	res, err := idx.QueryByVectorValues(context.Background(), &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 1}, TopK: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Matches)
}

func TestLagByRequests(t *testing.T) {
	ctx := context.Background()
	srv, idx := connect(t, &pineconetest.Options{Dimension: 2, Lag: &pineconetest.Lag{Requests: 3}}, "ns")
	if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("a", nil, 1, 0), vec("b", nil, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	// Request 1 after the write: not visible to queries, listings or stats...
	if n := count(t, idx); n != 0 {
		t.Fatalf("query right after the upsert sees %d records, want 0 (lag)", n)
	}
	// ...but Fetch by ID sees it (request 2).
	if res, err := idx.FetchVectors(ctx, []string{"a"}); err != nil || len(res.Vectors) != 1 {
		t.Fatalf("fetch by ID = %v, %v; want the record", res, err)
	}
	if srv.Pending() != 1 || srv.Namespaces()["ns"] != 2 {
		t.Fatalf("pending %d, namespaces %v", srv.Pending(), srv.Namespaces())
	}
	// Request 3: visible everywhere.
	st, err := idx.DescribeIndexStats(ctx)
	if err != nil || st.TotalVectorCount != 2 {
		t.Fatalf("stats three requests later = %+v, %v; want 2", st, err)
	}
	// Writes become visible in order: the upsert of c before the deletion of a and c.
	if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("c", nil, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	if err := idx.DeleteVectorsById(ctx, []string{"a", "c"}); err != nil {
		t.Fatal(err)
	}
	seen := []int{}
	for range 4 {
		seen = append(seen, count(t, idx))
	}
	if want := []int{2, 3, 1, 1}; !equalInts(seen, want) {
		t.Fatalf("record counts seen while the writes land = %v, want %v", seen, want)
	}
	if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("d", nil, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	srv.Settle()
	if n := count(t, idx); n != 2 {
		t.Fatalf("after Settle %d records, want 2", n)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLagByClock(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	srv, idx := connect(t, &pineconetest.Options{Dimension: 2, Lag: &pineconetest.Lag{Duration: time.Second, Clock: clock.Now, Fetch: true}}, "ns")
	if _, err := idx.UpsertVectors(ctx, []*pinecone.Vector{vec("a", nil, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	for range 5 { // requests alone do not make it visible
		if n := count(t, idx); n != 0 {
			t.Fatalf("visible before the clock moved: %d", n)
		}
	}
	if res, err := idx.FetchVectors(ctx, []string{"a"}); err != nil || len(res.Vectors) != 0 {
		t.Fatalf("with Lag.Fetch, fetch by ID = %v, %v; want nothing yet", res, err)
	}
	clock.Advance(999 * time.Millisecond)
	if n := count(t, idx); n != 0 {
		t.Fatalf("visible before the lag passed: %d", n)
	}
	clock.Advance(time.Millisecond)
	if n := count(t, idx); n != 1 || srv.Pending() != 0 {
		t.Fatalf("after the lag: %d records, %d pending", n, srv.Pending())
	}
	// Namespace deletion lags too: DescribeNamespace still finds it.
	if err := idx.DeleteNamespace(ctx, "ns"); err != nil {
		t.Fatal(err)
	}
	if d, err := idx.DescribeNamespace(ctx, "ns"); err != nil || d.RecordCount != 1 {
		t.Fatalf("DescribeNamespace right after DeleteNamespace = %+v, %v; want the stale description", d, err)
	}
	clock.Advance(time.Second)
	if _, err := idx.DescribeNamespace(ctx, "ns"); code(err) == 0 {
		t.Fatal("the deleted namespace is still described after the lag")
	}
}
