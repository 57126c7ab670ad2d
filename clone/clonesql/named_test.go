package clonesql

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
)

type compileCase struct {
	name  string
	d     Dialect
	in    string
	out   string
	names []string
	err   error
}

func TestCompile(t *testing.T) {
	tests := []compileCase{
		{"postgres", Postgres, "SELECT * FROM t WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id",
			"SELECT * FROM t WHERE tenant_id = $1 AND clone_id = $2 AND id = $3", []string{"tenant_id", "clone_id", "id"}, nil},
		{"sqlite", SQLite, "SELECT * FROM t WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id",
			"SELECT * FROM t WHERE tenant_id = ? AND clone_id = ? AND id = ?", []string{"tenant_id", "clone_id", "id"}, nil},
		{"repeated name reuses the position on postgres", Postgres, ":tenant_id :clone_id :tenant_id",
			"$1 $2 $1", []string{"tenant_id", "clone_id"}, nil},
		{"repeated name repeats the argument on sqlite", SQLite, ":tenant_id :clone_id :tenant_id",
			"? ? ?", []string{"tenant_id", "clone_id", "tenant_id"}, nil},
		{"casts are not parameters", Postgres, "SELECT :tenant_id::uuid, :clone_id::text, '{}'::jsonb",
			"SELECT $1::uuid, $2::text, '{}'::jsonb", []string{"tenant_id", "clone_id"}, nil},
		{"string literal", Postgres, "SELECT ':not_a_param', 'it''s :x' WHERE a = :tenant_id AND b = :clone_id",
			"SELECT ':not_a_param', 'it''s :x' WHERE a = $1 AND b = $2", []string{"tenant_id", "clone_id"}, nil},
		{"quoted identifier", Postgres, `SELECT ":weird" FROM t WHERE a = :tenant_id AND b = :clone_id`,
			`SELECT ":weird" FROM t WHERE a = $1 AND b = $2`, []string{"tenant_id", "clone_id"}, nil},
		{"comments", Postgres, "SELECT 1 -- :tenant_id\n/* :clone_id */ WHERE a = :tenant_id AND b = :clone_id",
			"SELECT 1 -- :tenant_id\n/* :clone_id */ WHERE a = $1 AND b = $2", []string{"tenant_id", "clone_id"}, nil},
		{"dollar quoting", Postgres, "SELECT $$ :x $$, $tag$ :y $tag$ WHERE a = :tenant_id AND b = :clone_id",
			"SELECT $$ :x $$, $tag$ :y $tag$ WHERE a = $1 AND b = $2", []string{"tenant_id", "clone_id"}, nil},
		{"unscoped", Postgres, "SELECT * FROM insights", "", nil, clone.ErrInvalidInput},
		{"tenant only", Postgres, "SELECT * FROM insights WHERE tenant_id = :tenant_id", "", nil, clone.ErrInvalidInput},
		{"scope only in a comment", Postgres, "SELECT * FROM insights -- :tenant_id :clone_id", "", nil, clone.ErrInvalidInput},
		{"scope only in a literal", SQLite, "SELECT * FROM insights WHERE x = ':tenant_id :clone_id'", "", nil, clone.ErrInvalidInput},
		{"positional postgres", Postgres, "SELECT * FROM t WHERE a = $1 AND :tenant_id AND :clone_id", "", nil, clone.ErrInvalidInput},
		{"positional sqlite", SQLite, "SELECT * FROM t WHERE a = ? AND :tenant_id AND :clone_id", "", nil, clone.ErrInvalidInput},
		{"unterminated comment", Postgres, "SELECT :tenant_id, :clone_id /* x", "", nil, clone.ErrInvalidInput},

		// Accepted forms both dialects' tokenizers read as compile does.
		{"final separator", SQLite, "SELECT :tenant_id, :clone_id; \n\t", "SELECT ?, ?; \n\t", []string{"tenant_id", "clone_id"}, nil},
		{"crlf line comment", SQLite, "SELECT 1 -- x\r\n, :tenant_id, :clone_id", "SELECT 1 -- x\r\n, ?, ?", []string{"tenant_id", "clone_id"}, nil},
		{"sqlite blob and backticks", SQLite, "SELECT x'0a1B', `:x` FROM t WHERE a = :tenant_id AND b = :clone_id",
			"SELECT x'0a1B', `:x` FROM t WHERE a = ? AND b = ?", []string{"tenant_id", "clone_id"}, nil},
		{"postgres operators", Postgres, "SELECT m @> '{}', m #>> '{a}', m ? 'k', a[1:2], 2^3 WHERE a = :tenant_id AND b = :clone_id",
			"SELECT m @> '{}', m #>> '{a}', m ? 'k', a[1:2], 2^3 WHERE a = $1 AND b = $2", []string{"tenant_id", "clone_id"}, nil},
		{"unicode and $ in identifiers", SQLite, "SELECT päивет, a$b FROM t WHERE a = :tenant_id AND b = :clone_id",
			"SELECT päивет, a$b FROM t WHERE a = ? AND b = ?", []string{"tenant_id", "clone_id"}, nil},
		{"unicode parameter name", SQLite, "SELECT :tenant_idé, :tenant_id, :clone_id", "SELECT ?, ?, ?", []string{"tenant_idé", "tenant_id", "clone_id"}, nil},
		{"postgres escape string without quote escapes", Postgres, `SELECT E'a\nb' WHERE a = :tenant_id AND b = :clone_id`,
			`SELECT E'a\nb' WHERE a = $1 AND b = $2`, []string{"tenant_id", "clone_id"}, nil},
		{"postgres slice after a name", Postgres, "SELECT a[lo:hi] WHERE a = :tenant_id AND b = :clone_id",
			"SELECT a[lo:hi] WHERE a = $1 AND b = $2", []string{"tenant_id", "clone_id"}, nil},
	}
	refused := func(d Dialect, qs ...string) {
		for _, q := range qs {
			tests = append(tests, compileCase{"refused on " + string(d) + ": " + q, d, q, "", nil, clone.ErrInvalidInput})
		}
	}
	// Refused on both dialects: what SQLite or PostgreSQL would read differently.
	both := []string{
		"SELECT :tenant_id, :clone_id\x00",
		"SELECT 1\x00; DELETE FROM t WHERE :tenant_id AND :clone_id",
		"SELECT :tenant_id, :clone_id; DELETE FROM t",
		"SELECT :tenant_id, :clone_id; -- trailing comment",
		"SELECT :tenant_id, :clone_id;;",
		"SELECT /* /* */ :tenant_id, :clone_id */",
		"SELECT /* a /*/ :tenant_id, :clone_id",
		"SELECT 1 -- a\r :tenant_id, :clone_id\n",
		"SELECT :tenant_id, :clone_id, '",
		`SELECT :tenant_id, :clone_id, "x`,
		"SELECT :tenant_id, :clone_id, $1",
		"SELECT :tenant_id, :clone_id, $x",
		"SELECT :tenant_id, :clone_id, 1$a$ x $a$",
		"SELECT :tenant_id, :clone_id, 1ä",
		"SELECT :tenant_id, :clone_id \v",
		"SELECT :tenant_id, :clone_id \x01",
		"SELECT :tenant_id, :clone_id, {}",
		`SELECT :tenant_id, :clone_id, \`,
		"SELECT :tenant_id, :clone_id, \xff",
	}
	refused(SQLite, both...)
	refused(Postgres, both...)
	// Refused on SQLite only: parameter forms, quoting and casts SQLite reads as
	// something else.
	refused(SQLite,
		"DELETE FROM t AS [:tenant_id :clone_id]",
		"SELECT :tenant_id, :clone_id, @x",
		"SELECT :tenant_id, :clone_id, #x",
		"SELECT :tenant_id, :clone_id, ?1",
		"SELECT :tenant_id, :clone_id, :1",
		"SELECT :tenant_id, :clone_id, :$x",
		"SELECT :tenant_id, :clone_id, a : b",
		"SELECT :tenant_id(x), :clone_id",
		"SELECT :tenant_id::text, :clone_id",
		"SELECT x'0g', :tenant_id, :clone_id",
		"SELECT x'012', :tenant_id, :clone_id",
		"SELECT x'01''', :tenant_id, :clone_id",
		"SELECT :tenant_id, :clone_id, ^",
	)
	// Refused on PostgreSQL only.
	refused(Postgres,
		"SELECT `x`, :tenant_id, :clone_id",
		`SELECT E'\'' , :tenant_id, :clone_id --'`,
		`SELECT '\'' , :tenant_id, :clone_id --'`,
		"SELECT $a :tenant_id, :clone_id",
		"SELECT $a$ :tenant_id, :clone_id",
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := compileUncached(tt.d, tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("compile(%q) error = %v; want %v", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("compile(%q): %v", tt.in, err)
			}
			if c.query != tt.out || !slices.Equal(c.names, tt.names) {
				t.Fatalf("compile(%q) = %q %v; want %q %v", tt.in, c.query, c.names, tt.out, tt.names)
			}
		})
	}
}

// FuzzCompile holds compile to SQLite's own parser (the SQLite dialect is where the
// scope check is all isolation rests on). For every text compile accepts:
//
//   - SQLite, reading the host's text with its own :name parameters, takes the whole text
//     as one statement (nothing but white space after it) and binds exactly the names
//     compile found, among them both scope parameters;
//   - SQLite, reading compile's output, takes it as one statement whose parameters are
//     exactly compile's anonymous placeholders, one per name;
//   - the two prepare alike.
//
// On PostgreSQL an accepted text references both scope parameters. Refusing is always
// safe and never a failure, but every refusal is ErrInvalidInput.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM t WHERE tenant_id = :tenant_id AND clone_id = :clone_id",
		"DELETE FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id;",
		"SELECT ':tenant_id' -- :clone_id",
		"SELECT $a$ :tenant_id $a$, :clone_id",
		"/* unterminated :tenant_id :clone_id",
		":tenant_id::uuid :clone_id::uuid",
		"DELETE FROM insights AS [:tenant_id :clone_id]",
		"DELETE FROM insights\x00 WHERE tenant_id = :tenant_id AND clone_id = :clone_id",
		"DELETE FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id; DELETE FROM insights",
		"DELETE FROM insights /* /* */ WHERE tenant_id = :tenant_id AND clone_id = :clone_id */",
		"DELETE FROM insights WHERE #x IS NULL OR tenant_id = :tenant_id AND clone_id = :clone_id",
		"DELETE FROM insights WHERE @x IS NULL OR tenant_id = :tenant_id AND clone_id = :clone_id",
		"DELETE FROM insights WHERE $x IS NULL OR tenant_id = :tenant_id AND clone_id = :clone_id",
		"DELETE FROM insights WHERE $1 IS NULL OR tenant_id = :tenant_id AND clone_id = :clone_id",
		"DELETE FROM insights WHERE ?1 IS NULL OR tenant_id = :tenant_id AND clone_id = :clone_id",
		"SELECT x'0a', `a``b`, \"c\"\"d\" FROM t WHERE tenant_id = :tenant_id AND clone_id = :clone_id",
		"SELECT a -- c\r\n FROM t WHERE tenant_id = :tenant_id AND clone_id = :clone_id",
		"SELECT a$b, :tenant_idé FROM t WHERE tenant_id = :tenant_id AND clone_id = :clone_id",
		"UPDATE t SET a = :a WHERE tenant_id = :tenant_id AND clone_id = :clone_id RETURNING a",
		"INSERT INTO t (tenant_id, clone_id, a) VALUES (:tenant_id, :clone_id, :a) ON CONFLICT DO NOTHING",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		for _, d := range []Dialect{Postgres, SQLite} {
			c, err := compileUncached(d, q)
			if err != nil {
				if !errors.Is(err, clone.ErrInvalidInput) {
					t.Fatalf("error kind: %v", err)
				}
				continue
			}
			if !slices.Contains(c.names, ParamTenantID) || !slices.Contains(c.names, ParamCloneID) {
				t.Fatalf("accepted %q without both scope parameters: %v", q, c.names)
			}
			if d == SQLite {
				checkAgainstSQLite(t, q, c)
			}
		}
	})
}

// checkAgainstSQLite is FuzzCompile's property for a text compile accepted on SQLite.
func checkAgainstSQLite(t *testing.T, q string, c *compiled) {
	t.Helper()
	o := newSQLiteOracle(t)
	orig, out := o.parse(t, q), o.parse(t, c.query)
	if orig.ok != out.ok {
		t.Fatalf("SQLite prepares the text and compile's output differently:\n text %q: %+v\n output %q: %+v", q, orig, c.query, out)
	}
	if !orig.ok {
		return // SQLite refuses it: it cannot run
	}
	if tail := q[orig.consumed:]; strings.Trim(tail, spaceChars) != "" {
		t.Fatalf("SQLite reads %q as more than one statement; tail %q", q, tail)
	}
	if tail := c.query[out.consumed:]; strings.Trim(tail, spaceChars) != "" {
		t.Fatalf("SQLite reads compile's output %q as more than one statement; tail %q", c.query, tail)
	}
	if !orig.stmt || !out.stmt {
		t.Fatalf("SQLite finds no statement in %q (%+v) or %q (%+v)", q, orig, c.query, out)
	}
	// SQLite numbers a repeated :name once.
	want := map[string]bool{}
	for _, n := range c.names {
		want[":"+n] = true
	}
	got := map[string]bool{}
	for _, n := range orig.params {
		got[n] = true
	}
	if !maps.Equal(got, want) || !got[":"+ParamTenantID] || !got[":"+ParamCloneID] {
		t.Fatalf("SQLite binds %v in %q; compile found %v", orig.params, q, c.names)
	}
	if len(out.params) != len(c.names) {
		t.Fatalf("SQLite binds %d parameters in compile's output %q; compile binds %d (%v)", len(out.params), c.query, len(c.names), c.names)
	}
	for i, n := range out.params {
		if n != "" {
			t.Fatalf("parameter %d of compile's output %q is %q, not one of compile's placeholders", i+1, c.query, n)
		}
	}
}
