package clonesql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/pgproxy"
	"github.com/cloneiso/cloneiso/internal/pgtest"
)

// TestPooledConnectionsDoNotLeakScope hammers a pool of two connections with 50 clones'
// interleaved, concurrent operations, cancelling about 5% of them at random moments. No
// operation may see another clone's row or hit an aborted transaction, and afterwards
// every pooled connection must have both settings empty and no open transaction.
func TestPooledConnectionsDoNotLeakScope(t *testing.T) {
	forEachDriver(t, testPoolDoesNotLeakScope)
}

func testPoolDoesNotLeakScope(t *testing.T, e *env) {
	e.raw.SetMaxOpenConns(2)
	e.raw.SetMaxIdleConns(2)
	ctx := context.Background()

	const clones, ops, workers = 50, 1200, 16
	type owned struct {
		cc     clone.CloneContext
		canary insight
	}
	all := make([]owned, clones)
	for i := range all {
		cc := e.newClone(t)
		all[i] = owned{cc: cc, canary: addInsight(t, e, cc, "canary of "+cc.CloneID().String())}
	}

	var (
		done, cancelled, leaks atomic.Int64
		firstErr               error
		errMu                  sync.Mutex
		next                   atomic.Int64
		wg                     sync.WaitGroup
	)
	report := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for next.Add(1) <= ops {
				o := all[rng.IntN(clones)]
				opCtx, cancel := context.WithCancel(ctx)
				if rng.IntN(100) < 5 {
					// Cancel at a random moment: before, during or after the operation.
					delay := time.Duration(rng.IntN(3000)) * time.Microsecond
					go func() { time.Sleep(delay); cancel() }()
				}
				var err error
				switch rng.IntN(4) {
				case 0:
					var got insight
					err = e.db.Get(opCtx, o.cc, &got, getInsight, map[string]any{"id": o.canary.ID})
					if err == nil && got.Content != o.canary.Content {
						leaks.Add(1)
					}
				case 1:
					var list []insight
					err = e.db.Select(opCtx, o.cc, &list, listInsight, nil)
					for _, r := range list {
						if r.TenantID != o.cc.TenantID() || r.CloneID != o.cc.CloneID() || !strings.Contains(r.Content, o.cc.CloneID().String()) {
							leaks.Add(1)
						}
					}
				case 2:
					_, err = e.db.Exec(opCtx, o.cc, insertInsight, insight{ID: uuid.New(), Content: "more of " + o.cc.CloneID().String(), CreatedAt: time.Now().UTC()})
				case 3:
					err = e.db.WithTx(opCtx, o.cc, func(tx *clonesql.Tx) error {
						var n int
						if err := tx.Get(opCtx, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND content NOT LIKE '%' || :me || '%'`, map[string]any{"me": o.cc.CloneID().String()}); err != nil {
							return err
						}
						if n != 0 {
							leaks.Add(1)
						}
						_, err := tx.Exec(opCtx, `UPDATE insights SET category = 'touched' WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, map[string]any{"id": o.canary.ID})
						return err
					})
				}
				if err != nil {
					if opCtx.Err() != nil {
						cancelled.Add(1)
					} else {
						report(fmt.Errorf("operation failed without cancellation: %w", err))
					}
				}
				cancel()
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	if leaks.Load() != 0 {
		t.Fatalf("%d cross-clone reads", leaks.Load())
	}
	t.Logf("%d operations over %d clones on 2 connections, %d cancelled mid-way, 0 leaks", done.Load(), clones, cancelled.Load())

	// Every connection in the pool: settings empty, no transaction left open.
	conns := make([]*sql.Conn, 2)
	for i := range conns {
		c, err := e.raw.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		st, err := readConnState(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if st.tenant != "" || st.clone != "" || st.inTx {
			t.Fatalf("pooled connection %d carries %+v", i, st)
		}
	}
	// And raw SQL as the application role, outside the wrapper, sees no clone's rows.
	var n int
	if err := conns[0].QueryRowContext(ctx, "SELECT count(*) FROM insights").Scan(&n); err != nil || n != 0 {
		t.Fatalf("unscoped raw read sees %d rows (%v)", n, err)
	}
}

// roundTripDB opens the application role's database through a round-trip counting
// proxy on one connection: with lib/pq (binary_parameters as OpenPostgres sets it, or
// stock), or pgx in the given default_query_exec_mode ("" for pgx's default). pgx's
// liveness ping of a connection idle for over a second is switched off, so that a slow
// machine cannot add a round trip.
func roundTripDB(t testing.TB, drv, mode string) (*sql.DB, *pgproxy.Proxy) {
	t.Helper()
	pg := pgtest.Shared(t)
	u, _ := url.Parse(pg.AppURL)
	p, err := pgproxy.Start(u.Host, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	dsn, err := p.URL(pg.AppURL)
	if err != nil {
		t.Fatal(err)
	}
	var db *sql.DB
	switch drv {
	case "lib/pq":
		db, err = clonesql.OpenPostgres(dsn)
	case "lib/pq-stock":
		db, err = sql.Open("postgres", dsn)
	case "pgx":
		if mode != "" {
			dsn += "&default_query_exec_mode=" + mode
		}
		cfg, perr := pgx.ParseConfig(dsn)
		if perr != nil {
			t.Fatal(perr)
		}
		db = stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false }))
	}
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	t.Cleanup(func() { db.Close() })
	return db, p
}

// TestRoundTripsPerOperation counts, through the proxy, the round trips of each scoped
// operation: exactly one for Get, Select and Exec on pgx (in every statement mode, once
// the statement is cached on the connection; in exec mode from the first use), two for
// a write whose returned rows are re-checked before COMMIT; at most three on lib/pq
// with binary parameters (four without).
func TestRoundTripsPerOperation(t *testing.T) {
	e := newEnv(t, clonesql.Postgres)
	cc := e.newClone(t)
	in := addInsight(t, e, cc, "rt")
	ctx := context.Background()
	type op struct {
		name string
		run  func(db *clonesql.DB) error
	}
	ops := []op{
		{"get", func(db *clonesql.DB) error {
			var got insight
			if err := db.Get(ctx, cc, &got, getInsight, map[string]any{"id": in.ID}); err != nil || got.ID != in.ID {
				return fmt.Errorf("get: %+v, %v", got, err)
			}
			return nil
		}},
		{"get-missing", func(db *clonesql.DB) error {
			var got insight
			if err := db.Get(ctx, cc, &got, getInsight, map[string]any{"id": uuid.New()}); !errors.Is(err, clone.ErrNotFound) {
				return fmt.Errorf("get of a missing row: %v", err)
			}
			return nil
		}},
		{"select", func(db *clonesql.DB) error {
			var list []insight
			if err := db.Select(ctx, cc, &list, listInsight, nil); err != nil || len(list) == 0 {
				return fmt.Errorf("select: %d rows, %v", len(list), err)
			}
			return nil
		}},
		{"exec", func(db *clonesql.DB) error {
			_, err := db.Exec(ctx, cc, `UPDATE insights SET category = 'rt' WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, map[string]any{"id": in.ID})
			return err
		}},
		{"insert", func(db *clonesql.DB) error {
			_, err := db.Exec(ctx, cc, insertInsight, insight{ID: uuid.New(), Content: "rt", Category: "c", CreatedAt: time.Now().UTC()})
			return err
		}},
		{"insert-returning-checked", func(db *clonesql.DB) error {
			var got insight
			return db.Get(ctx, cc, &got, insertInsight+` RETURNING tenant_id, clone_id, id, content, category, created_at`,
				insight{ID: uuid.New(), Content: "rt", Category: "c", CreatedAt: time.Now().UTC()})
		}},
		{"withtx-1", func(db *clonesql.DB) error {
			return db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
				var n int
				return tx.Get(ctx, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil)
			})
		}},
		{"withtx-2", func(db *clonesql.DB) error {
			return db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
				var n int
				if err := tx.Get(ctx, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `UPDATE insights SET category = 'rt2' WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, map[string]any{"id": in.ID})
				return err
			})
		}},
	}
	pgxWant := map[string]int64{"insert-returning-checked": 2, "withtx-1": 2, "withtx-2": 3}
	for _, c := range []struct {
		drv, mode string
		want      func(op string) int64
		cold      bool // the count holds from the first use on a fresh connection
	}{
		{"pgx", "", func(op string) int64 { return max(pgxWant[op], 1) }, false},
		{"pgx", "cache_describe", func(op string) int64 { return max(pgxWant[op], 1) }, false},
		{"pgx", "exec", func(op string) int64 { return max(pgxWant[op], 1) }, true},
		{"lib/pq", "", func(op string) int64 { return map[string]int64{"withtx-2": 4}[op] + 3*boolInt(op != "withtx-2") }, true},
		{"lib/pq-stock", "", func(op string) int64 { return map[string]int64{"withtx-2": 6}[op] + 4*boolInt(op != "withtx-2") }, true},
	} {
		name := c.drv
		if c.mode != "" {
			name += "-" + c.mode
		}
		t.Run(strings.ReplaceAll(name, "/", ""), func(t *testing.T) {
			raw, p := roundTripDB(t, c.drv, c.mode)
			db, err := clonesql.New(raw, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := raw.PingContext(ctx); err != nil { // connect
				t.Fatal(err)
			}
			for _, o := range ops {
				if !c.cold {
					if err := o.run(db); err != nil { // warm the connection's statement cache
						t.Fatal(err)
					}
				}
				p.Reset()
				if err := o.run(db); err != nil {
					t.Fatalf("%s: %v", o.name, err)
				}
				got, want := p.RoundTrips(), c.want(o.name)
				if got != want {
					t.Errorf("%s %s: %d round trips; want %d", name, o.name, got, want)
				}
				t.Logf("%-24s %d round trips", o.name, got)
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestRollbackOnFailureReturnsCleanConnection: a statement error inside the scoped
// transaction leaves the single pooled connection usable and unscoped.
func TestRollbackOnFailureReturnsCleanConnection(t *testing.T) {
	forEachDriver(t, testRollbackOnFailure)
}

func testRollbackOnFailure(t *testing.T, e *env) {
	e.raw.SetMaxOpenConns(1)
	ctx := context.Background()
	cc := e.newClone(t)
	_, failure := e.db.Exec(ctx, cc, `INSERT INTO insights (tenant_id, clone_id, id, content) VALUES (:tenant_id, :clone_id, :id, NULL)`, map[string]any{"id": uuid.New()})
	if failure == nil {
		t.Fatal("NULL content accepted")
	}
	c, err := e.raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st, serr := readConnState(ctx, c)
	c.Close()
	if serr != nil {
		t.Fatalf("connection unusable after a failed statement: %v", serr)
	}
	if st.tenant != "" || st.clone != "" || st.inTx {
		t.Fatalf("connection after failure: %+v", st)
	}
	if _, err := e.db.Exec(ctx, cc, insertInsight, insight{ID: uuid.New(), Content: "ok", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatalf("next operation: %v", err)
	}
	var pe *pq.Error
	var ge *pgconn.PgError
	if !errors.As(failure, &pe) && !errors.As(failure, &ge) {
		t.Fatalf("driver error not reachable with errors.As: %v", failure)
	}
	if e.driver == pgtest.Pgx && ge == nil {
		t.Fatalf("pgx error not reachable with errors.As: %v", failure)
	}
}

// connState is what a pooled connection carries between operations.
type connState struct {
	tenant, clone string // the scope settings as the server sees them
	inTx          bool   // the server reports an open transaction
}

// readConnState reads c's settings and transaction status with one simple-protocol
// query (on pgx as on lib/pq, so that the statement itself opens no extended-protocol
// transaction), and on pgx also the transaction status the driver last received.
func readConnState(ctx context.Context, c *sql.Conn) (connState, error) {
	const q = `SELECT coalesce(current_setting('cloneiso.tenant_id', true), ''), coalesce(current_setting('cloneiso.clone_id', true), ''),
		(SELECT xact_start < query_start FROM pg_stat_activity WHERE pid = pg_backend_pid())`
	var st connState
	onPgx := false
	err := c.Raw(func(dc any) error {
		if sc, ok := dc.(*stdlib.Conn); ok {
			onPgx = true
			pc := sc.Conn()
			if pc.PgConn().TxStatus() != 'I' {
				st.inTx = true
			}
			var inTx bool
			err := pc.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&st.tenant, &st.clone, &inTx)
			st.inTx = st.inTx || inTx
			return err
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if !onPgx {
		var inTx bool
		if err := c.QueryRowContext(ctx, q).Scan(&st.tenant, &st.clone, &inTx); err != nil { // lib/pq: simple protocol without arguments
			return st, err
		}
		st.inTx = inTx
	}
	return st, nil
}

// TestRecheckedWriteRollsBack: a write that returns a row of another clone (a leaky
// statement on a connection that bypasses RLS) fails with ErrIsolationViolation and is
// rolled back, on every driver: on pgx its transaction stays open until the returned
// rows are re-checked.
func TestRecheckedWriteRollsBack(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.newClone(t), e.newClone(t)
		ib := addInsight(t, e, b, "bravo")
		bypass, err := clonesql.New(e.owner.DB, &clonesql.Options{Audit: e.audit})
		if err != nil {
			t.Fatal(err)
		}
		var got insight
		err = bypass.Get(ctx, a, &got, `UPDATE insights SET content = 'stolen'
			WHERE (tenant_id = :tenant_id AND clone_id = :clone_id AND false) OR id = :victim
			RETURNING tenant_id, clone_id, id, content, category, created_at`, map[string]any{"victim": ib.ID})
		if !errors.Is(err, clone.ErrIsolationViolation) || got.Content != "" {
			t.Fatalf("leaky write: %+v, %v; want ErrIsolationViolation and nothing", got, err)
		}
		if err := e.db.Get(ctx, b, &got, getInsight, map[string]any{"id": ib.ID}); err != nil || got.Content != "bravo" {
			t.Fatalf("B's row after the refused write: %q, %v; want it unchanged", got.Content, err)
		}
	})
}

// TestDeadPooledConnectionIsRetried: the backend of the only pooled connection is
// terminated while the connection is idle (a failover, idle_session_timeout); the next
// scoped operation notices before any of it ran and retries on a new connection, on
// both drivers. pgx's own liveness ping (after a second of idleness) is off here, so
// that the retry in clonesql is what is tested.
func TestDeadPooledConnectionIsRetried(t *testing.T) {
	e := newEnv(t, clonesql.Postgres)
	cc := e.newClone(t)
	in := addInsight(t, e, cc, "survivor")
	ctx := context.Background()
	pg := pgtest.Shared(t)
	for _, drv := range pgtest.Drivers {
		t.Run(string(drv), func(t *testing.T) {
			var raw *sqlx.DB
			if drv == pgtest.Pgx {
				cfg, err := pgx.ParseConfig(pg.AppURL)
				if err != nil {
					t.Fatal(err)
				}
				raw = sqlx.NewDb(stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false })), "pgx")
				t.Cleanup(func() { raw.Close() })
			} else {
				raw = pgtest.OpenURL(t, drv, pg.AppURL)
			}
			raw.SetMaxOpenConns(1)
			db, err := clonesql.New(raw.DB, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range []string{"get", "withtx"} {
				var pid int
				if err := raw.GetContext(ctx, &pid, `SELECT pg_backend_pid()`); err != nil {
					t.Fatal(err)
				}
				var ok bool
				if err := e.owner.GetContext(ctx, &ok, `SELECT pg_terminate_backend($1, 60000)`, pid); err != nil || !ok {
					t.Fatalf("terminate %d: %v, %v", pid, ok, err)
				}
				var got insight
				if op == "get" {
					err = db.Get(ctx, cc, &got, getInsight, map[string]any{"id": in.ID})
				} else {
					err = db.WithTx(ctx, cc, func(tx *clonesql.Tx) error { return tx.Get(ctx, &got, getInsight, map[string]any{"id": in.ID}) })
				}
				if err != nil || got.Content != "survivor" {
					t.Fatalf("%s on a pool whose connection was terminated: %+v, %v", op, got, err)
				}
			}
		})
	}
}
