package memvector_test

import (
	"context"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/faultpoint"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
	"github.com/cloneiso/cloneiso/vectorstore/internal/engine"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

const tdim = 4

// op is one write of the tests' scripts.
type op func(ctx context.Context, d *memvector.Driver) error

func upsert(ns string, ids ...string) op {
	return func(ctx context.Context, d *memvector.Driver) error {
		vs := make([]driver.Vector, len(ids))
		for i, id := range ids {
			h := float32(len(id)*7 + i + 1)
			vs[i] = driver.Vector{ID: id, Values: []float32{h, 1, -h / 2, 0.25},
				Metadata: map[string]any{"tenant_id": "t", "clone_id": ns, "n": float64(i), "tags": []string{id, "x"}, "ok": i%2 == 0}}
		}
		return d.Upsert(ctx, ns, vs)
	}
}

func del(ns string, ids ...string) op {
	return func(ctx context.Context, d *memvector.Driver) error { return d.Delete(ctx, ns, ids) }
}

func delWhere(ns string, m map[string]any) op {
	return func(ctx context.Context, d *memvector.Driver) error {
		f, err := filter.Parse(m)
		if err != nil {
			return err
		}
		return d.DeleteByFilter(ctx, ns, f)
	}
}

func dropNS(ns string) op {
	return func(ctx context.Context, d *memvector.Driver) error { return d.DeleteNamespace(ctx, ns) }
}

var script = []op{
	upsert("a", "a1", "a2", "a3"),
	upsert("b", "b1", "b2"),
	del("a", "a2", "missing"),
	upsert("c", "c1", "c2", "c3", "c4"),
	delWhere("c", map[string]any{"ok": true}),
	upsert("a", "a1", "a4"),
	dropNS("b"),
	upsert("b", "b9"),
	upsert("a", "a5", "a6"),
	upsert("a", "a7"),
}

var namespaces = []string{"a", "b", "c"}

type rec struct {
	Values []float32
	Meta   map[string]any
}

// state reads every record of the test namespaces.
func state(t *testing.T, d *memvector.Driver) map[string]map[string]rec {
	t.Helper()
	out := map[string]map[string]rec{}
	for _, ns := range namespaces {
		p, err := d.List(t.Context(), ns, &driver.ListRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.IDs) == 0 {
			continue
		}
		vs, err := d.Fetch(t.Context(), ns, p.IDs)
		if err != nil {
			t.Fatal(err)
		}
		out[ns] = map[string]rec{}
		for _, v := range vs {
			for i := range v.Values { // values survive a normalize/denormalize round trip approximately
				v.Values[i] = float32(int(v.Values[i]*1000+0.5)) / 1000
			}
			out[ns][v.ID] = rec{v.Values, v.Metadata}
		}
	}
	return out
}

// expected applies the first n writes of script to an index without a path.
func expected(t *testing.T, n int) map[string]map[string]rec {
	t.Helper()
	d, err := memvector.NewDriver(tdim, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range script[:n] {
		if err := o(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	return state(t, d)
}

func open(t *testing.T, path string) *memvector.Driver {
	t.Helper()
	d, err := memvector.NewDriver(tdim, &memvector.Options{Path: path})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return d
}

func run(t *testing.T, d *memvector.Driver, ops []op) {
	t.Helper()
	for i, o := range ops {
		if err := o(t.Context(), d); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
}

func TestCrashRecoversAcknowledgedWrites(t *testing.T) {
	logModes(t, testCrashRecoversAcknowledgedWrites)
}

func testCrashRecoversAcknowledgedWrites(t *testing.T, _ bool) {
	for _, syncAt := range []int{-1, 0, 3, len(script)} {
		t.Run(fmt.Sprintf("snapshot after %d", syncAt), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "index")
			d := open(t, path)
			for i, o := range script {
				if i == syncAt {
					if err := d.Sync(); err != nil {
						t.Fatal(err)
					}
				}
				run(t, d, []op{o})
			}
			if syncAt == len(script) {
				if err := d.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			want := expected(t, len(script))
			if got := state(t, d); !reflect.DeepEqual(got, want) {
				t.Fatalf("before the crash:\n got %v\nwant %v", got, want)
			}
			d.Abandon()
			d = open(t, path)
			if got := state(t, d); !reflect.DeepEqual(got, want) {
				t.Fatalf("after the crash:\n got %v\nwant %v", got, want)
			}
			// And again after a clean close.
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			d = open(t, path)
			defer d.Close()
			if got := state(t, d); !reflect.DeepEqual(got, want) {
				t.Fatalf("after close and reopen:\n got %v\nwant %v", got, want)
			}
		})
	}
}

// logModes runs f with the log written with direct I/O (where the test directory's
// file system supports it) and through the page cache.
func logModes(t *testing.T, f func(t *testing.T, direct bool)) {
	t.Run("direct", func(t *testing.T) { f(t, true) })
	t.Run("buffered", func(t *testing.T) {
		memvector.BufferedLog(t)
		f(t, false)
	})
}

// requireLogMode fails the test unless d writes its log as the mode wants. The direct
// mode is skipped only where a direct-I/O write of the test's own fails (an older
// tmpfs, another system): anywhere else, a log that fell back to the page cache would
// leave the direct path untested.
func requireLogMode(t *testing.T, d *memvector.Driver, dir string, direct bool) {
	t.Helper()
	if got := d.DirectLog(); got != direct {
		if direct && !directIOWorks(dir) {
			t.Skipf("%s takes no direct I/O", dir)
		}
		t.Fatalf("log written with direct I/O: %v, want %v", got, direct)
	}
}

// TestTornLastRecord cuts the log at every byte offset of its last write, and damages
// every byte of it, as a crash or power loss during its write would: recovery must
// yield exactly the writes acknowledged before it (and the last one if its record is
// whole: only padding follows it), and accept new writes after.
func TestTornLastRecord(t *testing.T) { logModes(t, testTornLastRecord) }

func testTornLastRecord(t *testing.T, direct bool) {
	memvector.SkipSync(t)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "index")
	d := open(t, src)
	requireLogMode(t, d, tmp, direct)
	run(t, d, script[:len(script)-1])
	log := memvector.LogName(src, 1)
	st, err := os.Stat(log)
	if err != nil {
		t.Fatal(err)
	}
	before := st.Size()
	run(t, d, script[len(script)-1:])
	d.Abandon()
	full, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(full)) <= before+8 {
		t.Fatalf("last record is %d bytes", int64(len(full))-before)
	}
	// Where the last record ends: with direct I/O, a padding record follows it up to
	// the next block boundary, and every write starts on one.
	recEnd := before + 8 + int64(binary.LittleEndian.Uint32(full[before:]))
	if direct && (before%4096 != 0 || len(full)%4096 != 0 || recEnd == int64(len(full))) {
		t.Fatalf("direct log: last write from %d to %d (record to %d), want whole 4096-byte blocks ended by padding", before, len(full), recEnd)
	}
	if !direct && recEnd != int64(len(full)) {
		t.Fatalf("buffered log: last record ends at %d of %d", recEnd, len(full))
	}
	prefix, all := expected(t, len(script)-1), expected(t, len(script))
	upTo := func(end int64) map[string]map[string]rec {
		if end >= recEnd {
			return all
		}
		return prefix
	}

	dir := t.TempDir()
	check := func(t *testing.T, data []byte, want map[string]map[string]rec) {
		t.Helper()
		path := filepath.Join(dir, "index")
		logs, _ := filepath.Glob(path + ".wal.*")
		for _, l := range logs {
			os.Remove(l)
		}
		if err := os.WriteFile(memvector.LogName(path, 1), data, 0o600); err != nil {
			t.Fatal(err)
		}
		d := open(t, path)
		if got := state(t, d); !reflect.DeepEqual(got, want) {
			d.Close()
			t.Fatalf("recovered:\n got %v\nwant %v", got, want)
		}
		// New writes follow the intact records and survive the next crash.
		requireWriteSurvives(t, d, path, "recovery")
	}
	// Every byte offset of the record, and of its padding's frame; then the rest of
	// the padding at a stride (its bytes are alike), and its end.
	var offsets []int64
	for i := before; i <= int64(len(full)); i++ {
		if i < recEnd+16 || i > int64(len(full))-4 || (i-recEnd)%97 == 0 {
			offsets = append(offsets, i)
		}
	}
	for _, cut := range offsets {
		check(t, full[:cut], upTo(cut))
	}
	for _, i := range offsets[:len(offsets)-1] {
		damaged := slices.Clone(full)
		damaged[i] ^= 0x5a
		check(t, damaged, upTo(i))
	}
	// A zero-filled tail (a file system that extended the file but had not written the
	// data when the machine stopped) ends the log where the zeros start, whether they
	// replace the last record from any byte on or follow the whole log.
	for _, cut := range offsets {
		zeroed := append(slices.Clone(full[:cut]), make([]byte, int64(len(full))-cut+4096)...)
		// The record may end in zeros of its own (a metadata number 0, say): zeroing
		// them leaves it whole.
		end := cut
		for end < recEnd && full[end] == 0 {
			end++
		}
		check(t, zeroed, upTo(end))
	}
	// A torn header of a fresh log is an empty log, and so is a zero-filled one (a new
	// log's header is synced with its first record), and so is one whose header
	// block's padding is torn.
	for cut := 0; cut < 16; cut++ {
		check(t, full[:cut], map[string]map[string]rec{})
	}
	if direct {
		for _, cut := range []int{16, 17, 24, 2048, 4095, 4096} {
			check(t, full[:cut], map[string]map[string]rec{})
		}
	}
	check(t, make([]byte, 16), map[string]map[string]rec{})
	check(t, make([]byte, 4096), map[string]map[string]rec{})
}

// TestDamageBeforeTheEnd refuses to open an index whose older log is damaged: that
// cannot be a torn write, and serving the rest would silently drop acknowledged data.
func TestDamageBeforeTheEnd(t *testing.T) { logModes(t, testDamageBeforeTheEnd) }

func testDamageBeforeTheEnd(t *testing.T, _ bool) {
	path := filepath.Join(t.TempDir(), "index")
	d := open(t, path)
	run(t, d, script[:3])
	d.Abandon()
	// A second log generation makes the first one "not the last".
	data, err := os.ReadFile(memvector.LogName(path, 1))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 1
	if err := os.WriteFile(memvector.LogName(path, 1), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(memvector.LogName(path, 2), data[:16], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := memvector.NewDriver(tdim, &memvector.Options{Path: path}); err == nil {
		t.Fatal("opened an index whose older log is damaged")
	}
}

func TestLegacyGobSnapshot(t *testing.T) { logModes(t, testLegacyGobSnapshot) }

func testLegacyGobSnapshot(t *testing.T, _ bool) {
	path := filepath.Join(t.TempDir(), "vectors.gob")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	snap := engine.Snapshot{Dimension: tdim, Namespaces: map[string][]engine.Record{
		"a": {{ID: "x", Values: []float32{1, 2, 3, 4}, Metadata: map[string]any{"tenant_id": "t", "tags": []string{"p"}, "n": 1.0}}},
	}}
	if err := gob.NewEncoder(f).Encode(&snap); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := open(t, path)
	vs, err := d.Fetch(t.Context(), "a", []string{"x"})
	if err != nil || len(vs) != 1 || !reflect.DeepEqual(vs[0].Metadata["tags"], []string{"p"}) {
		t.Fatalf("legacy record = %v, %v", vs, err)
	}
	d.Close()
	head := make([]byte, 8)
	f, _ = os.Open(path)
	f.Read(head)
	f.Close()
	if string(head) != "CLVSNAP1" {
		t.Fatalf("the legacy file was not rewritten: starts with %q", head)
	}
	d = open(t, path)
	defer d.Close()
	if vs, err := d.Fetch(t.Context(), "a", []string{"x"}); err != nil || len(vs) != 1 {
		t.Fatalf("after migration: %v, %v", vs, err)
	}
}

// TestConcurrentWritersWithCompaction runs writers against background compactions
// triggered by a tiny log limit, then crashes: every acknowledged write is there.
func TestConcurrentWritersWithCompaction(t *testing.T) {
	logModes(t, testConcurrentWritersWithCompaction)
}

func testConcurrentWritersWithCompaction(t *testing.T, _ bool) {
	path := filepath.Join(t.TempDir(), "index")
	d, err := memvector.NewDriver(tdim, &memvector.Options{Path: path, CompactLogBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 40
	var wg sync.WaitGroup
	acked := make([][]string, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ns := []string{"a", "b", "c"}[w%3]
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range each {
				id := "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				if err := upsert(ns, id)(t.Context(), d); err != nil {
					t.Error(err)
					return
				}
				acked[w] = append(acked[w], id)
				if r.IntN(4) == 0 && i > 0 { // delete an earlier one
					victim := acked[w][r.IntN(len(acked[w]))]
					if err := del(ns, victim)(t.Context(), d); err != nil {
						t.Error(err)
						return
					}
					acked[w] = slices.DeleteFunc(acked[w], func(s string) bool { return s == victim })
				}
			}
		}()
	}
	wg.Wait()
	if err := d.Sync(); err != nil { // one compaction at least, whatever the scheduling
		t.Fatal(err)
	}
	run(t, d, []op{upsert("a", "last")})
	want := state(t, d)
	d.Abandon()
	d = open(t, path)
	defer d.Close()
	got := state(t, d)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the crash: %d namespaces, want %d", len(got), len(want))
	}
	for w := range writers {
		ns := []string{"a", "b", "c"}[w%3]
		for _, id := range acked[w] {
			if _, ok := got[ns][id]; !ok {
				t.Fatalf("acknowledged %s/%s lost", ns, id)
			}
		}
	}
	if n := len(slices.Collect(maps.Keys(got["a"]))); n == 0 {
		t.Fatal("no records")
	}
}

// TestBackgroundCompaction: a log past Options.CompactLogBytes and past the last
// snapshot's size is compacted in the background (a new snapshot; the logs before it
// removed), and one past the limit but not yet past the snapshot's size is not.
func TestBackgroundCompaction(t *testing.T) { logModes(t, testBackgroundCompaction) }

func testBackgroundCompaction(t *testing.T, _ bool) {
	const limit = 32 << 10
	path := filepath.Join(t.TempDir(), "index")
	d, err := memvector.NewDriver(tdim, &memvector.Options{Path: path, CompactLogBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	logSize := func(gen uint64) int64 { // -1 if the log is gone
		t.Helper()
		st, err := os.Stat(memvector.LogName(path, gen))
		if errors.Is(err, os.ErrNotExist) {
			return -1
		}
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	ids := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + strconv.Itoa(i)
		}
		return out
	}
	if logSize(1) < 0 {
		t.Fatal("a new index has no first log")
	}

	// One write takes the first log past the limit, with no snapshot yet.
	run(t, d, []op{upsert("a", ids("big-", 2000)...)})
	d.WaitCompaction()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no snapshot after the log passed the limit: %v", err)
	}
	snap := st.Size()
	if logSize(1) >= 0 || logSize(2) < 0 {
		t.Fatalf("after the compaction: log 1 %d bytes, log 2 %d (want gone, present)", logSize(1), logSize(2))
	}
	if snap < 4*limit {
		t.Fatalf("snapshot of %d bytes: the test needs one well above the limit", snap)
	}

	// Small writes take the second log past the limit but not past the snapshot's size.
	small := 0
	for ; logSize(2) >= 0 && logSize(2) < limit; small++ {
		run(t, d, []op{upsert("b", ids("s"+strconv.Itoa(small)+"-", 20)...)})
		d.WaitCompaction()
	}
	if n := logSize(2); n < 0 || n >= snap || logSize(3) >= 0 {
		t.Fatalf("log 2 is %d bytes after %d small writes, log 3 %d; want log 2 (not compacted) at least %d and below the snapshot's %d, no log 3",
			n, small, logSize(3), limit, snap)
	}

	// More take it past the snapshot's size: compacted.
	for ; logSize(2) >= 0; small++ {
		if small > 10000 {
			t.Fatalf("log 2 at %d bytes, past the snapshot's %d, was never compacted", logSize(2), snap)
		}
		run(t, d, []op{upsert("b", ids("s"+strconv.Itoa(small)+"-", 20)...)})
		d.WaitCompaction()
	}
	if logSize(3) < 0 {
		t.Fatal("no third log after the second compaction")
	}
}

// fullState returns every record of the namespaces nss, listing them page by page.
func fullState(t *testing.T, d *memvector.Driver, nss []string) map[string]map[string]driver.Vector {
	t.Helper()
	out := map[string]map[string]driver.Vector{}
	for _, ns := range nss {
		req := &driver.ListRequest{Limit: 100}
		for {
			p, err := d.List(t.Context(), ns, req)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.IDs) > 0 {
				vs, err := d.Fetch(t.Context(), ns, p.IDs)
				if err != nil {
					t.Fatal(err)
				}
				if out[ns] == nil {
					out[ns] = map[string]driver.Vector{}
				}
				for _, v := range vs {
					out[ns][v.ID] = v
				}
			}
			if p.NextPageToken == "" {
				break
			}
			req.PageToken = p.NextPageToken
		}
	}
	return out
}

// TestReopenManyNamespaces loads a snapshot of many namespaces (one of several storage
// blocks) and replays a log that writes to all of them, in parallel on open: each
// namespace ends as it was, its log records applied after its snapshot and in order.
func TestReopenManyNamespaces(t *testing.T) { logModes(t, testReopenManyNamespaces) }

func testReopenManyNamespaces(t *testing.T, _ bool) {
	path := filepath.Join(t.TempDir(), "index")
	d := open(t, path)
	var nss []string
	for i := range 12 {
		nss = append(nss, "ns"+strconv.Itoa(i))
	}
	ids := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + strconv.Itoa(i)
		}
		return out
	}
	big := ids("v", 2*engine.BlockVectors+5)
	for i := 0; i < len(big); i += 500 {
		run(t, d, []op{upsert("ns0", big[i:min(i+500, len(big))]...)})
	}
	for _, ns := range nss[1:] {
		run(t, d, []op{upsert(ns, ids(ns+"-", 30)...)})
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	// The log: every namespace changes several times, in an order where each change
	// depends on the one before it.
	for round := range 3 {
		for i, ns := range nss[1:] { // ns0 keeps its blocks; it changes below
			switch (i + round) % 4 {
			case 0:
				run(t, d, []op{upsert(ns, "r"+strconv.Itoa(round), ns+"-1")})
			case 1:
				run(t, d, []op{del(ns, ns+"-2", "r"+strconv.Itoa(round-1))})
			case 2:
				run(t, d, []op{dropNS(ns), upsert(ns, "reborn"+strconv.Itoa(round))})
			case 3:
				run(t, d, []op{delWhere(ns, map[string]any{"ok": true})})
			}
		}
	}
	run(t, d, []op{upsert("ns0", big[:3]...), del("ns0", big[len(big)-1])})
	want := fullState(t, d, nss)
	d.Abandon()
	d = open(t, path)
	defer d.Close()
	got := fullState(t, d, nss)
	if len(got) != len(want) {
		t.Fatalf("after reopening: %d namespaces, want %d", len(got), len(want))
	}
	for ns, w := range want {
		g := got[ns]
		if len(g) != len(w) {
			t.Fatalf("%s: %d records after reopening, want %d", ns, len(g), len(w))
		}
		for id, wv := range w {
			gv, ok := g[id]
			if !ok {
				t.Fatalf("%s/%s lost", ns, id)
			}
			if !reflect.DeepEqual(gv.Metadata, wv.Metadata) || !slices.Equal(gv.Values, wv.Values) {
				t.Fatalf("%s/%s = %v %v after reopening, want %v %v", ns, id, gv.Values, gv.Metadata, wv.Values, wv.Metadata)
			}
		}
	}
	if len(got["ns0"]) < 2*engine.BlockVectors {
		t.Fatalf("ns0 has %d records, want more than two blocks", len(got["ns0"]))
	}
}

// TestLogWriteFailure: once the log cannot be written, that write and every later one
// fail with clone.ErrUnavailable and change nothing; reopening recovers every
// acknowledged write. With direct I/O the log is written by the group commit, after
// the write was applied: like a failed sync, the failed write may stay visible until
// the index is reopened; the writes after it change nothing.
func TestLogWriteFailure(t *testing.T) { logModes(t, testLogWriteFailure) }

func testLogWriteFailure(t *testing.T, direct bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index")
	d := open(t, path)
	requireLogMode(t, d, dir, direct)
	run(t, d, []op{upsert("a", "a1", "a2"), del("a", "a1")})
	want := state(t, d)
	d.BreakLog()
	if err := upsert("a", "a3")(t.Context(), d); !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("first write after the log failed: %v, want ErrUnavailable", err)
	}
	failed := state(t, d)
	if !direct && !reflect.DeepEqual(failed, want) {
		t.Fatalf("the failed write changed the index: %v, want %v", failed, want)
	}
	for i, o := range []op{upsert("a", "a4"), del("a", "a2"), dropNS("a")} {
		if err := o(t.Context(), d); !errors.Is(err, clone.ErrUnavailable) {
			t.Fatalf("write %d after the log failed: %v, want ErrUnavailable", i, err)
		}
	}
	if got := state(t, d); !reflect.DeepEqual(got, failed) {
		t.Fatalf("failed writes changed the index: %v, want %v", got, failed)
	}
	d.Abandon()
	d = open(t, path)
	defer d.Close()
	if got := state(t, d); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening: %v, want %v", got, want)
	}
}

// TestDamagedSnapshot refuses to open an index whose snapshot has any byte changed:
// in its header, a namespace's entries, or its values, whether they are checksummed
// in large reads (blocks of dimension 32 take 128 KiB) or small ones; and a snapshot
// cut short. Serving a damaged snapshot would silently change acknowledged data.
func TestDamagedSnapshot(t *testing.T) { logModes(t, testDamagedSnapshot) }

func testDamagedSnapshot(t *testing.T, _ bool) {
	memvector.SkipSync(t)
	const dim = 32
	path := filepath.Join(t.TempDir(), "index")
	d, err := memvector.NewDriver(dim, &memvector.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	vs := randVectors(7, engine.BlockVectors+100, dim)
	for ns, n := range map[string]int{"big": len(vs), "small": 3} {
		batch := make([]driver.Vector, n)
		for i := range batch {
			batch[i] = driver.Vector{ID: ns + strconv.Itoa(i), Values: vs[i], Metadata: map[string]any{"i": float64(i)}}
		}
		if err := d.Upsert(t.Context(), ns, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	openWith := func(data []byte) error {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := memvector.NewDriver(dim, &memvector.Options{Path: path})
		if err == nil {
			d.Close()
		}
		return err
	}
	if err := openWith(good); err != nil {
		t.Fatalf("intact snapshot: %v", err)
	}
	offsets := []int{0, 9, 20, 31, 32, 40, len(good) - 5, len(good) - 1}
	for i := 33; i < len(good)-5; i += 4099 {
		offsets = append(offsets, i)
	}
	for _, i := range offsets {
		damaged := slices.Clone(good)
		damaged[i] ^= 0x10
		if err := openWith(damaged); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("byte %d of %d changed: open returned %v, want ErrInvalidInput", i, len(good), err)
		}
	}
	for _, n := range []int{len(good) - 1, len(good) - 4, len(good) / 2, 33} {
		if err := openWith(good[:n]); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("cut to %d of %d bytes: open returned %v, want ErrInvalidInput", n, len(good), err)
		}
	}
}

// TestNewLogSyncedWithFirstRecord: a compaction starts a new log without syncing it
// (writers are held off meanwhile); the first write acknowledged in it must have
// synced the log's directory entry as well as the record, and later writes need not.
func TestNewLogSyncedWithFirstRecord(t *testing.T) { logModes(t, testNewLogSyncedWithFirstRecord) }

func testNewLogSyncedWithFirstRecord(t *testing.T, _ bool) {
	path := filepath.Join(t.TempDir(), "index")
	d := open(t, path)
	defer d.Close()
	run(t, d, script[:2])
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var points []string
	faultpoint.Set(func(name string) {
		mu.Lock()
		points = append(points, name)
		mu.Unlock()
	})
	t.Cleanup(func() { faultpoint.Set(nil) })
	hits := func() []string {
		mu.Lock()
		defer mu.Unlock()
		out := slices.Clone(points)
		points = points[:0]
		return out
	}
	run(t, d, []op{upsert("a", "first")})
	got := hits()
	if i := slices.Index(got, "memvector.log.dirsynced"); i < 0 || i > slices.Index(got, "memvector.log.synced") {
		t.Fatalf("first write to a new log acknowledged after %v: want the directory synced before the record is", got)
	}
	run(t, d, []op{upsert("a", "second")})
	if got := hits(); slices.Contains(got, "memvector.log.dirsynced") || !slices.Contains(got, "memvector.log.synced") {
		t.Fatalf("second write to the log: %v, want the record synced and not the directory", got)
	}
}

// TestLogOfEarlierRelease reads a log whose header says CLVLOG01 (written through the
// page cache, without padding records, by earlier releases) and continues after it.
func TestLogOfEarlierRelease(t *testing.T) {
	memvector.BufferedLog(t)
	path := filepath.Join(t.TempDir(), "index")
	d := open(t, path)
	run(t, d, script)
	d.Abandon()
	data, err := os.ReadFile(memvector.LogName(path, 1))
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:8]) != "CLVLOG02" {
		t.Fatalf("log starts with %q", data[:8])
	}
	copy(data, "CLVLOG01")
	binary.LittleEndian.PutUint32(data[12:], crc32.Checksum(data[:12], crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(memvector.LogName(path, 1), data, 0o600); err != nil {
		t.Fatal(err)
	}
	memvector.DirectLogs()
	d = open(t, path)
	want := expected(t, len(script))
	if got := state(t, d); !reflect.DeepEqual(got, want) {
		t.Fatalf("read the earlier release's log:\n got %v\nwant %v", got, want)
	}
	requireWriteSurvives(t, d, path, "the earlier release's log")
}

// requireWriteSurvives writes to d, opened at path after what, crashes it and fails
// the test unless the reopened index holds the write. It closes the index.
func requireWriteSurvives(t *testing.T, d *memvector.Driver, path, what string) {
	t.Helper()
	run(t, d, []op{upsert("c", "after")})
	d.Abandon()
	d = open(t, path)
	defer d.Close()
	if got := state(t, d); got["c"]["after"].Values == nil {
		t.Fatalf("a write after %s was lost: %v", what, got)
	}
}

// TestReopenStartsOneLog: each open starts a new log after one that holds records (its
// end need not be block-aligned), and starts an empty last log again instead of
// adding another, so that opening and closing an idle index leaves no trail of logs.
func TestReopenStartsOneLog(t *testing.T) { logModes(t, testReopenStartsOneLog) }

func testReopenStartsOneLog(t *testing.T, _ bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "index")
	logs := func() []string {
		t.Helper()
		l, err := filepath.Glob(path + ".wal.*")
		if err != nil {
			t.Fatal(err)
		}
		for i := range l {
			l[i] = filepath.Base(l[i])
		}
		return l
	}
	d := open(t, path)
	run(t, d, script[:2])
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		d = open(t, path)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := logs(), []string{"index.wal.0000000000000001", "index.wal.0000000000000002"}; !slices.Equal(got, want) {
		t.Fatalf("logs after reopening an idle index: %v, want %v", got, want)
	}
	d = open(t, path)
	defer d.Close()
	if got, want := state(t, d), expected(t, 2); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening: %v, want %v", got, want)
	}
}

// TestGroupLargerThanItsBuffer writes records larger than the group buffer starts
// with (1 MiB), from several writers at once, and recovers them after a crash.
func TestGroupLargerThanItsBuffer(t *testing.T) { logModes(t, testGroupLargerThanItsBuffer) }

func testGroupLargerThanItsBuffer(t *testing.T, direct bool) {
	const dim, n = 384, 1000 // 1.5 MiB of values per record
	dir := t.TempDir()
	path := filepath.Join(dir, "index")
	d, err := memvector.NewDriver(dim, &memvector.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	requireLogMode(t, d, dir, direct)
	vs := randVectors(3, n, dim)
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := make([]driver.Vector, n)
			for i := range batch {
				batch[i] = driver.Vector{ID: strconv.Itoa(i), Values: vs[(i+w)%n]}
			}
			errc <- d.Upsert(t.Context(), "ns"+strconv.Itoa(w), batch)
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	d.Abandon()
	d, err = memvector.NewDriver(dim, &memvector.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for w := range 4 {
		got, err := d.Fetch(t.Context(), "ns"+strconv.Itoa(w), []string{"0", strconv.Itoa(n - 1)})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("ns%d after the crash: %d of 2 vectors", w, len(got))
		}
		for _, v := range got {
			i, _ := strconv.Atoi(v.ID)
			if !sameDirection(v.Values, vs[(i+w)%n]) {
				t.Fatalf("ns%d vector %s changed", w, v.ID)
			}
		}
	}
}

// sameDirection reports whether a and b point the same way (the index stores vectors
// normalized).
func sameDirection(a, b []float32) bool {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab/math.Sqrt(aa*bb) > 0.99999
}
