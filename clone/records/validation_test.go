package records_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
)

// injections are stored verbatim wherever they go; none may change anything else.
var injections = []string{
	"'; DROP TABLE documents; --",
	"x' OR '1'='1",
	`"); DELETE FROM insights; --`,
	"' UNION SELECT tenant_id, clone_id, id FROM documents --",
	"Robert'); DROP TABLE messages;--",
	`\'; UPDATE conversations SET title = 'pwned'; --`,
	":tenant_id :clone_id", "$1 $2", "? ?", "/* */ -- ", "$$ $tag$", "%s %v %d",
}

type textField[T any] struct {
	name       string
	max        int
	set        func(*T, string)
	get        func(T) string
	createOnly bool // validated on update too, but kept
}

type badCase[T any] struct {
	name string
	mut  func(*T)
	want error
}

// kind describes one record type for the malformed-input tests: a valid payload, its
// text fields, further bad values, and its create, update and get.
type kind[T any] struct {
	name   string
	valid  func(f *fixture) T
	fields []textField[T]
	bad    []badCase[T]
	create func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r T) (T, error)
	update func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r T) (T, error) // r is a stored record, changed
	get    func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r T) (T, error)
}

func badJSON[T any](field string, set func(*T, json.RawMessage), shape string) []badCase[T] {
	other := `[1]`
	if shape == "[" {
		other = `{"a":1}`
	}
	return []badCase[T]{
		{field + " not JSON", func(r *T) { set(r, json.RawMessage(`{"a":`)) }, clone.ErrInvalidInput},
		{field + " wrong shape", func(r *T) { set(r, json.RawMessage(other)) }, clone.ErrInvalidInput},
		{field + " scalar", func(r *T) { set(r, json.RawMessage(`"x"`)) }, clone.ErrInvalidInput},
		{field + " trailing data", func(r *T) { set(r, json.RawMessage(shape+strings.Replace(shape, "{", "}", 1)+" 1")) }, clone.ErrInvalidInput},
		{field + " NUL escape", func(r *T) { set(r, json.RawMessage(wrap(shape, `"a\u0000b"`))) }, clone.ErrInvalidInput},
		{field + " invalid UTF-8", func(r *T) { set(r, json.RawMessage(wrap(shape, "\"\xff\""))) }, clone.ErrInvalidInput},
		{field + " oversized", func(r *T) { set(r, json.RawMessage(wrap(shape, `"`+strings.Repeat("a", records.MaxJSONBytes)+`"`))) }, clone.ErrTooLarge},
	}
}

func wrap(shape, v string) string {
	if shape == "[" {
		return "[" + v + "]"
	}
	return `{"k":` + v + "}"
}

func userIDField[T any](p func(*T) **string) textField[T] {
	return textField[T]{"user ID", records.MaxShortBytes,
		func(r *T, s string) { *p(r) = &s },
		func(r T) string {
			if u := *p(&r); u != nil {
				return *u
			}
			return ""
		}, true}
}

func testMalformed[T any](t *testing.T, e *env, f *fixture, k kind[T]) int {
	ctx := context.Background()
	n := 0
	stored, err := k.create(ctx, e.db, f.cc, k.valid(f))
	if err != nil {
		t.Fatalf("%s: valid create: %v", k.name, err)
	}
	var cases []badCase[T]
	for _, fl := range k.fields {
		cases = append(cases,
			badCase[T]{fl.name + " oversized", func(r *T) { fl.set(r, strings.Repeat("é", fl.max/2)+"ab") }, clone.ErrTooLarge},
			badCase[T]{fl.name + " invalid UTF-8", func(r *T) { fl.set(r, "ok\xffok") }, clone.ErrInvalidInput},
			badCase[T]{fl.name + " NUL", func(r *T) { fl.set(r, "a\x00b") }, clone.ErrInvalidInput},
		)
	}
	cases = append(cases, k.bad...)
	before := rawSnapshot(t, e)
	for _, c := range cases {
		for _, op := range []string{"create", "update"} {
			var err error
			spy := &statementSpy{Querier: e.db}
			switch op {
			case "create":
				r := k.valid(f)
				c.mut(&r)
				_, err = k.create(ctx, spy, f.cc, r)
			case "update":
				if k.update == nil {
					continue
				}
				r := stored
				c.mut(&r)
				_, err = k.update(ctx, spy, f.cc, r)
			}
			n++
			if !errors.Is(err, c.want) {
				t.Errorf("%s %s %s: %v; want %v", op, k.name, c.name, err, c.want)
			}
			if spy.n != 0 {
				t.Errorf("%s %s %s: %d statements ran before the input was refused", op, k.name, c.name, spy.n)
			}
			if s := clone.HTTPStatus(err); s >= 500 {
				t.Errorf("%s %s %s: maps to %d", op, k.name, c.name, s)
			}
		}
	}
	if rawSnapshot(t, e) != before {
		t.Errorf("%s: refused input changed the database", k.name)
	}
	// Injection strings in every text field are data: stored and read back verbatim.
	for _, fl := range k.fields {
		for _, s := range injections {
			r := k.valid(f)
			fl.set(&r, s)
			got, err := k.create(ctx, e.db, f.cc, r)
			if err == nil {
				got, err = k.get(ctx, e.db, f.cc, got)
			}
			n++
			if err != nil || fl.get(got) != s {
				t.Errorf("create %s with %s %q: read back %q, %v", k.name, fl.name, s, fl.get(got), err)
			}
			if k.update != nil && !fl.createOnly {
				r = stored
				fl.set(&r, s)
				got, err = k.update(ctx, e.db, f.cc, r)
				if err == nil {
					got, err = k.get(ctx, e.db, f.cc, got)
				}
				n++
				if err != nil || fl.get(got) != s {
					t.Errorf("update %s with %s %q: read back %q, %v", k.name, fl.name, s, fl.get(got), err)
				}
			}
		}
	}
	return n
}

func TestMalformedInput(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := seed(t, e, "a", e.newClone(t))
		bystander := seed(t, e, "b", e.newClone(t))
		n := 0

		n += testMalformed(t, e, a, kind[records.Document]{
			name:  "document",
			valid: func(*fixture) records.Document { return records.Document{Title: "t"} },
			fields: []textField[records.Document]{
				{"title", records.MaxTitleBytes, func(r *records.Document, s string) { r.Title = s }, func(r records.Document) string { return r.Title }, false},
				{"source name", records.MaxTitleBytes, func(r *records.Document, s string) { r.SourceName = s }, func(r records.Document) string { return r.SourceName }, false},
				{"content type", records.MaxShortBytes, func(r *records.Document, s string) { r.ContentType = s }, func(r records.Document) string { return r.ContentType }, false},
				{"content hash", records.MaxShortBytes, func(r *records.Document, s string) { r.ContentHash = s }, func(r records.Document) string { return r.ContentHash }, false},
				{"object key", records.MaxTitleBytes, func(r *records.Document, s string) { r.ObjectKey = s }, func(r records.Document) string { return r.ObjectKey }, false},
				{"error", records.MaxErrorBytes, func(r *records.Document, s string) { r.Error = s }, func(r records.Document) string { return r.Error }, false},
				userIDField(func(r *records.Document) **string { return &r.UserID }),
			},
			bad: append([]badCase[records.Document]{
				{"unknown status", func(r *records.Document) { r.Status = "done" }, clone.ErrInvalidInput},
				{"status injection", func(r *records.Document) { r.Status = "ready' OR '1'='1" }, clone.ErrInvalidInput},
				{"negative size", func(r *records.Document) { r.SizeBytes = -1 }, clone.ErrInvalidInput},
				{"max UUID", func(r *records.Document) { r.ID = uuid.Max }, clone.ErrInvalidInput},
			}, badJSON("metadata", func(r *records.Document, m json.RawMessage) { r.Metadata = m }, "{")...),
			create: records.CreateDocument,
			update: records.UpdateDocument,
			get: func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r records.Document) (records.Document, error) {
				return records.GetDocument(ctx, q, cc, r.ID)
			},
		})
		chunkOf := func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, c records.Chunk) (records.Chunk, error) {
			cs, err := records.ReplaceDocumentChunks(ctx, q, cc, a.docs[1].ID, []records.Chunk{c})
			if err != nil {
				return records.Chunk{}, err
			}
			return cs[0], nil
		}
		n += testMalformed(t, e, a, kind[records.Chunk]{
			name:  "chunk",
			valid: func(*fixture) records.Chunk { return records.Chunk{Content: "c", StartOffset: 1, EndOffset: 2} },
			fields: []textField[records.Chunk]{
				{"content", records.MaxContentBytes, func(r *records.Chunk, s string) { r.Content = s }, func(r records.Chunk) string { return r.Content }, false},
				{"vector ID", records.MaxShortBytes, func(r *records.Chunk, s string) { r.VectorID = s }, func(r records.Chunk) string { return r.VectorID }, false},
				userIDField(func(r *records.Chunk) **string { return &r.UserID }),
			},
			bad: append([]badCase[records.Chunk]{
				{"empty content", func(r *records.Chunk) { r.Content = " \n" }, clone.ErrInvalidInput},
				{"negative ordinal", func(r *records.Chunk) { r.Ordinal = -1 }, clone.ErrInvalidInput},
				{"ordinal over int32", func(r *records.Chunk) { r.Ordinal = records.MaxInt32 + 1 }, clone.ErrInvalidInput},
				{"negative token count", func(r *records.Chunk) { r.TokenCount = -1 }, clone.ErrInvalidInput},
				{"ends before start", func(r *records.Chunk) { r.StartOffset, r.EndOffset = 5, 4 }, clone.ErrInvalidInput},
				{"other document", func(r *records.Chunk) { r.DocumentID = a.docs[0].ID }, clone.ErrInvalidInput},
			}, badJSON("metadata", func(r *records.Chunk, m json.RawMessage) { r.Metadata = m }, "{")...),
			create: chunkOf,
			get: func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r records.Chunk) (records.Chunk, error) {
				cs, err := records.GetChunks(ctx, q, cc, []records.ChunkKey{{r.DocumentID, r.Ordinal}})
				if err != nil || len(cs) != 1 {
					return records.Chunk{}, errors.Join(err, errors.New("chunk not found"))
				}
				return cs[0], nil
			},
		})
		n += testMalformed(t, e, a, kind[records.Insight]{
			name:  "insight",
			valid: func(*fixture) records.Insight { return records.Insight{Content: "c"} },
			fields: []textField[records.Insight]{
				{"content", records.MaxContentBytes, func(r *records.Insight, s string) { r.Content = s }, func(r records.Insight) string { return r.Content }, false},
				{"category", records.MaxShortBytes, func(r *records.Insight, s string) { r.Category = s }, func(r records.Insight) string { return r.Category }, false},
				userIDField(func(r *records.Insight) **string { return &r.UserID }),
			},
			bad: append([]badCase[records.Insight]{
				{"empty content", func(r *records.Insight) { r.Content = "" }, clone.ErrInvalidInput},
			}, badJSON("metadata", func(r *records.Insight, m json.RawMessage) { r.Metadata = m }, "{")...),
			create: records.CreateInsight,
			update: records.UpdateInsight,
			get: func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r records.Insight) (records.Insight, error) {
				return records.GetInsight(ctx, q, cc, r.ID)
			},
		})
		n += testMalformed(t, e, a, kind[records.TrainingExample]{
			name:  "training example",
			valid: func(*fixture) records.TrainingExample { return records.TrainingExample{Prompt: "p", Response: "r"} },
			fields: []textField[records.TrainingExample]{
				{"prompt", records.MaxContentBytes, func(r *records.TrainingExample, s string) { r.Prompt = s }, func(r records.TrainingExample) string { return r.Prompt }, false},
				{"response", records.MaxContentBytes, func(r *records.TrainingExample, s string) { r.Response = s }, func(r records.TrainingExample) string { return r.Response }, false},
				userIDField(func(r *records.TrainingExample) **string { return &r.UserID }),
			},
			bad: append([]badCase[records.TrainingExample]{
				{"empty prompt", func(r *records.TrainingExample) { r.Prompt = "" }, clone.ErrInvalidInput},
				{"empty response", func(r *records.TrainingExample) { r.Response = "\t" }, clone.ErrInvalidInput},
			}, badJSON("metadata", func(r *records.TrainingExample, m json.RawMessage) { r.Metadata = m }, "{")...),
			create: records.CreateTrainingExample,
			update: records.UpdateTrainingExample,
			get: func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r records.TrainingExample) (records.TrainingExample, error) {
				return records.GetTrainingExample(ctx, q, cc, r.ID)
			},
		})
		n += testMalformed(t, e, a, kind[records.Conversation]{
			name:  "conversation",
			valid: func(*fixture) records.Conversation { return records.Conversation{Title: "t"} },
			fields: []textField[records.Conversation]{
				{"title", records.MaxTitleBytes, func(r *records.Conversation, s string) { r.Title = s }, func(r records.Conversation) string { return r.Title }, false},
				// Subject is set on create only; an update keeps it (checked below).
				userIDField(func(r *records.Conversation) **string { return &r.UserID }),
			},
			bad:    badJSON("metadata", func(r *records.Conversation, m json.RawMessage) { r.Metadata = m }, "{"),
			create: records.CreateConversation,
			update: records.UpdateConversation,
			get: func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r records.Conversation) (records.Conversation, error) {
				return records.GetConversation(ctx, q, cc, r.ID)
			},
		})
		n += testMalformed(t, e, a, kind[records.Message]{
			name: "message",
			valid: func(f *fixture) records.Message {
				return records.Message{ConversationID: f.convs[1].ID, Role: records.RoleUser, Content: "m"}
			},
			fields: []textField[records.Message]{
				{"content", records.MaxContentBytes, func(r *records.Message, s string) { r.Content = s }, func(r records.Message) string { return r.Content }, false},
			},
			bad: append([]badCase[records.Message]{
				{"unknown role", func(r *records.Message) { r.Role = "admin" }, clone.ErrInvalidInput},
				{"empty role", func(r *records.Message) { r.Role = "" }, clone.ErrInvalidInput},
				{"role injection", func(r *records.Message) { r.Role = "user'); --" }, clone.ErrInvalidInput},
				{"user ID oversized", func(r *records.Message) { u := strings.Repeat("u", records.MaxShortBytes+1); r.UserID = &u }, clone.ErrTooLarge},
			}, badJSON("citations", func(r *records.Message, m json.RawMessage) { r.Citations = m }, "[")...),
			create: records.AppendMessage,
			update: records.UpdateMessage,
			get: func(ctx context.Context, q clonesql.Querier, cc clone.CloneContext, r records.Message) (records.Message, error) {
				return records.GetMessage(ctx, q, cc, r.ID)
			},
		})
		// Subjects of conversations: refused like every text field, stored verbatim.
		for _, s := range []string{"a\x00b", "\xff", strings.Repeat("s", records.MaxShortBytes+1)} {
			if _, err := records.CreateConversation(ctx, e.db, a.cc, records.Conversation{Subject: s}); err == nil {
				t.Errorf("conversation subject %q accepted", s)
			}
			n++
		}
		for _, s := range injections {
			c, err := records.CreateConversation(ctx, e.db, a.cc, records.Conversation{Subject: s})
			if err == nil {
				c, err = records.GetConversation(ctx, e.db, a.cc, c.ID)
			}
			if err != nil || c.Subject != s {
				t.Errorf("conversation subject %q: %q, %v", s, c.Subject, err)
			}
			n++
		}
		// Metadata carrying injection strings is data too.
		in, err := records.CreateInsight(ctx, e.db, a.cc, records.Insight{Content: "x", Metadata: json.RawMessage(`{"k":"'; DROP TABLE insights; --","n":1.50}`)})
		if err == nil {
			in, err = records.GetInsight(ctx, e.db, a.cc, in.ID)
		}
		var m map[string]any
		if err != nil || json.Unmarshal(in.Metadata, &m) != nil || m["k"] != "'; DROP TABLE insights; --" {
			t.Errorf("metadata with an injection string: %s, %v", in.Metadata, err)
		}
		// Edge-case JSON is stored on both dialects and reads back as JSON; numbers beyond
		// float64 are refused.
		for _, raw := range []string{`{"a":"\ud800","b":-0,"c":1.5e300,"d":"<&>","e":"\u00e9","f":[{}],"g":null,"a2":"x"}`, `{"dup":1,"dup":2}`} {
			in, err := records.CreateInsight(ctx, e.db, a.cc, records.Insight{Content: "j", Metadata: json.RawMessage(raw)})
			if err == nil {
				in, err = records.GetInsight(ctx, e.db, a.cc, in.ID)
			}
			var m map[string]any
			if err != nil || json.Unmarshal(in.Metadata, &m) != nil {
				t.Errorf("metadata %s: %s, %v", raw, in.Metadata, err)
			}
		}
		if _, err := records.CreateInsight(ctx, e.db, a.cc, records.Insight{Content: "j", Metadata: json.RawMessage(`{"n":1e400}`)}); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("metadata number beyond float64: %v", err)
		}
		// Too many chunks, too many keys, bad page sizes, nil and max IDs.
		for _, c := range []struct {
			name string
			err  error
			want error
		}{
			{"too many chunks", second(records.ReplaceDocumentChunks(ctx, e.db, a.cc, a.docs[1].ID, make([]records.Chunk, records.MaxChunksPerDocument+1))), clone.ErrTooLarge},
			{"duplicate ordinals", second(records.ReplaceDocumentChunks(ctx, e.db, a.cc, a.docs[1].ID, []records.Chunk{{Content: "a"}, {Content: "b"}})), clone.ErrInvalidInput},
			{"too many keys", second(records.GetChunks(ctx, e.db, a.cc, make([]records.ChunkKey, records.MaxChunkKeys+1))), clone.ErrTooLarge},
			{"nil key", second(records.GetChunks(ctx, e.db, a.cc, []records.ChunkKey{{}})), clone.ErrInvalidInput},
			{"negative limit", second(records.ListInsights(ctx, e.db, a.cc, &records.ListOptions{Limit: -1})), clone.ErrInvalidInput},
			{"limit too large", second(records.ListInsights(ctx, e.db, a.cc, &records.ListOptions{Limit: records.MaxPageSize + 1})), clone.ErrInvalidInput},
			{"nil ID", second(records.GetInsight(ctx, e.db, a.cc, uuid.Nil)), clone.ErrInvalidInput},
			{"max ID", records.DeleteDocument(ctx, e.db, a.cc, uuid.Max), clone.ErrInvalidInput},
			{"bad status", records.SetDocumentStatus(ctx, e.db, a.cc, a.docs[0].ID, "gone", ""), clone.ErrInvalidInput},
			{"empty hash", second(records.FindDocumentsByHash(ctx, e.db, a.cc, "")), clone.ErrInvalidInput},
			{"nil Querier", second(records.GetInsight(ctx, nil, a.cc, a.insights[0].ID)), clone.ErrInvalidInput},
		} {
			n++
			if !errors.Is(c.err, c.want) {
				t.Errorf("%s: %v; want %v", c.name, c.err, c.want)
			}
		}
		if got := snapshot(t, e, bystander.cc); got != bystander.baseline {
			t.Errorf("a bystander's rows changed")
		}
		t.Logf("%d malformed-input and injection cases", n)
	})
}

func second[T any](_ T, err error) error { return err }

// statementSpy counts the statements that reach the database through it.
type statementSpy struct {
	clonesql.Querier
	n int
}

func (s *statementSpy) Select(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error {
	s.n++
	return s.Querier.Select(ctx, cc, dest, query, arg)
}

func (s *statementSpy) Get(ctx context.Context, cc clone.CloneContext, dest any, query string, arg any) error {
	s.n++
	return s.Querier.Get(ctx, cc, dest, query, arg)
}

func (s *statementSpy) Exec(ctx context.Context, cc clone.CloneContext, query string, arg any) (sql.Result, error) {
	s.n++
	return s.Querier.Exec(ctx, cc, query, arg)
}

func (s *statementSpy) Audit() audit.Sink { return s.Querier.(*clonesql.DB).Audit() }

// TestNoCloneContext: every function refuses the zero CloneContext before any
// statement, with one audit event.
func TestNoCloneContext(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := seed(t, e, "a", e.newClone(t))
		var z clone.CloneContext
		id := a.docs[0].ID
		spy := &statementSpy{Querier: e.db}
		calls := map[string]func() error{
			"CreateDocument": func() error { return second(records.CreateDocument(ctx, spy, z, records.Document{})) },
			"GetDocument":    func() error { return second(records.GetDocument(ctx, spy, z, id)) },
			"UpdateDocument": func() error { return second(records.UpdateDocument(ctx, spy, z, a.docs[0])) },
			"UpdateDocumentIfUnchanged": func() error {
				return second(records.UpdateDocumentIfUnchanged(ctx, spy, z, a.docs[0]))
			},
			"SetDocumentStatus":     func() error { return records.SetDocumentStatus(ctx, spy, z, id, records.StatusReady, "") },
			"DeleteDocument":        func() error { return records.DeleteDocument(ctx, spy, z, id) },
			"ListDocuments":         func() error { return second(records.ListDocuments(ctx, spy, z, nil)) },
			"CountDocuments":        func() error { return second(records.CountDocuments(ctx, spy, z)) },
			"FindDocumentsByHash":   func() error { return second(records.FindDocumentsByHash(ctx, spy, z, "h")) },
			"ReplaceDocumentChunks": func() error { return second(records.ReplaceDocumentChunks(ctx, spy, z, id, nil)) },
			"ListDocumentChunks":    func() error { return second(records.ListDocumentChunks(ctx, spy, z, id, nil)) },
			"CountDocumentChunks":   func() error { return second(records.CountDocumentChunks(ctx, spy, z, id)) },
			"GetChunks":             func() error { return second(records.GetChunks(ctx, spy, z, []records.ChunkKey{{id, 0}})) },
			"CreateInsight":         func() error { return second(records.CreateInsight(ctx, spy, z, records.Insight{Content: "x"})) },
			"GetInsight":            func() error { return second(records.GetInsight(ctx, spy, z, a.insights[0].ID)) },
			"UpdateInsight":         func() error { return second(records.UpdateInsight(ctx, spy, z, a.insights[0])) },
			"DeleteInsight":         func() error { return records.DeleteInsight(ctx, spy, z, a.insights[0].ID) },
			"ListInsights":          func() error { return second(records.ListInsights(ctx, spy, z, nil)) },
			"CountInsights":         func() error { return second(records.CountInsights(ctx, spy, z)) },
			"CreateTrainingExample": func() error {
				return second(records.CreateTrainingExample(ctx, spy, z, records.TrainingExample{Prompt: "p", Response: "r"}))
			},
			"GetTrainingExample":    func() error { return second(records.GetTrainingExample(ctx, spy, z, a.examples[0].ID)) },
			"UpdateTrainingExample": func() error { return second(records.UpdateTrainingExample(ctx, spy, z, a.examples[0])) },
			"DeleteTrainingExample": func() error { return records.DeleteTrainingExample(ctx, spy, z, a.examples[0].ID) },
			"ListTrainingExamples":  func() error { return second(records.ListTrainingExamples(ctx, spy, z, nil)) },
			"CountTrainingExamples": func() error { return second(records.CountTrainingExamples(ctx, spy, z)) },
			"CreateConversation":    func() error { return second(records.CreateConversation(ctx, spy, z, records.Conversation{})) },
			"GetConversation":       func() error { return second(records.GetConversation(ctx, spy, z, a.convs[0].ID)) },
			"UpdateConversation":    func() error { return second(records.UpdateConversation(ctx, spy, z, a.convs[0])) },
			"DeleteConversation":    func() error { return records.DeleteConversation(ctx, spy, z, a.convs[0].ID) },
			"ListConversations":     func() error { return second(records.ListConversations(ctx, spy, z, nil)) },
			"CountConversations":    func() error { return second(records.CountConversations(ctx, spy, z)) },
			"AppendMessage": func() error {
				return second(records.AppendMessage(ctx, spy, z, records.Message{ConversationID: a.convs[0].ID, Role: records.RoleUser}))
			},
			"GetMessage":    func() error { return second(records.GetMessage(ctx, spy, z, a.msgs[0].ID)) },
			"UpdateMessage": func() error { return second(records.UpdateMessage(ctx, spy, z, a.msgs[0])) },
			"DeleteMessage": func() error { return records.DeleteMessage(ctx, spy, z, a.msgs[0].ID) },
			"ListMessages":  func() error { return second(records.ListMessages(ctx, spy, z, a.convs[0].ID, nil)) },
			"CountMessages": func() error { return second(records.CountMessages(ctx, spy, z, a.convs[0].ID)) },
		}
		before := rawSnapshot(t, e)
		for name, call := range calls {
			e.audit.Reset()
			if err := call(); !errors.Is(err, clone.ErrNoCloneContext) {
				t.Errorf("%s: %v; want ErrNoCloneContext", name, err)
			}
			if evs := e.audit.Events(); len(evs) != 1 || evs[0].Reason != "no clone context" {
				t.Errorf("%s: audit events %+v; want one", name, evs)
			}
			if spy.n != 0 {
				t.Errorf("%s: %d statements ran without a clone context", name, spy.n)
			}
		}
		if rawSnapshot(t, e) != before {
			t.Error("calls without a clone context changed the database")
		}
		if snapshot(t, e, a.cc) != a.baseline {
			t.Error("the clone's rows changed")
		}
	})
}
