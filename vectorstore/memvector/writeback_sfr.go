//go:build linux && (amd64 || arm64)

package memvector

import (
	"os"
	"syscall"
)

// sync_file_range flags.
const (
	syncFileRangeWaitBefore = 1
	syncFileRangeWrite      = 2
	syncFileRangeWaitAfter  = 4
)

// startWriteback asks the kernel to start writing n bytes of f at off to the disk,
// without waiting (sync_file_range with SYNC_FILE_RANGE_WRITE): a hint that makes
// the next fsync shorter, never a substitute for it.
func startWriteback(f *os.File, off, n int64) { syncFileRange(f, off, n, syncFileRangeWrite) }

// waitWriteback writes n bytes of f at off to the disk and waits until they are
// written (not a substitute for fsync either: it neither flushes the disk's cache nor
// writes the file's metadata).
func waitWriteback(f *os.File, off, n int64) {
	syncFileRange(f, off, n, syncFileRangeWaitBefore|syncFileRangeWrite|syncFileRangeWaitAfter)
}

func syncFileRange(f *os.File, off, n int64, flags uintptr) {
	if skipSync.Load() || n <= 0 {
		return
	}
	if c, err := f.SyscallConn(); err == nil {
		_ = c.Control(func(fd uintptr) {
			syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), flags, 0, 0)
		})
	}
}
