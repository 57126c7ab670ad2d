package tenant_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/tenant"
)

// brokenSink is a real SQL audit sink whose database handle is closed: every Record
// fails, deterministically, the way a sink whose database went away does.
func brokenSink(t *testing.T) audit.Sink {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "gone.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := clonesql.AuditSink(db)
	db.Close()
	if err := audit.Record(context.Background(), s, audit.Event{Action: "probe"}); err == nil {
		t.Fatal("the broken sink records; the test proves nothing")
	}
	return s
}

// grantRows counts break_glass_grants rows of clone cloneID, revoked ones included
// (read as the owner: what exists, not what the application sees).
func grantRows(t *testing.T, e *adminEnv, o *org) int {
	t.Helper()
	var n int
	if err := e.super.Get(&n, e.super.Rebind(`SELECT count(*) FROM break_glass_grants WHERE tenant_id = ? AND target_clone_id = ?`), o.tenantID, o.cloneA); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBreakGlassGrantAndEventOneTransaction: a grant whose audit event cannot be
// recorded never exists — not even as a grant revoked afterwards (which is what a
// grant-then-revoke sequence leaves, and whose revoke could itself fail) — and a grant
// that exists always has its event.
func TestBreakGlassGrantAndEventOneTransaction(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		req := tenant.BreakGlassRequest{Subject: o.admin.Subject, Reason: "INC-7", TTL: time.Hour}
		grantEvents := func() int {
			n := 0
			for _, ev := range events(t, e, o.tenantID) {
				if ev.Action == "tenant.Admin.GrantBreakGlass" && ev.Outcome == audit.Allowed {
					n++
				}
			}
			return n
		}

		for name, sink := range map[string]audit.Sink{
			// The sink fails outright.
			"failing sink": brokenSink(t),
			// The database sink appends the event inside the grant's transaction, then a
			// second sink fails: the appended event must roll back with the grant.
			"database sink, then a failing sink": audit.Multi(clonesql.AuditSink(e.db.DB), brokenSink(t)),
		} {
			e.newAdmin(t, &tenant.AdminOptions{Audit: sink})
			before := audit.Failures()
			_, err := e.admin.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, req)
			if err == nil {
				t.Fatalf("%s: GrantBreakGlass succeeded without its audit event", name)
			}
			if n := grantRows(t, e, o); n != 0 {
				t.Fatalf("%s: %d grant rows exist after a failed audit; want none", name, n)
			}
			if n := grantEvents(); n != 0 {
				t.Fatalf("%s: %d grant events without a grant", name, n)
			}
			if audit.Failures() == before {
				t.Fatalf("%s: the failure was not counted", name)
			}
			// The would-be grantee is refused (and that refusal, which the broken sink
			// cannot record either, is counted too).
			before = audit.Failures()
			_, err = e.admin.BreakGlass(ctx, o.admin, o.tenantID, o.cloneA)
			wantKind(t, name+": use without a grant", err, clone.ErrForbidden)
			if audit.Failures() == before {
				t.Fatalf("%s: the lost refusal event was not counted", name)
			}
		}

		// The default sink: the grant and its event, both.
		e.newAdmin(t, nil)
		g, err := e.admin.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, req)
		if err != nil {
			t.Fatal(err)
		}
		if n := grantRows(t, e, o); n != 1 || grantEvents() != 1 {
			t.Fatalf("%d grants, %d events; want one of each", n, grantEvents())
		}
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.GrantBreakGlass"); ev.Detail["grant_id"] != g.ID.String() {
			t.Fatalf("event %+v", ev.Event)
		}
		if r, err := clonesql.VerifyAuditChain(ctx, e.db.DB, o.tenantID); err != nil || !r.OK || r.Unchained != 0 {
			t.Fatalf("the chain with an event appended inside the grant's transaction: %+v, %v", r, err)
		}
	})
}

// TestAdminRefusalWithFailingSink: a refused administrative call stays refused when the
// sink fails, and the lost event is counted.
func TestAdminRefusalWithFailingSink(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		o := newOrg(t, e)
		e.newAdmin(t, &tenant.AdminOptions{Audit: brokenSink(t)})
		before := audit.Failures()
		_, err := e.admin.Clones(context.Background(), o.member, o.tenantID)
		wantKind(t, "member lists clones", err, clone.ErrForbidden)
		if audit.Failures() != before+1 {
			t.Fatalf("Failures grew by %d; want 1", audit.Failures()-before)
		}
	})
}
