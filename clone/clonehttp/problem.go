package clonehttp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// ProblemContentType is the media type of error responses (RFC 9457).
const ProblemContentType = "application/problem+json"

// ProblemTypePrefix starts the "type" URI of every problem cloneiso writes; the rest is
// the error kind's slug, e.g. "urn:cloneiso:problem:not-found".
const ProblemTypePrefix = "urn:cloneiso:problem:"

// Problem is the body of an error response, an RFC 9457 problem details object with
// three extension members: Kind (the SDK error kind's slug, stable across releases, for
// programs), RequestID (the server's request ID, to quote to support) and
// ClientRequestID (the client's own request ID, if it sent a well-formed one).
type Problem struct {
	Type            string `json:"type"`
	Title           string `json:"title"`
	Status          int    `json:"status"`
	Detail          string `json:"detail,omitempty"`
	Kind            string `json:"kind"`
	RequestID       string `json:"request_id,omitempty"`
	ClientRequestID string `json:"client_request_id,omitempty"`
}

// maxDetail bounds the detail member; messages are short, this only guards odd ones.
const maxDetail = 200

var kindSlugs = map[errs.Kind]string{
	errs.Unknown:            "internal",
	errs.Unauthenticated:    "unauthenticated",
	errs.Forbidden:          "forbidden",
	errs.NoCloneContext:     "no-clone-context",
	errs.InvalidID:          "invalid-id",
	errs.CloneMismatch:      "clone-mismatch",
	errs.NotFound:           "not-found",
	errs.InvalidInput:       "invalid-input",
	errs.Conflict:           "conflict",
	errs.TooLarge:           "too-large",
	errs.Unavailable:        "unavailable",
	errs.IsolationViolation: "isolation-violation",
	errs.Unsupported:        "unsupported",
	errs.Suspended:          "suspended",
	errs.Internal:           "internal",
	errs.Canceled:           "canceled",
}

// ProblemFor returns the problem that [WriteError] writes for err; requestID may be "".
//
// The status is clone.HTTPStatus(err), except for clone.ErrNoCloneContext (below). The detail is the safe message of the SDK error
// (clone.Error.Msg) for client errors (400, 403, 404, 409, 413, 415), or a fixed text
// saying what the kind means if the error has no message; 401, 499 and every
// 5xx get a fixed text, so that neither the reason a credential failed nor anything about
// the server's internals reaches the client. Causes wrapped inside the error are never
// shown. A nil err is treated as an internal error, not as success.
//
// Only clone.ErrUnavailable (503) tells the client to retry later. clone.ErrInternal and
// errors without a kind are 500 with no retry advice (the same call would fail the same
// way); clone.ErrCanceled is 499 (clone.StatusClientClosedRequest), the status proxies
// log for a client that went away. clone.ErrNoCloneContext is 500, not 401: a handler
// that finds no clone context is not behind [Middleware], which answers 401 itself.
func ProblemFor(err error, requestID string) Problem {
	kind := errs.KindOf(err)
	if err == nil {
		kind = errs.Unknown
	}
	status := kind.HTTPStatus()
	if kind == errs.NoCloneContext {
		status = http.StatusInternalServerError // a handler not behind Middleware: a host bug
	}
	slug, ok := kindSlugs[kind]
	if !ok {
		slug, kind, status = "internal", errs.Unknown, http.StatusInternalServerError
	}
	title := http.StatusText(status)
	if status == clone.StatusClientClosedRequest {
		title = "Client Closed Request"
	}
	p := Problem{
		Type:      ProblemTypePrefix + slug,
		Title:     title,
		Status:    status,
		Kind:      slug,
		RequestID: requestID,
	}
	switch {
	case status == http.StatusUnauthorized:
		p.Detail = "The request lacks a valid bearer token."
	case status == http.StatusServiceUnavailable:
		p.Detail = "A backing service is unavailable; retry later."
	case status == clone.StatusClientClosedRequest:
		p.Detail = "The request was cancelled before it completed."
	case status >= 500:
		p.Detail = "The server could not complete the request."
	default:
		var e *clone.Error
		if errors.As(err, &e) {
			p.Detail = safeText(e.Msg)
		}
		if p.Detail == "" {
			p.Detail = kindDetails[kind]
		}
	}
	return p
}

// kindDetails are the details of client errors without a message of their own (a bare
// sentinel such as clone.ErrNotFound, or an error made with an empty message).
var kindDetails = map[errs.Kind]string{
	errs.Forbidden:     "The caller may not do this in this clone.",
	errs.CloneMismatch: "The request names a tenant or clone other than the caller's.",
	errs.Suspended:     "The clone is suspended or offboarded.",
	errs.NotFound:      "There is no such resource in this clone.",
	errs.InvalidID:     "An ID in the request is not a canonical ID.",
	errs.InvalidInput:  "The request's input is invalid.",
	errs.Conflict:      "The request conflicts with the resource's current state.",
	errs.TooLarge:      "The request is too large.",
	errs.Unsupported:   "The request's content type is not supported.",
}

// WriteError writes err as an application/problem+json response (see [ProblemFor]) with
// Cache-Control: no-store, and a WWW-Authenticate challenge for 401. Any error maps to a
// status through clone.HTTPStatus: bad input is 4xx, never 500; only internal errors,
// errors without a kind, isolation violations and a missing clone context are 500. The
// request ID is taken from r's context (audit.WithRequestID).
//
// WriteError logs what the client is not told, on the logger of [Options].Logger when
// the request passed through [Middleware] and on slog.Default() otherwise: every 5xx at
// level Error with the whole error (cause included) — for clone.ErrNoCloneContext a
// record naming the missing middleware —, 503 at Warn, and a cancellation at Info as
// "client closed request". It does not audit: the middleware does that for its own
// denials, and stores for theirs.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	ctx := context.Background()
	if r != nil {
		ctx = r.Context()
	}
	p := ProblemFor(err, audit.RequestIDFrom(ctx))
	p.ClientRequestID = audit.ClientRequestIDFrom(ctx)
	logProblem(ctx, r, err, p)
	writeProblem(w, p)
}

// logProblem logs an error answered with p; see [WriteError].
func logProblem(ctx context.Context, r *http.Request, err error, p Problem) {
	if p.Status < 500 && p.Status != clone.StatusClientClosedRequest {
		return
	}
	l, _ := ctx.Value(loggerKey{}).(*slog.Logger)
	if l == nil {
		l = slog.Default()
	}
	attrs := []slog.Attr{slog.Int("status", p.Status), slog.String("kind", p.Kind), slog.String("request_id", p.RequestID)}
	if p.ClientRequestID != "" {
		attrs = append(attrs, slog.String(audit.ClientRequestIDKey, p.ClientRequestID))
	}
	if cc, err := clone.FromContext(ctx); err == nil {
		attrs = append(attrs, slog.String("tenant_id", cc.TenantID().String()), slog.String("clone_id", cc.CloneID().String()))
	}
	if r != nil {
		attrs = append(attrs, slog.String("method", safeField(r.Method, 16)), slog.String("path", safeField(r.URL.Path, 256)))
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	var e *clone.Error
	if errors.As(err, &e) && e.Op != "" {
		attrs = append(attrs, slog.String("op", e.Op))
	}
	level, msg := slog.LevelError, "clonehttp: internal error"
	switch {
	case errs.KindOf(err) == errs.NoCloneContext:
		msg = "clonehttp: no clone context in the request: the handler is not wrapped in clonehttp.Middleware (or its request context was replaced); fix the host's routing"
	case p.Status == clone.StatusClientClosedRequest:
		level, msg = slog.LevelInfo, "clonehttp: client closed request"
	case p.Status == http.StatusServiceUnavailable:
		level, msg = slog.LevelWarn, "clonehttp: backing service unavailable"
	case errs.KindOf(err) == errs.IsolationViolation:
		msg = "clonehttp: isolation violation"
	}
	// The IDs are explicit attributes; a handler made with NewLogHandler adds only those
	// the record lacks.
	l.LogAttrs(ctx, level, msg, attrs...)
}

// loggerKey carries the middleware's logger to [WriteError].
type loggerKey struct{}

func writeProblem(w http.ResponseWriter, p Problem) {
	body, err := json.Marshal(p)
	if err != nil { // unreachable: Problem holds only strings and an int
		body = []byte(`{"type":"` + ProblemTypePrefix + `internal","title":"Internal Server Error","status":500,"kind":"internal"}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	if p.Status == http.StatusUnauthorized && h.Get("WWW-Authenticate") == "" {
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	w.WriteHeader(p.Status)
	w.Write(append(body, '\n'))
}

// safeText trims s to maxDetail bytes of printable, valid UTF-8.
func safeText(s string) string {
	if len(s) > maxDetail {
		s = s[:maxDetail]
		for !utf8.ValidString(s) && len(s) > 0 { // do not cut a rune in half
			s = s[:len(s)-1]
		}
		s += "…"
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
