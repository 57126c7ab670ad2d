package legacy_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// legacyDB returns a fresh database holding the legacy fixture, and a Migrator for it
// with batches small enough to make many of them.
func legacyDB(t *testing.T, batch int, hook func(ctx context.Context, point string, n int) error) (*pgtest.DB, *legacy.Migrator) {
	t.Helper()
	db := fixtureDB(t)
	return db, newMigrator(t, db, batch, hook)
}

// fixtureDB returns a fresh database holding the legacy fixture (legacytest.Create, one
// copy).
func fixtureDB(t *testing.T) *pgtest.DB {
	t.Helper()
	db := freshDB(t)
	if err := legacytest.Create(context.Background(), db.Owner, 1); err != nil {
		t.Fatal(err)
	}
	return db
}

// freshDB returns an empty database of the test's own. Commits do not wait for the
// disk there (synchronous_commit off, a per-database setting that changes no result):
// the tests commit thousands of small batches.
func freshDB(t *testing.T) *pgtest.DB {
	t.Helper()
	db := pgtest.Fresh(t, false)
	db.Owner.MustExec("ALTER DATABASE " + pq.QuoteIdentifier(db.Name) + " SET synchronous_commit = off")
	db.Owner.SetMaxIdleConns(0) // drop the connection opened before the setting
	db.Owner.SetMaxIdleConns(2)
	return db
}

func newMigrator(t *testing.T, db *pgtest.DB, batch int, hook func(ctx context.Context, point string, n int) error) *legacy.Migrator {
	t.Helper()
	cfg := legacytest.Config()
	cfg.BatchSize = batch
	if hook != nil {
		legacy.SetHook(&cfg, hook)
	}
	m, err := legacy.New(db.Owner.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func count(t *testing.T, db *pgtest.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Owner.Get(&n, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func mustAdopt(t *testing.T, m *legacy.Migrator) {
	t.Helper()
	if _, err := m.Adopt(context.Background()); err != nil {
		t.Fatalf("adopt: %v", err)
	}
}

func kinds(r *legacy.VerifyReport) map[string]int {
	out := map[string]int{}
	for _, d := range r.Discrepancies {
		out[d.Kind]++
	}
	return out
}

// TestFullMigration runs the whole SQL path on the fixture: plan, the enforcement refused
// before adoption and before the backfill, backfill, a no-op second run, verify, rows
// without a user reported and blocking enforcement until resolved, enforcement, and then
// the database behaves like a fresh install for the application role.
func TestFullMigration(t *testing.T) {
	ctx := context.Background()
	db, m := legacyDB(t, 13, nil)

	// Plan on the pristine legacy database changes nothing.
	p, err := m.Plan(ctx)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if p.Users != legacytest.Users || len(p.NewUsers) != legacytest.Users {
		t.Fatalf("plan: %d users, %d new; want %d", p.Users, len(p.NewUsers), legacytest.Users)
	}
	if p.WithoutUser != legacytest.OrphanDocs+legacytest.OrphanNotes {
		t.Fatalf("plan: %d rows without a user; want %d", p.WithoutUser, legacytest.OrphanDocs+legacytest.OrphanNotes)
	}
	var planned int64
	for _, tp := range p.Tables {
		if tp.Table == "training_examples" {
			if tp.Exists {
				t.Fatal("plan: training_examples exists in the fixture")
			}
			continue
		}
		n := count(t, db, "SELECT count(*) FROM "+tp.Table)
		if tp.Rows != n {
			t.Fatalf("plan: %s has %d rows; want %d", tp.Table, tp.Rows, n)
		}
		var perUser int64
		for _, u := range tp.Users {
			perUser += u.ToBackfill
		}
		if perUser != tp.ToBackfill || tp.ToBackfill+tp.WithoutUser != tp.Rows {
			t.Fatalf("plan: %s: per-user %d, to backfill %d, without user %d, rows %d", tp.Table, perUser, tp.ToBackfill, tp.WithoutUser, tp.Rows)
		}
		planned += tp.ToBackfill
	}
	if planned != p.RowsToBackfill || planned == 0 {
		t.Fatalf("plan: %d rows to backfill, tables sum to %d", p.RowsToBackfill, planned)
	}
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cloneiso%' OR tablename = 'tenants'"); n != 0 {
		t.Fatalf("plan created %d tables", n)
	}

	// Enforcement refuses before adoption, and before the backfill.
	if _, err := m.Enforce(ctx); err == nil || !strings.Contains(err.Error(), "adopt") {
		t.Fatalf("enforce before adopt: %v", err)
	}
	rep, err := m.Adopt(ctx)
	if err != nil {
		t.Fatalf("adopt: %v", err)
	}
	if !slices.Contains(rep.MissingTables, "training_examples") || !slices.Contains(rep.CreatedTables, "tenants") {
		t.Fatalf("adopt report %+v", rep)
	}
	if _, err := m.Adopt(ctx); err != nil {
		t.Fatalf("adopt again: %v", err)
	}
	_, err = m.Enforce(ctx)
	if !errors.Is(err, legacy.ErrIncomplete) || !errors.Is(err, clone.ErrConflict) {
		t.Fatalf("enforce before backfill: %v", err)
	}
	for _, want := range []string{"refusing to enforce", "documents:", "notes:", "without a user"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("enforce refusal %q lacks %q", err, want)
		}
	}
	if n := count(t, db, "SELECT count(*) FROM pg_tables WHERE tablename = 'training_examples'"); n != 0 {
		t.Fatal("a refused enforcement left changes behind")
	}

	// Backfill, then a second run that changes nothing.
	br, err := m.Backfill(ctx, nil)
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if br.Updated() != p.RowsToBackfill {
		t.Fatalf("backfill updated %d rows; plan said %d", br.Updated(), p.RowsToBackfill)
	}
	if br.Provision.Provisioned != legacytest.Users {
		t.Fatalf("provisioned %d users", br.Provision.Provisioned)
	}
	if n := count(t, db, "SELECT count(*) FROM clones WHERE user_id IS NOT NULL"); n != legacytest.Users {
		t.Fatalf("%d clones record a legacy user; want %d (one per user, users without rows included)", n, legacytest.Users)
	}
	if n := count(t, db, "SELECT count(*) FROM tenants t JOIN tenant_members m ON m.tenant_id = t.id AND m.role = 'owner' WHERE t.plan = 'solo'"); n != legacytest.Users {
		t.Fatalf("%d solo tenants with an owner", n)
	}
	for _, restart := range []bool{false, true} {
		again, err := m.Backfill(ctx, &legacy.BackfillOptions{Restart: restart})
		if err != nil {
			t.Fatalf("second backfill: %v", err)
		}
		if again.Updated() != 0 || again.Provision.Provisioned != 0 {
			t.Fatalf("second backfill (restart %v) changed %d rows, provisioned %d users", restart, again.Updated(), again.Provision.Provisioned)
		}
	}
	p2, err := m.Plan(ctx)
	if err != nil || p2.RowsToBackfill != 0 || len(p2.NewUsers) != 0 {
		t.Fatalf("plan after backfill: %+v, %v", p2, err)
	}

	// Verify: everything in place except the rows without a user.
	vr, err := m.Verify(ctx)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if k := kinds(vr); len(k) != 1 || k[legacy.DiscrepancyWithoutUser] != 2 {
		t.Fatalf("verify after backfill: %v\n%s", k, vr)
	}
	for _, tv := range vr.Tables {
		if tv.RowsBefore != tv.RowsAfter {
			t.Fatalf("%s: %d rows before, %d after", tv.Table, tv.RowsBefore, tv.RowsAfter)
		}
	}
	if _, err := m.Enforce(ctx); !errors.Is(err, legacy.ErrIncomplete) || !strings.Contains(err.Error(), "7 rows without a clone (7 of them without a user)") {
		t.Fatalf("enforce with rows without a user: %v", err)
	}

	// The operator resolves them (here: deletes them), re-takes the snapshot, verifies.
	db.Owner.MustExec("DELETE FROM documents WHERE user_id IS NULL; DELETE FROM notes WHERE owner = ''")
	vr, err = m.Verify(ctx)
	if err != nil || kinds(vr)[legacy.DiscrepancyCount] != 2 {
		t.Fatalf("verify after deleting rows must report the changed counts: %v\n%s", err, vr)
	}
	if err := m.RetakeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if vr, err = m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("verify: %v\n%s", err, vr)
	}

	er, err := m.Enforce(ctx)
	if err != nil {
		t.Fatalf("enforce: %v", err)
	}
	if !slices.Contains(er.CreatedTables, "training_examples") {
		t.Fatalf("enforce report %+v", er)
	}
	if er2, err := m.Enforce(ctx); err != nil || !er2.AlreadyEnforced {
		t.Fatalf("enforce again: %+v, %v", er2, err)
	}
	if vr, err = m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("verify after enforce (as owner/superuser): %v\n%s", err, vr)
	}
	checkEnforced(t, db, m)
}

// checkEnforced: the schema is the fresh install's for the application: version recorded,
// keys led by tenant_id, RLS checked by migrate.CheckIsolation, each clone sees exactly its
// user's rows.
func checkEnforced(t *testing.T, db *pgtest.DB, m *legacy.Migrator) {
	t.Helper()
	ctx := context.Background()
	prov, err := migrate.NewProvider(db.Owner.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := prov.HasPending(ctx); err != nil || pending {
		t.Fatalf("pending migrations after enforce: %v, %v", pending, err)
	}
	for _, tbl := range append(migrate.CloneOwnedTables(), legacytest.HostTable) {
		var first string
		if err := db.Owner.Get(&first, `SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
			WHERE c.conrelid = $1::regclass AND c.contype = 'p'`, tbl); err != nil || first != "tenant_id" {
			t.Fatalf("%s: primary key leads with %q (%v)", tbl, first, err)
		}
	}
	if err := db.Grant(ctx); err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec("GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO " + pgtest.AppRole)
	rep, err := migrate.CheckIsolation(ctx, db.App.DB, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || !slices.Contains(rep.Tables, legacytest.HostTable) {
		t.Fatalf("CheckIsolation after enforce: %s (tables %v)", rep, rep.Tables)
	}
	users, err := m.Users(ctx)
	if err != nil || len(users) != legacytest.Users {
		t.Fatalf("users: %d, %v", len(users), err)
	}
	for _, u := range users[:5] {
		for _, tbl := range []string{"documents", "messages", "notes"} {
			col := "user_id"
			if tbl == "notes" {
				col = "owner"
			}
			want := count(t, db, "SELECT count(*) FROM "+tbl+" WHERE "+col+" = $1", u.UserID)
			tx := db.App.MustBegin()
			tx.MustExec("SELECT set_config('cloneiso.tenant_id', $1, true), set_config('cloneiso.clone_id', $2, true)", u.TenantID.String(), u.CloneID.String())
			var got int64
			if err := tx.Get(&got, "SELECT count(*) FROM "+tbl); err != nil {
				t.Fatal(err)
			}
			tx.Rollback()
			if got != want {
				t.Fatalf("clone of %s sees %d %s rows; its user has %d", u.UserID, got, tbl, want)
			}
		}
	}
	var unscoped int64
	if err := db.App.Get(&unscoped, "SELECT count(*) FROM documents"); err != nil || unscoped != 0 {
		t.Fatalf("app role without a clone sees %d documents (%v)", unscoped, err)
	}
}

// TestTamperDetected: after a clean backfill, Verify catches a row moved to another
// clone, a row moved to another user, a changed row, a deleted row, a child moved away
// from its parent, and a broken user→clone mapping.
func TestTamperDetected(t *testing.T) {
	ctx := context.Background()
	db, m := legacyDB(t, 500, nil)
	mustAdopt(t, m)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec("DELETE FROM documents WHERE user_id IS NULL; DELETE FROM notes WHERE owner = ''")
	if err := m.RetakeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if vr, err := m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("clean verify: %v\n%s", err, vr)
	}
	u1, u2 := legacytest.UserID(1), legacytest.UserID(2)
	clonesOf := func(u string) string {
		return "(SELECT to_tenant_id, to_clone_id FROM cloneiso_legacy_users WHERE user_id = '" + u + "')"
	}
	// Each tamper saves what it changes in a table of its own (not configured, so not
	// verified), and its undo restores it from there.
	cases := []struct {
		name, tamper, undo string
		want               string // discrepancy kind
		user               string
	}{
		{"row moved to another user's clone",
			"CREATE TABLE tampered AS SELECT id FROM insights WHERE user_id = 'u001' LIMIT 1; UPDATE insights SET (tenant_id, clone_id) = " + clonesOf("u002") + " WHERE id IN (SELECT id FROM tampered)",
			"UPDATE insights SET (tenant_id, clone_id) = " + clonesOf("u001") + " WHERE id IN (SELECT id FROM tampered)",
			legacy.DiscrepancyWrongClone, u1},
		{"row moved to another user entirely",
			"CREATE TABLE tampered AS SELECT id FROM insights WHERE user_id = 'u001' LIMIT 1; UPDATE insights SET user_id = 'u002', (tenant_id, clone_id) = " + clonesOf("u002") + " WHERE id IN (SELECT id FROM tampered)",
			"UPDATE insights SET user_id = 'u001', (tenant_id, clone_id) = " + clonesOf("u001") + " WHERE id IN (SELECT id FROM tampered)",
			legacy.DiscrepancyCount, u2},
		{"row content changed",
			"CREATE TABLE tampered AS SELECT * FROM notes WHERE note_id = 1001; UPDATE notes SET body = body || '!' WHERE note_id = 1001",
			"UPDATE notes SET body = (SELECT body FROM tampered) WHERE note_id = 1001",
			legacy.DiscrepancyChecksum, u1},
		{"row lost its clone",
			"CREATE TABLE tampered AS SELECT id FROM messages WHERE user_id = 'u002' LIMIT 1; UPDATE messages SET clone_id = NULL WHERE id IN (SELECT id FROM tampered)",
			"UPDATE messages SET (tenant_id, clone_id) = " + clonesOf("u002") + " WHERE id IN (SELECT id FROM tampered)",
			legacy.DiscrepancyWithoutClone, u2},
		{"child moved away from its parent",
			"CREATE TABLE tampered AS SELECT id FROM messages WHERE user_id = 'u004' LIMIT 1; UPDATE messages SET user_id = 'u003', (tenant_id, clone_id) = " + clonesOf("u003") + " WHERE id IN (SELECT id FROM tampered)",
			"UPDATE messages SET user_id = 'u004', (tenant_id, clone_id) = " + clonesOf("u004") + " WHERE id IN (SELECT id FROM tampered)",
			legacy.DiscrepancyParent, ""},
		{"row deleted",
			"CREATE TABLE tampered AS SELECT * FROM document_chunks WHERE user_id = 'u005' AND ordinal = 0; DELETE FROM document_chunks WHERE (document_id, ordinal) IN (SELECT document_id, ordinal FROM tampered)",
			"INSERT INTO document_chunks SELECT * FROM tampered",
			legacy.DiscrepancyCount, legacytest.UserID(5)},
		{"clone lost its legacy user",
			"CREATE TABLE tampered AS SELECT to_clone_id AS id FROM cloneiso_legacy_users WHERE user_id = 'u006'; UPDATE clones SET user_id = NULL WHERE id IN (SELECT id FROM tampered)",
			"UPDATE clones SET user_id = 'u006' WHERE id IN (SELECT id FROM tampered)",
			legacy.DiscrepancyMapping, legacytest.UserID(6)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db.Owner.MustExec(c.tamper)
			defer db.Owner.MustExec(c.undo + "; DROP TABLE tampered")
			vr, err := m.Verify(ctx)
			if err != nil {
				t.Fatal(err)
			}
			found := slices.ContainsFunc(vr.Discrepancies, func(d legacy.Discrepancy) bool {
				return d.Kind == c.want && (c.user == "" || d.UserID == c.user)
			})
			if !found {
				t.Fatalf("tamper %q not reported as %s for user %q:\n%s", c.name, c.want, c.user, vr)
			}
		})
		if vr, err := m.Verify(ctx); err != nil || !vr.OK() {
			t.Fatalf("after undoing %q: %v\n%s", c.name, err, vr)
		}
	}
}

func state(t *testing.T, db *pgtest.DB) map[string]string {
	t.Helper()
	cfg := legacytest.Config()
	st, err := legacytest.State(context.Background(), db.Owner, cfg.Tables)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestKillAndResume interrupts the backfill at many different points — while
// provisioning, between a clone's creation and its recording, inside the snapshot,
// inside a batch before its commit, after a commit, between tables, and by cancelling
// the context at random moments — and checks that a rerun ends exactly where an
// uninterrupted run does, and that a further run changes nothing.
func TestKillAndResume(t *testing.T) {
	ctx := context.Background()
	const batch = 11
	refDB, ref := legacyDB(t, batch, nil)
	mustAdopt(t, ref)
	if _, err := ref.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	want := state(t, refDB)
	refReport, err := ref.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}

	errKilled := errors.New("killed")
	points := []struct {
		point string
		n     int
	}{
		{"provision", 17},
		{"provision-recorded", 3},
		{"snapshot-before-commit:document_chunks", 0},
		{"table", 2},
		{"batch-start:documents", 4},
		{"batch-before-commit:documents", 2},
		{"batch-before-commit:messages", 0},
		{"batch-committed:insights", 5},
		{"batch-committed:notes", 3},
	}
	for _, kp := range points {
		t.Run(fmt.Sprintf("%s#%d", kp.point, kp.n), func(t *testing.T) {
			killed := false
			db, m := legacyDB(t, batch, func(ctx context.Context, point string, n int) error {
				if !killed && point == kp.point && n == kp.n {
					killed = true
					return errKilled
				}
				return ctx.Err()
			})
			mustAdopt(t, m)
			if _, err := m.Backfill(ctx, nil); !errors.Is(err, errKilled) {
				t.Fatalf("backfill was not killed at %s#%d: %v", kp.point, kp.n, err)
			}
			resumeAndCompare(t, db, batch, want, refReport)
		})
	}

	// Two backfills started together (two operators, two terminals): the second waits
	// for the first and then finds nothing to do.
	t.Run("concurrent runs", func(t *testing.T) {
		db, m1 := legacyDB(t, batch, nil)
		mustAdopt(t, m1)
		m2 := newMigrator(t, db, batch, nil)
		errc := make(chan error, 2)
		updated := make(chan int64, 2)
		for _, m := range []*legacy.Migrator{m1, m2} {
			go func() {
				rep, err := m.Backfill(ctx, nil)
				errc <- err
				if rep != nil {
					updated <- rep.Updated()
				}
			}()
		}
		var total int64
		for range 2 {
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			total += <-updated
		}
		p, _ := m1.Plan(ctx)
		if total+p.RowsToBackfill == 0 || p.RowsToBackfill != 0 {
			t.Fatalf("concurrent runs updated %d rows; %d left", total, p.RowsToBackfill)
		}
		resumeAndCompare(t, db, batch, want, refReport)
	})

	// Random kills: cancel the context after a pseudo-random number of hook points,
	// several times in a row on one database, until a run completes.
	t.Run("random cancellations", func(t *testing.T) {
		db := fixtureDB(t)
		seeds := []int{37, 5, 111, 64, 2, 250, 19}
		kills := 0
		for i := 0; ; i++ {
			rctx, cancel := context.WithCancel(ctx)
			calls := 0
			limit := 1 << 30
			if i < len(seeds) {
				limit = seeds[i]
			}
			m := newMigrator(t, db, batch, func(ctx context.Context, point string, n int) error {
				calls++
				if calls == limit {
					cancel() // the next statement fails, as if the process died mid-flight
				}
				return nil
			})
			if i == 0 {
				mustAdopt(t, m)
			}
			_, err := m.Backfill(rctx, nil)
			cancel()
			if err == nil {
				break
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("run %d: %v", i, err)
			}
			kills++
		}
		if kills < 5 {
			t.Fatalf("only %d runs were interrupted", kills)
		}
		resumeAndCompare(t, db, batch, want, refReport)
	})
}

func resumeAndCompare(t *testing.T, db *pgtest.DB, batch int, want map[string]string, refReport *legacy.VerifyReport) {
	t.Helper()
	ctx := context.Background()
	m := newMigrator(t, db, batch, nil)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatalf("resume: %v", err)
	}
	got := state(t, db)
	if !maps.Equal(got, want) {
		for k := range want {
			if got[k] != want[k] {
				t.Errorf("%s differs from the uninterrupted run:\n got %.200s\nwant %.200s", k, got[k], want[k])
			}
		}
		t.FailNow()
	}
	again, err := m.Backfill(ctx, &legacy.BackfillOptions{Restart: true})
	if err != nil || again.Updated() != 0 || again.Provision.Provisioned != 0 {
		t.Fatalf("run after resume changed %v rows: %v", again, err)
	}
	vr, err := m.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(kinds(vr), kinds(refReport)) || len(vr.Discrepancies) != len(refReport.Discrepancies) {
		t.Fatalf("verify after resume:\n%s\nuninterrupted:\n%s", vr, refReport)
	}
}
