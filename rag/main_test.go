package rag_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// env is one backend combination: a SQL database seen as the application role, a vector
// index, the local embedder and the extractive generator.
type env struct {
	name    string
	raw     *sqlx.DB
	db      *clonesql.DB
	index   *vectorstore.Index
	emb     embed.Embedder
	audit   *audit.Memory
	tenants *tenant.Store
	ret     *rag.Retriever
	pipe    *ingest.Pipeline
}

func (e *env) newClone(t testing.TB) clone.CloneContext {
	t.Helper()
	cc, _, err := e.tenants.ProvisionSolo(context.Background(), "subject-"+clone.NewID().String())
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// newEnv returns the embedded backends (SQLite + memvector) or the real ones
// (PostgreSQL as the non-owner app role + go-pinecone against the in-process Pinecone
// emulator).
func newEnv(t testing.TB, real bool) *env {
	t.Helper()
	e := &env{audit: &audit.Memory{}}
	emb, err := embed.NewLocal(nil)
	if err != nil {
		t.Fatal(err)
	}
	e.emb = emb
	if real {
		e.name = "postgres+pinecone"
		e.raw, _ = pgtest.Open(t, clonesql.Postgres)
		srv := pineconetest.Start(t, &pineconetest.Options{Dimension: emb.Dimension()})
		e.index, err = pineconevector.Open(srv.Host(), emb.Dimension(), &pineconevector.Options{Index: &vectorstore.Options{Audit: e.audit}})
		if err != nil {
			t.Fatal(err)
		}
	} else {
		e.name = "sqlite+memvector"
		e.raw, _ = pgtest.Open(t, clonesql.SQLite)
		e.index, err = memvector.Open(emb.Dimension(), &memvector.Options{Index: &vectorstore.Options{Audit: e.audit}})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.index.Close() })
	if e.db, err = clonesql.New(e.raw.DB, &clonesql.Options{Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	if e.tenants, err = tenant.NewStore(e.raw.DB, nil); err != nil {
		t.Fatal(err)
	}
	if e.ret, err = rag.NewRetriever(e.db, e.index, e.emb, nil); err != nil {
		t.Fatal(err)
	}
	if e.pipe, err = ingest.New(e.db, e.index, nil, e.emb, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// forEachBackend runs fn on the embedded and on the real backends.
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, real := range []bool{false, true} {
		name := "embedded"
		if real {
			name = "real"
		}
		t.Run(name, func(t *testing.T) { fn(t, newEnv(t, real)) })
	}
}

// ingestDoc ingests one plain-text document for the clone through the ingestion
// pipeline; paragraphs are separated by blank lines.
func ingestDoc(t testing.TB, e *env, cc clone.CloneContext, title string, paragraphs ...string) records.Document {
	t.Helper()
	res, err := e.pipe.Ingest(context.Background(), cc, ingest.Source{Title: title, SourceName: title + ".txt",
		ContentType: "text/plain", Data: []byte(strings.Join(paragraphs, "\n\n"))})
	if err != nil {
		t.Fatal(err)
	}
	return res.Document
}

// seedDoc stores one document of the clone with exactly one chunk per paragraph, through
// the same public pieces the ingestion pipeline uses (records and the vector index,
// vector IDs from ingest.VectorID), for tests that need control over chunk boundaries.
func seedDoc(t testing.TB, e *env, cc clone.CloneContext, title string, paragraphs ...string) records.Document {
	t.Helper()
	ctx := context.Background()
	text := strings.Join(paragraphs, "\n\n")
	hash := ingest.ContentHash([]byte(text))
	version := ingest.Version(hash)
	d, err := records.CreateDocument(ctx, e.db, cc, records.Document{Title: title, ContentType: "text/plain", ContentHash: hash})
	if err != nil {
		t.Fatal(err)
	}
	chunks := make([]records.Chunk, len(paragraphs))
	off := 0
	for i, p := range paragraphs {
		chunks[i] = records.Chunk{Ordinal: i, Content: p, TokenCount: len(strings.Fields(p)),
			StartOffset: off, EndOffset: off + len(p), VectorID: ingest.VectorID(d.ID, version, i)}
		off += len(p) + 2
	}
	vecs, err := e.emb.Embed(ctx, paragraphs)
	if err != nil {
		t.Fatal(err)
	}
	vs := make([]vectorstore.Vector, len(vecs))
	for i, v := range vecs {
		vs[i] = vectorstore.Vector{ID: chunks[i].VectorID, Values: v, Metadata: map[string]any{
			ingest.MetaDocumentID: d.ID.String(), ingest.MetaOrdinal: i, ingest.MetaVersion: version}}
	}
	if err := e.index.Upsert(ctx, cc, vs); err != nil {
		t.Fatal(err)
	}
	if _, err := records.ReplaceDocumentChunks(ctx, e.db, cc, d.ID, chunks); err != nil {
		t.Fatal(err)
	}
	if err := records.SetDocumentStatus(ctx, e.db, cc, d.ID, records.StatusReady, ""); err != nil {
		t.Fatal(err)
	}
	return d
}

// recorder is a Generator that records every request it receives and delegates to
// another generator.
type recorder struct {
	generate.Generator
	mu   sync.Mutex
	reqs []generate.Request
}

func (r *recorder) Generate(ctx context.Context, req *generate.Request, emit func(string) error) (*generate.Result, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, *req)
	r.mu.Unlock()
	return r.Generator.Generate(ctx, req, emit)
}

// seen returns everything the generator was ever sent, as text.
func (r *recorder) seen() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, q := range r.reqs {
		for _, m := range q.Messages {
			fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
		}
		for _, s := range q.Sources {
			fmt.Fprintf(&b, "source %s: %s\n", s.Title, s.Text)
		}
	}
	return b.String()
}

func extractive(t testing.TB) *generate.Extractive {
	t.Helper()
	g, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
