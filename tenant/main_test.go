package tenant_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// forEachDialect runs fn on a migrated SQLite database and on the package's PostgreSQL
// database connected as the application role.
func forEachDialect(t *testing.T, fn func(t *testing.T, s *tenant.Store, db *sqlx.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "t.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := migrate.Up(context.Background(), db, nil); err != nil {
			t.Fatal(err)
		}
		s, err := tenant.NewStore(db, nil)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s, sqlx.NewDb(db, "sqlite3"))
	})
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.Shared(t)
		s, err := tenant.NewStore(db.App.DB, nil)
		if err != nil {
			t.Fatal(err)
		}
		fn(t, s, db.App)
	})
}
