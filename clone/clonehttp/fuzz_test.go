package clonehttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

// FuzzTokenToContext drives the middleware (a real SQLite store, HS256 with a fixed
// clock, the resolution cache on) with tokens signed with the real key over fuzzed
// claims (subject, issuer, audience, exp, nbf) or with a fuzzed raw Authorization
// header, and fuzzed clone-selection headers, which the seeds fill with the real IDs of
// other users' clones: alice's and bob's solo clones, and an enterprise tenant where
// carol owns two clones and dave, a member, is granted one.
//
// Every request is answered with a 4xx or reaches the handler; never a 5xx or a panic.
// A request reaches the handler only with a token the key signed whose issuer and
// audience are the expected ones and which has not expired, and then with a context
// whose subject is the token's, for a clone that subject is entitled to: the one
// selected if there was a selection, else the subject's own solo clone (one per subject,
// never another subject's, stable across requests and through the cache).
func FuzzTokenToContext(f *testing.F) {
	const (
		iss = "https://id.example.com"
		aud = "cloneiso"
	)
	ctx := context.Background()
	db, err := sqlitedb.Open(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	if err := migrate.Up(ctx, db, nil); err != nil {
		f.Fatal(err)
	}
	store, err := tenant.NewStore(db, nil)
	if err != nil {
		f.Fatal(err)
	}
	alice, _, err := store.ProvisionSolo(ctx, "alice")
	if err != nil {
		f.Fatal(err)
	}
	bob, _, err := store.ProvisionSolo(ctx, "bob")
	if err != nil {
		f.Fatal(err)
	}
	ent, err := store.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, OwnerSubject: "carol"})
	if err != nil {
		f.Fatal(err)
	}
	if err := store.AddMember(ctx, ent.ID, "dave", tenant.RoleMember); err != nil {
		f.Fatal(err)
	}
	e1, err := store.CreateClone(ctx, ent.ID, tenant.CloneSpec{Name: "carol's twin", OwnerSubject: "carol"})
	if err != nil {
		f.Fatal(err)
	}
	e2, err := store.CreateClone(ctx, ent.ID, tenant.CloneSpec{Name: "support", OwnerSubject: "carol"})
	if err != nil {
		f.Fatal(err)
	}
	if err := store.GrantClone(ctx, ent.ID, e2.ID, "dave"); err != nil {
		f.Fatal(err)
	}
	type ids struct{ tenant, clone uuid.UUID }
	known := map[uuid.UUID]ids{
		alice.CloneID(): {alice.TenantID(), alice.CloneID()},
		bob.CloneID():   {bob.TenantID(), bob.CloneID()},
		e1.ID:           {ent.ID, e1.ID},
		e2.ID:           {ent.ID, e2.ID},
	}
	entitled := map[string][]uuid.UUID{"alice": {alice.CloneID()}, "bob": {bob.CloneID()}, "carol": {e1.ID, e2.ID}, "dave": {e2.ID}}
	var mu sync.Mutex
	solo := map[string]uuid.UUID{"alice": alice.CloneID(), "bob": bob.CloneID()} // learned for other subjects
	soloOwner := map[uuid.UUID]string{alice.CloneID(): "alice", bob.CloneID(): "bob"}

	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	secret := []byte("fuzz-secret-that-is-at-least-32-bytes")
	auth, err := jwtauth.NewHMAC(iss, aud, secret, &jwtauth.Options{Now: clock})
	if err != nil {
		f.Fatal(err)
	}
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	var reached *clone.CloneContext
	h := clonehttp.Middleware(auth, store, &clonehttp.Options{Audit: audit.Discard,
		Cache: clonehttp.NewCache(&clonehttp.CacheOptions{Now: clock})})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			cc = clone.CloneContext{}
		}
		reached = &cc
	}))

	good := sign(jwt.MapClaims{"iss": iss, "aud": aud, "sub": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	sel := func(c ids) (string, string) { return c.tenant.String(), c.clone.String() }
	bt, bc := sel(known[bob.CloneID()])
	at, ac := sel(known[alice.CloneID()])
	et, e1c := sel(known[e1.ID])
	_, e2c := sel(known[e2.ID])
	for _, s := range []struct {
		raw, sub, iss, aud string
		exp, nbf           int64
		tenant, clone      string
	}{
		{"", "alice", iss, aud, 3600, 0, "", ""},
		{"", "alice", iss, aud, 3600, 0, at, ac},
		{"", "alice", iss, aud, 3600, 0, bt, bc},
		{"", "bob", iss, aud, 3600, 0, at, ac},
		{"", "bob", iss, aud, 3600, 0, "", ""},
		{"", "carol", iss, aud, 3600, 0, et, e1c},
		{"", "dave", iss, aud, 3600, 0, et, e1c},
		{"", "dave", iss, aud, 3600, 0, et, e2c},
		{"", "dave", iss, aud, 3600, 0, "", ""},
		{"", "mallory", iss, aud, 3600, 0, et, e2c},
		{"", "mallory", iss, aud, 3600, 0, "", ""},
		{"", "alice", iss, aud, -3600, 0, "", ""},
		{"", "alice", iss, aud, 3600, 600, "", ""},
		{"", "alice", "https://evil.example.com", aud, 3600, 0, "", ""},
		{"", "alice", iss, "other", 3600, 0, "", ""},
		{"", "", iss, aud, 3600, 0, at, ac},
		{"", "alice\x00bob", iss, aud, 3600, 0, "", ""},
		{"", "alice", iss, aud, 3600, 0, "{" + at + "}", ac},
		{"", "alice", iss, aud, 3600, 0, strings.ToUpper(at), ac},
		{"Bearer " + good, "", "", "", 0, 0, "", ""},
		{"bearer  " + good + " ", "", "", "", 0, 0, bt, bc},
		{"Bearer " + good[:len(good)-2] + "xx", "", "", "", 0, 0, "", ""},
		{"Bearer " + strings.Replace(good, ".", "..", 1), "", "", "", 0, 0, "", ""},
		{"Basic YWxpY2U6cGFzc3dvcmQ=", "", "", "", 0, 0, "", ""},
		{"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", "", "", "", 0, 0, "", ""},
	} {
		f.Add(s.raw, s.sub, s.iss, s.aud, s.exp, s.nbf, s.tenant, s.clone)
	}

	keyfunc := func(*jwt.Token) (any, error) { return secret, nil }
	f.Fuzz(func(t *testing.T, raw, sub, tokIss, tokAud string, exp, nbf int64, tenantSel, cloneSel string) {
		authz := raw
		if raw == "" {
			claims := jwt.MapClaims{"iss": tokIss, "aud": tokAud, "sub": sub, "iat": now.Unix()}
			if exp != 0 {
				claims["exp"] = now.Unix() + exp%(1<<40)
			}
			if nbf != 0 {
				claims["nbf"] = now.Unix() + nbf%(1<<40)
			}
			authz = "Bearer " + sign(claims)
		}
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Authorization", authz)
		if tenantSel != "" || cloneSel != "" {
			req.Header.Set(clonehttp.TenantHeader, tenantSel)
			req.Header.Set(clonehttp.CloneHeader, cloneSel)
		}
		reached = nil
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if reached == nil {
			if rec.Code < 400 || rec.Code >= 500 {
				t.Fatalf("Authorization %q, selection %q/%q answered %d without reaching the handler: %s", authz, tenantSel, cloneSel, rec.Code, rec.Body.String())
			}
			return
		}
		cc := *reached
		if !cc.Valid() {
			t.Fatalf("handler reached without a valid context (Authorization %q)", authz)
		}
		// The token must be one the key signed, with the expected issuer and audience,
		// and not expired.
		_, tok, _ := strings.Cut(strings.TrimSpace(authz), " ")
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(strings.TrimSpace(tok), claims, keyfunc, jwt.WithoutClaimsValidation(), jwt.WithValidMethods([]string{"HS256"})); err != nil {
			t.Fatalf("handler reached with a token the key did not sign (Authorization %q): %v", authz, err)
		}
		gotSub, _ := claims.GetSubject()
		gotIss, _ := claims.GetIssuer()
		gotAud, _ := claims.GetAudience()
		gotExp, _ := claims.GetExpirationTime()
		if gotIss != iss || !slices.Contains(gotAud, aud) || gotExp == nil || !gotExp.After(now.Add(-jwtauth.MaxLeeway)) {
			t.Fatalf("handler reached with claims %v", claims)
		}
		if cc.Principal().Subject != gotSub {
			t.Fatalf("token of %q reached the handler as %q (%v)", gotSub, cc.Principal().Subject, cc)
		}
		if tenantSel != "" || cloneSel != "" {
			tid, err1 := uuid.Parse(tenantSel)
			cid, err2 := uuid.Parse(cloneSel)
			if err1 != nil || err2 != nil || cc.TenantID() != tid || cc.CloneID() != cid {
				t.Fatalf("selection %q/%q gave %v", tenantSel, cloneSel, cc)
			}
		}
		if k, ok := known[cc.CloneID()]; ok {
			if k.tenant != cc.TenantID() || !slices.Contains(entitled[gotSub], k.clone) {
				t.Fatalf("%q reached clone %v, which is not theirs", gotSub, cc)
			}
			return
		}
		// Any other clone is a solo clone provisioned for the subject on first sign-in:
		// one per subject, never another subject's.
		mu.Lock()
		defer mu.Unlock()
		if tenantSel == "" && cloneSel == "" {
			if want, ok := solo[gotSub]; ok && want != cc.CloneID() {
				t.Fatalf("%q reached %v; its solo clone is %v", gotSub, cc, want)
			}
			solo[gotSub] = cc.CloneID()
		}
		if o, ok := soloOwner[cc.CloneID()]; ok && o != gotSub {
			t.Fatalf("%q reached %v, the solo clone of %q", gotSub, cc, o)
		}
		soloOwner[cc.CloneID()] = gotSub
	})
}
