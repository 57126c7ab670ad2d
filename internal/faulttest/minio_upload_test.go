package faulttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
)

// killingTransport kills MinIO once an armed PUT has sent half of its body, so the
// server dies in the middle of receiving the original.
type killingTransport struct {
	base  http.RoundTripper
	armed atomic.Bool
	kill  func()
	hit   atomic.Bool
}

func (k *killingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.Body != nil && r.ContentLength > 0 && k.armed.CompareAndSwap(true, false) {
		r = r.Clone(r.Context())
		r.Body = &killingBody{ReadCloser: r.Body, after: r.ContentLength / 2, k: k}
	}
	return k.base.RoundTrip(r)
}

type killingBody struct {
	io.ReadCloser
	read, after int64
	k           *killingTransport
}

func (b *killingBody) Read(p []byte) (int, error) {
	if b.read >= b.after && b.k.hit.CompareAndSwap(false, true) {
		b.k.kill()
	}
	if left := b.after - b.read; left > 0 && int64(len(p)) > left {
		p = p[:left] // stop exactly half-way, then kill on the next read
	}
	n, err := b.ReadCloser.Read(p)
	b.read += int64(n)
	return n, err
}

// MinIO is killed while it receives a document's original (half of the PUT body
// sent): the ingest fails with clone.ErrUnavailable, the document is "failed" with no
// chunk rows and no vectors; after the restart there is no partial original, the
// clone is consistent, and the retry succeeds.
func TestMinioKilledMidUpload(t *testing.T) {
	pgtest.Shared(t) // skip before starting MinIO if there is no PostgreSQL
	m := startMinio(t)
	ctx := context.Background()
	if _, err := m.env.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("faulttest")}); err != nil {
		t.Fatal(err)
	}
	kt := &killingTransport{base: http.DefaultTransport.(*http.Transport).Clone(), kill: func() { m.kill(t) }}
	e := newEnv(t, &envOptions{objects: func(t testing.TB) *objectstore.Bucket {
		cfg := m.env.Config()
		cfg.RetryMaxAttempts = 2
		cfg.HTTPClient = &http.Client{Transport: kt}
		b, err := s3object.OpenBucket(ctx, cfg, "faulttest", &s3object.Options{Endpoint: m.env.Endpoint, UsePathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}})
	p := e.pipeline(t, &ingest.Options{Chunking: &chunk.Options{TargetTokens: 400, OverlapTokens: 20}})
	cc := e.newClone(t)
	big := func(topic string) []byte {
		var b strings.Builder
		for b.Len() < 256<<10 {
			fmt.Fprintf(&b, "%s\n\n", doc(fmt.Sprintf("%s part %d", topic, b.Len()), 8))
		}
		return []byte(b.String())
	}
	// Happy path: a large original goes through the same transport.
	if r, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "happy.md", Data: big("sunny days")}); err != nil || r.Document.Status != records.StatusReady {
		t.Fatalf("happy path: %+v %v", r, err)
	}
	checkConsistent(t, e, cc)
	before := originals(t, e, cc)

	src := ingest.Source{SourceName: "cut.md", Data: big("a cut cable")}
	kt.armed.Store(true)
	_, err := p.Ingest(ctx, cc, src)
	if !kt.hit.Load() {
		t.Fatal("the upload was not interrupted")
	}
	if !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("ingest with MinIO killed mid-upload: %v, want ErrUnavailable", err)
	}
	docs := ownerDocs(t, e, cc)
	if len(docs) != 2 || docs[1].Status != records.StatusFailed || docs[1].Chunks != 0 {
		t.Fatalf("documents with MinIO down: %+v", docs)
	}
	if n, want := len(vectorIDs(t, e, cc)), docs[0].Chunks; n != want {
		t.Fatalf("%d vectors with MinIO down, want %d", n, want)
	}
	m.start(t)
	if after := originals(t, e, cc); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("originals after the restart: %v, want %v (a partial upload survived)", after, before)
	}
	rep, err := p.Reconcile(ctx, cc, nil)
	if err != nil || *rep != (ingest.ReconcileReport{}) {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	checkConsistent(t, e, cc)
	if r, err := p.Ingest(ctx, cc, src); err != nil || r.Document.ID.String() != docs[1].ID {
		t.Fatalf("retry: %+v %v", r, err)
	}
	checkConsistent(t, e, cc)
}
