package crashtest_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/chunk"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/faultpoint"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	vecdriver "github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// The child's instructions, in its environment.
const (
	envDir      = "CLONEISO_CRASHTEST_DIR"      // data directory; set only in the child
	envKillAt   = "CLONEISO_CRASHTEST_KILL_AT"  // the Nth fault point kills the child
	envPoint    = "CLONEISO_CRASHTEST_POINT"    // count only this point ("" counts all)
	envRun      = "CLONEISO_CRASHTEST_RUN"      // run number: seeds the write loop
	envSubjects = "CLONEISO_CRASHTEST_SUBJECTS" // the live clones' subjects, comma-separated
)

const (
	dim = 32
	// maxOps bounds a child's loop: a run that reaches no kill exits with exitNoKill.
	maxOps     = 60
	exitNoKill = 3
	exitError  = 2
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envDir); dir != "" {
		os.Exit(child(dir))
	}
	os.Exit(m.Run())
}

// stores are the embedded stores of one process, as the host app opens them.
type stores struct {
	raw     *sqlx.DB
	db      *clonesql.DB
	tenants *tenant.Store
	admin   *tenant.Admin
	index   *vectorstore.Index
	vectors *memvector.Driver
	bucket  *objectstore.Bucket
	pipe    *ingest.Pipeline
}

func openStores(ctx context.Context, dir string) (*stores, error) {
	s := &stores{}
	var err error
	db, err := sqlitedb.Open(filepath.Join(dir, "cloneiso.db"))
	if err != nil {
		return nil, err
	}
	s.raw = sqlx.NewDb(db, "sqlite3")
	if err := migrate.Up(ctx, s.raw.DB, nil); err != nil {
		return nil, err
	}
	if s.db, err = clonesql.New(s.raw.DB, nil); err != nil {
		return nil, err
	}
	if s.tenants, err = tenant.NewStore(s.raw.DB, nil); err != nil {
		return nil, err
	}
	guard := s.tenants.Guard()
	// A small log limit, so that compactions run inside the write loop too.
	if s.vectors, err = memvector.NewDriver(dim, &memvector.Options{Path: filepath.Join(dir, "vectors"), CompactLogBytes: 8 << 10}); err != nil {
		return nil, err
	}
	if s.index, err = vectorstore.NewIndex(s.vectors, &vectorstore.Options{CheckWritable: guard.CheckWritable}); err != nil {
		return nil, err
	}
	if s.bucket, err = fileobject.OpenBucket(filepath.Join(dir, "files"), &fileobject.Options{Bucket: &objectstore.Options{CheckClone: guard.CheckClone}}); err != nil {
		return nil, err
	}
	emb, err := embed.NewLocal(&embed.LocalOptions{Dimension: dim})
	if err != nil {
		return nil, err
	}
	if s.pipe, err = ingest.New(s.db, s.index, s.bucket, emb, &ingest.Options{Chunking: &chunk.Options{TargetTokens: 24, OverlapTokens: 4}, EmbedBatch: 2}); err != nil {
		return nil, err
	}
	if s.admin, err = tenant.NewAdmin(s.tenants, &tenant.AdminOptions{Vectors: s.index, Objects: s.bucket, Drain: -1}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *stores) close() {
	s.index.Close()
	s.bucket.Close()
	s.raw.Close()
}

func content(topic string, paragraphs int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# About %s\n\n", topic)
	for i := range paragraphs {
		fmt.Fprintf(&b, "Paragraph %d says something about %s. It has a second sentence about %s too.\n\n", i, topic, topic)
	}
	return []byte(b.String())
}

// child runs the write loop until a fault point kills it. Every line it writes to fd 3
// is one event: "begin <op> ..." before a write, "ack <op> ..." once it returned.
func child(dir string) int {
	ctx := context.Background()
	killAt, _ := strconv.ParseInt(os.Getenv(envKillAt), 10, 64)
	point := os.Getenv(envPoint)
	var hits atomic.Int64
	faultpoint.Set(func(name string) {
		if point != "" && name != point {
			return
		}
		if hits.Add(1) == killAt {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // until the signal lands
		}
	})
	acks := os.NewFile(3, "acks")
	say := func(format string, args ...any) { fmt.Fprintf(acks, format+"\n", args...) }
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", err)
		return exitError
	}
	s, err := openStores(ctx, dir)
	if err != nil {
		return fail(err)
	}
	run, _ := strconv.Atoi(os.Getenv(envRun))
	subjects := strings.Split(os.Getenv(envSubjects), ",")
	rng := rand.New(rand.NewPCG(uint64(run), 17))
	type upload struct {
		subject string
		data    []byte
	}
	var uploaded []upload
	for op := range maxOps {
		k := rng.IntN(len(subjects))
		subject := subjects[k]
		cc, _, err := s.tenants.ProvisionSolo(ctx, subject)
		if err != nil {
			return fail(err)
		}
		switch r := rng.IntN(20); {
		case r < 11 || r == 19:
			data := content(fmt.Sprintf("topic %d-%d", run, op), 2+rng.IntN(4))
			uploaded = append(uploaded, upload{subject, data})
			say("begin ingest %s", subject)
			res, err := s.pipe.Ingest(ctx, cc, ingest.Source{SourceName: "doc.md", Data: data})
			if err != nil {
				return fail(err)
			}
			say("ack ingest %s %s %d", subject, res.Document.ID, res.Document.ChunkCount)
		case r < 13:
			// Identical content again: verified, answered unchanged.
			var mine []upload
			for _, u := range uploaded {
				if u.subject == subject {
					mine = append(mine, u)
				}
			}
			if len(mine) == 0 {
				continue
			}
			u := mine[rng.IntN(len(mine))]
			say("begin ingest %s", subject)
			res, err := s.pipe.Ingest(ctx, cc, ingest.Source{SourceName: "doc.md", Data: u.data})
			if err != nil {
				return fail(err)
			}
			say("ack ingest %s %s %d", subject, res.Document.ID, res.Document.ChunkCount)
		case r < 18:
			page, err := records.ListDocuments(ctx, s.db, cc, &records.ListOptions{Limit: records.MaxPageSize})
			if err != nil {
				return fail(err)
			}
			var ready []uuid.UUID
			for _, d := range page.Items {
				if d.Status == records.StatusReady {
					ready = append(ready, d.ID)
				}
			}
			if len(ready) == 0 {
				continue
			}
			id := ready[rng.IntN(len(ready))]
			say("begin delete %s %s", subject, id)
			if err := s.pipe.Delete(ctx, cc, id); err != nil {
				return fail(err)
			}
			say("ack delete %s %s", subject, id)
		default:
			say("begin offboard %s", subject)
			if _, err := s.admin.OffboardClone(ctx, cc.Principal(), cc.TenantID(), cc.CloneID(), "crash test"); err != nil {
				return fail(err)
			}
			say("ack offboard %s", subject)
			next := fmt.Sprintf("s-%d-%d", run, op)
			ncc, _, err := s.tenants.ProvisionSolo(ctx, next)
			if err != nil {
				return fail(err)
			}
			say("ack provision %s %s %s", next, ncc.TenantID(), ncc.CloneID())
			subjects[k] = next
		}
	}
	return exitNoKill
}

// model is what the acknowledgements promise.
type model struct {
	subjects   []string                      // live clones
	docs       map[string]map[uuid.UUID]int  // subject → acknowledged document → chunks
	offboarded map[string]clone.CloneContext // acknowledged offboarded clones
	contexts   map[string]clone.CloneContext // every subject's clone
}

// apply reads one child's events. The last "begin" without its "ack" was in flight:
// its document may or may not exist (an in-flight delete or re-upload), and an
// in-flight offboarding is resumed by the parent, as an operator would.
func (m *model) apply(t *testing.T, lines []string) (inflight []string) {
	t.Helper()
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case f[0] == "begin":
			inflight = f[1:]
		case f[1] == "ingest":
			id := uuid.MustParse(f[3])
			n, _ := strconv.Atoi(f[4])
			if m.docs[f[2]] == nil {
				m.docs[f[2]] = map[uuid.UUID]int{}
			}
			m.docs[f[2]][id] = n
			inflight = nil
		case f[1] == "delete":
			delete(m.docs[f[2]], uuid.MustParse(f[3]))
			inflight = nil
		case f[1] == "offboard":
			m.offboard(f[2])
			inflight = nil
		case f[1] == "provision":
			m.subjects = append(m.subjects, f[2])
			cc, err := clone.New(uuid.MustParse(f[3]), uuid.MustParse(f[4]), clone.Principal{Subject: f[2], Roles: []string{string(tenant.RoleOwner)}})
			if err != nil {
				t.Fatal(err)
			}
			m.contexts[f[2]] = cc
		}
	}
	if len(inflight) >= 3 && inflight[0] == "delete" {
		delete(m.docs[inflight[1]], uuid.MustParse(inflight[2]))
	}
	return inflight
}

func (m *model) offboard(subject string) {
	m.subjects = slices.DeleteFunc(m.subjects, func(s string) bool { return s == subject })
	m.offboarded[subject] = m.contexts[subject]
	delete(m.docs, subject)
}

// spawn runs one child until it dies and returns its events.
func spawn(t *testing.T, dir string, run int, killAt int, point string, subjects []string) []string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envDir+"="+dir, envKillAt+"="+strconv.Itoa(killAt), envPoint+"="+point,
		envRun+"="+strconv.Itoa(run), envSubjects+"="+strings.Join(subjects, ","))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{w}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	r.Close()
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == exitNoKill:
		if point != "" {
			t.Fatalf("run %d: fault point %s was not reached %d times in %d writes", run, point, killAt, maxOps)
		}
	case errors.As(err, &ee) && !ee.Exited() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
	default:
		t.Fatalf("run %d: child ended with %v; stderr:\n%s", run, err, stderr.String())
	}
	return lines
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test: re-executes the test binary many times")
	}
	points := []string{
		"memvector.log.write", "memvector.log.record", "memvector.log.sync", "memvector.log.synced",
		"memvector.applied", "memvector.compact.rotated", "memvector.snapshot.sync",
		"memvector.snapshot.rename", "memvector.snapshot.renamed",
		"fileobject.put.synced", "fileobject.put.renamed", "fileobject.delete.removed",
	}
	var plan []kill
	for _, p := range points {
		plan = append(plan, kill{1, p})
	}
	for _, p := range points[:4] {
		plan = append(plan, kill{3, p})
	}
	rng := rand.New(rand.NewPCG(2026, 12))
	for range 50 {
		plan = append(plan, kill{1 + rng.IntN(60), ""})
	}
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	// Epochs of a few runs each on a fresh directory keep the stores (and so the checks
	// after each run) small; within an epoch, every run recovers from the previous ones.
	const epoch = 22
	for start := 0; start < len(plan); start += epoch {
		crashEpoch(t, start, plan[start:min(start+epoch, len(plan))])
	}
}

type kill struct {
	at    int
	point string
}

func crashEpoch(t *testing.T, first int, plan []kill) {
	ctx := context.Background()
	dir := memoryDir(t)
	m := &model{docs: map[string]map[uuid.UUID]int{}, offboarded: map[string]clone.CloneContext{}, contexts: map[string]clone.CloneContext{}}
	m.subjects = []string{"alice", "bob", "carol"}
	s, err := openStores(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	provision := func(s *stores, subj string) {
		t.Helper()
		cc, _, err := s.tenants.ProvisionSolo(ctx, subj)
		if err != nil {
			t.Fatal(err)
		}
		m.contexts[subj] = cc
	}
	for _, subj := range m.subjects {
		provision(s, subj)
	}
	s.close()

	for i, k := range plan {
		run := first + i
		lines := spawn(t, dir, run, k.at, k.point, m.subjects)
		if s, err = openStores(ctx, dir); err != nil {
			t.Fatalf("run %d (kill at %d %s): reopening after the crash: %v", run, k.at, k.point, err)
		}
		inflight := m.apply(t, lines)
		if len(inflight) >= 2 && inflight[0] == "offboard" {
			cc := m.contexts[inflight[1]]
			if _, err := s.admin.OffboardClone(ctx, cc.Principal(), cc.TenantID(), cc.CloneID(), "crash test: resume"); err != nil {
				t.Fatalf("run %d: resuming the interrupted offboarding: %v", run, err)
			}
			m.offboard(inflight[1])
			subj := fmt.Sprintf("p-%d", run)
			provision(s, subj)
			m.subjects = append(m.subjects, subj)
		}
		verify(t, fmt.Sprintf("run %d (kill at %d %q)", run, k.at, k.point), s, m, dir)
		s.close()
	}
}

// verify checks the promises after a crash.
func verify(t *testing.T, run string, s *stores, m *model, dir string) {
	t.Helper()
	ctx := context.Background()
	docsOf := map[uuid.UUID]string{} // every document of every live clone → subject
	for _, subj := range m.subjects {
		cc := m.contexts[subj]
		// 1. Acknowledged documents are ready and whole, before any repair.
		for id, n := range m.docs[subj] {
			d, err := records.GetDocument(ctx, s.db, cc, id)
			if err != nil || d.Status != records.StatusReady || d.ChunkCount != n {
				t.Fatalf("%s: acknowledged document %s of %s: %+v, %v", run, id, subj, d, err)
			}
		}
		// 2. No ready document is partial: rows, vectors and original all there.
		page, err := records.ListDocuments(ctx, s.db, cc, &records.ListOptions{Limit: records.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Items {
			docsOf[d.ID] = subj
			if d.Status != records.StatusReady {
				continue
			}
			n, err := records.CountDocumentChunks(ctx, s.db, cc, d.ID)
			if err != nil || int(n) != d.ChunkCount || n == 0 {
				t.Fatalf("%s: ready document %s has %d chunk rows, count %d: %v", run, d.ID, n, d.ChunkCount, err)
			}
			var ids []string
			for i := range d.ChunkCount {
				ids = append(ids, ingest.VectorID(d.ID, ingest.DocumentVersion(d), i))
			}
			vs, err := s.index.Fetch(ctx, cc, ids)
			if err != nil || len(vs) != len(ids) {
				t.Fatalf("%s: ready document %s has %d of its %d vectors after the crash: %v", run, d.ID, len(vs), len(ids), err)
			}
			if _, err := s.bucket.Head(ctx, cc, ingest.ObjectKind, ingest.ObjectName(d.ID, ingest.DocumentVersion(d))); err != nil {
				t.Fatalf("%s: ready document %s lost its original: %v", run, d.ID, err)
			}
		}
		// 3. Reconcile (no other process is alive) has nothing to restore, and leaves
		// exactly the ready documents' vectors and originals.
		rep, err := s.pipe.Reconcile(ctx, cc, &ingest.ReconcileOptions{StaleAfter: 1})
		if err != nil {
			t.Fatalf("%s: reconcile: %v", run, err)
		}
		if rep.VectorsRestored != 0 || rep.DocumentsUnrepairable != 0 {
			t.Fatalf("%s: reconcile had to restore vectors: %+v", run, rep)
		}
		consistent(t, run, s, cc)
	}
	// 4. Offboarded clones left nothing.
	for subj, cc := range m.offboarded {
		ns, _ := vectorstore.Namespace(cc)
		if st, err := s.vectors.Stats(ctx, ns); err != nil || st.VectorCount != 0 {
			t.Fatalf("%s: offboarded %s has %+v vectors, %v", run, subj, st, err)
		}
		var n int
		if err := s.raw.Get(&n, `SELECT count(*) FROM documents WHERE clone_id = ?`, cc.CloneID().String()); err != nil || n != 0 {
			t.Fatalf("%s: offboarded %s has %d documents, %v", run, subj, n, err)
		}
	}
	// 5. No clone's data in another's: every vector of every namespace carries its
	// namespace's scope and names a document of that clone; every object file lies under
	// a live clone's prefix and names a document of that clone.
	prefixes := map[string]string{}
	for _, subj := range m.subjects {
		cc := m.contexts[subj]
		ns, _ := vectorstore.Namespace(cc)
		p, err := s.vectors.List(ctx, ns, &vecdriver.ListRequest{Limit: 100})
		for err == nil {
			if len(p.IDs) > 0 {
				vs, ferr := s.vectors.Fetch(ctx, ns, p.IDs)
				if ferr != nil {
					t.Fatal(ferr)
				}
				for _, v := range vs {
					doc, _, _ := strings.Cut(v.ID, "#")
					if v.Metadata[vectorstore.TenantKey] != cc.TenantID().String() || v.Metadata[vectorstore.CloneKey] != cc.CloneID().String() || docsOf[uuid.MustParse(doc)] != subj {
						t.Fatalf("%s: vector %s in %s's namespace belongs elsewhere: %v", run, v.ID, subj, v.Metadata)
					}
				}
			}
			if p.NextPageToken == "" {
				break
			}
			p, err = s.vectors.List(ctx, ns, &vecdriver.ListRequest{Limit: 100, PageToken: p.NextPageToken})
		}
		if err != nil {
			t.Fatal(err)
		}
		prefix, _ := objectstore.Prefix(cc)
		prefixes[prefix] = subj
	}
	root := filepath.Join(dir, "files", "objects")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		key := filepath.ToSlash(rel)
		owner := ""
		for prefix, subj := range prefixes {
			if strings.HasPrefix(key, prefix) {
				owner = subj
			}
		}
		if owner == "" {
			return fmt.Errorf("object %s lies under no live clone's prefix", key)
		}
		docDir := filepath.Base(filepath.Dir(p))
		if id, err := uuid.Parse(docDir); err == nil && docsOf[id] != owner {
			return fmt.Errorf("object %s of %s names a document of %q", key, owner, docsOf[id])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v", run, err)
	}
}

// consistent asserts that the clone's vectors and originals are exactly those of its
// ready documents, and that no document is left pending or processing.
func consistent(t *testing.T, run string, s *stores, cc clone.CloneContext) {
	t.Helper()
	ctx := context.Background()
	page, err := records.ListDocuments(ctx, s.db, cc, &records.ListOptions{Limit: records.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	var wantVec, wantObj []string
	for _, d := range page.Items {
		switch d.Status {
		case records.StatusReady:
			for i := range d.ChunkCount {
				wantVec = append(wantVec, ingest.VectorID(d.ID, ingest.DocumentVersion(d), i))
			}
			wantObj = append(wantObj, ingest.ObjectName(d.ID, ingest.DocumentVersion(d)))
		case records.StatusFailed:
		default:
			t.Fatalf("%s: document %s left %s after reconcile", run, d.ID, d.Status)
		}
	}
	var gotVec, gotObj []string
	token := ""
	for {
		p, err := s.index.List(ctx, cc, &vectorstore.ListOptions{PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		gotVec = append(gotVec, p.IDs...)
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	for {
		p, err := s.bucket.List(ctx, cc, &objectstore.ListOptions{Kind: ingest.ObjectKind, PageToken: token, PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range p.Objects {
			gotObj = append(gotObj, o.Name)
		}
		if token = p.NextPageToken; token == "" {
			break
		}
	}
	slices.Sort(wantVec)
	slices.Sort(gotVec)
	slices.Sort(wantObj)
	slices.Sort(gotObj)
	if !slices.Equal(gotVec, wantVec) {
		t.Fatalf("%s: after reconcile, vectors\n got %v\nwant %v", run, gotVec, wantVec)
	}
	if !slices.Equal(gotObj, wantObj) {
		t.Fatalf("%s: after reconcile, originals\n got %v\nwant %v", run, gotObj, wantObj)
	}
}

// The embedded SQLite database runs the durability settings the package documents.
func TestSQLiteDurabilitySettings(t *testing.T) {
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	var sync int
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q, %v", mode, err)
	}
	if err := db.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Fatalf("synchronous = %d (2 is FULL), %v", sync, err)
	}
}

// memoryDir returns a fresh directory on a memory filesystem (/dev/shm) if there is
// one, else on the default temporary directory. A SIGKILL loses nothing that reached
// the kernel's page cache, so what this test checks (the order of writes, syncs and
// acknowledgements) is the same on either; the memory filesystem only makes the
// thousands of fsyncs of the runs free, which keeps the test at a few seconds.
func memoryDir(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "cloneiso-crashtest-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}
