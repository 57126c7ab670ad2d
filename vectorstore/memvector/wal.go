package memvector

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/internal/faultpoint"
)

// The write-ahead log.
//
// A log file is Path + ".wal." + its generation (16 hex digits). It starts with a
// 16-byte header (logMagic, the dimension as uint32 and the CRC-32C of those 12 bytes)
// followed by records. A record is framed as
//
//	length uint32 | CRC-32C of the payload uint32 | payload (length bytes)
//
// all little-endian; the payload is an operation byte, the namespace and the
// operation's arguments (see Driver.Upsert and Driver.deleteRecord). A writer
// writes its record to the file (the page cache) at once, in sequence order, applies
// it to the in-memory index, and returns only once the record is synced to disk. The
// first writer to find no sync running syncs the file (leader/follower group commit):
// that one fsync makes every record written so far durable, and the writers that
// write while it runs share the next one. Once the unsynced part of the log passes
// writebackBytes, each write also starts the kernel's write-back of its record, so
// that the disk works while the CPU encodes and the group commits stay short.
//
// Recovery reads the records in order and stops at the first one that is incomplete,
// fails its checksum or has length zero (a zero-filled tail): such a record was being written when the process or the
// machine died, so it was never acknowledged, and neither was anything after it. The
// file is truncated there.

const (
	logMagic      = "CLVLOG01"
	logHeaderSize = 16
	frameSize     = 8
	// maxRecord bounds a record's length: the largest valid upsert (1000 vectors of
	// MaxDimension values with the largest metadata) is far below it.
	maxRecord = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record operations.
const (
	opUpsert          byte = 1
	opDelete          byte = 2
	opDeleteNamespace byte = 3
)

func logName(base string, gen uint64) string { return fmt.Sprintf("%s.wal.%016x", base, gen) }

func logHeader(dim int) []byte {
	h := make([]byte, 0, logHeaderSize)
	h = append(h, logMagic...)
	h = binary.LittleEndian.AppendUint32(h, uint32(dim))
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
}

// sealRecord fills in the frame of rec, whose first frameSize bytes were reserved.
func sealRecord(rec []byte) []byte {
	p := rec[frameSize:]
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(p)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(p, castagnoli))
	return rec
}

// syncDir makes the creation, renaming or removal of entries of dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// createLog creates log generation gen with its header, synced with its directory if
// sync is set. Otherwise the first group commit on the file syncs both (wal.lead).
func createLog(base string, gen uint64, dim int, sync bool) (*os.File, error) {
	f, err := os.OpenFile(logName(base, gen), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	_, err = f.Write(logHeader(dim))
	if err == nil && sync {
		err = fsync(f)
	}
	if err == nil && sync {
		err = syncDir(filepath.Dir(base))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// wal is the open log with its group commit.
type wal struct {
	base string
	dim  int

	// wmu orders the writes to the file: a writer appends its record under it, so the
	// records reach the file (the page cache) in sequence order, while a sync of the
	// records before runs.
	wmu sync.Mutex

	mu      sync.Mutex
	cond    sync.Cond
	f       *os.File
	gen     uint64
	size    int64  // bytes in f
	synced  int64  // bytes of f known durable
	next    uint64 // sequence number of the last record written to f
	durable uint64 // sequence number of the last synced record
	leading bool   // a leader is syncing
	fresh   bool   // f was created by rotate and its directory entry is not yet synced
	err     error  // sticky: after a failed write or sync, or Close
}

func newWAL(base string, dim int, f *os.File, gen uint64, size int64) *wal {
	w := &wal{base: base, dim: dim, f: f, gen: gen, size: size, synced: size}
	w.cond.L = &w.mu
	return w
}

var errClosed = errs.New(errs.Unavailable, "memvector", "the index is closed")

// append writes a sealed record to the log file (not yet synced) and returns its
// sequence number. Writing it at once, rather than in the group commit, lets the
// records of the next group reach the page cache while the current one syncs, and
// starts their write-back early (startWriteback), so that the sync that makes them
// durable has less left to do.
func (w *wal) append(rec []byte) (uint64, error) {
	w.wmu.Lock()
	w.mu.Lock()
	err, f, off := w.err, w.f, w.size
	w.mu.Unlock()
	if err != nil {
		w.wmu.Unlock()
		return 0, err
	}
	faultpoint.Hit("memvector.log.write")
	n, err := f.Write(rec)
	if err == nil {
		faultpoint.Hit("memvector.log.record")
	}
	w.mu.Lock()
	w.size += int64(n)
	if err != nil {
		// What reached the file is a partial record: nothing may follow it.
		w.fail(err)
		err = w.err
		w.mu.Unlock()
		w.wmu.Unlock()
		return 0, err
	}
	w.next++
	seq, kick := w.next, w.size-w.synced >= writebackBytes
	w.mu.Unlock()
	w.wmu.Unlock()
	if kick {
		startWriteback(f, off, int64(n))
	}
	return seq, nil
}

// writebackBytes is the amount of unsynced log past which an append starts the
// write-back of its record at once.
const writebackBytes = 256 << 10

// fail makes err sticky. w.mu is held.
func (w *wal) fail(err error) {
	if w.err == nil {
		// What reached the disk is unknown (after a failed fsync the kernel may have
		// dropped the dirty pages): refuse every later write; reopening recovers.
		w.err = errs.Wrap(errs.Unavailable, "memvector", err, "the write-ahead log failed; reopen the index to recover")
	}
	w.cond.Broadcast()
}

// wait returns once record seq is synced, leading a group commit when the log is
// idle. It returns the log's size afterwards.
func (w *wal) wait(seq uint64) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.durable < seq {
		switch {
		case w.err != nil:
			return 0, w.err
		case w.leading:
			w.cond.Wait()
		default:
			w.lead()
		}
	}
	return w.size, nil
}

// lead syncs every written record. w.mu is held, and released during the sync.
func (w *wal) lead() {
	end, size, f, fresh := w.next, w.size, w.f, w.fresh
	w.leading = true
	w.mu.Unlock()

	faultpoint.Hit("memvector.log.sync")
	err := fsync(f)
	if err == nil && fresh {
		// The first records of a log that rotate created: its directory entry must be
		// durable too before they are acknowledged.
		if err = syncDir(filepath.Dir(w.base)); err == nil {
			faultpoint.Hit("memvector.log.dirsynced")
		}
	}
	if err == nil {
		faultpoint.Hit("memvector.log.synced")
	}

	w.mu.Lock()
	w.leading = false
	if err != nil {
		w.fail(err)
		return
	}
	if f == w.f {
		w.fresh = w.fresh && !fresh
	}
	w.durable, w.synced = end, size
	w.cond.Broadcast()
}

// drain makes every appended record durable. w.mu is held.
func (w *wal) drain() error {
	for {
		switch {
		case w.err != nil:
			return w.err
		case w.leading:
			w.cond.Wait()
		case w.durable < w.next:
			w.lead()
		default:
			return nil
		}
	}
}

// rotate makes every appended record durable, then switches to a new log generation
// and returns the previous one. The caller holds off appends (Driver.gate), so rotate
// syncs no more than it must: the new log's header and directory entry are synced by
// the first group commit of a record in it (or by the snapshot's directory sync). A
// crash before that leaves a new log that is missing or torn in its header: an empty
// last log, after an old one that is complete.
func (w *wal) rotate() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.drain(); err != nil {
		return 0, err
	}
	if w.fresh {
		// No record was written to the current log: its header was never synced, and
		// it is about to stop being the last log, where only a torn tail is allowed.
		if err := fsync(w.f); err != nil {
			w.fail(err)
			return 0, w.err
		}
		w.fresh = false
	}
	f, err := createLog(w.base, w.gen+1, w.dim, false)
	if err != nil {
		return 0, errs.Wrap(errs.Unavailable, "memvector", err, "create a new log")
	}
	w.f.Close()
	w.f, w.gen, w.size, w.synced, w.fresh = f, w.gen+1, logHeaderSize, logHeaderSize, true
	return w.gen - 1, nil
}

// close makes every appended record durable and closes the file.
func (w *wal) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == errClosed {
		return nil
	}
	err := w.drain()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.err = errClosed
	w.cond.Broadcast()
	return err
}

var errCorrupt = errors.New("memvector: corrupt log")

// readLog calls fn with the payload of every intact record of the log file at path,
// in order, and returns the offset after the last one and whether the file continues
// with an incomplete or damaged record (a torn tail). A file shorter than its header
// is an empty log with a torn tail. fn's payload is valid only during the call.
func readLog(path string, dim int, fn func(payload []byte) error) (good int64, torn bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	size := st.Size()
	r := bufio.NewReaderSize(f, 1<<20)
	hdr := make([]byte, logHeaderSize)
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return 0, true, nil
		}
		return 0, false, err
	}
	if string(hdr) == string(make([]byte, logHeaderSize)) {
		// The header of a new log whose data had not reached the disk when the machine
		// stopped (rotate does not sync it): an empty log.
		return 0, true, nil
	}
	if string(hdr) != string(logHeader(dim)) {
		if string(hdr[:len(logMagic)]) == logMagic && crc32.Checksum(hdr[:12], castagnoli) == binary.LittleEndian.Uint32(hdr[12:]) {
			return 0, false, fmt.Errorf("%w: log %s has dimension %d, want %d", errCorrupt, filepath.Base(path), binary.LittleEndian.Uint32(hdr[8:]), dim)
		}
		return 0, false, fmt.Errorf("%w: %s is not a memvector log", errCorrupt, filepath.Base(path))
	}
	good = logHeaderSize
	var frame [frameSize]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, frame[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return good, false, nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return good, true, nil
			}
			return good, false, err
		}
		n := int64(binary.LittleEndian.Uint32(frame[0:]))
		if n == 0 || n > maxRecord || good+frameSize+n > size {
			// No record is empty (it starts with its operation): a zero frame is the
			// zero-filled tail that a file system may leave after a crash.
			return good, true, nil
		}
		var p []byte
		if n <= int64(r.Size()) {
			// In place in the reader's buffer: fn copies what it keeps.
			p, err = r.Peek(int(n))
		} else {
			if int64(cap(buf)) < n {
				buf = make([]byte, n)
			}
			p = buf[:n]
			_, err = io.ReadFull(r, p)
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return good, true, nil
			}
			return good, false, err
		}
		if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(frame[4:]) {
			return good, true, nil
		}
		if err := fn(p); err != nil {
			return good, false, err
		}
		if n <= int64(r.Size()) {
			r.Discard(int(n))
		}
		good += frameSize + n
	}
}

// skipSync turns every fsync into a no-op. Only tests set it, for checks that a
// SIGKILL cannot tell apart from a real sync (the page cache survives the process).
var skipSync atomic.Bool

func fsync(f *os.File) error {
	if skipSync.Load() {
		return nil
	}
	return f.Sync()
}
