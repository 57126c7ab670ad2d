//go:build !unix

package extract

import "github.com/tetratelabs/wazero/experimental"

// Without mmap, linear memories are wazero's own (Go slices that move as they grow):
// the stop flag cannot be stored to while PDFium runs, and the extractor uses
// wazero's termination checks instead.
type mmapAllocator struct{}

func newLinearMemoryAllocator() *mmapAllocator { return nil }

func (a *mmapAllocator) Allocate(_, _ uint64) experimental.LinearMemory { return nil }
func (a *mmapAllocator) owns([]byte) bool                               { return false }
func (a *mmapAllocator) committedBytes() int64                          { return 0 }
