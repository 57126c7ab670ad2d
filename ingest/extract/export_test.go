package extract

import "github.com/klippa-app/go-pdfium"

// SettlePDF waits until the instance kept ready for the next document is started,
// so that a benchmark does not time its baseline while that start-up runs.
func SettlePDF(p *PDF) {
	p.rt.warm.Lock() // held by a prepare that is running
	ready := len(p.rt.ready) > 0
	p.rt.warm.Unlock()
	if !ready {
		p.rt.prepare()
	}
}

// PDFPool returns the instance pool of p's runtime, compiling it if needed, for the
// benchmark that times each phase of an extraction.
func PDFPool(p *PDF) (pdfium.Pool, error) { return p.rt.get(&p.o) }

// NewPDFWithWazeroTermination is NewPDF with a runtime that stops PDFium with
// wazero's termination checks, the fallback when the module cannot be rewritten.
func NewPDFWithWazeroTermination(o PDFOptions) (*PDF, error) {
	o.wazeroTermination = true
	return NewPDF(&o)
}

// SetPDFTestHooks sets the extractor's test hooks (nil clears one): stopped runs
// after the time limit has set an instance's stop flag, before and after around the
// extraction of page i (from 0).
func SetPDFTestHooks(stopped func(), before func(i int), after func(i int, err error)) {
	pdfTestHookStopped, pdfTestHookBeforePage, pdfTestHookAfterPage = stopped, before, after
}

// SetPDFDoneHook sets the hook that runs after every extraction that was not
// stopped, with 4 unused bytes of its instance's linear memory (nil clears it).
func SetPDFDoneHook(done func(mem []byte)) { pdfTestHookDone = done }

// PDFLinearMemoryBytes returns the bytes of linear memory p's live instances may use
// (0 when wazero allocates them in the Go heap).
func PDFLinearMemoryBytes(p *PDF) int64 {
	if p.rt.alloc == nil {
		return 0
	}
	return p.rt.alloc.committedBytes()
}
