package migrate_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

// checkFixture is a fresh migrated database with a role of its own, so a test can
// misconfigure both without disturbing others.
type checkFixture struct {
	db   *pgtest.DB
	role string
	app  *sqlx.DB // connected as role
}

func newCheckFixture(t *testing.T) *checkFixture {
	t.Helper()
	db := pgtest.Fresh(t, true)
	var b [4]byte
	rand.Read(b[:])
	role := "cloneiso_chk_" + hex.EncodeToString(b[:])
	if _, err := db.Owner.Exec("CREATE ROLE " + pq.QuoteIdentifier(role) + " LOGIN PASSWORD 'chk' NOSUPERUSER NOBYPASSRLS"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Owner.Exec(migrate.AppRoleSQL(role, "")); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(db.OwnerURL)
	u.User = url.UserPassword(role, "chk")
	app, err := sqlx.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		app.Close()
		db.Owner.Exec("DROP OWNED BY " + pq.QuoteIdentifier(role))
		db.Owner.Exec("DROP ROLE " + pq.QuoteIdentifier(role))
	})
	return &checkFixture{db: db, role: role, app: app}
}

func (f *checkFixture) check(t *testing.T) *migrate.Report {
	t.Helper()
	r, err := migrate.CheckIsolation(context.Background(), f.app.DB, nil)
	if err != nil {
		t.Fatalf("CheckIsolation: %v", err)
	}
	if r.Role != f.role {
		t.Fatalf("checked role %q; want %q", r.Role, f.role)
	}
	return r
}

func hasProblem(r *migrate.Report, code, table string) bool {
	return slices.ContainsFunc(r.Problems, func(p migrate.Problem) bool { return p.Code == code && p.Table == table })
}

func TestCheckIsolation(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a database per case")
	}
	t.Run("correct setup reports nothing", func(t *testing.T) {
		f := newCheckFixture(t)
		// An invoker view is fine.
		if _, err := f.db.Owner.Exec("CREATE VIEW my_insights WITH (security_invoker = true) AS SELECT * FROM insights"); err != nil {
			t.Fatal(err)
		}
		r := f.check(t)
		if !r.OK() {
			t.Fatalf("problems on a correct setup:\n%s", r)
		}
		if len(r.Tables) != len(migrate.CloneOwnedTables()) {
			t.Fatalf("checked tables %v", r.Tables)
		}
	})

	cases := []struct {
		name   string
		break_ string // SQL run as the owner; %ROLE% is the app role
		code   string
		table  string
	}{
		{"superuser", "ALTER ROLE %ROLE% SUPERUSER", migrate.ProblemRoleSuperuser, ""},
		{"bypassrls", "ALTER ROLE %ROLE% BYPASSRLS", migrate.ProblemRoleBypassRLS, ""},
		{"role owns a table", "ALTER TABLE insights OWNER TO %ROLE%", migrate.ProblemRoleOwnsTable, "insights"},
		{"role is a member of the owner", `CREATE ROLE %ROLE%_owner; ALTER TABLE documents OWNER TO %ROLE%_owner;
			GRANT %ROLE%_owner TO %ROLE%`, migrate.ProblemRoleOwnsTable, "documents"},
		{"rls not forced", "ALTER TABLE messages NO FORCE ROW LEVEL SECURITY", migrate.ProblemRLSNotForced, "messages"},
		{"rls disabled", "ALTER TABLE conversations DISABLE ROW LEVEL SECURITY", migrate.ProblemRLSDisabled, "conversations"},
		{"no policy", "DROP POLICY clone_isolation ON training_examples", migrate.ProblemNoPolicy, "training_examples"},
		{"fail-open policy (IS NULL escape)", `DROP POLICY clone_isolation ON documents;
			CREATE POLICY open_when_unset ON documents USING (
				current_setting('cloneiso.clone_id', true) IS NULL OR current_setting('cloneiso.clone_id', true) = ''
				OR clone_id = current_setting('cloneiso.clone_id', true)::uuid)`, migrate.ProblemPolicyFailsOpen, "documents"},
		{"fail-open extra permissive policy", "CREATE POLICY debug ON document_chunks USING (true)", migrate.ProblemPolicyFailsOpen, "document_chunks"},
		{"fail-open WITH CHECK", `CREATE POLICY ins ON insights FOR INSERT WITH CHECK (true)`, migrate.ProblemPolicyFailsOpen, "insights"},
		{"policy errors on '' (no NULLIF)", `DROP POLICY clone_isolation ON messages;
			CREATE POLICY strict ON messages USING (clone_id = current_setting('cloneiso.clone_id', true)::uuid)`, migrate.ProblemPolicyErrors, "messages"},
		{"role default setting", "ALTER ROLE %ROLE% IN DATABASE " + "%DB%" + " SET cloneiso.clone_id = '3f2504e0-4f89-41d3-9a0c-0305e82c3301'", migrate.ProblemDefaultSetting, ""},
		{"policy with a per-row call", `DROP POLICY clone_isolation ON insights;
			CREATE POLICY slow ON insights USING (tenant_id = NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid
				AND clone_id = (SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid))`, migrate.ProblemPolicyPerRowCall, "insights"},
		{"policy with a volatile function", `CREATE FUNCTION chk_vol() RETURNS uuid LANGUAGE sql VOLATILE AS $$ SELECT NULLIF(current_setting('cloneiso.clone_id', true), '')::uuid $$;
			DROP POLICY clone_isolation ON documents;
			CREATE POLICY vol ON documents USING (tenant_id = (SELECT NULLIF(current_setting('cloneiso.tenant_id', true), '')::uuid) AND clone_id = (SELECT chk_vol()))`,
			migrate.ProblemPolicyVolatile, "documents"},
		{"view without security_invoker", "CREATE VIEW all_insights AS SELECT * FROM insights", migrate.ProblemViewNotInvoker, "insights"},
		{"materialized view", "CREATE MATERIALIZED VIEW msg_copy AS SELECT * FROM messages", migrate.ProblemMaterializedView, "messages"},
		{"security definer function", `CREATE FUNCTION leak_docs() RETURNS SETOF documents LANGUAGE plpgsql SECURITY DEFINER AS $$ BEGIN RETURN QUERY SELECT * FROM documents; END $$`,
			migrate.ProblemSecurityDefiner, "documents"},
		{"host table without RLS", "CREATE TABLE host_notes (tenant_id uuid, clone_id uuid, body text)", migrate.ProblemRLSDisabled, "host_notes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCheckFixture(t)
			stmt := strings.ReplaceAll(replaceRole(c.break_, f.role), "%DB%", pq.QuoteIdentifier(f.db.Name))
			if _, err := f.db.Owner.Exec(stmt); err != nil {
				t.Fatalf("misconfiguring: %v", err)
			}
			if c.name == "superuser" || c.name == "bypassrls" {
				// Role attributes are cluster-wide: undo before the role is dropped.
				t.Cleanup(func() { f.db.Owner.Exec(replaceRole("ALTER ROLE %ROLE% NOSUPERUSER NOBYPASSRLS", f.role)) })
			}
			if c.name == "role is a member of the owner" {
				t.Cleanup(func() {
					f.db.Owner.Exec(replaceRole("ALTER TABLE documents OWNER TO CURRENT_USER; DROP ROLE %ROLE%_owner", f.role))
				})
			}
			r := f.check(t)
			if !hasProblem(r, c.code, c.table) {
				t.Fatalf("misconfiguration %q not reported as %s [%s]; report:\n%s", c.name, c.code, c.table, r)
			}
		})
	}
}

func replaceRole(s, role string) string {
	out := []byte{}
	for i := 0; i < len(s); {
		if i+6 <= len(s) && s[i:i+6] == "%ROLE%" {
			name := role
			i += 6
			if strings.HasPrefix(s[i:], "_owner") {
				name += "_owner"
				i += 6
			}
			out = append(out, pq.QuoteIdentifier(name)...)
			continue
		}
		out = append(out, s[i])
		i++
	}
	return string(out)
}

func TestPerRowCalls(t *testing.T) {
	for expr, want := range map[string]string{
		`((tenant_id = ( SELECT (NULLIF(current_setting('cloneiso.tenant_id'::text, true), ''::text))::uuid AS "nullif")))`: "",
		`(tenant_id = (NULLIF(current_setting('cloneiso.tenant_id'::text, true), ''::text))::uuid)`:                         "current_setting",
		`(clone_id = ( SELECT my_fn() AS my_fn))`:                                                                           "",
		`(lower(content) = 'x(y)')`:                      "lower",
		`(clone_id = ANY (ARRAY['a'::uuid]))`:            "",
		`(public.scope_of(tenant_id) AND (SELECT true))`: "public.scope_of",
	} {
		got := strings.Join(migrate.PerRowCalls(expr), ",")
		if got != want {
			t.Errorf("perRowCalls(%s) = %q; want %q", expr, got, want)
		}
	}
}
