package clonehttp_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
)

// TestJWKSRotation: RS256, ES256 and EdDSA tokens verify against keys from a JWKS
// endpoint; when the identity provider rotates its keys, a token naming a new key ID
// triggers a refresh and verifies, and tokens of the withdrawn keys stop verifying.
func TestJWKSRotation(t *testing.T) {
	s, _ := sqliteStore(t)
	rsa1, ed1, ec1 := rsaSigner(t, 0), edSigner(t), ecSigner(t)
	jwks := newJWKSServer(t, rsa1, ed1, ec1)
	auth := newJWKS(t, jwks.URL, &jwtauth.Options{UnknownKeyRefresh: time.Millisecond})
	a := newApp(t, auth, s, nil)
	subject := "rotating-" + uuid.NewString()

	var first reply
	for i, sg := range []signer{rsa1, ed1, ec1} {
		r := a.get(t, "/me", sg.sign(t, claims(subject)))
		if r.status != http.StatusOK || r.who.Subject != subject {
			t.Fatalf("%s before rotation: %d %s", sg.method.Alg(), r.status, r.body)
		}
		if i == 0 {
			first = r
		} else if r.who.Clone != first.who.Clone {
			t.Fatalf("%s resolved another clone", sg.method.Alg())
		}
	}
	// A token without kid is checked against the keys of its algorithm.
	noKID := ed1
	noKID.kid = ""
	if r := a.get(t, "/me", noKID.sign(t, claims(subject))); r.status != http.StatusOK {
		t.Fatalf("EdDSA without kid: %d %s", r.status, r.body)
	}
	fetchesBefore := jwks.fetches.Load()

	// Rotation: the provider now publishes rsa2 and ed2 only.
	rsa2, ed2 := rsaSigner(t, 1), edSigner(t)
	jwks.rotate(rsa2, ed2)
	for _, sg := range []signer{ed2, rsa2} {
		r := a.get(t, "/me", sg.sign(t, claims(subject)))
		if r.status != http.StatusOK || r.who.Clone != first.who.Clone {
			t.Fatalf("%s after rotation: %d %s", sg.method.Alg(), r.status, r.body)
		}
	}
	if jwks.fetches.Load() == fetchesBefore {
		t.Fatal("a token with a new key ID did not refresh the JWKS")
	}
	a.audit.Reset()
	for _, sg := range []signer{rsa1, ed1, ec1} {
		r := a.get(t, "/me", sg.sign(t, claims(subject)))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("%s of a withdrawn key: %d; want 401", sg.method.Alg(), r.status)
		}
	}
	if n := len(denials(a.audit)); n != 3 {
		t.Fatalf("%d denials audited for 3 withdrawn-key tokens", n)
	}
}

// TestJWKSUnknownKeyFlood: tokens with random key IDs cannot make the server fetch the
// JWKS more than once per UnknownKeyRefresh, nor make requests wait for the limit (a
// minute each: requests that waited would run into the test binary's timeout; no
// wall-clock time is asserted).
func TestJWKSUnknownKeyFlood(t *testing.T) {
	s, _ := sqliteStore(t)
	real := edSigner(t)
	jwks := newJWKSServer(t, real)
	a := newApp(t, newJWKS(t, jwks.URL, nil), s, nil) // default: one refresh a minute
	if r := a.get(t, "/me", real.sign(t, claims("flood-"+uuid.NewString()))); r.status != http.StatusOK {
		t.Fatalf("real key: %d %s", r.status, r.body)
	}
	a.audit.Reset()
	const n = 20
	for range n {
		fake := edSigner(t) // unknown key ID, unknown key
		if r := a.get(t, "/me", fake.sign(t, claims("flood"))); r.status != http.StatusUnauthorized {
			t.Fatalf("unknown key: %d", r.status)
		}
	}
	if f := jwks.fetches.Load(); f > 2 {
		t.Fatalf("%d JWKS fetches for %d unknown-key tokens; want at most 2 (start + one refresh)", f, n)
	}
	ev := denials(a.audit)
	if len(ev) != n {
		t.Fatalf("%d denials audited; want %d", len(ev), n)
	}
	for _, e := range ev {
		if e.Outcome != audit.Denied || e.Action != "clonehttp.Authenticate" {
			t.Fatalf("event %+v", e)
		}
	}
}

// TestJWKSUnreachable: an identity provider that is down when the server starts does not
// stop it; tokens are refused (401, not 500) until the keys can be fetched, the failure
// is logged, and the first token after recovery verifies.
func TestJWKSUnreachable(t *testing.T) {
	s, _ := sqliteStore(t)
	ed := edSigner(t)
	jwks := newJWKSServer(t, ed)
	jwks.down.Store(true)
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	// The refresh after recovery needs no sleep: a request waits for the rate limiter
	// (UnknownKeyRefresh) up to FetchTimeout, and a minute is far beyond a millisecond.
	auth := newJWKS(t, jwks.URL, &jwtauth.Options{FetchTimeout: time.Minute, UnknownKeyRefresh: time.Millisecond, Logger: logger})
	a := newApp(t, auth, s, nil)
	tok := ed.sign(t, claims("down-"+uuid.NewString()))
	r := a.get(t, "/me", tok)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("provider down: %d %s; want 401", r.status, r.body)
	}
	if n := len(denials(a.audit)); n != 1 {
		t.Fatalf("%d denials", n)
	}
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	if !strings.Contains(logged, "JWKS refresh failed") {
		t.Fatalf("refresh failure not logged: %q", logged)
	}
	jwks.down.Store(false)
	if r := a.get(t, "/me", tok); r.status != http.StatusOK {
		t.Fatalf("provider back: %d %s; want 200", r.status, r.body)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
