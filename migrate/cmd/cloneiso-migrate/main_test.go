package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/internal/testenv"
	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// asCLI, set in the environment, makes the test binary behave as cloneiso-migrate, so
// tests can run it as a process of its own and kill it.
const asCLI = "CLONEISO_MIGRATE_TEST_AS_CLI"

// killAt, set in the environment of a process started with asCLI as "STEP:N", makes
// that process SIGKILL itself at the N-th checkpoint of STEP (provision, snapshot,
// backfill: see checkpoint in main.go), so crash tests kill at chosen points rather than
// after delays that depend on the machine's speed.
const killAt = "CLONEISO_MIGRATE_TEST_KILL_AT"

func TestMain(m *testing.M) {
	if os.Getenv(asCLI) == "1" {
		if at := os.Getenv(killAt); at != "" {
			step, n, _ := strings.Cut(at, ":")
			want, err := strconv.Atoi(n)
			if err != nil || want < 1 {
				fmt.Fprintf(os.Stderr, "%s=%q: want STEP:N\n", killAt, at)
				os.Exit(exitUsage)
			}
			seen := 0
			checkpoint = func(ev legacy.Progress) {
				if ev.Step != step {
					return
				}
				if seen++; seen == want {
					fmt.Fprintf(os.Stderr, "killed at checkpoint %s %d (%s)\n", step, want, ev.Table)
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
					select {} // the signal is on its way
				}
			}
		}
		main()
		return
	}
	os.Exit(pgtest.Main(m))
}

type cli struct {
	t   *testing.T
	env map[string]string
}

// run runs the command line and checks its exit status; it returns stdout and stderr.
func (c *cli) run(want int, args ...string) (string, string) {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return c.env[k] }, &out, &errb)
	if code != want {
		c.t.Fatalf("cloneiso-migrate %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

func mustContain(t *testing.T, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Fatalf("output lacks %q:\n%s", w, s)
		}
	}
}

// fixtureDB returns a fresh database holding the legacy fixture (legacytest.Create, one
// copy).
func fixtureDB(t *testing.T) *pgtest.DB {
	t.Helper()
	db := pgtest.Fresh(t, false)
	if err := legacytest.Create(context.Background(), db.Owner, 1); err != nil {
		t.Fatal(err)
	}
	return db
}

// writeConfig writes cfg as the command's JSON configuration file and returns its path.
func writeConfig(t *testing.T, cfg legacy.Config) string {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "migrate.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestCLI runs the runbook of MIGRATION_GUIDE.md on the legacy fixture, configured by
// environment and a JSON file: PostgreSQL always, objects on MinIO when available,
// vectors on the Pinecone emulator.
func TestCLI(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	cfg := legacytest.Config()
	cfg.BatchSize = 50
	cfgFile := writeConfig(t, cfg)
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": cfgFile}}

	// Vectors on the emulator (namespace per user).
	srv, vecFlags := legacyVectors(ctx, t)

	// Objects on MinIO, if there is one.
	var objFlags []string
	if env, ok := s3test.Lookup(); ok || testenv.ServicesRequired() {
		s3env := s3test.Require(t) // fails without a server when services are required
		bucket := s3test.NewBucket(t, s3env, false)
		if _, err := legacytest.PutObjects(ctx, s3env.Client(), bucket); err != nil {
			t.Fatal(err)
		}
		c.env["CLONEISO_S3_ACCESS_KEY"], c.env["CLONEISO_S3_SECRET_KEY"] = env.AccessKey, env.SecretKey
		objFlags = []string{"--s3-endpoint", env.Endpoint, "--legacy-bucket", bucket}
	} else {
		t.Log("no S3 server: the object steps are not exercised here")
	}

	out, _ := c.run(exitOK, "status")
	mustContain(t, out, "state: legacy (not adopted: run up)")
	out, _ = c.run(exitOK, append([]string{"plan"}, append(objFlags, vecFlags...)...)...)
	mustContain(t, out, "legacy users: 60 (60 without a clone yet)", "documents", "warning: 11 rows have no user", "notes u001")
	if objFlags != nil {
		mustContain(t, out, "objects (dry run):", "problem: users/u999/documents/stranger.txt")
	}
	_, errOut := c.run(exitDiscrepancy, "enforce")
	mustContain(t, errOut, "adopt")
	c.run(exitUsage, "backfill", "--progress", "sometimes")
	_, errOut = c.run(exitUsage, "backfill") // out of order: permanent until up runs
	mustContain(t, errOut, "not adopted", "a permanent error")
	c.run(exitUsage, "frobnicate")

	out, _ = c.run(exitOK, "up")
	mustContain(t, out, "legacy schema adopted")
	out, _ = c.run(exitOK, "rollback-sql")
	mustContain(t, out, "BEGIN;", "ALTER TABLE \"documents\" DROP COLUMN IF EXISTS tenant_id", "DROP TABLE \"tenants\"")
	_, errOut = c.run(exitDiscrepancy, "enforce")
	mustContain(t, errOut, "refusing to enforce", "documents:")

	// Backfill with the progress bar drawn; rows without a user make it exit 1.
	out, errOut = c.run(exitDiscrepancy, "backfill", "--progress", "always")
	mustContain(t, out, "users: 60 (60 provisioned now)", "11 rows still have no clone (11 of them no user)")
	mustContain(t, errOut, "backfill documents", "100%", "[==============================]")
	out, _ = c.run(exitOK, "status")
	mustContain(t, out, "state: adopted", "legacy users with a clone: 60", "documents")

	if objFlags != nil {
		out, _ = c.run(exitDiscrepancy, append([]string{"objects", "copy"}, objFlags...)...) // unmatched keys are reported
		mustContain(t, out, "problem: users/lonely.txt")
		out, _ = c.run(exitDiscrepancy, append([]string{"objects", "verify"}, objFlags...)...)
		mustContain(t, out, "unmatched")
		if strings.Contains(out, "was not copied") {
			t.Fatalf("objects verify:\n%s", out)
		}
		out, _ = c.run(exitOK, append([]string{"objects", "rewrite-keys"}, objFlags...)...)
		mustContain(t, out, "documents: ")
		// The fixture's rows that name objects never uploaded: SQL verify reports them
		// once objects were copied; the operator clears those keys (the snapshot is
		// retaken below, with the rows without a user).
		out, _ = c.run(exitDiscrepancy, "verify")
		mustContain(t, out, "name a legacy object that was neither copied nor declared out of scope")
		db.Owner.MustExec("UPDATE documents SET object_key = '' WHERE object_key <> '' AND NOT starts_with(object_key, 'tenants/')")
	}
	c.run(exitOK, append([]string{"vectors", "copy"}, vecFlags...)...)
	out, _ = c.run(exitOK, append([]string{"vectors", "verify"}, vecFlags...)...)
	mustContain(t, out, "vectors: OK")

	out, _ = c.run(exitDiscrepancy, "verify")
	mustContain(t, out, "without-user [documents]", "without-user [notes]")

	// The operator deletes the rows without a user, records the snapshot again, verifies.
	db.Owner.MustExec("DELETE FROM documents WHERE user_id IS NULL; DELETE FROM notes WHERE owner = ''")
	c.run(exitDiscrepancy, "verify")
	c.run(exitOK, "snapshot", "--retake")
	out, _ = c.run(exitOK, append([]string{"verify", "--per-user"}, vecFlags...)...)
	mustContain(t, out, "sql: OK", "vectors: OK", "documents u001 2 2 same")
	out, _ = c.run(exitOK, "backfill")
	mustContain(t, out, "already complete", "every row has its clone")

	out, _ = c.run(exitOK, "enforce")
	mustContain(t, out, "enforced on documents")
	c.run(exitOK, "enforce")
	_, errOut = c.run(exitUsage, "rollback-sql")
	mustContain(t, errOut, "restoring the backup")

	c.run(exitUsage, "check")
	out, _ = c.run(exitOK, "grant", "--app-role", pgtest.AppRole)
	mustContain(t, out, "ON \"notes\" TO")
	out, _ = c.run(exitOK, "check", "--app-database-url", db.AppURL)
	mustContain(t, out, "isolation OK")
	db.Owner.MustExec("ALTER TABLE notes NO FORCE ROW LEVEL SECURITY")
	out, _ = c.run(exitDiscrepancy, "check", "--app-database-url", db.AppURL)
	mustContain(t, out, "rls-not-forced [notes]")
	db.Owner.MustExec("ALTER TABLE notes FORCE ROW LEVEL SECURITY")

	c.run(exitOK, append([]string{"vectors", "delete-legacy"}, vecFlags...)...)
	for ns, n := range srv.Namespaces() {
		// A serverless namespace outlives its last record: only records count.
		if n > 0 && strings.HasPrefix(ns, "user-") {
			t.Fatalf("legacy namespace %s left with %d vectors", ns, n)
		}
	}
	if objFlags != nil {
		c.run(exitOK, append([]string{"objects", "delete-legacy"}, objFlags...)...)
	}
	out, _ = c.run(exitOK, "status")
	mustContain(t, out, "state: enforced", "schema version: ", "pending migrations: 0")
	out, _ = c.run(exitOK, "up")
	mustContain(t, out, "cloneiso schema at version")
}

func TestRender(t *testing.T) {
	got := render("backfill documents", 50, 200, 2*time.Second)
	want := "backfill documents           [=======>                      ]  25%  50/200  25/s"
	if got != want {
		t.Fatalf("render:\n got %q\nwant %q", got, want)
	}
	if got := render("provision", 7, 0, 0); got != "provision                    7" {
		t.Fatalf("render without total: %q", got)
	}
}

// TestKillProcess runs backfill as a process of its own and kills it (SIGKILL, no
// chance to clean up) again and again, each run resuming the last, until a run finishes
// by itself; the database must then be exactly as after one uninterrupted run, and a
// further run must change nothing. Each killed process kills itself at a chosen
// checkpoint (killAt), so the kills land, on any machine, while users are provisioned,
// while the snapshot is taken (before its transaction commits) and between the batches
// of different tables.
func TestKillProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes in a loop")
	}
	ctx := context.Background()
	cfg := legacytest.Config()
	cfg.BatchSize = 2 // many small commits: a long run to kill
	cfgFile := writeConfig(t, cfg)
	newDB := func() *pgtest.DB {
		db := pgtest.Fresh(t, false)
		if err := legacytest.Create(ctx, db.Owner, 2); err != nil {
			t.Fatal(err)
		}
		return db
	}
	ref := newDB()
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": ref.OwnerURL, "CLONEISO_CONFIG": cfgFile}}
	c.run(exitOK, "up")
	c.run(exitDiscrepancy, "backfill") // rows without a user remain: exit 1 is the complete run
	want, err := legacytest.State(ctx, ref.Owner, cfg.Tables)
	if err != nil {
		t.Fatal(err)
	}

	db := newDB()
	c = &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": cfgFile}}
	c.run(exitOK, "up")
	// Each run counts the checkpoints of what is left to do.
	kills := []string{"provision:1", "provision:7", "provision:30", "snapshot:1", "snapshot:3",
		"backfill:1", "backfill:2", "backfill:9", "backfill:25", "backfill:60"}
	run := func(at string) (string, error) {
		cmd := exec.Command(os.Args[0], "backfill", "--progress", "never")
		cmd.Env = append(os.Environ(), asCLI+"=1", "CLONEISO_MIGRATE_DATABASE_URL="+db.OwnerURL, "CLONEISO_CONFIG="+cfgFile)
		if at != "" {
			cmd.Env = append(cmd.Env, killAt+"="+at)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for i, at := range kills {
		out, err := run(at)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(out, "killed at checkpoint "+strings.Replace(at, ":", " ", 1)) {
			t.Fatalf("run %d was to be killed at checkpoint %s, but: %v\n%s", i, at, err, out)
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: not killed by SIGKILL: %v\n%s", i, err, out)
		}
	}
	out, err := run("")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitDiscrepancy {
		t.Fatalf("the run after %d kills: %v\n%s", len(kills), err, out)
	}
	got, err := legacytest.State(ctx, db.Owner, cfg.Tables)
	if err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Errorf("after %d kills, %s differs from an uninterrupted run", len(kills), k)
		}
	}
	out, _ = c.run(exitDiscrepancy, "backfill", "--restart")
	mustContain(t, out, "0 updated")
	if strings.Contains(out, "provisioned now") && !strings.Contains(out, "(0 provisioned now)") {
		t.Fatalf("a run after the kills provisioned users:\n%s", out)
	}
}

// legacyVectors starts the Pinecone emulator holding the legacy deployment's vectors
// (a namespace per user) and returns it with the vector steps' flags for it.
func legacyVectors(ctx context.Context, t *testing.T) (*pineconetest.Server, []string) {
	t.Helper()
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: legacytest.VectorDimension})
	raw, err := pineconevector.NewDriver(srv.Host(), legacytest.VectorDimension, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := legacytest.PutVectors(ctx, raw, true, ""); err != nil {
		t.Fatal(err)
	}
	return srv, []string{"--pinecone-host", srv.Host(), "--dimension", "8", "--namespace-template", "user-{user_id}"}
}
