package records_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/google/uuid"

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
		for _, r := range []string{records.RoleUser, records.RoleAssistant} {
			if _, err := records.AppendMessage(ctx, e.db, cc, records.Message{ConversationID: conv.ID, Role: r, Content: r}); err != nil {
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
