package main

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/internal/testenv"
)

// TestCLISchema: a legacy database with a clones table of its own. Without a schema
// for the SDK, plan names the collision and the option that resolves it, and up
// refuses; with --schema (config "schema"), up, backfill, verify, enforce, grant and
// check pass, the SDK's control plane lives in its schema while the legacy content
// tables are adopted in place, the SDK's repositories read the migrated rows as the
// application role, and the legacy clones table is untouched, byte for byte.
func TestCLISchema(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	db.Owner.MustExec(`CREATE TABLE clones (id bigserial PRIMARY KEY, owner text NOT NULL, persona jsonb,
			created_at timestamptz NOT NULL DEFAULT '2020-01-02 03:04:05.678901+00');
		INSERT INTO clones (owner, persona) VALUES ('u001', '{"voice": "warm", "é": [1, 2.50]}'), ('u002', NULL)`)
	legacyClones := func() string {
		t.Helper()
		var s string
		if err := db.Owner.QueryRow(`SELECT string_agg(c::text, E'\n' ORDER BY c.id) || ' ' || (SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum)
			FROM pg_attribute WHERE attrelid = 'public.clones'::regclass AND attnum > 0 AND NOT attisdropped) FROM public.clones c`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := legacyClones()
	cfg := legacytest.Config()
	cfg.BatchSize = 50
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": writeConfig(t, cfg)}}

	out, _ := c.run(exitOK, "plan")
	mustContain(t, out, "schema prerequisites", "clones:", `"schema": "cloneiso"`, "--schema cloneiso")
	_, errOut := c.run(exitUsage, "up")
	mustContain(t, errOut, "clones:", "--schema cloneiso")

	// The schema comes from the configuration file, and the same from the flag.
	cfg.Schema = "cloneiso"
	c.env["CLONEISO_CONFIG"] = writeConfig(t, cfg)
	out, _ = c.run(exitOK, "plan", "--schema", "cloneiso")
	if strings.Contains(out, "schema prerequisites") {
		t.Fatalf("plan with a schema still reports a prerequisite:\n%s", out)
	}
	out, _ = c.run(exitOK, "up")
	mustContain(t, out, "legacy schema adopted", "created: tenants, clones")
	// The rollback script resolves clones in cloneiso, never the legacy one: run it,
	// then adopt again.
	out, _ = c.run(exitOK, "rollback-sql")
	mustContain(t, out, `SET LOCAL search_path TO "cloneiso", "public"`, `DROP TABLE "clones"`)
	db.Owner.MustExec(out)
	var left int
	if err := db.Owner.QueryRow("SELECT count(*) FROM pg_tables WHERE schemaname = 'cloneiso'").Scan(&left); err != nil || left != 0 {
		t.Fatalf("after the rollback: %d tables in cloneiso (%v)", left, err)
	}
	if got := legacyClones(); got != before {
		t.Fatalf("the rollback changed the legacy clones table:\n%s\nwas\n%s", got, before)
	}
	c.run(exitOK, "up")
	c.run(exitOK, "up") // idempotent
	c.run(exitDiscrepancy, "backfill")
	// Vectors (on the emulator) find each user's clone in the SDK's schema.
	_, vecFlags := legacyVectors(ctx, t)
	c.run(exitOK, append([]string{"vectors", "copy"}, vecFlags...)...)
	out, _ = c.run(exitOK, append([]string{"vectors", "verify"}, vecFlags...)...)
	mustContain(t, out, "vectors: OK")
	// Objects (on MinIO, if there is one) likewise; rewrite-keys updates the adopted
	// public.documents.
	if env, ok := s3test.Lookup(); ok || testenv.ServicesRequired() {
		s3env := s3test.Require(t)
		bucket := s3test.NewBucket(t, s3env, false)
		if _, err := legacytest.PutObjects(ctx, s3env.Client(), bucket); err != nil {
			t.Fatal(err)
		}
		c.env["CLONEISO_S3_ACCESS_KEY"], c.env["CLONEISO_S3_SECRET_KEY"] = env.AccessKey, env.SecretKey
		objFlags := []string{"--s3-endpoint", env.Endpoint, "--legacy-bucket", bucket}
		c.run(exitDiscrepancy, append([]string{"objects", "copy"}, objFlags...)...) // the fixture's unmatched keys
		out, _ = c.run(exitOK, append([]string{"objects", "rewrite-keys"}, objFlags...)...)
		mustContain(t, out, "documents: ")
		var rewritten int
		if err := db.Owner.QueryRow("SELECT count(*) FROM public.documents WHERE starts_with(object_key, 'tenants/')").Scan(&rewritten); err != nil || rewritten == 0 {
			t.Fatalf("rewrite-keys: %d keys of public.documents point at copies (%v)", rewritten, err)
		}
		db.Owner.MustExec("UPDATE documents SET object_key = '' WHERE object_key <> '' AND NOT starts_with(object_key, 'tenants/')")
	} else {
		t.Log("no S3 server: the object steps are not exercised here")
	}
	db.Owner.MustExec("DELETE FROM documents WHERE user_id IS NULL; DELETE FROM notes WHERE owner = ''")
	c.run(exitOK, "snapshot", "--retake")
	out, _ = c.run(exitOK, append([]string{"verify"}, vecFlags...)...)
	mustContain(t, out, "sql: OK", "vectors: OK")
	out, _ = c.run(exitOK, "enforce")
	mustContain(t, out, "enforced on documents")
	c.run(exitOK, "enforce")
	c.run(exitOK, "up")
	out, _ = c.run(exitOK, "status")
	mustContain(t, out, "state: enforced", "pending migrations: 0")
	out, _ = c.run(exitOK, "grant", "--app-role", pgtest.AppRole)
	mustContain(t, out, `"cloneiso"."clones"`, `"public"."documents"`, `ON "public"."notes" TO`, "search_path")
	out, _ = c.run(exitOK, "check", "--app-database-url", db.AppURL)
	mustContain(t, out, "isolation OK")
	// The adopted tables are checked where they live.
	db.Owner.MustExec("ALTER TABLE public.notes NO FORCE ROW LEVEL SECURITY")
	out, _ = c.run(exitDiscrepancy, "check", "--app-database-url", db.AppURL)
	mustContain(t, out, "rls-not-forced [public.notes]")
	db.Owner.MustExec("ALTER TABLE public.notes FORCE ROW LEVEL SECURITY")

	// Which table lives where.
	where := map[string]string{}
	rows, err := db.Owner.Query(`SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname IN ('public', 'cloneiso') ORDER BY 2, 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, schema string
		if err := rows.Scan(&name, &schema); err != nil {
			t.Fatal(err)
		}
		where[schema+"."+name] = "yes"
	}
	rows.Close()
	for _, want := range []string{"cloneiso.tenants", "cloneiso.clones", "cloneiso.clone_grants", "cloneiso.audit_events", "cloneiso.audit_chain_heads",
		"cloneiso.break_glass_grants", "cloneiso.cloneiso_schema_version", "cloneiso.cloneiso_legacy_users",
		"cloneiso.training_examples", // absent from the legacy database: created by enforce, in the SDK's schema
		"public.clones", "public.documents", "public.notes", "public.users"} {
		if where[want] == "" {
			t.Errorf("no table %s; tables: %v", want, where)
		}
	}
	for _, unwanted := range []string{"public.tenants", "public.cloneiso_legacy_users", "cloneiso.documents", "cloneiso.notes"} {
		if where[unwanted] != "" {
			t.Errorf("table %s exists", unwanted)
		}
	}

	var appDB *sql.DB
	// The SDK's repositories, as the application role (its search_path set by grant),
	// read u001's migrated documents in u001's clone.
	appDB, err = sql.Open("postgres", db.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	defer appDB.Close()
	app, err := clonesql.New(appDB, nil)
	if err != nil {
		t.Fatal(err)
	}
	var tenantID, cloneID uuid.UUID
	var want int
	if err := db.Owner.QueryRow(`SELECT to_tenant_id, to_clone_id, (SELECT count(*) FROM public.documents WHERE user_id = 'u001')
		FROM cloneiso.cloneiso_legacy_users WHERE user_id = 'u001'`).Scan(&tenantID, &cloneID, &want); err != nil {
		t.Fatal(err)
	}
	cc, err := clone.New(tenantID, cloneID, clone.Principal{Subject: "u001", Roles: []string{"owner"}})
	if err != nil {
		t.Fatal(err)
	}
	docs, err := records.ListDocuments(ctx, app, cc, &records.ListOptions{Limit: records.MaxPageSize})
	if err != nil {
		t.Fatalf("ListDocuments: %v", err)
	}
	if len(docs.Items) != want || want == 0 {
		t.Fatalf("ListDocuments of u001: %d documents; want %d", len(docs.Items), want)
	}

	if got := legacyClones(); got != before {
		t.Fatalf("the legacy clones table changed:\n%s\nwas\n%s", got, before)
	}
}
