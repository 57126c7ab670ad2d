package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/ingest/embed/openaiembed"
)

// The pipeline with the OpenAI-compatible adapter against a local server speaking the
// embeddings API: throttling is retried; a server that keeps failing fails the
// ingestion and leaves nothing behind.
func TestPipelineWithOpenAIEmbedder(t *testing.T) {
	local, _ := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
	var requests, failFrom, throttleAt atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := requests.Add(1)
		if n == throttleAt.Load() {
			w.Header().Set("Retry-After-Ms", "1")
			http.Error(w, `{"error":{"message":"slow down"}}`, http.StatusTooManyRequests)
			return
		}
		if f := failFrom.Load(); f > 0 && n >= f {
			http.Error(w, `{"error":{"message":"down"}}`, http.StatusBadGateway)
			return
		}
		var req struct{ Input []string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		vs, _ := local.Embed(r.Context(), req.Input)
		data := make([]map[string]any, len(vs))
		for i, v := range vs {
			data[i] = map[string]any{"object": "embedding", "index": i, "embedding": v}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": "test"})
	}))
	defer srv.Close()
	oe, err := openaiembed.New(&openaiembed.Options{BaseURL: srv.URL + "/v1/", APIKey: "k", Model: "test-embed", Dimension: dim,
		MaxRetries: 2, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipelineWith(t, oe, &ingest.Options{Chunking: small, EmbedBatch: 4})
		cc := e.newClone(t)
		requests.Store(0)
		throttleAt.Store(2)
		failFrom.Store(0)
		r, err := p.Ingest(ctx, cc, ingest.Source{Data: []byte(doc("remote embeddings", 6)), ContentType: "text/markdown"})
		if err != nil || r.Document.Status != records.StatusReady {
			t.Fatalf("%+v %v", r, err)
		}
		if requests.Load() < 4 {
			t.Fatalf("%d requests", requests.Load())
		}
		requests.Store(0)
		throttleAt.Store(0)
		failFrom.Store(2)
		_, err = p.Ingest(ctx, cc, ingest.Source{Data: []byte(doc("a failing service", 6)), ContentType: "text/markdown"})
		if !errors.Is(err, clone.ErrUnavailable) {
			t.Fatalf("got %v", err)
		}
		s := checkConsistent(t, e, cc)
		if len(s.docs) != 2 {
			t.Fatalf("%d documents", len(s.docs))
		}
	})
}
