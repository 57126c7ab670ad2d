package clone

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error of cloneiso. Every error a cloneiso package returns has
// exactly one Kind, read with [KindOf] (as gocloud.dev's gcerrors.Code) or tested with
// errors.Is against the Err* constants, which are the kinds themselves:
//
//	switch clone.KindOf(err) {
//	case clone.ErrNotFound:
//		// ...
//	case clone.ErrUnavailable:
//		// retry later
//	}
//
//	if errors.Is(err, clone.ErrNotFound) { ... }
//
// The set of kinds is append-only: a released kind keeps its value and meaning, and new
// kinds are only ever added at the end. A Kind is itself an error (like syscall.Errno),
// which is what makes errors.Is work.
type Kind int

// KindUnknown is the Kind of a nil error and of an error that carries no kind (one not
// raised or classified by cloneiso). It maps to HTTP 500. It is not a sentinel: test
// for it with KindOf, not errors.Is.
const KindUnknown Kind = 0

// The error kinds, one sentinel each. Append only; never renumber.
const (
	ErrUnauthenticated    Kind = 1  // 401: no or invalid credentials
	ErrForbidden          Kind = 2  // 403: authenticated but not allowed
	ErrNoCloneContext     Kind = 3  // 401: a data operation without a CloneContext (clonehttp.WriteError answers 500: in a handler it is a host wiring bug)
	ErrInvalidID          Kind = 4  // 400: malformed, nil or non-canonical ID
	ErrCloneMismatch      Kind = 5  // 403: request IDs differ from the CloneContext
	ErrNotFound           Kind = 6  // 404: missing, or another clone's
	ErrInvalidInput       Kind = 7  // 400: other bad input
	ErrConflict           Kind = 8  // 409: duplicate or concurrent change
	ErrTooLarge           Kind = 9  // 413: over a documented size limit
	ErrUnavailable        Kind = 10 // 503: a backing store is down, throttling, timed out or lost its connection; retry later
	ErrIsolationViolation Kind = 11 // 500: a store returned another clone's data; the call failed closed
	ErrUnsupported        Kind = 12 // 415: unsupported operation or content type
	ErrSuspended          Kind = 13 // 403: clone or tenant suspended or offboarded
	ErrInternal           Kind = 14 // 500: a bug or misconfiguration (an unexpected database error, an SQL syntax error, an unknown column); retrying does not help
	ErrCanceled           Kind = 15 // 499: the caller cancelled the operation (its context ended); no retry advice, logged as client-closed
)

// StatusClientClosedRequest is the HTTP status of [ErrCanceled]: the non-standard 499
// "Client Closed Request" that nginx and most proxies log when the client went away
// before the answer. The client rarely sees it; it keeps cancellations apart from
// server failures (5xx) and client mistakes (other 4xx) in access logs and metrics.
const StatusClientClosedRequest = 499

var kindNames = [...]string{
	KindUnknown:           "unknown error",
	ErrUnauthenticated:    "unauthenticated",
	ErrForbidden:          "forbidden",
	ErrNoCloneContext:     "no clone context",
	ErrInvalidID:          "invalid ID",
	ErrCloneMismatch:      "clone mismatch",
	ErrNotFound:           "not found",
	ErrInvalidInput:       "invalid input",
	ErrConflict:           "conflict",
	ErrTooLarge:           "too large",
	ErrUnavailable:        "unavailable",
	ErrIsolationViolation: "isolation violation",
	ErrUnsupported:        "unsupported",
	ErrSuspended:          "suspended",
	ErrInternal:           "internal error",
	ErrCanceled:           "canceled",
}

// String returns the kind's name, e.g. "not found".
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Error makes a Kind usable as a sentinel error: errors.Is(err, ErrNotFound) is true for
// every *Error of kind ErrNotFound.
func (k Kind) Error() string { return "cloneiso: " + k.String() }

// HTTPStatus is the HTTP status code that represents the kind: 401, 403, 404, 400, 409,
// 413, 415, 499 ([StatusClientClosedRequest]) or 503, and 500 for [KindUnknown],
// [ErrInternal] and [ErrIsolationViolation].
//
// [ErrNoCloneContext] is 401 here (the operation has no identity to act for), but
// clonehttp.WriteError answers it with 500 and a log record naming the missing
// middleware: clonehttp.Middleware refuses a request it cannot bind to a clone with 401
// before any handler runs, so a handler that finds no clone context is a wiring bug of
// the host, not a client error.
func (k Kind) HTTPStatus() int {
	switch k {
	case ErrUnauthenticated, ErrNoCloneContext:
		return http.StatusUnauthorized
	case ErrForbidden, ErrCloneMismatch, ErrSuspended:
		return http.StatusForbidden
	case ErrNotFound:
		return http.StatusNotFound
	case ErrInvalidID, ErrInvalidInput:
		return http.StatusBadRequest
	case ErrConflict:
		return http.StatusConflict
	case ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case ErrUnsupported:
		return http.StatusUnsupportedMediaType
	case ErrUnavailable:
		return http.StatusServiceUnavailable
	case ErrCanceled:
		return StatusClientClosedRequest
	default:
		return http.StatusInternalServerError
	}
}

// Retryable reports whether the same call may succeed if retried later unchanged: true
// only for [ErrUnavailable] (a store down, throttling, a timeout, a lost connection).
// Internal errors, cancellations and every client error are not retryable.
func (k Kind) Retryable() bool { return k == ErrUnavailable }

// Error is the concrete type of the errors cloneiso returns. Read it with errors.As:
//
//	var e *clone.Error
//	if errors.As(err, &e) {
//		log.Print(e.Op, e.Kind, e.Msg)
//	}
//
// Msg is safe to show to the caller (it never contains another clone's data or a
// server's internals); Err, the cause (a *pq.Error, an S3 or Pinecone error, ...), is
// not, and stays reachable with errors.As. errors.Is(err, k) is true for the error's
// Kind k.
type Error struct {
	Kind Kind   // the classification; KindUnknown if none
	Op   string // the operation that failed, e.g. "vectorstore.Query"
	Msg  string // a message safe to show to the caller; may be empty
	Err  error  // the underlying cause, if any
}

// Error implements error: "cloneiso: <op>: <kind>: <msg>: <cause>", without the empty
// parts.
func (e *Error) Error() string {
	s := "cloneiso"
	if e.Op != "" {
		s += ": " + e.Op
	}
	s += ": " + e.Kind.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's Kind, so errors.Is(err, clone.ErrNotFound) works.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// KindOf returns the Kind of err: that of the first *Error or Kind in err's chain, or
// [KindUnknown] for nil and for errors that carry no kind. A bare context.Canceled or
// context.DeadlineExceeded has no kind (the SDK's stores classify them as [ErrCanceled]
// and [ErrUnavailable]).
func KindOf(err error) Kind {
	if err == nil {
		return KindUnknown
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var k Kind
	if errors.As(err, &k) {
		return k
	}
	return KindUnknown
}

// HTTPStatus maps err to the HTTP status code a handler should answer with:
// KindOf(err).HTTPStatus(), and 200 for nil. Bad input never maps to 500; errors without
// a kind do.
func HTTPStatus(err error) int {
	if err == nil {
		return http.StatusOK
	}
	return KindOf(err).HTTPStatus()
}

// Errorf returns an error of kind whose message, formatted from format and args, is safe
// to show to the caller. Hosts use it for their own errors so that errors.Is,
// [HTTPStatus] and clonehttp.WriteError treat them like the SDK's:
//
//	return clone.Errorf(clone.ErrInvalidInput, "title longer than %d bytes", max)
func Errorf(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// newError and wrapError are this package's own constructors (internal/errs has the
// same for the other packages).
func newError(k Kind, op, format string, args ...any) error {
	return &Error{Kind: k, Op: op, Msg: fmt.Sprintf(format, args...)}
}

func wrapError(k Kind, op string, cause error, format string, args ...any) error {
	if cause == nil {
		return nil
	}
	return &Error{Kind: k, Op: op, Msg: fmt.Sprintf(format, args...), Err: cause}
}
