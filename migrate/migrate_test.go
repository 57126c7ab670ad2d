package migrate_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

var allTables = []string{"tenants", "clones", "tenant_members", "clone_grants", "documents", "document_chunks",
	"insights", "training_examples", "conversations", "messages", "audit_events", "audit_chain_heads",
	"break_glass_grants"}

func tablesOf(t *testing.T, db *sql.DB, d clonesql.Dialect) []string {
	t.Helper()
	q := "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
	if d == clonesql.SQLite {
		q = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
	}
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s != migrate.DefaultTableName {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func upDownUp(t *testing.T, db *sql.DB, d clonesql.Dialect) {
	ctx := context.Background()
	want := slices.Sorted(slices.Values(allTables))
	p, err := migrate.NewProvider(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	if got := tablesOf(t, db, d); !slices.Equal(got, want) {
		t.Fatalf("after up: tables %v; want %v", got, want)
	}
	// migrate.Tables, the list the isolation check, AppRoleSQL and the legacy
	// migration resolve, names exactly the tables the migrations created.
	if got := slices.Sorted(slices.Values(migrate.Tables())); !slices.Equal(got, want) {
		t.Fatalf("migrate.Tables() = %v; the migrations created %v", got, want)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	if got := tablesOf(t, db, d); len(got) != 0 {
		t.Fatalf("after down: tables %v remain", got)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	if got := tablesOf(t, db, d); !slices.Equal(got, want) {
		t.Fatalf("after up again: tables %v; want %v", got, want)
	}
	if pending, err := p.HasPending(ctx); err != nil || pending {
		t.Fatalf("HasPending = %v, %v after Up", pending, err)
	}
	// The version table has cloneiso's own name.
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + migrate.DefaultTableName).Scan(&n); err != nil || n == 0 {
		t.Fatalf("version table %s: %d rows, %v", migrate.DefaultTableName, n, err)
	}
}

func TestUpDownUpSQLite(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	upDownUp(t, db, clonesql.SQLite)
}

func TestUpDownUpPostgres(t *testing.T) {
	db := pgtest.Fresh(t, false)
	upDownUp(t, db.Owner.DB, clonesql.Postgres)
}

// TestConcurrentUpPostgres: application instances starting together all migrate the same
// database; the session lock makes them wait for each other, and none fails.
func TestConcurrentUpPostgres(t *testing.T) {
	db := pgtest.Fresh(t, false)
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Separate pools, as separate processes would have.
			conn, err := sql.Open("postgres", db.OwnerURL)
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			errc <- migrate.Up(ctx, conn, nil)
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatalf("concurrent Up: %v", err)
		}
	}
	if got := tablesOf(t, db.Owner.DB, clonesql.Postgres); len(got) != len(allTables) {
		t.Fatalf("tables %v", got)
	}
}

func TestUnsupportedDialect(t *testing.T) {
	if _, err := migrate.Migrations("mysql"); err == nil {
		t.Fatal("Migrations(mysql) succeeded")
	}
}
