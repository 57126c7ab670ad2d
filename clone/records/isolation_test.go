package records_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/tenant"
)

// fixture is one clone and the rows it owns: two of every top-level record, the first
// document with two chunks and the first conversation with two messages. Every text
// carries the clone's canary, so a leak shows up in any result that contains it.
type fixture struct {
	name     string
	cc       clone.CloneContext
	canary   string
	docs     []records.Document
	chunks   []records.Chunk
	insights []records.Insight
	examples []records.TrainingExample
	convs    []records.Conversation
	msgs     []records.Message
	cursors  map[string]string // list -> Next of its first page of one item
	baseline string            // snapshot after seeding
	view     string            // ownerView after seeding
}

func seed(t testing.TB, e *env, name string, cc clone.CloneContext) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{name: name, cc: cc, canary: "canary-" + cc.CloneID().String(), cursors: map[string]string{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
	}
	meta := json.RawMessage(`{"canary":"` + f.canary + `"}`)
	for i := range 2 {
		s := fmt.Sprintf("%s %d", f.canary, i)
		d, err := records.CreateDocument(ctx, e.db, cc, records.Document{Title: s, SourceName: s, ContentHash: "h" + s, Metadata: meta})
		must(err)
		f.docs = append(f.docs, d)
		in, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Category: "c", Content: s, Metadata: meta})
		must(err)
		f.insights = append(f.insights, in)
		ex, err := records.CreateTrainingExample(ctx, e.db, cc, records.TrainingExample{Prompt: s, Response: s, Metadata: meta})
		must(err)
		f.examples = append(f.examples, ex)
		c, err := records.CreateConversation(ctx, e.db, cc, records.Conversation{Subject: "s", Title: s, Metadata: meta})
		must(err)
		f.convs = append(f.convs, c)
	}
	var err error
	f.chunks, err = records.ReplaceDocumentChunks(ctx, e.db, cc, f.docs[0].ID, []records.Chunk{
		{Ordinal: 0, Content: f.canary + " chunk 0", VectorID: "v0", Metadata: meta},
		{Ordinal: 1, Content: f.canary + " chunk 1", VectorID: "v1"},
	})
	must(err)
	for _, r := range []records.MessageRole{records.RoleUser, records.RoleAssistant} {
		m, err := records.AppendMessage(ctx, e.db, cc, records.Message{ConversationID: f.convs[0].ID, Role: r,
			Content: f.canary + " " + string(r), Citations: json.RawMessage(`["` + f.canary + `"]`)})
		must(err)
		f.msgs = append(f.msgs, m)
	}
	one := &records.ListOptions{Limit: 1}
	dp, err := records.ListDocuments(ctx, e.db, cc, one)
	must(err)
	ip, err := records.ListInsights(ctx, e.db, cc, one)
	must(err)
	tp, err := records.ListTrainingExamples(ctx, e.db, cc, one)
	must(err)
	cp, err := records.ListConversations(ctx, e.db, cc, one)
	must(err)
	kp, err := records.ListDocumentChunks(ctx, e.db, cc, f.docs[0].ID, one)
	must(err)
	mp, err := records.ListMessages(ctx, e.db, cc, f.convs[0].ID, one)
	must(err)
	f.cursors = map[string]string{"documents": dp.Next, "insights": ip.Next, "examples": tp.Next,
		"conversations": cp.Next, "chunks": kp.Next, "messages": mp.Next}
	for k, c := range f.cursors {
		if c == "" {
			t.Fatalf("seed %s: no cursor for %s", name, k)
		}
	}
	f.baseline = snapshot(t, e, cc)
	f.view = ownerView(t, e, cc)
	if !strings.Contains(f.baseline, f.canary) {
		t.Fatalf("seed %s: snapshot lacks the canary", name)
	}
	return f
}

// snapshot renders every row the clone owns, read through the repositories as the
// clone itself, so any change to them shows.
func snapshot(t testing.TB, e *env, cc clone.CloneContext) string {
	t.Helper()
	ctx := context.Background()
	all := &records.ListOptions{Limit: records.MaxPageSize}
	var out []any
	// One transaction: a consistent view, and fewer round trips than one per list.
	err := e.db.WithTx(ctx, cc, func(tx *clonesql.Tx) error {
		var failed error
		add := func(v any, err error) {
			if failed == nil {
				failed = err
			}
			out = append(out, v)
		}
		dp, err := records.ListDocuments(ctx, tx.Querier(), cc, all)
		add(dp, err)
		for _, d := range dp.Items {
			add(records.ListDocumentChunks(ctx, tx.Querier(), cc, d.ID, all))
		}
		add(records.ListInsights(ctx, tx.Querier(), cc, all))
		add(records.ListTrainingExamples(ctx, tx.Querier(), cc, all))
		cp, err := records.ListConversations(ctx, tx.Querier(), cc, all)
		add(cp, err)
		for _, c := range cp.Items {
			add(records.ListMessages(ctx, tx.Querier(), cc, c.ID, all))
		}
		return failed
	})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// isolationOp is one repository operation issued by an actor against a victim's rows.
type isolationOp struct {
	name   string
	target string // which victim row the owner must see first
	want   error  // errors.Is(err, want); nil: the call succeeds
	denial bool   // exactly one audit event (a denial) is expected
	run    func(ctx context.Context, q clonesql.Querier, a, v *fixture) (any, error)
}

// writes reports whether the operation is one that writes when allowed.
func (op isolationOp) writes() bool {
	for _, p := range []string{"Get", "List", "Count", "Find"} {
		if strings.HasPrefix(op.name, p) {
			return false
		}
	}
	return true
}

func scrub[T any](r T, clear func(*T)) T { clear(&r); return r }

func isolationOps() []isolationOp {
	nf, mm, bad := clone.ErrNotFound, clone.ErrCloneMismatch, clone.ErrInvalidInput
	type F = fixture
	type Q = clonesql.Querier
	type C = context.Context
	stolen := "stolen"
	return []isolationOp{
		// Documents and chunks.
		{"GetDocument", "document", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.GetDocument(ctx, q, a.cc, v.docs[0].ID)
		}},
		{"UpdateDocument", "document", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			d := scrub(v.docs[0], func(d *records.Document) { d.TenantID, d.CloneID, d.Title = [16]byte{}, [16]byte{}, stolen })
			return records.UpdateDocument(ctx, q, a.cc, d)
		}},
		{"UpdateDocumentIfUnchanged", "document", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			d := scrub(v.docs[0], func(d *records.Document) { d.TenantID, d.CloneID, d.Title = [16]byte{}, [16]byte{}, stolen })
			return records.UpdateDocumentIfUnchanged(ctx, q, a.cc, d)
		}},
		{"UpdateDocument/victim scope in payload", "document", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateDocument(ctx, q, a.cc, scrub(v.docs[0], func(d *records.Document) { d.Title = stolen }))
		}},
		{"SetDocumentStatus", "document", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return nil, records.SetDocumentStatus(ctx, q, a.cc, v.docs[0].ID, records.StatusFailed, stolen)
		}},
		{"DeleteDocument", "document", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return nil, records.DeleteDocument(ctx, q, a.cc, v.docs[0].ID)
		}},
		{"CreateDocument/victim scope in payload", "document", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.CreateDocument(ctx, q, a.cc, records.Document{TenantID: v.cc.TenantID(), CloneID: v.cc.CloneID(), Title: stolen})
		}},
		{"CreateDocument/victim's document ID", "document", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			// The same ID in another clone is another row: it never touches the victim's.
			d, err := records.CreateDocument(ctx, q, a.cc, records.Document{ID: v.docs[0].ID, Title: stolen})
			if err == nil {
				err = records.DeleteDocument(ctx, q, a.cc, d.ID)
			}
			return d, err
		}},
		{"ListDocuments", "document", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListDocuments(ctx, q, a.cc, &records.ListOptions{Limit: records.MaxPageSize})
		}},
		{"ListDocuments/victim cursor", "document", bad, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListDocuments(ctx, q, a.cc, &records.ListOptions{Cursor: v.cursors["documents"]})
		}},
		{"CountDocuments", "document", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return wantCount(records.CountDocuments(ctx, q, a.cc))
		}},
		{"FindDocumentsByHash", "document", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			ds, err := records.FindDocumentsByHash(ctx, q, a.cc, v.docs[0].ContentHash)
			if err == nil && len(ds) != 0 {
				err = fmt.Errorf("found %d documents by the victim's hash", len(ds))
			}
			return ds, err
		}},
		{"ReplaceDocumentChunks", "chunk", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ReplaceDocumentChunks(ctx, q, a.cc, v.docs[0].ID, []records.Chunk{{Content: stolen}})
		}},
		{"ReplaceDocumentChunks/clear", "chunk", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ReplaceDocumentChunks(ctx, q, a.cc, v.docs[0].ID, nil)
		}},
		{"ReplaceDocumentChunks/victim scope in payload", "chunk", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ReplaceDocumentChunks(ctx, q, a.cc, a.docs[1].ID, []records.Chunk{v.chunks[0]})
		}},
		{"ListDocumentChunks", "chunk", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListDocumentChunks(ctx, q, a.cc, v.docs[0].ID, nil)
		}},
		{"ListDocumentChunks/victim cursor", "chunk", bad, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListDocumentChunks(ctx, q, a.cc, a.docs[0].ID, &records.ListOptions{Cursor: v.cursors["chunks"]})
		}},
		{"CountDocumentChunks", "chunk", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.CountDocumentChunks(ctx, q, a.cc, v.docs[0].ID)
		}},
		{"GetChunks", "chunk", nil, true, func(ctx C, q Q, a, v *F) (any, error) {
			cs, err := records.GetChunks(ctx, q, a.cc, []records.ChunkKey{{v.docs[0].ID, 0}, {v.docs[0].ID, 1}})
			if err == nil && len(cs) != 0 {
				err = fmt.Errorf("got %d of the victim's chunks", len(cs))
			}
			return cs, err
		}},
		// Insights.
		{"GetInsight", "insight", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.GetInsight(ctx, q, a.cc, v.insights[0].ID)
		}},
		{"UpdateInsight", "insight", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateInsight(ctx, q, a.cc, scrub(v.insights[0], func(r *records.Insight) { r.TenantID, r.CloneID, r.Content = [16]byte{}, [16]byte{}, stolen }))
		}},
		{"UpdateInsight/victim scope in payload", "insight", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateInsight(ctx, q, a.cc, scrub(v.insights[0], func(r *records.Insight) { r.Content = stolen }))
		}},
		{"DeleteInsight", "insight", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return nil, records.DeleteInsight(ctx, q, a.cc, v.insights[0].ID)
		}},
		{"CreateInsight/victim scope in payload", "insight", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.CreateInsight(ctx, q, a.cc, records.Insight{TenantID: v.cc.TenantID(), CloneID: v.cc.CloneID(), Content: stolen})
		}},
		{"ListInsights", "insight", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListInsights(ctx, q, a.cc, &records.ListOptions{Limit: records.MaxPageSize, Descending: true})
		}},
		{"ListInsights/victim cursor", "insight", bad, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListInsights(ctx, q, a.cc, &records.ListOptions{Cursor: v.cursors["insights"]})
		}},
		{"CountInsights", "insight", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return wantCount(records.CountInsights(ctx, q, a.cc))
		}},
		// Training examples.
		{"GetTrainingExample", "example", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.GetTrainingExample(ctx, q, a.cc, v.examples[0].ID)
		}},
		{"UpdateTrainingExample", "example", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateTrainingExample(ctx, q, a.cc, scrub(v.examples[0], func(r *records.TrainingExample) { r.TenantID, r.CloneID, r.Prompt = [16]byte{}, [16]byte{}, stolen }))
		}},
		{"UpdateTrainingExample/victim scope in payload", "example", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateTrainingExample(ctx, q, a.cc, scrub(v.examples[0], func(r *records.TrainingExample) { r.Prompt = stolen }))
		}},
		{"DeleteTrainingExample", "example", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return nil, records.DeleteTrainingExample(ctx, q, a.cc, v.examples[0].ID)
		}},
		{"CreateTrainingExample/victim scope in payload", "example", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.CreateTrainingExample(ctx, q, a.cc, records.TrainingExample{TenantID: v.cc.TenantID(), CloneID: v.cc.CloneID(), Prompt: stolen, Response: stolen})
		}},
		{"ListTrainingExamples", "example", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListTrainingExamples(ctx, q, a.cc, &records.ListOptions{Limit: records.MaxPageSize})
		}},
		{"ListTrainingExamples/victim cursor", "example", bad, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListTrainingExamples(ctx, q, a.cc, &records.ListOptions{Cursor: v.cursors["examples"]})
		}},
		{"CountTrainingExamples", "example", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return wantCount(records.CountTrainingExamples(ctx, q, a.cc))
		}},
		// Conversations and messages.
		{"GetConversation", "conversation", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.GetConversation(ctx, q, a.cc, v.convs[0].ID)
		}},
		{"UpdateConversation", "conversation", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateConversation(ctx, q, a.cc, scrub(v.convs[0], func(r *records.Conversation) { r.TenantID, r.CloneID, r.Title = [16]byte{}, [16]byte{}, stolen }))
		}},
		{"UpdateConversation/victim scope in payload", "conversation", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateConversation(ctx, q, a.cc, scrub(v.convs[0], func(r *records.Conversation) { r.Title = stolen }))
		}},
		{"DeleteConversation", "conversation", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return nil, records.DeleteConversation(ctx, q, a.cc, v.convs[0].ID)
		}},
		{"CreateConversation/victim scope in payload", "conversation", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.CreateConversation(ctx, q, a.cc, records.Conversation{TenantID: v.cc.TenantID(), CloneID: v.cc.CloneID(), Title: stolen})
		}},
		{"ListConversations", "conversation", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListConversations(ctx, q, a.cc, &records.ListOptions{Limit: records.MaxPageSize})
		}},
		{"ListConversations/victim cursor", "conversation", bad, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListConversations(ctx, q, a.cc, &records.ListOptions{Cursor: v.cursors["conversations"]})
		}},
		{"CountConversations", "conversation", nil, false, func(ctx C, q Q, a, v *F) (any, error) {
			return wantCount(records.CountConversations(ctx, q, a.cc))
		}},
		{"AppendMessage", "message", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.AppendMessage(ctx, q, a.cc, records.Message{ConversationID: v.convs[0].ID, Role: records.RoleUser, Content: stolen})
		}},
		{"AppendMessage/victim scope in payload", "message", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.AppendMessage(ctx, q, a.cc, records.Message{TenantID: v.cc.TenantID(), CloneID: v.cc.CloneID(), ConversationID: v.convs[0].ID, Role: records.RoleUser, Content: stolen})
		}},
		{"ListMessages", "message", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListMessages(ctx, q, a.cc, v.convs[0].ID, nil)
		}},
		{"ListMessages/victim cursor", "message", bad, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.ListMessages(ctx, q, a.cc, v.convs[0].ID, &records.ListOptions{Cursor: v.cursors["messages"]})
		}},
		{"CountMessages", "message", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.CountMessages(ctx, q, a.cc, v.convs[0].ID)
		}},
		{"GetMessage", "message", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.GetMessage(ctx, q, a.cc, v.msgs[0].ID)
		}},
		{"UpdateMessage", "message", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateMessage(ctx, q, a.cc, scrub(v.msgs[0], func(r *records.Message) { r.TenantID, r.CloneID, r.Content = [16]byte{}, [16]byte{}, stolen }))
		}},
		{"UpdateMessage/victim scope in payload", "message", mm, true, func(ctx C, q Q, a, v *F) (any, error) {
			return records.UpdateMessage(ctx, q, a.cc, scrub(v.msgs[0], func(r *records.Message) { r.Content = stolen }))
		}},
		{"DeleteMessage", "message", nf, true, func(ctx C, q Q, a, v *F) (any, error) {
			return nil, records.DeleteMessage(ctx, q, a.cc, v.msgs[0].ID)
		}},
	}
}

// wantCount checks a count of the actor's own rows: every fixture seeds two.
func wantCount(n int64, err error) (any, error) {
	if err == nil && n != 2 {
		err = fmt.Errorf("count = %d; want the actor's own 2", n)
	}
	return n, err
}

// ownerSees proves the victim's row of kind target exists and is visible to its owner.
func ownerSees(ctx context.Context, e *env, v *fixture, target string) error {
	var err error
	switch target {
	case "document":
		_, err = records.GetDocument(ctx, e.db, v.cc, v.docs[0].ID)
	case "chunk":
		var cs []records.Chunk
		cs, err = records.GetChunks(ctx, e.db, v.cc, []records.ChunkKey{{v.docs[0].ID, 0}, {v.docs[0].ID, 1}})
		if err == nil && len(cs) != 2 {
			err = fmt.Errorf("owner sees %d of its 2 chunks", len(cs))
		}
	case "insight":
		_, err = records.GetInsight(ctx, e.db, v.cc, v.insights[0].ID)
	case "example":
		_, err = records.GetTrainingExample(ctx, e.db, v.cc, v.examples[0].ID)
	case "conversation":
		_, err = records.GetConversation(ctx, e.db, v.cc, v.convs[0].ID)
	case "message":
		_, err = records.GetMessage(ctx, e.db, v.cc, v.msgs[0].ID)
	default:
		err = fmt.Errorf("unknown target %q", target)
	}
	return err
}

// isolationClones provisions the matrix's clones: an enterprise tenant with two clones
// and two solo tenants.
func isolationClones(t *testing.T, e *env) []*fixture {
	t.Helper()
	ctx := context.Background()
	owner := "ent-owner-" + clone.NewID().String()
	tn, err := e.tenants.CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, OwnerSubject: owner})
	if err != nil {
		t.Fatal(err)
	}
	var fs []*fixture
	for i := range 2 {
		c, err := e.tenants.CreateClone(ctx, tn.ID, tenant.CloneSpec{Name: fmt.Sprint("clone ", i), OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		cc, err := clone.New(tn.ID, c.ID, clone.Principal{Subject: owner, Roles: []string{"owner"}})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, seed(t, e, fmt.Sprint("enterprise-", i), cc))
	}
	for i := range 2 {
		fs = append(fs, seed(t, e, fmt.Sprint("solo-", i), e.newClone(t)))
	}
	return fs
}

// TestIsolationMatrix issues every repository operation by every clone against every
// other clone's rows, directly on the DB and inside a scoped transaction: the owner
// sees the row first; then no victim data comes back, nothing of the victim's (or the
// actor's) changes, and each denial is audited exactly once.
func TestIsolationMatrix(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		fs := isolationClones(t, e)
		ops := isolationOps()
		modes := []struct {
			name string
			do   func(a *fixture, fn func(q clonesql.Querier) (any, error)) (any, error)
		}{
			{"db", func(a *fixture, fn func(q clonesql.Querier) (any, error)) (any, error) { return fn(e.db) }},
			{"tx", func(a *fixture, fn func(q clonesql.Querier) (any, error)) (any, error) {
				var res any
				err := e.db.WithTx(ctx, a.cc, func(tx *clonesql.Tx) error {
					var err error
					res, err = fn(records.WithAudit(tx.Querier(), e.db.Audit()))
					return err
				})
				return res, err
			}},
		}
		whole := rawSnapshot(t, e)
		for _, f := range fs {
			if strings.Count(whole, f.canary) < 10 {
				t.Fatalf("the raw snapshot misses %s's rows", f.name)
			}
		}
		// Inside a transaction, a subset of pairs keeps the test fast: two clones of one
		// tenant, and across tenants both ways.
		inTx := map[[2]*fixture]bool{{fs[0], fs[1]}: true, {fs[2], fs[0]}: true, {fs[1], fs[3]}: true}
		cases, denials := 0, 0
		for _, mode := range modes {
			for _, a := range fs {
				for _, v := range fs {
					if a == v || mode.name == "tx" && !inTx[[2]*fixture{a, v}] {
						continue
					}
					for _, op := range ops {
						name := mode.name + "/" + a.name + "->" + v.name + "/" + op.name
						if err := ownerSees(ctx, e, v, op.target); err != nil {
							t.Fatalf("%s: owner cannot see its row first: %v", name, err)
						}
						e.audit.Reset()
						res, err := mode.do(a, func(q clonesql.Querier) (any, error) { return op.run(ctx, q, a, v) })
						cases++
						if op.want == nil && err != nil || op.want != nil && !errors.Is(err, op.want) {
							t.Errorf("%s: error %v; want %v", name, err, op.want)
						}
						if b, _ := json.Marshal(res); strings.Contains(string(b), v.canary) || strings.Contains(string(b), v.cc.CloneID().String()) {
							t.Errorf("%s: leaked the victim's data: %s", name, b)
						}
						evs := e.audit.Events()
						want := 0
						if op.denial {
							want = 1
							denials++
						}
						if len(evs) != want {
							t.Errorf("%s: %d audit events %+v; want %d", name, len(evs), evs, want)
						} else if want == 1 {
							ev := evs[0]
							if ev.Outcome != audit.Denied || ev.TenantID != a.cc.TenantID() || ev.CloneID != a.cc.CloneID() || !strings.HasPrefix(ev.Action, "records.") {
								t.Errorf("%s: audit event %+v; want a denial by the actor", name, ev)
							}
						}
						// After every write, the victim's rows through the victim (reads are
						// covered by the per-pair checks below).
						if op.writes() {
							if got := ownerView(t, e, v.cc); got != v.view {
								t.Fatalf("%s: the victim's rows changed:\n%s\nwant\n%s", name, got, v.view)
							}
						}
					}
					// Per pair, through the victim (one statement, and every repository list)
					// and then the whole database: nothing of the victim's, the actor's or a
					// bystander's changed.
					if got := ownerView(t, e, v.cc); got != v.view {
						t.Fatalf("%s/%s->%s: the victim's rows changed", mode.name, a.name, v.name)
					}
					if got := snapshot(t, e, v.cc); got != v.baseline {
						t.Fatalf("%s/%s->%s: the victim's rows changed", mode.name, a.name, v.name)
					}
					if got := rawSnapshot(t, e); got != whole {
						t.Fatalf("%s/%s->%s: rows changed in the database", mode.name, a.name, v.name)
					}
				}
			}
		}
		t.Logf("isolation matrix: %d cases (%d clones, %d operations; every ordered pair on the DB, %d pairs inside a transaction), %d audited denials",
			cases, len(fs), len(ops), len(inTx), denials)
	})
}

// rawSnapshot renders every row of every clone-owned table, read outside the wrapper by
// the schema owner (which bypasses row-level security on PostgreSQL).
func rawSnapshot(t testing.TB, e *env) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT tenant_id, clone_id, id, title, source_name, status, error, chunk_count, metadata, updated_at FROM documents ORDER BY tenant_id, clone_id, id`,
		`SELECT tenant_id, clone_id, document_id, ordinal, content, vector_id, metadata FROM document_chunks ORDER BY tenant_id, clone_id, document_id, ordinal`,
		`SELECT tenant_id, clone_id, id, category, content, metadata, updated_at FROM insights ORDER BY tenant_id, clone_id, id`,
		`SELECT tenant_id, clone_id, id, prompt, response, metadata, updated_at FROM training_examples ORDER BY tenant_id, clone_id, id`,
		`SELECT tenant_id, clone_id, id, subject, title, metadata, updated_at FROM conversations ORDER BY tenant_id, clone_id, id`,
		`SELECT tenant_id, clone_id, conversation_id, id, role, content, citations, created_at FROM messages ORDER BY tenant_id, clone_id, id`,
	} {
		rows, err := e.owner.Queryx(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals, err := rows.SliceScan()
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				if x, ok := v.([]byte); ok {
					vals[i] = string(x)
				}
			}
			fmt.Fprintf(&b, "%v\n", vals)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		b.WriteString("--\n")
	}
	return b.String()
}

// ownerView renders every row the clone owns, read by the clone itself (scoped, under
// row-level security on PostgreSQL) in one statement: cheaper than [snapshot], for a
// check after every case.
func ownerView(t testing.TB, e *env, cc clone.CloneContext) string {
	t.Helper()
	const scope = ` WHERE tenant_id = :tenant_id AND clone_id = :clone_id`
	q := `SELECT 'd' AS k, CAST(id AS TEXT) AS key, title || '|' || source_name || '|' || status || '|' || error || '|' ||
			CAST(chunk_count AS TEXT) || '|' || CAST(metadata AS TEXT) || '|' || CAST(updated_at AS TEXT) || '|' || COALESCE(user_id, '-') AS body
		FROM documents` + scope + `
		UNION ALL SELECT 'k', CAST(document_id AS TEXT) || '/' || CAST(ordinal AS TEXT), content || '|' || vector_id || '|' || CAST(metadata AS TEXT)
		FROM document_chunks` + scope + `
		UNION ALL SELECT 'i', CAST(id AS TEXT), category || '|' || content || '|' || CAST(metadata AS TEXT) || '|' || CAST(updated_at AS TEXT)
		FROM insights` + scope + `
		UNION ALL SELECT 't', CAST(id AS TEXT), prompt || '|' || response || '|' || CAST(metadata AS TEXT) || '|' || CAST(updated_at AS TEXT)
		FROM training_examples` + scope + `
		UNION ALL SELECT 'c', CAST(id AS TEXT), subject || '|' || title || '|' || CAST(metadata AS TEXT) || '|' || CAST(updated_at AS TEXT)
		FROM conversations` + scope + `
		UNION ALL SELECT 'm', CAST(id AS TEXT), CAST(conversation_id AS TEXT) || '|' || role || '|' || content || '|' || CAST(citations AS TEXT)
		FROM messages` + scope + `
		ORDER BY k, key`
	var rows []struct {
		K    string `db:"k"`
		Key  string `db:"key"`
		Body string `db:"body"`
	}
	if err := e.db.Select(context.Background(), cc, &rows, q, nil); err != nil {
		t.Fatalf("owner view: %v", err)
	}
	if len(rows) != 12 {
		t.Fatalf("owner view: %d rows; want the 12 seeded", len(rows))
	}
	return fmt.Sprint(rows)
}
