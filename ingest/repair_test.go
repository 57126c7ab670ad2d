package ingest_test

import (
	"context"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// answer returns the document whose chunk best matches question, as retrieval would:
// the top vector match, resolved to its chunk.
func answer(t *testing.T, e *env, cc clone.CloneContext, question string) string {
	t.Helper()
	ctx := context.Background()
	emb, err := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
	if err != nil {
		t.Fatal(err)
	}
	qv, err := emb.Embed(ctx, []string{question})
	if err != nil {
		t.Fatal(err)
	}
	if e.pine != nil {
		e.pine.Settle() // on a lagging index: ask once the writes landed
	}
	ms, err := e.vectors.Query(ctx, cc, vectorstore.Query{Vector: qv[0], TopK: 1})
	if err != nil {
		t.Fatal(err)
	}
	chunks, err := ingest.Resolve(ctx, e.db, cc, ms)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) == 0 {
		return ""
	}
	return chunks[0].DocumentID.String()
}

// The scenario: a document is ingested and answers its question; its vectors
// are lost (as a store without durable writes loses them in a crash) while its rows
// stay "ready"; the question is then answered from another document. Uploading the same
// content again, and Reconcile, restore the vectors from the stored chunk text.
func TestLostVectorsAreRestored(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small, EmbedBatch: 3})
		cc := e.newClone(t)
		pricing := ingest.Source{SourceName: "pricing.md", Data: []byte(doc("pricing tiers and invoices", 5))}
		hiring := mustIngest(t, p, cc, ingest.Source{SourceName: "hiring.md", Data: []byte(doc("hiring engineers", 5))})
		target := mustIngest(t, p, cc, pricing)
		const question = "pricing tiers and invoices"
		if got := answer(t, e, cc, question); got != target.Document.ID.String() {
			t.Fatalf("before the loss, answered from %s, want %s", got, target.Document.ID)
		}
		before := checkConsistent(t, e, cc)

		lose := func(ords ...int) {
			t.Helper()
			ids := make([]string, len(ords))
			for i, o := range ords {
				ids[i] = ingest.VectorID(target.Document.ID, ingest.DocumentVersion(target.Document), o)
			}
			if err := e.vectors.Delete(ctx, cc, ids); err != nil {
				t.Fatal(err)
			}
		}
		all := make([]int, target.Document.ChunkCount)
		for i := range all {
			all[i] = i
		}
		lose(all...)
		if got := answer(t, e, cc, question); got != hiring.Document.ID.String() {
			t.Fatalf("after the loss, answered from %q; the scenario expects the other document", got)
		}

		// Uploading identical content verifies the vectors before answering unchanged.
		r, err := p.Ingest(ctx, cc, pricing)
		if err != nil || r.Outcome != ingest.Unchanged || r.VectorsRestored != len(all) {
			t.Fatalf("re-upload: outcome %s, %d restored, %v; want unchanged, %d restored", r.Outcome, r.VectorsRestored, err, len(all))
		}
		if got := answer(t, e, cc, question); got != target.Document.ID.String() {
			t.Fatalf("after the re-upload, answered from %s", got)
		}
		if after := checkConsistent(t, e, cc); len(after.vectors) != len(before.vectors) {
			t.Fatalf("%d vectors after the re-upload, %d before", len(after.vectors), len(before.vectors))
		}
		if r, err := p.Ingest(ctx, cc, pricing); err != nil || r.VectorsRestored != 0 {
			t.Fatalf("second re-upload restored %d, %v", r.VectorsRestored, err)
		}

		// Reconcile restores lost vectors and removes strays, and says so.
		lose(0, 2)
		stray := ingest.VectorID(target.Document.ID, ingest.DocumentVersion(target.Document), target.Document.ChunkCount+3)
		if err := e.vectors.Upsert(ctx, cc, []vectorstore.Vector{{ID: stray, Values: unit(dim)}}); err != nil {
			t.Fatal(err)
		}
		e.landed() // Reconcile repairs what the index shows: the loss and the stray are old
		rep, err := p.Reconcile(ctx, cc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if lagging := e.lagging(); lagging != (rep.VectorLagPolls > 0) {
			t.Fatalf("lagging index %v, but Reconcile re-listed %d times", lagging, rep.VectorLagPolls)
		}
		rep.VectorLagPolls = 0
		if *rep != (ingest.ReconcileReport{VectorsRestored: 2, DocumentsRepaired: 1, VectorsDeleted: 1}) {
			t.Fatalf("reconcile report %+v", rep)
		}
		checkConsistent(t, e, cc)
		if got := answer(t, e, cc, question); got != target.Document.ID.String() {
			t.Fatalf("after Reconcile, answered from %s", got)
		}
		if rep, err := p.Reconcile(ctx, cc, nil); err != nil || *rep != (ingest.ReconcileReport{}) {
			t.Fatalf("second reconcile %+v, %v", rep, err)
		}

		// Another clone's reconcile neither sees nor restores this clone's vectors.
		other := e.newClone(t)
		lose(1)
		e.landed()
		if rep, err := p.Reconcile(ctx, other, nil); err != nil || *rep != (ingest.ReconcileReport{}) {
			t.Fatalf("other clone's reconcile %+v, %v", rep, err)
		}
		if s := snapshot(t, e, other); len(s.vectors) != 0 {
			t.Fatalf("other clone has vectors %v", s.vectors)
		}
		if rep, err := p.Reconcile(ctx, cc, nil); err != nil || rep.VectorsRestored != 1 {
			t.Fatalf("reconcile %+v, %v", rep, err)
		}
	})
}

func unit(n int) []float32 {
	v := make([]float32, n)
	v[0] = 1
	return v
}
