package extract

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/klippa-app/go-pdfium"
	pdferrs "github.com/klippa-app/go-pdfium/errors"
	"github.com/klippa-app/go-pdfium/references"
	"github.com/klippa-app/go-pdfium/requests"
	"github.com/klippa-app/go-pdfium/webassembly"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Defaults of PDFOptions.
const (
	DefaultPDFMaxPages       = 2000
	DefaultPDFTimeout        = 60 * time.Second
	DefaultPDFMaxMemoryBytes = 512 << 20
)

// PDFOptions bound the PDF extractor; zero fields mean the defaults.
type PDFOptions struct {
	// MaxPages bounds the pages of a document: 0 means DefaultPDFMaxPages. A longer
	// document is clone.ErrTooLarge.
	MaxPages int
	// Timeout bounds the extraction of one document (waiting for an instance
	// included), on top of the caller's context: 0 means DefaultPDFTimeout. A document
	// that takes longer is clone.ErrTooLarge; its instance is killed mid-call.
	Timeout time.Duration
	// MaxMemoryBytes bounds the WebAssembly memory of one PDFium instance, so of one
	// document: 0 means DefaultPDFMaxMemoryBytes. A document that needs more fails
	// (clone.ErrInvalidInput). Rounded up to 64 KiB pages.
	MaxMemoryBytes int64
	// MaxInstances bounds the documents extracted at once by the runtime, each in its
	// own PDFium instance: 0 means runtime.GOMAXPROCS(0). Callers beyond it wait
	// (within Timeout). The runtime keeps one more instance started and unused, ready
	// for the next document.
	MaxInstances int
	// CompilationCacheDir, if set, keeps the compiled PDFium module in that directory
	// between processes (wazero's file cache), so only the first process pays the
	// compilation. "" means the environment variable CLONEISO_PDFIUM_CACHE_DIR, and
	// if that is unset too, compiling in every process. The directory holds native
	// code that runs outside the WebAssembly sandbox: it must be writable by this
	// process's user only.
	CompilationCacheDir string

	// wazeroTermination makes the runtime stop PDFium with wazero's termination
	// checks instead of the stop flag (for the tests of that fallback).
	wazeroTermination bool
}

func (o *PDFOptions) withDefaults() PDFOptions {
	var d PDFOptions
	if o != nil {
		d = *o
	}
	if d.MaxPages <= 0 {
		d.MaxPages = DefaultPDFMaxPages
	}
	if d.Timeout <= 0 {
		d.Timeout = DefaultPDFTimeout
	}
	if d.MaxMemoryBytes <= 0 {
		d.MaxMemoryBytes = DefaultPDFMaxMemoryBytes
	}
	if d.MaxInstances <= 0 {
		d.MaxInstances = runtime.GOMAXPROCS(0)
	}
	if d.CompilationCacheDir == "" {
		d.CompilationCacheDir = os.Getenv("CLONEISO_PDFIUM_CACHE_DIR")
	}
	return d
}

// pdfRuntime is one compiled PDFium module with its bounded pool of instances.
//
// Starting an instance (instantiating the module, PDFium's library and font set-up)
// costs about as much as extracting a short document, so the runtime keeps one fresh,
// never used instance ready: a document takes it if it is there, and its end starts
// a new one in the background. Every instance still serves one document only. slots
// bounds the documents extracted at once to MaxInstances; the pool allows one more
// instance, the ready one.
type pdfRuntime struct {
	once  sync.Once
	pool  pdfium.Pool
	err   error
	slots chan struct{}
	ready chan pdfium.Pdfium // holds at most one fresh instance
	warm  sync.Mutex         // held while an instance for ready is being started

	// stopFlag is whether the instances run the rewritten module, with their memory
	// from alloc: the time limit sets their stop flag. Otherwise they run under
	// wazero's termination checks, and the time limit kills them.
	stopFlag bool
	alloc    *mmapAllocator
}

// pdfRuntimeKey identifies a runtime: its memory limit, instance count and cache.
type pdfRuntimeKey struct {
	pages, instances  int64
	cacheDir          string
	wazeroTermination bool
}

// pdfRuntimes are the process's runtimes, one per key: every Registry with the same
// PDF limits shares one, compiled on its first PDF.
var (
	pdfMu       sync.Mutex
	pdfRuntimes = map[pdfRuntimeKey]*pdfRuntime{}
)

func sharedPDFRuntime(o *PDFOptions) *pdfRuntime {
	pages := (o.MaxMemoryBytes + 65535) / 65536
	key := pdfRuntimeKey{pages, int64(o.MaxInstances), o.CompilationCacheDir, o.wazeroTermination}
	pdfMu.Lock()
	defer pdfMu.Unlock()
	rt := pdfRuntimes[key]
	if rt == nil {
		rt = &pdfRuntime{}
		pdfRuntimes[key] = rt
	}
	return rt
}

func (rt *pdfRuntime) get(o *PDFOptions) (pdfium.Pool, error) {
	rt.once.Do(func() {
		pages := (o.MaxMemoryBytes + 65535) / 65536
		rc := wazero.NewRuntimeConfig().
			WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesExceptionHandling).
			WithMemoryLimitPages(uint32(min(pages, 65536)))
		// The time limit stops PDFium mid-call through the stop flag the rewritten
		// module checks in every loop (see interruptible), in memory that does not
		// move; failing either, through wazero's own checks, which cost more than
		// twice the CPU time.
		wasm, _, rerr := interruptible(pdfiumWASM, pdfStopFlagAddr)
		rt.alloc = newLinearMemoryAllocator()
		rt.stopFlag = rerr == nil && rt.alloc != nil && !o.wazeroTermination
		ctx := context.Background()
		if rt.stopFlag {
			ctx = experimental.WithMemoryAllocator(ctx, rt.alloc)
		} else {
			rc = rc.WithCloseOnContextDone(true)
			wasm = pdfiumWASM
		}
		if o.CompilationCacheDir != "" {
			cache, err := wazero.NewCompilationCacheWithDir(o.CompilationCacheDir)
			if err != nil {
				rt.err = err
				return
			}
			rc = rc.WithCompilationCache(cache)
		}
		rt.slots = make(chan struct{}, o.MaxInstances)
		rt.ready = make(chan pdfium.Pdfium, 1)
		rt.pool, rt.err = webassembly.InitWithWASM(webassembly.Config{
			Context:  ctx,
			WASM:     wasm,
			MinIdle:  0,
			MaxIdle:  o.MaxInstances + 1,
			MaxTotal: o.MaxInstances + 1, // the documents' instances and the ready one
			// No file system at all: documents are passed as bytes, and a PDF cannot
			// reach a host file through the sandbox.
			FSConfig:      wazero.NewFSConfig(),
			Stdout:        io.Discard,
			Stderr:        io.Discard,
			RuntimeConfig: rc,
			// A fresh instance per document: no state of one clone's PDF survives
			// into another's.
			ReuseWorkers: false,
		})
		if rt.err == nil {
			go rt.prepare()
		}
	})
	if rt.err != nil {
		return nil, errs.Wrap(errs.Unavailable, pdfOp, rt.err, "cannot start the PDFium WebAssembly runtime")
	}
	return rt.pool, nil
}

// stopFlagOf returns the address of inst's stop flag, in the memory of rt.alloc, or
// false if inst's memory is not one of the allocator's (or the flag is already set).
func (rt *pdfRuntime) stopFlagOf(inst pdfium.Pdfium) (*uint32, bool) {
	impl := reflect.ValueOf(inst.GetImplementation())
	if impl.Kind() != reflect.Pointer || impl.IsNil() || impl.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	mod := impl.Elem().FieldByName("Module")
	if !mod.IsValid() || mod.Kind() != reflect.Interface || mod.IsNil() {
		return nil, false
	}
	m := mod.MethodByName("Memory")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return nil, false
	}
	mem, ok := m.Call(nil)[0].Interface().(api.Memory)
	if !ok || mem.Size() < pdfStopFlagAddr+4 {
		return nil, false
	}
	buf, ok := mem.Read(0, mem.Size())
	if !ok || !rt.alloc.owns(buf) {
		return nil, false
	}
	flag := (*uint32)(unsafe.Pointer(&buf[pdfStopFlagAddr]))
	return flag, atomic.LoadUint32(flag) == 0
}

// instance returns a fresh instance for one document, holding one of the runtime's
// slots: the ready one if there is one, else a new one. release gives the slot back.
func (rt *pdfRuntime) instance(ctx context.Context) (inst *pdfInstance, release func(), err error) {
	select {
	case rt.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	release = func() {
		<-rt.slots
		go rt.prepare()
	}
	var pi pdfium.Pdfium
	select {
	case pi = <-rt.ready:
	default:
		// The pool has room: at most MaxInstances documents hold an instance, and
		// one more may be ready.
		pi, err = rt.pool.GetInstanceWithContext(ctx)
		if err != nil {
			release()
			return nil, nil, err
		}
	}
	inst = &pdfInstance{Pdfium: pi}
	if rt.stopFlag {
		flag, ok := rt.stopFlagOf(pi)
		if !ok {
			_ = pi.Kill()
			release()
			return nil, nil, errors.New("the PDFium instance's memory has no stop flag")
		}
		inst.flag = flag
	}
	return inst, release, nil
}

// prepare starts an instance for ready, unless one is there or being started.
func (rt *pdfRuntime) prepare() {
	if !rt.warm.TryLock() {
		return
	}
	defer rt.warm.Unlock()
	if len(rt.ready) > 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), DefaultPDFTimeout)
	defer cancel()
	inst, err := rt.pool.GetInstanceWithContext(ctx)
	if err != nil {
		return // the next document starts its own
	}
	select {
	case rt.ready <- inst:
	default:
		_ = inst.Close()
	}
}

const pdfOp = "extract.PDF"

// PDF is the extractor of TypePDF (see NewPDF). It is a PagedExtractor.
type PDF struct {
	o  PDFOptions
	rt *pdfRuntime
}

// NewPDF returns the PDF extractor: PDFium compiled to WebAssembly, embedded in the
// binary (github.com/klippa-app/go-pdfium/webassembly) and run by wazero, without
// cgo, system libraries or a file system. The module is compiled once per process,
// lazily, on the first PDF extracted (a few seconds), into a runtime shared by every
// extractor with the same MaxMemoryBytes and MaxInstances; each document then runs in
// a fresh instance from its bounded pool, with the memory, page and time limits of
// opts. One instance is kept started ahead of need (and never used twice), so that a
// document does not wait for PDFium's start-up.
//
// Errors: a file PDFium cannot parse (corrupt, truncated) is clone.ErrInvalidInput;
// a document that needs a password is clone.ErrUnsupported (documents encrypted
// with an empty user password, which any viewer opens, are read); too many pages or
// too long is clone.ErrTooLarge; the caller's cancelled context is clone.ErrCanceled
// (its passed deadline clone.ErrUnavailable). Nothing partial is returned, and the instance is discarded
// after every document.
func NewPDF(opts *PDFOptions) (*PDF, error) {
	o := opts.withDefaults()
	if o.MaxMemoryBytes < 16<<20 {
		return nil, errs.New(errs.InvalidInput, "extract.NewPDF", "MaxMemoryBytes of %d is below the 16 MiB PDFium needs", o.MaxMemoryBytes)
	}
	return &PDF{o: o, rt: sharedPDFRuntime(&o)}, nil
}

// Extract implements Extractor: the pages' text, separated by blank lines.
func (p *PDF) Extract(ctx context.Context, data []byte, params map[string]string) (string, error) {
	d, err := p.ExtractDocument(ctx, data, params)
	return d.Text, err
}

// ExtractDocument implements PagedExtractor: the text of every page, pages
// separated by blank lines, with the offset where each begins.
func (p *PDF) ExtractDocument(ctx context.Context, data []byte, _ map[string]string) (Document, error) {
	if !isPDF(data) {
		return Document{}, errs.New(errs.InvalidInput, pdfOp, "malformed PDF: no %%PDF- header")
	}
	if err := ctx.Err(); err != nil {
		return Document{}, callerGone(err)
	}
	if _, err := p.rt.get(&p.o); err != nil {
		return Document{}, err
	}
	dctx, cancel := context.WithTimeoutCause(ctx, p.o.Timeout, errPDFTimeout)
	defer cancel()
	inst, release, err := p.rt.instance(dctx)
	if err != nil {
		if dctx.Err() != nil {
			return Document{}, p.ctxErr(ctx, dctx)
		}
		return Document{}, errs.Wrap(errs.Unavailable, pdfOp, err, "no PDFium instance")
	}
	defer release()
	// When the deadline passes or the caller gives up, PDFium is stopped mid-call
	// (see watch) and the instance discarded.
	unwatch := p.rt.watch(dctx, inst)
	d, err := p.extract(dctx, inst, data)
	if unwatch() {
		return Document{}, p.ctxErr(ctx, dctx)
	}
	_ = inst.Close() // discards the instance: a fresh one serves the next document
	if err != nil {
		return Document{}, err
	}
	return d, nil
}

// pdfInstance is an instance serving one document, with the address of its stop
// flag (nil when the runtime uses wazero's termination checks).
type pdfInstance struct {
	pdfium.Pdfium
	flag *uint32
}

// watch stops inst when ctx ends while it runs: it sets the instance's stop flag,
// and sets it again every 10 ms in case PDFium cleared it, until unwatch is called;
// without a stop flag, it kills the instance (wazero's checks interrupt the call).
// unwatch returns whether ctx ended, in which case it has discarded inst; once it has
// returned, nothing touches inst's memory any more.
func (rt *pdfRuntime) watch(ctx context.Context, inst *pdfInstance) (unwatch func() bool) {
	if inst.flag == nil {
		killed := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(killed)
			_ = inst.Kill()
		})
		return func() bool {
			if stop() {
				return false
			}
			<-killed
			return true
		}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(exited)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			atomic.StoreUint32(inst.flag, 1)
			if pdfTestHookStopped != nil {
				pdfTestHookStopped()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() bool {
		if stop() {
			return false
		}
		close(done)
		<-exited
		// Kill closes the module (and unmaps its memory) without calling into it:
		// with the flag set, PDFium's clean-up would trap.
		_ = inst.Kill()
		return true
	}
}

// Test hooks: pdfTestHookStopped runs after the time limit has set a stop flag,
// pdfTestHookBeforePage and pdfTestHookAfterPage around the extraction of page i
// (from 0).
var (
	pdfTestHookStopped    func()
	pdfTestHookBeforePage func(i int)
	pdfTestHookAfterPage  func(i int, err error)
)

var errPDFTimeout = errors.New("PDF extraction timed out")

// callerGone classifies the caller's own context ending, as every store does:
// clone.ErrCanceled when it gave up, clone.ErrUnavailable when its deadline passed.
func callerGone(err error) error {
	k, _ := errs.ContextKind(err)
	return errs.Wrap(k, pdfOp, err, "the caller's context ended")
}

// ctxErr is the error of an extraction stopped by its context: the caller's
// cancellation, or the document's own time limit.
func (p *PDF) ctxErr(ctx, dctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return callerGone(err)
	}
	return errs.Wrap(errs.TooLarge, pdfOp, context.Cause(dctx), "the PDF takes longer than the limit of %s to extract", p.o.Timeout)
}

func (p *PDF) extract(ctx context.Context, inst *pdfInstance, data []byte) (Document, error) {
	doc, err := inst.OpenDocument(&requests.OpenDocument{File: &data})
	if err != nil {
		switch {
		case errors.Is(err, pdferrs.ErrPassword):
			return Document{}, errs.New(errs.Unsupported, pdfOp, "the PDF is encrypted with a password; decrypt it first")
		case errors.Is(err, pdferrs.ErrSecurity):
			return Document{}, errs.New(errs.Unsupported, pdfOp, "the PDF uses an unsupported encryption")
		}
		return Document{}, errs.Wrap(errs.InvalidInput, pdfOp, err, "malformed PDF: cannot open it")
	}
	defer inst.FPDF_CloseDocument(&requests.FPDF_CloseDocument{Document: doc.Document})
	pc, err := inst.FPDF_GetPageCount(&requests.FPDF_GetPageCount{Document: doc.Document})
	if err != nil {
		return Document{}, errs.Wrap(errs.InvalidInput, pdfOp, err, "malformed PDF: no page count")
	}
	if pc.PageCount > p.o.MaxPages {
		return Document{}, errs.New(errs.TooLarge, pdfOp, "the PDF has %d pages; the limit is %d", pc.PageCount, p.o.MaxPages)
	}
	var (
		b     strings.Builder
		pages = make([]int, 0, pc.PageCount)
		empty = 0 // empty pages not yet given an offset
	)
	for i := 0; i < pc.PageCount; i++ {
		if ctx.Err() != nil {
			return Document{}, ctx.Err()
		}
		if pdfTestHookBeforePage != nil {
			pdfTestHookBeforePage(i)
		}
		raw, err := pageText(inst, doc.Document, i)
		if pdfTestHookAfterPage != nil {
			pdfTestHookAfterPage(i, err)
		}
		if err != nil {
			return Document{}, errs.Wrap(errs.InvalidInput, pdfOp, err, "malformed PDF: cannot read page %d", i+1)
		}
		text := cleanPDFText(raw)
		if text == "" {
			empty++ // an empty page begins where the next text begins
			continue
		}
		if b.Len() > 0 {
			b.WriteString("\n\n")
		}
		for ; empty >= 0; empty-- {
			pages = append(pages, b.Len())
		}
		empty = 0
		b.WriteString(text)
		if b.Len() > DefaultMaxTextBytes*4 {
			return Document{}, errs.New(errs.TooLarge, pdfOp, "the PDF's text is over %d bytes", DefaultMaxTextBytes*4)
		}
	}
	for ; empty > 0; empty-- {
		pages = append(pages, b.Len())
	}
	return Document{Text: b.String(), Pages: pages}, nil
}

// pageText returns the text of page i (from 0) in one FPDFText_GetText call:
// go-pdfium's GetPageText makes one WebAssembly call per character, several times
// slower.
func pageText(inst pdfium.Pdfium, doc references.FPDF_DOCUMENT, i int) (string, error) {
	page, err := inst.FPDF_LoadPage(&requests.FPDF_LoadPage{Document: doc, Index: i})
	if err != nil {
		return "", err
	}
	defer inst.FPDF_ClosePage(&requests.FPDF_ClosePage{Page: page.Page})
	tp, err := inst.FPDFText_LoadPage(&requests.FPDFText_LoadPage{Page: requests.Page{ByReference: &page.Page}})
	if err != nil {
		return "", err
	}
	defer inst.FPDFText_ClosePage(&requests.FPDFText_ClosePage{TextPage: tp.TextPage})
	n, err := inst.FPDFText_CountChars(&requests.FPDFText_CountChars{TextPage: tp.TextPage})
	if err != nil || n.Count <= 0 {
		return "", err
	}
	t, err := inst.FPDFText_GetText(&requests.FPDFText_GetText{TextPage: tp.TextPage, StartIndex: 0, Count: n.Count})
	if err != nil {
		return "", err
	}
	return t.Text, nil
}

// cleanPDFText normalizes a page's text: CRLF and CR become LF, NUL and other C0
// controls (but tab and LF) are dropped, invalid UTF-8 replaced, white space at the
// ends trimmed.
func cleanPDFText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\r':
			return '\n'
		case r == '\t' || r == '\n':
			return r
		case r < 0x20 || r == 0x7f:
			return -1
		case r == '\uFFFE' || r == '\uFFFF':
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
