package clonesql

import (
	"errors"
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

// FuzzCompile: compiling never panics; an accepted statement references both scope
// parameters, and on SQLite has exactly one placeholder per name.
func FuzzCompile(f *testing.F) {
	f.Add("SELECT * FROM t WHERE tenant_id = :tenant_id AND clone_id = :clone_id")
	f.Add("SELECT ':tenant_id' -- :clone_id")
	f.Add("SELECT $a$ :tenant_id $a$, :clone_id")
	f.Add("/* unterminated :tenant_id :clone_id")
	f.Add(":tenant_id::uuid :clone_id::uuid")
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
			if d == SQLite && strings.Count(c.query, "?") < len(c.names) {
				t.Fatalf("sqlite: %d names but fewer placeholders in %q", len(c.names), c.query)
			}
		}
	})
}
