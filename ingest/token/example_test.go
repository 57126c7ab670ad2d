package token_test

import (
	"fmt"

	"github.com/cloneiso/cloneiso/ingest/token"
)

func ExampleCount() {
	fmt.Println(token.Count("Hello, world!"), token.Count("internationalization"), token.Count("日本語"))
	// Output: 4 4 3
}
