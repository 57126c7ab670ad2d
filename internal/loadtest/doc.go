// Package loadtest holds a bounded load test of cloneiso on real services:
// PostgreSQL (as the non-owner application role, row-level security on), MinIO
// (S3) and the real go-pinecone client against the in-process Pinecone emulator.
//
// Many concurrent clients act on many clones at once with a mix of reads (document,
// chunk, insight and conversation listings, vector queries, retrieval), writes
// (insights), ingests (the ingest pipeline, storing originals in S3) and chats
// (rag.Processor with the extractive generator). Every clone owns unique canary
// strings seeded in all three stores; every response of every operation (including
// chat prompts, answers and citations) is scanned for canaries, and any canary of
// another clone is a leak. Half of the chat questions probe another clone by naming
// the topic word of that clone's secret. At the end the schema owner scans every
// clone-owned text column for canaries in the wrong clone, and the audit sink must
// have recorded no denial or violation (a retrieval racing the clone's own ingestion is
// not a denial: TestRetrievalDuringIngestIsNotADenial holds that).
// The test fails on any error or leak.
//
// TestLoadWithFaults runs the same load while PostgreSQL backends of the pool are
// terminated every 250 ms and the Pinecone emulator fails bursts of upserts and
// queries with UNAVAILABLE or RESOURCE_EXHAUSTED: failed operations must fail with
// clone.ErrUnavailable, nothing may leak, and after Reconcile every clone's
// documents, chunks, vectors and originals must be consistent.
//
// The short default runs (10 s and 8 s of load, 64 clients over 32 clones) run in CI:
//
//	go test -race -count=1 -v ./internal/loadtest
//
// A longer run is a documented command; the environment variables
// CLONEISO_LOAD_DURATION (a Go duration), CLONEISO_LOAD_CLIENTS and
// CLONEISO_LOAD_CLONES override the defaults:
//
//	CLONEISO_LOAD_DURATION=5m CLONEISO_LOAD_CLIENTS=128 CLONEISO_LOAD_CLONES=100 \
//		go test -count=1 -timeout 30m -v -run 'TestLoad$' ./internal/loadtest
//
// Services are found as elsewhere in cloneiso (internal/pgtest, and
// CLONEISO_TEST_S3_* written by internal/ci/minio.sh); missing ones skip the test, or
// fail it with CLONEISO_REQUIRE_SERVICES=1. Each load test logs one summary line
// starting with "LOAD SUMMARY" (test name, clients, clones, duration, operations by
// kind, throughput, errors, leaks), shown with -v.
package loadtest
