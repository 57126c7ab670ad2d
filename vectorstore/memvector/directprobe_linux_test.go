//go:build linux

package memvector_test

import (
	"os"
	"path/filepath"
	"syscall"
)

// directIOWorks reports whether the file system of dir takes a direct-I/O write,
// found independently of the package: a file opened with O_DIRECT and one aligned
// 4 KiB block written to it.
func directIOWorks(dir string) bool {
	path := filepath.Join(dir, "direct-probe")
	defer os.Remove(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|syscall.O_DIRECT, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	buf, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return false
	}
	defer syscall.Munmap(buf)
	_, err = f.WriteAt(buf, 0)
	return err == nil
}
