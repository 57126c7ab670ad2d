package rag_test

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
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate/openaigen"
)

func TestProfiles(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	cc, _ := fixture(t, e, extractive(t))

	// The tenant store's clone row names the clone in its prompts.
	p, err := rag.NewProcessor(e.db, e.ret, extractive(t), &rag.ProcessorOptions{Profile: rag.TenantProfile(e.tenants, "Speaks briefly.")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Process(ctx, cc, &rag.Request{Question: "What is the vault code?"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.tenants.Clone(ctx, cc.TenantID(), cc.CloneID())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Prompt.Text(), "You are "+c.Name+". Speaks briefly.") {
		t.Fatalf("prompt %s", resp.Prompt.Text())
	}

	// A profile function that hands out another clone's profile is refused by the guard,
	// audited, and nothing is generated; the question stays stored.
	other := e.newClone(t)
	gen := &recorder{Generator: extractive(t)}
	p, err = rag.NewProcessor(e.db, e.ret, gen, &rag.ProcessorOptions{Profile: func(ctx context.Context, _ clone.CloneContext) (rag.Profile, error) {
		return rag.Profile{TenantID: other.TenantID(), CloneID: other.CloneID(), Name: "Impostor"}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.audit.Reset()
	resp, err = p.Process(ctx, cc, &rag.Request{Question: "What is the vault code?"}, nil)
	if !errors.Is(err, clone.ErrIsolationViolation) || resp == nil || resp.Answer.ID != [16]byte{} || len(gen.reqs) != 0 {
		t.Fatalf("foreign profile: %v", err)
	}
	var violations int
	for _, ev := range e.audit.Events() {
		if ev.Outcome == audit.Violation && ev.Action == "rag.BuildPrompt" {
			violations++
		}
	}
	if violations != 1 {
		t.Fatalf("audit %+v", e.audit.Events())
	}
}

// chatServer is a minimal chat completions server that streams a fixed answer and keeps
// every request body.
type chatServer struct {
	mu     sync.Mutex
	bodies []string
	answer []string
	hang   bool
}

func (s *chatServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	for _, p := range s.answer {
		d, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}}}})
		fmt.Fprintf(w, "data: %s\n\n", d)
		w.(http.Flusher).Flush()
	}
	if s.hang {
		<-r.Context().Done()
		return
	}
	fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
}

// TestProcessWithOpenAI runs the processor on the OpenAI adapter against a local chat
// completions server: what goes over the wire is the clone's prompt only, the streamed
// answer is stored with the citations its markers name, and a request cancelled
// mid-stream keeps what was delivered.
func TestProcessWithOpenAI(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	a, b := e.newClone(t), e.newClone(t)
	seedDoc(t, e, a, "A facts", "The vault code is CANARY-A-VAULT.")
	seedDoc(t, e, b, "B facts", "The vault code is CANARY-B-VAULT.")
	srv := &chatServer{answer: []string{"It is ", "CANARY-A-VAULT ", "[1]."}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	gen, err := openaigen.New(&openaigen.Options{Model: "m", BaseURL: hs.URL + "/v1/", APIKey: "k", RetryBaseDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p, err := rag.NewProcessor(e.db, e.ret, gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Process(ctx, a, &rag.Request{Question: "What is the vault code?"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Answer.Content != "It is CANARY-A-VAULT [1]." || len(resp.Citations) != 1 || resp.Citations[0].Title != "A facts" {
		t.Fatalf("answer %q, citations %+v", resp.Answer.Content, resp.Citations)
	}
	if !strings.Contains(srv.bodies[0], "CANARY-A-VAULT") || strings.Contains(srv.bodies[0], "CANARY-B") {
		t.Fatalf("request body %s", srv.bodies[0])
	}

	// Cancelled while the server is still streaming.
	srv.answer, srv.hang = []string{"It ", "is "}, true
	cctx, cancel := context.WithCancel(ctx)
	n := 0
	resp, err = p.Process(cctx, b, &rag.Request{Question: "What is the vault code?"}, func(string) error {
		if n++; n == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || resp == nil || resp.Answer.Content != "It is " {
		t.Fatalf("cancel: %v %+v", err, resp)
	}
	if got := messages(t, e, b, resp.Conversation); strings.Join(got, "|") != "user:What is the vault code?|assistant:It is " {
		t.Fatalf("conversation %q", got)
	}
	if strings.Contains(srv.bodies[1], "CANARY-A") {
		t.Fatal("clone A's data sent for clone B")
	}
}
