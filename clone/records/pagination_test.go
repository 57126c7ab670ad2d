package records_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
)

// collect pages through a list with the given page size and direction.
func collect[T any](t *testing.T, limit int, desc bool, list func(*records.ListOptions) (records.Page[T], error)) []T {
	t.Helper()
	var all []T
	opts := &records.ListOptions{Limit: limit, Descending: desc}
	for pages := 0; ; pages++ {
		p, err := list(opts)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(p.Items) > limit {
			t.Fatalf("page of %d items; limit %d", len(p.Items), limit)
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all
		}
		if len(p.Items) != limit {
			t.Fatalf("short page (%d of %d) with a next cursor", len(p.Items), limit)
		}
		if pages > 1000 {
			t.Fatal("pagination does not end")
		}
		opts = &records.ListOptions{Limit: limit, Descending: desc, Cursor: p.Next}
	}
}

type keyed struct {
	at time.Time
	id uuid.UUID
}

func byKey(a, b keyed) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return strings.Compare(a.id.String(), b.id.String())
}

// checkOrder asserts that got lists exactly want's keys, in (created_at, id) order
// (reversed if desc), each once.
func checkOrder(t *testing.T, name string, got, want []keyed, desc bool) {
	t.Helper()
	exp := slices.Clone(want)
	slices.SortFunc(exp, byKey)
	if desc {
		slices.Reverse(exp)
	}
	if len(got) != len(exp) {
		t.Fatalf("%s: %d items; want %d", name, len(got), len(exp))
	}
	for i := range exp {
		if got[i].id != exp[i].id || !got[i].at.Equal(exp[i].at) {
			t.Fatalf("%s: item %d is %v; want %v", name, i, got[i], exp[i])
		}
	}
}

// tiedClock returns timestamps in runs of equal values: 10, then 7, then the rest at
// one microsecond steps, from a fixed instant.
func tiedClock() func() time.Time {
	base := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	n := 0
	return func() time.Time {
		n++
		switch {
		case n <= 10:
			return base
		case n <= 17:
			return base.Add(time.Microsecond)
		}
		return base.Add(time.Duration(n) * time.Microsecond)
	}
}

func TestKeysetPagination(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a, b := e.newClone(t), e.newClone(t)
		const n = 23
		// The other clone's rows share the timestamps: pages must never include them.
		for _, cc := range []clone.CloneContext{b, a} {
			creates := []func(i int) error{
				func(i int) error {
					_, err := records.CreateDocument(ctx, e.db, cc, records.Document{Title: fmt.Sprint(i)})
					return err
				},
				func(i int) error {
					_, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Content: fmt.Sprint(i)})
					return err
				},
				func(i int) error {
					_, err := records.CreateTrainingExample(ctx, e.db, cc, records.TrainingExample{Prompt: "p", Response: fmt.Sprint(i)})
					return err
				},
				func(i int) error {
					_, err := records.CreateConversation(ctx, e.db, cc, records.Conversation{Title: fmt.Sprint(i)})
					return err
				},
			}
			for _, create := range creates {
				restore := records.SetClock(tiedClock())
				for i := range n {
					if err := create(i); err != nil {
						t.Fatal(err)
					}
				}
				restore()
			}
		}
		all := &records.ListOptions{Limit: records.MaxPageSize}
		dp, _ := records.ListDocuments(ctx, e.db, a, all)
		ip, _ := records.ListInsights(ctx, e.db, a, all)
		tp, _ := records.ListTrainingExamples(ctx, e.db, a, all)
		cp, _ := records.ListConversations(ctx, e.db, a, all)
		keys := map[string][]keyed{}
		for _, d := range dp.Items {
			keys["documents"] = append(keys["documents"], keyed{d.CreatedAt, d.ID})
		}
		for _, r := range ip.Items {
			keys["insights"] = append(keys["insights"], keyed{r.CreatedAt, r.ID})
		}
		for _, r := range tp.Items {
			keys["examples"] = append(keys["examples"], keyed{r.CreatedAt, r.ID})
		}
		for _, r := range cp.Items {
			keys["conversations"] = append(keys["conversations"], keyed{r.CreatedAt, r.ID})
		}
		for name, k := range keys {
			if len(k) != n {
				t.Fatalf("%s: %d rows; want %d", name, len(k), n)
			}
			distinct := map[time.Time]bool{}
			for _, x := range k {
				distinct[x.at] = true
			}
			if len(distinct) != n-15 {
				t.Fatalf("%s: %d distinct timestamps; want %d (ties of 10 and 7)", name, len(distinct), n-15)
			}
		}
		for _, limit := range []int{1, 4, 10, 22, 23, 50} {
			for _, desc := range []bool{false, true} {
				name := fmt.Sprintf("limit %d desc %v", limit, desc)
				var got []keyed
				for _, d := range collect(t, limit, desc, func(o *records.ListOptions) (records.Page[records.Document], error) {
					return records.ListDocuments(ctx, e.db, a, o)
				}) {
					got = append(got, keyed{d.CreatedAt, d.ID})
				}
				checkOrder(t, "documents "+name, got, keys["documents"], desc)
				got = got[:0]
				for _, r := range collect(t, limit, desc, func(o *records.ListOptions) (records.Page[records.Insight], error) {
					return records.ListInsights(ctx, e.db, a, o)
				}) {
					got = append(got, keyed{r.CreatedAt, r.ID})
				}
				checkOrder(t, "insights "+name, got, keys["insights"], desc)
				got = got[:0]
				for _, r := range collect(t, limit, desc, func(o *records.ListOptions) (records.Page[records.TrainingExample], error) {
					return records.ListTrainingExamples(ctx, e.db, a, o)
				}) {
					got = append(got, keyed{r.CreatedAt, r.ID})
				}
				checkOrder(t, "examples "+name, got, keys["examples"], desc)
				got = got[:0]
				for _, r := range collect(t, limit, desc, func(o *records.ListOptions) (records.Page[records.Conversation], error) {
					return records.ListConversations(ctx, e.db, a, o)
				}) {
					got = append(got, keyed{r.CreatedAt, r.ID})
				}
				checkOrder(t, "conversations "+name, got, keys["conversations"], desc)
			}
		}
		if c, err := records.CountInsights(ctx, e.db, a); err != nil || c != n {
			t.Fatalf("count = %d, %v", c, err)
		}

		// Messages list in append order, even with a frozen clock; chunks by ordinal.
		conv := cp.Items[0]
		restore := records.SetClock(func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) })
		var appended []uuid.UUID
		for i := range 12 {
			m, err := records.AppendMessage(ctx, e.db, a, records.Message{ConversationID: conv.ID, Role: records.RoleUser, Content: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			appended = append(appended, m.ID)
		}
		restore()
		doc := dp.Items[0]
		var cs []records.Chunk
		for i := range 17 {
			cs = append(cs, records.Chunk{Ordinal: 100 - 3*i, Content: fmt.Sprint(i)})
		}
		if _, err := records.ReplaceDocumentChunks(ctx, e.db, a, doc.ID, cs); err != nil {
			t.Fatal(err)
		}
		for _, limit := range []int{1, 5, 12, 17} {
			for _, desc := range []bool{false, true} {
				ms := collect(t, limit, desc, func(o *records.ListOptions) (records.Page[records.Message], error) {
					return records.ListMessages(ctx, e.db, a, conv.ID, o)
				})
				want := slices.Clone(appended)
				if desc {
					slices.Reverse(want)
				}
				for i, m := range ms {
					if m.ID != want[i] {
						t.Fatalf("messages limit %d desc %v: item %d out of order", limit, desc, i)
					}
				}
				if len(ms) != len(want) {
					t.Fatalf("messages: %d of %d", len(ms), len(want))
				}
				got := collect(t, limit, desc, func(o *records.ListOptions) (records.Page[records.Chunk], error) {
					return records.ListDocumentChunks(ctx, e.db, a, doc.ID, o)
				})
				ords := make([]int, len(got))
				for i, c := range got {
					ords[i] = c.Ordinal
				}
				if len(ords) != len(cs) || !slices.IsSortedFunc(ords, func(x, y int) int {
					if desc {
						return y - x
					}
					return x - y
				}) || len(slices.Compact(slices.Clone(ords))) != len(ords) {
					t.Fatalf("chunks limit %d desc %v: ordinals %v", limit, desc, ords)
				}
			}
		}
	})
}

// TestCursorTampering: a cursor of another clone, list, parent or direction is refused;
// a cursor altered to point anywhere yields only the caller's rows.
func TestCursorTampering(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		a := seed(t, e, "a", e.newClone(t))
		b := seed(t, e, "b", e.newClone(t))
		one := func(c string) *records.ListOptions { return &records.ListOptions{Limit: 1, Cursor: c} }
		refused := []struct {
			name string
			err  error
			want error
		}{
			{"another clone's cursor", second(records.ListInsights(ctx, e.db, a.cc, one(b.cursors["insights"]))), clone.ErrInvalidInput},
			{"another list's cursor", second(records.ListInsights(ctx, e.db, a.cc, one(a.cursors["documents"]))), clone.ErrInvalidInput},
			{"another conversation's cursor", second(records.ListMessages(ctx, e.db, a.cc, a.convs[1].ID, one(a.cursors["messages"]))), clone.ErrInvalidInput},
			{"another direction", second(records.ListInsights(ctx, e.db, a.cc, &records.ListOptions{Cursor: a.cursors["insights"], Descending: true})), clone.ErrInvalidInput},
			{"garbage", second(records.ListInsights(ctx, e.db, a.cc, one("not a cursor!"))), clone.ErrInvalidInput},
			{"truncated", second(records.ListInsights(ctx, e.db, a.cc, one(a.cursors["insights"][:10]))), clone.ErrInvalidInput},
			{"injection", second(records.ListInsights(ctx, e.db, a.cc, one("' OR 1=1 --"))), clone.ErrInvalidInput},
			{"oversized", second(records.ListInsights(ctx, e.db, a.cc, one(strings.Repeat("A", 4096)))), clone.ErrInvalidInput},
		}
		for _, c := range refused {
			if !errors.Is(c.err, c.want) {
				t.Errorf("%s: %v; want %v", c.name, c.err, c.want)
			}
		}
		// Rewrite a valid cursor of A's: any position, any ID (even B's); A still sees
		// only its own rows.
		raw, err := base64.RawURLEncoding.DecodeString(a.cursors["insights"])
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]any
		if err := json.Unmarshal(raw, &fields); err != nil {
			t.Fatal(err)
		}
		for _, edit := range []map[string]any{
			{"t": "0001-01-01T00:00:00Z", "i": "00000000-0000-0000-0000-000000000000"},
			{"t": "1970-01-01T00:00:00+05:00"},
			{"i": b.insights[0].ID.String(), "t": b.insights[0].CreatedAt.Format(time.RFC3339Nano)},
			{"o": 5},
		} {
			f := map[string]any{}
			for k, v := range fields {
				f[k] = v
			}
			for k, v := range edit {
				f[k] = v
			}
			j, _ := json.Marshal(f)
			p, err := records.ListInsights(ctx, e.db, a.cc, &records.ListOptions{Limit: 100, Cursor: base64.RawURLEncoding.EncodeToString(j)})
			if err != nil {
				continue // refused is fine
			}
			for _, in := range p.Items {
				if in.CloneID != a.cc.CloneID() || strings.Contains(in.Content, b.canary) {
					t.Fatalf("tampered cursor %v yielded another clone's row", edit)
				}
			}
		}
	})
}
