// Package legacye2e builds, for end-to-end tests, a legacy deployment (rows, S3
// objects on MinIO, vectors in the Pinecone emulator) migrated with the steps of
// MIGRATION_GUIDE.md ([Migrate]); the guide's re-ingestion of the migrated documents is
// ingest.Pipeline.IngestMigrated, which its tests call. Its test
// wires the SDK with cloneiso.New on the migrated stores; the host app's test serves
// the migrated deployment over HTTP. It is a package of its own so that package
// legacy's tests do not link the whole SDK.
package legacye2e
