package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/legacytest"
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

// TestRewriteKeysPermanentError: a permanent error of objects rewrite-keys (here a
// configured object key column that does not exist) exits 2 and never tells the
// operator to run again to resume, which only a transient error (exit 3) may say.
func TestRewriteKeysPermanentError(t *testing.T) {
	db := fixtureDB(t)
	cfg := legacytest.Config()
	for i := range cfg.Tables {
		if cfg.Tables[i].Name == legacytest.HostTable {
			cfg.Tables[i].ObjectKeyColumn = "attachment_key" // no such column
		}
	}
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": writeConfig(t, cfg)}}
	c.run(exitOK, "up")
	_, errOut := c.run(exitUsage, "objects", "rewrite-keys")
	mustContain(t, errOut, "attachment_key", "permanent error")
	if strings.Contains(errOut, "run again") || strings.Contains(errOut, "resume") {
		t.Fatalf("a permanent error tells the operator to run again:\n%s", errOut)
	}
}
