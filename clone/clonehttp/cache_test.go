package clonehttp_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/tenant"
)

// TestCacheInvalidation: a suspension, an offboarding or a revoked grant bites on the
// next request once the cache is told, and refusals are never cached.
func TestCacheInvalidation(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		ctx := context.Background()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(db.Rebind(q), args...); err != nil {
				t.Fatal(err)
			}
		}
		res := &countingResolver{Resolver: s}
		a := newApp(t, newHMAC(t), res, nil)
		subject := "solo-" + uuid.NewString()
		tok := hmacSigner().sign(t, claims(subject))
		r := a.get(t, "/me", tok)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		tenantID, cloneID := uuid.MustParse(r.who.Tenant), uuid.MustParse(r.who.Clone)

		// Suspended in the store: cached until invalidated (bounded by the TTL).
		exec("UPDATE clones SET status = 'suspended' WHERE tenant_id = ? AND id = ?", tenantID, cloneID)
		if r := a.get(t, "/me", tok); r.status != 200 {
			t.Fatalf("cached request after suspension: %d", r.status)
		}
		a.cache.InvalidateClone(tenantID, cloneID)
		a.audit.Reset()
		for range 2 { // twice: the refusal is not cached either
			if r := a.get(t, "/me", tok); r.status != http.StatusForbidden || r.prob.Kind != "suspended" {
				t.Fatalf("after InvalidateClone: %d %+v; want 403 suspended", r.status, r.prob)
			}
		}
		if ev := denials(a.audit); len(ev) != 2 || ev[0].Action != "clonehttp.Resolve" || ev[0].Actor != subject {
			t.Fatalf("suspension denials %+v", ev)
		}
		exec("UPDATE clones SET status = 'active' WHERE tenant_id = ? AND id = ?", tenantID, cloneID)
		if r := a.get(t, "/me", tok); r.status != 200 {
			t.Fatalf("reactivated: %d", r.status)
		}
		exec("UPDATE tenants SET status = 'offboarded' WHERE id = ?", tenantID)
		a.cache.InvalidateTenant(tenantID)
		if r := a.get(t, "/me", tok); r.status != http.StatusForbidden {
			t.Fatalf("after InvalidateTenant: %d; want 403", r.status)
		}

		// A revoked grant: Invalidate(subject).
		boss, member := "boss-"+uuid.NewString(), "member-"+uuid.NewString()
		tn, err := s.CreateTenant(ctx, tenant.TenantSpec{Plan: tenant.PlanEnterprise, OwnerSubject: boss})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.CreateClone(ctx, tn.ID, tenant.CloneSpec{OwnerSubject: boss})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(ctx, tn.ID, member, tenant.RoleMember); err != nil {
			t.Fatal(err)
		}
		if err := s.GrantClone(ctx, tn.ID, c.ID, member); err != nil {
			t.Fatal(err)
		}
		mtok := hmacSigner().sign(t, claims(member))
		if r := a.get(t, "/me", mtok, sel(tn.ID, c.ID)...); r.status != 200 || r.who.Roles[0] != "member" {
			t.Fatalf("granted: %d %+v", r.status, r.who)
		}
		if err := s.RevokeClone(ctx, tn.ID, c.ID, member); err != nil {
			t.Fatal(err)
		}
		a.cache.Invalidate(member)
		if r := a.get(t, "/me", mtok, sel(tn.ID, c.ID)...); r.status != http.StatusForbidden {
			t.Fatalf("revoked: %d; want 403", r.status)
		}
		// The boss's selection of the same clone is a different cache entry from the member's.
		if r := a.get(t, "/me", hmacSigner().sign(t, claims(boss)), sel(tn.ID, c.ID)...); r.status != 200 || r.who.Subject != boss || r.who.Roles[0] != "owner" {
			t.Fatalf("boss: %d %+v", r.status, r.who)
		}
	})
}

// TestCacheTTL: an entry is reused until its TTL passes, then resolved again.
func TestCacheTTL(t *testing.T) {
	s, _ := sqliteStore(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cache := clonehttp.NewCache(&clonehttp.CacheOptions{TTL: time.Minute, Now: clock})
	res := &countingResolver{Resolver: s}
	a := newApp(t, newHMAC(t), res, &clonehttp.Options{Cache: cache})
	tok := hmacSigner().sign(t, claims("ttl-"+uuid.NewString()))
	for range 3 {
		if r := a.get(t, "/me", tok); r.status != 200 {
			t.Fatal(r.status)
		}
	}
	if n := res.calls.Load(); n != 1 {
		t.Fatalf("%d store calls within the TTL; want 1", n)
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	if r := a.get(t, "/me", tok); r.status != 200 {
		t.Fatal(r.status)
	}
	if n := res.calls.Load(); n != 2 {
		t.Fatalf("%d store calls after the TTL; want 2", n)
	}
}

// TestCacheBounded: the cache never holds more than MaxEntries.
func TestCacheBounded(t *testing.T) {
	s, _ := sqliteStore(t)
	cache := clonehttp.NewCache(&clonehttp.CacheOptions{MaxEntries: 16})
	a := newApp(t, newHMAC(t), s, &clonehttp.Options{Cache: cache})
	for i := range 40 {
		if r := a.get(t, "/me", hmacSigner().sign(t, claims("bounded-"+uuid.NewString()))); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
		if n := cache.Len(); n > 16 {
			t.Fatalf("cache holds %d entries; bound 16", n)
		}
	}
	if cache.Len() == 0 {
		t.Fatal("nothing cached")
	}
	cache.Purge()
	if cache.Len() != 0 {
		t.Fatal("Purge left entries")
	}
}

// TestWarmCacheWithoutDatabase: once warm, requests are served with the database closed;
// a cold request then fails with 503, audited, never 500.
func TestWarmCacheWithoutDatabase(t *testing.T) {
	s, db := sqliteStore(t)
	a := newApp(t, newHMAC(t), s, nil)
	tok := hmacSigner().sign(t, claims("warm-"+uuid.NewString()))
	if r := a.get(t, "/me", tok); r.status != 200 {
		t.Fatal(r.status)
	}
	db.Close()
	for range 10 {
		if r := a.get(t, "/me", tok); r.status != 200 {
			t.Fatalf("warm request with the database closed: %d %s", r.status, r.body)
		}
	}
	a.audit.Reset()
	r := a.get(t, "/me", hmacSigner().sign(t, claims("cold-"+uuid.NewString())))
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("cold request with the database closed: %d %s; want 503", r.status, r.body)
	}
	checkNoLeak(t, "database closed", r.body)
	if ev := denials(a.audit); len(ev) != 1 || ev[0].Outcome != audit.Failed {
		t.Fatalf("events %+v; want one failure", ev)
	}
}

// lyingResolver returns another clone than the one asked for, as a buggy or compromised
// store might.
type lyingResolver struct {
	clonehttp.Resolver
	other clone.CloneContext
}

func (l lyingResolver) ProvisionSolo(ctx context.Context, subject string) (clone.CloneContext, bool, error) {
	return l.other, false, nil
}

func (l lyingResolver) ResolveClone(ctx context.Context, subject string, tenantID, cloneID uuid.UUID) (clone.CloneContext, error) {
	// Right subject, wrong clone.
	return clone.New(l.other.TenantID(), l.other.CloneID(), clone.Principal{Subject: subject})
}

// TestResolverViolation: a context that does not match the request is an isolation
// violation: 500 with nothing leaked, audited as a violation, the handler never runs.
func TestResolverViolation(t *testing.T) {
	s, _ := sqliteStore(t)
	victim, _, err := s.ProvisionSolo(context.Background(), "victim-"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(t, newHMAC(t), lyingResolver{Resolver: s, other: victim}, nil)
	tok := hmacSigner().sign(t, claims("eve-"+uuid.NewString()))
	for _, hdr := range [][]string{nil, sel(uuid.New(), uuid.New())} {
		a.audit.Reset()
		r := a.get(t, "/me", tok, hdr...)
		if r.status != http.StatusInternalServerError || r.prob.Kind != "isolation-violation" {
			t.Fatalf("lying resolver: %d %+v", r.status, r.prob)
		}
		checkNoLeak(t, "violation", r.body)
		if strings.Contains(string(r.body), victim.TenantID().String()) || strings.Contains(string(r.body), victim.CloneID().String()) {
			t.Fatalf("violation body names the victim: %s", r.body)
		}
		if ev := denials(a.audit); len(ev) != 1 || ev[0].Outcome != audit.Violation {
			t.Fatalf("events %+v; want one violation", ev)
		}
	}
	if a.reached.Load() != 0 {
		t.Fatal("a request reached the handler")
	}
}
