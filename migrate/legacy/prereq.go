package legacy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/migrate"
)

// SchemaProblem is a difference between a legacy table and the SDK's table of the same
// name that must be fixed before the migration: the SDK's repositories (clone/records)
// would fail on the migrated rows, or the SDK's own tables could not be created.
type SchemaProblem struct {
	Table  string
	Column string // "" for the whole table
	// Problem says what differs; Fix says exactly what to change (SQL where one
	// statement does it).
	Problem string
	Fix     string
}

// String describes the problem and its fix in one line.
func (p SchemaProblem) String() string {
	where := p.Table
	if p.Column != "" {
		where += "." + p.Column
	}
	return where + ": " + p.Problem + "; fix: " + p.Fix
}

// sdkColumn is a column of a table of the fresh install, or of a legacy table.
type sdkColumn struct {
	Table   string  `db:"table_name"`
	Name    string  `db:"name"`
	Type    string  `db:"type"`
	NotNull bool    `db:"not_null"`
	Default *string `db:"def"`
}

const columnsSQL = `SELECT c.relname AS table_name, a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
	a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS def
	FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped AND `

// sdkTables returns the columns of the fresh install's tables (schema version 1, which
// defines every column of the SDK's tables): it creates them as temporary tables in a
// transaction it rolls back, so nothing changes.
func (m *Migrator) sdkTables(ctx context.Context) (map[string][]sdkColumn, error) {
	core, err := coreStatements()
	if err != nil {
		return nil, err
	}
	tx, err := m.db.BeginTxx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SET LOCAL search_path = pg_temp"); err != nil {
		return nil, err
	}
	for _, st := range core {
		if st.index != "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, st.sql); err != nil {
			return nil, fmt.Errorf("describe the SDK's table %s: %w", st.table, err)
		}
	}
	var cols []sdkColumn
	if err := tx.SelectContext(ctx, &cols, columnsSQL+"c.relnamespace = pg_my_temp_schema() ORDER BY c.relname, a.attnum"); err != nil {
		return nil, err
	}
	out := map[string][]sdkColumn{}
	for _, c := range cols {
		out[c.Table] = append(out[c.Table], c)
	}
	return out, nil
}

// SchemaProblems compares the legacy tables that bear the name of one of the SDK's
// tables with the SDK's: a configured table of the SDK (clone/records reads it after
// the migration) must have every column the SDK has, of the SDK's type (a bigint or
// varchar key where the SDK has a uuid cannot be scanned), NOT NULL where the SDK
// scans a value, and no NOT NULL column the SDK does not fill; a legacy table named like
// one of the SDK's control tables (tenants, clones, tenant_members, clone_grants,
// audit_events) collides with it. It reads only, and returns nothing once the schema is
// enforced.
func (m *Migrator) SchemaProblems(ctx context.Context) ([]SchemaProblem, error) {
	const op = "legacy.SchemaProblems"
	if v, err := schemaVersion(ctx, m.db); err != nil {
		return nil, classify(op, err, "schema version")
	} else if v >= 1 {
		return nil, nil
	}
	sdk, err := m.sdkTables(ctx)
	if err != nil {
		return nil, classify(op, err, "SDK schema")
	}
	legacySchema, err := m.legacySchema(ctx, m.db)
	if err != nil {
		return nil, classify(op, err, "legacy schema")
	}
	var have []sdkColumn
	if err := m.db.SelectContext(ctx, &have, columnsSQL+"c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) ORDER BY c.relname, a.attnum", legacySchema); err != nil {
		return nil, classify(op, err, "catalog")
	}
	legacyCols := map[string][]sdkColumn{}
	for _, c := range have {
		legacyCols[c.Table] = append(legacyCols[c.Table], c)
	}
	var out []SchemaProblem
	for _, name := range controlTables {
		if m.cfg.Schema != "" {
			break // the SDK's control plane goes to a schema of its own
		}
		if cols, ok := legacyCols[name]; ok && !sameColumns(cols, sdk[name]) {
			out = append(out, SchemaProblem{Table: name,
				Problem: fmt.Sprintf("a legacy table bears the name of the SDK's control table %s and has other columns; to keep it as it is, put the SDK's tables "+
					"in a schema of their own: set \"schema\": \"cloneiso\" in the configuration file (or --schema cloneiso, CLONEISO_SCHEMA) for every command, "+
					"and %s.%s stays untouched (see \"A schema for the SDK's tables\" in MIGRATION_GUIDE.md); or rename it, in the legacy application's code too", name, legacySchema, name),
				Fix: fmt.Sprintf("ALTER TABLE %s RENAME TO %s", pq.QuoteIdentifier(name), pq.QuoteIdentifier("legacy_"+name))})
		}
	}
	sdkOwned := migrate.CloneOwnedTables()
	for _, t := range m.cfg.Tables {
		cols, ok := legacyCols[t.Name]
		if !ok || !slices.Contains(sdkOwned, t.Name) {
			continue
		}
		probs, err := m.compareTable(ctx, t, cols, sdk[t.Name])
		if err != nil {
			return nil, classify(op, err, "%s", t.Name)
		}
		out = append(out, probs...)
	}
	return out, nil
}

func textType(t string) bool {
	return t == "text" || strings.HasPrefix(t, "character")
}

func sameColumns(a, b []sdkColumn) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Type != b[i].Type || a[i].NotNull != b[i].NotNull {
			return false
		}
	}
	return true
}

// compareTable compares a legacy table of an SDK name with the SDK's table.
func (m *Migrator) compareTable(ctx context.Context, t Table, have, want []sdkColumn) ([]SchemaProblem, error) {
	tq := pq.QuoteIdentifier(t.Name)
	byName := map[string]sdkColumn{}
	for _, c := range have {
		byName[c.Name] = c
	}
	var out []SchemaProblem
	add := func(col, problem, fix string, args ...any) {
		out = append(out, SchemaProblem{Table: t.Name, Column: col, Problem: problem, Fix: fmt.Sprintf(fix, args...)})
	}
	for _, w := range want {
		if w.Name == "tenant_id" || w.Name == "clone_id" {
			continue // adopt adds them
		}
		cq := pq.QuoteIdentifier(w.Name)
		h, ok := byName[w.Name]
		switch {
		case !ok && w.Default != nil:
			add(w.Name, "missing column ("+w.Type+")", "ALTER TABLE %s ADD COLUMN %s %s NOT NULL DEFAULT %s", tq, cq, w.Type, *w.Default)
		case !ok && w.NotNull:
			add(w.Name, "missing column ("+w.Type+" NOT NULL, no default)", "ALTER TABLE %s ADD COLUMN %s %s; fill it for every row; ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", tq, cq, w.Type, tq, cq)
		case !ok:
			add(w.Name, "missing column ("+w.Type+")", "ALTER TABLE %s ADD COLUMN %s %s", tq, cq, w.Type)
		case h.Type != w.Type && w.Type == "uuid" && !textType(h.Type):
			add(w.Name, fmt.Sprintf("type %s; the SDK's repositories scan it as uuid", h.Type),
				"PostgreSQL has no cast from %s to uuid: give the table uuid keys (add a uuid column filled with gen_random_uuid(), keep the old key in another column as the mapping, repoint the foreign keys to it, make it the primary key), or rename the table so that it is a host table of your own (configured with its user column)", h.Type)
		case h.Type != w.Type && w.Type == "uuid":
			add(w.Name, fmt.Sprintf("type %s; the SDK's repositories scan it as uuid", h.Type),
				"ALTER TABLE %s ALTER COLUMN %s TYPE uuid USING %s::uuid (if every value is a UUID; else give the table uuid keys, keeping the old key in another column as the mapping)", tq, cq, cq)
		case h.Type != w.Type:
			add(w.Name, fmt.Sprintf("type %s; the SDK's is %s", h.Type, w.Type), "ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s", tq, cq, w.Type, cq, w.Type)
		case w.NotNull && !h.NotNull && w.Name != t.userColumn():
			var nulls int64
			if err := m.db.GetContext(ctx, &nulls, "SELECT count(*) FROM "+tq+" WHERE "+cq+" IS NULL"); err != nil {
				return nil, err
			}
			fill := "UPDATE " + tq + " SET " + cq + " = <a value> WHERE " + cq + " IS NULL; "
			if w.Default != nil {
				fill = "UPDATE " + tq + " SET " + cq + " = " + *w.Default + " WHERE " + cq + " IS NULL; "
			}
			if nulls == 0 {
				fill = ""
			}
			add(w.Name, fmt.Sprintf("nullable (%d rows are NULL); the SDK's repositories scan a value", nulls), "%sALTER TABLE %s ALTER COLUMN %s SET NOT NULL", fill, tq, cq)
		}
	}
	sdkNames := map[string]bool{}
	for _, w := range want {
		sdkNames[w.Name] = true
	}
	for _, h := range have {
		if !sdkNames[h.Name] && h.NotNull && h.Default == nil && h.Name != t.userColumn() {
			add(h.Name, "NOT NULL without a default and unknown to the SDK: the SDK's inserts would fail (drop NOT NULL, or set a default)",
				"ALTER TABLE %s ALTER COLUMN %s DROP NOT NULL", tq, pq.QuoteIdentifier(h.Name))
		}
	}
	return out, nil
}

// refuseSchemaProblems returns the error listing what [Migrator.SchemaProblems] finds
// now, or nil when it finds nothing: the guard of the steps that change the schema.
func (m *Migrator) refuseSchemaProblems(ctx context.Context, op string) error {
	probs, err := m.SchemaProblems(ctx)
	if err != nil {
		return err
	}
	return schemaProblemsError(op, probs)
}

// schemaProblemsError lists the problems, or returns nil.
func schemaProblemsError(op string, probs []SchemaProblem) error {
	if len(probs) == 0 {
		return nil
	}
	lines := make([]string, len(probs))
	for i, p := range probs {
		lines[i] = "  " + p.String()
	}
	return errs.New(errs.InvalidInput, op, "the legacy schema does not meet the SDK's prerequisites (nothing was changed):\n%s\nsee \"Schema prerequisites\" in MIGRATION_GUIDE.md", strings.Join(lines, "\n"))
}
