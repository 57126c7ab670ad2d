package legacy_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// strayUsersSQL adds, to the legacy fixture, rows of a hard-deleted user (u999: absent
// from the users table) and rows of an upper-case spelling of an existing user (U001),
// as a legacy application that never normalized its IDs leaves them.
const strayUsersSQL = `
INSERT INTO insights (id, user_id, content) VALUES
  ('99999999-0000-0000-0000-000000000001', 'u999', 'deleted user 1'),
  ('99999999-0000-0000-0000-000000000002', 'u999', 'deleted user 2'),
  ('99999999-0000-0000-0000-000000000003', 'U001', 'upper-case spelling 1'),
  ('99999999-0000-0000-0000-000000000004', 'U001', 'upper-case spelling 2');
INSERT INTO conversations (id, user_id, title) VALUES
  ('99999999-0000-0000-0000-000000000010', 'u999', 'deleted user''s conversation'),
  ('99999999-0000-0000-0000-000000000011', 'U001', 'upper-case conversation');
INSERT INTO messages (conversation_id, id, user_id, role, content) VALUES
  ('99999999-0000-0000-0000-000000000010', '99999999-0000-0000-0000-000000000020', 'u999', 'user', 'hello'),
  ('99999999-0000-0000-0000-000000000010', '99999999-0000-0000-0000-000000000021', 'u999', 'assistant', 'hi'),
  ('99999999-0000-0000-0000-000000000011', '99999999-0000-0000-0000-000000000022', 'U001', 'user', 'HELLO');
`

func decidedMigrator(t *testing.T, db *pgtest.DB, decisions map[string]legacy.UserDecision, withoutUser string) *legacy.Migrator {
	t.Helper()
	cfg := legacytest.Config()
	cfg.BatchSize = 50
	cfg.UserDecisions = decisions
	cfg.WithoutUser = withoutUser
	m, err := legacy.New(db.Owner.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestUserDecisions: IDs of a deleted user and a non-canonical spelling are listed by
// Plan and block the backfill, changing nothing, until decided; then the spelling's rows
// land in the real user's clone, the deleted user's rows and the rows without a user are
// set aside (not lost: verify accounts for them, RestoreQuarantined and the rollback
// script put them back), and no clone is created for either ID.
func TestUserDecisions(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(strayUsersSQL)
	pristine := schemaOf(t, db)

	m := decidedMigrator(t, db, nil, "")
	p, err := m.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.UserIssues) != 2 {
		t.Fatalf("plan lists %d user issues; want U001 and u999: %v", len(p.UserIssues), p.UserIssues)
	}
	up, del := p.UserIssues[0], p.UserIssues[1]
	if up.UserID != "U001" || up.Problem != legacy.IssueNonCanonical || !slices.Equal(up.Canonical, []string{"u001"}) || up.Rows != 4 || up.Decision != nil {
		t.Fatalf("plan: %+v", up)
	}
	if del.UserID != "u999" || del.Problem != legacy.IssueUnknown || del.Rows != 5 || del.Decision != nil {
		t.Fatalf("plan: %+v", del)
	}

	mustAdopt(t, m)
	_, err = m.Backfill(ctx, nil)
	if !errors.Is(err, legacy.ErrUndecided) || clone.KindOf(err) != clone.ErrInvalidInput {
		t.Fatalf("backfill with undecided IDs: %v (kind %v)", err, clone.KindOf(err))
	}
	for _, want := range []string{`"U001": non-canonical, 4 rows (known as "u001")`, `"u999": unknown, 5 rows`, "user_decisions"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("refusal %q lacks %q", err, want)
		}
	}
	if n := count(t, db, "SELECT count(*) FROM clones") + count(t, db, "SELECT count(*) FROM cloneiso_legacy_snapshot"); n != 0 {
		t.Fatalf("the refused backfill left %d clones and snapshot rows", n)
	}

	// A map to a user that does not exist is refused too.
	bad := decidedMigrator(t, db, map[string]legacy.UserDecision{"U001": {Action: legacy.DecisionMap, To: "u998"}, "u999": {Action: legacy.DecisionDrop}}, "")
	if _, err := bad.Backfill(ctx, nil); clone.KindOf(err) != clone.ErrInvalidInput || !strings.Contains(err.Error(), "u998") {
		t.Fatalf("backfill mapping to an unknown user: %v", err)
	}

	decisions := map[string]legacy.UserDecision{"U001": {Action: legacy.DecisionMap, To: "u001"}, "u999": {Action: legacy.DecisionQuarantine}}
	m = decidedMigrator(t, db, decisions, legacy.DecisionQuarantine)
	rep, err := m.Backfill(ctx, nil)
	if err != nil {
		t.Fatalf("backfill: %v", err)
	}
	if rep.Quarantined["insights"] != 2 || rep.Quarantined["messages"] != 2 || rep.Quarantined["conversations"] != 1 ||
		rep.Quarantined["documents"] != legacytest.OrphanDocs || rep.Quarantined["notes"] != legacytest.OrphanNotes {
		t.Fatalf("quarantined %v", rep.Quarantined)
	}
	if n := count(t, db, "SELECT count(*) FROM clones WHERE user_id IS NOT NULL"); n != legacytest.Users {
		t.Fatalf("%d clones; want one per user of the users table (%d), none for U001 or u999", n, legacytest.Users)
	}
	if n := count(t, db, "SELECT count(*) FROM clones WHERE user_id IN ('U001', 'u999')"); n != 0 {
		t.Fatalf("%d clones for U001 or u999", n)
	}
	if n := count(t, db, "SELECT count(*) FROM insights WHERE user_id = 'u999'") + count(t, db, "SELECT count(*) FROM documents WHERE user_id IS NULL"); n != 0 {
		t.Fatalf("%d rows of u999 or without a user remain in their tables", n)
	}
	// U001's rows are in u001's clone.
	if n := count(t, db, `SELECT count(*) FROM insights i JOIN cloneiso_legacy_users m ON m.user_id = 'u001'
		WHERE i.user_id = 'U001' AND i.tenant_id = m.to_tenant_id AND i.clone_id = m.to_clone_id`); n != 2 {
		t.Fatalf("%d of U001's 2 insights are in u001's clone", n)
	}
	vr, err := m.Verify(ctx)
	if err != nil || !vr.OK() {
		t.Fatalf("verify after decided backfill: %v\n%s", err, vr)
	}
	again, err := m.Backfill(ctx, &legacy.BackfillOptions{Restart: true})
	if err != nil || again.Updated() != 0 {
		t.Fatalf("second backfill: %+v, %v", again, err)
	}
	for tbl, n := range again.Quarantined {
		if n != 0 {
			t.Fatalf("second backfill set aside %d more rows of %s", n, tbl)
		}
	}

	// A row of U001 moved to u002's clone is caught: the check follows the mapping.
	db.Owner.MustExec(`UPDATE insights SET (tenant_id, clone_id) = (SELECT to_tenant_id, to_clone_id FROM cloneiso_legacy_users WHERE user_id = 'u002')
		WHERE id = '99999999-0000-0000-0000-000000000003'`)
	if vr, err := m.Verify(ctx); err != nil || kinds(vr)[legacy.DiscrepancyWrongClone] != 1 {
		t.Fatalf("verify with a mapped row in the wrong clone: %v\n%s", err, vr)
	}
	db.Owner.MustExec(`UPDATE insights SET (tenant_id, clone_id) = (SELECT to_tenant_id, to_clone_id FROM cloneiso_legacy_users WHERE user_id = 'u001')
		WHERE id = '99999999-0000-0000-0000-000000000003'`)

	// Dropping a decision without restoring its rows is reported; restoring puts the rows
	// back (then they lack a clone); deciding again sets them aside again.
	undecided := decidedMigrator(t, db, map[string]legacy.UserDecision{"U001": decisions["U001"], "u999": {Action: legacy.DecisionKeep}}, legacy.DecisionQuarantine)
	if vr, err := undecided.Verify(ctx); err != nil || kinds(vr)[legacy.DiscrepancyQuarantine] != 3 {
		t.Fatalf("verify with set-aside rows of a kept ID: %v\n%s", err, vr)
	}
	restored, err := m.RestoreQuarantined(ctx, []string{"u999"})
	if err != nil || restored["insights"] != 2 || restored["messages"] != 2 || restored["conversations"] != 1 {
		t.Fatalf("restore: %v, %v", restored, err)
	}
	if n := count(t, db, "SELECT count(*) FROM messages WHERE user_id = 'u999' AND content IN ('hello', 'hi')"); n != 2 {
		t.Fatalf("%d of u999's 2 messages restored", n)
	}
	if vr, err := m.Verify(ctx); err != nil || kinds(vr)[legacy.DiscrepancyWithoutClone] != 3 || kinds(vr)[legacy.DiscrepancyCount] != 0 || kinds(vr)[legacy.DiscrepancyChecksum] != 0 {
		t.Fatalf("verify after restore: %v\n%s", err, vr)
	}
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if vr, err := m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("verify after setting aside again: %v\n%s", err, vr)
	}

	// The rollback script puts every row back, quarantined ones included.
	script, err := m.RollbackSQL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db.Owner.MustExec(script)
	after := schemaOf(t, db)
	for k, v := range pristine {
		if after[k] != v {
			t.Errorf("%s after rollback:\n got %s\nwant %s", k, after[k], v)
		}
	}
	if len(after) != len(pristine) {
		t.Errorf("rollback leaves %d tables; the legacy database had %d", len(after)/2, len(pristine)/2)
	}
}

// TestQuarantineRefusesCascade: setting aside a deleted user's conversation would
// delete, through ON DELETE CASCADE, a message of another user under it: the backfill
// refuses and changes nothing; deciding to keep the user lets it through.
func TestQuarantineRefusesCascade(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(strayUsersSQL + `INSERT INTO messages (conversation_id, id, user_id, role, content) VALUES
		('99999999-0000-0000-0000-000000000010', '99999999-0000-0000-0000-000000000030', 'u002', 'user', 'under a deleted user''s conversation')`)
	m := decidedMigrator(t, db, map[string]legacy.UserDecision{"U001": {Action: legacy.DecisionMap, To: "u001"}, "u999": {Action: legacy.DecisionDrop}}, "")
	mustAdopt(t, m)
	_, err := m.Backfill(ctx, nil)
	if clone.KindOf(err) != clone.ErrConflict || !strings.Contains(err.Error(), "ON DELETE CASCADE") {
		t.Fatalf("backfill: %v (kind %v)", err, clone.KindOf(err))
	}
	if n := count(t, db, "SELECT count(*) FROM cloneiso_legacy_quarantine") + count(t, db, "SELECT count(*) FROM messages WHERE conversation_id = '99999999-0000-0000-0000-000000000010'") - 3; n != 0 {
		t.Fatalf("the refused quarantine changed %d rows", n)
	}
	m = decidedMigrator(t, db, map[string]legacy.UserDecision{"U001": {Action: legacy.DecisionMap, To: "u001"}, "u999": {Action: legacy.DecisionKeep}}, "")
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, "SELECT count(*) FROM clones WHERE user_id = 'u999'"); n != 1 {
		t.Fatalf("kept user u999 has %d clones", n)
	}
}

// TestUserIssuesCountOtherTables: the rows of an ID that needs a decision are counted in
// the tables the migration does not move too (a table not configured whose column is
// named like a configured user column): plan lists them apart, since the quarantine
// and the map leave them where they are; once the table is configured, they count with
// the others and the quarantine sets them aside.
func TestUserIssuesCountOtherTables(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(strayUsersSQL + `
		CREATE TABLE sessions (id bigserial PRIMARY KEY, user_id text, token text NOT NULL DEFAULT '');
		INSERT INTO sessions (user_id) VALUES ('u999'), ('u999'), ('U001'), ('u001'), (NULL);`)
	m := decidedMigrator(t, db, nil, "")
	p, err := m.Plan(ctx)
	if err != nil || len(p.UserIssues) != 2 {
		t.Fatalf("plan: %v, %v", p, err)
	}
	up, del := p.UserIssues[0], p.UserIssues[1]
	if !strings.Contains(del.String(), "2 more rows in tables not migrated (sessions: 2)") || !strings.Contains(up.String(), "sessions: 1") {
		t.Fatalf("plan does not count the rows of the IDs in tables it does not migrate:\n%s\n%s", up, del)
	}
	if del.Rows != 5 || del.Elsewhere["sessions"] != 2 || up.Rows != 4 || up.Elsewhere["sessions"] != 1 {
		t.Fatalf("plan: %+v, %+v", up, del)
	}

	cfg := legacytest.Config()
	cfg.Tables = append(cfg.Tables, legacy.Table{Name: "sessions"})
	cfg.UserDecisions = map[string]legacy.UserDecision{"U001": {Action: legacy.DecisionMap, To: "u001"}, "u999": {Action: legacy.DecisionQuarantine}}
	cfg.WithoutUser = legacy.DecisionQuarantine
	m, err = legacy.New(db.Owner.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = m.Plan(ctx); err != nil || len(p.UserIssues) != 2 {
		t.Fatalf("plan: %v, %v", p, err)
	}
	if up, del = p.UserIssues[0], p.UserIssues[1]; del.Rows != 7 || len(del.Elsewhere) != 0 || up.Rows != 5 || len(up.Elsewhere) != 0 {
		t.Fatalf("plan with sessions configured: %+v, %+v", up, del)
	}
	mustAdopt(t, m)
	rep, err := m.Backfill(ctx, nil)
	if err != nil || rep.Quarantined["sessions"] != 3 {
		t.Fatalf("backfill: quarantined %v (%v); want 3 sessions (2 of u999, 1 without a user)", rep.Quarantined, err)
	}
}

// TestUserIssuesCountOtherTablesWithSchema: with a schema of the SDK's own
// (Config.Schema), the tables searched for an ID's other rows are the legacy schema's,
// not the SDK's, also once the SDK's schema exists (after Adopt).
func TestUserIssuesCountOtherTablesWithSchema(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(strayUsersSQL + `
		CREATE TABLE sessions (id bigserial PRIMARY KEY, user_id text);
		INSERT INTO sessions (user_id) VALUES ('u999'), ('u999'), ('U001');`)
	sep := "?"
	if strings.Contains(db.OwnerURL, "?") {
		sep = "&"
	}
	conn, err := sql.Open("postgres", db.OwnerURL+sep+"search_path=cloneiso,public")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg := legacytest.Config()
	cfg.Schema = "cloneiso"
	m, err := legacy.New(conn, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustAdopt(t, m)
	p, err := m.Plan(ctx)
	if err != nil || len(p.UserIssues) != 2 {
		t.Fatalf("plan: %v, %v", p, err)
	}
	if up, del := p.UserIssues[0], p.UserIssues[1]; del.Elsewhere["sessions"] != 2 || up.Elsewhere["sessions"] != 1 {
		t.Fatalf("plan with a schema of the SDK's own: %+v, %+v; want the sessions rows counted", up, del)
	}
}
