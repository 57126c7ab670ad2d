// Package memvector is the embedded, in-process backend of package vectorstore, and its
// default: no server, exact (brute-force) search, safe for concurrent use.
//
// Vectors are L2-normalized once on insert and stored contiguously per namespace in
// float32 blocks; a query applies the metadata filter before scoring, scores with a dot
// product (cosine similarity) in parallel across GOMAXPROCS goroutines and keeps the best
// k in a heap. Ties are broken by ascending ID. The clone scope condition that the
// portable type adds to every query is resolved once per namespace, not per vector.
//
// With Options.Path set, the index is loaded from that file when opened and written
// back (atomically: a temporary file renamed over the old one) by Close and by
// Driver.Sync, so an application survives restarts. Writes between two syncs are lost
// if the process dies; call Sync (reached with Index.As) after important writes. A sync
// holds a copy of the whole index in memory while it encodes it.
package memvector

import (
	"context"
	"encoding/base64"
	"encoding/gob"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
	"github.com/cloneiso/cloneiso/vectorstore/internal/engine"
)

// Options configure the embedded index. Nil means defaults.
type Options struct {
	// Path, if set, is the file the index is loaded from on Open and saved to by Close
	// and Sync. A missing file is an empty index.
	Path string
	// Index configures the portable type (audit sink, write check).
	Index *vectorstore.Options
}

// Open returns a clone-scoped index of dimension dim backed by the embedded engine.
func Open(dim int, opts *Options) (*vectorstore.Index, error) {
	if opts == nil {
		opts = &Options{}
	}
	d, err := NewDriver(dim, opts)
	if err != nil {
		return nil, err
	}
	return vectorstore.NewIndex(d, opts.Index)
}

// Driver is the embedded driver. Use it directly only to build a portable index with
// extra options, or in tests and benchmarks of the driver contract.
type Driver struct {
	e    *engine.Engine
	path string
	mu   sync.Mutex // serializes saves
}

var _ driver.Index = (*Driver)(nil)

// NewDriver returns the embedded driver (Options.Index is ignored).
func NewDriver(dim int, opts *Options) (*Driver, error) {
	const op = "memvector.NewDriver"
	if dim < 1 || dim > vectorstore.MaxDimension {
		return nil, errs.New(errs.InvalidInput, op, "dimension %d outside 1..%d", dim, vectorstore.MaxDimension)
	}
	if opts == nil {
		opts = &Options{}
	}
	d := &Driver{
		e:    engine.New(dim, &engine.Options{Metric: engine.Cosine, TrackedKeys: []string{vectorstore.TenantKey, vectorstore.CloneKey}}),
		path: opts.Path,
	}
	if d.path != "" {
		if err := d.load(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Dimension implements driver.Index.
func (d *Driver) Dimension() int { return d.e.Dimension() }

// Upsert implements driver.Index.
func (d *Driver) Upsert(ctx context.Context, ns string, vs []driver.Vector) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, v := range vs {
		if len(v.Values) != d.e.Dimension() {
			return errs.New(errs.InvalidInput, "memvector.Upsert", "vector %s has %d values, the index has dimension %d", v.ID, len(v.Values), d.e.Dimension())
		}
	}
	recs := make([]engine.Record, len(vs))
	for i, v := range vs {
		recs[i] = engine.Record{ID: v.ID, Values: v.Values, Metadata: v.Metadata}
	}
	d.e.Upsert(ns, recs)
	return nil
}

// Query implements driver.Index.
func (d *Driver) Query(ctx context.Context, ns string, q *driver.Query) ([]driver.Match, error) {
	if len(q.Vector) != d.e.Dimension() {
		return nil, errs.New(errs.InvalidInput, "memvector.Query", "query has %d values, the index has dimension %d", len(q.Vector), d.e.Dimension())
	}
	hits, err := d.e.Query(ctx, ns, q.Vector, q.TopK, q.Filter, q.IncludeValues)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Match, len(hits))
	for i, h := range hits {
		out[i] = driver.Match{ID: h.ID, Score: h.Score, Values: h.Values, Metadata: h.Metadata}
	}
	return out, nil
}

// Fetch implements driver.Index.
func (d *Driver) Fetch(ctx context.Context, ns string, ids []string) ([]driver.Vector, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs := d.e.Fetch(ns, ids)
	out := make([]driver.Vector, len(recs))
	for i, r := range recs {
		out[i] = driver.Vector{ID: r.ID, Values: r.Values, Metadata: r.Metadata}
	}
	return out, nil
}

// Delete implements driver.Index.
func (d *Driver) Delete(ctx context.Context, ns string, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.e.Delete(ns, ids)
	return nil
}

// DeleteByFilter implements driver.Index.
func (d *Driver) DeleteByFilter(ctx context.Context, ns string, f *filter.Filter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.e.DeleteByFilter(ns, f)
	return nil
}

// DeleteNamespace implements driver.Index.
func (d *Driver) DeleteNamespace(ctx context.Context, ns string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.e.DeleteNamespace(ns)
	return nil
}

// List implements driver.Index. Page tokens are the last ID of the previous page,
// base64-encoded, so listing is stable while records are added or removed.
func (d *Driver) List(ctx context.Context, ns string, req *driver.ListRequest) (*driver.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	after := ""
	if req.PageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(req.PageToken)
		if err != nil {
			return nil, errs.New(errs.InvalidInput, "memvector.List", "invalid page token")
		}
		after = string(b)
	}
	ids, more := d.e.List(ns, req.Prefix, after, req.Limit)
	p := &driver.ListPage{IDs: ids}
	if more && len(ids) > 0 {
		p.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(ids[len(ids)-1]))
	}
	return p, nil
}

// Stats implements driver.Index.
func (d *Driver) Stats(ctx context.Context, ns string) (*driver.Stats, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &driver.Stats{VectorCount: d.e.Count(ns)}, nil
}

// ErrorKind implements driver.Index. The embedded driver only fails on cancelled
// contexts and bad page tokens, which carry their kinds already.
func (d *Driver) ErrorKind(err error) error { return nil }

// As implements driver.Index. It supports **Driver, so that holders of the portable
// index can reach Sync:
//
//	var d *memvector.Driver
//	if idx.As(&d) {
//		err = d.Sync()
//	}
func (d *Driver) As(i any) bool {
	if p, ok := i.(**Driver); ok {
		*p = d
		return true
	}
	return false
}

// Sync writes the index to Options.Path (if set), atomically.
func (d *Driver) Sync() error {
	if d.path == "" {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	snap := d.e.Snapshot()
	dir := filepath.Dir(d.path)
	tmp, err := os.CreateTemp(dir, filepath.Base(d.path)+".tmp*")
	if err != nil {
		return errs.Wrap(errs.Unavailable, "memvector.Sync", err, "create temporary file")
	}
	defer os.Remove(tmp.Name())
	if err := gob.NewEncoder(tmp).Encode(snap); err != nil {
		tmp.Close()
		return errs.Wrap(errs.Unavailable, "memvector.Sync", err, "encode index")
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return errs.Wrap(errs.Unavailable, "memvector.Sync", err, "sync index file")
	}
	if err := tmp.Close(); err != nil {
		return errs.Wrap(errs.Unavailable, "memvector.Sync", err, "close index file")
	}
	if err := os.Rename(tmp.Name(), d.path); err != nil {
		return errs.Wrap(errs.Unavailable, "memvector.Sync", err, "replace index file")
	}
	return nil
}

// Close implements driver.Index: it saves the index if Options.Path is set.
func (d *Driver) Close() error { return d.Sync() }

func init() {
	gob.Register([]string(nil))
}

func (d *Driver) load() error {
	const op = "memvector.Open"
	f, err := os.Open(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return errs.Wrap(errs.Unavailable, op, err, "open index file")
	}
	defer f.Close()
	var snap engine.Snapshot
	if err := gob.NewDecoder(f).Decode(&snap); err != nil {
		return errs.Wrap(errs.InvalidInput, op, err, "index file is corrupt")
	}
	if snap.Dimension != d.e.Dimension() {
		return errs.New(errs.InvalidInput, op, "index file has dimension %d, want %d", snap.Dimension, d.e.Dimension())
	}
	d.e.Restore(&snap)
	return nil
}
