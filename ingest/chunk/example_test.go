package chunk_test

import (
	"fmt"

	"github.com/cloneiso/cloneiso/ingest/chunk"
)

func ExampleChunker_Split() {
	c, _ := chunk.New(&chunk.Options{TargetTokens: 12, OverlapTokens: 3})
	text := "# Refunds\n\nWe refund any order within 30 days. Just write to us.\n\n# Shipping\n\nOrders ship in two days."
	for _, ch := range c.Split(text) {
		fmt.Printf("[%d,%d) %d tokens: %q\n", ch.Start, ch.End, ch.Tokens, ch.Text)
	}
	// Output:
	// [0,9) 3 tokens: "# Refunds"
	// [11,46) 10 tokens: "We refund any order within 30 days."
	// [47,64) 6 tokens: "Just write to us."
	// [66,102) 11 tokens: "# Shipping\n\nOrders ship in two days."
}
