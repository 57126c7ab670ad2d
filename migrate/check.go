package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Problem codes reported by [CheckIsolation].
//
// The role codes are reported for the checked role itself and for every role it can act
// as through role membership (see [CheckIsolation]); the problem's Roles field then
// holds the membership path.
const (
	ProblemRoleSuperuser   = "role-superuser"    // the app role is (or can act as) a superuser: RLS never applies
	ProblemRoleBypassRLS   = "role-bypassrls"    // the app role has (or can act as a role with) BYPASSRLS
	ProblemRoleOwnsTable   = "role-owns-table"   // the app role owns (or is a member of the owner of) a clone-owned table
	ProblemRoleCreateRole  = "role-createrole"   // the app role has (or can act as a role with) CREATEROLE: it can grant itself any non-superuser role
	ProblemRoleServerFiles = "role-server-files" // the app role is a member of pg_read_server_files, pg_write_server_files or pg_execute_server_program
	ProblemRoleReplication = "role-replication"  // the app role has (or can act as a role with) REPLICATION: logical decoding and base backups hold every row
	ProblemTableMissing    = "table-missing"     // a clone-owned table named in the options does not exist
	ProblemRLSDisabled     = "rls-disabled"      // row-level security is not enabled on a clone-owned table
	ProblemRLSNotForced    = "rls-not-forced"    // enabled but not forced: the owner bypasses it
	ProblemNoPolicy        = "no-policy"         // RLS on, but no policy applies to the app role: every row denied
	ProblemPolicyFailsOpen = "policy-fails-open" // a policy admits rows while the clone settings are unset
	ProblemPolicyErrors    = "policy-errors"     // a policy raises an error while the settings are unset
	ProblemDefaultSetting  = "default-setting"   // a role or database default presets a clone setting for every session
	// ProblemSearchPath: on the checked connection, the bare name of one of the SDK's
	// tables resolves (through search_path) to another relation than the SDK's table in
	// the checked schema — one of the same name earlier on the path shadows it, and the
	// SDK would read and write that one — or to nothing (the schema is not on the path).
	ProblemSearchPath = "search-path"
)

// Problem is one misconfiguration found by [CheckIsolation].
type Problem struct {
	Code   string // one of the Problem* constants
	Table  string // the clone-owned table concerned, if any
	Object string // the view, materialized view or function concerned, if any
	// Roles is, for a role problem, the membership path from the checked role to the
	// role that holds the privilege: just the checked role when it holds it itself.
	// For a view or function, the path from its owner to that role.
	Roles  []string
	Detail string // human-readable explanation naming the cause
}

func (p Problem) String() string {
	switch {
	case p.Object != "":
		return p.Code + " [" + p.Object + "]: " + p.Detail
	case p.Table != "":
		return p.Code + " [" + p.Table + "]: " + p.Detail
	}
	return p.Code + ": " + p.Detail
}

// Report is the result of [CheckIsolation]. An empty Problems list means the database
// enforces clone isolation for the role.
type Report struct {
	Role   string
	Schema string
	// Tables are the clone-owned tables checked: bare names for those in Schema, and
	// schema-qualified names for those found elsewhere (see [CheckOptions].Schema).
	Tables   []string
	Problems []Problem
}

// OK reports whether no problem was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// String lists the problems, one per line.
func (r *Report) String() string {
	if r.OK() {
		return fmt.Sprintf("isolation OK for role %s on %d tables in schema %s", r.Role, len(r.Tables), r.Schema)
	}
	lines := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// CheckOptions configure [CheckIsolation]; nil means the defaults.
type CheckOptions struct {
	// Role is the application role to check; default: the role db is connected as.
	Role string
	// Schema is the schema holding the SDK's tables ([Options].Schema of the
	// migrations); default: the connection's current schema. The SDK queries its tables
	// by their bare names, so each name must resolve, through the checked connection's
	// search_path, to the table in Schema: one that resolves to another relation (of the
	// same name, earlier on the path, or a temporary table) or to none is reported
	// (ProblemSearchPath). A clone-owned table of the SDK absent from Schema is checked
	// where the name resolves: the layout of a legacy database migrated with a schema of
	// its own for the SDK (package migrate/legacy), whose content tables stay in the
	// legacy schema.
	Schema string
	// Tables are extra clone-owned tables (a host's own). The SDK's tables are always
	// checked, and so is every other table of the schema with both a tenant_id and a
	// clone_id column, unless listed in Exempt.
	Tables []string
	// Exempt tables have tenant_id and clone_id columns but are not clone-owned;
	// default: audit_events and clone_grants (control plane).
	Exempt []string
}

// CheckIsolation inspects a live PostgreSQL database and reports every misconfiguration
// that would let the application role reach another clone's rows:
//
//   - the role, or any role it can act as through membership, is a superuser, has
//     BYPASSRLS, CREATEROLE or REPLICATION, owns a clone-owned table, or is one of the
//     predefined roles that read, write or execute server files;
//   - a role or database default presets a cloneiso.* setting for every session;
//   - a clone-owned table without row-level security enabled and forced, or without a
//     policy for the role; a policy that admits rows, or raises an error, while the
//     clone settings are unset; a policy that calls a function per row or a VOLATILE one;
//   - a SECURITY DEFINER function, in any language and whatever its body, that the role
//     can execute (or fire, as a trigger on a table it can write or as an event
//     trigger) and whose owner has one of the privileges above (it runs as its owner,
//     around row-level security); a view without security_invoker that names a
//     relation, or a materialized view, that the role can read and whose owner has one
//     of them; a view without security_invoker or a materialized view over a
//     clone-owned table.
//
// Membership is followed recursively over pg_auth_members, through every grant that
// lets the member SET ROLE to the granted role, inherit its privileges or administer it
// (on PostgreSQL 15 and older every grant allows SET ROLE; on 16 and newer each grant
// carries its own set_option and inherit_option). A NOINHERIT member of a superuser is
// as dangerous as the superuser: it only has to SET ROLE first.
//
// Policies are probed, not parsed: each permissive policy's USING and WITH CHECK
// expressions are evaluated, in a read-only transaction that is rolled back, against a
// row of random tenant and clone IDs with the settings never set (NULL) and set to ”
// (what a connection reads after an earlier transaction set them). A fail-closed policy
// is false in both cases.
//
// The check fails closed: if any catalog query fails, even after some of its rows were
// read, it returns an error (kind Unavailable) and no report. It needs only catalog
// access; run it at start-up with the application's own connection, and in CI.
func CheckIsolation(ctx context.Context, db *sql.DB, opts *CheckOptions) (*Report, error) {
	const op = "migrate.CheckIsolation"
	if opts == nil {
		opts = &CheckOptions{}
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "connect")
	}
	defer conn.Close()

	r, err := newReport(ctx, conn, opts)
	if err != nil {
		return nil, err
	}
	add := func(p Problem, format string, args ...any) {
		p.Detail = fmt.Sprintf(format, args...)
		r.Problems = append(r.Problems, p)
	}
	addTable := func(code, table, format string, args ...any) {
		add(Problem{Code: code, Table: table}, format, args...)
	}
	if err := checkDefaults(ctx, conn, r.Role, add); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "read default settings")
	}
	elsewhere, err := resolveTables(ctx, conn, r.Schema, opts, add)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "resolve table names")
	}
	refs, err := cloneOwnedTables(ctx, conn, r.Schema, elsewhere, opts)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "list tables")
	}
	for _, t := range refs {
		r.Tables = append(r.Tables, t.display(r.Schema))
	}

	// The role graph: who can act as whom, and which roles hold a dangerous privilege.
	g, err := loadRoleGraph(ctx, conn, r.Schema, refs)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "read roles and memberships")
	}
	app, ok := g.byName[r.Role]
	if !ok {
		return nil, errs.Wrap(errs.Unavailable, op, fmt.Errorf("role %q vanished while checking", r.Role), "read roles")
	}
	reach := g.reach(app)
	for _, rr := range reach {
		for _, d := range g.dangers(rr.oid) {
			p := Problem{Code: d.code, Table: d.table, Roles: g.names(rr.path)}
			add(p, "%s: %s", g.describe(rr, d.what), d.why)
		}
	}

	for _, t := range refs {
		if err := checkTable(ctx, conn, r, t, addTable); err != nil {
			return nil, errs.Wrap(errs.Unavailable, op, err, "check table %s", t.display(r.Schema))
		}
	}
	if err := checkObjects(ctx, conn, r, refs, g, reach, add); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "check views and functions")
	}
	return r, nil
}

// newReport returns the report of the role and schema opts name (default: the
// connection's), failing if the role does not exist.
func newReport(ctx context.Context, conn *sql.Conn, opts *CheckOptions) (*Report, error) {
	const op = "migrate.CheckIsolation"
	r := &Report{Role: opts.Role, Schema: opts.Schema}
	if r.Role == "" {
		if err := conn.QueryRowContext(ctx, "SELECT current_user").Scan(&r.Role); err != nil {
			return nil, errs.Wrap(errs.Unavailable, op, err, "current_user")
		}
	}
	if r.Schema == "" {
		if err := conn.QueryRowContext(ctx, "SELECT current_schema()").Scan(&r.Schema); err != nil {
			return nil, errs.Wrap(errs.Unavailable, op, err, "current_schema")
		}
	}
	var exists bool
	if err := conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", r.Role).Scan(&exists); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "read role")
	}
	if !exists {
		return nil, errs.New(errs.InvalidInput, op, "role %q does not exist", r.Role)
	}
	return r, nil
}

// checkDefaults reports every role or database default of a cloneiso.* setting for
// role: a default (ALTER ROLE/DATABASE ... SET cloneiso.clone_id = ...) would scope
// every session that forgot to scope itself to one clone, failing open for that clone.
func checkDefaults(ctx context.Context, conn *sql.Conn, role string, add func(Problem, string, ...any)) error {
	var defaults []string
	err := each(ctx, conn, `
		SELECT unnest(s.setconfig) FROM pg_db_role_setting s
		WHERE (s.setrole = 0 OR s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1))
		  AND (s.setdatabase = 0 OR s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))`,
		[]any{role}, func(rows *sql.Rows) error {
			var kv string
			if err := rows.Scan(&kv); err != nil {
				return err
			}
			if strings.HasPrefix(kv, "cloneiso.") {
				defaults = append(defaults, kv)
			}
			return nil
		})
	if err != nil {
		return err
	}
	for _, kv := range defaults {
		add(Problem{Code: ProblemDefaultSetting}, "a role or database default sets %s for every session; remove it with ALTER ROLE/DATABASE ... RESET", kv)
	}
	return nil
}

// tableRef is a table in a schema.
type tableRef struct{ schema, name string }

// display is the table's name in a report about schema: bare if it lives there.
func (t tableRef) display(schema string) string {
	if t.schema == schema {
		return t.name
	}
	return t.schema + "." + t.name
}

// resolveTables resolves the SDK's table names and opts.Tables through the search_path
// of conn, reports every name that resolves elsewhere than to schema's table of that
// name (ProblemSearchPath), and returns the names schema lacks that resolve to a table
// of another schema, with that schema.
func resolveTables(ctx context.Context, conn *sql.Conn, schema string, opts *CheckOptions, add func(Problem, string, ...any)) (map[string]string, error) {
	names := append(Tables(), opts.Tables...)
	slices.Sort(names)
	names = slices.Compact(names)
	var path string
	if err := conn.QueryRowContext(ctx, "SELECT current_setting('search_path')").Scan(&path); err != nil {
		return nil, err
	}
	elsewhere := map[string]string{}
	err := each(ctx, conn, `
		SELECT x.name, coalesce(rn.nspname, ''), coalesce(rc.relkind::text, ''),
		       EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		               WHERE n.nspname = $1 AND c.relname = x.name)
		FROM unnest($2::text[]) AS x(name)
		LEFT JOIN pg_class rc ON rc.oid = to_regclass(quote_ident(x.name))
		LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
		ORDER BY x.name`, []any{schema, pq.Array(names)}, func(rows *sql.Rows) error {
		var (
			name, resolved, kind string
			inSchema             bool
		)
		if err := rows.Scan(&name, &resolved, &kind, &inSchema); err != nil {
			return err
		}
		switch {
		case inSchema && resolved == "":
			add(Problem{Code: ProblemSearchPath, Table: name},
				"schema %s is not on this connection's search_path (%s): the SDK's queries of %s fail; set the role's search_path (migrate.AppRoleSQL, migrate.SearchPathSQL) or the DSN's search_path", schema, path, name)
		case inSchema && resolved != schema:
			add(Problem{Code: ProblemSearchPath, Table: name},
				"on this connection (search_path %s) %s resolves to %s.%s (relkind %s), not to %s.%s: the SDK would read and write that relation, which shadows its table; put %s first on the search_path or rename %s.%s",
				path, name, resolved, name, kind, schema, name, schema, resolved, name)
		case !inSchema && resolved != "" && (kind == "r" || kind == "p"):
			elsewhere[name] = resolved
		}
		return nil
	})
	return elsewhere, err
}

// cloneOwnedTables returns the tables to check, sorted: the SDK's and those of
// opts.Tables (in schema, or where they resolve when schema lacks them), and any other
// table with both scope columns of schema or of a schema where one of them resolved,
// less opts.Exempt.
func cloneOwnedTables(ctx context.Context, conn *sql.Conn, schema string, elsewhere map[string]string, opts *CheckOptions) ([]tableRef, error) {
	exempt := opts.Exempt
	if exempt == nil {
		exempt = []string{"audit_events", "clone_grants"}
	}
	var want []tableRef
	schemas := []string{schema}
	for _, name := range append(CloneOwnedTables(), opts.Tables...) {
		if s, ok := elsewhere[name]; ok {
			want = append(want, tableRef{s, name})
			schemas = append(schemas, s)
		} else {
			want = append(want, tableRef{schema, name})
		}
	}
	err := each(ctx, conn, `
		SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p')
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'clone_id' AND NOT a.attisdropped)
		ORDER BY 1, 2`,
		[]any{pq.Array(schemas)}, func(rows *sql.Rows) error {
			var t tableRef
			if err := rows.Scan(&t.schema, &t.name); err != nil {
				return err
			}
			want = append(want, t)
			return nil
		})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(want, func(a, b tableRef) int {
		return strings.Compare(a.display(schema), b.display(schema))
	})
	want = slices.Compact(want)
	var tables []tableRef
	for _, t := range want {
		if !slices.Contains(exempt, t.name) {
			tables = append(tables, t)
		}
	}
	return tables, nil
}

// each runs query on conn and calls scan for every row. It fails on any error,
// including one that ends the iteration early (rows.Err): a check must never pass
// having seen fewer rows than the catalog holds.
func each(ctx context.Context, conn *sql.Conn, query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := conn.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

func checkTable(ctx context.Context, conn *sql.Conn, r *Report, ref tableRef, add func(code, table, format string, args ...any)) error {
	table := ref.display(r.Schema)
	var (
		oid            int64
		enabled, force bool
		owner          string
	)
	// Ownership, direct or through membership, is judged with the role graph.
	err := conn.QueryRowContext(ctx, `
		SELECT c.oid, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, ref.schema, ref.name).Scan(&oid, &enabled, &force, &owner)
	if err == sql.ErrNoRows {
		add(ProblemTableMissing, table, "table %s.%s does not exist", ref.schema, ref.name)
		return nil
	} else if err != nil {
		return err
	}
	if !enabled {
		add(ProblemRLSDisabled, table, "row-level security is not enabled")
		return nil
	}
	if !force {
		add(ProblemRLSNotForced, table, "row-level security is not forced; its owner %s bypasses it", owner)
	}

	// Permissive policies that apply to the role for reading or writing.
	type policy struct{ name, cmd, using, check string }
	var policies []policy
	err = each(ctx, conn, `
		SELECT p.polname, p.polcmd, coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
		       coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
		FROM pg_policy p
		WHERE p.polrelid = $1 AND p.polpermissive
		  AND (0 = ANY (p.polroles) OR EXISTS (
		        SELECT 1 FROM unnest(p.polroles) AS pr(oid) WHERE pg_has_role($2, pr.oid, 'MEMBER')))`,
		[]any{oid, r.Role}, func(rows *sql.Rows) error {
			var p policy
			if err := rows.Scan(&p.name, &p.cmd, &p.using, &p.check); err != nil {
				return err
			}
			policies = append(policies, p)
			return nil
		})
	if err != nil {
		return err
	}
	if len(policies) == 0 {
		add(ProblemNoPolicy, table, "row-level security is on but no permissive policy applies to role %s: every row is denied", r.Role)
		return nil
	}
	if err := checkPolicyCalls(ctx, conn, table, oid, add); err != nil {
		return err
	}
	for _, p := range policies {
		for _, e := range []struct{ kind, expr string }{{"USING", p.using}, {"WITH CHECK", p.check}} {
			if e.expr == "" {
				// A policy without WITH CHECK uses its USING expression for writes;
				// one without USING (INSERT-only) has nothing to read.
				continue
			}
			open, probeErr, err := probe(ctx, conn, ref.schema, ref.name, e.expr)
			if err != nil {
				return err
			}
			switch {
			case probeErr != nil:
				add(ProblemPolicyErrors, table, "policy %s %s raises an error with the clone settings unset: %v", p.name, e.kind, probeErr)
			case open != "":
				add(ProblemPolicyFailsOpen, table, "policy %s %s admits a row of any clone when the settings are %s: %s", p.name, e.kind, open, e.expr)
			}
		}
	}
	return nil
}

// probe evaluates a policy expression against a row of random tenant and clone IDs with
// the clone settings unset; it returns how they were unset when the row was admitted.
// An error PostgreSQL raised while evaluating the expression is the policy's
// (policyErr); any other failure (connection, transaction) is err, and fails the check.
func probe(ctx context.Context, conn *sql.Conn, schema, table, expr string) (open string, policyErr, err error) {
	qt := pq.QuoteIdentifier(schema) + "." + pq.QuoteIdentifier(table)
	q := "SELECT coalesce((" + expr + ")::boolean, false) FROM jsonb_populate_record(NULL::" + qt +
		", jsonb_build_object('tenant_id', gen_random_uuid(), 'clone_id', gen_random_uuid())) AS " + pq.QuoteIdentifier(table)
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return "", nil, err
	}
	defer tx.Rollback()
	// First as the connection finds them (NULL unless set earlier on this connection),
	// then explicitly reset to '' as a previous transaction leaves them.
	for _, how := range []string{"never set (NULL)", "empty ('')"} {
		if how != "never set (NULL)" {
			if _, err := tx.ExecContext(ctx, "SELECT set_config('cloneiso.tenant_id', '', true), set_config('cloneiso.clone_id', '', true)"); err != nil {
				return "", nil, err
			}
		}
		var admitted bool
		if err := tx.QueryRowContext(ctx, q).Scan(&admitted); err != nil {
			if isExpressionError(err) {
				return "", err, nil
			}
			return "", nil, err
		}
		if admitted {
			return how, nil, nil
		}
	}
	return "", nil, nil
}

// isExpressionError reports whether err is an error PostgreSQL raised evaluating an
// expression, as opposed to a failure of the connection, the transaction or the server
// (classes 08, 25, 40, 53, 57, 58, XX), which must fail the check instead.
func isExpressionError(err error) bool {
	var pe *pq.Error
	if !errors.As(err, &pe) {
		return false
	}
	switch string(pe.Code.Class()) {
	case "08", "25", "40", "53", "57", "58", "XX":
		return false
	}
	return true
}

// serverFileRoles are the predefined roles that reach the server's files or programs,
// and so every table's data, around row-level security.
var serverFileRoles = []string{"pg_read_server_files", "pg_write_server_files", "pg_execute_server_program"}

// roleInfo is one role of pg_roles.
type roleInfo struct {
	name                                      string
	super, bypassRLS, createRole, replication bool
}

// roleGrant is one row of pg_auth_members, seen from the member: it is a member of
// group, and the grant lets it SET ROLE to group, inherit group's privileges, or
// administer (grant) group.
type roleGrant struct {
	group               int64
	set, inherit, admin bool
}

func (e roleGrant) String() string {
	set, inherit := "can SET ROLE", "inherits its privileges"
	if !e.set {
		set = "cannot SET ROLE"
	}
	if !e.inherit {
		inherit = "does not inherit"
	}
	if e.admin {
		return set + ", " + inherit + ", WITH ADMIN OPTION"
	}
	return set + ", " + inherit
}

// roleGraph is the cluster's roles and grants, and who owns the clone-owned tables.
type roleGraph struct {
	roles  map[int64]roleInfo
	byName map[string]int64
	grants map[int64][]roleGrant // by member, ordered by group name
	owns   map[int64][]string    // role -> clone-owned tables it owns, sorted
}

// roleReach is a role reachable from a start role, with the shortest path of grants.
type roleReach struct {
	oid  int64
	path []int64     // from the start role to oid, both included
	via  []roleGrant // the grants followed: len(path)-1
}

// roleDanger is a privilege of one role that defeats row-level security.
type roleDanger struct {
	code, table string
	what        string // completes "role X ..."
	why         string
}

// loadRoleGraph reads every role, every grant and the owners of tables.
func loadRoleGraph(ctx context.Context, conn *sql.Conn, schema string, tables []tableRef) (*roleGraph, error) {
	g := &roleGraph{roles: map[int64]roleInfo{}, byName: map[string]int64{}, grants: map[int64][]roleGrant{}, owns: map[int64][]string{}}
	err := each(ctx, conn, `SELECT oid::int8, rolname, rolsuper, rolbypassrls, rolcreaterole, rolreplication FROM pg_roles`, nil,
		func(rows *sql.Rows) error {
			var (
				oid int64
				ri  roleInfo
			)
			if err := rows.Scan(&oid, &ri.name, &ri.super, &ri.bypassRLS, &ri.createRole, &ri.replication); err != nil {
				return err
			}
			g.roles[oid], g.byName[ri.name] = ri, oid
			return nil
		})
	if err != nil {
		return nil, err
	}
	// PostgreSQL 16 gave each grant its own set_option and inherit_option. Reading them
	// through to_jsonb keeps one query for 15 and newer: on 15 the columns are absent,
	// every grant allows SET ROLE, and the member's rolinherit decides inheritance.
	err = each(ctx, conn, `
		SELECT m.member::int8, m.roleid::int8, m.admin_option,
		       coalesce((to_jsonb(m) ->> 'set_option')::boolean, true),
		       coalesce((to_jsonb(m) ->> 'inherit_option')::boolean, r.rolinherit)
		FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member`, nil,
		func(rows *sql.Rows) error {
			var (
				member int64
				e      roleGrant
			)
			if err := rows.Scan(&member, &e.group, &e.admin, &e.set, &e.inherit); err != nil {
				return err
			}
			g.grants[member] = append(g.grants[member], e)
			return nil
		})
	if err != nil {
		return nil, err
	}
	for m := range g.grants {
		slices.SortStableFunc(g.grants[m], func(a, b roleGrant) int { return strings.Compare(g.name(a.group), g.name(b.group)) })
	}
	qualified := make([]string, len(tables))
	for i, t := range tables {
		qualified[i] = t.schema + "." + t.name
	}
	err = each(ctx, conn, `
		SELECT c.relowner::int8, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname || '.' || c.relname = ANY($1) ORDER BY 2, 3`, []any{pq.Array(qualified)},
		func(rows *sql.Rows) error {
			var (
				owner int64
				t     tableRef
			)
			if err := rows.Scan(&owner, &t.schema, &t.name); err != nil {
				return err
			}
			g.owns[owner] = append(g.owns[owner], t.display(schema))
			return nil
		})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func (g *roleGraph) name(oid int64) string {
	if ri, ok := g.roles[oid]; ok {
		return ri.name
	}
	return fmt.Sprintf("(role %d)", oid)
}

func (g *roleGraph) names(oids []int64) []string {
	out := make([]string, len(oids))
	for i, o := range oids {
		out[i] = g.name(o)
	}
	return out
}

// reach returns start and every role it can act as, breadth first (shortest paths).
// A grant is followed if it allows anything: SET ROLE, inheritance, or ADMIN (with
// which the member can grant the role to itself). Mixed paths count too: a member that
// can SET ROLE to a role inherits, after SET ROLE, whatever that role inherits.
func (g *roleGraph) reach(start int64) []roleReach {
	out := []roleReach{{oid: start, path: []int64{start}}}
	seen := map[int64]bool{start: true}
	for i := 0; i < len(out); i++ {
		cur := out[i]
		for _, e := range g.grants[cur.oid] {
			if seen[e.group] || !(e.set || e.inherit || e.admin) {
				continue
			}
			seen[e.group] = true
			out = append(out, roleReach{
				oid:  e.group,
				path: append(slices.Clone(cur.path), e.group),
				via:  append(slices.Clone(cur.via), e),
			})
		}
	}
	return out
}

// dangers lists the privileges of role oid itself that defeat row-level security.
func (g *roleGraph) dangers(oid int64) []roleDanger {
	ri := g.roles[oid]
	var out []roleDanger
	if ri.super {
		out = append(out, roleDanger{code: ProblemRoleSuperuser, what: "is a superuser",
			why: "row-level security never applies to a superuser"})
	}
	if ri.bypassRLS {
		out = append(out, roleDanger{code: ProblemRoleBypassRLS, what: "has BYPASSRLS",
			why: "row-level security never applies to it"})
	}
	if ri.createRole {
		out = append(out, roleDanger{code: ProblemRoleCreateRole, what: "has CREATEROLE",
			why: "it can grant itself any non-superuser role (a table owner, a BYPASSRLS role, pg_execute_server_program) and then SET ROLE to it"})
	}
	if ri.replication {
		out = append(out, roleDanger{code: ProblemRoleReplication, what: "has REPLICATION",
			why: "it can decode the write-ahead log of every table (logical replication slots) or take a base backup, around row-level security"})
	}
	for _, t := range g.owns[oid] {
		out = append(out, roleDanger{code: ProblemRoleOwnsTable, table: t, what: "owns table " + t,
			why: "an owner can disable or un-force row-level security and drop or replace its policies"})
	}
	if slices.Contains(serverFileRoles, ri.name) {
		out = append(out, roleDanger{code: ProblemRoleServerFiles, what: "is the predefined role " + ri.name,
			why: "it reads or writes the server's files, or runs programs as the server's operating-system user, around every check of the database"})
	}
	return out
}

// describe says how the start role of rr reaches rr's role and what that role is:
// "role app is a member of cloneiso_owner (can SET ROLE, ...), which owns table insights".
func (g *roleGraph) describe(rr roleReach, what string) string {
	var b strings.Builder
	b.WriteString("role " + g.name(rr.path[0]))
	for i, e := range rr.via {
		if i > 0 {
			b.WriteString(", which")
		}
		fmt.Fprintf(&b, " is a member of %s (%s)", g.name(e.group), e)
	}
	if len(rr.via) > 0 {
		b.WriteString(", which")
	}
	b.WriteString(" " + what)
	return b.String()
}

// firstDanger returns the nearest role reachable from oid (oid included) that holds a
// privilege defeating row-level security, and that privilege.
func (g *roleGraph) firstDanger(oid int64) (roleReach, roleDanger, bool) {
	for _, rr := range g.reach(oid) {
		if d := g.dangers(rr.oid); len(d) > 0 {
			return rr, d[0], true
		}
	}
	return roleReach{}, roleDanger{}, false
}
