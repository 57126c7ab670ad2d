package pineconevector_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/drivertest"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

const apiKey = "test-key"

func open(t *testing.T, srv *pineconetest.Server, dim int, retry *pineconevector.RetryOptions) *pineconevector.Driver {
	t.Helper()
	d, err := pineconevector.NewDriver(srv.Host(), dim, &pineconevector.Options{APIKey: apiKey, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestConformance(t *testing.T) {
	drivertest.RunConformanceTests(t, func(t *testing.T, dim int) driver.Index {
		srv := pineconetest.Start(t, &pineconetest.Options{Dimension: dim, APIKey: apiKey})
		return open(t, srv, dim, nil)
	})
}

// The same suite on an eventually consistent emulator: every write lands 3 requests
// later for queries, listings and stats, and (second run) for fetches by ID too. No
// sleeping: the suite's polling advances the emulator's request count.
func TestConformanceEventual(t *testing.T) {
	for name, lag := range map[string]*pineconetest.Lag{
		"QueriesListsStats": {Requests: 3},
		"FetchToo":          {Requests: 2, Fetch: true},
	} {
		t.Run(name, func(t *testing.T) {
			drivertest.RunConformanceTestsWith(t, func(t *testing.T, dim int) driver.Index {
				srv := pineconetest.Start(t, &pineconetest.Options{Dimension: dim, APIKey: apiKey, Lag: lag})
				return open(t, srv, dim, nil)
			}, &drivertest.Options{Eventual: true})
		})
	}
}

func fastRetry() *pineconevector.RetryOptions {
	return &pineconevector.RetryOptions{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

func TestRetries(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4, APIKey: apiKey})
	x, err := vectorstore.NewIndex(open(t, srv, 4, fastRetry()), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := drivertest.NewClone(t)
	vs := []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}}

	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		before := srv.Calls("Upsert")
		srv.FailNext("Upsert", 2, code, "try later")
		if err := x.Upsert(t.Context(), cc, vs); err != nil {
			t.Fatalf("%v twice then success: %v", code, err)
		}
		if n := srv.Calls("Upsert") - before; n != 3 {
			t.Errorf("%v: %d attempts, want 3", code, n)
		}
	}

	// Out of attempts: the last error is returned, as ErrUnavailable, with the gRPC
	// status reachable.
	before := srv.Calls("Query")
	srv.FailNext("Query", 10, codes.Unavailable, "down")
	_, err = x.Query(t.Context(), cc, vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: 1})
	if !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("persistent UNAVAILABLE: %v", err)
	}
	if s, ok := status.FromError(errors.Unwrap(err)); !ok || s.Code() != codes.Unavailable {
		t.Errorf("gRPC status not reachable: %v", err)
	}
	if n := srv.Calls("Query") - before; n != 4 {
		t.Errorf("persistent UNAVAILABLE: %d attempts, want MaxAttempts 4", n)
	}
}

func TestNoRetryOnInvalidArgument(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4, APIKey: apiKey})
	x, err := vectorstore.NewIndex(open(t, srv, 4, fastRetry()), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := drivertest.NewClone(t)
	srv.FailNext("Upsert", 1, codes.InvalidArgument, "bad request")
	err = x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}})
	if !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("INVALID_ARGUMENT: %v, want ErrInvalidInput", err)
	}
	if n := srv.Calls("Upsert"); n != 1 {
		t.Fatalf("INVALID_ARGUMENT was sent %d times, want 1", n)
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) || se.GRPCStatus().Code() != codes.InvalidArgument {
		t.Errorf("vendor error not reachable with errors.As: %v", err)
	}
}

// TestRetryRespectsDeadline: a retry whose backoff would outlast the context's deadline
// is not waited for, and a context canceled during a backoff ends the wait. The
// backoffs are centuries long (full jitter makes a wait shorter than the one-hour
// deadline a chance of about one in ten million), so an implementation that waited
// would hang the test instead of passing it; no wall-clock time is measured.
func TestRetryRespectsDeadline(t *testing.T) {
	const forever = 290 * 365 * 24 * time.Hour // close to the largest time.Duration
	retry := &pineconevector.RetryOptions{MaxAttempts: 100, InitialBackoff: forever, MaxBackoff: forever}
	t.Run("deadline before the backoff ends", func(t *testing.T) {
		srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4})
		x, _ := vectorstore.NewIndex(open(t, srv, 4, retry), nil)
		srv.FailNext("Fetch", 1000, codes.ResourceExhausted, "quota")
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		_, err := x.Fetch(ctx, drivertest.NewClone(t), []string{"a"})
		if !errors.Is(err, clone.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if n := srv.Calls("Fetch"); n != 1 {
			t.Fatalf("%d attempts, want 1 (the backoff outlasts the deadline)", n)
		}
	})
	t.Run("canceled during the backoff", func(t *testing.T) {
		srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// The first attempt's answer cancels the context: the driver is then in (or
		// about to enter) its backoff, which must end at once.
		cancelAfterFetch := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			err := invoker(ctx, method, req, reply, cc, opts...)
			if strings.HasSuffix(method, "/Fetch") {
				cancel()
			}
			return err
		})
		d, err := pineconevector.NewDriver(srv.Host(), 4, &pineconevector.Options{APIKey: apiKey, Retry: retry, DialOptions: []grpc.DialOption{cancelAfterFetch}})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		x, _ := vectorstore.NewIndex(d, nil)
		srv.FailNext("Fetch", 1000, codes.ResourceExhausted, "quota")
		_, err = x.Fetch(ctx, drivertest.NewClone(t), []string{"a"})
		if !errors.Is(err, clone.ErrUnavailable) {
			t.Fatalf("got %v, want ErrUnavailable", err)
		}
		if n := srv.Calls("Fetch"); n != 1 {
			t.Fatalf("%d attempts, want 1 (canceled during the first backoff)", n)
		}
	})
}

func TestBatching(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4})
	x, _ := vectorstore.NewIndex(open(t, srv, 4, nil), nil)
	cc := drivertest.NewClone(t)
	var vs []vectorstore.Vector
	var ids []string
	for i := range 2500 {
		id := fmt.Sprintf("v%04d", i)
		ids = append(ids, id)
		vs = append(vs, vectorstore.Vector{ID: id, Values: []float32{1, float32(i), 0, 0}})
	}
	if err := x.Upsert(t.Context(), cc, vs); err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls("Upsert"); n != 3 {
		t.Errorf("2500 small vectors took %d upserts, want 3 (1000 per request)", n)
	}
	got, err := x.Fetch(t.Context(), cc, ids)
	if err != nil || len(got) != 2500 {
		t.Fatalf("Fetch of 2500 = %d, %v", len(got), err)
	}
	if n := srv.Calls("Fetch"); n != 3 {
		t.Errorf("fetch of 2500 IDs took %d requests, want 3", n)
	}
	if err := x.Delete(t.Context(), cc, ids); err != nil {
		t.Fatal(err)
	}
	if n := srv.Calls("Delete"); n != 3 {
		t.Errorf("delete of 2500 IDs took %d requests, want 3", n)
	}

	// 100 vectors with ~30 KB of metadata each: about 3 MB, so at least 2 requests of
	// at most 2 MB (the emulator refuses larger ones).
	before := srv.Calls("Upsert")
	text := strings.Repeat("x", 30*1024)
	vs = vs[:0]
	for i := range 100 {
		vs = append(vs, vectorstore.Vector{ID: fmt.Sprintf("big%03d", i), Values: []float32{1, 0, 0, 0}, Metadata: map[string]any{"text": text}})
	}
	if err := x.Upsert(t.Context(), cc, vs); err != nil {
		t.Fatalf("Upsert of 3 MB: %v", err)
	}
	if n := srv.Calls("Upsert") - before; n != 2 {
		t.Errorf("3 MB took %d upserts, want 2", n)
	}
}

func TestValidateHost(t *testing.T) {
	good := []string{
		"https://idx-abc123.svc.aped-4627-b74a.pinecone.io",
		"idx-abc123.svc.aped-4627-b74a.pinecone.io",
		"http://127.0.0.1:5081",
		"http://[::1]:5081",
		"localhost:443",
	}
	for _, h := range good {
		if err := pineconevector.ValidateHost(h); err != nil {
			t.Errorf("ValidateHost(%q): %v", h, err)
		}
	}
	bad := []string{
		"", "ftp://host", "https://", "https://host/path", "https://user@host", "host?x=1",
		"http://host:0", "http://host:99999", "http://host:abc", "host name", "http://ho\x00st",
		"https://-bad.example.com", "https://exa_mple.com", "http://[::1", "unix:///tmp/sock",
		"https://héllo.com",
	}
	for _, h := range bad {
		err := pineconevector.ValidateHost(h)
		if !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("ValidateHost(%q) = %v, want ErrInvalidInput", h, err)
		}
		if _, err := pineconevector.Open(h, 4, nil); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("Open(%q) = %v, want ErrInvalidInput", h, err)
		}
	}
}

func TestAs(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4})
	x, err := pineconevector.Open(srv.Host(), 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var conn *pinecone.IndexConnection
	if !x.As(&conn) || conn == nil {
		t.Fatal("As(**pinecone.IndexConnection) failed")
	}
	var client *pinecone.Client
	if !x.As(&client) || client == nil {
		t.Fatal("As(**pinecone.Client) failed")
	}
	var s string
	if x.As(&s) {
		t.Fatal("As(*string) succeeded")
	}
	// The escape hatch talks to the same server.
	cc := drivertest.NewClone(t)
	if err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	ns, _ := vectorstore.Namespace(cc)
	res, err := conn.WithNamespace(ns).FetchVectors(t.Context(), []string{"a"})
	if err != nil || len(res.Vectors) != 1 {
		t.Fatalf("FetchVectors through As = %v, %v", res, err)
	}
}

func TestUnauthenticatedIsUnavailable(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4, APIKey: apiKey})
	d, err := pineconevector.NewDriver(srv.Host(), 4, &pineconevector.Options{APIKey: "wrong", Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	x, _ := vectorstore.NewIndex(d, nil)
	_, err = x.Stats(t.Context(), drivertest.NewClone(t))
	if !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("wrong API key: %v, want ErrUnavailable (a server misconfiguration, not the caller's fault)", err)
	}
}

func TestDriverRefusesDefaultNamespace(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4})
	d := open(t, srv, 4, nil)
	for _, ns := range []string{"", "__default__"} {
		err := d.Upsert(t.Context(), ns, []driver.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}})
		if !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("Upsert into %q: %v", ns, err)
		}
		if _, err := d.Query(t.Context(), ns, &driver.Query{Vector: []float32{1, 0, 0, 0}, TopK: 1}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("Query of %q: %v", ns, err)
		}
		if err := d.DeleteNamespace(t.Context(), ns); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("DeleteNamespace %q: %v", ns, err)
		}
	}
	if n := srv.Calls("Upsert") + srv.Calls("Query") + srv.Calls("DeleteNamespace"); n != 0 {
		t.Fatalf("%d requests reached the server", n)
	}
}

func TestStatsFallsBackToIndexStats(t *testing.T) {
	// A pod-based index has no DescribeNamespace (UNIMPLEMENTED).
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4, Kind: pineconetest.Pod})
	x, _ := vectorstore.NewIndex(open(t, srv, 4, nil), nil)
	cc := drivertest.NewClone(t)
	if err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}, {ID: "b", Values: []float32{0, 1, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	st, err := x.Stats(t.Context(), cc)
	if err != nil || st.VectorCount != 2 {
		t.Fatalf("Stats = %+v, %v; want 2 from DescribeIndexStats", st, err)
	}
	if srv.Calls("DescribeIndexStats") != 1 {
		t.Fatalf("DescribeIndexStats was not used")
	}
}

func TestErrorKind(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4})
	d := open(t, srv, 4, nil)
	cases := []struct {
		err  error
		want error
	}{
		{status.Error(codes.InvalidArgument, "x"), clone.ErrInvalidInput},
		{status.Error(codes.OutOfRange, "x"), clone.ErrInvalidInput},
		{status.Error(codes.NotFound, "x"), clone.ErrNotFound},
		{status.Error(codes.AlreadyExists, "x"), clone.ErrConflict},
		{status.Error(codes.Unimplemented, "x"), clone.ErrUnsupported},
		{status.Error(codes.Unavailable, "x"), clone.ErrUnavailable},
		{status.Error(codes.ResourceExhausted, "x"), clone.ErrUnavailable},
		{status.Error(codes.Unauthenticated, "x"), clone.ErrUnavailable},
		{status.Error(codes.PermissionDenied, "x"), clone.ErrUnavailable},
		{status.Error(codes.Internal, "x"), clone.ErrUnavailable},
		{context.DeadlineExceeded, clone.ErrUnavailable},
		{&pinecone.PineconeError{Code: 400, Msg: errors.New("bad")}, clone.ErrInvalidInput},
		{&pinecone.PineconeError{Code: 404, Msg: errors.New("nope")}, clone.ErrNotFound},
		{&pinecone.PineconeError{Code: 409, Msg: errors.New("dup")}, clone.ErrConflict},
		{fmt.Errorf("wrapped: %w", &pinecone.PineconeError{Code: 429, Msg: errors.New("slow")}), clone.ErrUnavailable},
		{&pinecone.PineconeError{Code: 500, Msg: errors.New("oops")}, clone.ErrUnavailable},
		{errors.New("plain"), nil},
	}
	for _, c := range cases {
		if got := d.ErrorKind(c.err); got != c.want {
			t.Errorf("ErrorKind(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// On a pod-based index, what Pinecone only offers serverless indexes is ErrUnsupported
// through the driver (List, and DeleteAll, which uses DeleteNamespace); the rest works.
func TestPodIndex(t *testing.T) {
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 4, Kind: pineconetest.Pod})
	x, _ := vectorstore.NewIndex(open(t, srv, 4, nil), nil)
	cc := drivertest.NewClone(t)
	if err := x.Upsert(t.Context(), cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	if ms, err := x.Query(t.Context(), cc, vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: 1}); err != nil || len(ms) != 1 {
		t.Fatalf("query on a pod index = %v, %v", ms, err)
	}
	if _, err := x.List(t.Context(), cc, nil); !errors.Is(err, clone.ErrUnsupported) {
		t.Fatalf("list on a pod index: %v, want ErrUnsupported", err)
	}
	if err := x.DeleteAll(t.Context(), cc); !errors.Is(err, clone.ErrUnsupported) {
		t.Fatalf("DeleteAll on a pod index: %v, want ErrUnsupported", err)
	}
	if err := x.Delete(t.Context(), cc, []string{"a"}); err != nil {
		t.Fatal(err)
	}
}
