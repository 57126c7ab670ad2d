package migrate

import (
	"slices"
	"strings"

	"github.com/lib/pq"
)

// AppRoleSQL returns the statements (PostgreSQL) that give role, an existing role, the
// privileges the application needs on cloneiso's tables in schema ("" means public),
// and no more: read and write on the control-plane and clone-owned tables, insert and
// read on audit_events (never update, delete or truncate), read and advance the audit
// chain heads, insert, read and revoke (update) break-glass grants but never delete
// them, nothing on the migration
// version table. The role must not own the tables, be a superuser or have BYPASSRLS or
// CREATEROLE, nor be a member of a role that does (it could SET ROLE to it);
// [CheckIsolation] verifies that. Run the statements as the schema owner after every
// migration that adds a table. Create the role itself first, for example:
//
//	CREATE ROLE cloneiso_app LOGIN PASSWORD '...' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
//
// With a schema other than "" and public (the tables were migrated with
// [Options].Schema), the statements end with [SearchPathSQL](role, schema, "public"):
// the SDK queries its tables by their bare names, so every connection of the role must
// resolve them in schema first. That statement changes a role setting (it needs
// CREATEROLE, or the admin who created the role) and applies to sessions opened after
// it. A deployment that cannot change the role sets the path on each connection
// instead, in the DSN: search_path=schema,public (lib/pq and pgx pass it to the
// server), or options=-c search_path=schema,public. Either way [CheckIsolation] reports
// a connection whose search_path resolves one of the SDK's table names elsewhere.
func AppRoleSQL(role, schema string) string {
	if schema == "" {
		schema = "public"
	}
	var path []string
	if schema != "public" {
		path = []string{schema, "public"}
	}
	return AppRoleSQLIn(role, func(string) string { return schema }, path)
}

// AppRoleSQLIn is [AppRoleSQL] for the SDK's tables spread over schemas: schemaOf names
// the schema of each of the SDK's tables (sequences included), and a non-empty path
// ends the statements with [SearchPathSQL](role, path...). It serves a legacy database
// migrated with a schema of its own for the SDK (package migrate/legacy), whose content
// tables stay in the legacy schema while the control plane lives in the SDK's.
func AppRoleSQLIn(role string, schemaOf func(table string) string, path []string) string {
	r := pq.QuoteIdentifier(role)
	q := func(tables ...string) string {
		out := make([]string, len(tables))
		for i, t := range tables {
			out[i] = pq.QuoteIdentifier(schemaOf(t)) + "." + pq.QuoteIdentifier(t)
		}
		return strings.Join(out, ", ")
	}
	rw := append(append([]string{}, controlTables...), CloneOwnedTables()...)
	var schemas []string
	for _, t := range Tables() {
		if s := schemaOf(t); !slices.Contains(schemas, s) {
			schemas = append(schemas, s)
		}
	}
	var b strings.Builder
	for _, s := range schemas {
		b.WriteString("GRANT USAGE ON SCHEMA " + pq.QuoteIdentifier(s) + " TO " + r + ";\n")
	}
	b.WriteString("GRANT SELECT, INSERT, UPDATE, DELETE ON " + q(rw...) + " TO " + r + ";\n" +
		"GRANT SELECT, INSERT ON " + q("audit_events") + " TO " + r + ";\n" +
		"REVOKE UPDATE, DELETE, TRUNCATE ON " + q("audit_events") + " FROM " + r + ";\n" +
		"GRANT USAGE ON SEQUENCE " + pq.QuoteIdentifier(schemaOf("audit_events")) + "." + pq.QuoteIdentifier("audit_events_id_seq") + " TO " + r + ";\n" +
		"GRANT SELECT, INSERT, UPDATE ON " + q("audit_chain_heads") + " TO " + r + ";\n" +
		"GRANT SELECT, INSERT, UPDATE ON " + q("break_glass_grants") + " TO " + r + ";\n" +
		"REVOKE DELETE, TRUNCATE ON " + q("break_glass_grants") + " FROM " + r + ";\n")
	if len(path) > 0 {
		b.WriteString(SearchPathSQL(role, path...))
	}
	return b.String()
}

// SearchPathSQL returns the statement (PostgreSQL) that sets role's search_path in the
// current database, for the sessions it opens from then on, to schemas in order:
// ALTER ROLE role IN DATABASE <current database> SET search_path = schemas. Only that
// database is concerned, so a role shared by several databases keeps its path
// elsewhere. [AppRoleSQL] emits it for the SDK's schema; the legacy migration
// (migrate/legacy) for the SDK's schema and the legacy tables' schema.
func SearchPathSQL(role string, schemas ...string) string {
	path := make([]string, len(schemas))
	for i, s := range schemas {
		path[i] = pq.QuoteIdentifier(s)
	}
	return "DO $cloneiso$ BEGIN EXECUTE format('ALTER ROLE %I IN DATABASE %I SET search_path = %s', " +
		pq.QuoteLiteral(role) + ", current_database(), " + pq.QuoteLiteral(strings.Join(path, ", ")) + "); END $cloneiso$;\n"
}
