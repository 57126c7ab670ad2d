// Package drivertest is the conformance suite of vectorstore drivers. Every backend runs
// it, both against the bare driver (namespace semantics of the contract in package
// vectorstore/driver) and through the portable vectorstore.Index (validation, clone
// scoping, post-checks and isolation between clones).
//
// By default the suite expects reads to see earlier writes at once, as the embedded
// index does. For an eventually consistent backend (Pinecone, or the Pinecone emulator
// with a lag) run it with [RunConformanceTestsWith] and Options.Eventual: every check
// of a read that follows a write is then retried until it holds or Options.Wait has
// passed, and the test log says which checks lag made wait. Checks that something is
// absent are made only after the suite has seen the data present, so a lagging backend
// cannot pass them by being behind.
//
// A backend's test calls:
//
//	func TestConformance(t *testing.T) {
//		drivertest.RunConformanceTests(t, func(t *testing.T, dim int) driver.Index {
//			d, err := mybackend.NewDriver(dim, ...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { d.Close() })
//			return d
//		})
//	}
package drivertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

// Open returns a new, empty driver of dimension dim. It registers its own cleanup.
type Open func(t *testing.T, dim int) driver.Index

// Dim is the dimension the suite uses.
const Dim = 4

// Options configure a conformance run. Nil means a strongly consistent backend.
type Options struct {
	// Eventual says that reads may lag writes: checks of reads that follow writes are
	// retried until they hold or Wait has passed.
	Eventual bool
	// Wait bounds how long one check is retried; 0 means 2 minutes.
	Wait time.Duration
	// PollInterval is the pause between two tries of a check; 0 means none (right for
	// the Pinecone emulator, whose lag is counted in requests). Use about a second for
	// a real Pinecone index.
	PollInterval time.Duration
}

// RunConformanceTests runs the whole suite against the drivers returned by open, which
// must make reads see earlier writes at once.
func RunConformanceTests(t *testing.T, open Open) { RunConformanceTestsWith(t, open, nil) }

// RunConformanceTestsWith runs the whole suite against the drivers returned by open,
// configured by opts.
func RunConformanceTestsWith(t *testing.T, open Open, opts *Options) {
	c := &config{wait: 2 * time.Minute}
	if opts != nil {
		c.eventual, c.poll = opts.Eventual, opts.PollInterval
		if opts.Wait > 0 {
			c.wait = opts.Wait
		}
	}
	t.Run("Driver", func(t *testing.T) { runDriverTests(t, open, c) })
	t.Run("Scoped", func(t *testing.T) { runScopedTests(t, open, c) })
	t.Run("Isolation", func(t *testing.T) { runIsolationTests(t, open, c) })
}

// config is one run's consistency model.
type config struct {
	eventual bool
	wait     time.Duration
	poll     time.Duration
}

// eventually runs check, a read and its assertions, until it returns nil; on a
// strongly consistent backend only once. It fails the test with the last error if
// the check does not hold within the configured wait, and logs how long lag made it
// wait.
func (c *config) eventually(t testing.TB, what string, check func() error) {
	t.Helper()
	if err := c.await(t.Context(), what, check, t.Logf); err != nil {
		t.Fatal(err)
	}
}

// await is eventually for code that must not call t.Fatal (other goroutines).
func (c *config) await(ctx context.Context, what string, check func() error, logf func(string, ...any)) error {
	err := check()
	if err == nil {
		return nil
	}
	if !c.eventual {
		return fmt.Errorf("%s: %w", what, err)
	}
	start := time.Now()
	deadline := start.Add(c.wait)
	tries := 1
	for err != nil && time.Now().Before(deadline) {
		if c.poll > 0 {
			tm := time.NewTimer(c.poll)
			select {
			case <-ctx.Done():
				tm.Stop()
				return fmt.Errorf("%s: %v (last: %w)", what, ctx.Err(), err)
			case <-tm.C:
			}
		}
		tries++
		err = check()
	}
	if err != nil {
		return fmt.Errorf("%s: still failing after %d tries over %v: %w", what, tries, time.Since(start).Round(time.Millisecond), err)
	}
	logf("lag: %s held after %d tries (%v)", what, tries, time.Since(start).Round(time.Millisecond))
	return nil
}

// NewClone returns a CloneContext for a fresh tenant and clone.
func NewClone(t testing.TB) clone.CloneContext {
	t.Helper()
	cc, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "user-" + clone.NewID().String()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// SameTenantClone returns a CloneContext for a new clone in cc's tenant.
func SameTenantClone(t testing.TB, cc clone.CloneContext) clone.CloneContext {
	t.Helper()
	c, err := clone.New(cc.TenantID(), clone.NewID(), clone.Principal{Subject: "other"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context { return t.Context() }

// approxEqual compares vectors up to float32 rounding (drivers may normalize).
func approxEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-5*math.Max(1, math.Abs(float64(b[i]))) {
			return false
		}
	}
	return true
}

func scoped(tenant, cloneID string, md map[string]any) map[string]any {
	out := map[string]any{vectorstore.TenantKey: tenant, vectorstore.CloneKey: cloneID}
	for k, v := range md {
		out[k] = v
	}
	return out
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func vecIDs(vs []vectorstore.Vector) []string {
	return ids(vs, func(v vectorstore.Vector) string { return v.ID })
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}

// ---- driver level ----

func runDriverTests(t *testing.T, open Open, c *config) {
	t.Run("UpsertFetch", func(t *testing.T) { driverUpsertFetch(t, open, c) })
	t.Run("QueryOrderAndTopK", func(t *testing.T) { driverQueryOrderAndTopK(t, open, c) })
	t.Run("QueryPreFilter", func(t *testing.T) { driverQueryPreFilter(t, open, c) })
	t.Run("Namespaces", func(t *testing.T) { driverNamespaces(t, open, c) })
	t.Run("Delete", func(t *testing.T) { driverDelete(t, open, c) })
	t.Run("ListPagination", func(t *testing.T) { driverListPagination(t, open, c) })
}

// freshDriver opens a driver and names two fresh namespaces for one subtest, deleted at
// its end, so the suite can run against a shared real index.
func freshDriver(t *testing.T, open Open) (d driver.Index, ns, other string) {
	d = open(t, Dim)
	suffix := clone.NewID().String()[:8]
	ns, other = "t-drivertest-a-"+suffix, "t-drivertest-b-"+suffix
	t.Cleanup(func() {
		_ = d.DeleteNamespace(context.Background(), ns)
		_ = d.DeleteNamespace(context.Background(), other)
	})
	return d, ns, other
}

// driverMD is the scoped metadata of the seeded records.
func driverMD(kind string, n float64) map[string]any {
	return scoped("T", "C", map[string]any{"kind": kind, "n": n, "tags": []string{"x", kind}})
}

// queryIDs queries nsName and returns the matches and their IDs.
func queryIDs(t *testing.T, d driver.Index, nsName string, q *driver.Query) ([]driver.Match, []string, error) {
	ms, err := d.Query(ctxT(t), nsName, q)
	return ms, ids(ms, func(m driver.Match) string { return m.ID }), err
}

// seedDriver writes four records to ns and waits until a query sees them all.
func seedDriver(t *testing.T, c *config, d driver.Index, ns string) {
	t.Helper()
	err := d.Upsert(ctxT(t), ns, []driver.Vector{
		{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: driverMD("even", 0)},
		{ID: "b", Values: []float32{0.9, 0.1, 0, 0}, Metadata: driverMD("odd", 1)},
		{ID: "c", Values: []float32{0, 1, 0, 0}, Metadata: driverMD("even", 2)},
		{ID: "d", Values: []float32{0, 0, 1, 0}, Metadata: driverMD("odd", 3)},
	})
	if err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	c.eventually(t, "seeded records visible to queries", func() error {
		_, got, err := queryIDs(t, d, ns, &driver.Query{Vector: []float32{1, 0, 0, 0}, TopK: 10})
		if err != nil || len(got) != 4 {
			return fmt.Errorf("query sees %v, %v; want 4 records", got, err)
		}
		return nil
	})
}

func driverUpsertFetch(t *testing.T, open Open, c *config) {
	d, ns, _ := freshDriver(t, open)
	seedDriver(t, c, d, ns)
	c.eventually(t, "Fetch", func() error {
		got, err := d.Fetch(ctxT(t), ns, []string{"b", "missing", "c"})
		if err != nil {
			return fmt.Errorf("Fetch: %v", err)
		}
		if len(got) != 2 {
			return fmt.Errorf("Fetch returned %d vectors, want 2 (missing IDs are omitted)", len(got))
		}
		for _, v := range got {
			want := map[string][]float32{"b": {0.9, 0.1, 0, 0}, "c": {0, 1, 0, 0}}[v.ID]
			if !approxEqual(v.Values, want) {
				return fmt.Errorf("Fetch %s values = %v, want %v", v.ID, v.Values, want)
			}
			if v.Metadata[vectorstore.CloneKey] != "C" || v.Metadata["kind"] == nil {
				return fmt.Errorf("Fetch %s metadata = %v", v.ID, v.Metadata)
			}
			if tags, _ := v.Metadata["tags"].([]string); len(tags) != 2 {
				if tagsAny, ok := v.Metadata["tags"].([]any); !ok || len(tagsAny) != 2 {
					return fmt.Errorf("Fetch %s tags = %#v, want a list of 2 strings", v.ID, v.Metadata["tags"])
				}
			}
		}
		return nil
	})
	// Upsert replaces the whole record.
	if err := d.Upsert(ctxT(t), ns, []driver.Vector{{ID: "b", Values: []float32{0, 0, 0, 2}, Metadata: scoped("T", "C", nil)}}); err != nil {
		t.Fatal(err)
	}
	c.eventually(t, "Fetch after replace", func() error {
		got, err := d.Fetch(ctxT(t), ns, []string{"b"})
		if err != nil || len(got) != 1 {
			return fmt.Errorf("Fetch after replace: %v, %v", got, err)
		}
		if !approxEqual(got[0].Values, []float32{0, 0, 0, 2}) || got[0].Metadata["kind"] != nil {
			return fmt.Errorf("replaced record = %+v, want values [0 0 0 2] and no kind", got[0])
		}
		return nil
	})
}

func driverQueryOrderAndTopK(t *testing.T, open Open, c *config) {
	d, ns, _ := freshDriver(t, open)
	seedDriver(t, c, d, ns)
	ms, got, err := queryIDs(t, d, ns, &driver.Query{Vector: []float32{1, 0, 0, 0}, TopK: 3})
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("Query order = %v, want a, b, then one of c/d", got)
	}
	for i := 1; i < len(ms); i++ {
		if ms[i].Score > ms[i-1].Score {
			t.Fatalf("scores not descending: %v", ms)
		}
	}
	if math.Abs(float64(ms[0].Score)-1) > 1e-5 {
		t.Errorf("cosine score of identical direction = %v, want 1", ms[0].Score)
	}
	if ms[0].Metadata[vectorstore.TenantKey] != "T" {
		t.Errorf("match metadata = %v, want the full metadata", ms[0].Metadata)
	}
	if ms[0].Values != nil {
		t.Errorf("values returned without IncludeValues")
	}
	ms, err = d.Query(ctxT(t), ns, &driver.Query{Vector: []float32{1, 0, 0, 0}, TopK: 100, IncludeValues: true})
	if err != nil || len(ms) != 4 {
		t.Fatalf("Query top-100 of 4 = %d matches, %v", len(ms), err)
	}
	if !approxEqual(ms[0].Values, []float32{1, 0, 0, 0}) {
		t.Errorf("values = %v", ms[0].Values)
	}
}

func driverQueryPreFilter(t *testing.T, open Open, c *config) {
	d, ns, _ := freshDriver(t, open)
	seedDriver(t, c, d, ns)
	f, err := filter.ParseJSON([]byte(`{"kind":"odd","n":{"$gt":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	// "d" is the least similar record overall but the only one matching: a
	// post-filter over the top 1 would return nothing.
	_, got, err := queryIDs(t, d, ns, &driver.Query{Vector: []float32{1, 0, 0, 0}, TopK: 1, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"d"}) {
		t.Fatalf("filtered query = %v, want [d]", got)
	}
	f, _ = filter.ParseJSON([]byte(`{"tags":{"$in":["even"]}}`))
	_, got, err = queryIDs(t, d, ns, &driver.Query{Vector: []float32{1, 0, 0, 0}, TopK: 10, Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(got); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("list-valued filter = %v, want [a c]", got)
	}
}

func driverNamespaces(t *testing.T, open Open, c *config) {
	d, ns, other := freshDriver(t, open)
	seedDriver(t, c, d, ns)
	c.eventually(t, "Stats of the seeded namespace", func() error {
		st, err := d.Stats(ctxT(t), ns)
		if err != nil || st.VectorCount != 4 {
			return fmt.Errorf("stats = %+v, %v; want 4", st, err)
		}
		return nil
	})
	ms, err := d.Query(ctxT(t), other, &driver.Query{Vector: []float32{1, 0, 0, 0}, TopK: 10})
	if err != nil || len(ms) != 0 {
		t.Fatalf("query of an empty namespace = %v, %v; want nothing", ms, err)
	}
	vs, err := d.Fetch(ctxT(t), other, []string{"a"})
	if err != nil || len(vs) != 0 {
		t.Fatalf("fetch from another namespace = %v, %v; want nothing", vs, err)
	}
	st, err := d.Stats(ctxT(t), other)
	if err != nil || st.VectorCount != 0 {
		t.Fatalf("stats of an empty namespace = %+v, %v", st, err)
	}
}

func driverDelete(t *testing.T, open Open, c *config) {
	d, ns, _ := freshDriver(t, open)
	seedDriver(t, c, d, ns)
	if err := d.Delete(ctxT(t), ns, []string{"a", "missing"}); err != nil {
		t.Fatalf("Delete with a missing ID: %v", err)
	}
	f, _ := filter.ParseJSON([]byte(`{"kind":"odd"}`))
	if err := d.DeleteByFilter(ctxT(t), ns, f); err != nil {
		t.Fatalf("DeleteByFilter: %v", err)
	}
	c.eventually(t, "Fetch after deletes", func() error {
		vs, err := d.Fetch(ctxT(t), ns, []string{"a", "b", "c", "d"})
		if err != nil {
			return err
		}
		if got := ids(vs, func(v driver.Vector) string { return v.ID }); !slices.Equal(got, []string{"c"}) {
			return fmt.Errorf("after deletes: %v, want [c]", got)
		}
		return nil
	})
	if err := d.DeleteNamespace(ctxT(t), ns); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteNamespace(ctxT(t), "never-existed"); err != nil {
		t.Fatalf("deleting a missing namespace: %v", err)
	}
	c.eventually(t, "Stats after DeleteNamespace", func() error {
		st, err := d.Stats(ctxT(t), ns)
		if err != nil || st.VectorCount != 0 {
			return fmt.Errorf("stats after DeleteNamespace = %+v, %v", st, err)
		}
		return nil
	})
}

func driverListPagination(t *testing.T, open Open, c *config) {
	d, ns, _ := freshDriver(t, open)
	var vs []driver.Vector
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("doc1#%02d", i)
		want = append(want, id)
		vs = append(vs, driver.Vector{ID: id, Values: []float32{1, float32(i), 0, 0}, Metadata: scoped("T", "C", nil)})
	}
	vs = append(vs, driver.Vector{ID: "doc2#00", Values: []float32{1, 0, 0, 0}, Metadata: scoped("T", "C", nil)})
	if err := d.Upsert(ctxT(t), ns, vs); err != nil {
		t.Fatal(err)
	}
	c.eventually(t, "List", func() error {
		var got []string
		token := ""
		pages := 0
		for {
			p, err := d.List(ctxT(t), ns, &driver.ListRequest{Prefix: "doc1#", Limit: 10, PageToken: token})
			if err != nil {
				return fmt.Errorf("List: %v", err)
			}
			pages++
			if len(p.IDs) > 10 {
				t.Fatalf("page of %d IDs, limit 10", len(p.IDs))
			}
			got = append(got, p.IDs...)
			if p.NextPageToken == "" {
				break
			}
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			token = p.NextPageToken
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("List = %v, want %v", got, want)
		}
		if pages != 3 {
			return fmt.Errorf("pages = %d, want 3", pages)
		}
		return nil
	})
}

// ---- portable type ----

// counting wraps a driver and counts the calls that reach it, to prove validation
// happens before any backend call.
type counting struct {
	driver.Index
	calls atomic.Int64
}

func (c *counting) Upsert(ctx context.Context, ns string, vs []driver.Vector) error {
	c.calls.Add(1)
	return c.Index.Upsert(ctx, ns, vs)
}
func (c *counting) Query(ctx context.Context, ns string, q *driver.Query) ([]driver.Match, error) {
	c.calls.Add(1)
	return c.Index.Query(ctx, ns, q)
}
func (c *counting) Fetch(ctx context.Context, ns string, ids []string) ([]driver.Vector, error) {
	c.calls.Add(1)
	return c.Index.Fetch(ctx, ns, ids)
}
func (c *counting) Delete(ctx context.Context, ns string, ids []string) error {
	c.calls.Add(1)
	return c.Index.Delete(ctx, ns, ids)
}
func (c *counting) DeleteByFilter(ctx context.Context, ns string, f *filter.Filter) error {
	c.calls.Add(1)
	return c.Index.DeleteByFilter(ctx, ns, f)
}
func (c *counting) DeleteNamespace(ctx context.Context, ns string) error {
	c.calls.Add(1)
	return c.Index.DeleteNamespace(ctx, ns)
}
func (c *counting) List(ctx context.Context, ns string, r *driver.ListRequest) (*driver.ListPage, error) {
	c.calls.Add(1)
	return c.Index.List(ctx, ns, r)
}
func (c *counting) Stats(ctx context.Context, ns string) (*driver.Stats, error) {
	c.calls.Add(1)
	return c.Index.Stats(ctx, ns)
}

func newIndex(t *testing.T, d driver.Index, sink audit.Sink) *vectorstore.Index {
	t.Helper()
	x, err := vectorstore.NewIndex(d, &vectorstore.Options{Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func runScopedTests(t *testing.T, open Open, c *config) {
	t.Run("CallerKeepsItsMetadata", func(t *testing.T) { scopedCallerKeepsItsMetadata(t, open, c) })
	t.Run("RoundTrip", func(t *testing.T) { scopedRoundTrip(t, open, c) })
	t.Run("Namespace", func(t *testing.T) { scopedNamespace(t, open, c) })
	t.Run("Validation", func(t *testing.T) { scopedValidation(t, open, c) })
	t.Run("CancelledContext", func(t *testing.T) { scopedCancelledContext(t, open, c) })
	t.Run("CheckWritable", func(t *testing.T) { scopedCheckWritable(t, open, c) })
}

func scopedCallerKeepsItsMetadata(t *testing.T, open Open, c *config) {
	// The index stores what was upserted: changing the caller's map or list
	// afterwards changes nothing stored, and the caller's map gains no scope keys.
	x := newIndex(t, open(t, Dim), nil)
	cc := NewClone(t)
	tags := []string{"a", "b"}
	md := map[string]any{"title": "one", "tags": tags}
	if err := x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "doc#1", Values: []float32{1, 2, 3, 4}, Metadata: md}}); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if len(md) != 2 {
		t.Errorf("the caller's metadata map changed: %v", md)
	}
	tags[0] = "changed"
	md["title"] = "changed"
	md["extra"] = true
	c.eventually(t, "Fetch", func() error {
		got, err := x.Fetch(ctxT(t), cc, []string{"doc#1"})
		if err != nil {
			return fmt.Errorf("Fetch: %v", err)
		}
		if len(got) != 1 {
			return fmt.Errorf("Fetch returned %d vectors, want 1", len(got))
		}
		gotMD := got[0].Metadata
		if l, ok := gotMD["tags"].([]any); ok { // some backends return []any
			gotMD["tags"] = ids(l, func(a any) string { s, _ := a.(string); return s })
		}
		if want := map[string]any{"title": "one", "tags": []string{"a", "b"}}; !reflect.DeepEqual(gotMD, want) {
			return fmt.Errorf("metadata = %#v, want %#v", gotMD, want)
		}
		return nil
	})
}

func scopedRoundTrip(t *testing.T, open Open, c *config) {
	x := newIndex(t, open(t, Dim), nil)
	cc := NewClone(t)
	in := []vectorstore.Vector{
		{ID: "doc#1", Values: []float32{1, 2, 3, 4}, Metadata: map[string]any{"title": "one", "n": 1, "ok": true, "tags": []any{"a", "b"}}},
		{ID: "doc#2", Values: []float32{-1, 0, 0, 0}},
	}
	if err := x.Upsert(ctxT(t), cc, in); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	var got []vectorstore.Vector
	c.eventually(t, "Fetch", func() error {
		var err error
		got, err = x.Fetch(ctxT(t), cc, []string{"doc#2", "doc#1", "nope"})
		if err != nil {
			return fmt.Errorf("Fetch: %v", err)
		}
		if !slices.Equal(vecIDs(got), []string{"doc#2", "doc#1"}) {
			return fmt.Errorf("Fetch order = %v, want the order asked for", vecIDs(got))
		}
		return nil
	})
	wantMD := map[string]any{"title": "one", "n": 1.0, "ok": true, "tags": []string{"a", "b"}}
	gotMD := got[1].Metadata
	if tags, ok := gotMD["tags"].([]any); ok { // some backends return []any
		gotMD["tags"] = ids(tags, func(a any) string { s, _ := a.(string); return s })
	}
	if !reflect.DeepEqual(gotMD, wantMD) {
		t.Errorf("metadata = %#v, want %#v (scope keys removed)", got[1].Metadata, wantMD)
	}
	if got[0].Metadata != nil {
		t.Errorf("metadata of a vector stored without = %v, want nil", got[0].Metadata)
	}
	if !approxEqual(got[1].Values, in[0].Values) {
		t.Errorf("values = %v, want %v", got[1].Values, in[0].Values)
	}
	c.eventually(t, "Query", func() error {
		ms, err := x.Query(ctxT(t), cc, vectorstore.Query{Vector: []float32{1, 2, 3, 4}, TopK: 2, IncludeMetadata: true, Filter: map[string]any{"title": "one"}})
		if err != nil {
			return fmt.Errorf("Query: %v", err)
		}
		if len(ms) != 1 || ms[0].ID != "doc#1" || ms[0].Metadata["title"] != "one" || ms[0].Metadata[vectorstore.CloneKey] != nil || ms[0].Values != nil {
			return fmt.Errorf("Query = %+v", ms)
		}
		return nil
	})
	c.eventually(t, "Stats", func() error {
		st, err := x.Stats(ctxT(t), cc)
		if err != nil {
			return err
		}
		ns, _ := vectorstore.Namespace(cc)
		if st.VectorCount != 2 || st.Namespace != ns || st.Dimension != Dim {
			return fmt.Errorf("Stats = %+v", st)
		}
		return nil
	})
	c.eventually(t, "List", func() error {
		p, err := x.List(ctxT(t), cc, &vectorstore.ListOptions{Prefix: "doc#"})
		if err != nil || !slices.Equal(p.IDs, []string{"doc#1", "doc#2"}) || p.NextPageToken != "" {
			return fmt.Errorf("List = %+v, %v", p, err)
		}
		return nil
	})
	if err := x.DeleteByFilter(ctxT(t), cc, map[string]any{"title": map[string]any{"$exists": true}}); err != nil {
		t.Fatal(err)
	}
	if err := x.Delete(ctxT(t), cc, []string{"doc#2", "doc#2", "never"}); err != nil {
		t.Fatal(err)
	}
	c.eventually(t, "Fetch after deletes", func() error {
		got, err := x.Fetch(ctxT(t), cc, []string{"doc#1", "doc#2"})
		if err != nil || len(got) != 0 {
			return fmt.Errorf("after deletes Fetch = %v, %v", got, err)
		}
		return nil
	})
}

func scopedNamespace(t *testing.T, open Open, c *config) {
	cc := NewClone(t)
	ns, err := vectorstore.Namespace(cc)
	if err != nil {
		t.Fatal(err)
	}
	if want := "t-" + cc.TenantID().String() + "-c-" + cc.CloneID().String(); ns != want {
		t.Fatalf("Namespace = %q, want %q", ns, want)
	}
	if _, err := vectorstore.Namespace(clone.CloneContext{}); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Fatalf("Namespace of the zero context: %v", err)
	}
}

func scopedValidation(t *testing.T, open Open, _ *config) {
	c := &counting{Index: open(t, Dim)}
	sink := &audit.Memory{}
	x := newIndex(t, c, sink)
	cc := NewClone(t)
	v := func(id string, vals ...float32) vectorstore.Vector { return vectorstore.Vector{ID: id, Values: vals} }
	big := make([]byte, vectorstore.MaxMetadataBytes)
	for i := range big {
		big[i] = 'x'
	}
	long := string(big[:vectorstore.MaxIDLength+1])
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	q := func(k int, f map[string]any) vectorstore.Query {
		return vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: k, Filter: f}
	}
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"no context upsert", func() error { return x.Upsert(ctxT(t), clone.CloneContext{}, []vectorstore.Vector{v("a", 1, 0, 0, 0)}) }, clone.ErrNoCloneContext},
		{"no context query", func() error { _, err := x.Query(ctxT(t), clone.CloneContext{}, q(1, nil)); return err }, clone.ErrNoCloneContext},
		{"no context fetch", func() error { _, err := x.Fetch(ctxT(t), clone.CloneContext{}, []string{"a"}); return err }, clone.ErrNoCloneContext},
		{"no context delete all", func() error { return x.DeleteAll(ctxT(t), clone.CloneContext{}) }, clone.ErrNoCloneContext},
		{"no context list", func() error { _, err := x.List(ctxT(t), clone.CloneContext{}, nil); return err }, clone.ErrNoCloneContext},
		{"no context stats", func() error { _, err := x.Stats(ctxT(t), clone.CloneContext{}); return err }, clone.ErrNoCloneContext},
		{"dimension short", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a", 1, 0, 0)}) }, clone.ErrInvalidInput},
		{"dimension long", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a", 1, 0, 0, 0, 0)}) }, clone.ErrInvalidInput},
		{"query dimension", func() error {
			_, err := x.Query(ctxT(t), cc, vectorstore.Query{Vector: []float32{1}, TopK: 1})
			return err
		}, clone.ErrInvalidInput},
		{"NaN", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a", 1, nan, 0, 0)}) }, clone.ErrInvalidInput},
		{"Inf", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a", 1, inf, 0, 0)}) }, clone.ErrInvalidInput},
		{"query NaN", func() error {
			_, err := x.Query(ctxT(t), cc, vectorstore.Query{Vector: []float32{nan, 0, 0, 0}, TopK: 1})
			return err
		}, clone.ErrInvalidInput},
		{"all zero", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a", 0, 0, 0, 0)}) }, clone.ErrInvalidInput},
		{"empty ID", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("", 1, 0, 0, 0)}) }, clone.ErrInvalidInput},
		{"long ID", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v(long, 1, 0, 0, 0)}) }, clone.ErrInvalidInput},
		{"control char ID", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a\x00b", 1, 0, 0, 0)}) }, clone.ErrInvalidInput},
		{"invalid UTF-8 ID", func() error { return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a\xffb", 1, 0, 0, 0)}) }, clone.ErrInvalidInput},
		{"duplicate IDs", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{v("a", 1, 0, 0, 0), v("a", 0, 1, 0, 0)})
		}, clone.ErrInvalidInput},
		{"fetch empty ID", func() error { _, err := x.Fetch(ctxT(t), cc, []string{"ok", ""}); return err }, clone.ErrInvalidInput},
		{"delete long ID", func() error { return x.Delete(ctxT(t), cc, []string{long}) }, clone.ErrInvalidInput},
		{"reserved tenant_id", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"tenant_id": cc.TenantID().String()}}})
		}, clone.ErrInvalidInput},
		{"reserved clone_id, own", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"clone_id": cc.CloneID().String()}}})
		}, clone.ErrInvalidInput},
		{"reserved clone_id, another clone's", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"clone_id": clone.NewID().String()}}})
		}, clone.ErrCloneMismatch},
		{"filter naming another clone", func() error {
			_, err := x.Query(ctxT(t), cc, q(1, map[string]any{"clone_id": clone.NewID().String()}))
			return err
		}, clone.ErrCloneMismatch},
		{"metadata too large", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"text": string(big)}}})
		}, clone.ErrTooLarge},
		{"metadata nested object", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"o": map[string]any{"a": 1}}}})
		}, clone.ErrInvalidInput},
		{"metadata NaN", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"n": math.NaN()}}})
		}, clone.ErrInvalidInput},
		{"metadata nil value", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"n": nil}}})
		}, clone.ErrInvalidInput},
		{"metadata $ key", func() error {
			return x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"$eq": "x"}}})
		}, clone.ErrInvalidInput},
		{"top-k 0", func() error { _, err := x.Query(ctxT(t), cc, q(0, nil)); return err }, clone.ErrInvalidInput},
		{"top-k negative", func() error { _, err := x.Query(ctxT(t), cc, q(-1, nil)); return err }, clone.ErrInvalidInput},
		{"top-k too large", func() error { _, err := x.Query(ctxT(t), cc, q(vectorstore.MaxTopK+1, nil)); return err }, clone.ErrInvalidInput},
		{"top-k too large with metadata", func() error {
			_, err := x.Query(ctxT(t), cc, vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: vectorstore.MaxTopKWithData + 1, IncludeMetadata: true})
			return err
		}, clone.ErrInvalidInput},
		{"unsupported operator", func() error {
			_, err := x.Query(ctxT(t), cc, q(1, map[string]any{"a": map[string]any{"$regex": "x"}}))
			return err
		}, clone.ErrInvalidInput},
		{"unsupported logical operator", func() error {
			_, err := x.Query(ctxT(t), cc, q(1, map[string]any{"$not": map[string]any{"a": 1}}))
			return err
		}, clone.ErrInvalidInput},
		{"delete by filter bad operator", func() error {
			return x.DeleteByFilter(ctxT(t), cc, map[string]any{"a": map[string]any{"$where": "1"}})
		}, clone.ErrInvalidInput},
		{"delete by empty filter", func() error { return x.DeleteByFilter(ctxT(t), cc, map[string]any{}) }, clone.ErrInvalidInput},
		{"list limit", func() error {
			_, err := x.List(ctxT(t), cc, &vectorstore.ListOptions{Limit: vectorstore.MaxListLimit + 1})
			return err
		}, clone.ErrInvalidInput},
		{"list prefix", func() error { _, err := x.List(ctxT(t), cc, &vectorstore.ListOptions{Prefix: "\x01"}); return err }, clone.ErrInvalidInput},
	}
	for _, tc := range cases {
		err := tc.call()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		if status := clone.HTTPStatus(err); status >= 500 {
			t.Errorf("%s: HTTP status %d for bad input", tc.name, status)
		}
	}
	if n := c.calls.Load(); n != 0 {
		t.Errorf("%d driver calls were made for invalid input, want 0", n)
	}
	denied := 0
	for _, e := range sink.Events() {
		if e.Outcome == audit.Denied {
			denied++
		}
	}
	if denied != 8 {
		t.Errorf("%d denial events, want 8 (6 calls without a clone context, 2 naming another clone)", denied)
	}
}

func scopedCancelledContext(t *testing.T, open Open, c *config) {
	x := newIndex(t, open(t, Dim), nil)
	cc := NewClone(t)
	if err := x.Upsert(ctxT(t), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	_, err := x.Query(ctx, cc, vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: 1})
	if !errors.Is(err, clone.ErrCanceled) {
		t.Fatalf("Query with a cancelled context: %v, want ErrCanceled", err)
	}
	if err := x.Upsert(ctx, cc, []vectorstore.Vector{{ID: "b", Values: []float32{1, 0, 0, 0}}}); !errors.Is(err, clone.ErrCanceled) {
		t.Fatalf("Upsert with a cancelled context: %v, want ErrCanceled", err)
	}
}

func scopedCheckWritable(t *testing.T, open Open, c *config) {
	d := open(t, Dim)
	cc, suspended := NewClone(t), NewClone(t)
	x, err := vectorstore.NewIndex(d, &vectorstore.Options{CheckWritable: func(_ context.Context, c clone.CloneContext) error {
		if c.Same(suspended) {
			return clone.ErrSuspended
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	vs := []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}}
	if err := x.Upsert(ctxT(t), cc, vs); err != nil {
		t.Fatalf("writable clone: %v", err)
	}
	if err := x.Upsert(ctxT(t), suspended, vs); !errors.Is(err, clone.ErrSuspended) {
		t.Fatalf("suspended clone: %v, want ErrSuspended", err)
	}
	if st, _ := x.Stats(ctxT(t), suspended); st == nil || st.VectorCount != 0 {
		t.Fatalf("a refused write wrote: %+v", st)
	}
}

// ---- isolation ----

func runIsolationTests(t *testing.T, open Open, cfg *config) {
	s := &isolationSuite{open: open, cfg: cfg}
	t.Run("QuerySeesOnlyOwnClone", s.querySeesOnlyOwnClone)
	t.Run("FilterNamingAnotherClone", s.filterNamingAnotherClone)
	t.Run("FetchCollidingIDs", s.fetchCollidingIDs)
	t.Run("WritesDoNotCross", s.writesDoNotCross)
	t.Run("ListAndStats", s.listAndStats)
	t.Run("PostCheckFetch", s.postCheckFetch)
	t.Run("PostCheckQuery", s.postCheckQuery)
	t.Run("Concurrent", s.concurrent)
}

// isolationSuite holds what the isolation subtests share.
type isolationSuite struct {
	open Open
	cfg  *config
}

// setup writes six vectors for each of three clones (owner and other share IDs; owner
// and sibling share a tenant) and waits until each clone sees its own.
func (s *isolationSuite) setup(t *testing.T) (x *vectorstore.Index, d driver.Index, sink *audit.Memory, a, b, sib clone.CloneContext) {
	d = s.open(t, Dim)
	sink = &audit.Memory{}
	x = newIndex(t, d, sink)
	a = NewClone(t)
	b = NewClone(t)
	sib = SameTenantClone(t, a)
	for _, c := range []struct {
		cc    clone.CloneContext
		owner string
		vals  []float32
	}{{a, "a", []float32{1, 0, 0, 0}}, {b, "b", []float32{0, 1, 0, 0}}, {sib, "sib", []float32{0, 0, 1, 0}}} {
		var vs []vectorstore.Vector
		for i := range 5 {
			vals := slices.Clone(c.vals)
			vals[3] = float32(i) / 10
			vs = append(vs, vectorstore.Vector{ID: fmt.Sprintf("doc#%d", i), Values: vals, Metadata: map[string]any{"owner": c.owner, "i": i}})
		}
		vs = append(vs, vectorstore.Vector{ID: "only-" + c.owner, Values: c.vals, Metadata: map[string]any{"owner": c.owner}})
		if err := x.Upsert(ctxT(t), c.cc, vs); err != nil {
			t.Fatalf("Upsert for %s: %v", c.owner, err)
		}
	}
	// Every later check of absence is meaningful only once the data is visible.
	for _, cc := range []clone.CloneContext{a, b, sib} {
		s.cfg.eventually(t, "each clone's records visible", func() error {
			st, err := x.Stats(ctxT(t), cc)
			if err != nil || st.VectorCount != 6 {
				return fmt.Errorf("stats %+v, %v; want 6", st, err)
			}
			ms, err := x.Query(ctxT(t), cc, vectorstore.Query{Vector: []float32{1, 1, 1, 1}, TopK: 100})
			if err != nil || len(ms) != 6 {
				return fmt.Errorf("query sees %d, %v; want 6", len(ms), err)
			}
			p, err := x.List(ctxT(t), cc, nil)
			if err != nil || len(p.IDs) != 6 {
				return fmt.Errorf("list sees %v, %v; want 6", p, err)
			}
			return nil
		})
	}
	return
}

// owners counts the matches of each owner.
func owners(ms []vectorstore.Match) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		s, _ := m.Metadata["owner"].(string)
		out[s]++
	}
	return out
}

// everything queries x as cc near each clone's vectors, with filter f.
func everything(t *testing.T, x *vectorstore.Index, cc clone.CloneContext, f map[string]any) []vectorstore.Match {
	t.Helper()
	var all []vectorstore.Match
	for _, v := range [][]float32{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}} {
		ms, err := x.Query(ctxT(t), cc, vectorstore.Query{Vector: v, TopK: 100, IncludeMetadata: true, Filter: f})
		if err != nil {
			t.Fatalf("Query: %v", err)
		}
		all = append(all, ms...)
	}
	return all
}

func (s *isolationSuite) querySeesOnlyOwnClone(t *testing.T) {
	x, _, _, a, b, sib := s.setup(t)
	for _, c := range []struct {
		cc    clone.CloneContext
		owner string
	}{{a, "a"}, {b, "b"}, {sib, "sib"}} {
		got := owners(everything(t, x, c.cc, nil))
		if got[c.owner] != 18 || len(got) != 1 {
			t.Errorf("clone %s sees owners %v, want only its own 6 vectors in each of 3 queries", c.owner, got)
		}
	}
}

func (s *isolationSuite) filterNamingAnotherClone(t *testing.T) {
	x, _, sink, a, b, sib := s.setup(t)
	// The owner's own scope in a filter works...
	if got := owners(everything(t, x, a, map[string]any{"clone_id": a.CloneID().String()})); got["a"] != 18 {
		t.Fatalf("filter on own clone_id: %v", got)
	}
	// ...naming another clone or tenant is refused as a probe and audited...
	probes := []map[string]any{
		{"clone_id": b.CloneID().String()},
		{"clone_id": sib.CloneID().String()},
		{"tenant_id": b.TenantID().String()},
		{"clone_id": map[string]any{"$in": []string{a.CloneID().String(), b.CloneID().String()}}},
		{"$or": []any{map[string]any{"clone_id": b.CloneID().String()}, map[string]any{"owner": "b"}}},
		{"$and": []any{map[string]any{"owner": "a"}, map[string]any{"tenant_id": map[string]any{"$ne": b.TenantID().String()}}}},
	}
	for _, f := range probes {
		before := len(sink.Events())
		ms, err := x.Query(ctxT(t), a, vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: 100, IncludeMetadata: true, Filter: f})
		if !errors.Is(err, clone.ErrCloneMismatch) || ms != nil {
			t.Errorf("filter %v: %d matches, %v; want ErrCloneMismatch", f, len(ms), err)
		}
		if err := x.DeleteByFilter(ctxT(t), a, f); !errors.Is(err, clone.ErrCloneMismatch) {
			t.Errorf("delete by filter %v: %v; want ErrCloneMismatch", f, err)
		}
		if n := len(sink.Events()) - before; n != 2 {
			t.Errorf("filter %v: %d audit events, want 2", f, n)
		}
	}
	// ...and filters that do not name another clone still match only the clone.
	for _, f := range []map[string]any{
		{"clone_id": map[string]any{"$ne": a.CloneID().String()}},
		{"clone_id": map[string]any{"$exists": false}},
		{"owner": map[string]any{"$in": []string{"b", "sib"}}},
	} {
		if ms := everything(t, x, a, f); len(ms) != 0 {
			t.Errorf("filter %v returned %v to clone a", f, owners(ms))
		}
	}
	for _, c := range []clone.CloneContext{b, sib} {
		if st, err := x.Stats(ctxT(t), c); err != nil || st.VectorCount != 6 {
			t.Fatalf("after a's refused deletes, another clone has %+v, %v", st, err)
		}
	}
}

func (s *isolationSuite) fetchCollidingIDs(t *testing.T) {
	x, _, _, a, b, _ := s.setup(t)
	va, err := x.Fetch(ctxT(t), a, []string{"doc#1", "only-b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(va) != 1 || va[0].ID != "doc#1" || va[0].Metadata["owner"] != "a" {
		t.Fatalf("clone a fetched %+v, want only its own doc#1", va)
	}
	vb, err := x.Fetch(ctxT(t), b, []string{"doc#1", "only-a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(vb) != 1 || vb[0].Metadata["owner"] != "b" {
		t.Fatalf("clone b fetched %+v, want only its own doc#1", vb)
	}
}

func (s *isolationSuite) writesDoNotCross(t *testing.T) {
	x, _, _, a, b, sib := s.setup(t)
	// Overwrite a colliding ID as b: a's record is unchanged.
	if err := x.Upsert(ctxT(t), b, []vectorstore.Vector{{ID: "doc#0", Values: []float32{0, 0, 0, 1}, Metadata: map[string]any{"owner": "b2"}}}); err != nil {
		t.Fatal(err)
	}
	s.cfg.eventually(t, "b's overwrite visible", func() error {
		ms, err := x.Query(ctxT(t), b, vectorstore.Query{Vector: []float32{0, 0, 0, 1}, TopK: 10, Filter: map[string]any{"owner": "b2"}})
		if err != nil || len(ms) != 1 {
			return fmt.Errorf("b's query for its overwrite = %v, %v", ms, err)
		}
		return nil
	})
	va, err := x.Fetch(ctxT(t), a, []string{"doc#0"})
	if err != nil || len(va) != 1 || va[0].Metadata["owner"] != "a" {
		t.Fatalf("a's doc#0 after b's overwrite = %+v, %v", va, err)
	}
	// b deletes by ID, by filter and everything: a and sib keep theirs.
	if err := x.Delete(ctxT(t), b, []string{"doc#1", "only-a"}); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteByFilter(ctxT(t), b, map[string]any{"owner": map[string]any{"$in": []string{"a", "sib", "b"}}}); err != nil {
		t.Fatal(err)
	}
	if err := x.DeleteByFilter(ctxT(t), b, map[string]any{"clone_id": a.CloneID().String()}); !errors.Is(err, clone.ErrCloneMismatch) {
		t.Fatalf("b deleting by a's clone_id: %v, want ErrCloneMismatch", err)
	}
	if err := x.DeleteAll(ctxT(t), b); err != nil {
		t.Fatal(err)
	}
	// b's deletes have landed before the other clones are checked.
	s.cfg.eventually(t, "b empty after DeleteAll", func() error {
		st, err := x.Stats(ctxT(t), b)
		if err != nil || st.VectorCount != 0 {
			return fmt.Errorf("b after DeleteAll: %+v, %v", st, err)
		}
		return nil
	})
	for _, c := range []clone.CloneContext{a, sib} {
		st, err := x.Stats(ctxT(t), c)
		if err != nil || st.VectorCount != 6 {
			t.Fatalf("after b's deletes, another clone has %+v, %v; want 6", st, err)
		}
		vs, err := x.Fetch(ctxT(t), c, []string{"doc#1", "only-a", "only-sib"})
		if err != nil || len(vs) != 2 {
			t.Fatalf("after b's deletes, another clone fetched %d, %v; want 2", len(vs), err)
		}
	}
	st, err := x.Stats(ctxT(t), b)
	if err != nil || st.VectorCount != 0 {
		t.Fatalf("b after DeleteAll: %+v, %v", st, err)
	}
}

func (s *isolationSuite) listAndStats(t *testing.T) {
	x, _, _, a, b, _ := s.setup(t)
	for _, c := range []struct {
		cc    clone.CloneContext
		owner string
	}{{a, "a"}, {b, "b"}} {
		p, err := x.List(ctxT(t), c.cc, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"doc#0", "doc#1", "doc#2", "doc#3", "doc#4", "only-" + c.owner}
		if !slices.Equal(p.IDs, want) {
			t.Fatalf("clone %s lists %v, want %v", c.owner, p.IDs, want)
		}
		p, err = x.List(ctxT(t), c.cc, &vectorstore.ListOptions{Prefix: "only-"})
		if err != nil || !slices.Equal(p.IDs, []string{"only-" + c.owner}) {
			t.Fatalf("clone %s lists prefix only-: %v, %v", c.owner, p, err)
		}
		st, err := x.Stats(ctxT(t), c.cc)
		if err != nil || st.VectorCount != 6 {
			t.Fatalf("clone %s stats %+v, %v", c.owner, st, err)
		}
	}
}

func (s *isolationSuite) postCheckFetch(t *testing.T) {
	x, d, sink, a, b, _ := s.setup(t)
	if _, err := x.Fetch(ctxT(t), a, []string{"doc#0"}); err != nil {
		t.Fatalf("clean fetch: %v", err)
	}
	if n := len(sink.Events()); n != 0 {
		t.Fatalf("%d audit events before the injection", n)
	}
	// A record stamped for b lands in a's namespace (a bug or a compromise below
	// the SDK): a's read must fail closed.
	ns, _ := vectorstore.Namespace(a)
	err := d.Upsert(ctxT(t), ns, []driver.Vector{{ID: "planted", Values: []float32{1, 0, 0, 0},
		Metadata: scoped(b.TenantID().String(), b.CloneID().String(), map[string]any{"owner": "b"})}})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.eventually(t, "Fetch of a planted record", func() error {
		vs, err := x.Fetch(ctxT(t), a, []string{"doc#0", "planted"})
		if !errors.Is(err, clone.ErrIsolationViolation) || vs != nil {
			return fmt.Errorf("Fetch with a planted record = %v, %v; want nothing and ErrIsolationViolation", vs, err)
		}
		return nil
	})
	violations := 0
	for _, e := range sink.Events() {
		if e.Outcome == audit.Violation {
			violations++
			if e.CloneID != a.CloneID() || e.Action != "vectorstore.Fetch" {
				t.Errorf("violation event %+v", e)
			}
		}
	}
	if violations != 1 {
		t.Fatalf("%d violation events, want 1", violations)
	}
	// The scope filter keeps the planted record out of queries.
	if got := owners(everything(t, x, a, nil)); got["b"] != 0 {
		t.Fatalf("query returned the planted record: %v", got)
	}
}

func (s *isolationSuite) postCheckQuery(t *testing.T) {
	x, d, _, a, b, _ := s.setup(t)
	ns, _ := vectorstore.Namespace(a)
	err := d.Upsert(ctxT(t), ns, []driver.Vector{{ID: "planted", Values: []float32{1, 0, 0, 0},
		Metadata: scoped(b.TenantID().String(), b.CloneID().String(), nil)}})
	if err != nil {
		t.Fatal(err)
	}
	// A backend that ignores filters (as a buggy or misconfigured one might).
	sink := &audit.Memory{}
	broken := newIndex(t, filterDropping{d}, sink)
	s.cfg.eventually(t, "Query of a planted record", func() error {
		ms, err := broken.Query(ctxT(t), a, vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: 10})
		if !errors.Is(err, clone.ErrIsolationViolation) || ms != nil {
			return fmt.Errorf("Query through a filter-dropping backend = %v, %v; want ErrIsolationViolation", ms, err)
		}
		return nil
	})
	if ev := sink.Events(); len(ev) != 1 || ev[0].Outcome != audit.Violation {
		t.Fatalf("audit events = %+v, want one violation", ev)
	}
	_ = x
}

func (s *isolationSuite) concurrent(t *testing.T) {
	d := s.open(t, Dim)
	x := newIndex(t, d, nil)
	const clones, rounds = 6, 15
	ccs := make([]clone.CloneContext, clones)
	for i := range ccs {
		ccs[i] = NewClone(t)
	}
	var wg sync.WaitGroup
	errc := make(chan error, clones)
	for i, cc := range ccs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := fmt.Sprint(i)
			for r := range rounds {
				id := fmt.Sprintf("v%d", r%5)
				err := x.Upsert(context.Background(), cc, []vectorstore.Vector{{ID: id, Values: []float32{1, float32(i), float32(r), 1}, Metadata: map[string]any{"me": me}}})
				if err != nil {
					errc <- err
					return
				}
				var ms []vectorstore.Match
				err = s.cfg.await(context.Background(), "a clone's query after its upsert", func() error {
					var err error
					ms, err = x.Query(context.Background(), cc, vectorstore.Query{Vector: []float32{1, 1, 1, 1}, TopK: 10, IncludeMetadata: true})
					if err == nil && len(ms) == 0 {
						err = fmt.Errorf("clone %d sees none of its vectors", i)
					}
					return err
				}, t.Logf)
				if err != nil {
					errc <- err
					return
				}
				for _, m := range ms {
					if m.Metadata["me"] != me {
						errc <- fmt.Errorf("clone %d saw %v", i, m.Metadata)
						return
					}
				}
				if r%4 == 3 {
					if err := x.Delete(context.Background(), cc, []string{id}); err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

// filterDropping is a faulty backend: it ignores query filters. It exists to prove the
// post-check catches what the filter should have stopped.
type filterDropping struct{ driver.Index }

func (f filterDropping) Query(ctx context.Context, ns string, q *driver.Query) ([]driver.Match, error) {
	qq := *q
	qq.Filter = nil
	return f.Index.Query(ctx, ns, &qq)
}
