// Package pineconetest is an in-process emulator of Pinecone's data plane, for tests of
// code that uses Pinecone (through go-pinecone or through vectorstore/pineconevector)
// without a network or an account.
//
// The emulator serves the gRPC VectorService that go-pinecone v5 speaks, over real gRPC
// on 127.0.0.1: Upsert, Query, Fetch, Delete (by IDs, by filter, all), List,
// DescribeIndexStats, ListNamespaces, DescribeNamespace, DeleteNamespace, Update (by ID,
// and by filter with dry_run) and FetchByMetadata. It is built
// on the message descriptors go-pinecone registers (protoregistry + dynamicpb, no copied
// generated code) and is backed by the same exact-search engine as the embedded
// vectorstore/memvector index.
//
// Semantics follow Pinecone's documentation: namespaces are created by the first upsert
// and vanish with their last record; the empty namespace is "__default__"; metrics are
// cosine (similarity, higher first), dotproduct (higher first) and euclidean (squared
// distance, lower first); filters use Pinecone's language (package vectorstore/filter),
// applied before ranking; ties rank by ascending ID; deleting a missing ID succeeds;
// deleting or describing a missing namespace with DeleteNamespace / DescribeNamespace is
// NOT_FOUND; updating a missing ID changes nothing and succeeds. Limits: 1000 vectors and 2 MB per upsert, 1000 IDs per fetch or delete,
// top_k 1..10000 (1..1000 with values or metadata), 40 KB of metadata per vector, list
// limit 1..100 — violations are INVALID_ARGUMENT. Writes are visible immediately (real
// Pinecone is eventually consistent).
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
	"encoding/json"
	"fmt"
	"math"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"

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

	"github.com/cloneiso/cloneiso/vectorstore/filter"
	"github.com/cloneiso/cloneiso/vectorstore/internal/engine"
)

// Pinecone's documented limits, enforced by the emulator.
const (
	MaxUpsertVectors   = 1000
	MaxUpsertBytes     = 2 << 20
	MaxIDsPerRequest   = 1000
	MaxTopK            = 10000
	MaxTopKWithData    = 1000
	MaxMetadataBytes   = 40 * 1024
	MaxIDLength        = 512
	DefaultListLimit   = 100
	MaxListLimit       = 100
	DefaultNamespace   = "__default__"
	serviceName        = "VectorService"
	apiKeyMetadataName = "api-key"
)

// Options configure the emulated index.
type Options struct {
	// Dimension of the index; required.
	Dimension int
	// Metric is "cosine" (default), "dotproduct" or "euclidean".
	Metric string
	// APIKey, if set, must be sent by clients in the Api-Key header (go-pinecone does
	// this); requests without it fail with UNAUTHENTICATED.
	APIKey string
}

// Server is a running emulator. It is safe for concurrent use.
type Server struct {
	opts    Options
	eng     *engine.Engine
	svc     protoreflect.ServiceDescriptor
	grpc    *grpc.Server
	lis     net.Listener
	mu      sync.Mutex
	faults  map[string][]error
	calls   map[string]int
	stopped sync.Once
}

// Start starts an emulator on a free port of 127.0.0.1 and stops it when the test ends.
func Start(t testing.TB, opts *Options) *Server {
	t.Helper()
	s, err := NewServer(opts)
	if err != nil {
		t.Fatalf("pineconetest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// NewServer starts an emulator on a free port of 127.0.0.1. Call Close when done.
func NewServer(opts *Options) (*Server, error) {
	if opts == nil || opts.Dimension < 1 || opts.Dimension > 20000 {
		return nil, fmt.Errorf("pineconetest: Options.Dimension must be in 1..20000")
	}
	var metric engine.Metric
	switch opts.Metric {
	case "", "cosine":
		metric = engine.Cosine
	case "dotproduct":
		metric = engine.DotProduct
	case "euclidean":
		metric = engine.Euclidean
	default:
		return nil, fmt.Errorf("pineconetest: unknown metric %q", opts.Metric)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(serviceName)
	if err != nil {
		return nil, fmt.Errorf("pineconetest: go-pinecone did not register %s: %v", serviceName, err)
	}
	svc, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("pineconetest: %s is not a service", serviceName)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pineconetest: listen: %v", err)
	}
	s := &Server{
		opts:   *opts,
		eng:    engine.New(opts.Dimension, &engine.Options{Metric: metric}),
		svc:    svc,
		lis:    lis,
		faults: map[string][]error{},
		calls:  map[string]int{},
	}
	s.grpc = grpc.NewServer(grpc.UnaryInterceptor(s.intercept), grpc.MaxRecvMsgSize(8<<20))
	s.grpc.RegisterService(s.serviceDesc(), s)
	go func() { _ = s.grpc.Serve(lis) }()
	return s, nil
}

// Host returns the index host to give go-pinecone: "http://127.0.0.1:PORT" (go-pinecone
// dials plaintext for http:// hosts).
func (s *Server) Host() string { return "http://" + s.lis.Addr().String() }

// Addr returns the listening address, "127.0.0.1:PORT".
func (s *Server) Addr() string { return s.lis.Addr().String() }

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

// Namespaces returns the record count of every namespace.
func (s *Server) Namespaces() map[string]int { return s.eng.Namespaces() }

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	s.mu.Lock()
	s.calls[method]++
	var fault error
	if q := s.faults[method]; len(q) > 0 {
		fault, s.faults[method] = q[0], q[1:]
	}
	s.mu.Unlock()
	if fault != nil {
		return nil, fault
	}
	if s.opts.APIKey != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get(apiKeyMetadataName); len(got) != 1 || got[0] != s.opts.APIKey {
			return nil, status.Error(codes.Unauthenticated, "Invalid API Key")
		}
	}
	return handler(ctx, req)
}

type handlerFunc func(ctx context.Context, in *dynamicpb.Message, out *dynamicpb.Message) error

func (s *Server) serviceDesc() *grpc.ServiceDesc {
	impl := map[string]handlerFunc{
		"Upsert":             s.upsert,
		"Query":              s.query,
		"Fetch":              s.fetch,
		"Delete":             s.delete,
		"List":               s.list,
		"DescribeIndexStats": s.describeIndexStats,
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
	if zero && s.eng.Metric() == engine.Cosine {
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

// normalizeMetadata checks Pinecone's metadata rules and converts lists to []string.
func normalizeMetadata(md map[string]any) (map[string]any, error) {
	if md == nil {
		return nil, nil
	}
	b, _ := json.Marshal(md)
	if len(b) > MaxMetadataBytes {
		return nil, invalid("Metadata size is %d bytes, which exceeds the limit of %d bytes per vector", len(b), MaxMetadataBytes)
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
		default:
			return nil, invalid("Metadata value for field %q must be a string, number, boolean or list of strings", k)
		}
	}
	return out, nil
}

func parseFilter(m protoreflect.Message, name string) (*filter.Filter, error) {
	raw, err := getStruct(m, name)
	if err != nil {
		return nil, invalid("bad filter: %v", err)
	}
	f, err := filter.Parse(raw)
	if err != nil {
		return nil, invalid("Invalid filter: %v", err)
	}
	return f, nil
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
	recs := make([]engine.Record, 0, l.Len())
	seen := map[string]bool{}
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
		raw, err := getStruct(v, "metadata")
		if err != nil {
			return invalid("bad metadata: %v", err)
		}
		md, err := normalizeMetadata(raw)
		if err != nil {
			return err
		}
		if seen[id] {
			// Pinecone keeps the last of duplicate IDs in one request.
			for j := range recs {
				if recs[j].ID == id {
					recs[j] = engine.Record{ID: id, Values: vals, Metadata: md}
				}
			}
			continue
		}
		seen[id] = true
		recs = append(recs, engine.Record{ID: id, Values: vals, Metadata: md})
	}
	s.eng.Upsert(namespace(in), recs)
	out.Set(fd(out, "upserted_count"), protoreflect.ValueOfUint32(uint32(l.Len())))
	return nil
}

func (s *Server) query(ctx context.Context, in, out *dynamicpb.Message) error {
	if in.Get(fd(in, "queries")).List().Len() > 0 {
		return status.Error(codes.Unimplemented, "pineconetest: the deprecated multi-query form is not emulated")
	}
	if has(in, "sparse_vector") {
		return status.Error(codes.Unimplemented, "pineconetest: sparse vectors are not emulated")
	}
	ns := namespace(in)
	topK := int(getUint(in, "top_k"))
	includeValues, includeMetadata := getBool(in, "include_values"), getBool(in, "include_metadata")
	maxK := MaxTopK
	if includeValues || includeMetadata {
		maxK = MaxTopKWithData
	}
	if topK < 1 || topK > maxK {
		return invalid("top_k must be in 1..%d, got %d", maxK, topK)
	}
	f, err := parseFilter(in, "filter")
	if err != nil {
		return err
	}
	vec := getFloats(in, "vector")
	id := getString(in, "id")
	switch {
	case id != "" && len(vec) > 0:
		return invalid("Cannot provide both 'vector' and 'id'")
	case id != "":
		recs := s.eng.Fetch(ns, []string{id})
		if len(recs) == 0 {
			// Pinecone answers a query by a missing ID with no matches.
			out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
			return nil
		}
		vec = recs[0].Values
	default:
		if err := s.checkValues(vec); err != nil {
			return err
		}
	}
	hits, err := s.eng.Query(ctx, ns, vec, topK, f, includeValues)
	if err != nil {
		return status.FromContextError(err).Err()
	}
	ml := out.Mutable(fd(out, "matches")).List()
	for _, h := range hits {
		sv := ml.NewElement()
		m := sv.Message()
		m.Set(fd(m, "id"), protoreflect.ValueOfString(h.ID))
		m.Set(fd(m, "score"), protoreflect.ValueOfFloat32(h.Score))
		if includeValues {
			setFloats(m, "values", h.Values)
		}
		if includeMetadata && h.Metadata != nil {
			if err := setStruct(m, "metadata", toStructMap(h.Metadata)); err != nil {
				return status.Errorf(codes.Internal, "metadata: %v", err)
			}
		}
		ml.Append(sv)
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
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

func (s *Server) fetch(_ context.Context, in, out *dynamicpb.Message) error {
	ids := getStrings(in, "ids")
	if len(ids) == 0 {
		return invalid("ids must not be empty")
	}
	if len(ids) > MaxIDsPerRequest {
		return invalid("Fetch of %d IDs exceeds the limit of %d", len(ids), MaxIDsPerRequest)
	}
	recs := s.eng.Fetch(namespace(in), ids)
	mp := out.Mutable(fd(out, "vectors")).Map()
	for _, r := range recs {
		v := mp.NewValue()
		m := v.Message()
		m.Set(fd(m, "id"), protoreflect.ValueOfString(r.ID))
		setFloats(m, "values", r.Values)
		if r.Metadata != nil {
			if err := setStruct(m, "metadata", toStructMap(r.Metadata)); err != nil {
				return status.Errorf(codes.Internal, "metadata: %v", err)
			}
		}
		mp.Set(protoreflect.ValueOfString(r.ID).MapKey(), v)
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
	return nil
}

func (s *Server) delete(_ context.Context, in, _ *dynamicpb.Message) error {
	ns := namespace(in)
	ids := getStrings(in, "ids")
	all := getBool(in, "delete_all")
	hasFilter := has(in, "filter")
	n := 0
	for _, b := range []bool{len(ids) > 0, all, hasFilter} {
		if b {
			n++
		}
	}
	if n != 1 {
		return invalid("Exactly one of ids, delete_all and filter must be set")
	}
	switch {
	case all:
		s.eng.DeleteNamespace(ns)
	case hasFilter:
		f, err := parseFilter(in, "filter")
		if err != nil {
			return err
		}
		if f == nil {
			return invalid("filter must not be empty")
		}
		s.eng.DeleteByFilter(ns, f)
	default:
		if len(ids) > MaxIDsPerRequest {
			return invalid("Delete of %d IDs exceeds the limit of %d", len(ids), MaxIDsPerRequest)
		}
		s.eng.Delete(ns, ids)
	}
	return nil
}

func encodeToken(last string) string { return base64.RawURLEncoding.EncodeToString([]byte(last)) }

func decodeToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", invalid("Invalid pagination token")
	}
	return string(b), nil
}

func listLimit(m protoreflect.Message) (int, error) {
	if !has(m, "limit") {
		return DefaultListLimit, nil
	}
	l := int(getUint(m, "limit"))
	if l < 1 || l > MaxListLimit {
		return 0, invalid("limit must be in 1..%d", MaxListLimit)
	}
	return l, nil
}

func (s *Server) list(_ context.Context, in, out *dynamicpb.Message) error {
	limit, err := listLimit(in)
	if err != nil {
		return err
	}
	after := ""
	if has(in, "pagination_token") {
		if after, err = decodeToken(getString(in, "pagination_token")); err != nil {
			return err
		}
	}
	ids, more := s.eng.List(namespace(in), getString(in, "prefix"), after, limit)
	vl := out.Mutable(fd(out, "vectors")).List()
	for _, id := range ids {
		e := vl.NewElement()
		e.Message().Set(fd(e.Message(), "id"), protoreflect.ValueOfString(id))
		vl.Append(e)
	}
	if more && len(ids) > 0 {
		p := out.Mutable(fd(out, "pagination")).Message()
		p.Set(fd(p, "next"), protoreflect.ValueOfString(encodeToken(ids[len(ids)-1])))
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
	return nil
}

func (s *Server) describeIndexStats(_ context.Context, in, out *dynamicpb.Message) error {
	if has(in, "filter") {
		return status.Error(codes.Unimplemented, "pineconetest: filtered index stats (pod indexes only) are not emulated")
	}
	counts := s.eng.Namespaces()
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
	out.Set(fd(out, "metric"), protoreflect.ValueOfString(s.eng.Metric().String()))
	out.Set(fd(out, "vector_type"), protoreflect.ValueOfString("dense"))
	return nil
}

func (s *Server) listNamespaces(_ context.Context, in, out *dynamicpb.Message) error {
	limit, err := listLimit(in)
	if err != nil {
		return err
	}
	after := ""
	if has(in, "pagination_token") {
		if after, err = decodeToken(getString(in, "pagination_token")); err != nil {
			return err
		}
	}
	prefix := getString(in, "prefix")
	counts := s.eng.Namespaces()
	var names []string
	for ns := range counts {
		if strings.HasPrefix(ns, prefix) {
			names = append(names, ns)
		}
	}
	sort.Strings(names)
	totalCount := len(names)
	i := sort.SearchStrings(names, after)
	for i < len(names) && names[i] <= after && after != "" {
		i++
	}
	names = names[i:]
	more := len(names) > limit
	if more {
		names = names[:limit]
	}
	nl := out.Mutable(fd(out, "namespaces")).List()
	for _, ns := range names {
		e := nl.NewElement()
		m := e.Message()
		m.Set(fd(m, "name"), protoreflect.ValueOfString(ns))
		m.Set(fd(m, "record_count"), protoreflect.ValueOfUint64(uint64(counts[ns])))
		nl.Append(e)
	}
	if more {
		p := out.Mutable(fd(out, "pagination")).Message()
		p.Set(fd(p, "next"), protoreflect.ValueOfString(encodeToken(names[len(names)-1])))
	}
	out.Set(fd(out, "total_count"), protoreflect.ValueOfInt32(int32(totalCount)))
	return nil
}

func (s *Server) describeNamespace(_ context.Context, in, out *dynamicpb.Message) error {
	ns := namespace(in)
	n := s.eng.Count(ns)
	if n == 0 {
		return status.Errorf(codes.NotFound, "Namespace %q not found", ns)
	}
	out.Set(fd(out, "name"), protoreflect.ValueOfString(ns))
	out.Set(fd(out, "record_count"), protoreflect.ValueOfUint64(uint64(n)))
	return nil
}

func (s *Server) deleteNamespace(_ context.Context, in, _ *dynamicpb.Message) error {
	ns := namespace(in)
	if !s.eng.DeleteNamespace(ns) {
		return status.Errorf(codes.NotFound, "Namespace %q not found", ns)
	}
	return nil
}

func (s *Server) update(_ context.Context, in, out *dynamicpb.Message) error {
	if has(in, "sparse_values") {
		return status.Error(codes.Unimplemented, "pineconetest: sparse vectors are not emulated")
	}
	ns := namespace(in)
	id := getString(in, "id")
	vals := getFloats(in, "values")
	raw, err := getStruct(in, "set_metadata")
	if err != nil {
		return invalid("bad set_metadata: %v", err)
	}
	set, err := normalizeMetadata(raw)
	if err != nil {
		return err
	}
	hasFilter := has(in, "filter")
	switch {
	case id != "" && hasFilter:
		return invalid("Cannot provide both 'id' and 'filter'")
	case id != "":
		if len(vals) == 0 && len(set) == 0 {
			return invalid("Update by ID needs values or set_metadata")
		}
		var newVals []float32
		if len(vals) > 0 {
			if err := s.checkValues(vals); err != nil {
				return err
			}
			newVals = vals
		}
		if getBool(in, "dry_run") {
			return nil
		}
		// A missing ID changes nothing and succeeds (Pinecone's documented behaviour).
		s.eng.Update(ns, id, newVals, set)
		return nil
	case hasFilter:
		if len(vals) > 0 {
			return invalid("Vector values cannot be updated by filter")
		}
		f, err := parseFilter(in, "filter")
		if err != nil {
			return err
		}
		if f == nil {
			return invalid("filter must not be empty")
		}
		n := s.eng.UpdateByFilter(ns, f, set, getBool(in, "dry_run"))
		out.Set(fd(out, "matched_records"), protoreflect.ValueOfInt32(int32(n)))
		return nil
	}
	return invalid("One of 'id' and 'filter' is required")
}

func (s *Server) fetchByMetadata(_ context.Context, in, out *dynamicpb.Message) error {
	f, err := parseFilter(in, "filter")
	if err != nil {
		return err
	}
	if f == nil {
		return invalid("filter is required")
	}
	limit := DefaultListLimit
	if has(in, "limit") {
		limit = int(getUint(in, "limit"))
		if limit < 1 || limit > MaxIDsPerRequest {
			return invalid("limit must be in 1..%d", MaxIDsPerRequest)
		}
	}
	after := ""
	if has(in, "pagination_token") {
		if after, err = decodeToken(getString(in, "pagination_token")); err != nil {
			return err
		}
	}
	recs, more := s.eng.FetchByFilter(namespace(in), f, after, limit)
	mp := out.Mutable(fd(out, "vectors")).Map()
	for _, r := range recs {
		v := mp.NewValue()
		m := v.Message()
		m.Set(fd(m, "id"), protoreflect.ValueOfString(r.ID))
		setFloats(m, "values", r.Values)
		if r.Metadata != nil {
			if err := setStruct(m, "metadata", toStructMap(r.Metadata)); err != nil {
				return status.Errorf(codes.Internal, "metadata: %v", err)
			}
		}
		mp.Set(protoreflect.ValueOfString(r.ID).MapKey(), v)
	}
	if more && len(recs) > 0 {
		p := out.Mutable(fd(out, "pagination")).Message()
		p.Set(fd(p, "next"), protoreflect.ValueOfString(encodeToken(recs[len(recs)-1].ID)))
	}
	out.Set(fd(out, "namespace"), protoreflect.ValueOfString(getString(in, "namespace")))
	return nil
}
