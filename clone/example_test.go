package clone_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
)

func Example() {
	cc, err := clone.Parse(
		"3f2504e0-4f89-41d3-9a0c-0305e82c3301", // tenant
		"9b2c0f3e-2a41-4c1e-8f5e-5f1b2a3c4d5e", // clone
		clone.Principal{Subject: "user-42", Roles: []string{"owner"}},
	)
	if err != nil {
		panic(err)
	}
	ctx := clone.WithContext(context.Background(), cc)

	// In a handler: read the clone back and check an ID that came with the request.
	got, _ := clone.FromContext(ctx)
	err = got.CheckStrings("3f2504e0-4f89-41d3-9a0c-0305e82c3301", "0b7f0a3c-1111-4222-8333-944455556666")
	fmt.Println(errors.Is(err, clone.ErrCloneMismatch), clone.HTTPStatus(err))

	_, err = clone.ParseID("{3f2504e0-4f89-41d3-9a0c-0305e82c3301}")
	fmt.Println(errors.Is(err, clone.ErrInvalidID), clone.HTTPStatus(err))
	// Output:
	// true 403
	// true 400
}

// KindOf classifies any error of the SDK (or a host's own, made with Errorf); the kinds
// are the Err* sentinels, so a switch reads like errors.Is.
func ExampleKindOf() {
	err := fmt.Errorf("loading the note: %w", clone.Errorf(clone.ErrNotFound, "no note %d", 7))
	switch k := clone.KindOf(err); k {
	case clone.ErrNotFound:
		fmt.Println(k.String(), k.HTTPStatus(), k.Retryable(), errors.Is(err, clone.ErrNotFound))
	case clone.ErrUnavailable:
		fmt.Println("retry later")
	}
	fmt.Println(clone.KindOf(errors.New("not from cloneiso")) == clone.KindUnknown)
	// Output:
	// not found 404 false true
	// true
}
