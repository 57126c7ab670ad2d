package legacy_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cloneiso/cloneiso/internal/pgtest"
)

// schemaOf describes every table of the current schema: its columns, types and
// nullability, and its row count.
func schemaOf(t *testing.T, db *pgtest.DB) map[string]string {
	t.Helper()
	var rows []struct {
		Table string `db:"table_name"`
		Cols  string `db:"cols"`
	}
	if err := db.Owner.Select(&rows, `SELECT table_name, string_agg(column_name || ' ' || data_type || ' ' || is_nullable, ', ' ORDER BY ordinal_position) AS cols
		FROM information_schema.columns WHERE table_schema = current_schema() GROUP BY table_name`); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		var n int64
		db.Owner.Get(&n, "SELECT count(*) FROM "+r.Table)
		out[r.Table] = r.Cols
		out[r.Table+" rows"] = fmt.Sprint(n)
	}
	return out
}

// TestRollbackBeforeEnforce: the script of RollbackSQL brings the database back to the
// legacy schema (same tables, columns and NOT NULLs; same rows) after adopt and a
// backfill; once enforced, RollbackSQL refuses.
func TestRollbackBeforeEnforce(t *testing.T) {
	ctx := context.Background()
	db, m := legacyDB(t, 500, nil)
	before := schemaOf(t, db)
	mustAdopt(t, m)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	script, err := m.RollbackSQL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec(script)
	after := schemaOf(t, db)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s after rollback:\n got %s\nwant %s", k, after[k], v)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s left behind by the rollback", k)
		}
	}
	if t.Failed() {
		t.Fatalf("script:\n%s", script)
	}

	// Adopt again, migrate to the end: now only a backup goes back.
	mustAdopt(t, m)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec("DELETE FROM documents WHERE user_id IS NULL; DELETE FROM notes WHERE owner = ''")
	if err := m.RetakeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.RollbackSQL(ctx); err == nil {
		t.Fatal("RollbackSQL after enforcement succeeded")
	}
}
