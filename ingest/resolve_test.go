package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// While a document is updated back and forth, a reader that queries the vectors and
// resolves the matches through Resolve always gets chunks of exactly one version.
func TestReadersNeverSeeAMix(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small, EmbedBatch: 2})
		cc := e.newClone(t)
		versions := [][]byte{[]byte(doc("version alpha", 8)), []byte(doc("version beta", 8))}
		r := mustIngest(t, p, cc, ingest.Source{Data: versions[0], ContentType: "text/markdown"})
		id := r.Document.ID

		var stop atomic.Bool
		var reads, mixed atomic.Int32
		var wg sync.WaitGroup
		probe := make([]float32, dim)
		probe[0] = 1
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					ms, err := e.vectors.Query(ctx, cc, vectorstore.Query{Vector: probe, TopK: 100, Filter: map[string]any{ingest.MetaDocumentID: id.String()}})
					if err != nil {
						t.Error(err)
						return
					}
					chunks, err := ingest.Resolve(ctx, e.db, cc, ms)
					if err != nil {
						t.Error(err)
						return
					}
					seen := map[string]bool{}
					for _, c := range chunks {
						seen[c.VectorID[len(id.String())+1:len(id.String())+17]] = true
					}
					if len(seen) > 1 {
						mixed.Add(1)
					}
					reads.Add(1)
				}
			}()
		}
		for i := 1; i <= 6; i++ {
			if _, err := p.Ingest(ctx, cc, ingest.Source{DocumentID: id, Data: versions[i%2], ContentType: "text/markdown"}); err != nil {
				t.Fatal(err)
			}
		}
		stop.Store(true)
		wg.Wait()
		if reads.Load() == 0 || mixed.Load() != 0 {
			t.Fatalf("%d reads, %d mixed", reads.Load(), mixed.Load())
		}
		checkConsistent(t, e, cc)
	})
}

func TestResolve(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small})
		a, b := e.newClone(t), e.newClone(t)
		r := mustIngest(t, p, a, ingest.Source{Data: []byte(doc("resolving", 3)), ContentType: "text/plain"})
		v := ingest.DocumentVersion(r.Document)
		ms := []vectorstore.Match{
			{ID: ingest.VectorID(r.Document.ID, v, 1)},
			{ID: "host-vector"},
			{ID: ingest.VectorID(r.Document.ID, "0123456789abcdef", 0)}, // another version
			{ID: ingest.VectorID(r.Document.ID, v, 0)},
			{ID: ingest.VectorID(r.Document.ID, v, 1)}, // duplicate
			{ID: ingest.VectorID(r.Document.ID, v, 999)},
			{ID: ingest.VectorID(r.Document.ID, "fedcba9876543210", 1)}, // a stale version after the current one
		}
		got, err := ingest.Resolve(ctx, e.db, a, ms)
		if err != nil || len(got) != 2 || got[0].Ordinal != 1 || got[1].Ordinal != 0 {
			t.Fatalf("owner: %+v %v", got, err)
		}
		// Another clone resolves nothing of A's.
		if got, err := ingest.Resolve(ctx, e.db, b, ms); err != nil || len(got) != 0 {
			t.Fatalf("other clone: %d chunks, %v", len(got), err)
		}
		if _, err := ingest.Resolve(ctx, e.db, clone.CloneContext{}, ms); !errors.Is(err, clone.ErrNoCloneContext) {
			t.Fatal(err)
		}
		many := make([]vectorstore.Match, 1001)
		for i := range many {
			many[i].ID = fmt.Sprint(i)
		}
		if _, err := ingest.Resolve(ctx, e.db, a, many); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatal(err)
		}
	})
}
