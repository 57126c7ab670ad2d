package clonesql_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"modernc.org/sqlite"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/internal/pgtest"
)

// classifyCase runs one real statement that fails (or not) and names the kind
// ClassifyError must give the error it returns.
type classifyCase struct {
	name string
	run  func(ctx context.Context) error
	want clone.Kind
}

func checkClassify(t *testing.T, cases []classifyCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw := c.run(context.Background())
			if raw == nil {
				t.Fatal("statement did not fail")
			}
			err := clonesql.ClassifyError("test.op", raw)
			if got := clone.KindOf(err); got != c.want {
				t.Fatalf("ClassifyError(%v) kind = %v; want %v", raw, got, c.want)
			}
			if !errors.Is(err, c.want) || !errors.Is(err, raw) {
				t.Fatalf("%v: errors.Is lost the kind or the cause", err)
			}
			if status := clone.HTTPStatus(err); status != c.want.HTTPStatus() {
				t.Fatalf("status %d", status)
			}
			if clonesql.ClassifyError("again", err) != err {
				t.Fatal("a classified error must be returned unchanged")
			}
		})
	}
}

// TestClassifyErrorPostgres runs statements that really fail on PostgreSQL and checks
// each error's kind: bugs are Internal (500, not retryable), not Unavailable.
func TestClassifyErrorPostgres(t *testing.T) {
	app, owner := pgtest.Open(t, clonesql.Postgres)
	ctx := context.Background()
	for _, s := range []string{
		`DROP TABLE IF EXISTS classify_child, classify_t, classify_ex, classify_private, classify_rls`,
		`CREATE TABLE classify_t (id int PRIMARY KEY, v int NOT NULL CHECK (v >= 0))`,
		`CREATE TABLE classify_child (id int PRIMARY KEY, parent int REFERENCES classify_t(id))`,
		`CREATE TABLE classify_ex (r int4range, EXCLUDE USING gist (r WITH &&))`,
		`CREATE TABLE classify_private (id int)`, // no grant to the app role
		`CREATE TABLE classify_rls (id int)`,     // row-level security refuses every new row
		`ALTER TABLE classify_rls ENABLE ROW LEVEL SECURITY`,
		`ALTER TABLE classify_rls FORCE ROW LEVEL SECURITY`,
		`CREATE POLICY refuse_all ON classify_rls USING (false) WITH CHECK (false)`,
		`GRANT SELECT, INSERT ON classify_rls TO PUBLIC`,
		`INSERT INTO classify_t VALUES (1, 1)`,
		`INSERT INTO classify_ex VALUES ('[1,10)')`,
	} {
		if _, err := owner.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	exec := func(db *sqlx.DB, q string, args ...any) func(context.Context) error {
		return func(ctx context.Context) error { _, err := db.ExecContext(ctx, q, args...); return err }
	}
	// onOneConn runs the statements on one connection of the pool and returns the last
	// error.
	onOneConn := func(qs ...string) func(context.Context) error {
		return func(ctx context.Context) error {
			conn, err := owner.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			for _, q := range qs {
				if _, err = conn.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	expired, cancel2 := context.WithTimeout(ctx, -1)
	defer cancel2()
	closedPort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}()

	checkClassify(t, []classifyCase{
		{"syntax error", exec(owner, `SELEC 1`), clone.ErrInternal},
		{"undefined column", exec(owner, `SELECT no_such_column FROM classify_t`), clone.ErrInternal},
		{"undefined table", exec(owner, `SELECT 1 FROM no_such_table`), clone.ErrInternal},
		{"permission denied (role misconfigured)", exec(app, `SELECT * FROM classify_private`), clone.ErrInternal},
		{"row refused by row-level security", exec(app, `INSERT INTO classify_rls VALUES (1)`), clone.ErrCloneMismatch},
		{"unexpected constraint (exclusion)", exec(owner, `INSERT INTO classify_ex VALUES ('[5,15)')`), clone.ErrInternal},
		{"division by zero", exec(owner, `SELECT 1/0`), clone.ErrInvalidInput},
		{"invalid text for a type", exec(owner, `SELECT 'abc'::int`), clone.ErrInvalidInput},
		{"check violation", exec(owner, `INSERT INTO classify_t VALUES (2, -1)`), clone.ErrInvalidInput},
		{"not null violation", exec(owner, `INSERT INTO classify_t VALUES (3, NULL)`), clone.ErrInvalidInput},
		{"unique violation", exec(owner, `INSERT INTO classify_t VALUES (1, 1)`), clone.ErrConflict},
		{"foreign key violation", exec(owner, `INSERT INTO classify_child VALUES (1, 99)`), clone.ErrConflict},
		{"no rows", func(ctx context.Context) error {
			var v int
			return owner.GetContext(ctx, &v, `SELECT v FROM classify_t WHERE id = -1`)
		}, clone.ErrNotFound},
		{"statement timeout", onOneConn(`SET statement_timeout = '10ms'`, `SELECT pg_sleep(30)`), clone.ErrUnavailable},
		{"cancelled on the server (user request)", onOneConn(`SELECT pg_cancel_backend(pg_backend_pid()), pg_sleep(30)`), clone.ErrCanceled},
		{"connection terminated", onOneConn(`SELECT pg_terminate_backend(pg_backend_pid())`), clone.ErrUnavailable},
		{"context cancelled", func(context.Context) error { return exec(owner, `SELECT 1`)(cancelled) }, clone.ErrCanceled},
		{"context deadline exceeded", func(context.Context) error { return exec(owner, `SELECT 1`)(expired) }, clone.ErrUnavailable},
		{"connection refused", func(ctx context.Context) error {
			db, err := sql.Open("postgres", "postgres://postgres@"+closedPort+"/x?sslmode=disable&connect_timeout=5")
			if err != nil {
				return err
			}
			defer db.Close()
			return db.PingContext(ctx)
		}, clone.ErrUnavailable},
	})

	// The driver error stays reachable.
	_, raw := owner.ExecContext(ctx, `SELEC 1`)
	var pe *pq.Error
	if err := clonesql.ClassifyError("x", raw); !errors.As(err, &pe) || pe.Code != "42601" {
		t.Fatalf("errors.As(*pq.Error) on %v", err)
	}
}

// TestClassifyErrorSQLite does the same on SQLite.
func TestClassifyErrorSQLite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "classify.db")
	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, s := range []string{
		`CREATE TABLE classify_t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0), u TEXT UNIQUE)`,
		`CREATE TABLE classify_child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES classify_t(id))`,
		`CREATE TABLE classify_strict (n INTEGER) STRICT`,
		`CREATE TABLE classify_trig (id INTEGER)`,
		`CREATE TRIGGER classify_trig_refuse BEFORE INSERT ON classify_trig BEGIN SELECT RAISE(ABORT, 'refused by an unexpected trigger'); END`,
		`INSERT INTO classify_t VALUES (1, 1, 'a')`,
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	exec := func(q string, args ...any) func(context.Context) error {
		return func(ctx context.Context) error { _, err := db.ExecContext(ctx, q, args...); return err }
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	checkClassify(t, []classifyCase{
		{"syntax error", exec(`SELEC 1`), clone.ErrInternal},
		{"undefined column", exec(`SELECT no_such_column FROM classify_t`), clone.ErrInternal},
		{"undefined table", exec(`SELECT 1 FROM no_such_table`), clone.ErrInternal},
		{"unexpected constraint (trigger)", exec(`INSERT INTO classify_trig VALUES (1)`), clone.ErrInternal},
		{"check violation", exec(`INSERT INTO classify_t VALUES (2, -1, 'b')`), clone.ErrInvalidInput},
		{"not null violation", exec(`INSERT INTO classify_t VALUES (3, NULL, 'c')`), clone.ErrInvalidInput},
		{"datatype mismatch (STRICT)", exec(`INSERT INTO classify_strict VALUES ('abc')`), clone.ErrInvalidInput},
		{"primary key violation", exec(`INSERT INTO classify_t VALUES (1, 1, 'z')`), clone.ErrConflict},
		{"unique violation", exec(`INSERT INTO classify_t VALUES (5, 1, 'a')`), clone.ErrConflict},
		{"foreign key violation", exec(`INSERT INTO classify_child VALUES (1, 99)`), clone.ErrConflict},
		{"no rows", func(ctx context.Context) error {
			var v int
			return db.QueryRowContext(ctx, `SELECT v FROM classify_t WHERE id = -1`).Scan(&v)
		}, clone.ErrNotFound},
		{"context cancelled", func(context.Context) error { return exec(`SELECT 1`)(cancelled) }, clone.ErrCanceled},
		{"pool closed (shutting down)", func(ctx context.Context) error {
			closed, err := sqlitedb.Open(filepath.Join(dir, "closed.db"))
			if err != nil {
				return err
			}
			closed.Close()
			_, err = closed.ExecContext(ctx, `SELECT 1`)
			return err
		}, clone.ErrUnavailable},
		{"database busy", func(ctx context.Context) error {
			// A second handle on the same file with no busy timeout, while the first
			// holds the write lock.
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if _, err := tx.ExecContext(ctx, `INSERT INTO classify_t VALUES (10, 1, 'lock')`); err != nil {
				return err
			}
			other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
			if err != nil {
				return err
			}
			defer other.Close()
			_, err = other.ExecContext(ctx, `INSERT INTO classify_t VALUES (11, 1, 'other')`)
			return err
		}, clone.ErrUnavailable},
	})

	_, raw := db.ExecContext(ctx, `SELEC 1`)
	var se *sqlite.Error
	if err := clonesql.ClassifyError("x", raw); !errors.As(err, &se) || !strings.Contains(se.Error(), "syntax error") {
		t.Fatalf("errors.As(*sqlite.Error) on %v", err)
	}
}
