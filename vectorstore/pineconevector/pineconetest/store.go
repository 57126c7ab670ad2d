package pineconetest

// The emulator's own record store and brute-force scoring: maps of immutable records,
// every query a full scan in float64. Simple, obviously correct code is the point; it
// shares nothing with the SDK's vectorstore/internal/engine.

import (
	"encoding/json"
	"math"
	"sort"
	"strings"
	"time"
)

// sparseVector is a record's or a query's sparse values: unique indices, same length.
type sparseVector struct {
	indices []uint32
	values  []float32
}

// record is immutable once stored: a write replaces it, never mutates it, so one record
// may sit in both the latest and the visible state (see [state]).
type record struct {
	id     string
	values []float32 // exactly as upserted
	norm   float64   // Euclidean norm of values, for cosine scoring
	sparse *sparseVector
	md     map[string]any // string, float64, bool or []string; nil if none
	bytes  int            // approximate stored size, for read units
}

func newRecord(id string, values []float32, sparse *sparseVector, md map[string]any) *record {
	r := &record{id: id, values: values, norm: norm(values), sparse: sparse, md: md}
	r.bytes = len(id) + 4*len(values) + metadataSize(md)
	if sparse != nil {
		r.bytes += 8 * len(sparse.indices)
	}
	return r
}

// namespaceData is one namespace of a state.
type namespaceData struct {
	records map[string]*record
	schema  map[string]bool // from CreateNamespace: field -> filterable; nil if none
}

// state is the whole content of an index at one point of the write log.
type state struct {
	namespaces map[string]*namespaceData
}

func newState() *state { return &state{namespaces: map[string]*namespaceData{}} }

func (st *state) get(ns string) *namespaceData { return st.namespaces[ns] }

func (st *state) getOrCreate(ns string) *namespaceData {
	d := st.namespaces[ns]
	if d == nil {
		d = &namespaceData{records: map[string]*record{}}
		st.namespaces[ns] = d
	}
	return d
}

// sortedIDs returns the IDs of namespace ns in ascending byte order.
func (st *state) sortedIDs(ns string) []string {
	d := st.get(ns)
	if d == nil {
		return nil
	}
	ids := make([]string, 0, len(d.records))
	for id := range d.records {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// write is one acknowledged write: applied to the latest state at once, and to the
// visible state when its lag has passed.
type write struct {
	apply func(*state)
	tick  uint64    // the request count when it was acknowledged
	at    time.Time // the clock when it was acknowledged
}

// ---- scoring ----

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func sparseDot(a, b *sparseVector) float64 {
	if a == nil || b == nil {
		return 0
	}
	at := make(map[uint32]float64, len(a.indices))
	for i, ix := range a.indices {
		at[ix] = float64(a.values[i])
	}
	var s float64
	for i, ix := range b.indices {
		s += at[ix] * float64(b.values[i])
	}
	return s
}

// score is the similarity of record r to query q (with norm qNorm and optional sparse
// part qs): cosine similarity, dot product (plus the sparse dot product: Pinecone's
// hybrid score) or squared Euclidean distance.
func score(metric string, q []float32, qNorm float64, qs *sparseVector, r *record) float64 {
	switch metric {
	case "cosine":
		return dot(q, r.values) / (qNorm * r.norm)
	case "euclidean":
		var s float64
		for i := range q {
			d := float64(q[i]) - float64(r.values[i])
			s += d * d
		}
		return s
	default:
		return dot(q, r.values) + sparseDot(qs, r.sparse)
	}
}

// scored is one candidate of a query.
type scored struct {
	r     *record
	score float64
}

// rank scores every record of d that matches cond and returns the best k: highest
// score first (lowest for euclidean), ties by ascending ID.
func rank(metric string, d *namespaceData, q []float32, qs *sparseVector, cond *condition, k int) []scored {
	if d == nil {
		return nil
	}
	qNorm := norm(q)
	var all []scored
	for _, r := range d.records {
		if cond.matches(r.md) {
			all = append(all, scored{r, score(metric, q, qNorm, qs, r)})
		}
	}
	lowerIsBetter := metric == "euclidean"
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.score != b.score {
			if lowerIsBetter {
				return a.score < b.score
			}
			return a.score > b.score
		}
		return a.r.id < b.r.id
	})
	if len(all) > k {
		all = all[:k]
	}
	return all
}

// ---- metadata ----

// metadataSize is the size Pinecone's 40 KB limit is measured on: the JSON encoding.
func metadataSize(md map[string]any) int {
	if len(md) == 0 {
		return 0
	}
	b, _ := json.Marshal(md)
	return len(b)
}

// merged returns md with the keys of set replacing its own (a new map).
func merged(md, set map[string]any) map[string]any {
	out := make(map[string]any, len(md)+len(set))
	for k, v := range md {
		out[k] = v
	}
	for k, v := range set {
		out[k] = v
	}
	return out
}

// after returns the IDs of ids (sorted) strictly after the token position, with prefix.
func after(ids []string, prefix, last string) []string {
	var out []string
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) && (last == "" || id > last) {
			out = append(out, id)
		}
	}
	return out
}
