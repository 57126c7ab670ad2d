//go:build !linux

package memvector_test

// directIOWorks reports false: the package uses direct I/O only on Linux.
func directIOWorks(string) bool { return false }
