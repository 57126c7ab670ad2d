package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestCLI(t *testing.T) {
	ctx := context.Background()
	exec := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := exec(); code != 2 || !strings.Contains(out, "nothing to check") {
		t.Fatalf("no arguments: %d %s", code, out)
	}
	db := pgtest.Fresh(t, true)
	if code, out := exec("-database-url", db.AppURL, "-jwt-issuer", "https://id.example.com", "-jwt-audience", "cloneiso"); code != 0 {
		t.Fatalf("correct setup: exit %d\n%s", code, out)
	}
	// As the superuser owner the database check must fail.
	code, out := exec("-database-url", db.OwnerURL)
	if code != 1 || !strings.Contains(out, "role-superuser") {
		t.Fatalf("superuser connection: exit %d\n%s", code, out)
	}
	if code, out := exec("-check-jwt"); code != 1 || !strings.Contains(out, "jwt-issuer-not-pinned") {
		t.Fatalf("unpinned JWT: exit %d\n%s", code, out)
	}
	if code, _ := exec("-database-url", "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"); code != 3 {
		t.Fatalf("unreachable database: exit %d; want 3", code)
	}
}

// TestCLISchema: with cloneiso's tables in a schema of their own (beside a host table
// named clones), -schema checks them there, and a connection whose search_path does not
// resolve them there is a finding.
func TestCLISchema(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Fresh(t, false)
	if _, err := db.Owner.Exec("CREATE TABLE clones (id bigserial PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	if err := migrate.Up(ctx, db.Owner.DB, &migrate.Options{Schema: "cloneiso"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(migrate.AppRoleSQL(pgtest.AppRole, "cloneiso")); err != nil {
		t.Fatal(err)
	}
	exec := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(ctx, args, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := exec("-database-url", db.AppURL, "-schema", "cloneiso"); code != 0 {
		t.Fatalf("role set up by AppRoleSQL: exit %d\n%s", code, out)
	}
	u, err := url.Parse(db.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", "public")
	u.RawQuery = q.Encode()
	code, out := exec("-database-url", u.String(), "-schema", "cloneiso")
	if code != 1 || !strings.Contains(out, "search-path") || !strings.Contains(out, "resolves to public.clones") {
		t.Fatalf("search_path without cloneiso: exit %d\n%s", code, out)
	}
}
