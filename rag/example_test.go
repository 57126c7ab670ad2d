package rag_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// Two clones on the embedded backends (SQLite, the in-process vector index, the local
// embedder and the extractive generator) answer the same question from their own
// documents only, streaming the answer and storing the conversation.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rag-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	sqlDB, err := sqlitedb.Open(filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer sqlDB.Close()
	if err := migrate.Up(ctx, sqlDB, nil); err != nil {
		panic(err)
	}
	db, _ := clonesql.New(sqlDB, nil)
	tenants, _ := tenant.NewStore(sqlDB, nil)
	emb, _ := embed.NewLocal(nil)
	index, _ := memvector.Open(emb.Dimension(), nil)
	defer index.Close()
	pipe, _ := ingest.New(db, index, nil, emb, nil)

	// Each solopreneur gets a clone and teaches it about themselves.
	alice, _, _ := tenants.ProvisionSolo(ctx, "alice")
	bob, _, _ := tenants.ProvisionSolo(ctx, "bob")
	if _, err := pipe.Ingest(ctx, alice, ingest.Source{Title: "About Alice", SourceName: "about.txt",
		Data: []byte("I was born in Lisbon. I teach piano on weekends.")}); err != nil {
		panic(err)
	}
	if _, err := pipe.Ingest(ctx, bob, ingest.Source{Title: "About Bob", SourceName: "about.txt",
		Data: []byte("I was born in Oslo. I repair old bicycles.")}); err != nil {
		panic(err)
	}

	retriever, _ := rag.NewRetriever(db, index, emb, nil)
	gen, _ := generate.NewExtractive(nil)
	processor, _ := rag.NewProcessor(db, retriever, gen, nil)

	ask := func(name string, resp *rag.Response, streamed string) {
		fmt.Printf("%s: %s\n", name, streamed)
		for _, c := range resp.Citations {
			fmt.Printf("  %s %s, chunk %d, bytes %d-%d\n", c.Marker, c.Title, c.Ordinal, c.StartOffset, c.EndOffset)
		}
	}
	var streamed string
	resp, err := processor.Process(ctx, alice, &rag.Request{Question: "Where were you born?"}, func(delta string) error {
		streamed += delta // e.g. write to the client as it arrives
		return nil
	})
	if err != nil {
		panic(err)
	}
	ask("alice", resp, streamed)

	// The iterator form, e.g. for rag.WriteSSE in an HTTP handler.
	streamed = ""
	for ev, err := range processor.Stream(ctx, bob, &rag.Request{Question: "Where were you born?"}) {
		if err != nil {
			panic(err)
		}
		if ev.Response != nil {
			ask("bob", ev.Response, streamed)
		}
		streamed += ev.Delta
	}
	// Output:
	// alice: I was born in Lisbon. [1]
	//   [1] About Alice, chunk 0, bytes 0-48
	// bob: I was born in Oslo. [1]
	//   [1] About Bob, chunk 0, bytes 0-42
}
