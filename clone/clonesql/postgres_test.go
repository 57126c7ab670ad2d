package clonesql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/internal/pgtest"
)

// TestPooledConnectionsDoNotLeakScope hammers a pool of two connections with 50 clones'
// interleaved, concurrent operations, cancelling about 5% of them at random moments. No
// operation may see another clone's row or hit an aborted transaction, and afterwards
// every pooled connection must have both settings empty and no open transaction.
func TestPooledConnectionsDoNotLeakScope(t *testing.T) {
	e := newEnv(t, clonesql.Postgres)
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
						if err := tx.Get(opCtx, o.cc, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND content NOT LIKE '%' || :me || '%'`, map[string]any{"me": o.cc.CloneID().String()}); err != nil {
							return err
						}
						if n != 0 {
							leaks.Add(1)
						}
						_, err := tx.Exec(opCtx, o.cc, `UPDATE insights SET category = 'touched' WHERE tenant_id = :tenant_id AND clone_id = :clone_id AND id = :id`, map[string]any{"id": o.canary.ID})
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
		var tenantSet, cloneSet sql.NullString
		var inTx bool
		err := c.QueryRowContext(ctx, `SELECT current_setting('cloneiso.tenant_id', true), current_setting('cloneiso.clone_id', true),
			(SELECT xact_start < query_start FROM pg_stat_activity WHERE pid = pg_backend_pid())`).Scan(&tenantSet, &cloneSet, &inTx)
		if err != nil {
			t.Fatal(err)
		}
		if tenantSet.String != "" || cloneSet.String != "" || inTx {
			t.Fatalf("pooled connection %d carries tenant=%q clone=%q inTx=%v", i, tenantSet.String, cloneSet.String, inTx)
		}
	}
	// And raw SQL as the application role, outside the wrapper, sees no clone's rows.
	var n int
	if err := conns[0].QueryRowContext(ctx, "SELECT count(*) FROM insights").Scan(&n); err != nil || n != 0 {
		t.Fatalf("unscoped raw read sees %d rows (%v)", n, err)
	}
}

// countingConn counts round trips: each write that follows a read (or comes first)
// starts one.
type countingConn struct {
	net.Conn
	trips    *atomic.Int64
	lastRead atomic.Bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	if c.lastRead.Swap(false) {
		c.trips.Add(1)
	}
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	c.lastRead.Store(true)
	return c.Conn.Read(b)
}

type countingDialer struct{ trips *atomic.Int64 }

func (d countingDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialTimeout(network, addr, 10*time.Second)
}

func (d countingDialer) DialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	cc := &countingConn{Conn: c, trips: d.trips}
	cc.lastRead.Store(true)
	return cc, nil
}

// openCounting opens the application role's database through a round-trip counting
// dialer, with or without binary_parameters.
func openCounting(t testing.TB, binary bool) (*sqlx.DB, *atomic.Int64) {
	t.Helper()
	pg := pgtest.Shared(t)
	dsn := pg.AppURL
	if binary {
		dsn += map[bool]string{true: "&", false: "?"}[strings.Contains(dsn, "?")] + "binary_parameters=yes"
	}
	conn, err := pq.NewConnector(dsn)
	if err != nil {
		t.Fatal(err)
	}
	trips := &atomic.Int64{}
	conn.Dialer(countingDialer{trips})
	db := sqlx.NewDb(sql.OpenDB(conn), "postgres")
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db, trips
}

func TestRoundTripsPerOperation(t *testing.T) {
	pgtest.Shared(t)
	e := newEnv(t, clonesql.Postgres)
	cc := e.newClone(t)
	in := addInsight(t, e, cc, "rt")
	ctx := context.Background()
	for _, binary := range []bool{true, false} {
		raw, trips := openCounting(t, binary)
		db, err := clonesql.New(raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got insight
		if err := db.Get(ctx, cc, &got, getInsight, map[string]any{"id": in.ID}); err != nil { // warm up: connect
			t.Fatal(err)
		}
		trips.Store(0)
		if err := db.Get(ctx, cc, &got, getInsight, map[string]any{"id": in.ID}); err != nil || got.ID != in.ID {
			t.Fatalf("get: %v", err)
		}
		want := map[bool]int64{true: 3, false: 4}[binary]
		if n := trips.Load(); n != want {
			t.Fatalf("binary_parameters=%v: scoped get took %d round trips; want %d", binary, n, want)
		}
		trips.Store(0)
		var n int
		if err := raw.GetContext(ctx, &n, "SELECT 1 WHERE $1::uuid IS NOT NULL", in.ID); err != nil {
			t.Fatal(err)
		}
		t.Logf("binary_parameters=%v: scoped get %d round trips, raw parameterized read %d", binary, want, trips.Load())
	}
}

// TestRollbackOnFailureReturnsCleanConnection: a statement error inside the scoped
// transaction leaves the single pooled connection usable and unscoped.
func TestRollbackOnFailureReturnsCleanConnection(t *testing.T) {
	e := newEnv(t, clonesql.Postgres)
	e.raw.SetMaxOpenConns(1)
	ctx := context.Background()
	cc := e.newClone(t)
	_, err := e.db.Exec(ctx, cc, `INSERT INTO insights (tenant_id, clone_id, id, content) VALUES (:tenant_id, :clone_id, :id, NULL)`, map[string]any{"id": uuid.New()})
	if err == nil {
		t.Fatal("NULL content accepted")
	}
	var inTx bool
	var setting sql.NullString
	if err := e.raw.QueryRowContext(ctx, `SELECT current_setting('cloneiso.clone_id', true), (SELECT xact_start < query_start FROM pg_stat_activity WHERE pid = pg_backend_pid())`).Scan(&setting, &inTx); err != nil {
		t.Fatalf("connection unusable after a failed statement: %v", err)
	}
	if setting.String != "" || inTx {
		t.Fatalf("connection after failure: setting %q, in transaction %v", setting.String, inTx)
	}
	if _, err := e.db.Exec(ctx, cc, insertInsight, insight{ID: uuid.New(), Content: "ok", CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatalf("next operation: %v", err)
	}
	var pe *pq.Error
	if !errors.As(err, &pe) {
		t.Fatalf("driver error not reachable with errors.As: %v", err)
	}
}
