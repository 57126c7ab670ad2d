package clonesql_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
)

type insight struct {
	TenantID  uuid.UUID `db:"tenant_id"`
	CloneID   uuid.UUID `db:"clone_id"`
	ID        uuid.UUID `db:"id"`
	Content   string    `db:"content"`
	Category  string    `db:"category"`
	CreatedAt time.Time `db:"created_at"`
}

const (
	insertInsight = `INSERT INTO insights (tenant_id, clone_id, id, content, category, created_at, updated_at)
		VALUES (:tenant_id, :clone_id, :id, :content, :category, :created_at, :created_at)`
	getInsight  = `SELECT tenant_id, clone_id, id, content, category, created_at FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`
	listInsight = `SELECT tenant_id, clone_id, id, content, category, created_at FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id ORDER BY id`
)

func addInsight(t testing.TB, e *env, cc clone.CloneContext, content string) insight {
	t.Helper()
	in := insight{ID: uuid.New(), Content: content, Category: "c", CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if _, err := e.db.Exec(context.Background(), cc, insertInsight, in); err != nil {
		t.Fatalf("insert: %v", err)
	}
	in.TenantID, in.CloneID = cc.TenantID(), cc.CloneID()
	return in
}

func TestScopedReadWrite(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.newClone(t), e.newClone(t)
		ia := addInsight(t, e, a, "alpha canary")
		ib := addInsight(t, e, b, "bravo canary")

		// The owner reads its own row: the data exists.
		var got insight
		if err := e.db.Get(ctx, a, &got, getInsight, map[string]any{"id": ia.ID}); err != nil || got.Content != "alpha canary" {
			t.Fatalf("owner get = %+v, %v", got, err)
		}
		if got.TenantID != a.TenantID() || got.CloneID != a.CloneID() {
			t.Fatalf("row stamped %s/%s; want the context's", got.TenantID, got.CloneID)
		}
		// The other clone cannot: by ID it is not found, and its list holds only its own.
		if err := e.db.Get(ctx, a, &got, getInsight, map[string]any{"id": ib.ID}); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("A getting B's insight: %v; want ErrNotFound", err)
		}
		var list []insight
		if err := e.db.Select(ctx, a, &list, listInsight, nil); err != nil || len(list) != 1 || list[0].ID != ia.ID {
			t.Fatalf("A's list = %+v, %v", list, err)
		}
		// Writes scoped to A do not reach B's row.
		res, err := e.db.Exec(ctx, a, `UPDATE insights SET content = 'stolen' WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, map[string]any{"id": ib.ID})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 0 {
			t.Fatalf("A's update changed %d of B's rows", n)
		}
		if err := e.db.Get(ctx, b, &got, getInsight, map[string]any{"id": ib.ID}); err != nil || got.Content != "bravo canary" {
			t.Fatalf("B's row after A's update: %+v, %v", got, err)
		}
		if len(e.audit.Events()) != 0 {
			t.Fatalf("audit events on allowed operations: %+v", e.audit.Events())
		}
	})
}

func TestRefusals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.newClone(t), e.newClone(t)
		ib := addInsight(t, e, b, "bravo")
		cases := []struct {
			name    string
			cc      clone.CloneContext
			query   string
			arg     any
			want    error
			outcome audit.Outcome
		}{
			{"no clone context", clone.CloneContext{}, getInsight, map[string]any{"id": ib.ID}, clone.ErrNoCloneContext, audit.Denied},
			{"unscoped statement", a, `SELECT * FROM insights WHERE id = :id`, map[string]any{"id": ib.ID}, clone.ErrInvalidInput, audit.Denied},
			{"caller-supplied tenant_id (map)", a, getInsight, map[string]any{"id": ib.ID, "tenant_id": b.TenantID()}, clone.ErrCloneMismatch, audit.Denied},
			{"caller-supplied clone_id (map, string)", a, getInsight, map[string]any{"id": ib.ID, "clone_id": b.CloneID().String()}, clone.ErrCloneMismatch, audit.Denied},
			{"caller-supplied IDs (struct)", a, getInsight, insight{ID: ib.ID, TenantID: b.TenantID(), CloneID: b.CloneID()}, clone.ErrCloneMismatch, audit.Denied},
			{"malformed caller-supplied ID", a, getInsight, map[string]any{"id": ib.ID, "clone_id": "{" + b.CloneID().String() + "}"}, clone.ErrInvalidInput, ""},
			{"missing parameter", a, getInsight, nil, clone.ErrInvalidInput, ""},
			{"bad argument type", a, getInsight, 42, clone.ErrInvalidInput, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.audit.Reset()
				var got insight
				err := e.db.Get(ctx, c.cc, &got, c.query, c.arg)
				if !errors.Is(err, c.want) {
					t.Fatalf("error = %v; want %v", err, c.want)
				}
				if got.ID != uuid.Nil {
					t.Fatalf("a refused call filled dest: %+v", got)
				}
				if clone.HTTPStatus(err) >= 500 {
					t.Fatalf("bad input maps to %d", clone.HTTPStatus(err))
				}
				evs := e.audit.Events()
				if c.outcome == "" {
					return
				}
				if len(evs) != 1 || evs[0].Outcome != c.outcome {
					t.Fatalf("audit events %+v; want one %s", evs, c.outcome)
				}
			})
		}
		// A caller-supplied ID equal to the context's is accepted (it is the context's anyway).
		var got insight
		ia := addInsight(t, e, a, "alpha")
		if err := e.db.Get(ctx, a, &got, getInsight, insight{ID: ia.ID, TenantID: a.TenantID(), CloneID: a.CloneID()}); err != nil {
			t.Fatalf("own IDs in the argument: %v", err)
		}
		// B's row is intact after all of the above.
		if err := e.db.Get(ctx, b, &got, getInsight, map[string]any{"id": ib.ID}); err != nil || got.Content != "bravo" {
			t.Fatalf("B's row: %+v, %v", got, err)
		}
	})
}

// TestSQLInjectionIsData: injection strings in every text field are stored verbatim
// and change nothing else.
func TestSQLInjectionIsData(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.newClone(t), e.newClone(t)
		addInsight(t, e, b, "bravo")
		for _, s := range []string{"'; DROP TABLE insights; --", "x' OR '1'='1", `"); DELETE FROM insights; --`,
			"' UNION SELECT tenant_id, clone_id, id, content, category, created_at FROM insights --", "\x00", ":tenant_id", "$1", "?"} {
			in := insight{ID: uuid.New(), Content: strings.ReplaceAll(s, "\x00", ""), Category: s[:min(len(s), 10)], CreatedAt: time.Now().UTC()}
			in.Category = strings.ReplaceAll(in.Category, "\x00", "")
			if _, err := e.db.Exec(ctx, a, insertInsight, in); err != nil {
				t.Fatalf("insert %q: %v", s, err)
			}
			var got insight
			if err := e.db.Get(ctx, a, &got, getInsight, map[string]any{"id": in.ID}); err != nil || got.Content != in.Content {
				t.Fatalf("read back %q: %q, %v", s, got.Content, err)
			}
		}
		var list []insight
		if err := e.db.Select(ctx, b, &list, listInsight, nil); err != nil || len(list) != 1 {
			t.Fatalf("B's rows after injection attempts: %d, %v", len(list), err)
		}
	})
}

// TestResultRecheck: a row of another clone that comes back from the database (here
// through a deliberately leaky statement and, on PostgreSQL, a connection that bypasses
// RLS) fails the call, returns nothing and is audited as a violation.
func TestResultRecheck(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.newClone(t), e.newClone(t)
		addInsight(t, e, a, "alpha")
		ib := addInsight(t, e, b, "bravo")
		leaky := `SELECT tenant_id, clone_id, id, content, category, created_at FROM insights
			WHERE (tenant_id = :tenant_id AND clone_id = :clone_id) OR id = :victim ORDER BY id`
		arg := map[string]any{"victim": ib.ID}

		if e.dialect == clonesql.Postgres {
			// As the application role, RLS already filters B's row out.
			var list []insight
			if err := e.db.Select(ctx, a, &list, leaky, arg); err != nil || len(list) != 1 {
				t.Fatalf("leaky statement under RLS: %d rows, %v; want 1 (own)", len(list), err)
			}
		}
		// Without RLS (SQLite; the superuser owner on PostgreSQL) the post-check catches it.
		bypass, err := clonesql.New(e.owner.DB, &clonesql.Options{Audit: e.audit})
		if err != nil {
			t.Fatal(err)
		}
		e.audit.Reset()
		list := []insight{{Content: "stale"}}
		err = bypass.Select(ctx, a, &list, leaky, arg)
		if !errors.Is(err, clone.ErrIsolationViolation) || len(list) != 0 {
			t.Fatalf("leak not caught: %d rows, %v", len(list), err)
		}
		var one insight
		err = bypass.Get(ctx, a, &one, `SELECT tenant_id, clone_id, id, content, category, created_at FROM insights
			WHERE (tenant_id = :tenant_id AND clone_id = :clone_id AND false) OR id = :victim`, arg)
		if !errors.Is(err, clone.ErrIsolationViolation) || one.Content != "" {
			t.Fatalf("leaky Get not caught: %+v, %v", one, err)
		}
		evs := e.audit.Events()
		if len(evs) != 2 || evs[0].Outcome != audit.Violation || evs[0].CloneID != a.CloneID() {
			t.Fatalf("audit: %+v; want two violations by A", evs)
		}
	})
}

func TestWithTx(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.newClone(t), e.newClone(t)
		count := func(cc clone.CloneContext) int {
			var n int
			if err := e.db.Get(ctx, cc, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil); err != nil {
				t.Fatal(err)
			}
			return n
		}
		// Commit.
		err := e.db.WithTx(ctx, a, func(tx *clonesql.Tx) error {
			for range 3 {
				if _, err := tx.Exec(ctx, insertInsight, insight{ID: uuid.New(), Content: "x", CreatedAt: time.Now().UTC()}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || count(a) != 3 {
			t.Fatalf("commit: %v, %d rows", err, count(a))
		}
		// Rollback on error.
		boom := errors.New("boom")
		err = e.db.WithTx(ctx, a, func(tx *clonesql.Tx) error {
			tx.Exec(ctx, insertInsight, insight{ID: uuid.New(), Content: "y", CreatedAt: time.Now().UTC()})
			return boom
		})
		if !errors.Is(err, boom) || count(a) != 3 {
			t.Fatalf("rollback on error: %v, %d rows", err, count(a))
		}
		// Rollback on panic, re-raised.
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic swallowed")
				}
			}()
			e.db.WithTx(ctx, a, func(tx *clonesql.Tx) error {
				tx.Exec(ctx, insertInsight, insight{ID: uuid.New(), Content: "z", CreatedAt: time.Now().UTC()})
				panic("handler bug")
			})
		}()
		if count(a) != 3 {
			t.Fatalf("rows after panic: %d", count(a))
		}
		// A statement for another clone inside A's transaction is refused, and the
		// transaction does not commit what came before it if fn returns that error.
		e.audit.Reset()
		err = e.db.WithTx(ctx, a, func(tx *clonesql.Tx) error {
			if _, err := tx.Exec(ctx, insertInsight, insight{ID: uuid.New(), Content: "w", CreatedAt: time.Now().UTC()}); err != nil {
				return err
			}
			_, err := tx.Querier().Exec(ctx, b, insertInsight, insight{ID: uuid.New(), Content: "w", CreatedAt: time.Now().UTC()})
			return err
		})
		if !errors.Is(err, clone.ErrCloneMismatch) || count(a) != 3 || count(b) != 0 {
			t.Fatalf("cross-clone statement in tx: %v; rows A=%d B=%d", err, count(a), count(b))
		}
		if evs := e.audit.Events(); len(evs) != 1 || evs[0].Outcome != audit.Denied {
			t.Fatalf("audit: %+v", evs)
		}
		// A failed statement whose error fn ignores still prevents the commit.
		err = e.db.WithTx(ctx, a, func(tx *clonesql.Tx) error {
			tx.Exec(ctx, insertInsight, insight{ID: uuid.New(), Content: "v", CreatedAt: time.Now().UTC()})
			tx.Exec(ctx, `INSERT INTO insights (tenant_id, clone_id, id, content) VALUES (:tenant_id, :clone_id, :id, NULL)`, map[string]any{"id": uuid.New()})
			return nil
		})
		if err == nil || count(a) != 3 {
			t.Fatalf("ignored statement error: %v, %d rows", err, count(a))
		}
	})
}

// TestBindHostTransaction: the host's own transaction carries cloneiso's scoped writes
// with its own, and both commit or roll back together.
func TestBindHostTransaction(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := e.newClone(t)
		for _, commit := range []bool{false, true} {
			htx, err := e.raw.BeginTxx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			stx, err := e.db.Bind(ctx, htx.Tx, a)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stx.Exec(ctx, insertInsight, insight{ID: uuid.New(), Content: "bound", CreatedAt: time.Now().UTC()}); err != nil {
				t.Fatal(err)
			}
			if commit {
				err = htx.Commit()
			} else {
				err = htx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := e.db.Get(ctx, a, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND content = 'bound'`, nil); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{false: 0, true: 1}[commit]; n != want {
				t.Fatalf("commit=%v: %d rows; want %d", commit, n, want)
			}
		}
	})
}
