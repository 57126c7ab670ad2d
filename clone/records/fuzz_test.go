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
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/tenant"
)

// FuzzCursor builds cursors from fuzzed fields — the list, the parent, the direction,
// the position (a time near one of the clone's rows and an ID, that row's or fuzzed), the
// ordinal — under the fingerprint of clone a, of b (another tenant), of c (a's tenant,
// another clone) or a fuzzed one, or takes a fuzzed raw string, and lists a's insights
// from it, following every next cursor with a fuzzed page size:
//
//   - a cursor of b or c is refused with ErrInvalidInput and audited as a denial for a;
//   - any other refusal is ErrInvalidInput;
//   - an accepted cursor of a's yields, over all pages, exactly a's insights after its
//     position in its direction: no gaps, no duplicates, nothing of another clone's.
func FuzzCursor(f *testing.F) {
	e := newEnv(f, clonesql.SQLite)
	ctx := context.Background()
	ent, err := e.tenants.CreateTenant(ctx, tenant.TenantSpec{Name: "fuzz", Plan: tenant.PlanEnterprise, OwnerSubject: "owner"})
	if err != nil {
		f.Fatal(err)
	}
	var ccs []clone.CloneContext
	for _, name := range []string{"a", "c"} {
		cl, err := e.tenants.CreateClone(ctx, ent.ID, tenant.CloneSpec{Name: name, OwnerSubject: "owner"})
		if err != nil {
			f.Fatal(err)
		}
		cc, err := e.tenants.ResolveClone(ctx, "owner", ent.ID, cl.ID)
		if err != nil {
			f.Fatal(err)
		}
		ccs = append(ccs, cc)
	}
	a, c := ccs[0], ccs[1]
	b := e.newClone(f)
	var own []records.Insight // a's insights in ascending (created_at, id) order
	for _, cc := range []clone.CloneContext{a, b, c} {
		for i := range 7 {
			in, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Category: "c", Content: fmt.Sprintf("%s %d", cc.CloneID(), i)})
			if err != nil {
				f.Fatal(err)
			}
			if cc.Same(a) {
				own = append(own, in)
			}
		}
	}
	slices.SortFunc(own, func(x, y records.Insight) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID.String(), y.ID.String())
	})
	// The fingerprints, read from real cursors.
	var insightList string // the list's name in its cursors
	scopeOf := func(cc clone.CloneContext) string {
		p, err := records.ListInsights(ctx, e.db, cc, &records.ListOptions{Limit: 1})
		if err != nil || p.Next == "" {
			f.Fatalf("first page: %+v, %v", p, err)
		}
		b, err := base64.RawURLEncoding.DecodeString(p.Next)
		if err != nil {
			f.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			f.Fatal(err)
		}
		insightList = m["l"].(string)
		return m["s"].(string)
	}
	scopes := []string{scopeOf(a), scopeOf(b), scopeOf(c)}
	rawA, _ := records.ListInsights(ctx, e.db, a, &records.ListOptions{Limit: 2})
	rawB, _ := records.ListInsights(ctx, e.db, b, &records.ListOptions{Limit: 2})

	for _, s := range []struct {
		raw     string
		pick    uint8
		offset  int64
		id      []byte
		list    string
		desc    bool
		ord     int64
		scope   uint8
		limit   uint8
		withOf  bool
		fuzzedS string
	}{
		{pick: 0}, {pick: 3, desc: true}, {pick: 6, limit: 2}, {pick: 2, offset: -1}, {pick: 2, offset: 1},
		{pick: 1, id: []byte{0xff}}, {pick: 4, id: make([]byte, 16)},
		{pick: 1, scope: 1}, {pick: 1, scope: 2}, {pick: 1, scope: 3, fuzzedS: "00"},
		{pick: 1, list: "document"}, {pick: 1, withOf: true}, {pick: 1, ord: -1}, {pick: 1, ord: 1 << 40},
		{raw: rawA.Next}, {raw: rawB.Next}, {raw: "e30"}, {raw: "eyJ2IjoxfQ"}, {raw: "' OR 1=1 --"},
	} {
		f.Add(s.raw, s.pick, s.offset, s.id, s.list, s.desc, s.ord, s.scope, s.fuzzedS, s.withOf, s.limit)
	}
	f.Fuzz(func(t *testing.T, raw string, pick uint8, offset int64, id []byte, list string, desc bool, ord int64,
		scope uint8, fuzzedScope string, withOf bool, limit uint8) {
		cursor := raw
		base := own[int(pick)%len(own)]
		at := base.CreatedAt.Add(time.Duration(offset % int64(24*time.Hour)))
		pos := base.ID
		if len(id) > 0 {
			var u uuid.UUID
			copy(u[:], id)
			pos = u
		}
		if list == "" {
			list = insightList
		}
		sc := fuzzedScope
		if int(scope)%4 < len(scopes) {
			sc = scopes[int(scope)%4]
		}
		if raw == "" {
			m := map[string]any{"v": 1, "l": list, "s": sc, "d": desc, "t": at, "i": pos, "o": ord}
			if withOf {
				m["p"] = pos
			}
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			cursor = base64.RawURLEncoding.EncodeToString(b)
		}
		pageSize := 1 + int(limit)%4
		events := len(e.audit.Events())
		p, err := records.ListInsights(ctx, e.db, a, &records.ListOptions{Cursor: cursor, Descending: desc, Limit: pageSize})
		// A cursor over 512 bytes is refused before it is decoded (no audit then).
		if raw == "" && (sc == scopes[1] || sc == scopes[2]) && len(cursor) <= 512 {
			evs := e.audit.Events()
			if !errors.Is(err, clone.ErrInvalidInput) || len(evs) != events+1 ||
				evs[events].Outcome != audit.Denied || evs[events].CloneID != a.CloneID() {
				t.Fatalf("another clone's cursor: %v, audit %+v; want ErrInvalidInput and one denial for a", err, evs[events:])
			}
			return
		}
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) {
				t.Fatalf("cursor %q: %v", cursor, err)
			}
			return
		}
		// Collect every page from the cursor on.
		var got []records.Insight
		for pages := 0; ; pages++ {
			for _, in := range p.Items {
				if in.CloneID != a.CloneID() || in.TenantID != a.TenantID() {
					t.Fatalf("cursor %q yielded another clone's row %+v", cursor, in)
				}
			}
			got = append(got, p.Items...)
			if p.Next == "" {
				break
			}
			if pages > len(own) {
				t.Fatalf("cursor %q: more pages than rows", cursor)
			}
			if p, err = records.ListInsights(ctx, e.db, a, &records.ListOptions{Cursor: p.Next, Descending: desc, Limit: pageSize}); err != nil {
				t.Fatalf("next page: %v", err)
			}
		}
		if raw != "" {
			seen := map[uuid.UUID]bool{}
			for _, in := range got {
				if seen[in.ID] {
					t.Fatalf("raw cursor %q: %s twice", raw, in.ID)
				}
				seen[in.ID] = true
			}
			return
		}
		// The rows strictly after (at, pos) in the listing's direction.
		var want []uuid.UUID
		for _, in := range own {
			cmp := in.CreatedAt.Compare(at)
			if cmp == 0 {
				cmp = strings.Compare(in.ID.String(), pos.String())
			}
			if !desc && cmp > 0 || desc && cmp < 0 {
				want = append(want, in.ID)
			}
		}
		if desc {
			slices.Reverse(want)
		}
		ids := make([]uuid.UUID, len(got))
		for i, in := range got {
			ids[i] = in.ID
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("from (%s, %s, desc %v) with pages of %d: got %v; want %v", at.Format(time.RFC3339Nano), pos, desc, pageSize, ids, want)
		}
	})
}

// FuzzMetadata: any metadata is stored as a JSON object that reads back equal, or is
// refused as bad input; it never fails otherwise or panics.
func FuzzMetadata(f *testing.F) {
	e := newEnv(f, clonesql.SQLite)
	ctx := context.Background()
	cc := e.newClone(f)
	for _, m := range []string{`{}`, `{"a":1}`, `{"a":"\u0000"}`, `{"a":"\ud800"}`, `[1]`, `{"a":1e400}`, `{"a":{"b":[1,2,{"c":null}]}}`, "{\"\xff\":1}", `{"a":1}{"b":2}`, ` {"a" : 1 } `} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, meta []byte) {
		in, err := records.CreateInsight(ctx, e.db, cc, records.Insight{Content: "x", Metadata: meta})
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) && !errors.Is(err, clone.ErrTooLarge) {
				t.Fatalf("metadata %q: %v", meta, err)
			}
			return
		}
		got, err := records.GetInsight(ctx, e.db, cc, in.ID)
		if err != nil {
			t.Fatal(err)
		}
		var want, have any
		if json.Unmarshal(in.Metadata, &want) != nil || json.Unmarshal(got.Metadata, &have) != nil {
			t.Fatalf("metadata %q stored as %q", meta, got.Metadata)
		}
		if _, ok := have.(map[string]any); !ok {
			t.Fatalf("metadata %q stored as a non-object %q", meta, got.Metadata)
		}
		wb, _ := json.Marshal(want)
		hb, _ := json.Marshal(have)
		if string(wb) != string(hb) {
			t.Fatalf("metadata %q: returned %s, read back %s", meta, in.Metadata, got.Metadata)
		}
	})
}
