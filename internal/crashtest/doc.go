// Package crashtest holds the crash tests of the embedded stores (SQLite, memvector,
// fileobject) under the ingestion pipeline and offboarding. It has no non-test code.
//
// The test re-executes its own binary as a child process that runs a write loop
// (ingest, re-upload, delete, offboard) and reports every acknowledged write over a
// pipe. The child installs an internal/faultpoint hook that sends itself SIGKILL at
// the Nth fault point it reaches: at random N (at least 50 runs) and at the first hits
// of every named point inside the stores' writes (between a log record's write and its
// fsync, between a temporary file's fsync and its rename, inside a compaction, ...).
// Nothing depends on timing. After each kill the parent reopens the stores and checks
// that every acknowledged write is there, that no ready document is partial (every
// chunk row, vector and original present) before any repair, that Reconcile restores
// nothing (nothing acknowledged was lost) and leaves the stores exactly consistent,
// that offboarded clones left nothing behind, and that no clone's vectors or objects
// appear in another's.
package crashtest
