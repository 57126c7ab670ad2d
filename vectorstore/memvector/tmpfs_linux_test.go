//go:build linux

package memvector_test

import "syscall"

// onTmpfs reports whether dir is on tmpfs.
func onTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == 0x01021994
}
