package clonehttp_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/tenant"
)

func newHMAC(t testing.TB) *jwtauth.Authenticator {
	t.Helper()
	a, err := jwtauth.NewHMAC(testIssuer, testAudience, testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newJWKS(t testing.TB, url string, opts *jwtauth.Options) *jwtauth.Authenticator {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a, err := jwtauth.NewJWKS(ctx, testIssuer, testAudience, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestFirstSignup: a new subject's first request creates its tenant and clone; later
// requests get the same clone from the cache; the context reaches the handler.
func TestFirstSignup(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		res := &countingResolver{Resolver: s}
		a := newApp(t, newHMAC(t), res, nil)
		subject := "alice-" + uuid.NewString()
		tok := hmacSigner().sign(t, claims(subject))

		r := a.get(t, "/me", tok)
		if r.status != http.StatusOK {
			t.Fatalf("first request: %d %s", r.status, r.body)
		}
		if r.who.Subject != subject || len(r.who.Roles) != 1 || r.who.Roles[0] != "owner" {
			t.Fatalf("whoami %+v", r.who)
		}
		if n := count(t, db, "SELECT count(*) FROM tenants WHERE signup_subject = ?", subject); n != 1 {
			t.Fatalf("%d tenants", n)
		}
		if n := count(t, db, "SELECT count(*) FROM clones WHERE tenant_id = ? AND id = ? AND owner_subject = ?", r.who.Tenant, r.who.Clone, subject); n != 1 {
			t.Fatalf("the handler's clone is not the subject's: %+v", r.who)
		}
		if rid := r.header.Get("X-Request-Id"); rid == "" {
			t.Error("no X-Request-Id on the response")
		}
		ev := a.audit.Events()
		if len(ev) != 1 || ev[0].Action != "clonehttp.Provision" || ev[0].Outcome != audit.Allowed || ev[0].Actor != subject ||
			ev[0].TenantID.String() != r.who.Tenant || ev[0].CloneID.String() != r.who.Clone || ev[0].RequestID != r.header.Get("X-Request-Id") {
			t.Fatalf("provisioning events %+v", ev)
		}

		before := res.calls.Load()
		for range 20 {
			again := a.get(t, "/me", tok, "X-Request-Id", "client-req-1")
			if again.status != http.StatusOK || again.who.Tenant != r.who.Tenant || again.who.Clone != r.who.Clone {
				t.Fatalf("again: %d %+v", again.status, again.who)
			}
			if got := again.header.Get("X-Request-Id"); got == "client-req-1" || got == "" {
				t.Fatalf("response request ID %q; want the server's own", got)
			}
		}
		if n := res.calls.Load() - before; n != 0 {
			t.Fatalf("warm requests made %d store round trips; want 0", n)
		}
		// A fresh token of the same subject (another iat) hits the same cache entry.
		c := claims(subject)
		c["iat"] = time.Now().Add(-time.Minute).Unix()
		if r2 := a.get(t, "/me", hmacSigner().sign(t, c)); r2.status != 200 || r2.who.Clone != r.who.Clone || res.calls.Load() != before {
			t.Fatalf("new token, same subject: %d %+v, %d calls", r2.status, r2.who, res.calls.Load()-before)
		}
		// A malformed client request ID is dropped, not echoed.
		if r3 := a.get(t, "/me", tok, "X-Request-Id", "bad id\u00e9"); r3.header.Get("X-Request-Id") == "bad id\u00e9" || r3.header.Get("X-Request-Id") == "" {
			t.Fatalf("bad request ID handled as %q", r3.header.Get("X-Request-Id"))
		}
		if n := len(denials(a.audit)); n != 0 {
			t.Fatalf("%d denials for valid requests", n)
		}
	})
}

// TestFirstSignupRace: 100 concurrent first requests of one new subject create exactly
// one tenant and one clone, with the cache (lookups coalesced) and without (every
// request races in the store).
func TestFirstSignupRace(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		for _, noCache := range []bool{false, true} {
			a := newApp(t, newHMAC(t), s, &clonehttp.Options{NoCache: noCache})
			subject := "racer-" + uuid.NewString()
			tok := hmacSigner().sign(t, claims(subject))
			const n = 100
			var (
				wg      sync.WaitGroup
				start   = make(chan struct{})
				replies = make([]reply, n)
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					replies[i] = a.get(t, "/me", tok)
				}()
			}
			close(start)
			wg.Wait()
			for i, r := range replies {
				if r.status != http.StatusOK || r.who.Clone != replies[0].who.Clone || r.who.Tenant != replies[0].who.Tenant {
					t.Fatalf("noCache=%v: request %d: %d %+v; request 0: %+v", noCache, i, r.status, r.who, replies[0].who)
				}
			}
			if c := count(t, db, "SELECT count(*) FROM tenants WHERE signup_subject = ?", subject); c != 1 {
				t.Fatalf("noCache=%v: %d tenants; want 1", noCache, c)
			}
			if c := count(t, db, "SELECT count(*) FROM clones WHERE owner_subject = ?", subject); c != 1 {
				t.Fatalf("noCache=%v: %d clones; want 1", noCache, c)
			}
			var provisioned int
			for _, e := range a.audit.Events() {
				if e.Action == "clonehttp.Provision" {
					provisioned++
				}
			}
			if provisioned != 1 {
				t.Fatalf("noCache=%v: %d provisioning events; want 1", noCache, provisioned)
			}
		}
	})
}

// attackFixture: a solo victim, an enterprise tenant where the attacker is a member with
// one granted clone, and the servers for both authenticators.
type attackFixture struct {
	hs, pk              *app
	rsa, ed             signer
	attacker            string
	own                 tenant.Tenant
	granted, ungranted  tenant.Clone
	suspended           tenant.Clone
	victim              clone.CloneContext
	enterpriseOtherTen  tenant.Tenant
	enterpriseOtherClon tenant.Clone
}

func newAttackFixture(t *testing.T, s *tenant.Store, db *sqlx.DB) *attackFixture {
	ctx := context.Background()
	f := &attackFixture{rsa: rsaSigner(t, 0), ed: edSigner(t), attacker: "mallory-" + uuid.NewString()}
	jwks := newJWKSServer(t, f.rsa, f.ed)
	f.hs = newApp(t, newHMAC(t), s, nil)
	f.pk = newApp(t, newJWKS(t, jwks.URL, nil), s, nil)

	var err error
	if f.victim, _, err = s.ProvisionSolo(ctx, "victim-"+uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	boss := "boss-" + uuid.NewString()
	if f.own, err = s.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, OwnerSubject: boss}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(ctx, f.own.ID, f.attacker, tenant.RoleMember); err != nil {
		t.Fatal(err)
	}
	mk := func(tn uuid.UUID, owner string) tenant.Clone {
		c, err := s.CreateClone(ctx, tn, tenant.CloneSpec{Name: "c", OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	f.granted, f.ungranted, f.suspended = mk(f.own.ID, boss), mk(f.own.ID, boss), mk(f.own.ID, boss)
	for _, c := range []tenant.Clone{f.granted, f.suspended} {
		if err := s.GrantClone(ctx, f.own.ID, c.ID, f.attacker); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(db.Rebind("UPDATE clones SET status = 'suspended' WHERE tenant_id = ? AND id = ?"), f.own.ID, f.suspended.ID); err != nil {
		t.Fatal(err)
	}
	otherBoss := "otherboss-" + uuid.NewString()
	if f.enterpriseOtherTen, err = s.CreateTenant(ctx, tenant.TenantSpec{Plan: tenant.PlanEnterprise, OwnerSubject: otherBoss}); err != nil {
		t.Fatal(err)
	}
	f.enterpriseOtherClon = mk(f.enterpriseOtherTen.ID, otherBoss)
	return f
}

func sel(tenantID, cloneID any) []string {
	return []string{clonehttp.TenantHeader, toString(tenantID), clonehttp.CloneHeader, toString(cloneID)}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return v.(uuid.UUID).String()
}

// TestAttacks: each attack gets the right status, a problem body without internal
// detail, exactly one audit event, and never reaches the handler.
func TestAttacks(t *testing.T) {
	forEachDB(t, func(t *testing.T, s *tenant.Store, db *sqlx.DB) {
		f := newAttackFixture(t, s, db)
		hs := hmacSigner()
		valid := func(c jwt.MapClaims) jwt.MapClaims { return c }
		with := func(k string, v any) func(jwt.MapClaims) jwt.MapClaims {
			return func(c jwt.MapClaims) jwt.MapClaims { c[k] = v; return c }
		}
		without := func(k string) func(jwt.MapClaims) jwt.MapClaims {
			return func(c jwt.MapClaims) jwt.MapClaims { delete(c, k); return c }
		}
		hour := time.Hour
		tok := func(sg signer, edit func(jwt.MapClaims) jwt.MapClaims) string {
			return sg.sign(t, edit(claims(f.attacker)))
		}

		// alg "none", unsigned.
		none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims(f.attacker)).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		// HS256 "signed" with the RSA public key the JWKS publishes (algorithm confusion).
		der, err := x509.MarshalPKIXPublicKey(&rsaKey(t, 0).PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		confused := signer{kid: f.rsa.kid, method: jwt.SigningMethodHS256, key: pubPEM}
		confusedDER := signer{kid: f.rsa.kid, method: jwt.SigningMethodHS256, key: der}
		// An attacker's own RSA key claiming the real key's ID.
		forged := rsaSigner(t, 1)
		forged.kid = f.rsa.kid
		// Tampered payload: a valid token whose subject is swapped for the victim's.
		tamper := func(token string) string {
			parts := strings.Split(token, ".")
			c := claims(f.victim.Principal().Subject)
			b, _ := json.Marshal(c)
			parts[1] = base64.RawURLEncoding.EncodeToString(b)
			return strings.Join(parts, ".")
		}
		critTok := func() string {
			tk := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(f.attacker))
			tk.Header["crit"] = []string{"exp"}
			out, _ := tk.SignedString(testSecret)
			return out
		}()

		type tc struct {
			name   string
			app    *app
			path   string
			token  string
			hdr    []string
			status int
			action string
			actor  string // "" for unauthenticated
		}
		huge := strings.Repeat("A", 100<<10)
		cases := []tc{
			{"no credentials", f.hs, "/me", "", nil, 401, "clonehttp.Authenticate", ""},
			{"basic auth", f.hs, "/me", "", []string{"Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, 401, "clonehttp.Authenticate", ""},
			{"two authorization headers", f.hs, "/me", "", []string{"Authorization", "Bearer " + tok(hs, valid), "Authorization", "Bearer " + tok(hs, valid)}, 401, "clonehttp.Authenticate", ""},
			{"garbage token", f.hs, "/me", "a.b.c", nil, 401, "clonehttp.Authenticate", ""},
			{"alg none (hmac)", f.hs, "/me", none, nil, 401, "clonehttp.Authenticate", ""},
			{"alg none (jwks)", f.pk, "/me", none, nil, 401, "clonehttp.Authenticate", ""},
			{"HS256 signed with the RSA public key (PEM)", f.pk, "/me", confused.sign(t, claims(f.attacker)), nil, 401, "clonehttp.Authenticate", ""},
			{"HS256 signed with the RSA public key (DER)", f.pk, "/me", confusedDER.sign(t, claims(f.attacker)), nil, 401, "clonehttp.Authenticate", ""},
			{"RS256 token at the HMAC authenticator", f.hs, "/me", tok(f.rsa, valid), nil, 401, "clonehttp.Authenticate", ""},
			{"attacker's key with the real kid", f.pk, "/me", tok(forged, valid), nil, 401, "clonehttp.Authenticate", ""},
			{"wrong HMAC secret", f.hs, "/me", signer{method: jwt.SigningMethodHS256, key: []byte(strings.Repeat("k", 40))}.sign(t, claims(f.attacker)), nil, 401, "clonehttp.Authenticate", ""},
			{"expired (hmac)", f.hs, "/me", tok(hs, with("exp", time.Now().Add(-hour).Unix())), nil, 401, "clonehttp.Authenticate", ""},
			{"expired (eddsa)", f.pk, "/me", tok(f.ed, with("exp", time.Now().Add(-hour).Unix())), nil, 401, "clonehttp.Authenticate", ""},
			{"no expiry", f.hs, "/me", tok(hs, without("exp")), nil, 401, "clonehttp.Authenticate", ""},
			{"not yet valid", f.hs, "/me", tok(hs, with("nbf", time.Now().Add(hour).Unix())), nil, 401, "clonehttp.Authenticate", ""},
			{"issued in the future", f.pk, "/me", tok(f.rsa, with("iat", time.Now().Add(hour).Unix())), nil, 401, "clonehttp.Authenticate", ""},
			{"wrong issuer", f.hs, "/me", tok(hs, with("iss", "https://evil.test")), nil, 401, "clonehttp.Authenticate", ""},
			{"no issuer", f.pk, "/me", tok(f.ed, without("iss")), nil, 401, "clonehttp.Authenticate", ""},
			{"wrong audience", f.pk, "/me", tok(f.rsa, with("aud", "another-app")), nil, 401, "clonehttp.Authenticate", ""},
			{"wrong audience list", f.hs, "/me", tok(hs, with("aud", []string{"a", "b"})), nil, 401, "clonehttp.Authenticate", ""},
			{"tampered payload (hmac)", f.hs, "/me", tamper(tok(hs, valid)), nil, 401, "clonehttp.Authenticate", ""},
			{"tampered payload (eddsa)", f.pk, "/me", tamper(tok(f.ed, valid)), nil, 401, "clonehttp.Authenticate", ""},
			{"missing sub", f.hs, "/me", hs.sign(t, claims("")), nil, 401, "clonehttp.Authenticate", ""},
			{"control characters in sub", f.hs, "/me", hs.sign(t, claims("eve\x00")), nil, 401, "clonehttp.Authenticate", ""},
			{"crit header", f.hs, "/me", critTok, nil, 401, "clonehttp.Authenticate", ""},
			{"huge token", f.hs, "/me", huge, nil, 401, "clonehttp.Authenticate", ""},
			{"huge token (jwks)", f.pk, "/me", huge, nil, 401, "clonehttp.Authenticate", ""},
			{"huge selector header", f.hs, "/me", tok(hs, valid), sel(strings.Repeat("0", 64<<10), f.granted.ID), 400, "clonehttp.Select", f.attacker},
			{"another tenant's clone (solo victim)", f.hs, "/me", tok(hs, valid), sel(f.victim.TenantID(), f.victim.CloneID()), 404, "clonehttp.Resolve", f.attacker},
			{"another tenant's clone (enterprise, eddsa)", f.pk, "/me", tok(f.ed, valid), sel(f.enterpriseOtherTen.ID, f.enterpriseOtherClon.ID), 404, "clonehttp.Resolve", f.attacker},
			{"another tenant's clone under my tenant", f.hs, "/me", tok(hs, valid), sel(f.own.ID, f.victim.CloneID()), 404, "clonehttp.Resolve", f.attacker},
			{"another tenant's clone by path", f.hs, "/t/" + f.victim.TenantID().String() + "/c/" + f.victim.CloneID().String() + "/me", tok(hs, valid), nil, 404, "clonehttp.Resolve", f.attacker},
			{"nonexistent clone", f.hs, "/me", tok(hs, valid), sel(f.own.ID, uuid.New()), 404, "clonehttp.Resolve", f.attacker},
			{"ungranted clone of my tenant", f.hs, "/me", tok(hs, valid), sel(f.own.ID, f.ungranted.ID), 403, "clonehttp.Resolve", f.attacker},
			{"suspended clone", f.pk, "/me", tok(f.rsa, valid), sel(f.own.ID, f.suspended.ID), 403, "clonehttp.Resolve", f.attacker},
			{"selector without tenant", f.hs, "/me", tok(hs, valid), []string{clonehttp.CloneHeader, f.granted.ID.String()}, 400, "clonehttp.Select", f.attacker},
			{"non-canonical selector", f.hs, "/me", tok(hs, valid), sel(strings.ToUpper(f.own.ID.String()), f.granted.ID), 400, "clonehttp.Select", f.attacker},
			{"nil UUID selector", f.hs, "/me", tok(hs, valid), sel(uuid.Nil, f.granted.ID), 400, "clonehttp.Select", f.attacker},
			{"repeated selector", f.hs, "/me", tok(hs, valid), append(sel(f.own.ID, f.granted.ID), clonehttp.CloneHeader, f.ungranted.ID.String()), 400, "clonehttp.Select", f.attacker},
			{"path traversal in selector", f.hs, "/t/..%2f..%2f/c/x/me", tok(hs, valid), nil, 400, "clonehttp.Select", f.attacker},
		}
		for _, c := range cases {
			c.app.audit.Reset()
			reachedBefore := c.app.reached.Load()
			r := c.app.get(t, c.path, c.token, c.hdr...)
			if r.status != c.status {
				t.Errorf("%s: status %d; want %d (%s)", c.name, r.status, c.status, r.body)
				continue
			}
			checkNoLeak(t, c.name, r.body)
			if c.app.reached.Load() != reachedBefore {
				t.Errorf("%s: the request reached the handler", c.name)
			}
			if c.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", c.name)
			}
			ev := c.app.audit.Events()
			if len(ev) != 1 {
				t.Errorf("%s: %d audit events; want 1: %+v", c.name, len(ev), ev)
				continue
			}
			e := ev[0]
			if e.Outcome != audit.Denied || e.Action != c.action || e.Actor != c.actor || e.Reason == "" ||
				e.RequestID == "" || e.RequestID != r.header.Get("X-Request-Id") || r.prob.RequestID != e.RequestID ||
				e.Detail["status"] != strconv.Itoa(c.status) || e.Detail["kind"] != r.prob.Kind ||
				e.TenantID != uuid.Nil || e.CloneID != uuid.Nil {
				t.Errorf("%s: audit event %+v (problem %+v)", c.name, e, r.prob)
			}
			if len(e.Detail["selected_tenant_id"]) > 64 || len(e.Reason) > 210 || len(e.Detail["error"]) > 310 {
				t.Errorf("%s: unbounded audit fields: %+v", c.name, e)
			}
		}

		// The attacker's legitimate requests still work on both servers.
		for _, a := range []*app{f.hs, f.pk} {
			var token string
			if a == f.hs {
				token = tok(hs, valid)
			} else {
				token = tok(f.ed, valid)
			}
			r := a.get(t, "/me", token, sel(f.own.ID, f.granted.ID)...)
			if r.status != 200 || r.who.Clone != f.granted.ID.String() || r.who.Tenant != f.own.ID.String() {
				t.Errorf("granted clone: %d %+v", r.status, r.who)
			}
			r = a.get(t, "/t/"+f.own.ID.String()+"/c/"+f.granted.ID.String()+"/me", token)
			if r.status != 200 || r.who.Clone != f.granted.ID.String() {
				t.Errorf("granted clone by path: %d %+v", r.status, r.who)
			}
		}
	})
}
