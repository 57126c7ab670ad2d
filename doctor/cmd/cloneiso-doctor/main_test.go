package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/internal/pgtest"
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
