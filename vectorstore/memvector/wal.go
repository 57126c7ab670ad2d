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
	"unsafe"

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
// operation's arguments (see Driver.Upsert and Driver.deleteRecord), or, for a
// padding record, opPad and zeros. Logs of earlier releases (logMagicV1) have no
// padding records; they are read the same way.
//
// Where the file system supports it (Linux), the log is written with direct I/O,
// bypassing the page cache, whose copying, page allocation and write-back cost more
// CPU than the record's encoding. A writer reserves its record's place in the group
// buffer (aligned memory), encodes the record there outside the lock, applies it to
// the in-memory index, and returns only once the record is synced to disk. The first
// writer to find no sync running leads a group commit: it takes the buffer (writers
// that come meanwhile fill a second one), waits for the places being filled, ends the
// buffer with a padding record at the next multiple of blockSize, writes it with one
// pwrite at the block-aligned end of the file and fsyncs. The header is followed by
// padding to the first block boundary too. So every group starts on a block boundary
// and no write ever covers bytes written before: a torn group can only damage records
// that were never acknowledged. A log that is reopened is never appended to (recover
// starts a new one), since its end may not be aligned.
//
// Otherwise a writer writes its record to the file (the page cache) at once, in
// sequence order, and the group commit only syncs, so the page-cache copies of one
// group overlap the sync of the previous one. Once the unsynced part of the log
// passes writebackBytes, each write also starts the kernel's write-back of its
// record, so that the disk works while the CPU encodes and the group commits stay
// short.
//
// Recovery reads the records in order and stops at the first one that is incomplete,
// fails its checksum or has length zero (a zero-filled tail): such a record was being
// written when the process or the machine died, so it was never acknowledged, and
// neither was anything after it. The file is truncated there.

const (
	logMagic      = "CLVLOG02"
	logMagicV1    = "CLVLOG01"
	logHeaderSize = 16
	frameSize     = 8
	// blockSize aligns direct I/O: the offsets and lengths of group writes and the
	// addresses of their buffers. It is a multiple of every logical block size Linux
	// file systems use for direct I/O.
	blockSize = 4096
	// padMax is the most a padding record can add to a group.
	padMax = blockSize + frameSize
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
	opPad             byte = 4 // padding to a block boundary; no operation
)

func logName(base string, gen uint64) string { return fmt.Sprintf("%s.wal.%016x", base, gen) }

func logHeader(dim int) []byte { return logHeaderOf(logMagic, dim) }

func logHeaderOf(magic string, dim int) []byte {
	h := make([]byte, 0, logHeaderSize)
	h = append(h, magic...)
	h = binary.LittleEndian.AppendUint32(h, uint32(dim))
	return binary.LittleEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
}

// alignedBuffer returns an empty slice with capacity n (rounded up to a multiple of
// blockSize) whose first byte is at a blockSize-aligned address, as direct I/O needs.
func alignedBuffer(n int) []byte {
	n = (n + blockSize - 1) &^ (blockSize - 1)
	b := make([]byte, n+blockSize)
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(b)))) & (blockSize - 1)
	return b[off : off : off+n]
}

// appendPad ends b at the next multiple of blockSize with a padding record, if it
// does not end there already. b's capacity must have room for padMax more bytes.
func appendPad(b []byte) []byte {
	pad := -len(b) & (blockSize - 1)
	if pad == 0 {
		return b
	}
	if pad < frameSize+1 {
		pad += blockSize
	}
	start := len(b)
	b = b[:start+pad]
	clear(b[start:])
	b[start+frameSize] = opPad
	sealRecord(b[start:])
	return b
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

// directIO enables direct I/O for new logs where the file system supports it. Tests
// clear it to cover the page-cache path on any file system.
var directIO atomic.Bool

func init() { directIO.Store(true) }

// createFile creates (or truncates) the file at path for writing, with direct I/O if
// direct is set (the caller knows that the file system supports it) and it can be
// opened so.
func createFile(path string, direct bool) (*os.File, bool, error) {
	if direct {
		f, err := openDirect(path)
		if err == nil || !directUnsupported(err) {
			return f, err == nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	return f, false, err
}

// createLog creates (or truncates) log generation gen with its header, synced with
// its directory if sync is set; otherwise the first group commit on the file syncs
// both (wal.lead). It writes the log with direct I/O where it can, and returns
// whether it does and the size of what it wrote.
func createLog(base string, gen uint64, dim int, sync bool) (f *os.File, direct bool, size int64, err error) {
	name := logName(base, gen)
	if f, direct, err = createFile(name, directIO.Load()); err != nil {
		return nil, false, 0, err
	}
	if direct {
		// The header block is also the test that the file system takes direct writes
		// (some refuse them only then).
		hdr := appendPad(append(alignedBuffer(logHeaderSize+padMax), logHeader(dim)...))
		size = int64(len(hdr))
		if _, err = f.WriteAt(hdr, 0); directUnsupported(err) {
			f.Close()
			if f, direct, err = createFile(name, false); err != nil {
				return nil, false, 0, err
			}
		}
	}
	if !direct {
		_, err = f.Write(logHeader(dim))
		size = logHeaderSize
	}
	if err == nil && sync {
		err = fsync(f)
	}
	if err == nil && sync {
		err = syncDir(filepath.Dir(base))
	}
	if err != nil {
		f.Close()
		return nil, false, 0, err
	}
	return f, direct, size, nil
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
	size    int64     // bytes in f, and in group
	synced  int64     // bytes of f known durable
	direct  bool      // f is written with direct I/O, a group at a time
	written int64     // direct: bytes in f, a multiple of blockSize
	group   *groupBuf // direct: the records not yet written
	spare   *groupBuf // direct: the other buffer, while a leader writes group
	next    uint64    // sequence number of the last record written to f
	durable uint64    // sequence number of the last synced record
	leading bool      // a leader is syncing
	fresh   bool      // f was created by rotate and its directory entry is not yet synced
	err     error     // sticky: after a failed write or sync, or Close
}

func newWAL(base string, dim int, f *os.File, gen uint64, size int64, direct bool) *wal {
	w := &wal{base: base, dim: dim, f: f, gen: gen, size: size, synced: size, direct: direct, written: size,
		group: &groupBuf{}, spare: &groupBuf{}}
	w.cond.L = &w.mu
	return w
}

var errClosed = errs.New(errs.Unavailable, "memvector", "the index is closed")

// append writes a sealed record to the log file (not yet synced) and returns its
// sequence number. Writing it at once, rather than in the group commit, lets the
// records of the next group reach the page cache while the current one syncs, and
// starts their write-back early (startWriteback), so that the sync that makes them
// durable has less left to do.
//
// With direct I/O, append copies the record into the group buffer instead; the group
// commit writes it. w.direct changes only in rotate, while appends are held off.
func (w *wal) append(rec []byte) (uint64, error) {
	if w.direct {
		return w.appendGroup(rec)
	}
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

// appendGroup adds a sealed record to the group buffer (direct I/O).
func (w *wal) appendGroup(rec []byte) (uint64, error) {
	dst, g, seq, err := w.reserve(len(rec))
	if err != nil {
		return 0, err
	}
	copy(dst, rec)
	return seq, w.filled(g, nil)
}

// reserve returns the place of the next record, size bytes, in the group buffer
// (direct I/O), and its sequence number. The caller fills it outside w.mu, so that
// writers encode or copy in parallel, and then calls filled: the group commit waits
// for every reserved place in the buffer it takes to be filled.
func (w *wal) reserve(size int) (dst []byte, g *groupBuf, seq uint64, err error) {
	faultpoint.Hit("memvector.log.write")
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if w.err != nil {
			return nil, nil, 0, w.err
		}
		g = w.group
		if len(g.b)+size+padMax <= cap(g.b) {
			break
		}
		if g.filling == 0 {
			// Only now may the buffer move.
			g.b = append(alignedBuffer(max(len(g.b)+size+padMax, 2*cap(g.b), groupMin)), g.b...)
			break
		}
		w.cond.Wait()
	}
	start := len(g.b)
	g.b = g.b[:start+size]
	g.filling++
	w.size += int64(size)
	w.next++
	return g.b[start:], g, w.next, nil
}

// filled reports that a place reserve returned in g is filled. If err is set, the
// place is not what it should be: the log fails rather than write it.
func (w *wal) filled(g *groupBuf, err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.fail(err)
	}
	if g.filling--; g.filling == 0 {
		w.cond.Broadcast()
	}
	return w.err
}

// groupBuf is a group buffer (direct I/O): aligned, and the number of places reserved in
// it that are not filled yet.
type groupBuf struct {
	b       []byte
	filling int
}

// groupMin is the smallest group buffer, and groupKeep the largest kept for reuse
// after its group is written.
const (
	groupMin  = 1 << 20
	groupKeep = 16 << 20
)

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

// lead syncs every appended record (with direct I/O, it writes them first). w.mu is
// held, and released during the write and the sync.
func (w *wal) lead() {
	end, size, f, fresh, direct := w.next, w.size, w.f, w.fresh, w.direct
	g, off := w.group, w.written
	w.leading = true
	if direct {
		w.group, w.spare = w.spare, nil
		for g.filling > 0 {
			w.cond.Wait()
		}
		if w.err != nil {
			// A record of the group was not filled as it should be (see filled).
			w.leading = false
			w.cond.Broadcast()
			return
		}
	}
	w.mu.Unlock()

	var err error
	var grp []byte
	if direct {
		// One write of whole blocks at the aligned end of the file: the padding keeps
		// the next group's start aligned, so no write covers an earlier one.
		grp = appendPad(g.b)
		if _, err = f.WriteAt(grp, off); err == nil {
			faultpoint.Hit("memvector.log.record")
		}
	}
	if err == nil {
		faultpoint.Hit("memvector.log.sync")
		err = fsync(f)
	}
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
	if direct {
		pad := off + int64(len(grp)) - size
		w.size += pad
		size += pad
		w.written = size
		if cap(grp) > groupKeep {
			grp = nil
		}
		g.b = grp[:0]
		w.spare = g
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
	f, direct, size, err := createLog(w.base, w.gen+1, w.dim, false)
	if err != nil {
		return 0, errs.Wrap(errs.Unavailable, "memvector", err, "create a new log")
	}
	w.f.Close()
	w.f, w.gen, w.size, w.synced, w.written, w.direct, w.fresh = f, w.gen+1, size, size, size, direct, true
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

// readLog calls fn with the payload of every intact record (but padding) of the log file at path,
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
	if string(hdr) != string(logHeader(dim)) && string(hdr) != string(logHeaderOf(logMagicV1, dim)) {
		if m := string(hdr[:len(logMagic)]); (m == logMagic || m == logMagicV1) && crc32.Checksum(hdr[:12], castagnoli) == binary.LittleEndian.Uint32(hdr[12:]) {
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
		if p[0] != opPad {
			if err := fn(p); err != nil {
				return good, false, err
			}
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
