package records_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
)

func TestRoundTrip(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		u := "legacy-7"
		d, err := records.CreateDocument(ctx, e.db, cc, records.Document{Title: "Notes", UserID: &u, Metadata: json.RawMessage(`{"b":1,"a":"x"}`)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := records.GetDocument(ctx, e.db, cc, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Title != "Notes" || got.Status != records.StatusPending || !got.CreatedAt.Equal(d.CreatedAt) || *got.UserID != u || got.TenantID != cc.TenantID() {
			t.Fatalf("got %+v\nwant %+v", got, d)
		}
		var m map[string]any
		if err := json.Unmarshal(got.Metadata, &m); err != nil || m["a"] != "x" {
			t.Fatalf("metadata %s: %v", got.Metadata, err)
		}
		cs, err := records.ReplaceDocumentChunks(ctx, e.db, cc, d.ID, []records.Chunk{{Ordinal: 0, Content: "one"}, {Ordinal: 1, Content: "two"}})
		if err != nil || len(cs) != 2 {
			t.Fatal(cs, err)
		}
		p, err := records.ListDocumentChunks(ctx, e.db, cc, d.ID, nil)
		if err != nil || len(p.Items) != 2 || p.Items[1].Content != "two" {
			t.Fatal(p, err)
		}
		conv, err := records.CreateConversation(ctx, e.db, cc, records.Conversation{Title: "hi"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []records.MessageRole{records.RoleUser, records.RoleAssistant} {
			if _, err := records.AppendMessage(ctx, e.db, cc, records.Message{ConversationID: conv.ID, Role: r, Content: string(r)}); err != nil {
				t.Fatal(err)
			}
		}
		mp, err := records.ListMessages(ctx, e.db, cc, conv.ID, nil)
		if err != nil || len(mp.Items) != 2 || mp.Items[0].Role != records.RoleUser || string(mp.Items[0].Citations) != "[]" {
			t.Fatalf("%+v %v", mp, err)
		}
		in, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Content: "likes tea"})
		if err != nil {
			t.Fatal(err)
		}
		in.Content = "likes coffee"
		in2, err := records.UpdateInsight(ctx, e.db, cc, in)
		if err != nil || in2.Content != "likes coffee" || in2.ID != in.ID {
			t.Fatal(in2, err)
		}
		if err := records.DeleteInsight(ctx, e.db, cc, in.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := records.GetInsight(ctx, e.db, cc, uuid.New()); err == nil {
			t.Fatal("want not found")
		}
		t.Logf("audit: %+v", e.audit.Events())
	})
}

// TestRecordLifecycle: updates keep what they document as kept, deletes cascade to
// chunks and messages, duplicate IDs conflict, empty children are not "not found".
func TestRecordLifecycle(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		u := "legacy-1"
		c, err := records.CreateConversation(ctx, e.db, cc, records.Conversation{Subject: "visitor", Title: "a", UserID: &u})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := records.CountMessages(ctx, e.db, cc, c.ID); err != nil || n != 0 {
			t.Fatalf("empty conversation: count %d, %v", n, err)
		}
		if p, err := records.ListMessages(ctx, e.db, cc, c.ID, nil); err != nil || len(p.Items) != 0 || p.Next != "" {
			t.Fatalf("empty conversation: %+v, %v", p, err)
		}
		other := "other"
		upd := c
		upd.Subject, upd.Title, upd.UserID, upd.Metadata = "changed", "b", &other, json.RawMessage(`{"x":true}`)
		got, err := records.UpdateConversation(ctx, e.db, cc, upd)
		if err != nil {
			t.Fatal(err)
		}
		if got.Subject != "visitor" || got.Title != "b" || *got.UserID != u || !got.CreatedAt.Equal(c.CreatedAt) || got.UpdatedAt.Before(c.UpdatedAt) {
			t.Fatalf("update kept the wrong fields: %+v", got)
		}
		if string(got.Metadata) != `{"x":true}` && string(got.Metadata) != `{"x": true}` {
			t.Fatalf("metadata %s", got.Metadata)
		}
		m, err := records.AppendMessage(ctx, e.db, cc, records.Message{ConversationID: c.ID, Role: records.RoleAssistant, Content: "hello"})
		if err != nil {
			t.Fatal(err)
		}
		if cv, _ := records.GetConversation(ctx, e.db, cc, c.ID); !cv.UpdatedAt.Equal(m.CreatedAt) {
			t.Fatalf("conversation updated_at %v; want the message's %v", cv.UpdatedAt, m.CreatedAt)
		}
		// A duplicate message ID conflicts and leaves nothing behind.
		if _, err := records.AppendMessage(ctx, e.db, cc, records.Message{ID: m.ID, ConversationID: c.ID, Role: records.RoleUser}); !errors.Is(err, clone.ErrConflict) {
			t.Fatalf("duplicate message: %v; want ErrConflict", err)
		}
		if cv, _ := records.GetConversation(ctx, e.db, cc, c.ID); !cv.UpdatedAt.Equal(m.CreatedAt) {
			t.Fatal("a failed append moved the conversation")
		}
		m.Content, m.Role = "edited", records.RoleAssistant
		if em, err := records.UpdateMessage(ctx, e.db, cc, m); err != nil || em.Content != "edited" || !em.CreatedAt.Equal(m.CreatedAt) {
			t.Fatalf("update message: %+v, %v", em, err)
		}
		if err := records.DeleteConversation(ctx, e.db, cc, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := records.GetMessage(ctx, e.db, cc, m.ID); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("message after its conversation was deleted: %v", err)
		}

		d, err := records.CreateDocument(ctx, e.db, cc, records.Document{Title: "d", ContentHash: "sha256:1", SizeBytes: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := records.CreateDocument(ctx, e.db, cc, records.Document{ID: d.ID}); !errors.Is(err, clone.ErrConflict) {
			t.Fatalf("duplicate document: %v; want ErrConflict", err)
		}
		if ds, err := records.FindDocumentsByHash(ctx, e.db, cc, "sha256:1"); err != nil || len(ds) != 1 || ds[0].ID != d.ID {
			t.Fatalf("by hash: %+v, %v", ds, err)
		}
		if _, err := records.ReplaceDocumentChunks(ctx, e.db, cc, d.ID, []records.Chunk{{Content: "a"}, {Ordinal: 1, Content: "b"}}); err != nil {
			t.Fatal(err)
		}
		// Replacing chunks replaces all of them.
		if _, err := records.ReplaceDocumentChunks(ctx, e.db, cc, d.ID, []records.Chunk{{Ordinal: 5, Content: "z"}}); err != nil {
			t.Fatal(err)
		}
		if p, err := records.ListDocumentChunks(ctx, e.db, cc, d.ID, nil); err != nil || len(p.Items) != 1 || p.Items[0].Ordinal != 5 {
			t.Fatalf("after replace: %+v, %v", p, err)
		}
		d.Status = ""
		if _, err := records.UpdateDocument(ctx, e.db, cc, d); !errors.Is(err, clone.ErrInvalidInput) {
			t.Fatalf("update with an empty status: %v; want ErrInvalidInput", err)
		}
		d.Status, d.Error, d.ChunkCount = records.StatusFailed, "parse error", 99
		got2, err := records.UpdateDocument(ctx, e.db, cc, d)
		if err != nil || got2.Status != records.StatusFailed || got2.Error != "parse error" || got2.ChunkCount != 1 {
			t.Fatalf("update document: %+v, %v", got2, err)
		}
		// Optimistic concurrency: the first writer holding a version wins, the second
		// conflicts and changes nothing, even with a frozen clock.
		restore := records.SetClock(func() time.Time { return got2.UpdatedAt })
		first, second := got2, got2
		first.Title, second.Title = "first", "second"
		w1, err := records.UpdateDocumentIfUnchanged(ctx, e.db, cc, first)
		if err != nil || w1.Title != "first" || !w1.UpdatedAt.After(got2.UpdatedAt) {
			t.Fatalf("first writer: %+v, %v", w1, err)
		}
		if _, err := records.UpdateDocumentIfUnchanged(ctx, e.db, cc, second); !errors.Is(err, clone.ErrConflict) {
			t.Fatalf("second writer: %v; want ErrConflict", err)
		}
		restore()
		if cur, _ := records.GetDocument(ctx, e.db, cc, d.ID); cur.Title != "first" {
			t.Fatalf("after the conflict: title %q", cur.Title)
		}
		if _, err := records.UpdateDocumentIfUnchanged(ctx, e.db, cc, records.Document{ID: uuid.New(), Status: records.StatusReady, UpdatedAt: time.Now()}); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("unknown document: %v; want ErrNotFound", err)
		}
		if err := records.DeleteDocument(ctx, e.db, cc, d.ID); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := e.owner.Get(&left, e.owner.Rebind(`SELECT count(*) FROM document_chunks WHERE document_id = ?`), d.ID); err != nil || left != 0 {
			t.Fatalf("chunks left after the document was deleted: %d, %v", left, err)
		}
	})
}

// TestSQLAuditSink: with the SQL audit sink, a denial inside a transaction the
// repository opened is recorded after it ends (on SQLite the sink would otherwise wait
// for the transaction's write lock), and survives the rollback.
func TestSQLAuditSink(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		db, err := clonesql.New(e.raw.DB, &clonesql.Options{Audit: clonesql.AuditSink(e.raw.DB)})
		if err != nil {
			t.Fatal(err)
		}
		missing := uuid.New()
		// A sink that waited for the transaction would deadlock (the test binary's timeout
		// reports it) or lose the events (counted below); no wall-clock time is asserted.
		for _, q := range []clonesql.Querier{db, records.WithAudit(db, db.Audit())} {
			if _, err := records.AppendMessage(ctx, q, cc, records.Message{ConversationID: missing, Role: records.RoleUser}); !errors.Is(err, clone.ErrNotFound) {
				t.Fatalf("append to a missing conversation: %v", err)
			}
			if _, err := records.ReplaceDocumentChunks(ctx, q, cc, missing, nil); !errors.Is(err, clone.ErrNotFound) {
				t.Fatalf("replace chunks of a missing document: %v", err)
			}
		}
		var n int
		if err := e.raw.Get(&n, e.raw.Rebind(`SELECT count(*) FROM audit_events WHERE clone_id = ? AND outcome = 'denied'`), cc.CloneID()); err != nil || n != 4 {
			t.Fatalf("audit_events: %d, %v; want 4", n, err)
		}
	})
}

// TestConcurrentAppends: concurrent appends to one conversation all land, in a strict
// order.
func TestConcurrentAppends(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cc := e.newClone(t)
		c, err := records.CreateConversation(ctx, e.db, cc, records.Conversation{})
		if err != nil {
			t.Fatal(err)
		}
		const workers, each = 4, 8
		errc := make(chan error, workers*each)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					_, err := records.AppendMessage(ctx, e.db, cc, records.Message{ConversationID: c.ID, Role: records.RoleUser, Content: fmt.Sprint(w, "/", i)})
					errc <- err
				}
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
		p, err := records.ListMessages(ctx, e.db, cc, c.ID, &records.ListOptions{Limit: records.MaxPageSize})
		if err != nil || len(p.Items) != workers*each {
			t.Fatalf("%d messages, %v", len(p.Items), err)
		}
		for i := 1; i < len(p.Items); i++ {
			if !p.Items[i].CreatedAt.After(p.Items[i-1].CreatedAt) {
				t.Fatalf("messages %d and %d share or invert a timestamp", i-1, i)
			}
		}
	})
}
