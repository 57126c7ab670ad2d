package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDatabaseURLNames: the owner's URL comes from CLONEISO_MIGRATE_DATABASE_URL, never
// from CLONEISO_DATABASE_URL, which names the application role in every cloneiso command
// (the host app, cloneiso-doctor); a command needing the owner refuses to guess.
func TestDatabaseURLNames(t *testing.T) {
	if got := envName("database-url"); got != "CLONEISO_MIGRATE_DATABASE_URL" {
		t.Errorf("--database-url reads %s", got)
	}
	if got := envName("app-database-url"); got != "CLONEISO_DATABASE_URL" {
		t.Errorf("--app-database-url reads %s", got)
	}
	if got := envName("s3-bucket"); got != "CLONEISO_S3_BUCKET" {
		t.Errorf("--s3-bucket reads %s", got)
	}
	env := map[string]string{"CLONEISO_DATABASE_URL": "postgres://app@127.0.0.1:1/none?sslmode=disable"}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"status"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "CLONEISO_MIGRATE_DATABASE_URL") {
		t.Fatalf("status with only the application role's URL: exit %d, %q; want exit %d naming CLONEISO_MIGRATE_DATABASE_URL", code, stderr.String(), exitUsage)
	}
}
