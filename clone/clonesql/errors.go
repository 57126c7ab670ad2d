package clonesql

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"syscall"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// tombstoneMessage is the text of the error the tombstone triggers raise.
const tombstoneMessage = "its data can no longer be written"

// ClassifyError wraps a database error in the SDK's error kinds. The driver's error stays
// reachable with errors.As (*pq.Error, *pgconn.PgError, *sqlite.Error); errors that
// already carry a kind are returned unchanged; nil stays nil.
//
//   - no rows: NotFound;
//   - a unique or foreign-key violation: Conflict;
//   - a row refused by row-level security: CloneMismatch;
//   - bad input the database refused (invalid text for a type, a value out of range, a
//     check or not-null constraint, a value too big): InvalidInput;
//   - a write refused because the clone is offboarding or offboarded: Suspended;
//   - the caller's context cancelled, or the statement cancelled on its request:
//     Canceled (no retry advice);
//   - a timeout (context deadline, statement or lock timeout), a lost or refused
//     connection, a server shutting down or out of resources, a busy or locked SQLite
//     database, a serialization failure or deadlock: Unavailable (503, retry later);
//   - everything else — a syntax error, an undefined table or column, a permission the
//     role lacks, an unexpected constraint, an internal server error: Internal (500, not
//     retryable: it is a bug or a misconfiguration, and retrying gives the same answer).
func ClassifyError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errs.KindOf(err) != errs.Unknown {
		return err
	}
	return errs.Wrap(classify(err), op, err, "")
}

// classifyStatement classifies the error of a statement the caller of DB or Tx wrote:
// as ClassifyError, except that a statement PostgreSQL cannot parse (syntax_error, which
// includes several statements in one and the SQLite-only syntax compile lets through) is
// the caller's InvalidInput, refused like any other bad statement text, not a server
// failure. The SDK's own statements go through ClassifyError, where a syntax error is a
// bug (Internal).
func classifyStatement(op string, err error) error {
	var ps sqlStater
	if errs.KindOf(err) == errs.Unknown && errors.As(err, &ps) && ps.SQLState() == "42601" {
		return errs.Wrap(errs.InvalidInput, op, err, "the database cannot parse the statement")
	}
	return ClassifyError(op, err)
}

// sqlStater is implemented by the PostgreSQL drivers' errors (*pq.Error and pgx's
// *pgconn.PgError): the five-character SQLSTATE code.
type sqlStater interface{ SQLState() string }

// classify returns the kind of an unclassified database error.
func classify(err error) errs.Kind {
	if errors.Is(err, sql.ErrNoRows) {
		return errs.NotFound
	}
	if k, ok := errs.ContextKind(err); ok {
		return k
	}
	// The tombstone triggers of migration 00010 refuse rows of an offboarding or
	// offboarded clone with this message (on both dialects).
	if strings.Contains(err.Error(), tombstoneMessage) {
		return errs.Suspended
	}
	var ps sqlStater
	if errors.As(err, &ps) {
		return postgresKind(ps.SQLState(), err.Error())
	}
	if code, ok := sqliteCode(err); ok {
		return sqliteKind(code)
	}
	if lostConnection(err) {
		return errs.Unavailable
	}
	return errs.Internal
}

// postgresKind classifies a PostgreSQL SQLSTATE (Appendix A of the PostgreSQL manual);
// text is the error's text, for the two codes that need it.
func postgresKind(code, text string) errs.Kind {
	switch code {
	case "23505", "23503": // unique_violation, foreign_key_violation
		return errs.Conflict
	case "23514", "23502": // check_violation, not_null_violation
		return errs.InvalidInput
	case "42501": // insufficient_privilege: RLS refusing a row, else a misconfigured role
		if strings.Contains(text, "row-level security") {
			return errs.CloneMismatch
		}
		return errs.Internal
	case "57014": // query_canceled: by statement_timeout, or on the client's request
		if strings.Contains(text, "timeout") {
			return errs.Unavailable
		}
		return errs.Canceled
	case "40001", "40P01", // serialization_failure, deadlock_detected
		"55P03",                            // lock_not_available (lock_timeout)
		"57P01", "57P02", "57P03", "57P05", // admin/crash shutdown, cannot connect now, idle session timeout
		"25006": // read_only_sql_transaction: a failover left us on a standby
		return errs.Unavailable
	}
	if len(code) == 5 {
		switch code[:2] {
		case "22": // data exception: invalid text representation, out of range, ...
			return errs.InvalidInput
		case "08", "53", "58": // connection exception, insufficient resources, system error
			return errs.Unavailable
		}
	}
	return errs.Internal
}

// sqliteCoder is implemented by modernc.org/sqlite's *sqlite.Error: the (extended)
// result code. The package is not imported here: importing it registers its driver.
type sqliteCoder interface{ Code() int }

// sqliteCode returns the result code of a modernc.org/sqlite error in err's chain.
func sqliteCode(err error) (int, bool) {
	var sc sqliteCoder
	if !errors.As(err, &sc) {
		return 0, false
	}
	t := reflect.TypeOf(sc)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.PkgPath() != "modernc.org/sqlite" {
		return 0, false
	}
	return sc.Code(), true
}

// SQLite result codes (https://www.sqlite.org/rescode.html), as modernc.org/sqlite/lib
// names them; TestSQLiteCodes holds them to the library's values.
const (
	sqliteInterrupt            = 9
	sqliteBusy                 = 5
	sqliteLocked               = 6
	sqliteIOErr                = 10
	sqliteFull                 = 13
	sqliteCantOpen             = 14
	sqliteNoMem                = 7
	sqliteProtocol             = 15
	sqliteTooBig               = 18
	sqliteConstraintUnique     = 2067
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintForeignKey = 787
	sqliteConstraintCheck      = 275
	sqliteConstraintNotNull    = 1299
	sqliteConstraintDatatype   = 3091
)

// sqliteKind classifies a SQLite (extended) result code.
func sqliteKind(code int) errs.Kind {
	switch code {
	case sqliteConstraintUnique, sqliteConstraintPrimaryKey, sqliteConstraintForeignKey:
		return errs.Conflict
	case sqliteConstraintCheck, sqliteConstraintNotNull, sqliteConstraintDatatype, sqliteTooBig:
		return errs.InvalidInput
	}
	switch code & 0xff { // the primary result code
	case sqliteInterrupt:
		return errs.Canceled
	case sqliteBusy, sqliteLocked, sqliteIOErr, sqliteFull, sqliteCantOpen, sqliteNoMem, sqliteProtocol:
		return errs.Unavailable
	}
	return errs.Internal // SQLITE_ERROR (syntax, no such column), other constraints, corruption, misuse
}

// errDBClosedText is the text of database/sql's (unexported) error for a closed *sql.DB:
// the process is shutting down, so the database is unavailable to this request.
const errDBClosedText = "sql: database is closed"

// lostConnection reports a connection that failed or was lost below the driver, or a
// pool that was closed.
func lostConnection(err error) bool {
	if strings.Contains(err.Error(), errDBClosedText) {
		return true
	}
	var ne net.Error
	var retry interface{ SafeToRetry() bool } // pgconn: the request never reached the server
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &ne) || (errors.As(err, &retry) && retry.SafeToRetry())
}
