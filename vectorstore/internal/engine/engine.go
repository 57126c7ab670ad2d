// Package engine is the exact-search vector engine behind the embedded driver
// (vectorstore/memvector) and the Pinecone emulator (vectorstore/pineconevector/pineconetest).
//
// Records live in namespaces. A namespace stores its vectors contiguously in fixed-size
// blocks of float32 (so growth never over-allocates by more than one block), with IDs,
// metadata and, for the cosine metric, each vector's original norm in parallel slices.
// With the cosine metric vectors are L2-normalized once on insert and scored with a dot
// product. A query evaluates the filter before scoring, scans the blocks in parallel and
// keeps the best k in one heap per worker.
//
// Filters on "tracked" metadata keys (the clone scope keys) are resolved once per
// namespace from per-value counts, so the scope condition that every scoped query carries
// costs nothing per record when, as expected, every record of the namespace carries the
// same scope.
package engine

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

// Metric is a similarity metric.
type Metric int

// Metrics. Scores follow Pinecone: cosine similarity and dot product (higher is more
// similar), squared Euclidean distance (lower is more similar).
const (
	Cosine Metric = iota
	DotProduct
	Euclidean
)

// String returns Pinecone's name of the metric.
func (m Metric) String() string {
	switch m {
	case DotProduct:
		return "dotproduct"
	case Euclidean:
		return "euclidean"
	}
	return "cosine"
}

// blockVectors is the number of vectors per storage block.
const blockVectors = 1024

// Record is a stored vector.
type Record struct {
	ID       string
	Values   []float32
	Metadata map[string]any
}

// Hit is one query result.
type Hit struct {
	ID       string
	Score    float32
	Values   []float32 // only if asked for
	Metadata map[string]any
}

// Options configure an Engine.
type Options struct {
	// Metric defaults to Cosine.
	Metric Metric
	// TrackedKeys are metadata keys whose string values are counted per namespace, so
	// that $eq / $ne / $in / $nin / $exists conditions on them are resolved once per
	// namespace when every record agrees.
	TrackedKeys []string
	// Workers is the number of goroutines a large query scans with; 0 means GOMAXPROCS.
	Workers int
}

// Engine is a set of namespaces. It is safe for concurrent use.
type Engine struct {
	dim     int
	metric  Metric
	tracked []string
	workers int

	mu     sync.RWMutex
	spaces map[string]*space
}

// New returns an empty engine for vectors of dimension dim.
func New(dim int, opts *Options) *Engine {
	if opts == nil {
		opts = &Options{}
	}
	return &Engine{
		dim:     dim,
		metric:  opts.Metric,
		tracked: slices.Clone(opts.TrackedKeys),
		workers: opts.Workers,
		spaces:  make(map[string]*space),
	}
}

// Dimension returns the engine's dimension.
func (e *Engine) Dimension() int { return e.dim }

// Metric returns the engine's metric.
func (e *Engine) Metric() Metric { return e.metric }

type space struct {
	mu     sync.RWMutex
	dim    int
	blocks [][]float32 // each blockVectors*dim long
	norms  []float32   // original L2 norm per slot (cosine only)
	ids    []string
	meta   []map[string]any // metadata without the tracked keys' string values; nil if empty
	slot   map[string]int
	// Tracked keys' string values are stored once per namespace, not once per record:
	// for tracked key j, tv[j][slot] indexes tnames[j] (-1: absent, or not a string and
	// kept in meta), and tcount[j][value index] counts the records carrying that value.
	tv     [][]int32
	tnames [][]string
	tboxed [][]any // tnames as interface values, so returning them does not allocate
	tdict  []map[string]int32
	tcount [][]int
}

// setTracked records str as record i's value of tracked key j, interning it in the
// namespace's dictionary for that key. s.mu is held.
func (s *space) setTracked(j, i int, str string) {
	idx, ok := s.tdict[j][str]
	if !ok {
		idx = int32(len(s.tnames[j]))
		s.tnames[j] = append(s.tnames[j], str)
		s.tboxed[j] = append(s.tboxed[j], str)
		s.tcount[j] = append(s.tcount[j], 0)
		s.tdict[j][str] = idx
	}
	s.tv[j][i] = idx
	s.tcount[j][idx]++
}

func (s *space) vec(i int) []float32 {
	b := s.blocks[i/blockVectors]
	off := (i % blockVectors) * s.dim
	return b[off : off+s.dim : off+s.dim]
}

func (e *Engine) get(ns string) *space {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.spaces[ns]
}

// lockForWrite returns ns's space, created if needed, with its lock held. A space that
// was dropped (emptied or deleted) between the lookup and the lock is not used: a write
// into it would be lost.
func (e *Engine) lockForWrite(ns string) *space {
	for {
		s := e.getOrCreate(ns)
		s.mu.Lock()
		e.mu.RLock()
		live := e.spaces[ns] == s
		e.mu.RUnlock()
		if live {
			return s
		}
		s.mu.Unlock()
	}
}

func (e *Engine) getOrCreate(ns string) *space {
	if s := e.get(ns); s != nil {
		return s
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s := e.spaces[ns]; s != nil {
		return s
	}
	s := &space{dim: e.dim, slot: make(map[string]int)}
	nt := len(e.tracked)
	s.tv, s.tnames, s.tboxed = make([][]int32, nt), make([][]string, nt), make([][]any, nt)
	s.tdict, s.tcount = make([]map[string]int32, nt), make([][]int, nt)
	for j := range nt {
		s.tdict[j] = make(map[string]int32)
	}
	e.spaces[ns] = s
	return s
}

// Upsert inserts or replaces records in ns. Values are copied. The caller has validated
// dimensions and finiteness.
func (e *Engine) Upsert(ns string, recs []Record) { e.upsert(ns, recs, false) }

// UpsertAdopt is Upsert, except that the records' metadata maps pass to the engine,
// which keeps them (without the tracked keys' string values) instead of copying them.
// The values in them are still copied where they are mutable ([]string).
func (e *Engine) UpsertAdopt(ns string, recs []Record) { e.upsert(ns, recs, true) }

func (e *Engine) upsert(ns string, recs []Record, adopt bool) {
	if len(recs) == 0 {
		return // creating ns would leave an empty namespace behind
	}
	s := e.lockForWrite(ns)
	defer s.mu.Unlock()
	for _, r := range recs {
		i, ok := s.slot[r.ID]
		if ok {
			e.untrack(s, i)
		} else {
			i = len(s.ids)
			if i%blockVectors == 0 && i/blockVectors == len(s.blocks) {
				s.blocks = append(s.blocks, make([]float32, blockVectors*e.dim))
			}
			s.ids = append(s.ids, r.ID)
			s.meta = append(s.meta, nil)
			for j := range s.tv {
				s.tv[j] = append(s.tv[j], -1)
			}
			if e.metric == Cosine {
				s.norms = append(s.norms, 0)
			}
			s.slot[r.ID] = i
		}
		e.setValues(s, i, r.Values)
		if adopt {
			for k, v := range r.Metadata {
				if l, ok := v.([]string); ok {
					r.Metadata[k] = slices.Clone(l)
				}
			}
			s.meta[i] = e.adopt(s, i, r.Metadata)
		} else {
			s.meta[i] = e.track(s, i, r.Metadata)
		}
	}
}

// track stores the tracked keys' string values of md for slot i and returns a copy of
// the rest of md (nil if nothing is left). s.mu is held.
func (e *Engine) track(s *space, i int, md map[string]any) map[string]any {
	rest := 0
	for k, v := range md {
		j := slices.Index(e.tracked, k)
		str, isString := v.(string)
		if j < 0 || !isString {
			rest++
			continue
		}
		s.setTracked(j, i, str)
	}
	if rest == 0 {
		return nil
	}
	out := make(map[string]any, rest)
	for k, v := range md {
		if _, isString := v.(string); isString && slices.Contains(e.tracked, k) {
			continue
		}
		if l, ok := v.([]string); ok {
			v = slices.Clone(l)
		}
		out[k] = v
	}
	return out
}

// untrack forgets slot i's tracked values. s.mu is held.
func (e *Engine) untrack(s *space, i int) {
	for j := range s.tv {
		if idx := s.tv[j][i]; idx >= 0 {
			s.tcount[j][idx]--
			s.tv[j][i] = -1
		}
	}
}

// metadata returns a copy of slot i's full metadata. s.mu is held.
func (e *Engine) metadata(s *space, i int) map[string]any {
	out := cloneMeta(s.meta[i])
	for j, k := range e.tracked {
		if idx := s.tv[j][i]; idx >= 0 {
			if out == nil {
				out = make(map[string]any, len(e.tracked))
			}
			out[k] = s.tboxed[j][idx]
		}
	}
	return out
}

// getter reads slot i's metadata for filter evaluation without building a map.
type getter struct {
	e *Engine
	s *space
	i int
}

func (g *getter) Get(k string) (any, bool) {
	for j, key := range g.e.tracked {
		if key == k {
			if idx := g.s.tv[j][g.i]; idx >= 0 {
				return g.s.tboxed[j][idx], true
			}
			break
		}
	}
	v, ok := g.s.meta[g.i][k]
	return v, ok
}

// removeSlot deletes slot i by moving the last record into it. s.mu is held.
func (e *Engine) removeSlot(s *space, i int) {
	e.untrack(s, i)
	delete(s.slot, s.ids[i])
	last := len(s.ids) - 1
	if i != last {
		copy(s.vec(i), s.vec(last))
		s.ids[i] = s.ids[last]
		s.meta[i] = s.meta[last]
		for j := range s.tv {
			s.tv[j][i] = s.tv[j][last]
		}
		if e.metric == Cosine {
			s.norms[i] = s.norms[last]
		}
		s.slot[s.ids[i]] = i
	}
	clear(s.vec(last))
	s.ids[last] = ""
	s.meta[last] = nil
	s.ids = s.ids[:last]
	s.meta = s.meta[:last]
	for j := range s.tv {
		s.tv[j] = s.tv[j][:last]
	}
	if e.metric == Cosine {
		s.norms = s.norms[:last]
	}
	// Release a block that became empty.
	if nb := (last + blockVectors - 1) / blockVectors; nb < len(s.blocks) {
		s.blocks[len(s.blocks)-1] = nil
		s.blocks = s.blocks[:nb]
	}
}

// values returns a copy of slot i's vector in its original scale.
func (e *Engine) values(s *space, i int) []float32 {
	out := slices.Clone(s.vec(i))
	if e.metric == Cosine {
		n := s.norms[i]
		for j := range out {
			out[j] *= n
		}
	}
	return out
}

// Fetch returns the records of ns with the given IDs; missing IDs are omitted.
func (e *Engine) Fetch(ns string, ids []string) []Record {
	s := e.get(ns)
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Record
	for _, id := range ids {
		if i, ok := s.slot[id]; ok {
			out = append(out, Record{ID: id, Values: e.values(s, i), Metadata: e.metadata(s, i)})
		}
	}
	return out
}

// Delete removes the given IDs from ns and returns how many existed.
func (e *Engine) Delete(ns string, ids []string) int {
	s := e.get(ns)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		if i, ok := s.slot[id]; ok {
			e.removeSlot(s, i)
			n++
		}
	}
	e.dropIfEmpty(ns, s)
	return n
}

// dropIfEmpty removes an empty namespace (Pinecone drops namespaces with no records).
// s.mu is held.
func (e *Engine) dropIfEmpty(ns string, s *space) {
	if len(s.ids) > 0 {
		return
	}
	e.mu.Lock()
	if e.spaces[ns] == s {
		delete(e.spaces, ns)
	}
	e.mu.Unlock()
}

// DeleteByFilter removes the records of ns that match f and returns how many.
func (e *Engine) DeleteByFilter(ns string, f *filter.Filter) int {
	s := e.get(ns)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	residual, known, outcome := e.resolve(s, f)
	n := 0
	g := &getter{e: e, s: s}
	for i := len(s.ids) - 1; i >= 0; i-- {
		if known && !outcome {
			break
		}
		g.i = i
		if known || residual.MatchFunc(g) {
			e.removeSlot(s, i)
			n++
		}
	}
	e.dropIfEmpty(ns, s)
	return n
}

// DeleteNamespace removes ns and returns whether it existed.
func (e *Engine) DeleteNamespace(ns string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.spaces[ns]
	delete(e.spaces, ns)
	return ok
}

// Count returns the number of records in ns.
func (e *Engine) Count(ns string) int {
	s := e.get(ns)
	if s == nil {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ids)
}

// Namespaces returns the record count of every non-empty namespace.
func (e *Engine) Namespaces() map[string]int {
	e.mu.RLock()
	spaces := make(map[string]*space, len(e.spaces))
	for k, v := range e.spaces {
		spaces[k] = v
	}
	e.mu.RUnlock()
	out := make(map[string]int, len(spaces))
	for k, s := range spaces {
		s.mu.RLock()
		if n := len(s.ids); n > 0 {
			out[k] = n
		}
		s.mu.RUnlock()
	}
	return out
}

// List returns up to limit IDs of ns that start with prefix and sort after after, in
// ascending order, and whether more follow.
func (e *Engine) List(ns, prefix, after string, limit int) (ids []string, more bool) {
	s := e.get(ns)
	if s == nil {
		return nil, false
	}
	s.mu.RLock()
	var all []string
	for _, id := range s.ids {
		if strings.HasPrefix(id, prefix) && id > after {
			all = append(all, id)
		}
	}
	s.mu.RUnlock()
	sort.Strings(all)
	if len(all) > limit {
		return all[:limit], true
	}
	return all, false
}

// Query returns the k records of ns most similar to q among those matching f. Ties are
// broken by ascending ID, so results are deterministic. The caller has validated q.
func (e *Engine) Query(ctx context.Context, ns string, q []float32, k int, f *filter.Filter, includeValues bool) ([]Hit, error) {
	if len(q) != e.dim {
		// Callers validate; this guards the SIMD kernel, which reads len(q) values of
		// every stored vector.
		return nil, fmt.Errorf("engine: query has %d values, the index has dimension %d", len(q), e.dim)
	}
	s := e.get(ns)
	if s == nil || k <= 0 {
		return nil, nil
	}
	if e.metric == Cosine {
		q = unit(q)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	residual, known, outcome := e.resolve(s, f)
	if known && !outcome {
		return nil, nil
	}
	if len(s.ids) == 0 {
		// An empty namespace is visible while an upsert creates it (before it holds
		// the lock) and after a delete empties it (before it is dropped); with no
		// blocks there would be no worker and no heap.
		return nil, nil
	}
	all, err := e.scan(ctx, s, q, k, residual)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(all, func(a, b cand) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return strings.Compare(s.ids[a.slot], s.ids[b.slot])
	})
	if len(all) > k {
		all = all[:k]
	}
	hits := make([]Hit, len(all))
	for i, c := range all {
		score := c.score
		if e.metric == Euclidean {
			score = -score
		}
		hits[i] = Hit{ID: s.ids[c.slot], Score: score, Metadata: e.metadata(s, c.slot)}
		if includeValues {
			hits[i].Values = e.values(s, c.slot)
		}
	}
	return hits, nil
}

// unit returns q scaled to length 1 (q itself if it is zero).
func unit(q []float32) []float32 {
	n := norm(q)
	if !(n > 0) { // a NaN norm, too, leaves q as it is
		return q
	}
	qq := make([]float32, len(q))
	inv := 1 / n
	for i, v := range q {
		qq[i] = v * inv
	}
	return qq
}

// scan scores every record of s (a non-empty space, read-locked) that matches residual
// against q and returns each worker's best k, unsorted. Large scans are split over
// workers by block.
func (e *Engine) scan(ctx context.Context, s *space, q []float32, k int, residual *filter.Filter) ([]cand, error) {
	n := len(s.ids)
	workers := e.workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	// Parallelism pays off only for large scans.
	if n*e.dim < 1<<18 || residual != nil && n < 4096 {
		workers = 1
	}
	nblocks := (n + blockVectors - 1) / blockVectors
	if workers > nblocks {
		workers = nblocks
	}
	heaps := make([]topK, workers)
	var wg sync.WaitGroup
	var next = make(chan int, nblocks)
	for b := 0; b < nblocks; b++ {
		next <- b
	}
	close(next)
	scan := func(h *topK) {
		h.k = k
		for b := range next {
			if ctx.Err() != nil {
				return
			}
			lo := b * blockVectors
			hi := min(lo+blockVectors, n)
			e.scanBlock(s, b, lo, hi, q, residual, h)
		}
	}
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func(h *topK) {
			defer wg.Done()
			scan(h)
		}(&heaps[w])
	}
	scan(&heaps[0])
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var all []cand
	for i := range heaps {
		all = append(all, heaps[i].items...)
	}
	return all, nil
}

func (e *Engine) scanBlock(s *space, b, lo, hi int, q []float32, residual *filter.Filter, h *topK) {
	blk := s.blocks[b]
	dim := e.dim
	g := &getter{e: e, s: s}
	for i := lo; i < hi; i++ {
		if residual != nil {
			g.i = i
			if !residual.MatchFunc(g) {
				continue
			}
		}
		off := (i - lo) * dim
		v := blk[off : off+dim : off+dim]
		var score float32
		if e.metric == Euclidean {
			score = -sqDist(q, v)
		} else {
			score = dot(q, v)
		}
		h.push(cand{score: score, slot: i}, s.ids)
	}
}

// resolve decides the tracked-key conditions of f once for namespace s. s.mu is held.
func (e *Engine) resolve(s *space, f *filter.Filter) (*filter.Filter, bool, bool) {
	total := len(s.ids)
	return f.Resolve(func(n *filter.Filter) (bool, bool) {
		j := slices.Index(e.tracked, n.Field())
		if j < 0 {
			return false, false
		}
		have := 0
		for _, c := range s.tcount[j] {
			have += c
		}
		if have != total { // some records lack the key or carry a non-string value
			return false, false
		}
		count := func(v any) int {
			str, ok := v.(string)
			if !ok {
				return 0
			}
			if idx, ok := s.tdict[j][str]; ok {
				return s.tcount[j][idx]
			}
			return 0
		}
		switch n.Op() {
		case filter.Exists:
			return n.Value().(bool), true
		case filter.Eq, filter.Ne:
			switch c := count(n.Value()); {
			case c == total:
				return n.Op() == filter.Eq, true
			case c == 0:
				return n.Op() == filter.Ne, true
			}
		case filter.In, filter.Nin:
			c := 0
			seen := map[string]bool{}
			for _, w := range n.Values() {
				if v, ok := w.(string); ok && !seen[v] {
					seen[v] = true
					c += count(v)
				}
			}
			switch {
			case c == total:
				return n.Op() == filter.In, true
			case c == 0:
				return n.Op() == filter.Nin, true
			}
		}
		return false, false
	})
}

type cand struct {
	score float32
	slot  int
}

// topK is a min-heap of the best k candidates seen so far (the worst at the root).
type topK struct {
	k     int
	items []cand
}

// worse reports whether a ranks below b: lower score, or equal score and larger ID.
func worse(a, b cand, ids []string) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return ids[a.slot] > ids[b.slot]
}

func (h *topK) push(c cand, ids []string) {
	if len(h.items) < h.k {
		h.items = append(h.items, c)
		// sift up
		i := len(h.items) - 1
		for i > 0 {
			p := (i - 1) / 2
			if !worse(h.items[i], h.items[p], ids) {
				break
			}
			h.items[i], h.items[p] = h.items[p], h.items[i]
			i = p
		}
		return
	}
	if !worse(h.items[0], c, ids) {
		return
	}
	h.items[0] = c
	// sift down
	i, n := 0, len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && worse(h.items[r], h.items[l], ids) {
			m = r
		}
		if !worse(h.items[m], h.items[i], ids) {
			break
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}

// Dot returns the dot product of a and b (len(b) >= len(a)), with the fastest kernel
// the CPU supports (AVX2 with FMA on amd64, else portable Go).
func Dot(a, b []float32) float32 { return dot(a, b[:len(a)]) }

// dot is the kernel in use; len(a) == len(b).
var dot = dotGo

// dotGo is the portable kernel: eight independent accumulators, so the loop is bound by
// memory and multiply throughput rather than by the latency of one dependent chain of
// additions.
func dotGo(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		s0 += aa[0] * bb[0]
		s1 += aa[1] * bb[1]
		s2 += aa[2] * bb[2]
		s3 += aa[3] * bb[3]
		s4 += aa[4] * bb[4]
		s5 += aa[5] * bb[5]
		s6 += aa[6] * bb[6]
		s7 += aa[7] * bb[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3) + (s4 + s5) + (s6 + s7)
}

func sqDist(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		d0 := a[i] - b[i]
		d1 := a[i+1] - b[i+1]
		d2 := a[i+2] - b[i+2]
		d3 := a[i+3] - b[i+3]
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(a); i++ {
		d := a[i] - b[i]
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// norm returns the L2 norm of v: in float32 with the fast kernel, or in float64 when
// the float32 sum of squares overflows (values beyond about 1e19) or underflows.
func norm(v []float32) float32 {
	s := dot(v, v)
	if s > 1e-30 && !math.IsInf(float64(s), 0) {
		return float32(math.Sqrt(float64(s)))
	}
	var d float64
	for _, x := range v {
		d += float64(x) * float64(x)
	}
	return float32(math.Sqrt(d))
}

func cloneMeta(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if l, ok := v.([]string); ok {
			v = slices.Clone(l)
		}
		out[k] = v
	}
	return out
}

// Snapshot is the serializable content of an engine, for persistence.
type Snapshot struct {
	Dimension  int
	Metric     Metric
	Namespaces map[string][]Record
}

// Snapshot returns a copy of every record.
func (e *Engine) Snapshot() *Snapshot {
	snap := &Snapshot{Dimension: e.dim, Metric: e.metric, Namespaces: map[string][]Record{}}
	e.mu.RLock()
	names := make([]string, 0, len(e.spaces))
	for k := range e.spaces {
		names = append(names, k)
	}
	e.mu.RUnlock()
	for _, ns := range names {
		s := e.get(ns)
		if s == nil {
			continue
		}
		s.mu.RLock()
		recs := make([]Record, len(s.ids))
		for i, id := range s.ids {
			recs[i] = Record{ID: id, Values: e.values(s, i), Metadata: e.metadata(s, i)}
		}
		s.mu.RUnlock()
		if len(recs) > 0 {
			snap.Namespaces[ns] = recs
		}
	}
	return snap
}

// Restore loads the records of snap into e (which should be empty).
func (e *Engine) Restore(snap *Snapshot) {
	for ns, recs := range snap.Namespaces {
		e.Upsert(ns, recs)
	}
}

// setValues writes v into slot i (normalizing for cosine). s.mu is held.
func (e *Engine) setValues(s *space, i int, v []float32) {
	dst := s.vec(i)
	copy(dst, v)
	if e.metric == Cosine {
		n := norm(dst)
		s.norms[i] = n
		if n > 0 {
			inv := 1 / n
			for j := range dst {
				dst[j] *= inv
			}
		}
	}
}

// setMetadata adds or replaces the fields of set in slot i's metadata. s.mu is held.
func (e *Engine) setMetadata(s *space, i int, set map[string]any) {
	md := e.metadata(s, i)
	if md == nil {
		md = make(map[string]any, len(set))
	}
	for k, v := range set {
		md[k] = v
	}
	e.untrack(s, i)
	s.meta[i] = e.track(s, i, md)
}

// Update changes record id of ns: values, if non-nil, replace its vector, and the
// fields of setMeta are added to or replace its metadata. It reports whether the record
// exists (a missing record is left alone).
func (e *Engine) Update(ns, id string, values []float32, setMeta map[string]any) bool {
	s := e.get(ns)
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.slot[id]
	if !ok {
		return false
	}
	if values != nil {
		e.setValues(s, i, values)
	}
	if len(setMeta) > 0 {
		e.setMetadata(s, i, setMeta)
	}
	return true
}

// UpdateByFilter adds or replaces the fields of setMeta on every record of ns that
// matches f, and returns how many matched. With dryRun nothing is changed.
func (e *Engine) UpdateByFilter(ns string, f *filter.Filter, setMeta map[string]any, dryRun bool) int {
	s := e.get(ns)
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	residual, known, outcome := e.resolve(s, f)
	if known && !outcome {
		return 0
	}
	var hits []int
	g := &getter{e: e, s: s}
	for i := range s.ids {
		g.i = i
		if known || residual.MatchFunc(g) {
			hits = append(hits, i)
		}
	}
	if !dryRun {
		for _, i := range hits {
			e.setMetadata(s, i, setMeta)
		}
	}
	return len(hits)
}

// FetchByFilter returns up to limit records of ns that match f and whose IDs sort after
// after, in ascending ID order, and whether more follow.
func (e *Engine) FetchByFilter(ns string, f *filter.Filter, after string, limit int) ([]Record, bool) {
	s := e.get(ns)
	if s == nil {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	residual, known, outcome := e.resolve(s, f)
	if known && !outcome {
		return nil, false
	}
	var slots []int
	g := &getter{e: e, s: s}
	for i, id := range s.ids {
		g.i = i
		if id > after && (known || residual.MatchFunc(g)) {
			slots = append(slots, i)
		}
	}
	slices.SortFunc(slots, func(a, b int) int { return strings.Compare(s.ids[a], s.ids[b]) })
	more := len(slots) > limit
	if more {
		slots = slots[:limit]
	}
	out := make([]Record, len(slots))
	for j, i := range slots {
		out[j] = Record{ID: s.ids[i], Values: e.values(s, i), Metadata: e.metadata(s, i)}
	}
	return out, more
}
