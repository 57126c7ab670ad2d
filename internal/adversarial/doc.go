// Package adversarial is cloneiso's adversarial isolation suite (tests only).
//
// TestAdversarial runs a cross-clone attack matrix over every public operation of the
// SQL repositories, the vector index, the object store and the HTTP middleware, on both
// stacks: the production drivers (PostgreSQL as the application role, the Pinecone
// emulator over gRPC, S3 on MinIO) and the embedded ones (SQLite, memvector,
// fileobject). Clone A attacks a clone of its own tenant and a clone of another tenant,
// every operation is also tried with no clone context, and the middleware is attacked
// with its resolution cache on and off (a second subject asks for a clone the first has
// just resolved). Every case first proves the victim's data exists, and the victims'
// data is verified intact afterwards. It prints the number of cases and leaks.
//
// TestMechanisms checks each isolation layer on its own, below the SDK's other layers,
// on both stacks (transaction-local settings on a pooled connection, one namespace per
// clone in the raw vector backend, one key prefix per clone in the raw bucket, the
// result re-checks against planted foreign records, the vector scope filter), so that
// switching off any single mechanism is detected even where defense in depth would
// still prevent a leak. TestForcedRLS checks forced, fail-closed row-level security on
// every clone-owned table migrate.CheckIsolation knows, a host's own table included,
// for a role that owns them. TestStatusGuards checks that the stores' write guard
// refuses suspended tenants and clones.
//
// TestSensitivity proves it: for each mechanism SECURITY.md names (at least 20 mutants:
// forced RLS per table, fail-closed policies, transaction-local settings, namespace
// derivation, the default-namespace refusal, the key prefix, name validation, driver
// scope checks, result re-checks, the scope filter in the portable type and in each
// driver, the statement scope check, IDs bound from the context, reserved metadata
// keys, the middleware's cache and single-flight keys and subject assertion, the JWT
// algorithm allow-list, issuer and audience, the prompt guard, the status guards,
// break-glass expiry, the versioned wipe, the offboarding tombstone) it copies the
// module, switches the mechanism off by editing the source, and runs the one test named
// for it, in its package only; the mutant counts as caught only if `go test -json`
// reports that test failed. It is slow (a build per mutant) and runs when
// CLONEISO_MUTATION_TESTS=1 (the test command sets it); TestMutationsApply checks on
// every run that each mutant still finds the code it edits.
package adversarial
