package fileobject_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/drivertest"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
)

func mustClone(tenant, id string) clone.CloneContext {
	cc, err := clone.Parse(tenant, id, clone.Principal{Subject: "example"})
	if err != nil {
		panic(err)
	}
	return cc
}

// Two clones of one tenant store files under the same names; each sees only its own.
func Example() {
	dir, _ := os.MkdirTemp("", "fileobject-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	b, err := fileobject.OpenBucket(dir, nil)
	if err != nil {
		panic(err)
	}
	alice := mustClone("6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f", "0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718")
	bob := mustClone("6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f", "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a")

	_, err = b.Put(ctx, alice, "documents", "notes/today.txt", strings.NewReader("alice's notes"), &objectstore.WriteOptions{ContentType: "text/plain"})
	if err != nil {
		panic(err)
	}
	data, _ := b.ReadAll(ctx, alice, "documents", "notes/today.txt")
	fmt.Printf("alice reads: %s\n", data)

	_, err = b.ReadAll(ctx, bob, "documents", "notes/today.txt")
	fmt.Println("bob reads:", errors.Is(err, clone.ErrNotFound), clone.HTTPStatus(err))

	_, err = b.ReadAll(ctx, bob, "documents", "../../0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718/documents/notes/today.txt")
	fmt.Println("bob traverses:", errors.Is(err, clone.ErrInvalidInput), clone.HTTPStatus(err))

	page, _ := b.List(ctx, alice, nil)
	for _, o := range page.Objects {
		fmt.Println("alice lists:", o.Kind, o.Name, o.Size)
	}
	key, _ := objectstore.Key(alice, "documents", "notes/today.txt")
	fmt.Println("stored under:", key)
	// Output:
	// alice reads: alice's notes
	// bob reads: true 404
	// bob traverses: true 400
	// alice lists: documents notes/today.txt 13
	// stored under: tenants/6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f/clones/0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718/documents/notes/today.txt
}

// Signed links are served by the handler the host mounts at BaseURL; they are bound to
// one key, one method and an expiry.
func ExampleNewHandler() {
	dir, _ := os.MkdirTemp("", "fileobject-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	srv := httptest.NewUnstartedServer(nil)
	opts := &fileobject.Options{
		SigningKey: []byte("an example key of at least 32 bytes, keep it secret"),
		BaseURL:    "http://" + srv.Listener.Addr().String() + "/files",
	}
	h, err := fileobject.NewHandler(dir, opts)
	if err != nil {
		panic(err)
	}
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	b, _ := fileobject.OpenBucket(dir, opts)
	alice := mustClone("6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f", "0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718")
	b.Put(ctx, alice, "exports", "report.csv", strings.NewReader("a,b\n1,2\n"), &objectstore.WriteOptions{ContentType: "text/csv"})

	u, _ := b.SignedURL(ctx, alice, "exports", "report.csv", nil) // GET, 15 minutes
	resp, _ := http.Get(u)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Content-Type"), strings.Count(string(body), "\n"), "lines")

	resp, _ = http.Get(strings.Replace(u, "report.csv", "other.csv", 1))
	resp.Body.Close()
	fmt.Println("tampered:", resp.StatusCode)
	// Output:
	// 200 text/csv 2 lines
	// tampered: 403
}

// An untrusted client uploads through a ticket; ingestion verifies the upload before
// accepting it.
func Example_uploadTicket() {
	dir, _ := os.MkdirTemp("", "fileobject-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	srv := httptest.NewUnstartedServer(nil)
	opts := &fileobject.Options{
		SigningKey: []byte("an example key of at least 32 bytes, keep it secret"),
		BaseURL:    "http://" + srv.Listener.Addr().String() + "/files",
	}
	h, _ := fileobject.NewHandler(dir, opts)
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()
	b, _ := fileobject.OpenBucket(dir, opts)
	alice := mustClone("6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f", "0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718")

	// Server side: issue a ticket for one PDF of at most 1 KiB, and keep it.
	ticket, err := b.UploadTicket(ctx, alice, "uploads", &objectstore.UploadTicketOptions{
		ContentType: "application/pdf", MinSize: 1, MaxSize: 1024,
	})
	if err != nil {
		panic(err)
	}

	// Client side: a multipart form POST with the ticket's fields, then the file.
	code, _, _ := drivertest.PostUpload(ctx, nil, ticket, strings.NewReader(strings.Repeat("x", 2000)))
	fmt.Println("oversized upload:", code)
	code, _, _ = drivertest.PostUpload(ctx, nil, ticket, strings.NewReader("%PDF-1.7 tiny"))
	fmt.Println("upload:", code)

	// Server side again: verify before ingesting.
	a, err := b.VerifyUpload(ctx, alice, ticket)
	fmt.Println("verified:", err == nil, a.ContentType, a.Size)
	// Output:
	// oversized upload: 413
	// upload: 204
	// verified: true application/pdf 13
}
