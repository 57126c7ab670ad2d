// Package migrate owns cloneiso's database schema: versioned migrations for PostgreSQL
// and SQLite run by a goose v3 Provider, the application role setup for PostgreSQL, and
// [CheckIsolation], which inspects a live PostgreSQL database for the misconfigurations
// that would let row-level security be bypassed.
//
// Migrations are embedded in the binary, one directory per dialect, and recorded in a
// version table of cloneiso's own (cloneiso_schema_version by default), so they never
// mix with a host's own goose migrations. On PostgreSQL a session-level advisory lock
// serializes application instances that start together.
//
// On PostgreSQL the tables go to the connection's current schema, or to a schema of
// their own ([Options].Schema), for a database whose own tables bear the SDK's names
// (a table named clones, say). The application's connections must then resolve the
// SDK's tables there: [AppRoleSQL] sets the application role's search_path in the
// database, and [CheckIsolation] reports a connection whose search_path resolves one of
// the SDK's table names to another table.
//
// Run migrations as the role that owns the schema, and run the application as another
// role that owns nothing (see [AppRoleSQL]): row-level security is enforced on table
// owners only because every clone-owned table has FORCE ROW LEVEL SECURITY, and never on
// superusers or BYPASSRLS roles.
//
// A deployment that predates cloneiso, with its data keyed by a user ID, cannot run
// these migrations on its existing tables: it takes the explicit legacy path of package
// migrate/legacy (adopt the schema, backfill every row's clone, verify, then enforce),
// driven by the cloneiso-migrate command (migrate/cmd/cloneiso-migrate). That path
// ends with the schema of a fresh install at a recorded version, so [Up] carries on from
// there. MIGRATION_GUIDE.md at the repository root is the runbook.
package migrate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/lib/pq"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/errs"
)

//go:embed migrations
var migrationsFS embed.FS

// DefaultTableName is the name of cloneiso's migration version table.
const DefaultTableName = "cloneiso_schema_version"

// lockID is the PostgreSQL advisory lock key cloneiso's migrations hold while they run
// (the bytes "cloneiso" as a big-endian int64), distinct from goose's default so a host's
// own goose migrations can run beside ours.
const lockID int64 = 0x636c6f6e6569736f

// Options configure [NewProvider]. The zero value (or nil) means the defaults.
type Options struct {
	// TableName is the version table; default DefaultTableName.
	TableName string
	// Schema, if set, is the PostgreSQL schema of cloneiso's tables and of the version
	// table: a lower-case identifier (letters, digits, _), not pg_*. Default "": the
	// connection's current schema, as before. Up creates the schema if it is missing and
	// runs every migration on one pinned connection whose search_path puts Schema first
	// (followed by the connection's own path), then restores that connection's
	// search_path; Down does the same. The version table is in Schema, and goose reads
	// it before it takes its lock: on a database without the schema a Provider's
	// methods (Up included) fail until [Up] has created it. It lets the SDK's tables live beside a host's
	// tables of the same names (a legacy table named clones, say) in another schema.
	// The application role must then resolve the SDK's tables in Schema (see
	// [AppRoleSQL] and [CheckOptions].Schema). SQLite has no schemas: a Schema there is
	// refused with clone.ErrUnsupported.
	Schema string
	// Logger receives one line per applied migration; default: silent.
	Logger *slog.Logger
}

// Migrations returns the embedded migrations of dialect d, as the files goose reads.
func Migrations(d clonesql.Dialect) (fs.FS, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return fs.Sub(migrationsFS, "migrations/"+string(d))
}

// NewProvider returns a goose Provider for cloneiso's migrations on db. Call Up to
// migrate, Status to inspect, Down/DownTo to roll back. On PostgreSQL the provider holds
// a session advisory lock while it migrates, so concurrent callers wait for each other
// instead of racing.
func NewProvider(db *sql.DB, opts *Options) (*goose.Provider, error) {
	const op = "migrate.NewProvider"
	d, err := clonesql.DialectOf(db)
	if err != nil {
		return nil, err
	}
	fsys, err := Migrations(d)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &Options{}
	}
	table := opts.TableName
	if table == "" {
		table = DefaultTableName
	}
	if opts.Schema != "" {
		if d != clonesql.Postgres {
			return nil, errs.New(errs.Unsupported, op, "schema %q: SQLite has no schemas; leave Options.Schema empty", opts.Schema)
		}
		if err := ValidSchema(opts.Schema); err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "options")
		}
		if strings.Contains(table, ".") {
			return nil, errs.New(errs.InvalidInput, op, "table name %q is qualified and Schema %q is set: give the table's bare name", table, opts.Schema)
		}
		table = opts.Schema + "." + table
	}
	po := []goose.ProviderOption{goose.WithTableName(table), goose.WithDisableGlobalRegistry(true)}
	if opts.Logger != nil {
		po = append(po, goose.WithSlog(opts.Logger))
	}
	gd := goose.DialectSQLite3
	if d == clonesql.Postgres {
		gd = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(lockID),
			lock.WithLockTimeout(1, 600), // poll every second for up to ten minutes
		)
		if err != nil {
			return nil, errs.Wrap(errs.Internal, op, err, "session locker")
		}
		if opts.Schema != "" {
			locker = &schemaLocker{SessionLocker: locker, schema: opts.Schema}
		}
		po = append(po, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, fsys, po...)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, op, err, "goose provider")
	}
	return p, nil
}

var schemaRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema returns an error unless name can be the schema of cloneiso's tables
// ([Options].Schema): a lower-case identifier of letters, digits and _ (so it needs no
// quoting anywhere it is written), not starting with pg_ and not information_schema.
func ValidSchema(name string) error {
	if !schemaRe.MatchString(name) || strings.HasPrefix(name, "pg_") || name == "information_schema" {
		return fmt.Errorf("schema %q: want a lower-case identifier (a-z, 0-9, _; at most 63), not pg_* or information_schema", name)
	}
	return nil
}

// schemaLocker wraps goose's session locker: goose runs every SQL migration, and its
// version-table statements, on the connection it locks. Once the lock is held it creates
// the schema if missing and puts it first in that connection's search_path; before
// unlocking it restores the path the connection had (or, failing that, discards the
// connection), so that no pooled connection keeps the migrations' path.
type schemaLocker struct {
	lock.SessionLocker
	schema string
	saved  string // the connection's search_path before SessionLock; goose serializes its calls
}

func (l *schemaLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if err := l.SessionLocker.SessionLock(ctx, conn); err != nil {
		return err
	}
	err := func() error {
		if err := ensureSchema(ctx, conn, l.schema); err != nil {
			return err
		}
		if err := conn.QueryRowContext(ctx, "SELECT current_setting('search_path')").Scan(&l.saved); err != nil {
			return err
		}
		path := l.schema // validated: needs no quoting
		if strings.TrimSpace(l.saved) != "" {
			path += ", " + l.saved
		}
		_, err := conn.ExecContext(ctx, "SELECT set_config('search_path', $1, false)", path)
		return err
	}()
	if err != nil {
		return errors.Join(err, l.SessionLocker.SessionUnlock(context.WithoutCancel(ctx), conn))
	}
	return nil
}

func (l *schemaLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT set_config('search_path', $1, false)", l.saved); err != nil {
		// Never hand the connection back with the migrations' path: drop it (its
		// session lock goes with it).
		conn.Raw(func(any) error { return driver.ErrBadConn })
		return err
	}
	return l.SessionLocker.SessionUnlock(ctx, conn)
}

// ensureSchema creates schema unless it exists. CREATE SCHEMA IF NOT EXISTS needs CREATE
// on the database even when the schema exists, so it is created only when missing; a
// concurrent creation (unique violation) counts as success.
func ensureSchema(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, schema string) error {
	exists := func() (bool, error) {
		var ok bool
		err := q.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&ok)
		return ok, err
	}
	if ok, err := exists(); err != nil || ok {
		return err
	}
	if _, err := q.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pq.QuoteIdentifier(schema)); err != nil {
		if ok, err2 := exists(); err2 == nil && ok {
			return nil
		}
		return fmt.Errorf("create schema %s: %w", schema, err)
	}
	return nil
}

// Up applies every pending migration to db. It is safe to call from several processes
// at once on PostgreSQL. With [Options].Schema it creates that schema first if it is
// missing.
//
// Its errors are classified like every database error of the SDK (see
// clonesql.ClassifyError): a lost connection, a timeout or a lock held too long is
// clone.ErrUnavailable (retry), a cancelled ctx clone.ErrCanceled, and a migration the
// database refuses (for instance a role without the privileges to create the schema)
// clone.ErrInternal. The cause (goose's error, the driver's error) stays reachable with
// errors.As.
func Up(ctx context.Context, db *sql.DB, opts *Options) error {
	const op = "migrate.Up"
	p, err := NewProvider(db, opts)
	if err != nil {
		return err
	}
	if opts != nil && opts.Schema != "" {
		// Goose reads the version table (in the schema) before it takes its lock.
		if err := ensureSchema(ctx, db, opts.Schema); err != nil {
			return errs.Wrap(errs.KindOf(clonesql.ClassifyError(op, err)), op, err, "schema")
		}
	}
	if _, err := p.Up(ctx); err != nil {
		return errs.Wrap(errs.KindOf(clonesql.ClassifyError(op, err)), op, err, "apply migrations")
	}
	return nil
}

// CloneOwnedTables lists the tables of cloneiso's schema that hold clone content: each
// has tenant_id and clone_id columns and, on PostgreSQL, a forced row-level security
// policy. It is records.Tables: package records defines those tables' rows, and the
// layers above (tenant, migrate) take the list from there.
func CloneOwnedTables() []string { return records.Tables() }

// controlTables are the tables the application reads and writes without a clone scope.
var controlTables = []string{"tenants", "clones", "tenant_members", "clone_grants"}

// auditTables are the audit log, its hash-chain heads and the break-glass grants.
var auditTables = []string{"audit_events", "audit_chain_heads", "break_glass_grants"}

// Tables returns the name of every table the migrations create, the version table
// aside: the control plane (tenants, clones, members, grants), the clone-owned tables
// ([CloneOwnedTables]) and the audit tables. The SDK queries them by these bare names.
func Tables() []string {
	return slices.Concat(controlTables, CloneOwnedTables(), auditTables)
}
