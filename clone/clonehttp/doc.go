// Package clonehttp binds HTTP requests to clones: net/http middleware that
// authenticates a request, resolves its principal to exactly one clone and puts that
// clone's [clone.CloneContext] into the request context, where handlers read it with
// [clone.FromContext]. Nothing downstream ever takes a tenant or clone ID from the
// request itself.
//
// # Flow
//
// [Middleware] runs, for every request:
//
//  1. an [Authenticator] (package jwtauth verifies JWTs signed with a shared secret or by
//     keys from a JWKS URL; hosts with other authentication plug in their own);
//  2. a [Selector], which may name a clone explicitly (two headers by default, or two
//     path wildcards): members of enterprise tenants with several clones select one, and
//     the [Resolver] (a *tenant.Store) grants it only if the subject may use it;
//  3. without a selection, the subject's own solo clone, whose tenant and clone are
//     created on the subject's first request (first-sign-in provisioning, race-safe);
//  4. a [Cache] of resolutions (bounded, with a TTL, invalidated by every revocation,
//     suspension and offboarding made through a tenant.Store given the same cache),
//     so that a warm request costs no database round trip.
//
// # Errors
//
// A refused request never reaches the handler. It is answered with an RFC 9457
// application/problem+json body ([Problem], [WriteError]) whose status comes from
// clone.HTTPStatus: 401 without valid credentials, 403 for a clone the subject may not
// use or that is suspended, 404 for a clone of another tenant or none (so IDs cannot be
// probed), 400 for a malformed selection; never 500 for bad input, and never any internal
// detail in the body. Each refusal is recorded as exactly one audit event. Handlers use
// [WriteError] for the SDK's errors too.
//
// # Logging
//
// [Options].Logger writes one access-log record per request with the request, tenant
// and clone IDs; [NewLogHandler] wraps any slog.Handler so that a handler's own log
// records carry the same IDs.
package clonehttp
