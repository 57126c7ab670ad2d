package filter_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

func mustParse(t *testing.T, s string) *filter.Filter {
	t.Helper()
	f, err := filter.ParseJSON([]byte(s))
	if err != nil {
		t.Fatalf("ParseJSON(%s): %v", s, err)
	}
	return f
}

func TestMatch(t *testing.T) {
	md := map[string]any{
		"genre": "drama",
		"year":  2021.0,
		"draft": false,
		"tags":  []string{"a", "b"},
	}
	cases := []struct {
		filter string
		want   bool
	}{
		{`{}`, true},
		{`{"genre":"drama"}`, true},
		{`{"genre":"comedy"}`, false},
		{`{"genre":{"$eq":"drama"}}`, true},
		{`{"genre":{"$ne":"drama"}}`, false},
		{`{"genre":{"$ne":"comedy"}}`, true},
		{`{"missing":{"$ne":"x"}}`, true},
		{`{"missing":{"$nin":["x"]}}`, true},
		{`{"missing":{"$in":["x"]}}`, false},
		{`{"missing":{"$eq":"x"}}`, false},
		{`{"year":{"$gt":2020}}`, true},
		{`{"year":{"$gt":2021}}`, false},
		{`{"year":{"$gte":2021}}`, true},
		{`{"year":{"$lt":2021}}`, false},
		{`{"year":{"$lte":2021}}`, true},
		{`{"year":{"$gte":2020,"$lt":2021}}`, false},
		{`{"year":2021}`, true},
		{`{"year":"2021"}`, false},
		{`{"genre":{"$gt":1}}`, false},
		{`{"draft":false}`, true},
		{`{"draft":{"$exists":true}}`, true},
		{`{"draft":{"$exists":false}}`, false},
		{`{"nope":{"$exists":false}}`, true},
		{`{"genre":{"$in":["comedy","drama"]}}`, true},
		{`{"genre":{"$nin":["comedy","drama"]}}`, false},
		{`{"tags":"a"}`, true},
		{`{"tags":"c"}`, false},
		{`{"tags":{"$in":["c","b"]}}`, true},
		{`{"tags":{"$nin":["c","b"]}}`, false},
		{`{"tags":{"$ne":"a"}}`, false},
		{`{"$or":[{"genre":"comedy"},{"year":2021}]}`, true},
		{`{"$or":[{"genre":"comedy"},{"year":2020}]}`, false},
		{`{"$and":[{"genre":"drama"},{"year":2021}]}`, true},
		{`{"$and":[{"genre":"drama"},{"year":2020}]}`, false},
		{`{"genre":"drama","year":2020}`, false},
	}
	for _, c := range cases {
		f := mustParse(t, c.filter)
		if got := f.Match(md); got != c.want {
			t.Errorf("%s.Match = %v, want %v", c.filter, got, c.want)
		}
		// The canonical rendering must mean the same.
		g, err := filter.Parse(f.Map())
		if err != nil {
			t.Fatalf("Parse(Map(%s)): %v", c.filter, err)
		}
		if got := g.Match(md); got != c.want {
			t.Errorf("Map(%s) = %s: Match = %v, want %v", c.filter, g, got, c.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	deep := strings.Repeat(`{"$and":[`, filter.MaxDepth+2) + `{"a":1}` + strings.Repeat(`]}`, filter.MaxDepth+2)
	cases := []string{
		`{"a":{"$regex":"x"}}`,
		`{"$not":{"a":1}}`,
		`{"$nor":[{"a":1}]}`,
		`{"a":{"$gt":"x"}}`,
		`{"a":{"$gt":true}}`,
		`{"$and":[]}`,
		`{"$or":{}}`,
		`{"$and":[1]}`,
		`{"a":[1,2]}`,
		`{"a":null}`,
		`{"a":{"$eq":null}}`,
		`{"a":{"$in":[]}}`,
		`{"a":{"$in":"x"}}`,
		`{"a":{"$in":[{"b":1}]}}`,
		`{"a":{"$exists":1}}`,
		`{"a":{}}`,
		`{"":1}`,
		`{"$and":[{}]}`,
		deep,
	}
	for _, c := range cases {
		_, err := filter.ParseJSON([]byte(c))
		if err == nil {
			t.Errorf("ParseJSON(%.60s) accepted an invalid filter", c)
			continue
		}
		if !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("ParseJSON(%.60s) = %v, want ErrInvalidInput", c, err)
		}
	}
}

func TestParseTooManyNodes(t *testing.T) {
	var parts []string
	for i := 0; i <= filter.MaxNodes; i++ {
		parts = append(parts, `{"a":1}`)
	}
	_, err := filter.ParseJSON([]byte(`{"$or":[` + strings.Join(parts, ",") + `]}`))
	if !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("got %v, want ErrInvalidInput", err)
	}
}

func TestParseGoValues(t *testing.T) {
	f, err := filter.Parse(map[string]any{
		"n":    map[string]any{"$gte": int64(3)},
		"tags": map[string]any{"$in": []string{"x", "y"}},
		"$or":  []map[string]any{{"a": 1}, {"b": uint8(2)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Match(map[string]any{"n": 3.0, "tags": "y", "b": 2.0}) {
		t.Fatalf("%s does not match", f)
	}
}

func TestResolve(t *testing.T) {
	f := mustParse(t, `{"$and":[{"clone_id":"A"},{"$or":[{"genre":"x"},{"clone_id":"B"}]}]}`)
	decide := func(n *filter.Filter) (bool, bool) {
		if n.Field() == "clone_id" && n.Op() == filter.Eq {
			return n.Value() == "A", true
		}
		return false, false
	}
	r, known, _ := f.Resolve(decide)
	if known || r.String() != `{"genre":{"$eq":"x"}}` {
		t.Fatalf("Resolve = %s, known %v", r, known)
	}
	g := mustParse(t, `{"$and":[{"clone_id":"B"},{"genre":"x"}]}`)
	if _, known, out := g.Resolve(decide); !known || out {
		t.Fatalf("Resolve of a foreign scope = known %v outcome %v, want known false", known, out)
	}
}

// FuzzParse checks that Parse never panics and that every accepted filter renders to a
// canonical form that parses back to the same filter.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"a":{"$in":["x",1,true]},"$or":[{"b":{"$exists":true}},{"c":{"$lte":2}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := filter.ParseJSON(data)
		if err != nil {
			if !errors.Is(err, clone.ErrInvalidInput) {
				t.Fatalf("error without the InvalidInput kind: %v", err)
			}
			return
		}
		m := p.Map()
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("Map is not JSON: %v", err)
		}
		q, err := filter.ParseJSON(b)
		if err != nil {
			t.Fatalf("canonical form %s does not parse: %v", b, err)
		}
		if p != nil && !p.Equal(q) {
			t.Fatalf("round trip changed the filter: %s -> %s", p, q)
		}
		_ = p.Match(map[string]any{"a": "x", "b": 1.0, "c": []string{"x"}})
	})
}
