package clonehttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// TestWriteError: every error kind maps to its status and slug; client errors show the
// SDK's safe message (a fixed text for the kind if it has none), 401 and 5xx a fixed
// text; causes never show; no problem lacks a detail.
func TestWriteError(t *testing.T) {
	secret := errors.New("pq: relation \"tenants\" secret-internal-detail")
	cases := []struct {
		err        error
		status     int
		kind       string
		showsMsg   bool
		wwwAuthent bool
	}{
		{errs.Wrap(errs.Unauthenticated, "op", secret, "bearer token expired"), 401, "unauthenticated", false, true},
		{errs.New(errs.NoCloneContext, "op", "no clone"), 500, "no-clone-context", false, false},
		{errs.Wrap(errs.Internal, "op", secret, "syntax error"), 500, "internal", false, false},
		{errs.Wrap(errs.Canceled, "op", secret, "cancelled"), 499, "canceled", false, false},
		{errs.Wrap(errs.Forbidden, "op", secret, "clone not granted"), 403, "forbidden", true, false},
		{errs.New(errs.CloneMismatch, "op", "tenant ID differs"), 403, "clone-mismatch", true, false},
		{errs.New(errs.Suspended, "op", "clone is suspended"), 403, "suspended", true, false},
		{errs.Wrap(errs.NotFound, "op", secret, "clone not found"), 404, "not-found", true, false},
		{errs.New(errs.InvalidID, "op", "bad id"), 400, "invalid-id", true, false},
		{errs.New(errs.InvalidInput, "op", "bad input"), 400, "invalid-input", true, false},
		{errs.New(errs.Conflict, "op", "exists"), 409, "conflict", true, false},
		{errs.New(errs.TooLarge, "op", "too big"), 413, "too-large", true, false},
		{errs.New(errs.Unsupported, "op", "no"), 415, "unsupported", true, false},
		{errs.Wrap(errs.Unavailable, "op", secret, "look up subject"), 503, "unavailable", false, false},
		{errs.New(errs.IsolationViolation, "op", "tenant 1234 row in clone 5678"), 500, "isolation-violation", false, false},
		{secret, 500, "internal", false, false},
		{fmt.Errorf("wrapped: %w", errs.New(errs.NotFound, "op", "gone")), 404, "not-found", true, false},
		{clone.ErrForbidden, 403, "forbidden", false, false},
		{clone.ErrNotFound, 404, "not-found", false, false},
		{errs.New(errs.InvalidInput, "op", ""), 400, "invalid-input", false, false},
		{nil, 500, "internal", false, false},
	}
	for _, c := range cases {
		w := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r = r.WithContext(audit.WithRequestID(r.Context(), "rid-1"))
		clonehttp.WriteError(w, r, c.err)
		name := fmt.Sprint(c.err)
		if w.Code != c.status {
			t.Errorf("%s: status %d; want %d", name, w.Code, c.status)
		}
		if ct := w.Header().Get("Content-Type"); ct != clonehttp.ProblemContentType {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: cacheable problem", name)
		}
		if got := w.Header().Get("WWW-Authenticate") != ""; got != c.wwwAuthent {
			t.Errorf("%s: WWW-Authenticate present=%v", name, got)
		}
		var p clonehttp.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Status != c.status || p.Kind != c.kind || p.Type != clonehttp.ProblemTypePrefix+c.kind || p.Title != title(c.status) || p.RequestID != "rid-1" || p.Detail == "" {
			t.Errorf("%s: problem %+v", name, p)
		}
		var e *clone.Error
		if errors.As(c.err, &e) {
			if shown := p.Detail == e.Msg; shown != c.showsMsg {
				t.Errorf("%s: detail %q; message shown=%v, want %v", name, p.Detail, shown, c.showsMsg)
			}
		}
		if strings.Contains(w.Body.String(), "secret-internal-detail") || strings.Contains(w.Body.String(), "1234") {
			t.Errorf("%s: body leaks: %s", name, w.Body)
		}
	}
	// An absurd message is bounded and stripped of control characters.
	w := httptest.NewRecorder()
	clonehttp.WriteError(w, httptest.NewRequest(http.MethodGet, "/", nil), errs.New(errs.InvalidInput, "op", "%s\x1b[31m", strings.Repeat("é", 500)))
	var p clonehttp.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Detail) > 210 || strings.ContainsRune(p.Detail, 0x1b) {
		t.Errorf("unbounded detail (%d bytes): %q", len(p.Detail), p.Detail)
	}
}

func title(status int) string {
	if status == clone.StatusClientClosedRequest {
		return "Client Closed Request"
	}
	return http.StatusText(status)
}

// TestWriteErrorLogs: what the client is not told is logged: a handler without a clone
// context names the missing middleware (and answers 500, not 401), internal errors carry
// their cause, cancellations are logged as client-closed, client errors not at all.
func TestWriteErrorLogs(t *testing.T) {
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	// A handler registered without the middleware.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := clone.FromContext(r.Context()); err != nil {
			clonehttp.WriteError(w, r, err)
		}
	})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/notes", nil))
	if w.Code != http.StatusInternalServerError || w.Header().Get("WWW-Authenticate") != "" {
		t.Fatalf("missing clone context answered %d (WWW-Authenticate %q); want 500 without a challenge", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	rec := lastRecord(t, &buf)
	if rec["level"] != "ERROR" || !strings.Contains(rec["msg"].(string), "clonehttp.Middleware") || rec["path"] != "/v1/notes" || rec["op"] != "clone.FromContext" {
		t.Fatalf("log record %v; want an error naming clonehttp.Middleware", rec)
	}

	secret := errors.New("pq: syntax error at or near \"SELEC\"")
	clonehttp.WriteError(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), errs.Wrap(errs.Internal, "records.Get", secret, ""))
	if rec := lastRecord(t, &buf); rec["level"] != "ERROR" || !strings.Contains(rec["error"].(string), "SELEC") || rec["kind"] != "internal" || rec["status"] != float64(500) {
		t.Fatalf("internal error log %v", rec)
	}
	clonehttp.WriteError(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), errs.Wrap(errs.Canceled, "records.Get", context.Canceled, ""))
	if rec := lastRecord(t, &buf); rec["level"] != "INFO" || rec["msg"] != "clonehttp: client closed request" || rec["status"] != float64(499) {
		t.Fatalf("cancellation log %v", rec)
	}
	buf.Reset()
	clonehttp.WriteError(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), errs.New(errs.NotFound, "op", "gone"))
	if buf.Len() != 0 {
		t.Fatalf("a client error was logged: %s", buf.String())
	}
}

func lastRecord(t *testing.T, buf *bytes.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	return rec
}
