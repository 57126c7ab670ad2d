package migrate

import (
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
func AppRoleSQL(role, schema string) string {
	if schema == "" {
		schema = "public"
	}
	r, s := pq.QuoteIdentifier(role), pq.QuoteIdentifier(schema)
	q := func(tables ...string) string {
		out := make([]string, len(tables))
		for i, t := range tables {
			out[i] = s + "." + pq.QuoteIdentifier(t)
		}
		return strings.Join(out, ", ")
	}
	rw := append(append([]string{}, controlTables...), CloneOwnedTables()...)
	return "GRANT USAGE ON SCHEMA " + s + " TO " + r + ";\n" +
		"GRANT SELECT, INSERT, UPDATE, DELETE ON " + q(rw...) + " TO " + r + ";\n" +
		"GRANT SELECT, INSERT ON " + q("audit_events") + " TO " + r + ";\n" +
		"REVOKE UPDATE, DELETE, TRUNCATE ON " + q("audit_events") + " FROM " + r + ";\n" +
		"GRANT USAGE ON SEQUENCE " + q("audit_events_id_seq") + " TO " + r + ";\n" +
		"GRANT SELECT, INSERT, UPDATE ON " + q("audit_chain_heads") + " TO " + r + ";\n" +
		"GRANT SELECT, INSERT, UPDATE ON " + q("break_glass_grants") + " TO " + r + ";\n" +
		"REVOKE DELETE, TRUNCATE ON " + q("break_glass_grants") + " FROM " + r + ";\n"
}
