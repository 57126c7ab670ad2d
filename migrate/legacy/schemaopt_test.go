package legacy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// TestSchemaOptionNeedsSearchPath: with Config.Schema, a connection that does not
// resolve names in the SDK's schema first and the legacy schema next is refused, with
// the DSN parameter that fixes it, before anything is read or changed; bad schema
// names are refused by New.
func TestSchemaOptionNeedsSearchPath(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	cfg := legacytest.Config()
	cfg.Schema = "cloneiso"
	m, err := legacy.New(db.Owner.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, step := range map[string]func() error{
		"Plan":   func() error { _, err := m.Plan(ctx); return err },
		"Adopt":  func() error { _, err := m.Adopt(ctx); return err },
		"Status": func() error { _, err := m.Status(ctx); return err },
	} {
		err := step()
		if !errors.Is(err, clone.ErrInvalidInput) || !strings.Contains(err.Error(), "search_path=cloneiso,public") {
			t.Errorf("%s on a connection without the schema's search_path: %v", name, err)
		}
	}
	var n int
	if err := db.Owner.QueryRow("SELECT count(*) FROM pg_namespace WHERE nspname = 'cloneiso'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("schema cloneiso created (%d, %v) by a refused step", n, err)
	}
	for _, bad := range []legacy.Config{{Schema: "Bad Name"}, {Schema: "cloneiso", LegacySchema: "cloneiso"}, {LegacySchema: "public"}} {
		if _, err := legacy.New(db.Owner.DB, &bad); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("New(%+v): %v; want invalid input", bad, err)
		}
	}
}
