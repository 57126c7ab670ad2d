// Package jwtauth authenticates HTTP requests by a JSON Web Token in the Authorization
// header ("Bearer <token>"), for the clonehttp middleware.
//
// Two key sources are supported, each with its own algorithm family so that a token can
// never choose how it is verified:
//
//   - [NewHMAC]: a shared secret of at least 32 bytes; algorithms HS256 (default),
//     HS384, HS512.
//   - [NewJWKS]: the public keys of an identity provider from a JWKS URL (through
//     github.com/MicahParks/keyfunc/v3), refreshed periodically and when a token names a
//     key ID the cached set does not hold (key rotation), at most once per
//     [Options].UnknownKeyRefresh; algorithms RS256, ES256, EdDSA and Ed25519 by
//     default, and RS384/512, PS256/384/512, ES384/512 on request. HMAC is never
//     accepted with JWKS, which rules out the classic "HS256 signed with the RSA public
//     key" confusion.
//
// "Ed25519" is RFC 9864's fully specified name for EdDSA over the Ed25519 curve (the
// only EdDSA curve this package verifies). A token with either name verifies against an
// Ed25519 key published with "alg" "EdDSA", "Ed25519" or none. This package registers
// the "Ed25519" signing method with github.com/golang-jwt/jwt/v5 (as "EdDSA" is
// registered by that library) if no other package has.
//
// Key removal: the key set is cached. A key the identity provider removes from its JWKS
// (rotated out or compromised) keeps verifying tokens until the next scheduled refresh,
// at most [Options].RefreshInterval later (default 1 h); a token naming an unknown key ID
// triggers a refresh at once, but a removed key is by definition known. Deployments that
// must stop trusting a removed key sooner set a shorter RefreshInterval (down to
// [MinRefreshInterval]); tokens' own short expiry bounds the exposure too.
//
// Every token must carry the configured issuer ("iss") and audience ("aud"), an expiry
// ("exp") and a subject ("sub"); "nbf" and "iat" are honoured when present, all with a
// small leeway for clock skew (30 s by default). "alg": "none", algorithms outside the
// allow-list, tokens with a "crit" header and tokens over [Options].MaxTokenBytes are
// refused. Parsing and signature checks are those of github.com/golang-jwt/jwt/v5.
//
// Every refusal is an error of kind clone.ErrUnauthenticated whose message (safe to
// show, from a fixed vocabulary such as "bearer token expired") says why; the library's
// error is wrapped for logs and audit.
package jwtauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Defaults and limits of [Options].
const (
	DefaultLeeway            = 30 * time.Second
	MaxLeeway                = 5 * time.Minute
	DefaultMaxTokenBytes     = 8 << 10
	DefaultRefreshInterval   = time.Hour
	MinRefreshInterval       = 10 * time.Second
	DefaultUnknownKeyRefresh = time.Minute
	DefaultFetchTimeout      = 10 * time.Second
	MinSecretBytes           = 32
	MaxSubjectBytes          = 255 // as tenant.MaxSubjectLen
)

// Options tune an [Authenticator]. A nil *Options, and every zero field, means the
// default.
type Options struct {
	// Algorithms is the allow-list of "alg" values. Default: HS256 for NewHMAC; RS256,
	// ES256, EdDSA and Ed25519 for NewJWKS. Only algorithms of the key source's family may be
	// listed; "none" never.
	Algorithms []string
	// Leeway is the clock skew tolerated on exp, nbf and iat (default 30 s, at most 5 min).
	// A negative value means no leeway.
	Leeway time.Duration
	// MaxTokenBytes bounds the Authorization header's token (default 8 KiB). Larger
	// tokens are refused before they are parsed.
	MaxTokenBytes int
	// Now is the clock used to check exp, nbf and iat (default time.Now); for tests.
	Now func() time.Time

	// HTTPClient fetches the JWKS (NewJWKS only). Default: a client without cookies
	// whose requests time out after FetchTimeout.
	HTTPClient *http.Client
	// FetchTimeout bounds one JWKS fetch (default 10 s).
	FetchTimeout time.Duration
	// RefreshInterval is how often the JWKS is fetched in the background (default 1 h,
	// at least MinRefreshInterval). It is also the longest time a key removed from the
	// JWKS keeps verifying tokens: shorten it where a removed key must stop working
	// sooner (5 min costs an identity provider 12 fetches an hour per process).
	RefreshInterval time.Duration
	// UnknownKeyRefresh is the least time between two fetches triggered by tokens naming
	// a key ID that is not in the cached set (default 1 min). Requests arriving while the
	// limit holds fail at once instead of waiting, so random key IDs cannot stall the
	// server or hammer the identity provider.
	UnknownKeyRefresh time.Duration
	// Logger receives JWKS refresh failures (default slog.Default()).
	Logger *slog.Logger
}

// Authenticator verifies bearer tokens. It implements clonehttp.Authenticator and is
// safe for concurrent use.
type Authenticator struct {
	parser   *jwt.Parser
	keys     func(ctx context.Context) jwt.Keyfunc
	algs     []string
	maxToken int
}

var (
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
	pkAlgs   = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", algEd25519}
	jwksAlgs = []string{"RS256", "ES256", "EdDSA", algEd25519}
)

// algEd25519 is RFC 9864's fully specified JOSE algorithm name for EdDSA with Ed25519.
const algEd25519 = "Ed25519"

// ed25519Method is golang-jwt's EdDSA method under the name "Ed25519" (RFC 9864): the
// same signature scheme, restricted to the one curve golang-jwt's EdDSA supports.
type ed25519Method struct{}

func (ed25519Method) Alg() string { return algEd25519 }

func (ed25519Method) Verify(signingString string, sig []byte, key any) error {
	return jwt.SigningMethodEdDSA.Verify(signingString, sig, key)
}

func (ed25519Method) Sign(signingString string, key any) ([]byte, error) {
	return jwt.SigningMethodEdDSA.Sign(signingString, key)
}

func init() {
	if jwt.GetSigningMethod(algEd25519) == nil {
		jwt.RegisterSigningMethod(algEd25519, func() jwt.SigningMethod { return ed25519Method{} })
	}
}

// NewHMAC returns an Authenticator for tokens signed with secret (HS256 by default).
// issuer and audience are required; secret must be at least 32 bytes (RFC 7518 §3.2)
// and is copied.
func NewHMAC(issuer, audience string, secret []byte, opts *Options) (*Authenticator, error) {
	const op = "jwtauth.NewHMAC"
	if len(secret) < MinSecretBytes {
		return nil, errs.New(errs.InvalidInput, op, "HMAC secret must be at least %d bytes", MinSecretBytes)
	}
	key := slices.Clone(secret)
	a, err := newAuthenticator(op, issuer, audience, opts, []string{"HS256"}, hmacAlgs)
	if err != nil {
		return nil, err
	}
	kf := func(t *jwt.Token) (any, error) { return key, nil }
	a.keys = func(context.Context) jwt.Keyfunc { return kf }
	return a, nil
}

// NewJWKS returns an Authenticator for tokens signed by the keys published at jwksURL,
// which must be an https URL (or http on a loopback address, for tests and sidecars).
// issuer and audience are required. The key set is fetched now and then refreshed in the
// background until ctx is done; if the first fetch fails, NewJWKS still succeeds and
// tokens are refused until a later fetch (on schedule, or triggered by an unknown key
// ID) succeeds.
func NewJWKS(ctx context.Context, issuer, audience, jwksURL string, opts *Options) (*Authenticator, error) {
	const op = "jwtauth.NewJWKS"
	u, err := url.Parse(jwksURL)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, errs.New(errs.InvalidInput, op, "JWKS URL must be an absolute URL without credentials")
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, errs.New(errs.InvalidInput, op, "JWKS URL must use https (http only on a loopback address)")
	}
	a, err := newAuthenticator(op, issuer, audience, opts, jwksAlgs, pkAlgs)
	if err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.RefreshInterval != 0 && o.RefreshInterval < MinRefreshInterval {
		return nil, errs.New(errs.InvalidInput, op, "refresh interval under %s", MinRefreshInterval)
	}
	fetchTimeout := positive(o.FetchTimeout, DefaultFetchTimeout)
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.Default()
	}
	noErrorOnFirst := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{u.String()}, keyfunc.Override{
		Client:                    client,
		HTTPTimeout:               fetchTimeout,
		NoErrorReturnFirstHTTPReq: &noErrorOnFirst,
		RefreshInterval:           positive(o.RefreshInterval, DefaultRefreshInterval),
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(positive(o.UnknownKeyRefresh, DefaultUnknownKeyRefresh)), 1),
		// Bounds both the wait for the limiter (a request fails at once if the next
		// refresh is further away) and the triggered fetch.
		RateLimitWaitMax: fetchTimeout,
		RefreshErrorHandlerFunc: func(string) func(ctx context.Context, err error) {
			return func(ctx context.Context, err error) {
				logger.WarnContext(ctx, "jwtauth: JWKS refresh failed", slog.String("url", redact(u)), slog.String("error", err.Error()))
			}
		},
	})
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, op, err, "JWKS")
	}
	a.keys = kf.KeyfuncCtx
	return a, nil
}

func newAuthenticator(op, issuer, audience string, opts *Options, defaultAlgs, family []string) (*Authenticator, error) {
	if strings.TrimSpace(issuer) == "" {
		return nil, errs.New(errs.InvalidInput, op, "issuer is required")
	}
	if strings.TrimSpace(audience) == "" {
		return nil, errs.New(errs.InvalidInput, op, "audience is required")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	algs := slices.Clone(o.Algorithms)
	if len(algs) == 0 {
		algs = defaultAlgs
	}
	for _, alg := range algs {
		if !slices.Contains(family, alg) {
			return nil, errs.New(errs.InvalidInput, op, "algorithm %q not allowed with this key source (allowed: %s)", alg, strings.Join(family, ", "))
		}
	}
	leeway := o.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	case leeway > MaxLeeway:
		return nil, errs.New(errs.InvalidInput, op, "leeway over %s", MaxLeeway)
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
	}
	if o.Now != nil {
		popts = append(popts, jwt.WithTimeFunc(o.Now))
	}
	maxToken := o.MaxTokenBytes
	if maxToken <= 0 {
		maxToken = DefaultMaxTokenBytes
	}
	return &Authenticator{parser: jwt.NewParser(popts...), algs: algs, maxToken: maxToken}, nil
}

// Algorithms returns the allow-list of "alg" values.
func (a *Authenticator) Algorithms() []string { return slices.Clone(a.algs) }

// Authenticate verifies the request's bearer token and returns its subject as the
// principal (without roles: roles come from the tenant store). Every failure is an error
// of kind clone.ErrUnauthenticated.
func (a *Authenticator) Authenticate(r *http.Request) (clone.Principal, error) {
	tok, err := BearerToken(r, a.maxToken)
	if err != nil {
		return clone.Principal{}, err
	}
	return a.Verify(r.Context(), tok)
}

// Verify verifies token (the compact JWS, without "Bearer ") and returns its subject as
// the principal. Every failure is an error of kind clone.ErrUnauthenticated.
func (a *Authenticator) Verify(ctx context.Context, token string) (clone.Principal, error) {
	const op = "jwtauth.Verify"
	if len(token) > a.maxToken {
		return clone.Principal{}, errs.New(errs.Unauthenticated, op, "bearer token too large")
	}
	var claims jwt.RegisteredClaims
	keys := a.keys(ctx)
	_, err := a.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
			return nil, errors.New(`"crit" header not supported`)
		}
		key, err := keys(t)
		if err != nil && t.Method.Alg() == algEd25519 {
			// A JWKS publishes Ed25519 keys with "alg" "EdDSA" (RFC 8037) more often
			// than "Ed25519" (RFC 9864); both name this key type.
			key, err = keys(withAlg(t, "EdDSA"))
		}
		if err != nil {
			return nil, err
		}
		return keyFor(t.Method, key)
	})
	if err != nil {
		return clone.Principal{}, errs.Wrap(errs.Unauthenticated, op, err, "%s", reason(err))
	}
	if err := validSubject(claims.Subject); err != nil {
		return clone.Principal{}, errs.Wrap(errs.Unauthenticated, op, err, "bearer token subject not usable")
	}
	return clone.Principal{Subject: claims.Subject}, nil
}

// BearerToken returns the token of r's Authorization header ("Bearer <token>", scheme
// case-insensitive). A missing header, another scheme, several Authorization headers, an
// empty token and a token over maxBytes are errors of kind clone.ErrUnauthenticated.
func BearerToken(r *http.Request, maxBytes int) (string, error) {
	const op = "jwtauth.BearerToken"
	vals := r.Header.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", errs.New(errs.Unauthenticated, op, "missing bearer token")
	case len(vals) > 1:
		return "", errs.New(errs.Unauthenticated, op, "more than one Authorization header")
	}
	h := vals[0]
	const scheme = "bearer "
	if len(h) < len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", errs.New(errs.Unauthenticated, op, "missing bearer token")
	}
	tok := h[len(scheme):]
	if len(tok) > maxBytes {
		return "", errs.New(errs.Unauthenticated, op, "bearer token too large")
	}
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", errs.New(errs.Unauthenticated, op, "malformed bearer token")
	}
	return tok, nil
}

// keyFor checks that key is of the type alg verifies with, so that no key source can hand
// an HMAC method a public key or the reverse, whatever the allow-list says.
func keyFor(m jwt.SigningMethod, key any) (any, error) {
	if set, ok := key.(jwt.VerificationKeySet); ok {
		var out jwt.VerificationKeySet
		for _, k := range set.Keys {
			if matches(m, k) {
				out.Keys = append(out.Keys, k)
			}
		}
		if len(out.Keys) == 0 {
			return nil, errors.New("no key of the token's algorithm")
		}
		return out, nil
	}
	if !matches(m, key) {
		return nil, errors.New("key type does not match the token's algorithm")
	}
	return key, nil
}

func matches(m jwt.SigningMethod, key any) bool {
	switch m.(type) {
	case *jwt.SigningMethodHMAC:
		_, ok := key.([]byte)
		return ok
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case *jwt.SigningMethodECDSA:
		_, ok := key.(*ecdsa.PublicKey)
		return ok
	case *jwt.SigningMethodEd25519, ed25519Method:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// withAlg returns a copy of t whose header names alg (t is not changed).
func withAlg(t *jwt.Token, alg string) *jwt.Token {
	c := *t
	c.Header = maps.Clone(t.Header)
	c.Header["alg"] = alg
	return &c
}

// reason turns a golang-jwt error into a message from a fixed vocabulary (never the
// token's content).
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed bearer token"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "bearer token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "bearer token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "bearer token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "bearer token issuer not accepted"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "bearer token audience not accepted"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "bearer token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bearer token key not accepted"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bearer token signature or algorithm not accepted"
	}
	return "invalid bearer token"
}

func validSubject(s string) error {
	switch {
	case s == "":
		return errors.New("empty subject")
	case len(s) > MaxSubjectBytes:
		return errors.New("subject too long")
	case !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("subject is not printable UTF-8")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func positive(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func redact(u *url.URL) string {
	c := *u
	c.RawQuery = ""
	c.Fragment = ""
	return c.String()
}
