package clonesql

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// tombstoneMessage is the text of the error the tombstone triggers raise.
const tombstoneMessage = "its data can no longer be written"

// ClassifyError wraps a database error in the SDK's error kinds: no rows as NotFound,
// unique and foreign-key violations as Conflict, a row-level security violation as
// CloneMismatch, bad input the database refused (invalid text for a type, a value out of
// range, a check constraint) and a statement PostgreSQL cannot parse (syntax_error,
// which includes several statements in one) as InvalidInput, a write refused because the clone is
// offboarding or offboarded as Suspended, a cancelled or expired context as
// Unavailable with the context error kept, and everything else as Unavailable. The
// driver's error stays reachable with errors.As (*pq.Error, *pgconn.PgError,
// *sqlite.Error). Errors that already carry a kind are returned unchanged.
func ClassifyError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errs.KindOf(err) != errs.Unknown {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return errs.Wrap(errs.NotFound, op, err, "")
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errs.Wrap(errs.Unavailable, op, err, "")
	}
	// The tombstone triggers of migration 00010 refuse rows of an offboarding or
	// offboarded clone with this message (on both dialects).
	if strings.Contains(err.Error(), tombstoneMessage) {
		return errs.Wrap(errs.Suspended, op, err, "the clone is being or has been offboarded")
	}
	var pe *pq.Error // lib/pq
	if errors.As(err, &pe) {
		return classifyPostgres(op, err, string(pe.Code), pe.Message)
	}
	var ge *pgconn.PgError // pgx
	if errors.As(err, &ge) {
		return classifyPostgres(op, err, ge.Code, ge.Message)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return errs.Wrap(errs.Conflict, op, err, "")
		case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL, sqlite3.SQLITE_TOOBIG:
			return errs.Wrap(errs.InvalidInput, op, err, "")
		}
		return errs.Wrap(errs.Unavailable, op, err, "")
	}
	return errs.Wrap(errs.Unavailable, op, err, "")
}

// classifyPostgres classifies a PostgreSQL server error by its SQLSTATE, whichever
// driver reported it.
func classifyPostgres(op string, err error, code, message string) error {
	switch {
	case code == "23505" || code == "23503":
		return errs.Wrap(errs.Conflict, op, err, "")
	case code == "42501" && strings.Contains(message, "row-level security"):
		return errs.Wrap(errs.CloneMismatch, op, err, "row-level security refused the row")
	case strings.HasPrefix(code, "22") || code == "23514" || code == "23502" || code == "42601":
		return errs.Wrap(errs.InvalidInput, op, err, "")
	}
	return errs.Wrap(errs.Unavailable, op, err, "")
}
