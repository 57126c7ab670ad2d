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
	"embed"
	"io/fs"
	"log/slog"

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
		po = append(po, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, fsys, po...)
	if err != nil {
		return nil, errs.Wrap(errs.Internal, op, err, "goose provider")
	}
	return p, nil
}

// Up applies every pending migration to db. It is safe to call from several processes
// at once on PostgreSQL.
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
