package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/ingest/embed"
)

// fakeOpenAI starts a local server speaking the two parts of the OpenAI API the app
// uses: embeddings (with the local embedder's vectors, so retrieval still works) and
// streaming chat completions whose answer repeats every message it was sent. Echoing
// the whole prompt makes the chat probes of the isolation kit see exactly what reached
// the model: another clone's data in a prompt would show up in the answer.
func fakeOpenAI(t *testing.T, dim int) string {
	t.Helper()
	local, err := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/embeddings":
			var req struct{ Input []string }
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			vs, err := local.Embed(r.Context(), req.Input)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			data := make([]map[string]any, len(vs))
			for i, v := range vs {
				data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": "fake-embed"})
		case "/v1/chat/completions":
			var req struct {
				Messages []struct{ Role, Content string }
			}
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			chunk := func(delta map[string]any, finish any) {
				b, _ := json.Marshal(map[string]any{"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "fake-chat",
					"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish}}})
				fmt.Fprintf(w, "data: %s\n\n", b)
			}
			chunk(map[string]any{"role": "assistant", "content": ""}, nil)
			for _, m := range req.Messages {
				chunk(map[string]any{"content": m.Role + ": " + m.Content + "\n"}, nil)
			}
			chunk(map[string]any{}, "stop")
			fmt.Fprint(w, "data: [DONE]\n\n")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1/"
}

// TestOpenAICompatible runs the app with an OpenAI-compatible embedder and chat model
// (a local fake that echoes its prompt) and checks that a clone's answer is built from
// its own document.
func TestOpenAICompatible(t *testing.T) {
	app := newTestAppWith(t, false, func(cfg *Config) {
		cfg.OpenAIBaseURL, cfg.OpenAIAPIKey = fakeOpenAI(t, 64), "test-key"
		cfg.EmbeddingModel, cfg.EmbeddingDimension, cfg.ChatModel = "fake-embed", 64, "fake-chat"
	})
	if !strings.Contains(app.backends, "embedder=openai:fake-embed") || !strings.Contains(app.backends, "generator=openai") {
		t.Fatalf("backends: %s", app.backends)
	}
	c := client{app}
	ctx := t.Context()
	a, err := c.newActor(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	body, hdr := multipartDocument("dog", "Our office dog is called Biscuit.")
	if status, text := c.do(ctx, a, http.MethodPost, "/v1/documents", body, hdr); status != http.StatusCreated {
		t.Fatalf("upload: %d %s", status, text)
	}
	stream, _, err := c.chat(ctx, a, "What is the dog called?")
	if err != nil || !strings.Contains(stream, "Biscuit") {
		t.Fatalf("chat: %v\n%s", err, stream)
	}
}
