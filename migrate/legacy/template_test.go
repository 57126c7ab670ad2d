package legacy_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

func TestKeyTemplate(t *testing.T) {
	for _, bad := range []string{"", "users/{name}", "users/{user_id}", "users/{name}/{user_id}", "users//{user_id}/{name}",
		"u-{user_id}/{name}", "{user_id}/{kind}/{kind}/{name}",
		// Issue 21 item 3: the operator's template without {name}, and bad placeholders.
		"uploads/{user_id}/{yyyy}/{mm}/{file}", "uploads/{user_id}/{Year}/{name}", "{user_id}/{yyyy}/{yyyy}/{name}"} {
		if _, _, _, _, err := legacy.MatchKey(bad, "", "x/y/z"); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
	if _, _, _, _, err := legacy.MatchKey("users/{user_id}/{name}", "Not A Kind", "x"); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("invalid fixed kind: %v", err)
	}
	if _, _, _, _, err := legacy.MatchKey("uploads/{user_id}/{yyyy}/{mm}/{file}", "", "x"); !errors.Is(err, clone.ErrInvalidInput) ||
		!strings.Contains(err.Error(), "{name}") {
		t.Errorf("template without {name}: %v", err)
	}
	cases := []struct {
		template, key, user, kind, name string
		ok                              bool
	}{
		{"users/{user_id}/{kind}/{name}", "users/u1/documents/a.txt", "u1", "documents", "a.txt", true},
		{"users/{user_id}/{kind}/{name}", "users/u1/uploads/2024/05/a.bin", "u1", "uploads", "2024/05/a.bin", true},
		{"users/{user_id}/{kind}/{name}", "users/u1/documents", "", "", "", false},
		{"users/{user_id}/{kind}/{name}", "people/u1/documents/a", "", "", "", false},
		{"users/{user_id}/{name}", "users/42/report.pdf", "42", legacy.DefaultObjectKind, "report.pdf", true},
		{"{user_id}/files/{name}", "abc/files/x/y", "abc", legacy.DefaultObjectKind, "x/y", true},
		{"{user_id}/files/{name}", "abc/other/x", "", "", "", false},
		// Placeholders other than {user_id}, {kind} and {name} match one segment each,
		// kept at the start of the name.
		{"uploads/{user_id}/{yyyy}/{mm}/{name}", "uploads/42/2024/05/scan.pdf", "42", legacy.DefaultObjectKind, "2024/05/scan.pdf", true},
		{"uploads/{user_id}/{yyyy}/{mm}/{name}", "uploads/42/2024/scan.pdf", "", "", "", false},
		{"{yyyy}/{user_id}/{kind}/{name}", "2024/u1/exports/a/b.csv", "u1", "exports", "2024/a/b.csv", true},
	}
	for _, c := range cases {
		user, kind, name, ok, err := legacy.MatchKey(c.template, "", c.key)
		if err != nil {
			t.Fatalf("%s: %v", c.template, err)
		}
		if ok != c.ok || ok && (user != c.user || kind != c.kind || name != c.name) {
			t.Errorf("%s ~ %s = (%q, %q, %q, %v); want (%q, %q, %q, %v)", c.template, c.key, user, kind, name, ok, c.user, c.kind, c.name, c.ok)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	// Without a database New fails anyway ("no database"), after the configuration is
	// checked: each case must be refused for its own fault.
	for name, c := range map[string]struct {
		cfg  legacy.Config
		want string
	}{
		"table without name":      {legacy.Config{Tables: []legacy.Table{{}}}, "has no name"},
		"table twice":             {legacy.Config{Tables: []legacy.Table{{Name: "a"}, {Name: "a"}}}, "listed twice"},
		"control-plane table":     {legacy.Config{Tables: []legacy.Table{{Name: "clones"}}}, "not a clone-owned table"},
		"membership table":        {legacy.Config{Tables: []legacy.Table{{Name: "tenant_members"}}}, "not a clone-owned table"},
		"audit table":             {legacy.Config{Tables: []legacy.Table{{Name: "audit_events"}}}, "not a clone-owned table"},
		"audit chain table":       {legacy.Config{Tables: []legacy.Table{{Name: "audit_chain_heads"}}}, "not a clone-owned table"},
		"break-glass table":       {legacy.Config{Tables: []legacy.Table{{Name: "break_glass_grants"}}}, "not a clone-owned table"},
		"bookkeeping table":       {legacy.Config{Tables: []legacy.Table{{Name: "cloneiso_legacy_users"}}}, "not a clone-owned table"},
		"template without a user": {legacy.Config{SubjectTemplate: "everyone"}, "does not contain {user_id}"},
		"valid":                   {legacy.Config{Tables: []legacy.Table{{Name: "documents"}}}, "no database"},
	} {
		_, err := legacy.New(nil, &c.cfg)
		if !errors.Is(err, clone.ErrInvalidInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid input: ...%s", name, err, c.want)
		}
	}
}

// The legacy path is PostgreSQL only; SQLite is refused with a typed error.
func TestSQLiteRefused(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := legacy.New(db, nil); !errors.Is(err, clone.ErrUnsupported) {
		t.Fatalf("New on SQLite: %v", err)
	}
}

// An SDK table that exists but is left out of the configuration would end up without
// row-level security: enforcement refuses.
func TestEnforceRefusesUnconfiguredSDKTable(t *testing.T) {
	ctx := context.Background()
	db, _ := legacyDB(t, 500, nil)
	cfg := legacytest.Config()
	cfg.Tables = slices.DeleteFunc(cfg.Tables, func(t legacy.Table) bool { return t.Name == "insights" })
	m, err := legacy.New(db.Owner.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustAdopt(t, m)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec("DELETE FROM documents WHERE user_id IS NULL; DELETE FROM notes WHERE owner = ''")
	if _, err := m.Enforce(ctx); !errors.Is(err, legacy.ErrIncomplete) || !strings.Contains(err.Error(), "insights: an SDK table that exists but is not configured") {
		t.Fatalf("enforce: %v", err)
	}
}
