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

// FuzzParse checks, for every filter Parse accepts (refusals must be ErrInvalidInput):
//
//   - it renders to a canonical form that parses back to the same filter;
//   - AND-ed with a clone scope, as the vector store does with every query, it matches
//     only records the scope matches: AndAll(scope, f).Match(md) implies
//     scope.Match(md), and equals scope.Match(md) && f.Match(md);
//   - Resolve agrees with Match: for a set of two fuzzed records, with every
//     comparison on a fuzz-chosen set of fields decided once for the set wherever the
//     records agree on it (as the engine decides the scope once per namespace), the
//     constant outcome or the residual filter gives each record the outcome Match
//     gives it, for f and for the scoped filter.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"a":{"$in":["x",1,true]},"$or":[{"b":{"$exists":true}},{"c":{"$lte":2}}]}`),
		[]byte(`{"tenant_id":"T","clone_id":"C","a":"x"}`), []byte(`{"tenant_id":"T","clone_id":"D","a":"x"}`), uint8(3))
	f.Add([]byte(`{"$or":[{"clone_id":"D"},{"a":"x"}]}`),
		[]byte(`{"tenant_id":"T","clone_id":"D","a":"y"}`), []byte(`{"tenant_id":"T","clone_id":"C","a":"x"}`), uint8(0xff))
	f.Add([]byte(`{"clone_id":{"$ne":"C"}}`),
		[]byte(`{"tenant_id":"T","clone_id":"C"}`), []byte(`{"tenant_id":"U","clone_id":"C","tags":["a","b"]}`), uint8(1))
	f.Add([]byte(`{"$and":[{"tenant_id":{"$in":["T","U"]}},{"clone_id":{"$nin":["C"]}}]}`),
		[]byte(`{"tenant_id":["T"],"clone_id":"C"}`), []byte(`{"clone_id":true,"n":1}`), uint8(2))
	f.Fuzz(func(t *testing.T, data, md1, md2 []byte, decidable uint8) {
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

		recs := []map[string]any{fuzzMetadata(md1), fuzzMetadata(md2)}
		tenant, err := filter.FieldEq("tenant_id", "T")
		if err != nil {
			t.Fatal(err)
		}
		cloneEq, err := filter.FieldEq("clone_id", "C")
		if err != nil {
			t.Fatal(err)
		}
		scope := filter.AndAll(tenant, cloneEq)
		scoped := filter.AndAll(scope, p)
		for _, md := range recs {
			in, s, own := scoped.Match(md), scope.Match(md), p.Match(md)
			if in && !s {
				t.Fatalf("scoped filter %s matches %v, which the scope does not", scoped, md)
			}
			if in != (s && own) {
				t.Fatalf("scoped filter %s: Match(%v) = %v; scope %v, filter %v", scoped, md, in, s, own)
			}
		}
		// decide answers for comparisons on the fields decidable selects (by name
		// length), and only where both records agree.
		decide := func(n *filter.Filter) (bool, bool) {
			if decidable>>(len(n.Field())%8)&1 == 0 {
				return false, false
			}
			o := n.Match(recs[0])
			for _, md := range recs[1:] {
				if n.Match(md) != o {
					return false, false
				}
			}
			return o, true
		}
		for _, g := range []*filter.Filter{p, scoped} {
			residual, known, outcome := g.Resolve(decide)
			for _, md := range recs {
				got := outcome
				if !known {
					got = residual.Match(md)
				}
				if want := g.Match(md); got != want {
					t.Fatalf("Resolve(%s) = residual %s known %v outcome %v: %v for %v; Match says %v", g, residual, known, outcome, got, md, want)
				}
			}
		}
	})
}

// fuzzMetadata decodes a JSON object into record metadata, with lists of strings as
// []string as stores return them; anything else (other lists, objects) is kept, so
// Match also meets values it never accepts in a filter. Invalid JSON is no metadata.
func fuzzMetadata(b []byte) map[string]any {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	for k, v := range m {
		l, ok := v.([]any)
		if !ok {
			continue
		}
		ss := make([]string, 0, len(l))
		for _, e := range l {
			if s, ok := e.(string); ok {
				ss = append(ss, s)
			}
		}
		if len(ss) == len(l) {
			m[k] = ss
		}
	}
	return m
}
