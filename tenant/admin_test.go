package tenant_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
)

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: err = %v; want %v", what, err, kind)
	}
}

// events returns the tenant's audit events (read directly, as a test).
func events(t *testing.T, e *adminEnv, tenantID uuid.UUID) []clonesql.AuditEvent {
	t.Helper()
	evs, err := clonesql.AuditEvents(context.Background(), e.db.DB, tenantID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// lastEvent returns the newest event of action in the tenant's chain.
func lastEvent(t *testing.T, e *adminEnv, tenantID uuid.UUID, action string) clonesql.AuditEvent {
	t.Helper()
	evs := events(t, e, tenantID)
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Action == action {
			return evs[i]
		}
	}
	t.Fatalf("no %s event", action)
	return clonesql.AuditEvent{}
}

// TestAdminAuthorization: only owners and admins of the tenant administer it; members
// are refused (403) and outsiders see nothing (404); every refusal is audited.
func TestAdminAuthorization(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		a := e.admin
		calls := map[string]func(p clone.Principal, tenantID, cloneID uuid.UUID) error{
			"Clones": func(p clone.Principal, tid, _ uuid.UUID) error { _, err := a.Clones(ctx, p, tid); return err },
			"CreateClone": func(p clone.Principal, tid, _ uuid.UUID) error {
				_, err := a.CreateClone(ctx, p, tid, tenant.CloneSpec{Name: "n", OwnerSubject: p.Subject})
				return err
			},
			"RenameClone":  func(p clone.Principal, tid, cid uuid.UUID) error { return a.RenameClone(ctx, p, tid, cid, "x") },
			"SuspendClone": func(p clone.Principal, tid, cid uuid.UUID) error { return a.SuspendClone(ctx, p, tid, cid) },
			"ResumeClone":  func(p clone.Principal, tid, cid uuid.UUID) error { return a.ResumeClone(ctx, p, tid, cid) },
			"GrantClone":   func(p clone.Principal, tid, cid uuid.UUID) error { return a.GrantClone(ctx, p, tid, cid, p.Subject) },
			"Inventory": func(p clone.Principal, tid, cid uuid.UUID) error {
				_, err := a.Inventory(ctx, p, tid, cid)
				return err
			},
			"OffboardClone": func(p clone.Principal, tid, cid uuid.UUID) error {
				_, err := a.OffboardClone(ctx, p, tid, cid, "ticket 1")
				return err
			},
			"OffboardTenant": func(p clone.Principal, tid, _ uuid.UUID) error {
				_, err := a.OffboardTenant(ctx, p, tid, "ticket 1")
				return err
			},
			"GrantBreakGlass": func(p clone.Principal, tid, cid uuid.UUID) error {
				_, err := a.GrantBreakGlass(ctx, p, tid, cid, tenant.BreakGlassRequest{Reason: "r", TTL: time.Minute})
				return err
			},
			"BreakGlass": func(p clone.Principal, tid, cid uuid.UUID) error {
				_, err := a.BreakGlass(ctx, p, tid, cid)
				return err
			},
			"AuditEvents": func(p clone.Principal, tid, _ uuid.UUID) error {
				_, err := a.AuditEvents(ctx, p, tid, 0, 10)
				return err
			},
			"VerifyAudit": func(p clone.Principal, tid, _ uuid.UUID) error { _, err := a.VerifyAudit(ctx, p, tid); return err },
		}
		for name, call := range calls {
			// A member of the tenant, even the clone's owner: forbidden.
			wantKind(t, name+" by member", call(o.member, o.tenantID, o.cloneA), clone.ErrForbidden)
			ev := events(t, e, o.tenantID)
			last := ev[len(ev)-1]
			if last.Outcome != audit.Denied || last.Actor != o.member.Subject || last.Action != "tenant.Admin."+name {
				t.Fatalf("%s by member: last event %+v", name, last.Event)
			}
			// An outsider, and the owner of another tenant: not found.
			wantKind(t, name+" by outsider", call(o.outsider, o.tenantID, o.cloneA), clone.ErrNotFound)
			wantKind(t, name+" by other tenant's owner", call(o.otherOwner, o.tenantID, o.cloneA), clone.ErrNotFound)
			// An owner naming another tenant's clone in its own tenant: not found.
			if name != "Clones" && name != "CreateClone" && name != "AuditEvents" && name != "VerifyAudit" && name != "OffboardTenant" {
				wantKind(t, name+" on a foreign clone", call(o.owner, o.tenantID, o.otherClone.ID), clone.ErrNotFound)
			}
		}
		// Outsiders' attempts are in the chain of the nil tenant, with the target in the detail.
		var n int
		if err := e.db.GetContext(ctx, &n, e.db.Rebind(`SELECT count(*) FROM audit_events WHERE tenant_id IS NULL AND actor = ? AND outcome = 'denied'`), o.outsider.Subject); err != nil {
			t.Fatal(err)
		}
		if n != len(calls) {
			t.Fatalf("%d outsider attempts audited; want %d", n, len(calls))
		}
		// Principal roles are ignored: claiming "owner" does not help.
		wantKind(t, "claimed role", a.SuspendClone(ctx, clone.Principal{Subject: o.member.Subject, Roles: []string{"owner"}}, o.tenantID, o.cloneA), clone.ErrForbidden)
		// The other tenant's data was untouched by anything above.
		if c, err := e.s.Clone(ctx, o.otherTenant.ID, o.otherClone.ID); err != nil || c.Status != tenant.StatusActive {
			t.Fatalf("other clone: %+v %v", c, err)
		}
	})
}

// TestAdminManageClones: create, rename, suspend, resume, grant; state changes are
// audited; a suspended clone is refused by the stores' hooks.
func TestAdminManageClones(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		a := e.admin
		if err := a.RenameClone(ctx, o.admin, o.tenantID, o.cloneA, "Renamed"); err != nil {
			t.Fatal(err)
		}
		if c, _ := e.s.Clone(ctx, o.tenantID, o.cloneA); c.Name != "Renamed" {
			t.Fatalf("name %q", c.Name)
		}
		wantKind(t, "bad name", a.RenameClone(ctx, o.admin, o.tenantID, o.cloneA, "a\x00b"), clone.ErrInvalidInput)
		e.populate(t, o.ccA, "a")
		if err := a.SuspendClone(ctx, o.owner, o.tenantID, o.cloneA); err != nil {
			t.Fatal(err)
		}
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.SuspendClone"); ev.Outcome != audit.Allowed || ev.CloneID != o.cloneA || ev.Actor != o.owner.Subject {
			t.Fatalf("suspend event %+v", ev.Event)
		}
		_, err := e.s.ResolveClone(ctx, o.member.Subject, o.tenantID, o.cloneA)
		wantKind(t, "resolve suspended", err, clone.ErrSuspended)
		_, err = e.obj.ReadAll(ctx, o.ccA, "documents", "a.txt")
		wantKind(t, "read suspended object", err, clone.ErrSuspended)
		wantKind(t, "upsert suspended", e.vec.Upsert(ctx, o.ccA, []vectorstore.Vector{{ID: "z", Values: unit(0)}}), clone.ErrSuspended)
		if err := a.ResumeClone(ctx, o.owner, o.tenantID, o.cloneA); err != nil {
			t.Fatal(err)
		}
		if _, err := e.obj.ReadAll(ctx, o.ccA, "documents", "a.txt"); err != nil {
			t.Fatal(err)
		}
		// Inventory counts without reading content.
		inv, err := a.Inventory(ctx, o.admin, o.tenantID, o.cloneA)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"documents": 1, "document_chunks": 2, "insights": 1, "training_examples": 1, "conversations": 1, "messages": 2}
		for k, v := range want {
			if inv.Rows[k] != v {
				t.Fatalf("inventory rows %v; want %v", inv.Rows, want)
			}
		}
		if !inv.HasVectors || inv.Vectors != 3 || !inv.HasObjects || inv.Objects != 2 || inv.ObjectBytes == 0 {
			t.Fatalf("inventory %+v", inv)
		}
		// Clone B is empty, whatever A holds.
		invB, err := a.Inventory(ctx, o.owner, o.tenantID, o.cloneB)
		if err != nil {
			t.Fatal(err)
		}
		if invB.Vectors != 0 || invB.Objects != 0 || invB.Rows["insights"] != 0 {
			t.Fatalf("inventory B %+v", invB)
		}
		// The clone limit holds through the Admin too.
		for range 3 {
			if _, err := a.CreateClone(ctx, o.owner, o.tenantID, tenant.CloneSpec{Name: "more", OwnerSubject: o.owner.Subject}); err != nil {
				t.Fatal(err)
			}
		}
		_, err = a.CreateClone(ctx, o.owner, o.tenantID, tenant.CloneSpec{Name: "over", OwnerSubject: o.owner.Subject})
		wantKind(t, "over the limit", err, clone.ErrConflict)
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.CreateClone"); ev.Outcome != audit.Failed {
			t.Fatalf("failed create not audited as failed: %+v", ev.Event)
		}
	})
}

func unit(i int) []float32 {
	v := make([]float32, dim)
	v[i%dim] = 1
	return v
}

// TestBreakGlass: an admin reads a clone's content only with a grant for that clone,
// before it expires, read-only; every use and refusal is audited.
func TestBreakGlass(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		a := e.admin
		e.populate(t, o.ccA, "a")
		e.populate(t, o.ccB, "b")

		// No grant: refused and audited.
		_, err := a.BreakGlass(ctx, o.admin, o.tenantID, o.cloneA)
		wantKind(t, "no grant", err, clone.ErrForbidden)
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.BreakGlass"); ev.Outcome != audit.Denied || ev.CloneID != o.cloneA {
			t.Fatalf("refusal event %+v", ev.Event)
		}

		// Bad requests.
		_, err = a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Subject: o.admin.Subject, TTL: time.Hour})
		wantKind(t, "no reason", err, clone.ErrInvalidInput)
		_, err = a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Subject: o.admin.Subject, Reason: "r", TTL: tenant.DefaultMaxBreakGlass + time.Second})
		wantKind(t, "too long", err, clone.ErrInvalidInput)
		_, err = a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Subject: o.admin.Subject, Reason: "r"})
		wantKind(t, "no TTL", err, clone.ErrInvalidInput)
		_, err = a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Subject: o.member.Subject, Reason: "r", TTL: time.Hour})
		wantKind(t, "to a member", err, clone.ErrInvalidInput)
		_, err = a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.otherClone.ID, tenant.BreakGlassRequest{Subject: o.admin.Subject, Reason: "r", TTL: time.Hour})
		wantKind(t, "foreign clone", err, clone.ErrNotFound)

		// A grant for A, made by the owner for the admin.
		g, err := a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Subject: o.admin.Subject, Reason: "INC-42 data request", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.GrantBreakGlass"); ev.Outcome != audit.Allowed || ev.Reason != "INC-42 data request" || ev.Detail["subject"] != o.admin.Subject || ev.Detail["grant_id"] != g.ID.String() {
			t.Fatalf("grant event %+v", ev.Event)
		}
		cc, err := a.BreakGlass(ctx, o.admin, o.tenantID, o.cloneA)
		if err != nil {
			t.Fatal(err)
		}
		if cc.CloneID() != o.cloneA || !tenant.IsBreakGlass(cc) {
			t.Fatalf("context %v", cc)
		}
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.BreakGlass"); ev.Outcome != audit.Allowed || ev.Reason != "INC-42 data request" || ev.Detail["grant_id"] != g.ID.String() {
			t.Fatalf("use event %+v", ev.Event)
		}
		// It reads A's content...
		page, err := records.ListInsights(ctx, e.sql, cc, nil)
		if err != nil || len(page.Items) != 1 || page.Items[0].Content != "insight a" {
			t.Fatalf("insights through break-glass: %+v %v", page, err)
		}
		if b, err := e.obj.ReadAll(ctx, cc, "documents", "a.txt"); err != nil || !strings.Contains(string(b), " a") {
			t.Fatalf("object through break-glass: %q %v", b, err)
		}
		// ...read-only in the guarded stores...
		_, err = e.obj.Put(ctx, cc, "documents", "planted.txt", strings.NewReader("x"), nil)
		wantKind(t, "object write", err, clone.ErrForbidden)
		wantKind(t, "vector write", e.vec.Upsert(ctx, cc, []vectorstore.Vector{{ID: "p", Values: unit(1)}}), clone.ErrForbidden)
		// ...and never B: the grant for A does not open B, for the grantee or anyone.
		_, err = a.BreakGlass(ctx, o.admin, o.tenantID, o.cloneB)
		wantKind(t, "grant for A opens B", err, clone.ErrForbidden)
		_, err = a.BreakGlass(ctx, o.owner, o.tenantID, o.cloneA)
		wantKind(t, "grant for the admin used by the owner", err, clone.ErrForbidden)
		_, err = a.BreakGlass(ctx, o.otherOwner, o.tenantID, o.cloneA)
		wantKind(t, "other tenant's owner", err, clone.ErrNotFound)
		_, err = a.BreakGlass(ctx, o.admin, o.otherTenant.ID, o.otherClone.ID)
		wantKind(t, "other tenant's clone", err, clone.ErrNotFound)
		// The context is A's: it cannot reach B even if a caller tries.
		_, err = records.GetInsight(ctx, e.sql, cc, uuid.New())
		wantKind(t, "missing id", err, clone.ErrNotFound)

		// Expiry: refused after the grant's time, and audited.
		e.clock.Add(time.Hour + time.Second)
		_, err = a.BreakGlass(ctx, o.admin, o.tenantID, o.cloneA)
		wantKind(t, "expired", err, clone.ErrForbidden)
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.BreakGlass"); ev.Outcome != audit.Denied || !strings.Contains(ev.Reason, "expired") {
			t.Fatalf("expiry event %+v", ev.Event)
		}

		// Revocation ends a grant at once.
		g2, err := a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Subject: o.admin.Subject, Reason: "INC-43", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.BreakGlass(ctx, o.admin, o.tenantID, o.cloneA); err != nil {
			t.Fatal(err)
		}
		if err := a.RevokeBreakGlass(ctx, o.owner, o.tenantID, g2.ID); err != nil {
			t.Fatal(err)
		}
		_, err = a.BreakGlass(ctx, o.admin, o.tenantID, o.cloneA)
		wantKind(t, "revoked", err, clone.ErrForbidden)
		wantKind(t, "revoke a foreign grant", a.RevokeBreakGlass(ctx, o.otherOwner, o.otherTenant.ID, g2.ID), clone.ErrNotFound)

		// Demotion ends it too: a member is never a break-glass reader.
		_, err = a.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Subject: o.admin.Subject, Reason: "INC-44", TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.s.RemoveMember(ctx, o.tenantID, o.admin.Subject); err != nil {
			t.Fatal(err)
		}
		if err := e.s.AddMember(ctx, o.tenantID, o.admin.Subject, tenant.RoleMember); err != nil {
			t.Fatal(err)
		}
		_, err = a.BreakGlass(ctx, o.admin, o.tenantID, o.cloneA)
		wantKind(t, "demoted", err, clone.ErrForbidden)

		gs, err := a.BreakGlassGrants(ctx, o.owner, o.tenantID)
		if err != nil || len(gs) != 3 {
			t.Fatalf("grants %d %v", len(gs), err)
		}
		for _, g := range gs {
			if (g.ID == g2.ID) != (g.RevokedAt != nil) || g.ID == g2.ID && g.RevokedBy != o.owner.Subject {
				t.Fatalf("grant %+v (revoked %v)", g, g2.ID)
			}
		}

		// The two-person rule refuses self-grants.
		e.newAdmin(t, &tenant.AdminOptions{TwoPersonRule: true})
		_, err = e.admin.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneB, tenant.BreakGlassRequest{Reason: "self", TTL: time.Minute})
		wantKind(t, "self-grant", err, clone.ErrForbidden)
		if _, err := tenant.NewAdmin(e.s, &tenant.AdminOptions{MaxBreakGlass: tenant.HardMaxBreakGlass + 1}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("MaxBreakGlass over the hard cap: %v", err)
		}
	})
}

// TestBreakGlassSession: the session's context ends with the grant.
func TestBreakGlassSession(t *testing.T) {
	e := embeddedEnv(t)
	ctx := context.Background()
	o := newOrg(t, e)
	e.clock.t = time.Now().UTC()
	g, err := e.admin.GrantBreakGlass(ctx, o.owner, o.tenantID, o.cloneA, tenant.BreakGlassRequest{Reason: "INC-1", TTL: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cc, cancel, err := e.admin.BreakGlassSession(ctx, o.owner, o.tenantID, o.cloneA)
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	if d, ok := sctx.Deadline(); !ok || !d.Equal(g.ExpiresAt) {
		t.Fatalf("session deadline %v; grant expires %v", d, g.ExpiresAt)
	}
	<-sctx.Done()
	if _, err := records.ListInsights(sctx, e.sql, cc, nil); err == nil {
		t.Fatal("store call after the grant expired succeeded")
	}
}

// TestAuditQueries: owners and admins page through their tenant's events and verify
// the chain; tampering (an edited or a deleted row, as the database owner) is detected
// through the authorized API.
func TestAuditQueries(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := context.Background()
		o := newOrg(t, e)
		a := e.admin
		if err := a.SuspendClone(ctx, o.admin, o.tenantID, o.cloneA); err != nil {
			t.Fatal(err)
		}
		evs, err := a.AuditEvents(ctx, o.admin, o.tenantID, 0, 2)
		if err != nil || len(evs) != 2 {
			t.Fatalf("page 1: %d %v", len(evs), err)
		}
		next, err := a.AuditEvents(ctx, o.owner, o.tenantID, evs[1].ID, 1000)
		if err != nil || len(next) == 0 || next[0].ID <= evs[1].ID {
			t.Fatalf("page 2: %v", err)
		}
		for _, ev := range append(evs, next...) {
			if ev.TenantID != o.tenantID {
				t.Fatalf("foreign event %+v", ev)
			}
		}
		_, err = a.AuditEvents(ctx, o.otherOwner, o.tenantID, 0, 10)
		wantKind(t, "other tenant's owner", err, clone.ErrNotFound)
		rep, err := a.VerifyAudit(ctx, o.owner, o.tenantID)
		if err != nil || !rep.OK || rep.Events < 4 {
			t.Fatalf("verify: %+v %v", rep, err)
		}
		// The application role cannot edit or delete events (PostgreSQL).
		if e.name == "postgres" {
			if _, err := e.db.ExecContext(ctx, `UPDATE audit_events SET reason = 'x' WHERE tenant_id = $1`, o.tenantID); err == nil {
				t.Fatal("the application role edited the audit log")
			}
			if _, err := e.db.ExecContext(ctx, `DELETE FROM audit_events WHERE tenant_id = $1`, o.tenantID); err == nil {
				t.Fatal("the application role deleted from the audit log")
			}
		}
		if e.name == "embedded" {
			// The append-only triggers refuse the application; an insider drops them.
			if _, err := e.db.ExecContext(ctx, `UPDATE audit_events SET reason = 'x' WHERE tenant_id = ?`, o.tenantID); err == nil {
				t.Fatal("the audit log was edited through its triggers")
			}
			for _, tr := range []string{"audit_events_no_update", "audit_events_no_delete"} {
				if _, err := e.super.ExecContext(ctx, `DROP TRIGGER `+tr); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Edit one row as the owner of the database: detected.
		target := lastEvent(t, e, o.tenantID, "tenant.Admin.SuspendClone")
		if _, err := e.super.ExecContext(ctx, e.super.Rebind(`UPDATE audit_events SET actor = 'someone-else' WHERE id = ?`), target.ID); err != nil {
			t.Fatal(err)
		}
		rep, err = a.VerifyAudit(ctx, o.owner, o.tenantID)
		if err != nil || rep.OK || rep.BrokenAt != target.ID {
			t.Fatalf("edit not detected: %+v %v", rep, err)
		}
		if ev := lastEvent(t, e, o.tenantID, "tenant.Admin.VerifyAudit"); ev.Detail["ok"] != "false" {
			t.Fatalf("verification event %+v", ev.Event)
		}
		// Restore it, then delete a row: detected.
		if _, err := e.super.ExecContext(ctx, e.super.Rebind(`UPDATE audit_events SET actor = ? WHERE id = ?`), target.Actor, target.ID); err != nil {
			t.Fatal(err)
		}
		if rep, err := a.VerifyAudit(ctx, o.owner, o.tenantID); err != nil || !rep.OK {
			t.Fatalf("restored chain: %+v %v", rep, err)
		}
		if _, err := e.super.ExecContext(ctx, e.super.Rebind(`DELETE FROM audit_events WHERE id = ?`), evs[1].ID); err != nil {
			t.Fatal(err)
		}
		rep, err = a.VerifyAudit(ctx, o.admin, o.tenantID)
		if err != nil || rep.OK {
			t.Fatalf("deletion not detected: %+v %v", rep, err)
		}
		_, err = a.VerifyAudit(ctx, o.member, o.tenantID)
		wantKind(t, "member verifies", err, clone.ErrForbidden)
	})
}
