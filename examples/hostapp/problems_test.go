package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone/clonehttp"
)

// newLoggedApp is newTestAppWith(t, false, nil) logging as main does (JSON through
// clonehttp.NewLogHandler) into the returned buffer.
func newLoggedApp(t *testing.T) (*App, *logBuffer) {
	t.Helper()
	out := &logBuffer{}
	cfg := Config{Addr: "127.0.0.1:0", PublicURL: publicURL, DataDir: t.TempDir(), Dev: true,
		JWTIssuer: "cloneiso-hostapp", JWTAudience: "cloneiso"}
	app, err := newApp(context.Background(), cfg, slog.New(clonehttp.NewLogHandler(slog.NewJSONHandler(out, nil))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app, out
}

// devTokenFor returns a development token for a fresh subject (not yet signed in).
func devTokenFor(t *testing.T, app *App) string {
	t.Helper()
	rec := httptest.NewRecorder()
	app.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dev/token?sub=p-"+uuid.NewString(), nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("dev token: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// send sends one request with token (if any) and returns the response.
func send(app *App, token, method, target, contentType string, body io.Reader) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	app.Handler.ServeHTTP(rec, req)
	return rec
}

// TestProblemDetails: every error the API answers, including a chat that fails before
// its event stream starts, is an application/problem+json body whose detail says what
// was wrong, not only its status and kind.
func TestProblemDetails(t *testing.T) {
	app, _ := newLoggedApp(t)
	token := devTokenFor(t, app)
	noFile := func() (string, io.Reader) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("title", "no file")
		mw.Close()
		return mw.FormDataContentType(), &b
	}
	cases := []struct {
		name, method, target string
		body                 func() (contentType string, body io.Reader)
		status               int
		kind, detail         string
	}{
		{"malformed body", http.MethodPost, "/v1/insights",
			func() (string, io.Reader) { return "application/json", strings.NewReader(`{"content":`) },
			http.StatusBadRequest, "invalid-input", "invalid JSON body"},
		{"unknown field", http.MethodPost, "/v1/insights",
			func() (string, io.Reader) { return "application/json", strings.NewReader(`{"contents":"x"}`) },
			http.StatusBadRequest, "invalid-input", `unknown field "contents"`},
		{"negative limit", http.MethodGet, "/v1/insights?limit=-1", nil,
			http.StatusBadRequest, "invalid-input", "limit must be a positive integer"},
		{"missing file part", http.MethodPost, "/v1/documents", noFile,
			http.StatusBadRequest, "invalid-input", `without a "file" part`},
		{"invalid path ID", http.MethodGet, "/v1/insights/not-an-id", nil,
			http.StatusBadRequest, "invalid-id", "want 36 characters"},
		{"chat: malformed body", http.MethodPost, "/v1/chat",
			func() (string, io.Reader) { return "application/json", strings.NewReader(`[`) },
			http.StatusBadRequest, "invalid-input", "invalid JSON body"},
		{"chat: empty question before the stream", http.MethodPost, "/v1/chat",
			func() (string, io.Reader) { return "application/json", strings.NewReader(`{"question":""}`) },
			http.StatusBadRequest, "invalid-input", "question"},
		{"chat: unknown conversation before the stream", http.MethodPost, "/v1/chat",
			func() (string, io.Reader) {
				return "application/json", strings.NewReader(`{"question":"hello?","conversation_id":"` + uuid.NewString() + `"}`)
			},
			http.StatusNotFound, "not-found", "conversation not found"},
		{"unknown endpoint", http.MethodGet, "/v1/no-such-thing", nil,
			http.StatusNotFound, "not-found", "no endpoint /v1/no-such-thing"},
		{"wrong method", http.MethodGet, "/v1/chat", nil,
			http.StatusMethodNotAllowed, "invalid-input", "allowed: POST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ct string
			var body io.Reader
			if c.body != nil {
				ct, body = c.body()
			}
			rec := send(app, token, c.method, c.target, ct, body)
			if got := rec.Header().Get("Content-Type"); got != clonehttp.ProblemContentType {
				t.Fatalf("%d, content type %q: %s; want a problem", rec.Code, got, rec.Body)
			}
			var p clonehttp.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("%v: %s", err, rec.Body)
			}
			if rec.Code != c.status || p.Status != c.status || p.Kind != c.kind || !strings.Contains(p.Detail, c.detail) || p.RequestID == "" {
				t.Fatalf("%d %+v; want status %d, kind %s, a detail naming %q and the request ID", rec.Code, p, c.status, c.kind, c.detail)
			}
		})
	}
}
