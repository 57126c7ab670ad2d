// Package adversarial is cloneiso's adversarial isolation suite (tests only).
//
// TestAdversarial runs a cross-clone attack matrix over every public operation of the
// SQL repositories, the vector index, the object store and the HTTP middleware, on real
// services (PostgreSQL as the application role, MinIO, the Pinecone emulator over gRPC):
// clone A attacks a clone of its own tenant and a clone of another tenant, and every
// operation is also tried with no clone context. Every case first proves the victim's
// data exists, and the victims' data is verified intact afterwards. It prints the number
// of cases and leaks.
//
// TestMechanisms checks each isolation layer on its own, below the SDK's other layers
// (forced row-level security for an owning role, transaction-local settings on a pooled
// connection, one namespace per clone in the raw vector backend, one key prefix per
// clone in the raw bucket, the result re-checks against planted foreign records, the
// vector scope filter), so that switching off any single mechanism is detected even
// where defense in depth would still prevent a leak.
//
// TestSensitivity proves it: it copies the module, switches off one mechanism at a time
// by editing the source (forced RLS, transaction-local settings, namespace derivation,
// key prefix, each result re-check, the scope filter) and asserts that the suite fails
// on every mutant. It is slow (a build per mutant) and runs when
// CLONEISO_MUTATION_TESTS=1 (the test command sets it).
package adversarial
