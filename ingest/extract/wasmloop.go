package extract

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The time limit of a PDF extraction stops PDFium in the middle of a call. wazero
// can do that itself (RuntimeConfig.WithCloseOnContextDone), but it does so with a
// call to a trampoline at the head of every loop iteration, which more than doubles
// PDFium's CPU time (see BENCHMARKS.md). Instead, interruptible rewrites the module so
// that every loop begins with a load of one word of linear memory, the stop flag,
// and traps (unreachable) if it is not zero: a load, a compare and a branch. To stop
// an instance, the host stores a non-zero word there; its running call traps at the
// next loop iteration, and the instance is discarded.
//
// Code without loops ends by itself: without tail calls (not enabled), unbounded
// recursion overflows the stack, which traps. The flag lies below the module's data
// (interruptible checks that no data segment covers it); only a stray write of
// PDFium itself could reach it, which at worst fails that document, or clears the
// flag, which the host then sets again (see pdfInstance.interrupt).

// pdfStopFlagAddr is the address of the stop flag in the module's linear memory.
// Emscripten places the module's data at 1024 and the stack and heap above it: the
// first KiB is never used but through null pointers, and the flag is put at its end.
const pdfStopFlagAddr = 1020

// interruptible returns a copy of the WebAssembly module wasm in which every loop
// starts with
//
//	i32.const flagAddr; i32.load; if; unreachable; end
//
// and the number of loops it rewrote. It refuses a module it cannot decode (an
// instruction it does not know), or whose data covers the flag: the caller then
// falls back to wazero's own termination checks.
func interruptible(wasm []byte, flagAddr uint32) ([]byte, int, error) {
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" || binary.LittleEndian.Uint32(wasm[4:8]) != 1 {
		return nil, 0, errors.New("not a WebAssembly 1 binary module")
	}
	out := make([]byte, 0, len(wasm)+len(wasm)/16)
	out = append(out, wasm[:8]...)
	loops := 0
	r := &wasmReader{b: wasm, p: 8}
	for r.p < len(wasm) {
		id := r.byte()
		size := r.u32()
		if r.err != nil || r.p+int(size) > len(wasm) {
			return nil, 0, errors.New("truncated section")
		}
		body := wasm[r.p : r.p+int(size)]
		r.p += int(size)
		switch id {
		case 10: // code
			code, n, err := rewriteCode(body, flagAddr)
			if err != nil {
				return nil, 0, err
			}
			loops += n
			body = code
		case 11: // data
			if err := checkData(body, flagAddr); err != nil {
				return nil, 0, err
			}
		}
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	return out, loops, nil
}

// checkData refuses a data section with an active segment that covers the flag or
// that it cannot place (an offset that is not a constant).
func checkData(sec []byte, flagAddr uint32) error {
	r := &wasmReader{b: sec}
	n := r.u32()
	for range n {
		flags := r.u32()
		if flags == 2 {
			r.u32() // memory index
		}
		if flags == 0 || flags == 2 {
			if r.byte() != 0x41 {
				return errors.New("a data segment's offset is not an i32.const")
			}
			off := uint32(r.s64())
			if r.byte() != 0x0b {
				return errors.New("a data segment's offset is not an i32.const")
			}
			l := r.u32()
			if uint64(off) < uint64(flagAddr)+4 && uint64(off)+uint64(l) > uint64(flagAddr) {
				return fmt.Errorf("a data segment at %d covers the stop flag at %d", off, flagAddr)
			}
			r.skip(int(l))
		} else {
			r.skip(int(r.u32()))
		}
		if r.err != nil {
			return r.err
		}
	}
	return r.err
}

// rewriteCode rewrites the code section: every function body, with the check after
// each loop instruction and its size re-encoded.
func rewriteCode(sec []byte, flagAddr uint32) ([]byte, int, error) {
	check := []byte{0x41} // i32.const flagAddr
	check = appendSleb(check, int64(flagAddr))
	check = append(check,
		0x28, 0x02, 0x00, // i32.load align=4 offset=0
		0x04, 0x40, // if (no result)
		0x00, // unreachable
		0x0b, // end
	)
	r := &wasmReader{b: sec}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(sec)+len(sec)/16), uint64(n))
	var fn []byte
	loops := 0
	for i := range n {
		size := r.u32()
		if r.err != nil || r.p+int(size) > len(sec) {
			return nil, 0, fmt.Errorf("function %d: truncated", i)
		}
		body := &wasmReader{b: sec[r.p : r.p+int(size)]}
		r.p += int(size)
		// Locals: a vector of (count, type).
		nl := body.u32()
		for range nl {
			body.u32()
			body.valType()
		}
		fn = append(fn[:0], body.b[:body.p]...)
		start := body.p
		for body.p < len(body.b) && body.err == nil {
			op := body.byte()
			if err := body.immediates(op); err != nil {
				return nil, 0, fmt.Errorf("function %d at %d: %w", i, body.p, err)
			}
			fn = append(fn, body.b[start:body.p]...)
			start = body.p
			if op == 0x03 { // loop
				fn = append(fn, check...)
				loops++
			}
		}
		if body.err != nil {
			return nil, 0, fmt.Errorf("function %d: %w", i, body.err)
		}
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	if r.err != nil || r.p != len(sec) {
		return nil, 0, errors.New("malformed code section")
	}
	return out, loops, nil
}

// wasmReader decodes a WebAssembly binary; the first error sticks.
type wasmReader struct {
	b   []byte
	p   int
	err error
}

var errTruncated = errors.New("truncated")

func (r *wasmReader) byte() byte {
	if r.p >= len(r.b) {
		r.err = errTruncated
		r.p = len(r.b)
		return 0
	}
	c := r.b[r.p]
	r.p++
	return c
}

func (r *wasmReader) skip(n int) {
	if n < 0 || r.p+n > len(r.b) {
		r.err = errTruncated
		r.p = len(r.b)
		return
	}
	r.p += n
}

func (r *wasmReader) u32() uint32 {
	v, n := binary.Uvarint(r.b[min(r.p, len(r.b)):])
	if n <= 0 || v > 1<<32-1 {
		r.err = errTruncated
		r.p = len(r.b)
		return 0
	}
	r.p += n
	return uint32(v)
}

// s64 reads a signed LEB128 integer of up to 64 bits (s32, s33 and s64 immediates).
func (r *wasmReader) s64() int64 {
	var v int64
	var shift uint
	for {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
		if shift >= 70 {
			r.err = errors.New("integer too long")
			return 0
		}
	}
}

// valType reads a value type: one byte for the types of WebAssembly 2.0 and the
// exception handling proposal (numeric, vector, funcref, externref, exnref).
func (r *wasmReader) valType() {
	switch c := r.byte(); c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69:
	default:
		if r.err == nil {
			r.err = fmt.Errorf("unknown value type 0x%x", c)
		}
	}
}

func (r *wasmReader) memarg() {
	align := r.u32()
	if align&0x40 != 0 { // multi-memory: a memory index follows
		r.u32()
	}
	r.u32() // offset
}

// immediates skips the immediates of the instruction op, or fails on an
// instruction it does not know.
func (r *wasmReader) immediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04 || op == 0x06: // block, loop, if, try
		r.s64() // block type: a value type, 0x40 or a type index (s33)
	case op == 0x07 || op == 0x08 || op == 0x09 || op == 0x18: // catch, throw, rethrow, delegate
		r.u32()
	case op == 0x0c || op == 0x0d: // br, br_if
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for range n + 1 {
			r.u32()
		}
	case op == 0x10 || op == 0x12: // call, return_call
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		n := r.u32()
		for range n {
			r.valType()
		}
	case op == 0x1f: // try_table
		r.s64()
		n := r.u32()
		for range n {
			switch k := r.byte(); k {
			case 0x00, 0x01: // catch, catch_ref: tag, label
				r.u32()
				r.u32()
			case 0x02, 0x03: // catch_all, catch_all_ref: label
				r.u32()
			default:
				return fmt.Errorf("unknown catch clause 0x%x", k)
			}
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get, table.set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41 || op == 0x42: // i32.const, i64.const
		r.s64()
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xd0: // ref.null: heap type
		r.s64()
	case op == 0xd2: // ref.func
		r.u32()
	case op == 0xfc:
		return r.miscImmediates()
	case op == 0xfd:
		return r.vectorImmediates()
	case op == 0xfe:
		if sub := r.u32(); sub == 0x03 { // atomic.fence
			r.byte()
		} else {
			r.memarg()
		}
	case op <= 0x01 || op == 0x05 || op == 0x0a || op == 0x0b || op == 0x0f || op == 0x19 ||
		op == 0x1a || op == 0x1b || (op >= 0x45 && op <= 0xc4) || op == 0xd1:
		// No immediates: unreachable, nop, else, throw_ref, end, return, catch_all,
		// drop, select, the numeric instructions, ref.is_null.
	default:
		return fmt.Errorf("unknown instruction 0x%x", op)
	}
	return r.err
}

func (r *wasmReader) miscImmediates() error {
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncations
	case sub == 8: // memory.init data memory
		r.u32()
		r.u32()
	case sub == 9: // data.drop
		r.u32()
	case sub == 10: // memory.copy
		r.u32()
		r.u32()
	case sub == 11: // memory.fill
		r.u32()
	case sub == 12 || sub == 14: // table.init, table.copy
		r.u32()
		r.u32()
	case sub == 13 || (sub >= 15 && sub <= 17): // elem.drop, table.grow/size/fill
		r.u32()
	default:
		return fmt.Errorf("unknown instruction 0xfc %d", sub)
	}
	return r.err
}

func (r *wasmReader) vectorImmediates() error {
	switch sub := r.u32(); {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads and stores
		r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 0x15 && sub <= 0x22: // extract_lane, replace_lane
		r.byte()
	case sub >= 0x54 && sub <= 0x5b: // load_lane, store_lane
		r.memarg()
		r.byte()
	case sub <= 0x113: // the other vector instructions (relaxed SIMD included)
	default:
		return fmt.Errorf("unknown instruction 0xfd %d", sub)
	}
	return r.err
}

func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
