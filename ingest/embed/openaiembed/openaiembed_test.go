package openaiembed_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/ingest/embed/openaiembed"
)

// server speaks the embeddings API: every input's vector is [len(input), index, 1, ...].
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	// fail, if set, answers a request instead of the handler (status, headers); it is
	// given the 1-based request number.
	fail func(n int) (int, http.Header)
	dim  int
	bad  string // "count", "index", "dim": a malformed answer
}

type request struct {
	Input          []string `json:"input"`
	Model          string   `json:"model"`
	Dimensions     *int     `json:"dimensions"`
	EncodingFormat string   `json:"encoding_format"`
	Auth           string   `json:"-"`
}

func newServer(t *testing.T, dim int) *server {
	s := &server{dim: dim}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/embeddings" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.Auth = r.Header.Get("Authorization")
	s.mu.Lock()
	s.requests = append(s.requests, req)
	n := len(s.requests)
	s.mu.Unlock()
	if s.fail != nil {
		if code, h := s.fail(n); code != 0 {
			for k, v := range h {
				w.Header()[k] = v
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error":{"message":"failure %d with input %q","type":"test","code":"c%d"}}`, code, req.Input[0], code)
			return
		}
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	items := make([]item, len(req.Input))
	for i, in := range req.Input {
		v := make([]float64, s.dim)
		v[0], v[1] = float64(len(in)), float64(i)
		for j := 2; j < s.dim; j++ {
			v[j] = 1
		}
		items[i] = item{"embedding", i, v}
	}
	// Answer in reverse order: clients must use the index.
	for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
		items[i], items[j] = items[j], items[i]
	}
	switch s.bad {
	case "count":
		items = items[1:]
	case "index":
		items[0].Index = 99
	case "dim":
		items[0].Embedding = items[0].Embedding[1:]
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list", "model": req.Model, "data": items,
		"usage": map[string]int{"prompt_tokens": 1, "total_tokens": 1},
	})
}

func (s *server) calls() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.requests...)
}

func newEmbedder(t *testing.T, s *server, o openaiembed.Options) *openaiembed.Embedder {
	t.Helper()
	o.BaseURL = s.URL + "/v1/"
	if o.APIKey == "" {
		o.APIKey = "sk-test"
	}
	if o.MinBackoff == 0 {
		o.MinBackoff, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	e, err := openaiembed.New(&o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("text number %d", i)
	}
	return out
}

func TestEmbedRequestShape(t *testing.T) {
	s := newServer(t, 8)
	e := newEmbedder(t, s, openaiembed.Options{Model: "text-embedding-3-small", Dimension: 8})
	var _ embed.Embedder = e
	in := []string{"a", "bb", "ccc"}
	vs, err := e.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if len(v) != 8 || v[0] != float32(len(in[i])) || v[1] != float32(i) {
			t.Fatalf("vector %d = %v", i, v)
		}
	}
	reqs := s.calls()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Model != "text-embedding-3-small" || r.Dimensions == nil || *r.Dimensions != 8 || r.EncodingFormat != "float" || r.Auth != "Bearer sk-test" {
		t.Fatalf("request %+v dims %v", r, r.Dimensions)
	}
	if e.Model() != "openai:text-embedding-3-small/8" || e.Dimension() != 8 {
		t.Fatal(e.Model())
	}
	// Other models get no "dimensions" unless asked.
	e2 := newEmbedder(t, s, openaiembed.Options{Model: "nomic-embed-text", Dimension: 8})
	if _, err := e2.Embed(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if r := s.calls()[1]; r.Dimensions != nil {
		t.Fatalf("dimensions sent to another model: %v", *r.Dimensions)
	}
}

func TestBatchingWithinLimits(t *testing.T) {
	s := newServer(t, 4)
	e := newEmbedder(t, s, openaiembed.Options{Model: "m", Dimension: 4})
	in := texts(5000)
	vs, err := e.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, r := range s.calls() {
		sizes = append(sizes, len(r.Input))
	}
	if fmt.Sprint(sizes) != "[2048 2048 904]" || fmt.Sprint(e.Batches(in)) != fmt.Sprint(sizes) {
		t.Fatalf("request sizes %v, Batches %v", sizes, e.Batches(in))
	}
	for i, v := range vs {
		if v[0] != float32(len(in[i])) {
			t.Fatalf("vector %d out of order", i)
		}
	}

	// The token budget splits too: inputs of ~100 estimated tokens, budget 1000.
	s2 := newServer(t, 4)
	e2 := newEmbedder(t, s2, openaiembed.Options{Model: "m", Dimension: 4, MaxTokensPerRequest: 1000, MaxTokensPerInput: 500})
	long := strings.Repeat("word ", 100)
	in2 := make([]string, 25)
	for i := range in2 {
		in2[i] = long
	}
	if _, err := e2.Embed(context.Background(), in2); err != nil {
		t.Fatal(err)
	}
	for _, r := range s2.calls() {
		if len(r.Input) > 10 {
			t.Fatalf("request of %d inputs over the token budget", len(r.Input))
		}
	}
	if n := len(s2.calls()); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestInputValidatedBeforeAnyRequest(t *testing.T) {
	s := newServer(t, 4)
	e := newEmbedder(t, s, openaiembed.Options{Model: "m", Dimension: 4})
	_, err := e.Embed(context.Background(), []string{"ok", strings.Repeat("a ", 9000)})
	if !errors.Is(err, clone.ErrTooLarge) {
		t.Fatalf("oversized input: %v", err)
	}
	if _, err := e.Embed(context.Background(), []string{"ok", "  "}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("empty input: %v", err)
	}
	if n := len(s.calls()); n != 0 {
		t.Fatalf("%d requests sent for invalid input", n)
	}
	if vs, err := e.Embed(context.Background(), nil); vs != nil || err != nil {
		t.Fatal(vs, err)
	}
}

func TestRetryOn429ThenSuccess(t *testing.T) {
	s := newServer(t, 4)
	s.fail = func(n int) (int, http.Header) {
		switch n {
		case 1:
			return http.StatusTooManyRequests, http.Header{"Retry-After-Ms": {"1"}}
		case 2:
			return http.StatusServiceUnavailable, nil
		}
		return 0, nil
	}
	e := newEmbedder(t, s, openaiembed.Options{Model: "m", Dimension: 4})
	if _, err := e.Embed(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.calls()); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	s := newServer(t, 4)
	s.fail = func(n int) (int, http.Header) {
		if n == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"0.2"}}
		}
		return 0, nil
	}
	e := newEmbedder(t, s, openaiembed.Options{Model: "m", Dimension: 4, MinBackoff: time.Millisecond, MaxBackoff: time.Second})
	start := time.Now()
	if _, err := e.Embed(context.Background(), []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("retried after %v, server asked for 200ms", d)
	}
}

func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		code  int
		kind  error
		calls int
	}{
		{http.StatusTooManyRequests, clone.ErrUnavailable, 3},
		{http.StatusInternalServerError, clone.ErrUnavailable, 3},
		{http.StatusBadGateway, clone.ErrUnavailable, 3},
		{http.StatusBadRequest, clone.ErrInvalidInput, 1},
		{http.StatusNotFound, clone.ErrInvalidInput, 1},
		{http.StatusUnprocessableEntity, clone.ErrInvalidInput, 1},
		{http.StatusRequestEntityTooLarge, clone.ErrTooLarge, 1},
		{http.StatusUnauthorized, clone.ErrForbidden, 1},
		{http.StatusForbidden, clone.ErrForbidden, 1},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			s := newServer(t, 4)
			s.fail = func(int) (int, http.Header) { return tc.code, nil }
			e := newEmbedder(t, s, openaiembed.Options{Model: "m", Dimension: 4, MaxRetries: 2})
			_, err := e.Embed(context.Background(), []string{"secret input"})
			if !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want %v", err, tc.kind)
			}
			var ae *openai.Error
			if !errors.As(err, &ae) || ae.StatusCode != tc.code {
				t.Fatalf("vendor error not reachable: %v", err)
			}
			if strings.Contains(err.Error(), "secret input") || strings.Contains(err.Error(), "sk-test") {
				t.Fatalf("error leaks input or key: %v", err)
			}
			if n := len(s.calls()); n != tc.calls {
				t.Fatalf("%d requests, want %d", n, tc.calls)
			}
		})
	}
}

func TestConnectionFailureIsUnavailable(t *testing.T) {
	s := newServer(t, 4)
	url := s.URL
	s.Close()
	e, err := openaiembed.New(&openaiembed.Options{BaseURL: url + "/v1/", APIKey: "k", Model: "m", Dimension: 4, MaxRetries: 1, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Embed(context.Background(), []string{"x"}); !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
}

func TestMalformedResponses(t *testing.T) {
	for _, bad := range []string{"count", "index", "dim"} {
		s := newServer(t, 4)
		s.bad = bad
		e := newEmbedder(t, s, openaiembed.Options{Model: "m", Dimension: 4})
		if _, err := e.Embed(context.Background(), []string{"a", "b"}); !errors.Is(err, clone.ErrUnavailable) {
			t.Errorf("%s: got %v", bad, err)
		}
	}
}

func TestCancelWhileWaitingToRetry(t *testing.T) {
	s := newServer(t, 4)
	var n atomic.Int32
	s.fail = func(int) (int, http.Header) {
		n.Add(1)
		return http.StatusTooManyRequests, http.Header{"Retry-After": {"100000000"}}
	}
	// The server asks for three years and MaxBackoff allows it: an embedder that did not
	// watch the context would hang (the test binary's timeout reports it). No wall-clock
	// time is asserted.
	e := newEmbedder(t, s, openaiembed.Options{Model: "m", Dimension: 4, MinBackoff: time.Millisecond, MaxBackoff: 200 * 365 * 24 * time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := e.Embed(ctx, []string{"x"})
	if !errors.Is(err, clone.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
}

func TestOptionsValidated(t *testing.T) {
	for _, o := range []openaiembed.Options{
		{Model: "custom"}, // no dimension
		{Dimension: -1},
		{MaxTokensPerRequest: openaiembed.APITokensPerRequest + 1},
		{MaxInputsPerRequest: 2049},
		{MaxTokensPerInput: 10, MaxTokensPerRequest: 5},
		{MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if _, err := openaiembed.New(&o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("New(%+v) = %v", o, err)
		}
	}
	e, err := openaiembed.New(&openaiembed.Options{APIKey: "k"})
	if err != nil || e.Dimension() != 1536 {
		t.Fatal(err)
	}
}

// An OpenAI-compatible server (here a stand-in that returns constant vectors) embeds
// chunks for ingestion.
func ExampleNew() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Input []string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		data := make([]map[string]any, len(req.Input))
		for i := range data {
			data[i] = map[string]any{"object": "embedding", "index": i, "embedding": []float64{1, 0, 0}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": "local"})
	}))
	defer srv.Close()

	e, err := openaiembed.New(&openaiembed.Options{BaseURL: srv.URL + "/v1/", APIKey: "unused", Model: "local", Dimension: 3})
	if err != nil {
		panic(err)
	}
	vs, err := e.Embed(context.Background(), []string{"hello", "world"})
	if err != nil {
		panic(err)
	}
	fmt.Println(len(vs), vs[1], e.Model())
	// Output: 2 [1 0 0] openai:local/3
}
