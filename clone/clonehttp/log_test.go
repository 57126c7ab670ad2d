package clonehttp_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
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
