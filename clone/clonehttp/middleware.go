package clonehttp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Authenticator turns a request into the principal it speaks for. It is the extension
// point for hosts with their own authentication; package jwtauth implements it with
// JWTs. It must fail with an error of kind clone.ErrUnauthenticated when the request
// carries no valid credentials (errors without a kind are treated so as well), must not
// read the request body, and must be safe for concurrent use. Only Principal.Subject is
// used: roles come from the tenant store.
type Authenticator interface {
	Authenticate(r *http.Request) (clone.Principal, error)
}

// AuthenticatorFunc adapts a function to [Authenticator].
type AuthenticatorFunc func(r *http.Request) (clone.Principal, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(r *http.Request) (clone.Principal, error) { return f(r) }

// Resolver turns an authenticated subject into a clone. *tenant.Store implements it.
//
// ProvisionSolo returns the subject's own clone, creating its tenant and clone on the
// subject's first call (and must be safe under concurrent first calls). ResolveClone
// returns the context for an explicit selection, refusing with clone.ErrForbidden a clone
// of the subject's tenant it may not use and with clone.ErrNotFound anything else, and
// with clone.ErrSuspended a suspended or offboarded clone.
type Resolver interface {
	ProvisionSolo(ctx context.Context, subject string) (cc clone.CloneContext, created bool, err error)
	ResolveClone(ctx context.Context, subject string, tenantID, cloneID uuid.UUID) (clone.CloneContext, error)
}

// Selector reads an explicit clone selection from a request: the tenant and clone IDs as
// they arrived, and whether the request selects a clone at all. The middleware parses
// the IDs strictly (clone.ParseID) and asks the Resolver whether the subject may use
// that clone; a request without a selection gets the subject's own clone.
type Selector func(r *http.Request) (tenantID, cloneID string, ok bool)

// Default selection headers of [HeaderSelector].
const (
	TenantHeader = "Cloneiso-Tenant"
	CloneHeader  = "Cloneiso-Clone"
)

// HeaderSelector selects the clone named by two request headers. A request carrying
// either header selects (a missing or repeated one then fails as an invalid ID).
func HeaderSelector(tenantHeader, cloneHeader string) Selector {
	tenantHeader, cloneHeader = http.CanonicalHeaderKey(tenantHeader), http.CanonicalHeaderKey(cloneHeader)
	return func(r *http.Request) (string, string, bool) {
		t, c := r.Header[tenantHeader], r.Header[cloneHeader]
		if len(t) == 0 && len(c) == 0 {
			return "", "", false
		}
		return single(t), single(c), true
	}
}

// single returns the one value of a header, or "" (an invalid ID) for none or several.
func single(vs []string) string {
	if len(vs) != 1 {
		return ""
	}
	return vs[0]
}

// PathSelector selects the clone named by two wildcards of the http.ServeMux pattern
// the handler is registered under, e.g. PathSelector("tenant", "clone") with
// "/t/{tenant}/c/{clone}/". The middleware must wrap the handler registered on the mux
// (not the mux itself), so that the wildcards are matched when it runs. A request whose
// pattern has neither wildcard does not select.
func PathSelector(tenantWildcard, cloneWildcard string) Selector {
	return func(r *http.Request) (string, string, bool) {
		t, c := r.PathValue(tenantWildcard), r.PathValue(cloneWildcard)
		if t == "" && c == "" {
			return "", "", false
		}
		return t, c, true
	}
}

// DefaultRequestIDHeader is the header the request ID is read from and echoed in.
const DefaultRequestIDHeader = "X-Request-Id"

// DefaultResolveTimeout bounds one store lookup shared by concurrent requests.
const DefaultResolveTimeout = 10 * time.Second

// Options tune [Middleware]. A nil *Options, and every zero field, means the default.
type Options struct {
	// Audit receives one event per refused request (and one per first-sign-in
	// provisioning). Default: audit.DefaultSink (slog.Default()). A sink failure never
	// changes the answer; it is logged with the whole event and counted (audit.Emit).
	Audit audit.Sink
	// Logger, if set, gets one access-log record per request, with the request ID and
	// the tenant and clone IDs (info below 400, warn for 4xx, error for 5xx). Default:
	// none.
	Logger *slog.Logger
	// Cache holds resolutions; pass your own to be able to invalidate it. Default: a
	// private NewCache(nil) (10000 entries, 30 s TTL).
	Cache *Cache
	// NoCache makes every request resolve against the store, without coalescing
	// concurrent lookups. For tests and for hosts that cannot tolerate any delay after a
	// suspension.
	NoCache bool
	// Selector reads an explicit clone selection. Default:
	// HeaderSelector(TenantHeader, CloneHeader).
	Selector Selector
	// RequireSelection refuses (400) requests without an explicit selection instead of
	// giving them the subject's own solo clone (provisioned on first sign-in). Set it
	// for enterprise-only deployments that must not create solo tenants.
	RequireSelection bool
	// RequestIDHeader names the request ID header. Default DefaultRequestIDHeader.
	//
	// Every request gets a request ID generated by the server: it is the request_id of
	// every log record and audit event, the request_id of problem responses, and the
	// value of this header on the response. A request ID the client sends in this
	// header is kept only if it is exactly one value of 1 to 64 characters of
	// [A-Za-z0-9._:-] (anything else — newlines, JSON, kilobytes — is dropped, never
	// logged); a kept value is recorded beside the server's, as client_request_id
	// (audit.WithClientRequestID), never in its place. A request ID already in the
	// context (audit.WithRequestID, set by the host's own server-side middleware) is
	// used instead of a generated one.
	RequestIDHeader string
	// ResolveTimeout bounds a store lookup (default 10 s). Concurrent requests of one
	// subject share one lookup, which is therefore not cancelled with the request that
	// started it.
	ResolveTimeout time.Duration
}

// Middleware returns net/http middleware that authenticates every request with auth,
// resolves the principal to a clone with res (through the cache), and calls the next
// handler with the clone.CloneContext in the request context, where handlers read it
// with clone.FromContext. A request that cannot be resolved never reaches the next
// handler: it is answered with an RFC 9457 problem (see [WriteError]) and recorded as
// one audit event:
//
//   - 401: no, malformed, expired or otherwise invalid credentials;
//   - 400: a selection that is not a pair of canonical IDs (or none when required);
//   - 403: a clone of the subject's tenant it is not granted, or a suspended clone;
//   - 404: a clone of another tenant, or none at all (so IDs cannot be probed);
//   - 503: the store is unavailable; 500 only if the context the request would get —
//     from the resolver, the cache or a lookup shared with concurrent requests — is not
//     the authenticated subject's or not the selected clone (an isolation violation,
//     audited as such).
//
// Middleware panics if auth or res is nil.
func Middleware(auth Authenticator, res Resolver, opts *Options) func(http.Handler) http.Handler {
	if auth == nil || res == nil {
		panic("clonehttp.Middleware: nil Authenticator or Resolver")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	m := &middleware{
		auth:            auth,
		res:             res,
		sink:            o.Audit,
		logger:          o.Logger,
		selector:        o.Selector,
		requireSelector: o.RequireSelection,
		ridHeader:       o.RequestIDHeader,
		timeout:         o.ResolveTimeout,
	}
	if m.sink == nil {
		m.sink = audit.DefaultSink
	}
	if !o.NoCache {
		m.cache = o.Cache
		if m.cache == nil {
			m.cache = NewCache(nil)
		}
	}
	if m.selector == nil {
		m.selector = HeaderSelector(TenantHeader, CloneHeader)
	}
	if m.ridHeader == "" {
		m.ridHeader = DefaultRequestIDHeader
	}
	m.ridHeader = http.CanonicalHeaderKey(m.ridHeader)
	if m.timeout <= 0 {
		m.timeout = DefaultResolveTimeout
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(next, w, r) })
	}
}

type middleware struct {
	auth            Authenticator
	res             Resolver
	sink            audit.Sink
	logger          *slog.Logger
	cache           *Cache
	flight          singleflight.Group
	selector        Selector
	requireSelector bool
	ridHeader       string
	timeout         time.Duration
}

// denial is why a request was refused, with what the audit event needs.
type denial struct {
	err    error
	action string
	actor  string
	selT   string // the selection as received, if any
	selC   string
}

func (m *middleware) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rid := audit.RequestIDFrom(ctx)
	if rid == "" {
		rid = newRequestID()
		ctx = audit.WithRequestID(ctx, rid)
	}
	if crid, ok := clientRequestID(r.Header[m.ridHeader]); ok {
		ctx = audit.WithClientRequestID(ctx, crid)
	}
	w.Header()[m.ridHeader] = []string{rid}

	var lw *statusWriter
	if m.logger != nil {
		ctx = context.WithValue(ctx, loggerKey{}, m.logger) // for WriteError
		lw = &statusWriter{ResponseWriter: w, start: time.Now()}
		w = lw
	}
	cc, d := m.resolve(ctx, r)
	if d != nil {
		p := ProblemFor(d.err, rid)
		p.ClientRequestID = audit.ClientRequestIDFrom(ctx)
		if p.Status == http.StatusUnauthorized && len(r.Header["Authorization"]) == 0 {
			w.Header().Set("WWW-Authenticate", "Bearer") // RFC 6750 §3.1: no error code without credentials
		}
		m.record(ctx, r, d, p) // before answering: a client that saw the refusal finds it audited
		writeProblem(w, p)
		if lw != nil {
			m.access(ctx, r, lw, clone.CloneContext{}, p.Kind)
		}
		return
	}
	ctx = clone.WithContext(ctx, cc)
	if lw != nil {
		defer m.access(ctx, r, lw, cc, "")
	}
	next.ServeHTTP(w, r.WithContext(ctx))
}

func (m *middleware) resolve(ctx context.Context, r *http.Request) (clone.CloneContext, *denial) {
	const op = "clonehttp.Middleware"
	p, err := m.auth.Authenticate(r)
	if err == nil && p.Subject == "" {
		err = errs.New(errs.Unauthenticated, op, "authenticator returned no subject")
	}
	if err != nil {
		if errs.KindOf(err) == errs.Unknown {
			err = errs.Wrap(errs.Unauthenticated, op, err, "authentication failed")
		}
		return clone.CloneContext{}, &denial{err: err, action: "clonehttp.Authenticate"}
	}
	key := cacheKey{subject: p.Subject}
	ts, cs, selected := m.selector(r)
	if selected {
		t, err := clone.ParseID(ts)
		if err != nil {
			return clone.CloneContext{}, &denial{err: errs.Wrap(errs.InvalidID, op, err, "selected tenant is not a canonical ID"), action: "clonehttp.Select", actor: p.Subject, selT: ts, selC: cs}
		}
		c, err := clone.ParseID(cs)
		if err != nil {
			return clone.CloneContext{}, &denial{err: errs.Wrap(errs.InvalidID, op, err, "selected clone is not a canonical ID"), action: "clonehttp.Select", actor: p.Subject, selT: ts, selC: cs}
		}
		key.tenant, key.cloneID = t, c
	} else if m.requireSelector {
		return clone.CloneContext{}, &denial{err: errs.New(errs.InvalidInput, op, "a clone selection is required"), action: "clonehttp.Select", actor: p.Subject}
	}

	var cc clone.CloneContext
	if m.cache != nil {
		if hit, ok := m.cache.get(key); ok {
			cc = hit
		} else {
			cc, err = m.shared(ctx, key, selected)
		}
	} else {
		cc, err = m.safeLookup(ctx, key, selected)
	}
	// Whichever way the context came — the cache, a lookup shared with concurrent
	// requests, or this request's own — it must be the authenticated subject's and, if
	// one was selected, the selected clone: a cache or single-flight key that lost a
	// dimension would otherwise hand one principal another's clone.
	if err == nil && !matches(cc, p.Subject, key, selected) {
		err = errs.New(errs.IsolationViolation, op, "resolved clone context does not belong to the authenticated subject")
	}
	if err != nil {
		return clone.CloneContext{}, &denial{err: err, action: "clonehttp.Resolve", actor: p.Subject, selT: ts, selC: cs}
	}
	return cc, nil
}

// shared runs one lookup per key at a time; concurrent requests for the same key wait
// for it (each only as long as its own context lives) and the result is cached.
func (m *middleware) shared(ctx context.Context, key cacheKey, selected bool) (clone.CloneContext, error) {
	fk := string(key.tenant[:]) + string(key.cloneID[:]) + key.subject // fixed-width prefix: unambiguous
	ch := m.flight.DoChan(fk, func() (any, error) {
		gen := m.cache.generation()
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.timeout)
		defer cancel()
		cc, err := m.safeLookup(lctx, key, selected)
		if err == nil {
			m.cache.putIf(gen, key, cc)
		}
		return cc, err
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return clone.CloneContext{}, res.Err
		}
		return res.Val.(clone.CloneContext), nil
	case <-ctx.Done():
		k, _ := errs.ContextKind(ctx.Err()) // the client went away (Canceled) or its deadline passed (Unavailable)
		return clone.CloneContext{}, errs.Wrap(k, "clonehttp.Middleware", ctx.Err(), "request ended while resolving its clone")
	}
}

// safeLookup is lookup with a resolver panic turned into an internal error: inside
// singleflight a panic would be re-raised on a fresh goroutine and end the process, not
// just the request.
func (m *middleware) safeLookup(ctx context.Context, key cacheKey, selected bool) (cc clone.CloneContext, err error) {
	defer func() {
		if p := recover(); p != nil {
			cc = clone.CloneContext{}
			err = errs.New(errs.Unknown, "clonehttp.Middleware", "resolver panicked: %v", p)
		}
	}()
	return m.lookup(ctx, key, selected)
}

// lookup asks the resolver and checks that what it returned is what was asked for.
func (m *middleware) lookup(ctx context.Context, key cacheKey, selected bool) (clone.CloneContext, error) {
	const op = "clonehttp.Middleware"
	var (
		cc      clone.CloneContext
		created bool
		err     error
	)
	if selected {
		cc, err = m.res.ResolveClone(ctx, key.subject, key.tenant, key.cloneID)
	} else {
		cc, created, err = m.res.ProvisionSolo(ctx, key.subject)
	}
	if err != nil {
		return clone.CloneContext{}, err
	}
	// Defense in depth: a resolver bug must not hand one subject another's clone.
	if !matches(cc, key.subject, key, selected) {
		return clone.CloneContext{}, errs.New(errs.IsolationViolation, op, "resolver returned a clone context that does not match the request")
	}
	if created {
		audit.Emit(ctx, m.sink, audit.Event{
			Actor:    key.subject,
			Action:   "clonehttp.Provision",
			TenantID: cc.TenantID(),
			CloneID:  cc.CloneID(),
			Outcome:  audit.Allowed,
			Reason:   "first sign-in: tenant and clone created",
		})
	}
	return cc, nil
}

// matches reports whether cc is valid, speaks for subject and, for a selection, is the
// selected clone.
func matches(cc clone.CloneContext, subject string, key cacheKey, selected bool) bool {
	return cc.Valid() && cc.Principal().Subject == subject &&
		(!selected || cc.TenantID() == key.tenant && cc.CloneID() == key.cloneID)
}

func (m *middleware) record(ctx context.Context, r *http.Request, d *denial, p Problem) {
	outcome := audit.Denied
	switch {
	case p.Kind == kindSlugs[errs.IsolationViolation]:
		outcome = audit.Violation
	case p.Status >= 500 || p.Status == clone.StatusClientClosedRequest:
		outcome = audit.Failed
	}
	reason := p.Kind
	var e *clone.Error
	if errors.As(d.err, &e) && e.Msg != "" {
		reason = safeText(e.Msg)
	}
	detail := map[string]string{
		"status": strconv.Itoa(p.Status),
		"kind":   p.Kind,
		"method": safeField(r.Method, 16),
		"path":   safeField(r.URL.Path, 256),
		"remote": safeField(r.RemoteAddr, 64),
		"error":  safeField(d.err.Error(), 300),
	}
	if d.selT != "" || d.selC != "" {
		detail["selected_tenant_id"] = safeField(d.selT, 64)
		detail["selected_clone_id"] = safeField(d.selC, 64)
	}
	// A sink failure does not change the refusal; Emit logs it with the whole event on
	// slog.Default() and counts it in audit.Failures.
	audit.Emit(ctx, m.sink, audit.Event{
		Actor:   d.actor,
		Action:  d.action,
		Outcome: outcome,
		Reason:  reason,
		Detail:  detail,
	})
}

func (m *middleware) access(ctx context.Context, r *http.Request, lw *statusWriter, cc clone.CloneContext, kind string) {
	status := lw.status
	if status == 0 {
		status = http.StatusOK
	}
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", safeField(r.Method, 16)),
		slog.String("path", safeField(r.URL.Path, 256)),
		slog.Int("status", status),
		slog.Int64("bytes", lw.bytes),
		slog.Duration("duration", time.Since(lw.start)),
		slog.String("request_id", audit.RequestIDFrom(ctx)),
	}
	if c := audit.ClientRequestIDFrom(ctx); c != "" {
		attrs = append(attrs, slog.String(audit.ClientRequestIDKey, c))
	}
	if cc.Valid() {
		attrs = append(attrs, slog.String("tenant_id", cc.TenantID().String()), slog.String("clone_id", cc.CloneID().String()))
	}
	if kind != "" {
		attrs = append(attrs, slog.String("kind", kind))
	}
	// The IDs are explicit attributes; a handler made with NewLogHandler adds only those
	// the record lacks.
	m.logger.LogAttrs(ctx, level, "http request", attrs...)
}

// statusWriter records the status and size of a response for the access log. It keeps
// http.Flusher working (streaming answers) and exposes the wrapped writer to
// http.ResponseController through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	start  time.Time
}

// WriteHeader records the first final status.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts the bytes written.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker when the wrapped writer supports it.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	ridPrefix = func() string {
		var b [6]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
	ridSeq atomic.Uint64
)

// clientRequestID returns the client's request ID if the header has exactly one
// well-formed value.
func clientRequestID(in []string) (string, bool) {
	if len(in) == 1 && validRequestID(in[0]) {
		return in[0], true
	}
	return "", false
}

// newRequestID returns a new request ID: a random per-process prefix and a counter
// (unique, cheap, and not a secret).
func newRequestID() string {
	var buf [40]byte
	b := append(buf[:0], ridPrefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, ridSeq.Add(1), 36)
	return string(b)
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// safeField trims s to n bytes of printable UTF-8 for audit and logs.
func safeField(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return safeText(s)
}
