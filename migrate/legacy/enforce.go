package legacy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/migrate"
)

// incomplete is a table that keeps [Migrator.Enforce] from applying: it still has rows
// without a clone, or was never adopted.
type incomplete struct {
	Table        string
	WithoutClone int64 // rows whose tenant_id or clone_id is NULL
	WithoutUser  int64 // of which rows that have no user either (never backfilled)
	NotAdopted   bool  // the table has no tenant_id/clone_id columns: run Adopt
	MissingTable bool  // a host table that does not exist
	// NotConfigured: an SDK table that exists but is not among the configured tables.
	NotConfigured bool
}

// String describes the table's problem in one line.
func (i incomplete) String() string {
	switch {
	case i.MissingTable:
		return fmt.Sprintf("%s: table does not exist", i.Table)
	case i.NotConfigured:
		return fmt.Sprintf("%s: an SDK table that exists but is not configured: add it to the tables", i.Table)
	case i.NotAdopted:
		return fmt.Sprintf("%s: not adopted (no tenant_id/clone_id columns; run adopt)", i.Table)
	}
	return fmt.Sprintf("%s: %d rows without a clone (%d of them without a user)", i.Table, i.WithoutClone, i.WithoutUser)
}

// EnforceReport tells what [Migrator.Enforce] did.
type EnforceReport struct {
	// AlreadyEnforced is true when the schema was already enforced (or freshly
	// installed): nothing was changed but migrate.Up.
	AlreadyEnforced bool
	Tables          []string // tables made NOT NULL, re-keyed and put under row-level security
	CreatedTables   []string // SDK tables absent from the legacy database, created empty
	ForeignKeys     []string // foreign keys re-created led by tenant_id and clone_id
}

// missingClones counts, per configured table, the rows that still lack their clone.
func (m *Migrator) missingClones(ctx context.Context, q querier) ([]incomplete, error) {
	var out []incomplete
	for _, name := range migrate.CloneOwnedTables() {
		if slices.ContainsFunc(m.cfg.Tables, func(t Table) bool { return t.Name == name }) {
			continue
		}
		if ok, err := tableExists(ctx, q, name); err != nil {
			return nil, err
		} else if ok {
			out = append(out, incomplete{Table: name, NotConfigured: true})
		}
	}
	for _, t := range m.cfg.Tables {
		exists, err := tableExists(ctx, q, t.Name)
		if err != nil {
			return nil, err
		}
		if !exists {
			if !slices.Contains(migrate.CloneOwnedTables(), t.Name) {
				out = append(out, incomplete{Table: t.Name, MissingTable: true})
			}
			continue
		}
		cols, err := columnsOf(ctx, q, t.Name)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(cols, "tenant_id") || !slices.Contains(cols, "clone_id") {
			out = append(out, incomplete{Table: t.Name, NotAdopted: true})
			continue
		}
		var in incomplete
		in.Table = t.Name
		u := pq.QuoteIdentifier(t.userColumn())
		err = q.QueryRowxContext(ctx, `SELECT count(*), count(*) FILTER (WHERE `+u+` IS NULL OR `+u+`::text = '')
			FROM `+pq.QuoteIdentifier(t.Name)+` WHERE tenant_id IS NULL OR clone_id IS NULL`).Scan(&in.WithoutClone, &in.WithoutUser)
		if err != nil {
			return nil, err
		}
		if in.WithoutClone > 0 {
			out = append(out, in)
		}
	}
	return out, nil
}

func incompleteError(op string, in []incomplete) error {
	lines := make([]string, len(in))
	for i, x := range in {
		lines[i] = "  " + x.String()
	}
	return errs.Wrap(errs.Conflict, op, ErrIncomplete,
		"refusing to enforce the clone model: every row must belong to a clone first\n%s\n"+
			"run backfill; rows without a user are never guessed: assign them a user (then backfill again) or delete them (see MIGRATION_GUIDE.md)",
		strings.Join(lines, "\n"))
}

// foreignKey is a foreign key between two configured tables.
type foreignKey struct {
	Name     string         `db:"name"`
	Child    string         `db:"child"`
	Parent   string         `db:"parent"`
	Cols     pq.StringArray `db:"cols"`
	RefCols  pq.StringArray `db:"ref_cols"`
	OnDelete string         `db:"on_delete"`
}

func (f foreignKey) leadsWithClone() bool {
	return len(f.Cols) >= 2 && f.Cols[0] == "tenant_id" && f.Cols[1] == "clone_id"
}

func foreignKeys(ctx context.Context, q querier, schema string, tables []string) ([]foreignKey, error) {
	var fks []foreignKey
	err := sqlx.SelectContext(ctx, q, &fks, `
		SELECT c.conname AS name, cl.relname AS child, pl.relname AS parent,
		       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
		             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS cols,
		       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
		             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)::text[] AS ref_cols,
		       c.confdeltype::text AS on_delete
		FROM pg_constraint c
		JOIN pg_class cl ON cl.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace
		JOIN pg_class pl ON pl.oid = c.confrelid
		WHERE c.contype = 'f' AND cn.nspname = $2
		  AND (cl.relname = ANY($1) OR pl.relname = ANY($1))
		ORDER BY c.conname`, pq.StringArray(tables), schema)
	return fks, err
}

var onDeleteSQL = map[string]string{"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}

// Enforce is the final, enforcing migration of the legacy path. In one transaction it
// refuses, with an error wrapping [ErrIncomplete] that lists every table concerned,
// while any configured table has a row without its clone; otherwise it makes tenant_id
// and clone_id NOT NULL, re-keys every table with primary and foreign keys led by
// tenant_id and clone_id (foreign keys between configured tables are re-created that
// way, and tables with no parent get one to clones), creates the SDK tables the legacy
// database lacked, forces row-level security with the same fail-closed policy as a fresh
// install, and records schema version [EnforcedVersion] in migrate's version table.
// After the commit it runs migrate.Up for later versions. The database then has the same
// schema as a fresh install, plus the legacy user columns and the cloneiso_legacy_*
// bookkeeping tables.
//
// Enforce is idempotent: on an enforced (or freshly installed) database it only runs
// migrate.Up.
func (m *Migrator) Enforce(ctx context.Context) (*EnforceReport, error) {
	const op = "legacy.Enforce"
	rep := &EnforceReport{}
	if err := m.refuseSchemaProblems(ctx, op); err != nil {
		return nil, err
	}
	err := m.inTx(ctx, op, func(tx *sqlx.Tx) error {
		if v, err := schemaVersion(ctx, tx); err != nil {
			return err
		} else if v >= 1 {
			rep.AlreadyEnforced = true
			return nil
		}
		if err := m.readyToEnforce(ctx, tx); err != nil {
			return err
		}
		present := map[string]bool{}
		names := make([]string, 0, len(m.cfg.Tables))
		for _, t := range m.cfg.Tables {
			names = append(names, t.Name)
			ok, err := tableExists(ctx, tx, t.Name)
			if err != nil {
				return err
			}
			present[t.Name] = ok
		}
		legacySchema, err := m.legacySchema(ctx, tx)
		if err != nil {
			return err
		}
		fks, err := foreignKeys(ctx, tx, legacySchema, names)
		if err != nil {
			return err
		}
		recreate, err := dropUnledForeignKeys(ctx, tx, fks, names)
		if err != nil {
			return err
		}
		if err := m.rekeyTables(ctx, tx, present, rep); err != nil {
			return err
		}
		if err := recreateForeignKeys(ctx, tx, recreate, rep); err != nil {
			return err
		}
		if err := m.linkToClones(ctx, tx, fks, names, present, rep); err != nil {
			return err
		}
		if err := createSDKTables(ctx, tx, rep); err != nil {
			return err
		}
		for _, t := range append(slices.Clone(names), rep.CreatedTables...) {
			if ok, err := tableExists(ctx, tx, t); err != nil {
				return err
			} else if ok {
				if err := forceRLS(ctx, tx, t); err != nil {
					return err
				}
			}
		}
		return markVersions(ctx, tx, m.cfg.Schema)
	})
	if err != nil {
		return nil, err
	}
	if err := migrate.Up(ctx, m.db.DB, &migrate.Options{Schema: m.cfg.Schema}); err != nil {
		return rep, err
	}
	m.cfg.Logger.InfoContext(ctx, "legacy: enforced", "tables", rep.Tables, "created", rep.CreatedTables, "already", rep.AlreadyEnforced)
	return rep, nil
}

// readyToEnforce refuses, with an error wrapping ErrIncomplete, a database that was not
// adopted or has rows without their clone.
func (m *Migrator) readyToEnforce(ctx context.Context, tx *sqlx.Tx) error {
	const op = "legacy.Enforce"
	if ok, err := tableExists(ctx, tx, "cloneiso_legacy_users"); err != nil {
		return err
	} else if !ok {
		return errs.Wrap(errs.Conflict, op, ErrIncomplete, "refusing to enforce: the database was not adopted: run adopt (cloneiso-migrate up) and backfill first")
	}
	in, err := m.missingClones(ctx, tx)
	if err != nil {
		return err
	}
	if len(in) > 0 {
		return incompleteError(op, in)
	}
	return nil
}

// dropUnledForeignKeys drops the foreign keys between configured tables that are not
// led by tenant_id and clone_id, and returns them to be re-created so. A foreign key
// from a table outside the configuration to a configured one is refused: its parent's
// primary key is about to change.
func dropUnledForeignKeys(ctx context.Context, tx *sqlx.Tx, fks []foreignKey, names []string) ([]foreignKey, error) {
	const op = "legacy.Enforce"
	var recreate []foreignKey
	for _, fk := range fks {
		if !slices.Contains(names, fk.Parent) {
			continue // a key to a table that keeps its keys (clones, a host's users table)
		}
		if !slices.Contains(names, fk.Child) {
			return nil, errs.New(errs.Conflict, op, "foreign key %s of %s references %s, whose primary key becomes (tenant_id, clone_id, ...): add %s to the configured tables or drop the key",
				fk.Name, fk.Child, fk.Parent, fk.Child)
		}
		if fk.leadsWithClone() {
			continue
		}
		recreate = append(recreate, fk)
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+pq.QuoteIdentifier(fk.Child)+" DROP CONSTRAINT "+pq.QuoteIdentifier(fk.Name)); err != nil {
			return nil, fmt.Errorf("drop foreign key %s: %w", fk.Name, err)
		}
	}
	return recreate, nil
}

// rekeyTables makes tenant_id and clone_id NOT NULL and the user column nullable, and
// leads every primary key with tenant_id and clone_id.
func (m *Migrator) rekeyTables(ctx context.Context, tx *sqlx.Tx, present map[string]bool, rep *EnforceReport) error {
	for _, t := range m.cfg.Tables {
		if !present[t.Name] {
			continue
		}
		q := pq.QuoteIdentifier(t.Name)
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+q+" ALTER COLUMN tenant_id SET NOT NULL, ALTER COLUMN clone_id SET NOT NULL, ALTER COLUMN "+
			pq.QuoteIdentifier(t.userColumn())+" DROP NOT NULL"); err != nil {
			return fmt.Errorf("%s: not null: %w", t.Name, err)
		}
		pk, con, err := primaryKey(ctx, tx, t.Name)
		if err != nil {
			return err
		}
		if pk[0].Name != "tenant_id" {
			cols := []string{"tenant_id", "clone_id"}
			for _, c := range pk {
				if c.Name != "tenant_id" && c.Name != "clone_id" {
					cols = append(cols, pq.QuoteIdentifier(c.Name))
				}
			}
			if _, err := tx.ExecContext(ctx, "ALTER TABLE "+q+" DROP CONSTRAINT "+pq.QuoteIdentifier(con)+
				", ADD CONSTRAINT "+pq.QuoteIdentifier(con)+" PRIMARY KEY ("+strings.Join(cols, ", ")+")"); err != nil {
				return fmt.Errorf("%s: primary key: %w", t.Name, err)
			}
		}
		rep.Tables = append(rep.Tables, t.Name)
	}
	return nil
}

// recreateForeignKeys re-creates the dropped foreign keys led by tenant_id and
// clone_id; one that does not hold (a child in another clone than its parent) is a
// permanent error naming the recovery.
func recreateForeignKeys(ctx context.Context, tx *sqlx.Tx, recreate []foreignKey, rep *EnforceReport) error {
	const op = "legacy.Enforce"
	for _, fk := range recreate {
		cols := append([]string{"tenant_id", "clone_id"}, quoteAll(fk.Cols)...)
		ref := append([]string{"tenant_id", "clone_id"}, quoteAll(fk.RefCols)...)
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+pq.QuoteIdentifier(fk.Child)+" ADD CONSTRAINT "+pq.QuoteIdentifier(fk.Name)+
			" FOREIGN KEY ("+strings.Join(cols, ", ")+") REFERENCES "+pq.QuoteIdentifier(fk.Parent)+
			" ("+strings.Join(ref, ", ")+") ON DELETE "+onDeleteSQL[fk.OnDelete]); err != nil {
			return errs.Wrap(errs.KindOf(classify(op, err, "")), op, err,
				"%s: re-create foreign key %s led by tenant_id and clone_id: a row of %s and its parent row in %s are in different clones (they belong to different users; verify lists them as parent-clone): fix them as \"A child row whose user differs from its parent's\" in MIGRATION_GUIDE.md says, then enforce again",
				fk.Child, fk.Name, fk.Child, fk.Parent)
		}
		rep.ForeignKeys = append(rep.ForeignKeys, fk.Name)
	}
	return nil
}

// linkToClones gives every configured table without a parent among the configured ones
// (or clones) a foreign key to clones.
func (m *Migrator) linkToClones(ctx context.Context, tx *sqlx.Tx, fks []foreignKey, names []string, present map[string]bool, rep *EnforceReport) error {
	for _, t := range m.cfg.Tables {
		if !present[t.Name] || slices.ContainsFunc(fks, func(fk foreignKey) bool {
			return fk.Child == t.Name && (fk.Parent == "clones" || slices.Contains(names, fk.Parent))
		}) {
			continue
		}
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+pq.QuoteIdentifier(t.Name)+" ADD CONSTRAINT "+pq.QuoteIdentifier(t.Name+"_clone_fkey")+
			" FOREIGN KEY (tenant_id, clone_id) REFERENCES clones (tenant_id, id)"); err != nil {
			return fmt.Errorf("%s: foreign key to clones: %w", t.Name, err)
		}
		rep.ForeignKeys = append(rep.ForeignKeys, t.Name+"_clone_fkey")
	}
	return nil
}

// createSDKTables creates the SDK's tables the legacy database lacked, and every index
// of the fresh install.
func createSDKTables(ctx context.Context, tx *sqlx.Tx, rep *EnforceReport) error {
	core, err := coreStatements()
	if err != nil {
		return err
	}
	for _, st := range core {
		if st.index != "" || slices.Contains(controlTables, st.table) {
			continue
		}
		if ok, err := tableExists(ctx, tx, st.table); err != nil {
			return err
		} else if ok {
			continue
		}
		if _, err := tx.ExecContext(ctx, st.sql); err != nil {
			return fmt.Errorf("create %s: %w", st.table, err)
		}
		rep.CreatedTables = append(rep.CreatedTables, st.table)
	}
	for _, st := range core {
		if st.index == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, st.sql); err != nil {
			return fmt.Errorf("create index %s: %w", st.index, err)
		}
	}
	return nil
}

// policyExpr is the fail-closed clone isolation predicate of migrate's 00002_rls.sql.
const policyExpr = `tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid)
        AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid)`

func forceRLS(ctx context.Context, tx *sqlx.Tx, table string) error {
	q := pq.QuoteIdentifier(table)
	var has bool
	if err := tx.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_policy WHERE polname = 'clone_isolation'
		AND polrelid = quote_ident($1)::regclass)`, table).Scan(&has); err != nil {
		return err
	}
	stmt := "ALTER TABLE " + q + " ENABLE ROW LEVEL SECURITY; ALTER TABLE " + q + " FORCE ROW LEVEL SECURITY;"
	if !has {
		stmt += " CREATE POLICY clone_isolation ON " + q + " USING (" + policyExpr + ") WITH CHECK (" + policyExpr + ");"
	}
	if _, err := tx.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: row-level security: %w", table, err)
	}
	return nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = pq.QuoteIdentifier(x)
	}
	return out
}
