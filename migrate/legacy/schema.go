package legacy

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/pressly/goose/v3/database"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

// lockID is the advisory lock key of package migrate's PostgreSQL migrations (the bytes
// "cloneiso"); adoption and enforcement take it too, so they never run beside
// migrate.Up or each other.
const lockID int64 = 0x636c6f6e6569736f

// EnforcedVersion is the version of cloneiso's schema (package migrate) that
// [Migrator.Enforce] reproduces on an adopted legacy schema and records in the version
// table; later versions are then applied by migrate.Up.
const EnforcedVersion = 2

// ErrIncomplete is returned (wrapped, with the details) by [Migrator.Enforce] while a
// table still has rows without a clone, or the database was never adopted. It is an
// error of kind clone.ErrConflict, so both errors.Is(err, legacy.ErrIncomplete) and
// errors.Is(err, clone.ErrConflict) hold for what Enforce returns.
var ErrIncomplete error = &clone.Error{Kind: clone.ErrConflict, Op: "legacy.Enforce", Msg: "rows without a clone"}

// Migrator moves one legacy PostgreSQL database (rows keyed by a user ID) to the clone
// model. Its methods are the steps of the migration, in the order of
// MIGRATION_GUIDE.md: [Migrator.Adopt], [Migrator.Plan], [Migrator.Backfill],
// [Migrator.Verify], [Migrator.Enforce]. Each is idempotent and may be interrupted at any
// point and run again.
type Migrator struct {
	db    *sqlx.DB
	cfg   *Config
	store *tenant.Store
	// pathOK: with Config.Schema, a connection was found to resolve Schema first and
	// the legacy schema second (checkPath).
	pathOK atomic.Bool
}

// New returns a Migrator for db, a PostgreSQL connection as the schema's owner (not the
// application role). The legacy path is PostgreSQL only. The long steps hold one
// connection of db's pool for their lock while they work on others: keep the pool's
// limit (if any) at 2 or more, plus the object copy's concurrency.
func New(db *sql.DB, cfg *Config) (*Migrator, error) {
	const op = "legacy.New"
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errs.New(errs.InvalidInput, op, "no database")
	}
	d, err := clonesql.DialectOf(db)
	if err != nil {
		return nil, err
	}
	if d != clonesql.Postgres {
		return nil, errs.New(errs.Unsupported, op, "the legacy migration supports PostgreSQL only (dialect %s)", d)
	}
	st, err := tenant.NewStore(db, nil)
	if err != nil {
		return nil, err
	}
	return &Migrator{db: sqlx.NewDb(db, "postgres"), cfg: c, store: st}, nil
}

// Tables returns the configured tables.
func (m *Migrator) Tables() []Table { return slices.Clone(m.cfg.Tables) }

// WithoutUser returns the configured decision about rows without a user
// (Config.WithoutUser).
func (m *Migrator) WithoutUser() string { return m.cfg.WithoutUser }

// internalDDL creates the migration's own bookkeeping tables.
const internalDDL = `
CREATE TABLE IF NOT EXISTS cloneiso_legacy_users (
    user_id        text        PRIMARY KEY,
    subject        text        NOT NULL,
    to_tenant_id   uuid        NOT NULL, -- not "tenant_id": this is no clone-owned table
    to_clone_id    uuid        NOT NULL,
    provisioned_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (to_tenant_id, to_clone_id)
);
CREATE TABLE IF NOT EXISTS cloneiso_legacy_checkpoints (
    step         text        NOT NULL,
    name         text        NOT NULL,
    last_key     text[],
    done         boolean     NOT NULL DEFAULT false,
    batches      bigint      NOT NULL DEFAULT 0,
    rows_changed bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (step, name)
);
CREATE TABLE IF NOT EXISTS cloneiso_legacy_snapshot (
    table_name text        NOT NULL,
    user_id    text        NOT NULL, -- '' for rows without a user
    row_count  bigint      NOT NULL,
    checksum   text        NOT NULL,
    columns    text[]      NOT NULL,
    taken_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, user_id)
);
CREATE TABLE IF NOT EXISTS cloneiso_legacy_objects (
    legacy_key  text        PRIMARY KEY,
    user_id     text        NOT NULL,
    kind        text        NOT NULL,
    name        text        NOT NULL,
    size        bigint      NOT NULL,
    sha256      text        NOT NULL,
    legacy_etag text        NOT NULL DEFAULT '',
    new_key     text        NOT NULL DEFAULT '', -- the copy's full key
    copied_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS cloneiso_legacy_objects_new_key ON cloneiso_legacy_objects (new_key) WHERE new_key <> '';
CREATE TABLE IF NOT EXISTS cloneiso_legacy_vectors (
    source     text        NOT NULL, -- the legacy namespace
    user_id    text        NOT NULL,
    copied     bigint      NOT NULL DEFAULT 0,
    done       boolean     NOT NULL DEFAULT false,
    deleted_at timestamptz,
    PRIMARY KEY (source, user_id)
);
` + vectorLedgerDDL

// coreStatement is one statement of the Up section of migrate's 00001_core.sql.
type coreStatement struct {
	sql   string
	table string // the table it creates, or the table an index is created on
	index string // the index it creates, "" for a table
}

var (
	createTableRe = regexp.MustCompile(`(?is)^CREATE TABLE (\w+)`)
	createIndexRe = regexp.MustCompile(`(?is)^CREATE (UNIQUE )?INDEX (\w+) ON (\w+)`)
)

// coreStatements returns the statements of the fresh-install schema (version 1), so that
// the legacy path creates exactly the tables and indexes a fresh install has.
func coreStatements() ([]coreStatement, error) {
	fsys, err := migrate.Migrations(clonesql.Postgres)
	if err != nil {
		return nil, err
	}
	b, err := fs.ReadFile(fsys, "00001_core.sql")
	if err != nil {
		return nil, err
	}
	text := string(b)
	up := strings.Index(text, "-- +goose Up")
	down := strings.Index(text, "-- +goose Down")
	if up < 0 || down < up {
		return nil, errors.New("00001_core.sql: no Up section")
	}
	var clean strings.Builder
	for line := range strings.Lines(text[up:down]) {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i] + "\n"
		}
		clean.WriteString(line)
	}
	var out []coreStatement
	for s := range strings.SplitSeq(clean.String(), ";") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if m := createTableRe.FindStringSubmatch(s); m != nil {
			out = append(out, coreStatement{sql: "CREATE TABLE IF NOT EXISTS" + s[len("CREATE TABLE"):], table: m[1]})
		} else if m := createIndexRe.FindStringSubmatch(s); m != nil {
			out = append(out, coreStatement{sql: strings.Replace(s, "INDEX ", "INDEX IF NOT EXISTS ", 1), table: m[3], index: m[2]})
		} else {
			return nil, fmt.Errorf("00001_core.sql: unexpected statement %.40q", s)
		}
	}
	return out, nil
}

// AdoptReport tells what [Migrator.Adopt] found and did.
type AdoptReport struct {
	// AlreadyEnforced is true when the database already has cloneiso's schema (a fresh
	// install, or a legacy database already enforced): Adopt did nothing.
	AlreadyEnforced bool
	// CreatedTables are control-plane (and bookkeeping) tables Adopt created.
	CreatedTables []string
	// AdoptedTables are the configured tables that now have nullable tenant_id and
	// clone_id columns.
	AdoptedTables []string
	// MissingTables are SDK tables absent from the legacy database; [Migrator.Enforce]
	// creates them empty (in Config.Schema, if set).
	MissingTables []string
	// CreatedSchema is Config.Schema when Adopt created it.
	CreatedSchema string
}

// Adopt prepares a legacy schema for the backfill, in one transaction: it creates
// cloneiso's control-plane tables (tenants, clones, tenant_members, clone_grants,
// audit_events) exactly as a fresh install has them, and the migration's bookkeeping
// tables (cloneiso_legacy_*); it adds nullable tenant_id and clone_id columns to every
// configured table. Existing rows are not touched, and a user column that is NOT NULL
// stays so until [Migrator.Enforce], so the legacy application cannot start writing
// rows without a user.
// Adopt is idempotent, and a no-op on a database that already has cloneiso's schema.
// It refuses, changing nothing, while [Migrator.SchemaProblems] finds a legacy table
// that does not meet the SDK's prerequisites.
func (m *Migrator) Adopt(ctx context.Context) (*AdoptReport, error) {
	const op = "legacy.Adopt"
	rep := &AdoptReport{}
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
		core, err := coreStatements()
		if err != nil {
			return err
		}
		if m.cfg.Schema != "" {
			// The SDK's schema, first on the search_path (checkPath): the statements
			// below create their tables there.
			if ok, err := schemaExists(ctx, tx, m.cfg.Schema); err != nil {
				return err
			} else if !ok {
				if _, err := tx.ExecContext(ctx, "CREATE SCHEMA "+pq.QuoteIdentifier(m.cfg.Schema)); err != nil {
					return fmt.Errorf("create schema %s: %w", m.cfg.Schema, err)
				}
				rep.CreatedSchema = m.cfg.Schema
			}
		}
		sdkSchema, err := m.sdkSchema(ctx, tx)
		if err != nil {
			return err
		}
		var created []string
		for _, st := range core {
			if st.index != "" || !slices.Contains(controlTables, st.table) {
				continue
			}
			exists, err := tableIn(ctx, tx, sdkSchema, st.table)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, st.sql); err != nil {
				return fmt.Errorf("create %s: %w", st.table, err)
			}
			if !exists {
				rep.CreatedTables = append(rep.CreatedTables, st.table)
			}
			created = append(created, st.table+"="+fmt.Sprint(!exists))
		}
		for _, st := range core {
			if st.index != "" && slices.Contains(controlTables, st.table) {
				if _, err := tx.ExecContext(ctx, st.sql); err != nil {
					return fmt.Errorf("create index %s: %w", st.index, err)
				}
			}
		}
		if _, err := tx.ExecContext(ctx, internalDDL+objectDDL+quarantineDDL); err != nil {
			return fmt.Errorf("bookkeeping tables: %w", err)
		}
		// Remember what the first adoption found, for RollbackSQL.
		if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_checkpoints (step, name, last_key, done)
			VALUES ('adopt', '', $1, true) ON CONFLICT DO NOTHING`, pq.StringArray(created)); err != nil {
			return err
		}
		sdk := migrate.CloneOwnedTables()
		for _, t := range m.cfg.Tables {
			exists, err := tableExists(ctx, tx, t.Name)
			if err != nil {
				return err
			}
			if !exists {
				if slices.Contains(sdk, t.Name) {
					rep.MissingTables = append(rep.MissingTables, t.Name)
					continue
				}
				return errs.New(errs.InvalidInput, op, "table %s does not exist", t.Name)
			}
			cols, err := columnsOf(ctx, tx, t.Name)
			if err != nil {
				return err
			}
			if !slices.Contains(cols, t.userColumn()) {
				return errs.New(errs.InvalidInput, op, "table %s has no user column %s", t.Name, t.userColumn())
			}
			var notNull bool
			if err := tx.GetContext(ctx, &notNull, `SELECT attnotnull FROM pg_attribute
				WHERE attrelid = quote_ident($1)::regclass AND attname = $2`, t.Name, t.userColumn()); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO cloneiso_legacy_checkpoints (step, name, last_key, done)
				VALUES ('adopt', $1, $2, true) ON CONFLICT DO NOTHING`, t.Name, pq.StringArray{t.userColumn(), fmt.Sprint(notNull),
				fmt.Sprint(slices.Contains(cols, "tenant_id")), fmt.Sprint(slices.Contains(cols, "clone_id"))}); err != nil {
				return err
			}
			q := pq.QuoteIdentifier(t.Name)
			// The user column keeps its NOT NULL: the legacy application, still running,
			// must not start writing rows without a user. Enforce drops it (rows the SDK
			// writes after the switch-over have no legacy user).
			if _, err := tx.ExecContext(ctx, "ALTER TABLE "+q+" ADD COLUMN IF NOT EXISTS tenant_id uuid, ADD COLUMN IF NOT EXISTS clone_id uuid"); err != nil {
				return fmt.Errorf("adopt %s: %w", t.Name, err)
			}
			rep.AdoptedTables = append(rep.AdoptedTables, t.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.cfg.Logger.InfoContext(ctx, "legacy: adopted", "tables", rep.AdoptedTables, "created", rep.CreatedTables, "missing", rep.MissingTables, "already_enforced", rep.AlreadyEnforced)
	return rep, nil
}

// controlTables are the SDK's tables that the migration creates or checks besides the
// clone-owned ones: the control plane and the audit log. (A configured table may be
// none of the SDK's tables but the clone-owned ones: see sdkOnly.)
var controlTables = []string{"tenants", "clones", "tenant_members", "clone_grants", "audit_events"}

// inTx runs fn in a transaction holding the migration lock.
func (m *Migrator) inTx(ctx context.Context, op string, fn func(tx *sqlx.Tx) error) error {
	if err := m.checkPath(ctx, op); err != nil {
		return err
	}
	tx, err := m.db.BeginTxx(ctx, nil)
	if err != nil {
		return classify(op, err, "begin")
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", lockID); err != nil {
		return classify(op, err, "lock")
	}
	if err := fn(tx); err != nil {
		if errs.KindOf(err) != errs.Unknown {
			return err
		}
		return classify(op, err, "")
	}
	if err := tx.Commit(); err != nil {
		return classify(op, err, "commit")
	}
	return nil
}

type querier interface {
	sqlx.QueryerContext
	sqlx.ExecerContext
}

// schemaVersion returns the highest applied version in migrate's version table, 0 if
// the table does not exist or records nothing.
func schemaVersion(ctx context.Context, q querier) (int64, error) {
	exists, err := tableExists(ctx, q, migrate.DefaultTableName)
	if err != nil || !exists {
		return 0, err
	}
	var v sql.NullInt64
	err = q.QueryRowxContext(ctx, "SELECT max(version_id) FROM "+pq.QuoteIdentifier(migrate.DefaultTableName)+" WHERE is_applied").Scan(&v)
	return v.Int64, err
}

// tableExists reports whether name resolves, through the connection's search_path, to
// a table: in the connection's current schema without Config.Schema, and with it in the
// SDK's schema first, then the legacy schema (checkPath) — where the SDK's own queries
// will find it.
func tableExists(ctx context.Context, q querier, name string) (bool, error) {
	var ok bool
	err := q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c
		WHERE c.oid = to_regclass(quote_ident($1)) AND c.relkind IN ('r', 'p'))`, name).Scan(&ok)
	return ok, err
}

// tableIn reports whether schema has a table name.
func schemaExists(ctx context.Context, q querier, schema string) (bool, error) {
	var ok bool
	err := q.QueryRowxContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok)
	return ok, err
}

func tableIn(ctx context.Context, q querier, schema, name string) (bool, error) {
	var ok bool
	err := q.QueryRowxContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))`, schema, name).Scan(&ok)
	return ok, err
}

// checkPath refuses, with Config.Schema, a connection whose search_path does not put
// the SDK's schema first and the legacy schema (Config.LegacySchema, if set) next:
// the migration and the SDK find every table by its bare name. Without Config.Schema
// it accepts any connection.
func (m *Migrator) checkPath(ctx context.Context, op string) error {
	if m.cfg.Schema == "" || m.pathOK.Load() {
		return nil
	}
	var path string
	var schemas pq.StringArray
	if err := m.db.QueryRowxContext(ctx, "SELECT current_setting('search_path'), current_schemas(false)").Scan(&path, &schemas); err != nil {
		return classify(op, err, "search_path")
	}
	var entries []string
	for e := range strings.SplitSeq(path, ",") {
		entries = append(entries, strings.Trim(strings.TrimSpace(e), `"`))
	}
	legacy := m.cfg.LegacySchema
	if legacy == "" {
		for _, s := range schemas {
			if s != m.cfg.Schema {
				legacy = s
				break
			}
		}
	}
	if len(entries) < 2 || entries[0] != m.cfg.Schema || entries[1] != legacy || legacy == "" {
		want := m.cfg.Schema + "," + legacy
		if legacy == "" {
			want = m.cfg.Schema + ",<legacy schema>"
		}
		return errs.New(errs.InvalidInput, op, "schema %s is configured but the connection's search_path is %q: open the database with search_path=%s (the DSN parameter; cloneiso-migrate sets it): the SDK's schema first, the legacy schema next", m.cfg.Schema, path, want)
	}
	m.cfg.LegacySchema = legacy
	m.pathOK.Store(true)
	return nil
}

// sdkSchema is the schema of the SDK's own tables: Config.Schema, or the current one.
func (m *Migrator) sdkSchema(ctx context.Context, q querier) (string, error) {
	if m.cfg.Schema != "" {
		return m.cfg.Schema, nil
	}
	var s string
	err := q.QueryRowxContext(ctx, "SELECT current_schema()").Scan(&s)
	return s, err
}

// legacySchema is the schema of the legacy tables: Config.LegacySchema (settled by
// checkPath), or the current one.
func (m *Migrator) legacySchema(ctx context.Context, q querier) (string, error) {
	if m.cfg.Schema != "" {
		if err := m.checkPath(ctx, "legacy"); err != nil {
			return "", err
		}
		return m.cfg.LegacySchema, nil
	}
	var s string
	err := q.QueryRowxContext(ctx, "SELECT current_schema()").Scan(&s)
	return s, err
}

// columnsOf returns the table's columns in order.
func columnsOf(ctx context.Context, q querier, table string) ([]string, error) {
	var cols []string
	err := sqlx.SelectContext(ctx, q, &cols, `SELECT a.attname FROM pg_attribute a
		WHERE a.attrelid = quote_ident($1)::regclass AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, table)
	return cols, err
}

// keyColumn is a column of a primary key, with its SQL type.
type keyColumn struct {
	Name string `db:"name"`
	Type string `db:"type"`
}

// primaryKey returns the table's primary key columns in key order, and the constraint's
// name.
func primaryKey(ctx context.Context, q querier, table string) ([]keyColumn, string, error) {
	var cols []struct {
		keyColumn
		Con string `db:"con"`
	}
	err := sqlx.SelectContext(ctx, q, &cols, `
		SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, c.conname AS con
		FROM pg_constraint c
		CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
		WHERE c.conrelid = quote_ident($1)::regclass AND c.contype = 'p'
		ORDER BY k.ord`, table)
	if err != nil {
		return nil, "", err
	}
	if len(cols) == 0 {
		return nil, "", errs.New(errs.InvalidInput, "legacy", "table %s has no primary key (the backfill pages through it)", table)
	}
	out := make([]keyColumn, len(cols))
	for i, c := range cols {
		out[i] = c.keyColumn
	}
	return out, cols[0].Con, nil
}

// markVersions records versions 0..EnforcedVersion as applied in migrate's version
// table, creating it as goose does if needed.
func markVersions(ctx context.Context, tx *sqlx.Tx, schema string) error {
	table := migrate.DefaultTableName
	if schema != "" {
		table = schema + "." + table // as migrate.Options.Schema names it
	}
	store, err := database.NewStore(database.DialectPostgres, table)
	if err != nil {
		return err
	}
	exists, err := tableExists(ctx, tx, migrate.DefaultTableName)
	if schema != "" {
		exists, err = tableIn(ctx, tx, schema, migrate.DefaultTableName)
	}
	if err != nil {
		return err
	}
	if !exists {
		if err := store.CreateVersionTable(ctx, tx); err != nil {
			return err
		}
		if err := store.Insert(ctx, tx, database.InsertRequest{Version: 0}); err != nil {
			return err
		}
	}
	for v := int64(1); v <= EnforcedVersion; v++ {
		if err := store.Insert(ctx, tx, database.InsertRequest{Version: v}); err != nil {
			return err
		}
	}
	return nil
}

// RollbackSQL returns the statements that undo [Migrator.Adopt] and everything the
// backfill did, for the operator to review and run: they put the rows set aside in the
// quarantine back into their tables, drop the tenant_id and clone_id
// columns the adoption added, make the user columns NOT NULL again where they were,
// and drop the bookkeeping tables and the control-plane tables the adoption created
// (with every tenant and clone provisioned). It refuses once [Migrator.Enforce] has
// applied: from there on, only a restore from the backup goes back.
func (m *Migrator) RollbackSQL(ctx context.Context) (string, error) {
	const op = "legacy.RollbackSQL"
	if v, err := schemaVersion(ctx, m.db); err != nil {
		return "", classify(op, err, "schema version")
	} else if v >= 1 {
		return "", errs.New(errs.Conflict, op, "the schema is enforced (version %d): roll back by restoring the backup taken before the migration", v)
	}
	if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_checkpoints"); err != nil {
		return "", classify(op, err, "catalog")
	} else if !ok {
		return "", errs.New(errs.Conflict, op, "the database was not adopted: nothing to roll back")
	}
	var recs []struct {
		Name string         `db:"name"`
		Key  pq.StringArray `db:"last_key"`
	}
	if err := m.db.SelectContext(ctx, &recs, "SELECT name, last_key FROM cloneiso_legacy_checkpoints WHERE step = 'adopt' ORDER BY name"); err != nil {
		return "", classify(op, err, "read adoption record")
	}
	var b strings.Builder
	b.WriteString("-- Undoes the adoption of the legacy schema (cloneiso-migrate up) and the backfill.\n")
	b.WriteString("-- Copies of objects and vectors are not touched: they live under the clones' prefixes\n-- and namespaces (see MIGRATION_GUIDE.md).\nBEGIN;\n")
	if m.cfg.Schema != "" {
		if err := m.checkPath(ctx, op); err != nil {
			return "", err
		}
		// The names below resolve as they did for the migration: the SDK's tables
		// (clones, ...) in its schema, never the legacy tables of the same names.
		b.WriteString("SET LOCAL search_path TO " + pq.QuoteIdentifier(m.cfg.Schema) + ", " + pq.QuoteIdentifier(m.cfg.LegacySchema) + ";\n")
	}
	if ok, err := tableExists(ctx, m.db, "cloneiso_legacy_quarantine"); err != nil {
		return "", classify(op, err, "catalog")
	} else if ok {
		b.WriteString("-- Rows set aside (user decisions quarantine and drop) go back to their tables, parents first.\n")
		b.WriteString(stableSettings + ";\n")
		for _, t := range m.cfg.Tables {
			if ok, err := tableExists(ctx, m.db, t.Name); err != nil {
				return "", classify(op, err, "catalog")
			} else if !ok {
				continue
			}
			tq := pq.QuoteIdentifier(t.Name)
			b.WriteString("INSERT INTO " + tq + " SELECT (row::" + tq + ").* FROM cloneiso_legacy_quarantine WHERE table_name = " +
				pq.QuoteLiteral(t.Name) + ";\n")
		}
		b.WriteString("DROP TABLE cloneiso_legacy_quarantine;\n")
	}
	var created []string
	for _, r := range recs {
		if r.Name == "" {
			for _, c := range r.Key {
				if name, was, _ := strings.Cut(c, "="); was == "true" {
					created = append(created, name)
				}
			}
			continue
		}
		if len(r.Key) < 4 {
			continue
		}
		q := pq.QuoteIdentifier(r.Name)
		var drops []string
		if r.Key[2] == "false" {
			drops = append(drops, "DROP COLUMN IF EXISTS tenant_id")
		}
		if r.Key[3] == "false" {
			drops = append(drops, "DROP COLUMN IF EXISTS clone_id")
		}
		if len(drops) > 0 {
			b.WriteString("ALTER TABLE " + q + " " + strings.Join(drops, ", ") + ";\n")
		}
		if r.Key[1] == "true" {
			b.WriteString("ALTER TABLE " + q + " ALTER COLUMN " + pq.QuoteIdentifier(r.Key[0]) + " SET NOT NULL;\n")
		}
	}
	b.WriteString("DROP TABLE IF EXISTS cloneiso_legacy_object_scope;\n")
	b.WriteString("DROP TABLE IF EXISTS cloneiso_legacy_vector_ids;\n")
	b.WriteString("DROP TABLE cloneiso_legacy_vectors, cloneiso_legacy_objects, cloneiso_legacy_snapshot, cloneiso_legacy_checkpoints, cloneiso_legacy_users;\n")
	// Children first.
	for _, t := range []string{"clone_grants", "tenant_members", "clones", "tenants", "audit_events"} {
		if slices.Contains(created, t) {
			b.WriteString("DROP TABLE " + pq.QuoteIdentifier(t) + ";\n")
		}
	}
	if m.cfg.Schema != "" {
		b.WriteString("-- The schema " + m.cfg.Schema + " stays, empty: DROP SCHEMA " + pq.QuoteIdentifier(m.cfg.Schema) + " once you no longer need it.\n")
	}
	b.WriteString("COMMIT;\n")
	return b.String(), nil
}

// Keys of the session advisory locks that keep two runs of one long step apart.
const (
	lockBackfill int64 = lockID + 1 + iota
	lockObjects
	lockVectors
)

// exclusive takes the session advisory lock key on a connection of its own, waiting up
// to 30 seconds for another run of the same step (or for the server to notice that a
// killed run's connection is gone), and returns its release.
func (m *Migrator) exclusive(ctx context.Context, key int64, step string) (func(), error) {
	op := "legacy." + step
	conn, err := m.db.Connx(ctx)
	if err != nil {
		return nil, classify(op, err, "connect")
	}
	tx, err := conn.BeginTxx(ctx, nil)
	if err == nil {
		if _, err = tx.ExecContext(ctx, "SET LOCAL lock_timeout = '30s'"); err == nil {
			_, err = tx.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key)
		}
		if err == nil {
			err = tx.Commit() // the session lock outlives the transaction
		} else {
			tx.Rollback()
		}
	}
	if err != nil {
		conn.Close()
		var pe *pq.Error
		if errors.As(err, &pe) && pe.Code == "55P03" {
			return nil, errs.New(errs.Unavailable, op, "another %s of this database is running: wait for it to end", step)
		}
		return nil, classify(op, err, "lock")
	}
	return func() {
		// Unlock even if ctx was cancelled; if that fails, drop the connection so the
		// session (and its lock) ends.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, nil
}

// classify wraps an error of the migration for op, like every error of the SDK: an error
// that has a kind keeps it; a database error gets the kind clonesql.ClassifyError gives
// it (a lost connection or a timeout is Unavailable, a cancelled context Canceled, a
// statement the database refuses Internal, ...); any other error — a legacy S3 or
// Pinecone call failing — is Unavailable.
func classify(op string, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	k := errs.KindOf(err)
	if k == errs.Unknown {
		k = errs.KindOf(clonesql.ClassifyError(op, err))
		var ps interface{ SQLState() string }
		if k == errs.Internal && !errors.As(err, &ps) {
			k = errs.Unavailable
		}
	}
	return errs.Wrap(k, op, err, format, args...)
}

// AppRoleSQL returns the statements that grant the application role its privileges
// after [Migrator.Enforce]: migrate.AppRoleSQL for the SDK's tables, SELECT, INSERT,
// UPDATE and DELETE on the configured host tables, and USAGE and SELECT on the sequences
// the configured tables use (bigserial and identity columns, nextval defaults), without
// which the application's inserts fail with "permission denied for sequence".
func (m *Migrator) AppRoleSQL(ctx context.Context, role string) (string, error) {
	const op = "legacy.AppRoleSQL"
	if role == "" {
		return "", errs.New(errs.InvalidInput, op, "no role")
	}
	stmts := migrate.AppRoleSQL(role, "")
	if m.cfg.Schema != "" {
		if err := m.checkPath(ctx, op); err != nil {
			return "", err
		}
		// Each of the SDK's tables where it lives: the control plane in the SDK's
		// schema, the adopted content tables in the legacy schema. The role's
		// search_path puts the SDK's schema first, the legacy schema next.
		where := map[string]string{}
		rows, err := m.db.QueryxContext(ctx, `SELECT x.name, coalesce(n.nspname, '') FROM unnest($1::text[]) AS x(name)
			LEFT JOIN pg_class c ON c.oid = to_regclass(quote_ident(x.name)) LEFT JOIN pg_namespace n ON n.oid = c.relnamespace`,
			pq.StringArray(migrate.Tables()))
		if err != nil {
			return "", classify(op, err, "resolve tables")
		}
		for rows.Next() {
			var name, schema string
			if err := rows.Scan(&name, &schema); err != nil {
				rows.Close()
				return "", classify(op, err, "resolve tables")
			}
			where[name] = schema
		}
		if err := rows.Err(); err != nil {
			return "", classify(op, err, "resolve tables")
		}
		rows.Close()
		stmts = migrate.AppRoleSQLIn(role, func(t string) string {
			if s := where[t]; s != "" {
				return s
			}
			return m.cfg.Schema
		}, []string{m.cfg.Schema, m.cfg.LegacySchema})
	}
	sdk := migrate.CloneOwnedTables()
	var names []string
	for _, t := range m.cfg.Tables {
		names = append(names, t.Name)
		if !slices.Contains(sdk, t.Name) {
			name := pq.QuoteIdentifier(t.Name)
			if m.cfg.Schema != "" {
				name = pq.QuoteIdentifier(m.cfg.LegacySchema) + "." + name // adopted in place
			}
			stmts += "GRANT SELECT, INSERT, UPDATE, DELETE ON " + name + " TO " + pq.QuoteIdentifier(role) + ";\n"
		}
	}
	var seqs []string
	err := m.db.SelectContext(ctx, &seqs, `
		WITH tbl AS (
			SELECT c.oid FROM pg_class c JOIN unnest($1::text[]) AS x(name) ON c.oid = to_regclass(quote_ident(x.name))
		), seq AS (
			SELECT d.objid AS oid FROM pg_depend d JOIN tbl ON tbl.oid = d.refobjid  -- owned by a column (serial, identity)
			WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
			UNION
			SELECT d.refobjid FROM pg_attrdef ad JOIN tbl ON tbl.oid = ad.adrelid   -- used by a default (nextval)
			JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
		)
		SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(s.relname)
		FROM seq JOIN pg_class s ON s.oid = seq.oid AND s.relkind = 'S' JOIN pg_namespace n ON n.oid = s.relnamespace
		ORDER BY 1`, pq.StringArray(names))
	if err != nil {
		return "", classify(op, err, "sequences")
	}
	for _, s := range seqs {
		stmts += "GRANT USAGE, SELECT ON SEQUENCE " + s + " TO " + pq.QuoteIdentifier(role) + ";\n"
	}
	return stmts, nil
}
