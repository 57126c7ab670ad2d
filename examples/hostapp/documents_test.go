package main

import (
	"archive/zip"
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"

	"codeberg.org/go-pdf/fpdf"
)

// testPDF returns a PDF with one page per text, encrypted with userPass if not "".
func testPDF(t *testing.T, userPass string, pages ...string) []byte {
	t.Helper()
	p := fpdf.New("P", "mm", "A4", "")
	if userPass != "" {
		p.SetProtection(0, userPass, "owner")
	}
	p.SetFont("Helvetica", "", 12)
	for _, text := range pages {
		p.AddPage()
		p.MultiCell(0, 6, text, "", "L", false)
	}
	var b bytes.Buffer
	if err := p.Output(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// testDOCX returns a Word document with a heading and a paragraph.
func testDOCX(t *testing.T, heading, text string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("word/document.xml")
	io.WriteString(w, `<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>`+
		`<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>`+heading+`</w:t></w:r></w:p>`+
		`<w:p><w:r><w:t>`+text+`</w:t></w:r></w:p></w:body></w:document>`)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// multipartFile is a multipart/form-data body with a file part of the given name and
// content type.
func multipartFile(name, contentType string, data []byte) (io.Reader, http.Header) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+name+`"`)
	h.Set("Content-Type", contentType)
	f, _ := w.CreatePart(h)
	f.Write(data)
	w.Close()
	return &b, http.Header{"Content-Type": {w.FormDataContentType()}}
}

// TestUploadPDFAndDOCX: the app takes PDF and Word uploads as browsers send them (and
// as application/octet-stream, detected by content), answers from them citing the
// PDF's page, and refuses a file whose declared type contradicts its content (400)
// and an encrypted PDF (415).
func TestUploadPDFAndDOCX(t *testing.T) {
	app := newTestAppWith(t, false, nil)
	c := client{app}
	ctx := t.Context()
	a, err := c.newActor(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	pdf := testPDF(t, "", "Welcome to the studio handbook.", "The studio cat is called Pixel.")
	for _, up := range []struct {
		name, ct string
		data     []byte
		status   int
	}{
		{"handbook.pdf", "application/pdf", pdf, http.StatusCreated},
		{"plan.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", testDOCX(t, "Plan", "The studio plant is called Fern."), http.StatusCreated},
		{"other.docx", "application/octet-stream", testDOCX(t, "Other", "The studio bike is called Comet."), http.StatusCreated},
		{"fake.pdf", "application/pdf", []byte("not a PDF at all"), http.StatusBadRequest},
		{"notes.txt", "text/plain", pdf, http.StatusBadRequest},
		{"locked.pdf", "application/pdf", testPDF(t, "secret", "Locked page."), http.StatusUnsupportedMediaType},
	} {
		body, hdr := multipartFile(up.name, up.ct, up.data)
		if status, text := c.do(ctx, a, http.MethodPost, "/v1/documents", body, hdr); status != up.status {
			t.Errorf("%s as %s: %d %s, want %d", up.name, up.ct, status, text, up.status)
		}
	}
	for q, want := range map[string]string{
		"What is the studio cat called?":   "Pixel. [1, p. 2]",
		"What is the studio plant called?": "Fern. [1]",
		"What is the studio bike called?":  "Comet. [1]",
	} {
		stream, _, err := c.chat(ctx, a, q)
		if err != nil || !strings.Contains(stream, want) {
			t.Errorf("%q: %v\n%s", q, err, stream)
		}
	}
}
