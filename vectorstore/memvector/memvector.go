// Package memvector is the embedded, in-process backend of package vectorstore, and its
// default: no server, exact (brute-force) search, safe for concurrent use.
//
// Vectors are L2-normalized once on insert and stored contiguously per namespace in
// float32 blocks; a query applies the metadata filter before scoring, scores with a dot
// product (cosine similarity) in parallel across GOMAXPROCS goroutines and keeps the best
// k in a heap. Ties are broken by ascending ID. The clone scope condition that the
// portable type adds to every query is resolved once per namespace, not per vector.
//
// # Durability
//
// Without Options.Path the index lives in memory only and is lost with the process.
//
// With Options.Path, every write (Upsert, Delete, DeleteByFilter, DeleteNamespace, and
// so every write of the portable index) is durable when it returns without error: it
// is appended to a write-ahead log as one record, checksummed with CRC-32C, and the log
// is fsynced before the call returns. An acknowledged write therefore survives the
// process being killed (SIGKILL, a panic, OOM) and the machine losing power, provided
// the disk honours fsync. A write that returned an error, or was in flight when the
// process died, is either wholly present after a restart or wholly absent; never half
// of a batch. Concurrent writers share one fsync (group commit), so many small writers
// cost little more than one. A write is visible to queries as soon as it is applied,
// which is just before its fsync completes; a crash in between can lose a write that a
// concurrent reader saw but whose writer was never told it succeeded.
//
// On Linux, where the file system supports it, the log is written with direct I/O
// (O_DIRECT), bypassing the page cache: the records of one group commit are gathered
// in memory and written with one block-aligned write, padded to the next 4 KiB
// boundary, then fsynced. No write ever covers bytes written before it, so a write
// torn by a power loss can only damage records that were never acknowledged.
// Elsewhere (other systems, file systems without direct I/O) each record is written
// through the page cache as it comes and the group commit fsyncs. Both write the same
// format; each open starts a new log after the last one that holds records.
//
// Opening the index loads the snapshot at Options.Path, replays the logs written
// since (Path + ".wal.<generation>"), and truncates a record torn by a crash at the
// end of the last log, or the zero-filled tail that some file systems leave there: that
// record was never acknowledged. Damage anywhere else (a
// log that is not the last, or a snapshot whose checksum fails) refuses to open with
// clone.ErrInvalidInput rather than serve a partial index. When the log grows past
// Options.CompactLogBytes and past the size of the last snapshot, a background
// compaction writes a new snapshot (to a temporary file, fsynced, renamed over the old
// one, directory fsynced), starts a new log and removes the old ones; a crash at any
// point of it leaves a consistent pair of snapshot and logs. Tying the threshold to
// the snapshot's size bounds how often each byte of the index is rewritten however
// large it grows, and keeps replaying the log about as cheap as loading the
// snapshot. Driver.Sync compacts at once. The snapshot is streamed from the index (a
// compaction adds about 1 MiB to memory; with direct I/O it is written past the page
// cache like the log) and holds the vectors as raw little-endian
// float32, so opening runs at about the speed of reading the file: one goroutine reads
// the snapshot and logs, another checksums the snapshot as it is read, and a few
// others decode and apply them, each namespace on one of them, in order. Compacting a
// namespace holds off writes to that namespace (not reads, not other namespaces)
// while it is written; starting the new log holds off all writes only while the
// records already written are synced. The snapshot's write-back is started as it is
// written, so that its fsync does not hold up the log's group commits behind it.
//
// If the write-ahead log cannot be written or synced (disk full, I/O error), the
// failing writes and every later one fail with clone.ErrUnavailable until the index is
// reopened, which recovers every acknowledged write. A write that failed in its sync,
// or (with direct I/O) in its group's write, was applied already: like any write not
// yet acknowledged, it may be seen by queries until the index is reopened.
//
// A file at Path in the gob format of earlier releases (which persisted only on Sync
// and Close) is read once when opened and rewritten as a snapshot.
package memvector

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/internal/faultpoint"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
	"github.com/cloneiso/cloneiso/vectorstore/internal/engine"
)

// DefaultCompactLogBytes is the default of Options.CompactLogBytes.
const DefaultCompactLogBytes = 64 << 20

// Options configure the embedded index. Nil means defaults.
type Options struct {
	// Path, if set, makes the index durable (see the package documentation): it is the
	// snapshot file, and the write-ahead logs are kept next to it as
	// Path + ".wal.<generation>". A missing file is an empty index; its directory is
	// created if needed.
	Path string
	// CompactLogBytes is the log size past which (and past the last snapshot's size) a
	// background compaction writes a new snapshot and starts a new log; it bounds the
	// time opening spends replaying the log. Zero means DefaultCompactLogBytes; negative disables background compaction
	// (Driver.Sync still compacts).
	CompactLogBytes int64
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
	log  *wal     // nil without a path
	lock *os.File // held while open, so that one process at a time appends to the log

	// gate is held shared by writers from appending their record to applying it, and
	// exclusively by a log rotation: a new log never starts while a record of the old
	// one is not yet in the index. stripes order the writes of one namespace: a
	// namespace's records are appended to the log in the order they are applied.
	gate    sync.RWMutex
	stripes [64]sync.Mutex
	seed    maphash.Seed

	compactMu sync.Mutex // one compaction at a time
	compactAt int64
	snapSize  atomic.Int64 // size of the last snapshot: the log may grow as large
	kick      chan struct{}
	stop      chan struct{}
	stopped   chan struct{}
	bgErr     atomic.Pointer[error]
	closeOnce sync.Once
	closeErr  error
}

var (
	_ driver.Index           = (*Driver)(nil)
	_ driver.MetadataAdopter = (*Driver)(nil)
)

var (
	errDimension = errors.New("memvector: dimension mismatch")
	errLocked    = errors.New("memvector: index locked")
)

// NewDriver returns the embedded driver (Options.Index is ignored). With Options.Path
// it recovers the index from its snapshot and logs first.
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
		seed: maphash.MakeSeed(),
	}
	if d.path == "" {
		return d, nil
	}
	d.compactAt = opts.CompactLogBytes
	if d.compactAt == 0 {
		d.compactAt = DefaultCompactLogBytes
	}
	if err := d.recover(); err != nil {
		if d.log != nil {
			d.log.close()
		}
		if d.lock != nil {
			d.lock.Close()
		}
		switch {
		case errors.Is(err, errLocked):
			return nil, errs.Wrap(errs.Conflict, "memvector.Open", err, "the index at %s is open in another process or driver", d.path)
		case errors.Is(err, errSnapshot), errors.Is(err, errCorrupt), errors.Is(err, errDimension), errors.Is(err, errShort):
			return nil, errs.Wrap(errs.InvalidInput, "memvector.Open", err, "the index at %s cannot be read", d.path)
		}
		return nil, errs.Wrap(errs.Unavailable, "memvector.Open", err, "open the index at %s", d.path)
	}
	d.kick = make(chan struct{}, 1)
	d.stop = make(chan struct{})
	d.stopped = make(chan struct{})
	go d.compactor()
	return d, nil
}

// recover loads the snapshot, replays the logs over it and opens the last log for
// appending.
func (d *Driver) recover() (err error) {
	dir, base := filepath.Split(d.path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if d.lock, err = lockFile(d.path + ".lock"); err != nil {
		return err
	}
	os.Remove(d.path + ".tmp") // a compaction interrupted before its rename
	l := newLoader()
	defer func() {
		if werr := l.wait(); err == nil {
			err = werr
		}
	}()
	gen, legacy, err := d.loadSnapshot(l)
	if err != nil {
		return err
	}
	if st, err := os.Stat(d.path); err == nil {
		d.snapSize.Store(st.Size())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var gens []uint64
	for _, e := range entries {
		hex, ok := strings.CutPrefix(e.Name(), base+".wal.")
		if !ok || len(hex) != 16 {
			continue
		}
		g, err := strconv.ParseUint(hex, 16, 64)
		if err != nil {
			continue
		}
		if g < gen {
			// Folded into the snapshot by a compaction that stopped before removing it.
			if err := os.Remove(logName(d.path, g)); err != nil {
				return err
			}
			continue
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	dim := d.e.Dimension()
	records := 0
	replay := func(p []byte) error {
		records++
		return l.submitRecord(d, p)
	}
	for i, g := range gens {
		name := logName(d.path, g)
		records = 0
		good, torn, err := readLog(name, dim, replay)
		if err != nil {
			return err
		}
		if torn && i < len(gens)-1 {
			return fmt.Errorf("%w: %s is damaged before its end", errCorrupt, filepath.Base(name))
		}
		if torn {
			// The record being written when the process or machine stopped: it was
			// never acknowledged. Cut it off so that new records follow intact ones.
			if err := truncateLog(name, good, dim); err != nil {
				return err
			}
		}
	}
	// New records go to a new log: the last one's end need not be aligned for direct
	// I/O (see wal). A last log without records is started again instead.
	cur := max(gen, 1)
	if len(gens) > 0 {
		cur = gens[len(gens)-1]
		if records > 0 {
			cur++
		}
	}
	f, direct, size, err := createLog(d.path, cur, dim, true)
	if err != nil {
		return err
	}
	d.log = newWAL(d.path, dim, f, cur, size, direct)
	if err := l.wait(); err != nil {
		return err
	}
	if legacy {
		// Rewrite the index of an earlier release in the current format at once.
		return d.compact()
	}
	return nil
}

// truncateLog cuts the log at path to its first good bytes (rewriting the header if
// even that was torn) and syncs it.
func truncateLog(path string, good int64, dim int) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if good < logHeaderSize {
		if _, err := f.WriteAt(logHeader(dim), 0); err != nil {
			return err
		}
		good = logHeaderSize
	}
	if err := f.Truncate(good); err != nil {
		return err
	}
	return fsync(f)
}

// replay applies one log record to the index.
func (d *Driver) replay(p []byte, scratch *[]float32, intern map[string]string) error {
	dec := &decoder{b: p, intern: intern}
	op := dec.byte()
	ns := dec.short()
	switch op {
	case opUpsert:
		dim := d.e.Dimension()
		n := dec.count(1 + 4*dim)
		if cap(*scratch) < n*dim {
			*scratch = make([]float32, n*dim)
		}
		vals := (*scratch)[:n*dim]
		recs := make([]engine.Record, n)
		for i := range recs {
			recs[i].ID = dec.string()
			v := vals[i*dim : (i+1)*dim : (i+1)*dim]
			dec.floats(v)
			recs[i].Values = v
			recs[i].Metadata = dec.metadata()
		}
		if dec.err != nil || len(dec.b) != 0 {
			return fmt.Errorf("%w: bad upsert record", errCorrupt)
		}
		d.e.Upsert(ns, recs)
	case opDelete:
		ids := make([]string, dec.count(1))
		for i := range ids {
			ids[i] = dec.string()
		}
		if dec.err != nil || len(dec.b) != 0 {
			return fmt.Errorf("%w: bad delete record", errCorrupt)
		}
		d.e.Delete(ns, ids)
	case opDeleteNamespace:
		if dec.err != nil || len(dec.b) != 0 {
			return fmt.Errorf("%w: bad delete-namespace record", errCorrupt)
		}
		d.e.DeleteNamespace(ns)
	default:
		return fmt.Errorf("%w: unknown operation %d", errCorrupt, op)
	}
	return nil
}

var recordPool = sync.Pool{New: func() any { return new([]byte) }}

// newBuffer returns an empty pooled buffer with room for size bytes.
func newBuffer(size int) *[]byte {
	bp := recordPool.Get().(*[]byte)
	if cap(*bp) < size {
		*bp = make([]byte, 0, size)
	}
	*bp = (*bp)[:0]
	return bp
}

// newRecord starts a record of operation op on namespace ns, with room for size more
// bytes.
func newRecord(op byte, ns string, size int) *[]byte {
	bp := newBuffer(frameSize + 1 + 10 + len(ns) + size)
	b := append(*bp, make([]byte, frameSize)...)
	b = append(b, op)
	*bp = appendString(b, ns)
	return bp
}

// sealed seals the record bp and returns it.
func sealed(bp *[]byte) *[]byte {
	*bp = sealRecord(*bp)
	return bp
}

func freeRecord(bp *[]byte) {
	if cap(*bp) <= 4<<20 {
		recordPool.Put(bp)
	}
}

// logged runs a write: without a log it just applies it; with one, under the
// namespace's stripe, it builds the record (sealed: see sealRecord), appends it to the
// log and applies it, then waits until the record is synced.
func (d *Driver) logged(ns string, build func() (*[]byte, error), apply func()) error {
	return d.loggedBy(ns, func() (uint64, bool, error) {
		bp, err := build()
		if err != nil || bp == nil {
			return 0, false, err
		}
		return d.appendRecord(bp)
	}, apply)
}

// appendRecord appends the sealed record bp to the log and frees it (written to the
// file or the group buffer already).
func (d *Driver) appendRecord(bp *[]byte) (uint64, bool, error) {
	seq, err := d.log.append(*bp)
	freeRecord(bp)
	return seq, true, err
}

// loggedEncoded runs a write whose record encode appends, sealed, to its argument, and
// is size bytes long: with direct I/O it is encoded in its place in the group buffer,
// without a copy.
func (d *Driver) loggedEncoded(ns string, size int, encode func([]byte) []byte, apply func()) error {
	return d.loggedBy(ns, func() (uint64, bool, error) {
		if !d.log.direct { // stable while d.gate is held
			bp := newBuffer(size)
			*bp = encode(*bp)
			return d.appendRecord(bp)
		}
		dst, g, seq, err := d.log.reserve(size)
		if err != nil {
			return 0, false, err
		}
		out := encode(dst[:0])
		if len(out) != size || unsafe.SliceData(out) != unsafe.SliceData(dst) {
			err = errs.New(errs.Internal, "memvector", "a record of %d bytes was encoded in %d", size, len(out))
		}
		return seq, true, d.log.filled(g, err)
	}, apply)
}

// loggedBy runs a write: without a log it just applies it; with one, under the
// namespace's stripe, it writes the record to the log (write returns its sequence
// number, and false if there is nothing to write) and applies it, then waits until
// the record is synced.
func (d *Driver) loggedBy(ns string, write func() (uint64, bool, error), apply func()) error {
	if d.log == nil {
		apply()
		return nil
	}
	d.gate.RLock()
	mu := &d.stripes[maphash.String(d.seed, ns)%uint64(len(d.stripes))]
	mu.Lock()
	seq, ok, err := write()
	if err == nil {
		apply()
	}
	mu.Unlock()
	d.gate.RUnlock()
	if err != nil || !ok {
		return err
	}
	faultpoint.Hit("memvector.applied")
	size, err := d.log.wait(seq)
	if err != nil {
		return err
	}
	if d.compactionDue(size) {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Dimension implements driver.Index.
func (d *Driver) Dimension() int { return d.e.Dimension() }

// Upsert implements driver.Index.
func (d *Driver) Upsert(ctx context.Context, ns string, vs []driver.Vector) error {
	return d.upsert(ctx, ns, vs, false)
}

// UpsertAdopt implements driver.MetadataAdopter: the index keeps the vectors'
// metadata maps instead of copying them.
func (d *Driver) UpsertAdopt(ctx context.Context, ns string, vs []driver.Vector) error {
	return d.upsert(ctx, ns, vs, true)
}

func (d *Driver) upsert(ctx context.Context, ns string, vs []driver.Vector, adopt bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dim := d.e.Dimension()
	for _, v := range vs {
		if len(v.Values) != dim {
			return errs.New(errs.InvalidInput, "memvector.Upsert", "vector %s has %d values, the index has dimension %d", v.ID, len(v.Values), dim)
		}
	}
	recs := make([]engine.Record, len(vs))
	for i, v := range vs {
		recs[i] = engine.Record{ID: v.ID, Values: v.Values, Metadata: v.Metadata}
	}
	apply := func() { d.e.Upsert(ns, recs) }
	if adopt {
		apply = func() { d.e.UpsertAdopt(ns, recs) }
	}
	if d.log == nil {
		apply()
		return nil
	}
	// The record's exact size, found first so that it can be encoded in its place in
	// the log's group buffer; this also refuses metadata the log cannot hold.
	size, err := upsertRecordSize(ns, vs, dim)
	if err != nil {
		return err
	}
	encode := func(b []byte) []byte {
		b = append(b, make([]byte, frameSize)...)
		b = append(b, opUpsert)
		b = appendString(b, ns)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v.ID)
			b = appendFloats(b, v.Values)
			b, _ = appendMetadata(b, v.Metadata) // metadataLen accepted it
		}
		return sealRecord(b)
	}
	return d.loggedEncoded(ns, size, encode, apply)
}

// upsertRecordSize returns the size of the log record of upserting vs into ns, frame
// included, or an error if the log cannot hold their metadata.
func upsertRecordSize(ns string, vs []driver.Vector, dim int) (int, error) {
	size := frameSize + 1 + stringLen(ns) + uvarintLen(uint64(len(vs)))
	for _, v := range vs {
		n, err := metadataLen(v.Metadata)
		if err != nil {
			return 0, errs.Wrap(errs.InvalidInput, "memvector.Upsert", err, "vector %s", v.ID)
		}
		size += stringLen(v.ID) + 4*dim + n
	}
	return size, nil
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
	return d.logged(ns, func() (*[]byte, error) { return d.deleteRecord(ns, ids), nil }, func() { d.e.Delete(ns, ids) })
}

// deleteRecord returns the log record of deleting ids from ns, sealed.
func (d *Driver) deleteRecord(ns string, ids []string) *[]byte {
	size := 10
	for _, id := range ids {
		size += 2 + len(id)
	}
	bp := newRecord(opDelete, ns, size)
	b := binary.AppendUvarint(*bp, uint64(len(ids)))
	for _, id := range ids {
		b = appendString(b, id)
	}
	*bp = sealRecord(b)
	return bp
}

// DeleteByFilter implements driver.Index. The log records the IDs it removes, found
// while the namespace's writers are held off, so replaying it is exact.
func (d *Driver) DeleteByFilter(ctx context.Context, ns string, f *filter.Filter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.log == nil {
		d.e.DeleteByFilter(ns, f)
		return nil
	}
	var ids []string
	return d.logged(ns, func() (*[]byte, error) {
		ids = d.e.MatchingIDs(ns, f)
		if len(ids) == 0 {
			return nil, nil
		}
		return d.deleteRecord(ns, ids), nil
	}, func() { d.e.Delete(ns, ids) })
}

// DeleteNamespace implements driver.Index.
func (d *Driver) DeleteNamespace(ctx context.Context, ns string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return d.logged(ns, func() (*[]byte, error) { return sealed(newRecord(opDeleteNamespace, ns, 0)), nil },
		func() { d.e.DeleteNamespace(ns) })
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

// Sync compacts the index at once: it writes a new snapshot and starts a new log, so
// that the next open replays nothing. Every acknowledged write is durable without it;
// call it to make the next open fast, for example before a planned restart. Without
// Options.Path it does nothing.
func (d *Driver) Sync() error {
	if d.log == nil {
		return nil
	}
	if err := d.compact(); err != nil {
		return errs.Wrap(errs.Unavailable, "memvector.Sync", err, "compact the index")
	}
	return nil
}

// compact writes a snapshot of the index and removes the logs it makes redundant.
func (d *Driver) compact() error {
	d.compactMu.Lock()
	defer d.compactMu.Unlock()
	d.gate.Lock()
	old, err := d.log.rotate()
	d.gate.Unlock()
	if err != nil {
		return err
	}
	faultpoint.Hit("memvector.compact.rotated")
	if err := d.writeSnapshot(old + 1); err != nil {
		return err
	}
	if st, err := os.Stat(d.path); err == nil {
		d.snapSize.Store(st.Size())
	}
	for g := old; ; g-- {
		err := os.Remove(logName(d.path, g))
		if errors.Is(err, os.ErrNotExist) || g == 0 {
			break
		}
		if err != nil {
			return err
		}
	}
	return syncDir(filepath.Dir(d.path))
}

// compactionDue reports whether a log of size bytes calls for a background compaction:
// past Options.CompactLogBytes and past the last snapshot's size.
func (d *Driver) compactionDue(size int64) bool {
	return d.compactAt > 0 && size >= max(d.compactAt, d.snapSize.Load())
}

// compactor runs background compactions when writers report a large log.
func (d *Driver) compactor() {
	defer close(d.stopped)
	for {
		select {
		case <-d.stop:
			return
		case <-d.kick:
			d.log.mu.Lock()
			size := d.log.size
			d.log.mu.Unlock()
			if !d.compactionDue(size) {
				continue
			}
			if err := d.compact(); err != nil {
				d.bgErr.Store(&err)
			} else {
				d.bgErr.Store(nil)
			}
		}
	}
}

// Close implements driver.Index: it waits for a running compaction, makes every
// appended record durable and closes the log. It reports a background compaction's
// failure if the last one failed (the acknowledged writes are safe in the log either
// way). Writes after Close fail with clone.ErrUnavailable.
func (d *Driver) Close() error {
	if d.log == nil {
		return nil
	}
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.stopped
		d.compactMu.Lock()
		defer d.compactMu.Unlock()
		err := d.log.close()
		d.lock.Close()
		if p := d.bgErr.Load(); p != nil && err == nil {
			err = errs.Wrap(errs.Unavailable, "memvector.Close", *p, "the last background compaction failed")
		}
		d.closeErr = err
	})
	return d.closeErr
}
