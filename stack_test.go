package cloneiso_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/cloneiso/cloneiso"
	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/ingest"
	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/rag"
	"github.com/cloneiso/cloneiso/rag/generate"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func parts(t *testing.T) (embed.Embedder, generate.Generator) {
	t.Helper()
	emb, err := embed.NewLocal(nil)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate.NewExtractive(nil)
	if err != nil {
		t.Fatal(err)
	}
	return emb, gen
}

// forEachDB runs fn on SQLite and on PostgreSQL as the application role, each migrated.
func forEachDB(t *testing.T, fn func(t *testing.T, db *sqlx.DB)) {
	for _, d := range []clonesql.Dialect{clonesql.SQLite, clonesql.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			db, _ := pgtest.Open(t, d)
			fn(t, db)
		})
	}
}

// TestNewRequires: what is required is required, with a clear invalid-input error and
// nothing opened.
func TestNewRequires(t *testing.T) {
	ctx := context.Background()
	db, _ := pgtest.Open(t, clonesql.SQLite)
	emb, gen := parts(t)
	small, err := memvector.NewDriver(8, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	for name, c := range map[string]struct {
		emb  embed.Embedder
		gen  generate.Generator
		opts *cloneiso.Options
		want string
	}{
		"nil embedder":        {nil, gen, &cloneiso.Options{Dir: t.TempDir()}, "embedder is required"},
		"nil generator":       {emb, nil, &cloneiso.Options{Dir: t.TempDir()}, "generator is required"},
		"no dir":              {emb, gen, nil, "Options.Dir is required"},
		"dimension mismatch":  {emb, gen, &cloneiso.Options{Dir: t.TempDir(), Vectors: small}, "dimension"},
		"bad ingest options":  {emb, gen, &cloneiso.Options{Dir: t.TempDir(), Ingest: &ingest.Options{Workers: -1}}, "negative"},
		"bad processor turns": {emb, gen, &cloneiso.Options{Dir: t.TempDir(), Processor: &rag.ProcessorOptions{QueryTurns: -1}}, "query turns"},
	} {
		s, err := cloneiso.New(ctx, db.DB, c.emb, c.gen, c.opts)
		if !errors.Is(err, clone.ErrInvalidInput) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want invalid input naming %q", name, err, c.want)
		}
		if s != nil {
			t.Errorf("%s: a stack with the error", name)
		}
	}
	if _, err := cloneiso.New(ctx, nil, emb, gen, &cloneiso.Options{Dir: t.TempDir()}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("nil db: %v", err)
	}
	// A failed New leaves the embedded index unlocked: the next New on the directory
	// opens it.
	dir := t.TempDir()
	if _, err := cloneiso.New(ctx, db.DB, emb, gen, &cloneiso.Options{Dir: dir, Admin: &tenant.AdminOptions{Tables: []string{"bad name"}}}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Fatalf("bad admin table: %v", err)
	}
	s, err := cloneiso.New(ctx, db.DB, emb, gen, &cloneiso.Options{Dir: dir})
	if err != nil {
		t.Fatalf("after a failed New: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStackWiring: the stack wires the guard hooks into the drivers it is given (a
// clone that was never provisioned cannot write vectors or objects), one audit sink
// (the host's and the SQL hash chain) and one resolution cache that a revocation
// through the tenant store invalidates; Close closes the drivers.
func TestStackWiring(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		emb, gen := parts(t)
		vpath := filepath.Join(t.TempDir(), "vectors.idx")
		vd, err := memvector.NewDriver(emb.Dimension(), &memvector.Options{Path: vpath})
		if err != nil {
			t.Fatal(err)
		}
		sink := &audit.Memory{}
		s, err := cloneiso.New(ctx, db.DB, emb, gen, &cloneiso.Options{Vectors: vd, Dir: t.TempDir(), Audit: sink})
		if err != nil {
			t.Fatal(err)
		}

		// A provisioned clone writes and reads its vectors and objects.
		alice, _, err := s.Tenants().ProvisionSolo(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pipeline().Ingest(ctx, alice, ingest.Source{Title: "Office", SourceName: "office.txt", Data: []byte("Our office dog is called Biscuit.")}); err != nil {
			t.Fatal(err)
		}
		if st, err := s.Index().Stats(ctx, alice); err != nil || st.VectorCount != 1 {
			t.Fatalf("alice's vectors: %+v %v", st, err)
		}
		if _, err := s.Bucket().Put(ctx, alice, "notes", "n1", strings.NewReader("hello"), nil); err != nil {
			t.Fatal(err)
		}
		// A clone that was never provisioned writes nothing: the guard hooks are on the
		// driver the host passed in, and on the embedded object store.
		ghost, err := clone.New(clone.NewID(), clone.NewID(), clone.Principal{Subject: "ghost"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Index().Upsert(ctx, ghost, []vectorstore.Vector{{ID: "v", Values: make1(emb.Dimension())}}); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("vectors of an unprovisioned clone: %v", err)
		}
		if _, err := s.Bucket().Put(ctx, ghost, "notes", "n1", strings.NewReader("x"), nil); !errors.Is(err, clone.ErrNotFound) {
			t.Fatalf("objects of an unprovisioned clone: %v", err)
		}

		// An enterprise tenant: a member granted clone A reaches it through the
		// middleware (cached), and a revocation through the tenant store ends it at
		// the next request.
		owner := "owner-" + clone.NewID().String()[:8]
		analyst := "analyst-" + clone.NewID().String()[:8]
		ten, err := s.Tenants().CreateTenant(ctx, tenant.TenantSpec{Name: "Acme", Plan: tenant.PlanEnterprise, OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Tenants().CreateClone(ctx, ten.ID, tenant.CloneSpec{Name: "A", OwnerSubject: owner})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Tenants().AddMember(ctx, ten.ID, analyst, tenant.RoleMember); err != nil {
			t.Fatal(err)
		}
		if err := s.Tenants().GrantClone(ctx, ten.ID, a.ID, analyst); err != nil {
			t.Fatal(err)
		}
		auth := clonehttp.AuthenticatorFunc(func(r *http.Request) (clone.Principal, error) {
			return clone.Principal{Subject: r.Header.Get("X-Test-Subject")}, nil
		})
		h := s.Middleware(auth, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cc, err := clone.FromContext(r.Context())
			if err != nil {
				clonehttp.WriteError(w, r, err)
				return
			}
			w.Write([]byte(cc.CloneID().String()))
		}))
		get := func(subject string) (int, string) {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("X-Test-Subject", subject)
			r.Header.Set(clonehttp.TenantHeader, ten.ID.String())
			r.Header.Set(clonehttp.CloneHeader, a.ID.String())
			h.ServeHTTP(w, r)
			return w.Code, w.Body.String()
		}
		if code, body := get(analyst); code != 200 || body != a.ID.String() {
			t.Fatalf("granted analyst: %d %s", code, body)
		}
		if s.Cache().Len() == 0 {
			t.Fatal("the resolution was not cached")
		}
		if err := s.Tenants().RevokeClone(ctx, ten.ID, a.ID, analyst); err != nil {
			t.Fatal(err)
		}
		if code, body := get(analyst); code != http.StatusForbidden {
			t.Fatalf("after the revocation: %d %s, want 403", code, body)
		}

		// Refusals go to the host's sink and to the SQL audit log the Admin reads: the
		// middleware's, and the Admin's of a plain member acting as an administrator.
		denied := func(evs []audit.Event, action string) bool {
			for _, e := range evs {
				if e.Outcome == audit.Denied && e.Actor == analyst && strings.HasPrefix(e.Action, action) {
					return true
				}
			}
			return false
		}
		if !denied(sink.Events(), "clonehttp") {
			t.Fatalf("the host's sink lacks the middleware's denial: %+v", sink.Events())
		}
		if _, err := s.Admin().Clones(ctx, clone.Principal{Subject: analyst}, ten.ID); !errors.Is(err, clone.ErrForbidden) {
			t.Fatalf("a member listing the tenant's clones: %v", err)
		}
		if !denied(sink.Events(), "tenant.Admin.Clones") {
			t.Fatalf("the host's sink lacks the Admin's denial: %+v", sink.Events())
		}
		logged, err := s.Admin().AuditEvents(ctx, clone.Principal{Subject: owner}, ten.ID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var fromSQL []audit.Event
		for _, e := range logged {
			fromSQL = append(fromSQL, e.Event)
		}
		if !denied(fromSQL, "tenant.Admin.Clones") {
			t.Fatalf("the SQL audit log lacks the denial: %+v", logged)
		}

		// Close closes the driver passed in: its index file is no longer locked.
		if _, err := memvector.NewDriver(emb.Dimension(), &memvector.Options{Path: vpath}); err == nil {
			t.Fatal("the index file is not locked while the stack is open")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		again, err := memvector.NewDriver(emb.Dimension(), &memvector.Options{Path: vpath})
		if err != nil {
			t.Fatalf("the vector driver is still open after Close: %v", err)
		}
		again.Close()
	})
}

// TestFileHandler: with FilesURL the embedded store signs links that the stack's
// handler serves, and only then.
func TestFileHandler(t *testing.T) {
	ctx := context.Background()
	db, _ := pgtest.Open(t, clonesql.SQLite)
	emb, gen := parts(t)
	s, err := cloneiso.New(ctx, db.DB, emb, gen, &cloneiso.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s.FileHandler() != nil {
		t.Fatal("a file handler without FilesURL")
	}
	s.Close()

	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	defer srv.Close()
	s, err = cloneiso.New(ctx, db.DB, emb, gen, &cloneiso.Options{Dir: t.TempDir(), FilesURL: srv.URL + "/files"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mux.Handle("/files/", s.FileHandler())
	cc, _, err := s.Tenants().ProvisionSolo(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Bucket().Put(ctx, cc, "notes", "n1", strings.NewReader("hello"), nil); err != nil {
		t.Fatal(err)
	}
	link, err := s.Bucket().SignedURL(ctx, cc, "notes", "n1", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != 200 || body.String() != "hello" {
		t.Fatalf("signed link: %d %q", resp.StatusCode, body.String())
	}
}

func make1(n int) []float32 {
	v := make([]float32, n)
	v[0] = 1
	return v
}

// TestIsolationCheckAtStartup: on PostgreSQL, New refuses a role that could reach
// another clone's rows (here the tables' owner) and names the cause; the application
// role passes; SkipIsolationCheck turns the check off.
func TestIsolationCheckAtStartup(t *testing.T) {
	ctx := context.Background()
	app, owner := pgtest.Open(t, clonesql.Postgres)
	emb, gen := parts(t)
	s, err := cloneiso.New(ctx, owner.DB, emb, gen, &cloneiso.Options{Dir: t.TempDir()})
	if !errors.Is(err, clone.ErrInternal) || !strings.Contains(err.Error(), "does not isolate clones") {
		t.Fatalf("the owner: %v, want the isolation report", err)
	}
	if s != nil {
		t.Fatal("a stack with the error")
	}
	s, err = cloneiso.New(ctx, owner.DB, emb, gen, &cloneiso.Options{Dir: t.TempDir(), SkipIsolationCheck: true})
	if err != nil {
		t.Fatalf("the owner without the check: %v", err)
	}
	s.Close()
	s, err = cloneiso.New(ctx, app.DB, emb, gen, &cloneiso.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("the application role: %v", err)
	}
	s.Close()
}

// TestCloseReleasesEverything: Close leaves no file descriptor open under Options.Dir
// (the vector log and lock, the object store's root, the file handler's root), so a
// host can reopen or remove the directory. Linux only: it reads /proc/self/fd.
func TestCloseReleasesEverything(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd on this system")
	}
	ctx := context.Background()
	db, _ := pgtest.Open(t, clonesql.SQLite)
	emb, gen := parts(t)
	dir := t.TempDir()
	s, err := cloneiso.New(ctx, db.DB, emb, gen, &cloneiso.Options{Dir: dir, FilesURL: "http://127.0.0.1/files"})
	if err != nil {
		t.Fatal(err)
	}
	if n := openUnder(t, dir); len(n) == 0 {
		t.Fatal("the open stack holds nothing open under its directory: the test cannot see a leak")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := openUnder(t, dir); len(n) != 0 {
		t.Fatalf("after Close, still open under %s: %v", dir, n)
	}
}

// openUnder lists this process's open file descriptors that point at dir or below.
func openUnder(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // closed between ReadDir and Readlink (e.g. ReadDir's own descriptor)
		}
		if target == dir || strings.HasPrefix(target, dir+string(filepath.Separator)) {
			open = append(open, target)
		}
	}
	return open
}
