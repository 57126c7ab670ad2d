package jwtauth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestConstructorsRefuseUnsafeSettings(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		make func() (*jwtauth.Authenticator, error)
	}{
		{"no issuer", func() (*jwtauth.Authenticator, error) { return jwtauth.NewHMAC("", "aud", secret, nil) }},
		{"blank audience", func() (*jwtauth.Authenticator, error) { return jwtauth.NewHMAC("iss", "  ", secret, nil) }},
		{"short secret", func() (*jwtauth.Authenticator, error) { return jwtauth.NewHMAC("iss", "aud", secret[:31], nil) }},
		{"alg none", func() (*jwtauth.Authenticator, error) {
			return jwtauth.NewHMAC("iss", "aud", secret, &jwtauth.Options{Algorithms: []string{"none"}})
		}},
		{"RS256 with a shared secret", func() (*jwtauth.Authenticator, error) {
			return jwtauth.NewHMAC("iss", "aud", secret, &jwtauth.Options{Algorithms: []string{"HS256", "RS256"}})
		}},
		{"HS256 with JWKS", func() (*jwtauth.Authenticator, error) {
			return jwtauth.NewJWKS(ctx, "iss", "aud", "https://idp.test/jwks", &jwtauth.Options{Algorithms: []string{"RS256", "HS256"}})
		}},
		{"huge leeway", func() (*jwtauth.Authenticator, error) {
			return jwtauth.NewHMAC("iss", "aud", secret, &jwtauth.Options{Leeway: time.Hour})
		}},
		{"JWKS over plain http", func() (*jwtauth.Authenticator, error) {
			return jwtauth.NewJWKS(ctx, "iss", "aud", "http://idp.test/jwks", nil)
		}},
		{"JWKS URL with credentials", func() (*jwtauth.Authenticator, error) {
			return jwtauth.NewJWKS(ctx, "iss", "aud", "https://u:p@idp.test/jwks", nil)
		}},
		{"relative JWKS URL", func() (*jwtauth.Authenticator, error) { return jwtauth.NewJWKS(ctx, "iss", "aud", "/jwks", nil) }},
		{"JWKS without audience", func() (*jwtauth.Authenticator, error) {
			return jwtauth.NewJWKS(ctx, "iss", "", "https://idp.test/jwks", nil)
		}},
	}
	for _, c := range cases {
		a, err := c.make()
		if a != nil || !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("%s: %v, %v; want ErrInvalidInput", c.name, a, err)
		}
	}
	a, err := jwtauth.NewHMAC("iss", "aud", secret, nil)
	if err != nil || strings.Join(a.Algorithms(), ",") != "HS256" {
		t.Fatalf("default HMAC: %v, %v", a, err)
	}
}

func TestBearerToken(t *testing.T) {
	cases := []struct {
		hdr  []string
		tok  string
		fail bool
	}{
		{nil, "", true},
		{[]string{"Bearer abc.def.ghi"}, "abc.def.ghi", false},
		{[]string{"bearer abc.def.ghi"}, "abc.def.ghi", false},
		{[]string{"BEARER abc.def.ghi"}, "abc.def.ghi", false},
		{[]string{"Bearer "}, "", true},
		{[]string{"Bearer"}, "", true},
		{[]string{"Bearer a b"}, "", true},
		{[]string{"Bearer  abc"}, "", true},
		{[]string{"Basic abc"}, "", true},
		{[]string{"Bearer a", "Bearer a"}, "", true},
		{[]string{"Bearer " + strings.Repeat("x", 101)}, "", true},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, h := range c.hdr {
			r.Header.Add("Authorization", h)
		}
		tok, err := jwtauth.BearerToken(r, 100)
		if c.fail != (err != nil) || tok != c.tok {
			t.Errorf("%q: %q, %v", c.hdr, tok, err)
		}
		if err != nil && !errors.Is(err, clone.ErrUnauthenticated) {
			t.Errorf("%q: %v; want ErrUnauthenticated", c.hdr, err)
		}
	}
}

// TestLeeway: clock skew within the leeway is tolerated, beyond it refused, with the
// fixed-vocabulary reason in the message.
func TestLeeway(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	a, err := jwtauth.NewHMAC("iss", "aud", secret, &jwtauth.Options{Leeway: 30 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": "iss", "aud": "aud", "sub": "s", "exp": now.Add(time.Minute).Unix()}
	}
	at := func(k string, d time.Duration) string { c := base(); c[k] = now.Add(d).Unix(); return sign(c) }
	ok := []string{sign(base()), at("exp", -20*time.Second), at("nbf", 20*time.Second), at("iat", 20*time.Second)}
	for i, tok := range ok {
		if p, err := a.Verify(context.Background(), tok); err != nil || p.Subject != "s" {
			t.Errorf("within leeway %d: %v, %v", i, p, err)
		}
	}
	bad := map[string]string{
		"bearer token expired":              at("exp", -40*time.Second),
		"bearer token not valid yet":        at("nbf", 40*time.Second),
		"bearer token issued in the future": at("iat", 40*time.Second),
	}
	for want, tok := range bad {
		_, err := a.Verify(context.Background(), tok)
		var e *clone.Error
		if !errors.As(err, &e) || e.Msg != want || !errors.Is(err, clone.ErrUnauthenticated) {
			t.Errorf("%s: %v", want, err)
		}
	}
}

// TestStaticKeyConfusion: an EdDSA token presented to an HMAC authenticator, whose key
// is a secret, fails on the allow-list, and a key of the wrong type never verifies.
func TestStaticKeyConfusion(t *testing.T) {
	a, err := jwtauth.NewHMAC("iss", "aud", secret, &jwtauth.Options{Algorithms: []string{"HS256", "HS512"}})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	c := jwt.MapClaims{"iss": "iss", "aud": "aud", "sub": "s", "exp": time.Now().Add(time.Minute).Unix()}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(priv)
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, clone.ErrUnauthenticated) {
		t.Fatalf("EdDSA at HMAC: %v", err)
	}
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, c).SignedString(secret)
	if _, err := a.Verify(context.Background(), hs512); err != nil {
		t.Fatalf("HS512 in the allow-list: %v", err)
	}
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, c).SignedString(secret)
	if _, err := a.Verify(context.Background(), hs384); !errors.Is(err, clone.ErrUnauthenticated) {
		t.Fatalf("HS384 outside the allow-list: %v", err)
	}
}

// TestEd25519AlgorithmName: RFC 9864's "Ed25519" verifies like "EdDSA" against Ed25519
// keys whatever "alg" the JWKS publishes them with (EdDSA, Ed25519 or none); another
// key's signature is refused under either name, and an allow-list without "Ed25519"
// refuses it.
func TestEd25519AlgorithmName(t *testing.T) {
	ctx := t.Context()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed25519Method := jwt.GetSigningMethod("Ed25519")
	if ed25519Method == nil {
		t.Fatal(`jwtauth did not register the "Ed25519" signing method`)
	}
	sign := func(m jwt.SigningMethod, key ed25519.PrivateKey, kid string) string {
		tok := jwt.NewWithClaims(m, jwt.RegisteredClaims{Issuer: "iss", Audience: jwt.ClaimStrings{"aud"}, Subject: "alice",
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	x := base64.RawURLEncoding.EncodeToString(pub)
	for _, published := range []string{"EdDSA", "Ed25519", ""} {
		t.Run("published as "+published, func(t *testing.T) {
			alg := ""
			if published != "" {
				alg = `,"alg":"` + published + `"`
			}
			jwks := `{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","use":"sig","x":"` + x + `"` + alg + `}]}`
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, jwks)
			}))
			defer srv.Close()
			a, err := jwtauth.NewJWKS(ctx, "iss", "aud", srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []jwt.SigningMethod{ed25519Method, jwt.SigningMethodEdDSA} {
				if published == "Ed25519" && m == jwt.SigningMethodEdDSA {
					// A key published as "Ed25519" is not offered to "EdDSA" tokens by
					// keyfunc (RFC 7517: "alg" names the one algorithm the key is for).
					continue
				}
				p, err := a.Verify(ctx, sign(m, priv, "k1"))
				if err != nil || p.Subject != "alice" {
					t.Fatalf("%s token: %+v, %v", m.Alg(), p, err)
				}
				if _, err := a.Verify(ctx, sign(m, otherPriv, "k1")); !errors.Is(err, clone.ErrUnauthenticated) {
					t.Fatalf("%s token signed by another key: %v; want ErrUnauthenticated", m.Alg(), err)
				}
			}
			strict, err := jwtauth.NewJWKS(ctx, "iss", "aud", srv.URL, &jwtauth.Options{Algorithms: []string{"EdDSA"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := strict.Verify(ctx, sign(ed25519Method, priv, "k1")); !errors.Is(err, clone.ErrUnauthenticated) {
				t.Fatalf(`"Ed25519" token outside the allow-list: %v; want ErrUnauthenticated`, err)
			}
		})
	}
	if _, err := jwtauth.NewJWKS(ctx, "iss", "aud", "https://idp.test/jwks", &jwtauth.Options{RefreshInterval: time.Second}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("refresh interval under the minimum: %v; want ErrInvalidInput", err)
	}
	if _, err := jwtauth.NewHMAC("iss", "aud", secret, &jwtauth.Options{Algorithms: []string{"Ed25519"}}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf(`"Ed25519" with a shared secret: %v; want ErrInvalidInput`, err)
	}
}
