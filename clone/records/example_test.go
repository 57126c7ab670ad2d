package records_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/tenant"
)

// exampleDB opens a fresh SQLite database with cloneiso's schema and returns it wrapped
// for clone-scoped access, its tenant store, the audit sink and a cleanup function.
func exampleDB() (*clonesql.DB, *tenant.Store, *audit.Memory, func()) {
	dir, err := os.MkdirTemp("", "records-example")
	if err != nil {
		panic(err)
	}
	sx, err := sqlitedb.Open(filepath.Join(dir, "clones.db"))
	if err != nil {
		panic(err)
	}
	if err := migrate.Up(context.Background(), sx, nil); err != nil {
		panic(err)
	}
	sink := &audit.Memory{}
	db, err := clonesql.New(sx, &clonesql.Options{Audit: sink})
	if err != nil {
		panic(err)
	}
	tenants, err := tenant.NewStore(sx, nil)
	if err != nil {
		panic(err)
	}
	return db, tenants, sink, func() { sx.Close(); os.RemoveAll(dir) }
}

// A document, its chunks, and a conversation with the clone.
func Example() {
	ctx := context.Background()
	db, tenants, _, done := exampleDB()
	defer done()
	cc, _, err := tenants.ProvisionSolo(ctx, "alice") // normally done by clonehttp on first sign-in
	if err != nil {
		panic(err)
	}

	doc, err := records.CreateDocument(ctx, db, cc, records.Document{Title: "Pricing notes", ContentType: "text/plain"})
	if err != nil {
		panic(err)
	}
	if _, err := records.ReplaceDocumentChunks(ctx, db, cc, doc.ID, []records.Chunk{
		{Ordinal: 0, Content: "Coaching costs 200 EUR per hour."},
		{Ordinal: 1, Content: "Packages of ten hours get 10% off."},
	}); err != nil {
		panic(err)
	}
	if err := records.SetDocumentStatus(ctx, db, cc, doc.ID, records.StatusReady, ""); err != nil {
		panic(err)
	}
	doc, _ = records.GetDocument(ctx, db, cc, doc.ID)
	fmt.Println(doc.Title, doc.Status, doc.ChunkCount, doc.CloneID == cc.CloneID())

	conv, err := records.CreateConversation(ctx, db, cc, records.Conversation{Subject: "visitor-1", Title: "Prices"})
	if err != nil {
		panic(err)
	}
	for _, m := range []records.Message{
		{ConversationID: conv.ID, Role: records.RoleUser, Content: "How much is an hour?"},
		{ConversationID: conv.ID, Role: records.RoleAssistant, Content: "200 EUR.", Citations: []byte(`[{"document":"` + doc.ID.String() + `","ordinal":0}]`)},
	} {
		if _, err := records.AppendMessage(ctx, db, cc, m); err != nil {
			panic(err)
		}
	}
	page, err := records.ListMessages(ctx, db, cc, conv.ID, nil)
	if err != nil {
		panic(err)
	}
	for _, m := range page.Items {
		fmt.Printf("%s: %s\n", m.Role, m.Content)
	}
	// Output:
	// Pricing notes ready 2 true
	// user: How much is an hour?
	// assistant: 200 EUR.
}

// Another clone's record is answered as not found, and the attempt is audited.
func ExampleGetInsight_otherClone() {
	ctx := context.Background()
	db, tenants, sink, done := exampleDB()
	defer done()
	alice, _, _ := tenants.ProvisionSolo(ctx, "alice")
	bob, _, _ := tenants.ProvisionSolo(ctx, "bob")

	secret, err := records.CreateInsight(ctx, db, alice, records.Insight{Category: "pricing", Content: "floor price is 150"})
	if err != nil {
		panic(err)
	}
	_, err = records.GetInsight(ctx, db, bob, secret.ID)
	fmt.Println(errors.Is(err, clone.ErrNotFound), clone.HTTPStatus(err))
	// Bob's updates and deletes of Alice's ID fail the same way and change nothing.
	err = records.DeleteInsight(ctx, db, bob, secret.ID)
	fmt.Println(errors.Is(err, clone.ErrNotFound))
	in, _ := records.GetInsight(ctx, db, alice, secret.ID)
	fmt.Println(in.Content)

	for _, ev := range sink.Events() {
		fmt.Println(ev.Action, ev.Outcome, ev.Actor, ev.CloneID == bob.CloneID(), ev.Detail["target_id"] == secret.ID.String())
	}
	// Output:
	// true 404
	// true
	// floor price is 150
	// records.GetInsight denied bob true true
	// records.DeleteInsight denied bob true true
}

// Paging through a list with the cursor of each page.
func ExampleListInsights() {
	ctx := context.Background()
	db, tenants, _, done := exampleDB()
	defer done()
	cc, _, _ := tenants.ProvisionSolo(ctx, "alice")
	for i := range 5 {
		if _, err := records.CreateInsight(ctx, db, cc, records.Insight{Content: fmt.Sprint("insight ", i)}); err != nil {
			panic(err)
		}
	}

	opts := &records.ListOptions{Limit: 2}
	for {
		page, err := records.ListInsights(ctx, db, cc, opts)
		if err != nil {
			panic(err)
		}
		var line []string
		for _, in := range page.Items {
			line = append(line, in.Content)
		}
		fmt.Println(strings.Join(line, "; "))
		if page.Next == "" {
			break
		}
		opts.Cursor = page.Next
	}
	n, _ := records.CountInsights(ctx, db, cc)
	fmt.Println(n, "insights")
	// Output:
	// insight 0; insight 1
	// insight 2; insight 3
	// insight 4
	// 5 insights
}

// Retrieval turns vector matches (document, ordinal) into passages.
func ExampleGetChunks() {
	ctx := context.Background()
	db, tenants, _, done := exampleDB()
	defer done()
	cc, _, _ := tenants.ProvisionSolo(ctx, "alice")
	doc, _ := records.CreateDocument(ctx, db, cc, records.Document{Title: "FAQ"})
	if _, err := records.ReplaceDocumentChunks(ctx, db, cc, doc.ID, []records.Chunk{
		{Ordinal: 0, Content: "We are open Monday to Friday."},
		{Ordinal: 1, Content: "Refunds within 14 days."},
		{Ordinal: 2, Content: "Shipping is free above 50 EUR."},
	}); err != nil {
		panic(err)
	}

	chunks, err := records.GetChunks(ctx, db, cc, []records.ChunkKey{{DocumentID: doc.ID, Ordinal: 2}, {DocumentID: doc.ID, Ordinal: 0}})
	if err != nil {
		panic(err)
	}
	for _, c := range chunks {
		fmt.Println(c.Ordinal, c.Content)
	}
	// Output:
	// 2 Shipping is free above 50 EUR.
	// 0 We are open Monday to Friday.
}

// Composing repository writes with the host's in one transaction: all or nothing.
func Example_transaction() {
	ctx := context.Background()
	db, tenants, _, done := exampleDB()
	defer done()
	cc, _, _ := tenants.ProvisionSolo(ctx, "alice")

	err := db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		// Pass the Tx itself: denials inside it reach db's audit sink once it has ended.
		if _, err := records.CreateTrainingExample(ctx, tx.Querier(), cc, records.TrainingExample{Prompt: "Hi!", Response: "Hello, how can I help?"}); err != nil {
			return err
		}
		return errors.New("the host's own step failed")
	})
	n, _ := records.CountTrainingExamples(ctx, db, cc)
	fmt.Println(err, n)
	// Output:
	// the host's own step failed 0
}

// Input is validated before any statement runs.
func ExampleCreateDocument_validation() {
	ctx := context.Background()
	db, tenants, _, done := exampleDB()
	defer done()
	cc, _, _ := tenants.ProvisionSolo(ctx, "alice")

	_, err := records.CreateDocument(ctx, db, cc, records.Document{Title: "x", Status: "done"})
	fmt.Println(errors.Is(err, clone.ErrInvalidInput))
	_, err = records.CreateDocument(ctx, db, cc, records.Document{Title: "x", Metadata: []byte(`["not", "an", "object"]`)})
	fmt.Println(errors.Is(err, clone.ErrInvalidInput))
	_, err = records.CreateInsight(ctx, db, cc, records.Insight{Content: string(make([]byte, records.MaxContentBytes+1))})
	fmt.Println(errors.Is(err, clone.ErrTooLarge), clone.HTTPStatus(err))
	_, err = records.CreateInsight(ctx, db, clone.CloneContext{}, records.Insight{Content: "x"})
	fmt.Println(errors.Is(err, clone.ErrNoCloneContext))
	// Output:
	// true
	// true
	// true 413
	// true
}
