package tenant_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// lagEnv: SQLite, a file bucket and an eventually consistent Pinecone emulator (every
// write visible to stats and queries only after lag), reached through go-pinecone.
func lagEnv(t *testing.T, lag *pineconetest.Lag, opts *tenant.AdminOptions) *adminEnv {
	t.Helper()
	db, _ := pgtest.Open(t, clonesql.SQLite) // migrated, closed when t ends
	e := &adminEnv{name: "lag", db: db, super: db}
	g := e.store(t).Guard()
	var err error
	e.pine = pineconetest.Start(t, &pineconetest.Options{Dimension: dim, Lag: lag})
	e.vec, err = pineconevector.Open(e.pine.Host(), dim, &pineconevector.Options{Index: &vectorstore.Options{CheckWritable: g.CheckWritable}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.vec.Close() })
	e.rawVec, err = pineconevector.Open(e.pine.Host(), dim, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rawVec.Close() })
	od, err := fileobject.OpenDriver(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.obj, err = objectstore.NewBucket(od, &objectstore.Options{CheckClone: g.CheckClone}); err != nil {
		t.Fatal(err)
	}
	if e.rawObj, err = objectstore.NewBucket(od, nil); err != nil {
		t.Fatal(err)
	}
	e.newAdmin(t, opts)
	return e
}

// Offboarding on an eventually consistent index: after the namespace is deleted, stats
// still show the vectors for a while; verification re-reads until they are gone (it
// never reports empty before the index does) and the receipt says lag made it wait.
func TestOffboardUnderLag(t *testing.T) {
	ctx := context.Background()
	e := lagEnv(t, &pineconetest.Lag{Requests: 4}, nil)
	o := newOrg(t, e)
	e.populate(t, o.ccA, "a")
	e.pine.Settle() // the clone's vectors are in the index (and counted by the receipt)

	r, err := e.admin.OffboardClone(ctx, o.admin, o.tenantID, o.cloneA, "lagging index")
	if err != nil {
		t.Fatalf("offboarding on a lagging index: %v", err)
	}
	if r.Vectors != 3 || r.VectorLagPolls == 0 {
		t.Fatalf("receipt %+v; want 3 vectors and the lag polls that verification needed", r)
	}
	receipt := lastEvent(t, e, o.tenantID, "tenant.Admin.OffboardClone")
	if receipt.Detail["vector_lag_polls"] == "" {
		t.Fatalf("the audited receipt does not say lag made verification wait: %+v", receipt.Detail)
	}
	checkTombstone(t, e, o.ccA)
	e.pine.Settle()
	if left := e.rawLeft(t, o.ccA); left != "" {
		t.Fatalf("left after offboarding: %s", left)
	}
}

// lagClock is the emulator's clock, moved by hand.
type lagClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *lagClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *lagClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// When the deletion does not become visible within VectorSettle, offboarding fails
// (the clone stays blocked) instead of reporting an empty index; once the index
// catches up, calling again completes it.
func TestOffboardLagOutlastsSettle(t *testing.T) {
	ctx := context.Background()
	lc := &lagClock{t: time.Unix(0, 0)}
	e := lagEnv(t, &pineconetest.Lag{Duration: time.Hour, Clock: lc.Now}, &tenant.AdminOptions{VectorSettle: 50 * time.Millisecond})
	o := newOrg(t, e)
	e.populate(t, o.ccA, "a")
	lc.Advance(time.Hour) // the vectors are visible
	if e.pine.Pending() != 0 {
		t.Fatal("writes still pending")
	}

	_, err := e.admin.OffboardClone(ctx, o.admin, o.tenantID, o.cloneA, "lagging index")
	wantKind(t, "offboarding while the index still shows the vectors", err, clone.ErrConflict)
	c, err := e.s.Clone(ctx, o.tenantID, o.cloneA)
	if err != nil || c.Status != tenant.StatusOffboarding {
		t.Fatalf("status %q %v; want offboarding (blocked, resumable)", c.Status, err)
	}

	lc.Advance(time.Hour) // the deletion lands
	r, err := e.admin.OffboardClone(ctx, o.admin, o.tenantID, o.cloneA, "lagging index")
	if err != nil || !r.Resumed {
		t.Fatalf("resume once the index caught up = %+v, %v", r, err)
	}
	checkTombstone(t, e, o.ccA)
}

// A write that passed the hooks before the clone was blocked and is not yet visible
// when offboarding checks after the tombstone cannot be found then; the sweep
// (OffboardClone again, as its documentation says) finds and deletes it once the index
// shows it.
func TestOffboardLateWriteUnderLag(t *testing.T) {
	ctx := context.Background()
	e := lagEnv(t, &pineconetest.Lag{Requests: 1000}, nil)
	o := newOrg(t, e)
	e.populate(t, o.ccA, "a")
	tenant.SetFailAt(e.admin, func(step string) error {
		if step == "tombstone" {
			return e.rawVec.Upsert(ctx, o.ccA, []vectorstore.Vector{{ID: "late", Values: unit(2)}})
		}
		if step == "verify" {
			e.pine.Settle() // the namespace deletion lands; the late write comes after
		}
		return nil
	})
	r, err := e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "late write")
	tenant.SetFailAt(e.admin, nil)
	if err != nil || r.Vectors != 3 {
		t.Fatalf("offboarding = %+v, %v", r, err)
	}
	e.pine.Settle() // now the index shows the late write
	if left := e.rawLeft(t, o.ccA); left != "vectors:1" {
		t.Fatalf("left after offboarding: %q, want the late vector", left)
	}
	r, err = e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "sweep")
	if err != nil || !r.AlreadyOffboarded || r.Vectors != 1 {
		t.Fatalf("sweep = %+v, %v; want the late vector deleted", r, err)
	}
	e.pine.Settle()
	if left := e.rawLeft(t, o.ccA); left != "" {
		t.Fatalf("left after the sweep: %q", left)
	}
}
