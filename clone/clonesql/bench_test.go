package clonesql_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate"
)

// Benchmarks compare the scoped wrapper with the identical raw sqlx statement on the
// same database in the same run. On PostgreSQL the raw statement runs as the schema
// owner (no RLS applies to it) and the scoped one as the application role (RLS on):
//
//	go test -run '^$' -bench . -benchtime 2000x ./clone/clonesql
func BenchmarkScopedVsRaw(b *testing.B) {
	for _, d := range []clonesql.Dialect{clonesql.SQLite, clonesql.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			e := newEnv(b, d)
			raw := e.raw
			if d == clonesql.Postgres {
				var err error
				if raw, err = clonesql.OpenPostgres(pgtest.Shared(b).OwnerURL); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { raw.Close() })
			}
			raw.SetMaxOpenConns(1)
			e.raw.SetMaxOpenConns(1)
			ctx := context.Background()
			cc := e.newClone(b)
			var first insight
			for i := range 200 {
				in := addInsight(b, e, cc, fmt.Sprintf("insight %d", i))
				if i == 0 {
					first = in
				}
			}
			rawGet := raw.Rebind(`SELECT tenant_id, clone_id, id, content, category, created_at FROM insights WHERE tenant_id = ? AND clone_id = ? AND id = ?`)
			rawList := raw.Rebind(`SELECT tenant_id, clone_id, id, content, category, created_at FROM insights WHERE tenant_id = ? AND clone_id = ? ORDER BY id LIMIT 50`)
			rawInsert := raw.Rebind(`INSERT INTO insights (tenant_id, clone_id, id, content, category, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`)
			scopedList := listInsight + " LIMIT 50"

			b.Run("get/raw", func(b *testing.B) {
				for b.Loop() {
					var got insight
					if err := raw.GetContext(ctx, &got, rawGet, cc.TenantID(), cc.CloneID(), first.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("get/scoped", func(b *testing.B) {
				arg := map[string]any{"id": first.ID}
				for b.Loop() {
					var got insight
					if err := e.db.Get(ctx, cc, &got, getInsight, arg); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("list50/raw", func(b *testing.B) {
				for b.Loop() {
					var got []insight
					if err := raw.SelectContext(ctx, &got, rawList, cc.TenantID(), cc.CloneID()); err != nil || len(got) != 50 {
						b.Fatal(err, len(got))
					}
				}
			})
			b.Run("list50/scoped", func(b *testing.B) {
				for b.Loop() {
					var got []insight
					if err := e.db.Select(ctx, cc, &got, scopedList, nil); err != nil || len(got) != 50 {
						b.Fatal(err, len(got))
					}
				}
			})
			now := time.Now().UTC()
			b.Run("insert/raw", func(b *testing.B) {
				for b.Loop() {
					if _, err := raw.ExecContext(ctx, rawInsert, cc.TenantID(), cc.CloneID(), uuid.New(), "bench", "c", now, now); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("insert/scoped", func(b *testing.B) {
				for b.Loop() {
					if _, err := e.db.Exec(ctx, cc, insertInsight, insight{ID: uuid.New(), Content: "bench", Category: "c", CreatedAt: now}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkRLSPolicy measures what row-level security adds to a query over a
// 1,000,000-row table (100 clones of 10,000 rows): the same statement with an explicit
// WHERE, run by a role RLS does not apply to, against the statement without WHERE run by
// the application role, whose policy does the filtering. Both run in the same kind of
// transaction (BEGIN, set_config, query, COMMIT) on one connection.
//
//	go test -run '^$' -bench RLSPolicy -benchtime 200x ./clone/clonesql
func BenchmarkRLSPolicy(b *testing.B) {
	pg := pgtest.Fresh(b, true)
	ctx := context.Background()
	const clones, perClone = 100, 10_000
	var target clone.CloneContext
	for i := range clones {
		tid, cid := uuid.New(), uuid.New()
		if _, err := pg.Owner.ExecContext(ctx, `INSERT INTO tenants (id, plan) VALUES ($1, 'solo');
			`, tid); err != nil {
			b.Fatal(err)
		}
		if _, err := pg.Owner.ExecContext(ctx, `INSERT INTO clones (tenant_id, id, owner_subject) VALUES ($1, $2, $3)`, tid, cid, cid.String()); err != nil {
			b.Fatal(err)
		}
		if _, err := pg.Owner.ExecContext(ctx, `INSERT INTO insights (tenant_id, clone_id, id, content, created_at, updated_at)
			SELECT $1, $2, gen_random_uuid(), 'insight ' || g, now() - g * interval '1 second', now() FROM generate_series(1, $3) g`, tid, cid, perClone); err != nil {
			b.Fatal(err)
		}
		if i == clones/2 {
			target, _ = clone.New(tid, cid, clone.Principal{Subject: "bench"})
		}
	}
	if _, err := pg.Owner.ExecContext(ctx, "VACUUM ANALYZE insights"); err != nil {
		b.Fatal(err)
	}
	open := func(dsn string) *sqlx.DB {
		db, err := clonesql.OpenPostgres(dsn)
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		b.Cleanup(func() { db.Close() })
		return db
	}
	owner, app := open(pg.OwnerURL), open(pg.AppURL)
	where := " WHERE tenant_id = $1 AND clone_id = $2"
	queries := []struct{ name, q, setup string }{
		{"page", "SELECT id, content, created_at FROM insights%s ORDER BY created_at, id LIMIT 50", ""},
		{"count", "SELECT count(*) FROM insights%s", ""},
		{"seqscan", "SELECT count(*) FROM insights%s", "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off; "},
	}
	run := func(b *testing.B, db *sqlx.DB, setup, q string, args ...any) {
		begin := "BEGIN; " + setup + "SELECT set_config('cloneiso.tenant_id', '" + target.TenantID().String() + "', true), set_config('cloneiso.clone_id', '" + target.CloneID().String() + "', true)"
		conn, err := db.Connx(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		for b.Loop() {
			if _, err := conn.ExecContext(ctx, begin); err != nil {
				b.Fatal(err)
			}
			rows, err := conn.QueryContext(ctx, q, args...)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			if n == 0 {
				b.Fatal("no rows")
			}
			if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, q := range queries {
		b.Run(q.name+"/where", func(b *testing.B) {
			run(b, owner, q.setup, fmt.Sprintf(q.q, where), target.TenantID(), target.CloneID())
		})
		b.Run(q.name+"/rls", func(b *testing.B) {
			run(b, app, q.setup, fmt.Sprintf(q.q, ""))
		})
		b.Run(q.name+"/rls+where", func(b *testing.B) {
			run(b, app, q.setup, fmt.Sprintf(q.q, where), target.TenantID(), target.CloneID())
		})
	}
	_ = migrate.CloneOwnedTables
}
