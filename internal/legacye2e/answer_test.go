package legacye2e_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso"
	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/legacye2e"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const question = legacye2e.Question

var falconDoc, gardenDoc = legacye2e.FalconDoc, legacye2e.GardenDoc

// TestMigratedDataAnswers (issue 21, item 8): after the documented migration of a
// legacy deployment, the SDK — cloneiso.New on the migrated database (as the
// application role), bucket and index — answers a migrated user's question from that
// user's migrated document and cites it, once the documents are re-ingested from their
// migrated originals as MIGRATION_GUIDE.md says; the other user's clone, asked the
// same question, never gets that document. Before the re-ingestion the copied legacy
// vectors answer nothing: their IDs are not the SDK's chunk vector IDs.
func TestMigratedDataAnswers(t *testing.T) {
	ctx := context.Background()
	emb, err := embed.NewLocal(nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}
	dep := legacye2e.Migrate(t, emb)
	db, s3env, bucket, srv, users := dep.DB, dep.S3, dep.Bucket, dep.Pinecone, dep.Clones

	// The application: the SDK on the migrated stores, as the application role.
	vd, err := pineconevector.NewDriver(srv.Host(), emb.Dimension(), nil)
	if err != nil {
		t.Fatal(err)
	}
	od, err := s3object.OpenDriver(ctx, s3env.Config(), bucket, &s3object.Options{Endpoint: s3env.Endpoint, UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	stack, err := cloneiso.New(ctx, db.App.DB, emb, gen, &cloneiso.Options{Vectors: vd, Objects: od})
	if err != nil {
		t.Fatalf("cloneiso.New on the migrated database: %v", err)
	}
	defer stack.Close()
	// Signing in with a legacy user's subject finds the migrated clone.
	ccs := map[string]clone.CloneContext{}
	for _, u := range []string{"u001", "u002"} {
		cc, created, err := stack.Tenants().ProvisionSolo(ctx, u)
		if err != nil || created || cc.CloneID() != users[u].CloneID() || cc.TenantID() != users[u].TenantID() {
			t.Fatalf("sign-in of %s: clone %v (created %v, %v); want the migrated %v", u, cc.CloneID(), created, err, users[u].CloneID())
		}
		ccs[u] = cc
	}

	// The migrated data is the owner's: the document and its original are in u001's clone.
	d, err := records.GetDocument(ctx, stack.DB(), ccs["u001"], falconDoc)
	if err != nil || d.Title != "Ziggy the falcon" {
		t.Fatalf("u001's migrated document: %+v, %v", d, err)
	}
	if b, err := legacye2e.ReadOriginal(ctx, stack, ccs["u001"], d); err != nil || string(b) != legacye2e.FalconText {
		t.Fatalf("u001's migrated original: %q, %v", b, err)
	}

	// As migrated, the clone's vectors are the legacy ones: not the SDK's chunk vectors,
	// so nothing is retrieved.
	r, err := stack.Retriever().Retrieve(ctx, ccs["u001"], question, nil)
	if err != nil || len(r.Passages) != 0 {
		t.Fatalf("retrieval from legacy vectors: %+v, %v; want no passage", r, err)
	}

	// The documented step: re-ingest each clone's migrated documents from their originals.
	for _, u := range []string{"u001", "u002"} {
		rep, err := stack.Pipeline().IngestMigrated(ctx, ccs[u])
		if err != nil || rep.Err() != nil || rep.Ingested != 1 {
			t.Fatalf("re-ingesting the documents of %s: %+v, %v", u, rep, err)
		}
		if rep, err := stack.Pipeline().IngestMigrated(ctx, ccs[u]); err != nil || rep.Err() != nil || rep.Ingested != 0 {
			t.Fatalf("re-ingesting the documents of %s again: %+v, %v; want nothing to do", u, rep, err)
		}
	}
	d, err = records.GetDocument(ctx, stack.DB(), ccs["u001"], falconDoc)
	var meta struct {
		Folder string `json:"folder"`
	}
	if err == nil {
		err = json.Unmarshal(d.Metadata, &meta)
	}
	if err != nil || d.Title != "Ziggy the falcon" || d.Status != records.StatusReady || meta.Folder != "birds" || ingest.EmbeddingModel(d) != emb.Model() {
		t.Fatalf("u001's document after the re-ingestion: %+v, %v", d, err)
	}

	// u001's clone answers from u001's document and cites it.
	r, err = stack.Retriever().Retrieve(ctx, ccs["u001"], question, nil)
	if err != nil || len(r.Passages) == 0 || r.Passages[0].DocumentID != falconDoc || !strings.Contains(r.Passages[0].Text, "north tower") {
		t.Fatalf("u001's retrieval: %+v, %v", r, err)
	}
	resp, err := stack.Processor().Process(ctx, ccs["u001"], &rag.Request{Question: question, Subject: "u001"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Answer.Content, "Ziggy") || !cites(resp, falconDoc) {
		t.Fatalf("u001's answer %q cites %+v; want the falcon document", resp.Answer.Content, resp.Citations)
	}

	// u002's clone, asked the same, never reaches u001's document.
	r, err = stack.Retriever().Retrieve(ctx, ccs["u002"], question, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range r.Passages {
		if p.DocumentID != gardenDoc || strings.Contains(p.Text, "Ziggy") {
			t.Fatalf("u002's retrieval returned %+v", p)
		}
	}
	resp, err = stack.Processor().Process(ctx, ccs["u002"], &rag.Request{Question: question, Subject: "u002"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(resp.Answer.Content, "Ziggy") || strings.Contains(resp.Answer.Content, "falcon") || cites(resp, falconDoc) {
		t.Fatalf("u002's answer %q cites %+v: u001's document reached u002's clone", resp.Answer.Content, resp.Citations)
	}
	if _, err := records.GetDocument(ctx, stack.DB(), ccs["u002"], falconDoc); !errors.Is(err, clone.ErrNotFound) {
		t.Fatalf("u002 reading u001's document: %v; want not found", err)
	}
}

func cites(resp *rag.Response, doc uuid.UUID) bool {
	return slices.ContainsFunc(resp.Citations, func(c rag.Citation) bool { return c.DocumentID == doc })
}
