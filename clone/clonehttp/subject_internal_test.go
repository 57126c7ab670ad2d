package clonehttp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
)

// unusedResolver fails the test if the middleware asks it anything: the requests of
// TestSubjectAssertion are answered from the cache.
type unusedResolver struct{ t *testing.T }

func (u unusedResolver) ProvisionSolo(context.Context, string) (clone.CloneContext, bool, error) {
	u.t.Error("resolver called")
	return clone.CloneContext{}, false, context.Canceled
}

func (u unusedResolver) ResolveClone(context.Context, string, uuid.UUID, uuid.UUID) (clone.CloneContext, error) {
	u.t.Error("resolver called")
	return clone.CloneContext{}, context.Canceled
}

// TestSubjectAssertion: the middleware checks the context a request would get against
// the authenticated subject (and the selection) whatever path it came by, the cache
// included. A cache entry under alice's key that holds bob's clone — what a cache or
// single-flight key missing the subject would produce — is an isolation violation:
// 500, audited as a violation, and the handler never runs. So is an entry for a
// selection that holds another clone.
func TestSubjectAssertion(t *testing.T) {
	bob, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	aliceElsewhere, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	selT, selC := uuid.New(), uuid.New()
	cache := NewCache(nil)
	cache.putIf(cache.generation(), cacheKey{subject: "alice"}, bob)
	cache.putIf(cache.generation(), cacheKey{subject: "alice", tenant: selT, cloneID: selC}, aliceElsewhere)
	sink := &audit.Memory{}
	var reached atomic.Int64
	auth := AuthenticatorFunc(func(*http.Request) (clone.Principal, error) { return clone.Principal{Subject: "alice"}, nil })
	h := Middleware(auth, unusedResolver{t}, &Options{Cache: cache, Audit: sink})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
	}))
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"another subject's clone", nil},
		{"another clone than the selected one", map[string]string{TenantHeader: selT.String(), CloneHeader: selC.String()}},
	} {
		sink.Reset()
		req := httptest.NewRequest(http.MethodGet, "/me", nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "isolation-violation") {
			t.Fatalf("%s: %d %s; want 500 isolation-violation", tc.name, w.Code, w.Body)
		}
		for _, id := range []uuid.UUID{bob.TenantID(), bob.CloneID(), aliceElsewhere.TenantID(), aliceElsewhere.CloneID()} {
			if strings.Contains(w.Body.String(), id.String()) {
				t.Fatalf("%s: the response names a clone: %s", tc.name, w.Body)
			}
		}
		ev := sink.Events()
		if len(ev) != 1 || ev[0].Outcome != audit.Violation || ev[0].Actor != "alice" {
			t.Fatalf("%s: audit events %+v; want one violation by alice", tc.name, ev)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the handler ran %d times", n)
	}
}
