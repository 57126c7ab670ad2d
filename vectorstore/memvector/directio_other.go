//go:build !linux

package memvector

import (
	"errors"
	"os"
)

var errNoDirect = errors.New("memvector: no direct I/O on this platform")

// openDirect fails: the log is written through the page cache here.
func openDirect(string) (*os.File, error) { return nil, errNoDirect }

func directUnsupported(err error) bool { return errors.Is(err, errNoDirect) }
