package clonesql_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/pgtest"
)

// newBouncerEnv is newEnvDriver with the application's connections going through the
// test PgBouncer (transaction pooling, one server connection per database and role).
func newBouncerEnv(t *testing.T, drv pgtest.Driver) *env {
	t.Helper()
	e := newEnvDriver(t, clonesql.Postgres, drv)
	e.raw = pgtest.OpenURL(t, drv, pgtest.BouncerURL(t, pgtest.Shared(t).AppURL, drv))
	var err error
	if e.db, err = clonesql.New(e.raw.DB, &clonesql.Options{Audit: e.audit}); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPgBouncerSettingsDoNotSurvive: through PgBouncer in transaction-pooling mode with
// a single server connection, a raw client that comes right after a scoped operation
// (on the same server connection) reads both settings empty, after every kind of
// operation and on both drivers. A session-level setting made through the same pool
// first shows that the raw client would see a leak.
func TestPgBouncerSettingsDoNotSurvive(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(string(drv), func(t *testing.T) {
			e := newBouncerEnv(t, drv)
			ctx := context.Background()
			cc := e.newClone(t)
			in := addInsight(t, e, cc, "bounced")
			e.raw.SetMaxOpenConns(1)
			// The observer: another client of the same pool (same database and role).
			observer, err := sqlx.Open("postgres", pgtest.BouncerURL(t, pgtest.Shared(t).AppURL, pgtest.LibPQ))
			if err != nil {
				t.Fatal(err)
			}
			defer observer.Close()
			observer.SetMaxOpenConns(1)
			settings := func() (string, string, int) {
				t.Helper()
				var tenant, cloneID sql.NullString
				var pid int
				if err := observer.QueryRowContext(ctx, `SELECT current_setting('cloneiso.tenant_id', true), current_setting('cloneiso.clone_id', true), pg_backend_pid()`).Scan(&tenant, &cloneID, &pid); err != nil {
					t.Fatal(err)
				}
				return tenant.String, cloneID.String, pid
			}
			// The control: a session-level setting does survive into the observer's
			// transaction, on the same server backend.
			var appPID int
			if err := e.raw.QueryRowContext(ctx, `SELECT pg_backend_pid() FROM (SELECT set_config('cloneiso.tenant_id', 'session-level', false)) s`).Scan(&appPID); err != nil {
				t.Fatal(err)
			}
			if tenant, _, pid := settings(); tenant != "session-level" || pid != appPID {
				t.Fatalf("control: the observer sees tenant %q on backend %d (app on %d); the test cannot see a leak", tenant, pid, appPID)
			}
			if _, err := observer.ExecContext(ctx, `SELECT set_config('cloneiso.tenant_id', '', false)`); err != nil {
				t.Fatal(err)
			}
			ops := map[string]func() error{
				"get": func() error {
					var got insight
					return e.db.Get(ctx, cc, &got, getInsight, map[string]any{"id": in.ID})
				},
				"select": func() error {
					var got []insight
					return e.db.Select(ctx, cc, &got, listInsight, nil)
				},
				"exec": func() error {
					_, err := e.db.Exec(ctx, cc, insertInsight, insight{ID: uuid.New(), Content: "more", Category: "c", CreatedAt: in.CreatedAt})
					return err
				},
				"insert-returning": func() error {
					var got insight
					return e.db.Get(ctx, cc, &got, insertInsight+` RETURNING tenant_id, clone_id, id, content, category, created_at`,
						insight{ID: uuid.New(), Content: "more", Category: "c", CreatedAt: in.CreatedAt})
				},
				"withtx": func() error {
					return e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
						var n int
						if err := tx.Get(ctx, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil); err != nil {
							return err
						}
						_, err := tx.Exec(ctx, `UPDATE insights SET category = 'b' WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, map[string]any{"id": in.ID})
						return err
					})
				},
				"failing": func() error {
					_, err := e.db.Exec(ctx, cc, `INSERT INTO insights (tenant_id, clone_id, id, content) VALUES (:tenant_id, :clone_id, :id, NULL)`, map[string]any{"id": uuid.New()})
					if err == nil {
						t.Fatal("NULL content accepted")
					}
					return nil
				},
			}
			for _, name := range []string{"get", "select", "exec", "insert-returning", "withtx", "failing", "get"} {
				if err := ops[name](); err != nil {
					t.Fatalf("%s through PgBouncer: %v", name, err)
				}
				if tenant, cloneID, _ := settings(); tenant != "" || cloneID != "" {
					t.Fatalf("after a scoped %s, the next client of the server connection reads tenant %q clone %q", name, tenant, cloneID)
				}
			}
			var n int
			if err := e.db.Get(ctx, cc, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil); err != nil || n != 3 {
				t.Fatalf("the clone's rows through PgBouncer: %d, %v; want 3", n, err)
			}
			var unscoped int
			if err := observer.GetContext(ctx, &unscoped, `SELECT count(*) FROM insights`); err != nil || unscoped != 0 {
				t.Fatalf("unscoped read through PgBouncer sees %d rows (%v)", unscoped, err)
			}
		})
	}
}

// TestPgBouncerPoolDoesNotLeakScope is the pool-leak test (interleaved clones, random
// cancellation, then every pooled connection clean) through PgBouncer, on both drivers.
func TestPgBouncerPoolDoesNotLeakScope(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(string(drv), func(t *testing.T) { testPoolDoesNotLeakScope(t, newBouncerEnv(t, drv)) })
	}
}
