package legacy_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/internal/pgtest"
	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

var errKilledVec = errors.New("killed")

// TestVectorMigration runs both legacy layouts against the Pinecone emulator through
// the real go-pinecone client: dry run, a run killed mid-way and resumed, a no-op second
// run, verification (counts per clone and content), a damaged copy caught, and the
// separate deletion of the legacy vectors.
func TestVectorMigration(t *testing.T) {
	cases := []struct {
		name, layout, shared string
		goPinecone           bool // read through legacy.PineconeSource instead of the driver
	}{
		{"namespace per user, go-pinecone source", legacy.LayoutNamespacePerUser, "", true},
		{"shared namespace, driver source", legacy.LayoutShared, "legacy-shared", false},
		{"default namespace, go-pinecone source", legacy.LayoutShared, "__default__", true},
	}
	for _, tc := range cases {
		layout := tc.layout
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv, raw, target, conn := emulator(t)
			var source legacy.VectorSource = raw
			upsert := raw.Upsert
			if tc.goPinecone {
				source, upsert = legacy.PineconeSource(conn), goPineconeUpsert(conn)
			}
			perUser := layout == legacy.LayoutNamespacePerUser
			per, err := legacytest.PutVectorsWith(ctx, upsert, perUser, tc.shared)
			if err != nil {
				t.Fatal(err)
			}
			wantUnmatched := len(legacytest.UnmatchedVectors)
			if perUser {
				// A namespace of a user the database does not know.
				if err := raw.Upsert(ctx, "user-u999", legacytest.VectorsOf(4)); err != nil {
					t.Fatal(err)
				}
				wantUnmatched = 1
			}
			var total int64
			for _, n := range per {
				total += int64(n)
			}
			killAt := 0 // counts down to a kill once set; never while negative
			_, m := provisioned(t, func(ctx context.Context, point string, n int) error {
				if point == "vectors-batch" || point == "vectors-before-commit" {
					killAt--
					if killAt == 0 {
						return errKilledVec
					}
				}
				return ctx.Err()
			})
			opts := &legacy.VectorOptions{Source: source, Layout: layout, NamespaceTemplate: "user-{user_id}",
				SharedNamespace: tc.shared, Target: target, BatchSize: 7}

			dry := *opts
			dry.DryRun = true
			before := srv.Namespaces()
			rep, err := m.MigrateVectors(ctx, &dry)
			if err != nil {
				t.Fatal(err)
			}
			for u, n := range per {
				if rep.PerUser[u] != int64(n) {
					t.Fatalf("dry run: user %s has %d vectors; want %d", u, rep.PerUser[u], n)
				}
			}
			if after := srv.Namespaces(); !maps.Equal(before, after) {
				t.Fatalf("dry run changed the index: %v -> %v", before, after)
			}

			killAt = 4
			if _, err := m.MigrateVectors(ctx, opts); !errors.Is(err, errKilledVec) {
				t.Fatalf("first run not killed: %v", err)
			}
			rep, err = m.MigrateVectors(ctx, opts)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if perUser && rep.UsersDone == 0 || rep.Copied == 0 || rep.Copied >= total {
				t.Fatalf("resume: skipped %d users, copied %d of %d vectors", rep.UsersDone, rep.Copied, total)
			}
			again, err := m.MigrateVectors(ctx, opts)
			if err != nil || again.Copied != 0 {
				t.Fatalf("second run copied %d (%v)", again.Copied, err)
			}

			vr, err := m.VerifyVectors(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(vr.Discrepancies) != wantUnmatched || kinds(vr)[legacy.DiscrepancyUnmatched] != wantUnmatched {
				t.Fatalf("verify:\n%s", vr)
			}
			users, _ := m.Users(ctx)
			var inClones int64
			for _, u := range users {
				cc, _ := u.Context()
				st, err := target.Stats(ctx, cc)
				if err != nil {
					t.Fatal(err)
				}
				if st.VectorCount != per[u.UserID] {
					t.Fatalf("clone of %s holds %d vectors; want %d", u.UserID, st.VectorCount, per[u.UserID])
				}
				inClones += int64(st.VectorCount)
			}
			if inClones != total {
				t.Fatalf("%d vectors in clones; want %d", inClones, total)
			}
			// The copies are clone-scoped: a query of u004's clone finds only its vectors.
			cc4, _ := users[3].Context()
			matches, err := target.Query(ctx, cc4, vectorstore.Query{Vector: legacytest.VectorsOf(4)[0].Values, TopK: 50})
			if err != nil || len(matches) != per["u004"] {
				t.Fatalf("query in u004's clone: %d matches (%v)", len(matches), err)
			}

			checkDamagedCopyKept(t, srv, m, target, opts, per, total, wantUnmatched)
		})
	}
}

// goPineconeUpsert writes legacy vectors with go-pinecone itself, in any namespace
// (Pinecone's default one included, which the driver refuses).
func goPineconeUpsert(conn *pinecone.IndexConnection) func(ctx context.Context, ns string, vs []driver.Vector) error {
	return func(ctx context.Context, ns string, vs []driver.Vector) error {
		if ns == "__default__" {
			ns = ""
		}
		pvs := make([]*pinecone.Vector, len(vs))
		for i, v := range vs {
			md, err := pinecone.NewMetadata(toAny(v.Metadata))
			if err != nil {
				return err
			}
			vals := v.Values
			pvs[i] = &pinecone.Vector{Id: v.ID, Values: &vals, Metadata: md}
		}
		_, err := conn.WithNamespace(ns).UpsertVectors(ctx, pvs)
		return err
	}
}

// checkDamagedCopyKept damages u003's copy of its first vector and checks that verify
// catches it, that delete-legacy deletes every other recorded copy's legacy vector and
// keeps that one (reporting it and what else is left behind), and that the copies of
// the deleted vectors still verify.
func checkDamagedCopyKept(t *testing.T, srv *pineconetest.Server, m *legacy.Migrator, target *vectorstore.Index, opts *legacy.VectorOptions,
	per map[string]int, total int64, wantUnmatched int) {
	t.Helper()
	ctx := context.Background()
	perUser := opts.Layout == legacy.LayoutNamespacePerUser
	users, err := m.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A damaged copy is caught.
	bad := legacytest.VectorsOf(3)[0]
	bad.Values = slices.Clone(bad.Values)
	bad.Values[0] += 10
	cc3, _ := users[2].Context()
	md := map[string]any{"document": "doc-0", "position": 0.0, "tags": []string{"legacy", "u003"}}
	if !perUser {
		md["user_id"] = "u003"
	}
	if err := target.Upsert(ctx, cc3, []vectorstore.Vector{{ID: bad.ID, Values: bad.Values, Metadata: md}}); err != nil {
		t.Fatal(err)
	}
	vr, _ := m.VerifyVectors(ctx, opts)
	if !slices.ContainsFunc(vr.Discrepancies, func(d legacy.Discrepancy) bool { return d.Kind == legacy.DiscrepancyVector && d.UserID == "u003" }) {
		t.Fatalf("damaged vector not caught:\n%s", vr)
	}
	// Deleting keeps the legacy vector whose copy is damaged and deletes the others.
	del, err := m.DeleteLegacyVectors(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(del.Problems) != 1 || del.Problems[0].UserID != "u003" || del.Problems[0].Key != bad.ID || del.Deleted != total-1 {
		t.Fatalf("delete: deleted %d of %d, problems %v", del.Deleted, total, del.Problems)
	}
	wantLeft, badNS := int64(1+len(legacytest.UnmatchedVectors)), opts.SharedNamespace
	if perUser {
		wantLeft, badNS = 1+4, "user-u003" // and the namespace of user-u999
	}
	if del.LeftBehind != wantLeft || !slices.Contains(del.LeftBehindIDs, legacy.VectorRef{Namespace: badNS, ID: bad.ID}) {
		t.Fatalf("delete: %d left behind (%v); want %d", del.LeftBehind, del.LeftBehindIDs, wantLeft)
	}
	left := srv.Namespaces()
	if perUser {
		for ns, n := range left {
			// A serverless namespace outlives its last record: only records count.
			if n > 0 && strings.HasPrefix(ns, "user-") && ns != "user-u999" && (ns != "user-u003" || n != 1) {
				t.Fatalf("legacy namespace %s (%d vectors) left", ns, n)
			}
		}
	} else if left[opts.SharedNamespace] != 1+len(legacytest.UnmatchedVectors) {
		t.Fatalf("shared namespace keeps %d vectors: %v", left[opts.SharedNamespace], left)
	}
	// After the deletion the copies of the deleted vectors still verify.
	vr, err = m.VerifyVectors(ctx, opts)
	if err != nil || kinds(vr)[legacy.DiscrepancyVector] != 1 || kinds(vr)[legacy.DiscrepancyUnmatched] != wantUnmatched {
		t.Fatalf("verify after deletion:\n%s (%v)", vr, err)
	}
}

func toAny(md map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range md {
		if l, ok := v.([]string); ok {
			a := make([]any, len(l))
			for i, x := range l {
				a[i] = x
			}
			v = a
		}
		out[k] = v
	}
	return out
}

// The fixtures below write the legacy vectors directly through the raw Pinecone driver
// on the emulator (never through the code under test), in the namespace-per-user layout
// ("user-{user_id}") or the shared one ("legacy-shared", user in metadata "user_id").

type vecFixture struct {
	t       *testing.T
	srv     *pineconetest.Server
	raw     *pineconevector.Driver
	target  *vectorstore.Index
	db      *pgtest.DB
	m       *legacy.Migrator
	opts    *legacy.VectorOptions
	perUser bool
}

// emulator starts a Pinecone emulator and returns it, a raw driver on it (for the legacy
// vectors), the clone-scoped index on it and the raw driver's go-pinecone connection.
func emulator(t *testing.T) (*pineconetest.Server, *pineconevector.Driver, *vectorstore.Index, *pinecone.IndexConnection) {
	t.Helper()
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: legacytest.VectorDimension})
	raw, err := pineconevector.NewDriver(srv.Host(), legacytest.VectorDimension, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	target, err := pineconevector.Open(srv.Host(), legacytest.VectorDimension, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { target.Close() })
	var conn *pinecone.IndexConnection
	if !raw.As(&conn) {
		t.Fatal("no IndexConnection")
	}
	return srv, raw, target, conn
}

func newVecFixture(t *testing.T, perUser bool) *vecFixture {
	t.Helper()
	srv, raw, target, conn := emulator(t)
	db, m := provisioned(t, nil)
	layout := legacy.LayoutShared
	if perUser {
		layout = legacy.LayoutNamespacePerUser
	}
	return &vecFixture{t: t, srv: srv, raw: raw, target: target, db: db, m: m, perUser: perUser,
		opts: &legacy.VectorOptions{Source: legacy.PineconeSource(conn), Layout: layout, NamespaceTemplate: "user-{user_id}",
			SharedNamespace: "legacy-shared", Target: target, BatchSize: 100}}
}

// ns is the legacy namespace of user's vectors.
func (f *vecFixture) ns(user string) string {
	if f.perUser {
		return "user-" + user
	}
	return "legacy-shared"
}

// vec is a legacy vector of user (in its metadata in the shared layout).
func (f *vecFixture) vec(id, user string, seed int) driver.Vector {
	vals := make([]float32, legacytest.VectorDimension)
	for k := range vals {
		vals[k] = float32((seed*13+k*5)%11) + 0.25
	}
	md := map[string]any{"doc": id}
	if !f.perUser {
		md["user_id"] = user
	}
	return driver.Vector{ID: id, Values: vals, Metadata: md}
}

// put writes legacy vectors of user, as the legacy application does.
func (f *vecFixture) put(user string, vs ...driver.Vector) {
	f.t.Helper()
	if err := f.raw.Upsert(context.Background(), f.ns(user), vs); err != nil {
		f.t.Fatal(err)
	}
}

// legacyIDs lists the legacy namespace ns through the raw driver.
func (f *vecFixture) legacyIDs(ns string) []string {
	f.t.Helper()
	var ids []string
	token := ""
	for {
		p, err := f.raw.List(context.Background(), ns, &driver.ListRequest{Limit: 100, PageToken: token})
		if err != nil {
			f.t.Fatal(err)
		}
		ids = append(ids, p.IDs...)
		if p.NextPageToken == "" {
			return ids
		}
		token = p.NextPageToken
	}
}

func (f *vecFixture) cc(user string) clone.CloneContext {
	f.t.Helper()
	users, err := f.m.Users(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, u := range users {
		if u.UserID == user {
			cc, err := u.Context()
			if err != nil {
				f.t.Fatal(err)
			}
			return cc
		}
	}
	f.t.Fatalf("no clone for %s", user)
	return clone.CloneContext{}
}

func (f *vecFixture) copyVectors(opts *legacy.VectorOptions) *legacy.VectorReport {
	f.t.Helper()
	rep, err := f.m.MigrateVectors(context.Background(), opts)
	if err != nil {
		f.t.Fatalf("copy: %v", err)
	}
	return rep
}

func (f *vecFixture) verify() *legacy.VerifyReport {
	f.t.Helper()
	r, err := f.m.VerifyVectors(context.Background(), f.opts)
	if err != nil {
		f.t.Fatalf("verify: %v", err)
	}
	return r
}

func hasDiscrepancy(r *legacy.VerifyReport, kind, user string, detail ...string) bool {
	return slices.ContainsFunc(r.Discrepancies, func(d legacy.Discrepancy) bool {
		if d.Kind != kind || d.UserID != user {
			return false
		}
		for _, s := range detail {
			if !strings.Contains(d.Detail, s) {
				return false
			}
		}
		return true
	})
}

func problemOf(rep *legacy.VectorReport, key string) (legacy.Problem, bool) {
	i := slices.IndexFunc(rep.Problems, func(p legacy.Problem) bool { return p.Key == key })
	if i < 0 {
		return legacy.Problem{}, false
	}
	return rep.Problems[i], true
}

var layouts = []struct {
	name    string
	perUser bool
}{{"namespace per user", true}, {"shared namespace", false}}

// racingSource is the real legacy source plus the legacy application writing while the
// migration runs: once armed, write runs right after the first complete listing of ns.
type racingSource struct {
	legacy.VectorSource
	ns    string
	armed bool
	write func()
}

func (s *racingSource) List(ctx context.Context, ns string, req *driver.ListRequest) (*driver.ListPage, error) {
	p, err := s.VectorSource.List(ctx, ns, req)
	if err == nil && s.armed && ns == s.ns && p.NextPageToken == "" {
		s.armed = false
		s.write()
	}
	return p, err
}

func (s *racingSource) ListNamespaces(ctx context.Context, prefix string) ([]string, error) {
	return s.VectorSource.(legacy.NamespaceLister).ListNamespaces(ctx, prefix)
}

// TestVectorDeleteOnlyVerifiedCopies (issue 21, item 1): delete-legacy deletes only the
// legacy vectors recorded as copied whose copy checks out, ID by ID; a vector the legacy
// application writes while the deletion runs, or changed after its copy, is kept and
// reported as left behind, and the reported count is what was deleted.
func TestVectorDeleteOnlyVerifiedCopies(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			f := newVecFixture(t, l.perUser)
			f.put("u001", f.vec("a1", "u001", 1), f.vec("a2", "u001", 2), f.vec("a3", "u001", 3))
			f.put("u002", f.vec("b1", "u002", 4), f.vec("b2", "u002", 5))
			rep := f.copyVectors(f.opts)
			if rep.Copied != 5 || !rep.OK() {
				t.Fatalf("copy: %+v", rep)
			}
			if vr := f.verify(); !vr.OK() {
				t.Fatalf("verify:\n%s", vr)
			}
			// After the copy, the legacy application changes b2.
			changed := f.vec("b2", "u002", 50)
			f.put("u002", changed)

			// The dry run counts what the deletion would do, and deletes nothing.
			dry := *f.opts
			dry.DryRun = true
			before := f.srv.Namespaces()
			del, err := f.m.DeleteLegacyVectors(ctx, &dry)
			if err != nil || del.Deleted != 4 || del.LeftBehind != 1 || del.LeftBehindIDs[0].ID != "b2" || len(del.Problems) != 1 {
				t.Fatalf("dry run: %+v (%v)", del, err)
			}
			if after := f.srv.Namespaces(); !maps.Equal(before, after) {
				t.Fatalf("the dry run changed the index: %v -> %v", before, after)
			}

			// It also writes a1-late while delete-legacy runs (after any listing of
			// u001's namespace the deletion does).
			late := f.vec("a1-late", "u001", 9)
			src := &racingSource{VectorSource: f.opts.Source, ns: f.ns("u001"), armed: true, write: func() { f.put("u001", late) }}
			opts := *f.opts
			opts.Source = src
			before = f.srv.Namespaces()
			del, err = f.m.DeleteLegacyVectors(ctx, &opts)
			if err != nil {
				t.Fatal(err)
			}
			after := f.srv.Namespaces()
			removed := 0
			for ns, n := range before {
				removed += n - after[ns]
			}
			removed++ // a1-late was added meanwhile
			if src.armed {
				t.Fatal("the legacy application never wrote")
			}
			if del.Deleted != 4 || int64(removed) != del.Deleted {
				t.Fatalf("delete: reported %d deleted, %d removed from the legacy layout; want 4", del.Deleted, removed)
			}
			if p, ok := problemOf(del, "b2"); !ok || p.UserID != "u002" || !strings.Contains(p.Reason, "changed after its copy") {
				t.Fatalf("delete: the changed vector is not reported: %+v", del.Problems)
			}
			if n := f.srv.Calls("DeleteNamespace"); n != 0 {
				t.Fatalf("delete-legacy deleted %d whole namespaces", n)
			}
			got := append(f.legacyIDs(f.ns("u001")), f.legacyIDs(f.ns("u002"))...)
			slices.Sort(got)
			got = slices.Compact(got)
			if !slices.Equal(got, []string{"a1-late", "b2"}) {
				t.Fatalf("legacy vectors left: %v; want a1-late and b2", got)
			}
			// A second run deletes nothing and reports both as left behind.
			del, err = f.m.DeleteLegacyVectors(ctx, f.opts)
			if err != nil {
				t.Fatal(err)
			}
			wantLeft := []legacy.VectorRef{{Namespace: f.ns("u001"), ID: "a1-late"}, {Namespace: f.ns("u002"), ID: "b2"}}
			slices.SortFunc(del.LeftBehindIDs, func(a, b legacy.VectorRef) int { return strings.Compare(a.ID, b.ID) })
			if del.Deleted != 0 || del.LeftBehind != 2 || !slices.Equal(del.LeftBehindIDs, wantLeft) || del.OK() {
				t.Fatalf("second delete: %+v", del)
			}
			// Verify still checks the deleted vectors' copies, and finds the two not copied.
			vr := f.verify()
			if len(vr.Discrepancies) != 2 || !hasDiscrepancy(vr, legacy.DiscrepancyVector, "u001", "a1-late", "not in its clone") ||
				!hasDiscrepancy(vr, legacy.DiscrepancyVector, "u002", "b2", "differ") {
				t.Fatalf("verify after delete:\n%s", vr)
			}
			// Both are behind the copy's progress (users done, checkpoint): a plain copy
			// does not see them, a restart copies them; then nothing is left behind.
			if rep := f.copyVectors(f.opts); rep.Copied != 0 || !rep.OK() {
				t.Fatalf("copy without restart: %+v", rep)
			}
			restart := *f.opts
			restart.Restart = true
			if rep := f.copyVectors(&restart); rep.Copied != 2 || rep.Skipped != 0 || !rep.OK() {
				t.Fatalf("restart: %+v", rep)
			}
			if vr := f.verify(); !vr.OK() {
				t.Fatalf("verify:\n%s", vr)
			}
			del, err = f.m.DeleteLegacyVectors(ctx, f.opts)
			if err != nil || del.Deleted != 2 || !del.OK() {
				t.Fatalf("last delete: %+v (%v)", del, err)
			}
			if vr := f.verify(); !vr.OK() {
				t.Fatalf("verify at the end:\n%s", vr)
			}
		})
	}
}

// TestVectorVerifyExactSets (issue 21, item 2): verify compares exact sets per clone: a
// copy of one user's vector placed in another user's clone is foreign, a vector of
// nobody is extra, a missing copy is missing.
func TestVectorVerifyExactSets(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			f := newVecFixture(t, l.perUser)
			a1 := f.vec("a1", "u001", 1)
			f.put("u001", a1, f.vec("a2", "u001", 2))
			f.put("u002", f.vec("b1", "u002", 3))
			f.put("u003", f.vec("c1", "u003", 4))
			f.copyVectors(f.opts)
			if vr := f.verify(); !vr.OK() {
				t.Fatalf("verify:\n%s", vr)
			}
			// The owner sees its copy; then an extra copy of it lands in u002's clone.
			if got, err := f.target.Fetch(ctx, f.cc("u001"), []string{"a1"}); err != nil || len(got) != 1 {
				t.Fatalf("u001's copy: %v (%v)", got, err)
			}
			if err := f.target.Upsert(ctx, f.cc("u002"), []vectorstore.Vector{{ID: a1.ID, Values: a1.Values, Metadata: a1.Metadata}}); err != nil {
				t.Fatal(err)
			}
			vr := f.verify()
			if len(vr.Discrepancies) != 1 || !hasDiscrepancy(vr, legacy.DiscrepancyVector, "u002", "a1", "foreign", `"u001"`) {
				t.Fatalf("foreign copy not caught:\n%s", vr)
			}
			// A vector of nobody in u003's clone, and u001's a2 gone from its clone.
			if err := f.target.Upsert(ctx, f.cc("u003"), []vectorstore.Vector{f.portable(f.vec("junk", "u003", 7))}); err != nil {
				t.Fatal(err)
			}
			if err := f.target.Delete(ctx, f.cc("u001"), []string{"a2"}); err != nil {
				t.Fatal(err)
			}
			vr = f.verify()
			if len(vr.Discrepancies) != 3 || !hasDiscrepancy(vr, legacy.DiscrepancyVector, "u003", "junk", "extra") ||
				!hasDiscrepancy(vr, legacy.DiscrepancyVector, "u001", "a2", "not in its clone") {
				t.Fatalf("extra and missing copies not caught:\n%s", vr)
			}
			// After the legacy vectors are deleted, the foreign copy is still caught.
			if err := f.target.Delete(ctx, f.cc("u003"), []string{"junk"}); err != nil {
				t.Fatal(err)
			}
			if rep := f.copyVectors(&legacy.VectorOptions{Source: f.opts.Source, Layout: f.opts.Layout, NamespaceTemplate: f.opts.NamespaceTemplate,
				SharedNamespace: f.opts.SharedNamespace, Target: f.target, Restart: true}); rep.Copied != 1 {
				t.Fatalf("restart repaired %d copies; want 1 (a2)", rep.Copied)
			}
			if del, err := f.m.DeleteLegacyVectors(ctx, f.opts); err != nil || del.Deleted != 4 {
				t.Fatalf("delete: %+v (%v)", del, err)
			}
			vr = f.verify()
			if len(vr.Discrepancies) != 1 || !hasDiscrepancy(vr, legacy.DiscrepancyVector, "u002", "a1", "foreign") {
				t.Fatalf("after the deletion:\n%s", vr)
			}
		})
	}
}

func (f *vecFixture) portable(v driver.Vector) vectorstore.Vector {
	return vectorstore.Vector{ID: v.ID, Values: v.Values, Metadata: v.Metadata}
}

// bigMetadata returns metadata of exactly n bytes of JSON (user_id included in the
// shared layout).
func (f *vecFixture) bigMetadata(id, user string, n int) map[string]any {
	md := f.vec(id, user, 0).Metadata
	md["text"] = ""
	b, _ := json.Marshal(md)
	md["text"] = strings.Repeat("x", n-len(b))
	return md
}

// TestVectorRefusedStayPending (issue 21, items 4, 7 and 12): a vector whose metadata
// exceeds the limit once the clone stamps are added is a problem of that vector (typed,
// with its ID) and the rest of its batch is copied; refused vectors are retried by every
// copy until copied or excluded (an exclusion is recorded and can be taken back); a
// restart is idempotent; the dry run counts.
func TestVectorRefusedStayPending(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			f := newVecFixture(t, l.perUser)
			big := f.vec("a-big", "u001", 1)
			big.Metadata = f.bigMetadata("a-big", "u001", vectorstore.MaxMetadataBytes-40) // fits alone, not with the stamps
			stamped := f.vec("a-stamped", "u001", 2)
			stamped.Metadata[vectorstore.TenantKey] = "legacy-tenant"
			f.put("u001", f.vec("a1", "u001", 3), big, stamped, f.vec("a2", "u001", 4))
			f.put("u002", f.vec("b1", "u002", 5))

			dry := *f.opts
			dry.DryRun = true
			rep := f.copyVectors(&dry)
			if rep.Copied != 3 || rep.PerUser["u001"] != 2 || rep.PerUser["u002"] != 1 {
				t.Fatalf("dry run counts %d (%v); want 3", rep.Copied, rep.PerUser)
			}
			if p, ok := problemOf(rep, "a-big"); !ok || clone.KindOf(p.Err) != clone.ErrTooLarge {
				t.Fatalf("dry run: oversized metadata not foreseen: %+v", rep.Problems)
			}

			rep = f.copyVectors(f.opts)
			if rep.Copied != 3 || len(rep.Problems) != 2 {
				t.Fatalf("copy: %+v", rep)
			}
			if p, ok := problemOf(rep, "a-big"); !ok || p.UserID != "u001" || clone.KindOf(p.Err) != clone.ErrTooLarge {
				t.Fatalf("oversized vector: %+v", rep.Problems)
			}
			if p, ok := problemOf(rep, "a-stamped"); !ok || clone.KindOf(p.Err) != clone.ErrInvalidInput {
				t.Fatalf("stamped vector: %+v", rep.Problems)
			}
			// Pending: reported again, copied as soon as the operator fixes it.
			rep = f.copyVectors(f.opts)
			if rep.Copied != 0 || len(rep.Problems) != 2 {
				t.Fatalf("second copy: %+v", rep)
			}
			fixed := big
			fixed.Metadata = f.bigMetadata("a-big", "u001", 1000)
			f.put("u001", fixed)
			rep = f.copyVectors(f.opts)
			if _, still := problemOf(rep, "a-big"); rep.Copied != 1 || len(rep.Problems) != 1 || still {
				t.Fatalf("copy after the fix: %+v", rep)
			}

			checkExclusion(t, f, "a-stamped", "a1")

			// A restart rescans: nothing written or counted twice; a lost copy is repaired.
			restart := *f.opts
			restart.Restart = true
			rep = f.copyVectors(&restart)
			if rep.Copied != 0 || rep.Skipped != 4 || !rep.OK() {
				t.Fatalf("restart: %+v", rep)
			}
			if err := f.target.Delete(ctx, f.cc("u001"), []string{"a2"}); err != nil {
				t.Fatal(err)
			}
			if rep = f.copyVectors(&restart); rep.Copied != 1 || rep.Skipped != 3 {
				t.Fatalf("restart after a lost copy: %+v", rep)
			}
			st, err := f.m.Status(ctx)
			if err != nil || st.VectorsCopied != 4 {
				t.Fatalf("status: %d vectors copied (%v); want 4", st.VectorsCopied, err)
			}
			if vr := f.verify(); !vr.OK() {
				t.Fatalf("verify:\n%s", vr)
			}
			del, err := f.m.DeleteLegacyVectors(ctx, f.opts)
			if err != nil || del.Deleted != 4 || del.Excluded != 1 || del.LeftBehind != 0 || !del.OK() {
				t.Fatalf("delete: %+v (%v)", del, err)
			}
			if got := f.legacyIDs(f.ns("u001")); !slices.Equal(got, []string{"a-stamped"}) {
				t.Fatalf("legacy vectors left: %v; want the excluded one", got)
			}
		})
	}
}

// checkExclusion excludes the refused vector of u001 (not the copied one: only refused
// vectors can be), checks the copy and verify take the decision into account, takes it
// back and excludes it again.
func checkExclusion(t *testing.T, f *vecFixture, refused, copied string) {
	t.Helper()
	ctx := context.Background()
	x := legacy.VectorExclusion{Namespace: f.ns("u001"), IDs: []string{refused, copied}, Reason: "legacy bookkeeping vector"}
	if _, err := f.m.ExcludeVectors(ctx, f.opts, x); clone.KindOf(err) != clone.ErrInvalidInput || !strings.Contains(err.Error(), copied) {
		t.Fatalf("excluding a copied vector: %v", err)
	}
	x.IDs = []string{refused}
	if _, err := f.m.ExcludeVectors(ctx, f.opts, legacy.VectorExclusion{Namespace: x.Namespace, IDs: x.IDs}); clone.KindOf(err) != clone.ErrInvalidInput {
		t.Fatalf("an exclusion without a reason: %v", err)
	}
	if n, err := f.m.ExcludeVectors(ctx, f.opts, x); err != nil || n != 1 {
		t.Fatalf("exclude: %d (%v)", n, err)
	}
	if note := count(t, f.db, "SELECT count(*) FROM cloneiso_legacy_vector_ids WHERE id = $1 AND note = 'legacy bookkeeping vector'", refused); note != 1 {
		t.Fatal("the exclusion's reason is not recorded")
	}
	rep := f.copyVectors(f.opts)
	if !rep.OK() || rep.Excluded != 1 || rep.Copied != 0 {
		t.Fatalf("copy after the exclusion: %+v", rep)
	}
	if vr := f.verify(); !vr.OK() {
		t.Fatalf("verify with an exclusion:\n%s", vr)
	}
	x.Undo = true
	if _, err := f.m.ExcludeVectors(ctx, f.opts, x); err != nil {
		t.Fatal(err)
	}
	if rep = f.copyVectors(f.opts); len(rep.Problems) != 1 {
		t.Fatalf("copy after the exclusion was taken back: %+v", rep)
	}
	x.Undo = false
	if _, err := f.m.ExcludeVectors(ctx, f.opts, x); err != nil {
		t.Fatal(err)
	}
}

// TestVectorNamespaceOfNoUser (issue 21, item 5): with a namespace per user, a legacy
// namespace that maps to no user ("user-", an unknown user) is a problem in the plan and
// the copy, unmatched in verify, never deleted, until the operator excludes it.
func TestVectorNamespaceOfNoUser(t *testing.T) {
	ctx := context.Background()
	f := newVecFixture(t, true)
	f.put("u001", f.vec("a1", "u001", 1))
	f.put("", f.vec("x1", "", 2), f.vec("x2", "", 3)) // namespace "user-"
	f.put("nobody", f.vec("n1", "nobody", 4))

	dry := *f.opts
	dry.DryRun = true
	for _, o := range []*legacy.VectorOptions{&dry, f.opts} {
		rep := f.copyVectors(o)
		pe, ok1 := problemOf(rep, "user-")
		pn, ok2 := problemOf(rep, "user-nobody")
		if !ok1 || !ok2 || len(rep.Problems) != 2 || pn.UserID != "nobody" || clone.KindOf(pe.Err) != clone.ErrNotFound || rep.Copied != 1 {
			t.Fatalf("copy (dry run %v): %+v", o.DryRun, rep)
		}
	}
	vr := f.verify()
	if len(vr.Discrepancies) != 2 || kinds(vr)[legacy.DiscrepancyUnmatched] != 2 {
		t.Fatalf("verify:\n%s", vr)
	}
	if _, err := f.m.ExcludeVectors(ctx, f.opts, legacy.VectorExclusion{Namespace: "user-", Reason: "test data of nobody"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.ExcludeVectors(ctx, f.opts, legacy.VectorExclusion{Namespace: "user-u001", Reason: "x"}); clone.KindOf(err) != clone.ErrInvalidInput {
		t.Fatalf("excluding a user's namespace: %v", err)
	}
	rep := f.copyVectors(f.opts)
	if len(rep.Problems) != 1 || rep.Problems[0].Key != "user-nobody" || rep.Excluded != 2 {
		t.Fatalf("copy after the exclusion: %+v", rep)
	}
	del, err := f.m.DeleteLegacyVectors(ctx, f.opts)
	if err != nil || del.Deleted != 1 || del.Excluded != 2 || del.LeftBehind != 1 || del.LeftBehindIDs[0] != (legacy.VectorRef{Namespace: "user-nobody", ID: "n1"}) {
		t.Fatalf("delete: %+v (%v)", del, err)
	}
	if n := len(f.legacyIDs("user-")) + len(f.legacyIDs("user-nobody")); n != 3 {
		t.Fatalf("%d vectors left in the namespaces of no user; want 3", n)
	}
}

// TestVectorUserChanged: in the shared layout, the legacy application moves a vector to
// another user after its copy: verify finds it missing from the new user's clone and
// foreign in the old one's; copy --restart copies it to the new user and removes the
// migration's copy from the old user's clone.
func TestVectorUserChanged(t *testing.T) {
	ctx := context.Background()
	f := newVecFixture(t, false)
	f.put("u001", f.vec("a1", "u001", 1), f.vec("a2", "u001", 2))
	f.put("u002", f.vec("b1", "u002", 3))
	f.copyVectors(f.opts)
	f.put("u002", f.vec("a1", "u002", 1))
	vr := f.verify()
	if len(vr.Discrepancies) != 2 || !hasDiscrepancy(vr, legacy.DiscrepancyVector, "u002", "a1", "not in its clone") ||
		!hasDiscrepancy(vr, legacy.DiscrepancyVector, "u001", "a1", "foreign", `"u002"`) {
		t.Fatalf("verify:\n%s", vr)
	}
	restart := *f.opts
	restart.Restart = true
	if rep := f.copyVectors(&restart); rep.Copied != 1 || rep.Skipped != 2 || !rep.OK() {
		t.Fatalf("restart: %+v", rep)
	}
	if vr := f.verify(); !vr.OK() {
		t.Fatalf("verify:\n%s", vr)
	}
	if got, err := f.target.Fetch(ctx, f.cc("u001"), []string{"a1"}); err != nil || len(got) != 0 {
		t.Fatalf("u001's clone keeps a1: %v (%v)", got, err)
	}
	if got, err := f.target.Fetch(ctx, f.cc("u002"), []string{"a1"}); err != nil || len(got) != 1 {
		t.Fatalf("u002's clone lacks a1: %v (%v)", got, err)
	}
}

// TestVectorUserDecisions: the operator's decisions about legacy user IDs apply to
// vectors too: the vectors of an ID mapped to a user go to that user's clone (and verify
// counts them as that user's); those of an ID set aside are refused, with the decision
// named, until excluded.
func TestVectorUserDecisions(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			f := newVecFixture(t, l.perUser)
			f.m = decidedMigrator(t, f.db, map[string]legacy.UserDecision{
				"U001": {Action: legacy.DecisionMap, To: "u001"}, "gone": {Action: legacy.DecisionQuarantine}}, "")
			f.put("u001", f.vec("a1", "u001", 1))
			f.put("U001", f.vec("A1", "U001", 2))
			f.put("gone", f.vec("g1", "gone", 3))
			rep := f.copyVectors(f.opts)
			key := "g1"
			if f.perUser {
				key = "user-gone"
			}
			p, ok := problemOf(rep, key)
			if rep.Copied != 2 || rep.PerUser["u001"] != 2 || len(rep.Problems) != 1 || !ok || !strings.Contains(p.Reason, `decided "quarantine"`) {
				t.Fatalf("copy: %+v", rep)
			}
			if got, err := f.target.Fetch(ctx, f.cc("u001"), []string{"a1", "A1"}); err != nil || len(got) != 2 {
				t.Fatalf("u001's clone: %v (%v)", got, err)
			}
			vr := f.verify()
			if len(vr.Discrepancies) != 1 || kinds(vr)[legacy.DiscrepancyUnmatched] != 1 {
				t.Fatalf("verify:\n%s", vr)
			}
			x := legacy.VectorExclusion{Namespace: "legacy-shared", IDs: []string{"g1"}, Reason: "the user was deleted"}
			if f.perUser {
				x = legacy.VectorExclusion{Namespace: "user-gone", Reason: "the user was deleted"}
			}
			if _, err := f.m.ExcludeVectors(ctx, f.opts, x); err != nil {
				t.Fatal(err)
			}
			if vr := f.verify(); !vr.OK() {
				t.Fatalf("verify after the exclusion:\n%s", vr)
			}
			del, err := f.m.DeleteLegacyVectors(ctx, f.opts)
			if err != nil || del.Deleted != 2 || del.Excluded != 1 || !del.OK() {
				t.Fatalf("delete: %+v (%v)", del, err)
			}
			if vr := f.verify(); !vr.OK() {
				t.Fatalf("verify after the deletion:\n%s", vr)
			}
		})
	}
}

// TestVectorPlanUsesLedger: the dry run (plan) counts as to copy only what a copy
// would write: vectors recorded as copied and intact in their clone are already
// copied, excluded vectors (and, namespace per user, an excluded namespace of no user)
// are excluded and no problem, and a vector written after the copy is to copy.
func TestVectorPlanUsesLedger(t *testing.T) {
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			ctx := context.Background()
			f := newVecFixture(t, l.perUser)
			stamped := f.vec("a-stamped", "u001", 2)
			stamped.Metadata[vectorstore.TenantKey] = "legacy-tenant"
			f.put("u001", f.vec("a1", "u001", 3), stamped, f.vec("a2", "u001", 4))
			f.put("u002", f.vec("b1", "u002", 5))
			excluded := int64(1)
			if l.perUser {
				f.put("", f.vec("x1", "", 6)) // namespace "user-", of no user
				excluded++
			}
			if rep := f.copyVectors(f.opts); rep.Copied != 3 {
				t.Fatalf("copy: %+v", rep)
			}
			if _, err := f.m.ExcludeVectors(ctx, f.opts, legacy.VectorExclusion{Namespace: f.ns("u001"), IDs: []string{"a-stamped"}, Reason: "bookkeeping"}); err != nil {
				t.Fatal(err)
			}
			if l.perUser {
				if _, err := f.m.ExcludeVectors(ctx, f.opts, legacy.VectorExclusion{Namespace: "user-", Reason: "test data"}); err != nil {
					t.Fatal(err)
				}
			}
			f.put("u002", f.vec("b2", "u002", 7)) // written after the copy

			dry := *f.opts
			dry.DryRun = true
			rep := f.copyVectors(&dry)
			if rep.Copied != 1 || rep.Skipped != 3 || rep.Excluded != excluded || len(rep.Problems) != 0 {
				t.Fatalf("plan after the copy: %d to copy, %d already copied, %d excluded, problems %v; want 1, 3, %d, none",
					rep.Copied, rep.Skipped, rep.Excluded, rep.Problems, excluded)
			}
			if rep = f.copyVectors(f.opts); !l.perUser && rep.Copied != 1 {
				t.Fatalf("copy after the plan: %+v", rep)
			}
		})
	}
}
