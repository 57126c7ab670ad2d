package fileobject_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/drivertest"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func setup(t *testing.T) (*objectstore.Bucket, *httptest.Server, *clock) {
	t.Helper()
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	srv := httptest.NewUnstartedServer(nil)
	opts := &fileobject.Options{SigningKey: []byte("0123456789abcdef0123456789abcdef"), BaseURL: "http://" + srv.Listener.Addr().String() + "/files/", Now: clk.now, MaxPutSize: 100}
	h, err := fileobject.NewHandler(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	b, err := fileobject.OpenBucket(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b, srv, clk
}

func do(t *testing.T, method, u string, hdr map[string]string, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	b, srv, clk := setup(t)
	cc, _ := clone.New(clone.NewID(), clone.NewID(), clone.Principal{})
	if _, err := b.Put(ctx, cc, "docs", "a b/ü%.txt", strings.NewReader("0123456789"), &objectstore.WriteOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	u, err := b.SignedURL(ctx, cc, "docs", "a b/ü%.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, body := do(t, http.MethodGet, u, map[string]string{"Range": "bytes=2-4"}, ""); resp.StatusCode != http.StatusPartialContent || body != "234" {
		t.Errorf("ranged GET = %d %q", resp.StatusCode, body)
	}
	if resp, _ := do(t, http.MethodGet, u, nil, ""); !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("GET is served without sandboxing headers: %v", resp.Header)
	}
	if resp, body := do(t, http.MethodHead, u, nil, ""); resp.StatusCode != http.StatusOK || body != "" || resp.ContentLength != 10 {
		t.Errorf("HEAD = %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp, _ := do(t, http.MethodDelete, u, nil, ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE = %d", resp.StatusCode)
	}
	for _, bad := range []string{
		srv.URL + "/files/", srv.URL + "/other", srv.URL + "/files/../../etc/passwd", srv.URL + "/files/x?X-Cloneiso-Signature=zz",
		strings.Replace(u, "X-Cloneiso-Expires=", "X-Cloneiso-Expires=9", 1),
	} {
		if resp, _ := do(t, http.MethodGet, bad, nil, ""); resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("GET %s = %d, want 4xx", bad, resp.StatusCode)
		}
	}
	if resp, _ := do(t, http.MethodPost, srv.URL+"/files/", map[string]string{"Content-Type": "text/plain"}, "x"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("non-multipart POST = %d", resp.StatusCode)
	}
	// Signed PUTs are capped by MaxPutSize and bound to their content type.
	pu, err := b.SignedURL(ctx, cc, "docs", "put", &objectstore.SignedURLOptions{Method: http.MethodPut, ContentType: "text/plain"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, _ := do(t, http.MethodPut, pu, map[string]string{"Content-Type": "text/html"}, "x"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PUT with other content type = %d", resp.StatusCode)
	}
	if resp, _ := do(t, http.MethodPut, pu, map[string]string{"Content-Type": "text/plain"}, strings.Repeat("x", 101)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized PUT = %d", resp.StatusCode)
	}
	if _, err := b.Head(ctx, cc, "docs", "put"); !errors.Is(err, clone.ErrNotFound) {
		t.Errorf("oversized PUT stored something: %v", err)
	}
	// Tickets expire.
	tk, err := b.UploadTicket(ctx, cc, "uploads", &objectstore.UploadTicketOptions{ContentType: "text/plain", MaxSize: 10, MinSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := drivertest.PostUpload(ctx, nil, tk, strings.NewReader("x")); code != http.StatusBadRequest {
		t.Errorf("undersized upload = %d", code)
	}
	clk.t = clk.t.Add(objectstore.DefaultURLExpiry + time.Second)
	if code, _, _ := drivertest.PostUpload(ctx, nil, tk, strings.NewReader("ok")); code != http.StatusForbidden {
		t.Errorf("expired ticket = %d", code)
	}
	if resp, _ := do(t, http.MethodGet, u, nil, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("expired URL = %d", resp.StatusCode)
	}
}

func TestObjectAndDirectoryNameConflict(t *testing.T) {
	ctx := context.Background()
	b, err := fileobject.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cc, _ := clone.New(clone.NewID(), clone.NewID(), clone.Principal{})
	if _, err := b.Put(ctx, cc, "docs", "a/b", strings.NewReader("x"), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, cc, "docs", "a", strings.NewReader("x"), nil); !errors.Is(err, clone.ErrConflict) {
		t.Errorf("object over a directory: %v, want ErrConflict", err)
	}
	if _, err := b.Put(ctx, cc, "docs", "a/b/c", strings.NewReader("x"), nil); !errors.Is(err, clone.ErrConflict) {
		t.Errorf("object under an object: %v, want ErrConflict", err)
	}
	if err := b.Delete(ctx, cc, "docs", "a/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, cc, "docs", "a", strings.NewReader("x"), nil); err != nil {
		t.Errorf("after deleting a/b, a is free: %v", err)
	}
}
