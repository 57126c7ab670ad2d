package faulttest

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
)

// The Pinecone emulator fails upserts mid-ingest: a few transient failures
// (UNAVAILABLE, RESOURCE_EXHAUSTED) are retried by the driver and the ingest succeeds;
// more than the driver's attempts fail the ingest with clone.ErrUnavailable and leave no
// chunk rows, vectors or original of the attempt. A retry afterwards succeeds.
func TestPineconeFaultsMidIngest(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	const attempts = 4 // envOptions default retry.MaxAttempts
	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			cc := e.newClone(t)
			// failAt arms the fault when the first batch of vectors has been upserted, so
			// it hits a later batch: the attempt has already written vectors.
			var failAt atomic.Int32
			var failures atomic.Int32
			p := e.pipeline(t, &ingest.Options{EmbedBatch: 2, Progress: func(ev ingest.Progress) {
				if ev.Stage == ingest.StageEmbedded && failAt.CompareAndSwap(1, 0) {
					e.pc.FailNext("Upsert", int(failures.Load()), code, "injected "+code.String())
				}
			}})

			// Happy path on the same setup.
			r, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "happy.md", Data: []byte(doc("a calm harbour", 6))})
			if err != nil || r.Document.Status != records.StatusReady {
				t.Fatalf("happy path: %+v %v", r, err)
			}
			checkConsistent(t, e, cc)

			// Transient: attempts-1 failures of the second batch are retried.
			failures.Store(attempts - 1)
			failAt.Store(1)
			before := e.pc.Calls("Upsert")
			r, err = p.Ingest(ctx, cc, ingest.Source{SourceName: "retried.md", Data: []byte(doc("a stormy night", 6))})
			if err != nil || r.Document.Status != records.StatusReady {
				t.Fatalf("transient %s was not retried: %+v %v", code, r, err)
			}
			if calls := e.pc.Calls("Upsert") - before; calls < attempts+1 {
				t.Fatalf("%d upsert calls: the fault was not hit", calls)
			}
			checkConsistent(t, e, cc)

			// Persistent: as many failures as attempts fail the ingest, typed, with nothing
			// of the attempt left.
			snap := stores(t, e, cc)
			failures.Store(attempts) // every attempt of one request fails, none is left over
			failAt.Store(1)
			src := ingest.Source{SourceName: "failed.md", Data: []byte(doc("a lost ship", 6))}
			_, err = p.Ingest(ctx, cc, src)
			if !errors.Is(err, clone.ErrUnavailable) {
				t.Fatalf("persistent %s: %v, want ErrUnavailable", code, err)
			}
			docs := checkConsistent(t, e, cc)
			after := stores(t, e, cc)
			if strings.Join(after.vectors, ",") != strings.Join(snap.vectors, ",") || strings.Join(after.objects, ",") != strings.Join(snap.objects, ",") {
				t.Fatalf("the failed attempt left vectors or objects:\n%v\n%v", after.vectors, after.objects)
			}
			if len(docs) != 3 || docs[2].Status != records.StatusFailed {
				t.Fatalf("documents after the failure: %+v", docs)
			}
			// A retry succeeds on the same document.
			r, err = p.Ingest(ctx, cc, src)
			if err != nil || r.Document.ID.String() != docs[2].ID || r.Document.Status != records.StatusReady {
				t.Fatalf("retry: %+v %v", r, err)
			}
			checkConsistent(t, e, cc)
		})
	}
}

// The emulator fails queries during a chat turn: transient failures are retried and
// the turn answers from the clone's document; persistent ones fail the turn with
// clone.ErrUnavailable, store no assistant message, and leave the conversation with
// only the question (as rag documents: a failure after the question is stored keeps
// it).
func TestPineconeFaultsMidQuery(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	p := e.pipeline(t, nil)
	proc := e.processor(t)
	const attempts = 4
	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		t.Run(code.String(), func(t *testing.T) {
			cc := e.newClone(t)
			if _, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "bees.md", Data: []byte(doc("beekeeping zqhoneycomb", 5))}); err != nil {
				t.Fatal(err)
			}
			ask := func() (*rag.Response, error) {
				return proc.Process(ctx, cc, &rag.Request{Subject: "visitor", Question: "What about beekeeping zqhoneycomb?"}, nil)
			}
			// Happy path.
			resp, err := ask()
			if err != nil || !strings.Contains(resp.Answer.Content, "zqhoneycomb") {
				t.Fatalf("happy path: %v %+v", err, resp)
			}
			// Transient.
			before := e.pc.Calls("Query")
			e.pc.FailNext("Query", attempts-1, code, "injected "+code.String())
			resp, err = ask()
			if err != nil || !strings.Contains(resp.Answer.Content, "zqhoneycomb") || len(resp.Citations) == 0 {
				t.Fatalf("transient %s was not retried: %v %+v", code, err, resp)
			}
			if n := e.pc.Calls("Query") - before; n != attempts {
				t.Fatalf("%d query calls, want %d", n, attempts)
			}
			// Persistent.
			convs := ownerCount(t, e, "conversations", cc)
			msgs := ownerCount(t, e, "messages", cc)
			e.pc.FailNext("Query", attempts, code, "injected "+code.String())
			resp, err = ask()
			if !errors.Is(err, clone.ErrUnavailable) {
				t.Fatalf("persistent %s: %v, want ErrUnavailable", code, err)
			}
			if resp != nil && resp.Answer.ID != [16]byte{} {
				t.Fatalf("an assistant message was stored: %+v", resp.Answer)
			}
			if got := ownerCount(t, e, "conversations", cc); got != convs+1 {
				t.Fatalf("conversations %d -> %d", convs, got)
			}
			if got := ownerCount(t, e, "messages", cc); got != msgs+1 {
				t.Fatalf("messages %d -> %d: want only the question", msgs, got)
			}
			var roles []string
			if err := e.pg.Owner.Select(&roles, `SELECT m.role FROM messages m JOIN conversations c ON c.tenant_id = m.tenant_id AND c.clone_id = m.clone_id AND c.id = m.conversation_id
				WHERE c.tenant_id = $1 AND c.clone_id = $2 AND c.created_at = (SELECT max(created_at) FROM conversations WHERE tenant_id = $1 AND clone_id = $2)`, cc.TenantID(), cc.CloneID()); err != nil {
				t.Fatal(err)
			}
			if strings.Join(roles, ",") != string(records.RoleUser) {
				t.Fatalf("the failed turn's conversation holds %v", roles)
			}
			// The service works again.
			if resp, err = ask(); err != nil || !strings.Contains(resp.Answer.Content, "zqhoneycomb") {
				t.Fatalf("after the fault: %v", err)
			}
		})
	}
}

// processor returns a rag.Processor on e with the extractive generator.
func (e *env) processor(t testing.TB) *rag.Processor {
	t.Helper()
	retriever, err := rag.NewRetriever(e.db, e.vectors, e.emb, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}
	proc, err := rag.NewProcessor(e.db, retriever, gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	return proc
}

// The emulator fails a later upsert batch and then the compensating deletes, every
// attempt: the ingest fails with clone.ErrUnavailable and says the clean-up failed;
// the document is "failed" without chunk rows; the first batch's vectors are left
// over until Reconcile, run once Pinecone answers again, removes them.
func TestPineconeFaultsDuringCompensation(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	const attempts = 4
	cc := e.newClone(t)
	var armed atomic.Bool
	p := e.pipeline(t, &ingest.Options{EmbedBatch: 2, Progress: func(ev ingest.Progress) {
		if ev.Stage == ingest.StageEmbedded && armed.CompareAndSwap(true, false) {
			e.pc.FailNext("Upsert", attempts, codes.Unavailable, "injected upsert")
			e.pc.FailNext("Delete", attempts, codes.Unavailable, "injected delete")
		}
	}})
	if _, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "happy.md", Data: []byte(doc("dry land", 5))}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, e, cc)
	armed.Store(true)
	_, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "flood.md", Data: []byte(doc("a flood", 6))})
	if !errors.Is(err, clone.ErrUnavailable) || !strings.Contains(err.Error(), "vectors") {
		t.Fatalf("ingest with failing upserts and deletes: %v", err)
	}
	docs := ownerDocs(t, e, cc)
	if len(docs) != 2 || docs[1].Status != records.StatusFailed || docs[1].Chunks != 0 {
		t.Fatalf("documents: %+v", docs)
	}
	leftover := len(vectorIDs(t, e, cc)) - docs[0].Chunks
	if leftover <= 0 {
		t.Fatalf("no leftover vectors: the fault did not hit the clean-up")
	}
	rep, err := p.Reconcile(ctx, cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.VectorsDeleted != leftover {
		t.Fatalf("reconcile %+v, want %d vectors deleted", rep, leftover)
	}
	checkConsistent(t, e, cc)
}
