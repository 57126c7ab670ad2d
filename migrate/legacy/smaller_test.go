package legacy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
)

// eventsSQL adds a host table keyed by a bigserial (a sequence the application role
// needs), and the identity provider's subject of each user in a column of users.
const eventsSQL = `
CREATE TABLE events (id bigserial PRIMARY KEY, user_id text NOT NULL, body text NOT NULL);
INSERT INTO events (user_id, body) SELECT id, 'event of ' || id FROM users WHERE id IN ('u001', 'u002');
ALTER TABLE users ADD COLUMN sub text;
UPDATE users SET sub = 'idp|' || upper(id);
`

// TestUserColumnsSubjectsSequences: adoption keeps NOT NULL on user columns (the legacy
// application still cannot write a row without a user); subjects come from a column
// (subject_query); after enforcement the user columns are nullable (rows the SDK
// writes have no legacy user) and the grant covers the configured tables' sequences, so
// the application role can insert into a bigserial host table.
func TestUserColumnsSubjectsSequences(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(eventsSQL)
	cfg := legacytest.Config()
	cfg.Tables = append(cfg.Tables, legacy.Table{Name: "events"})
	cfg.SubjectQuery = "SELECT id, sub FROM users"
	cfg.WithoutUser = legacy.DecisionQuarantine
	m, err := legacy.New(db.Owner.DB, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustAdopt(t, m)
	if _, err := db.Owner.Exec("INSERT INTO insights (id, user_id, content) VALUES (gen_random_uuid(), NULL, 'written by the legacy app without a user')"); err == nil ||
		!strings.Contains(err.Error(), "not-null") {
		t.Fatalf("after adopt, the legacy application inserted a row without a user: %v", err)
	}
	if _, err := m.Backfill(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var subject string
	if err := db.Owner.Get(&subject, `SELECT t.signup_subject FROM tenants t JOIN clones c ON c.tenant_id = t.id WHERE c.user_id = 'u001'`); err != nil || subject != "idp|U001" {
		t.Fatalf("u001's tenant subject %q (%v); want idp|U001 from users.sub", subject, err)
	}
	if vr, err := m.Verify(ctx); err != nil || !vr.OK() {
		t.Fatalf("verify: %v\n%s", err, vr)
	}
	if _, err := m.Enforce(ctx); err != nil {
		t.Fatal(err)
	}
	grant, err := m.AppRoleSQL(ctx, pgtest.AppRole)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(grant, "GRANT USAGE, SELECT ON SEQUENCE public.events_id_seq TO") {
		t.Fatalf("grant lacks the events sequence:\n%s", grant)
	}
	db.Owner.MustExec(grant)
	users, err := m.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u := users[0]
	tx := db.App.MustBegin()
	defer tx.Rollback()
	tx.MustExec("SELECT set_config('cloneiso.tenant_id', $1, true), set_config('cloneiso.clone_id', $2, true)", u.TenantID.String(), u.CloneID.String())
	if _, err := tx.Exec("INSERT INTO events (tenant_id, clone_id, body) VALUES ($1, $2, 'written through the SDK, no legacy user')", u.TenantID, u.CloneID); err != nil {
		t.Fatalf("the application role cannot insert into a bigserial host table: %v", err)
	}
	var n int64
	if err := tx.Get(&n, "SELECT count(*) FROM events"); err != nil || n != 2 {
		t.Fatalf("clone of %s sees %d events (%v); want its own and the new one", u.UserID, n, err)
	}
}
