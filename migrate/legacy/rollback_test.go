package legacy_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/tenant"
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

// TestUnprovisionableUsers: a user whose subject is invalid and one whose tenant is
// suspended are reported, never guessed; every other user is migrated; verification
// and enforcement point at them.
func TestUnprovisionableUsers(t *testing.T) {
	ctx := context.Background()
	db, m := legacyDB(t, 500, nil)
	mustAdopt(t, m)
	db.Owner.MustExec(`INSERT INTO users (id, email) VALUES (E'bad\x01user', 'x@example.com');
		INSERT INTO insights (id, user_id, content) VALUES (gen_random_uuid(), E'bad\x01user', 'orphaned by a bad id')`)
	st, err := tenant.NewStore(db.Owner.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ProvisionSolo(ctx, "u002"); err != nil { // u002 signed in already ...
		t.Fatal(err)
	}
	db.Owner.MustExec("UPDATE tenants SET status = 'suspended' WHERE signup_subject = 'u002'") // ... and was suspended

	rep, err := m.Backfill(ctx, nil)
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if len(rep.Provision.Failed) != 2 || rep.Provision.Provisioned != legacytest.Users-1 {
		t.Fatalf("provisioned %d, failed %v", rep.Provision.Provisioned, rep.Provision.Failed)
	}
	vr, err := m.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unprov := map[string]bool{}
	for _, d := range vr.Discrepancies {
		if d.Kind == legacy.DiscrepancyUnprovisioned {
			unprov[d.UserID] = true
		}
	}
	if !unprov["u002"] || !unprov["bad\x01user"] || kinds(vr)[legacy.DiscrepancyWithoutClone] == 0 {
		t.Fatalf("verify:\n%s", vr)
	}
	if _, err := m.Enforce(ctx); !errors.Is(err, legacy.ErrIncomplete) {
		t.Fatalf("enforce: %v", err)
	}
}
