package sqlitedb_test

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
)

// TestOpenPaths: file names with characters a file: URI gives a meaning ('#'
// fragment, '?' query, '%' escapes) or that need escaping (spaces, non-ASCII) open
// exactly the file they name. Pairs of names that once opened the same file (app#1.db
// and app#2.db both opened "app") each get their own file, and each keeps its own data.
func TestOpenPaths(t *testing.T) {
	pairs := [][2]string{
		{"app#1.db", "app#2.db"},
		{"a?x=1.db", "a?x=2.db"},
		{"p%41.db", "pA.db"}, // %41 is 'A' once decoded
		{"p%2.db", "p%3.db"},
		{"with space.db", "with  space.db"},
		{"über #?%.db", "über #?%25.db"},
	}
	for _, pair := range pairs {
		t.Run(pair[0]+" vs "+pair[1], func(t *testing.T) {
			dir := t.TempDir()
			for _, name := range pair {
				db, err := sqlitedb.Open(filepath.Join(dir, name))
				if err != nil {
					t.Fatalf("open %q: %v", name, err)
				}
				if _, err := db.Exec(`CREATE TABLE owner (name TEXT)`); err != nil {
					t.Fatalf("%q: %v", name, err)
				}
				if _, err := db.Exec(`INSERT INTO owner VALUES (?)`, name); err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			// Exactly the two named files (and WAL companions) exist, nothing else.
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var files []string
			for _, e := range entries {
				files = append(files, e.Name())
			}
			for _, name := range pair {
				if !slices.Contains(files, name) {
					t.Fatalf("%q not created; directory holds %q", name, files)
				}
			}
			for _, f := range files {
				base := f
				for _, suffix := range []string{"-wal", "-shm"} {
					if len(f) > len(suffix) && f[len(f)-len(suffix):] == suffix {
						base = f[:len(f)-len(suffix)]
					}
				}
				if !slices.Contains(pair[:], base) {
					t.Fatalf("unexpected file %q; directory holds %q", f, files)
				}
			}
			// Each file holds its own row only.
			for _, name := range pair {
				db, err := sqlitedb.Open(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				rows, err := db.Query(`SELECT name FROM owner`)
				for err == nil && rows.Next() {
					var s string
					err = rows.Scan(&s)
					got = append(got, s)
				}
				if err == nil {
					err = rows.Err()
					rows.Close()
				}
				if err != nil {
					t.Fatalf("%q: %v", name, err)
				}
				db.Close()
				if !slices.Equal(got, []string{name}) {
					t.Fatalf("%q holds %q; want only its own row", name, got)
				}
			}
		})
	}
	if _, err := sqlitedb.Open(filepath.Join(t.TempDir(), "a\x00b.db")); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("NUL in the path: %v; want ErrInvalidInput", err)
	}
}

// TestRegistersDriver: importing the package registers modernc.org/sqlite's driver as
// "sqlite" (the control for internal/nosqlite, where nothing imports it).
func TestRegistersDriver(t *testing.T) {
	if !slices.Contains(sql.Drivers(), "sqlite") {
		t.Fatalf("database/sql drivers %q lack \"sqlite\"", sql.Drivers())
	}
}
