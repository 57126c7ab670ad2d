package clonesql_test

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// TestAuditSink: every denial of the wrapper becomes one row of audit_events, written
// by the application role, with who, what, which clone and the outcome.
func TestAuditSink(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := audit.WithRequestID(context.Background(), "req-"+uuid.NewString())
		sink := clonesql.AuditSink(e.raw)
		db, err := clonesql.New(e.raw, &clonesql.Options{Audit: sink})
		if err != nil {
			t.Fatal(err)
		}
		a, b := e.newClone(t), e.newClone(t)
		var n int
		db.Get(ctx, a, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`,
			map[string]any{"id": uuid.New(), "clone_id": b.CloneID()}) // mismatch
		db.Get(ctx, clone.CloneContext{}, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil) // no context
		var rows []struct {
			Actor    string        `db:"actor"`
			Action   string        `db:"action"`
			TenantID uuid.NullUUID `db:"tenant_id"`
			CloneID  uuid.NullUUID `db:"clone_id"`
			Outcome  string        `db:"outcome"`
			Detail   string        `db:"detail"`
		}
		if err := e.raw.Select(&rows, e.raw.Rebind(`SELECT actor, action, tenant_id, clone_id, outcome, detail FROM audit_events WHERE request_id = ? ORDER BY id`), audit.RequestIDFrom(ctx)); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 {
			t.Fatalf("%d audit rows; want 2: %+v", len(rows), rows)
		}
		if r := rows[0]; r.Outcome != "denied" || r.CloneID.UUID != a.CloneID() || r.TenantID.UUID != a.TenantID() || r.Actor != a.Principal().Subject || r.Action != "clonesql.Get" {
			t.Fatalf("mismatch event %+v", r)
		}
		if r := rows[1]; r.Outcome != "denied" || r.CloneID.Valid || r.TenantID.Valid {
			t.Fatalf("no-context event %+v", r)
		}
	})
}
