package pineconetest_test

import (
	"context"
	"fmt"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// A host application tests its own go-pinecone code against the emulator.
func Example() {
	ctx := context.Background()
	srv, err := pineconetest.NewServer(&pineconetest.Options{Dimension: 2, Metric: "dotproduct"})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	pc, _ := pinecone.NewClientBase(pinecone.NewClientBaseParams{})
	idx, _ := pc.Index(pinecone.NewIndexConnParams{Host: srv.Host(), Namespace: "docs"})
	defer idx.Close()

	a, b := []float32{1, 2}, []float32{3, 1}
	_, _ = idx.UpsertVectors(ctx, []*pinecone.Vector{{Id: "a", Values: &a}, {Id: "b", Values: &b}})
	res, _ := idx.QueryByVectorValues(ctx, &pinecone.QueryByVectorValuesRequest{Vector: []float32{1, 1}, TopK: 2})
	for _, m := range res.Matches {
		fmt.Println(m.Vector.Id, m.Score)
	}
	// Output:
	// b 4
	// a 3
}
