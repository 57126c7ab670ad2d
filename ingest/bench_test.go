package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/ingest"
)

// BenchmarkIngest measures end-to-end ingestion (store, extract, chunk, embed with
// the local embedder, upsert, record) of 8 Markdown documents of about 32 KiB into a
// fresh clone per iteration, on each backend set; it reports MB/s and chunks/s.
//
//	go test -run '^$' -bench Ingest -benchtime 5x ./ingest/
func BenchmarkIngest(b *testing.B) {
	var srcs []ingest.Source
	var size int64
	for i := range 8 {
		data := []byte(doc(fmt.Sprintf("benchmark topic %d", i), 330))
		size += int64(len(data))
		srcs = append(srcs, ingest.Source{SourceName: fmt.Sprintf("doc%d.md", i), Data: data})
	}
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			e := newEnv(b, be)
			p := e.pipeline(b, &ingest.Options{Workers: 4})
			ctx := context.Background()
			b.SetBytes(size)
			chunks := 0
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				cc := e.newClone(b)
				b.StartTimer()
				start := time.Now()
				res, err := p.IngestAll(ctx, cc, srcs)
				elapsed += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					chunks += r.Document.ChunkCount
				}
			}
			b.ReportMetric(float64(chunks)/elapsed.Seconds(), "chunks/s")
		})
	}
}
