//go:build linux

package extract_test

import (
	"context"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"syscall"
	"testing"
	"time"

	"github.com/klippa-app/go-pdfium/requests"

	"github.com/cloneiso/cloneiso/ingest/extract"
)

// threadCPU returns the CPU time of the calling OS thread (lock it first).
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPDFPhases breaks down the CPU time of extracting the benchmark corpus with
// go-pdfium's calls made one by one on a fresh instance per document (as
// ExtractDocument does), measured on the OS thread that runs them (PDFium runs on the
// calling goroutine): starting the instance (instantiating the module and PDFium's
// initialization), opening the document (copying it in), FPDF_LoadPage (parsing the
// page), FPDFText_LoadPage (PDFium's text analysis), FPDFText_GetText, closing the
// pages and the instance; page1 is the first page's load and text analysis, part of
// the two before. process-cpu is the whole process's CPU time (the GC's included),
// pdftotext-cpu that of a pdftotext process per document on the same files. All are
// per document, in ms; MiB is the Go heap allocated. stop-flag is the extractor's
// runtime (the rewritten module, stopped by its flag); wazero-termination the
// fallback, with wazero's close-on-context-done checks.
func BenchmarkPDFPhases(b *testing.B) {
	docs, files, _ := benchPDFs(b)
	flag, err := extract.NewPDF(nil)
	if err != nil {
		b.Fatal(err)
	}
	fallback, err := extract.NewPDFWithWazeroTermination(extract.PDFOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("stop-flag", func(b *testing.B) { pdfPhases(b, flag, docs, files) })
	b.Run("wazero-termination", func(b *testing.B) { pdfPhases(b, fallback, docs, files) })
}

func pdfPhases(b *testing.B, pdf *extract.PDF, docs [][]byte, files []string) {
	pool, err := extract.PDFPool(pdf)
	if err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	alloc := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
	names := []string{"instance", "open", "loadpage", "textpage", "gettext", "closepage", "close", "page1"}
	cpu := make([]time.Duration, len(names))
	bytes := make([]uint64, len(names))
	var last time.Duration
	var lastA uint64
	mark := func(i int) {
		t, a := threadCPU(), alloc()
		cpu[i] += t - last
		bytes[i] += a - lastA
		last, lastA = threadCPU(), alloc()
	}
	var self time.Duration
	var theirs time.Duration
	n := 0
	ctx := context.Background()
	pdftotext, lookErr := exec.LookPath("pdftotext")
	for b.Loop() {
		s0 := cpuTime()
		for _, d := range docs {
			n++
			last, lastA = threadCPU(), alloc()
			inst, err := pool.GetInstanceWithContext(ctx)
			if err != nil {
				b.Fatal(err)
			}
			mark(0)
			doc, err := inst.OpenDocument(&requests.OpenDocument{File: &d})
			if err != nil {
				b.Fatal(err)
			}
			pc, _ := inst.FPDF_GetPageCount(&requests.FPDF_GetPageCount{Document: doc.Document})
			mark(1)
			p0 := cpu[2] + cpu[3]
			for i := range pc.PageCount {
				last, lastA = threadCPU(), alloc()
				page, err := inst.FPDF_LoadPage(&requests.FPDF_LoadPage{Document: doc.Document, Index: i})
				if err != nil {
					b.Fatal(err)
				}
				mark(2)
				tp, err := inst.FPDFText_LoadPage(&requests.FPDFText_LoadPage{Page: requests.Page{ByReference: &page.Page}})
				if err != nil {
					b.Fatal(err)
				}
				mark(3)
				c, _ := inst.FPDFText_CountChars(&requests.FPDFText_CountChars{TextPage: tp.TextPage})
				if _, err := inst.FPDFText_GetText(&requests.FPDFText_GetText{TextPage: tp.TextPage, Count: c.Count}); err != nil {
					b.Fatal(err)
				}
				mark(4)
				inst.FPDFText_ClosePage(&requests.FPDFText_ClosePage{TextPage: tp.TextPage})
				inst.FPDF_ClosePage(&requests.FPDF_ClosePage{Page: page.Page})
				mark(5)
				if i == 0 {
					cpu[7] += cpu[2] + cpu[3] - p0
				}
				p0 = cpu[2] + cpu[3]
			}
			inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: doc.Document})
			inst.Close()
			mark(6)
		}
		self += cpuTime() - s0
		if lookErr == nil {
			for _, f := range files {
				cmd := exec.Command(pdftotext, "-q", "-enc", "UTF-8", f, "-")
				if err := cmd.Run(); err != nil {
					b.Fatal(err)
				}
				theirs += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
		}
	}
	var sum time.Duration
	for i, name := range names[:7] {
		b.ReportMetric(float64(cpu[i])/float64(n)/1e6, name+"-cpu-ms/doc")
		b.ReportMetric(float64(bytes[i])/float64(n)/(1<<20), name+"-MiB/doc")
		sum += cpu[i]
	}
	b.ReportMetric(float64(cpu[7])/float64(n)/1e6, "page1-load+text-cpu-ms/doc")
	b.ReportMetric(float64(sum)/float64(n)/1e6, "thread-cpu-ms/doc")
	b.ReportMetric(float64(self)/float64(n)/1e6, "process-cpu-ms/doc")
	if lookErr == nil {
		b.ReportMetric(float64(theirs)/float64(n)/1e6, "pdftotext-cpu-ms/doc")
	}
}
