//go:build !unix

package memvector

import "os"

// lockFile only creates path: this platform has no advisory locks here, so keeping two
// processes off one index is the application's job.
func lockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}
