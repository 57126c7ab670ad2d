package memvector

import (
	"os"
	"runtime"
	"time"

	"github.com/cloneiso/cloneiso/vectorstore/driver"
)

// Abandon drops d as a crashed process would: the background compactor is stopped, the
// log and lock files are closed without making pending records durable, and nothing is
// written. Records already acknowledged are in the log (they were fsynced).
func (d *Driver) Abandon() {
	if d.log == nil {
		return
	}
	d.closeOnce.Do(func() {
		close(d.stop)
		<-d.stopped
		d.log.mu.Lock()
		d.log.f.Close()
		d.log.err = errClosed
		d.log.mu.Unlock()
		d.lock.Close()
	})
}

// LogName returns the file name of log generation gen of the index at path.
func LogName(path string, gen uint64) string { return logName(path, gen) }

// SkipSync makes fsync a no-op until the test ends. Tests whose crashes are simulated
// in-process (where the page cache survives anyway) use it to stay fast.
func SkipSync(t interface{ Cleanup(func()) }) {
	skipSync.Store(true)
	t.Cleanup(func() { skipSync.Store(false) })
}

// BreakLog closes the log file under the driver, so that its next write fails as a
// full or failing disk would.
func (d *Driver) BreakLog() {
	d.log.mu.Lock()
	d.log.f.Close()
	d.log.mu.Unlock()
}

// BufferedLog makes the logs created until the test ends go through the page cache
// instead of direct I/O, as on file systems without direct I/O.
func BufferedLog(t interface{ Cleanup(func()) }) {
	directIO.Store(false)
	t.Cleanup(func() { directIO.Store(true) })
}

// DirectLogs undoes BufferedLog.
func DirectLogs() { directIO.Store(true) }

// DirectLog reports whether d's current log is written with direct I/O.
func (d *Driver) DirectLog() bool {
	d.log.mu.Lock()
	defer d.log.mu.Unlock()
	return d.log.direct
}

// UpsertRecordSize returns the size of the log record of upserting vs into ns.
func UpsertRecordSize(ns string, vs []driver.Vector, dim int) (int, error) {
	return upsertRecordSize(ns, vs, dim)
}

// RawFile is a file of n bytes, already written and synced, that Overwrite writes
// again: the cheapest way the disk has to make n bytes durable (no block to allocate,
// no size to change).
type RawFile struct {
	f   *os.File
	buf []byte
}

// createRaw creates the file at path, empty, to be written n bytes (rounded up to
// whole blocks) at a time as the log writes a group commit: direct I/O where the file
// system has it, through the page cache elsewhere.
func createRaw(path string, n int) (*RawFile, error) {
	f, _, err := createFile(path, true)
	if err != nil {
		return nil, err
	}
	buf := alignedBuffer(n)
	return &RawFile{f: f, buf: buf[:cap(buf)]}, nil
}

// writeAt writes the buffer at off with one write and fsyncs the file.
func (r *RawFile) writeAt(off int64) error {
	if _, err := r.f.WriteAt(r.buf, off); err != nil {
		return err
	}
	return fsync(r.f)
}

// NewRawFile creates the file at path with n bytes (rounded up to whole blocks),
// written and synced.
func NewRawFile(path string, n int) (*RawFile, error) {
	r, err := createRaw(path, n)
	if err != nil {
		return nil, err
	}
	if err = r.Overwrite(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Overwrite writes the file's bytes again with one write and fsyncs it.
func (r *RawFile) Overwrite() error { return r.writeAt(0) }

// Close closes the file.
func (r *RawFile) Close() error { return r.f.Close() }

// WriteGroups writes groups of n bytes to a new file at path, as the log's group
// commit does (one write, then an fsync), until stop is closed, and returns the bytes
// written.
func WriteGroups(path string, n int, stop <-chan struct{}) (int64, error) {
	r, err := createRaw(path, n)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var off int64
	for {
		select {
		case <-stop:
			return off, nil
		default:
		}
		if err := r.writeAt(off); err != nil {
			return off, err
		}
		off += int64(len(r.buf))
	}
}

// WaitCompaction returns, with the time it waited, once no background compaction is
// running or due (or the last one failed).
func (d *Driver) WaitCompaction() time.Duration {
	t := time.Now()
	for d.log != nil && d.bgErr.Load() == nil {
		d.compactMu.Lock() // held by a running compaction
		d.log.mu.Lock()
		size := d.log.size
		d.log.mu.Unlock()
		d.compactMu.Unlock()
		if !d.compactionDue(size) {
			break
		}
		// Due: a writer has kicked the compactor, which has not taken compactMu yet.
		runtime.Gosched()
	}
	return time.Since(t)
}
