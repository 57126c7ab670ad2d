// Package drivertest is the conformance suite every objectstore driver must pass.
//
// [Run] exercises a driver three ways: raw, against the contract in package
// objectstore/driver (ordering, pagination, ranges, atomic writes, DeleteAll); out of
// scope, calling the driver itself (not the portable type) with keys, prefixes and
// scopes that escape the scope of the call, every one of which it must refuse with
// driver.ErrOutOfScope before touching anything; and scoped, through the portable
// objectstore.Bucket with clones of two tenants, checking that no clone reaches
// another's objects by any operation, signed URL or upload ticket. Backends call it from their tests:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, drivertest.Config{NewDriver: func(t *testing.T) driver.Bucket { ... }})
//	}
package drivertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

// Config describes the driver under test.
type Config struct {
	// NewDriver returns a driver over a fresh, empty store. It is called once per
	// subtest and should register its own cleanup.
	NewDriver func(t *testing.T) driver.Bucket
	// SignedURLs says the driver supports SignedURL and UploadTicket and that the URLs
	// can be fetched with HTTPClient (nil means http.DefaultClient).
	SignedURLs bool
	HTTPClient *http.Client
	// NewBackdatedDriver returns a driver like NewDriver, over the same store, whose
	// signing clock (the driver's Now option) runs by behind real time while the
	// server's does not: the expiry test signs with it a URL and an upload ticket that
	// have expired when issued and checks that the server refuses them, without
	// waiting for time to pass. Nil skips that test.
	NewBackdatedDriver func(t *testing.T, by time.Duration) driver.Bucket
	// SkipExpiry skips the expiry test even when NewBackdatedDriver is set.
	SkipExpiry bool
}

// Run runs the conformance suite.
func Run(t *testing.T, c Config) {
	if c.HTTPClient == nil {
		c.HTTPClient = http.DefaultClient
	}
	t.Run("Raw", func(t *testing.T) { runRaw(t, c) })
	t.Run("OutOfScope", func(t *testing.T) { runOutOfScope(t, c) })
	t.Run("Scoped", func(t *testing.T) { runScoped(t, c) })
}

func classify(d driver.Bucket, err error) error {
	if err == nil {
		return nil
	}
	return d.ErrorKind(err)
}

// sc is the scope of a raw test key: its first segment ("p/a/b" is in "p/").
func sc(key string) string {
	first, _, _ := strings.Cut(key, "/")
	return first + "/"
}

func put(t *testing.T, d driver.Bucket, key, content string) {
	t.Helper()
	if _, err := d.Put(context.Background(), sc(key), key, strings.NewReader(content), &driver.WriteOptions{Size: int64(len(content))}); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func read(t *testing.T, d driver.Bucket, key string, off, n int64) string {
	t.Helper()
	r, err := d.Get(context.Background(), sc(key), key, off, n)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, off, n, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return string(b)
}

func listAll(t *testing.T, d driver.Bucket, prefix string, pageSize int) []string {
	t.Helper()
	var keys []string
	token := ""
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("List never ends")
		}
		p, err := d.List(context.Background(), sc(prefix), prefix, pageSize, token)
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		if len(p.Objects) > pageSize {
			t.Fatalf("List returned %d objects, page size %d", len(p.Objects), pageSize)
		}
		for _, o := range p.Objects {
			keys = append(keys, o.Key)
		}
		if p.NextPageToken == "" {
			return keys
		}
		token = p.NextPageToken
	}
}

func runRaw(t *testing.T, c Config) {
	t.Run("PutGetHead", func(t *testing.T) { rawPutGetHead(t, c) })
	t.Run("FailedPutStoresNothing", func(t *testing.T) { rawFailedPutStoresNothing(t, c) })
	t.Run("ConcurrentOverwritesAreAtomic", func(t *testing.T) { rawConcurrentOverwritesAreAtomic(t, c) })
	t.Run("ListOrderPaginationPrefix", func(t *testing.T) { rawListOrderPaginationPrefix(t, c) })
	t.Run("DeleteCopy", func(t *testing.T) { rawDeleteCopy(t, c) })
	t.Run("DeleteAll", func(t *testing.T) { rawDeleteAll(t, c) })
}

func rawPutGetHead(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	md := map[string]string{"color": "blue", objectstore.MetaCloneID: "x"}
	a, err := d.Put(ctx, "p/", "p/a/b.txt", strings.NewReader("hello, world"), &driver.WriteOptions{ContentType: "text/plain", Metadata: md, Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != 12 || a.Key != "p/a/b.txt" {
		t.Errorf("Put attributes = %+v", a)
	}
	h, err := d.Head(ctx, "p/", "p/a/b.txt")
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != 12 || h.ContentType != "text/plain" || h.Metadata["color"] != "blue" || h.Metadata[objectstore.MetaCloneID] != "x" {
		t.Errorf("Head = %+v", h)
	}
	if h.ModTime.IsZero() || time.Since(h.ModTime) > time.Hour {
		t.Errorf("ModTime = %v", h.ModTime)
	}
	if got := read(t, d, "p/a/b.txt", 0, -1); got != "hello, world" {
		t.Errorf("Get = %q", got)
	}
	if got := read(t, d, "p/a/b.txt", 7, -1); got != "world" {
		t.Errorf("Get from 7 = %q", got)
	}
	if got := read(t, d, "p/a/b.txt", 2, 3); got != "llo" {
		t.Errorf("Get 2+3 = %q", got)
	}
	if got := read(t, d, "p/a/b.txt", 10, 50); got != "ld" {
		t.Errorf("Get past end = %q", got)
	}
	if _, err := d.Get(ctx, "p/", "p/a/b.txt", 12, -1); classify(d, err) != clone.ErrInvalidInput {
		t.Errorf("Get at end: err = %v (%v), want InvalidInput", err, classify(d, err))
	}
	for _, k := range []string{"p/a/missing", "p/a"} {
		if _, err := d.Head(ctx, sc(k), k); classify(d, err) != clone.ErrNotFound {
			t.Errorf("Head(%q) err = %v, want NotFound", k, err)
		}
		if _, err := d.Get(ctx, sc(k), k, 0, -1); classify(d, err) != clone.ErrNotFound {
			t.Errorf("Get(%q) err = %v, want NotFound", k, err)
		}
	}
	// Overwrite replaces content and attributes.
	if _, err := d.Put(ctx, "p/", "p/a/b.txt", strings.NewReader("x"), &driver.WriteOptions{Size: 1}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "p/a/b.txt", 0, -1); got != "x" {
		t.Errorf("after overwrite Get = %q", got)
	}
	// Empty objects exist.
	put(t, d, "p/empty", "")
	if got := read(t, d, "p/empty", 0, -1); got != "" {
		t.Errorf("empty = %q", got)
	}
}

func rawFailedPutStoresNothing(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader(strings.Repeat("a", 10000)), iotest.ErrReader(boom))
	if _, err := d.Put(ctx, "p/", "p/partial", r, &driver.WriteOptions{Size: -1}); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if _, err := d.Head(ctx, "p/", "p/partial"); classify(d, err) != clone.ErrNotFound {
		t.Errorf("after failed Put, Head err = %v, want NotFound", err)
	}
	put(t, d, "p/kept", "old")
	r = io.MultiReader(strings.NewReader("new"), iotest.ErrReader(boom))
	if _, err := d.Put(ctx, "p/", "p/kept", r, &driver.WriteOptions{Size: -1}); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if got := read(t, d, "p/kept", 0, -1); got != "old" {
		t.Errorf("failed overwrite changed the object to %q", got)
	}
}

func rawConcurrentOverwritesAreAtomic(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	put(t, d, "p/race", strings.Repeat("0", 1<<16))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := strings.Repeat(fmt.Sprint(i), 1<<16)
			if _, err := d.Put(ctx, "p/", "p/race", strings.NewReader(body), &driver.WriteOptions{Size: int64(len(body))}); err != nil {
				t.Error(err)
			}
		}()
	}
	for range 8 {
		got := read(t, d, "p/race", 0, -1)
		if len(got) != 1<<16 || strings.Count(got, got[:1]) != len(got) {
			t.Fatalf("read a torn object (%d bytes)", len(got))
		}
	}
	wg.Wait()
}

func rawListOrderPaginationPrefix(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	keys := []string{"p/b/1", "p/a-c", "p/a/2", "p/a/1", "p/ab", "q/other", "p/z"}
	for _, k := range keys {
		put(t, d, k, k)
	}
	want := []string{"p/a-c", "p/a/1", "p/a/2", "p/ab", "p/b/1", "p/z"}
	for _, size := range []int{1, 2, 4, 1000} {
		if got := listAll(t, d, "p/", size); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("List(p/, page %d) = %v, want %v", size, got, want)
		}
	}
	if got := listAll(t, d, "p/a/", 10); strings.Join(got, ",") != "p/a/1,p/a/2" {
		t.Errorf("List(p/a/) = %v", got)
	}
	if got := listAll(t, d, "p/a", 10); strings.Join(got, ",") != "p/a-c,p/a/1,p/a/2,p/ab" {
		t.Errorf("List(p/a) = %v", got)
	}
	if got := listAll(t, d, "nothing/", 10); len(got) != 0 {
		t.Errorf("List(nothing/) = %v", got)
	}
	p, err := d.List(ctx, "p/", "p/", 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Objects[0].Size != int64(len("p/a-c")) {
		t.Errorf("listed size = %d", p.Objects[0].Size)
	}
}

func rawDeleteCopy(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	put(t, d, "p/src", "content")
	if err := d.Copy(ctx, "p/", "p/dst", "p/src"); err != nil {
		t.Fatal(err)
	}
	if got := read(t, d, "p/dst", 0, -1); got != "content" {
		t.Errorf("copy = %q", got)
	}
	odd := "p/a +b%20c&d=e?f#g ü"
	put(t, d, odd, "odd")
	if err := d.Copy(ctx, "p/", odd+"-copy", odd); err != nil {
		t.Fatalf("Copy of a key with special characters: %v", err)
	}
	if got := read(t, d, odd+"-copy", 0, -1); got != "odd" {
		t.Errorf("copy of odd key = %q", got)
	}
	if err := d.Copy(ctx, "p/", "p/dst2", "p/missing"); classify(d, err) != clone.ErrNotFound {
		t.Errorf("Copy of missing: %v, want NotFound", err)
	}
	if err := d.Delete(ctx, "p/", "p/src"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Head(ctx, "p/", "p/src"); classify(d, err) != clone.ErrNotFound {
		t.Errorf("Head after Delete: %v", err)
	}
	if err := d.Delete(ctx, "p/", "p/src"); classify(d, err) != clone.ErrNotFound {
		t.Errorf("second Delete: %v, want NotFound", err)
	}
	if got := read(t, d, "p/dst", 0, -1); got != "content" {
		t.Errorf("copy after deleting source = %q", got)
	}
}

func rawDeleteAll(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	for _, k := range []string{"p/x/1", "p/x/2/3", "p/y", "p2/keep", "q/keep"} {
		put(t, d, k, "v")
	}
	put(t, d, "p/x/1", "v2") // a second version on versioned stores
	if err := d.Delete(ctx, "p/", "p/y"); err != nil {
		t.Fatal(err) // a delete marker on versioned stores
	}
	res, err := d.DeleteAll(ctx, "p/", "p/")
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects < 2 {
		t.Errorf("DeleteAll reported %+v", res)
	}
	if got := listAll(t, d, "p/", 100); len(got) != 0 {
		t.Errorf("left after DeleteAll: %v", got)
	}
	if got := append(listAll(t, d, "p2/", 100), listAll(t, d, "q/", 100)...); strings.Join(got, ",") != "p2/keep,q/keep" {
		t.Errorf("DeleteAll(p/) touched other prefixes: %v", got)
	}
	if _, err := d.DeleteAll(ctx, "p/", "p/"); err != nil {
		t.Errorf("DeleteAll of nothing: %v", err)
	}
}

// outOfScopeKeys are keys that must be refused in scope "tenants/A/clones/A1/" by a
// driver asked directly (the portable type never sends them): another clone's key,
// traversal out of the scope, the scope itself, keys that only share a string prefix,
// and malformed keys.
func outOfScopeKeys(scope, other string) []string {
	return []string{
		other + "docs/secret",
		scope + "../B1/docs/secret",
		scope + "docs/../../B1/docs/secret",
		scope + "./docs/secret",
		scope + "docs//secret",
		scope + "docs/secret/",
		scope + `docs\..\..\B1`,
		scope + "docs/a\x00b",
		strings.TrimSuffix(scope, "/") + "x/docs/secret",
		scope,
		strings.TrimSuffix(scope, "/"),
		"",
		"/" + scope + "docs/secret",
		"docs/secret",
	}
}

// badScopes are scopes no driver may accept, whatever the key.
var badScopes = []string{"", "/", "tenants", "tenants/../", "tenants//", "./", "tenants/\x00/", "tenants/a\\b/"}

func runOutOfScope(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	scope := "tenants/A/clones/A1/"
	other := "tenants/A/clones/B1/"
	victim := other + "docs/secret"
	if _, err := d.Put(ctx, other, victim, strings.NewReader("B's secret"), &driver.WriteOptions{Size: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, scope, scope+"docs/own", strings.NewReader("A's own"), &driver.WriteOptions{Size: 7}); err != nil {
		t.Fatal(err)
	}
	// refused asserts that err is the typed out-of-scope refusal.
	refused := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errors.Is(err, driver.ErrOutOfScope) || !errors.Is(err, clone.ErrIsolationViolation) || classify(d, err) != clone.ErrIsolationViolation {
			t.Errorf("%s: err = %v (classified %v), want driver.ErrOutOfScope classified as clone.ErrIsolationViolation", what, err, classify(d, err))
		}
	}
	for _, cl := range scopedCalls(ctx, d) {
		t.Run(cl.name, func(t *testing.T) {
			// The check is not a blanket refusal: in scope, the call reaches the store
			// (it may still fail, e.g. NotFound or unsupported, but not as out of scope).
			if err := cl.do(scope, scope+"docs/own"); errors.Is(err, driver.ErrOutOfScope) {
				t.Fatalf("in-scope key refused as out of scope: %v", err)
			}
			for _, k := range outOfScopeKeys(scope, other) {
				refused(t, fmt.Sprintf("%s(scope %q, key %q)", cl.name, scope, k), cl.do(scope, k))
			}
			for _, s := range badScopes {
				refused(t, fmt.Sprintf("%s(scope %q)", cl.name, s), cl.do(s, s+"docs/x"))
			}
		})
	}
	prefixes := []string{other, other + "docs/", "tenants/A/clones/", "tenants/", "", scope + "../B1/", scope + "docs/../../B1/d",
		strings.TrimSuffix(scope, "/") + "x/", strings.TrimSuffix(scope, "/")}
	t.Run("List", func(t *testing.T) {
		if _, err := d.List(ctx, scope, scope+"do", 10, ""); err != nil {
			t.Fatalf("in-scope List: %v", err)
		}
		for _, p := range prefixes {
			page, err := d.List(ctx, scope, p, 10, "")
			refused(t, fmt.Sprintf("List(scope %q, prefix %q)", scope, p), err)
			if page != nil && len(page.Objects) > 0 {
				t.Errorf("List(scope %q, prefix %q) returned %d objects", scope, p, len(page.Objects))
			}
		}
		for _, s := range badScopes {
			_, err := d.List(ctx, s, s, 10, "")
			refused(t, fmt.Sprintf("List(scope %q)", s), err)
		}
	})
	t.Run("DeleteAll", func(t *testing.T) {
		for _, p := range prefixes {
			_, err := d.DeleteAll(ctx, scope, p)
			refused(t, fmt.Sprintf("DeleteAll(scope %q, prefix %q)", scope, p), err)
		}
		for _, s := range badScopes {
			_, err := d.DeleteAll(ctx, s, s)
			refused(t, fmt.Sprintf("DeleteAll(scope %q)", s), err)
		}
	})
	// Nothing outside the scope changed: B's object is intact, nothing was planted.
	untouched(t, d, scope, other, victim)
}

// scopedCall is a driver call that takes a scope and a key.
type scopedCall struct {
	name string
	do   func(scope, key string) error
}

// scopedCalls are every driver call that takes a scope and a key, on d.
func scopedCalls(ctx context.Context, d driver.Bucket) []scopedCall {
	return []scopedCall{
		{"Put", func(s, k string) error {
			_, err := d.Put(ctx, s, k, strings.NewReader("planted"), &driver.WriteOptions{Size: 7})
			return err
		}},
		{"Get", func(s, k string) error {
			r, err := d.Get(ctx, s, k, 0, -1)
			if err == nil {
				r.Close()
			}
			return err
		}},
		{"Head", func(s, k string) error { _, err := d.Head(ctx, s, k); return err }},
		{"Delete", func(s, k string) error { return d.Delete(ctx, s, k) }},
		{"Copy from", func(s, k string) error { return d.Copy(ctx, s, s+"docs/stolen", k) }},
		{"Copy to", func(s, k string) error { return d.Copy(ctx, s, k, s+"docs/own") }},
		{"SignedURL GET", func(s, k string) error {
			_, err := d.SignedURL(ctx, s, k, &driver.SignedURLOptions{Method: http.MethodGet, Expiry: time.Minute})
			return err
		}},
		{"SignedURL PUT", func(s, k string) error {
			_, err := d.SignedURL(ctx, s, k, &driver.SignedURLOptions{Method: http.MethodPut, Expiry: time.Minute})
			return err
		}},
		{"UploadTicket", func(s, k string) error {
			_, err := d.UploadTicket(ctx, s, k, &driver.UploadTicketOptions{Expiry: time.Minute, ContentType: "text/plain", MaxSize: 10})
			return err
		}},
	}
}

// untouched checks that after the out-of-scope attempts the other scope holds only
// victim, unchanged, and that nothing was planted next to scope.
func untouched(t *testing.T, d driver.Bucket, scope, other, victim string) {
	t.Helper()
	ctx := context.Background()
	if got := readIn(t, d, other, victim); got != "B's secret" {
		t.Errorf("B's object after the attempts = %q", got)
	}
	if keys := listIn(t, d, other, other); strings.Join(keys, ",") != victim {
		t.Errorf("B's prefix after the attempts holds %v, want only %s", keys, victim)
	}
	for _, k := range []string{scope + "docs/stolen", "tenants/A/clones/A1x/docs/secret"} {
		if _, err := d.Head(ctx, sc2(k), k); classify(d, err) != clone.ErrNotFound {
			t.Errorf("Head(%q) after the attempts: %v, want NotFound", k, err)
		}
	}
}

// sc2 is the clone scope of a "tenants/{t}/clones/{c}/..." key.
func sc2(key string) string {
	parts := strings.SplitN(key, "/", 5)
	return strings.Join(parts[:4], "/") + "/"
}

func readIn(t *testing.T, d driver.Bucket, scope, key string) string {
	t.Helper()
	r, err := d.Get(context.Background(), scope, key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func listIn(t *testing.T, d driver.Bucket, scope, prefix string) []string {
	t.Helper()
	p, err := d.List(context.Background(), scope, prefix, 1000, "")
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	var keys []string
	for _, o := range p.Objects {
		keys = append(keys, o.Key)
	}
	return keys
}

// Clones used by the scoped tests: A and B share a tenant, C is in another tenant.
func clones(t *testing.T) (a, b, c clone.CloneContext) {
	t.Helper()
	t1, t2 := clone.NewID(), clone.NewID()
	mk := func(tid uuid.UUID, sub string) clone.CloneContext {
		cc, err := clone.New(tid, clone.NewID(), clone.Principal{Subject: sub})
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	return mk(t1, "alice"), mk(t1, "bob"), mk(t2, "carol")
}

func runScoped(t *testing.T, c Config) {
	t.Run("Isolation", func(t *testing.T) { scopedIsolation(t, c) })
	t.Run("NoContext", func(t *testing.T) { scopedNoContext(t, c) })
	t.Run("TraversalRefused", func(t *testing.T) { scopedTraversalRefused(t, c) })
	t.Run("ListPaginatesWithinClone", func(t *testing.T) { scopedListPaginatesWithinClone(t, c) })
	t.Run("CopyWithinClone", func(t *testing.T) { scopedCopyWithinClone(t, c) })
	t.Run("DeleteCloneLeavesOthers", func(t *testing.T) { scopedDeleteCloneLeavesOthers(t, c) })
	t.Run("InterleavedClones", func(t *testing.T) { scopedInterleavedClones(t, c) })
	if c.SignedURLs {
		t.Run("SignedURLs", func(t *testing.T) { runSigned(t, c) })
		t.Run("UploadTickets", func(t *testing.T) { runTickets(t, c) })
	}
}

// newScopedBucket returns a bucket on a new driver of c, auditing to the returned sink.
func newScopedBucket(t *testing.T, c Config) (*objectstore.Bucket, *audit.Memory) {
	sink := &audit.Memory{}
	b, err := objectstore.NewBucket(c.NewDriver(t), &objectstore.Options{Audit: sink})
	if err != nil {
		t.Fatal(err)
	}
	return b, sink
}

func scopedIsolation(t *testing.T, c Config) {
	ctx := context.Background()
	b, _ := newScopedBucket(t, c)
	ca, cb, cc := clones(t)
	if _, err := b.Put(ctx, ca, "docs", "report.txt", strings.NewReader("A's secret"), &objectstore.WriteOptions{ContentType: "text/plain", Metadata: map[string]string{"src": "upload"}}); err != nil {
		t.Fatal(err)
	}
	// The owner reaches the object...
	got, err := b.ReadAll(ctx, ca, "docs", "report.txt")
	if err != nil || string(got) != "A's secret" {
		t.Fatalf("owner ReadAll = %q, %v", got, err)
	}
	a, err := b.Head(ctx, ca, "docs", "report.txt")
	if err != nil || a.ContentType != "text/plain" || a.Metadata["src"] != "upload" || a.Size != 10 {
		t.Fatalf("owner Head = %+v, %v", a, err)
	}
	if _, ok := a.Metadata[objectstore.MetaTenantID]; ok {
		t.Error("owner stamps leak into user metadata")
	}
	// ...the other clones, same tenant or not, do not, and cannot tell it exists.
	for _, other := range []clone.CloneContext{cb, cc} {
		if _, err := b.ReadAll(ctx, other, "docs", "report.txt"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("other clone ReadAll err = %v, want ErrNotFound", err)
		}
		if _, err := b.Head(ctx, other, "docs", "report.txt"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("other clone Head err = %v, want ErrNotFound", err)
		}
		if err := b.Delete(ctx, other, "docs", "report.txt"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("other clone Delete err = %v, want ErrNotFound", err)
		}
		if err := b.Copy(ctx, other, "docs", "stolen", "docs", "report.txt"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("other clone Copy err = %v, want ErrNotFound", err)
		}
		p, err := b.List(ctx, other, nil)
		if err != nil || len(p.Objects) != 0 {
			t.Errorf("other clone List = %v, %v; want nothing", p, err)
		}
		if _, err := b.DeleteClone(ctx, other); err != nil {
			t.Fatal(err)
		}
	}
	// The owner's object survived all of it.
	if got, err := b.ReadAll(ctx, ca, "docs", "report.txt"); err != nil || string(got) != "A's secret" {
		t.Fatalf("after other clones' attempts owner ReadAll = %q, %v", got, err)
	}
	if clone.HTTPStatus(func() error { _, err := b.Head(ctx, cb, "docs", "report.txt"); return err }()) != http.StatusNotFound {
		t.Error("another clone's object must answer 404")
	}
}

func scopedNoContext(t *testing.T, c Config) {
	ctx := context.Background()
	b, sink := newScopedBucket(t, c)
	var zero clone.CloneContext
	_, err := b.Put(ctx, zero, "docs", "x", strings.NewReader("x"), nil)
	if !errors.Is(err, clone.ErrNoCloneContext) {
		t.Errorf("Put without context: %v", err)
	}
	if _, err := b.List(ctx, zero, nil); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Errorf("List without context: %v", err)
	}
	if _, err := b.DeleteClone(ctx, zero); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Errorf("DeleteClone without context: %v", err)
	}
	if _, err := b.SignedURL(ctx, zero, "docs", "x", nil); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Errorf("SignedURL without context: %v", err)
	}
	if n := len(sink.Events()); n != 4 {
		t.Errorf("%d audit events, want 4", n)
	}
}

func scopedTraversalRefused(t *testing.T, c Config) {
	ctx := context.Background()
	b, sink := newScopedBucket(t, c)
	ca, cb, _ := clones(t)
	if _, err := b.Put(ctx, cb, "docs", "victim", strings.NewReader("B"), nil); err != nil {
		t.Fatal(err)
	}
	escape := "../../" + cb.CloneID().String() + "/docs/victim"
	for _, name := range []string{escape, "a/../../x", "%2e%2e/x", "/etc/passwd", `..\x`, "a\x00b", ""} {
		sink.Reset()
		if _, err := b.ReadAll(ctx, ca, "docs", name); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("ReadAll(%q) err = %v, want ErrInvalidInput", name, err)
		}
		if ev := sink.Events(); len(ev) != 1 || ev[0].Outcome != audit.Denied || ev[0].CloneID != ca.CloneID() {
			t.Errorf("ReadAll(%q) audit = %+v, want one denial", name, ev)
		}
	}
	if _, err := b.Put(ctx, ca, "../clones", "x", strings.NewReader("x"), nil); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("bad kind: %v", err)
	}
}

func scopedListPaginatesWithinClone(t *testing.T, c Config) {
	ctx := context.Background()
	b, _ := newScopedBucket(t, c)
	ca, cb, _ := clones(t)
	for i := range 5 {
		for _, cc := range []clone.CloneContext{ca, cb} {
			if _, err := b.Put(ctx, cc, "docs", fmt.Sprintf("d%d", i), strings.NewReader("x"), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.Put(ctx, ca, "chats", "c1", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	opts := &objectstore.ListOptions{PageSize: 2}
	for {
		p, err := b.List(ctx, ca, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Objects {
			names = append(names, o.Kind+"/"+o.Name)
		}
		if p.NextPageToken == "" {
			break
		}
		opts.PageToken = p.NextPageToken
	}
	if got := strings.Join(names, ","); got != "chats/c1,docs/d0,docs/d1,docs/d2,docs/d3,docs/d4" {
		t.Errorf("List = %s", got)
	}
	p, err := b.List(ctx, ca, &objectstore.ListOptions{Kind: "docs", NamePrefix: "d3"})
	if err != nil || len(p.Objects) != 1 || p.Objects[0].Name != "d3" {
		t.Errorf("List(docs, d3) = %+v, %v", p, err)
	}
	// A forged or foreign page token is bad input at worst, never a 500 or a leak.
	for _, tok := range []string{"garbage", "tenants/", "\x00", strings.Repeat("z", 300)} {
		p, err := b.List(ctx, cb, &objectstore.ListOptions{PageToken: tok})
		if err != nil && !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("List with page token %q: %v, want success or ErrInvalidInput", tok, err)
		}
		if p != nil {
			for _, o := range p.Objects {
				if o.Kind == "chats" {
					t.Errorf("B's listing with token %q shows A's object %s/%s", tok, o.Kind, o.Name)
				}
			}
		}
	}
	if _, err := b.List(ctx, ca, &objectstore.ListOptions{Kind: "docs", NamePrefix: "../"}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("List with traversal prefix: %v", err)
	}
}

func scopedCopyWithinClone(t *testing.T, c Config) {
	ctx := context.Background()
	b, _ := newScopedBucket(t, c)
	ca, _, _ := clones(t)
	if _, err := b.Put(ctx, ca, "docs", "a", strings.NewReader("copy me"), &objectstore.WriteOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Copy(ctx, ca, "archive", "a-copy", "docs", "a"); err != nil {
		t.Fatal(err)
	}
	a, err := b.Head(ctx, ca, "archive", "a-copy")
	if err != nil || a.ContentType != "text/plain" || a.Size != 7 {
		t.Errorf("copied Head = %+v, %v", a, err)
	}
}

func scopedDeleteCloneLeavesOthers(t *testing.T, c Config) {
	ctx := context.Background()
	b, sink := newScopedBucket(t, c)
	ca, cb, _ := clones(t)
	for i := range 3 {
		for _, cc := range []clone.CloneContext{ca, cb} {
			if _, err := b.Put(ctx, cc, "docs", fmt.Sprintf("d/%d", i), strings.NewReader("x"), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	res, err := b.DeleteClone(ctx, ca)
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 3 {
		t.Errorf("DeleteClone removed %d objects, want 3", res.Objects)
	}
	if p, err := b.List(ctx, ca, nil); err != nil || len(p.Objects) != 0 {
		t.Errorf("after DeleteClone List = %+v, %v", p, err)
	}
	if p, err := b.List(ctx, cb, nil); err != nil || len(p.Objects) != 3 {
		t.Errorf("other clone after DeleteClone: %d objects, %v", len(p.Objects), err)
	}
	if ev := sink.Events(); len(ev) != 1 || ev[0].Outcome != audit.Allowed {
		t.Errorf("DeleteClone audit = %+v", ev)
	}
}

func scopedInterleavedClones(t *testing.T, c Config) {
	ctx := context.Background()
	// Many clones of two tenants work concurrently with identical kinds and names;
	// every read, listing and wipe must see exactly the clone's own data.
	b, sink := newScopedBucket(t, c)
	const n, files = 8, 5
	ccs := make([]clone.CloneContext, n)
	tenants := []uuid.UUID{clone.NewID(), clone.NewID()}
	for i := range ccs {
		cc, err := clone.New(tenants[i%2], clone.NewID(), clone.Principal{Subject: fmt.Sprint("user", i)})
		if err != nil {
			t.Fatal(err)
		}
		ccs[i] = cc
	}
	var wg sync.WaitGroup
	for i, cc := range ccs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := cc.CloneID().String()
			for f := range files {
				if _, err := b.Put(ctx, cc, "docs", fmt.Sprintf("shared/%d.txt", f), strings.NewReader(own), nil); err != nil {
					t.Error(err)
					return
				}
			}
			for f := range files {
				got, err := b.ReadAll(ctx, cc, "docs", fmt.Sprintf("shared/%d.txt", f))
				if err != nil || string(got) != own {
					t.Errorf("clone %d read %q, %v", i, got, err)
				}
			}
			p, err := b.List(ctx, cc, &objectstore.ListOptions{Kind: "docs"})
			if err != nil || len(p.Objects) != files {
				t.Errorf("clone %d listed %d objects, %v", i, len(p.Objects), err)
			}
			if i%4 == 0 {
				if _, err := b.DeleteClone(ctx, cc); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i, cc := range ccs {
		p, err := b.List(ctx, cc, nil)
		want := files
		if i%4 == 0 {
			want = 0
		}
		if err != nil || len(p.Objects) != want {
			t.Errorf("after the run clone %d has %d objects (%v), want %d", i, len(p.Objects), err, want)
		}
	}
	for _, ev := range sink.Events() {
		if ev.Outcome != audit.Allowed {
			t.Errorf("unexpected audit event %+v", ev)
		}
	}
}

func httpDo(t *testing.T, c Config, method, u, contentType string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// retarget rewrites the clone ID in a signed URL's path, as an attacker would.
func retarget(t *testing.T, u string, from, to clone.CloneContext) string {
	t.Helper()
	v := strings.Replace(u, from.CloneID().String(), to.CloneID().String(), 1)
	if v == u {
		t.Fatalf("signed URL %q does not contain the clone ID", u)
	}
	return v
}

func runSigned(t *testing.T, c Config) {
	ctx := context.Background()
	d := c.NewDriver(t)
	b, err := objectstore.NewBucket(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca, cb, _ := clones(t)
	for _, cc := range []clone.CloneContext{ca, cb} {
		if _, err := b.Put(ctx, cc, "docs", "same name.txt", strings.NewReader("secret of "+cc.CloneID().String()), &objectstore.WriteOptions{ContentType: "text/plain"}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("GET", func(t *testing.T) { signedGET(t, c, d, b, ca, cb) })
	t.Run("PUT", func(t *testing.T) { signedPUT(t, c, d, b, ca, cb) })
	t.Run("SignRequestStampsPUT", func(t *testing.T) { signedSignRequestStampsPUT(t, c, d, b, ca, cb) })
	t.Run("ExpiryCapped", func(t *testing.T) { signedExpiryCapped(t, c, d, b, ca, cb) })
	t.Run("Expired", func(t *testing.T) { signedExpired(t, c, ca) })
}

func signedGET(t *testing.T, c Config, d driver.Bucket, b *objectstore.Bucket, ca clone.CloneContext, cb clone.CloneContext) {
	ctx := context.Background()
	u, err := b.SignedURL(ctx, ca, "docs", "same name.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := httpDo(t, c, http.MethodGet, u, "", nil); code != http.StatusOK || body != "secret of "+ca.CloneID().String() {
		t.Fatalf("owner GET = %d %q", code, body)
	}
	// Pointing A's URL at B's object must be refused by whatever serves it.
	if code, body := httpDo(t, c, http.MethodGet, retarget(t, u, ca, cb), "", nil); code != http.StatusForbidden {
		t.Errorf("A's URL retargeted at B: %d %q, want 403", code, body)
	}
	if code, _ := httpDo(t, c, http.MethodPut, u, "text/plain", strings.NewReader("overwrite")); code < 400 {
		t.Errorf("GET URL used for PUT: %d, want refusal", code)
	}
}

func signedPUT(t *testing.T, c Config, d driver.Bucket, b *objectstore.Bucket, ca clone.CloneContext, cb clone.CloneContext) {
	ctx := context.Background()
	u, err := b.SignedURL(ctx, ca, "uploads", "put.txt", &objectstore.SignedURLOptions{Method: http.MethodPut, ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := httpDo(t, c, http.MethodPut, u, "text/plain", strings.NewReader("via PUT")); code != http.StatusOK {
		t.Fatalf("PUT = %d %q", code, body)
	}
	if got, err := b.ReadAll(ctx, ca, "uploads", "put.txt"); err != nil || string(got) != "via PUT" {
		t.Errorf("after PUT ReadAll = %q, %v", got, err)
	}
	if code, _ := httpDo(t, c, http.MethodPut, retarget(t, u, ca, cb), "text/plain", strings.NewReader("planted")); code != http.StatusForbidden {
		t.Errorf("A's PUT URL retargeted at B: %d, want 403", code)
	}
	if _, err := b.Head(ctx, cb, "uploads", "put.txt"); !errors.Is(err, clone.ErrNotFound) {
		t.Errorf("object planted in B: %v", err)
	}
}

func signedSignRequestStampsPUT(t *testing.T, c Config, d driver.Bucket, b *objectstore.Bucket, ca clone.CloneContext, _ clone.CloneContext) {
	ctx := context.Background()
	r, err := b.SignRequest(ctx, ca, "uploads", "stamped.txt", &objectstore.SignedURLOptions{Method: http.MethodPut, ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != http.MethodPut || time.Until(r.Expires) > objectstore.DefaultURLExpiry {
		t.Errorf("signed request %+v", r)
	}
	req, err := http.NewRequest(r.Method, r.URL, strings.NewReader("stamped"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT with the signed headers = %d %q", resp.StatusCode, body)
	}
	key, _ := objectstore.Key(ca, "uploads", "stamped.txt")
	scope, _ := objectstore.Prefix(ca)
	a, err := d.Head(ctx, scope, key)
	if err != nil {
		t.Fatal(err)
	}
	if a.Metadata[objectstore.MetaTenantID] != ca.TenantID().String() || a.Metadata[objectstore.MetaCloneID] != ca.CloneID().String() || a.ContentType != "text/plain" {
		t.Errorf("object uploaded through SignRequest: %+v", a)
	}
}

func signedExpiryCapped(t *testing.T, _ Config, _ driver.Bucket, b *objectstore.Bucket, ca clone.CloneContext, _ clone.CloneContext) {
	ctx := context.Background()
	if _, err := b.SignedURL(ctx, ca, "docs", "x", &objectstore.SignedURLOptions{Expiry: objectstore.DefaultMaxURLExpiry + time.Second}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("over-long expiry: %v, want ErrInvalidInput", err)
	}
	if _, err := b.SignedURL(ctx, ca, "docs", "x", &objectstore.SignedURLOptions{Method: "DELETE"}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("DELETE URL: %v, want ErrInvalidInput", err)
	}
}

// signedExpired: a URL and an upload ticket signed an hour ago with a one-second
// lifetime are refused (403), and the refused upload stores nothing; the same signed
// now are accepted, so the refusal is the expiry's doing.
func signedExpired(t *testing.T, c Config, ca clone.CloneContext) {
	switch {
	case c.SkipExpiry:
		t.Skip("Config.SkipExpiry")
	case c.NewBackdatedDriver == nil:
		t.Skip("Config.NewBackdatedDriver is nil: the driver's signing clock cannot be set")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		by      time.Duration
		expired bool
	}{{"signed an hour ago", time.Hour, true}, {"signed now", 0, false}} {
		b, err := objectstore.NewBucket(c.NewBackdatedDriver(t, tc.by), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Put(ctx, ca, "docs", "same name.txt", strings.NewReader("A"), nil); err != nil {
			t.Fatal(err)
		}
		u, err := b.SignedURL(ctx, ca, "docs", "same name.txt", &objectstore.SignedURLOptions{Expiry: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		tk, err := b.UploadTicket(ctx, ca, "uploads", &objectstore.UploadTicketOptions{Name: "late.txt", ContentType: "text/plain", MaxSize: 10, Expiry: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		getCode, _ := httpDo(t, c, http.MethodGet, u, "", nil)
		postCode, _, postErr := PostUpload(ctx, c.HTTPClient, tk, strings.NewReader("late"))
		_, headErr := b.Head(ctx, ca, "uploads", "late.txt")
		if tc.expired {
			if getCode != http.StatusForbidden {
				t.Errorf("URL %s: %d, want 403", tc.name, getCode)
			}
			if postErr != nil || postCode != http.StatusForbidden {
				t.Errorf("upload ticket %s: %d %v, want 403", tc.name, postCode, postErr)
			}
			if !errors.Is(headErr, clone.ErrNotFound) {
				t.Errorf("expired ticket stored an object: %v", headErr)
			}
			continue
		}
		if getCode != http.StatusOK || postErr != nil || postCode/100 != 2 || headErr != nil {
			t.Errorf("%s: URL %d, upload %d %v, stored %v; want both accepted", tc.name, getCode, postCode, postErr, headErr)
		}
	}
}

// PostUpload sends an upload ticket's form with content as the file, the way a
// browser form would, and returns the response status and body.
func PostUpload(ctx context.Context, client *http.Client, ticket *objectstore.UploadTicket, content io.Reader) (int, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range ticket.Fields {
		if err := mw.WriteField(k, v); err != nil {
			return 0, "", err
		}
	}
	fw, err := mw.CreateFormFile("file", "upload")
	if err != nil {
		return 0, "", err
	}
	if _, err := io.Copy(fw, content); err != nil {
		return 0, "", err
	}
	if err := mw.Close(); err != nil {
		return 0, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ticket.URL, &buf)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body), nil
}

func runTickets(t *testing.T, c Config) {
	ctx := context.Background()
	b, _ := newScopedBucket(t, c)
	ca, cb, _ := clones(t)
	ticket := func(t *testing.T, name string) *objectstore.UploadTicket {
		tk, err := b.UploadTicket(ctx, ca, "uploads", &objectstore.UploadTicketOptions{Name: name, ContentType: "application/pdf", MinSize: 1, MaxSize: 1024})
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	t.Run("Accepted", func(t *testing.T) {
		tk := ticket(t, "")
		if tk.Name == "" {
			t.Fatal("no generated name")
		}
		code, body, err := PostUpload(ctx, c.HTTPClient, tk, strings.NewReader(strings.Repeat("p", 1000)))
		if err != nil || code >= 300 {
			t.Fatalf("POST = %d %q %v", code, body, err)
		}
		a, err := b.VerifyUpload(ctx, ca, tk)
		if err != nil {
			t.Fatal(err)
		}
		if a.Size != 1000 || a.ContentType != "application/pdf" {
			t.Errorf("verified %+v", a)
		}
		// The same ticket verified as another clone finds nothing.
		if _, err := b.VerifyUpload(ctx, cb, tk); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("VerifyUpload as B: %v, want ErrNotFound", err)
		}
	})
	t.Run("OversizedRejectedByStore", func(t *testing.T) {
		tk := ticket(t, "big.pdf")
		code, _, err := PostUpload(ctx, c.HTTPClient, tk, strings.NewReader(strings.Repeat("p", 1025)))
		if err != nil || code < 400 || code >= 500 {
			t.Fatalf("oversized POST = %d %v, want 4xx", code, err)
		}
		if _, err := b.Head(ctx, ca, "uploads", "big.pdf"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("oversized upload was stored: %v", err)
		}
		if _, err := b.VerifyUpload(ctx, ca, tk); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("VerifyUpload of rejected upload: %v", err)
		}
	})
	t.Run("TamperedFieldsRejected", func(t *testing.T) {
		for field, value := range map[string]string{
			"key":          strings.Replace(ticket(t, "t.pdf").Fields["key"], ca.CloneID().String(), cb.CloneID().String(), 1),
			"Content-Type": "text/html",
		} {
			tk := ticket(t, "t.pdf")
			tk.Fields[field] = value
			code, _, err := PostUpload(ctx, c.HTTPClient, tk, strings.NewReader("pdf"))
			if err != nil || code != http.StatusForbidden {
				t.Errorf("tampered %s: %d %v, want 403", field, code, err)
			}
		}
		// The owner stamp field, whatever the driver calls it, cannot be changed either.
		tk := ticket(t, "stamp.pdf")
		stamp := ""
		for k, v := range tk.Fields {
			if v == ca.CloneID().String() {
				stamp = k
			}
		}
		if stamp == "" {
			t.Fatalf("ticket fields carry no clone stamp: %v", tk.Fields)
		}
		tk.Fields[stamp] = cb.CloneID().String()
		if code, _, err := PostUpload(ctx, c.HTTPClient, tk, strings.NewReader("pdf")); err != nil || code != http.StatusForbidden {
			t.Errorf("tampered owner stamp %s: %d %v, want 403", stamp, code, err)
		}
		if _, err := b.Head(ctx, ca, "uploads", "stamp.pdf"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("upload with a tampered stamp was stored: %v", err)
		}
		if _, err := b.Head(ctx, cb, "uploads", "t.pdf"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("tampered upload reached B: %v", err)
		}
	})
	t.Run("VerifyRejectsWrongUpload", func(t *testing.T) {
		tk := ticket(t, "v.pdf")
		// Something else lands under the ticket's name (e.g. through a signed PUT).
		if _, err := b.Put(ctx, ca, "uploads", "v.pdf", strings.NewReader("<html>"), &objectstore.WriteOptions{ContentType: "text/html"}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.VerifyUpload(ctx, ca, tk); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("VerifyUpload of wrong type: %v", err)
		}
		if _, err := b.Head(ctx, ca, "uploads", "v.pdf"); !errors.Is(err, clone.ErrNotFound) {
			t.Errorf("rejected upload not deleted: %v", err)
		}
	})
}
