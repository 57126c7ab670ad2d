// Package clone holds the core of cloneiso: the [CloneContext] that names the one clone
// an operation may touch, the strict ID parser, the guards that compare request IDs with
// the context, and the SDK's error kinds with their HTTP status codes.
//
// A request flows like this: an authenticator turns credentials into a [Principal]; a
// resolver (package tenant provisions on first sign-in) turns the principal into a
// CloneContext; [WithContext] attaches it to the request's context.Context; handlers read
// it back with [FromContext] and pass it to the clone-scoped stores, which derive every
// tenant and clone ID from it.
//
// # IDs
//
// Tenant and clone IDs are UUIDs. IDs arriving as strings are parsed with [ParseID],
// which accepts only the canonical lower-case hyphenated form, so that each ID has exactly
// one spelling. The nil and max UUIDs are never IDs.
//
// # Errors
//
// Every error returned by a cloneiso package has one [Kind]: [KindOf] returns it, and
// errors.Is matches it against the sentinels of this package ([ErrNotFound],
// [ErrCloneMismatch], ...), which are the kinds themselves. The error is a *[Error] whose
// Op and Msg say what failed (Msg is safe to show to the caller) and whose cause stays
// reachable with errors.As. [HTTPStatus] maps it to a status code. Bad input never maps
// to 500; [ErrInternal] (a bug or misconfiguration, not retryable) does;
// [ErrUnavailable] (503) is kept for what a retry can fix ([Kind.Retryable]); and
// [ErrCanceled] is the caller's own cancellation (499). The set of kinds is
// append-only.
package clone
