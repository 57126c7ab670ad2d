package migrate_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/migrate"
)

// Up applies cloneiso's embedded migrations (here to an embedded SQLite database; on
// PostgreSQL run it as the schema owner, then grant the application role with
// AppRoleSQL and check it with CheckIsolation). It is idempotent: a second Up applies
// nothing. NewProvider gives goose's full Provider for status and rollbacks.
func Example() {
	dir, err := os.MkdirTemp("", "migrate-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlitedb.Open(filepath.Join(dir, "app.db"))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx := context.Background()

	for range 2 {
		if err := migrate.Up(ctx, db, nil); err != nil {
			panic(err)
		}
	}
	p, err := migrate.NewProvider(db, nil)
	if err != nil {
		panic(err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("pending migrations:", pending)

	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM insights`).Scan(&n); err != nil {
		panic(err)
	}
	fmt.Println("insights table ready, rows:", n)
	// Output:
	// pending migrations: false
	// insights table ready, rows: 0
}
