package records_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/internal/pgtest"
)

// writeAll performs one write of every kind through q and returns the IDs it created.
func writeAll(t *testing.T, ctx context.Context, q clonesql.Querier, cc clone.CloneContext) (doc, conv, in uuid.UUID) {
	t.Helper()
	d, err := records.CreateDocument(ctx, q, cc, records.Document{Title: "composed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.ReplaceDocumentChunks(ctx, q, cc, d.ID, []records.Chunk{{Content: "c0"}, {Ordinal: 1, Content: "c1"}}); err != nil {
		t.Fatal(err)
	}
	if err := records.SetDocumentStatus(ctx, q, cc, d.ID, records.StatusReady, ""); err != nil {
		t.Fatal(err)
	}
	c, err := records.CreateConversation(ctx, q, cc, records.Conversation{Title: "composed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.AppendMessage(ctx, q, cc, records.Message{ConversationID: c.ID, Role: records.RoleUser, Content: "hi"}); err != nil {
		t.Fatal(err)
	}
	i, err := records.CreateInsight(ctx, q, cc, records.Insight{Content: "composed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := records.CreateTrainingExample(ctx, q, cc, records.TrainingExample{Prompt: "p", Response: "r"}); err != nil {
		t.Fatal(err)
	}
	return d.ID, c.ID, i.ID
}

// counts returns the clone's number of documents, insights, training examples and
// conversations.
func counts(t *testing.T, e *env, cc clone.CloneContext) [4]int64 {
	t.Helper()
	ctx := context.Background()
	var c [4]int64
	var err [4]error
	c[0], err[0] = records.CountDocuments(ctx, e.db, cc)
	c[1], err[1] = records.CountInsights(ctx, e.db, cc)
	c[2], err[2] = records.CountTrainingExamples(ctx, e.db, cc)
	c[3], err[3] = records.CountConversations(ctx, e.db, cc)
	if err := errors.Join(err[:]...); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestComposeWithTx(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		hostErr := errors.New("host failure")

		// Rolled back by an error of the host's function: nothing stays.
		err := e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
			writeAll(t, ctx, tx.Querier(), cc)
			return hostErr
		})
		if !errors.Is(err, hostErr) || counts(t, e, cc) != [4]int64{} {
			t.Fatalf("after rollback: %v, counts %v", err, counts(t, e, cc))
		}
		// Rolled back by a panic.
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("panic not re-raised")
				}
			}()
			e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
				writeAll(t, ctx, tx.Querier(), cc)
				panic("host panic")
			})
		}()
		if counts(t, e, cc) != [4]int64{} {
			t.Fatalf("after panic: counts %v", counts(t, e, cc))
		}
		// A failed repository statement dooms the transaction even if the host ignores it.
		var dup uuid.UUID
		err = e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
			_, _, dup = writeAll(t, ctx, tx.Querier(), cc)
			if _, err := records.CreateInsight(ctx, tx.Querier(), cc, records.Insight{ID: dup, Content: "again"}); !errors.Is(err, clone.ErrConflict) {
				t.Errorf("duplicate ID: %v; want ErrConflict", err)
			}
			return nil
		})
		if err == nil || counts(t, e, cc) != [4]int64{} {
			t.Fatalf("after a failed statement: %v, counts %v", err, counts(t, e, cc))
		}
		// Committed: everything stays, chunks and messages included.
		var doc, conv uuid.UUID
		err = e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
			doc, conv, _ = writeAll(t, ctx, tx.Querier(), cc)
			return nil
		})
		if err != nil || counts(t, e, cc) != [4]int64{1, 1, 1, 1} {
			t.Fatalf("after commit: %v, counts %v", err, counts(t, e, cc))
		}
		if n, err := records.CountDocumentChunks(ctx, e.db, cc, doc); err != nil || n != 2 {
			t.Fatalf("chunks: %d, %v", n, err)
		}
		if n, err := records.CountMessages(ctx, e.db, cc, conv); err != nil || n != 1 {
			t.Fatalf("messages: %d, %v", n, err)
		}
		// Inside a transaction, a denial is answered as not found and audited once.
		other := e.newClone(t)
		e.audit.Reset()
		err = e.db.WithTx(ctx, other, func(tx *clonesql.Tx) error {
			_, err := records.GetDocument(ctx, tx.Querier(), other, doc)
			return err
		})
		if !errors.Is(err, clone.ErrNotFound) || len(e.audit.Events()) != 1 {
			t.Fatalf("foreign ID in a transaction: %v, %d audit events", err, len(e.audit.Events()))
		}
	})
}

func TestComposeBind(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		// The host's own table, outside cloneiso's schema.
		if _, err := e.owner.Exec(`CREATE TABLE IF NOT EXISTS host_ledger (id TEXT PRIMARY KEY, note TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		if e.dialect == clonesql.Postgres {
			if _, err := e.owner.Exec(`GRANT SELECT, INSERT ON host_ledger TO ` + pgtest.AppRole); err != nil {
				t.Fatal(err)
			}
		}
		ledger := func(id string) int {
			var n int
			if err := e.raw.Get(&n, e.raw.Rebind(`SELECT count(*) FROM host_ledger WHERE id = ?`), id); err != nil {
				t.Fatal(err)
			}
			return n
		}
		for _, commit := range []bool{false, true} {
			hostTx, err := e.raw.BeginTxx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			id := uuid.NewString()
			if _, err := hostTx.Exec(hostTx.Rebind(`INSERT INTO host_ledger (id, note) VALUES (?, ?)`), id, "host work"); err != nil {
				t.Fatal(err)
			}
			tx, err := e.db.Bind(ctx, hostTx.Tx, cc)
			if err != nil {
				t.Fatal(err)
			}
			q := tx // a bound Tx records denials at once, on the DB's sink
			doc, conv, _ := writeAll(t, ctx, q.Querier(), cc)
			// Reads inside the host's transaction see its uncommitted writes.
			if d, err := records.GetDocument(ctx, q.Querier(), cc, doc); err != nil || d.Status != records.StatusReady || d.ChunkCount != 2 {
				t.Fatalf("read inside the host transaction: %+v, %v", d, err)
			}
			// A denial inside the host's transaction: not found, audited once.
			e.audit.Reset()
			if _, err := records.GetInsight(ctx, q.Querier(), cc, uuid.New()); !errors.Is(err, clone.ErrNotFound) || len(e.audit.Events()) != 1 {
				t.Fatalf("unknown ID in the host transaction: %v, %d events", err, len(e.audit.Events()))
			}
			if commit {
				err = hostTx.Commit()
			} else {
				err = hostTx.Rollback()
			}
			if err != nil {
				t.Fatal(err)
			}
			want, wantLedger := [4]int64{}, 0
			if commit {
				want, wantLedger = [4]int64{1, 1, 1, 1}, 1
			}
			if got := counts(t, e, cc); got != want || ledger(id) != wantLedger {
				t.Fatalf("commit=%v: counts %v, ledger %d; want %v, %d", commit, got, ledger(id), want, wantLedger)
			}
			if commit {
				if n, err := records.CountMessages(ctx, e.db, cc, conv); err != nil || n != 1 {
					t.Fatalf("messages after commit: %d, %v", n, err)
				}
			}
		}
	})
}
