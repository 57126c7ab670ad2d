package ingest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// faultyEmbedder fails (or, with crash set, ends its goroutine as a crashed process
// would, without compensation) once called more than allowed.
type faultyEmbedder struct {
	embed.Embedder
	f     *faults
	crash atomic.Bool
}

func (x *faultyEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := x.f.check("embed"); err != nil {
		if x.crash.Load() {
			runtime.Goexit()
		}
		return nil, err
	}
	return x.Embedder.Embed(ctx, texts)
}

func newFaultyEmbedder(t testing.TB, f *faults) *faultyEmbedder {
	local, err := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
	if err != nil {
		t.Fatal(err)
	}
	return &faultyEmbedder{Embedder: local, f: f}
}

type step struct {
	name   string
	inject func(e *env, cancel context.CancelFunc, cancelAt *atomic.Int32)
	kind   error
	text   string // marker put into the document's text
}

// Every step of the pipeline fails once, for a new document and for an update of a
// ready one: the store ends exactly as before the attempt (plus the failed row), and
// a retry succeeds.
var steps = []step{
	{name: "object store", inject: func(e *env, _ context.CancelFunc, _ *atomic.Int32) { e.faults.fail("objects.Put", 0) }, kind: clone.ErrUnavailable},
	{name: "embedder first batch", inject: func(e *env, _ context.CancelFunc, _ *atomic.Int32) { e.faults.fail("embed", 0) }, kind: clone.ErrUnavailable},
	{name: "embedder later batch", inject: func(e *env, _ context.CancelFunc, _ *atomic.Int32) { e.faults.fail("embed", 2) }, kind: clone.ErrUnavailable},
	{name: "vector store first batch", inject: func(e *env, _ context.CancelFunc, _ *atomic.Int32) { e.faults.fail("vectors.Upsert", 0) }, kind: clone.ErrUnavailable},
	{name: "vector store later batch", inject: func(e *env, _ context.CancelFunc, _ *atomic.Int32) { e.faults.fail("vectors.Upsert", 2) }, kind: clone.ErrUnavailable},
	{name: "database", inject: func(*env, context.CancelFunc, *atomic.Int32) {}, text: "FAILSQL"},
	{name: "context cancelled", inject: func(_ *env, _ context.CancelFunc, at *atomic.Int32) { at.Store(2) }, kind: context.Canceled},
}

func TestFaultAtEveryStepLeavesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, st := range steps {
			t.Run(strings.ReplaceAll(st.name, " ", "_"), func(t *testing.T) {
				for _, update := range []bool{false, true} {
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					var cancelAt, embedded atomic.Int32
					emb := newFaultyEmbedder(t, e.faults)
					p := e.pipelineWith(t, emb, &ingest.Options{Chunking: small, EmbedBatch: 3, Progress: func(ev ingest.Progress) {
						if ev.Stage == ingest.StageEmbedded && embedded.Add(1) == cancelAt.Load() {
							cancel()
						}
					}})
					cc := e.newClone(t)
					var v1 ingest.Result
					if update {
						v1 = mustIngest(t, p, cc, ingest.Source{SourceName: "v1.md", Data: []byte(doc("the first version", 4))})
					}
					before := checkConsistent(t, e, cc)
					e.faults.heal()
					e.faults.reset()
					embedded.Store(0)
					st.inject(e, cancel, &cancelAt)
					text := doc("a failing attempt "+st.text, 6)
					src := ingest.Source{SourceName: "v2.md", Data: []byte(text), DocumentID: v1.Document.ID}
					_, err := p.Ingest(ctx, cc, src)
					if err == nil {
						t.Fatalf("no error (update=%v, embedded events %d)", update, embedded.Load())
					}
					if st.kind != nil && !errors.Is(err, st.kind) {
						t.Fatalf("error %v, want %v", err, st.kind)
					}
					e.faults.heal()
					after := checkConsistent(t, e, cc)
					if strings.Join(after.vectors, ",") != strings.Join(before.vectors, ",") || strings.Join(after.objects, ",") != strings.Join(before.objects, ",") {
						t.Fatalf("the attempt left vectors or objects:\n%v\n%v", after.vectors, after.objects)
					}
					if update {
						d := after.docs[0]
						if len(after.docs) != 1 || d.Status != records.StatusReady || d.ContentHash != v1.Document.ContentHash || !strings.HasPrefix(d.Error, "update failed: ") {
							t.Fatalf("after a failed update: %+v", d)
						}
					} else if len(after.docs) != 1 || after.docs[0].Status != records.StatusFailed {
						t.Fatalf("after a failed ingest: %+v", after.docs)
					}
					if st.text != "" {
						continue // the database refuses this content every time
					}
					// Retrying succeeds, on the same document.
					r, err := p.Ingest(context.Background(), cc, src)
					if err != nil {
						t.Fatal(err)
					}
					if r.Document.ID != after.docs[0].ID || r.Document.Status != records.StatusReady {
						t.Fatalf("retry: %+v", r)
					}
					checkConsistent(t, e, cc)
				}
			})
		}
	})
}

// When the clean-up fails too, the leftovers are reported and Reconcile removes them.
func TestFailedCompensationThenReconcile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small, EmbedBatch: 3})
		cc := e.newClone(t)
		e.faults.reset()
		e.faults.fail("vectors.Upsert", 2)
		e.faults.fail("vectors.Delete", 0)
		e.faults.fail("objects.Delete", 0)
		_, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "x.md", Data: []byte(doc("leftovers", 6))})
		if !errors.Is(err, clone.ErrUnavailable) || !strings.Contains(err.Error(), "removing this attempt's vectors") {
			t.Fatalf("got %v", err)
		}
		e.faults.heal()
		s := snapshot(t, e, cc)
		if len(s.vectors) == 0 || len(s.objects) != 1 {
			t.Fatalf("expected leftovers, got %d vectors %d objects", len(s.vectors), len(s.objects))
		}
		rep, err := p.Reconcile(ctx, cc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.VectorsDeleted != len(s.vectors) || rep.ObjectsDeleted != 1 {
			t.Fatalf("report %+v", rep)
		}
		checkConsistent(t, e, cc)

		// A delete whose vector and object removal fails leaves orphans of a document
		// that no longer exists; Reconcile removes them, and not the host's own vectors.
		r := mustIngest(t, p, cc, ingest.Source{SourceName: "y.md", Data: []byte(doc("deleted later", 5))})
		host := vectorstore.Vector{ID: "host-owned-1", Values: make([]float32, dim)}
		host.Values[0] = 1
		if err := e.vectors.Upsert(ctx, cc, []vectorstore.Vector{host}); err != nil {
			t.Fatal(err)
		}
		e.faults.fail("vectors.Delete", 0)
		e.faults.fail("objects.Delete", 0)
		if err := p.Delete(ctx, cc, r.Document.ID); !errors.Is(err, clone.ErrUnavailable) {
			t.Fatalf("delete: %v", err)
		}
		e.faults.heal()
		if _, err := records.GetDocument(ctx, e.db, cc, r.Document.ID); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("rows survived the delete: %v", err)
		}
		rep, err = p.Reconcile(ctx, cc, nil)
		if err != nil || rep.VectorsDeleted != r.Document.ChunkCount || rep.ObjectsDeleted != 1 {
			t.Fatalf("reconcile %+v %v", rep, err)
		}
		s = snapshot(t, e, cc)
		if len(s.vectors) != 1 || s.vectors[0] != "host-owned-1" {
			t.Fatalf("vectors after reconcile: %v", s.vectors)
		}
		_ = e.vectors.Delete(ctx, cc, []string{"host-owned-1"})
		checkConsistent(t, e, cc)
	})
}

// A process that dies mid-ingestion leaves a "processing" document, vectors and an
// original. Reconcile leaves them while they may still be in flight, and removes them
// once stale; a new attempt can take a stale document over.
func TestCrashThenReconcile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		emb := newFaultyEmbedder(t, e.faults)
		p := e.pipelineWith(t, emb, &ingest.Options{Chunking: small, EmbedBatch: 3})
		crash := func(cc clone.CloneContext, src ingest.Source) {
			t.Helper()
			e.faults.reset()
			e.faults.fail("embed", 2)
			emb.crash.Store(true)
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = p.Ingest(ctx, cc, src)
				t.Error("Ingest returned instead of crashing")
			}()
			<-done
			e.faults.heal()
			emb.crash.Store(false)
		}

		for _, update := range []bool{false, true} {
			t.Run(fmt.Sprint("update=", update), func(t *testing.T) {
				cc := e.newClone(t)
				var v1 ingest.Result
				if update {
					v1 = mustIngest(t, p, cc, ingest.Source{SourceName: "v1.md", Data: []byte(doc("version one", 4))})
				}
				src := ingest.Source{SourceName: "v2.md", Data: []byte(doc("crashing", 6)), DocumentID: v1.Document.ID}
				crash(cc, src)
				s := snapshot(t, e, cc)
				if len(s.docs) != 1 || s.docs[0].Status != records.StatusProcessing || len(s.vectors) <= v1.Document.ChunkCount {
					t.Fatalf("after the crash: %+v, %d vectors", s.docs, len(s.vectors))
				}
				// Not stale yet: possibly in flight elsewhere, so untouched, and a new attempt
				// is refused.
				rep, err := p.Reconcile(ctx, cc, nil)
				if err != nil || *rep != (ingest.ReconcileReport{}) {
					t.Fatalf("early reconcile %+v %v", rep, err)
				}
				if _, err := p.Ingest(ctx, cc, src); !errors.Is(err, clone.ErrConflict) {
					t.Fatalf("second attempt while processing: %v", err)
				}
				rep, err = p.Reconcile(ctx, cc, &ingest.ReconcileOptions{StaleAfter: 1})
				if err != nil {
					t.Fatal(err)
				}
				after := checkConsistent(t, e, cc)
				d := after.docs[0]
				if update {
					if rep.DocumentsRestored != 1 || d.Status != records.StatusReady || d.ContentHash != v1.Document.ContentHash || d.Error != "interrupted" {
						t.Fatalf("report %+v doc %+v", rep, d)
					}
				} else if rep.DocumentsFailed != 1 || d.Status != records.StatusFailed || len(after.vectors) != 0 || len(after.objects) != 0 {
					t.Fatalf("report %+v doc %+v", rep, d)
				}
				if rep.VectorsDeleted == 0 || rep.ObjectsDeleted != 1 {
					t.Fatalf("report %+v", rep)
				}
				// Idempotent.
				if rep, err := p.Reconcile(ctx, cc, &ingest.ReconcileOptions{StaleAfter: 1}); err != nil || *rep != (ingest.ReconcileReport{}) {
					t.Fatalf("second reconcile %+v %v", rep, err)
				}

				// Crash again, and let a pipeline with a short StaleAfter take over.
				crash(cc, src)
				quick := e.pipeline(t, &ingest.Options{Chunking: small, EmbedBatch: 3, StaleAfter: 1})
				r, err := quick.Ingest(ctx, cc, src)
				if err != nil || r.Document.Status != records.StatusReady {
					t.Fatalf("takeover: %+v %v", r, err)
				}
				checkConsistent(t, e, cc)
			})
		}
	})
}

// blockingEmbedder parks its second call until released, like an attempt that runs
// so long that another process takes its document over.
type blockingEmbedder struct {
	embed.Embedder
	calls   atomic.Int32
	parked  chan struct{}
	release chan struct{}
}

func (x *blockingEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if x.calls.Add(1) == 2 {
		close(x.parked)
		<-x.release
	}
	return x.Embedder.Embed(ctx, texts)
}

// An attempt that lost its claim to a takeover fails without undoing the winner's
// work, whether the two ingested the same content (same vector IDs) or not.
func TestLostClaimLeavesTheWinnerAlone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, tc := range []struct{ same, failLater bool }{{true, false}, {false, false}, {true, true}} {
			same := tc.same
			t.Run(fmt.Sprintf("same=%v,fail=%v", tc.same, tc.failLater), func(t *testing.T) {
				ctx := context.Background()
				local, _ := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
				slow := &blockingEmbedder{Embedder: local, parked: make(chan struct{}), release: make(chan struct{})}
				pa := e.pipelineWith(t, slow, &ingest.Options{Chunking: small, EmbedBatch: 3})
				pb := e.pipeline(t, &ingest.Options{Chunking: small, EmbedBatch: 3, StaleAfter: 1})
				cc := e.newClone(t)
				base := mustIngest(t, pb, cc, ingest.Source{Data: []byte(doc("base", 3)), ContentType: "text/plain"})
				textA, textB := doc("the slow attempt", 6), doc("the slow attempt", 6)
				if !same {
					textB = doc("the quick takeover", 6)
				}
				var errA error
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, errA = pa.Ingest(ctx, cc, ingest.Source{DocumentID: base.Document.ID, Data: []byte(textA), ContentType: "text/plain"})
				}()
				<-slow.parked
				rb, err := pb.Ingest(ctx, cc, ingest.Source{DocumentID: base.Document.ID, Data: []byte(textB), ContentType: "text/plain"})
				if err != nil {
					t.Fatalf("takeover: %v", err)
				}
				if tc.failLater {
					e.faults.reset()
					e.faults.fail("vectors.Upsert", 0)
				}
				close(slow.release)
				<-done
				e.faults.heal()
				if tc.failLater {
					// The slow attempt failed on its own, after the winner committed the same
					// vectors: its clean-up must not remove them.
					if !errors.Is(errA, clone.ErrUnavailable) {
						t.Fatalf("slow attempt: %v", errA)
					}
					errA = nil
				}
				// With the same content the winner committed exactly what the slow attempt
				// would have, which it recognizes; otherwise it lost.
				if same && errA != nil || !same && !errors.Is(errA, clone.ErrConflict) {
					t.Fatalf("slow attempt: %v", errA)
				}
				s := checkConsistent(t, e, cc)
				if d := s.docs[0]; d.Status != records.StatusReady || d.ContentHash != rb.Document.ContentHash || d.Error != "" {
					t.Fatalf("winner's document changed: %+v", d)
				}
			})
		}
	})
}
