package clonehttp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const (
	testIssuer   = "https://issuer.test"
	testAudience = "cloneiso-test"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// forEachDB runs fn on a migrated SQLite database and on the package's PostgreSQL
// database connected as the application role (skipped without a server).
func forEachDB(t *testing.T, fn func(t *testing.T, s *tenant.Store, db *sqlx.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		s, db := sqliteStore(t)
		fn(t, s, db)
	})
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.Shared(t)
		// 100 concurrent first sign-ins must queue, not exhaust the server's connections.
		db.App.SetMaxOpenConns(8)
		s, err := tenant.NewStore(db.App.DB, nil)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s, db.App)
	})
}

func sqliteStore(t testing.TB) (*tenant.Store, *sqlx.DB) {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := migrate.Up(context.Background(), db, nil); err != nil {
		t.Fatal(err)
	}
	s, err := tenant.NewStore(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, sqlx.NewDb(db, "sqlite3")
}

func count(t *testing.T, db *sqlx.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Get(&n, db.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// ---- keys, tokens and a JWKS endpoint ----

type signer struct {
	kid    string
	method jwt.SigningMethod
	key    any // private key, or []byte for HMAC
	jwk    map[string]string
}

var (
	rsaOnce sync.Once
	rsaKeys [2]*rsa.PrivateKey
)

// rsaKey returns one of two RSA keys generated once per test binary (generation is slow).
func rsaKey(t testing.TB, i int) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		for j := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return rsaKeys[i]
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaSigner(t testing.TB, i int) signer {
	k := rsaKey(t, i)
	kid := "rsa-" + uuid.NewString()[:8]
	return signer{kid: kid, method: jwt.SigningMethodRS256, key: k, jwk: map[string]string{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()),
	}}
}

func edSigner(t testing.TB) signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid := "ed-" + uuid.NewString()[:8]
	return signer{kid: kid, method: jwt.SigningMethodEdDSA, key: priv, jwk: map[string]string{
		"kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": "EdDSA", "use": "sig", "x": b64(pub),
	}}
}

func ecSigner(t testing.TB) signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	kid := "ec-" + uuid.NewString()[:8]
	return signer{kid: kid, method: jwt.SigningMethodES256, key: k, jwk: map[string]string{
		"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": b64(raw[1:33]), "y": b64(raw[33:65]),
	}}
}

func hmacSigner() signer {
	return signer{method: jwt.SigningMethodHS256, key: testSecret}
}

// claims returns valid claims for subject; edit the map for attack cases.
func claims(subject string) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": testIssuer,
		"aud": testAudience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	if subject != "" {
		c["sub"] = subject
	}
	return c
}

func (s signer) sign(t testing.TB, c jwt.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.method, c)
	if s.kid != "" {
		tok.Header["kid"] = s.kid
	}
	out, err := tok.SignedString(s.key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// jwksServer serves the public keys of its current signers and counts fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	signers []signer
	fetches atomic.Int64
	down    atomic.Bool // answer 503
}

func newJWKSServer(t testing.TB, signers ...signer) *jwksServer {
	j := &jwksServer{signers: signers}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		if j.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		j.mu.Lock()
		keys := make([]map[string]string, len(j.signers))
		for i, s := range j.signers {
			keys[i] = s.jwk
		}
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwksServer) rotate(signers ...signer) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.signers = signers
}

// ---- the host application under test ----

// whoami is what the echo handler answers with.
type whoami struct {
	Tenant  string   `json:"tenant"`
	Clone   string   `json:"clone"`
	Subject string   `json:"subject"`
	Roles   []string `json:"roles"`
}

// app is an httptest server whose handlers sit behind the middleware.
type app struct {
	*httptest.Server
	audit   *audit.Memory
	cache   *clonehttp.Cache
	reached atomic.Int64 // requests that reached a handler
}

func newApp(t testing.TB, auth clonehttp.Authenticator, res clonehttp.Resolver, opts *clonehttp.Options) *app {
	a := &app{audit: &audit.Memory{}}
	var o clonehttp.Options
	if opts != nil {
		o = *opts
	}
	o.Audit = a.audit
	if o.Cache == nil && !o.NoCache {
		o.Cache = clonehttp.NewCache(nil)
	}
	a.cache = o.Cache
	mw := clonehttp.Middleware(auth, res, &o)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.reached.Add(1)
		cc, err := clone.FromContext(r.Context())
		if err != nil {
			clonehttp.WriteError(w, r, err)
			return
		}
		p := cc.Principal()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(whoami{cc.TenantID().String(), cc.CloneID().String(), p.Subject, p.Roles})
	})
	mux := http.NewServeMux()
	mux.Handle("/me", mw(echo))
	pathOpts := o
	pathOpts.Selector = clonehttp.PathSelector("tenant", "clone")
	mux.Handle("/t/{tenant}/c/{clone}/me", clonehttp.Middleware(auth, res, &pathOpts)(echo))
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

type reply struct {
	status int
	header http.Header
	body   []byte
	who    whoami
	prob   clonehttp.Problem
}

// get sends GET path with the bearer token (if any) and extra headers.
func (a *app) get(t testing.TB, path, token string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := a.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, header: resp.Header, body: body}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &r.who); err != nil {
			t.Fatalf("200 body %q: %v", body, err)
		}
	} else {
		if ct := resp.Header.Get("Content-Type"); ct != clonehttp.ProblemContentType {
			t.Fatalf("status %d with Content-Type %q; want %s", resp.StatusCode, ct, clonehttp.ProblemContentType)
		}
		if err := json.Unmarshal(body, &r.prob); err != nil {
			t.Fatalf("problem body %q: %v", body, err)
		}
		if r.prob.Status != resp.StatusCode || !strings.HasPrefix(r.prob.Type, clonehttp.ProblemTypePrefix) || r.prob.Title == "" {
			t.Fatalf("problem %+v for status %d", r.prob, resp.StatusCode)
		}
	}
	return r
}

// leaks are fragments of internal detail that must never appear in a response body.
var leaks = []string{"jwt", "token is", "keyfunc", "jwk", "sql", "pq:", "signature is invalid", "crypto/", "goroutine", "panic", "tenant.", "clonehttp.", "jwtauth."}

func checkNoLeak(t testing.TB, name string, body []byte) {
	t.Helper()
	low := strings.ToLower(string(body))
	for _, l := range leaks {
		if strings.Contains(low, l) {
			t.Errorf("%s: body leaks %q: %s", name, l, body)
		}
	}
}

// denials returns the recorded events other than allowed ones.
func denials(m *audit.Memory) []audit.Event {
	var out []audit.Event
	for _, e := range m.Events() {
		if e.Outcome != audit.Allowed {
			out = append(out, e)
		}
	}
	return out
}

// countingResolver counts the store round trips the middleware makes.
type countingResolver struct {
	clonehttp.Resolver
	calls atomic.Int64
}

func (c *countingResolver) ProvisionSolo(ctx context.Context, subject string) (clone.CloneContext, bool, error) {
	c.calls.Add(1)
	return c.Resolver.ProvisionSolo(ctx, subject)
}

func (c *countingResolver) ResolveClone(ctx context.Context, subject string, tenantID, cloneID uuid.UUID) (clone.CloneContext, error) {
	c.calls.Add(1)
	return c.Resolver.ResolveClone(ctx, subject, tenantID, cloneID)
}
