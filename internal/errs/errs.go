// Package errs is the SDK's shorthand for the error kinds of package clone, which
// defines them (clone.Kind, clone.Error and the clone.Err* sentinels): the other
// packages of cloneiso raise and test kinds through these names, and hosts use the
// public ones. There is one set of kinds, defined once in package clone and append-only;
// this package adds no kind of its own.
package errs

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
)

// Kind is clone.Kind.
type Kind = clone.Kind

// Error is clone.Error.
type Error = clone.Error

// The kinds, as defined by package clone.
const (
	Unknown            = clone.KindUnknown
	Unauthenticated    = clone.ErrUnauthenticated
	Forbidden          = clone.ErrForbidden
	NoCloneContext     = clone.ErrNoCloneContext
	InvalidID          = clone.ErrInvalidID
	CloneMismatch      = clone.ErrCloneMismatch
	NotFound           = clone.ErrNotFound
	InvalidInput       = clone.ErrInvalidInput
	Conflict           = clone.ErrConflict
	TooLarge           = clone.ErrTooLarge
	Unavailable        = clone.ErrUnavailable
	IsolationViolation = clone.ErrIsolationViolation
	Unsupported        = clone.ErrUnsupported
	Suspended          = clone.ErrSuspended
	Internal           = clone.ErrInternal
	Canceled           = clone.ErrCanceled
)

// New returns an *Error of kind k.
func New(k Kind, op, format string, args ...any) error {
	return &Error{Kind: k, Op: op, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error of kind k around cause. It returns nil if cause is nil.
func Wrap(k Kind, op string, cause error, format string, args ...any) error {
	if cause == nil {
		return nil
	}
	return &Error{Kind: k, Op: op, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// KindOf is clone.KindOf.
func KindOf(err error) Kind { return clone.KindOf(err) }

// ContextKind classifies an error that ended because a context did: Canceled for
// context.Canceled (the caller gave up; no retry advice), Unavailable for
// context.DeadlineExceeded (a timeout; retry later). ok is false for any other error.
// Every store applies it to errors its backend did not classify, so cancellation is
// reported the same way everywhere.
func ContextKind(err error) (k Kind, ok bool) {
	switch {
	case errors.Is(err, context.Canceled):
		return Canceled, true
	case errors.Is(err, context.DeadlineExceeded):
		return Unavailable, true
	}
	return Unknown, false
}
