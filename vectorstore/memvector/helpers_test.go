package memvector_test

import (
	"os"
	"path/filepath"
)

// tempPath returns a file path in a fresh temporary directory, for examples (which have
// no *testing.T).
func tempPath() string {
	dir, err := os.MkdirTemp("", "memvector-example")
	if err != nil {
		panic(err)
	}
	return filepath.Join(dir, "index")
}
