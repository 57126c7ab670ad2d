package memvector_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// The benchmarks of the durable index. Each reports its ratios from interleaved rounds
// (medians), so that they compare like with like on a shared machine.

func sum(d []time.Duration) time.Duration {
	var t time.Duration
	for _, x := range d {
		t += x
	}
	return t
}

func median(d []time.Duration) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2])
}

func randVectors(seed uint64, n, dim int) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float32, n)
	for i := range out {
		v := make([]float32, dim)
		for j := range v {
			v[j] = r.Float32()*2 - 1
		}
		out[i] = v
	}
	return out
}

func benchClone(b *testing.B, i int) clone.CloneContext {
	cc, err := clone.Parse(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprintf("00000000-0000-4000-9000-%012d", i), clone.Principal{Subject: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return cc
}

// batch returns batch number k of 100 vectors for one clone, as the portable type
// passes them to the driver (scope keys stamped).
func batch(cc clone.CloneContext, vs [][]float32, k int) []driver.Vector {
	out := make([]driver.Vector, 100)
	for i := range out {
		out[i] = driver.Vector{ID: "doc-" + strconv.Itoa(k) + "#v1-" + strconv.Itoa(i), Values: vs[(k*100+i)%len(vs)],
			Metadata: map[string]any{vectorstore.TenantKey: cc.TenantID().String(), vectorstore.CloneKey: cc.CloneID().String(),
				"document_id": "doc-" + strconv.Itoa(k), "ordinal": float64(i), "version": "v1"}}
	}
	return out
}

// fsyncPerVector is the design the group commit is measured against: every vector its
// own log record, synced before the next.
type fsyncPerVector struct {
	mu sync.Mutex
	f  *os.File
}

func (p *fsyncPerVector) upsert(vs []driver.Vector) error {
	for _, v := range vs {
		rec := binary.LittleEndian.AppendUint32(nil, uint32(len(v.ID)))
		rec = append(rec, v.ID...)
		for _, x := range v.Values {
			rec = binary.LittleEndian.AppendUint32(rec, math.Float32bits(x))
		}
		p.mu.Lock()
		_, err := p.f.Write(rec)
		if err == nil {
			err = p.f.Sync()
		}
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkDurableUpsert: batches of 100 vectors (dim 384) written by 32 concurrent
// writers, each into its own clone's namespace: the in-memory index (no durability),
// the durable index on the default temporary directory (group commit: the writers
// share fsyncs), the durable index on a memory filesystem (/dev/shm, where fsync is
// free: the log's CPU cost alone), one batch through an fsync-per-vector log, and the
// floor: the in-memory index's round run beside one write of the round's log bytes
// over a file that already holds as many, and an fsync. Any durable design does at
// least the in-memory index's work and puts those bytes on the disk before it
// acknowledges; doing both at once, with the cheapest write the disk has (direct I/O,
// no block to allocate, no size to change), is its best case, so memory/floor bounds
// durable/memory on the machine that runs it. One b.N iteration is one round of each.
// Reported per batch, and durable/memory also in process CPU time per round.
func BenchmarkDurableUpsert(b *testing.B) {
	const dim, writers = 384, 32
	ctx := context.Background()
	vs := randVectors(1, 3200, dim)
	mem, err := memvector.NewDriver(dim, nil)
	if err != nil {
		b.Fatal(err)
	}
	dur, err := memvector.NewDriver(dim, &memvector.Options{Path: filepath.Join(b.TempDir(), "index")})
	if err != nil {
		b.Fatal(err)
	}
	defer dur.Close()
	var shm *memvector.Driver
	if dir, err := os.MkdirTemp("/dev/shm", "memvector-bench-"); err == nil {
		defer os.RemoveAll(dir)
		if shm, err = memvector.NewDriver(dim, &memvector.Options{Path: filepath.Join(dir, "index")}); err != nil {
			b.Fatal(err)
		}
		defer shm.Close()
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "per-vector.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	pv := &fsyncPerVector{f: f}
	ccs := make([]clone.CloneContext, writers)
	nss := make([]string, writers)
	roundBytes := 0 // what a round appends to the log
	for w := range ccs {
		ccs[w] = benchClone(b, w)
		nss[w], _ = vectorstore.Namespace(ccs[w])
		n, err := memvector.UpsertRecordSize(nss[w], batch(ccs[w], vs, w), dim)
		if err != nil {
			b.Fatal(err)
		}
		roundBytes += n
	}
	raw, err := memvector.NewRawFile(filepath.Join(b.TempDir(), "raw"), roundBytes)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	// round runs one round of the writers on d; beside, if set, runs alongside them,
	// and the round lasts until both are done.
	round := func(d *memvector.Driver, k int, beside func() error) time.Duration {
		var wg sync.WaitGroup
		t := time.Now()
		if beside != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := beside(); err != nil {
					b.Error(err)
				}
			}()
		}
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.Upsert(ctx, nss[w], batch(ccs[w], vs, (k%8)*writers+w)); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		return time.Since(t) / writers
	}
	// Warm-up, not timed: the rounds that first insert each writer's 8 batches (the
	// timed rounds overwrite them), and the heap's growth to its working size. Without
	// it, the first run in a process measured the in-memory index at up to 3 times its
	// later time per batch, and every ratio against it too high.
	for k := range 8 {
		round(mem, k, nil)
		round(dur, k, nil)
		dur.WaitCompaction()
		if shm != nil {
			round(shm, k, nil)
			shm.WaitCompaction()
		}
	}
	var tm, td, ts, tp, tf, cm, cd []time.Duration
	k := 0
	for b.Loop() {
		c := cpuTime()
		tm = append(tm, round(mem, k, nil))
		cm = append(cm, cpuTime()-c)
		// A compaction that a durable round starts is its cost: the round lasts until it
		// is done, so that it runs beside that round's writers only, never beside the
		// rounds of the other indexes.
		c = cpuTime()
		td = append(td, round(dur, k, nil)+dur.WaitCompaction()/writers)
		cd = append(cd, cpuTime()-c)
		if shm != nil {
			ts = append(ts, round(shm, k, nil)+shm.WaitCompaction()/writers)
		}
		tf = append(tf, round(mem, k, raw.Overwrite))
		t := time.Now()
		if err := pv.upsert(batch(ccs[0], vs, k)); err != nil {
			b.Fatal(err)
		}
		tp = append(tp, time.Since(t))
		k++
	}
	b.ReportMetric(median(tm), "memory-ns/batch")
	b.ReportMetric(median(td), "durable-ns/batch")
	b.ReportMetric(median(tp), "fsync-per-vector-ns/batch")
	b.ReportMetric(median(tm)/median(td), "durable/memory-throughput")
	// Over all rounds rather than the median: the compactions' cost included (a
	// compaction every 13 rounds; run with -benchtime 300x for a sustained rate).
	b.ReportMetric(float64(sum(tm))/float64(sum(td)), "durable/memory-mean-throughput")
	// The floor: the in-memory round beside the cheapest durable write of its log
	// bytes. memory/floor bounds durable/memory on this machine; durable/floor is how
	// near the durable index comes to that bound.
	b.ReportMetric(median(tf), "floor-ns/batch")
	b.ReportMetric(median(tm)/median(tf), "memory/floor-throughput")
	b.ReportMetric(median(tf)/median(td), "durable/floor-throughput")
	b.ReportMetric(median(tp)/median(td), "durable/fsync-per-vector-throughput")
	// CPU time (user and system, this process, the background compaction included)
	// per round: moves less with a busy machine's load than the wall-clock ratio.
	b.ReportMetric(median(cm)/median(cd), "durable/memory-cpu")
	if shm != nil {
		b.ReportMetric(median(ts), "durable-shm-ns/batch")
		b.ReportMetric(median(tm)/median(ts), "durable-shm/memory-throughput")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkScopedUpsert: the portable type's Upsert of 100 vectors (dim 384, with the
// pipeline's metadata) against the bare driver's, interleaved, on the in-memory index.
func BenchmarkScopedUpsert(b *testing.B) {
	const dim = 384
	ctx := context.Background()
	vs := randVectors(2, 1000, dim)
	d, err := memvector.NewDriver(dim, nil)
	if err != nil {
		b.Fatal(err)
	}
	x, err := vectorstore.NewIndex(d, nil)
	if err != nil {
		b.Fatal(err)
	}
	cc := benchClone(b, 1)
	ns, _ := vectorstore.Namespace(cc)
	var ts, tb []time.Duration
	k := 0
	for b.Loop() {
		for range 10 { // interleaved pairs per iteration
			scopedPair(b, ctx, x, d, cc, ns, vs, k, &ts, &tb)
			k++
		}
	}
	b.ReportMetric(median(ts), "scoped-ns")
	b.ReportMetric(median(tb), "bare-ns")
	b.ReportMetric(median(ts)/median(tb), "scoped/bare")
	b.ReportMetric(0, "ns/op")
}

// scopedPair upserts batch k through the portable index and the bare driver, in an
// order that alternates with k.
func scopedPair(b *testing.B, ctx context.Context, x *vectorstore.Index, d *memvector.Driver, cc clone.CloneContext, ns string, vs [][]float32, k int, ts, tb *[]time.Duration) {
	{
		raw := batch(cc, vs, k)
		in := make([]vectorstore.Vector, len(raw))
		for i, v := range raw {
			md := map[string]any{"document_id": v.Metadata["document_id"], "ordinal": v.Metadata["ordinal"], "version": "v1"}
			in[i] = vectorstore.Vector{ID: v.ID, Values: v.Values, Metadata: md}
		}
		s := func() {
			t := time.Now()
			if err := x.Upsert(ctx, cc, in); err != nil {
				b.Fatal(err)
			}
			*ts = append(*ts, time.Since(t))
		}
		r := func() {
			t := time.Now()
			if err := d.Upsert(ctx, ns, raw); err != nil {
				b.Fatal(err)
			}
			*tb = append(*tb, time.Since(t))
		}
		if k%2 == 0 {
			s()
			r()
		} else {
			r()
			s()
		}
	}
}

// BenchmarkDurableQuery: top-10 queries on 10,000 vectors (dim 384) of one namespace,
// on the durable index against the same data in memory, interleaved.
func BenchmarkDurableQuery(b *testing.B) {
	const dim, n = 384, 10000
	ctx := context.Background()
	vs := randVectors(3, n, dim)
	qs := randVectors(4, 64, dim)
	mem, _ := memvector.NewDriver(dim, nil)
	dur, err := memvector.NewDriver(dim, &memvector.Options{Path: filepath.Join(b.TempDir(), "index")})
	if err != nil {
		b.Fatal(err)
	}
	defer dur.Close()
	cc := benchClone(b, 1)
	ns, _ := vectorstore.Namespace(cc)
	for k := range n / 100 {
		for _, d := range []*memvector.Driver{mem, dur} {
			if err := d.Upsert(ctx, ns, batch(cc, vs, k)); err != nil {
				b.Fatal(err)
			}
		}
	}
	f, _ := vectorstore.ScopeFilter(cc)
	var tm, td []time.Duration
	k := 0
	for b.Loop() {
		for range 25 { // interleaved pairs per iteration
			q := &driver.Query{Vector: qs[k%len(qs)], TopK: 10, Filter: f}
			one := func(d *memvector.Driver, into *[]time.Duration) {
				t := time.Now()
				if _, err := d.Query(ctx, ns, q); err != nil {
					b.Fatal(err)
				}
				*into = append(*into, time.Since(t))
			}
			if k%2 == 0 {
				one(mem, &tm)
				one(dur, &td)
			} else {
				one(dur, &td)
				one(mem, &tm)
			}
			k++
		}
	}
	b.ReportMetric(median(td)/median(tm), "durable/memory")
	b.ReportMetric(0, "ns/op")
}

// openSize is the index BenchmarkOpen builds: BENCH_OPEN=<vectors>x<dim>, default
// 40000x1536 (a 240 MiB snapshot), with a log of 10,000 one-vector upserts on top
// (61 MiB at this dimension). The 100000x1536 fits a long run.
func openSize(b *testing.B) (n, dim int) {
	n, dim = 40000, 1536
	if s := os.Getenv("BENCH_OPEN"); s != "" {
		a, c, _ := strings.Cut(s, "x")
		n, _ = strconv.Atoi(a)
		dim, _ = strconv.Atoi(c)
	}
	return n, dim
}

// BenchmarkOpen: opening a durable index (loading its snapshot, replaying a log of
// 10,000 one-vector upserts) against reading the snapshot file into memory,
// interleaved; and the resident memory a compaction (snapshot) adds, relative to the
// index's size. Each starts as a process does, with no freed memory to reuse: the
// memory of the one before is returned to the operating system (debug.FreeOSMemory),
// so that both pay for the pages they fill. (After a plain runtime.GC, opening reused
// the heap of the index before while os.ReadFile's one large buffer took new pages: on
// a machine where a page fault is dear, open/read came out 4-5 times too low.)
func BenchmarkOpen(b *testing.B) {
	n, dim := openSize(b)
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "index")
	d, err := memvector.NewDriver(dim, &memvector.Options{Path: path, CompactLogBytes: -1})
	if err != nil {
		b.Fatal(err)
	}
	const spaces = 8
	vs := randVectors(5, 2000, dim)
	for s := range spaces {
		cc := benchClone(b, s)
		ns, _ := vectorstore.Namespace(cc)
		for k := range n / spaces / 100 {
			if err := d.Upsert(ctx, ns, batch(cc, vs, k)); err != nil {
				b.Fatal(err)
			}
		}
	}
	indexBytes := float64(n * dim * 4)
	// The snapshot's resident cost: peak RSS during a compaction over the RSS before.
	runtime.GC()
	debug.FreeOSMemory()
	resetPeak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	before := rss("VmRSS")
	if err := d.Sync(); err != nil {
		b.Fatal(err)
	}
	peak := rss("VmHWM")
	// The log: 10,000 one-vector upserts from 64 writers (group commit).
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := benchClone(b, w%spaces)
			ns, _ := vectorstore.Namespace(cc)
			for i := w; i < 10000; i += 64 {
				v := batch(cc, vs, i)[:1]
				v[0].ID = "log-" + strconv.Itoa(i)
				if err := d.Upsert(ctx, ns, v); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := d.Close(); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	lst, _ := os.Stat(memvector.LogName(path, 2))
	var topen, tread, copen, cread []time.Duration
	k := 0
	for b.Loop() {
		read := func() {
			// Reading the file into memory, as loading it must (the index lives in
			// memory): os.ReadFile, one allocation of the file's size.
			c := cpuTime()
			t := time.Now()
			data, err := os.ReadFile(path)
			if err != nil {
				b.Fatal(err)
			}
			tread = append(tread, time.Since(t))
			cread = append(cread, cpuTime()-c)
			runtime.KeepAlive(data)
			data = nil
			debug.FreeOSMemory()
		}
		open := func() {
			c := cpuTime()
			t := time.Now()
			d, err := memvector.NewDriver(dim, &memvector.Options{Path: path, CompactLogBytes: -1})
			if err != nil {
				b.Fatal(err)
			}
			topen = append(topen, time.Since(t))
			copen = append(copen, cpuTime()-c)
			d.Close()
			debug.FreeOSMemory()
		}
		if k%2 == 0 {
			read()
			open()
		} else {
			open()
			read()
		}
		k++
	}
	b.ReportMetric(float64(st.Size())/(1<<20), "snapshot-MiB")
	if lst != nil {
		b.ReportMetric(float64(lst.Size())/(1<<20), "log-MiB")
	}
	b.ReportMetric(median(tread), "read-ns")
	b.ReportMetric(median(topen), "open-ns")
	b.ReportMetric(median(topen)/median(tread), "open/read")
	// CPU time (user and system, this process) moves less with a busy machine's load.
	b.ReportMetric(median(copen)/median(cread), "open/read-cpu")
	if resetPeak && peak > 0 {
		b.ReportMetric(math.Max(0, float64(peak-before))/indexBytes, "snapshot-rss/index")
	}
	b.ReportMetric(0, "ns/op")
}

// rss reads a memory figure of this process from /proc/self/status, in bytes (0 if
// unavailable).
func rss(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkDiskCPUCost: what the log's disk I/O costs the CPU on this machine, for
// reading the durable benchmarks. GOMAXPROCS goroutines run a fixed amount of work
// (copying and summing memory, about the in-memory upsert's kind of work), alone and
// while another goroutine writes 512 KiB groups with direct I/O and fsyncs them in a
// loop, as the log's group commit does. cpu-with-io/alone is the work's throughput
// with the writes over without: 1 where the I/O costs the CPU nothing (a physical
// disk), less where the machine spends CPU time on it (a virtual disk whose
// emulation shares the cores), which no log design can avoid.
func BenchmarkDiskCPUCost(b *testing.B) {
	for _, group := range []int{512 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("group=%dKiB", group>>10), func(b *testing.B) { diskCPUCost(b, group) })
	}
}

func diskCPUCost(b *testing.B, group int) {
	procs := runtime.NumCPU()
	src, dsts := make([]byte, 256<<10), make([][]byte, procs)
	for i := range dsts {
		dsts[i] = make([]byte, len(src))
	}
	work := func() time.Duration {
		t := time.Now()
		var wg sync.WaitGroup
		for p := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var sum uint64
				for range 2000 {
					copy(dsts[p], src)
					for _, x := range dsts[p][:32<<10] {
						sum += uint64(x)
					}
				}
				dsts[p][0] = byte(sum)
			}()
		}
		wg.Wait()
		return time.Since(t)
	}
	path := filepath.Join(b.TempDir(), "groups")
	var alone, withIO []time.Duration
	var written int64
	var busy time.Duration
	for b.Loop() {
		alone = append(alone, work())
		stop, done := make(chan struct{}), make(chan error, 1)
		t := time.Now()
		go func() {
			n, err := memvector.WriteGroups(path, group, stop)
			written += n
			done <- err
		}()
		withIO = append(withIO, work())
		close(stop)
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		busy += time.Since(t)
	}
	rate := float64(written) / busy.Seconds() / 1e6 // MB/s
	b.ReportMetric(median(alone)/median(withIO), "cpu-with-io/alone")
	b.ReportMetric(rate, "io-MB/s")
	// The core time the work lost, per MB the disk took meanwhile.
	lost := float64(procs) * (median(withIO) - median(alone)) / 1e6 // ms
	b.ReportMetric(lost/(rate*median(withIO)/1e9), "lost-cpu-ms/MB")
	b.ReportMetric(0, "ns/op")
}
