package clonesql_test

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

// scopeBypasses are statements that reference :tenant_id and :clone_id as compile's
// lexer once saw them, but that a database reads as unscoped: SQLite's [...] quoted
// identifiers, a NUL byte (the SQLite driver passes a C string), a second statement,
// and the other forms compile now refuses because SQLite or PostgreSQL tokenizes them
// differently.
//
// onPostgres says what PostgreSQL does with the SQLite-only forms, which are operators
// or array subscripts there and so reach the server: "syntax" (the server refuses the
// statement, classified ErrInvalidInput), "error" (the server refuses it, for example
// with no such column). Empty means compile refuses it on both dialects.
var scopeBypasses = []struct {
	name, query string
	onPostgres  string
}{
	{"sqlite [identifier]", `DELETE FROM insights AS [:tenant_id :clone_id]`, "syntax"},
	{"NUL byte", "DELETE FROM insights\x00 WHERE tenant_id = :tenant_id AND clone_id = :clone_id", ""},
	{"second statement", `DELETE FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id; DELETE FROM insights`, ""},
	{"second statement after a comment", "DELETE FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id;\n-- x\nDELETE FROM insights", ""},
	{"nested comment", `DELETE FROM insights /* /* */ WHERE tenant_id = :tenant_id AND clone_id = :clone_id */`, ""},
	{"sqlite $name", `DELETE FROM insights WHERE $x IS NULL OR (tenant_id = :tenant_id AND clone_id = :clone_id)`, ""},
	{"sqlite @name", `DELETE FROM insights WHERE @x IS NULL OR (tenant_id = :tenant_id AND clone_id = :clone_id)`, "error"},
	{"sqlite #name", `DELETE FROM insights WHERE #x IS NULL OR (tenant_id = :tenant_id AND clone_id = :clone_id)`, "error"},
	{"positional $1", `DELETE FROM insights WHERE tenant_id = $1 OR (tenant_id = :tenant_id AND clone_id = :clone_id)`, ""},
	{"sqlite :name(...)", `DELETE FROM insights WHERE tenant_id = :tenant_id(x) OR clone_id = :clone_id(x)`, "error"},
	{"carriage return in a line comment", "DELETE FROM insights -- \r WHERE false\n WHERE tenant_id = :tenant_id AND clone_id = :clone_id", ""},
	{"backslash quote", `DELETE FROM insights WHERE content = E'\'' OR true OR ' AND tenant_id = :tenant_id AND clone_id = :clone_id'`, ""},
}

// TestScopeBypassRefused: on both dialects, each bypass run as alice is refused with
// ErrInvalidInput (audited as a denial) and bob's rows, which first are shown to exist,
// are unchanged. On PostgreSQL the statements also run through a connection that
// bypasses row-level security, so the refusal itself is what is tested.
func TestScopeBypassRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		dbs := map[string]*clonesql.DB{"app": e.db}
		if e.dialect == clonesql.Postgres {
			owner, err := clonesql.New(e.owner.DB, &clonesql.Options{Audit: e.audit})
			if err != nil {
				t.Fatal(err)
			}
			dbs["owner (no RLS)"] = owner
		}
		// A destination without tenant_id/clone_id fields: the result re-check has
		// nothing to compare, as with a host's own projection.
		type bare struct {
			ID      uuid.UUID `db:"id"`
			Content string    `db:"content"`
		}
		for dbName, db := range dbs {
			for _, b := range scopeBypasses {
				t.Run(dbName+"/"+b.name, func(t *testing.T) {
					// Fresh clones for every statement: each one is shown harmless on
					// its own.
					alice, bob := e.newClone(t), e.newClone(t)
					addInsight(t, e, alice, "alice's")
					want := map[uuid.UUID]string{}
					for _, s := range []string{"bob one", "bob two"} {
						want[addInsight(t, e, bob, s).ID] = s
					}
					bobRows := func() map[uuid.UUID]string {
						t.Helper()
						var list []insight
						if err := e.db.Select(ctx, bob, &list, listInsight, nil); err != nil {
							t.Fatal(err)
						}
						got := map[uuid.UUID]string{}
						for _, r := range list {
							got[r.ID] = r.Content
						}
						return got
					}
					if got := bobRows(); !maps.Equal(got, want) {
						t.Fatalf("bob's rows before: %v; want %v", got, want)
					}
					e.audit.Reset()
					var rows []bare
					sel := "SELECT id, content FROM" + b.query[len("DELETE FROM"):]
					serr := db.Select(ctx, alice, &rows, sel, nil)
					if len(rows) != 0 {
						t.Errorf("Select %q as alice returned %d rows: %+v", sel, len(rows), rows)
					}
					_, err := db.Exec(ctx, alice, b.query, nil)
					pgServer := e.dialect == clonesql.Postgres && b.onPostgres != ""
					if pgServer && b.onPostgres == "error" {
						if err == nil || serr == nil {
							t.Errorf("PostgreSQL ran %q: %v, %v", b.query, err, serr)
						}
					} else {
						if !errors.Is(serr, clone.ErrInvalidInput) {
							t.Errorf("Select %q: %v; want ErrInvalidInput", sel, serr)
						}
						if !errors.Is(err, clone.ErrInvalidInput) {
							t.Errorf("Exec: %v; want ErrInvalidInput", err)
						}
					}
					if evs := e.audit.Events(); !pgServer &&
						(len(evs) != 2 || evs[0].Outcome != audit.Denied || evs[0].CloneID != alice.CloneID()) {
						t.Errorf("audit: %+v; want two denials for alice", evs)
					}
					if got := bobRows(); !maps.Equal(got, want) {
						t.Fatalf("bob's rows after alice ran %q: %v; want %v", b.query, got, want)
					}
				})
			}
		}
	})
}
