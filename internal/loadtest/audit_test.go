package loadtest

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// A clone retrieving while one of its own documents is being ingested (vectors
// upserted, chunks not yet committed — the window package ingest documents) is normal
// operation, not an attack: nothing of another clone is involved, and the audit log,
// whose denials are security events, should not record a denial for it. The load
// test found such denials under concurrency; this test reproduces one deterministically.
func TestRetrievalDuringIngestIsNotADenial(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Shared(t)
	raw, err := clonesql.OpenPostgres(pg.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	sink := &audit.Memory{}
	db, err := clonesql.New(raw, &clonesql.Options{Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	tenants, err := tenant.NewStore(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc := pineconetest.Start(t, &pineconetest.Options{Dimension: dim})
	vectors, err := pineconevector.Open(pc.Host(), dim, &pineconevector.Options{Index: &vectorstore.Options{Audit: sink}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vectors.Close() })
	emb, err := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
	if err != nil {
		t.Fatal(err)
	}
	upserted := make(chan struct{})
	release := make(chan struct{})
	pipe, err := ingest.New(db, vectors, nil, emb, &ingest.Options{Chunking: &chunk.Options{TargetTokens: 48, OverlapTokens: 4}, Progress: func(ev ingest.Progress) {
		if ev.Stage == ingest.StageUpserted && ev.SourceName == "held.md" {
			close(upserted)
			<-release
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	retriever, err := rag.NewRetriever(db, vectors, emb, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, _, err := tenants.ProvisionSolo(ctx, "audit-noise-"+uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	c := &target{canary: "zqc0123456789abcdef", topic: "zqtfeedface"}
	if _, err := pipe.Ingest(ctx, cc, ingest.Source{SourceName: "first.md", Data: []byte(c.secret(0))}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pipe.Ingest(ctx, cc, ingest.Source{SourceName: "held.md", Data: []byte(c.secret(1))})
		done <- err
	}()
	<-upserted
	sink.Reset()
	ret, err := retriever.Retrieve(ctx, cc, "What is the "+c.topic+" code?", nil)
	close(release)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(ret.Passages) == 0 {
		t.Fatal("no passage retrieved")
	}
	if ev := sink.Events(); len(ev) != 0 {
		t.Fatalf("retrieval during the clone's own ingestion recorded an audit %q event %q (%v): benign concurrency must not fill the security audit log with denials; %d event(s)",
			ev[0].Outcome, ev[0].Reason, ev[0].Detail, len(ev))
	}
}
