package ingest_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/ingest"
)

// On an eventually consistent index, Reconcile returns only once the index no longer
// lists the vectors it deleted (it never reports its clean-up complete before it is),
// and says how many re-listings lag cost; if the index does not catch up within
// VectorSettle, Reconcile fails instead.
func TestReconcileWaitsForLag(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, backend{"sqlite+pinecone-lag+file", clonesql.SQLite, "pinecone-lag", "file"})
	p := e.pipeline(t, &ingest.Options{Chunking: small, EmbedBatch: 3})
	leftovers := func(cc clone.CloneContext) []string {
		t.Helper()
		e.faults.reset()
		e.faults.fail("vectors.Upsert", 2)
		e.faults.fail("vectors.Delete", 0)
		if _, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "x.md", Data: []byte(doc("leftovers", 6))}); err == nil {
			t.Fatal("the injected failure did not fail the ingestion")
		}
		e.faults.heal()
		s := snapshot(t, e, cc) // settles: the leftovers are listed
		if len(s.vectors) == 0 {
			t.Fatal("no leftovers")
		}
		return s.vectors
	}
	listed := func(cc clone.CloneContext) []string {
		t.Helper()
		page, err := e.vectors.List(ctx, cc, nil) // no settling: what the index shows now
		if err != nil {
			t.Fatal(err)
		}
		return page.IDs
	}

	cc := e.newClone(t)
	left := leftovers(cc)
	rep, err := p.Reconcile(ctx, cc, nil)
	if err != nil || rep.VectorsDeleted != len(left) || rep.VectorLagPolls == 0 {
		t.Fatalf("Reconcile = %+v, %v; want %d deleted and lag polls", rep, err, len(left))
	}
	for _, id := range listed(cc) {
		if slices.Contains(left, id) {
			t.Fatalf("Reconcile returned while the index still listed %s", id)
		}
	}

	// An index that lags longer than VectorSettle: Reconcile fails, and the next call,
	// once the index caught up, finds nothing left.
	cc2 := e.newClone(t)
	leftovers(cc2)
	rep, err = p.Reconcile(ctx, cc2, &ingest.ReconcileOptions{VectorSettle: -1})
	if !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("Reconcile with no time to settle = %+v, %v; want ErrUnavailable", rep, err)
	}
	e.landed()
	if rep, err := p.Reconcile(ctx, cc2, nil); err != nil || rep.VectorsDeleted != 0 {
		t.Fatalf("Reconcile after the index caught up = %+v, %v", rep, err)
	}
}
