package clonehttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

// FuzzTokenToContext feeds arbitrary Authorization and clone-selection headers to the
// middleware (a real SQLite store, HS256 with a fixed clock). Whatever the input, the
// request is answered with a 4xx, never a 5xx or a panic, unless it carries exactly the
// one valid token; and the handler is reached only with that token, as its owner's own
// clone.
func FuzzTokenToContext(f *testing.F) {
	ctx := context.Background()
	db, err := clonesql.OpenSQLite(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	if err := migrate.Up(ctx, db.DB, nil); err != nil {
		f.Fatal(err)
	}
	store, _ := tenant.NewStore(db)
	owner, _, err := store.ProvisionSolo(ctx, "alice")
	if err != nil {
		f.Fatal(err)
	}
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	secret := []byte("fuzz-secret-that-is-at-least-32-bytes")
	auth, err := jwtauth.NewHMAC("https://id.example.com", "cloneiso", secret, &jwtauth.Options{Now: func() time.Time { return now }})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://id.example.com", "aud": "cloneiso", "sub": "alice",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}).SignedString(secret)
	var reached atomic.Int32
	var reachedAs atomic.Value
	h := clonehttp.Middleware(auth, store, &clonehttp.Options{Audit: audit.Discard, NoCache: true})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			t := "no context in the handler"
			reachedAs.Store(t)
		} else {
			reachedAs.Store(cc.String())
		}
		reached.Add(1)
	}))

	f.Add("Bearer "+good, "", "")
	f.Add("Bearer "+good, owner.TenantID().String(), owner.CloneID().String())
	f.Add("Bearer "+good[:len(good)-2]+"xx", "", "")
	f.Add("Bearer "+strings.Replace(good, ".", "..", 1), "", "")
	f.Add("Basic YWxpY2U6cGFzc3dvcmQ=", "", "")
	f.Add("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", "", "")
	f.Add("Bearer "+good, "{"+owner.TenantID().String()+"}", owner.CloneID().String())
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, authz, tenantSel, cloneSel string) {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		if tenantSel != "" || cloneSel != "" {
			req.Header.Set(clonehttp.TenantHeader, tenantSel)
			req.Header.Set(clonehttp.CloneHeader, cloneSel)
		}
		before := reached.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		// The scheme is case-insensitive (RFC 9110 §11.1); the token must be exactly the
		// one valid token.
		scheme, tok, _ := strings.Cut(strings.TrimSpace(authz), " ")
		valid := strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(tok) == good
		if reached.Load() != before {
			if !valid {
				t.Fatalf("handler reached with Authorization %q", authz)
			}
			if got := reachedAs.Load(); got != owner.String() {
				t.Fatalf("handler reached as %v; want the owner's clone %v", got, owner)
			}
			return
		}
		if rec.Code >= 500 {
			t.Fatalf("Authorization %q, selection %q/%q answered %d: %s", authz, tenantSel, cloneSel, rec.Code, rec.Body.String())
		}
		if rec.Code < 400 {
			t.Fatalf("answered %d without reaching the handler", rec.Code)
		}
	})
}
