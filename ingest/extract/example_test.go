package extract_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/ingest/extract"
)

func ExampleRegistry_Extract() {
	r, _ := extract.NewRegistry(nil)
	page := `<html><head><title>Shop</title><script>track()</script></head>
<body><h2>Returns</h2><p>Send it back within <b>30 days</b>.</p><ul><li>Free</li><li>Fast</li></ul></body></html>`
	text, _ := r.Extract(context.Background(), "text/html; charset=utf-8", []byte(page))
	fmt.Println(text)

	_, err := r.Extract(context.Background(), "image/png", []byte("\x89PNG"))
	fmt.Println(errors.Is(err, clone.ErrUnsupported))
	// Output:
	// # Shop
	//
	// ## Returns
	//
	// Send it back within 30 days.
	//
	// - Free
	// - Fast
	// true
}
