package rag_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/rag"
)

// TestEmbeddingModelMismatch: a retriever whose embedder is not the model a document
// was ingested with (same dimension, so nothing else notices) refuses to answer from it
// with a typed error, from Retrieve and from Process, instead of ranking incomparable
// vectors; with the documents' own model it answers. A document that records no model
// (chunks written by the host) is not refused.
func TestEmbeddingModelMismatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		doc := ingestDoc(t, e, cc, "Office", "Our office dog is called Biscuit.", "The kitchen closes at six.")
		if got := ingest.EmbeddingModel(doc); got != e.emb.Model() {
			t.Fatalf("the document records model %q, want %q", got, e.emb.Model())
		}
		const question = "What is the office dog called?"

		// The owner, with the documents' model, gets the passage.
		res, err := e.ret.Retrieve(ctx, cc, question, nil)
		if err != nil || len(res.Passages) == 0 || res.Passages[0].DocumentID != doc.ID {
			t.Fatalf("same model: %+v, %v", res, err)
		}

		// Another model of the same dimension.
		other, err := embed.NewLocal(&embed.LocalOptions{Dimension: e.emb.Dimension(), NGram: 3})
		if err != nil {
			t.Fatal(err)
		}
		if other.Model() == e.emb.Model() || other.Dimension() != e.index.Dimension() {
			t.Fatalf("the other embedder is %q/%d", other.Model(), other.Dimension())
		}
		ret, err := rag.NewRetriever(e.db, e.index, other, nil)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, err error) {
			t.Helper()
			var me *rag.EmbeddingModelError
			if !errors.Is(err, clone.ErrInternal) || !errors.As(err, &me) {
				t.Fatalf("%s with another model: %v, want an EmbeddingModelError of kind internal", what, err)
			}
			if me.DocumentID != doc.ID || me.DocumentModel != e.emb.Model() || me.QueryModel != other.Model() {
				t.Fatalf("%s: %+v", what, me)
			}
		}
		res, err = ret.Retrieve(ctx, cc, question, nil)
		check("Retrieve", err)
		if res != nil {
			t.Fatalf("passages returned with the error: %+v", res)
		}
		proc, err := rag.NewProcessor(e.db, ret, extractive(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = proc.Process(ctx, cc, &rag.Request{Subject: "owner", Question: question}, nil)
		check("Process", err)

		// A clone whose only document records no model is answered by any model.
		plain := e.newClone(t)
		seeded := seedDoc(t, e, plain, "Plain", "Our office dog is called Rex.")
		if got := ingest.EmbeddingModel(seeded); got != "" {
			t.Fatalf("seeded document records model %q", got)
		}
		res, err = ret.Retrieve(ctx, plain, question, nil)
		if err != nil || len(res.Passages) == 0 || res.Passages[0].DocumentID != seeded.ID {
			t.Fatalf("no recorded model: %+v, %v", res, err)
		}
	})
}
