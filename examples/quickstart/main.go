// Command quickstart shows cloneiso's promise on its embedded defaults (no server
// needed): two people sign in for the first time and each gets a clone; each clone
// learns from its own document, a two-page PDF the example writes; both are asked the
// same question, and each answers only from its own data, citing the page ("[1, p. 2]").
// It also shows that a request carrying one clone's context is refused when it names
// the other clone.
//
// PDF text is extracted by PDFium compiled to WebAssembly (package ingest/extract):
// the module is compiled on the first PDF, which takes a few seconds.
//
//	go run ./examples/quickstart
//
// Everything lives in a temporary directory: a SQLite database, the original documents
// on disk and the embedded vector index, wired by cloneiso.New. Swap in PostgreSQL, S3
// and Pinecone by opening PostgreSQL instead of SQLite and passing the S3 and Pinecone
// drivers in cloneiso.Options (see examples/hostapp).
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"codeberg.org/go-pdf/fpdf"

	"github.com/cloneiso/cloneiso"
	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
)

func main() {
	if err := run(context.Background(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// person is someone who signs up, with the pages of the PDF their clone learns from
// and a phrase that only their document contains.
type person struct {
	subject string
	pages   []string
	marker  string
}

// people upload the same kind of facts with different answers, on page 2.
var people = []person{
	{"alice@example.com", []string{"Alice's bakery. We bake everything on site, every morning.",
		"Alice's bakery opens at 7 am, and its best seller is the cardamom bun."}, "cardamom bun"},
	{"bob@example.com", []string{"Bob's bike shop. We build and repair bikes by hand.",
		"Bob's bike shop opens at 10 am, and its best seller is the steel touring frame."}, "touring frame"},
}

// writePDF returns a PDF with one page per text.
func writePDF(pages []string) ([]byte, error) {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetFont("Helvetica", "", 14)
	for _, text := range pages {
		pdf.AddPage()
		pdf.MultiCell(0, 8, text, "", "L", false)
	}
	var buf bytes.Buffer
	err := pdf.Output(&buf)
	return buf.Bytes(), err
}

// question is asked of both clones.
const question = "When do you open, and what is your best seller?"

func run(ctx context.Context, out io.Writer) error {
	dir, err := os.MkdirTemp("", "cloneiso-quickstart-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// The database (SQLite), migrated; then the whole SDK in one call, on its embedded
	// defaults: the vector index and the object store in dir, the local embedder and
	// the extractive generator.
	db, err := sqlitedb.Open(filepath.Join(dir, "cloneiso.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := migrate.Up(ctx, db, nil); err != nil {
		return err
	}
	emb, err := embed.NewLocal(nil)
	if err != nil {
		return err
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		return err
	}
	sdk, err := cloneiso.New(ctx, db, emb, gen, &cloneiso.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer sdk.Close()
	tenants, pipeline, processor := sdk.Tenants(), sdk.Pipeline(), sdk.Processor()

	// First sign-in of two solopreneurs: each gets a tenant and a clone, and the clone
	// learns from its owner's document.
	clones := make([]clone.CloneContext, len(people))
	for i, p := range people {
		cc, created, err := tenants.ProvisionSolo(ctx, p.subject)
		if err != nil {
			return err
		}
		clones[i] = cc
		fmt.Fprintf(out, "%s signed up (new: %v): %s\n", p.subject, created, cc)
		doc, err := writePDF(p.pages)
		if err != nil {
			return err
		}
		// The content type is detected from the bytes (application/pdf).
		res, err := pipeline.Ingest(ctx, cc, ingest.Source{Title: "About my business", SourceName: "about.pdf", Data: doc})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  ingested %q (%s): %d chunk(s), %s\n", res.Document.Title, res.Document.ContentType, res.Document.ChunkCount, res.Document.Status)
	}
	alice, bob := clones[0], clones[1]

	// Signing in again returns the same clone.
	again, created, err := tenants.ProvisionSolo(ctx, people[0].subject)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "alice signed in again (new: %v), same clone: %v\n", created, again.Same(alice))

	// The same question to both clones: each answers from its own document only.
	fmt.Fprintf(out, "\nQ: %s\n", question)
	for i, p := range people {
		resp, err := processor.Process(ctx, clones[i], &rag.Request{Subject: p.subject, Question: question}, nil)
		if err != nil {
			return err
		}
		answer := resp.Answer.Content
		fmt.Fprintf(out, "%s's clone: %s\n", p.subject, answer)
		if !strings.Contains(answer, p.marker) || !strings.Contains(answer, ", p. 2]") {
			return fmt.Errorf("%s's clone did not answer from page 2 of its own document", p.subject)
		}
		for _, other := range people {
			if other.subject != p.subject && strings.Contains(answer, other.marker) {
				return fmt.Errorf("isolation failure: %s's clone answered from %s's document", p.subject, other.subject)
			}
		}
	}

	// A request authenticated as alice that names bob's clone is refused.
	reqCtx := clone.WithContext(ctx, alice)
	cc, err := clone.FromContext(reqCtx)
	if err != nil {
		return err
	}
	err = cc.CheckStrings(bob.TenantID().String(), bob.CloneID().String())
	fmt.Fprintf(out, "\nalice asking for bob's clone: %v (HTTP %d)\n", err, clone.HTTPStatus(err))
	if err == nil {
		return fmt.Errorf("isolation failure: alice reached bob's clone")
	}
	return nil
}
