//go:build unix

package memvector

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on path (created if needed), so that two
// processes never append to one log. The kernel releases it when the process dies.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errLocked
	}
	return f, nil
}
