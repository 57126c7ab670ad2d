// Package sqlitedb opens the embedded SQLite database (pure Go, modernc.org/sqlite)
// with the settings cloneiso relies on. It is the embedded default of the examples and
// quick starts; a host that uses PostgreSQL only does not import it.
//
// Importing this package registers modernc.org/sqlite's database/sql driver under the
// name "sqlite" (that package's init does). Package clonesql itself registers nothing
// and changes no global table: it recognizes the driver of the *sql.DB it is given.
package sqlitedb

import (
	"database/sql"
	"net/url"
	"strings"

	"github.com/cloneiso/cloneiso/internal/errs"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating if needed) the SQLite database file at path with the settings
// cloneiso relies on: foreign keys enforced, WAL journal, a 10 s busy timeout, and write
// transactions that take the write lock when they begin (BEGIN IMMEDIATE), so concurrent
// writers queue instead of failing with SQLITE_BUSY half-way.
//
// Durability: the journal is WAL with synchronous=FULL, so every transaction that
// committed (its Commit or Exec returned) has had the write-ahead log fsynced and
// survives a process kill and a power loss; a transaction in flight is rolled back as
// a whole. (With synchronous=NORMAL, SQLite's usual WAL setting, a commit survives a
// process kill but the last ones may be lost on power loss; cloneiso acknowledges
// writes to users, so it pays the one fsync per commit.) Use ":memory:"
// only with db.SetMaxOpenConns(1): every new connection to ":memory:" is a new database.
func Open(path string) (*sql.DB, error) {
	const op = "sqlitedb.Open"
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
		return nil, errs.New(errs.InvalidInput, op, "path %q contains a NUL byte", path)
	}
	db, err := sql.Open("sqlite", uri(path)+"?"+q.Encode())
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "open %s", path)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, errs.Wrap(errs.Unavailable, op, err, "open %s", path)
	}
	return db, nil
}

// uri returns the file: URI of the database file at path. The path is
// percent-encoded: SQLite reads '?' and '#' in a URI as the start of the query and the
// fragment and decodes %XX, and the driver splits the DSN at its first '?', so a name
// such as app#1.db, a?b.db or 100%.db would otherwise open another file.
func uri(path string) string {
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
