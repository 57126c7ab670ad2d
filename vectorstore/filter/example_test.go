package filter_test

import (
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore/filter"
)

// A filter is parsed and validated once, then evaluated against metadata. AndAll adds a
// condition no caller-supplied filter can widen: here, the clone's own scope.
func Example() {
	f, err := filter.ParseJSON([]byte(`{"$or": [{"genre": {"$in": ["comedy", "drama"]}}, {"year": {"$gte": 2024}}]}`))
	if err != nil {
		panic(err)
	}
	scope, err := filter.FieldEq("clone_id", "alice")
	if err != nil {
		panic(err)
	}
	scoped := filter.AndAll(scope, f)

	for _, md := range []map[string]any{
		{"clone_id": "alice", "genre": "drama", "year": 2019.0},
		{"clone_id": "alice", "genre": "news", "year": 2025.0},
		{"clone_id": "alice", "genre": "news", "year": 2020.0},
		{"clone_id": "bob", "genre": "drama", "year": 2019.0},
	} {
		fmt.Println(md["clone_id"], md["genre"], md["year"], "->", scoped.Match(md))
	}

	_, err = filter.ParseJSON([]byte(`{"genre": {"$regex": ".*"}}`))
	fmt.Println("unknown operator:", errors.Is(err, clone.ErrInvalidInput))
	// Output:
	// alice drama 2019 -> true
	// alice news 2025 -> true
	// alice news 2020 -> false
	// bob drama 2019 -> false
	// unknown operator: true
}
