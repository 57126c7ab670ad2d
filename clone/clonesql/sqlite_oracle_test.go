package clonesql

import (
	"sync"
	"testing"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteOracle is SQLite's own parser, reached through the C API of modernc.org/sqlite
// (the driver does not expose a statement's tail or its parameter names). It prepares
// text exactly as the driver does (a NUL-terminated C string, length -1) on an
// in-memory database with the tables the fuzz seeds use.
type sqliteOracle struct {
	mu  sync.Mutex
	tls *libc.TLS
	db  uintptr
}

// sqliteParse is what SQLite made of a text.
type sqliteParse struct {
	ok       bool     // the first statement prepared without error
	stmt     bool     // and it is a statement (not only white space and comments)
	consumed int      // bytes of the text the first statement used; the rest is its tail
	params   []string // sqlite3_bind_parameter_name of each parameter; "" if anonymous (?)
	err      string   // SQLite's message when !ok
}

const oracleSchema = `
CREATE TABLE insights (tenant_id TEXT, clone_id TEXT, id TEXT, content TEXT, category TEXT, created_at TEXT, updated_at TEXT);
CREATE TABLE t (a, b, c, x, m, tenant_id, clone_id, id);
`

var (
	oracleOnce sync.Once
	oracle     *sqliteOracle
	oracleErr  string
)

func newSQLiteOracle(t testing.TB) *sqliteOracle {
	t.Helper()
	oracleOnce.Do(func() {
		o := &sqliteOracle{tls: libc.NewTLS()}
		name, err := libc.CString(":memory:")
		if err != nil {
			oracleErr = err.Error()
			return
		}
		defer libc.Xfree(o.tls, name)
		pdb := o.tls.Alloc(ptrSize)
		defer o.tls.Free(ptrSize)
		if rc := sqlite3.Xsqlite3_open_v2(o.tls, name, pdb, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE, 0); rc != sqlite3.SQLITE_OK {
			oracleErr = "sqlite3_open_v2 failed"
			return
		}
		o.db = *(*uintptr)(cPointer(pdb))
		schema, err := libc.CString(oracleSchema)
		if err != nil {
			oracleErr = err.Error()
			return
		}
		defer libc.Xfree(o.tls, schema)
		if rc := sqlite3.Xsqlite3_exec(o.tls, o.db, schema, 0, 0, 0); rc != sqlite3.SQLITE_OK {
			oracleErr = "schema: " + libc.GoString(sqlite3.Xsqlite3_errmsg(o.tls, o.db))
			return
		}
		oracle = o
	})
	if oracle == nil {
		t.Fatalf("SQLite oracle: %s", oracleErr)
	}
	return oracle
}

const ptrSize = int(unsafe.Sizeof(uintptr(0)))

// cPointer returns the address a of memory the C library allocated (never Go memory) as
// a pointer. It reinterprets the uintptr's bits instead of converting it, which is what
// unsafe's rules are about: the garbage collector neither moves nor tracks C memory.
func cPointer(a uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&a)) }

// parse prepares the first statement of text and reports what SQLite read.
func (o *sqliteOracle) parse(t testing.TB, text string) sqliteParse {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	p, err := libc.CString(text)
	if err != nil {
		t.Fatal(err)
	}
	defer libc.Xfree(o.tls, p)
	out := o.tls.Alloc(2 * ptrSize) // C memory: the C code may not write into Go memory
	defer o.tls.Free(2 * ptrSize)
	pstmt, ptail := out, out+uintptr(ptrSize)
	*(*uintptr)(cPointer(pstmt)) = 0
	*(*uintptr)(cPointer(ptail)) = 0
	if rc := sqlite3.Xsqlite3_prepare_v2(o.tls, o.db, p, -1, pstmt, ptail); rc != sqlite3.SQLITE_OK {
		return sqliteParse{err: libc.GoString(sqlite3.Xsqlite3_errmsg(o.tls, o.db))}
	}
	r := sqliteParse{ok: true, consumed: int(*(*uintptr)(cPointer(ptail)) - p)}
	stmt := *(*uintptr)(cPointer(pstmt))
	if stmt == 0 {
		return r
	}
	defer sqlite3.Xsqlite3_finalize(o.tls, stmt)
	r.stmt = true
	n := int(sqlite3.Xsqlite3_bind_parameter_count(o.tls, stmt))
	for i := 1; i <= n; i++ {
		r.params = append(r.params, libc.GoString(sqlite3.Xsqlite3_bind_parameter_name(o.tls, stmt, int32(i))))
	}
	return r
}
