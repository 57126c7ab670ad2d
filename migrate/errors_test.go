package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

// TestUpErrorKinds: migrate.Up's failures carry a kind like every other error of the
// SDK (it returned errors of no kind before), and the driver's error stays reachable.
func TestUpErrorKinds(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cases := []struct {
		name string
		db   func(t *testing.T) *sql.DB
		ctx  context.Context
		want clone.Kind
	}{
		{"postgres: role without CREATE on the schema", func(t *testing.T) *sql.DB { return pgtest.Fresh(t, false).App.DB }, context.Background(), clone.ErrInternal},
		{"postgres: cancelled", func(t *testing.T) *sql.DB { return pgtest.Fresh(t, false).Owner.DB }, cancelled, clone.ErrCanceled},
		{"sqlite: read-only database", func(t *testing.T) *sql.DB {
			path := filepath.Join(t.TempDir(), "ro.db")
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}, context.Background(), clone.ErrInternal},
		{"sqlite: cancelled", func(t *testing.T) *sql.DB {
			db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return db
		}, cancelled, clone.ErrCanceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := migrate.Up(c.ctx, c.db(t), nil)
			if err == nil {
				t.Fatal("Up succeeded")
			}
			if got := clone.KindOf(err); got != c.want {
				t.Fatalf("Up = %v; kind %v, want %v", err, got, c.want)
			}
			var e *clone.Error
			if !errors.As(err, &e) || e.Op != "migrate.Up" || e.Err == nil {
				t.Fatalf("Up = %#v; want a *clone.Error of migrate.Up with its cause", err)
			}
		})
	}
}
