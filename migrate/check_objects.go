package migrate

import (
	"context"
	"database/sql"
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
	// A view over a clone-owned table runs with its owner's rights (no
	// security_invoker), so RLS is checked against the owner: it can leak every clone.
	ProblemViewNotInvoker = "view-not-security-invoker"
	// A materialized view copies clone-owned rows out of reach of RLS.
	ProblemMaterializedView = "materialized-view"
	// A SECURITY DEFINER function reads a clone-owned table with its owner's rights.
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
	rows, err := conn.QueryContext(ctx, `
		SELECT p.oid, p.polname, coalesce(pg_get_expr(p.polqual, p.polrelid), ''), coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
		FROM pg_policy p WHERE p.polrelid = $1`, oid)
	if err != nil {
		return err
	}
	type pol struct {
		oid                int64
		name, using, check string
	}
	var pols []pol
	for rows.Next() {
		var p pol
		if err := rows.Scan(&p.oid, &p.name, &p.using, &p.check); err != nil {
			rows.Close()
			return err
		}
		pols = append(pols, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
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
		vrows, err := conn.QueryContext(ctx, `
			SELECT DISTINCT f.oid::regprocedure::text FROM pg_depend d JOIN pg_proc f ON f.oid = d.refobjid
			WHERE d.classid = 'pg_policy'::regclass AND d.objid = $1 AND d.refclassid = 'pg_proc'::regclass AND f.provolatile = 'v'`, p.oid)
		if err != nil {
			return err
		}
		for vrows.Next() {
			var f string
			if err := vrows.Scan(&f); err != nil {
				vrows.Close()
				return err
			}
			volatile = append(volatile, f)
		}
		vrows.Close()
		if len(volatile) > 0 {
			add(ProblemPolicyVolatile, table, "policy %s calls VOLATILE %s", p.name, strings.Join(volatile, ", "))
		}
	}
	return nil
}

// checkObjects reports views, materialized views and SECURITY DEFINER functions that
// read clone-owned tables around row-level security.
func checkObjects(ctx context.Context, conn *sql.Conn, r *Report, add func(code, table, format string, args ...any)) error {
	tables := pq.Array(r.Tables)
	rows, err := conn.QueryContext(ctx, `
		SELECT DISTINCT vn.nspname || '.' || v.relname, v.relkind::text, t.relname,
		       coalesce(array_to_string(v.reloptions, ','), '')
		FROM pg_class v
		JOIN pg_namespace vn ON vn.oid = v.relnamespace
		JOIN pg_rewrite rw ON rw.ev_class = v.oid
		JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
		JOIN pg_class t ON t.oid = d.refobjid
		JOIN pg_namespace tn ON tn.oid = t.relnamespace
		WHERE v.relkind IN ('v', 'm') AND tn.nspname = $1 AND t.relname = ANY($2) AND t.oid <> v.oid
		ORDER BY 1`, r.Schema, tables)
	if err != nil {
		return err
	}
	for rows.Next() {
		var view, kind, table, opts string
		if err := rows.Scan(&view, &kind, &table, &opts); err != nil {
			rows.Close()
			return err
		}
		switch {
		case kind == "m":
			add(ProblemMaterializedView, table, "materialized view %s copies rows of %s where row-level security does not apply", view, table)
		case !strings.Contains(opts, "security_invoker=true") && !strings.Contains(opts, "security_invoker=on"):
			add(ProblemViewNotInvoker, table, "view %s reads %s with its owner's rights; set security_invoker = true", view, table)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// SECURITY DEFINER functions outside the system schemas whose body names a
	// clone-owned table (by text for PL/pgSQL and SQL bodies, by dependency for
	// SQL-standard bodies).
	rows, err = conn.QueryContext(ctx, `
		SELECT DISTINCT f.oid::regprocedure::text, t
		FROM pg_proc f JOIN pg_namespace n ON n.oid = f.pronamespace, unnest($1::text[]) AS t
		WHERE f.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema')
		  AND (f.prosrc ~* ('\m' || t || '\M') OR EXISTS (
		        SELECT 1 FROM pg_depend d JOIN pg_class c ON c.oid = d.refobjid
		        WHERE d.classid = 'pg_proc'::regclass AND d.objid = f.oid AND d.refclassid = 'pg_class'::regclass AND c.relname = t))
		ORDER BY 1, 2`, tables)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var fn, table string
		if err := rows.Scan(&fn, &table); err != nil {
			return err
		}
		add(ProblemSecurityDefiner, table, "SECURITY DEFINER function %s reads %s with its owner's rights, around row-level security", fn, table)
	}
	return rows.Err()
}
