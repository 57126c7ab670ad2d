package extract_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/extract"
)

const wNS = `xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"`

// makeZip writes a ZIP archive of the files, in order, deflated.
func makeZip(t testing.TB, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// makeDOCX returns a minimal Word document whose body is body (WordprocessingML),
// with styles (the w:styles content) if not empty.
func makeDOCX(t testing.TB, body, styles string) []byte {
	t.Helper()
	files := [][2]string{
		{"[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`},
		{"word/document.xml", `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ` + wNS + `><w:body>` + body + `</w:body></w:document>`},
	}
	if styles != "" {
		files = append(files, [2]string{"word/styles.xml", `<?xml version="1.0" encoding="UTF-8"?><w:styles ` + wNS + `>` + styles + `</w:styles>`})
	}
	return makeZip(t, files...)
}

func para(style, text string) string {
	ppr := ""
	if style != "" {
		ppr = `<w:pPr><w:pStyle w:val="` + style + `"/></w:pPr>`
	}
	return `<w:p>` + ppr + `<w:r><w:t xml:space="preserve">` + text + `</w:t></w:r></w:p>`
}

func listItem(level, text string) string {
	return `<w:p><w:pPr><w:numPr><w:ilvl w:val="` + level + `"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>` + text + `</w:t></w:r></w:p>`
}

func cell(text string) string { return `<w:tc>` + para("", text) + `</w:tc>` }

func TestDOCX(t *testing.T) {
	r := newRegistry(t, nil)
	body := para("Title", "Handbook") +
		para("Heading1", "Returns") +
		para("", "Send it back within <b>30</b> days &amp; keep the receipt.") +
		// A localized heading style, named in styles.xml.
		para("berschrift2", "Fristen") +
		listItem("0", "Free") + listItem("1", "Fast") + listItem("0", "Tracked") +
		`<w:p><w:r><w:t>Split </w:t></w:r><w:r><w:delText>deleted</w:delText></w:r><w:r><w:instrText>HYPERLINK x</w:instrText><w:t>run</w:t><w:tab/><w:t>tab</w:t><w:br/><w:t>line</w:t></w:r></w:p>` +
		`<w:tbl><w:tr>` + cell("Plan") + cell("Price") + `</w:tr><w:tr>` + cell("Basic | lite") + cell("€5") + `</w:tr></w:tbl>` +
		para("", "Ünïcödé — 日本語 😀") + `<w:p/>` + para("", "   ")
	styles := `<w:style w:type="paragraph" w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>` +
		`<w:style w:type="paragraph" w:styleId="Quote"><w:name w:val="Quote"/></w:style>`
	data := makeDOCX(t, strings.ReplaceAll(body, "<b>30</b>", "30"), styles)
	got, err := r.Extract(context.Background(), extract.TypeDOCX, data)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Handbook\n\n# Returns\n\nSend it back within 30 days & keep the receipt.\n\n## Fristen\n\n" +
		"- Free\n  - Fast\n- Tracked\n\nSplit run\ttab\nline\n\n" +
		"| Plan | Price |\n| --- | --- |\n| Basic \\| lite | €5 |\n\nÜnïcödé — 日本語 😀"
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	// Detected by content, whatever the name says.
	if ct := extract.DetectContentType("upload.bin", data); ct != extract.TypeDOCX {
		t.Fatalf("DetectContentType = %q", ct)
	}
}

func TestDOCXRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	small := extract.NewDOCX(&extract.DOCXOptions{MaxEntries: 5, MaxEntryBytes: 4 << 20, MaxTotalBytes: 6 << 20, MaxDepth: 32, MaxTextBytes: 1 << 20})
	// A zip bomb: 3 MiB of one byte deflates to a few KiB (ratio over 200).
	bomb := makeDOCX(t, para("", strings.Repeat("a", 3<<20)), "")
	// Many entries.
	many := [][2]string{{"word/document.xml", `<w:document ` + wNS + `/>`}}
	for i := range 10 {
		many = append(many, [2]string{"x" + string(rune('a'+i)), "x"})
	}
	// Over the per-entry limit without a suspicious ratio is not reachable with
	// repetitive text, so lower the ratio bar: two parts of 3.5 MiB are over the total.
	big := strings.Repeat("b", 3<<19)
	over := makeZip(t, [2]string{"word/styles.xml", `<w:styles ` + wNS + `><!-- ` + big + big + ` --></w:styles>`},
		[2]string{"word/document.xml", `<w:document ` + wNS + `><!-- ` + big + big + ` --></w:document>`})
	deep := makeDOCX(t, strings.Repeat("<w:sdt>", 40)+strings.Repeat("</w:sdt>", 40), "")
	doctype := makeZip(t, [2]string{"word/document.xml", `<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]><w:document ` + wNS + `><w:body><w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>`})
	for _, tc := range []struct {
		name string
		data []byte
		kind error
	}{
		{"bomb", bomb, clone.ErrTooLarge},
		{"entries", makeZip(t, many...), clone.ErrTooLarge},
		{"deep", deep, clone.ErrInvalidInput},
		{"doctype", doctype, clone.ErrInvalidInput},
		{"no document", makeZip(t, [2]string{"word/other.xml", "x"}), clone.ErrInvalidInput},
		{"not a zip", []byte("PK\x03\x04 garbage"), clone.ErrInvalidInput},
		{"bad xml", makeDOCX(t, "<w:p><w:r></w:p>", ""), clone.ErrInvalidInput},
		{"nul", makeDOCX(t, para("", "a\x00b"), ""), clone.ErrInvalidInput},
		{"truncated", makeDOCX(t, para("", "hello"), "")[:200], clone.ErrInvalidInput},
	} {
		got, err := small.Extract(ctx, tc.data, nil)
		if !errors.Is(err, tc.kind) || got != "" {
			t.Errorf("%s: %q, %v; want %v", tc.name, got, err, tc.kind)
		}
	}
	// The total limit counts decompressed bytes over all parts.
	lowRatio := extract.NewDOCX(&extract.DOCXOptions{MaxTotalBytes: 4 << 20, MaxRatio: 1 << 30})
	if got, err := lowRatio.Extract(ctx, over, nil); !errors.Is(err, clone.ErrTooLarge) || got != "" {
		t.Errorf("total: %q, %v", got, err)
	}
	perEntry := extract.NewDOCX(&extract.DOCXOptions{MaxEntryBytes: 1 << 20, MaxRatio: 1 << 30})
	if _, err := perEntry.Extract(ctx, over, nil); !errors.Is(err, clone.ErrTooLarge) {
		t.Errorf("per entry: %v", err)
	}
}

// TestDOCXLyingHeader writes an entry whose header claims 10 bytes for megabytes of
// content: the limits count what is decompressed, not what the header says.
func TestDOCXLyingHeader(t *testing.T) {
	content := `<w:document ` + wNS + `><w:body>` + para("", strings.Repeat("z", 2<<20)) + `</w:body></w:document>`
	var comp bytes.Buffer
	zw := zip.NewWriter(&comp)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "word/document.xml", Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(content))
	_ = zw.Close()
	data := comp.Bytes()
	// Patch the central directory's uncompressed size (and the local header's) to 10.
	patched := bytes.Clone(data)
	n := len(content)
	le := []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
	if c := bytes.Count(patched, le); c < 2 {
		t.Fatalf("size found %d times", c)
	}
	patched = bytes.ReplaceAll(patched, le, []byte{10, 0, 0, 0})
	e := extract.NewDOCX(&extract.DOCXOptions{MaxEntryBytes: 1 << 20})
	got, err := e.Extract(context.Background(), patched, nil)
	if err == nil || got != "" {
		t.Fatalf("lying header accepted: %d bytes", len(got))
	}
	if !errors.Is(err, clone.ErrTooLarge) && !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("untyped: %v", err)
	}
	// The honest archive is over the per-entry limit too.
	if _, err := e.Extract(context.Background(), data, nil); !errors.Is(err, clone.ErrTooLarge) {
		t.Fatalf("honest: %v", err)
	}
}

func TestContentMustMatchDeclaredType(t *testing.T) {
	r := newRegistry(t, nil)
	ctx := context.Background()
	docx := makeDOCX(t, para("", "x"), "")
	zipFile := makeZip(t, [2]string{"a.txt", "a"})
	for _, tc := range []struct {
		ct   string
		data []byte
	}{
		{extract.TypePDF, docx},
		{extract.TypePDF, []byte("plain text")},
		{extract.TypeDOCX, []byte("%PDF-1.7\n")},
		{extract.TypeDOCX, zipFile},
		{extract.TypeDOCX, []byte("plain")},
		{"text/plain", []byte("%PDF-1.4\nbinary")},
		{"text/html", docx},
		{"text/plain", zipFile},
	} {
		if err := r.Check(tc.ct, tc.data); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("Check(%q, %.10q) = %v", tc.ct, tc.data, err)
		}
		if got, err := r.Extract(ctx, tc.ct, tc.data); !errors.Is(err, clone.ErrInvalidInput) || got != "" {
			t.Errorf("Extract(%q, %.10q) = %q, %v", tc.ct, tc.data, got, err)
		}
	}
	// Matching content passes; a text that mentions %PDF- later is still text.
	if err := r.Check(extract.TypeDOCX, docx); err != nil {
		t.Error(err)
	}
	if got, err := r.Extract(ctx, "text/plain", []byte("the %PDF- header")); err != nil || got != "the %PDF- header" {
		t.Errorf("%q, %v", got, err)
	}
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{[]byte("%PDF-1.7"), extract.TypePDF},
		{append([]byte("junk\n"), "%PDF-1.7"...), extract.TypePDF},
		{docx, extract.TypeDOCX},
		{zipFile, "application/zip"},
		{[]byte("PK\x03\x04broken"), "application/zip"},
		{[]byte("text"), ""},
	} {
		if got := extract.Sniff(tc.data); got != tc.want {
			t.Errorf("Sniff(%.10q) = %q, want %q", tc.data, got, tc.want)
		}
	}
	// By content before by name: a PDF named .txt is a PDF; a ".docx" of text keeps the
	// claimed type, which Extract refuses.
	if got := extract.DetectContentType("notes.txt", []byte("%PDF-1.7")); got != extract.TypePDF {
		t.Error(got)
	}
	if got := extract.DetectContentType("x.docx", []byte("hello")); got != extract.TypeDOCX {
		t.Error(got)
	}
}

func FuzzDOCX(f *testing.F) {
	f.Add(makeDOCX(f, para("Heading1", "T")+listItem("0", "l")+`<w:tbl><w:tr>`+cell("a")+cell("b")+`</w:tr></w:tbl>`, `<w:style w:type="paragraph" w:styleId="X"><w:name w:val="Title"/></w:style>`))
	f.Add(makeDOCX(f, `<w:p><w:r><w:txbxContent><w:p><w:r><w:t>box</w:t></w:r></w:p></w:txbxContent></w:r></w:p><w:tbl><w:tr><w:tc><w:tbl><w:tr>`+cell("n")+`</w:tr></w:tbl></w:tc></w:tr></w:tbl>`, ""))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	// Small limits bound the memory and time of one input.
	e := extract.NewDOCX(&extract.DOCXOptions{MaxEntries: 64, MaxEntryBytes: 1 << 20, MaxTotalBytes: 2 << 20, MaxDepth: 64, MaxTextBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := e.Extract(context.Background(), data, nil)
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) && !errors.Is(err, clone.ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			if got != "" {
				t.Fatal("partial text on error")
			}
			return
		}
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 || len(got) > 1<<20 {
			t.Fatalf("invalid output %q", got)
		}
	})
}
