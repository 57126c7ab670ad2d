package nosqlite_test

import (
	"database/sql"
	"slices"
	"testing"

	"github.com/jmoiron/sqlx"

	_ "github.com/cloneiso/cloneiso/clone/clonehttp"
	_ "github.com/cloneiso/cloneiso/clone/clonesql"
	_ "github.com/cloneiso/cloneiso/clone/records"
	_ "github.com/cloneiso/cloneiso/doctor"
	_ "github.com/cloneiso/cloneiso/ingest"
	_ "github.com/cloneiso/cloneiso/migrate"
	_ "github.com/cloneiso/cloneiso/rag"
	_ "github.com/cloneiso/cloneiso/tenant"
)

// TestNoGlobalSQLiteState: importing the PostgreSQL path registers no "sqlite" driver
// and leaves sqlx's bind table as sqlx ships it.
func TestNoGlobalSQLiteState(t *testing.T) {
	if d := sql.Drivers(); slices.Contains(d, "sqlite") {
		t.Fatalf("database/sql drivers %q include \"sqlite\": a package on the PostgreSQL path imports modernc.org/sqlite", d)
	}
	if bt := sqlx.BindType("sqlite"); bt != sqlx.UNKNOWN {
		t.Fatalf("sqlx.BindType(\"sqlite\") = %d; a package registered the name in sqlx's global bind table", bt)
	}
}
