package clonesql

import (
	"testing"

	sqlite3 "modernc.org/sqlite/lib"
)

// TestSQLiteCodes holds the result codes copied into errors.go (the package does not
// import modernc.org/sqlite) to the library's values.
func TestSQLiteCodes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"INTERRUPT", sqliteInterrupt, sqlite3.SQLITE_INTERRUPT},
		{"BUSY", sqliteBusy, sqlite3.SQLITE_BUSY},
		{"LOCKED", sqliteLocked, sqlite3.SQLITE_LOCKED},
		{"IOERR", sqliteIOErr, sqlite3.SQLITE_IOERR},
		{"FULL", sqliteFull, sqlite3.SQLITE_FULL},
		{"CANTOPEN", sqliteCantOpen, sqlite3.SQLITE_CANTOPEN},
		{"NOMEM", sqliteNoMem, sqlite3.SQLITE_NOMEM},
		{"PROTOCOL", sqliteProtocol, sqlite3.SQLITE_PROTOCOL},
		{"TOOBIG", sqliteTooBig, sqlite3.SQLITE_TOOBIG},
		{"CONSTRAINT_UNIQUE", sqliteConstraintUnique, sqlite3.SQLITE_CONSTRAINT_UNIQUE},
		{"CONSTRAINT_PRIMARYKEY", sqliteConstraintPrimaryKey, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY},
		{"CONSTRAINT_FOREIGNKEY", sqliteConstraintForeignKey, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY},
		{"CONSTRAINT_CHECK", sqliteConstraintCheck, sqlite3.SQLITE_CONSTRAINT_CHECK},
		{"CONSTRAINT_NOTNULL", sqliteConstraintNotNull, sqlite3.SQLITE_CONSTRAINT_NOTNULL},
		{"CONSTRAINT_DATATYPE", sqliteConstraintDatatype, sqlite3.SQLITE_CONSTRAINT_DATATYPE},
	} {
		if c.got != c.want {
			t.Errorf("SQLITE_%s = %d here, %d in modernc.org/sqlite/lib", c.name, c.got, c.want)
		}
	}
}
