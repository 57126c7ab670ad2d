package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

type fixtureClone struct{ tenant, clone, doc, conv uuid.UUID }

// provision creates a tenant and its clone as the schema owner (control-plane tables
// carry no RLS).
func provision(t *testing.T, owner *sqlx.DB) fixtureClone {
	t.Helper()
	f := fixtureClone{tenant: uuid.New(), clone: uuid.New(), doc: uuid.New(), conv: uuid.New()}
	if _, err := owner.Exec(`INSERT INTO tenants (id, plan) VALUES ($1, 'solo')`, f.tenant); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.Exec(`INSERT INTO clones (tenant_id, id, owner_subject) VALUES ($1, $2, $3)`, f.tenant, f.clone, "subj-"+f.clone.String()); err != nil {
		t.Fatal(err)
	}
	return f
}

// asClone runs fn in a transaction of the app role with the RLS settings of f (or none
// if f is nil).
func asClone(t *testing.T, app *sqlx.DB, f *fixtureClone, fn func(tx *sql.Tx) error) error {
	t.Helper()
	tx, err := app.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if f != nil {
		if _, err := tx.Exec(`SELECT set_config('cloneiso.tenant_id', $1, true), set_config('cloneiso.clone_id', $2, true)`,
			f.tenant.String(), f.clone.String()); err != nil {
			t.Fatal(err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// seedStatements insert one row of f into every clone-owned table.
func seedStatements(f fixtureClone) []string {
	v := func(s string) string { return pq.QuoteLiteral(s) }
	tc := v(f.tenant.String()) + ", " + v(f.clone.String())
	return []string{
		"INSERT INTO documents (tenant_id, clone_id, id, title) VALUES (" + tc + ", " + v(f.doc.String()) + ", 'doc')",
		"INSERT INTO document_chunks (tenant_id, clone_id, document_id, ordinal, content) VALUES (" + tc + ", " + v(f.doc.String()) + ", 0, 'chunk')",
		"INSERT INTO insights (tenant_id, clone_id, id, content) VALUES (" + tc + ", gen_random_uuid(), 'insight')",
		"INSERT INTO training_examples (tenant_id, clone_id, id, prompt, response) VALUES (" + tc + ", gen_random_uuid(), 'p', 'r')",
		"INSERT INTO conversations (tenant_id, clone_id, id) VALUES (" + tc + ", " + v(f.conv.String()) + ")",
		"INSERT INTO messages (tenant_id, clone_id, conversation_id, id, role, content) VALUES (" + tc + ", " + v(f.conv.String()) + ", gen_random_uuid(), 'user', 'hi')",
	}
}

func seed(t *testing.T, app *sqlx.DB, f fixtureClone) {
	t.Helper()
	err := asClone(t, app, &f, func(tx *sql.Tx) error {
		for _, s := range seedStatements(f) {
			if _, err := tx.Exec(s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seeding as its own clone: %v", err)
	}
}

func countRows(t *testing.T, q interface {
	QueryRow(string, ...any) *sql.Row
}, table string, f fixtureClone) int {
	t.Helper()
	var n int
	if err := q.QueryRow("SELECT count(*) FROM "+table+" WHERE tenant_id = $1 AND clone_id = $2", f.tenant, f.clone).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func isRLSViolation(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "42501"
}

func TestRowLevelSecurity(t *testing.T) {
	db := pgtest.Shared(t)
	a, b := provision(t, db.Owner), provision(t, db.Owner)
	seed(t, db.App, a)
	seed(t, db.App, b)

	// The data exists: the owner (a superuser here) sees one row per table per clone, and
	// each clone sees its own.
	for _, table := range migrate.CloneOwnedTables() {
		for _, f := range []fixtureClone{a, b} {
			if n := countRows(t, db.Owner, table, f); n != 1 {
				t.Fatalf("%s: owner sees %d rows of a clone; want 1", table, n)
			}
			f := f
			asClone(t, db.App, &f, func(tx *sql.Tx) error {
				if n := countRows(t, tx, table, f); n != 1 {
					t.Fatalf("%s: clone sees %d of its own rows; want 1", table, n)
				}
				return nil
			})
		}
	}

	unscoped := map[string]func(*testing.T) *sql.Conn{
		"never set": func(t *testing.T) *sql.Conn {
			c, err := db.App.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		"reset after a transaction": func(t *testing.T) *sql.Conn {
			c, err := db.App.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			// A transaction that set the settings, committed: afterwards they read ''.
			if _, err := c.ExecContext(context.Background(), "BEGIN; SELECT set_config('cloneiso.tenant_id', "+pq.QuoteLiteral(a.tenant.String())+", true), set_config('cloneiso.clone_id', "+pq.QuoteLiteral(a.clone.String())+", true); COMMIT"); err != nil {
				t.Fatal(err)
			}
			var s string
			if err := c.QueryRowContext(context.Background(), "SELECT current_setting('cloneiso.clone_id', true)").Scan(&s); err != nil || s != "" {
				t.Fatalf("after commit the setting reads %q, %v; want ''", s, err)
			}
			return c
		},
	}
	for name, connect := range unscoped {
		t.Run("no setting/"+name, func(t *testing.T) {
			ctx := context.Background()
			c := connect(t)
			defer c.Close()
			for _, table := range migrate.CloneOwnedTables() {
				var n int
				if err := c.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
					t.Errorf("%s: unscoped select sees %d rows (%v); want 0", table, n, err)
				}
				res, err := c.ExecContext(ctx, "UPDATE "+table+" SET user_id = 'x'")
				if err != nil {
					t.Errorf("%s: unscoped update: %v", table, err)
				} else if n, _ := res.RowsAffected(); n != 0 {
					t.Errorf("%s: unscoped update changed %d rows", table, n)
				}
				res, err = c.ExecContext(ctx, "DELETE FROM "+table)
				if err != nil {
					t.Errorf("%s: unscoped delete: %v", table, err)
				} else if n, _ := res.RowsAffected(); n != 0 {
					t.Errorf("%s: unscoped delete removed %d rows", table, n)
				}
			}
			for _, s := range seedStatements(fixtureClone{tenant: a.tenant, clone: a.clone, doc: a.doc, conv: a.conv}) {
				if _, err := c.ExecContext(ctx, s); !isRLSViolation(err) {
					t.Errorf("unscoped insert %q: %v; want an RLS violation", s, err)
				}
			}
		})
	}

	t.Run("clone A against clone B", func(t *testing.T) {
		for _, table := range migrate.CloneOwnedTables() {
			err := asClone(t, db.App, &a, func(tx *sql.Tx) error {
				if n := countRows(t, tx, table, b); n != 0 {
					t.Errorf("%s: clone A sees %d of clone B's rows", table, n)
				}
				var n int
				if err := tx.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil || n != 1 {
					t.Errorf("%s: clone A sees %d rows in all (%v); want only its own 1", table, n, err)
				}
				res, err := tx.Exec("UPDATE "+table+" SET user_id = 'stolen' WHERE tenant_id = $1 AND clone_id = $2", b.tenant, b.clone)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n != 0 {
					t.Errorf("%s: clone A updated %d of clone B's rows", table, n)
				}
				res, err = tx.Exec("DELETE FROM "+table+" WHERE tenant_id = $1 AND clone_id = $2", b.tenant, b.clone)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n != 0 {
					t.Errorf("%s: clone A deleted %d of clone B's rows", table, n)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("%s: %v", table, err)
			}
			// Moving its own row to clone B is refused by WITH CHECK.
			err = asClone(t, db.App, &a, func(tx *sql.Tx) error {
				_, err := tx.Exec("UPDATE "+table+" SET clone_id = $1", b.clone)
				return err
			})
			if !isRLSViolation(err) && !isFKViolation(err) {
				t.Errorf("%s: moving a row to clone B: %v; want refused", table, err)
			}
		}
		// Writing a row stamped with clone B's IDs is refused.
		for _, s := range seedStatements(fixtureClone{tenant: b.tenant, clone: b.clone, doc: uuid.New(), conv: uuid.New()}) {
			err := asClone(t, db.App, &a, func(tx *sql.Tx) error { _, err := tx.Exec(s); return err })
			if !isRLSViolation(err) {
				t.Errorf("clone A inserting B's row %q: %v; want an RLS violation", s, err)
			}
		}
		// Clone B's rows are untouched.
		for _, table := range migrate.CloneOwnedTables() {
			var n int
			if err := db.Owner.QueryRow("SELECT count(*) FROM "+table+" WHERE tenant_id = $1 AND clone_id = $2 AND user_id IS NULL", b.tenant, b.clone).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: clone B's row changed or gone (%d, %v)", table, n, err)
			}
		}
	})

	t.Run("audit events are append-only for the app role", func(t *testing.T) {
		if _, err := db.App.Exec(`INSERT INTO audit_events (action, outcome, tenant_id) VALUES ('test', 'denied', $1)`, a.tenant); err != nil {
			t.Fatalf("insert: %v", err)
		}
		var n int
		if err := db.App.QueryRow(`SELECT count(*) FROM audit_events WHERE tenant_id = $1`, a.tenant).Scan(&n); err != nil || n != 1 {
			t.Fatalf("read back: %d, %v", n, err)
		}
		for _, s := range []string{"UPDATE audit_events SET reason = 'x'", "DELETE FROM audit_events", "TRUNCATE audit_events"} {
			var pe *pq.Error
			if _, err := db.App.Exec(s); !errors.As(err, &pe) || pe.Code != "42501" {
				t.Errorf("%s: %v; want permission denied", s, err)
			}
		}
	})
}

func isFKViolation(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "23503"
}
