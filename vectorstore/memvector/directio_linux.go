//go:build linux

package memvector

import (
	"errors"
	"os"
	"syscall"
)

// openDirect creates (or truncates) the file at path for direct I/O: writes go from
// the caller's buffer to the disk, bypassing the page cache. They must start at
// offsets, and have lengths and buffer addresses, that are multiples of blockSize.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_DIRECT, 0o600)
}

// directUnsupported reports whether err says that the file system cannot do direct
// I/O (tmpfs refuses O_DIRECT when opening; others refuse the first write).
func directUnsupported(err error) bool { return errors.Is(err, syscall.EINVAL) }
