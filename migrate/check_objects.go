package migrate

import (
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/lib/pq"
)

// More problem codes reported by [CheckIsolation].
const (
	// A policy calls a function once per row instead of once per statement: slow (RLS
	// several to hundreds of times slower than a WHERE) and, when the function is
	// volatile, not even guaranteed to see one consistent setting.
	ProblemPolicyPerRowCall = "policy-per-row-call"
	// A policy calls a VOLATILE function.
	ProblemPolicyVolatile = "policy-volatile-function"
	// A view runs with its owner's rights (no security_invoker), so RLS is checked
	// against the owner: over a clone-owned table, or owned by a role that bypasses
	// RLS and readable by the app role, it can leak every clone.
	ProblemViewNotInvoker = "view-not-security-invoker"
	// A materialized view copies rows out of reach of RLS: over a clone-owned table, or
	// owned by a role that bypasses RLS and readable by the app role.
	ProblemMaterializedView = "materialized-view"
	// A SECURITY DEFINER function the app role can execute runs as an owner that
	// bypasses row-level security (superuser, BYPASSRLS, owner of a clone-owned table,
	// or a member of one).
	ProblemSecurityDefiner = "security-definer-function"
)

// cheapCalls are constructs pg_get_expr prints like calls that cost nothing per row.
var cheapCalls = map[string]bool{"coalesce": true, "nullif": true, "any": true, "all": true, "array": true,
	"row": true, "in": true, "and": true, "or": true, "not": true, "exists": true}

// perRowCalls returns the functions expr calls outside any "(SELECT ...)" sub-select,
// i.e. once per row. pg_get_expr prints an initplan-friendly sub-select as
// "( SELECT ...)" and a call as "name(".
func perRowCalls(expr string) []string {
	var (
		out   []string
		stack []bool // per open parenthesis: does it start a SELECT?
	)
	inSelect := func() bool {
		for _, s := range stack {
			if s {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '\'':
			i = skipQuotedAt(expr, i, '\'') - 1
		case c == '"':
			i = skipQuotedAt(expr, i, '"') - 1
		case c == '(':
			rest := strings.TrimLeft(expr[i+1:], " \n\t")
			isSelect := len(rest) >= 6 && strings.EqualFold(rest[:6], "select")
			// The identifier right before '(' (if any) names a called function.
			j := i
			for j > 0 && (isIdentByte(expr[j-1])) {
				j--
			}
			if name := strings.ToLower(expr[j:i]); name != "" && !isSelect && !inSelect() && !cheapCalls[name] && !isDigitByte(name[0]) {
				out = append(out, name)
			}
			stack = append(stack, isSelect)
		case c == ')':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	return out
}

func skipQuotedAt(s string, i int, q byte) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] == q {
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '.' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
func isDigitByte(c byte) bool { return '0' <= c && c <= '9' }

// checkPolicyCalls reports policies of table (oid) that call functions per row or call
// VOLATILE functions.
func checkPolicyCalls(ctx context.Context, conn *sql.Conn, table string, oid int64, add func(code, table, format string, args ...any)) error {
	type pol struct {
		oid                int64
		name, using, check string
	}
	var pols []pol
	err := each(ctx, conn, `
		SELECT p.oid, p.polname, coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
		FROM pg_policy p WHERE p.polrelid = $1`, []any{oid}, func(rows *sql.Rows) error {
		var p pol
		if err := rows.Scan(&p.oid, &p.name, &p.using, &p.check); err != nil {
			return err
		}
		pols = append(pols, p)
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range pols {
		for _, e := range []struct{ kind, expr string }{{"USING", p.using}, {"WITH CHECK", p.check}} {
			if calls := perRowCalls(e.expr); len(calls) > 0 {
				add(ProblemPolicyPerRowCall, table, "policy %s %s calls %s once per row; wrap the call in (SELECT ...) so it runs once per statement",
					p.name, e.kind, strings.Join(calls, ", "))
			}
		}
		var volatile []string
		err := each(ctx, conn, `
			SELECT DISTINCT f.oid::regprocedure::text FROM pg_depend d JOIN pg_proc f ON f.oid = d.refobjid
			WHERE d.classid = 'pg_policy'::regclass AND d.objid = $1 AND d.refclassid = 'pg_proc'::regclass AND f.provolatile = 'v'
			ORDER BY 1`, []any{p.oid}, func(rows *sql.Rows) error {
			var f string
			if err := rows.Scan(&f); err != nil {
				return err
			}
			volatile = append(volatile, f)
			return nil
		})
		if err != nil {
			return err
		}
		if len(volatile) > 0 {
			add(ProblemPolicyVolatile, table, "policy %s calls VOLATILE %s", p.name, strings.Join(volatile, ", "))
		}
	}
	return nil
}

// checkObjects reports the views, materialized views and SECURITY DEFINER functions
// through which the checked role reads rows around row-level security.
//
// They are judged by owner and privilege, never by their text (dynamic SQL hides the
// tables a body reads): a SECURITY DEFINER function runs as its owner, a view without
// security_invoker reads its tables as its owner, and a materialized view holds what its
// owner read when it was refreshed (the functions a plain view calls run as the reader,
// those of a materialized view as its owner). Any of them is a finding when the checked
// role (or any role it can act as, see [roleGraph.reach]) may execute or read it — or,
// for a function, fire it as a trigger on a table it can write or as an event trigger,
// which needs no EXECUTE privilege — and its owner can act as a superuser, a
// BYPASSRLS, CREATEROLE or REPLICATION role, an owner of a clone-owned table, or a
// server-files role. Independently of owners, a view without
// security_invoker or a materialized view over a clone-owned table is reported, since
// either one stops row-level security from being checked against the reader.
func checkObjects(ctx context.Context, conn *sql.Conn, r *Report, tables []tableRef, g *roleGraph, reach []roleReach, add func(p Problem, format string, args ...any)) error {
	c := &objectCheck{conn: conn, r: r, tables: tables, g: g, reach: reach, add: add, verdicts: map[int64]ownerVerdict{}}
	c.actors = make([]int64, len(reach))
	for i, rr := range reach {
		c.actors[i] = rr.oid
	}
	if err := c.definers(ctx); err != nil {
		return err
	}
	reported, err := c.views(ctx)
	if err != nil {
		return err
	}
	return c.viewsOverCloneTables(ctx, reported)
}

// objectCheck is the state of checkObjects: the role graph, the roles the checked role
// can act as (actors, the checked role first) and each owner's verdict, computed once.
type objectCheck struct {
	conn     *sql.Conn
	r        *Report
	tables   []tableRef // the clone-owned tables
	g        *roleGraph
	reach    []roleReach
	actors   []int64
	add      func(p Problem, format string, args ...any)
	verdicts map[int64]ownerVerdict
}

// ownerVerdict says whether an owner can act as a dangerous role, and through which.
type ownerVerdict struct {
	rr     roleReach
	d      roleDanger
	unsafe bool
}

// how says how the checked role gets a privilege granted to grantees (0 is PUBLIC).
func (c *objectCheck) how(grantees []int64) string {
	switch {
	case slices.Contains(grantees, c.actors[0]):
		return "(granted to it)"
	case slices.Contains(grantees, 0):
		return "through PUBLIC"
	}
	for _, rr := range c.reach[1:] {
		if slices.Contains(grantees, rr.oid) {
			return "through its membership in " + c.g.name(rr.oid)
		}
	}
	return "through a column-level grant"
}

// danger returns the verdict on owner.
func (c *objectCheck) danger(owner int64) ownerVerdict {
	v, ok := c.verdicts[owner]
	if !ok {
		v.rr, v.d, v.unsafe = c.g.firstDanger(owner)
		c.verdicts[owner] = v
	}
	return v
}

// definers reports the SECURITY DEFINER functions and procedures, in any schema and any
// language, that the role can call, or fire without EXECUTE: as a trigger on a table it
// can write, or as an event trigger on its DDL, and whose owner is dangerous.
func (c *objectCheck) definers(ctx context.Context) error {
	type definer struct {
		fn, lang string
		owner    int64
		grantees pq.Int64Array
		callable bool
		triggers pq.StringArray
		event    bool
	}
	var definers []definer
	err := each(ctx, c.conn, `
		SELECT f.oid::regprocedure::text, l.lanname, f.proowner::int8,
		       ARRAY(SELECT a.grantee::int8 FROM aclexplode(coalesce(f.proacl, acldefault('f', f.proowner))) a
		             WHERE a.privilege_type = 'EXECUTE' ORDER BY 1),
		       EXISTS (SELECT 1 FROM unnest($1::int8[]) AS a(oid) WHERE has_function_privilege(a.oid::oid, f.oid, 'EXECUTE')),
		       ARRAY(SELECT DISTINCT tg.tgrelid::regclass::text FROM pg_trigger tg
		             WHERE tg.tgfoid = f.oid AND tg.tgenabled <> 'D' AND EXISTS (
		                   SELECT 1 FROM unnest($1::int8[]) AS a(oid)
		                   WHERE has_table_privilege(a.oid::oid, tg.tgrelid, 'INSERT, UPDATE, DELETE, TRUNCATE'))
		             ORDER BY 1),
		       EXISTS (SELECT 1 FROM pg_event_trigger e WHERE e.evtfoid = f.oid AND e.evtenabled <> 'D')
		FROM pg_proc f JOIN pg_language l ON l.oid = f.prolang
		WHERE f.prosecdef
		ORDER BY 1`, []any{pq.Array(c.actors)}, func(rows *sql.Rows) error {
		var d definer
		if err := rows.Scan(&d.fn, &d.lang, &d.owner, &d.grantees, &d.callable, &d.triggers, &d.event); err != nil {
			return err
		}
		definers = append(definers, d)
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range definers {
		var reach string
		switch {
		case d.callable:
			reach = "can EXECUTE it " + c.how(d.grantees)
		case len(d.triggers) > 0:
			reach = "fires it, without EXECUTE, by writing " + strings.Join(d.triggers, ", ") + " (trigger)"
		case d.event:
			reach = "fires it, without EXECUTE, by running DDL (event trigger)"
		default:
			continue
		}
		if v := c.danger(d.owner); v.unsafe {
			c.add(Problem{Code: ProblemSecurityDefiner, Object: d.fn, Table: v.d.table, Roles: c.g.names(v.rr.path)},
				"SECURITY DEFINER function %s (LANGUAGE %s) runs as its owner, and %s; role %s %s, so whatever its body says it can read every clone's rows",
				d.fn, d.lang, c.g.describe(v.rr, v.d.what), c.r.Role, reach)
		}
	}
	return nil
}

// views reports the views (without security_invoker, naming a relation) and
// materialized views the role can read, outside PostgreSQL's own schemas, whose owner
// is dangerous. It returns the views it reported.
func (c *objectCheck) views(ctx context.Context) (map[string]bool, error) {
	type view struct {
		name, kind string
		owner      int64
		invoker    bool
		grantees   pq.Int64Array
		relations  bool // names a table, view or other relation (read as the owner)
	}
	var views []view
	err := each(ctx, c.conn, `
		SELECT n.nspname || '.' || v.relname, v.relkind::text, v.relowner::int8,
		       coalesce((SELECT o.option_value::boolean FROM pg_options_to_table(v.reloptions) o
		                 WHERE o.option_name = 'security_invoker'), false),
		       ARRAY(SELECT a.grantee::int8 FROM aclexplode(coalesce(v.relacl, acldefault('r', v.relowner))) a
		             WHERE a.privilege_type = 'SELECT' ORDER BY 1),
		       EXISTS (SELECT 1 FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
		               WHERE rw.ev_class = v.oid AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid)
		FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
		WHERE v.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND EXISTS (SELECT 1 FROM unnest($1::int8[]) AS a(oid) WHERE has_any_column_privilege(a.oid::oid, v.oid, 'SELECT'))
		ORDER BY 1`, []any{pq.Array(c.actors)}, func(rows *sql.Rows) error {
		var v view
		if err := rows.Scan(&v.name, &v.kind, &v.owner, &v.invoker, &v.grantees, &v.relations); err != nil {
			return err
		}
		views = append(views, v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	reported := map[string]bool{}
	for _, v := range views {
		if v.kind == "v" && (v.invoker || !v.relations) {
			// Row-level security is checked against the reader; or the view names no
			// relation, and the functions a view calls run as the reader anyway.
			continue
		}
		ov := c.danger(v.owner)
		if !ov.unsafe {
			continue
		}
		reported[v.name] = true
		p := Problem{Code: ProblemViewNotInvoker, Object: v.name, Table: ov.d.table, Roles: c.g.names(ov.rr.path)}
		if v.kind == "m" {
			p.Code = ProblemMaterializedView
			c.add(p, "materialized view %s holds what its owner read when it was refreshed, and %s; role %s can SELECT it %s",
				v.name, c.g.describe(ov.rr, ov.d.what), c.r.Role, c.how(v.grantees))
			continue
		}
		c.add(p, "view %s reads its tables as its owner (no security_invoker), and %s; role %s can SELECT it %s; set security_invoker = true",
			v.name, c.g.describe(ov.rr, ov.d.what), c.r.Role, c.how(v.grantees))
	}
	return reported, nil
}

// viewsOverCloneTables reports any view without security_invoker or materialized view
// over a clone-owned table (not already reported), whoever owns it and whoever may read
// it: it takes the table out of the reader's row-level security.
func (c *objectCheck) viewsOverCloneTables(ctx context.Context, reported map[string]bool) error {
	qualified := make([]string, len(c.tables))
	for i, t := range c.tables {
		qualified[i] = t.schema + "." + t.name
	}
	return each(ctx, c.conn, `
		SELECT DISTINCT vn.nspname || '.' || v.relname, v.relkind::text, tn.nspname, t.relname,
		       coalesce((SELECT o.option_value::boolean FROM pg_options_to_table(v.reloptions) o
		                 WHERE o.option_name = 'security_invoker'), false)
		FROM pg_class v
		JOIN pg_namespace vn ON vn.oid = v.relnamespace
		JOIN pg_rewrite rw ON rw.ev_class = v.oid
		JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
		JOIN pg_class t ON t.oid = d.refobjid
		JOIN pg_namespace tn ON tn.oid = t.relnamespace
		WHERE v.relkind IN ('v', 'm') AND tn.nspname || '.' || t.relname = ANY($1) AND t.oid <> v.oid
		ORDER BY 1, 3, 4`, []any{pq.Array(qualified)}, func(rows *sql.Rows) error {
		var (
			view, kind string
			ref        tableRef
			invoker    bool
		)
		if err := rows.Scan(&view, &kind, &ref.schema, &ref.name, &invoker); err != nil {
			return err
		}
		table := ref.display(c.r.Schema)
		switch {
		case reported[view]:
		case kind == "m":
			c.add(Problem{Code: ProblemMaterializedView, Table: table, Object: view},
				"materialized view %s copies rows of %s where row-level security does not apply", view, table)
		case !invoker:
			c.add(Problem{Code: ProblemViewNotInvoker, Table: table, Object: view},
				"view %s reads %s with its owner's rights; set security_invoker = true", view, table)
		}
		return nil
	})
}
