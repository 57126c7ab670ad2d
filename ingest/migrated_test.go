package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/objectstore"
)

// TestIngestMigrated: a document written by another system (as migrate/legacy leaves
// it: a row with an object key, its original in the clone, no vectors of the
// pipeline's) answers nothing until IngestMigrated ingests it from its original,
// keeping its ID, title and metadata; then it answers, and a second call does
// nothing. Another clone's row naming the first clone's original is refused without
// reading it, and that clone never answers from it.
func TestIngestMigrated(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := e.pipeline(t, &ingest.Options{Chunking: small})
		a, b := e.newClone(t), e.newClone(t)
		const question = "falcon migration routes"
		original := doc(question, 4)
		if _, err := e.objects.Put(ctx, a, "docs", "report.md", strings.NewReader(original), nil); err != nil {
			t.Fatal(err)
		}
		prefixA, err := objectstore.Prefix(a)
		if err != nil {
			t.Fatal(err)
		}
		migrated := func(cc clone.CloneContext, key string) records.Document {
			d, err := records.CreateDocument(ctx, e.db, cc, records.Document{Title: "Falcons", SourceName: "report.md",
				ContentType: "text/markdown", ObjectKey: key, Status: records.StatusReady, Metadata: json.RawMessage(`{"legacy_id":7}`)})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		da := migrated(a, prefixA+"docs/report.md")
		foreign := migrated(b, prefixA+"docs/report.md") // b's row naming a's original
		keyless := migrated(b, "")
		// A hosts' own document of b, ingested by the pipeline, is left as it is.
		own := mustIngest(t, p, b, ingest.Source{SourceName: "own.md", Data: []byte(doc("gardening", 3))})

		if got := answer(t, e, a, question); got == da.ID.String() {
			t.Fatal("the migrated document answers before it is ingested: the test shows nothing")
		}
		rep, err := p.IngestMigrated(ctx, a)
		if err != nil || rep.Ingested != 1 || len(rep.Failed) != 0 {
			t.Fatalf("IngestMigrated(a) = %+v, %v; want 1 ingested", rep, err)
		}
		if got := answer(t, e, a, question); got != da.ID.String() {
			t.Fatalf("after IngestMigrated, answered from %q, want %s", got, da.ID)
		}
		got, err := records.GetDocument(ctx, e.db, a, da.ID)
		if err != nil {
			t.Fatal(err)
		}
		var meta map[string]any
		json.Unmarshal(got.Metadata, &meta)
		if got.Status != records.StatusReady || got.Title != "Falcons" || ingest.EmbeddingModel(got) == "" || meta["legacy_id"] != float64(7) {
			t.Fatalf("ingested document: %+v", got)
		}
		checkConsistent(t, e, a)
		if rep, err := p.IngestMigrated(ctx, a); err != nil || rep.Ingested != 0 || len(rep.Failed) != 0 {
			t.Fatalf("second IngestMigrated(a) = %+v, %v; want nothing to do", rep, err)
		}

		rep, err = p.IngestMigrated(ctx, b)
		if err != nil || rep.Ingested != 0 || len(rep.Failed) != 1 || !errors.Is(rep.Failed[foreign.ID.String()], clone.ErrNotFound) {
			t.Fatalf("IngestMigrated(b) = %+v, %v; want the foreign key refused as not found", rep, err)
		}
		if !errors.Is(rep.Err(), clone.ErrNotFound) {
			t.Fatalf("report error %v", rep.Err())
		}
		if got := answer(t, e, b, question); got == da.ID.String() || got == foreign.ID.String() {
			t.Fatalf("b answered from %s", got)
		}
		for _, d := range []records.Document{foreign, keyless} {
			got, err := records.GetDocument(ctx, e.db, b, d.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.ChunkCount != 0 || ingest.EmbeddingModel(got) != "" {
				t.Fatalf("b's document %s was ingested: %+v", d.ID, got)
			}
		}
		if got, err := records.GetDocument(ctx, e.db, b, own.Document.ID); err != nil || got.UpdatedAt != own.Document.UpdatedAt {
			t.Fatalf("b's own document changed: %+v, %v", got, err)
		}

		// A key that climbs out of b's prefix into a's original is refused by name
		// (nothing read, b ingests nothing), and no clone at all is refused outright.
		prefixB, err := objectstore.Prefix(b)
		if err != nil {
			t.Fatal(err)
		}
		climb := migrated(b, prefixB+"docs/../../../"+strings.TrimPrefix(prefixA, "tenants/")+"docs/report.md")
		rep, err = p.IngestMigrated(ctx, b)
		if err != nil || rep.Ingested != 0 || rep.Failed[climb.ID.String()] == nil || !errors.Is(rep.Failed[climb.ID.String()], clone.ErrInvalidInput) {
			t.Fatalf("IngestMigrated(b) with a traversing key = %+v, %v; want it refused as invalid input", rep, err)
		}
		if got := answer(t, e, b, question); got == da.ID.String() || got == climb.ID.String() {
			t.Fatalf("b answered from %s through a traversing key", got)
		}
		if _, err := p.IngestMigrated(ctx, clone.CloneContext{}); !errors.Is(err, clone.ErrNoCloneContext) {
			t.Fatalf("IngestMigrated without a clone: %v, want ErrNoCloneContext", err)
		}
	})
}
