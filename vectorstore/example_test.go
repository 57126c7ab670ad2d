package vectorstore_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// Every denial is typed, maps to an HTTP status and is audited.
func Example_denials() {
	ctx := context.Background()
	sink := &audit.Memory{}
	suspended, _ := clone.Parse("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", clone.Principal{Subject: "mallory"})
	idx, err := memvector.Open(2, &memvector.Options{Index: &vectorstore.Options{
		Audit: sink,
		CheckWritable: func(_ context.Context, cc clone.CloneContext) error {
			if cc.Same(suspended) {
				return clone.ErrSuspended
			}
			return nil
		},
	}})
	if err != nil {
		panic(err)
	}
	alice, _ := clone.Parse("6f1c5f7e-3d0a-4b8e-9d56-0c7a1b2c3d4e", "0b7e9a52-5a6c-4f0e-8f0d-2f3b4c5d6e7f", clone.Principal{Subject: "alice"})
	v := []vectorstore.Vector{{ID: "a", Values: []float32{1, 0}}}

	// No clone context: 401.
	err = idx.Upsert(ctx, clone.CloneContext{}, v)
	fmt.Println(errors.Is(err, clone.ErrNoCloneContext), clone.HTTPStatus(err))

	// Metadata that claims another clone: 403.
	err = idx.Upsert(ctx, alice, []vectorstore.Vector{{ID: "a", Values: []float32{1, 0}, Metadata: map[string]any{"clone_id": suspended.CloneID().String()}}})
	fmt.Println(errors.Is(err, clone.ErrCloneMismatch), clone.HTTPStatus(err))

	// A suspended clone cannot write: 403.
	err = idx.Upsert(ctx, suspended, v)
	fmt.Println(errors.Is(err, clone.ErrSuspended), clone.HTTPStatus(err))

	// Bad input: 400, before the index is touched.
	_, err = idx.Query(ctx, alice, vectorstore.Query{Vector: []float32{1, 0}, TopK: 0})
	fmt.Println(errors.Is(err, clone.ErrInvalidInput), clone.HTTPStatus(err))

	for _, e := range sink.Events() {
		fmt.Println(e.Outcome, e.Action, e.Reason)
	}
	// Output:
	// true 401
	// true 403
	// true 403
	// true 400
	// denied vectorstore.Upsert no clone context
	// denied vectorstore.Upsert metadata names another tenant or clone
	// denied vectorstore.Upsert clone not writable
}

// The namespace of a clone is derived from its context only.
func ExampleNamespace() {
	cc, _ := clone.Parse("6f1c5f7e-3d0a-4b8e-9d56-0c7a1b2c3d4e", "0b7e9a52-5a6c-4f0e-8f0d-2f3b4c5d6e7f", clone.Principal{})
	ns, _ := vectorstore.Namespace(cc)
	fmt.Println(ns)
	// Output: t-6f1c5f7e-3d0a-4b8e-9d56-0c7a1b2c3d4e-c-0b7e9a52-5a6c-4f0e-8f0d-2f3b4c5d6e7f
}
