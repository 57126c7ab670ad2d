package records_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
)

// BenchmarkGetChunks loads 1 and 5 chunks by key from a clone holding 10,000 chunks:
// every key must stay an index lookup (a key costs about the same whatever the clone's
// size and however many keys are asked for).
//
//	go test -run '^$' -bench GetChunks ./clone/records
func BenchmarkGetChunks(b *testing.B) {
	for _, d := range []clonesql.Dialect{clonesql.SQLite, clonesql.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			e := newEnv(b, d)
			ctx := context.Background()
			cc := e.newClone(b)
			var keys []records.ChunkKey
			for doc := range 100 {
				dd, err := records.CreateDocument(ctx, e.db, cc, records.Document{Title: fmt.Sprint("doc ", doc)})
				if err != nil {
					b.Fatal(err)
				}
				chunks := make([]records.Chunk, 100)
				for i := range chunks {
					chunks[i] = records.Chunk{Ordinal: i, Content: fmt.Sprintf("chunk %d of %d", i, doc), VectorID: uuid.NewString()}
				}
				if _, err := records.ReplaceDocumentChunks(ctx, e.db, cc, dd.ID, chunks); err != nil {
					b.Fatal(err)
				}
				keys = append(keys, records.ChunkKey{DocumentID: dd.ID, Ordinal: doc % 100})
			}
			for _, n := range []int{1, 5} {
				b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
					for i := 0; b.Loop(); i++ {
						ks := keys[(i*n)%(len(keys)-n):][:n]
						got, err := records.GetChunks(ctx, e.db, cc, ks)
						if err != nil || len(got) != n {
							b.Fatal(err, len(got))
						}
					}
				})
			}
		})
	}
}
