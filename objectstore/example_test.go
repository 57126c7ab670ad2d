package objectstore_test

import (
	"errors"
	"fmt"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
)

// Keys are built from the clone context only: the clone's prefix, a kind and a name.
// Names that any layer (a filesystem, NFKC folding, Windows) could read as something
// else are refused before any I/O, with clone.ErrInvalidInput.
func ExampleKey() {
	cc, err := clone.Parse("6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f", "0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718", clone.Principal{Subject: "alice"})
	if err != nil {
		panic(err)
	}
	key, err := objectstore.Key(cc, "documents", "reports/2026/q3.pdf")
	fmt.Println(key, err)

	for _, name := range []string{"../other-clone/secret.pdf", "．．/x", "CON.txt", "notes. ", "a\u200bb"} {
		_, err := objectstore.Key(cc, "documents", name)
		fmt.Printf("%q refused: %v\n", name, errors.Is(err, clone.ErrInvalidInput))
	}
	// Output:
	// tenants/6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f/clones/0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718/documents/reports/2026/q3.pdf <nil>
	// "../other-clone/secret.pdf" refused: true
	// "．．/x" refused: true
	// "CON.txt" refused: true
	// "notes. " refused: true
	// "a\u200bb" refused: true
}
