// Package pineconevector is the Pinecone backend of package vectorstore, on the official
// go-pinecone v5 client over gRPC.
//
// One gRPC connection serves every clone; each call targets the clone's namespace with
// IndexConnection.WithNamespace. Requests are split within Pinecone's limits: upserts
// in batches of at most 1000 vectors and 2 MB (computed from the encoded protobuf size),
// fetches and deletes in batches of at most 1000 IDs.
//
// go-pinecone does not retry. The driver retries calls that fail with
// RESOURCE_EXHAUSTED or UNAVAILABLE, with exponential backoff and full jitter, within
// the caller's deadline and RetryOptions.MaxAttempts. Every retried request is
// idempotent (upserts carry their IDs, deletes of missing IDs succeed), so re-sending
// after an ambiguous failure is safe. Other errors are returned at once; gRPC codes and
// *pinecone.PineconeError HTTP codes are mapped to the error kinds of package clone,
// and the vendor error stays reachable with errors.As.
//
// The host is validated before it reaches go-pinecone, which calls log.Fatalf (ending
// the process) when it cannot build a gRPC client for it.
//
// Stats uses DescribeNamespace (serverless indexes); counts are eventually consistent
// on Pinecone.
package pineconevector

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

// Pinecone's request limits the driver splits batches by.
const (
	MaxBatchVectors = 1000
	MaxBatchBytes   = 2 << 20
	MaxBatchIDs     = 1000
	// batchHeadroom is kept free in every upsert request for the namespace and framing.
	batchHeadroom = 4 << 10
)

// RetryOptions configure retries of RESOURCE_EXHAUSTED and UNAVAILABLE. Nil means
// defaults.
type RetryOptions struct {
	// MaxAttempts is the number of attempts of one request, including the first;
	// 0 means 5, 1 disables retries.
	MaxAttempts int
	// InitialBackoff is the upper bound of the first wait (full jitter: the wait is
	// uniform in [0, bound)); 0 means 100ms. The bound doubles on every retry.
	InitialBackoff time.Duration
	// MaxBackoff caps the bound; 0 means 5s.
	MaxBackoff time.Duration
}

// Options configure the Pinecone driver.
type Options struct {
	// APIKey is sent in the Api-Key header. It may be empty only for servers that do not
	// check it (such as the pineconetest emulator).
	APIKey string
	// SourceTag is passed to go-pinecone for its user agent.
	SourceTag string
	// Retry configures retries.
	Retry *RetryOptions
	// DialOptions are appended to go-pinecone's gRPC dial options.
	DialOptions []grpc.DialOption
	// Index configures the portable type (audit sink, write check).
	Index *vectorstore.Options
}

// Open returns a clone-scoped index on the Pinecone index at host (as returned by
// DescribeIndex, e.g. "https://myindex-abc123.svc.aped-4627-b74a.pinecone.io", or
// "http://127.0.0.1:PORT" for a local server), whose dimension is dim.
func Open(host string, dim int, opts *Options) (*vectorstore.Index, error) {
	if opts == nil {
		opts = &Options{}
	}
	d, err := NewDriver(host, dim, opts)
	if err != nil {
		return nil, err
	}
	x, err := vectorstore.NewIndex(d, opts.Index)
	if err != nil {
		d.Close()
		return nil, err
	}
	return x, nil
}

// Driver is the Pinecone driver.
type Driver struct {
	client *pinecone.Client
	conn   *pinecone.IndexConnection
	dim    int
	retry  RetryOptions
}

var _ driver.Index = (*Driver)(nil)

// NewDriver returns the Pinecone driver (Options.Index is ignored). It does not contact
// the server: gRPC connects lazily.
func NewDriver(host string, dim int, opts *Options) (*Driver, error) {
	const op = "pineconevector.NewDriver"
	if opts == nil {
		opts = &Options{}
	}
	if dim < 1 || dim > vectorstore.MaxDimension {
		return nil, errs.New(errs.InvalidInput, op, "dimension %d outside 1..%d", dim, vectorstore.MaxDimension)
	}
	if err := ValidateHost(host); err != nil {
		return nil, err
	}
	headers := map[string]string{}
	if opts.APIKey != "" {
		headers["Api-Key"] = opts.APIKey
	}
	client, err := pinecone.NewClientBase(pinecone.NewClientBaseParams{Headers: headers, SourceTag: opts.SourceTag})
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, op, err, "pinecone client")
	}
	conn, err := client.Index(pinecone.NewIndexConnParams{Host: host}, opts.DialOptions...)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, op, err, "pinecone index connection")
	}
	r := RetryOptions{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second}
	if opts.Retry != nil {
		if opts.Retry.MaxAttempts > 0 {
			r.MaxAttempts = opts.Retry.MaxAttempts
		}
		if opts.Retry.InitialBackoff > 0 {
			r.InitialBackoff = opts.Retry.InitialBackoff
		}
		if opts.Retry.MaxBackoff > 0 {
			r.MaxBackoff = opts.Retry.MaxBackoff
		}
	}
	return &Driver{client: client, conn: conn, dim: dim, retry: r}, nil
}

// ValidateHost checks that host is an index host go-pinecone can dial: an optional
// http:// or https:// scheme, a host name or IP address, an optional port, and nothing
// else (no user info, path, query or fragment). Errors are of kind ErrInvalidInput.
func ValidateHost(host string) error {
	const op = "pineconevector.ValidateHost"
	bad := func(why string) error {
		return errs.New(errs.InvalidInput, op, "index host %s: %s", quoteHost(host), why)
	}
	if host == "" {
		return bad("empty")
	}
	if len(host) > 512 {
		return bad("too long")
	}
	rest := host
	switch {
	case strings.HasPrefix(rest, "https://"):
		rest = rest[len("https://"):]
	case strings.HasPrefix(rest, "http://"):
		rest = rest[len("http://"):]
	case strings.Contains(rest, "://"):
		return bad("scheme must be http or https")
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return bad("no host name")
	}
	if strings.ContainsAny(rest, "/?#@ \\") {
		return bad("only a host name and an optional port are allowed")
	}
	for _, r := range rest {
		if r < 0x21 || r > 0x7e {
			return bad("contains a non-printable or non-ASCII character")
		}
	}
	name, port := rest, ""
	if h, p, err := net.SplitHostPort(rest); err == nil {
		name, port = h, p
	} else if strings.Count(rest, ":") == 1 || strings.HasPrefix(rest, "[") {
		return bad("malformed port")
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return bad("port must be a number in 1..65535")
		}
	}
	if net.ParseIP(name) != nil {
		return nil
	}
	if name == "" || len(name) > 253 {
		return bad("invalid host name")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad("invalid host name")
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return bad("invalid host name")
			}
		}
	}
	if _, err := url.Parse("https://" + rest); err != nil {
		return bad("not a valid URL host")
	}
	return nil
}

func quoteHost(s string) string {
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return strconv.Quote(s)
}

// Dimension implements driver.Index.
func (d *Driver) Dimension() int { return d.dim }

// ns returns a connection to namespace ns, sharing the gRPC connection.
func (d *Driver) ns(ns string) *pinecone.IndexConnection { return d.conn.WithNamespace(ns) }

// checkNS refuses the namespaces that mean "the default namespace" to Pinecone: a
// clone's data never goes there, whatever calls the driver.
func checkNS(op, ns string) error {
	if ns == "" || ns == "__default__" {
		return errs.New(errs.InvalidInput, op, "refusing Pinecone's default namespace")
	}
	return nil
}

// retryable reports whether a failed request may be re-sent.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.ResourceExhausted, codes.Unavailable:
		return true
	}
	var pe *pinecone.PineconeError
	if errors.As(err, &pe) {
		return pe.Code == 429 || pe.Code == 503
	}
	return false
}

// do runs call, retrying retryable failures with backoff and full jitter while attempts
// and the context's deadline allow.
func (d *Driver) do(ctx context.Context, call func(context.Context) error) error {
	bound := d.retry.InitialBackoff
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		if err == nil || !retryable(err) || attempt >= d.retry.MaxAttempts {
			return err
		}
		wait := time.Duration(rand.Int64N(int64(bound) + 1))
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
			return err // the next attempt could not finish in time
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		bound = min(bound*2, d.retry.MaxBackoff)
	}
}

// vectorSize is the encoded size of v inside an UpsertRequest (field 1, repeated).
func vectorSize(id string, dim int, md *structpb.Struct) int {
	n := protowire.SizeTag(1) + protowire.SizeBytes(len(id))
	n += protowire.SizeTag(2) + protowire.SizeBytes(4*dim)
	if md != nil {
		n += protowire.SizeTag(3) + protowire.SizeBytes(proto.Size(md))
	}
	return protowire.SizeTag(1) + protowire.SizeBytes(n)
}

// Upsert implements driver.Index, in batches within Pinecone's limits.
func (d *Driver) Upsert(ctx context.Context, ns string, vs []driver.Vector) error {
	if err := checkNS("pineconevector.Upsert", ns); err != nil {
		return err
	}
	conn := d.ns(ns)
	var batch []*pinecone.Vector
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b := batch
		batch, size = nil, 0
		return d.do(ctx, func(ctx context.Context) error {
			_, err := conn.UpsertVectors(ctx, b)
			return err
		})
	}
	for _, v := range vs {
		md, err := structpb.NewStruct(toStructMap(v.Metadata))
		if err != nil {
			return errs.Wrap(errs.InvalidInput, "pineconevector.Upsert", err, "metadata")
		}
		vals := v.Values
		pv := &pinecone.Vector{Id: v.ID, Values: &vals, Metadata: md}
		s := vectorSize(v.ID, len(vals), md)
		if len(batch) > 0 && (len(batch) >= MaxBatchVectors || size+s > MaxBatchBytes-batchHeadroom) {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, pv)
		size += s
	}
	return flush()
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

func fromStruct(st *structpb.Struct) map[string]any {
	if st == nil {
		return nil
	}
	m := st.AsMap()
	for k, v := range m {
		if l, ok := v.([]any); ok {
			ss := make([]string, 0, len(l))
			for _, e := range l {
				if s, ok := e.(string); ok {
					ss = append(ss, s)
				}
			}
			m[k] = ss
		}
	}
	return m
}

func toFilter(f *filter.Filter) (*pinecone.MetadataFilter, error) {
	if f == nil {
		return nil, nil
	}
	st, err := structpb.NewStruct(f.Map())
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, "pineconevector", err, "filter")
	}
	return st, nil
}

// Query implements driver.Index. Metadata is always requested, for the post-check.
func (d *Driver) Query(ctx context.Context, ns string, q *driver.Query) ([]driver.Match, error) {
	if err := checkNS("pineconevector.Query", ns); err != nil {
		return nil, err
	}
	mf, err := toFilter(q.Filter)
	if err != nil {
		return nil, err
	}
	conn := d.ns(ns)
	var res *pinecone.QueryVectorsResponse
	err = d.do(ctx, func(ctx context.Context) error {
		var err error
		res, err = conn.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{
			Vector:          q.Vector,
			TopK:            uint32(q.TopK),
			MetadataFilter:  mf,
			IncludeValues:   q.IncludeValues,
			IncludeMetadata: true,
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]driver.Match, 0, len(res.Matches))
	for _, m := range res.Matches {
		if m == nil || m.Vector == nil {
			continue
		}
		dm := driver.Match{ID: m.Vector.Id, Score: m.Score, Metadata: fromStruct(m.Vector.Metadata)}
		if q.IncludeValues && m.Vector.Values != nil {
			dm.Values = *m.Vector.Values
		}
		out = append(out, dm)
	}
	return out, nil
}

func batches(ids []string) [][]string {
	var out [][]string
	for len(ids) > MaxBatchIDs {
		out = append(out, ids[:MaxBatchIDs])
		ids = ids[MaxBatchIDs:]
	}
	return append(out, ids)
}

// Fetch implements driver.Index, in batches of at most 1000 IDs.
func (d *Driver) Fetch(ctx context.Context, ns string, ids []string) ([]driver.Vector, error) {
	if err := checkNS("pineconevector.Fetch", ns); err != nil {
		return nil, err
	}
	conn := d.ns(ns)
	var out []driver.Vector
	for _, b := range batches(ids) {
		var res *pinecone.FetchVectorsResponse
		err := d.do(ctx, func(ctx context.Context) error {
			var err error
			res, err = conn.FetchVectors(ctx, b)
			return err
		})
		if err != nil {
			return nil, err
		}
		for id, v := range res.Vectors {
			if v == nil {
				continue
			}
			dv := driver.Vector{ID: id, Metadata: fromStruct(v.Metadata)}
			if v.Id != "" && v.Id != id {
				dv.ID = v.Id // the post-check will reject it: it was not asked for
			}
			if v.Values != nil {
				dv.Values = *v.Values
			}
			out = append(out, dv)
		}
	}
	return out, nil
}

// Delete implements driver.Index, in batches of at most 1000 IDs.
func (d *Driver) Delete(ctx context.Context, ns string, ids []string) error {
	if err := checkNS("pineconevector.Delete", ns); err != nil {
		return err
	}
	conn := d.ns(ns)
	for _, b := range batches(ids) {
		err := d.do(ctx, func(ctx context.Context) error { return conn.DeleteVectorsById(ctx, b) })
		if err != nil && status.Code(err) != codes.NotFound {
			return err
		}
	}
	return nil
}

// DeleteByFilter implements driver.Index.
func (d *Driver) DeleteByFilter(ctx context.Context, ns string, f *filter.Filter) error {
	if err := checkNS("pineconevector.DeleteByFilter", ns); err != nil {
		return err
	}
	mf, err := toFilter(f)
	if err != nil {
		return err
	}
	if mf == nil {
		return errs.New(errs.InvalidInput, "pineconevector.DeleteByFilter", "nil filter")
	}
	conn := d.ns(ns)
	err = d.do(ctx, func(ctx context.Context) error { return conn.DeleteVectorsByFilter(ctx, mf) })
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

// DeleteNamespace implements driver.Index; a missing namespace (NOT_FOUND) is success.
func (d *Driver) DeleteNamespace(ctx context.Context, ns string) error {
	if err := checkNS("pineconevector.DeleteNamespace", ns); err != nil {
		return err
	}
	err := d.do(ctx, func(ctx context.Context) error { return d.conn.DeleteNamespace(ctx, ns) })
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

// List implements driver.Index.
func (d *Driver) List(ctx context.Context, ns string, req *driver.ListRequest) (*driver.ListPage, error) {
	if err := checkNS("pineconevector.List", ns); err != nil {
		return nil, err
	}
	conn := d.ns(ns)
	lr := &pinecone.ListVectorsRequest{}
	limit := uint32(req.Limit)
	lr.Limit = &limit
	if req.Prefix != "" {
		p := req.Prefix
		lr.Prefix = &p
	}
	if req.PageToken != "" {
		t := req.PageToken
		lr.PaginationToken = &t
	}
	var res *pinecone.ListVectorsResponse
	err := d.do(ctx, func(ctx context.Context) error {
		var err error
		res, err = conn.ListVectors(ctx, lr)
		return err
	})
	if status.Code(err) == codes.NotFound {
		return &driver.ListPage{}, nil
	}
	if err != nil {
		return nil, err
	}
	p := &driver.ListPage{}
	for _, id := range res.VectorIds {
		if id != nil {
			p.IDs = append(p.IDs, *id)
		}
	}
	if res.NextPaginationToken != nil {
		p.NextPageToken = *res.NextPaginationToken
	}
	return p, nil
}

// Stats implements driver.Index with DescribeNamespace (serverless indexes), falling
// back to DescribeIndexStats where that is UNIMPLEMENTED (pod-based indexes); a missing
// namespace has 0 records.
func (d *Driver) Stats(ctx context.Context, ns string) (*driver.Stats, error) {
	if err := checkNS("pineconevector.Stats", ns); err != nil {
		return nil, err
	}
	var res *pinecone.NamespaceDescription
	err := d.do(ctx, func(ctx context.Context) error {
		var err error
		res, err = d.conn.DescribeNamespace(ctx, ns)
		return err
	})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return &driver.Stats{}, nil
	case codes.Unimplemented:
		// Pod-based indexes have no DescribeNamespace: read the index-wide stats.
		var st *pinecone.DescribeIndexStatsResponse
		err = d.do(ctx, func(ctx context.Context) error {
			var err error
			st, err = d.conn.DescribeIndexStats(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		if s := st.Namespaces[ns]; s != nil {
			return &driver.Stats{VectorCount: int(s.VectorCount)}, nil
		}
		return &driver.Stats{}, nil
	default:
		return nil, err
	}
	if res == nil {
		return &driver.Stats{}, nil
	}
	return &driver.Stats{VectorCount: int(res.RecordCount)}, nil
}

// ErrorKind implements driver.Index: gRPC status codes and PineconeError HTTP codes are
// mapped to the kinds of package clone. Authentication and permission failures are
// the host's misconfiguration, not the caller's, and map to ErrUnavailable.
func (d *Driver) ErrorKind(err error) error {
	var pe *pinecone.PineconeError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == 400 || pe.Code == 422:
			return clone.ErrInvalidInput
		case pe.Code == 404:
			return clone.ErrNotFound
		case pe.Code == 409:
			return clone.ErrConflict
		case pe.Code == 413:
			return clone.ErrTooLarge
		default:
			return clone.ErrUnavailable
		}
	}
	if errors.Is(err, context.Canceled) {
		return clone.ErrCanceled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return clone.ErrUnavailable
	}
	s, ok := status.FromError(err)
	if !ok {
		return nil
	}
	switch s.Code() {
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return clone.ErrInvalidInput
	case codes.NotFound:
		return clone.ErrNotFound
	case codes.AlreadyExists, codes.Aborted:
		return clone.ErrConflict
	case codes.Unimplemented:
		return clone.ErrUnsupported
	case codes.Canceled:
		return clone.ErrCanceled
	default:
		return clone.ErrUnavailable
	}
}

// As implements driver.Index. It supports **pinecone.IndexConnection (the connection
// to the default namespace; use WithNamespace, never the default namespace, for clone
// data) and **pinecone.Client.
func (d *Driver) As(i any) bool {
	switch p := i.(type) {
	case **pinecone.IndexConnection:
		*p = d.conn
		return true
	case **pinecone.Client:
		*p = d.client
		return true
	}
	return false
}

// Close implements driver.Index: it closes the gRPC connection.
func (d *Driver) Close() error {
	if err := d.conn.Close(); err != nil {
		return fmt.Errorf("pineconevector: close: %w", err)
	}
	return nil
}
