package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/vectorstore"
)

var small = &chunk.Options{TargetTokens: 24, OverlapTokens: 4}

func doc(topic string, paragraphs int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# About %s\n\n", topic)
	for i := range paragraphs {
		fmt.Fprintf(&b, "Paragraph %d says something about %s. It has a second sentence about %s too.\n\n", i, topic, topic)
	}
	return b.String()
}

func mustIngest(t testing.TB, p *ingest.Pipeline, cc clone.CloneContext, src ingest.Source) ingest.Result {
	t.Helper()
	r, err := p.Ingest(context.Background(), cc, src)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestIngestReingestUpdateDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small})
		cc := e.newClone(t)
		text := doc("gardening", 6)

		r := mustIngest(t, p, cc, ingest.Source{Title: "Garden", SourceName: "garden.md", Data: []byte(text), Metadata: map[string]any{"lang": "en"}})
		if r.Outcome != ingest.Created || r.Document.Status != records.StatusReady || r.Document.ContentType != "text/markdown; charset=utf-8" {
			t.Fatalf("result %+v", r)
		}
		s := checkConsistent(t, e, cc)
		chunks := s.chunks[r.Document.ID.String()]
		if len(chunks) < 3 {
			t.Fatalf("%d chunks", len(chunks))
		}
		for _, c := range chunks {
			if text[c.StartOffset:c.EndOffset] != c.Content {
				t.Fatalf("chunk %d offsets [%d,%d) do not point at its text", c.Ordinal, c.StartOffset, c.EndOffset)
			}
		}
		if !strings.HasPrefix(chunks[0].Content, "# About gardening") {
			t.Fatalf("first chunk %q", chunks[0].Content)
		}
		orig, err := e.objects.ReadAll(ctx, cc, ingest.ObjectKind, ingest.ObjectName(r.Document.ID, ingest.DocumentVersion(r.Document)))
		if err != nil || string(orig) != text {
			t.Fatalf("original: %v", err)
		}
		// The vectors answer a query for a chunk's own text with that chunk.
		emb, _ := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
		qv, _ := emb.Embed(ctx, []string{chunks[2].Content})
		ms, err := e.vectors.Query(ctx, cc, vectorstore.Query{Vector: qv[0], TopK: 1, IncludeMetadata: true})
		if err != nil || len(ms) != 1 || ms[0].ID != chunks[2].VectorID || ms[0].Metadata[ingest.MetaDocumentID] != r.Document.ID.String() {
			t.Fatalf("query: %v %+v", err, ms)
		}

		// Identical content again: a no-op, whatever the title.
		e.faults.reset()
		again := mustIngest(t, p, cc, ingest.Source{Title: "Other title", Reader: strings.NewReader(text), ContentType: "text/markdown"})
		if again.Outcome != ingest.Unchanged || again.Document.ID != r.Document.ID {
			t.Fatalf("re-ingest: %+v", again)
		}
		if n := e.faults.calls["vectors.Upsert"] + e.faults.calls["objects.Put"]; n != 0 {
			t.Fatalf("re-ingest wrote %d times", n)
		}

		// A new version replaces chunks, vectors and original.
		v2 := doc("composting", 9)
		up := mustIngest(t, p, cc, ingest.Source{DocumentID: r.Document.ID, Title: "Garden v2", SourceName: "garden.md", Data: []byte(v2)})
		if up.Outcome != ingest.Updated || up.Document.ID != r.Document.ID || up.Document.ContentHash == r.Document.ContentHash || up.CleanupErr != nil {
			t.Fatalf("update: %+v", up)
		}
		s = checkConsistent(t, e, cc)
		if len(s.docs) != 1 || s.docs[0].Title != "Garden v2" {
			t.Fatalf("docs %+v", s.docs)
		}
		for _, c := range s.chunks[r.Document.ID.String()] {
			if strings.Contains(c.Content, "gardening") {
				t.Fatalf("old text survived the update: %q", c.Content)
			}
		}
		// Re-ingesting the old version by ID is an update back, not a no-op.
		back := mustIngest(t, p, cc, ingest.Source{DocumentID: r.Document.ID, Data: []byte(text), ContentType: "text/markdown"})
		if back.Outcome != ingest.Updated {
			t.Fatalf("update back: %+v", back)
		}
		checkConsistent(t, e, cc)

		// Delete removes everything.
		if err := p.Delete(ctx, cc, r.Document.ID); err != nil {
			t.Fatal(err)
		}
		s = checkConsistent(t, e, cc)
		if len(s.docs)+len(s.vectors)+len(s.objects) != 0 {
			t.Fatalf("after delete: %+v", s)
		}
		if err := p.Delete(ctx, cc, r.Document.ID); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

// Two clones ingest conflicting content under the same names; each sees only its own
// documents, chunks, vectors and originals.
func TestIsolationBetweenClones(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small})
		a, b := e.newClone(t), e.newClone(t)
		shared := doc("the shared handbook", 3)
		ra := mustIngest(t, p, a, ingest.Source{SourceName: "notes.md", Data: []byte(doc("alice's secret recipe", 4))})
		rb := mustIngest(t, p, b, ingest.Source{SourceName: "notes.md", Data: []byte(doc("bob's private plans", 4))})
		sa := mustIngest(t, p, a, ingest.Source{SourceName: "handbook.md", Data: []byte(shared)})
		sb := mustIngest(t, p, b, ingest.Source{SourceName: "handbook.md", Data: []byte(shared)})
		if sb.Outcome != ingest.Created || sa.Document.ID == sb.Document.ID {
			t.Fatalf("identical content in another clone must be its own document: %+v %+v", sa, sb)
		}

		// The owner sees its data first.
		stA, stB := checkConsistent(t, e, a), checkConsistent(t, e, b)
		if len(stA.docs) != 2 || len(stB.docs) != 2 || len(stA.vectors) == 0 || len(stA.objects) != 2 {
			t.Fatalf("owners' state: %d/%d docs, %d vectors, %d objects", len(stA.docs), len(stB.docs), len(stA.vectors), len(stA.objects))
		}
		for _, v := range stB.vectors {
			if strings.HasPrefix(v, ra.Document.ID.String()) || strings.HasPrefix(v, sa.Document.ID.String()) {
				t.Fatalf("clone B lists A's vector %s", v)
			}
		}
		for _, c := range stB.chunks {
			for _, ch := range c {
				if strings.Contains(ch.Content, "alice") {
					t.Fatalf("clone B has A's chunk %q", ch.Content)
				}
			}
		}
		// B cannot reach A's document by ID in any store.
		if _, err := records.GetDocument(ctx, e.db, b, ra.Document.ID); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("B got A's document: %v", err)
		}
		e.audit.Reset()
		if err := p.Delete(ctx, b, ra.Document.ID); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("B deleted A's document: %v", err)
		}
		if evs := e.audit.Events(); len(evs) == 0 || evs[0].Outcome != audit.Denied || evs[0].CloneID != b.CloneID() {
			t.Fatalf("B's attempt was not audited as a denial: %+v", evs)
		}
		if _, err := p.Ingest(ctx, b, ingest.Source{DocumentID: ra.Document.ID, Data: []byte("overwrite")}); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("B updated A's document: %v", err)
		}
		if _, err := e.objects.ReadAll(ctx, b, ingest.ObjectKind, ingest.ObjectName(ra.Document.ID, ingest.DocumentVersion(ra.Document))); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("B read A's original: %v", err)
		}
		if vs, err := e.vectors.Fetch(ctx, b, stA.vectors); err != nil || len(vs) != 0 {
			t.Fatalf("B fetched A's vectors: %d, %v", len(vs), err)
		}
		emb, _ := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
		qv, _ := emb.Embed(ctx, []string{"alice's secret recipe"})
		ms, err := e.vectors.Query(ctx, b, vectorstore.Query{Vector: qv[0], TopK: 100, Filter: map[string]any{ingest.MetaDocumentID: ra.Document.ID.String()}})
		if err != nil || len(ms) != 0 {
			t.Fatalf("B's query found A's vectors: %v %v", ms, err)
		}
		if _, err := p.Reconcile(ctx, b, &ingest.ReconcileOptions{StaleAfter: 1}); err != nil {
			t.Fatal(err)
		}
		// A is untouched by everything B did.
		if after := checkConsistent(t, e, a); strings.Join(after.vectors, ",") != strings.Join(stA.vectors, ",") || len(after.objects) != 2 {
			t.Fatal("A's data changed")
		}
		checkConsistent(t, e, b)
		_ = rb
	})
}

func TestBadInputWritesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small, MaxDocumentBytes: 1000})
		cc := e.newClone(t)
		for _, tc := range []struct {
			name string
			src  ingest.Source
			kind error
		}{
			{"not a pdf", ingest.Source{SourceName: "a.pdf", Data: []byte("plain words")}, clone.ErrInvalidInput},
			{"pdf as text", ingest.Source{ContentType: "text/plain", Data: []byte("%PDF-1.4 x")}, clone.ErrInvalidInput},
			{"image", ingest.Source{ContentType: "image/png", Data: []byte("x")}, clone.ErrUnsupported},
			{"bad type", ingest.Source{ContentType: "text/", Data: []byte("x")}, clone.ErrInvalidInput},
			{"too large", ingest.Source{Data: bytes.Repeat([]byte("a "), 600)}, clone.ErrTooLarge},
			{"too large reader", ingest.Source{Reader: bytes.NewReader(bytes.Repeat([]byte("a "), 600))}, clone.ErrTooLarge},
			{"no body", ingest.Source{Title: "x"}, clone.ErrInvalidInput},
			{"two bodies", ingest.Source{Data: []byte("x"), Reader: strings.NewReader("x")}, clone.ErrInvalidInput},
			{"reserved metadata", ingest.Source{Data: []byte("x"), Metadata: map[string]any{"cloneiso": 1}}, clone.ErrInvalidInput},
			{"unknown document", ingest.Source{DocumentID: uuid.New(), Data: []byte("x")}, clone.ErrNotFound},
			{"long title", ingest.Source{Title: strings.Repeat("t", 1025), Data: []byte("x")}, clone.ErrTooLarge},
			{"bad source name", ingest.Source{SourceName: "a\x00b", Data: []byte("x")}, clone.ErrInvalidInput},
			{"huge metadata", ingest.Source{Data: []byte("x"), Metadata: map[string]any{"k": strings.Repeat("v", 70000)}}, clone.ErrTooLarge},
		} {
			if _, err := p.Ingest(ctx, cc, tc.src); !errors.Is(err, tc.kind) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.kind)
			}
		}
		if s := snapshot(t, e, cc); len(s.docs)+len(s.vectors)+len(s.objects) != 0 {
			t.Fatalf("bad input left %d docs, %d vectors, %d objects", len(s.docs), len(s.vectors), len(s.objects))
		}
		if _, err := p.Ingest(ctx, clone.CloneContext{}, ingest.Source{Data: []byte("x")}); !errors.Is(err, clone.ErrNoCloneContext) {
			t.Fatal(err)
		}
		if err := p.Delete(ctx, clone.CloneContext{}, uuid.New()); !errors.Is(err, clone.ErrNoCloneContext) {
			t.Fatal(err)
		}
		if _, err := p.Reconcile(ctx, clone.CloneContext{}, nil); !errors.Is(err, clone.ErrNoCloneContext) {
			t.Fatal(err)
		}
		// Malformed content is only found by the extractor: the document is recorded as
		// failed, with nothing else left.
		_, err := p.Ingest(ctx, cc, ingest.Source{ContentType: "text/plain", Data: []byte("bad \xff utf-8")})
		if !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("malformed: %v", err)
		}
		_, err = p.Ingest(ctx, cc, ingest.Source{ContentType: "text/html", Data: []byte("<script>only()</script>")})
		if !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("no text: %v", err)
		}
		s := checkConsistent(t, e, cc)
		if len(s.docs) != 2 || s.docs[0].Status != records.StatusFailed {
			t.Fatalf("docs %+v", s.docs)
		}
	})
}

func TestUploadTicketSource(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		if e.upload == nil {
			t.Skip("backend without upload tickets")
		}
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small})
		a, b := e.newClone(t), e.newClone(t)
		text := doc("uploaded manuals", 3)
		ticket := e.upload(t, a, "text/markdown", []byte(text))

		// Another clone cannot ingest A's upload.
		if _, err := p.Ingest(ctx, b, ingest.Source{Upload: ticket}); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("B ingested A's upload: %v", err)
		}
		r := mustIngest(t, p, a, ingest.Source{Upload: ticket, SourceName: "manual.md"})
		if r.Outcome != ingest.Created || r.Document.ContentType != "text/markdown" {
			t.Fatalf("%+v", r)
		}
		s := checkConsistent(t, e, a)
		if len(s.other) != 0 {
			t.Fatalf("consumed upload left: %v", s.other)
		}
		checkConsistent(t, e, b)
	})
}

// postForm uploads data with a ticket as a browser would.
func postForm(t testing.TB, url string, fields map[string]string, data []byte) {
	t.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	for k, v := range fields {
		_ = w.WriteField(k, v)
	}
	fw, _ := w.CreateFormFile("file", "upload")
	_, _ = fw.Write(data)
	_ = w.Close()
	resp, err := http.Post(url, w.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload: %s %s", resp.Status, msg)
	}
}

func TestIngestAllConcurrentWithProgress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var mu sync.Mutex
		var events []ingest.Progress
		p := e.pipeline(t, &ingest.Options{Chunking: small, Workers: 3, EmbedBatch: 4, Progress: func(ev ingest.Progress) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		}})
		cc := e.newClone(t)
		var srcs []ingest.Source
		var total int64
		for i := range 8 {
			data := []byte(doc(fmt.Sprintf("topic %d", i%6), 3)) // two duplicates
			total += int64(len(data))
			srcs = append(srcs, ingest.Source{SourceName: fmt.Sprintf("d%d.md", i), Data: data})
		}
		res, err := p.IngestAll(ctx, cc, srcs)
		if err != nil {
			t.Fatal(err)
		}
		created, unchanged := 0, 0
		for _, r := range res {
			switch r.Outcome {
			case ingest.Created:
				created++
			case ingest.Unchanged:
				unchanged++
			}
		}
		if created != 6 || unchanged != 2 || res[6].Document.ID != res[0].Document.ID {
			t.Fatalf("created %d unchanged %d", created, unchanged)
		}
		s := checkConsistent(t, e, cc)
		if len(s.docs) != 6 {
			t.Fatalf("%d documents", len(s.docs))
		}
		last := events[len(events)-1]
		if last.DocumentsDone != 8 || last.DocumentsTotal != 8 || last.BytesDone != total || last.BytesTotal != total || last.ChunksDone != last.ChunksTotal || last.ChunksDone == 0 {
			t.Fatalf("last event %+v", last)
		}
		prev := ingest.Progress{}
		stages := map[ingest.Stage]int{}
		for _, ev := range events {
			if ev.DocumentsDone < prev.DocumentsDone || ev.ChunksDone < prev.ChunksDone || ev.BytesDone < prev.BytesDone {
				t.Fatalf("progress went back: %+v after %+v", ev, prev)
			}
			prev = ev
			stages[ev.Stage]++
		}
		if stages[ingest.StageReady] != 6 || stages[ingest.StageUnchanged] != 2 || stages[ingest.StageEmbedded] < 6 {
			t.Fatalf("stages %v", stages)
		}

		// The same new content from many goroutines at once: one document.
		var wg sync.WaitGroup
		outcomes := make([]ingest.Outcome, 6)
		errs := make([]error, 6)
		same := []byte(doc("contended", 4))
		for i := range outcomes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := p.Ingest(ctx, cc, ingest.Source{Data: same, ContentType: "text/markdown"})
				outcomes[i], errs[i] = r.Outcome, err
			}()
		}
		wg.Wait()
		created = 0
		for i := range outcomes {
			if errs[i] != nil {
				t.Fatalf("concurrent ingest: %v", errs[i])
			}
			if outcomes[i] == ingest.Created {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d concurrent ingests created a document", created)
		}
		if s := checkConsistent(t, e, cc); len(s.docs) != 7 {
			t.Fatalf("%d documents", len(s.docs))
		}

		// Cancelled while documents are in flight: finished ones stay, the others fail
		// and leave nothing.
		mctx, mcancel := context.WithCancel(ctx)
		pc := e.pipeline(t, &ingest.Options{Chunking: small, Workers: 2, EmbedBatch: 2, Progress: func(ev ingest.Progress) {
			if ev.Stage == ingest.StageReady {
				mcancel()
			}
		}})
		var many []ingest.Source
		for i := range 6 {
			many = append(many, ingest.Source{Data: []byte(doc(fmt.Sprintf("cancelled batch %d", i), 4)), ContentType: "text/markdown"})
		}
		res, err = pc.IngestAll(mctx, cc, many)
		mcancel()
		failed := 0
		for _, r := range res {
			if r.Err != nil {
				failed++
				// Canceled from the stores and the pipeline; Unavailable where a
				// backend reports the cancelled call as a broken transport.
				if !errors.Is(r.Err, context.Canceled) && !errors.Is(r.Err, clone.ErrCanceled) && !errors.Is(r.Err, clone.ErrUnavailable) {
					t.Fatalf("in-flight failure: %v", r.Err)
				}
			}
		}
		if err == nil || failed == 0 || failed == len(many) {
			t.Fatalf("%d of %d failed: %v", failed, len(many), err)
		}
		checkConsistent(t, e, cc)

		// Cancelled before it starts: nothing is done.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		res, err = p.IngestAll(cctx, cc, []ingest.Source{{Data: []byte("never")}})
		if !errors.Is(err, clone.ErrCanceled) || !errors.Is(res[0].Err, context.Canceled) {
			t.Fatalf("cancelled: %v; want ErrCanceled", err)
		}
		checkConsistent(t, e, cc)
	})
}

// The same content under another embedding model or chunking is re-ingested in place
// (a new version), not skipped.
func TestConfigurationChangeReingests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		text := []byte(doc("configuration", 8))
		p1 := e.pipeline(t, &ingest.Options{Chunking: small})
		r1 := mustIngest(t, p1, cc, ingest.Source{Data: text, ContentType: "text/markdown"})
		unigrams, _ := embed.NewLocal(&embed.LocalOptions{Dimension: dim, NGram: 1})
		for _, p := range []*ingest.Pipeline{
			e.pipelineWith(t, unigrams, &ingest.Options{Chunking: small}),
			e.pipelineWith(t, unigrams, &ingest.Options{Chunking: &chunk.Options{TargetTokens: 48, OverlapTokens: 8}}),
		} {
			r, err := p.Ingest(ctx, cc, ingest.Source{Data: text, ContentType: "text/markdown"})
			if err != nil || r.Outcome != ingest.Updated || r.Document.ID != r1.Document.ID || ingest.DocumentVersion(r.Document) == ingest.DocumentVersion(r1.Document) {
				t.Fatalf("re-ingest under a new configuration: %+v %v", r, err)
			}
			if again := mustIngest(t, p, cc, ingest.Source{Data: text, ContentType: "text/markdown"}); again.Outcome != ingest.Unchanged {
				t.Fatalf("second time: %s", again.Outcome)
			}
			s := checkConsistent(t, e, cc)
			if len(s.docs) != 1 {
				t.Fatalf("%d documents", len(s.docs))
			}
		}
	})
}

func TestNewValidatesOptions(t *testing.T) {
	e := newEnv(t, backend{"embedded", "sqlite", "mem", "file"})
	emb := e.localEmbedder(t)
	other, _ := embed.NewLocal(&embed.LocalOptions{Dimension: dim + 1})
	for name, o := range map[string]*ingest.Options{
		"negative workers": {Workers: -1},
		"huge batch":       {EmbedBatch: ingest.MaxEmbedBatch + 1},
		"bad chunking":     {Chunking: &chunk.Options{TargetTokens: 10, OverlapTokens: 5}},
	} {
		if _, err := ingest.New(e.db, e.vectors, e.objects, emb, o); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ingest.New(e.db, e.vectors, e.objects, other, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("dimension mismatch: %v", err)
	}
	if _, err := ingest.New(nil, e.vectors, nil, emb, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("nil db: %v", err)
	}
	// The embedder is required: no silent default that answers could not be retrieved
	// with.
	if _, err := ingest.New(e.db, e.vectors, e.objects, nil, nil); !errors.Is(err, clone.ErrInvalidInput) || !strings.Contains(err.Error(), "embedder is required") {
		t.Errorf("nil embedder: %v", err)
	}
	// Without a bucket originals are not kept, and upload sources are refused.
	p, err := ingest.New(e.db, e.vectors, nil, emb, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := e.newClone(t)
	r, err := p.Ingest(context.Background(), cc, ingest.Source{Data: []byte("plain words"), ContentType: "text/plain"})
	if err != nil || r.Document.ObjectKey != "" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := p.Ingest(context.Background(), cc, ingest.Source{Upload: &objectstore.UploadTicket{Kind: "uploads", Name: "x"}}); !errors.Is(err, clone.ErrUnsupported) {
		t.Fatal(err)
	}
	checkConsistent(t, e, cc)
}
