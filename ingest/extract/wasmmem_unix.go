//go:build unix

package extract

import (
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
)

// mmapMemory is the linear memory of one PDFium instance: its maximum size reserved
// at once (address space only, PROT_NONE), made readable and writable as the module
// grows it. It never moves, so the stop flag of the instance has a fixed address the
// host may store to while PDFium runs; the kernel hands it out zeroed, page by page,
// and it is returned to the system when the module closes (not left to the Go GC).
type mmapMemory struct {
	a         *mmapAllocator
	buf       []byte // the whole reservation
	committed int    // bytes made readable and writable
}

// mmapAllocator allocates mmapMemory and keeps the live ones by base address, so that
// the extractor can check that an instance's memory is one of them.
type mmapAllocator struct {
	mu        sync.Mutex
	live      map[uintptr]*mmapMemory
	committed atomic.Int64 // bytes made writable by the live memories
}

func newLinearMemoryAllocator() *mmapAllocator {
	return &mmapAllocator{live: map[uintptr]*mmapMemory{}}
}

// Allocate implements experimental.MemoryAllocator.
func (a *mmapAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	page := uint64(syscall.Getpagesize())
	size := (max + page - 1) / page * page
	buf, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_NONE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil || max == 0 || max > 4<<30 {
		// A memory that moves as it grows, which owns does not know: the extractor
		// does not use the instance.
		return &goMemory{}
	}
	m := &mmapMemory{a: a, buf: buf}
	a.mu.Lock()
	a.live[uintptr(unsafe.Pointer(&buf[0]))] = m
	a.mu.Unlock()
	return m
}

// goMemory is a linear memory in a Go slice, which moves as it grows.
type goMemory struct{ buf []byte }

func (m *goMemory) Reallocate(size uint64) []byte {
	if size > uint64(cap(m.buf)) {
		m.buf = append(m.buf[:cap(m.buf)], make([]byte, int(size)-cap(m.buf))...)
	}
	m.buf = m.buf[:size]
	return m.buf
}

func (m *goMemory) Free() { m.buf = nil }

// Reallocate implements experimental.LinearMemory: it never moves the memory.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if int(size) > m.committed {
		page := syscall.Getpagesize()
		end := min((int(size)+page-1)/page*page, len(m.buf))
		if err := syscall.Mprotect(m.buf[m.committed:end], syscall.PROT_READ|syscall.PROT_WRITE); err != nil {
			return nil
		}
		m.a.committed.Add(int64(end - m.committed))
		m.committed = end
	}
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *mmapMemory) Free() {
	if m.buf == nil {
		return
	}
	m.a.mu.Lock()
	delete(m.a.live, uintptr(unsafe.Pointer(&m.buf[0])))
	m.a.mu.Unlock()
	m.a.committed.Add(-int64(m.committed))
	_ = syscall.Munmap(m.buf)
	m.buf = nil
}

// owns reports whether b, a module's memory, begins one of the live allocations: a
// memory that does not move while it lives.
func (a *mmapAllocator) owns(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.live[uintptr(unsafe.Pointer(&b[0]))] != nil
}

// committedBytes returns the bytes the live memories may use (made writable).
func (a *mmapAllocator) committedBytes() int64 { return a.committed.Load() }
