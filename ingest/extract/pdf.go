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

	"github.com/google/uuid"
	"github.com/klippa-app/go-pdfium"
	pdferrs "github.com/klippa-app/go-pdfium/errors"
	"github.com/klippa-app/go-pdfium/references"
	"github.com/klippa-app/go-pdfium/requests"
	"github.com/klippa-app/go-pdfium/webassembly"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Defaults of PDFOptions.
const (
	DefaultPDFMaxPages       = 2000
	DefaultPDFTimeout        = 60 * time.Second
	DefaultPDFMaxMemoryBytes = 512 << 20
	// PDFMinMemoryBytes is the least PDFOptions.MaxMemoryBytes: the module's initial
	// linear memory (18.2 MiB) and room to open a document.
	PDFMinMemoryBytes = 24 << 20
	// DefaultPDFDocumentsPerInstance is PDFOptions.DocumentsPerInstance's default.
	DefaultPDFDocumentsPerInstance = 16
)

// pdfParkMaxBytes bounds the linear memory of an instance kept for its clone's next
// document: one that grew larger is discarded.
const pdfParkMaxBytes = 64 << 20

// PDFOptions bound the PDF extractor; zero fields mean the defaults.
type PDFOptions struct {
	// MaxPages bounds the pages of a document: 0 means DefaultPDFMaxPages. A longer
	// document is clone.ErrTooLarge.
	MaxPages int
	// Timeout bounds the extraction of one document (waiting for an instance
	// included), on top of the caller's context: 0 means DefaultPDFTimeout. A document
	// that takes longer is clone.ErrTooLarge; PDFium is stopped mid-call (see
	// NewPDF) and its instance discarded.
	Timeout time.Duration
	// MaxMemoryBytes bounds the WebAssembly memory of one PDFium instance, so of one
	// document: 0 means DefaultPDFMaxMemoryBytes. A document that needs more fails
	// (clone.ErrInvalidInput). Rounded up to 64 KiB pages; at least PDFMinMemoryBytes
	// (NewPDF refuses less with clone.ErrInvalidInput). On Unix systems it is
	// reserved as address space when the instance starts and made writable as PDFium
	// grows its memory, outside the Go heap; it is unmapped when the instance ends.
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
	// DocumentsPerInstance bounds the documents of one clone that one instance may
	// extract in a row: 0 means DefaultPDFDocumentsPerInstance; 1 gives every
	// document a fresh instance. An instance is reused only for a document of the
	// same clone (tenant and clone ID), named by the context (clone.WithContext),
	// never for another clone or a context without one. See NewPDF.
	DocumentsPerInstance int

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
	if d.DocumentsPerInstance <= 0 {
		d.DocumentsPerInstance = DefaultPDFDocumentsPerInstance
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

	// parked are instances kept for their clone's next document: at most one per
	// clone, at most MaxInstances in all (the pool allows that many more).
	mu        sync.Mutex
	parked    map[pdfCloneKey]*pdfInstance
	parkSeq   uint64
	maxParked int
}

// pdfCloneKey names the clone whose documents an instance may serve.
type pdfCloneKey struct{ tenant, clone uuid.UUID }

// cloneKeyOf returns the clone of ctx, if it names one.
func cloneKeyOf(ctx context.Context) (pdfCloneKey, bool) {
	cc, err := clone.FromContext(ctx)
	if err != nil || !cc.Valid() {
		return pdfCloneKey{}, false
	}
	return pdfCloneKey{cc.TenantID(), cc.CloneID()}, true
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
		rt.parked = map[pdfCloneKey]*pdfInstance{}
		rt.maxParked = o.MaxInstances
		rt.ready = make(chan pdfium.Pdfium, 1)
		rt.pool, rt.err = webassembly.InitWithWASM(webassembly.Config{
			Context: ctx,
			WASM:    wasm,
			MinIdle: 0,
			MaxIdle: 2*o.MaxInstances + 1,
			// The documents' instances, the ready one and the parked ones.
			MaxTotal: 2*o.MaxInstances + 1,
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

// memoryOf returns inst's linear memory (go-pdfium does not expose it but through
// its implementation's Module field).
func memoryOf(inst pdfium.Pdfium) (api.Memory, bool) {
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
	return mem, ok && mem != nil
}

// stopFlagOf returns the address of the stop flag in mem, an instance's memory, or
// false if mem is not one of rt.alloc's (or the flag is already set).
func (rt *pdfRuntime) stopFlagOf(mem api.Memory) (*uint32, bool) {
	if mem.Size() < pdfStopFlagAddr+4 {
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
func (rt *pdfRuntime) instance(ctx context.Context, key pdfCloneKey, keyed bool) (inst *pdfInstance, release func(), err error) {
	select {
	case rt.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	release = func() {
		<-rt.slots
		go rt.prepare()
	}
	if keyed {
		rt.mu.Lock()
		inst = rt.parked[key]
		delete(rt.parked, key)
		rt.mu.Unlock()
		if inst != nil {
			return inst, release, nil
		}
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
	inst = &pdfInstance{Pdfium: pi, clone: key, keyed: keyed}
	mem, ok := memoryOf(pi)
	if ok {
		inst.mem = mem
	}
	if rt.stopFlag {
		var flag *uint32
		if ok {
			flag, ok = rt.stopFlagOf(mem)
		}
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
// an instance from its bounded pool, with the memory, page and time limits of opts.
// One fresh instance is kept started ahead of need, so that a document does not wait
// for PDFium's start-up.
//
// Instances and clones: an instance holds the state of the documents it has read
// (its linear memory, PDFium's caches), so it serves one clone only. When the
// context names a clone (clone.WithContext; ingest.Pipeline does so), the instance
// that extracted a document of that clone without error is kept for that clone's
// next document, up to DocumentsPerInstance documents, saving the instance's
// start-up (a fifth of the CPU time of a 20-page document). It is never given to a
// document of another clone, of the same clone ID in another tenant, or to a
// context without a clone (those get a fresh instance, discarded after the
// document), and it is discarded after any error, after the time limit or the
// caller stopped it, after DocumentsPerInstance documents, when its memory grew over
// 64 MiB, or when MaxInstances instances are already kept. So a document, however
// malicious, can influence the extraction of its own clone's later documents at
// most, never another clone's: what instances of different clones share is the
// compiled code (read-only) and the Go host.
//
// The time limit (and the caller's cancellation) stops PDFium in the middle of a
// call: before compiling it, the extractor rewrites the module so that every loop
// first reads a stop flag in the instance's linear memory and traps if it is set,
// and sets that flag when the limit passes; the instance is then discarded. (wazero's
// own way, RuntimeConfig.WithCloseOnContextDone, calls out of the compiled code at
// every loop iteration and more than doubled PDFium's CPU time.) Where the module
// cannot be rewritten, or linear memory cannot be mapped so that it never moves
// (outside Unix), the extractor falls back to wazero's way.
//
// Errors: a file PDFium cannot parse (corrupt, truncated) is clone.ErrInvalidInput;
// a document that needs a password is clone.ErrUnsupported (documents encrypted
// with an empty user password, which any viewer opens, are read); too many pages or
// too long is clone.ErrTooLarge; the caller's cancelled context is clone.ErrCanceled
// (its passed deadline clone.ErrUnavailable). Nothing partial is returned.
func NewPDF(opts *PDFOptions) (*PDF, error) {
	o := opts.withDefaults()
	if o.MaxMemoryBytes < PDFMinMemoryBytes {
		return nil, errs.New(errs.InvalidInput, "extract.NewPDF", "MaxMemoryBytes of %d is below the %d MiB PDFium needs", o.MaxMemoryBytes, PDFMinMemoryBytes>>20)
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
	key, keyed := cloneKeyOf(ctx)
	inst, release, err := p.rt.instance(dctx, key, keyed)
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
	if pdfTestHookDone != nil && inst.flag != nil {
		pdfTestHookDone(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(inst.flag), -4)), 4))
	}
	if err != nil {
		_ = inst.Close() // discards the instance after any error
		return Document{}, err
	}
	if !p.rt.park(inst, p.o.DocumentsPerInstance) {
		_ = inst.Close()
	}
	return d, nil
}

// pdfInstance is an instance serving one document, with the address of its stop
// flag (nil when the runtime uses wazero's termination checks).
type pdfInstance struct {
	pdfium.Pdfium
	flag  *uint32
	mem   api.Memory  // nil if go-pdfium does not show it: the instance is not parked
	clone pdfCloneKey // the only clone it serves, if keyed
	keyed bool
	docs  int    // documents extracted
	seq   uint64 // when it was parked
}

// park keeps inst, which has just extracted a document of its clone without error,
// for that clone's next document, unless it has served max documents, its memory
// has grown over pdfParkMaxBytes, its stop flag is set, or it serves no clone. When
// the runtime already keeps MaxInstances instances, the longest kept one is
// discarded. It reports whether inst was kept (else the caller discards it).
func (rt *pdfRuntime) park(inst *pdfInstance, max int) bool {
	inst.docs++
	if !inst.keyed || inst.mem == nil || inst.docs >= max || inst.mem.Size() > pdfParkMaxBytes ||
		inst.flag != nil && atomic.LoadUint32(inst.flag) != 0 {
		return false
	}
	rt.mu.Lock()
	if old := rt.parked[inst.clone]; old != nil { // another document of the clone ran alongside
		rt.mu.Unlock()
		return false
	}
	var evict *pdfInstance
	if len(rt.parked) >= rt.maxParked {
		for _, p := range rt.parked {
			if evict == nil || p.seq < evict.seq {
				evict = p
			}
		}
		delete(rt.parked, evict.clone)
	}
	rt.parkSeq++
	inst.seq = rt.parkSeq
	rt.parked[inst.clone] = inst
	rt.mu.Unlock()
	if evict != nil {
		_ = evict.Close()
	}
	return true
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
// pdfTestHookDone after an extraction that was not stopped, with the 4 bytes of its
// instance's linear memory below the stop flag (unused: a test marks the instance
// there),
// pdfTestHookBeforePage and pdfTestHookAfterPage around the extraction of page i
// (from 0).
var (
	pdfTestHookStopped    func()
	pdfTestHookDone       func(flag []byte)
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
