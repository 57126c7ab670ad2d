package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// Ingest a document on the embedded backends (SQLite, the in-process vector index,
// the filesystem), ingest it again (a no-op), retrieve a passage, and delete it.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ingest-example")
	defer os.RemoveAll(dir)

	sqldb, _ := sqlitedb.Open(filepath.Join(dir, "cloneiso.db"))
	defer sqldb.Close()
	if err := migrate.Up(ctx, sqldb, nil); err != nil {
		panic(err)
	}
	db, _ := clonesql.New(sqldb, nil)
	tenants, _ := tenant.NewStore(sqldb, nil)
	cc, _, _ := tenants.ProvisionSolo(ctx, "alice")

	vectors, _ := memvector.Open(384, nil)
	defer vectors.Close()
	objects, _ := fileobject.OpenBucket(filepath.Join(dir, "objects"), nil)
	defer objects.Close()

	emb, err := embed.NewLocal(&embed.LocalOptions{Dimension: vectors.Dimension()}) // the embedded embedder; retrieve with the same one
	if err != nil {
		panic(err)
	}
	p, err := ingest.New(db, vectors, objects, emb, &ingest.Options{Chunking: &chunk.Options{TargetTokens: 32}})
	if err != nil {
		panic(err)
	}
	faq := "# Refunds\n\nWe refund any order within 30 days, no questions asked.\n\n" +
		"# Shipping\n\nOrders ship within two business days from our warehouse in Lyon."
	r, err := p.Ingest(ctx, cc, ingest.Source{Title: "FAQ", SourceName: "faq.md", Data: []byte(faq)})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Outcome, r.Document.Status, r.Document.ChunkCount, "chunks")

	again, _ := p.Ingest(ctx, cc, ingest.Source{SourceName: "faq.md", Data: []byte(faq)})
	fmt.Println(again.Outcome)

	// Retrieve: embed the question, query the clone's vectors, resolve the passages.
	q, _ := emb.Embed(ctx, []string{"how many days to refund an order"})
	matches, _ := vectors.Query(ctx, cc, vectorstore.Query{Vector: q[0], TopK: 1})
	passages, _ := ingest.Resolve(ctx, db, cc, matches)
	fmt.Printf("%q at [%d,%d)\n", passages[0].Content, passages[0].StartOffset, passages[0].EndOffset)

	if err := p.Delete(ctx, cc, r.Document.ID); err != nil {
		panic(err)
	}
	stats, _ := vectors.Stats(ctx, cc)
	fmt.Println("vectors left:", stats.VectorCount)
	// Output:
	// created ready 2 chunks
	// unchanged
	// "# Refunds\n\nWe refund any order within 30 days, no questions asked." at [0,66)
	// vectors left: 0
}
