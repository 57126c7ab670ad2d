package migrate_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
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

// hasProblem reports whether r holds a problem of code about table or object where.
func hasProblem(r *migrate.Report, code, where string) bool {
	return slices.ContainsFunc(r.Problems, func(p migrate.Problem) bool {
		return p.Code == code && (p.Table == where || p.Object == where)
	})
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
			migrate.ProblemSecurityDefiner, "leak_docs()"},
		{"host table without RLS", "CREATE TABLE host_notes (tenant_id uuid, clone_id uuid, body text)", migrate.ProblemRLSDisabled, "host_notes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCheckFixture(t)
			stmt := strings.ReplaceAll(replaceRoles(c.break_, f.role), "%DB%", pq.QuoteIdentifier(f.db.Name))
			if _, err := f.db.Owner.Exec(stmt); err != nil {
				t.Fatalf("misconfiguring: %v", err)
			}
			if c.name == "superuser" || c.name == "bypassrls" {
				// Role attributes are cluster-wide: undo before the role is dropped.
				t.Cleanup(func() { f.db.Owner.Exec(replaceRoles("ALTER ROLE %ROLE% NOSUPERUSER NOBYPASSRLS", f.role)) })
			}
			if c.name == "role is a member of the owner" {
				t.Cleanup(func() {
					f.db.Owner.Exec(replaceRoles("ALTER TABLE documents OWNER TO CURRENT_USER; DROP ROLE %ROLE%_owner", f.role))
				})
			}
			r := f.check(t)
			if !hasProblem(r, c.code, c.table) {
				t.Fatalf("misconfiguration %q not reported as %s [%s]; report:\n%s", c.name, c.code, c.table, r)
			}
		})
	}
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

// twoClones are two clones of one tenant, each with one insight only it may read.
type twoClones struct {
	tenant, a, b     string
	secretA, secretB string
	fixture          *checkFixture
}

// seedTwoClones writes one insight for each of two clones, as the schema owner.
func seedTwoClones(t *testing.T, f *checkFixture) *twoClones {
	t.Helper()
	c := &twoClones{tenant: newUUID(), a: newUUID(), b: newUUID(), secretA: "secret of clone A", secretB: "secret of clone B", fixture: f}
	for _, s := range []struct {
		q    string
		args []any
	}{
		{"INSERT INTO tenants (id, plan) VALUES ($1, 'enterprise')", []any{c.tenant}},
		{"INSERT INTO clones (tenant_id, id, owner_subject) VALUES ($1, $2, 'a'), ($1, $3, 'b')", []any{c.tenant, c.a, c.b}},
		{"INSERT INTO insights (tenant_id, clone_id, id, content) VALUES ($1, $2, gen_random_uuid(), $4), ($1, $3, gen_random_uuid(), $5)",
			[]any{c.tenant, c.a, c.b, c.secretA, c.secretB}},
	} {
		if _, err := f.db.Owner.Exec(s.q, s.args...); err != nil {
			t.Fatalf("seeding two clones: %v", err)
		}
	}
	return c
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// readAs connects as the app role, scopes a transaction to clone (as the SDK does),
// runs the attack statements and then query, and returns every text the query
// produced. The transaction is rolled back.
func (c *twoClones) readAs(t *testing.T, clone string, attack []string, query string) string {
	t.Helper()
	tx, err := c.fixture.app.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("SELECT set_config('cloneiso.tenant_id', $1, true), set_config('cloneiso.clone_id', $2, true)", c.tenant, clone); err != nil {
		t.Fatal(err)
	}
	for _, s := range attack {
		if _, err := tx.Exec(replaceRoles(s, c.fixture.role)); err != nil {
			t.Fatalf("attack step %q: %v", s, err)
		}
	}
	var out []string
	if err := tx.Select(&out, query); err != nil {
		t.Fatalf("reading %q: %v", query, err)
	}
	return strings.Join(out, "\n")
}

// proveIsolated shows that each clone reads its own insight and not the other's, from
// the app role with no attack: the data exists and row-level security holds.
func (c *twoClones) proveIsolated(t *testing.T) {
	t.Helper()
	const q = "SELECT content FROM insights"
	if got := c.readAs(t, c.a, nil, q); got != c.secretA {
		t.Fatalf("clone A reads %q; want only its own insight", got)
	}
	if got := c.readAs(t, c.b, nil, q); got != c.secretB {
		t.Fatalf("clone B reads %q; want only its own insight", got)
	}
}

// proveLeak shows that the attack, run by the app role scoped to clone A, reads clone
// B's insight.
func (c *twoClones) proveLeak(t *testing.T, attack []string, query string) {
	t.Helper()
	if got := c.readAs(t, c.a, attack, query); !strings.Contains(got, c.secretB) {
		t.Fatalf("the attack did not work (so the test proves nothing): clone A read %q", got)
	}
}

// extraRole creates a role named after the fixture's role plus suffix, with options,
// and drops it when t ends (giving back what it owns first). Roles are cluster-wide:
// the name is unique per test.
func (f *checkFixture) extraRole(t *testing.T, suffix, options string) string {
	t.Helper()
	name := f.role + "_" + suffix
	q := pq.QuoteIdentifier(name)
	if _, err := f.db.Owner.Exec("CREATE ROLE " + q + " " + options); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.db.Owner.Exec("REASSIGN OWNED BY " + q + " TO CURRENT_USER; DROP OWNED BY " + q)
		if _, err := f.db.Owner.Exec("DROP ROLE " + q); err != nil {
			t.Errorf("dropping role %s: %v", name, err)
		}
	})
	return name
}

// exec runs SQL as the schema owner; %ROLE% is the app role, %ROLE%_x the extra role x.
func (f *checkFixture) exec(t *testing.T, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := f.db.Owner.Exec(replaceRoles(s, f.role)); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// replaceRoles quotes %ROLE% and %ROLE%_suffix as role names.
func replaceRoles(s, role string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "%ROLE%")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i+len("%ROLE%"):]
		name := role
		if strings.HasPrefix(s, "_") {
			j := 1
			for j < len(s) && (s[j] == '_' || 'a' <= s[j] && s[j] <= 'z' || '0' <= s[j] && s[j] <= '9') {
				j++
			}
			name += s[:j]
			s = s[j:]
		}
		b.WriteString(pq.QuoteIdentifier(name))
	}
}

// findProblem returns the problem of code about where ("" for role problems), or fails t.
func findProblem(t *testing.T, r *migrate.Report, code, where string) migrate.Problem {
	t.Helper()
	for _, p := range r.Problems {
		if p.Code == code && (where == "" || p.Table == where || p.Object == where) {
			return p
		}
	}
	t.Fatalf("not reported as %s [%s]; report:\n%s", code, where, r)
	return migrate.Problem{}
}

// TestCheckIsolationRoleGraph: an app role that can act as a dangerous role through
// membership — SET ROLE or inheritance, directly or nested — reads every clone's rows;
// each path is shown to work as an attack, then to be reported with its cause.
func TestCheckIsolationRoleGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a database per case")
	}
	const read = "SELECT content FROM insights"
	cases := []struct {
		name   string
		roles  map[string]string // extra roles: suffix -> CREATE ROLE options
		setup  []string          // as the schema owner
		attack []string          // as the app role, scoped to clone A
		code   string
		table  string
		path   []string // expected Roles, as suffixes of the app role ("" is the app role)
		detail []string // substrings of the detail
	}{
		{
			name:   "direct superuser",
			setup:  []string{"ALTER ROLE %ROLE% SUPERUSER"},
			code:   migrate.ProblemRoleSuperuser,
			path:   []string{""},
			detail: []string{"is a superuser"},
		},
		{
			name:   "NOINHERIT member of a superuser (SET ROLE)",
			roles:  map[string]string{"adm": "SUPERUSER NOLOGIN"},
			setup:  []string{"ALTER ROLE %ROLE% NOINHERIT", "GRANT %ROLE%_adm TO %ROLE%"},
			attack: []string{"SET LOCAL ROLE %ROLE%_adm"},
			code:   migrate.ProblemRoleSuperuser,
			path:   []string{"", "_adm"},
			detail: []string{"is a member of", "(can SET ROLE, does not inherit), which is a superuser"},
		},
		{
			name:   "inherits from a BYPASSRLS role",
			roles:  map[string]string{"byp": "BYPASSRLS NOLOGIN"},
			setup:  []string{"GRANT SELECT ON insights TO %ROLE%_byp", "GRANT %ROLE%_byp TO %ROLE%"},
			attack: []string{"SET LOCAL ROLE %ROLE%_byp"},
			code:   migrate.ProblemRoleBypassRLS,
			path:   []string{"", "_byp"},
			detail: []string{"(can SET ROLE, inherits its privileges), which has BYPASSRLS"},
		},
		{
			name:   "member of a table owner",
			roles:  map[string]string{"own": "NOLOGIN"},
			setup:  []string{"ALTER TABLE insights OWNER TO %ROLE%_own", "GRANT %ROLE%_own TO %ROLE%"},
			attack: []string{"ALTER TABLE insights NO FORCE ROW LEVEL SECURITY"}, // inherited ownership suffices
			code:   migrate.ProblemRoleOwnsTable,
			table:  "insights",
			path:   []string{"", "_own"},
			detail: []string{"which owns table insights"},
		},
		{
			name:  "nested two levels",
			roles: map[string]string{"mid": "NOLOGIN NOINHERIT", "top": "SUPERUSER NOLOGIN"},
			setup: []string{"GRANT %ROLE%_top TO %ROLE%_mid", "GRANT %ROLE%_mid TO %ROLE%"},
			// SET ROLE follows indirect membership whatever the INHERIT flags.
			attack: []string{"SET LOCAL ROLE %ROLE%_top"},
			code:   migrate.ProblemRoleSuperuser,
			path:   []string{"", "_mid", "_top"},
			detail: []string{"is a member of", ", which is a member of", ", which is a superuser"},
		},
		{
			name:  "CREATEROLE",
			roles: map[string]string{"own": "NOLOGIN"},
			setup: []string{"ALTER TABLE insights OWNER TO %ROLE%_own", "ALTER ROLE %ROLE% CREATEROLE"},
			attack: []string{"GRANT %ROLE%_own TO %ROLE%", "SET LOCAL ROLE %ROLE%_own",
				"ALTER TABLE insights NO FORCE ROW LEVEL SECURITY"},
			code:   migrate.ProblemRoleCreateRole,
			path:   []string{""},
			detail: []string{"has CREATEROLE", "grant itself"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCheckFixture(t)
			data := seedTwoClones(t, f)
			data.proveIsolated(t)
			if !f.check(t).OK() {
				t.Fatalf("problems before the misconfiguration:\n%s", f.check(t))
			}
			for suffix, opts := range c.roles {
				f.extraRole(t, suffix, opts)
			}
			// Role attributes are cluster-wide: undo them before the role is dropped.
			t.Cleanup(func() { f.exec(t, "ALTER ROLE %ROLE% NOSUPERUSER NOCREATEROLE INHERIT") })
			f.exec(t, c.setup...)

			data.proveLeak(t, c.attack, read)

			r := f.check(t)
			p := findProblem(t, r, c.code, c.table)
			want := make([]string, len(c.path))
			for i, s := range c.path {
				want[i] = f.role + s
			}
			if !slices.Equal(p.Roles, want) {
				t.Errorf("path %v; want %v", p.Roles, want)
			}
			for _, d := range append([]string{"role " + f.role + " "}, c.detail...) {
				if !strings.Contains(p.Detail, d) {
					t.Errorf("detail %q does not say %q", p.Detail, d)
				}
			}
			t.Logf("reported: %s", p)
		})
	}

	t.Run("harmless membership is not reported", func(t *testing.T) {
		f := newCheckFixture(t)
		data := seedTwoClones(t, f)
		f.extraRole(t, "readers", "NOLOGIN")
		f.exec(t, "GRANT SELECT ON insights TO %ROLE%_readers", "GRANT %ROLE%_readers TO %ROLE%")
		if got := data.readAs(t, data.a, []string{"SET LOCAL ROLE %ROLE%_readers"}, read); got != data.secretA {
			t.Fatalf("a plain role reads %q", got)
		}
		if r := f.check(t); !r.OK() {
			t.Fatalf("a membership that grants nothing dangerous is reported:\n%s", r)
		}
	})

	t.Run("REPLICATION", func(t *testing.T) {
		// Not attacked here: the test server has wal_level=replica and no replication
		// entry in pg_hba.conf. With wal_level=logical, pg_logical_slot_get_changes
		// decodes every clone's rows.
		f := newCheckFixture(t)
		t.Cleanup(func() { f.exec(t, "ALTER ROLE %ROLE% NOREPLICATION") })
		f.exec(t, "ALTER ROLE %ROLE% REPLICATION")
		findProblem(t, f.check(t), migrate.ProblemRoleReplication, "")
	})

	t.Run("server files role", func(t *testing.T) {
		f := newCheckFixture(t)
		f.exec(t, "GRANT pg_read_server_files TO %ROLE%")
		p := findProblem(t, f.check(t), migrate.ProblemRoleServerFiles, "")
		if !slices.Equal(p.Roles, []string{f.role, "pg_read_server_files"}) {
			t.Errorf("path %v", p.Roles)
		}
	})
}

// TestCheckIsolationDefinersAndViews: SECURITY DEFINER functions and views are judged
// by owner and privilege, not by their text: each one below hides the table name in
// dynamic SQL, is shown to leak clone B's rows to clone A, and then to be reported.
func TestCheckIsolationDefinersAndViews(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a database per case")
	}
	cases := []struct {
		name   string
		roles  map[string]string
		setup  []string // as the schema owner (a superuser)
		attack []string
		read   string
		code   string
		object string
		detail []string
	}{
		{
			name: "plpgsql dynamic SQL owned by a superuser, EXECUTE through PUBLIC",
			setup: []string{`CREATE FUNCTION peek() RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER AS $$
				BEGIN RETURN QUERY EXECUTE 'SELECT content FROM ' || 'insi' || 'ghts'; END $$`},
			read:   "SELECT * FROM peek()",
			code:   migrate.ProblemSecurityDefiner,
			object: "peek()",
			detail: []string{"LANGUAGE plpgsql", "is a superuser", "through PUBLIC"},
		},
		{
			name:  "LANGUAGE sql owned by a BYPASSRLS role, EXECUTE through membership",
			roles: map[string]string{"byp": "BYPASSRLS NOLOGIN", "callers": "NOLOGIN"},
			setup: []string{
				"GRANT SELECT ON insights TO %ROLE%_byp",
				`CREATE FUNCTION peek_sql() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$
					SELECT query_to_xml('SELECT content FROM ' || 'insi' || 'ghts', false, false, '')::text $$`,
				"ALTER FUNCTION peek_sql() OWNER TO %ROLE%_byp",
				"REVOKE EXECUTE ON FUNCTION peek_sql() FROM PUBLIC",
				"GRANT EXECUTE ON FUNCTION peek_sql() TO %ROLE%_callers",
				"GRANT %ROLE%_callers TO %ROLE%",
			},
			read:   "SELECT peek_sql()",
			code:   migrate.ProblemSecurityDefiner,
			object: "peek_sql()",
			detail: []string{"LANGUAGE sql", "has BYPASSRLS", "through its membership in"},
		},
		{
			name:  "plpgsql owned by a member of the table owner",
			roles: map[string]string{"own": "NOLOGIN", "fnowner": "NOLOGIN"},
			setup: []string{
				"ALTER TABLE insights OWNER TO %ROLE%_own",
				"GRANT %ROLE%_own TO %ROLE%_fnowner",
				`CREATE FUNCTION peek_owner() RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER AS $$
					BEGIN EXECUTE 'ALTER TABLE ' || 'insi' || 'ghts NO FORCE ROW LEVEL SECURITY';
					RETURN QUERY EXECUTE 'SELECT content FROM ' || 'insi' || 'ghts'; END $$`,
				"ALTER FUNCTION peek_owner() OWNER TO %ROLE%_fnowner",
			},
			read:   "SELECT * FROM peek_owner()",
			code:   migrate.ProblemSecurityDefiner,
			object: "peek_owner()",
			detail: []string{"is a member of", "which owns table insights"},
		},
		{
			name: "trigger function owned by a superuser, no EXECUTE needed",
			setup: []string{
				"CREATE TABLE notes (body text)",
				"GRANT SELECT, INSERT ON notes TO %ROLE%",
				`CREATE FUNCTION fill_note() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
					BEGIN EXECUTE 'SELECT string_agg(content, '','') FROM ' || 'insi' || 'ghts' INTO NEW.body; RETURN NEW; END $$`,
				"REVOKE EXECUTE ON FUNCTION fill_note() FROM PUBLIC",
				"CREATE TRIGGER fill_note BEFORE INSERT ON notes FOR EACH ROW EXECUTE FUNCTION fill_note()",
			},
			attack: []string{"INSERT INTO notes VALUES ('x')"},
			read:   "SELECT body FROM notes",
			code:   migrate.ProblemSecurityDefiner,
			object: "fill_note()",
			detail: []string{"is a superuser", "without EXECUTE, by writing notes (trigger)"},
		},
		{
			name: "materialized view owned by a superuser",
			setup: []string{
				`CREATE MATERIALIZED VIEW insight_digest AS
					SELECT query_to_xml('SELECT content FROM ' || 'insi' || 'ghts', false, false, '')::text AS x`,
				"GRANT SELECT ON insight_digest TO %ROLE%",
			},
			read:   "SELECT x FROM insight_digest",
			code:   migrate.ProblemMaterializedView,
			object: "public.insight_digest",
			detail: []string{"is a superuser", "(granted to it)"},
		},
		{
			name: "view owned by a superuser",
			// Functions a view calls run as the reader; the tables it names are read as
			// its owner.
			setup: []string{
				"CREATE VIEW insight_feed AS SELECT content AS x FROM insights",
				"GRANT SELECT ON insight_feed TO %ROLE%",
			},
			read:   "SELECT x FROM insight_feed",
			code:   migrate.ProblemViewNotInvoker,
			object: "public.insight_feed",
			detail: []string{"is a superuser", "security_invoker"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCheckFixture(t)
			data := seedTwoClones(t, f)
			data.proveIsolated(t)
			for suffix, opts := range c.roles {
				f.extraRole(t, suffix, opts)
			}
			f.exec(t, c.setup...)

			data.proveLeak(t, c.attack, c.read)

			r := f.check(t)
			p := findProblem(t, r, c.code, c.object)
			for _, d := range c.detail {
				if !strings.Contains(p.Detail, d) {
					t.Errorf("detail %q does not say %q", p.Detail, d)
				}
			}
			t.Logf("reported: %s", p)
		})
	}

	t.Run("invoker view, function-only view and harmless definer are not reported", func(t *testing.T) {
		f := newCheckFixture(t)
		data := seedTwoClones(t, f)
		f.extraRole(t, "plain", "NOLOGIN")
		f.exec(t,
			"CREATE VIEW my_feed WITH (security_invoker = on) AS SELECT content AS x FROM insights",
			"GRANT SELECT ON my_feed TO %ROLE%",
			// Names no relation: the function it calls runs as the reader.
			"CREATE VIEW dyn_feed AS SELECT query_to_xml('SELECT content FROM ' || 'insi' || 'ghts', false, false, '')::text AS x",
			"GRANT SELECT ON dyn_feed TO %ROLE%",
			"GRANT SELECT ON insights TO %ROLE%_plain",
			`CREATE FUNCTION plain_peek() RETURNS SETOF text LANGUAGE plpgsql SECURITY DEFINER AS $$
				BEGIN RETURN QUERY EXECUTE 'SELECT content FROM ' || 'insi' || 'ghts'; END $$`,
			"ALTER FUNCTION plain_peek() OWNER TO %ROLE%_plain",
		)
		for _, v := range []string{"my_feed", "dyn_feed"} {
			if got := data.readAs(t, data.a, nil, "SELECT x FROM "+v); !strings.Contains(got, data.secretA) || strings.Contains(got, data.secretB) {
				t.Fatalf("view %s reads %q; want clone A's insight only", v, got)
			}
		}
		if got := data.readAs(t, data.a, nil, "SELECT * FROM plain_peek()"); got != data.secretA {
			t.Fatalf("definer owned by a plain role reads %q", got)
		}
		if r := f.check(t); !r.OK() {
			t.Fatalf("safe objects reported:\n%s", r)
		}
	})
}

// errInjected is the failure faultConnector injects.
var errInjected = errors.New("injected failure while reading rows")

// faultConnector opens real lib/pq connections and can make one query's result set fail
// part-way: the failAt-th call to Next on the rows of the first execution of query
// returns errInjected instead of a row (or instead of the end of the rows). It records
// the text of every query run through it. Deterministic: no timing is involved.
type faultConnector struct {
	base driver.Connector

	mu      sync.Mutex
	query   string // "" injects nothing
	failAt  int
	fired   bool
	queries []string // distinct texts, in first-run order
}

func (c *faultConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &faultConn{Conn: conn, c: c}, nil
}

func (c *faultConnector) Driver() driver.Driver { return c.base.Driver() }

// arm sets the fault point and forgets whether it fired.
func (c *faultConnector) arm(query string, failAt int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.query, c.failAt, c.fired = query, failAt, false
}

// rows wraps the rows of query, counting it and arming the fault if it is the one.
func (c *faultConnector) rows(query string, r driver.Rows) driver.Rows {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.queries, query) {
		c.queries = append(c.queries, query)
	}
	if c.query == "" || query != c.query || c.fired {
		return r
	}
	c.fired = true
	return &faultRows{Rows: r, failAt: c.failAt}
}

type faultConn struct {
	driver.Conn
	c *faultConnector
}

func (fc *faultConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	r, err := fc.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
	if err != nil {
		return nil, err
	}
	return fc.c.rows(query, r), nil
}

func (fc *faultConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return fc.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (fc *faultConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return fc.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (fc *faultConn) CheckNamedValue(nv *driver.NamedValue) error {
	return fc.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

func (fc *faultConn) ResetSession(ctx context.Context) error {
	return fc.Conn.(driver.SessionResetter).ResetSession(ctx)
}

type faultRows struct {
	driver.Rows
	failAt, calls int
}

func (r *faultRows) Next(dest []driver.Value) error {
	r.calls++
	if r.calls == r.failAt {
		return errInjected
	}
	return r.Rows.Next(dest)
}

// TestCheckIsolationFailsClosed: a failure while reading any catalog query's rows, even
// after some rows were read, fails the check instead of reporting "isolation OK" on
// fewer tables, roles or objects than the database holds.
func TestCheckIsolationFailsClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("creates a database")
	}
	f := newCheckFixture(t)
	// A host table without row-level security, listed last (the tables query is
	// ordered by name): a check that stops reading after the first table misses it.
	f.exec(t, "CREATE TABLE zz_host_notes (tenant_id uuid, clone_id uuid, body text)", "GRANT SELECT ON zz_host_notes TO %ROLE%")
	u, _ := url.Parse(f.db.OwnerURL)
	u.User = url.UserPassword(f.role, "chk")
	base, err := pq.NewConnector(u.String())
	if err != nil {
		t.Fatal(err)
	}
	fc := &faultConnector{base: base}
	db := sql.OpenDB(fc)
	defer db.Close()
	ctx := context.Background()

	r, err := migrate.CheckIsolation(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(r, migrate.ProblemRLSDisabled, "zz_host_notes") {
		t.Fatalf("the unprotected host table is not reported without a fault:\n%s", r)
	}
	queries := slices.Clone(fc.queries)
	var tablesQuery string
	for _, q := range queries {
		if strings.Contains(q, "a.attname = 'tenant_id'") {
			tablesQuery = q
		}
	}
	if tablesQuery == "" || len(queries) < 10 {
		t.Fatalf("did not see the tables query among %d queries", len(queries))
	}

	// The scenario of the report: the table list fails after its first row.
	fc.arm(tablesQuery, 2)
	r, err = migrate.CheckIsolation(ctx, db, nil)
	if err == nil {
		t.Fatalf("a failure after the first table returned a report instead of an error:\n%v", r)
	}
	if !errors.Is(err, errInjected) || r != nil {
		t.Fatalf("got report %v and error %v; want no report and the injected error", r, err)
	}

	// Every query CheckIsolation runs, failing at its first Next (on a row, or at the
	// end of an empty result).
	for _, q := range queries {
		fc.arm(q, 1)
		r, err := migrate.CheckIsolation(ctx, db, nil)
		if !fc.fired {
			t.Errorf("query not run again: %s", q)
			continue
		}
		if err == nil || r != nil {
			t.Errorf("a failure reading the rows of\n%s\nreturned report %v, error %v; want no report and an error", q, r, err)
		}
	}
}
