// Package clonesql is cloneiso's clone-scoped access to SQL databases through
// database/sql: every function takes the standard *sql.DB.
//
// PostgreSQL (through pgx's database/sql driver, recommended: one round trip per scoped
// operation, see [OpenPgx]; or github.com/lib/pq, three, see [OpenPostgres]) is the
// production dialect and enforces isolation twice: every statement is scoped from the
// CloneContext, and row-level security policies on every clone-owned table compare
// tenant_id and clone_id with transaction-local settings. SQLite (pure Go, modernc.org/sqlite, opened with package
// [github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb]) is the embedded default for
// examples and quick starts; it has no row-level security, so on SQLite isolation rests
// on the scoped statements alone.
//
// The package changes no global state: it registers no database/sql driver and no
// name in sqlx's bind table. A host on PostgreSQL alone never loads SQLite; one that
// wants the embedded default imports sqlitedb, which registers modernc.org/sqlite's
// "sqlite" driver.
package clonesql

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Dialect names a SQL dialect cloneiso supports.
type Dialect string

// The supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// String returns the dialect's name.
func (d Dialect) String() string { return string(d) }

// Validate returns an error of kind ErrUnsupported unless d is Postgres or SQLite.
func (d Dialect) Validate() error {
	switch d {
	case Postgres, SQLite:
		return nil
	}
	return errs.New(errs.Unsupported, "clonesql.Dialect", "unsupported SQL dialect %q (want postgres or sqlite)", string(d))
}

// DialectOf returns the dialect of db from its database/sql driver: lib/pq (and pgx's
// stdlib driver) are Postgres, modernc.org/sqlite is SQLite.
func DialectOf(db *sql.DB) (Dialect, error) {
	t := fmt.Sprintf("%T", db.Driver())
	switch {
	case strings.HasPrefix(t, "*pq.") || strings.HasPrefix(t, "*stdlib."):
		return Postgres, nil
	case strings.HasPrefix(t, "*sqlite."):
		return SQLite, nil
	}
	return "", errs.New(errs.Unsupported, "clonesql.DialectOf", "unsupported database driver %s", t)
}

// wrap returns db as an *sqlx.DB (the package's scanner) with the placeholder style of
// its dialect. The driver names given to sqlx are the ones its built-in bind table
// knows ("sqlite3" for '?', "postgres" for '$1'), so nothing global is registered.
func wrap(db *sql.DB, op string) (*sqlx.DB, Dialect, error) {
	if db == nil {
		return nil, "", errs.New(errs.InvalidInput, op, "nil *sql.DB")
	}
	d, err := DialectOf(db)
	if err != nil {
		return nil, "", err
	}
	name := "postgres"
	if d == SQLite {
		name = "sqlite3"
	}
	return sqlx.NewDb(db, name), d, nil
}

// OpenPostgres opens a PostgreSQL database through lib/pq with binary_parameters=yes
// added to dsn (a postgres:// URL or a key=value string) unless dsn sets it: lib/pq then
// sends a parameterized statement in one round trip instead of two, which keeps a scoped
// operation at three round trips (see [DB]). With binary parameters, []byte arguments go
// to the server in binary form: pass JSON for jsonb columns as a string, not as []byte.
// [OpenPgx] is the recommended alternative: one round trip per scoped operation.
func OpenPostgres(dsn string) (*sql.DB, error) {
	const op = "clonesql.OpenPostgres"
	if !strings.Contains(dsn, "binary_parameters") {
		if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
			u, err := url.Parse(dsn)
			if err != nil {
				return nil, errs.Wrap(errs.InvalidInput, op, err, "parse DSN")
			}
			q := u.Query()
			q.Set("binary_parameters", "yes")
			u.RawQuery = q.Encode()
			dsn = u.String()
		} else {
			dsn = strings.TrimSpace(dsn) + " binary_parameters=yes"
		}
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "open")
	}
	return db, nil
}
