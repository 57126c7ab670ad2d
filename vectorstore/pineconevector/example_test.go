package pineconevector_test

import (
	"context"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// Open talks to a Pinecone index host; here the in-process emulator stands in for it.
func ExampleOpen() {
	ctx := context.Background()
	srv, err := pineconetest.NewServer(&pineconetest.Options{Dimension: 3})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	idx, err := pineconevector.Open(srv.Host(), 3, &pineconevector.Options{APIKey: "unused-by-the-emulator"})
	if err != nil {
		panic(err)
	}
	defer idx.Close()

	cc, _ := clone.Parse("6f1c5f7e-3d0a-4b8e-9d56-0c7a1b2c3d4e", "0b7e9a52-5a6c-4f0e-8f0d-2f3b4c5d6e7f", clone.Principal{Subject: "alice"})
	_ = idx.Upsert(ctx, cc, []vectorstore.Vector{
		{ID: "faq#1", Values: []float32{1, 0, 0}, Metadata: map[string]any{"lang": "en"}},
		{ID: "faq#2", Values: []float32{0, 1, 0}, Metadata: map[string]any{"lang": "fr"}},
	})
	ms, _ := idx.Query(ctx, cc, vectorstore.Query{Vector: []float32{1, 1, 0}, TopK: 10, Filter: map[string]any{"lang": "fr"}})
	fmt.Println(len(ms), ms[0].ID)

	ns, _ := vectorstore.Namespace(cc)
	fmt.Println(ns)
	fmt.Println(srv.Namespaces()[ns])
	// Output:
	// 1 faq#2
	// t-6f1c5f7e-3d0a-4b8e-9d56-0c7a1b2c3d4e-c-0b7e9a52-5a6c-4f0e-8f0d-2f3b4c5d6e7f
	// 2
}
