package rag_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"codeberg.org/go-pdf/fpdf"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/rag"
)

// handbookPDF writes a three-page PDF whose pages are the same for every clone but for
// the clone's canaries.
func handbookPDF(t *testing.T, side string) []byte {
	t.Helper()
	p := fpdf.New("P", "mm", "A4", "")
	p.SetFont("Helvetica", "", 12)
	for _, text := range []string{
		"Welcome to the handbook. It explains how the studio works.",
		fmt.Sprintf("The vault combination of the studio is %s. Keep it safe.", canary(side, 50)),
		fmt.Sprintf("The launch code of project Zephyr is %s, stored offline.", canary(side, 51)),
	} {
		p.AddPage()
		p.MultiCell(0, 6, text, "", "L", false)
	}
	var buf bytes.Buffer
	if err := p.Output(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestPDFCitationIsolation: two clones ingest PDFs with the same title and the same
// page texts (but their own canaries) through the real pipeline on the embedded
// stores (SQLite, memvector, fileobject). Each clone answers from its own PDF, citing
// the right page ("[1, p. 3]"), and never sees, cites or reaches the other's.
func TestPDFCitationIsolation(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	bucket, err := fileobject.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	pipe, err := ingest.New(e.db, e.index, bucket, e.emb, nil)
	if err != nil {
		t.Fatal(err)
	}
	ccs := map[string]clone.CloneContext{"A": e.newClone(t), "B": e.newClone(t)}
	docs := map[string]records.Document{}
	for side, cc := range ccs {
		// No content type: detected from the bytes.
		res, err := pipe.Ingest(ctx, cc, ingest.Source{Title: "Handbook", SourceName: "handbook.pdf", Data: handbookPDF(t, side)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Document.ContentType != "application/pdf" {
			t.Fatalf("%s: %+v", side, res)
		}
		// One chunk per page, each recording its page.
		chunks, err := records.ListDocumentChunks(ctx, e.db, cc, res.Document.ID, nil)
		if err != nil || len(chunks.Items) != 3 {
			t.Fatalf("%s: %d chunks, %v", side, len(chunks.Items), err)
		}
		for i, c := range chunks.Items {
			if want := fmt.Sprintf(`{"page":%d}`, i+1); string(c.Metadata) != want {
				t.Errorf("%s chunk %d metadata %s, want %s", side, i, c.Metadata, want)
			}
		}
		docs[side] = res.Document
	}
	gen := &recorder{Generator: extractive(t)}
	p, err := rag.NewProcessor(e.db, e.ret, gen, nil)
	if err != nil {
		t.Fatal(err)
	}
	for side, cc := range ccs {
		other := map[string]string{"A": "B", "B": "A"}[side]
		gen.reqs = nil
		for _, q := range []struct {
			question string
			canary   string
			page     int
		}{
			{"What is the launch code of project Zephyr?", canary(side, 51), 3},
			{"What is the vault combination of the studio?", canary(side, 50), 2},
		} {
			resp, err := p.Process(ctx, cc, &rag.Request{Question: q.question}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// The owner's data is there: its canary, cited with its page.
			ans := resp.Answer.Content
			if !strings.Contains(ans, q.canary) || !strings.Contains(ans, fmt.Sprintf(", p. %d]", q.page)) {
				t.Errorf("%s %q: answer %q lacks %s cited on page %d", side, q.question, ans, q.canary, q.page)
			}
			stored, err := records.GetMessage(ctx, e.db, cc, resp.Answer.ID)
			if err != nil {
				t.Fatal(err)
			}
			var cites []rag.Citation
			if err := json.Unmarshal(stored.Citations, &cites); err != nil || len(cites) == 0 {
				t.Fatalf("stored citations %s: %v", stored.Citations, err)
			}
			if cites[0].DocumentID != docs[side].ID || cites[0].Page != q.page || cites[0].Title != "Handbook" {
				t.Errorf("%s %q: first citation %+v, want page %d of %s", side, q.question, cites[0], q.page, docs[side].ID)
			}
			for _, c := range cites {
				if c.DocumentID != docs[side].ID {
					t.Fatalf("clone %s cited clone %s's document: %+v", side, other, c)
				}
			}
			for _, s := range []string{ans, string(stored.Citations), resp.Prompt.Text()} {
				if strings.Contains(s, "CANARY-"+other) {
					t.Fatalf("clone %s saw clone %s's data: %q", side, other, s)
				}
			}
		}
		if strings.Contains(gen.seen(), "CANARY-"+other) {
			t.Fatalf("generator of clone %s received clone %s's data", side, other)
		}
		// The other clone's document, chunks and original are out of reach by ID.
		if _, err := records.GetDocument(ctx, e.db, cc, docs[other].ID); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("clone %s read clone %s's document: %v", side, other, err)
		}
		name := ingest.ObjectName(docs[other].ID, ingest.DocumentVersion(docs[other]))
		if _, err := bucket.ReadAll(ctx, cc, ingest.ObjectKind, name); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("clone %s read clone %s's PDF: %v", side, other, err)
		}
		if _, err := bucket.ReadAll(ctx, ccs[other], ingest.ObjectKind, name); err != nil {
			t.Errorf("clone %s's own PDF: %v", other, err)
		}
	}
}
