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
// The package has no non-test code. Run it with:
//
//	go test -race -count=1 -v ./internal/faulttest
//
// PostgreSQL is found as in internal/pgtest. The MinIO test starts its own server
// from $(go env GOPATH)/bin/minio (installed by internal/ci/minio.sh); the Pinecone
// tests use S3 from CLONEISO_TEST_S3_ENDPOINT when set and the filesystem otherwise.
// Missing services skip the tests, or fail them with CLONEISO_REQUIRE_SERVICES=1.
package faulttest
