package clonehttp_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/tenant"
)

// TestRequireSelection: an enterprise-only deployment refuses requests without a
// selection (400) and creates no solo tenant.
func TestRequireSelection(t *testing.T) {
	s, db := sqliteStore(t)
	a := newApp(t, newHMAC(t), s, &clonehttp.Options{RequireSelection: true})
	subject := "member-" + uuid.NewString()
	tok := hmacSigner().sign(t, claims(subject))
	r := a.get(t, "/me", tok)
	if r.status != http.StatusBadRequest || r.prob.Kind != "invalid-input" {
		t.Fatalf("no selection: %d %+v", r.status, r.prob)
	}
	if n := count(t, db, "SELECT count(*) FROM tenants WHERE signup_subject = ?", subject); n != 0 {
		t.Fatalf("%d solo tenants created", n)
	}
	if ev := denials(a.audit); len(ev) != 1 || ev[0].Action != "clonehttp.Select" || ev[0].Actor != subject {
		t.Fatalf("events %+v", ev)
	}
	tn, err := s.CreateTenant(context.Background(), tenant.TenantSpec{Plan: tenant.PlanEnterprise, OwnerSubject: subject})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateClone(context.Background(), tn.ID, tenant.CloneSpec{OwnerSubject: subject})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.get(t, "/me", tok, sel(tn.ID, c.ID)...); r.status != 200 || r.who.Clone != c.ID.String() {
		t.Fatalf("with selection: %d %s", r.status, r.body)
	}
}

// panickingResolver panics, as a buggy host resolver might.
type panickingResolver struct{}

func (panickingResolver) ProvisionSolo(context.Context, string) (clone.CloneContext, bool, error) {
	panic("resolver bug")
}

func (panickingResolver) ResolveClone(context.Context, string, uuid.UUID, uuid.UUID) (clone.CloneContext, error) {
	var m map[string]int
	//lint:ignore SA5000 a runtime panic (not a panic call) is the point of this resolver
	m["x"] = 1 // nil map write
	return clone.CloneContext{}, nil
}

// TestCustomAuthenticatorAndResolver: errors without a kind from an authenticator are
// 401, an empty subject is 401, and a panicking resolver costs one request a 500 (not
// the process), audited as a failure.
func TestCustomAuthenticatorAndResolver(t *testing.T) {
	s, _ := sqliteStore(t)
	plain := clonehttp.AuthenticatorFunc(func(*http.Request) (clone.Principal, error) { return clone.Principal{}, errors.New("ldap said no") })
	empty := clonehttp.AuthenticatorFunc(func(*http.Request) (clone.Principal, error) { return clone.Principal{}, nil })
	down := clonehttp.AuthenticatorFunc(func(*http.Request) (clone.Principal, error) {
		return clone.Principal{}, errs.New(errs.Unavailable, "host.auth", "session store down")
	})
	for name, c := range map[string]struct {
		auth   clonehttp.Authenticator
		status int
	}{"plain error": {plain, 401}, "empty subject": {empty, 401}, "unavailable": {down, 503}} {
		a := newApp(t, c.auth, s, nil)
		r := a.get(t, "/me", "")
		if r.status != c.status {
			t.Errorf("%s: %d; want %d", name, r.status, c.status)
		}
		checkNoLeak(t, name, r.body)
		if len(denials(a.audit)) != 1 {
			t.Errorf("%s: %d events", name, len(denials(a.audit)))
		}
	}
	ok := clonehttp.AuthenticatorFunc(func(*http.Request) (clone.Principal, error) { return clone.Principal{Subject: "p"}, nil })
	for _, noCache := range []bool{false, true} {
		a := newApp(t, ok, panickingResolver{}, &clonehttp.Options{NoCache: noCache})
		for _, hdr := range [][]string{nil, sel(uuid.New(), uuid.New())} {
			a.audit.Reset()
			r := a.get(t, "/me", "", hdr...)
			if r.status != http.StatusInternalServerError || r.prob.Kind != "internal" {
				t.Fatalf("noCache=%v: panicking resolver: %d %+v", noCache, r.status, r.prob)
			}
			checkNoLeak(t, "panic", r.body)
			if ev := denials(a.audit); len(ev) != 1 || ev[0].Outcome != audit.Failed {
				t.Fatalf("events %+v", ev)
			}
		}
	}
}

// TestRequestIDs: the request ID is the server's; a well-formed client ID is kept beside
// it; a request ID already in the context wins over a generated one; a custom header
// name is honoured.
func TestRequestIDs(t *testing.T) {
	s, _ := sqliteStore(t)
	mem := &audit.Memory{}
	mw := clonehttp.Middleware(newHMAC(t), s, &clonehttp.Options{Audit: mem, RequestIDHeader: "x-correlation-id"})
	var seen, seenClient string
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, seenClient = audit.RequestIDFrom(r.Context()), audit.ClientRequestIDFrom(r.Context())
	}))

	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+hmacSigner().sign(t, claims("rid-"+uuid.NewString())))
	req.Header.Set("X-Correlation-Id", "from-header")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 || seen == "from-header" || seen == "" || seenClient != "from-header" || w.Header().Get("X-Correlation-Id") != seen {
		t.Fatalf("header ID: %d, handler saw %q (client %q), response %q", w.Code, seen, seenClient, w.Header().Get("X-Correlation-Id"))
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req.WithContext(audit.WithRequestID(req.Context(), "from-context")))
	if seen != "from-context" || seenClient != "from-header" || w.Header().Get("X-Correlation-Id") != "from-context" {
		t.Fatalf("context ID: handler saw %q (client %q), response %q", seen, seenClient, w.Header().Get("X-Correlation-Id"))
	}
	// Generated IDs are unique.
	req.Header.Del("X-Correlation-Id")
	ids := map[string]bool{}
	for range 100 {
		w = httptest.NewRecorder()
		h.ServeHTTP(w, req)
		ids[w.Header().Get("X-Correlation-Id")] = true
	}
	if len(ids) != 100 {
		t.Fatalf("%d distinct generated IDs of 100", len(ids))
	}
}

func TestMiddlewarePanicsOnNil(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for a nil resolver")
		}
	}()
	clonehttp.Middleware(newHMAC(t), nil, nil)
}
