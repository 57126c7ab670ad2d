// Package nosqlite holds a test only: a host that uses PostgreSQL alone, and so imports
// the SDK's SQL, tenant, migration and higher layers but not clonesql/sqlitedb, gets no
// "sqlite" database/sql driver and no change to sqlx's bind table. The test needs a
// binary of its own, without the SQLite opener the other tests import.
package nosqlite
