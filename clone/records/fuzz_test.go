package records_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/records"
)

// FuzzCursor: any string given as a cursor is refused as invalid input or yields only
// the caller's rows; it never fails otherwise or panics.
func FuzzCursor(f *testing.F) {
	e := newEnv(f, clonesql.SQLite)
	ctx := context.Background()
	a := seed(f, e, "a", e.newClone(f))
	b := seed(f, e, "b", e.newClone(f))
	for _, c := range []string{"", a.cursors["insights"], b.cursors["insights"], a.cursors["documents"], "e30", "eyJ2IjoxfQ", "' OR 1=1 --"} {
		f.Add(c, false)
	}
	f.Fuzz(func(t *testing.T, cursor string, desc bool) {
		p, err := records.ListInsights(ctx, e.db, a.cc, &records.ListOptions{Cursor: cursor, Descending: desc, Limit: 10})
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) {
				t.Fatalf("cursor %q: %v", cursor, err)
			}
			return
		}
		for _, in := range p.Items {
			if in.CloneID != a.cc.CloneID() {
				t.Fatalf("cursor %q yielded another clone's row", cursor)
			}
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
