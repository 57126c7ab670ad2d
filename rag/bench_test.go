package rag_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/rag"
)

// BenchmarkRetrieve measures one question's retrieval and prompt on the embedded
// defaults (SQLite, memvector, the local 384-dimension embedder) with two clones of
// 10,000 chunks each (100 documents of 100 chunks of about 80 words), and reports the
// latency breakdown per question: embed, vector query, SQL load (chunks and titles),
// and prompt build, in µs.
//
//	go test -run '^$' -bench BenchmarkRetrieve -benchtime 200x ./rag/
func BenchmarkRetrieve(b *testing.B) {
	const docs, chunksPerDoc = 100, 100
	e := newEnv(b, false)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 3000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%x", rng.Uint32()%0xfffff)
	}
	para := func() string {
		w := make([]string, 80)
		for i := range w {
			w[i] = vocab[rng.IntN(len(vocab))]
		}
		return strings.Join(w, " ") + "."
	}
	var cc clone.CloneContext
	start := time.Now()
	for c := range 2 {
		cc = e.newClone(b)
		for d := range docs {
			ps := make([]string, chunksPerDoc)
			for i := range ps {
				ps[i] = para()
			}
			seedDoc(b, e, cc, fmt.Sprintf("doc %d-%d", c, d), ps...)
		}
	}
	b.Logf("seeded 2 clones × %d chunks in %v", docs*chunksPerDoc, time.Since(start).Round(time.Millisecond))
	questions := make([]string, 64)
	for i := range questions {
		questions[i] = strings.Join(strings.Fields(para())[:8], " ") + "?"
	}
	in := input(cc, 5) // a persona and history of the same clone
	for _, mmr := range []bool{false, true} {
		name := "topk5"
		if mmr {
			name = "topk5-mmr"
		}
		b.Run(name, func(b *testing.B) {
			var t rag.Timing
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				res, err := e.ret.Retrieve(ctx, cc, questions[i%len(questions)], &rag.RetrieveOptions{TopK: 5, MMR: mmr})
				if err != nil {
					b.Fatal(err)
				}
				p0 := time.Now()
				in.Question, in.Passages = questions[i%len(questions)], res.Passages
				if _, err := rag.BuildPrompt(ctx, cc, in, nil); err != nil {
					b.Fatal(err)
				}
				t.Prompt += time.Since(p0)
				t.Embed += res.Timing.Embed
				t.Query += res.Timing.Query
				t.Load += res.Timing.Load
			}
			n := float64(b.N)
			b.ReportMetric(float64(t.Embed.Microseconds())/n, "embed-µs/op")
			b.ReportMetric(float64(t.Query.Microseconds())/n, "query-µs/op")
			b.ReportMetric(float64(t.Load.Microseconds())/n, "sqlload-µs/op")
			b.ReportMetric(float64(t.Prompt.Microseconds())/n, "prompt-µs/op")
		})
	}
}
