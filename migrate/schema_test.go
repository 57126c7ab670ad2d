package migrate_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

// tablesIn lists the base tables of schema.
func tablesIn(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	rows, err := db.Query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1", schema)
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
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rowsText is every row of table as text, in key order: equal texts mean equal rows,
// byte for byte.
func rowsText(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow("SELECT string_agg(x::text, E'\\n' ORDER BY x.id) FROM " + table + " x").Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s.String
}

// TestUpInSchemaPostgres: a database whose own table is named clones (like the SDK's
// control table) cannot take the migrations in its schema; with Options.Schema they go
// to a schema of their own, version table included, the connection's search_path is
// left as it was, the host's clones table is untouched, and Up, DownTo and Up again
// work there.
func TestUpInSchemaPostgres(t *testing.T) {
	db := pgtest.Fresh(t, false)
	ctx := context.Background()
	owner := db.Owner.DB
	owner.SetMaxOpenConns(1) // the pinned connection is the one the pool hands out next
	if _, err := owner.Exec(`CREATE TABLE clones (id bigserial PRIMARY KEY, name text NOT NULL, body jsonb);
		INSERT INTO clones (name, body) VALUES ('héllo', '{"a": [1, 2]}'), ('x', NULL)`); err != nil {
		t.Fatal(err)
	}
	before := rowsText(t, owner, "public.clones")
	var path string
	if err := owner.QueryRow("SHOW search_path").Scan(&path); err != nil {
		t.Fatal(err)
	}

	if err := migrate.Up(ctx, owner, nil); err == nil {
		t.Fatal("Up into the schema holding a table named clones succeeded")
	}
	opts := &migrate.Options{Schema: "cloneiso"}
	want := slices.Sorted(slices.Values(append(slices.Clone(allTables), migrate.DefaultTableName)))
	for i := range 2 { // idempotent
		if err := migrate.Up(ctx, owner, opts); err != nil {
			t.Fatalf("Up with schema (run %d): %v", i+1, err)
		}
		if got := tablesIn(t, owner, "cloneiso"); !slices.Equal(got, want) {
			t.Fatalf("tables in cloneiso: %v; want %v", got, want)
		}
	}
	// public keeps the host's clones and the empty version table of the refused Up.
	if got := tablesIn(t, owner, "public"); !slices.Equal(got, []string{migrate.DefaultTableName, "clones"}) {
		t.Fatalf("tables in public: %v; want only the host's clones and the refused Up's version table", got)
	}
	var after string
	if err := owner.QueryRow("SHOW search_path").Scan(&after); err != nil || after != path {
		t.Fatalf("search_path after Up: %q, %v; want %q as before", after, err, path)
	}
	// The trigger function resolves clones in the SDK's schema.
	var fnSchema, fnPath string
	if err := owner.QueryRow(`SELECT n.nspname, array_to_string(p.proconfig, ',') FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE p.proname = 'cloneiso_clone_writable'`).Scan(&fnSchema, &fnPath); err != nil {
		t.Fatal(err)
	}
	if fnSchema != "cloneiso" || !strings.HasPrefix(fnPath, "search_path=cloneiso,") {
		t.Fatalf("trigger function in %s with %s; want schema cloneiso first", fnSchema, fnPath)
	}
	p, err := migrate.NewProvider(owner, opts)
	if err != nil {
		t.Fatal(err)
	}
	if pending, err := p.HasPending(ctx); err != nil || pending {
		t.Fatalf("HasPending = %v, %v after Up", pending, err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	if got := tablesIn(t, owner, "cloneiso"); !slices.Equal(got, []string{migrate.DefaultTableName}) {
		t.Fatalf("after down: tables in cloneiso %v", got)
	}
	if err := migrate.Up(ctx, owner, opts); err != nil {
		t.Fatalf("Up again: %v", err)
	}
	if got := rowsText(t, owner, "public.clones"); got != before {
		t.Fatalf("the host's clones table changed:\n%s\nwas\n%s", got, before)
	}
}

func TestSchemaOption(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := migrate.Up(context.Background(), db, &migrate.Options{Schema: "cloneiso"}); !errors.Is(err, clone.ErrUnsupported) {
		t.Fatalf("Up on SQLite with a schema: %v; want ErrUnsupported", err)
	}
	pg := pgtest.Fresh(t, false)
	for _, s := range []string{"Cloneiso", "a b", "x;drop", "pg_catalog", "a.b"} {
		if _, err := migrate.NewProvider(pg.Owner.DB, &migrate.Options{Schema: s}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("schema %q: %v; want ErrInvalidInput", s, err)
		}
	}
}

// TestCheckSearchPathPostgres: with the SDK's tables in a schema of their own beside a
// host table named clones, the application role set up by AppRoleSQL resolves every
// SDK table there and CheckIsolation is satisfied; a connection whose search_path puts
// another schema with a table of an SDK name first (the SDK would read and write that
// table, without row-level security) or lacks the SDK's schema is reported.
func TestCheckSearchPathPostgres(t *testing.T) {
	db := pgtest.Fresh(t, false)
	ctx := context.Background()
	if _, err := db.Owner.Exec(`CREATE TABLE clones (id bigserial PRIMARY KEY, name text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if err := migrate.Up(ctx, db.Owner.DB, &migrate.Options{Schema: "cloneiso"}); err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	rand.Read(b[:])
	role := "cloneiso_sp_" + hex.EncodeToString(b[:])
	if _, err := db.Owner.Exec("CREATE ROLE " + pq.QuoteIdentifier(role) + " LOGIN PASSWORD 'chk' NOSUPERUSER NOBYPASSRLS"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Owner.Exec("DROP OWNED BY " + pq.QuoteIdentifier(role))
		db.Owner.Exec("DROP ROLE " + pq.QuoteIdentifier(role))
	})
	if _, err := db.Owner.Exec(migrate.AppRoleSQL(role, "cloneiso")); err != nil {
		t.Fatal(err)
	}
	// A schema the role can read, holding a table named like a clone-owned one, without
	// row-level security.
	if _, err := db.Owner.Exec(`CREATE SCHEMA shadow; CREATE TABLE shadow.insights (tenant_id uuid, clone_id uuid, content text);
		GRANT USAGE ON SCHEMA shadow TO ` + pq.QuoteIdentifier(role) + `; GRANT SELECT, INSERT ON shadow.insights TO ` + pq.QuoteIdentifier(role)); err != nil {
		t.Fatal(err)
	}
	connect := func(path string) *sql.DB {
		u, _ := url.Parse(db.OwnerURL)
		u.User = url.UserPassword(role, "chk")
		if path != "" {
			q := u.Query()
			q.Set("search_path", path)
			u.RawQuery = q.Encode()
		}
		c, err := sql.Open("postgres", u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	check := func(c *sql.DB) *migrate.Report {
		t.Helper()
		r, err := migrate.CheckIsolation(ctx, c, &migrate.CheckOptions{Schema: "cloneiso"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	searchPath := func(r *migrate.Report) map[string]string {
		out := map[string]string{}
		for _, p := range r.Problems {
			if p.Code == migrate.ProblemSearchPath {
				out[p.Table] = p.Detail
			}
		}
		return out
	}

	// The role's own search_path (set by AppRoleSQL) resolves every table in cloneiso.
	if r := check(connect("")); !r.OK() {
		t.Fatalf("role set up by AppRoleSQL: %s", r)
	}
	var got string
	if err := connect("").QueryRow("SELECT current_setting('search_path')").Scan(&got); err != nil || !strings.HasPrefix(got, `cloneiso`) {
		t.Fatalf("role's search_path %q, %v; want cloneiso first", got, err)
	}

	// shadow first: insights resolves to shadow.insights.
	r := check(connect("shadow,cloneiso,public"))
	sp := searchPath(r)
	if len(sp) != 1 || !strings.Contains(sp["insights"], "resolves to shadow.insights") {
		t.Fatalf("shadowing schema first: search-path problems %v; want insights only\n%s", sp, r)
	}

	// cloneiso missing: clones resolves to the host's public.clones, the rest to nothing.
	r = check(connect("public"))
	sp = searchPath(r)
	if !strings.Contains(sp["clones"], "resolves to public.clones") || !strings.Contains(sp["tenants"], "not on this connection's search_path") ||
		len(sp) != len(allTables) {
		t.Fatalf("cloneiso not on the path: search-path problems %v\n%s", sp, r)
	}
}

// TestConcurrentUpInSchemaPostgres: instances starting together on a database without
// the schema all create it (a concurrent creation is no error) and migrate it once.
func TestConcurrentUpInSchemaPostgres(t *testing.T) {
	db := pgtest.Fresh(t, false)
	ctx := context.Background()
	errc := make(chan error, 4)
	start := make(chan struct{})
	for range 4 {
		go func() {
			conn, err := sql.Open("postgres", db.OwnerURL) // a pool of its own, as a process has
			if err != nil {
				errc <- err
				return
			}
			defer conn.Close()
			<-start
			errc <- migrate.Up(ctx, conn, &migrate.Options{Schema: "cloneiso"})
		}()
	}
	close(start)
	for range 4 {
		if err := <-errc; err != nil {
			t.Fatalf("concurrent Up: %v", err)
		}
	}
	want := slices.Sorted(slices.Values(append(slices.Clone(allTables), migrate.DefaultTableName)))
	if got := tablesIn(t, db.Owner.DB, "cloneiso"); !slices.Equal(got, want) {
		t.Fatalf("tables in cloneiso: %v", got)
	}
}
