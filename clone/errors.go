package clone

import (
	"fmt"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Sentinel errors, one per error kind of the SDK. Every error returned by a cloneiso
// package matches exactly one of them with errors.Is:
//
//	if errors.Is(err, clone.ErrNotFound) { ... }
//
// The set is append-only. Use [HTTPStatus] to turn any error into a status code.
var (
	ErrUnauthenticated    error = errs.Unauthenticated    // 401: no or invalid credentials
	ErrForbidden          error = errs.Forbidden          // 403: authenticated but not allowed
	ErrNoCloneContext     error = errs.NoCloneContext     // 401: data operation without a CloneContext
	ErrInvalidID          error = errs.InvalidID          // 400: malformed, nil or non-canonical ID
	ErrCloneMismatch      error = errs.CloneMismatch      // 403: request IDs differ from the CloneContext
	ErrNotFound           error = errs.NotFound           // 404: missing, or another clone's
	ErrInvalidInput       error = errs.InvalidInput       // 400: other bad input
	ErrConflict           error = errs.Conflict           // 409: duplicate or concurrent change
	ErrTooLarge           error = errs.TooLarge           // 413: over a documented size limit
	ErrUnavailable        error = errs.Unavailable        // 503: a backing store is unavailable
	ErrIsolationViolation error = errs.IsolationViolation // 500: a store returned another clone's data; the call failed closed
	ErrUnsupported        error = errs.Unsupported        // 415: unsupported operation or content type
	ErrSuspended          error = errs.Suspended          // 403: clone or tenant suspended or offboarded
)

// Error is the concrete type of errors returned by cloneiso. Use errors.As to read its
// fields; its Msg is safe to show to the caller.
type Error = errs.Error

// HTTPStatus maps err to the HTTP status code a handler should answer with:
// 401, 403, 404, 400, 409, 413, 415 or 503 for the kinds above, and 500 for nil-kind
// (internal) errors and isolation violations. Bad input never maps to 500.
// HTTPStatus(nil) is 200.
func HTTPStatus(err error) int {
	if err == nil {
		return 200
	}
	return errs.KindOf(err).HTTPStatus()
}

// Errorf returns an error of kind (one of the Err* sentinels above) whose message,
// formatted from format and args, is safe to show to the caller. Hosts use it for their
// own errors so that errors.Is, [HTTPStatus] and clonehttp.WriteError treat them like
// the SDK's:
//
//	return clone.Errorf(clone.ErrInvalidInput, "title longer than %d bytes", max)
//
// A kind that is not one of the sentinels gives an error of unknown kind (HTTP 500).
func Errorf(kind error, format string, args ...any) error {
	k, _ := kind.(errs.Kind)
	return &errs.Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}
