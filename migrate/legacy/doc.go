// Package legacy moves a legacy deployment, whose data is keyed by a user ID, to
// cloneiso's clone model across PostgreSQL, an S3 bucket and a vector index, without
// losing or mixing a single record: every legacy user gets a tenant and a clone, exactly
// as on a first sign-in (tenant.Store.ProvisionSolo), and every row, object and vector
// of that user moves into that clone. The command cloneiso-migrate
// (migrate/cmd/cloneiso-migrate) drives it; MIGRATION_GUIDE.md at the repository root is
// the operator's runbook.
//
// The legacy path is PostgreSQL only (SQLite deployments have no legacy to migrate).
//
// # Schema: adopt, then enforce
//
// A fresh install runs package migrate's migrations. A legacy database cannot: its
// tables exist, keyed by their own IDs and a user column. It takes a separate,
// explicit path of two migrations around the data migration:
//
//   - [Migrator.Adopt] creates the control-plane tables (tenants, clones,
//     tenant_members, clone_grants, audit_events) from the very statements of the
//     fresh-install migration, the migration's bookkeeping tables (cloneiso_legacy_*),
//     and adds nullable tenant_id and clone_id columns to every configured table
//     (a NOT NULL user column stays NOT NULL, so the legacy application cannot
//     write rows without a user meanwhile). Nothing else changes, so the legacy
//     application keeps working and the step is easy to undo (MIGRATION_GUIDE.md).
//   - [Migrator.Enforce] refuses, with a message naming every table and count, while
//     any row lacks its clone. Otherwise, in one transaction, it makes tenant_id and
//     clone_id NOT NULL (and the user columns nullable), re-keys every table with primary and foreign keys led by
//     tenant_id and clone_id, creates the SDK tables the legacy database lacked, forces
//     row-level security with the fresh install's fail-closed policy, and records
//     schema version [EnforcedVersion] in migrate's version table; migrate.Up then
//     applies later versions. From there on the database is upgraded like any other.
//
// # A schema of the SDK's own
//
// A legacy database with a table named like one of the SDK's control tables (its own
// clones table, say) keeps it: with [Config].Schema the SDK's control plane, version
// table and bookkeeping go to that schema, and the SDK's content tables the legacy
// database lacked are created there by Enforce, while the configured legacy tables are
// adopted in place, in [Config].LegacySchema. Every connection resolves names with the
// SDK's schema first and the legacy schema next on its search_path (the Migrator's, set
// in its DSN and checked by each step; the application role's, set by
// [Migrator.AppRoleSQL]), so the SDK finds clones in its schema and documents in the
// legacy one. MIGRATION_GUIDE.md shows the layout and the commands.
//
// # Data: plan, backfill, verify
//
// The tables to migrate and each table's user column are configuration ([Config],
// [Table]); the SDK's tables are the default, and hosts add their own.
// [Migrator.Plan] is the dry run: per table and per user, what would change, and which
// rows have no user. [Migrator.Backfill] provisions the users ([Migrator.Provision];
// users without rows too, with [Config].UsersQuery), records a per-user snapshot of
// counts and content checksums ([Migrator.Snapshot]), then sets tenant_id and
// clone_id table by table, in pages of [Config].BatchSize rows in primary key order
// (keyset pagination), one transaction per page that also advances the table's
// checkpoint. Kill it at any point and run it again: it resumes after the last
// committed page and ends exactly where an uninterrupted run would; a further run
// changes nothing. Rows without a user are never guessed: they are left alone and
// reported, and enforcement refuses until the operator assigns or deletes them, or
// decides to set them aside (Config.WithoutUser).
//
// Nor are users guessed: an ID found in the rows but not among the users of
// Config.UsersQuery (a deleted user) and a non-canonical spelling of a known ID (an
// upper-case variant) are listed by Plan ([UserIssue]), and Backfill refuses
// ([ErrUndecided]) until Config.UserDecisions decides each: map it to a known user,
// quarantine or drop its rows (moved to cloneiso_legacy_quarantine, counted by Verify,
// put back by [Migrator.RestoreQuarantined] and the rollback script), or keep it as a
// user of its own.
//
// Plan also checks the SDK's schema prerequisites ([Migrator.SchemaProblems]): legacy
// tables named like the SDK's must have the SDK's columns and types, so that
// clone/records reads the migrated rows, and no legacy table may bear the name of a
// control table; Adopt and Enforce refuse, with the fix for each, until they hold.
//
// [Migrator.Verify] compares each table's per-user counts and checksums with the
// snapshot, and reports rows without a clone, rows whose clone is not their user's (a
// row moved after the backfill), children in another clone than their parent, and
// users whose clone is missing or inconsistent.
//
// # Objects and vectors
//
// [Migrator.MigrateObjects] copies legacy objects named by key templates such as
// "users/{user_id}/{kind}/{name}" into each clone's prefix through the clone-scoped
// objectstore.Bucket, reading each copy back to compare size and SHA-256. Every object
// of the legacy bucket, and every legacy key an object key column names, is accounted
// for: copied, refused with a reason, or out of scope by the operator's recorded
// decision ([Migrator.DeclareObjectsOutOfScope]); objects the SDK refuses as they are
// can be copied in a sanitized form ([ObjectOptions].Sanitize), except keys that
// traverse (a "..", "." or empty segment, also percent-encoded), which are always
// refused: the key does not tell whose object it is.
// [Migrator.VerifyObjects] checks again, down to each clone's exact set of objects;
// [Migrator.DeleteLegacyObjects] is the separate step that deletes the legacy keys. [Migrator.MigrateVectors],
// [Migrator.VerifyVectors] and [Migrator.DeleteLegacyVectors] do the same for vectors
// kept in a namespace per user or in one shared namespace with the user in metadata,
// writing through the clone-scoped vectorstore.Index (clone namespace, metadata
// stamps). Every legacy vector met is recorded in a ledger (copied with a fingerprint,
// refused with its reason, or excluded by the operator with [Migrator.ExcludeVectors]):
// refused vectors are retried until copied or excluded, verification compares exact
// sets per clone, and the deletion deletes only recorded copies that check out, ID by
// ID, reporting what it leaves behind. All of them are resumable and have a dry run.
package legacy
