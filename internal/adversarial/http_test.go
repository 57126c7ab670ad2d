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

// runHTTPAttacks attacks the HTTP middleware, with its resolution cache on or off: A's
// owner authenticates and asks for other clones, or forges its credentials; with the
// cache on, the tenant's owner then asks for clones A's owner has just resolved (a cache
// keyed without the subject would hand it A's clone). It returns the number of cases
// and leaks.
func runHTTPAttacks(t *testing.T, w *world, cached bool) (cases, leaks int) {
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
	h := clonehttp.Middleware(auth, w.tenants, &clonehttp.Options{Audit: w.audit, RequireSelection: true, NoCache: !cached})(app)
	mode := "no cache"
	if cached {
		mode = "cache"
	}

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
	wrongIss := claimsFor(alice)
	wrongIss["iss"] = "https://evil.example.test"
	boss := token(t, claimsFor(w.sib.cc.Principal().Subject), jwt.SigningMethodHS256, secret)
	none := token(t, claimsFor(alice), jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType)
	parts := strings.Split(good, ".")
	forgedClaims, _ := json.Marshal(claimsFor(w.sib.cc.Principal().Subject))
	tampered := parts[0] + "." + strings.TrimRight(jwtEncode(forgedClaims), "=") + "." + parts[2]

	cases2 := []struct {
		name   string
		token  string
		header http.Header
		want   int
		owner  *data // whose data a 200 must show (default A)
	}{
		{"own clone (control)", good, sel(at, ac), 200, nil},
		{"sibling clone of the same tenant", good, sel(st, sc), 403, nil},
		{"other tenant's clone under its tenant", good, sel(ot, oc), 404, nil},
		{"other tenant's clone under A's tenant", good, sel(at, oc), 404, nil},
		{"swapped tenant and clone", good, sel(ac, at), 404, nil},
		{"selector in braces", good, sel("{"+at+"}", ac), 400, nil},
		{"upper-case selector", good, sel(strings.ToUpper(at), ac), 400, nil},
		{"nil UUID selector", good, sel(uuid.Nil.String(), ac), 400, nil},
		{"injection in the selector", good, sel("' OR 1=1 --", ac), 400, nil},
		{"huge selector header", good, sel(at, strings.Repeat("a", 64<<10)), 400, nil},
		{"no token", "", sel(at, ac), 401, nil},
		{"alg none", none, sel(at, ac), 401, nil},
		{"expired", token(t, expired, jwt.SigningMethodHS256, secret), sel(at, ac), 401, nil},
		{"wrong audience", token(t, wrongAud, jwt.SigningMethodHS256, secret), sel(at, ac), 401, nil},
		{"other secret", token(t, claimsFor(alice), jwt.SigningMethodHS256, []byte("another-secret-that-is-32-bytes-long!!")), sel(at, ac), 401, nil},
		{"tampered subject", tampered, sel(st, sc), 401, nil},
		{"wrong issuer", token(t, wrongIss, jwt.SigningMethodHS256, secret), sel(at, ac), 401, nil},
		{"RS256 header on an HMAC token (algorithm not allowed)", forgeAlg(good, "RS256"), sel(at, ac), 401, nil},
		{"own clone again (resolved, cached if on)", good, sel(at, ac), 200, nil},
		{"tenant owner asks for A's clone just resolved", boss, sel(at, ac), 403, nil},
		{"tenant owner's own clone (control)", boss, sel(st, sc), 200, w.sib},
		{"A asks for the owner's clone just resolved", good, sel(st, sc), 403, nil},
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
		owner := c.owner
		if owner == nil {
			owner = w.a
		}
		if l := w.leaks(owner, body); len(l) > 0 {
			leaks++
			t.Errorf("LEAK: [http, %s] %s: %v", mode, c.name, l)
		}
		if rec.Code != c.want {
			t.Errorf("[http, %s] %s: status %d; want %d (%s)", mode, c.name, rec.Code, c.want, body)
		}
		if c.want == 200 && !strings.Contains(body, owner.canary) {
			t.Errorf("[http, %s] %s: the owner does not see its own data: %s", mode, c.name, body)
		}
	}
	return cases, leaks
}

// forgeAlg rewrites a token's header to name another algorithm, keeping its claims and
// signature: an Authenticator that let the token pick its algorithm could be fooled.
func forgeAlg(tok, alg string) string {
	parts := strings.Split(tok, ".")
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	return strings.TrimRight(jwtEncode(h), "=") + "." + parts[1] + "." + parts[2]
}

func jwtEncode(b []byte) string {
	return strings.NewReplacer("+", "-", "/", "_").Replace(stdBase64(b))
}

func stdBase64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
