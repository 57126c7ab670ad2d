package faulttest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/rag"
)

// terminate terminates, from the owner's connection, the backends of e's pool whose
// state and query match, polling PostgreSQL's activity view until one appears (with no
// time limit of its own: the test binary's timeout reports a backend that never does);
// it returns how many it terminated.
func terminate(t testing.TB, e *env, state, queryLike string) int {
	t.Helper()
	for {
		var pids []int
		err := e.pg.Owner.Select(&pids, `SELECT pid FROM pg_stat_activity
			WHERE application_name = $1 AND state = $2 AND query LIKE $3 AND pid <> pg_backend_pid()`,
			e.appName, state, queryLike)
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) > 0 {
			n := 0
			for _, pid := range pids {
				var ok bool
				if err := e.pg.Owner.Get(&ok, `SELECT pg_terminate_backend($1, 5000)`, pid); err != nil {
					t.Fatal(err)
				}
				if ok {
					n++
				}
			}
			return n
		}
		time.Sleep(10 * time.Millisecond) // polling another process's state
	}
}

// The backend of a scoped transaction is terminated between two statements and
// before COMMIT: WithTx fails with clone.ErrUnavailable (lib/pq's error reachable with
// errors.As), none of the transaction's rows exist for the owner, and the pool serves
// the next operations on fresh connections.
func TestPostgresTerminatedMidTransaction(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(string(drv), func(t *testing.T) { terminatedMidTransaction(t, newEnv(t, &envOptions{driver: drv})) })
	}
}

func terminatedMidTransaction(t *testing.T, e *env) {
	ctx := context.Background()
	cc := e.newClone(t)

	insert := func(tx *clonesql.Tx, content string) error {
		_, err := records.CreateInsight(ctx, records.WithAudit(tx.Querier(), e.db.Audit()), cc, records.Insight{Category: "fault", Content: content})
		return err
	}
	// Happy path.
	if err := e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		if err := insert(tx, "happy one"); err != nil {
			return err
		}
		return insert(tx, "happy two")
	}); err != nil {
		t.Fatal(err)
	}
	if n := ownerCount(t, e, "insights", cc); n != 2 {
		t.Fatalf("%d insights after the happy path", n)
	}

	for _, at := range []string{"before the second statement", "before commit"} {
		t.Run(strings.ReplaceAll(at, " ", "_"), func(t *testing.T) {
			before := ownerCount(t, e, "insights", cc)
			inTx := make(chan struct{})
			killed := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				done <- e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
					if err := insert(tx, "doomed one"); err != nil {
						return err
					}
					close(inTx)
					<-killed
					if at == "before commit" {
						return nil
					}
					return insert(tx, "doomed two")
				})
			}()
			<-inTx
			if n := terminate(t, e, "idle in transaction", "%INSERT INTO insights%"); n != 1 {
				t.Fatalf("terminated %d backends", n)
			}
			close(killed)
			err := <-done
			if !errors.Is(err, clone.ErrUnavailable) {
				t.Fatalf("WithTx on a terminated backend: %v, want ErrUnavailable", err)
			}
			t.Logf("WithTx on a terminated backend: %v", err)
			if n := ownerCount(t, e, "insights", cc); n != before {
				t.Fatalf("insights %d -> %d: the terminated transaction left rows", before, n)
			}
			// The pool keeps working, every time.
			for i := range 8 {
				if _, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Category: "after", Content: "after the fault"}); err != nil {
					t.Fatalf("operation %d after the fault: %v", i, err)
				}
			}
			if n := ownerCount(t, e, "insights", cc); n != before+8 {
				t.Fatalf("insights %d -> %d after 8 writes", before, n)
			}
		})
	}
}

// Every idle connection of the pool is terminated (a failover, an idle-session
// timeout): no operation fails. database/sql retries a call that fails with
// driver.ErrBadConn on another connection (the driver returns it only when the server
// cannot have run the statement), and clonesql does the same for the opening of a
// scoped transaction on its pinned connection (up to two retries; the pool keeps at
// most two idle connections here, so one operation meets at most two dead ones).
func TestPostgresIdleConnectionsTerminated(t *testing.T) {
	for _, drv := range pgtest.Drivers {
		t.Run(string(drv), func(t *testing.T) { idleConnectionsTerminated(t, newEnv(t, &envOptions{driver: drv})) })
	}
}

func idleConnectionsTerminated(t *testing.T, e *env) {
	e.raw.SetMaxIdleConns(2)
	ctx := context.Background()
	cc := e.newClone(t)
	// Happy path, opening the pool's connections at once, so two stay idle afterwards.
	var wg sync.WaitGroup
	var opened sync.WaitGroup
	opened.Add(4)
	for range 4 {
		wg.Go(func() {
			if err := e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
				_, err := records.CountInsights(ctx, tx.Querier(), cc)
				opened.Done()
				opened.Wait()
				return err
			}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := terminate(t, e, "idle", "%")
	t.Logf("terminated %d idle connections", n)
	for i := range 12 {
		if _, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Category: "after", Content: "after idle kill"}); err != nil {
			t.Fatalf("operation %d after %d idle connections were terminated: %v", i, n, err)
		}
	}
	if _, err := records.CountInsights(ctx, e.db, cc); err != nil {
		t.Fatal(err)
	}
	if got := ownerCount(t, e, "insights", cc); got != 12 {
		t.Fatalf("%d insights, want 12", got)
	}
}

// The backend is terminated while the ingest pipeline's SQL transaction writes the
// chunks (held mid-statement by a trigger that sleeps on a marker): the ingest fails
// with clone.ErrUnavailable, its vectors and original are removed, no chunk row
// exists, the document is "failed" (after Reconcile, if the pipeline could not record
// the failure), and a retry succeeds.
func TestPostgresTerminatedMidIngest(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.pg.Owner.Exec(`
CREATE OR REPLACE FUNCTION faulttest_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.content LIKE '%ZQSLOWSQL%' THEN PERFORM pg_sleep(30); END IF;
	RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS faulttest_slow ON document_chunks;
CREATE TRIGGER faulttest_slow BEFORE INSERT ON document_chunks FOR EACH ROW EXECUTE FUNCTION faulttest_slow();`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.pg.Owner.Exec(`DROP TRIGGER IF EXISTS faulttest_slow ON document_chunks`) })

	p := e.pipeline(t, nil)
	cc := e.newClone(t)
	// Happy path.
	if _, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "happy.md", Data: []byte(doc("quiet water", 5))}); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, e, cc)

	for _, update := range []bool{false, true} {
		name := "new_document"
		if update {
			name = "update"
		}
		t.Run(name, func(t *testing.T) {
			var id uuid.UUID
			if update {
				r, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "v1.md", Data: []byte(doc("the first version", 4))})
				if err != nil {
					t.Fatal(err)
				}
				id = r.Document.ID
			}
			before := stores(t, e, cc)
			beforeDocs := checkConsistent(t, e, cc)
			src := ingest.Source{DocumentID: id, SourceName: "slow.md", Data: []byte(doc("slow ZQSLOWSQL rivers "+name, 5))}
			done := make(chan error, 1)
			go func() {
				_, err := p.Ingest(ctx, cc, src)
				done <- err
			}()
			terminate(t, e, "active", "%INSERT INTO document_chunks%")
			err := <-done
			if !errors.Is(err, clone.ErrUnavailable) {
				t.Fatalf("ingest on a terminated backend: %v, want ErrUnavailable", err)
			}
			// Nothing of the attempt is left: no chunk rows (owner), no vectors, no
			// original.
			after := stores(t, e, cc)
			if strings.Join(after.vectors, ",") != strings.Join(before.vectors, ",") || strings.Join(after.objects, ",") != strings.Join(before.objects, ",") {
				t.Fatalf("the attempt left vectors or objects:\n%v\n%v", after.vectors, after.objects)
			}
			docs := ownerDocs(t, e, cc)
			for _, d := range docs {
				if d.Status != records.StatusReady && d.Chunks != 0 {
					t.Fatalf("document %s (%s) has %d chunk rows", d.ID, d.Status, d.Chunks)
				}
			}
			if len(docs) != len(beforeDocs)+boolInt(!update) {
				t.Fatalf("%d documents before, %d after", len(beforeDocs), len(docs))
			}
			for _, d := range docs {
				if d.Status == records.StatusProcessing || d.Status == records.StatusPending {
					t.Logf("document %s left %s by the pipeline (its failure could not be recorded); Reconcile repairs it", d.ID, d.Status)
				}
			}
			if _, err := p.Reconcile(ctx, cc, &ingest.ReconcileOptions{StaleAfter: time.Nanosecond}); err != nil {
				t.Fatal(err)
			}
			docs = checkConsistent(t, e, cc)
			if update {
				for _, d := range docs {
					if d.ID == id.String() && (d.Status != records.StatusReady || d.Hash != ingest.ContentHash([]byte(doc("the first version", 4)))) {
						t.Fatalf("the failed update did not keep the first version: %+v", d)
					}
				}
			} else if last := docs[len(docs)-1]; last.Status != records.StatusFailed {
				t.Fatalf("the failed document is %s", last.Status)
			}
			// Retrying without the marker succeeds.
			src.Data = []byte(doc("fast rivers "+name, 5))
			if _, err := p.Ingest(ctx, cc, src); err != nil {
				t.Fatalf("retry: %v", err)
			}
			checkConsistent(t, e, cc)
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The backend is terminated while a chat turn stores the question (held inside the
// turn's first transaction by a trigger): Process fails with clone.ErrUnavailable and,
// as package rag documents for a failure in that step, stores nothing — no
// conversation, no message, for the owner. The next turn succeeds.
func TestPostgresTerminatedMidChat(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	if _, err := e.pg.Owner.Exec(`
CREATE OR REPLACE FUNCTION faulttest_slow_message() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.content LIKE '%ZQSLOWSQL%' THEN PERFORM pg_sleep(30); END IF;
	RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS faulttest_slow_message ON messages;
CREATE TRIGGER faulttest_slow_message BEFORE INSERT ON messages FOR EACH ROW EXECUTE FUNCTION faulttest_slow_message();`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.pg.Owner.Exec(`DROP TRIGGER IF EXISTS faulttest_slow_message ON messages`) })
	proc := e.processor(t)
	cc := e.newClone(t)
	if _, err := e.pipeline(t, nil).Ingest(ctx, cc, ingest.Source{SourceName: "tides.md", Data: []byte(doc("tides zqmoon", 4))}); err != nil {
		t.Fatal(err)
	}
	// Happy path.
	if resp, err := proc.Process(ctx, cc, &rag.Request{Subject: "visitor", Question: "What about tides zqmoon?"}, nil); err != nil || !strings.Contains(resp.Answer.Content, "zqmoon") {
		t.Fatalf("happy path: %v", err)
	}
	convs, msgs := ownerCount(t, e, "conversations", cc), ownerCount(t, e, "messages", cc)
	done := make(chan error, 1)
	go func() {
		_, err := proc.Process(ctx, cc, &rag.Request{Subject: "visitor", Question: "What about tides zqmoon ZQSLOWSQL?"}, nil)
		done <- err
	}()
	terminate(t, e, "active", "%INSERT INTO messages%")
	if err := <-done; !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("chat on a terminated backend: %v, want ErrUnavailable", err)
	}
	if c, m := ownerCount(t, e, "conversations", cc), ownerCount(t, e, "messages", cc); c != convs || m != msgs {
		t.Fatalf("conversations %d -> %d, messages %d -> %d: the failed turn stored something", convs, c, msgs, m)
	}
	if resp, err := proc.Process(ctx, cc, &rag.Request{Subject: "visitor", Question: "And the tides zqmoon?"}, nil); err != nil || !strings.Contains(resp.Answer.Content, "zqmoon") {
		t.Fatalf("after the fault: %v", err)
	}
}
