package rag_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/vectorstore"
)

func TestRetrieve(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		doc := seedDoc(t, e, cc, "Birds", "Puffins nest on cliffs in the north.", "Herons wait in shallow water for fish.", "The weather is mild.")
		res, err := e.ret.Retrieve(ctx, cc, "Where do puffins nest?", &rag.RetrieveOptions{TopK: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Passages) != 2 {
			t.Fatalf("%d passages", len(res.Passages))
		}
		p := res.Passages[0]
		if p.DocumentID != doc.ID || p.Ordinal != 0 || p.Title != "Birds" || !strings.Contains(p.Text, "Puffins") ||
			p.TenantID != cc.TenantID() || p.CloneID != cc.CloneID() || p.EndOffset <= p.StartOffset || p.Score <= res.Passages[1].Score {
			t.Fatalf("passage %+v", p)
		}
		c := p.Citation()
		if c.DocumentID != doc.ID || c.Title != "Birds" || c.Ordinal != 0 || c.EndOffset != p.EndOffset {
			t.Fatalf("citation %+v", c)
		}

		// A score threshold drops weak matches.
		res, err = e.ret.Retrieve(ctx, cc, "Where do puffins nest?", &rag.RetrieveOptions{TopK: 3, MinScore: p.Score - 0.0001})
		if err != nil || len(res.Passages) != 1 {
			t.Fatalf("threshold: %v, %d passages", err, len(res.Passages))
		}
		// A metadata filter is AND-ed with the clone scope.
		res, err = e.ret.Retrieve(ctx, cc, "puffins", &rag.RetrieveOptions{Filter: map[string]any{"document_id": "nope"}})
		if err != nil || len(res.Passages) != 0 {
			t.Fatalf("filter: %v, %d", err, len(res.Passages))
		}

		// Vectors without a chunk (stale after re-ingestion) and foreign-format IDs are skipped.
		vecs, _ := e.emb.Embed(ctx, []string{"puffins puffins nest", "puffins nest cliffs"})
		if err := e.index.Upsert(ctx, cc, []vectorstore.Vector{
			{ID: ingest.VectorID(doc.ID, "0123456789abcdef", 0), Values: vecs[0]},
			{ID: ingest.VectorID(doc.ID, ingest.Version(doc.ContentHash), 77), Values: vecs[0]},
			{ID: "host-vector-1", Values: vecs[1]},
		}); err != nil {
			t.Fatal(err)
		}
		res, err = e.ret.Retrieve(ctx, cc, "Where do puffins nest?", &rag.RetrieveOptions{TopK: 3})
		if err != nil || len(res.Passages) != 3 {
			t.Fatalf("stale: %v, %d", err, len(res.Passages))
		}
		for _, p := range res.Passages {
			if p.Ordinal == 77 || !strings.Contains(p.VectorID, ingest.Version(doc.ContentHash)) {
				t.Fatalf("stale vector became a passage: %+v", p)
			}
		}

		// Another clone with the same words finds nothing of the first.
		other := e.newClone(t)
		res, err = e.ret.Retrieve(ctx, other, "Where do puffins nest?", nil)
		if err != nil || len(res.Passages) != 0 {
			t.Fatalf("other clone: %v, %d passages", err, len(res.Passages))
		}
	})
}

// TestRetrieveMMR: near-duplicate passages crowd the plain top-k; MMR brings in a
// different source.
func TestRetrieveMMR(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	cc := e.newClone(t)
	dup := "Solar panels on the roof produce power for the house on sunny days."
	seedDoc(t, e, cc, "Copies", dup, dup+" Really.", dup+" Indeed.", dup+" Truly.")
	seedDoc(t, e, cc, "Other", "Solar power also charges the car battery overnight from storage.")
	q := "solar panels power house"
	plain, err := e.ret.Retrieve(ctx, cc, q, &rag.RetrieveOptions{TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Passages[0].Title != "Copies" || plain.Passages[1].Title != "Copies" {
		t.Fatalf("plain: %s, %s", plain.Passages[0].Title, plain.Passages[1].Title)
	}
	div, err := e.ret.Retrieve(ctx, cc, q, &rag.RetrieveOptions{TopK: 2, MMR: true, MMRLambda: 0.3})
	if err != nil {
		t.Fatal(err)
	}
	if div.Passages[0].VectorID != plain.Passages[0].VectorID || div.Passages[1].Title != "Other" {
		t.Fatalf("mmr: %s, %s", div.Passages[0].Title, div.Passages[1].Title)
	}
}

func TestRetrieveValidation(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	cc := e.newClone(t)
	for name, c := range map[string]struct {
		cc   clone.CloneContext
		q    string
		o    *rag.RetrieveOptions
		kind error
	}{
		"no clone":        {clone.CloneContext{}, "q", nil, clone.ErrNoCloneContext},
		"empty":           {cc, "", nil, clone.ErrInvalidInput},
		"oversized":       {cc, strings.Repeat("x", rag.MaxQuestionBytes+1), nil, clone.ErrTooLarge},
		"top-k negative":  {cc, "q", &rag.RetrieveOptions{TopK: -1}, clone.ErrInvalidInput},
		"top-k too large": {cc, "q", &rag.RetrieveOptions{TopK: rag.MaxTopK + 1}, clone.ErrInvalidInput},
		"min score":       {cc, "q", &rag.RetrieveOptions{MinScore: 1.5}, clone.ErrInvalidInput},
		"lambda":          {cc, "q", &rag.RetrieveOptions{MMR: true, MMRLambda: 2}, clone.ErrInvalidInput},
		"candidates":      {cc, "q", &rag.RetrieveOptions{TopK: 10, MMR: true, Candidates: 5}, clone.ErrInvalidInput},
		"candidates max":  {cc, "q", &rag.RetrieveOptions{MMR: true, Candidates: rag.MaxCandidates + 1}, clone.ErrInvalidInput},
		"bad filter":      {cc, "q", &rag.RetrieveOptions{Filter: map[string]any{"$bogus": 1}}, clone.ErrInvalidInput},
		"foreign filter":  {cc, "q", &rag.RetrieveOptions{Filter: map[string]any{"clone_id": clone.NewID().String()}}, clone.ErrCloneMismatch},
	} {
		if _, err := e.ret.Retrieve(ctx, c.cc, c.q, c.o); !errors.Is(err, c.kind) {
			t.Errorf("%s: %v, want %v", name, err, c.kind)
		}
	}
	if _, err := rag.NewRetriever(e.db, e.index, nil, nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Error(err)
	}
}

// TestRetrieveDeletedDocument: a document deleted in SQL whose vectors remain yields no
// passages (SQL is the source of truth for what a clone may cite).
func TestRetrieveDeletedDocument(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	cc := e.newClone(t)
	d := seedDoc(t, e, cc, "Gone", "Zebras have stripes.")
	if err := records.DeleteDocument(ctx, e.db, cc, d.ID); err != nil {
		t.Fatal(err)
	}
	res, err := e.ret.Retrieve(ctx, cc, "zebras stripes", nil)
	if err != nil || len(res.Passages) != 0 {
		t.Fatalf("%v %d", err, len(res.Passages))
	}
}

// TestRetrieveAfterUpdate: a document re-ingested with new content is answered from the
// new version only.
func TestRetrieveAfterUpdate(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	cc := e.newClone(t)
	d := ingestDoc(t, e, cc, "Hours", "The shop opens at OLDHOUR-0800 every weekday.")
	if _, err := e.pipe.Ingest(ctx, cc, ingest.Source{DocumentID: d.ID, Title: "Hours", SourceName: "Hours.txt", ContentType: "text/plain",
		Data: []byte("The shop opens at NEWHOUR-0930 every weekday.")}); err != nil {
		t.Fatal(err)
	}
	res, err := e.ret.Retrieve(ctx, cc, "When does the shop open?", &rag.RetrieveOptions{TopK: 10})
	if err != nil || len(res.Passages) != 1 {
		t.Fatalf("%v, %d passages", err, len(res.Passages))
	}
	if !strings.Contains(res.Passages[0].Text, "NEWHOUR") {
		t.Fatalf("passage %q", res.Passages[0].Text)
	}
}
