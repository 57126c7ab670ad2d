package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
)

// TestExitCode: permanent errors (what the operator must change first) exit 2, transient
// ones (run again to resume) exit 3, whatever command returns them and however wrapped.
func TestExitCode(t *testing.T) {
	perm := func(k clone.Kind) error {
		return fmt.Errorf("objects copy: %w", &clone.Error{Kind: k, Op: "legacy.MigrateObjects", Msg: "x"})
	}
	cases := []struct {
		err  error
		want int
	}{
		{usagef("bad flag"), exitUsage},
		{perm(clone.ErrInvalidInput), exitUsage}, // a bad template, an undecided user
		{perm(clone.ErrConflict), exitUsage},     // a foreign key that does not hold
		{perm(clone.ErrInternal), exitUsage},     // a missing column
		{perm(clone.ErrTooLarge), exitUsage},     // oversized metadata
		{perm(clone.ErrForbidden), exitUsage},
		{perm(clone.ErrUnsupported), exitUsage},
		{perm(clone.ErrUnavailable), exitFailure},
		{perm(clone.ErrCanceled), exitFailure},
		{errors.New("connection reset"), exitFailure},
		{context.Canceled, exitFailure},
	}
	for _, c := range cases {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d; want %d", c.err, got, c.want)
		}
	}
}
