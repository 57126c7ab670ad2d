// Package filter parses, validates, evaluates and renders metadata filters written in
// Pinecone's filter language.
//
// A filter is a JSON-shaped map. Each key is either a metadata field name or one of the
// logical operators $and and $or; several keys in one object are AND-ed:
//
//	{"genre": "drama"}                                  // shorthand for {"genre": {"$eq": "drama"}}
//	{"year": {"$gte": 2020, "$lt": 2024}}               // several operators on one field are AND-ed
//	{"$or": [{"genre": {"$in": ["comedy", "drama"]}}, {"draft": {"$exists": false}}]}
//
// Supported operators: $eq $ne (string, number or boolean), $gt $gte $lt $lte (number),
// $in $nin (non-empty array of strings, numbers or booleans), $exists (boolean), $and $or
// (non-empty array of filters). Any other operator is refused with an error of kind
// [clone.ErrInvalidInput], as are values of the wrong type, filters nested deeper than
// [MaxDepth] and filters with more than [MaxNodes] conditions. A filter is parsed and
// validated once, into a [Filter] that is immutable and safe for concurrent use.
//
// Metadata values are strings, numbers (float64), booleans and lists of strings. On a
// list-valued field, $eq and $in match when any element matches, and $ne and $nin when
// no element does. $ne and $nin also match records that do not have the field at all
// (Pinecone's behaviour); use {"f": {"$exists": true}} to require it.
package filter

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/cloneiso/cloneiso/internal/errs"
)

// Limits on the size of a filter, so a hostile filter cannot make evaluation expensive.
const (
	MaxDepth    = 10    // maximum nesting of $and / $or
	MaxNodes    = 1000  // maximum number of conditions and logical nodes
	MaxInValues = 10000 // maximum number of values in one $in / $nin (Pinecone's limit)
)

// Op is a filter operator.
type Op string

// The operators of the language.
const (
	And    Op = "$and"
	Or     Op = "$or"
	Eq     Op = "$eq"
	Ne     Op = "$ne"
	Gt     Op = "$gt"
	Gte    Op = "$gte"
	Lt     Op = "$lt"
	Lte    Op = "$lte"
	In     Op = "$in"
	Nin    Op = "$nin"
	Exists Op = "$exists"
	// True is the filter that matches everything (the empty filter {}); it only appears as
	// the root of a filter.
	True Op = "$true"
)

// Filter is a parsed, validated filter. The nil *Filter matches everything.
type Filter struct {
	op       Op
	field    string    // comparison nodes
	value    any       // string, float64 or bool; for $exists a bool
	values   []any     // $in / $nin
	children []*Filter // $and / $or
}

// Op returns the node's operator.
func (f *Filter) Op() Op {
	if f == nil {
		return True
	}
	return f.op
}

// Field returns the metadata field a comparison node tests ("" for $and / $or).
func (f *Filter) Field() string {
	if f == nil {
		return ""
	}
	return f.field
}

// Value returns the operand of a comparison node other than $in / $nin.
func (f *Filter) Value() any {
	if f == nil {
		return nil
	}
	return f.value
}

// Values returns a copy of the operands of an $in / $nin node.
func (f *Filter) Values() []any {
	if f == nil {
		return nil
	}
	return slices.Clone(f.values)
}

// Children returns the operands of an $and / $or node.
func (f *Filter) Children() []*Filter {
	if f == nil {
		return nil
	}
	return slices.Clone(f.children)
}

const op = "filter.Parse"

func invalid(format string, args ...any) error {
	return errs.New(errs.InvalidInput, op, format, args...)
}

// Parse validates m and returns its parsed form. A nil or empty m is the filter that
// matches everything and parses to nil. Errors are of kind [clone.ErrInvalidInput].
func Parse(m map[string]any) (*Filter, error) {
	if len(m) == 0 {
		return nil, nil
	}
	nodes := 0
	f, err := parseObject(m, 0, &nodes)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ParseJSON parses a filter in JSON form. Numbers are decoded as float64.
func ParseJSON(data []byte) (*Filter, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, errs.Wrap(errs.InvalidInput, op, err, "filter is not a JSON object")
	}
	return Parse(m)
}

func parseObject(m map[string]any, depth int, nodes *int) (*Filter, error) {
	if depth > MaxDepth {
		return nil, invalid("filter nested deeper than %d levels", MaxDepth)
	}
	if len(m) == 0 {
		return nil, invalid("empty filter object inside a filter")
	}
	keys := sortedKeys(m)
	var parts []*Filter
	for _, k := range keys {
		v := m[k]
		if err := count(nodes); err != nil {
			return nil, err
		}
		switch {
		case k == string(And) || k == string(Or):
			arr, ok := asArray(v)
			if !ok || len(arr) == 0 {
				return nil, invalid("%s needs a non-empty array of filters", k)
			}
			n := &Filter{op: Op(k)}
			for _, e := range arr {
				em, ok := e.(map[string]any)
				if !ok {
					return nil, invalid("%s needs an array of filter objects", k)
				}
				c, err := parseObject(em, depth+1, nodes)
				if err != nil {
					return nil, err
				}
				n.children = append(n.children, c)
			}
			parts = append(parts, n)
		case strings.HasPrefix(k, "$"):
			return nil, invalid("unsupported filter operator %s", quote(k))
		default:
			if err := validField(k); err != nil {
				return nil, err
			}
			fs, err := parseField(k, v, nodes)
			if err != nil {
				return nil, err
			}
			parts = append(parts, fs...)
		}
	}
	if len(parts) == 1 {
		return parts[0], nil
	}
	return &Filter{op: And, children: parts}, nil
}

func count(nodes *int) error {
	*nodes++
	if *nodes > MaxNodes {
		return invalid("filter has more than %d conditions", MaxNodes)
	}
	return nil
}

func validField(k string) error {
	if k == "" {
		return invalid("empty metadata field name in filter")
	}
	if len(k) > 512 {
		return invalid("metadata field name longer than 512 bytes in filter")
	}
	return nil
}

func parseField(field string, v any, nodes *int) ([]*Filter, error) {
	ops, ok := v.(map[string]any)
	if !ok {
		s, err := scalar(v)
		if err != nil {
			return nil, invalid("field %s: %v", quote(field), err)
		}
		return []*Filter{{op: Eq, field: field, value: s}}, nil
	}
	if len(ops) == 0 {
		return nil, invalid("field %s: empty operator object", quote(field))
	}
	var out []*Filter
	for _, o := range sortedKeys(ops) {
		arg := ops[o]
		if len(out) > 0 {
			if err := count(nodes); err != nil {
				return nil, err
			}
		}
		switch Op(o) {
		case Eq, Ne:
			s, err := scalar(arg)
			if err != nil {
				return nil, invalid("field %s: %s: %v", quote(field), o, err)
			}
			out = append(out, &Filter{op: Op(o), field: field, value: s})
		case Gt, Gte, Lt, Lte:
			n, ok := number(arg)
			if !ok {
				return nil, invalid("field %s: %s needs a finite number", quote(field), o)
			}
			out = append(out, &Filter{op: Op(o), field: field, value: n})
		case In, Nin:
			arr, ok := asArray(arg)
			if !ok || len(arr) == 0 {
				return nil, invalid("field %s: %s needs a non-empty array", quote(field), o)
			}
			if len(arr) > MaxInValues {
				return nil, invalid("field %s: %s has more than %d values", quote(field), o, MaxInValues)
			}
			vals := make([]any, len(arr))
			for i, e := range arr {
				s, err := scalar(e)
				if err != nil {
					return nil, invalid("field %s: %s: %v", quote(field), o, err)
				}
				vals[i] = s
			}
			out = append(out, &Filter{op: Op(o), field: field, values: vals})
		case Exists:
			b, ok := arg.(bool)
			if !ok {
				return nil, invalid("field %s: $exists needs a boolean", quote(field))
			}
			out = append(out, &Filter{op: Exists, field: field, value: b})
		default:
			return nil, invalid("field %s: unsupported filter operator %s", quote(field), quote(o))
		}
	}
	return out, nil
}

func quote(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func asArray(v any) ([]any, bool) {
	switch a := v.(type) {
	case []any:
		return a, true
	case []string:
		out := make([]any, len(a))
		for i, s := range a {
			out[i] = s
		}
		return out, true
	case []float64:
		out := make([]any, len(a))
		for i, s := range a {
			out[i] = s
		}
		return out, true
	case []int:
		out := make([]any, len(a))
		for i, s := range a {
			out[i] = s
		}
		return out, true
	case []map[string]any:
		out := make([]any, len(a))
		for i, s := range a {
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

// scalar normalizes a string, boolean or finite number (any Go numeric type or
// json.Number) to string, bool or float64.
func scalar(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return x, nil
	}
	if n, ok := number(v); ok {
		return n, nil
	}
	return nil, fmt.Errorf("want a string, a finite number or a boolean, got %T", v)
}

// Number converts v (any Go integer or float type, or json.Number) to a finite float64.
func Number(v any) (float64, bool) { return number(v) }

func number(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int:
		f = float64(x)
	case int8:
		f = float64(x)
	case int16:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint:
		f = float64(x)
	case uint8:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case json.Number:
		var err error
		f, err = x.Float64()
		if err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// AndAll returns the conjunction of the non-nil filters (nil if there are none).
// The result shares the operands, which is safe because filters are immutable.
func AndAll(fs ...*Filter) *Filter {
	var parts []*Filter
	for _, f := range fs {
		if f != nil {
			parts = append(parts, f)
		}
	}
	switch len(parts) {
	case 0:
		return nil
	case 1:
		return parts[0]
	}
	return &Filter{op: And, children: parts}
}

// FieldEq returns the filter {field: {"$eq": value}}; value must be a string, a finite
// number or a boolean.
func FieldEq(field string, value any) (*Filter, error) {
	if err := validField(field); err != nil {
		return nil, err
	}
	s, err := scalar(value)
	if err != nil {
		return nil, invalid("field %s: %v", quote(field), err)
	}
	return &Filter{op: Eq, field: field, value: s}, nil
}

// Map renders f in the canonical JSON-shaped form of the language (every comparison
// spelled with its operator, every conjunction an explicit $and), as Pinecone accepts it.
// Parse(f.Map()) is equivalent to f. A nil f renders as an empty map.
func (f *Filter) Map() map[string]any {
	if f == nil {
		return map[string]any{}
	}
	switch f.op {
	case And, Or:
		arr := make([]any, len(f.children))
		for i, c := range f.children {
			arr[i] = c.Map()
		}
		return map[string]any{string(f.op): arr}
	case In, Nin:
		return map[string]any{f.field: map[string]any{string(f.op): slices.Clone(f.values)}}
	default:
		return map[string]any{f.field: map[string]any{string(f.op): f.value}}
	}
}

// String renders f as JSON, for logs and errors.
func (f *Filter) String() string {
	b, err := json.Marshal(f.Map())
	if err != nil {
		return "<filter>"
	}
	return string(b)
}

// Equal reports whether f and g are structurally identical.
func (f *Filter) Equal(g *Filter) bool {
	if f == nil || g == nil {
		return f == g
	}
	return reflect.DeepEqual(f.Map(), g.Map())
}

// Match reports whether a record with metadata md satisfies f. Metadata values are
// expected in normalized form (string, float64, bool, []string); other numeric types are
// converted.
func (f *Filter) Match(md map[string]any) bool {
	return f.MatchFunc(mapGetter(md))
}

// Getter looks up a metadata field of one record.
type Getter interface {
	Get(field string) (value any, present bool)
}

type mapGetter map[string]any

func (m mapGetter) Get(k string) (any, bool) {
	v, ok := m[k]
	return v, ok
}

// MatchFunc is Match for a record whose metadata is read through g, for stores that
// do not keep metadata in one map.
func (f *Filter) MatchFunc(g Getter) bool {
	if f == nil {
		return true
	}
	switch f.op {
	case And:
		for _, c := range f.children {
			if !c.MatchFunc(g) {
				return false
			}
		}
		return true
	case Or:
		for _, c := range f.children {
			if c.MatchFunc(g) {
				return true
			}
		}
		return false
	}
	v, present := g.Get(f.field)
	switch f.op {
	case Exists:
		return present == f.value.(bool)
	case Eq:
		return present && anyEqual(v, f.value)
	case Ne:
		return !present || !anyEqual(v, f.value)
	case In:
		if !present {
			return false
		}
		for _, w := range f.values {
			if anyEqual(v, w) {
				return true
			}
		}
		return false
	case Nin:
		if !present {
			return true
		}
		for _, w := range f.values {
			if anyEqual(v, w) {
				return false
			}
		}
		return true
	case Gt, Gte, Lt, Lte:
		n, ok := number(v)
		if !present || !ok {
			return false
		}
		x := f.value.(float64)
		switch f.op {
		case Gt:
			return n > x
		case Gte:
			return n >= x
		case Lt:
			return n < x
		default:
			return n <= x
		}
	}
	return false
}

// anyEqual reports whether metadata value v equals operand w, or, if v is a list, whether
// any element does.
func anyEqual(v, w any) bool {
	switch x := v.(type) {
	case []string:
		s, ok := w.(string)
		return ok && slices.Contains(x, s)
	case []any:
		for _, e := range x {
			if scalarEqual(e, w) {
				return true
			}
		}
		return false
	}
	return scalarEqual(v, w)
}

func scalarEqual(v, w any) bool {
	switch x := w.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == x
	case bool:
		b, ok := v.(bool)
		return ok && b == x
	case float64:
		n, ok := number(v)
		return ok && n == x
	}
	return false
}

// Resolve partially evaluates f. decide is called on each comparison node and reports
// (outcome, true) when the node has the same outcome for every record of the set being
// searched (for example because every record of a namespace carries the same clone_id).
// Resolve returns either known=true and the constant outcome, or known=false and the
// residual filter that still has to be evaluated per record. It lets a store evaluate
// scope conditions once per namespace instead of once per record.
func (f *Filter) Resolve(decide func(n *Filter) (outcome, decided bool)) (residual *Filter, known, outcome bool) {
	if f == nil {
		return nil, true, true
	}
	switch f.op {
	case And, Or:
		isAnd := f.op == And
		var rest []*Filter
		for _, c := range f.children {
			r, k, o := c.Resolve(decide)
			if k {
				if o != isAnd { // false in an $and, true in an $or decides the node
					return nil, true, o
				}
				continue
			}
			rest = append(rest, r)
		}
		switch len(rest) {
		case 0:
			return nil, true, isAnd
		case 1:
			return rest[0], false, false
		}
		return &Filter{op: f.op, children: rest}, false, false
	}
	if o, ok := decide(f); ok {
		return nil, true, o
	}
	return f, false, false
}
