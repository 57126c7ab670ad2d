package clonesql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx/reflectx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// The pgx path. A *DB whose *sql.DB runs on pgx's database/sql driver
// (github.com/jackc/pgx/v5/stdlib: sql.Open("pgx", ...), stdlib.OpenDB, or [OpenPgx])
// reaches the *pgx.Conn under each pooled connection with (*sql.Conn).Raw and sends a
// scoped statement together with its scope as one pipeline with a single Sync:
//
//	Parse/Bind/Execute  SELECT set_config('cloneiso.tenant_id', $1, true), set_config('cloneiso.clone_id', $2, true)
//	Parse/Bind/Execute  the statement
//	Sync
//
// PostgreSQL runs everything before a Sync as one implicit transaction, so the
// settings are transaction-local to exactly that statement, and the Sync commits it
// (or rolls it back if any part failed). One round trip, no BEGIN/COMMIT messages, and
// no state on the connection afterwards: a failure cannot leave the connection in an
// aborted transaction. Inside [DB.WithTx] the pipeline opens an explicit transaction
// (BEGIN, settings, first statement, Sync), later statements take one round trip each
// and COMMIT one more.

// settingsParamSQL sets both settings transaction-locally from parameters, so that one
// statement text (one prepared form per connection) serves every clone.
const settingsParamSQL = "SELECT set_config('" + SettingTenantID + "', $1, true), set_config('" + SettingCloneID + "', $2, true)"

// OpenPgx opens a PostgreSQL database through pgx's database/sql driver; dsn is a
// postgres:// URL or a key=value string as pgx.ParseConfig reads it. A scoped operation
// on it costs one round trip (see [DB]).
//
// pgx's default statement mode (cache_statement: named prepared statements, cached per
// connection) suits a direct connection and PgBouncer 1.21 or later with
// max_prepared_statements > 0. Behind an older PgBouncer in transaction-pooling mode,
// or a pooler that does not track prepared statements, add
// default_query_exec_mode=cache_describe (unnamed statements, descriptions cached by
// the client: still one round trip per operation) or exec (no cache at all; parameters
// sent as text and typed by the server, as lib/pq does) to dsn.
func OpenPgx(dsn string) (*sql.DB, error) {
	const op = "clonesql.OpenPgx"
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidInput, op, err, "parse DSN")
	}
	return stdlib.OpenDB(*cfg), nil
}

// usesPgx reports whether db runs on pgx's database/sql driver.
func usesPgx(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

// pgxConn returns the *pgx.Conn under a database/sql driver connection.
func pgxConn(dc any) (*pgx.Conn, error) {
	c, ok := dc.(*stdlib.Conn)
	if !ok {
		return nil, fmt.Errorf("clonesql: driver connection %T is not pgx's", dc)
	}
	return c.Conn(), nil
}

// pgxSession is the connection of one scoped operation or transaction on pgx. It is
// taken by the first statement, so that opening the transaction travels with it.
type pgxSession struct {
	db     *DB
	cc     clone.CloneContext
	single bool      // DB.Get/Select/Exec: exactly one statement
	conn   *sql.Conn // nil until the first statement
	open   bool      // a transaction is open on conn (the server says so)
}

// withPgx runs fn in a pgx session: one statement in an implicit transaction when
// single is true ([DB.Get], [DB.Select], [DB.Exec]), an explicit transaction otherwise
// ([DB.WithTx]). As on lib/pq, a transaction left open by an error, a cancellation or a
// panic is rolled back before the connection returns to the pool.
func (d *DB) withPgx(ctx context.Context, cc clone.CloneContext, op string, single bool, fn func(*Tx) error) error {
	s := &pgxSession{db: d, cc: cc, single: single}
	tx := &Tx{db: d, cc: cc, pg: s, deferAudit: true}
	committed := false
	defer func() {
		if !committed {
			s.rollback(ctx)
		}
		s.release()
		tx.flushAudit(ctx) // after the connection is back: the sink may need one
		if p := recover(); p != nil {
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if tx.failed != nil {
		return errs.Wrap(errs.Conflict, op, tx.failed, "a statement of the transaction failed; rolled back")
	}
	if err := s.commit(ctx); err != nil {
		return ClassifyError(op, err)
	}
	committed = true
	return nil
}

// run sends one statement and reads its result with scan (nil: discard rows). The
// first statement of the session is pipelined with the scope (and BEGIN, if the
// transaction must outlive it: always in [DB.WithTx], and in a single operation when
// explicit is set, so the caller can still roll back after reading the rows).
func (s *pgxSession) run(ctx context.Context, query string, args []any, explicit bool, scan func(pgx.Rows) error) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	for i, a := range args {
		// A uuid.UUID reaches pgx as a driver.Valuer (a string) that its binary uuid
		// encoder refuses before the text one accepts it; hand it the bytes instead.
		if u, ok := a.(uuid.UUID); ok {
			args[i] = pgtype.UUID{Bytes: u, Valid: true}
		}
	}
	if s.conn != nil {
		if s.single {
			return tag, errors.New("clonesql: a single scoped operation ran a second statement")
		}
		err := s.conn.Raw(func(dc any) error {
			c, err := pgxConn(dc)
			if err != nil {
				return err
			}
			defer s.observe(c)
			rows, err := c.Query(ctx, query, args...)
			if err != nil {
				return err
			}
			tag, err = readRows(rows, scan)
			return err
		})
		return tag, err
	}
	explicit = explicit || !s.single
	for attempt := 0; ; attempt++ {
		conn, err := s.db.x.DB.Conn(ctx)
		if err != nil {
			return tag, err
		}
		retry := false
		err = conn.Raw(func(dc any) error {
			c, err := pgxConn(dc)
			if err != nil {
				return err
			}
			defer s.observe(c)
			b := &pgx.Batch{}
			if explicit {
				b.Queue("BEGIN")
			}
			b.Queue(settingsParamSQL, s.cc.TenantID().String(), s.cc.CloneID().String())
			b.Queue(query, args...)
			br := c.SendBatch(ctx, b)
			for range 1 + boolToInt(explicit) {
				if _, err := br.Exec(); err != nil {
					br.Close()
					// The scope's own result failed. If the server never got the
					// pipeline, or ended the session before running any of it (a
					// backend terminated while the connection sat idle in the pool),
					// nothing ran and another connection may take it, as
					// database/sql retries driver.ErrBadConn.
					retry = c.IsClosed() && ctx.Err() == nil && (pgconn.SafeToRetry(err) || serverGone(err))
					if c.IsClosed() {
						return errors.Join(err, driver.ErrBadConn) // discard the connection
					}
					return err
				}
			}
			rows, err := br.Query()
			if err == nil {
				tag, err = readRows(rows, scan)
			}
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if retry && attempt < maxBadConnRetries {
			conn.Close()
			continue
		}
		s.conn = conn
		return tag, err
	}
}

// observe records whether a transaction is open on c once a round trip has ended. A
// closed connection has none (the server ends it), and database/sql discards it.
func (s *pgxSession) observe(c *pgx.Conn) {
	s.open = !c.IsClosed() && c.PgConn().TxStatus() != 'I'
}

// serverGone reports a server that ended the session (admin_shutdown, crash_shutdown,
// cannot_connect_now: SQLSTATE class 57P).
func serverGone(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Severity == "FATAL" && strings.HasPrefix(pe.Code, "57P")
}

// commit commits an explicit transaction, if one is open.
func (s *pgxSession) commit(ctx context.Context) error {
	if s.conn == nil || !s.open {
		return nil // nothing ran, or the implicit transaction already committed
	}
	return s.conn.Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return err
		}
		defer s.observe(c)
		tag, err := c.Exec(ctx, "COMMIT")
		if err == nil && tag.String() != "COMMIT" {
			err = errors.New("clonesql: the transaction was rolled back instead of committed")
		}
		return err
	})
}

// rollback ends a transaction left open on the session's connection, even if ctx is
// done; if that fails the connection's state is unknown and it is discarded.
func (s *pgxSession) rollback(ctx context.Context) {
	if s.conn == nil || !s.open {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	s.conn.Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return driver.ErrBadConn
		}
		defer s.observe(c)
		if _, err := c.Exec(rctx, "ROLLBACK"); err != nil || c.PgConn().TxStatus() != 'I' {
			return driver.ErrBadConn
		}
		return nil
	})
}

// release returns the session's connection to the pool.
func (s *pgxSession) release() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// readRows scans rows with scan (if any), closes them and returns the statement's
// command tag; a server error takes precedence over a scan error.
func readRows(rows pgx.Rows, scan func(pgx.Rows) error) (pgconn.CommandTag, error) {
	var err error
	if scan != nil {
		err = scan(rows)
	}
	rows.Close()
	if rerr := rows.Err(); rerr != nil {
		return rows.CommandTag(), rerr
	}
	return rows.CommandTag(), err
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pgxResult is the sql.Result of a statement run on the pgx path.
type pgxResult int64

// LastInsertId is not supported by PostgreSQL (use RETURNING), as with lib/pq.
func (pgxResult) LastInsertId() (int64, error) {
	return 0, errs.New(errs.Unsupported, "clonesql", "LastInsertId is not supported by PostgreSQL; use RETURNING")
}

// RowsAffected returns the number of rows the statement changed.
func (r pgxResult) RowsAffected() (int64, error) { return int64(r), nil }

// readOnly reports whether a statement only reads: its first keyword is SELECT, VALUES,
// TABLE or SHOW (a WITH may hide a data-modifying statement, so it does not count).
func readOnly(q string) bool {
	i := 0
	for i < len(q) {
		switch c := q[i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '(':
			i++
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			j := strings.IndexByte(q[i:], '\n')
			if j < 0 {
				return false
			}
			i += j
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return false
			}
			i += 2 + j + 2
		default:
			j := i
			for j < len(q) && 'a' <= q[j]|0x20 && q[j]|0x20 <= 'z' {
				j++
			}
			switch strings.ToUpper(q[i:j]) {
			case "SELECT", "VALUES", "TABLE", "SHOW":
				return true
			}
			return false
		}
	}
	return false
}

// scanPgx scans pgx rows into dest with the DB's sqlx mapper, as sqlx.Get (one) or
// sqlx.Select (all) scan *sql.Rows: db-tagged struct fields by column name, scalars
// and sql.Scanner types from a single column, and sql.ErrNoRows for Get without a row.
func scanPgx(m *reflectx.Mapper, rows pgx.Rows, dest any, one bool) error {
	v := reflect.ValueOf(dest)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return errors.New("clonesql: dest must be a non-nil pointer")
	}
	fds := rows.FieldDescriptions()
	cols := make([]string, len(fds))
	for i, fd := range fds {
		cols[i] = fd.Name
	}
	if one {
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return sql.ErrNoRows
		}
		base := reflectx.Deref(v.Type())
		if scannable(m, base) {
			if len(cols) > 1 {
				return fmt.Errorf("clonesql: scannable dest type %s with >1 columns (%d) in result", base.Kind(), len(cols))
			}
			return rows.Scan(dest)
		}
		fields, err := traversals(m, base, cols, dest)
		if err != nil {
			return err
		}
		values := make([]any, len(cols))
		fieldPointers(v, fields, values)
		return rows.Scan(values...)
	}
	direct := v.Elem()
	if direct.Kind() != reflect.Slice {
		return fmt.Errorf("clonesql: dest must be a pointer to a slice, not %T", dest)
	}
	direct.SetLen(0)
	isPtr := direct.Type().Elem().Kind() == reflect.Pointer
	base := reflectx.Deref(direct.Type().Elem())
	if scannable(m, base) {
		if len(cols) > 1 {
			return fmt.Errorf("clonesql: non-struct dest type %s with >1 columns (%d)", base.Kind(), len(cols))
		}
		for rows.Next() {
			vp := reflect.New(base)
			if err := rows.Scan(vp.Interface()); err != nil {
				return err
			}
			if isPtr {
				direct.Set(reflect.Append(direct, vp))
			} else {
				direct.Set(reflect.Append(direct, vp.Elem()))
			}
		}
		return rows.Err()
	}
	fields, err := traversals(m, base, cols, dest)
	if err != nil {
		return err
	}
	values := make([]any, len(cols))
	for rows.Next() {
		vp := reflect.New(base)
		fieldPointers(vp, fields, values)
		if err := rows.Scan(values...); err != nil {
			return err
		}
		if isPtr {
			direct.Set(reflect.Append(direct, vp))
		} else {
			direct.Set(reflect.Append(direct, vp.Elem()))
		}
	}
	return rows.Err()
}

var scannerType = reflect.TypeFor[sql.Scanner]()

// scannable is sqlx's rule: a type scanned whole from one column (a sql.Scanner, a
// non-struct, or a struct without mapped fields such as time.Time).
func scannable(m *reflectx.Mapper, t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(scannerType) || t.Kind() != reflect.Struct {
		return true
	}
	return len(m.TypeMap(t).Index) == 0
}

func traversals(m *reflectx.Mapper, base reflect.Type, cols []string, dest any) ([][]int, error) {
	fields := m.TraversalsByName(base, cols)
	for i, f := range fields {
		if len(f) == 0 {
			return nil, fmt.Errorf("clonesql: missing destination name %s in %T", cols[i], dest)
		}
	}
	return fields, nil
}

// fieldPointers fills values with pointers to the fields of the struct v points to
// (allocating nil embedded pointers on the way).
func fieldPointers(v reflect.Value, fields [][]int, values []any) {
	v = reflect.Indirect(v)
	for i, f := range fields {
		values[i] = reflectx.FieldByIndexes(v, f).Addr().Interface()
	}
}
