package clonehttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/tenant"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestLogging: one access-log record per request with the request, tenant and clone
// IDs; a handler logging through NewLogHandler gets the same IDs; streaming still works
// through the logging writer.
func TestLogging(t *testing.T) {
	s, _ := sqliteStore(t)
	var access, app syncBuffer
	accessLog := slog.New(slog.NewJSONHandler(&access, nil))
	appLog := slog.New(clonehttp.NewLogHandler(slog.NewJSONHandler(&app, nil)))
	mw := clonehttp.Middleware(newHMAC(t), s, &clonehttp.Options{Audit: &audit.Memory{}, Logger: accessLog})
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appLog.InfoContext(r.Context(), "handled", "n", 1)
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the logging writer hides http.Flusher")
		}
		w.Write([]byte("part"))
		http.NewResponseController(w).Flush()
		w.Write([]byte("ial"))
	})))
	defer srv.Close()

	subject := "logged-" + uuid.NewString()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/doc", nil)
	req.Header.Set("Authorization", "Bearer "+hmacSigner().sign(t, claims(subject)))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	// Read to the end: the body was flushed early, and its last chunk is sent only after
	// the middleware has written the access record.
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	rid := resp.Header.Get("X-Request-Id")
	cc, _, err := s.ProvisionSolo(t.Context(), subject)
	if err != nil {
		t.Fatal(err)
	}

	recs := access.records(t)
	if len(recs) != 1 {
		t.Fatalf("%d access records; want 1", len(recs))
	}
	a := recs[0]
	if a["msg"] != "http request" || a["level"] != "INFO" || a["status"] != float64(200) || a["bytes"] != float64(7) ||
		a["path"] != "/doc" || a["request_id"] != rid || a["tenant_id"] != cc.TenantID().String() || a["clone_id"] != cc.CloneID().String() {
		t.Fatalf("access record %v", a)
	}
	h := app.records(t)
	if len(h) != 1 || h[0]["request_id"] != rid || h[0]["tenant_id"] != cc.TenantID().String() || h[0]["clone_id"] != cc.CloneID().String() {
		t.Fatalf("handler records %v", h)
	}

	// A refused request: one record at warn, with the kind and without clone IDs.
	resp, err = srv.Client().Get(srv.URL + "/doc")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	recs = access.records(t)
	if len(recs) != 2 {
		t.Fatalf("%d access records; want 2", len(recs))
	}
	d := recs[1]
	if d["level"] != "WARN" || d["status"] != float64(401) || d["kind"] != "unauthenticated" || d["tenant_id"] != nil {
		t.Fatalf("denial record %v", d)
	}

	// Outside a request, NewLogHandler adds nothing.
	appLog.Info("background")
	h = app.records(t)
	if last := h[len(h)-1]; last["tenant_id"] != nil || last["request_id"] != nil {
		t.Fatalf("background record %v", last)
	}
	// A context carrying a clone adds its IDs.
	appLog.InfoContext(clone.WithContext(t.Context(), cc), "job")
	h = app.records(t)
	if last := h[len(h)-1]; last["clone_id"] != cc.CloneID().String() {
		t.Fatalf("job record %v", last)
	}
}

// TestClientRequestIDInjection: the request ID in logs, audit events, problems and the
// response header is always the server's own; a client's X-Request-Id is kept, beside
// it, only if it is one value of 1 to 64 characters of [A-Za-z0-9._:-]. Newlines, JSON,
// header splitting, non-ASCII, overlong (10 KB) and repeated values never reach a log
// line or an audit event.
func TestClientRequestIDInjection(t *testing.T) {
	s, _ := sqliteStore(t)
	var access, app syncBuffer
	mem := &audit.Memory{}
	mw := clonehttp.Middleware(newHMAC(t), s, &clonehttp.Options{
		Audit: audit.Multi(mem, audit.SlogSink(slog.New(slog.NewJSONHandler(&app, nil)))), Logger: slog.New(slog.NewJSONHandler(&access, nil))})
	appLog := slog.New(clonehttp.NewLogHandler(slog.NewJSONHandler(&app, nil)))
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appLog.InfoContext(r.Context(), "handled")
	}))
	token := hmacSigner().sign(t, claims("rid-"+uuid.NewString()))
	serverID := regexp.MustCompile(`^[0-9a-f]{12}-[0-9a-z]+$`)
	max := strings.Repeat("A", 64)

	cases := []struct {
		name string
		in   []string
		keep bool
	}{
		{"well-formed", []string{"client-123_a.b:c"}, true},
		{"64 characters", []string{max}, true},
		{"65 characters", []string{max + "A"}, false},
		{"10 KB", []string{strings.Repeat("x", 10<<10)}, false},
		{"newline", []string{"ok\ninjected=1 level=ERROR"}, false},
		{"CRLF header splitting", []string{"ok\r\nX-Injected: 1"}, false},
		{"JSON", []string{`","request_id":"forged","x":"`}, false},
		{"space", []string{"a b"}, false},
		{"non-ASCII", []string{"réq-1"}, false},
		{"NUL", []string{"a\x00b"}, false},
		{"empty", []string{""}, false},
		{"two values", []string{"a", "b"}, false},
	}
	for _, c := range cases {
		for _, authed := range []bool{true, false} {
			access.reset()
			app.reset()
			mem.Reset()
			req := httptest.NewRequest(http.MethodGet, "/doc", nil)
			req.Header["X-Request-Id"] = c.in // as a lenient proxy might pass it on
			if authed {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			name := fmt.Sprintf("%s (authenticated %v)", c.name, authed)
			rid := w.Header().Get("X-Request-Id")
			if !serverID.MatchString(rid) {
				t.Fatalf("%s: response request ID %q is not the server's", name, rid)
			}
			want := ""
			if c.keep {
				want = c.in[0]
			}
			recs := append(access.records(t), app.records(t)...)
			if len(recs) < 2 {
				t.Fatalf("%s: %d log records", name, len(recs))
			}
			for _, rec := range recs {
				got, _ := rec[audit.ClientRequestIDKey].(string)
				if d, ok := rec["detail"].(map[string]any); ok && got == "" {
					got, _ = d[audit.ClientRequestIDKey].(string)
				}
				if rec["request_id"] != rid || got != want {
					t.Fatalf("%s: log record %v; want request_id %q and client_request_id %q", name, rec, rid, want)
				}
			}
			if !authed {
				ev := mem.Events()
				if len(ev) != 1 || ev[0].RequestID != rid || ev[0].Detail[audit.ClientRequestIDKey] != want {
					t.Fatalf("%s: audit events %+v", name, ev)
				}
				var p clonehttp.Problem
				if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.RequestID != rid || p.ClientRequestID != want {
					t.Fatalf("%s: problem %s (%v)", name, w.Body, err)
				}
			}
			for _, log := range []string{access.String(), app.String()} {
				if strings.Contains(log, "injected") || strings.Contains(log, "forged") || strings.Contains(log, "xxxxxxxxxx") {
					t.Fatalf("%s: the client's value reached a log: %s", name, log)
				}
			}
		}
	}
}

// blockingResolver is the real store behind a gate: ProvisionSolo signals entered and
// waits for release.
type blockingResolver struct {
	*tenant.Store
	entered chan struct{}
	release chan struct{}
}

func (b blockingResolver) ProvisionSolo(ctx context.Context, subject string) (clone.CloneContext, bool, error) {
	close(b.entered)
	<-b.release
	return b.Store.ProvisionSolo(ctx, subject)
}

// TestClientGoneWhileResolving: a client that goes away while its clone is being
// resolved is a cancellation (499, audited as failed with kind canceled), not a
// backing store failure (503).
func TestClientGoneWhileResolving(t *testing.T) {
	s, _ := sqliteStore(t)
	res := blockingResolver{Store: s, entered: make(chan struct{}), release: make(chan struct{})}
	mem := &audit.Memory{}
	h := clonehttp.Middleware(newHMAC(t), res, &clonehttp.Options{Audit: mem})(http.NotFoundHandler())
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+hmacSigner().sign(t, claims("gone-"+uuid.NewString())))
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { h.ServeHTTP(w, req); close(done) }()
	<-res.entered
	cancel()
	<-done
	close(res.release)
	if w.Code != clone.StatusClientClosedRequest {
		t.Fatalf("status %d; want 499", w.Code)
	}
	ev := mem.Events()
	if len(ev) != 1 || ev[0].Outcome != audit.Failed || ev[0].Detail["kind"] != "canceled" {
		t.Fatalf("events %+v", ev)
	}
}

// TestLogHandlerAddsOnlyMissingIDs: NewLogHandler adds the context's IDs a record lacks
// and never a second copy of one it (or its logger, through With) already has, as an
// audit record of audit.SlogSink carries its event's own.
func TestLogHandlerAddsOnlyMissingIDs(t *testing.T) {
	var buf syncBuffer
	l := slog.New(clonehttp.NewLogHandler(slog.NewJSONHandler(&buf, nil)))
	cc, err := clone.New(uuid.New(), uuid.New(), clone.Principal{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := audit.WithClientRequestID(audit.WithRequestID(clone.WithContext(context.Background(), cc), "req-1"), "client-1")
	keys := []string{"request_id", audit.ClientRequestIDKey, "tenant_id", "clone_id"}
	cases := []struct {
		name string
		log  func()
		want map[string]string // the record's value of each key (each present once)
	}{
		{"added", func() { l.InfoContext(ctx, "x") },
			map[string]string{"request_id": "req-1", audit.ClientRequestIDKey: "client-1", "tenant_id": cc.TenantID().String(), "clone_id": cc.CloneID().String()}},
		{"the record's own kept", func() { l.InfoContext(ctx, "x", "request_id", "own", "tenant_id", "") },
			map[string]string{"request_id": "own", audit.ClientRequestIDKey: "client-1", "tenant_id": "", "clone_id": cc.CloneID().String()}},
		{"the logger's own kept", func() { l.With("clone_id", "own").InfoContext(ctx, "x") },
			map[string]string{"request_id": "req-1", audit.ClientRequestIDKey: "client-1", "tenant_id": cc.TenantID().String(), "clone_id": "own"}},
	}
	for _, c := range cases {
		buf.reset()
		c.log()
		line := buf.String()
		recs := buf.records(t)
		for _, k := range keys {
			if n := strings.Count(line, `"`+k+`":`); n != 1 || recs[0][k] != c.want[k] {
				t.Errorf("%s: %s %d times, %v; want once, %q: %s", c.name, k, n, recs[0][k], c.want[k], line)
			}
		}
	}
	// In a group the IDs are added inside it, even if the top level has one.
	buf.reset()
	l.With("request_id", "top").WithGroup("g").InfoContext(ctx, "x")
	rec := buf.records(t)[0]
	if g, _ := rec["g"].(map[string]any); rec["request_id"] != "top" || g["request_id"] != "req-1" || g["clone_id"] != cc.CloneID().String() {
		t.Fatalf("grouped record %v", rec)
	}
}
