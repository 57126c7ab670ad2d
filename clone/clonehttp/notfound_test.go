package clonehttp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone/clonehttp"
)

// TestRoutesProblems: a routed request reaches its handler untouched; an unknown path
// answers a 404 problem and a known path with another method a 405 problem with Allow,
// where a bare ServeMux answers plain text; a non-canonical path is still redirected.
func TestRoutesProblems(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("thing " + r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/chat", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	h := clonehttp.Routes(mux)

	serve := func(hh http.Handler, method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		hh.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec
	}
	if rec := serve(h, "GET", "/v1/things/7"); rec.Code != 200 || rec.Body.String() != "thing 7" {
		t.Fatalf("routed request: %d %q", rec.Code, rec.Body)
	}
	if rec := serve(h, "POST", "/v1/chat"); rec.Code != http.StatusAccepted {
		t.Fatalf("routed POST: %d", rec.Code)
	}
	// What the test guards against: the bare mux answers plain text.
	if rec := serve(mux, "GET", "/v1/nope"); strings.HasPrefix(rec.Header().Get("Content-Type"), clonehttp.ProblemContentType) {
		t.Fatal("the bare mux already answers problems: the test shows nothing")
	}
	cases := []struct {
		method, path string
		status       int
		kind, allow  string
	}{
		{"GET", "/v1/nope", 404, "not-found", ""},
		{"GET", "/elsewhere", 404, "not-found", ""},
		{"GET", "/v1/chat", 405, "invalid-input", "POST"},
		{"DELETE", "/v1/things/7", 405, "invalid-input", "GET, HEAD"},
	}
	for _, c := range cases {
		rec := serve(h, c.method, c.path)
		if rec.Code != c.status || rec.Header().Get("Content-Type") != clonehttp.ProblemContentType {
			t.Fatalf("%s %s: %d %q %q", c.method, c.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		var p clonehttp.Problem
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s %s: body %q: %v", c.method, c.path, rec.Body, err)
		}
		if p.Status != c.status || p.Kind != c.kind || p.Detail == "" || p.Title != http.StatusText(c.status) {
			t.Fatalf("%s %s: problem %+v", c.method, c.path, p)
		}
		if got := rec.Header().Get("Allow"); got != c.allow {
			t.Fatalf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
	if rec := serve(h, "GET", "/v1//things/7"); rec.Code/100 != 3 || rec.Header().Get("Location") != "/v1/things/7" {
		t.Fatalf("non-canonical path: %d %q, want the mux's redirect", rec.Code, rec.Header().Get("Location"))
	}
}
