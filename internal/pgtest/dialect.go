package pgtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/migrate"
)

// Open returns a migrated database of dialect d for t, closed when t ends: app is the
// application's connection and owner the schema owner's (as *sqlx.DB for the tests'
// own queries; the SDK takes their *sql.DB, app.DB). On SQLite both are one fresh
// file in t's temporary directory. On PostgreSQL they are the package's [Shared]
// database, app connected as [AppRole] (row-level security applies) with
// binary_parameters ([clonesql.OpenPostgres]), owner as the server's admin role.
func Open(t testing.TB, d clonesql.Dialect) (app, owner *sqlx.DB) {
	t.Helper()
	switch d {
	case clonesql.SQLite:
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "cloneiso.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := migrate.Up(context.Background(), db, nil); err != nil {
			t.Fatal(err)
		}
		x := sqlx.NewDb(db, "sqlite3") // sqlx's name for '?' placeholders
		return x, x
	case clonesql.Postgres:
		return OpenDriver(t, LibPQ)
	}
	t.Fatalf("pgtest.Open: unsupported dialect %q", d)
	return nil, nil
}
