package tenant_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/tenant"
)

// accessFixture is an enterprise tenant with three clones and one subject per role, and a
// second tenant whose clone nobody of the first may reach.
type accessFixture struct {
	t                           tenant.Tenant
	a, b, c                     tenant.Clone // a: owned by cloneOwner; b: granted to member; c: nobody's but the boss's
	boss, admin, member, author string       // roles owner, admin, member, member (owner of clone a)
	other                       tenant.Tenant
	otherClone                  tenant.Clone
	otherBoss                   string
}

func newAccessFixture(t *testing.T, s *tenant.Store) *accessFixture {
	t.Helper()
	ctx := context.Background()
	u := uuid.NewString()
	f := &accessFixture{boss: "boss-" + u, admin: "admin-" + u, member: "member-" + u, author: "author-" + u, otherBoss: "otherboss-" + u}
	var err error
	if f.t, err = s.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, CloneLimit: 5, OwnerSubject: f.boss}); err != nil {
		t.Fatal(err)
	}
	for subject, role := range map[string]tenant.Role{f.admin: tenant.RoleAdmin, f.member: tenant.RoleMember, f.author: tenant.RoleMember} {
		if err := s.AddMember(ctx, f.t.ID, subject, role); err != nil {
			t.Fatalf("AddMember(%s, %s): %v", subject, role, err)
		}
	}
	mk := func(tn uuid.UUID, owner string) tenant.Clone {
		c, err := s.CreateClone(ctx, tn, tenant.CloneSpec{Name: "clone", OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f.a, f.b, f.c = mk(f.t.ID, f.author), mk(f.t.ID, f.boss), mk(f.t.ID, f.boss)
	if err := s.GrantClone(ctx, f.t.ID, f.b.ID, f.member); err != nil {
		t.Fatal(err)
	}
	if f.other, err = s.CreateTenant(ctx, tenant.TenantSpec{Name: "Other", Plan: tenant.PlanEnterprise, OwnerSubject: f.otherBoss}); err != nil {
		t.Fatal(err)
	}
	f.otherClone = mk(f.other.ID, f.otherBoss)
	return f
}

func TestResolveCloneRules(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		f := newAccessFixture(t, s)
		type want struct {
			err  error // nil: allowed
			role string
		}
		cases := []struct {
			name          string
			subject       string
			tenant, clone uuid.UUID
			want          want
		}{
			// No silent administrator bypass: tenant owners and admins need a grant (or
			// break-glass through an Admin) to act as a clone they do not own.
			{"tenant owner refused an ungranted clone", f.boss, f.t.ID, f.a.ID, want{err: clone.ErrForbidden}},
			{"admin refused an ungranted clone", f.admin, f.t.ID, f.c.ID, want{err: clone.ErrForbidden}},
			{"clone owner reaches own clone", f.author, f.t.ID, f.a.ID, want{role: "member"}},
			{"member reaches granted clone", f.member, f.t.ID, f.b.ID, want{role: "member"}},
			{"member refused ungranted clone", f.member, f.t.ID, f.c.ID, want{err: clone.ErrForbidden}},
			{"clone owner refused another clone", f.author, f.t.ID, f.b.ID, want{err: clone.ErrForbidden}},
			{"other tenant's clone under its own tenant", f.boss, f.other.ID, f.otherClone.ID, want{err: clone.ErrNotFound}},
			{"other tenant's clone under my tenant", f.boss, f.t.ID, f.otherClone.ID, want{err: clone.ErrNotFound}},
			{"my clone under the other tenant", f.boss, f.other.ID, f.a.ID, want{err: clone.ErrNotFound}},
			{"stranger", "stranger-" + uuid.NewString(), f.t.ID, f.a.ID, want{err: clone.ErrNotFound}},
			{"missing clone in my tenant", f.boss, f.t.ID, uuid.New(), want{err: clone.ErrNotFound}},
			{"missing tenant", f.boss, uuid.New(), f.a.ID, want{err: clone.ErrNotFound}},
			{"nil tenant", f.boss, uuid.Nil, f.a.ID, want{err: clone.ErrInvalidID}},
			{"max clone", f.boss, f.t.ID, uuid.Max, want{err: clone.ErrInvalidID}},
			{"empty subject", "", f.t.ID, f.a.ID, want{err: clone.ErrInvalidInput}},
			{"control characters", "boss\x00", f.t.ID, f.a.ID, want{err: clone.ErrInvalidInput}},
			{"injection", "x' OR '1'='1", f.t.ID, f.a.ID, want{err: clone.ErrNotFound}},
		}
		for _, tc := range cases {
			cc, err := s.ResolveClone(ctx, tc.subject, tc.tenant, tc.clone)
			if tc.want.err != nil {
				if !errors.Is(err, tc.want.err) || cc.Valid() {
					t.Errorf("%s: ResolveClone = %v, %v; want %v and no context", tc.name, cc, err, tc.want.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: ResolveClone: %v", tc.name, err)
				continue
			}
			if cc.TenantID() != tc.tenant || cc.CloneID() != tc.clone {
				t.Errorf("%s: resolved %v; want tenant %s clone %s", tc.name, cc, tc.tenant, tc.clone)
			}
			if p := cc.Principal(); p.Subject != tc.subject || len(p.Roles) != 1 || p.Roles[0] != tc.want.role {
				t.Errorf("%s: principal %+v; want subject %s role %s", tc.name, p, tc.subject, tc.want.role)
			}
		}
		// The two kinds of refusal map to the statuses the middleware answers with.
		_, err := s.ResolveClone(ctx, f.member, f.t.ID, f.c.ID)
		if clone.HTTPStatus(err) != 403 {
			t.Errorf("ungranted: status %d", clone.HTTPStatus(err))
		}
		_, err = s.ResolveClone(ctx, f.boss, f.other.ID, f.otherClone.ID)
		if clone.HTTPStatus(err) != 404 {
			t.Errorf("foreign: status %d", clone.HTTPStatus(err))
		}
	})
}

func TestResolveCloneSuspended(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		f := newAccessFixture(t, s)
		setStatus := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(db.Rebind(q), args...); err != nil {
				t.Fatal(err)
			}
		}
		for _, st := range []tenant.Status{tenant.StatusSuspended, tenant.StatusOffboarding, tenant.StatusOffboarded} {
			setStatus("UPDATE clones SET status = ? WHERE tenant_id = ? AND id = ?", st, f.t.ID, f.b.ID)
			if _, err := s.ResolveClone(ctx, f.member, f.t.ID, f.b.ID); !errors.Is(err, clone.ErrSuspended) {
				t.Errorf("clone %s, granted member: %v; want ErrSuspended", st, err)
			}
			// A subject without access learns nothing about the clone's state.
			if _, err := s.ResolveClone(ctx, f.author, f.t.ID, f.b.ID); !errors.Is(err, clone.ErrForbidden) {
				t.Errorf("clone %s, ungranted member: %v; want ErrForbidden", st, err)
			}
			if _, err := s.ResolveClone(ctx, f.otherBoss, f.t.ID, f.b.ID); !errors.Is(err, clone.ErrNotFound) {
				t.Errorf("clone %s, stranger: %v; want ErrNotFound", st, err)
			}
		}
		setStatus("UPDATE clones SET status = 'active' WHERE tenant_id = ? AND id = ?", f.t.ID, f.b.ID)
		if _, err := s.ResolveClone(ctx, f.member, f.t.ID, f.b.ID); err != nil {
			t.Fatalf("reactivated: %v", err)
		}
		setStatus("UPDATE tenants SET status = 'suspended' WHERE id = ?", f.t.ID)
		if _, err := s.ResolveClone(ctx, f.author, f.t.ID, f.a.ID); !errors.Is(err, clone.ErrSuspended) {
			t.Errorf("tenant suspended, clone owner: %v; want ErrSuspended", err)
		}
		if err := s.AddMember(ctx, f.t.ID, "late-"+uuid.NewString(), tenant.RoleMember); !errors.Is(err, clone.ErrSuspended) {
			t.Errorf("AddMember to a suspended tenant: %v; want ErrSuspended", err)
		}
	})
}

func TestGrantsAndMembership(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		f := newAccessFixture(t, s)

		// Grant is idempotent; revoke removes access; revoke is idempotent.
		if err := s.GrantClone(ctx, f.t.ID, f.b.ID, f.member); err != nil {
			t.Fatalf("second grant: %v", err)
		}
		if n := count(t, db, "SELECT count(*) FROM clone_grants WHERE tenant_id = ? AND clone_id = ? AND subject = ?", f.t.ID, f.b.ID, f.member); n != 1 {
			t.Fatalf("%d grant rows; want 1", n)
		}
		if err := s.RevokeClone(ctx, f.t.ID, f.b.ID, f.member); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveClone(ctx, f.member, f.t.ID, f.b.ID); !errors.Is(err, clone.ErrForbidden) {
			t.Fatalf("after revoke: %v; want ErrForbidden", err)
		}
		if err := s.RevokeClone(ctx, f.t.ID, f.b.ID, f.member); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
		// An admin's access, too, comes and goes with an explicit grant.
		if err := s.GrantClone(ctx, f.t.ID, f.b.ID, f.admin); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveClone(ctx, f.admin, f.t.ID, f.b.ID); err != nil {
			t.Fatalf("admin with a grant: %v", err)
		}
		if err := s.RevokeClone(ctx, f.t.ID, f.b.ID, f.admin); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveClone(ctx, f.admin, f.t.ID, f.b.ID); !errors.Is(err, clone.ErrForbidden) {
			t.Fatalf("admin after its grant was revoked: %v; want ErrForbidden", err)
		}

		// Grants are confined to the tenant: a clone of another tenant, a non-member.
		if err := s.GrantClone(ctx, f.t.ID, f.otherClone.ID, f.member); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("grant of a foreign clone: %v; want ErrNotFound", err)
		}
		if err := s.GrantClone(ctx, f.other.ID, f.otherClone.ID, f.member); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("grant to a non-member: %v; want ErrInvalidInput", err)
		}
		if _, err := s.ResolveClone(ctx, f.member, f.other.ID, f.otherClone.ID); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("non-member after refused grant: %v; want ErrNotFound", err)
		}

		// Membership: duplicates, bad roles, missing tenants, bad IDs.
		if err := s.AddMember(ctx, f.t.ID, f.member, tenant.RoleAdmin); !errors.Is(err, clone.ErrConflict) {
			t.Errorf("duplicate member: %v; want ErrConflict", err)
		}
		if r, err := s.MemberRole(ctx, f.t.ID, f.member); err != nil || r != tenant.RoleMember {
			t.Errorf("role after refused duplicate: %q, %v; want member", r, err)
		}
		if err := s.AddMember(ctx, f.t.ID, "x-"+uuid.NewString(), "superuser"); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("unknown role: %v; want ErrInvalidInput", err)
		}
		if err := s.AddMember(ctx, uuid.New(), "x-"+uuid.NewString(), tenant.RoleMember); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("missing tenant: %v; want ErrNotFound", err)
		}
		if err := s.AddMember(ctx, uuid.Nil, "x", tenant.RoleMember); !errors.Is(err, clone.ErrInvalidID) {
			t.Errorf("nil tenant: %v; want ErrInvalidID", err)
		}
		if err := s.AddMember(ctx, f.t.ID, strings.Repeat("s", tenant.MaxSubjectLen+1), tenant.RoleMember); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("long subject: %v; want ErrInvalidInput", err)
		}
		if err := s.GrantClone(ctx, f.t.ID, uuid.Nil, f.member); !errors.Is(err, clone.ErrInvalidID) {
			t.Errorf("grant of the nil clone: %v; want ErrInvalidID", err)
		}
		if _, err := s.MemberRole(ctx, f.t.ID, "nobody-"+uuid.NewString()); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("MemberRole of a stranger: %v; want ErrNotFound", err)
		}

		// Removing a member ends all access: grants go, and owning a clone is not enough.
		if err := s.GrantClone(ctx, f.t.ID, f.b.ID, f.author); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveMember(ctx, f.t.ID, f.author); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "SELECT count(*) FROM clone_grants WHERE tenant_id = ? AND subject = ?", f.t.ID, f.author); n != 0 {
			t.Errorf("%d grants left after RemoveMember", n)
		}
		for _, c := range []tenant.Clone{f.a, f.b} {
			if _, err := s.ResolveClone(ctx, f.author, f.t.ID, c.ID); !errors.Is(err, clone.ErrNotFound) {
				t.Errorf("removed member, clone %s: %v; want ErrNotFound", c.ID, err)
			}
		}
		if err := s.RemoveMember(ctx, f.t.ID, f.author); err != nil {
			t.Errorf("second RemoveMember: %v", err)
		}
		// The last owner stays.
		if err := s.RemoveMember(ctx, f.t.ID, f.boss); !errors.Is(err, clone.ErrConflict) {
			t.Errorf("removing the last owner: %v; want ErrConflict", err)
		}
		second := "boss2-" + uuid.NewString()
		if err := s.AddMember(ctx, f.t.ID, second, tenant.RoleOwner); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveMember(ctx, f.t.ID, f.boss); err != nil {
			t.Errorf("removing one of two owners: %v", err)
		}
		if err := s.RemoveMember(ctx, uuid.New(), f.boss); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("RemoveMember of a missing tenant: %v; want ErrNotFound", err)
		}
	})
}

// TestResolveCloneSolo: the subject of a solo tenant created on first sign-in can select
// its own clone explicitly, and nobody else can.
func TestResolveCloneSolo(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		subject := "solo-" + uuid.NewString()
		cc, _, err := s.ProvisionSolo(ctx, subject)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ResolveClone(ctx, subject, cc.TenantID(), cc.CloneID())
		if err != nil || !got.Same(cc) || !got.Principal().HasRole("owner") {
			t.Fatalf("own solo clone: %v, %v", got, err)
		}
		other, _, err := s.ProvisionSolo(ctx, subject+"-other")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResolveClone(ctx, subject+"-other", cc.TenantID(), cc.CloneID()); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("another solo subject: %v; want ErrNotFound", err)
		}
		if _, err := s.ResolveClone(ctx, subject, other.TenantID(), cc.CloneID()); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("own clone under a foreign tenant: %v; want ErrNotFound", err)
		}
	})
}
