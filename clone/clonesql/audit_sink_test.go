package clonesql_test

import (
	"context"
	"errors"
	"testing"
	"time"

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
		sink := clonesql.AuditSink(e.raw.DB)
		db, err := clonesql.New(e.raw.DB, &clonesql.Options{Audit: sink})
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

// TestAuditInsideTransaction: a denial raised inside a scoped transaction is recorded by
// the SQL sink after the transaction ends, without waiting for the transaction's own
// write lock (SQLite) or connection (a pool of one).
func TestAuditInsideTransaction(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		e.raw.SetMaxOpenConns(1)
		defer e.raw.SetMaxOpenConns(0)
		ctx, cancel := context.WithTimeout(audit.WithRequestID(context.Background(), "tx-"+uuid.NewString()), 5*time.Second)
		defer cancel()
		db, err := clonesql.New(e.raw.DB, &clonesql.Options{Audit: clonesql.AuditSink(e.raw.DB)})
		if err != nil {
			t.Fatal(err)
		}
		a, b := e.newClone(t), e.newClone(t)
		// A sink that waited for the transaction would run into ctx's deadline and lose
		// the event (counted below); no wall-clock time is asserted.
		err = db.WithTx(ctx, a, func(tx *clonesql.Tx) error {
			_, err := tx.Querier().Exec(ctx, b, `DELETE FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil)
			return err
		})
		if !errors.Is(err, clone.ErrCloneMismatch) {
			t.Fatalf("cross-clone statement: %v", err)
		}
		var n int
		if err := e.raw.GetContext(ctx, &n, e.raw.Rebind(`SELECT count(*) FROM audit_events WHERE request_id = ?`), audit.RequestIDFrom(ctx)); err != nil || n != 1 {
			t.Fatalf("audit rows %d, %v; want 1", n, err)
		}
	})
}

// TestAuditFromCodeInsideTransaction: code handed a Tx (a repository, a host function)
// records through tx.Audit(); inside WithTx the event reaches the SQL sink after the
// transaction, without stalling on SQLite's write lock.
func TestAuditFromCodeInsideTransaction(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithTimeout(audit.WithRequestID(context.Background(), "txsink-"+uuid.NewString()), 5*time.Second)
		defer cancel()
		db, err := clonesql.New(e.raw.DB, &clonesql.Options{Audit: clonesql.AuditSink(e.raw.DB)})
		if err != nil {
			t.Fatal(err)
		}
		a := e.newClone(t)
		err = db.WithTx(ctx, a, func(tx *clonesql.Tx) error {
			if _, err := tx.Exec(ctx, insertInsight, insight{ID: uuid.New(), Content: "x", CreatedAt: time.Now().UTC()}); err != nil {
				return err
			}
			return audit.Record(ctx, tx.Audit(), audit.Event{Action: "host.lookup", Outcome: audit.Denied, TenantID: a.TenantID(), CloneID: a.CloneID()})
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := e.raw.GetContext(ctx, &n, e.raw.Rebind(`SELECT count(*) FROM audit_events WHERE request_id = ?`), audit.RequestIDFrom(ctx)); err != nil || n != 1 {
			t.Fatalf("audit rows %d, %v; want 1", n, err)
		}
	})
}
