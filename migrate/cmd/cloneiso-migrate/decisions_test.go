package main

import (
	"testing"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// TestCLIUserDecisions: plan lists a deleted user's ID and an upper-case spelling;
// backfill refuses them with exit 2 (a permanent error: the configuration must change)
// until the configuration decides; rows without a user are set aside by a flag; verify
// then passes.
func TestCLIUserDecisions(t *testing.T) {
	db := fixtureDB(t)
	db.Owner.MustExec(`INSERT INTO insights (id, user_id, content) VALUES
		('99999999-0000-0000-0000-000000000001', 'u999', 'deleted user'),
		('99999999-0000-0000-0000-000000000002', 'U003', 'upper-case spelling')`)
	cfg := legacytest.Config()
	write := func() string {
		f := writeConfig(t, cfg)
		return f
	}
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": write()}}
	out, _ := c.run(exitOK, "plan")
	mustContain(t, out, "need a decision", `"U003": non-canonical, 1 rows (known as "u003"): undecided`, `"u999": unknown, 1 rows: undecided`)
	c.run(exitOK, "up")
	_, errOut := c.run(exitUsage, "backfill")
	mustContain(t, errOut, "2 legacy user IDs need a decision", "user_decisions", "a permanent error")

	cfg.UserDecisions = map[string]legacy.UserDecision{"U003": {Action: legacy.DecisionMap, To: "u003"}, "u999": {Action: legacy.DecisionDrop}}
	c.env["CLONEISO_CONFIG"] = write()
	out, _ = c.run(exitOK, "plan", "--without-user", "quarantine")
	mustContain(t, out, `"U003": non-canonical, 1 rows (known as "u003"): decided map to "u003"`, "11 rows without a user will be set aside")
	out, _ = c.run(exitOK, "backfill", "--without-user", "quarantine")
	mustContain(t, out, "every row has its clone", "insights                 1 rows set aside", "documents                7 rows set aside")
	out, _ = c.run(exitOK, "verify", "--without-user", "quarantine")
	mustContain(t, out, "sql: OK")
	out, _ = c.run(exitOK, "status")
	mustContain(t, out, "rows set aside (quarantine, drop): 12")
}

// TestCLIEnforceForeignKeyExit2: a child row of another user than its parent's makes
// enforce fail permanently (exit 2, with the recovery named), not "run again" (exit 3).
func TestCLIEnforceForeignKeyExit2(t *testing.T) {
	db := fixtureDB(t)
	db.Owner.MustExec(`INSERT INTO messages (conversation_id, id, user_id, role, content)
		SELECT id, '99999999-0000-0000-0000-000000000040', 'u002', 'user', 'under u001''s conversation'
		FROM conversations WHERE user_id = 'u001' ORDER BY id LIMIT 1`)
	cfg := legacytest.Config()
	cfg.WithoutUser = legacy.DecisionDrop
	f := writeConfig(t, cfg)
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": f}}
	c.run(exitOK, "up")
	c.run(exitOK, "backfill")
	out, _ := c.run(exitDiscrepancy, "verify")
	mustContain(t, out, "parent-clone [messages]")
	_, errOut := c.run(exitUsage, "enforce")
	mustContain(t, errOut, "in different clones", "A child row whose user differs from its parent's", "a permanent error")
}

// TestCLIUpWithClonesTable: up on a legacy database that has a table named clones
// refuses (exit 2) with the rename to apply, instead of failing half-way; after the
// rename, up adopts the database.
func TestCLIUpWithClonesTable(t *testing.T) {
	db := fixtureDB(t)
	db.Owner.MustExec("CREATE TABLE clones (id bigserial PRIMARY KEY, name text NOT NULL)")
	cfg := legacytest.Config()
	f := writeConfig(t, cfg)
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": f}}
	out, _ := c.run(exitOK, "plan")
	mustContain(t, out, "schema prerequisites: 1 problems", `ALTER TABLE "clones" RENAME TO "legacy_clones"`)
	_, errOut := c.run(exitUsage, "up")
	mustContain(t, errOut, "SDK's control table clones", "a permanent error")
	db.Owner.MustExec(`ALTER TABLE "clones" RENAME TO "legacy_clones"`)
	out, _ = c.run(exitOK, "up")
	mustContain(t, out, "legacy schema adopted")
}
