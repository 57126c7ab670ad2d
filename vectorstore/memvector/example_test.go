package memvector_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

func Example() {
	ctx := context.Background()
	idx, err := memvector.Open(3, nil)
	if err != nil {
		panic(err)
	}
	defer idx.Close()

	// In an application the CloneContext comes from the authenticated request.
	alice, _ := clone.Parse("6f1c5f7e-3d0a-4b8e-9d56-0c7a1b2c3d4e", "0b7e9a52-5a6c-4f0e-8f0d-2f3b4c5d6e7f", clone.Principal{Subject: "alice"})
	bob, _ := clone.Parse("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", clone.Principal{Subject: "bob"})

	_ = idx.Upsert(ctx, alice, []vectorstore.Vector{
		{ID: "note#1", Values: []float32{1, 0, 0}, Metadata: map[string]any{"topic": "pricing"}},
		{ID: "note#2", Values: []float32{0.8, 0.6, 0}, Metadata: map[string]any{"topic": "hiring"}},
	})
	_ = idx.Upsert(ctx, bob, []vectorstore.Vector{
		{ID: "note#1", Values: []float32{1, 0, 0}, Metadata: map[string]any{"topic": "bob's secret"}},
	})

	matches, _ := idx.Query(ctx, alice, vectorstore.Query{Vector: []float32{1, 0, 0}, TopK: 5, IncludeMetadata: true})
	for _, m := range matches {
		fmt.Printf("%s %.2f %s\n", m.ID, m.Score, m.Metadata["topic"])
	}

	// The clone scope is AND-ed into every filter; a filter naming another clone is a
	// probe, refused (and audited).
	leaked, err := idx.Query(ctx, alice, vectorstore.Query{
		Vector: []float32{1, 0, 0}, TopK: 5,
		Filter: map[string]any{"clone_id": bob.CloneID().String()},
	})
	fmt.Println(len(leaked), errors.Is(err, clone.ErrCloneMismatch))

	// Bad input is refused before it reaches the index.
	_, err = idx.Query(ctx, alice, vectorstore.Query{Vector: []float32{1, 0}, TopK: 5})
	fmt.Println(errors.Is(err, clone.ErrInvalidInput))
	// Output:
	// note#1 1.00 pricing
	// note#2 0.80 hiring
	// 0 true
	// true
}

func ExampleOpen_persistence() {
	ctx := context.Background()
	path := tempPath()
	cc, _ := clone.Parse("6f1c5f7e-3d0a-4b8e-9d56-0c7a1b2c3d4e", "0b7e9a52-5a6c-4f0e-8f0d-2f3b4c5d6e7f", clone.Principal{})

	idx, _ := memvector.Open(2, &memvector.Options{Path: path})
	// Upsert returns once the write is in the fsynced write-ahead log: it survives a
	// crash or a power loss from here on, with or without Close.
	_ = idx.Upsert(ctx, cc, []vectorstore.Vector{{ID: "a", Values: []float32{1, 1}}})
	_ = idx.Close()

	idx, _ = memvector.Open(2, &memvector.Options{Path: path}) // snapshot + log replay
	defer idx.Close()
	st, _ := idx.Stats(ctx, cc)
	fmt.Println(st.VectorCount)
	// Output: 1
}
