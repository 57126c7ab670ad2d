package faulttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/internal/testenv"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
)

// minioServer is a MinIO process of this test alone, which the test can kill and
// restart on the same address and data directory.
type minioServer struct {
	bin, dir, addr, console string
	env                     s3test.Env
	cmd                     *exec.Cmd
	exited                  chan struct{} // closed when cmd has exited
	log                     *os.File
}

// minioBinary returns the MinIO binary internal/ci/minio.sh installs, or skips t.
func minioBinary(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output()
	if err != nil {
		testenv.Missing(t, "MinIO", "go env: "+err.Error())
	}
	lines := strings.Split(string(out), "\n") // GOBIN first, possibly empty
	dir := strings.TrimSpace(lines[0])
	if dir == "" && len(lines) > 1 {
		dir = filepath.Join(strings.Split(strings.TrimSpace(lines[1]), string(os.PathListSeparator))[0], "bin")
	}
	bin := filepath.Join(dir, "minio")
	if _, err := os.Stat(bin); err != nil {
		testenv.Missing(t, "MinIO", "no binary at "+bin+" (internal/ci/minio.sh start installs it)")
	}
	return bin
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startMinio(t testing.TB) *minioServer {
	t.Helper()
	m := &minioServer{bin: minioBinary(t), dir: t.TempDir(), addr: freeAddr(t), console: freeAddr(t)}
	m.env = s3test.Env{Endpoint: "http://" + m.addr, AccessKey: "faulttest" + uuid.NewString()[:8], SecretKey: uuid.NewString(), Region: "us-east-1"}
	var err error
	if m.log, err = os.Create(filepath.Join(t.TempDir(), "minio.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.kill(t)
		m.log.Close()
	})
	m.start(t)
	return m
}

// start starts (or restarts) the server and waits until it serves S3 requests.
func (m *minioServer) start(t testing.TB) {
	t.Helper()
	m.cmd = exec.Command(m.bin, "server", "--quiet", "--address", m.addr, "--console-address", m.console, filepath.Join(m.dir, "data"))
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.env.AccessKey, "MINIO_ROOT_PASSWORD="+m.env.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	m.cmd.Stdout, m.cmd.Stderr = m.log, m.log
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	m.exited = exited
	cmd := m.cmd
	go func() { cmd.Wait(); close(exited) }()
	// The deadline only bounds a server that never comes up; readiness itself is
	// observed, not assumed after a delay.
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(m.log.Name())
			t.Fatalf("MinIO exited during start:\n%s", log)
		default:
		}
		if m.ready() {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling another process: there is nothing to wait on
	}
	t.Fatal("MinIO did not become ready in 3 minutes")
}

// ready reports whether the server answers S3 requests. Its liveness endpoint answers
// 200 as soon as it listens, before its object layer is initialized (it then only adds
// "x-minio-server-status: offline", and S3 calls fail with "Server not initialized
// yet"), so a signed S3 call is what proves readiness.
func (m *minioServer) ready() bool {
	resp, err := http.Get(m.env.Endpoint + "/minio/health/live")
	if err != nil {
		return false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("x-minio-server-status") == "offline" {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = m.env.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
	return err == nil
}

// kill ends the server at once (SIGKILL), as a crash or a lost node would, and waits
// for the process to be gone (its sockets closed).
func (m *minioServer) kill(t testing.TB) {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	m.cmd.Process.Kill()
	<-m.exited
	m.cmd = nil
}

// MinIO is killed mid-ingest: documents whose original was stored before complete;
// the next ones fail with clone.ErrUnavailable and leave no chunk rows (owner) and no
// vectors; an update whose new version committed just before reports the failed
// clean-up of the old original. After MinIO restarts, Reconcile removes every leftover
// and the clone is consistent; the failed documents then ingest.
func TestMinioKilledMidIngest(t *testing.T) {
	pgtest.Shared(t) // skip before starting MinIO if there is no PostgreSQL
	m := startMinio(t)
	ctx := context.Background()
	if _, err := m.env.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("faulttest")}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &envOptions{objects: func(t testing.TB) *objectstore.Bucket {
		cfg := m.env.Config()
		cfg.RetryMaxAttempts = 2 // the SDK's retries against a dead server only take time
		b, err := s3object.OpenBucket(ctx, cfg, "faulttest", &s3object.Options{Endpoint: m.env.Endpoint, UsePathStyle: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}})
	cc := e.newClone(t)

	var stored atomic.Int32
	var killAt atomic.Int32
	p := e.pipeline(t, &ingest.Options{Progress: func(ev ingest.Progress) {
		if ev.Stage == ingest.StageStored && stored.Add(1) == killAt.Load() {
			m.kill(t)
		}
	}})

	// Happy path on the same setup: a document and a version of it.
	v1 := doc("the first version", 4)
	first, err := p.Ingest(ctx, cc, ingest.Source{SourceName: "versioned.md", Data: []byte(v1)})
	if err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, e, cc)

	// The update's new original is stored, then MinIO dies: the update commits, and
	// removing the old original fails.
	killAt.Store(stored.Load() + 1)
	up, err := p.Ingest(ctx, cc, ingest.Source{DocumentID: first.Document.ID, SourceName: "versioned.md", Data: []byte(doc("the second version", 4))})
	if err != nil || up.Outcome != ingest.Updated {
		t.Fatalf("update before the kill: %+v %v", up, err)
	}
	if !errors.Is(up.CleanupErr, clone.ErrUnavailable) {
		t.Fatalf("clean-up of the old original with MinIO down: %v, want ErrUnavailable", up.CleanupErr)
	}

	// New documents fail, typed, while MinIO is down.
	var failed []ingest.Source
	for i := range 3 {
		src := ingest.Source{SourceName: fmt.Sprintf("down-%d.md", i), Data: []byte(doc(fmt.Sprintf("outage number %d", i), 4))}
		_, err := p.Ingest(ctx, cc, src)
		if !errors.Is(err, clone.ErrUnavailable) {
			t.Fatalf("ingest %d with MinIO down: %v, want ErrUnavailable", i, err)
		}
		failed = append(failed, src)
	}
	// Through the owner: the failed documents are "failed" with no chunk rows, and the
	// vectors are exactly those of the ready documents.
	docs := ownerDocs(t, e, cc)
	if len(docs) != 4 {
		t.Fatalf("%d documents: %+v", len(docs), docs)
	}
	var wantVectors int
	for i, d := range docs {
		switch {
		case i == 0:
			if d.Status != records.StatusReady || d.Chunks != d.ChunkCount {
				t.Fatalf("the updated document: %+v", d)
			}
			wantVectors = d.Chunks
		case d.Status != records.StatusFailed || d.Chunks != 0:
			t.Fatalf("a document ingested with MinIO down: %+v", d)
		}
	}
	if s := vectorIDs(t, e, cc); len(s) != wantVectors {
		t.Fatalf("%d vectors with MinIO down, want %d: %v", len(s), wantVectors, s)
	}

	// Reconcile while MinIO is down fails, typed, and removes nothing it cannot see.
	if _, err := p.Reconcile(ctx, cc, nil); !errors.Is(err, clone.ErrUnavailable) {
		t.Fatalf("reconcile with MinIO down: %v, want ErrUnavailable", err)
	}
	if s := vectorIDs(t, e, cc); len(s) != wantVectors {
		t.Fatalf("reconcile with MinIO down left %d vectors, want %d", len(s), wantVectors)
	}
	if d := ownerDocs(t, e, cc); d[0].Status != records.StatusReady || d[0].Chunks != wantVectors {
		t.Fatalf("reconcile with MinIO down changed the ready document: %+v", d[0])
	}

	// MinIO comes back: the old original is a leftover until Reconcile removes it.
	m.start(t)
	s := stores(t, e, cc)
	if len(s.objects) != 2 {
		t.Fatalf("originals after the restart: %v (want the new and the old version)", s.objects)
	}
	rep, err := p.Reconcile(ctx, cc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ObjectsDeleted != 1 || rep.VectorsDeleted != 0 {
		t.Fatalf("reconcile: %+v", rep)
	}
	checkConsistent(t, e, cc)
	if rep, err = p.Reconcile(ctx, cc, nil); err != nil || *rep != (ingest.ReconcileReport{}) {
		t.Fatalf("second reconcile: %+v %v", rep, err)
	}
	// The failed documents ingest now, on their rows.
	for _, src := range failed {
		r, err := p.Ingest(ctx, cc, src)
		if err != nil || r.Document.Status != records.StatusReady {
			t.Fatalf("retry: %+v %v", r, err)
		}
	}
	docs = checkConsistent(t, e, cc)
	if len(docs) != 4 {
		t.Fatalf("%d documents after the retries", len(docs))
	}

	// A batch with four documents in flight: MinIO dies when the third original is
	// stored, while other documents are being stored, embedded or committed. Every
	// document ends ready or failed with ErrUnavailable; failed ones have no chunk rows
	// and no vectors; after the restart and Reconcile the clone is consistent.
	cc2 := e.newClone(t)
	var batch []ingest.Source
	for i := range 8 {
		batch = append(batch, ingest.Source{SourceName: fmt.Sprintf("batch-%d.md", i), Data: []byte(doc(fmt.Sprintf("batch topic %d", i), 12))})
	}
	stored.Store(0)
	killAt.Store(3)
	pb := e.pipeline(t, &ingest.Options{Workers: 4, EmbedBatch: 4, Progress: func(ev ingest.Progress) {
		if ev.Stage == ingest.StageStored && stored.Add(1) == killAt.Load() {
			m.kill(t)
		}
	}})
	results, _ := pb.IngestAll(ctx, cc2, batch)
	var ready, down int
	for i, r := range results {
		switch {
		case r.Err == nil:
			ready++
		case errors.Is(r.Err, clone.ErrUnavailable):
			down++
		default:
			t.Fatalf("document %d: %v, want ErrUnavailable", i, r.Err)
		}
	}
	t.Logf("batch with MinIO killed: %d ready, %d failed (ErrUnavailable)", ready, down)
	if down == 0 {
		t.Fatal("no document failed: MinIO was not killed mid-batch")
	}
	wantVectors = 0
	for _, d := range ownerDocs(t, e, cc2) {
		switch d.Status {
		case records.StatusReady:
			wantVectors += d.Chunks
		case records.StatusFailed:
			if d.Chunks != 0 {
				t.Fatalf("failed document with %d chunk rows", d.Chunks)
			}
		default:
			t.Fatalf("document left %s", d.Status)
		}
	}
	if s := vectorIDs(t, e, cc2); len(s) != wantVectors {
		t.Fatalf("%d vectors with MinIO down, want %d", len(s), wantVectors)
	}
	m.start(t)
	if rep, err = pb.Reconcile(ctx, cc2, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("reconcile after the restart: %+v", *rep)
	checkConsistent(t, e, cc2)
	results, err = pb.IngestAll(ctx, cc2, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("retry of document %d after the restart: %v", i, r.Err)
		}
	}
	for _, d := range checkConsistent(t, e, cc2) {
		if d.Status != records.StatusReady {
			t.Fatalf("after the retry: %+v", d)
		}
	}
}
