package pgtest

import (
	"database/sql"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// Driver names a PostgreSQL database/sql driver cloneiso supports.
type Driver string

// The supported PostgreSQL drivers.
const (
	// LibPQ is github.com/lib/pq, opened with [clonesql.OpenPostgres] (binary
	// parameters): a scoped operation costs three round trips.
	LibPQ Driver = "libpq"
	// Pgx is github.com/jackc/pgx/v5's database/sql driver, opened with
	// [clonesql.OpenPgx]: a scoped operation costs one round trip.
	Pgx Driver = "pgx"
)

// Drivers lists every supported PostgreSQL driver, for tests that run on each.
var Drivers = []Driver{LibPQ, Pgx}

// String returns the driver's name.
func (d Driver) String() string { return string(d) }

// OpenURL opens dsn with driver drv as an application would, closed when t ends.
func OpenURL(t testing.TB, drv Driver, dsn string) *sqlx.DB {
	t.Helper()
	var (
		db  *sql.DB
		err error
	)
	switch drv {
	case LibPQ:
		db, err = clonesql.OpenPostgres(dsn)
	case Pgx:
		db, err = clonesql.OpenPgx(dsn)
	default:
		t.Fatalf("pgtest: unknown driver %q", drv)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return sqlx.NewDb(db, "postgres") // sqlx's name for '$1' placeholders
}

// OpenDriver is [Open] for PostgreSQL on driver drv: app is the package's [Shared]
// database as [AppRole] through drv, owner the schema owner's connection (through drv
// too).
func OpenDriver(t testing.TB, drv Driver) (app, owner *sqlx.DB) {
	t.Helper()
	pg := Shared(t)
	if drv == LibPQ {
		return OpenURL(t, drv, pg.AppURL), pg.Owner
	}
	return OpenURL(t, drv, pg.AppURL), OpenURL(t, drv, pg.OwnerURL)
}
