package clonesql_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/pgproxy"
	"github.com/cloneiso/cloneiso/internal/pgtest"
)

// interleave runs base and cand alternately b.N times each and reports the median
// latency of each and their ratio (cand/base). Alternating cancels the drift that
// other processes on a shared machine put into back-to-back benchmarks.
func interleave(b *testing.B, base, cand func() error) {
	b.Helper()
	var tb, tc []time.Duration
	for i := 0; b.Loop(); i++ {
		first, second, t1, t2 := base, cand, &tb, &tc
		if i%2 == 1 {
			first, second, t1, t2 = cand, base, &tc, &tb
		}
		s := time.Now()
		if err := first(); err != nil {
			b.Fatal(err)
		}
		m := time.Now()
		if err := second(); err != nil {
			b.Fatal(err)
		}
		*t1 = append(*t1, m.Sub(s))
		*t2 = append(*t2, time.Since(m))
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2])
	}
	b.ReportMetric(med(tb), "base-ns")
	b.ReportMetric(med(tc), "cand-ns")
	b.ReportMetric(med(tc)/med(tb), "ratio")
}

// BenchmarkScopedRatio: the scoped wrapper (cand) against the identical raw sqlx
// statement (base) on the same database, interleaved; "ratio" is scoped/raw. On
// PostgreSQL the raw statement runs as the owner (no RLS) and the scoped one as the
// application role with RLS, both with binary_parameters.
//
//	go test -run '^$' -bench ScopedRatio -benchtime 3000x ./clone/clonesql
func BenchmarkScopedRatio(b *testing.B) {
	for _, d := range []clonesql.Dialect{clonesql.SQLite, clonesql.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			e := newEnv(b, d)
			raw := e.raw
			if d == clonesql.Postgres {
				var err error
				owner, err := clonesql.OpenPostgres(pgtest.Shared(b).OwnerURL)
				if err != nil {
					b.Fatal(err)
				}
				raw = sqlx.NewDb(owner, "postgres")
				b.Cleanup(func() { raw.Close() })
			}
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
			now := time.Now().UTC()
			getArg := map[string]any{"id": first.ID}
			b.Run("get", func(b *testing.B) {
				interleave(b, func() error {
					var got insight
					return raw.GetContext(ctx, &got, rawGet, cc.TenantID(), cc.CloneID(), first.ID)
				}, func() error {
					var got insight
					return e.db.Get(ctx, cc, &got, getInsight, getArg)
				})
			})
			if d == clonesql.Postgres {
				// The same read through a stock lib/pq connection string (no
				// binary_parameters): what a host's raw sqlx code costs today.
				stock, err := sqlx.Open("postgres", pgtest.Shared(b).OwnerURL)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { stock.Close() })
				b.Run("get-vs-stock-lib-pq", func(b *testing.B) {
					interleave(b, func() error {
						var got insight
						return stock.GetContext(ctx, &got, rawGet, cc.TenantID(), cc.CloneID(), first.ID)
					}, func() error {
						var got insight
						return e.db.Get(ctx, cc, &got, getInsight, getArg)
					})
				})
			}
			b.Run("list50", func(b *testing.B) {
				interleave(b, func() error {
					var got []insight
					return raw.SelectContext(ctx, &got, rawList, cc.TenantID(), cc.CloneID())
				}, func() error {
					var got []insight
					return e.db.Select(ctx, cc, &got, listInsight+" LIMIT 50", nil)
				})
			})
			b.Run("insert", func(b *testing.B) {
				interleave(b, func() error {
					_, err := raw.ExecContext(ctx, rawInsert, cc.TenantID(), cc.CloneID(), uuid.New(), "bench", "c", now, now)
					return err
				}, func() error {
					_, err := e.db.Exec(ctx, cc, insertInsight, insight{ID: uuid.New(), Content: "bench", Category: "c", CreatedAt: now})
					return err
				})
			})
		})
	}
}

// BenchmarkRLSRatio: a query filtered by the row-level security policy alone (cand,
// the application role) against the same query with an explicit WHERE (base, the owner,
// to whom RLS does not apply), over 1,000,000 rows (100 clones of 10,000), each in the
// same transaction shape (BEGIN and settings in one message, the query, COMMIT),
// interleaved; "ratio" is RLS/WHERE.
//
//	go test -run '^$' -bench RLSRatio -benchtime 300x ./clone/clonesql
func BenchmarkRLSRatio(b *testing.B) {
	pg := pgtest.Fresh(b, true)
	ctx := context.Background()
	const clones, perClone = 100, 10_000
	var target clone.CloneContext
	for i := range clones {
		tid, cid := uuid.New(), uuid.New()
		if _, err := pg.Owner.ExecContext(ctx, `INSERT INTO tenants (id, plan) VALUES ($1, 'solo')`, tid); err != nil {
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
	conn := func(dsn string) *sqlx.Conn {
		db, err := clonesql.OpenPostgres(dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		c, err := sqlx.NewDb(db, "postgres").Connx(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close() })
		return c
	}
	owner, app := conn(pg.OwnerURL), conn(pg.AppURL)
	run := func(c *sqlx.Conn, setup, q string, args ...any) func() error {
		begin := "BEGIN; " + setup + "SELECT set_config('cloneiso.tenant_id', '" + target.TenantID().String() + "', true), set_config('cloneiso.clone_id', '" + target.CloneID().String() + "', true)"
		return func() error {
			if _, err := c.ExecContext(ctx, begin); err != nil {
				return err
			}
			rows, err := c.QueryContext(ctx, q, args...)
			if err != nil {
				return err
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			if n == 0 {
				return fmt.Errorf("no rows")
			}
			_, err = c.ExecContext(ctx, "COMMIT")
			return err
		}
	}
	where := " WHERE tenant_id = $1 AND clone_id = $2"
	noIndex := "SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_indexonlyscan = off; "
	for _, q := range []struct{ name, q, setup string }{
		{"page", "SELECT id, content, created_at FROM insights%s ORDER BY created_at, id LIMIT 50", ""},
		{"count", "SELECT count(*) FROM insights%s", ""},
		{"seqscan", "SELECT count(*) FROM insights%s", noIndex},
	} {
		b.Run(q.name, func(b *testing.B) {
			interleave(b, run(owner, q.setup, fmt.Sprintf(q.q, where), target.TenantID(), target.CloneID()), run(app, q.setup, fmt.Sprintf(q.q, "")))
		})
	}
}

// BenchmarkDriverRatio: the scoped wrapper (cand) against the identical raw sqlx
// statement (base) on the same driver and the same network path, interleaved; "ratio"
// is scoped/raw. Raw runs as the owner (no RLS) with an explicit WHERE, scoped as the
// application role with RLS. Drivers: pgx (clonesql.OpenPgx, default statement cache)
// and lib/pq (clonesql.OpenPostgres, binary_parameters). Paths: loopback, and a proxy
// adding 1 ms to every client→server chunk (one way), as for a database in another
// availability zone, where each round trip counts.
//
//	go test -run '^$' -bench DriverRatio -benchtime 1000x ./clone/clonesql
func BenchmarkDriverRatio(b *testing.B) {
	e := newEnv(b, clonesql.Postgres)
	pg := pgtest.Shared(b)
	ctx := context.Background()
	cc := e.newClone(b)
	var first insight
	for i := range 200 {
		in := addInsight(b, e, cc, fmt.Sprintf("insight %d", i))
		if i == 0 {
			first = in
		}
	}
	const (
		rawGet    = `SELECT tenant_id, clone_id, id, content, category, created_at FROM insights WHERE tenant_id = $1 AND clone_id = $2 AND id = $3`
		rawList   = `SELECT tenant_id, clone_id, id, content, category, created_at FROM insights WHERE tenant_id = $1 AND clone_id = $2 ORDER BY id LIMIT 50`
		rawInsert = `INSERT INTO insights (tenant_id, clone_id, id, content, category, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	)
	now := time.Now().UTC()
	getArg := map[string]any{"id": first.ID}
	u, err := url.Parse(pg.AppURL)
	if err != nil {
		b.Fatal(err)
	}
	for _, path := range []struct {
		name  string
		delay time.Duration
	}{{"loopback", 0}, {"1ms", time.Millisecond}} {
		for _, drv := range pgtest.Drivers {
			b.Run(path.name+"/"+string(drv), func(b *testing.B) {
				appURL, ownerURL := pg.AppURL, pg.OwnerURL
				if path.delay > 0 {
					p, err := pgproxy.Start(u.Host, &pgproxy.Options{Delay: path.delay})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { p.Close() })
					appURL, _ = p.URL(appURL)
					ownerURL, _ = p.URL(ownerURL)
				}
				raw := pgtest.OpenURL(b, drv, ownerURL)
				db, err := clonesql.New(pgtest.OpenURL(b, drv, appURL).DB, nil)
				if err != nil {
					b.Fatal(err)
				}
				// The raw statements get the IDs in the form each driver encodes fastest
				// (pgx: pgtype.UUID, as the wrapper passes them), so that the ratio is
				// against the best raw code, not against a slower encoding.
				var tid, cid, id any = cc.TenantID(), cc.CloneID(), first.ID
				newID := func() any { return uuid.New() }
				if drv == pgtest.Pgx {
					tid, cid, id = pgtype.UUID{Bytes: cc.TenantID(), Valid: true}, pgtype.UUID{Bytes: cc.CloneID(), Valid: true}, pgtype.UUID{Bytes: first.ID, Valid: true}
					newID = func() any { return pgtype.UUID{Bytes: uuid.New(), Valid: true} }
				}
				b.Run("get", func(b *testing.B) {
					interleave(b, func() error {
						var got insight
						return raw.GetContext(ctx, &got, rawGet, tid, cid, id)
					}, func() error {
						var got insight
						return db.Get(ctx, cc, &got, getInsight, getArg)
					})
				})
				b.Run("list50", func(b *testing.B) {
					interleave(b, func() error {
						var got []insight
						return raw.SelectContext(ctx, &got, rawList, tid, cid)
					}, func() error {
						var got []insight
						return db.Select(ctx, cc, &got, listInsight+" LIMIT 50", nil)
					})
				})
				b.Run("insert", func(b *testing.B) {
					interleave(b, func() error {
						_, err := raw.ExecContext(ctx, rawInsert, tid, cid, newID(), "bench", "c", now, now)
						return err
					}, func() error {
						_, err := db.Exec(ctx, cc, insertInsight, insight{ID: uuid.New(), Content: "bench", Category: "c", CreatedAt: now})
						return err
					})
				})
			})
		}
	}
}
