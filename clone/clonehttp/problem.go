package clonehttp

import (
	"encoding/json"
	"errors"
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

// Problem is the body of an error response, an RFC 9457 problem details object with two
// extension members: Kind (the SDK error kind's slug, stable across releases, for
// programs) and RequestID (to quote to support).
type Problem struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Kind      string `json:"kind"`
	RequestID string `json:"request_id,omitempty"`
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
}

// ProblemFor returns the problem that [WriteError] writes for err; requestID may be "".
//
// The status is clone.HTTPStatus(err). The detail is the safe message of the SDK error
// (clone.Error.Msg) for client errors (400, 403, 404, 409, 413, 415); 401 and every 5xx
// get a fixed text, so that neither the reason a credential failed nor anything about
// the server's internals reaches the client. Causes wrapped inside the error are never
// shown. A nil err is treated as an internal error, not as success.
func ProblemFor(err error, requestID string) Problem {
	kind := errs.KindOf(err)
	if err == nil {
		kind = errs.Unknown
	}
	status := kind.HTTPStatus()
	slug, ok := kindSlugs[kind]
	if !ok {
		slug, kind, status = "internal", errs.Unknown, http.StatusInternalServerError
	}
	p := Problem{
		Type:      ProblemTypePrefix + slug,
		Title:     http.StatusText(status),
		Status:    status,
		Kind:      slug,
		RequestID: requestID,
	}
	switch {
	case kind == errs.NoCloneContext:
		p.Detail = "The request is not bound to a clone."
	case status == http.StatusUnauthorized:
		p.Detail = "The request lacks a valid bearer token."
	case status == http.StatusServiceUnavailable:
		p.Detail = "A backing service is unavailable; retry later."
	case status >= 500:
		p.Detail = "The server could not complete the request."
	default:
		var e *clone.Error
		if errors.As(err, &e) {
			p.Detail = safeText(e.Msg)
		}
	}
	return p
}

// WriteError writes err as an application/problem+json response (see [ProblemFor]) with
// Cache-Control: no-store, and a WWW-Authenticate challenge for 401. Any error maps to a
// status through clone.HTTPStatus: bad input is 4xx, never 500, and only errors without a
// kind (or an isolation violation) are 500. The request ID is taken from r's context
// (audit.WithRequestID). WriteError does not audit: the middleware does that for its own
// denials, and stores for theirs.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	rid := ""
	if r != nil {
		rid = audit.RequestIDFrom(r.Context())
	}
	writeProblem(w, ProblemFor(err, rid))
}

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
