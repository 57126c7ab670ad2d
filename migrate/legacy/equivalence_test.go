package legacy_test

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

// describe lists, for one table, what the application relies on: its columns (name,
// type, nullability, default), primary key, foreign keys and check constraints by
// definition, indexes by definition, row-level security flags and policies.
func describe(t *testing.T, db *pgtest.DB, table string) []string {
	t.Helper()
	var out []string
	q := func(kind, query string) {
		var rows []string
		if err := db.Owner.Select(&rows, query, table); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for _, r := range rows {
			out = append(out, kind+" "+r)
		}
	}
	q("column", `SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = $1`)
	q("constraint", `SELECT contype::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass AND contype IN ('p', 'f', 'c', 'u')`)
	q("index", `SELECT regexp_replace(pg_get_indexdef(i.indexrelid), 'INDEX \S+ ON', 'INDEX ON') FROM pg_index i WHERE i.indrelid = $1::regclass AND NOT i.indisprimary`)
	q("rls", `SELECT relrowsecurity::text || ' ' || relforcerowsecurity::text FROM pg_class WHERE oid = $1::regclass`)
	q("policy", `SELECT polname::text || ' ' || polcmd::text || ' ' || pg_get_expr(polqual, polrelid) || ' ' || pg_get_expr(polwithcheck, polrelid) FROM pg_policy WHERE polrelid = $1::regclass`)
	slices.Sort(out)
	return out
}

// TestEnforcedEqualsFreshInstall: after adopt, backfill and enforce, each SDK table and
// the control plane have the fresh install's columns, keys, checks, indexes and
// row-level security (plus what the legacy schema had on its own: its user index and
// its foreign key to its users table).
func TestEnforcedEqualsFreshInstall(t *testing.T) {
	ctx := context.Background()
	db, m := legacyDB(t, 500, nil)
	mustAdopt(t, m)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec("DELETE FROM documents WHERE user_id IS NULL; DELETE FROM notes WHERE owner = ''")
	if _, err := m.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := pgtest.Fresh(t, true)
	legacyOnly := regexp.MustCompile(`ON public.documents USING btree \(user_id\)|REFERENCES users\(id\)`)
	tables := append(migrate.CloneOwnedTables(), "tenants", "clones", "tenant_members", "clone_grants", "audit_events")
	for _, tbl := range tables {
		want := describe(t, fresh, tbl)
		got := slices.DeleteFunc(describe(t, db, tbl), func(s string) bool { return legacyOnly.MatchString(s) })
		if !slices.Equal(got, want) {
			var missing, extra []string
			for _, w := range want {
				if !slices.Contains(got, w) {
					missing = append(missing, w)
				}
			}
			for _, g := range got {
				if !slices.Contains(want, g) {
					extra = append(extra, g)
				}
			}
			t.Errorf("%s differs from a fresh install:\n  missing: %s\n  extra:   %s", tbl, strings.Join(missing, "\n           "), strings.Join(extra, "\n           "))
		}
	}
}
