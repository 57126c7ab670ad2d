package engine

import (
	"fmt"
	"slices"
	"sort"

	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

// BlockVectors is the number of vectors per storage block, for bulk loading with Load.
const BlockVectors = blockVectors

// SpaceView is a read-only view of one namespace, valid only during the callback of
// Dump that received it.
type SpaceView struct {
	e *Engine
	s *space
}

// Len is the number of records.
func (v *SpaceView) Len() int { return len(v.s.ids) }

// ID returns record i's ID.
func (v *SpaceView) ID(i int) string { return v.s.ids[i] }

// Norm returns record i's original L2 norm (cosine metric), or 1 for other metrics.
func (v *SpaceView) Norm(i int) float32 {
	if v.e.metric != Cosine {
		return 1
	}
	return v.s.norms[i]
}

// Metadata returns a copy of record i's full metadata.
func (v *SpaceView) Metadata(i int) map[string]any { return v.e.metadata(v.s, i) }

// RangeMetadata calls fn with every entry of record i's metadata, in no order, and
// returns how many there are (fn may be nil to count them): the entries Metadata(i)
// would return, without building a map. The values are the engine's own and must not
// be modified.
func (v *SpaceView) RangeMetadata(i int, fn func(k string, val any)) (count int) {
	for k, val := range v.s.meta[i] {
		if j := slices.Index(v.e.tracked, k); j >= 0 && v.s.tv[j][i] >= 0 {
			continue // the tracked value wins, as in Metadata
		}
		if fn != nil {
			fn(k, val)
		}
		count++
	}
	for j, k := range v.e.tracked {
		if idx := v.s.tv[j][i]; idx >= 0 {
			if fn != nil {
				fn(k, v.s.tboxed[j][idx])
			}
			count++
		}
	}
	return count
}

// Blocks returns the number of storage blocks.
func (v *SpaceView) Blocks() int { return (len(v.s.ids) + blockVectors - 1) / blockVectors }

// Block returns the stored values (L2-normalized for the cosine metric) of the records
// of block b, b*BlockVectors onwards, contiguously: the storage itself, not a copy.
func (v *SpaceView) Block(b int) []float32 {
	n := min(len(v.s.ids)-b*blockVectors, blockVectors)
	return v.s.blocks[b][:n*v.e.dim]
}

// Dump calls fn for every non-empty namespace, in ascending order, with a view of it
// taken under that namespace's read lock: each view is consistent, writers to that
// namespace wait until fn returns, and other namespaces are not blocked. Nothing is
// copied. After each namespace, with no lock held, Dump calls after if it is not nil.
// Dump stops at the first error of fn or after.
func (e *Engine) Dump(fn func(ns string, v *SpaceView) error, after func() error) error {
	e.mu.RLock()
	names := make([]string, 0, len(e.spaces))
	for k := range e.spaces {
		names = append(names, k)
	}
	e.mu.RUnlock()
	sort.Strings(names)
	for _, ns := range names {
		s := e.get(ns)
		if s == nil {
			continue
		}
		s.mu.RLock()
		var err error
		if len(s.ids) > 0 {
			err = fn(ns, &SpaceView{e: e, s: s})
		}
		s.mu.RUnlock()
		if err == nil && after != nil {
			err = after()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Load adds namespace ns, which must not exist, from the parts of a Dump: IDs
// (distinct), metadata (the maps pass to the engine, which keeps them), norms (cosine metric; ignored otherwise) and blocks of stored
// values, each BlockVectors*Dimension() long, whose ownership passes to the engine. It
// copies no values and computes no norms, so loading runs at the speed of reading.
func (e *Engine) Load(ns string, ids []string, meta []map[string]any, norms []float32, blocks [][]float32) error {
	n := len(ids)
	if len(meta) != n || e.metric == Cosine && len(norms) != n || len(blocks) != (n+blockVectors-1)/blockVectors {
		return fmt.Errorf("engine: Load of %d records with %d metadata, %d norms, %d blocks", n, len(meta), len(norms), len(blocks))
	}
	for _, b := range blocks {
		if len(b) != blockVectors*e.dim {
			return fmt.Errorf("engine: Load with a block of %d values, want %d", len(b), blockVectors*e.dim)
		}
	}
	if n == 0 {
		return nil
	}
	slot := make(map[string]int, n)
	for i, id := range ids {
		if _, dup := slot[id]; dup {
			return fmt.Errorf("engine: Load with duplicate ID %q", id)
		}
		slot[id] = i
	}
	s := e.lockForWrite(ns)
	defer s.mu.Unlock()
	if len(s.ids) > 0 {
		return fmt.Errorf("engine: Load into namespace %q, which has records", ns)
	}
	s.blocks, s.ids, s.slot = blocks, ids, slot
	s.meta = make([]map[string]any, n)
	if e.metric == Cosine {
		s.norms = norms
	}
	for j := range s.tv {
		s.tv[j] = make([]int32, n)
		for i := range s.tv[j] {
			s.tv[j][i] = -1
		}
	}
	for i := range ids {
		s.meta[i] = e.adopt(s, i, meta[i])
	}
	return nil
}

// MatchingIDs returns the IDs of the records of ns that match f, in no order: what
// DeleteByFilter(ns, f) would remove now.
func (e *Engine) MatchingIDs(ns string, f *filter.Filter) []string {
	s := e.get(ns)
	if s == nil {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	residual, known, outcome := e.resolve(s, f)
	if known {
		if !outcome {
			return nil
		}
		return slices.Clone(s.ids)
	}
	var out []string
	g := &getter{e: e, s: s}
	for i, id := range s.ids {
		g.i = i
		if residual.MatchFunc(g) {
			out = append(out, id)
		}
	}
	return out
}

// adopt is track for a metadata map the engine may keep: the tracked keys' string
// values move into the namespace's dictionaries and out of md, which is kept as the
// rest (nil if nothing is left) instead of being copied. s.mu is held.
func (e *Engine) adopt(s *space, i int, md map[string]any) map[string]any {
	for j, k := range e.tracked {
		str, ok := md[k].(string)
		if !ok {
			continue
		}
		s.setTracked(j, i, str)
		delete(md, k)
	}
	if len(md) == 0 {
		return nil
	}
	return md
}
