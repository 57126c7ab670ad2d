// Package faulttest holds fault-injection tests of cloneiso against real services:
// a PostgreSQL backend terminated mid-transaction (pg_terminate_backend), a private
// MinIO server killed mid-ingest and restarted, and the Pinecone emulator failing
// with UNAVAILABLE or RESOURCE_EXHAUSTED mid-ingest and mid-query.
//
// Each test first proves the happy path on the same setup, then injects the fault and
// asserts that the operation either succeeds after the SDK's retries or fails with a
// typed error (clone.ErrUnavailable), that nothing partial remains (checked through
// the schema owner's connection, the vector index and the bucket), and that the
// service keeps working once the fault is gone.
//
// The tests:
//
//   - TestPostgresTerminatedMidTransaction: a scoped WithTx whose backend is
//     terminated between statements or before COMMIT fails with ErrUnavailable, leaves
//     no row, and the pool serves the next operations.
//   - TestPostgresIdleConnectionsTerminated: idle pool connections terminated; no
//     operation fails (clonesql retries an opening that fails with
//     driver.ErrBadConn on another connection).
//   - TestPostgresTerminatedMidIngest: the ingest pipeline's chunk transaction
//     terminated mid-statement (held by a trigger) for a new document and for an
//     update: ErrUnavailable, no chunk rows, vectors or original of the attempt; an
//     update keeps serving the previous version; retries succeed.
//   - TestPostgresTerminatedMidChat: a chat turn's first transaction terminated:
//     ErrUnavailable and nothing stored.
//   - TestMinioKilledMidIngest: a private MinIO killed between documents, after an
//     update's commit and with a batch of four in flight; restarted, Reconcile removes
//     the leftovers and the retries succeed.
//   - TestMinioKilledMidUpload: MinIO killed half-way through receiving an original.
//   - TestPineconeFaultsMidIngest, TestPineconeFaultsMidQuery: UNAVAILABLE and
//     RESOURCE_EXHAUSTED on a later upsert batch and on chat queries, within the
//     driver's attempts (retried, the operation succeeds) and beyond them
//     (ErrUnavailable, nothing partial).
//   - TestPineconeFaultsDuringCompensation: the compensating deletes fail too; the
//     leftover vectors are reported and removed by Reconcile.
//
// The package has no non-test code. Run it with:
//
//	go test -race -count=1 -v ./internal/faulttest
//
// PostgreSQL is found as in internal/pgtest. The MinIO tests start their own server
// from $(go env GOPATH)/bin/minio (installed by internal/ci/minio.sh); the Pinecone
// tests use S3 from CLONEISO_TEST_S3_ENDPOINT when set and the filesystem otherwise.
// Missing services skip the tests, or fail them with CLONEISO_REQUIRE_SERVICES=1.
package faulttest
