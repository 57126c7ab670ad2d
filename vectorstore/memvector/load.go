package memvector

import (
	"runtime"
	"sync"
)

// Loading in parallel.
//
// Opening an index reads its snapshot and logs in order on one goroutine (reading the
// files and checking their checksums), and hands the decoding and applying to a few
// workers. Every job carries a namespace; the jobs of one namespace run on one worker,
// in the order they were submitted (namespaces are dealt to the workers in turn, in
// the order the reader first meets them, so that equal namespaces load evenly), so a namespace's snapshot section is loaded before
// its log records are applied, and those in log order, while different namespaces
// proceed in parallel. Jobs hold buffers of the files (a block's entries, a log
// record): the bytes held by jobs not yet run are bounded, so a log of large records
// does not pile up in memory.

// loadInflightBytes bounds the bytes that submitted jobs hold before they run.
const loadInflightBytes = 64 << 20

// loadWorker is the state one worker keeps between jobs.
type loadWorker struct {
	scratch []float32
	intern  map[string]string
}

type loadJob struct {
	run  func(w *loadWorker) error
	size int64
}

// loader runs the jobs of one open.
type loader struct {
	queues []chan loadJob
	shards map[string]uint64 // the reader's: each namespace's queue
	wg     sync.WaitGroup

	closeOnce sync.Once

	mu       sync.Mutex
	cond     sync.Cond
	inflight int64
	err      error
}

func newLoader() *loader {
	n := min(max(runtime.GOMAXPROCS(0), 1), 8)
	l := &loader{queues: make([]chan loadJob, n), shards: map[string]uint64{}}
	l.cond.L = &l.mu
	for i := range l.queues {
		q := make(chan loadJob, 256)
		l.queues[i] = q
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			w := &loadWorker{intern: map[string]string{}}
			for j := range q {
				l.mu.Lock()
				failed := l.err != nil
				l.mu.Unlock()
				var err error
				if !failed {
					err = j.run(w)
				}
				l.mu.Lock()
				if err != nil && l.err == nil {
					l.err = err
				}
				l.inflight -= j.size
				l.cond.Broadcast()
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// submit queues run on the worker of shard (see shardOf); it holds size bytes until
// it has run.
// It returns the error of a job that failed, after which nothing more runs.
func (l *loader) submit(shard uint64, size int64, run func(w *loadWorker) error) error {
	l.mu.Lock()
	for l.err == nil && l.inflight > 0 && l.inflight+size > loadInflightBytes {
		l.cond.Wait()
	}
	err := l.err
	if err == nil {
		l.inflight += size
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.queues[shard] <- loadJob{run: run, size: size}
	return nil
}

// shardOf returns the shard of namespace ns: the next worker's, the first time the
// reader meets ns. Only the reader calls it.
func (l *loader) shardOf(ns []byte) uint64 {
	if s, ok := l.shards[string(ns)]; ok {
		return s
	}
	s := uint64(len(l.shards)) % uint64(len(l.queues))
	l.shards[string(ns)] = s
	return s
}

// wait runs every submitted job, stops the workers and returns the first error. It
// may be called more than once; nothing may be submitted after it.
func (l *loader) wait() error {
	l.closeOnce.Do(func() {
		for _, q := range l.queues {
			close(q)
		}
		l.wg.Wait()
	})
	return l.err
}

var recordBufs = sync.Pool{New: func() any { return new([]byte) }}

// submitRecord queues the replay of a log record (copied: p is the reader's buffer).
func (l *loader) submitRecord(d *Driver, p []byte) error {
	// The namespace follows the operation byte; a record too short for it is left to
	// replay, which reports it.
	shard := uint64(0)
	dec := &decoder{b: p[min(1, len(p)):]}
	if ns := dec.bytes(dec.count(1)); dec.err == nil {
		shard = l.shardOf(ns)
	}
	bp := recordBufs.Get().(*[]byte)
	buf := append((*bp)[:0], p...)
	return l.submit(shard, int64(len(buf)), func(w *loadWorker) error {
		err := d.replay(buf, &w.scratch, w.intern)
		if cap(buf) <= 4<<20 {
			*bp = buf
			recordBufs.Put(bp)
		}
		return err
	})
}
