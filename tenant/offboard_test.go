package tenant_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// forEachOffboardEnv runs fn on the embedded backends (SQLite, memvector,
// fileobject) and on the real ones (PostgreSQL, the Pinecone emulator through
// go-pinecone, a versioned MinIO bucket).
func forEachOffboardEnv(t *testing.T, fn func(t *testing.T, e *adminEnv)) {
	t.Run("embedded", func(t *testing.T) { fn(t, embeddedEnv(t)) })
	t.Run("real", func(t *testing.T) { fn(t, realEnv(t)) })
	// An eventually consistent Pinecone: every write visible to stats and queries 3
	// requests later.
	t.Run("lag", func(t *testing.T) { fn(t, lagEnv(t, &pineconetest.Lag{Requests: 3}, nil)) })
}

// checkTombstone asserts that the clone of cc is offboarded, empty in every store, and
// refuses every write in every store.
func checkTombstone(t *testing.T, e *adminEnv, cc clone.CloneContext) {
	t.Helper()
	ctx := context.Background()
	c, err := e.s.Clone(ctx, cc.TenantID(), cc.CloneID())
	if err != nil || c.Status != tenant.StatusOffboarded {
		t.Fatalf("status %q %v", c.Status, err)
	}
	if left := e.rawLeft(t, cc); left != "" {
		t.Fatalf("left behind: %s", left)
	}
	_, err = records.CreateInsight(ctx, e.sql, cc, records.Insight{Content: "zombie"})
	wantKind(t, "row write", err, clone.ErrSuspended) // the tombstone trigger, classified
	wantKind(t, "vector write", e.vec.Upsert(ctx, cc, []vectorstore.Vector{{ID: "z", Values: unit(0)}}), clone.ErrSuspended)
	_, err = e.obj.Put(ctx, cc, "documents", "zombie.txt", strings.NewReader("z"), nil)
	wantKind(t, "object write", err, clone.ErrSuspended)
	// The clone's own owner (the one subject still entitled to it) is told it is gone.
	var cloneOwner string
	if err := e.db.GetContext(ctx, &cloneOwner, e.db.Rebind(`SELECT owner_subject FROM clones WHERE tenant_id = ? AND id = ?`), cc.TenantID(), cc.CloneID()); err != nil {
		t.Fatal(err)
	}
	_, err = e.s.ResolveClone(ctx, cloneOwner, cc.TenantID(), cc.CloneID())
	wantKind(t, "resolve", err, clone.ErrSuspended)
	if left := e.rawLeft(t, cc); left != "" {
		t.Fatalf("left behind after refused writes: %s", left)
	}
}

// TestOffboardClone: offboarding deletes every row, vector, object version, delete
// marker and unfinished upload of one clone, verifies, writes a receipt, leaves a
// tombstone, and leaves the tenant's other clone and the other tenant untouched.
func TestOffboardClone(t *testing.T) {
	forEachOffboardEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		e.populate(t, o.ccA, "a")
		e.populate(t, o.ccB, "b")
		e.populate(t, o.otherCC, "x")
		before := e.rawLeft(t, o.ccB)

		r, err := e.admin.OffboardClone(ctx, o.admin, o.tenantID, o.cloneA, "contract ended (TICKET-7)")
		if err != nil {
			t.Fatal(err)
		}
		if r.Rows["messages"] != 2 || r.Rows["document_chunks"] != 2 || r.Rows["documents"] != 1 || r.Rows["insights"] != 1 ||
			r.Rows["training_examples"] != 1 || r.Rows["conversations"] != 1 || r.Vectors != 3 || r.Resumed || r.AlreadyOffboarded {
			t.Fatalf("receipt %+v", r)
		}
		wantObjects, wantMarkers, wantUploads := 2, 0, 0
		if e.s3 != nil {
			wantObjects, wantMarkers, wantUploads = 4, 1, 1 // a.txt twice, b.txt, gone.txt; its marker; big.bin
		}
		if r.Objects != wantObjects || r.DeleteMarkers != wantMarkers || r.Uploads != wantUploads {
			t.Fatalf("receipt objects %+v", r)
		}
		checkTombstone(t, e, o.ccA)
		receipt := lastEvent(t, e, o.tenantID, "tenant.Admin.OffboardClone")
		if receipt.Outcome != audit.Allowed || receipt.Detail["step"] != "receipt" || receipt.Detail["rows"] != "8" ||
			receipt.Detail["vectors"] != "3" || receipt.Reason != "contract ended (TICKET-7)" || receipt.CloneID != o.cloneA {
			t.Fatalf("receipt event %+v", receipt.Event)
		}
		// The neighbours are intact.
		if got := e.rawLeft(t, o.ccB); got != before {
			t.Fatalf("clone B changed: %q -> %q", before, got)
		}
		if e.rawLeft(t, o.otherCC) == "" {
			t.Fatal("the other tenant's clone lost its data")
		}
		if b, err := e.obj.ReadAll(ctx, o.ccB, "documents", "b.txt"); err != nil || !strings.Contains(string(b), " b") {
			t.Fatalf("clone B object: %q %v", b, err)
		}
		// Again: nothing to do, and the inventory of the tombstone is empty.
		r, err = e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "again")
		if err != nil || !r.AlreadyOffboarded || r.Objects != 0 || r.Vectors != 0 {
			t.Fatalf("again: %+v %v", r, err)
		}
		inv, err := e.admin.Inventory(ctx, o.owner, o.tenantID, o.cloneA)
		if err != nil || inv.Status != tenant.StatusOffboarded || inv.Vectors != 0 || inv.Objects != 0 || inv.Rows["insights"] != 0 {
			t.Fatalf("inventory %+v %v", inv, err)
		}
		// A tombstone cannot be resumed, renamed or opened with break-glass.
		wantKind(t, "resume", e.admin.ResumeClone(ctx, o.owner, o.tenantID, o.cloneA), clone.ErrConflict)
		_, err = e.admin.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Reason: "r", TTL: 60e9})
		wantKind(t, "break-glass", err, clone.ErrConflict)
		if rep, err := e.admin.VerifyAudit(ctx, o.owner, o.tenantID); err != nil || !rep.OK {
			t.Fatalf("chain: %+v %v", rep, err)
		}
	})
}

// TestOffboardSweep: an upload through a PUT URL signed before offboarding lands
// after it (the store, not the SDK, accepts it); offboarding again sweeps it.
func TestOffboardSweep(t *testing.T) {
	e := realEnv(t)
	ctx := context.Background()
	o := newOrg(t, e)
	url, err := e.obj.SignedURL(ctx, o.ccA, "documents", "late.txt", &objectstore.SignedURLOptions{Method: http.MethodPut})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "left"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader("late upload"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("late upload: %d", resp.StatusCode)
	}
	if e.rawLeft(t, o.ccA) == "" {
		t.Fatal("the late upload did not land; the test proves nothing")
	}
	r, err := e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "sweep")
	if err != nil || !r.AlreadyOffboarded || r.Objects != 1 {
		t.Fatalf("sweep: %+v %v", r, err)
	}
	if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.OffboardClone"); ev.Detail["step"] != "sweep" || ev.Detail["objects"] != "1" {
		t.Fatalf("sweep event %+v", ev.Event)
	}
	checkTombstone(t, e, o.ccA)
}

// TestOffboardCrashResume: a failure at any step, including a real store failing,
// leaves the clone blocked; calling again finishes the job and nothing is left.
func TestOffboardCrashResume(t *testing.T) {
	forEachOffboardEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		steps := []string{"rows", "vectors", "objects", "verify", "receipt"}
		if e.pine != nil {
			steps = append(steps, "pinecone")
		}
		for _, step := range steps {
			t.Run(step, func(t *testing.T) {
				o := newOrg(t, e)
				e.populate(t, o.ccA, "a")
				var calls atomic.Int32
				if step == "pinecone" {
					// The emulator fails the namespace deletion itself.
					e.pine.FailNext("DeleteNamespace", 1, codes.Internal, "injected")
				} else {
					tenant.SetFailAt(e.admin, func(s string) error {
						calls.Add(1)
						if s == step {
							return errors.New("crash at " + s)
						}
						return nil
					})
				}
				_, err := e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "crash test")
				if err == nil {
					t.Fatal("no failure")
				}
				tenant.SetFailAt(e.admin, nil)
				// Blocked at once, in every store, while half-way.
				c, _ := e.s.Clone(ctx, o.tenantID, o.cloneA)
				if c.Status != tenant.StatusOffboarding {
					t.Fatalf("status %s", c.Status)
				}
				_, err = e.s.ResolveClone(ctx, o.member.Subject, o.tenantID, o.cloneA)
				wantKind(t, "resolve", err, clone.ErrSuspended)
				_, err = e.obj.Put(ctx, o.ccA, "documents", "late.txt", strings.NewReader("z"), nil)
				wantKind(t, "object write", err, clone.ErrSuspended)
				wantKind(t, "vector write", e.vec.Upsert(ctx, o.ccA, []vectorstore.Vector{{ID: "z", Values: unit(0)}}), clone.ErrSuspended)
				_, err = records.CreateInsight(ctx, e.sql, o.ccA, records.Insight{Content: "late"})
				if err == nil {
					t.Fatal("row written to an offboarding clone")
				}
				if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.OffboardClone"); ev.Outcome != audit.Failed {
					t.Fatalf("failure event %+v", ev.Event)
				}
				r, err := e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "resume")
				if err != nil {
					t.Fatal(err)
				}
				if !r.Resumed {
					t.Fatalf("receipt %+v", r)
				}
				checkTombstone(t, e, o.ccA)
			})
		}
	})
}

// TestOffboardRacingWrites: writers hammer a clone in every store while it is
// offboarded; every write is either refused or deleted, and nothing is left.
func TestOffboardRacingWrites(t *testing.T) {
	forEachOffboardEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		e.populate(t, o.ccA, "a")
		e.newAdmin(t, &tenant.AdminOptions{Drain: 20e6}) // 20 ms
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var accepted, refused atomic.Int32
		writer := func(write func(i int) error) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := write(i); err != nil {
					refused.Add(1)
				} else {
					accepted.Add(1)
				}
			}
		}
		wg.Add(3)
		go writer(func(i int) error {
			_, err := records.CreateInsight(ctx, e.sql, o.ccA, records.Insight{Content: fmt.Sprint("race ", i)})
			return err
		})
		go writer(func(i int) error {
			return e.vec.Upsert(ctx, o.ccA, []vectorstore.Vector{{ID: fmt.Sprint("race-", i), Values: unit(i)}})
		})
		go writer(func(i int) error {
			_, err := e.obj.Put(ctx, o.ccA, "documents", fmt.Sprintf("race-%d.txt", i), strings.NewReader("r"), nil)
			return err
		})
		waitFor(t, func() bool { return accepted.Load() >= 6 })
		r, err := e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "race")
		waitFor(t, func() bool { return refused.Load() >= 6 })
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("accepted %d, refused %d writes; receipt rows %v vectors %d objects %d", accepted.Load(), refused.Load(), r.Rows, r.Vectors, r.Objects)
		checkTombstone(t, e, o.ccA)
	})
}

// waitFor polls cond, which other goroutines make true, with no time limit of its own
// (a condition that never holds runs into the test binary's timeout).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for !cond() {
		time.Sleep(time.Millisecond)
	}
}

// TestOffboardLateWrites: writes that passed the stores' checks before the clone was
// blocked and land after offboarding verified it (slower than the drain period) are
// found after the tombstone and deleted, and audited; rows cannot land at all.
func TestOffboardLateWrites(t *testing.T) {
	forEachOffboardEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		e.populate(t, o.ccA, "a")
		var rowErr error
		tenant.SetFailAt(e.admin, func(step string) error {
			if step != "tombstone" {
				return nil
			}
			if err := e.rawVec.Upsert(ctx, o.ccA, []vectorstore.Vector{{ID: "late", Values: unit(2)}}); err != nil {
				return err
			}
			if _, err := e.rawObj.Put(ctx, o.ccA, "documents", "late.txt", strings.NewReader("late"), nil); err != nil {
				return err
			}
			_, rowErr = records.CreateInsight(ctx, e.sql, o.ccA, records.Insight{Content: "late"})
			if e.pine != nil {
				// The late writes are visible by the time of the check (on a lagging
				// index, TestOffboardLateWriteUnderLag covers the other case).
				e.pine.Settle()
			}
			return nil
		})
		r, err := e.admin.OffboardClone(ctx, o.owner, o.tenantID, o.cloneA, "late writes")
		tenant.SetFailAt(e.admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rowErr == nil {
			t.Fatal("a row was inserted for an offboarded clone")
		}
		if r.Vectors != 4 || r.Objects < 3 || r.Rows["insights"] != 1 {
			t.Fatalf("receipt %+v", r)
		}
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.OffboardClone"); ev.Detail["step"] != "late-cleanup" || ev.Detail["vectors"] != "1" || ev.Detail["objects"] != "1" {
			t.Fatalf("late cleanup event %+v", ev.Event)
		}
		checkTombstone(t, e, o.ccA)
	})
}

// TestOffboardTenant: offboarding a tenant offboards each of its clones and the
// tenant, resumably.
func TestOffboardTenant(t *testing.T) {
	forEachOffboardEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		e.populate(t, o.ccA, "a")
		e.populate(t, o.ccB, "b")
		e.populate(t, o.otherCC, "x")
		tenant.SetFailAt(e.admin, func(s string) error {
			if s == "objects" {
				return errors.New("crash")
			}
			return nil
		})
		if _, err := e.admin.OffboardTenant(ctx, o.owner, o.tenantID, "customer left"); err == nil {
			t.Fatal("no failure")
		}
		tenant.SetFailAt(e.admin, nil)
		for _, c := range []tenant.Clone{o.a, o.b} {
			got, _ := e.s.Clone(ctx, o.tenantID, c.ID)
			if got.Status != tenant.StatusOffboarding {
				t.Fatalf("clone %s is %s after a failed tenant offboarding", c.Name, got.Status)
			}
		}
		_, err := e.admin.CreateClone(ctx, o.owner, o.tenantID, tenant.CloneSpec{Name: "new", OwnerSubject: o.owner.Subject})
		wantKind(t, "create during offboarding", err, clone.ErrSuspended)
		rs, err := e.admin.OffboardTenant(ctx, o.owner, o.tenantID, "customer left")
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 {
			t.Fatalf("%d receipts", len(rs))
		}
		tn, _ := e.s.Tenant(ctx, o.tenantID)
		if tn.Status != tenant.StatusOffboarded {
			t.Fatalf("tenant %s", tn.Status)
		}
		checkTombstone(t, e, o.ccA)
		checkTombstone(t, e, o.ccB)
		if e.rawLeft(t, o.otherCC) == "" {
			t.Fatal("the other tenant lost its data")
		}
		rs, err = e.admin.OffboardTenant(ctx, o.owner, o.tenantID, "again")
		if err != nil || len(rs) != 0 {
			t.Fatalf("again: %v %v", rs, err)
		}
	})
}
