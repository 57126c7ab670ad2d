// Package pineconetest is an emulator of Pinecone's data plane, for tests of code that
// uses Pinecone (through go-pinecone, through vectorstore/pineconevector, or from any
// language through the pinecone-emulator command) without a network or an account.
//
// The emulator serves the gRPC VectorService that go-pinecone v5 speaks, over real gRPC:
// Upsert, Query, Fetch, Delete (by IDs, by filter, all), List, DescribeIndexStats (with
// or without a filter), CreateNamespace, ListNamespaces, DescribeNamespace,
// DeleteNamespace, Update (by ID, and by filter with dry_run) and FetchByMetadata. It is
// built on the message descriptors go-pinecone registers (protoregistry + dynamicpb, no
// copied generated code). Its record store, filter evaluation and scoring are its own,
// brute force and deliberately simple: it shares no code with the SDK's
// vectorstore/filter and vectorstore/internal/engine, so a bug in those is not mirrored
// here (a differential test compares the two).
//
// # Semantics
//
// They follow Pinecone's published API reference:
//
//   - Values round-trip exactly for every metric: records keep the values as sent.
//     Metrics are cosine (similarity, higher first), dotproduct (higher first; the
//     sparse dot product is added for hybrid queries) and euclidean (squared distance,
//     lower first). Ties rank by ascending ID (unpublished; Pinecone's order of equal
//     scores is unspecified).
//   - Sparse values are stored, returned by Fetch and by Query with include_values, and
//     validated: indices unique, as many values as indices, finite values, at most
//     [MaxSparseValues] of them, and a record with sparse values must have dense values
//     too. Sparse (hybrid) queries need the dotproduct metric (INVALID_ARGUMENT
//     otherwise, as Pinecone documents); Update can replace sparse values.
//   - Filters use Pinecone's language ($eq $ne $gt $gte $lt $lte $in $nin $exists $and
//     $or), applied before ranking. On a list field $eq/$in match if any element does and
//     $ne/$nin if none does; $ne/$nin also match records without the field.
//   - The namespace "" is "__default__". A serverless namespace is created by its first
//     upsert or by CreateNamespace, and stays (with 0 records) after its last record is
//     deleted, until DeleteNamespace; a pod-based namespace exists only while it has
//     records. Query, Fetch and List of a missing namespace return nothing;
//     DescribeNamespace and DeleteNamespace of one are NOT_FOUND, CreateNamespace of an
//     existing one ALREADY_EXISTS. Deleting a missing ID succeeds; updating a missing ID
//     changes nothing and succeeds.
//   - Kind "serverless" (the default) or "pod": List, CreateNamespace, ListNamespaces,
//     DescribeNamespace, DeleteNamespace, FetchByMetadata and Update by filter are
//     serverless-only and UNIMPLEMENTED on a pod index; DescribeIndexStats with a filter
//     (even {}) is pod-only and INVALID_ARGUMENT on a serverless index. Serverless
//     responses of Query, Fetch, List and FetchByMetadata carry usage.read_units: 1 per
//     10 records fetched (at least 1) for Fetch and FetchByMetadata, 1 per List page, and
//     for Query 1 per GB of namespace (at least 1; Pinecone bills fractions, the field is
//     an integer). Pod responses carry none.
//   - Limits (INVALID_ARGUMENT when exceeded): [MaxUpsertVectors] vectors and
//     [MaxUpsertBytes] per upsert, [MaxIDsPerRequest] IDs per fetch or delete, top_k
//     1..[MaxTopK], [MaxMetadataBytes] of metadata per record (also after an update
//     merges new keys in), [MaxQueryResponseBytes] per query response, list limit at
//     least 1 (default [DefaultListLimit]; Pinecone publishes no maximum).
//
// Not emulated (Pinecone publishes them but the emulator accepts or ignores them):
// metadata schemas given to CreateNamespace are stored and described but do not restrict
// which fields a filter may use; the deprecated multi-query form of Query is
// UNIMPLEMENTED; rate limits are not applied (use [Server.FailNext] to inject
// RESOURCE_EXHAUSTED). The gRPC codes of errors Pinecone documents only in prose (the
// 4 MB query cap, a filtered stats request on a serverless index) are the emulator's
// choice: INVALID_ARGUMENT.
//
// # Eventual consistency
//
// Pinecone is eventually consistent: "there can be a slight delay before new or changed
// records are visible to queries". With [Options.Lag] set, every acknowledged write
// (upsert, update, delete, namespace creation or deletion) becomes visible to Query,
// List, DescribeIndexStats, ListNamespaces, DescribeNamespace and FetchByMetadata (and,
// if [Lag.Fetch], to Fetch by ID) only once [Lag.Requests] further requests have reached
// the server and [Lag.Clock] has advanced by [Lag.Duration]; writes become visible in
// the order they were acknowledged. Both the request count and the clock are under the
// test's control, so lag needs no sleeping: a client that polls advances the count
// itself, and [Server.Settle] makes everything visible at once.
//
// Use [Server.FailNext] to inject faults (UNAVAILABLE, RESOURCE_EXHAUSTED, ...) and
// [Server.Calls] to count requests.
//
//	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: 384})
//	pc, _ := pinecone.NewClientBase(pinecone.NewClientBaseParams{})
//	idx, _ := pc.Index(pinecone.NewIndexConnParams{Host: srv.Host(), Namespace: "ns1"})
package pineconetest

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"

	// go-pinecone registers the VectorService descriptors the emulator serves.
	_ "github.com/pinecone-io/go-pinecone/v5/pinecone"
)

// Pinecone's documented limits, enforced by the emulator.
const (
	MaxUpsertVectors      = 1000
	MaxUpsertBytes        = 2 << 20
	MaxIDsPerRequest      = 1000
	MaxTopK               = 10000
	MaxQueryResponseBytes = 4 << 20
	MaxMetadataBytes      = 40 * 1024
	MaxIDLength           = 512
	MaxDimension          = 20000
	MaxSparseValues       = 1000
	DefaultListLimit      = 100
	DefaultNamespace      = "__default__"
	// MaxTopKWithData was the emulator's former limit on top_k when values or metadata
	// are included; Pinecone now documents only MaxTopK and MaxQueryResponseBytes.
	//
	// Deprecated: the emulator no longer enforces it.
	MaxTopKWithData = 1000
	// MaxListLimit was the emulator's former maximum list limit; Pinecone publishes none.
	//
	// Deprecated: the emulator no longer enforces it.
	MaxListLimit = 100

	serviceName        = "VectorService"
	apiKeyMetadataName = "api-key"
)

// Index kinds.
const (
	Serverless = "serverless"
	Pod        = "pod"
)

// Options configure the emulated index.
type Options struct {
	// Dimension of the index; required, 1..MaxDimension.
	Dimension int
	// Metric is "cosine" (default), "dotproduct" or "euclidean".
	Metric string
	// Kind is "serverless" (default) or "pod".
	Kind string
	// APIKey, if set, must be sent by clients in the Api-Key header (go-pinecone does
	// this); requests without it fail with UNAUTHENTICATED.
	APIKey string
	// Addr is the TCP address to listen on: "127.0.0.1:0" (default: a free port of the
	// IPv4 loopback), "[::1]:5081", ":5081", ...
	Addr string
	// Lag, if not nil, makes the index eventually consistent (see the package
	// documentation).
	Lag *Lag
}

// Lag configures eventual consistency: how long each acknowledged write stays invisible
// to queries, listings and stats.
type Lag struct {
	// Requests is how many further requests (of any method) must reach the server
	// before a write is visible.
	Requests int
	// Duration is how far Clock must advance before a write is visible.
	Duration time.Duration
	// Clock returns the current time; nil means time.Now. Tests inject a fake clock.
	Clock func() time.Time
	// Fetch makes Fetch by ID lag too. Off by default: Pinecone documents the delay for
	// queries, and recommends fetching or listing to check that writes landed.
	Fetch bool
}

// Server is a running emulator. It is safe for concurrent use.
type Server struct {
	opts    Options
	metric  string
	pod     bool
	svc     protoreflect.ServiceDescriptor
	grpc    *grpc.Server
	lis     net.Listener
	stopped sync.Once

	mu     sync.Mutex // faults, calls
	faults map[string][]error
	calls  map[string]int

	data    sync.Mutex // everything below
	latest  *state     // every acknowledged write applied
	visible *state     // the writes whose lag has passed (== latest without lag)
	log     []write    // acknowledged, not yet visible, oldest first
	tick    uint64     // requests received
	clock   func() time.Time
}

// Start starts an emulator (on a free port of 127.0.0.1 unless opts.Addr says
// otherwise) and stops it when the test ends.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	s, err := NewServer(opts)
	if err != nil {
		t.Fatalf("pineconetest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewServer starts an emulator on opts.Addr (default: a free port of 127.0.0.1). Call
// Close when done.
func NewServer(opts *Options) (*Server, error) {
	if opts == nil || opts.Dimension < 1 || opts.Dimension > MaxDimension {
		return nil, fmt.Errorf("pineconetest: Options.Dimension must be in 1..%d", MaxDimension)
	}
	s := &Server{opts: *opts, faults: map[string][]error{}, calls: map[string]int{}, clock: time.Now}
	switch opts.Metric {
	case "", "cosine":
		s.metric = "cosine"
	case "dotproduct", "euclidean":
		s.metric = opts.Metric
	default:
		return nil, fmt.Errorf("pineconetest: unknown metric %q (cosine, dotproduct or euclidean)", opts.Metric)
	}
	switch opts.Kind {
	case "", Serverless:
		s.opts.Kind = Serverless
	case Pod:
		s.pod = true
	default:
		return nil, fmt.Errorf("pineconetest: unknown kind %q (serverless or pod)", opts.Kind)
	}
	if l := opts.Lag; l != nil {
		if l.Requests < 0 || l.Duration < 0 {
			return nil, fmt.Errorf("pineconetest: Lag.Requests and Lag.Duration must not be negative")
		}
		lag := *l
		s.opts.Lag = &lag
		if lag.Clock != nil {
			s.clock = lag.Clock
		}
	}
	s.latest = newState()
	s.visible = s.latest
	if s.opts.Lag != nil {
		s.visible = newState()
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(serviceName)
	if err != nil {
		return nil, fmt.Errorf("pineconetest: go-pinecone did not register %s: %v", serviceName, err)
	}
	svc, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("pineconetest: %s is not a service", serviceName)
	}
	s.svc = svc
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pineconetest: listen on %s: %v", addr, err)
	}
	s.lis = lis
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(s.intercept), grpc.MaxRecvMsgSize(8<<20))
	s.grpc.RegisterService(s.serviceDesc(), s)
	go func() { _ = s.grpc.Serve(lis) }()
	return s, nil
}

// Host returns the index host to give go-pinecone: "http://127.0.0.1:PORT" or
// "http://[::1]:PORT" (go-pinecone dials plaintext for http:// hosts).
func (s *Server) Host() string { return "http://" + s.lis.Addr().String() }

// Addr returns the listening address, such as "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Kind returns "serverless" or "pod".
func (s *Server) Kind() string { return s.opts.Kind }

// Close stops the server.
func (s *Server) Close() {
	s.stopped.Do(func() { s.grpc.Stop() })
}

// FailNext makes the next n calls of method (e.g. "Upsert", "Query") fail with code
// and message msg, before the request is processed.
func (s *Server) FailNext(method string, n int, code codes.Code, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[method] = append(s.faults[method], status.Error(code, msg))
	}
}

// Calls returns how many requests of method (e.g. "Upsert") the server received,
// including failed ones.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Namespaces returns the record count of every namespace, with every acknowledged write
// applied (whatever the lag).
func (s *Server) Namespaces() map[string]int {
	s.data.Lock()
	defer s.data.Unlock()
	out := map[string]int{}
	for ns, d := range s.latest.namespaces {
		out[ns] = len(d.records)
	}
	return out
}

// Pending returns how many acknowledged writes are not yet visible to lagging reads.
func (s *Server) Pending() int {
	s.data.Lock()
	defer s.data.Unlock()
	s.catchUp()
	return len(s.log)
}

// Settle makes every acknowledged write visible at once.
func (s *Server) Settle() {
	s.data.Lock()
	defer s.data.Unlock()
	for _, w := range s.log {
		w.apply(s.visible)
	}
	s.log = nil
}

// commit applies an acknowledged write to the latest state, and to the visible state
// at once or once its lag has passed. The caller holds s.data.
func (s *Server) commit(apply func(*state)) {
	if s.pod {
		inner := apply
		apply = func(st *state) {
			inner(st)
			for ns, d := range st.namespaces {
				if len(d.records) == 0 {
					delete(st.namespaces, ns) // pod namespaces vanish with their last record
				}
			}
		}
	}
	apply(s.latest)
	if s.opts.Lag == nil {
		return
	}
	s.log = append(s.log, write{apply: apply, tick: s.tick, at: s.clock()})
}

// catchUp applies to the visible state the writes whose lag has passed, in order. The
// caller holds s.data.
func (s *Server) catchUp() {
	if s.opts.Lag == nil {
		return
	}
	now := s.clock()
	n := 0
	for _, w := range s.log {
		if s.tick < w.tick+uint64(s.opts.Lag.Requests) || now.Sub(w.at) < s.opts.Lag.Duration {
			break
		}
		w.apply(s.visible)
		n++
	}
	s.log = s.log[n:]
}

// view returns the state a read sees: the visible one for lagging reads. The caller
// holds s.data.
func (s *Server) view(lagging bool) *state {
	if !lagging {
		return s.latest
	}
	s.catchUp()
	return s.visible
}

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	s.mu.Lock()
	s.calls[method]++
	var fault error
	if q := s.faults[method]; len(q) > 0 {
		fault, s.faults[method] = q[0], q[1:]
	}
	s.mu.Unlock()
	s.data.Lock()
	s.tick++
	s.data.Unlock()
	if fault != nil {
		return nil, fault
	}
	if s.opts.APIKey != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get(apiKeyMetadataName); len(got) != 1 || got[0] != s.opts.APIKey {
			return nil, status.Error(codes.Unauthenticated, "Invalid API Key")
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	return handler(ctx, req)
}

type handlerFunc func(ctx context.Context, in *dynamicpb.Message, out *dynamicpb.Message) error

// serverlessOnly lists the methods a pod-based index does not have.
var serverlessOnly = map[string]bool{
	"List": true, "CreateNamespace": true, "ListNamespaces": true, "DescribeNamespace": true,
	"DeleteNamespace": true, "FetchByMetadata": true,
}

func (s *Server) serviceDesc() *grpc.ServiceDesc {
	impl := map[string]handlerFunc{
		"Upsert":             s.upsert,
		"Query":              s.query,
		"Fetch":              s.fetch,
		"Delete":             s.delete,
		"List":               s.list,
		"DescribeIndexStats": s.describeIndexStats,
		"CreateNamespace":    s.createNamespace,
		"ListNamespaces":     s.listNamespaces,
		"DescribeNamespace":  s.describeNamespace,
		"DeleteNamespace":    s.deleteNamespace,
		"Update":             s.update,
		"FetchByMetadata":    s.fetchByMetadata,
	}
	desc := &grpc.ServiceDesc{ServiceName: serviceName, HandlerType: (*any)(nil)}
	methods := s.svc.Methods()
	for i := 0; i < methods.Len(); i++ {
		m := methods.Get(i)
		name := string(m.Name())
		h := impl[name]
		if s.pod && serverlessOnly[name] {
			h = func(context.Context, *dynamicpb.Message, *dynamicpb.Message) error {
				return status.Errorf(codes.Unimplemented, "%s is not supported by pod-based indexes", name)
			}
		}
		in, out := m.Input(), m.Output()
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: name,
			Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				req := dynamicpb.NewMessage(in)
				if err := dec(req); err != nil {
					return nil, err
				}
				call := func(ctx context.Context, r any) (any, error) {
					if h == nil {
						return nil, status.Errorf(codes.Unimplemented, "pineconetest: %s is not emulated", name)
					}
					resp := dynamicpb.NewMessage(out)
					if err := h(ctx, r.(*dynamicpb.Message), resp); err != nil {
						return nil, err
					}
					return resp, nil
				}
				if icpt == nil {
					return call(ctx, req)
				}
				return icpt(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + serviceName + "/" + name}, call)
			},
		})
	}
	return desc
}

// ---- dynamic message helpers ----

func fd(m protoreflect.Message, name string) protoreflect.FieldDescriptor {
	f := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		panic("pineconetest: no field " + name + " in " + string(m.Descriptor().FullName()))
	}
	return f
}

func getString(m protoreflect.Message, name string) string { return m.Get(fd(m, name)).String() }
func getBool(m protoreflect.Message, name string) bool     { return m.Get(fd(m, name)).Bool() }
func getUint(m protoreflect.Message, name string) uint64   { return m.Get(fd(m, name)).Uint() }
func has(m protoreflect.Message, name string) bool         { return m.Has(fd(m, name)) }

func getStrings(m protoreflect.Message, name string) []string {
	l := m.Get(fd(m, name)).List()
	out := make([]string, l.Len())
	for i := range out {
		out[i] = l.Get(i).String()
	}
	return out
}

func getFloats(m protoreflect.Message, name string) []float32 {
	l := m.Get(fd(m, name)).List()
	out := make([]float32, l.Len())
	for i := range out {
		out[i] = float32(l.Get(i).Float())
	}
	return out
}

func setFloats(m protoreflect.Message, name string, vs []float32) {
	f := fd(m, name)
	l := m.Mutable(f).List()
	for _, v := range vs {
		l.Append(protoreflect.ValueOfFloat32(v))
	}
}

// getStruct converts a google.protobuf.Struct field to a Go map (nil if unset).
func getStruct(m protoreflect.Message, name string) (map[string]any, error) {
	f := fd(m, name)
	if !m.Has(f) {
		return nil, nil
	}
	b, err := proto.Marshal(m.Get(f).Message().Interface())
	if err != nil {
		return nil, err
	}
	var st structpb.Struct
	if err := proto.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return st.AsMap(), nil
}

func setStruct(m protoreflect.Message, name string, v map[string]any) error {
	st, err := structpb.NewStruct(v)
	if err != nil {
		return err
	}
	b, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	f := fd(m, name)
	val := m.NewField(f)
	if err := proto.Unmarshal(b, val.Message().Interface()); err != nil {
		return err
	}
	m.Set(f, val)
	return nil
}

func namespace(m protoreflect.Message) string {
	ns := getString(m, "namespace")
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func (s *Server) checkValues(vs []float32) error {
	if len(vs) != s.opts.Dimension {
		return invalid("Vector dimension %d does not match the dimension of the index %d", len(vs), s.opts.Dimension)
	}
	zero := true
	for _, v := range vs {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return invalid("Vector values must be finite")
		}
		if v != 0 {
			zero = false
		}
	}
	if zero {
		return invalid("Dense vectors must contain at least one non-zero value")
	}
	return nil
}

func checkID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return invalid("Vector ID must be 1 to %d characters", MaxIDLength)
	}
	return nil
}

// getSparse reads and validates a SparseValues field (nil if unset or empty).
func getSparse(m protoreflect.Message, name string) (*sparseVector, error) {
	if !has(m, name) {
		return nil, nil
	}
	sm := m.Get(fd(m, name)).Message()
	il := sm.Get(fd(sm, "indices")).List()
	sv := &sparseVector{values: getFloats(sm, "values")}
	for i := 0; i < il.Len(); i++ {
		sv.indices = append(sv.indices, uint32(il.Get(i).Uint()))
	}
	if len(sv.indices) == 0 && len(sv.values) == 0 {
		return nil, nil
	}
	if len(sv.indices) != len(sv.values) {
		return nil, invalid("Sparse vector has %d indices and %d values; they must be the same length", len(sv.indices), len(sv.values))
	}
	if len(sv.indices) > MaxSparseValues {
		return nil, invalid("Sparse vector has %d non-zero values, more than the limit of %d", len(sv.indices), MaxSparseValues)
	}
	seen := make(map[uint32]bool, len(sv.indices))
	for i, ix := range sv.indices {
		if seen[ix] {
			return nil, invalid("Sparse vector indices must be unique: %d appears twice", ix)
		}
		seen[ix] = true
		if v := float64(sv.values[i]); math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, invalid("Sparse vector values must be finite")
		}
	}
	return sv, nil
}

func setSparse(m protoreflect.Message, name string, sv *sparseVector) {
	if sv == nil {
		return
	}
	sm := m.Mutable(fd(m, name)).Message()
	il := sm.Mutable(fd(sm, "indices")).List()
	for _, ix := range sv.indices {
		il.Append(protoreflect.ValueOfUint32(ix))
	}
	setFloats(sm, "values", sv.values)
}

// normalizeMetadata checks Pinecone's metadata rules and converts lists to []string.
func normalizeMetadata(md map[string]any) (map[string]any, error) {
	if md == nil {
		return nil, nil
	}
	out := make(map[string]any, len(md))
	for k, v := range md {
		switch x := v.(type) {
		case string, float64, bool:
			out[k] = x
		case []any:
			l := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, invalid("Metadata value for field %q must be a list of strings", k)
				}
				l[i] = s
			}
			out[k] = l
		case nil:
			return nil, invalid("Metadata value for field %q is null; remove the key instead", k)
		default:
			return nil, invalid("Metadata value for field %q must be a string, number, boolean or list of strings", k)
		}
	}
	if n := metadataSize(out); n > MaxMetadataBytes {
		return nil, invalid("Metadata size is %d bytes, which exceeds the limit of %d bytes per vector", n, MaxMetadataBytes)
	}
	return out, nil
}

// getFilter reads a filter field: present reports whether it was set at all (an empty
// {} is present and compiles to nil).
func getFilter(m protoreflect.Message, name string) (cond *condition, present bool, err error) {
	raw, err := getStruct(m, name)
	if err != nil {
		return nil, false, invalid("bad filter: %v", err)
	}
	if !has(m, name) {
		return nil, false, nil
	}
	c, err := compileFilter(raw)
	if err != nil {
		return nil, true, invalid("Invalid filter: %v", err)
	}
	return c, true, nil
}

func setRecord(m protoreflect.Message, r *record, withValues, withMetadata bool) error {
	m.Set(fd(m, "id"), protoreflect.ValueOfString(r.id))
	if withValues {
		setFloats(m, "values", r.values)
		setSparse(m, "sparse_values", r.sparse)
	}
	if withMetadata && r.md != nil {
		if err := setStruct(m, "metadata", toStructMap(r.md)); err != nil {
			return status.Errorf(codes.Internal, "metadata: %v", err)
		}
	}
	return nil
}

func toStructMap(md map[string]any) map[string]any {
	out := make(map[string]any, len(md))
	for k, v := range md {
		if l, ok := v.([]string); ok {
			a := make([]any, len(l))
			for i, s := range l {
				a[i] = s
			}
			v = a
		}
		out[k] = v
	}
	return out
}

// setUsage reports read units on a serverless index (pod-based indexes report none).
func (s *Server) setUsage(out protoreflect.Message, units int) {
	if s.pod {
		return
	}
	u := out.Mutable(fd(out, "usage")).Message()
	u.Set(fd(u, "read_units"), protoreflect.ValueOfUint32(uint32(max(units, 1))))
}

// fetchUnits is Pinecone's fetch cost: 1 read unit per 10 records, at least 1.
func fetchUnits(n int) int { return (n + 9) / 10 }

func encodeToken(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }

func decodeToken(m protoreflect.Message) (string, error) {
	if !has(m, "pagination_token") {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(getString(m, "pagination_token"))
	if err != nil || len(b) == 0 {
		return "", invalid("Invalid pagination token")
	}
	return string(b), nil
}

// pageLimit reads an optional limit: at least 1, default DefaultListLimit.
func pageLimit(m protoreflect.Message) (int, error) {
	if !has(m, "limit") {
		return DefaultListLimit, nil
	}
	l := getUint(m, "limit")
	if l < 1 {
		return 0, invalid("limit must be at least 1")
	}
	return int(min(l, math.MaxInt32)), nil
}

// ---- handlers ----

func (s *Server) upsert(_ context.Context, in, out *dynamicpb.Message) error {
	if size := proto.Size(in); size > MaxUpsertBytes {
		return invalid("Request size %d bytes exceeds the limit of %d bytes", size, MaxUpsertBytes)
	}
	l := in.Get(fd(in, "vectors")).List()
	if l.Len() > MaxUpsertVectors {
		return invalid("Upsert of %d vectors exceeds the limit of %d", l.Len(), MaxUpsertVectors)
	}
	var recs []*record
	for i := 0; i < l.Len(); i++ {
		v := l.Get(i).Message()
		id := getString(v, "id")
		if err := checkID(id); err != nil {
			return err
		}
		vals := getFloats(v, "values")
		if err := s.checkValues(vals); err != nil {
			return err
		}
		sv, err := getSparse(v, "sparse_values")
		if err != nil {
			return err
		}
		raw, err := getStruct(v, "metadata")
		if err != nil {
			return invalid("bad metadata: %v", err)
		}
		md, err := normalizeMetadata(raw)
		if err != nil {
			return err
		}
		recs = append(recs, newRecord(id, vals, sv, md))
	}
	ns := namespace(in)
	s.data.Lock()
	s.commit(func(st *state) {
		d := st.getOrCreate(ns)
		for _, r := range recs { // a later duplicate ID replaces an earlier one
			d.records[r.id] = r
		}
	})
	s.data.Unlock()
	out.Set(fd(out, "upserted_count"), protoreflect.ValueOfUint32(uint32(l.Len())))
	return nil
}

func (s *Server) query(ctx context.Context, in, out *dynamicpb.Message) error {
	if in.Get(fd(in, "queries")).List().Len() > 0 {
		return status.Error(codes.Unimplemented, "pineconetest: the deprecated multi-query form is not emulated")
	}
	topK := getUint(in, "top_k")
	if topK < 1 || topK > MaxTopK {
		return invalid("top_k must be in 1..%d, got %d", MaxTopK, topK)
	}
	cond, _, err := getFilter(in, "filter")
	if err != nil {
		return err
	}
	qs, err := getSparse(in, "sparse_vector")
	if err != nil {
		return err
	}
	if qs != nil && s.metric != "dotproduct" {
		return invalid("Sparse vectors can only be queried on indexes with the dotproduct metric; this index uses %s", s.metric)
	}
	vec := getFloats(in, "vector")
	id := getString(in, "id")
	ns := namespace(in)
	includeValues, includeMetadata := getBool(in, "include_values"), getBool(in, "include_metadata")
	switch {
	case id != "" && len(vec) > 0:
		return invalid("Cannot provide both 'vector' and 'id'")
	case id == "":
		if err := s.checkValues(vec); err != nil {
			return err
		}
	}

	s.data.Lock()
	st := s.view(true)
	if id != "" {
		d := st.get(ns)
		var r *record
		if d != nil {
			r = d.records[id]
		}
		if r == nil {
			s.data.Unlock()
			s.setUsage(out, 1)
			return nil // Pinecone answers a query by a missing ID with no matches
		}
		vec, qs = r.values, r.sparse
		if s.metric != "dotproduct" {
			qs = nil
		}
	}
	d := st.get(ns)
	hits := rank(s.metric, d, vec, qs, cond, int(topK))
	var nsBytes int
	if d != nil {
		for _, r := range d.records {
			nsBytes += r.bytes
		}
	}
	s.data.Unlock()
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}

	ml := out.Mutable(fd(out, "matches")).List()
	for _, h := range hits {
		e := ml.NewElement()
		m := e.Message()
		if err := setRecord(m, h.r, includeValues, includeMetadata); err != nil {
			return err
		}
		m.Set(fd(m, "score"), protoreflect.ValueOfFloat32(float32(h.score)))
		ml.Append(e)
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
	s.setUsage(out, (nsBytes+(1<<30)-1)>>30)
	if size := proto.Size(out); size > MaxQueryResponseBytes {
		return invalid("Query result size %d bytes exceeds the limit of %d bytes; lower top_k or leave out values or metadata", size, MaxQueryResponseBytes)
	}
	return nil
}

func (s *Server) fetch(_ context.Context, in, out *dynamicpb.Message) error {
	ids := getStrings(in, "ids")
	if len(ids) == 0 {
		return invalid("ids must not be empty")
	}
	if len(ids) > MaxIDsPerRequest {
		return invalid("Fetch of %d IDs exceeds the limit of %d", len(ids), MaxIDsPerRequest)
	}
	ns := namespace(in)
	s.data.Lock()
	d := s.view(s.opts.Lag != nil && s.opts.Lag.Fetch).get(ns)
	var found []*record
	if d != nil {
		for _, id := range ids {
			if r := d.records[id]; r != nil {
				found = append(found, r)
			}
		}
	}
	s.data.Unlock()
	mp := out.Mutable(fd(out, "vectors")).Map()
	for _, r := range found {
		v := mp.NewValue()
		if err := setRecord(v.Message(), r, true, true); err != nil {
			return err
		}
		mp.Set(protoreflect.ValueOfString(r.id).MapKey(), v)
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
	s.setUsage(out, fetchUnits(mp.Len()))
	return nil
}

func (s *Server) delete(_ context.Context, in, _ *dynamicpb.Message) error {
	ns := namespace(in)
	ids := getStrings(in, "ids")
	all := getBool(in, "delete_all")
	cond, hasFilter, err := getFilter(in, "filter")
	if err != nil {
		return err
	}
	n := 0
	for _, b := range []bool{len(ids) > 0, all, hasFilter} {
		if b {
			n++
		}
	}
	if n != 1 {
		return invalid("Exactly one of ids, delete_all and filter must be set")
	}
	if len(ids) > MaxIDsPerRequest {
		return invalid("Delete of %d IDs exceeds the limit of %d", len(ids), MaxIDsPerRequest)
	}
	if hasFilter && cond == nil {
		return invalid("filter must not be empty")
	}
	s.data.Lock()
	defer s.data.Unlock()
	s.commit(func(st *state) {
		d := st.get(ns)
		if d == nil {
			return
		}
		switch {
		case all:
			d.records = map[string]*record{}
		case hasFilter:
			for id, r := range d.records {
				if cond.matches(r.md) {
					delete(d.records, id)
				}
			}
		default:
			for _, id := range ids {
				delete(d.records, id)
			}
		}
	})
	return nil
}

func (s *Server) list(_ context.Context, in, out *dynamicpb.Message) error {
	limit, err := pageLimit(in)
	if err != nil {
		return err
	}
	last, err := decodeToken(in)
	if err != nil {
		return err
	}
	s.data.Lock()
	ids := after(s.view(true).sortedIDs(namespace(in)), getString(in, "prefix"), last)
	s.data.Unlock()
	more := len(ids) > limit
	if more {
		ids = ids[:limit]
	}
	vl := out.Mutable(fd(out, "vectors")).List()
	for _, id := range ids {
		e := vl.NewElement()
		e.Message().Set(fd(e.Message(), "id"), protoreflect.ValueOfString(id))
		vl.Append(e)
	}
	if more {
		p := out.Mutable(fd(out, "pagination")).Message()
		p.Set(fd(p, "next"), protoreflect.ValueOfString(encodeToken(ids[len(ids)-1])))
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
	s.setUsage(out, 1)
	return nil
}

func (s *Server) describeIndexStats(_ context.Context, in, out *dynamicpb.Message) error {
	cond, filtered, err := getFilter(in, "filter")
	if err != nil {
		return err
	}
	if filtered && !s.pod {
		return invalid("Serverless and Starter indexes do not support describing index stats with metadata filtering")
	}
	s.data.Lock()
	counts := map[string]int{}
	for ns, d := range s.view(true).namespaces {
		n := 0
		for _, r := range d.records {
			if cond.matches(r.md) {
				n++
			}
		}
		if !filtered || n > 0 {
			counts[ns] = n
		}
	}
	s.data.Unlock()
	mp := out.Mutable(fd(out, "namespaces")).Map()
	total := 0
	for ns, n := range counts {
		v := mp.NewValue()
		v.Message().Set(fd(v.Message(), "vector_count"), protoreflect.ValueOfUint32(uint32(n)))
		mp.Set(protoreflect.ValueOfString(ns).MapKey(), v)
		total += n
	}
	out.Set(fd(out, "dimension"), protoreflect.ValueOfUint32(uint32(s.opts.Dimension)))
	out.Set(fd(out, "total_vector_count"), protoreflect.ValueOfUint32(uint32(total)))
	out.Set(fd(out, "metric"), protoreflect.ValueOfString(s.metric))
	out.Set(fd(out, "vector_type"), protoreflect.ValueOfString("dense"))
	return nil
}

// describe fills a NamespaceDescription.
func describe(m protoreflect.Message, name string, d *namespaceData) {
	m.Set(fd(m, "name"), protoreflect.ValueOfString(name))
	m.Set(fd(m, "record_count"), protoreflect.ValueOfUint64(uint64(len(d.records))))
	if d.schema != nil {
		sc := m.Mutable(fd(m, "schema")).Message()
		fields := sc.Mutable(fd(sc, "fields")).Map()
		for f, filterable := range d.schema {
			v := fields.NewValue()
			v.Message().Set(fd(v.Message(), "filterable"), protoreflect.ValueOfBool(filterable))
			fields.Set(protoreflect.ValueOfString(f).MapKey(), v)
		}
	}
}

func (s *Server) createNamespace(_ context.Context, in, out *dynamicpb.Message) error {
	name := getString(in, "name")
	if name == "" {
		return invalid("Namespace name must not be empty")
	}
	if len(name) > MaxIDLength {
		return invalid("Namespace name must be at most %d characters", MaxIDLength)
	}
	var schema map[string]bool
	if has(in, "schema") {
		sc := in.Get(fd(in, "schema")).Message()
		schema = map[string]bool{}
		sc.Get(fd(sc, "fields")).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			schema[k.String()] = getBool(v.Message(), "filterable")
			return true
		})
	}
	s.data.Lock()
	defer s.data.Unlock()
	if s.latest.get(name) != nil {
		return status.Errorf(codes.AlreadyExists, "Namespace %q already exists", name)
	}
	s.commit(func(st *state) {
		if st.get(name) == nil {
			st.getOrCreate(name).schema = schema
		}
	})
	describe(out, name, s.latest.get(name))
	return nil
}

func (s *Server) listNamespaces(_ context.Context, in, out *dynamicpb.Message) error {
	limit, err := pageLimit(in)
	if err != nil {
		return err
	}
	last, err := decodeToken(in)
	if err != nil {
		return err
	}
	s.data.Lock()
	defer s.data.Unlock()
	st := s.view(true)
	var names []string
	for ns := range st.namespaces {
		names = append(names, ns)
	}
	names = after(sortStrings(names), getString(in, "prefix"), "")
	total := len(names)
	names = after(names, "", last)
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	nl := out.Mutable(fd(out, "namespaces")).List()
	for _, ns := range names {
		e := nl.NewElement()
		describe(e.Message(), ns, st.get(ns))
		nl.Append(e)
	}
	if more {
		p := out.Mutable(fd(out, "pagination")).Message()
		p.Set(fd(p, "next"), protoreflect.ValueOfString(encodeToken(names[len(names)-1])))
	}
	out.Set(fd(out, "total_count"), protoreflect.ValueOfInt32(int32(total)))
	return nil
}

func (s *Server) describeNamespace(_ context.Context, in, out *dynamicpb.Message) error {
	ns := namespace(in)
	s.data.Lock()
	defer s.data.Unlock()
	d := s.view(true).get(ns)
	if d == nil {
		return status.Errorf(codes.NotFound, "Namespace %q not found", ns)
	}
	describe(out, ns, d)
	return nil
}

func (s *Server) deleteNamespace(_ context.Context, in, _ *dynamicpb.Message) error {
	ns := namespace(in)
	s.data.Lock()
	defer s.data.Unlock()
	if s.latest.get(ns) == nil {
		return status.Errorf(codes.NotFound, "Namespace %q not found", ns)
	}
	s.commit(func(st *state) { delete(st.namespaces, ns) })
	return nil
}

func (s *Server) update(_ context.Context, in, out *dynamicpb.Message) error {
	ns := namespace(in)
	id := getString(in, "id")
	vals := getFloats(in, "values")
	sv, err := getSparse(in, "sparse_values")
	if err != nil {
		return err
	}
	raw, err := getStruct(in, "set_metadata")
	if err != nil {
		return invalid("bad set_metadata: %v", err)
	}
	set, err := normalizeMetadata(raw)
	if err != nil {
		return err
	}
	cond, hasFilter, err := getFilter(in, "filter")
	if err != nil {
		return err
	}
	dryRun := getBool(in, "dry_run")
	switch {
	case id != "" && hasFilter:
		return invalid("Cannot provide both 'id' and 'filter'")
	case id != "":
		return s.updateByID(ns, id, vals, sv, set, dryRun)
	case hasFilter:
		if s.pod {
			return status.Error(codes.Unimplemented, "Update by metadata is not supported by pod-based indexes")
		}
		if len(vals) > 0 || sv != nil {
			return invalid("Vector values cannot be updated by filter")
		}
		return s.updateByFilter(ns, cond, set, dryRun, out)
	}
	return invalid("One of 'id' and 'filter' is required")
}

// updateByID updates the values, sparse values or metadata of one record.
func (s *Server) updateByID(ns, id string, vals []float32, sv *sparseVector, set map[string]any, dryRun bool) error {
	if len(vals) == 0 && sv == nil && len(set) == 0 {
		return invalid("Update by ID needs values, sparse_values or set_metadata")
	}
	if len(vals) > 0 {
		if err := s.checkValues(vals); err != nil {
			return err
		}
	}
	s.data.Lock()
	defer s.data.Unlock()
	d := s.latest.get(ns)
	if d == nil || d.records[id] == nil || dryRun {
		return nil // a missing ID changes nothing and succeeds (Pinecone's documented behaviour)
	}
	if n := metadataSize(merged(d.records[id].md, set)); n > MaxMetadataBytes {
		return invalid("Metadata size after the update is %d bytes, which exceeds the limit of %d bytes per vector", n, MaxMetadataBytes)
	}
	s.commit(func(st *state) {
		d := st.get(ns)
		if d == nil || d.records[id] == nil {
			return
		}
		old := d.records[id]
		nv, nsv, md := old.values, old.sparse, old.md
		if len(vals) > 0 {
			nv = vals
		}
		if sv != nil {
			nsv = sv
		}
		if len(set) > 0 {
			md = merged(md, set)
		}
		d.records[id] = newRecord(id, nv, nsv, md)
	})
	return nil
}

// updateByFilter merges set into the metadata of every record matching cond (a
// serverless index only), reporting the number matched.
func (s *Server) updateByFilter(ns string, cond *condition, set map[string]any, dryRun bool, out *dynamicpb.Message) error {
	if cond == nil {
		return invalid("filter must not be empty")
	}
	s.data.Lock()
	defer s.data.Unlock()
	matched := 0
	if d := s.latest.get(ns); d != nil {
		for _, r := range d.records {
			if !cond.matches(r.md) {
				continue
			}
			matched++
			if n := metadataSize(merged(r.md, set)); n > MaxMetadataBytes {
				return invalid("Metadata of %q after the update would be %d bytes, which exceeds the limit of %d bytes per vector", r.id, n, MaxMetadataBytes)
			}
		}
	}
	out.Set(fd(out, "matched_records"), protoreflect.ValueOfInt32(int32(matched)))
	if dryRun || len(set) == 0 {
		return nil
	}
	s.commit(func(st *state) {
		d := st.get(ns)
		if d == nil {
			return
		}
		for id, r := range d.records {
			if cond.matches(r.md) {
				d.records[id] = newRecord(id, r.values, r.sparse, merged(r.md, set))
			}
		}
	})
	return nil
}

func (s *Server) fetchByMetadata(_ context.Context, in, out *dynamicpb.Message) error {
	cond, _, err := getFilter(in, "filter")
	if err != nil {
		return err
	}
	if cond == nil {
		return invalid("filter is required")
	}
	limit, err := pageLimit(in)
	if err != nil {
		return err
	}
	last, err := decodeToken(in)
	if err != nil {
		return err
	}
	ns := namespace(in)
	s.data.Lock()
	st := s.view(true)
	var found []*record
	more := false
	if d := st.get(ns); d != nil {
		for _, id := range after(st.sortedIDs(ns), "", last) {
			if r := d.records[id]; cond.matches(r.md) {
				if len(found) == limit {
					more = true
					break
				}
				found = append(found, r)
			}
		}
	}
	s.data.Unlock()
	mp := out.Mutable(fd(out, "vectors")).Map()
	for _, r := range found {
		v := mp.NewValue()
		if err := setRecord(v.Message(), r, true, true); err != nil {
			return err
		}
		mp.Set(protoreflect.ValueOfString(r.id).MapKey(), v)
	}
	if more {
		p := out.Mutable(fd(out, "pagination")).Message()
		p.Set(fd(p, "next"), protoreflect.ValueOfString(encodeToken(found[len(found)-1].id)))
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
	s.setUsage(out, fetchUnits(len(found)))
	return nil
}

func sortStrings(s []string) []string {
	sort.Strings(s)
	return s
}
