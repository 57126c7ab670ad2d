package audit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/clone/clonehttp"
	"github.com/cloneiso/cloneiso/clone/clonesql"
	"github.com/cloneiso/cloneiso/clone/clonesql/sqlitedb"
	"github.com/cloneiso/cloneiso/clone/records"
	"github.com/cloneiso/cloneiso/migrate"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/fileobject"
	"github.com/cloneiso/cloneiso/tenant"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/memvector"
)

// brokenSink is a real SQL audit sink whose database handle is closed: every Record
// fails, deterministically, as a sink whose database went away does.
func brokenSink(t *testing.T) audit.Sink {
	t.Helper()
	db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "gone.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := clonesql.AuditSink(db)
	db.Close()
	if err := audit.Record(context.Background(), s, audit.Event{Action: "probe"}); err == nil {
		t.Fatal("the broken sink records; the test proves nothing")
	}
	return s
}

// TestEveryStoreKeepsLostDenials: one policy for every store — with a sink that fails,
// each store's denial still refuses with its kind, and the event that could not be
// recorded is counted (and logged, see TestEmitSinkFailure) instead of dropped.
func TestEveryStoreKeepsLostDenials(t *testing.T) {
	ctx := context.Background()
	broken := brokenSink(t)
	var zero clone.CloneContext

	raw, err := sqlitedb.Open(filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	if err := migrate.Up(ctx, raw, nil); err != nil {
		t.Fatal(err)
	}
	db, err := clonesql.New(raw, &clonesql.Options{Audit: broken})
	if err != nil {
		t.Fatal(err)
	}
	vec, err := memvector.Open(4, &memvector.Options{Index: &vectorstore.Options{Audit: broken}})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := fileobject.OpenBucket(t.TempDir(), &fileobject.Options{Bucket: &objectstore.Options{Audit: broken}})
	if err != nil {
		t.Fatal(err)
	}
	ts, err := tenant.NewStore(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	mw := clonehttp.Middleware(clonehttp.AuthenticatorFunc(func(*http.Request) (clone.Principal, error) {
		return clone.Principal{}, clone.Errorf(clone.ErrUnauthenticated, "no token")
	}), ts, &clonehttp.Options{Audit: broken, NoCache: true})

	cases := []struct {
		name string
		call func() error
		want clone.Kind
	}{
		{"clonesql", func() error {
			var n int
			return db.Get(ctx, zero, &n, `SELECT count(*) FROM insights WHERE tenant_id = :tenant_id AND clone_id = :clone_id`, nil)
		}, clone.ErrNoCloneContext},
		{"records", func() error { _, err := records.ListInsights(ctx, db, zero, nil); return err }, clone.ErrNoCloneContext},
		{"records.WithAudit", func() error {
			_, err := records.ListInsights(ctx, records.WithAudit(db, broken), zero, nil)
			return err
		}, clone.ErrNoCloneContext},
		{"vectorstore", func() error {
			_, err := vec.Query(ctx, zero, vectorstore.Query{Vector: []float32{1, 0, 0, 0}, TopK: 1})
			return err
		}, clone.ErrNoCloneContext},
		{"objectstore", func() error { _, err := obj.ReadAll(ctx, zero, "documents", "a.txt"); return err }, clone.ErrNoCloneContext},
		{"clonehttp.Middleware", func() error {
			w := httptest.NewRecorder()
			mw(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != http.StatusUnauthorized {
				return errors.New(http.StatusText(w.Code))
			}
			return clone.ErrUnauthenticated
		}, clone.ErrUnauthenticated},
	}
	for _, c := range cases {
		before := audit.Failures()
		if err := c.call(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v; want %v whatever the sink does", c.name, err, c.want)
		}
		if got := audit.Failures() - before; got != 1 {
			t.Errorf("%s: Failures grew by %d; want 1 (the denial's lost event)", c.name, got)
		}
	}
}
