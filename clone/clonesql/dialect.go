// Package clonesql is cloneiso's clone-scoped access to SQL databases through
// database/sql: every function takes the standard *sql.DB.
//
// PostgreSQL (through pgx's database/sql driver, recommended: one round trip per scoped
// operation, see [OpenPgx]; or github.com/lib/pq, three, see [OpenPostgres]) is the
// production dialect and enforces isolation twice: every statement is scoped from the
// CloneContext, and row-level security policies on every clone-owned table compare
// tenant_id and clone_id with transaction-local settings. SQLite (pure Go, modernc.org/sqlite) is the embedded default for examples and
// quick starts; it has no row-level security, so on SQLite isolation rests on the scoped
// statements alone.
package clonesql

import (
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/internal/errs"

	_ "modernc.org/sqlite" // registers the "sqlite" driver for OpenSQLite
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

// OpenSQLite opens (creating if needed) the SQLite database file at path with the
// settings cloneiso relies on: foreign keys enforced, WAL journal, a 10 s busy timeout,
// and write transactions that take the write lock when they begin (BEGIN IMMEDIATE), so
// concurrent writers queue instead of failing with SQLITE_BUSY half-way.
//
// Durability: the journal is WAL with synchronous=FULL, so every transaction that
// committed (its Commit or Exec returned) has had the write-ahead log fsynced and
// survives a process kill and a power loss; a transaction in flight is rolled back as
// a whole. (With synchronous=NORMAL, SQLite's usual WAL setting, a commit survives a
// process kill but the last ones may be lost on power loss; cloneiso acknowledges
// writes to users, so it pays the one fsync per commit.) Use ":memory:"
// only with db.SetMaxOpenConns(1): every new connection to ":memory:" is a new database.
func OpenSQLite(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "busy_timeout(10000)")
	if path != ":memory:" {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
	}
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	if strings.IndexByte(path, 0) >= 0 {
		return nil, errs.New(errs.InvalidInput, "clonesql.OpenSQLite", "path %q contains a NUL byte", path)
	}
	db, err := sql.Open("sqlite", sqliteURI(path)+"?"+q.Encode())
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, "clonesql.OpenSQLite", err, "open %s", path)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, errs.Wrap(errs.Unavailable, "clonesql.OpenSQLite", err, "open %s", path)
	}
	return db, nil
}

// sqliteURI returns the file: URI of the database file at path. The path is
// percent-encoded: SQLite reads '?' and '#' in a URI as the start of the query and the
// fragment and decodes %XX, and the driver splits the DSN at its first '?', so a name
// such as app#1.db, a?b.db or 100%.db would otherwise open another file.
func sqliteURI(path string) string {
	if path == ":memory:" {
		return "file::memory:"
	}
	p := (&url.URL{Path: path}).EscapedPath()
	if strings.HasPrefix(p, "/") {
		// file:///abs: an empty authority, so that a path starting with // is not
		// read as a host name.
		return "file://" + p
	}
	return "file:" + p
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
