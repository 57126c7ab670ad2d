package rag_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
)

// scripted is a Generator that streams fixed pieces; it fails with err after failAfter
// pieces (if err is set), or blocks after block pieces until ctx is done (if block > 0).
type scripted struct {
	pieces    []string
	failAfter int
	err       error
	block     int
}

func (s *scripted) Model() string { return "scripted" }

func (s *scripted) Generate(ctx context.Context, _ *generate.Request, emit func(string) error) (*generate.Result, error) {
	var b strings.Builder
	for i, p := range s.pieces {
		if s.err != nil && i == s.failAfter {
			return nil, s.err
		}
		if s.block > 0 && i == s.block {
			<-ctx.Done()
		}
		if err := ctx.Err(); err != nil {
			return nil, errs.Wrap(errs.Canceled, "scripted", err, "cancelled")
		}
		if err := emit(p); err != nil {
			return nil, err
		}
		b.WriteString(p)
	}
	return &generate.Result{Text: b.String(), Model: "scripted", FinishReason: "stop"}, nil
}

var pieces = []string{"The ", "code ", "is ", "ZX-1 ", "[1]."}

// fixture is one clone with one document, and a processor on the given generator.
func fixture(t *testing.T, e *env, g generate.Generator) (clone.CloneContext, *rag.Processor) {
	t.Helper()
	cc := e.newClone(t)
	seedDoc(t, e, cc, "Codes", "The code of the vault is ZX-1.", "The garden has roses.")
	p, err := rag.NewProcessor(e.db, e.ret, g, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cc, p
}

// messages returns the contents of the conversation's messages, as role:content.
func messages(t *testing.T, e *env, cc clone.CloneContext, conv records.Conversation) []string {
	t.Helper()
	page, err := records.ListMessages(context.Background(), e.db, cc, conv.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range page.Items {
		out = append(out, string(m.Role)+":"+m.Content)
	}
	return out
}

func TestProcessStreamsAndStores(t *testing.T) {
	e := newEnv(t, false)
	cc, p := fixture(t, e, &scripted{pieces: pieces})
	var got []string
	resp, err := p.Process(context.Background(), cc, &rag.Request{Subject: "visitor", Question: "What is the vault code?"},
		func(d string) error { got = append(got, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "") != "The code is ZX-1 [1]." || resp.Answer.Content != "The code is ZX-1 [1]." || resp.Interrupted {
		t.Fatalf("deltas %q, answer %q", got, resp.Answer.Content)
	}
	if resp.Conversation.Title != "What is the vault code?" || resp.Conversation.Subject != "visitor" {
		t.Fatalf("conversation %+v", resp.Conversation)
	}
	if len(resp.Citations) != 1 || resp.Citations[0].Title != "Codes" || resp.Citations[0].Marker != "[1]" || resp.Citations[0].Ordinal != 0 {
		t.Fatalf("citations %+v", resp.Citations)
	}
	var stored []rag.Citation
	if err := json.Unmarshal(resp.Answer.Citations, &stored); err != nil || len(stored) != 1 || stored[0].DocumentID != resp.Citations[0].DocumentID {
		t.Fatalf("stored citations %s: %v", resp.Answer.Citations, err)
	}
	if got := messages(t, e, cc, resp.Conversation); strings.Join(got, "|") != "user:What is the vault code?|assistant:The code is ZX-1 [1]." {
		t.Fatalf("conversation %q", got)
	}

	// Continue it: the first turn is in the second prompt's history.
	resp2, err := p.Process(context.Background(), cc, &rag.Request{ConversationID: resp.Conversation.ID, Question: "And the garden?"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp2.Prompt.History != 2 || !strings.Contains(resp2.Prompt.Text(), "assistant: The code is ZX-1 [1].") {
		t.Fatalf("history %d in %s", resp2.Prompt.History, resp2.Prompt.Text())
	}
	if n, _ := records.CountMessages(context.Background(), e.db, cc, resp.Conversation.ID); n != 4 {
		t.Fatalf("%d messages", n)
	}
}

func TestStreamIterator(t *testing.T) {
	e := newEnv(t, false)
	cc, p := fixture(t, e, extractive(t))
	var text strings.Builder
	var final *rag.Response
	for ev, err := range p.Stream(context.Background(), cc, &rag.Request{Question: "What is the vault code?"}) {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Response != nil {
			final = ev.Response
			continue
		}
		text.WriteString(ev.Delta)
	}
	if final == nil || final.Answer.Content != text.String() || !strings.Contains(text.String(), "ZX-1") || !strings.Contains(text.String(), "[1]") {
		t.Fatalf("streamed %q, final %+v", text.String(), final)
	}
	// Errors come through the iterator: bad input stores nothing.
	for _, err := range p.Stream(context.Background(), cc, &rag.Request{Question: "  "}) {
		if !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("empty question: %v", err)
		}
	}
	if n, _ := records.CountConversations(context.Background(), e.db, cc); n != 1 {
		t.Fatalf("%d conversations after a bad question", n)
	}
}

// TestCancelMidStream: a cancelled context, a consumer that breaks out of the iterator
// and a failing callback each leave the user message and exactly the delivered text as
// the answer.
func TestCancelMidStream(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		cc, p := fixture(t, e, &scripted{pieces: pieces})
		q := &rag.Request{Question: "What is the vault code?"}
		check := func(resp *rag.Response, want string) {
			t.Helper()
			if resp == nil || !resp.Interrupted {
				t.Fatalf("response %+v", resp)
			}
			got := messages(t, e, cc, resp.Conversation)
			if strings.Join(got, "|") != "user:What is the vault code?|assistant:"+want {
				t.Fatalf("conversation %q, want answer %q", got, want)
			}
		}

		// Context cancelled by the consumer after two pieces.
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		resp, err := p.Process(ctx, cc, q, func(string) error {
			if n++; n == 2 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || clone.HTTPStatus(err) != clone.StatusClientClosedRequest {
			t.Fatalf("cancel: %v", err)
		}
		check(resp, "The code ")
		if resp.Answer.ID.String() == "" || resp.Answer.Content != "The code " {
			t.Fatalf("answer %+v", resp.Answer)
		}

		// Consumer breaking out of the iterator after three pieces.
		var conv records.Conversation
		seen := 0
		for ev, err := range p.Stream(context.Background(), cc, q) {
			if err != nil {
				t.Fatal(err)
			}
			if seen++; seen == 3 {
				_ = ev
				break
			}
		}
		page, _ := records.ListConversations(context.Background(), e.db, cc, &records.ListOptions{Descending: true, Limit: 1})
		conv = page.Items[0]
		if got := messages(t, e, cc, conv); strings.Join(got, "|") != "user:What is the vault code?|assistant:The code is " {
			t.Fatalf("after break: %q", got)
		}

		// Callback failing on the first piece: nothing delivered, no assistant message.
		boom := errors.New("client gone")
		resp, err = p.Process(context.Background(), cc, q, func(string) error { return boom })
		if !errors.Is(err, boom) || resp == nil || !resp.Interrupted || resp.Answer.ID != [16]byte{} {
			t.Fatalf("failing callback: %v %+v", err, resp)
		}
		if got := messages(t, e, cc, resp.Conversation); strings.Join(got, "|") != "user:What is the vault code?" {
			t.Fatalf("after failing callback: %q", got)
		}
	})
}

func TestGeneratorErrors(t *testing.T) {
	e := newEnv(t, false)
	fail := errs.New(errs.Unavailable, "scripted", "model overloaded")
	ctx := context.Background()

	// Before the first piece: the error, the user message, no answer.
	cc, p := fixture(t, e, &scripted{pieces: pieces, err: fail, failAfter: 0})
	resp, err := p.Process(ctx, cc, &rag.Request{Question: "What is the vault code?"}, nil)
	if !errors.Is(err, clone.ErrUnavailable) || resp == nil || !resp.Interrupted {
		t.Fatalf("%v %+v", err, resp)
	}
	if got := messages(t, e, cc, resp.Conversation); len(got) != 1 {
		t.Fatalf("conversation %q", got)
	}
	// The next question in the same conversation still works, with the unanswered
	// question in its history.
	p2, _ := rag.NewProcessor(e.db, e.ret, &scripted{pieces: pieces}, nil)
	resp2, err := p2.Process(ctx, cc, &rag.Request{ConversationID: resp.Conversation.ID, Question: "Again?"}, nil)
	if err != nil || resp2.Prompt.History != 1 {
		t.Fatalf("continue after failure: %v", err)
	}

	// After three pieces: the partial answer is stored with the citations it has (none yet).
	cc, p = fixture(t, e, &scripted{pieces: pieces, err: fail, failAfter: 3})
	resp, err = p.Process(ctx, cc, &rag.Request{Question: "What is the vault code?"}, nil)
	if !errors.Is(err, clone.ErrUnavailable) || resp.Answer.Content != "The code is " || string(resp.Answer.Citations) != "[]" {
		t.Fatalf("%v %+v", err, resp.Answer)
	}
}

func TestProcessValidation(t *testing.T) {
	e := newEnv(t, false)
	cc, p := fixture(t, e, extractive(t))
	ctx := context.Background()
	for name, c := range map[string]struct {
		cc   clone.CloneContext
		req  *rag.Request
		kind error
	}{
		"no clone":        {clone.CloneContext{}, &rag.Request{Question: "q"}, clone.ErrNoCloneContext},
		"nil request":     {cc, nil, clone.ErrInvalidInput},
		"empty":           {cc, &rag.Request{Question: ""}, clone.ErrInvalidInput},
		"blank":           {cc, &rag.Request{Question: " \n\t"}, clone.ErrInvalidInput},
		"oversized":       {cc, &rag.Request{Question: strings.Repeat("a", rag.MaxQuestionBytes+1)}, clone.ErrTooLarge},
		"bad utf-8":       {cc, &rag.Request{Question: "a\xffb"}, clone.ErrInvalidInput},
		"nul":             {cc, &rag.Request{Question: "a\x00b"}, clone.ErrInvalidInput},
		"top-k":           {cc, &rag.Request{Question: "q", Retrieve: &rag.RetrieveOptions{TopK: rag.MaxTopK + 1}}, clone.ErrInvalidInput},
		"unknown conv":    {cc, &rag.Request{Question: "q", ConversationID: clone.NewID()}, clone.ErrNotFound},
		"title too large": {cc, &rag.Request{Question: "q", Title: strings.Repeat("t", records.MaxTitleBytes+1)}, clone.ErrTooLarge},
	} {
		if _, err := p.Process(ctx, c.cc, c.req, nil); !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", name, err, c.kind)
		}
	}
	if n, _ := records.CountConversations(ctx, e.db, cc); n != 0 {
		t.Fatalf("%d conversations stored by refused requests", n)
	}
	for _, o := range []*rag.ProcessorOptions{{HistoryMessages: -2}, {Insights: rag.MaxContextItems + 1}, {Retrieve: &rag.RetrieveOptions{TopK: -1}}, {SaveTimeout: -1}, {Prompt: &rag.PromptOptions{MaxTokens: 10}}} {
		if _, err := rag.NewProcessor(e.db, e.ret, extractive(t), o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("options %+v: %v", o, err)
		}
	}
	if _, err := rag.NewProcessor(nil, e.ret, extractive(t), nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Error(err)
	}
}

// sse reads Server-Sent Events from r until EOF.
func sse(t *testing.T, r *bufio.Reader, onEvent func(name, data string) bool) {
	t.Helper()
	var name string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if !onEvent(name, strings.TrimPrefix(line, "data: ")) {
				return
			}
		}
	}
}

func TestServeSSE(t *testing.T) {
	e := newEnv(t, false)
	cc, p := fixture(t, e, extractive(t))
	handlerDone := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlerDone <- p.ServeSSE(w, r, cc, &rag.Request{Question: r.URL.Query().Get("q")})
	}))
	defer srv.Close()

	res, err := http.Get(srv.URL + "?q=What+is+the+vault+code%3F")
	if err != nil {
		t.Fatal(err)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	var text strings.Builder
	var done rag.SSEDoneData
	sse(t, bufio.NewReader(res.Body), func(name, data string) bool {
		switch name {
		case rag.SSEDelta:
			var d struct{ Text string }
			_ = json.Unmarshal([]byte(data), &d)
			text.WriteString(d.Text)
		case rag.SSEDone:
			if err := json.Unmarshal([]byte(data), &done); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("event %s %s", name, data)
		}
		return true
	})
	res.Body.Close()
	if err := <-handlerDone; err != nil {
		t.Fatal(err)
	}
	if done.Answer != text.String() || !strings.Contains(done.Answer, "ZX-1") || len(done.Citations) != 1 || done.Citations[0].Title != "Codes" {
		t.Fatalf("streamed %q, done %+v", text.String(), done)
	}

	// A failure before the stream starts is a problem like any other API error: its
	// status, kind and a detail saying what was wrong; no event stream.
	for _, c := range []struct {
		query        string
		status       int
		kind, detail string
	}{
		{"?q=", http.StatusBadRequest, "invalid-input", "question"},
		{"?q=" + strings.Repeat("x", rag.MaxQuestionBytes+1), http.StatusRequestEntityTooLarge, "too-large", "question"},
	} {
		res, err = http.Get(srv.URL + c.query)
		if err != nil {
			t.Fatal(err)
		}
		var p clonehttp.Problem
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if err := <-handlerDone; err == nil {
			t.Fatalf("%.20s: ServeSSE returned no error", c.query)
		}
		if ct := res.Header.Get("Content-Type"); ct != clonehttp.ProblemContentType || json.Unmarshal(body, &p) != nil {
			t.Fatalf("%.20s: %d, content type %q: %s; want a problem", c.query, res.StatusCode, ct, body)
		}
		if res.StatusCode != c.status || p.Status != c.status || p.Kind != c.kind || !strings.Contains(p.Detail, c.detail) {
			t.Fatalf("%.20s: %d %+v; want %d, kind %s and a detail naming the %s", c.query, res.StatusCode, p, c.status, c.kind, c.detail)
		}
	}
}

// TestSSEClientDisconnect: a client that goes away mid-stream cancels generation, and
// the conversation keeps what had been sent.
func TestSSEClientDisconnect(t *testing.T) {
	e := newEnv(t, false)
	cc, p := fixture(t, e, &scripted{pieces: pieces, block: 2})
	handlerDone := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlerDone <- p.ServeSSE(w, r, cc, &rag.Request{Question: "What is the vault code?"})
	}))
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sse(t, bufio.NewReader(res.Body), func(name, data string) bool { n++; return n < 2 })
	res.Body.Close() // the client leaves after two deltas
	// A generation that did not stop would hang here (the test binary's timeout
	// reports it); no wall-clock limit of our own.
	if err := <-handlerDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler: %v", err)
	}
	page, err := records.ListConversations(context.Background(), e.db, cc, nil)
	if err != nil || len(page.Items) != 1 {
		t.Fatal(err)
	}
	if got := messages(t, e, cc, page.Items[0]); strings.Join(got, "|") != "user:What is the vault code?|assistant:The code " {
		t.Fatalf("conversation %q", got)
	}
}

// TestAnswerLimits: an answer longer than a message can hold is cut where it stops being
// storable (what was shown is what is stored), and many long citation titles still fit
// the citations column.
func TestAnswerLimits(t *testing.T) {
	e := newEnv(t, false)
	big := strings.Repeat("x", records.MaxContentBytes/4)
	cc, p := fixture(t, e, &scripted{pieces: []string{big, big, big, big, "overflow"}})
	var shown int
	resp, err := p.Process(context.Background(), cc, &rag.Request{Question: "What is the vault code?"}, func(d string) error { shown += len(d); return nil })
	if !errors.Is(err, clone.ErrTooLarge) || resp.Answer.ID == [16]byte{} || len(resp.Answer.Content) != shown || shown != 4*len(big) {
		t.Fatalf("%v: stored %d bytes, shown %d", err, len(resp.Answer.Content), shown)
	}

	cc = e.newClone(t)
	long := strings.Repeat("t", records.MaxTitleBytes)
	var answer []string
	for i := range 60 {
		seedDoc(t, e, cc, long[:len(long)-3]+fmt.Sprintf("%03d", i), fmt.Sprintf("Lighthouse fact number %d.", i))
		answer = append(answer, fmt.Sprintf("[%d] ", i+1))
	}
	p, err = rag.NewProcessor(e.db, e.ret, &scripted{pieces: answer}, &rag.ProcessorOptions{Retrieve: &rag.RetrieveOptions{TopK: 60}, Prompt: &rag.PromptOptions{MaxTokens: 100000}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err = p.Process(context.Background(), cc, &rag.Request{Question: "lighthouse fact number"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stored []rag.Citation
	if err := json.Unmarshal(resp.Answer.Citations, &stored); err != nil || len(stored) != 60 || len(resp.Citations) != 60 || resp.Citations[0].Title == "" {
		t.Fatalf("%v: %d stored, %d returned", err, len(stored), len(resp.Citations))
	}
}

// TestQueryTurns: with QueryTurns, a follow-up question retrieves from what the
// conversation is about.
func TestQueryTurns(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	cc := e.newClone(t)
	seedDoc(t, e, cc, "Lighthouse", "The lighthouse keeper lights the lamp at dusk.")
	seedDoc(t, e, cc, "Bakery", "The bakery sells rye bread. Ask about it at the counter.")
	ask := func(turns int) string {
		p, err := rag.NewProcessor(e.db, e.ret, extractive(t), &rag.ProcessorOptions{QueryTurns: turns, Retrieve: &rag.RetrieveOptions{TopK: 1}})
		if err != nil {
			t.Fatal(err)
		}
		first, err := p.Process(ctx, cc, &rag.Request{Question: "When does the lighthouse keeper light the lamp?"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.Process(ctx, cc, &rag.Request{ConversationID: first.Conversation.ID, Question: "Can I ask about it?"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Prompt.Request.Messages[len(resp.Prompt.Request.Messages)-1].Content != "Can I ask about it?" {
			t.Fatal("the prompt does not end with the question as asked")
		}
		return resp.Citations[0].Title
	}
	if got := ask(0); got != "Bakery" {
		t.Fatalf("without history: %s", got)
	}
	if got := ask(1); got != "Lighthouse" {
		t.Fatalf("with one turn: %s", got)
	}
	if _, err := rag.NewProcessor(e.db, e.ret, extractive(t), &rag.ProcessorOptions{QueryTurns: -1}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatal(err)
	}
}

// failingEmbedder is an embedder whose service is down.
type failingEmbedder struct{ dim int }

func (f failingEmbedder) Embed(context.Context, []string) ([][]float32, error) {
	return nil, errs.New(errs.Unavailable, "test.Embed", "embedding service down")
}
func (f failingEmbedder) Dimension() int { return f.dim }
func (f failingEmbedder) Model() string  { return "down" }

// TestRetrievalFailure: a turn whose retrieval fails keeps the user's message, stores no
// answer, runs no generator and reports the error's kind.
func TestRetrievalFailure(t *testing.T) {
	e := newEnv(t, false)
	cc := e.newClone(t)
	ret, err := rag.NewRetriever(e.db, e.index, failingEmbedder{e.index.Dimension()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	gen := &recorder{Generator: extractive(t)}
	p, err := rag.NewProcessor(e.db, ret, gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Process(context.Background(), cc, &rag.Request{Question: "anything?"}, nil)
	if !errors.Is(err, clone.ErrUnavailable) || resp == nil || !resp.Interrupted || len(gen.reqs) != 0 {
		t.Fatalf("%v %+v", err, resp)
	}
	if got := messages(t, e, cc, resp.Conversation); strings.Join(got, "|") != "user:anything?" {
		t.Fatalf("conversation %q", got)
	}
}
