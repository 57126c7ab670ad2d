package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Problem codes reported by [CheckIsolation].
const (
	ProblemRoleSuperuser   = "role-superuser"    // the app role is a superuser: RLS never applies
	ProblemRoleBypassRLS   = "role-bypassrls"    // the app role has BYPASSRLS
	ProblemRoleOwnsTable   = "role-owns-table"   // the app role owns (or is a member of the owner of) a clone-owned table
	ProblemTableMissing    = "table-missing"     // a clone-owned table named in the options does not exist
	ProblemRLSDisabled     = "rls-disabled"      // row-level security is not enabled on a clone-owned table
	ProblemRLSNotForced    = "rls-not-forced"    // enabled but not forced: the owner bypasses it
	ProblemNoPolicy        = "no-policy"         // RLS on, but no policy applies to the app role: every row denied
	ProblemPolicyFailsOpen = "policy-fails-open" // a policy admits rows while the clone settings are unset
	ProblemPolicyErrors    = "policy-errors"     // a policy raises an error while the settings are unset
	ProblemDefaultSetting  = "default-setting"   // a role or database default presets a clone setting for every session
)

// Problem is one misconfiguration found by [CheckIsolation].
type Problem struct {
	Code   string // one of the Problem* constants
	Table  string // the table concerned, "" for role problems
	Detail string // human-readable explanation
}

func (p Problem) String() string {
	if p.Table == "" {
		return p.Code + ": " + p.Detail
	}
	return p.Code + " [" + p.Table + "]: " + p.Detail
}

// Report is the result of [CheckIsolation]. An empty Problems list means the database
// enforces clone isolation for the role.
type Report struct {
	Role     string
	Schema   string
	Tables   []string // clone-owned tables checked
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
	// Schema is the schema holding the tables; default: the connection's current schema.
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
// that would let the application role reach another clone's rows: the role is a
// superuser, has BYPASSRLS or owns a clone-owned table; a role or database default that
// presets a cloneiso.* setting for every session; a clone-owned table without
// row-level security enabled and forced, or without a policy for the role; a policy that
// admits rows, or raises an error, while the clone settings are unset.
//
// Policies are probed, not parsed: each permissive policy's USING and WITH CHECK
// expressions are evaluated, in a read-only transaction that is rolled back, against a
// row of random tenant and clone IDs with the settings never set (NULL) and set to ”
// (what a connection reads after an earlier transaction set them). A fail-closed policy
// is false in both cases. The function needs only catalog access; run it at start-up
// with the application's own connection, and in CI.
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
	add := func(code, table, format string, args ...any) {
		r.Problems = append(r.Problems, Problem{Code: code, Table: table, Detail: fmt.Sprintf(format, args...)})
	}

	var super, bypass bool
	err = conn.QueryRowContext(ctx, "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", r.Role).Scan(&super, &bypass)
	if err == sql.ErrNoRows {
		return nil, errs.New(errs.InvalidInput, op, "role %q does not exist", r.Role)
	} else if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "read role")
	}
	if super {
		add(ProblemRoleSuperuser, "", "role %s is a superuser; row-level security never applies to it", r.Role)
	}
	if bypass {
		add(ProblemRoleBypassRLS, "", "role %s has BYPASSRLS; row-level security never applies to it", r.Role)
	}

	// A default (ALTER ROLE/DATABASE ... SET cloneiso.clone_id = ...) would scope every
	// session that forgot to scope itself to one clone: fail open for that clone.
	var defaults []string
	rows, err := conn.QueryContext(ctx, `
		SELECT unnest(s.setconfig) FROM pg_db_role_setting s
		WHERE (s.setrole = 0 OR s.setrole = (SELECT oid FROM pg_roles WHERE rolname = $1))
		  AND (s.setdatabase = 0 OR s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()))`, r.Role)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "read default settings")
	}
	for rows.Next() {
		var kv string
		if err := rows.Scan(&kv); err != nil {
			rows.Close()
			return nil, errs.Wrap(errs.Unavailable, op, err, "read default settings")
		}
		if strings.HasPrefix(kv, "cloneiso.") {
			defaults = append(defaults, kv)
		}
	}
	rows.Close()
	for _, kv := range defaults {
		add(ProblemDefaultSetting, "", "a role or database default sets %s for every session; remove it with ALTER ROLE/DATABASE ... RESET", kv)
	}

	// The tables: the SDK's, the caller's, and any other with both scope columns.
	exempt := opts.Exempt
	if exempt == nil {
		exempt = []string{"audit_events", "clone_grants"}
	}
	want := append(CloneOwnedTables(), opts.Tables...)
	rows, err = conn.QueryContext(ctx, `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'clone_id' AND NOT a.attisdropped)`, r.Schema)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "list tables")
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, errs.Wrap(errs.Unavailable, op, err, "list tables")
		}
		want = append(want, t)
	}
	rows.Close()
	sort.Strings(want)
	want = slices.Compact(want)
	for _, t := range want {
		if !slices.Contains(exempt, t) {
			r.Tables = append(r.Tables, t)
		}
	}

	for _, t := range r.Tables {
		if err := checkTable(ctx, conn, r, t, add); err != nil {
			return nil, errs.Wrap(errs.Unavailable, op, err, "check table %s", t)
		}
	}
	if err := checkObjects(ctx, conn, r, add); err != nil {
		return nil, errs.Wrap(errs.Unavailable, op, err, "check views and functions")
	}
	return r, nil
}

func checkTable(ctx context.Context, conn *sql.Conn, r *Report, table string, add func(code, table, format string, args ...any)) error {
	var (
		oid            int64
		enabled, force bool
		owned          bool
		owner          string
	)
	err := conn.QueryRowContext(ctx, `
		SELECT c.oid, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner),
		       pg_has_role($3, c.relowner, 'MEMBER')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, r.Schema, table, r.Role).Scan(&oid, &enabled, &force, &owner, &owned)
	if err == sql.ErrNoRows {
		add(ProblemTableMissing, table, "table %s.%s does not exist", r.Schema, table)
		return nil
	} else if err != nil {
		return err
	}
	if owned {
		add(ProblemRoleOwnsTable, table, "role %s owns the table (owner %s)", r.Role, owner)
	}
	if !enabled {
		add(ProblemRLSDisabled, table, "row-level security is not enabled")
		return nil
	}
	if !force {
		add(ProblemRLSNotForced, table, "row-level security is not forced; its owner %s bypasses it", owner)
	}

	// Permissive policies that apply to the role for reading or writing.
	rows, err := conn.QueryContext(ctx, `
		SELECT p.polname, p.polcmd, coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
		       coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
		FROM pg_policy p
		WHERE p.polrelid = $1 AND p.polpermissive
		  AND (0 = ANY (p.polroles) OR EXISTS (
		        SELECT 1 FROM unnest(p.polroles) AS pr(oid) WHERE pg_has_role($2, pr.oid, 'MEMBER')))`, oid, r.Role)
	if err != nil {
		return err
	}
	type policy struct{ name, cmd, using, check string }
	var policies []policy
	for rows.Next() {
		var p policy
		if err := rows.Scan(&p.name, &p.cmd, &p.using, &p.check); err != nil {
			rows.Close()
			return err
		}
		policies = append(policies, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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
			open, probeErr := probe(ctx, conn, r.Schema, table, e.expr)
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
func probe(ctx context.Context, conn *sql.Conn, schema, table, expr string) (string, error) {
	qt := pq.QuoteIdentifier(schema) + "." + pq.QuoteIdentifier(table)
	q := "SELECT coalesce((" + expr + ")::boolean, false) FROM jsonb_populate_record(NULL::" + qt +
		", jsonb_build_object('tenant_id', gen_random_uuid(), 'clone_id', gen_random_uuid())) AS " + pq.QuoteIdentifier(table)
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	// First as the connection finds them (NULL unless set earlier on this connection),
	// then explicitly reset to '' as a previous transaction leaves them.
	for _, how := range []string{"never set (NULL)", "empty ('')"} {
		if how != "never set (NULL)" {
			if _, err := tx.ExecContext(ctx, "SELECT set_config('cloneiso.tenant_id', '', true), set_config('cloneiso.clone_id', '', true)"); err != nil {
				return "", err
			}
		}
		var admitted bool
		if err := tx.QueryRowContext(ctx, q).Scan(&admitted); err != nil {
			return "", err
		}
		if admitted {
			return how, nil
		}
	}
	return "", nil
}
