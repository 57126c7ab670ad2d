package clonesql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/reflectx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/internal/errs"
)

// Names of the PostgreSQL settings the row-level security policies read. They are set
// transaction-locally (set_config(name, value, true)) at the start of every scoped
// transaction and vanish at its end.
const (
	SettingTenantID = "cloneiso.tenant_id"
	SettingCloneID  = "cloneiso.clone_id"
)

// rollbackTimeout bounds the ROLLBACK sent after a failed or cancelled operation; it
// runs on a context detached from the caller's, which may already be done.
const rollbackTimeout = 5 * time.Second

// DB runs clone-scoped statements on a *sql.DB.
//
// Every statement uses named parameters (:name) and must reference both :tenant_id and
// :clone_id; their values are bound from the CloneContext only. A statement that does
// not reference both is refused before it reaches the database, and so is an argument
// whose tenant_id or clone_id differs from the context. Because that check is only as
// good as the database's agreement with it on where parameters, strings, comments and
// statements are, text the dialects read differently is refused with
// clone.ErrInvalidInput: NUL bytes, a second statement (a final ';' is fine), nested
// block comments, parameters other than :name (?, $1, and SQLite's @name, #name,
// $name), SQLite's [identifier] quoting (use "double quotes") and '::' casts (use CAST).
//
// On PostgreSQL every operation runs in a transaction on one connection that sets both
// settings transaction-locally (set_config(name, value, true)) before the statement; a
// failed or cancelled operation is rolled back before the connection returns to the
// pool. The cost depends on the driver:
//
//   - pgx (github.com/jackc/pgx/v5/stdlib, e.g. [OpenPgx]; recommended): one round
//     trip. The settings and the statement go as one pipeline with a single Sync, which
//     PostgreSQL runs as one implicit transaction (see pgx.go). A write whose returned
//     rows carry tenant_id or clone_id (INSERT/UPDATE ... RETURNING into such a struct)
//     takes two: its transaction stays open until the rows are re-checked, so that a
//     row of another clone rolls it back. In [DB.WithTx] the opening travels with the
//     first statement; each later statement and the COMMIT take one more.
//   - lib/pq ([OpenPostgres]): three round trips (BEGIN and the settings in one
//     simple-protocol message; the statement; COMMIT) with binary_parameters=yes, which
//     OpenPostgres sets, and four without.
//
// On SQLite a single statement runs directly (one call) and [DB.WithTx] uses a BEGIN
// IMMEDIATE transaction.
//
// Rows read into structs that carry tenant_id or clone_id columns are
// re-checked against the context: a mismatch fails the call with
// clone.ErrIsolationViolation, returns no rows, and is audited.
//
// A DB is safe for concurrent use.
type DB struct {
	x       *sqlx.DB
	dialect Dialect
	pgx     bool // pgx's database/sql driver: pipelined scope (pgx.go)
	sink    audit.Sink
}

// Options configure [New]; nil means the defaults.
type Options struct {
	// Audit receives one event per denial; nil means audit.DefaultSink (slog.Default()).
	// A sink failure never changes the denial; it is logged with the whole event and
	// counted (audit.Emit). Use audit.Discard to record nothing.
	Audit audit.Sink
}

// New returns a DB on db, whose dialect and driver (PostgreSQL through pgx's
// database/sql driver or lib/pq, or SQLite through modernc.org/sqlite) are detected
// from its driver.
func New(db *sql.DB, opts *Options) (*DB, error) {
	x, d, err := wrap(db, "clonesql.New")
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &Options{}
	}
	return &DB{x: x, dialect: d, pgx: d == Postgres && usesPgx(db), sink: opts.Audit}, nil
}

// Dialect returns the database's dialect.
func (d *DB) Dialect() Dialect { return d.dialect }

// Audit returns the sink denials are recorded to (nil if none).
func (d *DB) Audit() audit.Sink { return d.sink }

// Querier runs statements for the clone each call names. It is implemented by *DB, and
// by [Tx.Querier] for a transaction, so functions that write (package records) can take
// either and hosts can compose cloneiso's writes with their own in one transaction.
type Querier interface {
	// Select runs a query and scans every row into dest, a pointer to a slice.
	Select(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error
	// Get runs a query and scans its first row into dest; no row is clone.ErrNotFound.
	Get(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error
	// Exec runs a statement that returns no rows.
	Exec(ctx context.Context, cc clone.CloneContext, query string, arg any) (sql.Result, error)
}

var (
	_ Querier = (*DB)(nil)
	_ Querier = txQuerier{}
)

// Select runs query (named parameters; arg is a struct, a map[string]any or nil) for
// clone cc and scans the rows into dest, a pointer to a slice of structs or scalars.
func (d *DB) Select(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error {
	const op = "clonesql.Select"
	return d.single(ctx, cc, op, func(tx *Tx) error { return tx.Select(ctx, dest, query, arg) })
}

// Get is [DB.Select] for one row, scanned into dest; no row is clone.ErrNotFound.
func (d *DB) Get(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error {
	const op = "clonesql.Get"
	return d.single(ctx, cc, op, func(tx *Tx) error { return tx.Get(ctx, dest, query, arg) })
}

// Exec runs a statement that returns no rows for clone cc.
func (d *DB) Exec(ctx context.Context, cc clone.CloneContext, query string, arg any) (sql.Result, error) {
	const op = "clonesql.Exec"
	var res sql.Result
	err := d.single(ctx, cc, op, func(tx *Tx) error {
		var err error
		res, err = tx.Exec(ctx, query, arg)
		return err
	})
	return res, err
}

// single runs one statement: in a scoped transaction on PostgreSQL, directly on SQLite.
func (d *DB) single(ctx context.Context, cc clone.CloneContext, op string, fn func(*Tx) error) error {
	if err := d.validate(ctx, cc, op); err != nil {
		return err
	}
	if d.dialect == SQLite {
		return fn(&Tx{db: d, cc: cc, q: d.x})
	}
	if d.pgx {
		return d.withPgx(ctx, cc, op, true, fn)
	}
	return d.withPostgresTx(ctx, cc, op, fn)
}

// WithTx runs fn in one transaction scoped to clone cc: it commits if fn returns nil and
// rolls back if fn returns an error or panics (the panic is re-raised). Statements in fn
// go through tx and may only name cc.
func (d *DB) WithTx(ctx context.Context, cc clone.CloneContext, fn func(tx *Tx) error) error {
	const op = "clonesql.WithTx"
	if err := d.validate(ctx, cc, op); err != nil {
		return err
	}
	if d.dialect == Postgres && d.pgx {
		return d.withPgx(ctx, cc, op, false, fn)
	}
	if d.dialect == Postgres {
		return d.withPostgresTx(ctx, cc, op, fn)
	}
	stx, err := d.x.BeginTxx(ctx, nil)
	if err != nil {
		return ClassifyError(op, err)
	}
	tx := &Tx{db: d, cc: cc, q: stx, deferAudit: true}
	committed := false
	defer func() {
		if !committed {
			stx.Rollback()
		}
		tx.flushAudit(ctx) // after the write lock is released: a SQL sink needs it
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if tx.failed != nil {
		return errs.Wrap(errs.Conflict, op, tx.failed, "a statement of the transaction failed; rolled back")
	}
	if err := stx.Commit(); err != nil {
		return ClassifyError(op, err)
	}
	committed = true
	return nil
}

// Bind scopes a transaction the host opened itself to clone cc, so cloneiso's writes
// join the host's own: on PostgreSQL it sets both row-level security settings
// transaction-locally in tx (one round trip), which pins the rest of tx to cc. The host
// still commits or rolls back tx, which must be a transaction on the *sql.DB the DB
// was created on.
func (d *DB) Bind(ctx context.Context, tx *sql.Tx, cc clone.CloneContext) (*Tx, error) {
	const op = "clonesql.Bind"
	if err := d.validate(ctx, cc, op); err != nil {
		return nil, err
	}
	if d.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, settingsSQL(cc, false)); err != nil {
			return nil, ClassifyError(op, err)
		}
	}
	return &Tx{db: d, cc: cc, q: d.wrapTx(tx)}, nil
}

// wrapTx gives tx the DB's column mapper, so that rows scan as on the DB itself.
func (d *DB) wrapTx(tx *sql.Tx) *sqlx.Tx { return &sqlx.Tx{Tx: tx, Mapper: d.x.Mapper} }

// settingsSQL sets both settings transaction-locally, optionally opening the
// transaction in the same simple-protocol message. The values are validated UUIDs
// (quoted anyway), so no parameter binding (and no extra round trip) is needed.
func settingsSQL(cc clone.CloneContext, begin bool) string {
	s := "SELECT set_config('" + SettingTenantID + "', " + pq.QuoteLiteral(cc.TenantID().String()) + ", true), " +
		"set_config('" + SettingCloneID + "', " + pq.QuoteLiteral(cc.CloneID().String()) + ", true)"
	if begin {
		return "BEGIN; " + s
	}
	return s
}

func (d *DB) withPostgresTx(ctx context.Context, cc clone.CloneContext, op string, fn func(*Tx) error) (err error) {
	conn, err := d.begin(ctx, cc, op)
	if err != nil {
		return err
	}
	open := true // a transaction is open on conn
	var tx *Tx
	defer func() {
		if open {
			rollback(ctx, conn)
		}
		conn.Close()
		tx.flushAudit(ctx) // after the connection is back: the sink may need one
		if p := recover(); p != nil {
			panic(p)
		}
	}()
	tx = &Tx{db: d, cc: cc, q: conn, deferAudit: true}
	if err := fn(tx); err != nil {
		return err
	}
	if tx.failed != nil {
		return errs.Wrap(errs.Conflict, op, tx.failed, "a statement of the transaction failed; rolled back")
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return ClassifyError(op, err)
	}
	open = false
	return nil
}

// maxBadConnRetries is how many times a scoped transaction is retried on another pooled
// connection when opening it fails with driver.ErrBadConn, as database/sql itself
// retries plain calls.
const maxBadConnRetries = 2

// begin takes a connection and opens a scoped transaction on it in one message. The
// driver returns driver.ErrBadConn only when the server cannot have run the message (a
// pooled connection the server closed while idle: failover, pg_terminate_backend,
// idle_session_timeout), so that case is retried on another connection, and the dead
// one is discarded. On success the transaction is open on the returned connection.
func (d *DB) begin(ctx context.Context, cc clone.CloneContext, op string) (*sqlx.Conn, error) {
	for attempt := 0; ; attempt++ {
		conn, err := d.x.Connx(ctx)
		if err != nil {
			return nil, ClassifyError(op, err)
		}
		_, err = conn.ExecContext(ctx, settingsSQL(cc, true))
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, driver.ErrBadConn) {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // discard it
			conn.Close()
			if attempt < maxBadConnRetries && ctx.Err() == nil {
				continue
			}
			return nil, ClassifyError(op, err)
		}
		// The message may have opened the transaction before failing.
		rollback(ctx, conn)
		conn.Close()
		return nil, ClassifyError(op, err)
	}
}

// rollback ends any transaction open on conn before the connection returns to the pool,
// even if ctx is done; if that fails the connection's state is unknown and it is
// discarded instead.
func rollback(ctx context.Context, conn *sqlx.Conn) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	if _, err := conn.ExecContext(rctx, "ROLLBACK"); err != nil {
		conn.Raw(func(any) error { return driver.ErrBadConn })
	}
}

// validate refuses an operation without a valid clone context, auditing the attempt.
func (d *DB) validate(ctx context.Context, cc clone.CloneContext, op string) error {
	if err := cc.Validate(op); err != nil {
		d.deny(ctx, cc, op, audit.Denied, "no clone context", nil)
		return err
	}
	return nil
}

func (d *DB) deny(ctx context.Context, cc clone.CloneContext, op string, outcome audit.Outcome, reason string, detail map[string]string) {
	audit.Emit(ctx, d.sink, denial(cc, op, outcome, reason, detail))
}

func denial(cc clone.CloneContext, op string, outcome audit.Outcome, reason string, detail map[string]string) audit.Event {
	ev := audit.Event{Action: op, Outcome: outcome, Reason: reason, Detail: detail}
	if cc.Valid() {
		ev.Actor, ev.TenantID, ev.CloneID = cc.Principal().Subject, cc.TenantID(), cc.CloneID()
	}
	return ev
}

// queryExecer is what a statement runs on: an *sqlx.Conn (PostgreSQL), an *sqlx.DB
// (SQLite, single statements) or an *sqlx.Tx.
type queryExecer interface {
	sqlx.QueryerContext
	sqlx.ExecerContext
}

// Tx is a transaction scoped to one clone. Get one from [DB.WithTx] or [DB.Bind]. Like
// the transaction underneath, a Tx is used by one goroutine at a time.
type Tx struct {
	db     *DB
	cc     clone.CloneContext
	q      queryExecer // nil on the pgx path
	pg     *pgxSession // the pgx path (pgx.go); nil otherwise
	failed error       // the first statement error; the transaction cannot commit

	// Audit events raised inside a transaction the DB opened are held until it has
	// ended and released its connection: a SQL sink writing meanwhile would wait for
	// the transaction's write lock (SQLite) or for a free connection (a pool of one).
	deferAudit bool
	pending    []audit.Event
}

// deny records a denial raised inside the transaction, or holds it until the end.
func (tx *Tx) deny(ctx context.Context, cc clone.CloneContext, op string, outcome audit.Outcome, reason string, detail map[string]string) {
	ev := denial(cc, op, outcome, reason, detail)
	if !tx.deferAudit {
		audit.Emit(ctx, tx.db.sink, ev)
		return
	}
	ev.Time = time.Now().UTC()
	ev.RequestID = audit.RequestIDFrom(ctx)
	tx.pending = append(tx.pending, ev)
}

func (tx *Tx) flushAudit(ctx context.Context) {
	if tx == nil {
		return
	}
	for _, ev := range tx.pending {
		audit.Emit(ctx, tx.db.sink, ev)
	}
	tx.pending = nil
}

// Dialect returns the dialect of the transaction's database.
func (tx *Tx) Dialect() Dialect { return tx.db.dialect }

// Audit returns the sink for events raised by code running inside the transaction (nil
// if the DB has none). In a transaction opened by [DB.WithTx] events are held and
// written to the DB's sink when the transaction has ended and released its connection
// (a SQL sink writing meanwhile would wait for the transaction's own write lock on
// SQLite, or for a free connection in a pool of one); in a host transaction scoped with
// [DB.Bind] they are written at once.
func (tx *Tx) Audit() audit.Sink {
	if tx.db.sink == nil {
		return nil
	}
	if !tx.deferAudit {
		return tx.db.sink
	}
	return audit.SinkFunc(func(_ context.Context, ev audit.Event) error {
		tx.pending = append(tx.pending, ev)
		return nil
	})
}

// CloneContext returns the clone the transaction is scoped to.
func (tx *Tx) CloneContext() clone.CloneContext { return tx.cc }

// Querier returns the transaction as a [Querier], for functions that take one (package
// records): each call must name the transaction's own clone; another clone is refused
// with clone.ErrCloneMismatch, and audited.
func (tx *Tx) Querier() Querier { return txQuerier{tx} }

type txQuerier struct{ tx *Tx }

func (q txQuerier) Select(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error {
	if err := q.tx.same(ctx, cc, "clonesql.Select"); err != nil {
		return err
	}
	return q.tx.Select(ctx, dest, query, arg)
}

func (q txQuerier) Get(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error {
	if err := q.tx.same(ctx, cc, "clonesql.Get"); err != nil {
		return err
	}
	return q.tx.Get(ctx, dest, query, arg)
}

func (q txQuerier) Exec(ctx context.Context, cc clone.CloneContext, query string, arg any) (sql.Result, error) {
	if err := q.tx.same(ctx, cc, "clonesql.Exec"); err != nil {
		return nil, err
	}
	return q.tx.Exec(ctx, query, arg)
}

// Audit reports the transaction's sink, as [Tx.Audit].
func (q txQuerier) Audit() audit.Sink { return q.tx.Audit() }

// Tx returns the transaction.
func (q txQuerier) Tx() *Tx { return q.tx }

// same refuses cc unless it is the transaction's clone, auditing the attempt.
func (tx *Tx) same(ctx context.Context, cc clone.CloneContext, op string) error {
	if err := cc.Validate(op); err != nil {
		tx.deny(ctx, cc, op, audit.Denied, "no clone context", nil)
		return err
	}
	if !cc.Same(tx.cc) {
		tx.deny(ctx, tx.cc, op, audit.Denied, "statement for another clone inside a scoped transaction",
			map[string]string{"target_tenant_id": cc.TenantID().String(), "target_clone_id": cc.CloneID().String()})
		return errs.New(errs.CloneMismatch, op, "transaction is scoped to another clone")
	}
	return nil
}

// Select is [DB.Select] inside the transaction, for the transaction's clone.
func (tx *Tx) Select(ctx context.Context, dest any, query string, arg any) error {
	const op = "clonesql.Select"
	q, args, err := tx.prepare(ctx, op, query, arg)
	if err != nil {
		return err
	}
	if tx.pg != nil {
		_, err = tx.pg.run(ctx, q, args, tx.mustCheckBeforeCommit(q, dest), func(r pgx.Rows) error { return scanPgx(tx.db.x.Mapper, r, dest, false) })
	} else {
		err = sqlx.SelectContext(ctx, tx.q, dest, q, args...)
	}
	if err != nil {
		return tx.fail(op, err)
	}
	return tx.recheck(ctx, tx.cc, op, dest)
}

// Get is [DB.Get] inside the transaction, for the transaction's clone.
func (tx *Tx) Get(ctx context.Context, dest any, query string, arg any) error {
	const op = "clonesql.Get"
	q, args, err := tx.prepare(ctx, op, query, arg)
	if err != nil {
		return err
	}
	if tx.pg != nil {
		_, err = tx.pg.run(ctx, q, args, tx.mustCheckBeforeCommit(q, dest), func(r pgx.Rows) error { return scanPgx(tx.db.x.Mapper, r, dest, true) })
	} else {
		err = sqlx.GetContext(ctx, tx.q, dest, q, args...)
	}
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return errs.New(errs.NotFound, op, "no row")
		}
		return tx.fail(op, err)
	}
	return tx.recheck(ctx, tx.cc, op, dest)
}

// Exec is [DB.Exec] inside the transaction, for the transaction's clone.
func (tx *Tx) Exec(ctx context.Context, query string, arg any) (sql.Result, error) {
	const op = "clonesql.Exec"
	q, args, err := tx.prepare(ctx, op, query, arg)
	if err != nil {
		return nil, err
	}
	if tx.pg != nil {
		tag, err := tx.pg.run(ctx, q, args, false, nil)
		if err != nil {
			return nil, tx.fail(op, err)
		}
		return pgxResult(tag.RowsAffected()), nil
	}
	res, err := tx.q.ExecContext(ctx, q, args...)
	if err != nil {
		return nil, tx.fail(op, err)
	}
	return res, nil
}

func (tx *Tx) fail(op string, err error) error {
	if tx.failed == nil {
		tx.failed = err
	}
	return classifyStatement(op, err)
}

// prepare compiles the statement and binds its arguments for the transaction's clone.
func (tx *Tx) prepare(ctx context.Context, op, query string, arg any) (string, []any, error) {
	cc := tx.cc
	c, err := compile(tx.db.dialect, query)
	if err != nil {
		tx.deny(ctx, cc, op, audit.Denied, "refused statement", nil)
		return "", nil, err
	}
	args, err := tx.bindArgs(ctx, cc, op, c, arg)
	if err != nil {
		return "", nil, err
	}
	return c.query, args, nil
}

// bindArgs returns the positional arguments of c: tenant_id and clone_id from cc, the
// rest from arg (a struct or pointer to one, a map[string]any, or nil).
func (tx *Tx) bindArgs(ctx context.Context, cc clone.CloneContext, op string, c *compiled, arg any) ([]any, error) {
	d := tx.db
	var (
		m  map[string]any
		sv reflect.Value
	)
	switch a := arg.(type) {
	case nil:
	case map[string]any:
		m = a
	default:
		sv = reflect.Indirect(reflect.ValueOf(arg))
		if sv.Kind() != reflect.Struct {
			return nil, errs.New(errs.InvalidInput, op, "argument must be a struct, a map[string]any or nil, not %T", arg)
		}
	}
	lookup := func(name string) (any, bool) {
		if m != nil {
			v, ok := m[name]
			return v, ok
		}
		if sv.IsValid() {
			f := d.x.Mapper.FieldByName(sv, name)
			if f.IsValid() {
				return f.Interface(), true
			}
		}
		return nil, false
	}
	// Scope values supplied by the caller must agree with the context.
	for _, p := range []struct {
		name string
		want uuid.UUID
	}{{ParamTenantID, cc.TenantID()}, {ParamCloneID, cc.CloneID()}} {
		v, ok := lookup(p.name)
		if !ok {
			continue
		}
		got, zero, err := asUUID(v)
		if err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "argument %s", p.name)
		}
		if !zero && got != p.want {
			tx.deny(ctx, cc, op, audit.Denied, "argument names another clone", map[string]string{"param": p.name, "value": got.String()})
			return nil, errs.New(errs.CloneMismatch, op, "argument %s differs from the clone context", p.name)
		}
	}
	args := make([]any, len(c.names))
	for i, name := range c.names {
		switch name {
		case ParamTenantID:
			args[i] = cc.TenantID()
		case ParamCloneID:
			args[i] = cc.CloneID()
		default:
			v, ok := lookup(name)
			if !ok {
				return nil, errs.New(errs.InvalidInput, op, "no value for parameter :%s", name)
			}
			args[i] = v
		}
	}
	return args, nil
}

// asUUID reads a caller-supplied tenant or clone ID; zero reports the unset value.
func asUUID(v any) (id uuid.UUID, zero bool, err error) {
	switch x := v.(type) {
	case nil:
		return uuid.Nil, true, nil
	case uuid.UUID:
		return x, x == uuid.Nil, nil
	case *uuid.UUID:
		if x == nil {
			return uuid.Nil, true, nil
		}
		return *x, *x == uuid.Nil, nil
	case uuid.NullUUID:
		return x.UUID, !x.Valid || x.UUID == uuid.Nil, nil
	case string:
		if x == "" {
			return uuid.Nil, true, nil
		}
		id, err := clone.ParseID(x)
		return id, false, err
	}
	return uuid.Nil, false, errs.New(errs.InvalidInput, "clonesql", "unsupported type %T for an ID", v)
}

// recheck verifies that every row scanned into dest that carries tenant_id or clone_id
// belongs to cc. On a mismatch it clears dest, audits a violation and fails.
func (tx *Tx) recheck(ctx context.Context, cc clone.CloneContext, op string, dest any) error {
	checks := tx.scopeChecks(cc, dest)
	if len(checks) == 0 {
		return nil
	}
	e := reflect.ValueOf(dest).Elem()
	bad := false
	if e.Kind() == reflect.Slice {
		for i := 0; i < e.Len() && !bad; i++ {
			bad = !rowBelongs(e.Index(i), checks)
		}
	} else {
		bad = !rowBelongs(e, checks)
	}
	if !bad {
		return nil
	}
	e.Set(reflect.Zero(e.Type()))
	tx.deny(ctx, cc, op, audit.Violation, "a row of another clone came back from the database", nil)
	return errs.New(errs.IsolationViolation, op, "the database returned a row of another clone; nothing was returned")
}

// scopeChecks locates the scope columns of dest's row type (a struct, a slice of
// structs, or pointers to them) once per call, not once per row; none for scalars.
func (tx *Tx) scopeChecks(cc clone.CloneContext, dest any) []scopeCheck {
	v := reflect.ValueOf(dest)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	rowType := v.Elem().Type()
	if rowType.Kind() == reflect.Slice {
		rowType = rowType.Elem()
	}
	for rowType.Kind() == reflect.Pointer {
		rowType = rowType.Elem()
	}
	if rowType.Kind() != reflect.Struct {
		return nil // scalars carry no scope
	}
	sm := tx.db.x.Mapper.TypeMap(rowType)
	var checks []scopeCheck
	for _, p := range []struct {
		name string
		want uuid.UUID
	}{{ParamTenantID, cc.TenantID()}, {ParamCloneID, cc.CloneID()}} {
		if fi, ok := sm.Names[p.name]; ok {
			checks = append(checks, scopeCheck{index: fi.Index, want: p.want})
		}
	}
	return checks
}

// mustCheckBeforeCommit reports whether a single operation on the pgx path must keep
// its transaction open until the returned rows are re-checked: a statement that writes
// and returns rows carrying scope columns. Its effect must be rolled back if a row of
// another clone comes back, so it costs a second round trip (COMMIT after the check);
// reads, and writes without checked rows, commit within their one round trip.
func (tx *Tx) mustCheckBeforeCommit(query string, dest any) bool {
	return !readOnly(query) && len(tx.scopeChecks(tx.cc, dest)) > 0
}

type scopeCheck struct {
	index []int
	want  uuid.UUID
}

// rowBelongs reports whether a scanned struct row carries the wanted scope IDs.
func rowBelongs(row reflect.Value, checks []scopeCheck) bool {
	for row.Kind() == reflect.Pointer {
		if row.IsNil() {
			return true
		}
		row = row.Elem()
	}
	for _, c := range checks {
		f := reflectx.FieldByIndexesReadOnly(row, c.index)
		var got uuid.UUID
		switch {
		case f.Type() == uuidType && f.CanAddr():
			got = *(f.Addr().Interface().(*uuid.UUID)) // no allocation on the hot path
		default:
			switch x := f.Interface().(type) {
			case uuid.UUID:
				got = x
			case *uuid.UUID:
				if x != nil {
					got = *x
				}
			case uuid.NullUUID:
				got = x.UUID
			case string:
				got, _ = uuid.Parse(strings.TrimSpace(x))
			default:
				return false // a scope column we cannot read is not proof of ownership
			}
		}
		if got != c.want {
			return false
		}
	}
	return true
}

var uuidType = reflect.TypeFor[uuid.UUID]()
