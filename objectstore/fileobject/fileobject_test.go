package fileobject_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"

	"github.com/cloneiso/cloneiso/objectstore/driver"
	"github.com/cloneiso/cloneiso/objectstore/drivertest"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Config{
		SignedURLs:         true,
		NewDriver:          func(t *testing.T) driver.Bucket { return newServedDriver(t, 0) },
		NewBackdatedDriver: newServedDriver,
	})
}

// newServedDriver returns a driver over a fresh store served by a handler on a test
// server; the driver signs by a clock running by behind the handler's.
func newServedDriver(t *testing.T, by time.Duration) driver.Bucket {
	dir := t.TempDir()
	key := []byte("0123456789abcdef0123456789abcdef")
	srv := httptest.NewUnstartedServer(nil)
	opts := &fileobject.Options{SigningKey: key, BaseURL: "http://" + srv.Listener.Addr().String() + "/files"}
	h, err := fileobject.NewHandler(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	signing := *opts
	signing.Now = func() time.Time { return time.Now().Add(-by) }
	d, err := fileobject.OpenDriver(dir, &signing)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A symlink planted inside the store (by another process, a restore, an operator
// mistake) cannot make the driver read or write outside its directory: every file is
// reached through an os.Root.
func TestSymlinkOutOfStoreIsNotFollowed(t *testing.T) {
	ctx := context.Background()
	cc, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	// A valid object of cc, written by another store, lies outside this store.
	outside := t.TempDir()
	other, err := fileobject.OpenBucket(outside, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Put(ctx, cc, "docs", "secret", strings.NewReader("outside the store"), nil); err != nil {
		t.Fatal(err)
	}
	prefix, _ := objectstore.Prefix(cc)
	dir := t.TempDir()
	b, err := fileobject.OpenBucket(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	link := filepath.Join(dir, "objects", filepath.FromSlash(prefix), "docs")
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "objects", filepath.FromSlash(prefix), "docs"), link); err != nil {
		t.Skipf("cannot create a symlink: %v", err)
	}
	// Plain file access would follow the link: prove the planted path leads to data.
	if _, err := os.Stat(filepath.Join(link, "secret")); err != nil {
		t.Fatalf("the planted link does not lead to the outside object: %v", err)
	}
	if got, err := b.ReadAll(ctx, cc, "docs", "secret"); err == nil {
		t.Fatalf("read %q through a symlink leaving the store", got)
	}
	if _, err := b.Put(ctx, cc, "docs", "planted", strings.NewReader("x"), nil); err == nil {
		t.Error("wrote through a symlink leaving the store")
	}
	if _, err := os.Stat(filepath.Join(outside, "objects", filepath.FromSlash(prefix), "docs", "planted")); err == nil {
		t.Error("an object was written outside the store")
	}
}
