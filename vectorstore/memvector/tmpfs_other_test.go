//go:build !linux

package memvector_test

// onTmpfs reports true: direct I/O is only used on Linux, so the direct tests skip.
func onTmpfs(string) bool { return true }
