package adversarial_test

import (
	"encoding/base64"
	"encoding/json"
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
	"github.com/cloneiso/cloneiso/clone/records"
)

const (
	issuer   = "https://id.example.test"
	audience = "cloneiso-adversarial"
)

var secret = []byte("adversarial-suite-secret-of-32-bytes!!")

func token(t *testing.T, claims jwt.MapClaims, method jwt.SigningMethod, key any) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(sub string) jwt.MapClaims {
	return jwt.MapClaims{"iss": issuer, "aud": audience, "sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
}

// runHTTPAttacks attacks the HTTP middleware: A's owner authenticates and asks for
// other clones, or forges its credentials. It returns the number of cases and leaks.
func runHTTPAttacks(t *testing.T, w *world) (cases, leaks int) {
	auth, err := jwtauth.NewHMAC(issuer, audience, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(rw, r, err)
			return
		}
		p, err := records.ListInsights(r.Context(), w.db, cc, nil)
		if err != nil {
			clonehttp.WriteError(rw, r, err)
			return
		}
		json.NewEncoder(rw).Encode(p.Items)
	})
	h := clonehttp.Middleware(auth, w.tenants, &clonehttp.Options{Audit: w.audit, RequireSelection: true, NoCache: true})(app)

	alice := w.a.cc.Principal().Subject
	good := token(t, claimsFor(alice), jwt.SigningMethodHS256, secret)
	sel := func(tenant, cloneID string) http.Header {
		return http.Header{clonehttp.TenantHeader: {tenant}, clonehttp.CloneHeader: {cloneID}}
	}
	at, ac := w.a.cc.TenantID().String(), w.a.cc.CloneID().String()
	st, sc := w.sib.cc.TenantID().String(), w.sib.cc.CloneID().String()
	ot, oc := w.other.cc.TenantID().String(), w.other.cc.CloneID().String()
	expired := claimsFor(alice)
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	wrongAud := claimsFor(alice)
	wrongAud["aud"] = "someone-else"
	none := token(t, claimsFor(alice), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)
	parts := strings.Split(good, ".")
	forgedClaims, _ := json.Marshal(claimsFor(w.sib.cc.Principal().Subject))
	tampered := parts[0] + "." + strings.TrimRight(jwtEncode(forgedClaims), "=") + "." + parts[2]

	cases2 := []struct {
		name   string
		token  string
		header http.Header
		want   int
	}{
		{"own clone (control)", good, sel(at, ac), 200},
		{"sibling clone of the same tenant", good, sel(st, sc), 403},
		{"other tenant's clone under its tenant", good, sel(ot, oc), 404},
		{"other tenant's clone under A's tenant", good, sel(at, oc), 404},
		{"swapped tenant and clone", good, sel(ac, at), 404},
		{"selector in braces", good, sel("{"+at+"}", ac), 400},
		{"upper-case selector", good, sel(strings.ToUpper(at), ac), 400},
		{"nil UUID selector", good, sel(uuid.Nil.String(), ac), 400},
		{"injection in the selector", good, sel("' OR 1=1 --", ac), 400},
		{"huge selector header", good, sel(at, strings.Repeat("a", 64<<10)), 400},
		{"no token", "", sel(at, ac), 401},
		{"alg none", none, sel(at, ac), 401},
		{"expired", token(t, expired, jwt.SigningMethodHS256, secret), sel(at, ac), 401},
		{"wrong audience", token(t, wrongAud, jwt.SigningMethodHS256, secret), sel(at, ac), 401},
		{"other secret", token(t, claimsFor(alice), jwt.SigningMethodHS256, []byte("another-secret-that-is-32-bytes-long!!")), sel(at, ac), 401},
		{"tampered subject", tampered, sel(st, sc), 401},
	}
	for _, c := range cases2 {
		req := httptest.NewRequest(http.MethodGet, "/insights", nil)
		for k, v := range c.header {
			req.Header[k] = v
		}
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		cases++
		body := rec.Body.String()
		if l := w.leaks(w.a, body); len(l) > 0 {
			leaks++
			t.Errorf("LEAK: [http] %s: %v", c.name, l)
		}
		if rec.Code != c.want {
			t.Errorf("[http] %s: status %d; want %d (%s)", c.name, rec.Code, c.want, body)
		}
		if c.want == 200 && !strings.Contains(body, w.a.canary) {
			t.Errorf("[http] %s: the owner does not see its own data: %s", c.name, body)
		}
	}
	return cases, leaks
}

func jwtEncode(b []byte) string {
	return strings.NewReplacer("+", "-", "/", "_").Replace(stdBase64(b))
}

func stdBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
