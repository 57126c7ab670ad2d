package isolationtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"strings"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// SQLSurface stores canaries as insights through package records and observes every
// insight, document, training example, conversation and message the clone can list.
func SQLSurface(db clonesql.Querier) Surface {
	return Surface{
		Name: "sql",
		Seed: func(ctx context.Context, a Actor, canary string) error {
			_, err := records.CreateInsight(ctx, db, a.CC, records.Insight{Category: "isolationtest", Content: canary})
			return err
		},
		Observe: func(ctx context.Context, a Actor) (string, error) {
			var b strings.Builder
			if err := drain(ctx, &b, func(cur string) (any, string, error) {
				p, err := records.ListInsights(ctx, db, a.CC, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cur})
				return p.Items, p.Next, err
			}); err != nil {
				return "", err
			}
			if err := drain(ctx, &b, func(cur string) (any, string, error) {
				p, err := records.ListDocuments(ctx, db, a.CC, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cur})
				return p.Items, p.Next, err
			}); err != nil {
				return "", err
			}
			if err := drain(ctx, &b, func(cur string) (any, string, error) {
				p, err := records.ListTrainingExamples(ctx, db, a.CC, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cur})
				return p.Items, p.Next, err
			}); err != nil {
				return "", err
			}
			if err := drain(ctx, &b, func(cur string) (any, string, error) {
				p, err := records.ListConversations(ctx, db, a.CC, &records.ListOptions{Limit: records.MaxPageSize, Cursor: cur})
				return p.Items, p.Next, err
			}); err != nil {
				return "", err
			}
			return b.String(), nil
		},
	}
}

// drain appends every page of a list function, as JSON, to b.
func drain(ctx context.Context, b *strings.Builder, page func(cursor string) (any, string, error)) error {
	cur := ""
	for {
		items, next, err := page(cur)
		if err != nil {
			return err
		}
		j, err := json.Marshal(items)
		if err != nil {
			return err
		}
		b.Write(j)
		b.WriteByte('\n')
		if next == "" {
			return nil
		}
		cur = next
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// CanaryVector returns a deterministic non-zero vector of dimension dim for a string,
// so a probe can aim a similarity search straight at a canary.
func CanaryVector(s string, dim int) []float32 {
	v := make([]float32, dim)
	h := fnv.New64a()
	for i := range v {
		h.Write([]byte(s))
		x := h.Sum64()
		v[i] = float32(int64(x%2001)-1000) / 1000
	}
	v[0] += 0.001 // never all zero
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}

// VectorSurface stores each canary as a vector (its ID and its "text" metadata carry the
// canary) and observes every vector the clone can list and fetch, plus a top-k query.
// VectorProbe aims a query at the victim's canary vectors.
func VectorSurface(idx *vectorstore.Index) Surface {
	return Surface{
		Name: "vectors",
		Seed: func(ctx context.Context, a Actor, canary string) error {
			return idx.Upsert(ctx, a.CC, []vectorstore.Vector{{ID: canary, Values: CanaryVector(canary, idx.Dimension()),
				Metadata: map[string]any{"text": canary}}})
		},
		Observe: func(ctx context.Context, a Actor) (string, error) {
			var b strings.Builder
			tok := ""
			for {
				page, err := idx.List(ctx, a.CC, &vectorstore.ListOptions{PageToken: tok})
				if err != nil {
					return "", err
				}
				if len(page.IDs) > 0 {
					vs, err := idx.Fetch(ctx, a.CC, page.IDs)
					if err != nil {
						return "", err
					}
					for _, v := range vs {
						fmt.Fprintf(&b, "%s %v\n", v.ID, v.Metadata)
					}
				}
				if page.NextPageToken == "" {
					break
				}
				tok = page.NextPageToken
			}
			return b.String(), nil
		},
	}
}

// VectorProbe queries the index as the attacker with each victim canary's own vector
// and a filter naming it, and returns the matches.
func VectorProbe(idx *vectorstore.Index) Probe {
	return Probe{Name: "vector query aimed at the victim", Run: func(ctx context.Context, a Actor, victim []string) (string, error) {
		var b strings.Builder
		for _, c := range victim {
			for _, f := range []map[string]any{nil, {"text": c}, {"text": map[string]any{"$in": victim}}} {
				ms, err := idx.Query(ctx, a.CC, vectorstore.Query{Vector: CanaryVector(c, idx.Dimension()), TopK: 50, Filter: f, IncludeMetadata: true})
				if err != nil {
					return b.String(), err
				}
				for _, m := range ms {
					fmt.Fprintf(&b, "%s %v\n", m.ID, m.Metadata)
				}
			}
			vs, err := idx.Fetch(ctx, a.CC, []string{c})
			if err != nil {
				return b.String(), err
			}
			for _, v := range vs {
				fmt.Fprintf(&b, "%s %v\n", v.ID, v.Metadata)
			}
		}
		return b.String(), nil
	}}
}

// ObjectSurface stores each canary as an object of kind "uploads" (named after the
// canary, holding it) and observes every object the clone can list and read.
func ObjectSurface(bucket *objectstore.Bucket) Surface {
	return Surface{
		Name: "objects",
		Seed: func(ctx context.Context, a Actor, canary string) error {
			_, err := bucket.Put(ctx, a.CC, "uploads", canary+".txt", strings.NewReader(canary), nil)
			return err
		},
		Observe: func(ctx context.Context, a Actor) (string, error) {
			var b strings.Builder
			tok := ""
			for {
				page, err := bucket.List(ctx, a.CC, &objectstore.ListOptions{PageToken: tok})
				if err != nil {
					return "", err
				}
				for _, o := range page.Objects {
					data, err := bucket.ReadAll(ctx, a.CC, o.Kind, o.Name)
					if err != nil {
						return "", err
					}
					fmt.Fprintf(&b, "%s/%s: ", o.Kind, o.Name)
					b.Write(bytes.ToValidUTF8(data, nil))
					b.WriteByte('\n')
				}
				if page.NextPageToken == "" {
					break
				}
				tok = page.NextPageToken
			}
			return b.String(), nil
		},
	}
}

// ObjectProbe asks for each victim canary's object by name as the attacker: read, head,
// and a signed URL must all fail.
func ObjectProbe(bucket *objectstore.Bucket) Probe {
	return Probe{Name: "object read aimed at the victim", Run: func(ctx context.Context, a Actor, victim []string) (string, error) {
		var b strings.Builder
		for _, c := range victim {
			if data, err := bucket.ReadAll(ctx, a.CC, "uploads", c+".txt"); err == nil {
				b.Write(data) // own-prefix read: only a leak if it returns the victim's bytes
			}
			if attrs, err := bucket.Head(ctx, a.CC, "uploads", c+".txt"); err == nil {
				fmt.Fprintf(&b, "%v\n", attrs.Metadata)
			}
		}
		return b.String(), nil
	}}
}
