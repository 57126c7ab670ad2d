package openaigen_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/rag/generate/openaigen"
)

// fakeAPI is a local server speaking the chat completions API: each request is answered
// by the next step of script (the last step repeats).
type fakeAPI struct {
	t      *testing.T
	mu     sync.Mutex
	script []step
	calls  atomic.Int32
	bodies []map[string]any
}

type step struct {
	status     int      // non-200: an error response
	code       string   // error code for an error response
	retryAfter string   // Retry-After header
	pieces     []string // streamed deltas for a 200
	midError   bool     // send an error event after the pieces
	hang       bool     // stop after the pieces without [DONE], until the client goes away
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(f.calls.Add(1)) - 1
	f.mu.Lock()
	s := f.script[min(n, len(f.script)-1)]
	var body map[string]any
	b, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(b, &body)
	f.bodies = append(f.bodies, body)
	f.mu.Unlock()
	if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer test-key" {
		http.Error(w, `{"error":{"message":"bad path or key","type":"invalid_request_error"}}`, http.StatusUnauthorized)
		return
	}
	if s.status != 0 && s.status != 200 {
		w.Header().Set("Content-Type", "application/json")
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(s.status)
		fmt.Fprintf(w, `{"error":{"message":"scripted failure","type":"server_error","code":%q}}`, s.code)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	chunk := func(delta, finish string, usage bool) {
		c := map[string]any{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "fake-model-2026"}
		if usage {
			c["choices"] = []any{}
			c["usage"] = map[string]any{"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
		} else {
			ch := map[string]any{"index": 0, "delta": map[string]any{"content": delta}}
			if finish != "" {
				ch["finish_reason"] = finish
				ch["delta"] = map[string]any{}
			}
			c["choices"] = []any{ch}
		}
		b, _ := json.Marshal(c)
		fmt.Fprintf(w, "data: %s\n\n", b)
		fl.Flush()
	}
	// A role-only first chunk, as OpenAI sends.
	fmt.Fprint(w, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"fake-model-2026","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`+"\n\n")
	for _, p := range s.pieces {
		chunk(p, "", false)
	}
	if s.midError {
		fmt.Fprint(w, "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n")
		fl.Flush()
		return
	}
	if s.hang {
		<-r.Context().Done()
		return
	}
	chunk("", "stop", false)
	chunk("", "", true)
	fmt.Fprint(w, "data: [DONE]\n\n")
	fl.Flush()
}

func newGen(t *testing.T, steps ...step) (*openaigen.Generator, *fakeAPI) {
	t.Helper()
	f := &fakeAPI{t: t, script: steps}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	g, err := openaigen.New(&openaigen.Options{Model: "fake-model", BaseURL: srv.URL + "/v1/", APIKey: "test-key",
		MaxRetries: 3, RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond, MaxTokens: 99})
	if err != nil {
		t.Fatal(err)
	}
	return g, f
}

var req = &generate.Request{
	Messages: []generate.Message{
		{Role: generate.RoleSystem, Content: "You are a clone. Sources: [1] ..."},
		{Role: generate.RoleUser, Content: "earlier"},
		{Role: generate.RoleAssistant, Content: "earlier answer"},
		{Role: generate.RoleUser, Content: "What is the code?"},
	},
	Question: "What is the code?",
}

func TestStreaming(t *testing.T) {
	g, f := newGen(t, step{pieces: []string{"The code ", "is ", "ZX-1 [1]."}})
	var got []string
	res, err := g.Generate(context.Background(), req, func(d string) error { got = append(got, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "The code |is |ZX-1 [1]." || res.Text != "The code is ZX-1 [1]." {
		t.Fatalf("deltas %q, text %q", got, res.Text)
	}
	if res.FinishReason != "stop" || res.Model != "fake-model-2026" || res.PromptTokens != 11 || res.CompletionTokens != 7 {
		t.Fatalf("result %+v", res)
	}
	body := f.bodies[0]
	msgs, _ := body["messages"].([]any)
	if body["model"] != "fake-model" || body["stream"] != true || len(msgs) != 4 || body["max_completion_tokens"] != float64(99) {
		t.Fatalf("request body %v", body)
	}
	roles := []string{}
	for _, m := range msgs {
		roles = append(roles, m.(map[string]any)["role"].(string))
	}
	if strings.Join(roles, ",") != "system,user,assistant,user" {
		t.Fatalf("roles %v", roles)
	}
	if g.Model() != "openai:fake-model" {
		t.Fatal(g.Model())
	}
}

func TestRetriesBeforeFirstToken(t *testing.T) {
	g, f := newGen(t,
		step{status: 429, retryAfter: "0"},
		step{status: 503},
		step{midError: true}, // an error event before any content: still retried
		step{pieces: []string{"ok"}})
	var got strings.Builder
	res, err := g.Generate(context.Background(), req, func(d string) error { got.WriteString(d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Text != "ok" || got.String() != "ok" || f.calls.Load() != 4 {
		t.Fatalf("text %q, emitted %q, calls %d", res.Text, got.String(), f.calls.Load())
	}
}

func TestRetriesExhausted(t *testing.T) {
	g, f := newGen(t, step{status: 500})
	_, err := g.Generate(context.Background(), req, nil)
	if !errors.Is(err, clone.ErrUnavailable) || f.calls.Load() != 4 {
		t.Fatalf("err %v after %d calls", err, f.calls.Load())
	}
	var ae *openai.Error
	if !errors.As(err, &ae) || ae.StatusCode != 500 {
		t.Fatalf("vendor error not reachable: %v", err)
	}
}

func TestNoRetryAfterFirstToken(t *testing.T) {
	g, f := newGen(t, step{pieces: []string{"partial "}, midError: true}, step{pieces: []string{"second try"}})
	var got strings.Builder
	_, err := g.Generate(context.Background(), req, func(d string) error { got.WriteString(d); return nil })
	if !errors.Is(err, clone.ErrUnavailable) || f.calls.Load() != 1 || got.String() != "partial " {
		t.Fatalf("err %v, calls %d, emitted %q", err, f.calls.Load(), got.String())
	}
}

func TestErrorKinds(t *testing.T) {
	for _, c := range []struct {
		s     step
		kind  error
		calls int32
	}{
		{step{status: 400}, clone.ErrInvalidInput, 1},
		{step{status: 400, code: "context_length_exceeded"}, clone.ErrTooLarge, 1},
		{step{status: 413}, clone.ErrTooLarge, 1},
		{step{status: 401}, clone.ErrUnavailable, 1},
		{step{status: 404}, clone.ErrUnavailable, 1},
		{step{status: 502}, clone.ErrUnavailable, 4},
	} {
		g, f := newGen(t, c.s)
		_, err := g.Generate(context.Background(), req, nil)
		if !errors.Is(err, c.kind) || f.calls.Load() != c.calls {
			t.Errorf("HTTP %d %s: %v after %d calls, want %v after %d", c.s.status, c.s.code, err, f.calls.Load(), c.kind, c.calls)
		}
		if clone.HTTPStatus(err) == 500 {
			t.Errorf("HTTP %d maps to 500", c.s.status)
		}
	}
}

func TestEmitErrorStops(t *testing.T) {
	g, f := newGen(t, step{pieces: []string{"a", "b", "c"}})
	stop := errors.New("consumer gone")
	n := 0
	_, err := g.Generate(context.Background(), req, func(string) error {
		if n++; n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 || f.calls.Load() != 1 {
		t.Fatalf("err %v, emits %d, calls %d", err, n, f.calls.Load())
	}
}

func TestCancelMidStream(t *testing.T) {
	g, _ := newGen(t, step{pieces: []string{"first "}, hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := g.Generate(ctx, req, func(d string) error {
			cancel() // the consumer leaves after the first piece
			return nil
		})
		done <- err
	}()
	// No time limit of our own: if Generate ignored the cancellation it would hang, and
	// the test binary's timeout reports it.
	if err := <-done; !errors.Is(err, clone.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []*openaigen.Options{nil, {}, {Model: "m", MaxRetries: -2}, {Model: "m", MaxRetries: 11},
		{Model: "m", RetryBaseDelay: -1}, {Model: "m", Temperature: openai.Ptr(3.0)}} {
		if _, err := openaigen.New(o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	g, _ := newGen(t, step{})
	if _, err := g.Generate(context.Background(), &generate.Request{}, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("empty request: %v", err)
	}
}

// TestRetryAfterCapped: a long Retry-After is capped by RetryMaxDelay, and usage is
// requested unless NoUsage. The server asks for three years: without the cap the test
// would hang (and the binary's timeout report it) rather than pass slowly.
func TestRetryAfterCapped(t *testing.T) {
	g, f := newGen(t, step{status: 429, retryAfter: "100000000"}, step{pieces: []string{"ok"}})
	if _, err := g.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 2 {
		t.Fatalf("%d calls, want 2", f.calls.Load())
	}
	so, _ := f.bodies[0]["stream_options"].(map[string]any)
	if so["include_usage"] != true {
		t.Fatalf("stream options %v", f.bodies[0]["stream_options"])
	}

	f2 := &fakeAPI{t: t, script: []step{{pieces: []string{"ok"}}}}
	srv := httptest.NewServer(f2)
	defer srv.Close()
	g2, err := openaigen.New(&openaigen.Options{Model: "m", BaseURL: srv.URL + "/v1/", APIKey: "test-key", NoUsage: true, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g2.Generate(context.Background(), req, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := f2.bodies[0]["stream_options"]; ok {
		t.Fatalf("stream options sent with NoUsage: %v", f2.bodies[0])
	}
}

// TestCancelWhileWaitingToRetry: a context that ends during the wait before a retry
// ends Generate at once. The server asks for a wait of three years, which RetryMaxDelay
// allows: an implementation that did not watch the context would hang (and the test
// binary's timeout report it). No wall-clock time is asserted: on a machine too busy to
// answer the first request within the deadline, the request itself fails with the same
// error.
func TestCancelWhileWaitingToRetry(t *testing.T) {
	f := &fakeAPI{t: t, script: []step{{status: 503, retryAfter: "100000000"}}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	g, err := openaigen.New(&openaigen.Options{Model: "m", BaseURL: srv.URL + "/v1/", APIKey: "test-key", RetryMaxDelay: 200 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err = g.Generate(ctx, req, nil)
	if !errors.Is(err, clone.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v, want ErrUnavailable and context.DeadlineExceeded", err)
	}
	if n := f.calls.Load(); n > 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}
