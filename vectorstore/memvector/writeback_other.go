//go:build !linux || !(amd64 || arm64)

package memvector

import "os"

// startWriteback is a no-op where the kernel offers no way to start the write-back
// of a file range without waiting for it.
func startWriteback(*os.File, int64, int64) {}

// waitWriteback is a no-op there too: the fsync that follows writes everything.
func waitWriteback(*os.File, int64, int64) {}
