// Package errs defines the error kinds shared by every package of cloneiso.
//
// The set of kinds is append-only: a kind, once released, keeps its value and meaning.
// Public packages re-export the kinds as sentinel errors (see package clone), so callers
// test them with errors.Is and reach vendor errors underneath with errors.As.
package errs

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error. The zero Kind is Unknown.
type Kind int

// The kinds. Append only; never renumber.
const (
	Unknown            Kind = iota // not classified; maps to 500
	Unauthenticated                // no or invalid credentials; 401
	Forbidden                      // authenticated but not allowed; 403
	NoCloneContext                 // a data operation without a CloneContext; 401
	InvalidID                      // malformed, nil or non-canonical ID; 400
	CloneMismatch                  // an ID in the request differs from the CloneContext; 403
	NotFound                       // missing, or owned by another clone; 404
	InvalidInput                   // any other bad input; 400
	Conflict                       // state conflict (duplicate, version race); 409
	TooLarge                       // payload over a documented limit; 413
	Unavailable                    // a backing store is down or throttling; 503
	IsolationViolation             // a store returned data of another clone; fails closed; 500
	Unsupported                    // operation or content type not supported; 415/501
	Suspended                      // the clone or tenant is suspended or offboarded; 403
)

var kindNames = [...]string{
	Unknown:            "unknown error",
	Unauthenticated:    "unauthenticated",
	Forbidden:          "forbidden",
	NoCloneContext:     "no clone context",
	InvalidID:          "invalid ID",
	CloneMismatch:      "clone mismatch",
	NotFound:           "not found",
	InvalidInput:       "invalid input",
	Conflict:           "conflict",
	TooLarge:           "too large",
	Unavailable:        "unavailable",
	IsolationViolation: "isolation violation",
	Unsupported:        "unsupported",
	Suspended:          "suspended",
}

// String returns the kind's name.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return kindNames[k]
}

// Error makes a Kind usable as a sentinel error: errors.Is(err, NotFound) is true for
// every *Error of kind NotFound.
func (k Kind) Error() string { return "cloneiso: " + k.String() }

// HTTPStatus is the HTTP status code that represents the kind.
func (k Kind) HTTPStatus() int {
	switch k {
	case Unauthenticated, NoCloneContext:
		return http.StatusUnauthorized
	case Forbidden, CloneMismatch, Suspended:
		return http.StatusForbidden
	case NotFound:
		return http.StatusNotFound
	case InvalidID, InvalidInput:
		return http.StatusBadRequest
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case Unsupported:
		return http.StatusUnsupportedMediaType
	case Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// Error is an error of a Kind raised by operation Op. Msg is safe to show to the caller
// (it never contains another clone's data); Err is the underlying cause, if any, and is
// reachable with errors.As.
type Error struct {
	Kind Kind
	Op   string // e.g. "vectorstore.Query"
	Msg  string
	Err  error
}

// Error implements error.
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

// Is reports whether target is e's Kind, so errors.Is(err, errs.NotFound) works.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

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

// KindOf returns the Kind of the first *Error or Kind in err's chain, or Unknown.
// A context.Canceled or DeadlineExceeded without a kind stays Unknown.
func KindOf(err error) Kind {
	if err == nil {
		return Unknown
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	var k Kind
	if errors.As(err, &k) {
		return k
	}
	return Unknown
}
