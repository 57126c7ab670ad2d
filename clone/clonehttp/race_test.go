package clonehttp_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/tenant"
)

// barrierResolver is a deliberately slow resolver: every first-sign-in lookup waits
// inside the resolver until want lookups are inside at once, then all go on to the real
// store together.
type barrierResolver struct {
	clonehttp.Resolver
	want     int
	mu       sync.Mutex
	inside   int
	peak     int
	open     chan struct{}
	opened   sync.Once
	calls    atomic.Int64
	fallback *time.Timer
}

func newBarrierResolver(r clonehttp.Resolver, want int) *barrierResolver {
	b := &barrierResolver{Resolver: r, want: want, open: make(chan struct{})}
	// Only a broken middleware, one that merges lookups of different subjects, keeps
	// the barrier from filling; the fallback then lets the merged lookup finish so that
	// the test can report what each subject got instead of hanging. A correct run never
	// waits for it, and the test's verdict does not depend on it.
	b.fallback = time.AfterFunc(20*time.Second, func() { b.opened.Do(func() { close(b.open) }) })
	return b
}

func (b *barrierResolver) ProvisionSolo(ctx context.Context, subject string) (clone.CloneContext, bool, error) {
	b.calls.Add(1)
	b.mu.Lock()
	b.inside++
	b.peak = max(b.peak, b.inside)
	if b.inside == b.want {
		b.opened.Do(func() { close(b.open) })
	}
	b.mu.Unlock()
	<-b.open
	cc, created, err := b.Resolver.ProvisionSolo(ctx, subject)
	b.mu.Lock()
	b.inside--
	b.mu.Unlock()
	return cc, created, err
}

// TestColdCacheRace: eight subjects, each signing in for the first time (eight solo
// tenants), hit a cold cache at the same moment through a resolver that holds every
// lookup until all eight are inside it. Each request must get exactly its own clone —
// the one the store gives that subject — and each subject's lookup must be its own:
// a single-flight or cache key that lost the subject would merge them and hand the
// subjects each other's clone. The same requests are then answered from the warm cache.
func TestColdCacheRace(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *tenant.Store, _ *sqlx.DB) {
		const n = 8
		res := newBarrierResolver(s, n)
		defer res.fallback.Stop()
		// The barrier holds lookups; they must not run out of time while held.
		a := newApp(t, newHMAC(t), res, &clonehttp.Options{ResolveTimeout: time.Hour})
		subjects := make([]string, n)
		toks := make([]string, n)
		for i := range subjects {
			subjects[i] = fmt.Sprintf("race-%d-%s", i, uuid.NewString())
			toks[i] = hmacSigner().sign(t, claims(subjects[i]))
		}
		replies := make([]reply, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { replies[i] = a.get(t, "/me", toks[i]) })
		}
		wg.Wait()

		check := func(round string) {
			t.Helper()
			tenants := map[string]string{}
			for i, r := range replies {
				if r.status != http.StatusOK {
					t.Fatalf("%s: subject %d: %d %s", round, i, r.status, r.body)
				}
				own, _, err := s.ProvisionSolo(context.Background(), subjects[i])
				if err != nil {
					t.Fatal(err)
				}
				if r.who.Subject != subjects[i] || r.who.Tenant != own.TenantID().String() || r.who.Clone != own.CloneID().String() {
					t.Fatalf("%s: subject %d got %+v; its own clone is tenant %s clone %s", round, i, r.who, own.TenantID(), own.CloneID())
				}
				if other, dup := tenants[r.who.Tenant]; dup {
					t.Fatalf("%s: subjects %s and %s share tenant %s", round, other, subjects[i], r.who.Tenant)
				}
				tenants[r.who.Tenant] = subjects[i]
			}
		}
		check("cold cache")
		if c := res.calls.Load(); c != n {
			t.Fatalf("%d lookups for %d subjects: lookups of different subjects were merged", c, n)
		}
		res.mu.Lock()
		peak := res.peak
		res.mu.Unlock()
		t.Logf("%d lookups inside the resolver at once", peak)
		if ev := denials(a.audit); len(ev) != 0 {
			t.Fatalf("refusals audited: %+v", ev)
		}

		for i := range n {
			wg.Go(func() { replies[i] = a.get(t, "/me", toks[i]) })
		}
		wg.Wait()
		check("warm cache")
		if c := res.calls.Load(); c != n {
			t.Fatalf("%d lookups after the warm round; want %d (all cached)", c, n)
		}
	})
}
