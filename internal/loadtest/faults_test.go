package loadtest

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

// The load of TestLoad runs while faults are injected: every 250 ms one of the pool's
// PostgreSQL backends is terminated, and the Pinecone emulator fails bursts of
// requests with UNAVAILABLE or RESOURCE_EXHAUSTED (most within the driver's retries,
// some beyond them). Every failed operation must fail with clone.ErrUnavailable (any
// other error counts as an error of the run), nothing may leak, and once the faults
// stop and Reconcile has run, every clone is consistent: no document pending or
// processing, ready documents with all their chunks, failed ones with none, and the
// vectors and originals exactly those of the ready documents.
func TestLoadWithFaults(t *testing.T) {
	duration := 8 * time.Second
	if v := os.Getenv("CLONEISO_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CLONEISO_LOAD_DURATION=%q: want a positive Go duration", v)
		}
		duration = d
	}
	nClients := envInt(t, "CLONEISO_LOAD_CLIENTS", 64)
	nClones := envInt(t, "CLONEISO_LOAD_CLONES", 32)
	h := newHarness(t, nClones)
	h.allow = func(err error) bool { return errors.Is(err, clone.ErrUnavailable) }

	var terminated, bursts, ops atomic.Int64
	// A fault every few operations rather than every so many milliseconds: a busy
	// machine runs fewer operations and gets proportionally fewer faults, never none.
	const opsPerFault = 4
	kick := make(chan struct{}, 1)
	h.afterOp = func() {
		if ops.Add(1)%opsPerFault == 0 {
			select {
			case kick <- struct{}{}:
			default: // the previous fault is still being injected
			}
		}
	}
	stop := make(chan struct{})
	var chaos sync.WaitGroup
	chaos.Go(func() {
		rng := mrand.New(mrand.NewPCG(1, uint64(time.Now().UnixNano())))
		methods := []string{"Upsert", "Query"} // the calls the load makes
		for {
			select {
			case <-stop:
				return
			case <-kick:
			}
			var ok bool
			if err := h.pg.Owner.Get(&ok, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM (
				SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1) p`, h.appName); err != nil {
				t.Errorf("terminate: %v", err)
				return
			}
			if ok {
				terminated.Add(1)
			}
			code := codes.Unavailable
			if rng.IntN(2) == 0 {
				code = codes.ResourceExhausted
			}
			n := 1 + rng.IntN(3)
			if rng.IntN(4) == 0 {
				n = 6 // beyond the driver's five attempts
			}
			h.pc.FailNext(methods[rng.IntN(len(methods))], n, code, "injected by the load test")
			bursts.Add(1)
		}
	})
	elapsed := h.run(nClients, duration)
	start := time.Now()
	close(stop)
	chaos.Wait()
	t.Logf("faults injected: %d PostgreSQL backends terminated, %d Pinecone failure bursts", terminated.Load(), bursts.Load())
	if terminated.Load() == 0 {
		t.Fatal("no backend was terminated: the faults did not hit the load")
	}
	// Drain what is left of the last burst, on a clone of its own: the emulator's
	// failures are consumed in order, so once a call of a method succeeds, none of that
	// method is queued any more.
	ctx := context.Background()
	drain, _, err := h.tenants.ProvisionSolo(ctx, "drain-"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	vec := make([]float32, dim)
	vec[0] = 1
	for _, call := range []func() error{
		func() error { return h.vectors.Upsert(ctx, drain, []vectorstore.Vector{{ID: "drain", Values: vec}}) },
		func() error {
			_, err := h.vectors.Query(ctx, drain, vectorstore.Query{Vector: vec, TopK: 1})
			return err
		},
		func() error { _, err := h.vectors.List(ctx, drain, nil); return err },
		func() error { return h.vectors.Delete(ctx, drain, []string{"drain"}) },
	} {
		var err error
		for range 50 {
			if err = call(); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("draining the emulator's injected failures: %v", err)
		}
	}

	// Reconcile every clone (nothing is ingesting any more), then check it.
	var repaired ingest.ReconcileReport
	for _, c := range h.clones {
		rep, err := h.pipe.Reconcile(ctx, c.cc, &ingest.ReconcileOptions{StaleAfter: time.Nanosecond})
		if err != nil {
			t.Fatalf("reconcile clone %d: %v", c.idx, err)
		}
		repaired.DocumentsFailed += rep.DocumentsFailed
		repaired.DocumentsRestored += rep.DocumentsRestored
		repaired.VectorsDeleted += rep.VectorsDeleted
		repaired.ObjectsDeleted += rep.ObjectsDeleted
	}
	t.Logf("reconcile after the faults (%s after the load): %+v", time.Since(start).Round(time.Millisecond), repaired)
	for _, c := range h.clones {
		h.consistent(t, c)
	}
	h.verify(t)
	h.report(t, "load-with-faults", nClients, elapsed)
}

// consistent asserts the ingest pipeline's invariant for a clone at rest, reading SQL
// through the schema owner.
func (h *harness) consistent(t *testing.T, c *target) {
	t.Helper()
	ctx := context.Background()
	type row struct {
		ID         uuid.UUID              `db:"id"`
		Status     records.DocumentStatus `db:"status"`
		ChunkCount int                    `db:"chunk_count"`
		Chunks     int                    `db:"chunks"`
	}
	var docs []row
	if err := h.pg.Owner.Select(&docs, `SELECT d.id, d.status, d.chunk_count,
		(SELECT count(*) FROM document_chunks k WHERE k.tenant_id = d.tenant_id AND k.clone_id = d.clone_id AND k.document_id = d.id) AS chunks
		FROM documents d WHERE d.tenant_id = $1 AND d.clone_id = $2`, c.cc.TenantID(), c.cc.CloneID()); err != nil {
		t.Fatal(err)
	}
	var wantVectors, wantObjects []string
	for _, d := range docs {
		switch d.Status {
		case records.StatusReady:
			if d.Chunks == 0 || d.Chunks != d.ChunkCount {
				t.Fatalf("clone %d: ready document %s has %d chunk rows, count %d", c.idx, d.ID, d.Chunks, d.ChunkCount)
			}
			rd, err := records.GetDocument(ctx, h.db, c.cc, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			v := ingest.DocumentVersion(rd)
			for i := range d.Chunks {
				wantVectors = append(wantVectors, ingest.VectorID(d.ID, v, i))
			}
			if rd.ObjectKey != "" {
				wantObjects = append(wantObjects, ingest.ObjectName(d.ID, v))
			}
		case records.StatusFailed:
			if d.Chunks != 0 {
				t.Fatalf("clone %d: failed document %s has %d chunk rows", c.idx, d.ID, d.Chunks)
			}
		default:
			t.Fatalf("clone %d: document %s left %s after Reconcile", c.idx, d.ID, d.Status)
		}
	}
	var vecs, objs []string
	token := ""
	for {
		page, err := h.vectors.List(ctx, c.cc, &vectorstore.ListOptions{PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		vecs = append(vecs, page.IDs...)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	token = ""
	for {
		page, err := h.objects.List(ctx, c.cc, &objectstore.ListOptions{PageToken: token, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Objects {
			if o.Kind == ingest.ObjectKind {
				objs = append(objs, o.Name)
			}
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	for _, s := range [][]string{wantVectors, wantObjects, vecs, objs} {
		sort.Strings(s)
	}
	if !slices.Equal(vecs, wantVectors) {
		t.Fatalf("clone %d: vectors\n got %v\nwant %v", c.idx, vecs, wantVectors)
	}
	if !slices.Equal(objs, wantObjects) {
		t.Fatalf("clone %d: originals\n got %s\nwant %s", c.idx, strings.Join(objs, " "), strings.Join(wantObjects, " "))
	}
}
