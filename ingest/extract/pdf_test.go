package extract_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"codeberg.org/go-pdf/fpdf"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/extract"
)

// The PDFium runtime is compiled once per test binary: every test shares the
// registry's default runtime (extractors with the same memory and instance limits
// share one).
var (
	pdfOnce sync.Once
	pdfReg  *extract.Registry
)

func pdfRegistry(t testing.TB) *extract.Registry {
	t.Helper()
	pdfOnce.Do(func() {
		r, err := extract.NewRegistry(nil)
		if err != nil {
			panic(err)
		}
		pdfReg = r
	})
	return pdfReg
}

// pdfDoc is a generated PDF: a page per entry of pages (one string of lines per
// page), with options.
type pdfDoc struct {
	pages     []string
	twoCols   *[2]string // a last page with two columns of text
	imageOnly bool       // a page with an image and no text, before the two columns
	userPass  *string    // encrypt with this user password (and an owner password)
}

func makePDF(t testing.TB, d pdfDoc) []byte {
	t.Helper()
	p := fpdf.New("P", "mm", "A4", "")
	p.SetCompression(true)
	tr := p.UnicodeTranslatorFromDescriptor("") // cp1252: é, ü, ß, €, “quotes”
	if d.userPass != nil {
		p.SetProtection(fpdf.CnProtectPrint, *d.userPass, "owner-secret")
	}
	p.SetFont("Helvetica", "", 12)
	for _, text := range d.pages {
		p.AddPage()
		p.MultiCell(0, 6, tr(text), "", "L", false)
	}
	if d.imageOnly {
		p.AddPage()
		img := image.NewRGBA(image.Rect(0, 0, 32, 32))
		for i := range 32 {
			img.Set(i, i, color.RGBA{R: 200, A: 255})
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		p.RegisterImageOptionsReader("dot", fpdf.ImageOptions{ImageType: "PNG"}, &buf)
		p.ImageOptions("dot", 20, 20, 60, 60, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	}
	if d.twoCols != nil {
		p.AddPage()
		p.SetXY(10, 20)
		p.MultiCell(85, 6, tr(d.twoCols[0]), "", "L", false)
		p.SetXY(110, 20)
		p.MultiCell(85, 6, tr(d.twoCols[1]), "", "L", false)
	}
	var buf bytes.Buffer
	if err := p.Output(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPDF(t *testing.T) {
	r := pdfRegistry(t)
	data := makePDF(t, pdfDoc{
		pages: []string{
			"Page one says hello.",
			"Café, naïve, Straße: 5 € for “quoted” text.",
			"Page three has the answer: forty-two.",
		},
		imageOnly: true,
		twoCols:   &[2]string{"Left column alpha text.", "Right column beta text."},
	})
	d, err := r.ExtractDocument(context.Background(), extract.TypePDF, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Pages) != 5 {
		t.Fatalf("%d pages: %v\n%q", len(d.Pages), d.Pages, d.Text)
	}
	for i, want := range []string{"Page one says hello.", "Café, naïve, Straße: 5 € for “quoted” text.", "Page three has the answer: forty-two."} {
		at := strings.Index(d.Text, want)
		if at < 0 {
			t.Fatalf("page %d text %q missing from %q", i+1, want, d.Text)
		}
		if got := d.PageAt(at); got != i+1 {
			t.Errorf("%q on page %d, want %d", want, got, i+1)
		}
	}
	// The image-only page has no text: it begins where the two-column page begins.
	if d.Pages[3] != d.Pages[4] {
		t.Errorf("image-only page has text: %v %q", d.Pages, d.Text[d.Pages[3]:d.Pages[4]])
	}
	last := d.Text[d.Pages[4]:]
	for _, want := range []string{"Left column alpha text.", "Right column beta text."} {
		if !strings.Contains(last, want) {
			t.Errorf("column %q missing from %q", want, last)
		}
	}
	if d.PageAt(len(d.Text)-1) != 5 || d.PageAt(0) != 1 {
		t.Errorf("PageAt ends: %d %d", d.PageAt(0), d.PageAt(len(d.Text)-1))
	}
	// Extract is the same text; by content, a PDF named .txt is a PDF.
	if text, err := r.Extract(context.Background(), "application/pdf", data); err != nil || text != d.Text {
		t.Fatalf("Extract: %v", err)
	}
	if ct := extract.DetectContentType("notes.txt", data); ct != extract.TypePDF {
		t.Fatal(ct)
	}
}

func TestPDFRefusesBadInput(t *testing.T) {
	r := pdfRegistry(t)
	ctx := context.Background()
	good := makePDF(t, pdfDoc{pages: []string{"one", "two", "three"}})
	pass := "user-secret"
	for _, tc := range []struct {
		name string
		data []byte
		kind error
	}{
		{"encrypted", makePDF(t, pdfDoc{pages: []string{"secret words"}, userPass: &pass}), clone.ErrUnsupported},
		{"truncated", good[:len(good)/3], clone.ErrInvalidInput},
		{"garbage", append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0xde, 0xad}, 500)...), clone.ErrInvalidInput},
		{"header only", []byte("%PDF-1.7"), clone.ErrInvalidInput},
	} {
		d, err := r.ExtractDocument(ctx, extract.TypePDF, tc.data)
		if !errors.Is(err, tc.kind) || d.Text != "" || d.Pages != nil {
			t.Errorf("%s: %q, %v; want %v", tc.name, d.Text, err, tc.kind)
		}
	}
	// Encrypted with an empty user password: any viewer opens it, so is it read.
	empty := ""
	if text, err := r.Extract(ctx, extract.TypePDF, makePDF(t, pdfDoc{pages: []string{"open words"}, userPass: &empty})); err != nil || !strings.Contains(text, "open words") {
		t.Errorf("owner-only encryption: %q, %v", text, err)
	}
	// Page limit.
	few, err := extract.NewPDF(&extract.PDFOptions{MaxPages: 2})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := few.ExtractDocument(ctx, good, nil); !errors.Is(err, clone.ErrTooLarge) || d.Text != "" {
		t.Errorf("pages: %q, %v", d.Text, err)
	}
	// The caller's cancellation is ErrCanceled; the document's own time limit
	// (here already over when the extraction starts) is ErrTooLarge.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := few.ExtractDocument(cctx, good, nil); !errors.Is(err, clone.ErrCanceled) {
		t.Errorf("cancelled: %v", err)
	}
	slow, _ := extract.NewPDF(&extract.PDFOptions{Timeout: time.Nanosecond})
	if _, err := slow.ExtractDocument(ctx, good, nil); !errors.Is(err, clone.ErrTooLarge) {
		t.Errorf("timeout: %v", err)
	}
	// The runtime still serves documents after all of this.
	if text, err := few.Extract(ctx, good[:0:0], nil); err == nil || text != "" {
		t.Errorf("empty: %q, %v", text, err)
	}
	if text, err := r.Extract(ctx, extract.TypePDF, good); err != nil || !strings.Contains(text, "three") {
		t.Errorf("after failures: %q, %v", text, err)
	}
	// Below what PDFium needs (its initial memory is 18.2 MiB): refused, rather than
	// failing every document with ErrUnavailable.
	for _, m := range []int64{1 << 20, 16 << 20, extract.PDFMinMemoryBytes - 1} {
		if _, err := extract.NewPDF(&extract.PDFOptions{MaxMemoryBytes: m}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("memory of %d: %v", m, err)
		}
	}
}

// TestPDFCommitted extracts the small real-world files committed under testdata/pdf
// (their origins and licenses are in testdata/pdf/README.md) and checks each one's
// page count and a phrase of a known page, so a file made by another producer than
// the tests' generator (cairo, Ghostscript) is read page by page. A file added
// there without an entry here fails the test.
func TestPDFCommitted(t *testing.T) {
	want := map[string]struct {
		pages  int
		page   int // 1-based
		phrase string
	}{
		"ghostscript-harbour.pdf": {2, 2, "the keeper notes that the fog horn was repaired on Tuesday"},
		"cairo-utf8.pdf":          {2, 1, "Eat some more of these soft French buns"},
		"fpdf-multicolumn.pdf":    {4, 3, "Chapter 2 : THE PROS AND CONS During the period in which these developments were occurring"},
		"fpdf-utf8.pdf":           {2, 1, "Φάτε μερικά από αυτά τα μαλακά γαλλικά"},
	}
	entries, err := os.ReadDir("testdata/pdf")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pdf") {
			continue
		}
		seen++
		w, ok := want[e.Name()]
		if !ok {
			t.Errorf("%s: no expectations in TestPDFCommitted", e.Name())
			continue
		}
		data, err := os.ReadFile("testdata/pdf/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if typ := extract.DetectContentType(e.Name(), data); typ != extract.TypePDF {
			t.Errorf("%s: detected as %q", e.Name(), typ)
			continue
		}
		d, err := pdfRegistry(t).ExtractDocument(context.Background(), extract.TypePDF, data)
		if err != nil {
			t.Errorf("%s: %v", e.Name(), err)
			continue
		}
		if !utf8.ValidString(d.Text) || len(d.Pages) != w.pages {
			t.Errorf("%s: %d pages, want %d", e.Name(), len(d.Pages), w.pages)
			continue
		}
		end := len(d.Text)
		if w.page < len(d.Pages) {
			end = d.Pages[w.page]
		}
		// Line breaks depend on the layout: compare with white space collapsed.
		page := strings.Join(strings.Fields(d.Text[d.Pages[w.page-1]:end]), " ")
		if !strings.Contains(page, w.phrase) {
			t.Errorf("%s: page %d does not contain %q; it reads %q", e.Name(), w.page, w.phrase, page)
		}
	}
	if seen != len(want) {
		t.Errorf("testdata/pdf has %d PDFs, want %d", seen, len(want))
	}
}

func FuzzPDF(f *testing.F) {
	f.Add(makePDF(f, pdfDoc{pages: []string{"fuzz one", "fuzz two"}, imageOnly: true}))
	f.Add(makePDF(f, pdfDoc{twoCols: &[2]string{"a", "b"}}))
	f.Add([]byte("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>"))
	// A short per-input deadline (under the 10 s after which the fuzzing engine
	// declares an input hung) and few pages bound the time of one input; the
	// instance's WebAssembly memory bounds its memory.
	e, err := extract.NewPDF(&extract.PDFOptions{MaxPages: 20, Timeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	// Compile the module before fuzzing: the first PDF of a process compiles it, which
	// under the fuzzer's coverage instrumentation takes longer than one input may.
	if _, err := e.ExtractDocument(context.Background(), makePDF(f, pdfDoc{pages: []string{"warm up"}}), nil); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := e.ExtractDocument(context.Background(), data, nil)
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) && !errors.Is(err, clone.ErrUnsupported) && !errors.Is(err, clone.ErrTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			if d.Text != "" || d.Pages != nil {
				t.Fatal("partial text on error")
			}
			return
		}
		if !utf8.ValidString(d.Text) || strings.IndexByte(d.Text, 0) >= 0 {
			t.Fatalf("invalid output %q", d.Text)
		}
		for i, p := range d.Pages {
			if p < 0 || p > len(d.Text) || i > 0 && p < d.Pages[i-1] {
				t.Fatalf("bad pages %v", d.Pages)
			}
		}
	})
}

// TestPDFCompilationCache: with CLONEISO_PDFIUM_CACHE_DIR set (the test command sets
// it, so every test binary after the first skips the compilation), the compiled
// module is kept in that directory, and extraction works from it.
func TestPDFCompilationCache(t *testing.T) {
	dir := os.Getenv("CLONEISO_PDFIUM_CACHE_DIR")
	if dir == "" {
		t.Skip("CLONEISO_PDFIUM_CACHE_DIR is not set (./internal/ci/test.sh sets it)")
	}
	d, err := pdfRegistry(t).ExtractDocument(context.Background(), extract.TypePDF, makePDF(t, pdfDoc{pages: []string{"cached"}}))
	if err != nil || !strings.Contains(d.Text, "cached") {
		t.Fatalf("extract with a compilation cache: %q, %v", d.Text, err)
	}
	var files int
	err = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files++
		}
		return err
	})
	if err != nil || files == 0 {
		t.Fatalf("compilation cache %s holds %d files (%v); want the compiled module", dir, files, err)
	}
}

// TestPDFOneInstanceManyCallers: with a single instance allowed, concurrent callers
// take turns (none waits for ever on the instance kept ready), and each gets its own
// document's text, never another's.
func TestPDFOneInstanceManyCallers(t *testing.T) {
	e, err := extract.NewPDF(&extract.PDFOptions{MaxInstances: 1})
	if err != nil {
		t.Fatal(err)
	}
	const callers = 4
	docs := make([][]byte, callers)
	for i := range docs {
		docs[i] = makePDF(t, pdfDoc{pages: []string{"caller " + strings.Repeat("x", i+1) + " first page", "second page"}})
	}
	var wg sync.WaitGroup
	for round := range 3 {
		for i := range callers {
			wg.Go(func() {
				d, err := e.ExtractDocument(t.Context(), docs[i], nil)
				if err != nil {
					t.Errorf("round %d caller %d: %v", round, i, err)
					return
				}
				if want := "caller " + strings.Repeat("x", i+1) + " first page"; !strings.HasPrefix(d.Text, want) || len(d.Pages) != 2 {
					t.Errorf("round %d caller %d: got %q (%d pages), want %q first", round, i, d.Text, len(d.Pages), want)
				}
			})
		}
		wg.Wait()
	}
}

// TestPDFTimeLimitStopsPDFium: when the caller gives up (or the document's time
// limit passes) while PDFium runs, the call is stopped where it is: the extractor
// sets the instance's stop flag, and the page being read fails with the trap of the
// next loop PDFium enters, not after PDFium finished the page. The extraction is
// clone.ErrCanceled, and the runtime still serves the next document. With wazero's
// termination checks instead (the fallback), the same contract holds.
func TestPDFTimeLimitStopsPDFium(t *testing.T) {
	doc := makePDF(t, pdfDoc{pages: []string{"first page", "second page", "third page"}})
	t.Cleanup(func() { extract.SetPDFTestHooks(nil, nil, nil) })
	for _, fallback := range []bool{false, true} {
		e, err := extract.NewPDF(nil)
		if fallback {
			e, err = extract.NewPDFWithWazeroTermination(extract.PDFOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		stopped := make(chan struct{})
		var once sync.Once
		pageErr := map[int]error{}
		extract.SetPDFTestHooks(
			func() { once.Do(func() { close(stopped) }) },
			func(i int) {
				if i == 1 {
					cancel()
					if !fallback {
						<-stopped // the flag is set before PDFium reads page 2
					}
				}
			},
			func(i int, err error) { pageErr[i] = err },
		)
		_, err = e.ExtractDocument(ctx, doc, nil)
		extract.SetPDFTestHooks(nil, nil, nil)
		if !errors.Is(err, clone.ErrCanceled) {
			t.Errorf("fallback %v: %v; want ErrCanceled", fallback, err)
		}
		if pageErr[0] != nil {
			t.Errorf("fallback %v: page 1: %v", fallback, pageErr[0])
		}
		if !fallback && (pageErr[1] == nil || !strings.Contains(pageErr[1].Error(), "unreachable")) {
			t.Errorf("page 2 read with the stop flag set: %v; want the trap", pageErr[1])
		}
		if _, ok := pageErr[2]; ok {
			t.Errorf("fallback %v: page 3 read after the caller gave up", fallback)
		}
		if d, err := e.ExtractDocument(t.Context(), doc, nil); err != nil || len(d.Pages) != 3 {
			t.Errorf("fallback %v: next document: %v", fallback, err)
		}
	}
}

// TestPDFInstanceReuseIsPerClone: an instance serves several documents of one clone
// (named by the context) in a row, and never a document of another clone, another
// tenant, or a context without a clone; it is retired after DocumentsPerInstance
// documents and after any error. Each extraction reads, then sets, a mark in unused
// bytes of its instance's linear memory: a document that finds another clone's mark
// ran in that clone's poisoned instance.
func TestPDFInstanceReuseIsPerClone(t *testing.T) {
	e, err := extract.NewPDF(&extract.PDFOptions{DocumentsPerInstance: 3, MaxInstances: 2})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"}
	ctxOf := func(tenant, id int) context.Context {
		cc, err := clone.Parse(ids[tenant], ids[id], clone.Principal{Subject: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return clone.WithContext(t.Context(), cc)
	}
	var (
		mark  uint32 // the mark of the document being extracted
		found []uint32
	)
	extract.SetPDFDoneHook(func(mem []byte) {
		found = append(found, binary.LittleEndian.Uint32(mem))
		binary.LittleEndian.PutUint32(mem, mark)
	})
	t.Cleanup(func() { extract.SetPDFDoneHook(nil) })
	good := makePDF(t, pdfDoc{pages: []string{"reuse"}})
	garbage := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0xde, 0xad}, 500)...)
	const none, a, b, c = 0, 'A', 'B', 'C'
	bg := t.Context()
	for i, step := range []struct {
		ctx  context.Context
		mark uint32
		doc  []byte
		want uint32 // the mark found
	}{
		{ctxOf(0, 0), a, good, none}, // clone A: a fresh instance, kept for A
		{ctxOf(0, 1), b, good, none}, // clone B (same tenant) never gets A's
		{ctxOf(0, 0), a, good, a},    // A again: A's instance
		{ctxOf(1, 0), c, good, none}, // A's clone ID in another tenant is another clone; B's instance is discarded (two kept at most)
		{ctxOf(0, 0), a, good, a},    // A's third document: its instance is then retired
		{ctxOf(0, 0), a, good, none}, // so the fourth gets a fresh one
		{ctxOf(0, 0), a, garbage, a}, // an error retires the instance
		{ctxOf(0, 0), a, good, none}, // a fresh one after the error
		{ctxOf(1, 0), c, good, c},    // C's instance was kept for C alone
		{ctxOf(0, 1), b, good, none}, // B never sees A's or C's
		{bg, 'N', good, none},        // no clone in the context: a fresh instance, not kept
		{bg, 'N', good, none},
	} {
		mark = step.mark
		_, err := e.ExtractDocument(step.ctx, step.doc, nil)
		if (err != nil) != (&step.doc[0] == &garbage[0]) {
			t.Fatalf("step %d: %v", i, err)
		}
		if len(found) != i+1 || found[i] != step.want {
			t.Fatalf("step %d: found the marks %c; want %c last", i, found, step.want)
		}
	}
}

// TestPDFMemoryLimit: a page whose text analysis needs more linear memory than
// MaxMemoryBytes (here about 196,000 characters on one page, under the least limit)
// fails with clone.ErrInvalidInput and nothing partial; under the default limit it is
// read.
func TestPDFMemoryLimit(t *testing.T) {
	p := fpdf.New("P", "mm", "A4", "")
	p.SetCompression(true)
	p.SetFont("Helvetica", "", 2)
	p.AddPage()
	line := strings.Repeat("memory ", 70)
	for i := range 400 {
		p.Text(1, 2+float64(i)*0.72, line)
	}
	var buf bytes.Buffer
	if err := p.Output(&buf); err != nil {
		t.Fatal(err)
	}
	small, err := extract.NewPDF(&extract.PDFOptions{MaxMemoryBytes: extract.PDFMinMemoryBytes})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := small.ExtractDocument(t.Context(), buf.Bytes(), nil); !errors.Is(err, clone.ErrInvalidInput) || d.Text != "" || d.Pages != nil {
		t.Errorf("over the memory limit: %d bytes of text, %v; want ErrInvalidInput", len(d.Text), err)
	}
	d, err := pdfRegistry(t).ExtractDocument(t.Context(), extract.TypePDF, buf.Bytes())
	if err != nil || strings.Count(d.Text, "memory") < 20000 {
		t.Errorf("under the default limit: %d bytes of text, %v", len(d.Text), err)
	}
}
