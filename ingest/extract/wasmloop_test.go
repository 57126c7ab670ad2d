//go:build unix

package extract

import (
	"context"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// spinModule is a WebAssembly module that imports env.started and exports
//
//	spin(): calls started, then loops for ever;
//	sum(n i32) i32: 0+1+...+(n-1), in a loop.
//
// With data, it has an active data segment of 8 bytes at 12.
func spinModule(data bool) []byte {
	section := func(id byte, body ...byte) []byte {
		return append(binary.AppendUvarint([]byte{id}, uint64(len(body))), body...)
	}
	name := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, 3, 0x60, 0, 0, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 0, 0)...) // types: ()->(), (i32)->i32, ()->()
	imp := append([]byte{1}, name("env")...)
	imp = append(append(imp, name("started")...), 0, 0)
	m = append(m, section(2, imp...)...)
	m = append(m, section(3, 2, 2, 1)...) // functions 1 (spin) and 2 (sum)
	m = append(m, section(5, 1, 0, 1)...) // memory: min 1 page
	exp := append([]byte{2}, name("spin")...)
	exp = append(exp, 0, 1)
	exp = append(append(exp, name("sum")...), 0, 2)
	m = append(m, section(7, exp...)...)
	spin := []byte{0, // no locals
		0x10, 0, // call started
		0x03, 0x40, // loop
		0x0c, 0, // br 0
		0x0b, // end
		0x0b}
	// sum, written out: loop { acc += i; i++; br_if (i < n) }.
	sum := []byte{1, 2, 0x7f, // locals i, acc (i32)
		0x03, 0x40, // loop
		0x20, 2, 0x20, 1, 0x6a, 0x21, 2, // acc = acc + i
		0x20, 1, 0x41, 1, 0x6a, 0x21, 1, // i = i + 1
		0x20, 1, 0x20, 0, 0x48, 0x0d, 0, // br_if 0 (i < n)
		0x0b,    // end loop
		0x20, 2, // acc
		0x0b}
	code := []byte{2}
	code = append(binary.AppendUvarint(code, uint64(len(spin))), spin...)
	code = append(binary.AppendUvarint(code, uint64(len(sum))), sum...)
	m = append(m, section(10, code...)...)
	if data {
		m = append(m, section(11, 1, 0, 0x41, 12, 0x0b, 8, 1, 2, 3, 4, 5, 6, 7, 8)...)
	}
	return m
}

// TestInterruptible runs a module that loops for ever, rewritten by interruptible,
// under wazero without its termination checks, and stops it by storing to the stop
// flag while it runs: the call traps. Against the module as it was (no check in its
// loop), the call never returns and the test times out.
func TestInterruptible(t *testing.T) {
	const flagAddr = 64
	wasm, loops, err := interruptible(spinModule(false), flagAddr)
	if err != nil || loops != 2 {
		t.Fatalf("interruptible: %d loops, %v", loops, err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2))
	defer rt.Close(ctx)
	started := make(chan struct{})
	if _, err := rt.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(context.Context) { close(started) }).Export("started").
		Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	alloc := newLinearMemoryAllocator()
	mod, err := rt.InstantiateWithConfig(experimental.WithMemoryAllocator(ctx, alloc), wasm, wazero.NewModuleConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The loops still compute what they did.
	if r, err := mod.ExportedFunction("sum").Call(ctx, 10); err != nil || r[0] != 45 {
		t.Fatalf("sum(10) = %v, %v; want 45", r, err)
	}
	buf, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok || !alloc.owns(buf) || alloc.committedBytes() != 65536 {
		t.Fatalf("memory not from the allocator: %v %d", ok, alloc.committedBytes())
	}
	flag := (*uint32)(unsafe.Pointer(&buf[flagAddr]))
	errc := make(chan error, 1)
	go func() {
		_, err := mod.ExportedFunction("spin").Call(ctx)
		errc <- err
	}()
	<-started
	atomic.StoreUint32(flag, 1)
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("spin stopped with %v; want the unreachable trap", err)
	}
	// With the flag set, every loop traps at once.
	if _, err := mod.ExportedFunction("sum").Call(ctx, 10); err == nil {
		t.Fatal("sum ran with the stop flag set")
	}
	if err := mod.Close(ctx); err != nil || alloc.owns(buf) || alloc.committedBytes() != 0 {
		t.Fatalf("close: %v; memory still live", err)
	}
}

// TestInterruptibleRefuses: a module whose data covers the flag, or with an
// instruction the rewriter does not know, is refused (the extractor then uses
// wazero's termination checks).
func TestInterruptibleRefuses(t *testing.T) {
	if _, _, err := interruptible(spinModule(true), 16); err == nil {
		t.Error("data over the flag accepted")
	}
	if _, n, err := interruptible(spinModule(true), 64); err != nil || n != 2 {
		t.Errorf("data below the flag: %d, %v", n, err)
	}
	bad := spinModule(false)
	i := strings.Index(string(bad), "\x0c\x00\x0b\x0b") // spin's br 0
	bad[i] = 0xc5                                       // not an instruction
	if _, _, err := interruptible(bad, 64); err == nil || !strings.Contains(err.Error(), "unknown instruction") {
		t.Errorf("unknown instruction: %v", err)
	}
	if _, _, err := interruptible([]byte("\x00asm\x02\x00\x00\x00"), 64); err == nil {
		t.Error("version 2 accepted")
	}
	// The module go-pdfium embeds is rewritten: every loop of PDFium checks the flag.
	if _, n, err := interruptible(pdfiumWASM, pdfStopFlagAddr); err != nil || n < 1000 {
		t.Errorf("PDFium: %d loops, %v", n, err)
	}
}

// TestPDFMinMemory: PDFMinMemoryBytes leaves room above the initial linear memory
// the embedded module declares (a module that starts larger would fail every
// document of an extractor NewPDF accepted).
func TestPDFMinMemory(t *testing.T) {
	r := &wasmReader{b: pdfiumWASM, p: 8}
	for r.p < len(r.b) && r.err == nil {
		id, size := r.byte(), r.u32()
		if id != 5 {
			r.skip(int(size))
			continue
		}
		if n := r.u32(); n != 1 {
			t.Fatalf("%d memories", n)
		}
		r.byte() // limits flags
		if min := uint64(r.u32()) << 16; r.err != nil || min+4<<20 > PDFMinMemoryBytes {
			t.Fatalf("initial memory %d bytes (%v); PDFMinMemoryBytes %d leaves less than 4 MiB", min, r.err, PDFMinMemoryBytes)
		}
		return
	}
	t.Fatalf("no memory section (%v)", r.err)
}
