package clonehttp_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonehttp/jwtauth"
)

// discardWriter is the cheapest http.ResponseWriter, so the benchmark measures the
// middleware and not a recorder.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

type benchCase struct {
	auth  *jwtauth.Authenticator
	token string
	h     http.Handler
	req   *http.Request
	res   *countingResolver
}

func newBenchCase(b *testing.B, alg string) *benchCase {
	s, _ := sqliteStore(b)
	subject := "bench-" + uuid.NewString()
	c := &benchCase{res: &countingResolver{Resolver: s}}
	switch alg {
	case "HS256":
		c.auth = newHMAC(b)
		c.token = hmacSigner().sign(b, claims(subject))
	case "EdDSA":
		ed := edSigner(b)
		jwks := newJWKSServer(b, ed)
		c.auth = newJWKS(b, jwks.URL, nil)
		c.token = ed.sign(b, claims(subject))
	}
	mw := clonehttp.Middleware(c.auth, c.res, &clonehttp.Options{Audit: &audit.Memory{}})
	c.h = mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := clone.FromContext(r.Context()); err != nil {
			panic(err)
		}
	}))
	c.req = httptest.NewRequest(http.MethodGet, "/me", nil)
	c.req.Header.Set("Authorization", "Bearer "+c.token)
	// Warm up: the first request provisions the clone and fills the cache.
	w := &discardWriter{h: http.Header{}}
	c.h.ServeHTTP(w, c.req)
	if c.res.calls.Load() != 1 {
		b.Fatalf("warm-up made %d store calls", c.res.calls.Load())
	}
	if _, err := c.auth.Verify(context.Background(), c.token); err != nil {
		b.Fatal(err)
	}
	return c
}

func (c *benchCase) verify(b *testing.B) {
	if _, err := c.auth.Verify(c.req.Context(), c.token); err != nil {
		b.Fatal(err)
	}
}

func (c *benchCase) serve(w *discardWriter) { c.h.ServeHTTP(w, c.req) }

// BenchmarkMiddleware compares a warm-cache request through the whole middleware
// (authenticate, cache hit, context attached, handler called) with the bare JWT
// verification, for HS256 and EdDSA (JWKS). The "ratio" sub-benchmarks interleave both
// in small batches within one run and report middleware/verify as "x-verify"; every
// sub-benchmark fails if a warm request reaches the store.
//
//	go test -run '^$' -bench BenchmarkMiddleware -benchmem ./clone/clonehttp/
func BenchmarkMiddleware(b *testing.B) {
	for _, alg := range []string{"HS256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			c := newBenchCase(b, alg)
			b.Run("verify", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					c.verify(b)
				}
			})
			b.Run("middleware", func(b *testing.B) {
				w := &discardWriter{h: http.Header{}}
				before := c.res.calls.Load()
				b.ReportAllocs()
				for b.Loop() {
					c.serve(w)
				}
				if n := c.res.calls.Load() - before; n != 0 {
					b.Fatalf("%d store round trips on warm requests", n)
				}
			})
			b.Run("ratio", func(b *testing.B) {
				// Each iteration times a batch of verifications and a batch of middleware
				// requests back to back (alternating which goes first); the reported ratio
				// is the median of the per-iteration ratios, which a burst of load from
				// other processes on a shared machine cannot skew much.
				const batch = 16
				w := &discardWriter{h: http.Header{}}
				before := c.res.calls.Load()
				var ratios, vs, ms []float64
				i := 0
				for b.Loop() {
					var tv, tm time.Duration
					if i%2 == 0 {
						tv = timed(batch, func() { c.verify(b) })
						tm = timed(batch, func() { c.serve(w) })
					} else {
						tm = timed(batch, func() { c.serve(w) })
						tv = timed(batch, func() { c.verify(b) })
					}
					i++
					ratios = append(ratios, float64(tm)/float64(tv))
					vs = append(vs, float64(tv)/batch)
					ms = append(ms, float64(tm)/batch)
				}
				if n := c.res.calls.Load() - before; n != 0 {
					b.Fatalf("%d store round trips on warm requests", n)
				}
				b.ReportMetric(median(ratios), "x-verify")
				b.ReportMetric(median(vs), "verify-ns")
				b.ReportMetric(median(ms), "mw-ns")
			})
		})
	}
}

func timed(n int, f func()) time.Duration {
	t := time.Now()
	for range n {
		f()
	}
	return time.Since(t)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
