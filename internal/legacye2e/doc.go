// Package legacye2e holds the end-to-end test of a legacy migration: a legacy
// deployment (rows, S3 objects, Pinecone vectors) is migrated with the steps of
// MIGRATION_GUIDE.md, then the SDK, wired by cloneiso.New on the migrated stores,
// answers each migrated user's clone from that user's migrated documents only. It has
// no code of its own; it is a package of its own so that package legacy's tests do not
// link the whole SDK.
package legacye2e
