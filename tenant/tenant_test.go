package tenant_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/tenant"
)

func count(t *testing.T, db *sqlx.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, db.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestProvisionSoloIdempotent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		subject := "user-" + uuid.NewString()
		cc, created, err := s.ProvisionSolo(ctx, subject)
		if err != nil || !created || !cc.Valid() {
			t.Fatalf("first ProvisionSolo = %v, %v, %v", cc, created, err)
		}
		if p := cc.Principal(); p.Subject != subject || !p.HasRole("owner") {
			t.Fatalf("principal %+v", p)
		}
		again, created, err := s.ProvisionSolo(ctx, subject)
		if err != nil || created || !again.Same(cc) {
			t.Fatalf("second ProvisionSolo = %v, %v, %v; want %v, false", again, created, err, cc)
		}
		tn, err := s.Tenant(ctx, cc.TenantID())
		if err != nil || tn.Plan != tenant.PlanSolo || tn.CloneLimit != 1 || tn.Status != tenant.StatusActive {
			t.Fatalf("tenant %+v, %v", tn, err)
		}
		c, err := s.Clone(ctx, cc.TenantID(), cc.CloneID())
		if err != nil || c.OwnerSubject != subject || c.Status != tenant.StatusActive {
			t.Fatalf("clone %+v, %v", c, err)
		}
		if n := count(t, db, "SELECT count(*) FROM tenant_members WHERE tenant_id = ? AND subject = ? AND role = 'owner'", cc.TenantID(), subject); n != 1 {
			t.Fatalf("%d owner memberships", n)
		}
		// A different subject gets a different tenant and clone.
		other, _, err := s.ProvisionSolo(ctx, subject+"-other")
		if err != nil || other.TenantID() == cc.TenantID() || other.CloneID() == cc.CloneID() {
			t.Fatalf("other subject: %v, %v", other, err)
		}
		// The clone is not found under another tenant.
		if _, err := s.Clone(ctx, other.TenantID(), cc.CloneID()); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("clone under a foreign tenant: %v; want ErrNotFound", err)
		}
	})
}

// TestProvisionSoloRace: 100 simultaneous first sign-ins of one subject create exactly
// one tenant and one clone, and all return the same context.
func TestProvisionSoloRace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		subject := "racer-" + uuid.NewString()
		const n = 100
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			results = make([]clone.CloneContext, n)
			errsOut = make([]error, n)
			created = make([]bool, n)
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], created[i], errsOut[i] = s.ProvisionSolo(ctx, subject)
			}()
		}
		close(start)
		wg.Wait()
		creators := 0
		for i := range n {
			if errsOut[i] != nil {
				t.Fatalf("call %d: %v", i, errsOut[i])
			}
			if !results[i].Same(results[0]) {
				t.Fatalf("call %d got %v; call 0 got %v", i, results[i], results[0])
			}
			if created[i] {
				creators++
			}
		}
		if creators != 1 {
			t.Fatalf("%d calls report creating the clone; want 1", creators)
		}
		if c := count(t, db, "SELECT count(*) FROM tenants WHERE signup_subject = ?", subject); c != 1 {
			t.Fatalf("%d tenants for the subject; want 1", c)
		}
		if c := count(t, db, "SELECT count(*) FROM clones WHERE owner_subject = ?", subject); c != 1 {
			t.Fatalf("%d clones for the subject; want 1", c)
		}
	})
}

func TestProvisionSoloRefusals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		for _, bad := range []string{"", strings.Repeat("x", tenant.MaxSubjectLen+1), "a\x00b", "line\nbreak", "\xff\xfe"} {
			if _, _, err := s.ProvisionSolo(ctx, bad); !errors.Is(err, clone.ErrInvalidInput) {
				t.Errorf("ProvisionSolo(%q) = %v; want ErrInvalidInput", bad, err)
			}
		}
		// SQL injection in a subject is just a subject.
		inj := "x' OR '1'='1 " + uuid.NewString() // unique: the PostgreSQL database is shared
		cc, _, err := s.ProvisionSolo(ctx, inj)
		if err != nil {
			t.Fatalf("ProvisionSolo(injection) = %v", err)
		}
		if c := count(t, db, "SELECT count(*) FROM tenants WHERE signup_subject = ?", inj); c != 1 {
			t.Fatalf("injection subject stored %d times", c)
		}
		// A suspended clone is refused, not re-created.
		if _, err := db.Exec(db.Rebind("UPDATE clones SET status = 'suspended' WHERE tenant_id = ? AND id = ?"), cc.TenantID(), cc.CloneID()); err != nil {
			t.Fatal(err)
		}
		got, _, err := s.ProvisionSolo(ctx, inj)
		if !errors.Is(err, clone.ErrSuspended) || got.Valid() {
			t.Fatalf("suspended: %v, %v; want ErrSuspended and no context", got, err)
		}
		if clone.HTTPStatus(err) != 403 {
			t.Fatalf("suspended maps to %d", clone.HTTPStatus(err))
		}
		if c := count(t, db, "SELECT count(*) FROM clones WHERE owner_subject = ?", inj); c != 1 {
			t.Fatalf("%d clones after suspension; want 1", c)
		}
	})
}

func TestEnterpriseTenant(t *testing.T) {
	forEachDialect(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		owner := "boss-" + uuid.NewString()
		tn, err := s.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, CloneLimit: 3, OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		var made []tenant.Clone
		for i := range 3 {
			c, err := s.CreateClone(ctx, tn.ID, tenant.CloneSpec{Name: "clone", OwnerSubject: owner})
			if err != nil {
				t.Fatalf("clone %d: %v", i, err)
			}
			made = append(made, c)
		}
		if _, err := s.CreateClone(ctx, tn.ID, tenant.CloneSpec{OwnerSubject: owner}); !errors.Is(err, clone.ErrConflict) {
			t.Fatalf("clone over the limit: %v; want ErrConflict", err)
		}
		list, err := s.Clones(ctx, tn.ID)
		if err != nil || len(list) != 3 {
			t.Fatalf("Clones = %d, %v", len(list), err)
		}
		for _, c := range made {
			if !slices.ContainsFunc(list, func(l tenant.Clone) bool { return l.ID == c.ID && l.TenantID == tn.ID }) {
				t.Fatalf("created clone %s is not listed in its tenant: %+v", c.ID, list)
			}
		}
		if _, err := s.CreateClone(ctx, uuid.New(), tenant.CloneSpec{OwnerSubject: owner}); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("clone in a missing tenant: %v; want ErrNotFound", err)
		}
		if _, err := s.CreateTenant(ctx, tenant.TenantSpec{Plan: "gold", OwnerSubject: owner}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("unknown plan: %v", err)
		}
		// Concurrent creation cannot exceed the limit.
		tn2, err := s.CreateTenant(ctx, tenant.TenantSpec{Plan: tenant.PlanEnterprise, CloneLimit: 2, OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateClone(ctx, tn2.ID, tenant.CloneSpec{OwnerSubject: "stranger"}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("clone for a non-member: %v; want ErrInvalidInput", err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 10)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.CreateClone(ctx, tn2.ID, tenant.CloneSpec{OwnerSubject: owner})
			}()
		}
		wg.Wait()
		created := 0
		for i, err := range errs {
			switch {
			case err == nil:
				created++
			case !errors.Is(err, clone.ErrConflict):
				t.Fatalf("concurrent CreateClone %d: %v; want success or ErrConflict", i, err)
			}
		}
		if created != 2 {
			t.Fatalf("%d concurrent CreateClone calls succeeded under a limit of 2", created)
		}
		if c := count(t, db, "SELECT count(*) FROM clones WHERE tenant_id = ?", tn2.ID); c != 2 {
			t.Fatalf("%d clones created concurrently under a limit of 2", c)
		}
	})
}
