package extract_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/extract"
)

// benchPDFs writes the benchmark corpus: 4 PDFs of 20 text pages each (one of them in
// two columns on every page), returned as bytes and as files for pdftotext.
func benchPDFs(b *testing.B) (docs [][]byte, files []string, total int64) {
	b.Helper()
	dir := b.TempDir()
	sentence := "The quarterly report covers revenue, hiring, the studio move and what the customers asked for. "
	for d := range 4 {
		doc := pdfDoc{}
		for p := range 20 {
			doc.pages = append(doc.pages, fmt.Sprintf("Document %d, page %d. ", d, p+1)+strings.Repeat(sentence, 25))
		}
		if d == 3 {
			doc.twoCols = &[2]string{strings.Repeat("Left column. "+sentence, 10), strings.Repeat("Right column. "+sentence, 10)}
		}
		data := makePDF(b, doc)
		name := filepath.Join(dir, fmt.Sprintf("doc%d.pdf", d))
		if err := os.WriteFile(name, data, 0o600); err != nil {
			b.Fatal(err)
		}
		docs, files, total = append(docs, data), append(files, name), total+int64(len(data))
	}
	return docs, files, total
}

// BenchmarkPDF compares PDF text extraction (PDFium in WebAssembly, a fresh instance
// per document) with poppler's pdftotext (a process per document) on the same files;
// MB/s is of PDF bytes. The runtime is compiled before the timer starts. Interleaved
// runs both per iteration and reports ratio = cloneiso/pdftotext of the median times;
// interleaved-clone is the same with the four documents of one clone, as ingestion
// extracts them: one instance serves them all (see PDFOptions.DocumentsPerInstance).
func BenchmarkPDF(b *testing.B) {
	docs, files, total := benchPDFs(b)
	pdf, err := extract.NewPDF(nil)
	if err != nil {
		b.Fatal(err)
	}
	cc, err := clone.Parse("00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b", clone.Principal{Subject: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ours := func(ctx context.Context) {
		for _, d := range docs {
			if _, err := pdf.ExtractDocument(ctx, d, nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	ours(ctx) // compiles the module
	pdftotext, lookErr := exec.LookPath("pdftotext")
	// theirs returns the CPU time (user and system) its processes used.
	theirs := func() (cpu time.Duration) {
		for _, f := range files {
			cmd := exec.Command(pdftotext, "-q", "-enc", "UTF-8", f, "-")
			if out, err := cmd.Output(); err != nil || len(out) == 0 {
				b.Fatalf("pdftotext: %v", err)
			}
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		return cpu
	}
	b.Run("cloneiso", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			ours(ctx)
		}
	})
	b.Run("pdftotext", func(b *testing.B) {
		if lookErr != nil {
			b.Skip("pdftotext (poppler-utils) is not installed: no baseline")
		}
		b.SetBytes(total)
		for b.Loop() {
			theirs()
		}
	})
	interleaved := func(ctx context.Context) func(b *testing.B) {
		return func(b *testing.B) {
			if lookErr != nil {
				b.Skip("pdftotext (poppler-utils) is not installed: no baseline")
			}
			var a, t, ca, ct []time.Duration
			for b.Loop() {
				c0 := cpuTime()
				t0 := time.Now()
				ours(ctx)
				a = append(a, time.Since(t0))
				// The instance kept ready for the next document starts in the
				// background after each one: let it finish, so that pdftotext's time
				// does not include it (ours does: it overlaps the next document), and
				// count its CPU time as ours.
				extract.SettlePDF(pdf)
				ca = append(ca, cpuTime()-c0)
				t1 := time.Now()
				ct = append(ct, theirs())
				t = append(t, time.Since(t1))
			}
			med := func(d []time.Duration) float64 { slices.Sort(d); return float64(d[len(d)/2]) }
			b.ReportMetric(med(a)/med(t), "ratio")
			b.ReportMetric(med(a), "cloneiso-ns")
			b.ReportMetric(med(t), "pdftotext-ns")
			// CPU time (this process's against pdftotext's processes') moves less
			// with the load of a shared machine than wall time does.
			if med(ct) > 0 {
				b.ReportMetric(med(ca)/med(ct), "cpu-ratio")
			}
		}
	}
	b.Run("interleaved", interleaved(ctx))
	b.Run("interleaved-clone", interleaved(clone.WithContext(ctx, cc)))
}

// BenchmarkPDFConcurrent extracts on every core at once and reports the peak of the
// Go heap plus the instances' linear memory (mapped outside the Go heap, counted as
// the bytes made writable) above the idle figure, divided by the concurrent
// extractions: the memory one extraction costs.
func BenchmarkPDFConcurrent(b *testing.B) {
	docs, _, total := benchPDFs(b)
	pdf, err := extract.NewPDF(nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := pdf.ExtractDocument(ctx, docs[0], nil); err != nil {
		b.Fatal(err)
	}
	par := runtime.GOMAXPROCS(0)
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() int64 {
		metrics.Read(sample)
		return int64(sample[0].Value.Uint64()) + extract.PDFLinearMemoryBytes(pdf)
	}
	runtime.GC()
	idle := heap()
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if h := heap(); h > peak.Load() {
					peak.Store(h)
				}
			}
		}
	}()
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for w := range par {
			wg.Go(func() {
				for i := w; i < len(docs); i += par {
					if _, err := pdf.ExtractDocument(ctx, docs[i], nil); err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
	close(stop)
	<-sampled
	b.ReportMetric(float64(peak.Load()-idle)/float64(par)/(1<<20), "peak-MiB/extraction")
	b.ReportMetric(float64(par), "concurrent")
}

// BenchmarkDOCX extracts a generated Word document of about 1 MiB of XML; MB/s is of
// the DOCX file's bytes, text-MB/s of the uncompressed XML.
func BenchmarkDOCX(b *testing.B) {
	var body strings.Builder
	for i := range 2000 {
		switch i % 10 {
		case 0:
			body.WriteString(para("Heading2", fmt.Sprintf("Section %d", i)))
		case 5:
			body.WriteString(listItem("0", "An item of the list, with a few words in it."))
		case 7:
			body.WriteString(`<w:tbl><w:tr>` + cell("Plan") + cell("Price") + `</w:tr><w:tr>` + cell("Basic") + cell("5 EUR") + `</w:tr></w:tbl>`)
		default:
			body.WriteString(para("", "The quarterly report covers revenue, hiring, the studio move and what the customers asked for."))
		}
	}
	data := makeDOCX(b, body.String(), "")
	e := extract.NewDOCX(nil)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Extract(ctx, data, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(body.Len())*float64(b.N)/b.Elapsed().Seconds()/1e6, "xml-MB/s")
}
