package migrate_test

import (
	"context"
	"database/sql"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

// citusLayout is what the README's "Citus" section says of the schema: the tables it
// distributes by tenant_id, the reference tables and those left on the coordinator.
type citusLayout struct {
	distributed, reference, coordinator []string
}

// readmeCitus reads the layout from the README's statements.
func readmeCitus(t *testing.T) citusLayout {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var l citusLayout
	for _, m := range regexp.MustCompile(`create_distributed_table\('(\w+)', 'tenant_id'`).FindAllStringSubmatch(text, -1) {
		l.distributed = append(l.distributed, m[1])
	}
	for _, m := range regexp.MustCompile(`create_reference_table\('(\w+)'\)`).FindAllStringSubmatch(text, -1) {
		l.reference = append(l.reference, m[1])
	}
	for _, para := range strings.Split(text, "\n\n") {
		if strings.Contains(para, "stay on the coordinator") {
			before, _, _ := strings.Cut(para, "stay on the coordinator")
			for _, m := range regexp.MustCompile("`(\\w+)`").FindAllStringSubmatch(before, -1) {
				l.coordinator = append(l.coordinator, m[1])
			}
		}
	}
	t.Logf("README: distributed %v, reference %v, on the coordinator %v", l.distributed, l.reference, l.coordinator)
	if len(l.distributed) == 0 || len(l.reference) == 0 || len(l.coordinator) == 0 {
		t.Fatalf("the README's Citus section was not found or changed shape: %+v", l)
	}
	return l
}

// citusKeyProblems returns, for each of tables, every primary key, unique or exclusion
// constraint, unique index and foreign key whose first column is not tenant_id, and
// every foreign key to a table of distributed whose referenced columns do not lead with
// tenant_id (Citus needs the distribution column in every unique key and in every
// foreign key between distributed tables; leading with it, as the README says, also
// keeps per-tenant lookups on one shard). A table without a tenant_id column is a
// problem too.
func citusKeyProblems(ctx context.Context, db *sql.DB, tables, distributed []string) ([]string, error) {
	var problems []string
	rows, err := db.QueryContext(ctx, `
SELECT t.relname FROM unnest($1::text[]) AS want(name)
JOIN pg_class t ON t.relname = want.name AND t.relnamespace = current_schema()::regnamespace
WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)`,
		pq.Array(tables))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return nil, err
		}
		problems = append(problems, table+": no tenant_id column")
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}

	// Constraints: primary keys (p), unique (u), exclusion (x) and foreign keys (f).
	rows, err = db.QueryContext(ctx, `
SELECT t.relname, c.conname, c.contype::text,
       coalesce((SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.conrelid AND a.attnum = c.conkey[1]), ''),
       coalesce(ft.relname, ''),
       coalesce((SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.confrelid AND a.attnum = c.confkey[1]), '')
FROM pg_constraint c
JOIN pg_class t ON t.oid = c.conrelid
LEFT JOIN pg_class ft ON ft.oid = c.confrelid
WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY($1) AND c.contype IN ('p', 'u', 'x', 'f')
ORDER BY 1, 2`, pq.Array(tables))
	if err != nil {
		return nil, err
	}
	kinds := map[string]string{"p": "primary key", "u": "unique constraint", "x": "exclusion constraint", "f": "foreign key"}
	for rows.Next() {
		var table, name, kind, first, refTable, refFirst string
		if err := rows.Scan(&table, &name, &kind, &first, &refTable, &refFirst); err != nil {
			rows.Close()
			return nil, err
		}
		if first != "tenant_id" {
			problems = append(problems, table+": "+kinds[kind]+" "+name+" leads with "+first+", not tenant_id")
		}
		if kind == "f" && slices.Contains(distributed, refTable) && refFirst != "tenant_id" {
			problems = append(problems, table+": foreign key "+name+" references "+refTable+" by "+refFirst+", not tenant_id")
		}
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}

	// Unique indexes that back no constraint (CREATE UNIQUE INDEX).
	rows, err = db.QueryContext(ctx, `
SELECT t.relname, i.relname,
       coalesce((SELECT a.attname FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum = x.indkey[0]), '(an expression)')
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY($1) AND x.indisunique
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = t.oid)
ORDER BY 1, 2`, pq.Array(tables))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var table, name, first string
		if err := rows.Scan(&table, &name, &first); err != nil {
			rows.Close()
			return nil, err
		}
		if first != "tenant_id" {
			problems = append(problems, table+": unique index "+name+" leads with "+first+", not tenant_id")
		}
	}
	return problems, rows.Close()
}

// TestCitusLayout: the README's Citus statements hold for the migrated schema. Every
// table it distributes by tenant_id, every clone-owned table (the SDK's and a host's,
// registered with CheckIsolation) leads its primary key, unique constraints, unique
// indexes and foreign keys with tenant_id; every table with a tenant_id column is one
// the README places (distributed, reference or on the coordinator); every SDK
// clone-owned table is distributed. A migration that adds a key not led by tenant_id —
// shown here on a host's table and on an SDK table — fails the test.
func TestCitusLayout(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Fresh(t, true)
	readme := readmeCitus(t)
	for _, table := range migrate.CloneOwnedTables() {
		if !slices.Contains(readme.distributed, table) {
			t.Errorf("clone-owned table %s is not distributed by tenant_id in the README", table)
		}
	}

	// Every table with a tenant_id column is placed by the README.
	rows, err := db.Owner.QueryContext(ctx, `
SELECT c.relname FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	var withTenant []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		withTenant = append(withTenant, name)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, table := range withTenant {
		if !slices.Contains(readme.distributed, table) && !slices.Contains(readme.reference, table) && !slices.Contains(readme.coordinator, table) {
			t.Errorf("table %s has a tenant_id column but the README's Citus section does not place it", table)
		}
	}

	// checked returns the key problems of the README's distributed tables and of the
	// clone-owned tables CheckIsolation finds, with hostTables registered.
	checked := func(t *testing.T, hostTables ...string) []string {
		t.Helper()
		report, err := migrate.CheckIsolation(ctx, db.App.DB, &migrate.CheckOptions{Tables: hostTables})
		if err != nil {
			t.Fatal(err)
		}
		tables := slices.Clone(readme.distributed)
		for _, table := range report.Tables {
			if !slices.Contains(tables, table) {
				tables = append(tables, table)
			}
		}
		for _, h := range hostTables {
			if !slices.Contains(tables, h) {
				t.Fatalf("CheckIsolation did not check the host's table %s: %v", h, report.Tables)
			}
		}
		problems, err := citusKeyProblems(ctx, db.Owner.DB, tables, readme.distributed)
		if err != nil {
			t.Fatal(err)
		}
		return problems
	}
	if p := checked(t); len(p) > 0 {
		t.Fatalf("the schema breaks the README's Citus statements:\n%s", strings.Join(p, "\n"))
	}

	// A host's clone-owned table, keyed as the README asks: it passes.
	exec := func(stmt string) {
		t.Helper()
		if _, err := db.Owner.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	exec(`CREATE TABLE host_notes (
    tenant_id uuid NOT NULL, clone_id uuid NOT NULL, id uuid NOT NULL, slug text NOT NULL, document_id uuid,
    PRIMARY KEY (tenant_id, clone_id, id),
    UNIQUE (tenant_id, clone_id, slug),
    FOREIGN KEY (tenant_id, clone_id, document_id) REFERENCES documents (tenant_id, clone_id, id))`)
	if p := checked(t, "host_notes"); len(p) > 0 {
		t.Fatalf("a host table keyed by tenant_id: %v", p)
	}

	// Each key not led by tenant_id is caught, on the host's table and on the SDK's.
	for _, c := range []struct{ stmt, want string }{
		{`ALTER TABLE host_notes ADD CONSTRAINT host_notes_slug UNIQUE (slug)`,
			"host_notes: unique constraint host_notes_slug leads with slug, not tenant_id"},
		{`CREATE UNIQUE INDEX host_notes_slug_clone ON host_notes (clone_id, slug)`,
			"host_notes: unique index host_notes_slug_clone leads with clone_id, not tenant_id"},
		{`CREATE UNIQUE INDEX host_notes_lower_slug ON host_notes (lower(slug), tenant_id)`,
			"host_notes: unique index host_notes_lower_slug leads with (an expression), not tenant_id"},
		{`ALTER TABLE host_notes ADD CONSTRAINT host_notes_doc FOREIGN KEY (clone_id, tenant_id, document_id) REFERENCES documents (clone_id, tenant_id, id)`,
			"host_notes: foreign key host_notes_doc leads with clone_id, not tenant_id"},
		{`ALTER TABLE documents ADD CONSTRAINT documents_hash UNIQUE (content_hash, tenant_id, clone_id)`,
			"documents: unique constraint documents_hash leads with content_hash, not tenant_id"},
	} {
		// The foreign key needs a unique key to reference.
		if strings.Contains(c.stmt, "host_notes_doc") {
			exec(`CREATE UNIQUE INDEX documents_by_clone ON documents (clone_id, tenant_id, id)`)
		}
		exec(c.stmt)
		p := checked(t, "host_notes")
		if !slices.Contains(p, c.want) {
			t.Fatalf("after %s: problems %v; want %q", c.stmt, p, c.want)
		}
	}
}
