package legacy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// childOfAnotherUserSQL adds a message of u002 in a conversation of u001: the legacy
// application let one user write under another's parent row.
const childOfAnotherUserSQL = `
INSERT INTO messages (conversation_id, id, user_id, role, content)
SELECT id, '99999999-0000-0000-0000-000000000040', 'u002', 'user', 'a child of another user''s conversation'
FROM conversations WHERE user_id = 'u001' ORDER BY id LIMIT 1;
`

// TestChildOfAnotherUser: a child row whose user differs from its parent's is reported
// by verify and makes enforce refuse with a permanent error (kind Conflict) that names
// the tables and the recovery, changing nothing; the recovery of MIGRATION_GUIDE.md
// (rewrite the user, reset the clone, backfill --restart, snapshot --retake) then lets
// the migration end.
func TestChildOfAnotherUser(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(childOfAnotherUserSQL)
	m := decidedMigrator(t, db, nil, legacy.DecisionQuarantine)
	mustAdopt(t, m)
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	vr, err := m.Verify(ctx)
	if err != nil || len(vr.Discrepancies) != 1 || vr.Discrepancies[0].Kind != legacy.DiscrepancyParent || !strings.Contains(vr.Discrepancies[0].Detail, "MIGRATION_GUIDE.md") {
		t.Fatalf("verify: %v\n%s", err, vr)
	}
	_, err = m.Enforce(ctx)
	if clone.KindOf(err) != clone.ErrConflict || errors.Is(err, legacy.ErrIncomplete) ||
		!strings.Contains(err.Error(), "messages and its parent row in conversations are in different clones") {
		t.Fatalf("enforce: %v (kind %v)", err, clone.KindOf(err))
	}
	if st, err := m.Status(ctx); err != nil || st.SchemaVersion != 0 {
		t.Fatalf("the refused enforce changed the schema: %+v, %v", st, err)
	}

	// The recovery: the row belongs to its parent's user (the operator's decision);
	// rewrite its user, reset its clone, backfill again, record the snapshot again.
	db.Owner.MustExec("UPDATE messages SET user_id = 'u001', tenant_id = NULL, clone_id = NULL WHERE id = '99999999-0000-0000-0000-000000000040'")
	rep, err := m.Backfill(ctx, &legacy.BackfillOptions{Restart: true})
	if err != nil || rep.Updated() != 1 {
		t.Fatalf("backfill --restart: updated %v, %v", rep, err)
	}
	vr, err = m.Verify(ctx)
	if err != nil || kinds(vr)[legacy.DiscrepancyCount] != 2 || len(vr.Discrepancies) != 2 {
		t.Fatalf("verify after the rewrite must show exactly the moved row (u001 +1, u002 -1): %v\n%s", err, vr)
	}
	if err := m.RetakeSnapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if vr, err := m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("verify: %v\n%s", err, vr)
	}
	if _, err := m.Enforce(ctx); err != nil {
		t.Fatalf("enforce after the recovery: %v", err)
	}
}
