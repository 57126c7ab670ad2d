package tenant_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/tenant"
)

const (
	httpIssuer   = "https://issuer.test"
	httpAudience = "cloneiso-tenant-test"
)

var httpSecret = []byte("tenant-test-secret-0123456789abcdef0123456789")

func token(t *testing.T, subject string) string {
	t.Helper()
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": httpIssuer, "aud": httpAudience, "sub": subject, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}).SignedString(httpSecret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// host is what an enterprise host application built on the SDK looks like: clone
// routes behind the clonehttp middleware (explicit selections, resolved by grants
// only), and admin routes that authenticate the caller and call the Admin.
func host(t *testing.T, e *adminEnv, cache *clonehttp.Cache) *httptest.Server {
	t.Helper()
	auth, err := jwtauth.NewHMAC(httpIssuer, httpAudience, httpSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	sink := clonesql.AuditSink(e.db.DB)
	mw := clonehttp.Middleware(auth, e.s, &clonehttp.Options{Cache: cache, Audit: sink, RequireSelection: true})

	clones := http.NewServeMux()
	clones.HandleFunc("GET /insights", func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		listInsights(w, r, e, cc)
	})
	clones.HandleFunc("POST /insights", func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if _, err := records.CreateInsight(r.Context(), e.sql, cc, records.Insight{Content: string(b)}); err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})

	admin := http.NewServeMux()
	// who authenticates the caller of an admin route.
	who := func(w http.ResponseWriter, r *http.Request) (clone.Principal, uuid.UUID, uuid.UUID, bool) {
		p, err := auth.Authenticate(r)
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return p, uuid.Nil, uuid.Nil, false
		}
		tid, err := clone.ParseID(r.PathValue("tenant"))
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return p, uuid.Nil, uuid.Nil, false
		}
		var cid uuid.UUID
		if s := r.PathValue("clone"); s != "" {
			if cid, err = clone.ParseID(s); err != nil {
				clonehttp.WriteError(w, r, err)
				return p, uuid.Nil, uuid.Nil, false
			}
		}
		return p, tid, cid, true
	}
	reply := func(w http.ResponseWriter, r *http.Request, v any, err error) {
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	admin.HandleFunc("GET /admin/{tenant}/clones/{clone}/inventory", func(w http.ResponseWriter, r *http.Request) {
		if p, tid, cid, ok := who(w, r); ok {
			inv, err := e.admin.Inventory(r.Context(), p, tid, cid)
			reply(w, r, inv, err)
		}
	})
	admin.HandleFunc("POST /admin/{tenant}/clones/{clone}/offboard", func(w http.ResponseWriter, r *http.Request) {
		if p, tid, cid, ok := who(w, r); ok {
			rec, err := e.admin.OffboardClone(r.Context(), p, tid, cid, r.URL.Query().Get("reason"))
			reply(w, r, rec, err)
		}
	})
	admin.HandleFunc("POST /admin/{tenant}/clones/{clone}/break-glass", func(w http.ResponseWriter, r *http.Request) {
		if p, tid, cid, ok := who(w, r); ok {
			ttl, _ := time.ParseDuration(r.URL.Query().Get("ttl"))
			g, err := e.admin.GrantBreakGlass(r.Context(), p, tid, cid, tenant.BreakGlassRequest{
				Subject: r.URL.Query().Get("for"), Reason: r.URL.Query().Get("reason"), TTL: ttl})
			reply(w, r, g, err)
		}
	})
	admin.HandleFunc("GET /admin/{tenant}/clones/{clone}/break-glass/insights", func(w http.ResponseWriter, r *http.Request) {
		if p, tid, cid, ok := who(w, r); ok {
			cc, err := e.admin.BreakGlass(r.Context(), p, tid, cid)
			if err != nil {
				clonehttp.WriteError(w, r, err)
				return
			}
			listInsights(w, r, e, cc)
		}
	})
	admin.HandleFunc("GET /admin/{tenant}/audit", func(w http.ResponseWriter, r *http.Request) {
		if p, tid, _, ok := who(w, r); ok {
			evs, err := e.admin.AuditEvents(r.Context(), p, tid, 0, 1000)
			reply(w, r, evs, err)
		}
	})

	root := http.NewServeMux()
	root.Handle("/admin/", admin)
	root.Handle("/", mw(clones))
	srv := httptest.NewServer(root)
	t.Cleanup(srv.Close)
	return srv
}

func listInsights(w http.ResponseWriter, r *http.Request, e *adminEnv, cc clone.CloneContext) {
	page, err := records.ListInsights(r.Context(), e.sql, cc, nil)
	if err != nil {
		clonehttp.WriteError(w, r, err)
		return
	}
	out := []string{}
	for _, in := range page.Items {
		out = append(out, in.Content)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

type client struct {
	t   *testing.T
	srv *httptest.Server
}

// do sends a request as subject ("" for none), selecting clone (tenantID, cloneID) if
// tenantID is not nil, and returns the status and body.
func (c client) do(method, path, subject string, tenantID, cloneID uuid.UUID, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if subject != "" {
		req.Header.Set("Authorization", "Bearer "+token(c.t, subject))
	}
	if tenantID != uuid.Nil {
		req.Header.Set(clonehttp.TenantHeader, tenantID.String())
		req.Header.Set(clonehttp.CloneHeader, cloneID.String())
	}
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (c client) want(status int, method, path, subject string, tenantID, cloneID uuid.UUID, body string) string {
	c.t.Helper()
	got, b := c.do(method, path, subject, tenantID, cloneID, body)
	if got != status {
		c.t.Fatalf("%s %s as %q on %v/%v: %d %s; want %d", method, path, subject, tenantID, cloneID, got, b, status)
	}
	return b
}

// TestEnterpriseHTTP runs the enterprise scenarios end to end through HTTP with real
// HS256 tokens: members reach exactly the clones they own or were granted; admins
// reach content only through break-glass, for the granted clone, until expiry;
// inventory shows counts and no content; offboarding blocks the next request at once
// despite the resolution cache; the audit log is readable by admins only.
func TestEnterpriseHTTP(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := t.Context()
		o := newOrg(t, e)
		cache := clonehttp.NewCache(&clonehttp.CacheOptions{TTL: time.Hour})
		e.cached(t, cache, nil)
		c := client{t, host(t, e, cache)}
		analyst := "analyst-" + uuid.NewString()[:8]
		if err := e.s.AddMember(ctx, o.tenantID, analyst, tenant.RoleMember); err != nil {
			t.Fatal(err)
		}
		T, A, B := o.tenantID, o.cloneA, o.cloneB

		// The member owns A: writes and reads it; B is not theirs.
		c.want(201, "POST", "/insights", o.member.Subject, T, A, "A's secret")
		c.want(201, "POST", "/insights", o.admin.Subject, T, B, "B's secret") // the admin owns B
		if b := c.want(200, "GET", "/insights", o.member.Subject, T, A, ""); !strings.Contains(b, "A's secret") || strings.Contains(b, "B's") {
			t.Fatalf("member reads A: %s", b)
		}
		c.want(403, "GET", "/insights", o.member.Subject, T, B, "")
		// The analyst has nothing until granted A (an audited admin act); then A only.
		c.want(403, "GET", "/insights", analyst, T, A, "")
		if err := e.admin.GrantClone(ctx, o.owner, T, A, analyst); err != nil {
			t.Fatal(err)
		}
		c.want(200, "GET", "/insights", analyst, T, A, "")
		c.want(403, "GET", "/insights", analyst, T, B, "")
		// Other tenants' clones are not found; no token is 401; a malformed selection 400.
		c.want(404, "GET", "/insights", analyst, o.otherTenant.ID, o.otherClone.ID, "")
		c.want(404, "GET", "/insights", o.owner.Subject, T, o.otherClone.ID, "")
		c.want(401, "GET", "/insights", "", T, A, "")
		c.want(400, "GET", "/insights", analyst, uuid.Nil, uuid.Nil, "")

		// Owners and admins get no implicit content access through the middleware.
		c.want(403, "GET", "/insights", o.owner.Subject, T, A, "")
		c.want(403, "GET", "/insights", o.admin.Subject, T, A, "")
		// Nor through break-glass without a grant; a member cannot grant one.
		c.want(403, "GET", "/admin/"+T.String()+"/clones/"+A.String()+"/break-glass/insights", o.admin.Subject, uuid.Nil, uuid.Nil, "")
		c.want(403, "POST", "/admin/"+T.String()+"/clones/"+A.String()+"/break-glass?reason=x&ttl=1h", o.member.Subject, uuid.Nil, uuid.Nil, "")
		c.want(400, "POST", "/admin/"+T.String()+"/clones/"+A.String()+"/break-glass?for="+o.admin.Subject+"&ttl=1h", o.owner.Subject, uuid.Nil, uuid.Nil, "")
		// The owner grants the admin A for an hour, with a reason.
		c.want(200, "POST", "/admin/"+T.String()+"/clones/"+A.String()+"/break-glass?for="+o.admin.Subject+"&reason=INC-9&ttl=1h", o.owner.Subject, uuid.Nil, uuid.Nil, "")
		if b := c.want(200, "GET", "/admin/"+T.String()+"/clones/"+A.String()+"/break-glass/insights", o.admin.Subject, uuid.Nil, uuid.Nil, ""); !strings.Contains(b, "A's secret") {
			t.Fatalf("break-glass read: %s", b)
		}
		// The grant for A opens neither B (even for B's owner: break-glass is per grant)
		// nor another tenant's clone, nor A for the owner who granted it.
		c.want(403, "GET", "/admin/"+T.String()+"/clones/"+B.String()+"/break-glass/insights", o.admin.Subject, uuid.Nil, uuid.Nil, "")
		c.want(403, "GET", "/admin/"+T.String()+"/clones/"+A.String()+"/break-glass/insights", o.owner.Subject, uuid.Nil, uuid.Nil, "")
		c.want(404, "GET", "/admin/"+o.otherTenant.ID.String()+"/clones/"+o.otherClone.ID.String()+"/break-glass/insights", o.admin.Subject, uuid.Nil, uuid.Nil, "")
		// Still no content through the middleware: break-glass is its own, audited path.
		c.want(403, "GET", "/insights", o.admin.Subject, T, A, "")
		// Expired: refused.
		e.clock.Add(time.Hour)
		c.want(403, "GET", "/admin/"+T.String()+"/clones/"+A.String()+"/break-glass/insights", o.admin.Subject, uuid.Nil, uuid.Nil, "")

		// Inventory: counts, no content.
		b := c.want(200, "GET", "/admin/"+T.String()+"/clones/"+A.String()+"/inventory", o.admin.Subject, uuid.Nil, uuid.Nil, "")
		if !strings.Contains(b, `"insights":1`) || strings.Contains(b, "secret") {
			t.Fatalf("inventory: %s", b)
		}
		c.want(403, "GET", "/admin/"+T.String()+"/clones/"+A.String()+"/inventory", analyst, uuid.Nil, uuid.Nil, "")

		// Offboarding A: the analyst's cached resolution (1 h TTL) is dropped at once.
		c.want(200, "GET", "/insights", analyst, T, A, "")
		c.want(200, "POST", "/admin/"+T.String()+"/clones/"+A.String()+"/offboard?reason=TICKET-1", o.admin.Subject, uuid.Nil, uuid.Nil, "")
		c.want(403, "GET", "/insights", analyst, T, A, "")
		c.want(403, "POST", "/insights", o.member.Subject, T, A, "zombie")
		if left := e.rawLeft(t, o.ccA); left != "" {
			t.Fatalf("left: %s", left)
		}
		if b := c.want(200, "GET", "/insights", o.admin.Subject, T, B, ""); !strings.Contains(b, "B's secret") {
			t.Fatalf("B after offboarding A: %s", b)
		}

		// The audit log, for admins only, has the whole story.
		c.want(403, "GET", "/admin/"+T.String()+"/audit", o.member.Subject, uuid.Nil, uuid.Nil, "")
		c.want(404, "GET", "/admin/"+T.String()+"/audit", o.otherOwner.Subject, uuid.Nil, uuid.Nil, "")
		var evs []clonesql.AuditEvent
		if err := json.Unmarshal([]byte(c.want(200, "GET", "/admin/"+T.String()+"/audit", o.owner.Subject, uuid.Nil, uuid.Nil, "")), &evs); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, ev := range evs {
			seen[ev.Action+" "+string(ev.Outcome)]++
		}
		for _, want := range []string{
			"tenant.Admin.GrantClone allowed", "tenant.Admin.GrantBreakGlass allowed", "tenant.Admin.BreakGlass allowed",
			"tenant.Admin.BreakGlass denied", "tenant.Admin.GrantBreakGlass denied", "tenant.Admin.OffboardClone allowed",
			"tenant.Admin.Inventory denied",
		} {
			if seen[want] == 0 {
				t.Errorf("no %q event; have %v", want, seen)
			}
		}
		if rep, err := e.admin.VerifyAudit(ctx, o.owner, T); err != nil || !rep.OK {
			t.Fatalf("chain %+v %v", rep, err)
		}
	})
}

// TestStoreRevocationInvalidatesCache: access resolved through the middleware and
// cached (for an hour) ends at the next request when it is taken away with the Store
// itself — a revoked grant (Store.RevokeClone) or a removed member
// (Store.RemoveMember) — once the Store knows the middleware's cache. Without it the
// cached resolution would still let the request through, which the test shows first.
func TestStoreRevocationInvalidatesCache(t *testing.T) {
	forEachEnv(t, func(t *testing.T, e *adminEnv) {
		ctx := t.Context()
		o := newOrg(t, e)
		T, A := o.tenantID, o.cloneA
		analyst := "analyst-" + uuid.NewString()[:8]
		if err := e.s.AddMember(ctx, T, analyst, tenant.RoleMember); err != nil {
			t.Fatal(err)
		}

		// A Store that does not know the cache: the revocation lands in the database, but
		// the cached resolution still opens the clone (the test can fail).
		unaware := clonehttp.NewCache(&clonehttp.CacheOptions{TTL: time.Hour})
		c := client{t, host(t, e, unaware)}
		if err := e.s.GrantClone(ctx, T, A, analyst); err != nil {
			t.Fatal(err)
		}
		c.want(200, "GET", "/insights", analyst, T, A, "")
		if err := e.s.RevokeClone(ctx, T, A, analyst); err != nil {
			t.Fatal(err)
		}
		c.want(200, "GET", "/insights", analyst, T, A, "") // stale, from the cache

		// The Store given the middleware's cache: the revocation ends access at once.
		cache := clonehttp.NewCache(&clonehttp.CacheOptions{TTL: time.Hour})
		e.cached(t, cache, nil)
		c = client{t, host(t, e, cache)}
		if err := e.s.GrantClone(ctx, T, A, analyst); err != nil {
			t.Fatal(err)
		}
		c.want(200, "GET", "/insights", analyst, T, A, "")
		if cache.Len() == 0 {
			t.Fatal("the resolution was not cached")
		}
		if err := e.s.RevokeClone(ctx, T, A, analyst); err != nil {
			t.Fatal(err)
		}
		c.want(403, "GET", "/insights", analyst, T, A, "")

		// Removing a member ends its access the same way.
		if err := e.s.GrantClone(ctx, T, A, analyst); err != nil {
			t.Fatal(err)
		}
		c.want(200, "GET", "/insights", analyst, T, A, "")
		if err := e.s.RemoveMember(ctx, T, analyst); err != nil {
			t.Fatal(err)
		}
		c.want(404, "GET", "/insights", analyst, T, A, "") // no longer a member: another tenant's clone
		// The clone's owner, resolved again, is unaffected.
		c.want(200, "GET", "/insights", o.member.Subject, T, A, "")
	})
}
