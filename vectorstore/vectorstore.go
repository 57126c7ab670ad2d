// Package vectorstore is a clone-scoped vector index: every operation takes a
// [clone.CloneContext], and no clone can read, change, list or delete another clone's
// vectors, whatever IDs or filters it passes.
//
// [Index] is the portable type: it validates input, scopes every call to the clone and
// re-checks every result, then hands the work to a driver (package vectorstore/driver).
// Open one with a backend package:
//
//   - vectorstore/memvector: the embedded, in-process index (the default; exact search;
//     with a path, every acknowledged write is in an fsynced write-ahead log);
//   - vectorstore/pineconevector: Pinecone, through the official go-pinecone client.
//
// # How a clone is scoped
//
//  1. Namespace. Each clone's vectors live in their own namespace, derived from the
//     CloneContext only, in the format returned by [Namespace]:
//     "t-<tenant ID>-c-<clone ID>" (both IDs in canonical UUID form). It is never ""
//     or "__default__", and no argument of any method can change it.
//  2. Metadata stamp. The keys [TenantKey] ("tenant_id") and [CloneKey] ("clone_id")
//     are written into every vector's metadata from the context. Callers may not set
//     them: their own IDs there are refused with [clone.ErrInvalidInput], another
//     tenant's or clone's with [clone.ErrCloneMismatch] and an [audit.Denied] event. The
//     keys are removed again from returned metadata.
//  3. Filter. Every query and delete-by-filter has the clone scope
//     {"tenant_id": T, "clone_id": C} AND-ed to the caller's filter, so no filter can
//     match outside the clone. A filter that compares tenant_id or clone_id with another
//     tenant's or clone's ID is a probe: it is refused with [clone.ErrCloneMismatch]
//     and an [audit.Denied] event.
//  4. Post-check. Every match and fetched vector is checked against the context before
//     it is returned. A mismatch is an isolation violation: the call fails with
//     [clone.ErrIsolationViolation], returns nothing, and one [audit.Violation] event is
//     recorded.
//
// # Validation
//
// Input is validated before any call to the backend, with typed errors: a vector whose
// length differs from the index's dimension, non-finite or all-zero values, IDs that
// are empty, longer than [MaxIDLength] bytes, not UTF-8 or contain control characters,
// duplicate IDs in one call, metadata values of unsupported types, metadata larger than
// [MaxMetadataBytes] (Pinecone's limit, [clone.ErrTooLarge]), top-k outside
// 1..[MaxTopK] (1..[MaxTopKWithData] when values or metadata are requested), and
// filters that are not valid in Pinecone's filter language (see package
// vectorstore/filter).
package vectorstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
	"github.com/cloneiso/cloneiso/vectorstore/internal/engine"
)

// Metadata keys stamped into every vector from the CloneContext.
const (
	TenantKey = "tenant_id"
	CloneKey  = "clone_id"
)

// Limits enforced before any backend call. They are Pinecone's, so that code tested on
// the embedded index behaves the same on Pinecone.
const (
	MaxIDLength      = 512       // bytes per vector ID
	MaxMetadataBytes = 40 * 1024 // bytes of JSON-encoded metadata per vector, scope keys included
	MaxTopK          = 10000     // top-k of a query without values or metadata
	MaxTopKWithData  = 1000      // top-k of a query that returns values or metadata
	MaxDimension     = 20000     // dimension of an index
	MaxListLimit     = 100       // IDs per List page
	DefaultListLimit = 100       // IDs per List page when ListOptions.Limit is 0
)

// Vector is a record of the index.
type Vector struct {
	// ID is unique within the clone: 1 to MaxIDLength bytes of UTF-8 without control
	// characters. IDs of different clones never collide.
	ID string
	// Values has exactly the index's dimension, finite and not all zero.
	Values []float32
	// Metadata values may be strings, booleans, finite numbers (stored as float64) and
	// lists of strings ([]string or []any of strings). Keys may not be empty, start with
	// "$", or be TenantKey or CloneKey.
	Metadata map[string]any
}

// Match is a query result.
type Match struct {
	ID string
	// Score is the similarity under the index's metric (cosine similarity for the
	// embedded index); higher is more similar except for Pinecone's euclidean metric.
	Score float32
	// Values is set if Query.IncludeValues.
	Values []float32
	// Metadata is set if Query.IncludeMetadata (without the scope keys).
	Metadata map[string]any
}

// Query is a similarity search.
type Query struct {
	// Vector has exactly the index's dimension, finite and not all zero.
	Vector []float32
	// TopK is the number of results wanted: 1..MaxTopK, or 1..MaxTopKWithData if values
	// or metadata are included.
	TopK int
	// Filter is an optional metadata filter in Pinecone's language (see package
	// vectorstore/filter); it is AND-ed with the clone scope.
	Filter map[string]any
	// IncludeValues and IncludeMetadata ask for the matches' values and metadata.
	IncludeValues   bool
	IncludeMetadata bool
}

// ListOptions select a page of IDs.
type ListOptions struct {
	// Prefix restricts the listing to IDs starting with it.
	Prefix string
	// Limit is the page size, 1..MaxListLimit; 0 means DefaultListLimit.
	Limit int
	// PageToken continues a listing: pass the NextPageToken of the previous page.
	PageToken string
}

// ListPage is one page of IDs, in ascending order.
type ListPage struct {
	IDs []string
	// NextPageToken is "" on the last page.
	NextPageToken string
}

// Stats describes a clone's part of the index.
type Stats struct {
	// Namespace is the clone's namespace (see Namespace).
	Namespace string
	// Dimension is the index's dimension.
	Dimension int
	// VectorCount is the number of the clone's vectors. Backends may report it with
	// some delay after writes (Pinecone's counts are eventually consistent).
	VectorCount int
}

// Options configure an Index. The zero value (or nil) is usable.
type Options struct {
	// Audit receives denials and isolation violations; nil means audit.DefaultSink
	// (slog.Default()). A sink failure never changes the outcome; it is logged with the
	// whole event and counted (audit.Emit). Use audit.Discard to record nothing.
	Audit audit.Sink
	// CheckWritable, if set, is called before every write (Upsert and the deletes) and
	// may refuse it, for example because the clone is not provisioned or is suspended.
	// It guards against writes that would create a namespace for a clone that does not
	// exist. Its error is returned as is if it carries a kind, else as ErrForbidden.
	CheckWritable func(ctx context.Context, cc clone.CloneContext) error
}

// Index is a clone-scoped vector index. It is safe for concurrent use.
type Index struct {
	d     driver.Index
	dim   int
	audit audit.Sink
	check func(context.Context, clone.CloneContext) error
}

// NewIndex returns the portable index over driver d. Backend packages call it; most
// users call a backend's Open function instead.
func NewIndex(d driver.Index, opts *Options) (*Index, error) {
	if d == nil {
		return nil, errs.New(errs.InvalidInput, "vectorstore.NewIndex", "nil driver")
	}
	if opts == nil {
		opts = &Options{}
	}
	dim := d.Dimension()
	if dim < 1 || dim > MaxDimension {
		return nil, errs.New(errs.InvalidInput, "vectorstore.NewIndex", "dimension %d outside 1..%d", dim, MaxDimension)
	}
	return &Index{d: d, dim: dim, audit: opts.Audit, check: opts.CheckWritable}, nil
}

// Namespace returns the namespace of cc's vectors: "t-<tenant ID>-c-<clone ID>". It
// fails with ErrNoCloneContext if cc is not valid.
func Namespace(cc clone.CloneContext) (string, error) {
	if err := cc.Validate("vectorstore.Namespace"); err != nil {
		return "", err
	}
	return namespaceOf(cc.TenantID().String(), cc.CloneID().String()), nil
}

func namespaceOf(tenant, cloneID string) string { return "t-" + tenant + "-c-" + cloneID }

// isCloneNamespace reports whether ns is a namespace Namespace can return: "t-", a
// canonical tenant ID, "-c-", a canonical clone ID.
func isCloneNamespace(ns string) bool {
	const idLen = 36
	if len(ns) != len("t-")+idLen+len("-c-")+idLen || !strings.HasPrefix(ns, "t-") || ns[2+idLen:2+idLen+3] != "-c-" {
		return false
	}
	_, errT := clone.ParseID(ns[2 : 2+idLen])
	_, errC := clone.ParseID(ns[2+idLen+3:])
	return errT == nil && errC == nil
}

// ForeignNamespaces returns the namespaces of the whole index that belong to no clone,
// with their vector counts: the default namespace ("" or "__default__") and any name
// Namespace cannot return (a legacy per-user namespace, a typo). Every clone's vectors
// live in its own namespace, so anything here is reachable by no clone and owned by
// nobody: move or delete it. It is a deployment check (the doctor runs it), not a
// per-clone operation; a driver that cannot enumerate namespaces answers
// clone.ErrUnsupported.
func (x *Index) ForeignNamespaces(ctx context.Context) (map[string]int, error) {
	const op = "vectorstore.ForeignNamespaces"
	l, ok := x.d.(driver.NamespaceLister)
	if !ok {
		return nil, errs.New(errs.Unsupported, op, "this vector driver cannot enumerate namespaces")
	}
	all, err := l.Namespaces(ctx)
	if err != nil {
		return nil, x.wrapErr(op, err)
	}
	foreign := map[string]int{}
	for ns, n := range all {
		if !isCloneNamespace(ns) && n > 0 {
			foreign[ns] = n
		}
	}
	return foreign, nil
}

// ScopeFilter returns the filter every scoped query and delete-by-filter is AND-ed with:
// {"tenant_id": {"$eq": T}, "clone_id": {"$eq": C}}.
func ScopeFilter(cc clone.CloneContext) (*filter.Filter, error) {
	if err := cc.Validate("vectorstore.ScopeFilter"); err != nil {
		return nil, err
	}
	return scopeFilterOf(cc.TenantID().String(), cc.CloneID().String()), nil
}

func scopeFilterOf(tenant, cloneID string) *filter.Filter {
	t, _ := filter.FieldEq(TenantKey, tenant)
	c, _ := filter.FieldEq(CloneKey, cloneID)
	return filter.AndAll(t, c)
}

// ids holds a clone context's IDs in string form, computed once per call.
type scopeIDs struct{ ns, tenant, clone string }

// Dimension returns the index's dimension.
func (x *Index) Dimension() int { return x.dim }

// As converts i to the driver's underlying client; see the backend package for the
// types it supports. It reports whether it did.
func (x *Index) As(i any) bool { return x.d.As(i) }

// Close releases the driver's resources.
func (x *Index) Close() error {
	return x.wrapErr("vectorstore.Close", x.d.Close())
}

// scope validates cc and returns its namespace and IDs; a missing context is audited.
func (x *Index) scope(ctx context.Context, op string, cc clone.CloneContext) (scopeIDs, error) {
	if err := cc.Validate(op); err != nil {
		x.record(ctx, op, cc, audit.Denied, "no clone context", nil)
		return scopeIDs{}, err
	}
	t, c := cc.TenantID().String(), cc.CloneID().String()
	return scopeIDs{ns: namespaceOf(t, c), tenant: t, clone: c}, nil
}

func (x *Index) writable(ctx context.Context, op string, cc clone.CloneContext) error {
	if x.check == nil {
		return nil
	}
	err := x.check(ctx, cc)
	if err == nil {
		return nil
	}
	x.record(ctx, op, cc, audit.Denied, "clone not writable", nil)
	if errs.KindOf(err) == errs.Unknown {
		return errs.Wrap(errs.Forbidden, op, err, "clone is not writable")
	}
	return err
}

func (x *Index) record(ctx context.Context, op string, cc clone.CloneContext, o audit.Outcome, reason string, detail map[string]string) {
	audit.Emit(ctx, x.audit, audit.Event{
		Actor:    cc.Principal().Subject,
		Action:   op,
		TenantID: cc.TenantID(),
		CloneID:  cc.CloneID(),
		Outcome:  o,
		Reason:   reason,
		Detail:   detail,
	})
}

// violation records an isolation violation and returns the error the call fails with.
func (x *Index) violation(ctx context.Context, op string, cc clone.CloneContext, why string) error {
	x.record(ctx, op, cc, audit.Violation, why, nil)
	return errs.New(errs.IsolationViolation, op, "the vector store returned data outside the clone; the call failed closed")
}

// wrapErr classifies a driver error.
func (x *Index) wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errs.KindOf(err) != errs.Unknown {
		return err
	}
	if k := x.d.ErrorKind(err); k != nil {
		if kind := errs.KindOf(k); kind != errs.Unknown {
			return errs.Wrap(kind, op, err, "")
		}
	}
	if kind, ok := errs.ContextKind(err); ok {
		return errs.Wrap(kind, op, err, "")
	}
	return errs.Wrap(errs.Unavailable, op, err, "vector store error")
}

// Upsert inserts or replaces the clone's vectors with the given IDs. The whole batch is
// validated before anything is written; the backend may then write it in several
// requests, and a failed Upsert may have written part of the batch (retrying it is safe).
func (x *Index) Upsert(ctx context.Context, cc clone.CloneContext, vectors []Vector) error {
	const op = "vectorstore.Upsert"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return err
	}
	if len(vectors) == 0 {
		return nil
	}
	tenant, cloneID := sc.tenant, sc.clone
	boxed := &boxedScope{tenant: tenant, clone: cloneID} // converted to interfaces once per call
	out := make([]driver.Vector, len(vectors))
	seen := make(map[string]struct{}, len(vectors))
	for i, v := range vectors {
		if err := validID(op, v.ID); err != nil {
			return fmt.Errorf("vector %d: %w", i, err)
		}
		if _, dup := seen[v.ID]; dup {
			return errs.New(errs.InvalidInput, op, "vector %d: duplicate ID %s in one call", i, quote(v.ID))
		}
		seen[v.ID] = struct{}{}
		if err := x.validValues(op, v.Values); err != nil {
			return fmt.Errorf("vector %d: %w", i, err)
		}
		md, err := stampMetadata(op, v.Metadata, tenant, cloneID, boxed)
		if err != nil {
			if errs.KindOf(err) == errs.CloneMismatch {
				x.record(ctx, op, cc, audit.Denied, "metadata names another tenant or clone", nil)
			}
			return fmt.Errorf("vector %d: %w", i, err)
		}
		// The values are passed as they are, not copied: drivers do not keep them past
		// the call (driver.Index.Upsert), and the caller may not change them during it.
		out[i] = driver.Vector{ID: v.ID, Values: v.Values, Metadata: md}
	}
	if err := x.writable(ctx, op, cc); err != nil {
		return err
	}
	if a, ok := x.d.(driver.MetadataAdopter); ok {
		// Every map in out was built above for this call: the driver may keep it.
		return x.wrapErr(op, a.UpsertAdopt(ctx, sc.ns, out))
	}
	return x.wrapErr(op, x.d.Upsert(ctx, sc.ns, out))
}

// Query returns the clone's vectors most similar to q.Vector that match q.Filter, most
// similar first.
func (x *Index) Query(ctx context.Context, cc clone.CloneContext, q Query) ([]Match, error) {
	const op = "vectorstore.Query"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return nil, err
	}
	if err := x.validValues(op, q.Vector); err != nil {
		return nil, err
	}
	maxK := MaxTopK
	if q.IncludeValues || q.IncludeMetadata {
		maxK = MaxTopKWithData
	}
	if q.TopK < 1 || q.TopK > maxK {
		return nil, errs.New(errs.InvalidInput, op, "top-k %d outside 1..%d", q.TopK, maxK)
	}
	f, err := x.scopedFilter(ctx, op, cc, sc, q.Filter)
	if err != nil {
		return nil, err
	}
	ms, err := x.d.Query(ctx, sc.ns, &driver.Query{Vector: q.Vector, TopK: q.TopK, Filter: f, IncludeValues: q.IncludeValues})
	if err != nil {
		return nil, x.wrapErr(op, err)
	}
	if len(ms) > q.TopK {
		return nil, x.violation(ctx, op, cc, "query returned more matches than requested")
	}
	tenant, cloneID := sc.tenant, sc.clone
	seen := make(map[string]struct{}, len(ms))
	for _, m := range ms {
		if !inScope(m.Metadata, tenant, cloneID) {
			return nil, x.violation(ctx, op, cc, "query match outside the clone scope")
		}
		if _, dup := seen[m.ID]; dup {
			return nil, x.violation(ctx, op, cc, "query returned a duplicate ID")
		}
		seen[m.ID] = struct{}{}
	}
	out := make([]Match, len(ms))
	for i, m := range ms {
		out[i] = Match{ID: m.ID, Score: m.Score}
		if q.IncludeValues {
			out[i].Values = m.Values
		}
		if q.IncludeMetadata {
			out[i].Metadata = unstamp(m.Metadata)
		}
	}
	return out, nil
}

// Fetch returns the clone's vectors with the given IDs, in the order of ids; IDs that do
// not exist (or exist only in another clone) are omitted.
func (x *Index) Fetch(ctx context.Context, cc clone.CloneContext, ids []string) ([]Vector, error) {
	const op = "vectorstore.Fetch"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return nil, err
	}
	ids, err = validIDs(op, ids)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	vs, err := x.d.Fetch(ctx, sc.ns, ids)
	if err != nil {
		return nil, x.wrapErr(op, err)
	}
	tenant, cloneID := sc.tenant, sc.clone
	byID := make(map[string]driver.Vector, len(vs))
	for _, v := range vs {
		if !inScope(v.Metadata, tenant, cloneID) {
			return nil, x.violation(ctx, op, cc, "fetched vector outside the clone scope")
		}
		if _, dup := byID[v.ID]; dup {
			return nil, x.violation(ctx, op, cc, "fetch returned a duplicate ID")
		}
		byID[v.ID] = v
	}
	out := make([]Vector, 0, len(vs))
	for _, id := range ids {
		if v, ok := byID[id]; ok {
			out = append(out, Vector{ID: v.ID, Values: v.Values, Metadata: unstamp(v.Metadata)})
			delete(byID, id)
		}
	}
	if len(byID) > 0 {
		return nil, x.violation(ctx, op, cc, "fetch returned an ID that was not asked for")
	}
	return out, nil
}

// Delete removes the clone's vectors with the given IDs. Missing IDs are not an error.
func (x *Index) Delete(ctx context.Context, cc clone.CloneContext, ids []string) error {
	const op = "vectorstore.Delete"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return err
	}
	ids, err = validIDs(op, ids)
	if err != nil || len(ids) == 0 {
		return err
	}
	if err := x.writable(ctx, op, cc); err != nil {
		return err
	}
	return x.wrapErr(op, x.d.Delete(ctx, sc.ns, ids))
}

// DeleteByFilter removes the clone's vectors that match f, which must not be empty (use
// DeleteAll to remove everything).
func (x *Index) DeleteByFilter(ctx context.Context, cc clone.CloneContext, f map[string]any) error {
	const op = "vectorstore.DeleteByFilter"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return err
	}
	if len(f) == 0 {
		return errs.New(errs.InvalidInput, op, "empty filter; use DeleteAll to delete every vector of the clone")
	}
	pf, err := x.scopedFilter(ctx, op, cc, sc, f)
	if err != nil {
		return err
	}
	if err := x.writable(ctx, op, cc); err != nil {
		return err
	}
	return x.wrapErr(op, x.d.DeleteByFilter(ctx, sc.ns, pf))
}

// DeleteAll removes every vector of the clone (its whole namespace). Use it when a clone
// is deleted.
func (x *Index) DeleteAll(ctx context.Context, cc clone.CloneContext) error {
	const op = "vectorstore.DeleteAll"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return err
	}
	// Deleting everything stays allowed for a clone being offboarded: CheckWritable is
	// not consulted.
	return x.wrapErr(op, x.d.DeleteNamespace(ctx, sc.ns))
}

// List returns a page of the clone's vector IDs, in ascending order.
func (x *Index) List(ctx context.Context, cc clone.CloneContext, opts *ListOptions) (*ListPage, error) {
	const op = "vectorstore.List"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ListOptions{}
	}
	limit := opts.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return nil, errs.New(errs.InvalidInput, op, "limit %d outside 1..%d", opts.Limit, MaxListLimit)
	}
	if opts.Prefix != "" {
		if err := validID(op, opts.Prefix); err != nil {
			return nil, fmt.Errorf("prefix: %w", err)
		}
	}
	if len(opts.PageToken) > 4096 {
		return nil, errs.New(errs.InvalidInput, op, "page token too long")
	}
	p, err := x.d.List(ctx, sc.ns, &driver.ListRequest{Prefix: opts.Prefix, Limit: limit, PageToken: opts.PageToken})
	if err != nil {
		return nil, x.wrapErr(op, err)
	}
	if len(p.IDs) > limit {
		return nil, x.violation(ctx, op, cc, "list returned more IDs than requested")
	}
	for _, id := range p.IDs {
		if !strings.HasPrefix(id, opts.Prefix) {
			return nil, x.violation(ctx, op, cc, "list returned an ID outside the prefix")
		}
	}
	return &ListPage{IDs: p.IDs, NextPageToken: p.NextPageToken}, nil
}

// Stats describes the clone's part of the index.
func (x *Index) Stats(ctx context.Context, cc clone.CloneContext) (*Stats, error) {
	const op = "vectorstore.Stats"
	sc, err := x.scope(ctx, op, cc)
	if err != nil {
		return nil, err
	}
	s, err := x.d.Stats(ctx, sc.ns)
	if err != nil {
		return nil, x.wrapErr(op, err)
	}
	return &Stats{Namespace: sc.ns, Dimension: x.dim, VectorCount: s.VectorCount}, nil
}

// scopedFilter parses f, refuses it if it names another tenant or clone, and ANDs it
// with the clone scope.
func (x *Index) scopedFilter(ctx context.Context, op string, cc clone.CloneContext, sc scopeIDs, f map[string]any) (*filter.Filter, error) {
	pf, err := filter.Parse(f)
	if err != nil {
		var e *errs.Error
		if errors.As(err, &e) {
			return nil, errs.New(e.Kind, op, "filter: %s", e.Msg)
		}
		return nil, errs.Wrap(errs.InvalidInput, op, err, "filter")
	}
	if namesOther(pf, sc.tenant, sc.clone) {
		x.record(ctx, op, cc, audit.Denied, "filter names another tenant or clone", nil)
		return nil, errs.New(errs.CloneMismatch, op, "filter names a tenant or clone other than the clone context's")
	}
	return filter.AndAll(scopeFilterOf(sc.tenant, sc.clone), pf), nil
}

func (x *Index) validValues(op string, v []float32) error {
	if len(v) != x.dim {
		return errs.New(errs.InvalidInput, op, "dimension mismatch: got %d values, the index has dimension %d", len(v), x.dim)
	}
	// Fast path, one SIMD pass: a finite, positive sum of squares means every value is
	// finite (an infinity or NaN makes it infinite or NaN) and one is non-zero.
	if sq := engine.Dot(v, v); sq > 0 && sq <= math.MaxFloat32 {
		return nil
	}
	// Otherwise (overflow, underflow, or bad input) one pass over the bits: an all-ones
	// exponent is NaN or ±Inf; OR-ing the magnitudes tells whether any value is non-zero.
	const exp = 0x7f800000
	var bad, any uint32
	for _, f := range v {
		b := math.Float32bits(f)
		if b&exp == exp {
			bad = 1
		}
		any |= b &^ (1 << 31)
	}
	if bad != 0 {
		for i, f := range v {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return errs.New(errs.InvalidInput, op, "value %d is not finite", i)
			}
		}
	}
	if any == 0 {
		return errs.New(errs.InvalidInput, op, "all values are zero")
	}
	return nil
}

// namesOther reports whether f compares a scope key with a value other than the
// context's own (for example {"clone_id": "<another clone>"}). Such a filter could only
// ever match nothing, so it is a probe, and refused.
func namesOther(f *filter.Filter, tenant, cloneID string) bool {
	if f == nil {
		return false
	}
	switch f.Op() {
	case filter.And, filter.Or:
		for _, c := range f.Children() {
			if namesOther(c, tenant, cloneID) {
				return true
			}
		}
		return false
	case filter.Exists:
		return false
	}
	own := tenant
	switch f.Field() {
	case TenantKey:
	case CloneKey:
		own = cloneID
	default:
		return false
	}
	vals := f.Values()
	if f.Op() != filter.In && f.Op() != filter.Nin {
		vals = []any{f.Value()}
	}
	for _, v := range vals {
		if s, ok := v.(string); !ok || s != own {
			return true
		}
	}
	return false
}

func validID(op, id string) error {
	if id == "" {
		return errs.New(errs.InvalidInput, op, "empty ID")
	}
	if len(id) > MaxIDLength {
		return errs.New(errs.InvalidInput, op, "ID longer than %d bytes", MaxIDLength)
	}
	// Fast path: printable ASCII is valid UTF-8 without control characters.
	ascii := true
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		return nil
	}
	if !utf8.ValidString(id) {
		return errs.New(errs.InvalidInput, op, "ID is not valid UTF-8")
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return errs.New(errs.InvalidInput, op, "ID %s contains a control character", quote(id))
		}
	}
	return nil
}

// validIDs validates ids and removes duplicates, keeping the first occurrence.
func validIDs(op string, ids []string) ([]string, error) {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := validID(op, id); err != nil {
			return nil, err
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out, nil
}

// stampMetadata validates and normalizes md and adds the scope keys.
func stampMetadata(op string, md map[string]any, tenant, cloneID string, scope *boxedScope) (map[string]any, error) {
	out := make(map[string]any, len(md)+2)
	bound := 2
	for k, v := range md {
		switch {
		case k == TenantKey && v != tenant || k == CloneKey && v != cloneID:
			return nil, errs.New(errs.CloneMismatch, op, "metadata key %q names a tenant or clone other than the clone context's", k)
		case k == TenantKey || k == CloneKey:
			return nil, errs.New(errs.InvalidInput, op, "metadata key %q is reserved for the clone scope; it is set from the clone context", k)
		case k == "":
			return nil, errs.New(errs.InvalidInput, op, "empty metadata key")
		case strings.HasPrefix(k, "$"):
			return nil, errs.New(errs.InvalidInput, op, "metadata key %s starts with $", quote(k))
		case len(k) > MaxIDLength:
			return nil, errs.New(errs.InvalidInput, op, "metadata key longer than %d bytes", MaxIDLength)
		}
		nv, err := metadataValue(v)
		if err != nil {
			return nil, errs.New(errs.InvalidInput, op, "metadata %s: %v", quote(k), err)
		}
		out[k] = nv
		bound += jsonStringBound(k) + 2 + jsonValueBound(nv)
	}
	out[TenantKey] = scope.tenant
	out[CloneKey] = scope.clone
	bound += 2*len(`"tenant_id":"",`) + 2*36 + 2 // two canonical UUIDs
	// An upper bound of the JSON size decides almost every call without encoding; only
	// metadata that might be over the limit is encoded to measure it exactly.
	if bound > MaxMetadataBytes || len(tenant) > 36 || len(cloneID) > 36 {
		b, err := json.Marshal(out)
		if err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "metadata")
		}
		if len(b) > MaxMetadataBytes {
			return nil, errs.New(errs.TooLarge, op, "metadata is %d bytes, over the limit of %d", len(b), MaxMetadataBytes)
		}
	}
	return out, nil
}

// boxedScope holds the scope IDs as interface values, so that stamping them into every
// vector's metadata does not allocate.
type boxedScope struct{ tenant, clone any }

// jsonValueBound bounds the length of the JSON encoding of a normalized metadata value
// (string, float64, bool, []string).
func jsonValueBound(v any) int {
	switch x := v.(type) {
	case string:
		return jsonStringBound(x)
	case []string:
		n := 2
		for _, s := range x {
			n += jsonStringBound(s) + 1
		}
		return n
	case bool:
		return 5
	}
	return 25 // a float64: at most 24 characters in encoding/json's format
}

// jsonStringBound bounds the length of s encoded as a JSON string: two quotes, and at
// most six bytes for every byte that encoding/json may escape (control characters,
// <, >, &, quote, backslash) or that starts a non-ASCII sequence (U+2028, U+2029 and
// invalid bytes become six-byte escapes).
func jsonStringBound(s string) int {
	n := 2 + len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '<' || c == '>' || c == '&' || c == '"' || c == '\\' {
			n += 5
		}
	}
	return n
}

func metadataValue(v any) (any, error) {
	// Values already in normalized form are returned as they are (the same interface
	// value: no allocation); drivers copy what they keep.
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return nil, errors.New("string is not valid UTF-8")
		}
		return v, nil
	case bool:
		return v, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, errors.New("number is not finite")
		}
		return v, nil
	case []string:
		for _, s := range x {
			if !utf8.ValidString(s) {
				return nil, errors.New("string is not valid UTF-8")
			}
		}
		return v, nil
	case []any:
		out := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok || !utf8.ValidString(s) {
				return nil, errors.New("lists may only hold strings")
			}
			out[i] = s
		}
		return out, nil
	}
	if n, ok := filter.Number(v); ok {
		return n, nil
	}
	return nil, fmt.Errorf("unsupported value type %T (want string, bool, finite number or list of strings)", v)
}

func inScope(md map[string]any, tenant, cloneID string) bool {
	t, ok1 := md[TenantKey].(string)
	c, ok2 := md[CloneKey].(string)
	return ok1 && ok2 && t == tenant && c == cloneID
}

// unstamp removes the scope keys from md (owned by the caller).
func unstamp(md map[string]any) map[string]any {
	delete(md, TenantKey)
	delete(md, CloneKey)
	if len(md) == 0 {
		return nil
	}
	return md
}

func quote(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}
