//go:build linux && (amd64 || arm64)

package memvector

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing n bytes of f at off to the disk,
// without waiting (sync_file_range with SYNC_FILE_RANGE_WRITE): a hint that makes
// the next fsync shorter, never a substitute for it.
func startWriteback(f *os.File, off, n int64) {
	if skipSync.Load() {
		return
	}
	const syncFileRangeWrite = 2 // SYNC_FILE_RANGE_WRITE
	if c, err := f.SyscallConn(); err == nil {
		_ = c.Control(func(fd uintptr) {
			syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
		})
	}
}
