package memvector

import (
	"bufio"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/cloneiso/cloneiso/internal/faultpoint"
	"github.com/cloneiso/cloneiso/vectorstore/internal/engine"
)

// The snapshot.
//
// A snapshot is the file at Options.Path:
//
//	header: snapMagic | format uint32 | dimension uint32 | metric uint32 | 0 uint32 | log generation uint64
//	per namespace, in ascending order:
//	    1 | namespace (string) | record count (uvarint)
//	    per block of up to engine.BlockVectors records:
//	        entries length (uvarint) | entries: per record ID (string), norm float32, metadata
//	        the records' stored (normalized) values: count*dimension raw float32
//	0 | CRC-32C of every byte before it (uint32)
//
// little-endian throughout. The values are written from the index's own storage and
// read straight into newly allocated storage blocks, with no per-value decoding and no
// second copy, so writing a snapshot adds a 1 MiB buffer to memory (plus one block's
// entries) and loading one runs at about the speed of reading the file. The log
// generation is the first log whose records the snapshot may lack: recovery replays
// that log and every later one.

const (
	snapMagic      = "CLVSNAP1"
	snapFormat     = 1
	snapHeaderSize = 32
)

var errSnapshot = errors.New("memvector: corrupt snapshot")

// snapWriter buffers a snapshot file and writes it a buffer at a time, keeping the
// CRC-32C of what it writes. With direct I/O (the buffer is aligned, and every write
// but the last is a whole number of blocks), the snapshot goes to the disk as it is
// written without passing through the page cache; otherwise through the page cache,
// paced (pacedWriter).
type snapWriter struct {
	f      *os.File
	direct bool
	buf    []byte // aligned; cap(buf) is snapBuffer plus a block for the tail
	off    int64
	crc    uint32
	paced  pacedWriter
}

const snapBuffer = 1 << 20

func newSnapWriter(f *os.File, direct bool) *snapWriter {
	return &snapWriter{f: f, direct: direct, buf: alignedBuffer(snapBuffer + blockSize), paced: pacedWriter{f: f}}
}

func (w *snapWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(w.buf[len(w.buf):snapBuffer], p)
		w.buf, p = w.buf[:len(w.buf)+k], p[k:]
		if len(w.buf) == snapBuffer {
			if err := w.flush(w.buf); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *snapWriter) WriteByte(c byte) error {
	_, err := w.Write([]byte{c})
	return err
}

// flush checksums and writes b, the buffer's contents.
func (w *snapWriter) flush(b []byte) error {
	w.crc = crc32.Update(w.crc, castagnoli, b)
	var err error
	if w.direct {
		_, err = w.f.WriteAt(b, w.off)
	} else {
		_, err = w.paced.Write(b)
	}
	w.off += int64(len(b))
	w.buf = w.buf[:0]
	return err
}

// pace lets the write-back catch up (pacedWriter.pace); with direct I/O every write has
// reached the disk already.
func (w *snapWriter) pace() error {
	if !w.direct {
		return w.paced.pace()
	}
	return nil
}

// finish writes the rest and the checksum of everything before it. With direct I/O the
// last block is written whole and the file cut to its length.
func (w *snapWriter) finish() error {
	w.crc = crc32.Update(w.crc, castagnoli, w.buf)
	b := binary.LittleEndian.AppendUint32(w.buf, w.crc)
	size := w.off + int64(len(b))
	if !w.direct {
		_, err := w.paced.Write(b)
		return err
	}
	whole := b[:(len(b)+blockSize-1)&^(blockSize-1)]
	clear(whole[len(b):])
	if _, err := w.f.WriteAt(whole, w.off); err != nil {
		return err
	}
	return w.f.Truncate(size)
}

// pacedWriter writes a file and keeps its write-back moving along: every
// snapshotPace bytes it starts the write-back of the bytes just written, and pace
// (called between namespaces, when writeSnapshot holds no lock of the index) waits for
// the write-back of all but the last of them. A snapshot thus reaches the disk as it
// is written, at about the disk's pace, rather than in one burst at its fsync, which
// would queue the log's group commits behind tens of megabytes of snapshot. The fsync
// is still what makes the snapshot durable.
type pacedWriter struct {
	f                    *os.File
	off, started, waited int64
}

const snapshotPace = 8 << 20

func (w *pacedWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.started >= snapshotPace {
		startWriteback(w.f, w.started, w.off-w.started)
		w.started = w.off
	}
	return n, err
}

// pace waits for the write-back started before the last snapshotPace bytes.
func (w *pacedWriter) pace() error {
	if until := w.started - snapshotPace; until > w.waited {
		waitWriteback(w.f, w.waited, until-w.waited)
		w.waited = until
	}
	return nil
}

// writeSnapshot writes the index to Options.Path atomically (a temporary file, synced,
// renamed over the old snapshot, and the directory synced), recording gen as the
// first log generation to replay after it.
func (d *Driver) writeSnapshot(gen uint64) error {
	tmp := d.path + ".tmp"
	// Direct I/O where the log found the file system to support it.
	d.log.mu.Lock()
	logDirect := d.log.direct
	d.log.mu.Unlock()
	f, direct, err := createFile(tmp, logDirect)
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if !renamed {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := newSnapWriter(f, direct)
	hdr := make([]byte, 0, snapHeaderSize)
	hdr = append(hdr, snapMagic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, snapFormat)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(d.e.Dimension()))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(d.e.Metric()))
	hdr = binary.LittleEndian.AppendUint32(hdr, 0)
	hdr = binary.LittleEndian.AppendUint64(hdr, gen)
	if _, err := bw.Write(hdr); err != nil {
		return err
	}
	var entries, scratch []byte
	var merr error
	appendEntry := func(k string, val any) {
		if merr == nil {
			entries, merr = appendMetadataEntry(entries, k, val)
		}
	}
	err = d.e.Dump(func(ns string, v *engine.SpaceView) error {
		scratch = append(scratch[:0], 1)
		scratch = appendString(scratch, ns)
		scratch = binary.AppendUvarint(scratch, uint64(v.Len()))
		if _, err := bw.Write(scratch); err != nil {
			return err
		}
		for b := range v.Blocks() {
			entries = entries[:0]
			lo := b * engine.BlockVectors
			hi := min(lo+engine.BlockVectors, v.Len())
			for i := lo; i < hi; i++ {
				entries = appendString(entries, v.ID(i))
				entries = binary.LittleEndian.AppendUint32(entries, math.Float32bits(v.Norm(i)))
				// The metadata as appendMetadata encodes it, read in place.
				entries = binary.AppendUvarint(entries, uint64(v.RangeMetadata(i, nil)))
				if v.RangeMetadata(i, appendEntry); merr != nil {
					return merr
				}
			}
			scratch = binary.AppendUvarint(scratch[:0], uint64(len(entries)))
			if _, err := bw.Write(scratch); err != nil {
				return err
			}
			if _, err := bw.Write(entries); err != nil {
				return err
			}
			if nativeLittle {
				if _, err := bw.Write(floatBytes(v.Block(b))); err != nil {
					return err
				}
			} else if _, err := bw.Write(appendFloats(scratch[:0], v.Block(b))); err != nil {
				return err
			}
		}
		return nil
	}, bw.pace)
	if err != nil {
		return err
	}
	if err := bw.WriteByte(0); err != nil {
		return err
	}
	if err := bw.finish(); err != nil {
		return err
	}
	faultpoint.Hit("memvector.snapshot.sync")
	if err := fsync(f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	faultpoint.Hit("memvector.snapshot.rename")
	if err := os.Rename(tmp, d.path); err != nil {
		return err
	}
	renamed = true
	faultpoint.Hit("memvector.snapshot.renamed")
	return syncDir(filepath.Dir(d.path))
}

// crcReader feeds what is read through it to a CRC-32C that a second goroutine
// computes, so that the checksum of one part of the file overlaps the reading of the
// next. A large read is hashed in the caller's own buffer: loadSnapshot's callers read
// into memory that they keep and do not modify before sum returns (the entries and
// value blocks handed to the loader; the index changes no value before the logs are
// replayed, after sum). Small reads are copied into batches first.
type crcReader struct {
	r     *bufio.Reader
	small []byte
	ch    chan []byte
	done  chan uint32
	ended bool
}

// crcDirect is the size from which a read is hashed in place rather than batched.
const crcDirect = 64 << 10

func newCRCReader(r *bufio.Reader) *crcReader {
	c := &crcReader{r: r, ch: make(chan []byte, 16), done: make(chan uint32, 1)}
	go func() {
		var crc uint32
		for p := range c.ch {
			crc = crc32.Update(crc, castagnoli, p)
		}
		c.done <- crc
	}()
	return c
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n >= crcDirect {
		c.flush()
		c.ch <- p[:n:n]
	} else if n > 0 {
		c.small = append(c.small, p[:n]...)
		if len(c.small) >= crcDirect {
			c.flush()
		}
	}
	return n, err
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.small = append(c.small, b)
		if len(c.small) >= crcDirect {
			c.flush()
		}
	}
	return b, err
}

// flush hands the batch of small reads to the hashing goroutine.
func (c *crcReader) flush() {
	if len(c.small) > 0 {
		c.ch <- c.small
		c.small = make([]byte, 0, 2*crcDirect)
	}
}

// sum returns the CRC-32C of everything read. The reader is done with after it.
func (c *crcReader) sum() uint32 {
	c.flush()
	c.ended = true
	close(c.ch)
	return <-c.done
}

// end stops the hashing goroutine, if sum has not.
func (c *crcReader) end() {
	if !c.ended {
		c.ended = true
		close(c.ch)
		<-c.done
	}
}

// loadSnapshot loads the snapshot at Options.Path, if there is one, and returns the
// first log generation to replay over it and whether it was in the format of earlier
// releases (a gob encoding, read once and then rewritten).
//
// The reader (this goroutine) reads the file, a second goroutine computes its checksum
// (crcReader), and the loader's workers decode each block's entries and load each
// namespace, all in parallel with the reading.
func (d *Driver) loadSnapshot(l *loader) (gen uint64, legacy bool, err error) {
	f, err := os.Open(d.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	if head, _ := br.Peek(len(snapMagic)); string(head) != snapMagic {
		return 0, true, d.loadGob(br)
	}
	cr := newCRCReader(br)
	defer cr.end()
	if gen, err = d.readSnapshotHeader(cr); err != nil {
		return 0, false, err
	}
	for {
		tag, err := cr.ReadByte()
		if err != nil {
			return 0, false, snapshotError("truncated")
		}
		if tag == 0 {
			break
		}
		if tag != 1 {
			return 0, false, snapshotError("unknown section")
		}
		if err := d.loadNamespace(l, cr); err != nil {
			return 0, false, err
		}
	}
	want := cr.sum()
	var sum [4]byte
	if _, err := io.ReadFull(br, sum[:]); err != nil || binary.LittleEndian.Uint32(sum[:]) != want {
		return 0, false, snapshotError("checksum mismatch")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return 0, false, snapshotError("trailing data")
	}
	return gen, false, nil
}

// snapshotError is a malformed snapshot.
func snapshotError(what string) error { return fmt.Errorf("%w: %s", errSnapshot, what) }

// readSnapshotHeader reads the snapshot's header, checks its format, dimension and
// metric against the index's, and returns the first log generation to replay.
func (d *Driver) readSnapshotHeader(cr *crcReader) (gen uint64, err error) {
	hdr := make([]byte, snapHeaderSize)
	if _, err := io.ReadFull(cr, hdr); err != nil {
		return 0, fmt.Errorf("%w: %v", errSnapshot, err)
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != snapFormat {
		return 0, fmt.Errorf("%w: format %d is not supported by this release", errSnapshot, v)
	}
	dim := d.e.Dimension()
	if got := int(binary.LittleEndian.Uint32(hdr[12:])); got != dim {
		return 0, fmt.Errorf("%w: it has dimension %d, want %d", errDimension, got, dim)
	}
	if m := engine.Metric(binary.LittleEndian.Uint32(hdr[16:])); m != d.e.Metric() {
		return 0, fmt.Errorf("%w: metric %s, want %s", errSnapshot, m, d.e.Metric())
	}
	return binary.LittleEndian.Uint64(hdr[24:]), nil
}

// loadNamespace reads one namespace section: it reads each block's entries and values
// and submits to the namespace's shard a job decoding the entries of each block, then
// one loading the namespace.
func (d *Driver) loadNamespace(l *loader, cr *crcReader) error {
	dim := d.e.Dimension()
	nsLen, err := binary.ReadUvarint(cr)
	if err != nil || nsLen > 4096 {
		return snapshotError("namespace")
	}
	nsb := make([]byte, nsLen)
	if _, err := io.ReadFull(cr, nsb); err != nil {
		return snapshotError("namespace")
	}
	ns := string(nsb)
	count, err := binary.ReadUvarint(cr)
	if err != nil || count == 0 || count > 1<<40 {
		return snapshotError("record count")
	}
	n := int(count)
	// ids, metas and norms are the worker's (its jobs fill them in block order);
	// blocks is the reader's until the namespace's last job, which loads them all.
	ids := make([]string, 0, n)
	metas := make([]map[string]any, 0, n)
	norms := make([]float32, 0, n)
	blocks := make([][]float32, 0, (n+engine.BlockVectors-1)/engine.BlockVectors)
	shard := l.shardOf(nsb)
	for lo := 0; lo < n; lo += engine.BlockVectors {
		hi := min(lo+engine.BlockVectors, n)
		entries, block, err := readSnapshotBlock(cr, hi-lo, dim)
		if err != nil {
			return err
		}
		blocks = append(blocks, block)
		err = l.submit(shard, int64(len(entries)), func(w *loadWorker) error {
			dec := &decoder{b: entries, intern: w.intern}
			for range hi - lo {
				ids = append(ids, dec.string())
				if b := dec.bytes(4); b != nil {
					norms = append(norms, math.Float32frombits(binary.LittleEndian.Uint32(b)))
				}
				metas = append(metas, dec.metadata())
			}
			if dec.err != nil || len(dec.b) != 0 {
				return snapshotError("entries")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return l.submit(shard, 0, func(*loadWorker) error {
		if err := d.e.Load(ns, ids, metas, norms, blocks); err != nil {
			return fmt.Errorf("%w: %v", errSnapshot, err)
		}
		return nil
	})
}

// readSnapshotBlock reads one block of a namespace section: its encoded entries and
// the values of its n vectors, into a whole block of engine.BlockVectors.
func readSnapshotBlock(cr *crcReader, n, dim int) (entries []byte, block []float32, err error) {
	el, err := binary.ReadUvarint(cr)
	if err != nil || el > 1<<34 {
		return nil, nil, snapshotError("entries")
	}
	entries = make([]byte, el)
	if _, err := io.ReadFull(cr, entries); err != nil {
		return nil, nil, snapshotError("entries")
	}
	block = make([]float32, engine.BlockVectors*dim)
	vals := block[:n*dim]
	if nativeLittle {
		_, err = io.ReadFull(cr, floatBytes(vals))
	} else {
		raw := make([]byte, 4*len(vals))
		if _, err = io.ReadFull(cr, raw); err == nil {
			putFloats(vals, raw)
		}
	}
	if err != nil {
		return nil, nil, snapshotError("values")
	}
	return entries, block, nil
}

func init() {
	gob.Register([]string(nil))
}

// loadGob reads the gob snapshot of earlier releases.
func (d *Driver) loadGob(r io.Reader) error {
	var snap engine.Snapshot
	if err := gob.NewDecoder(r).Decode(&snap); err != nil {
		return fmt.Errorf("%w: neither a snapshot nor an index file of an earlier release: %v", errSnapshot, err)
	}
	if snap.Dimension != d.e.Dimension() {
		return fmt.Errorf("%w: it has dimension %d, want %d", errDimension, snap.Dimension, d.e.Dimension())
	}
	d.e.Restore(&snap)
	return nil
}
