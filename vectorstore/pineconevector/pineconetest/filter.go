package pineconetest

// The emulator's own reading of Pinecone's metadata filter language, written from
// Pinecone's documentation and independently of the SDK's vectorstore/filter, so that a
// bug in either shows up as a difference (see the differential test) instead of being
// mirrored. It is deliberately naive: a tree of conditions evaluated recursively.

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// maxFilterDepth bounds the nesting of $and / $or, so a hostile filter cannot exhaust
// the stack of the emulator.
const maxFilterDepth = 32

// condition is one node of a parsed filter.
type condition struct {
	// logic is "$and" or "$or" for a logical node, "" for a comparison.
	logic string
	kids  []*condition

	field    string
	operator string // $eq $ne $gt $gte $lt $lte $in $nin $exists
	operand  any    // string, float64 or bool ($exists: bool)
	operands []any  // $in / $nin
}

// compileFilter parses a filter from its JSON-shaped form (as decoded from a
// google.protobuf.Struct). nil or {} is the filter that matches every record and
// compiles to nil.
func compileFilter(m map[string]any) (*condition, error) {
	if len(m) == 0 {
		return nil, nil
	}
	return compileObject(m, 0)
}

func compileObject(m map[string]any, depth int) (*condition, error) {
	if depth > maxFilterDepth {
		return nil, fmt.Errorf("filter nested deeper than %d levels", maxFilterDepth)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("empty object inside a filter")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic error messages
	all := &condition{logic: "$and"}
	for _, k := range keys {
		v := m[k]
		switch {
		case k == "$and" || k == "$or":
			list, ok := v.([]any)
			if !ok || len(list) == 0 {
				return nil, fmt.Errorf("%s takes a non-empty list of filters", k)
			}
			node := &condition{logic: k}
			for _, e := range list {
				sub, ok := e.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("%s takes a list of filter objects", k)
				}
				c, err := compileObject(sub, depth+1)
				if err != nil {
					return nil, err
				}
				node.kids = append(node.kids, c)
			}
			all.kids = append(all.kids, node)
		case strings.HasPrefix(k, "$"):
			return nil, fmt.Errorf("unknown operator %q", k)
		case k == "":
			return nil, fmt.Errorf("empty field name")
		default:
			cs, err := compileField(k, v)
			if err != nil {
				return nil, err
			}
			all.kids = append(all.kids, cs...)
		}
	}
	if len(all.kids) == 1 {
		return all.kids[0], nil
	}
	return all, nil
}

// compileField parses the value of a field key: a bare value means $eq; an object holds
// one or more operators, all of which must hold.
func compileField(field string, v any) ([]*condition, error) {
	ops, isObject := v.(map[string]any)
	if !isObject {
		x, err := scalarOperand(v)
		if err != nil {
			return nil, fmt.Errorf("field %q: %v", field, err)
		}
		return []*condition{{field: field, operator: "$eq", operand: x}}, nil
	}
	if len(ops) == 0 {
		return nil, fmt.Errorf("field %q: no operator", field)
	}
	var out []*condition
	for op, arg := range ops {
		c := &condition{field: field, operator: op}
		switch op {
		case "$eq", "$ne":
			x, err := scalarOperand(arg)
			if err != nil {
				return nil, fmt.Errorf("field %q: %s: %v", field, op, err)
			}
			c.operand = x
		case "$gt", "$gte", "$lt", "$lte":
			x, ok := arg.(float64)
			if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("field %q: %s takes a number", field, op)
			}
			c.operand = x
		case "$in", "$nin":
			list, ok := arg.([]any)
			if !ok || len(list) == 0 {
				return nil, fmt.Errorf("field %q: %s takes a non-empty list", field, op)
			}
			for _, e := range list {
				x, err := scalarOperand(e)
				if err != nil {
					return nil, fmt.Errorf("field %q: %s: %v", field, op, err)
				}
				c.operands = append(c.operands, x)
			}
		case "$exists":
			b, ok := arg.(bool)
			if !ok {
				return nil, fmt.Errorf("field %q: $exists takes a boolean", field)
			}
			c.operand = b
		default:
			return nil, fmt.Errorf("field %q: unknown operator %q", field, op)
		}
		out = append(out, c)
	}
	return out, nil
}

func scalarOperand(v any) (any, error) {
	switch x := v.(type) {
	case string, bool:
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("numbers must be finite")
		}
		return x, nil
	}
	return nil, fmt.Errorf("want a string, number or boolean, got %T", v)
}

// matches reports whether metadata md (values string, float64, bool or []string)
// satisfies c. A nil condition matches everything.
//
// Pinecone's documented semantics: on a list-valued field, $eq and $in hold when some
// element matches, $ne and $nin when none does; $ne and $nin also hold when the field is
// absent; $gt, $gte, $lt and $lte hold only for a number field.
func (c *condition) matches(md map[string]any) bool {
	if c == nil {
		return true
	}
	switch c.logic {
	case "$and":
		for _, k := range c.kids {
			if !k.matches(md) {
				return false
			}
		}
		return true
	case "$or":
		for _, k := range c.kids {
			if k.matches(md) {
				return true
			}
		}
		return false
	}
	v, present := md[c.field]
	switch c.operator {
	case "$exists":
		return present == c.operand.(bool)
	case "$eq":
		return present && holds(v, c.operand)
	case "$ne":
		return !present || !holds(v, c.operand)
	case "$in":
		for _, o := range c.operands {
			if present && holds(v, o) {
				return true
			}
		}
		return false
	case "$nin":
		for _, o := range c.operands {
			if present && holds(v, o) {
				return false
			}
		}
		return true
	}
	n, isNumber := v.(float64)
	if !present || !isNumber {
		return false
	}
	x := c.operand.(float64)
	switch c.operator {
	case "$gt":
		return n > x
	case "$gte":
		return n >= x
	case "$lt":
		return n < x
	case "$lte":
		return n <= x
	}
	return false
}

// holds reports whether value v equals operand o; a list value holds if any element
// equals o.
func holds(v, o any) bool {
	if list, ok := v.([]string); ok {
		for _, e := range list {
			if e == o {
				return true
			}
		}
		return false
	}
	return v == o // string, float64 and bool compare by value inside an interface
}
