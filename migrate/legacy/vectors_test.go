package legacy_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/pinecone-io/go-pinecone/v5/pinecone"

	"github.com/cloneiso/cloneiso/internal/legacytest"
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
			srv := pineconetest.Start(t, &pineconetest.Options{Dimension: legacytest.VectorDimension})
			raw, err := pineconevector.NewDriver(srv.Host(), legacytest.VectorDimension, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			target, err := pineconevector.Open(srv.Host(), legacytest.VectorDimension, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			var conn *pinecone.IndexConnection
			if !raw.As(&conn) {
				t.Fatal("no IndexConnection")
			}
			var source legacy.VectorSource = raw
			upsert := raw.Upsert
			if tc.goPinecone {
				source = legacy.PineconeSource(conn)
				upsert = func(ctx context.Context, ns string, vs []driver.Vector) error {
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
			vr, _ = m.VerifyVectors(ctx, opts)
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
			wantLeft := int64(1 + len(legacytest.UnmatchedVectors))
			if perUser {
				wantLeft = 1 + 4 // and the namespace of user-u999
			}
			badNS := tc.shared
			if perUser {
				badNS = "user-u003"
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
			} else if left[tc.shared] != 1+len(legacytest.UnmatchedVectors) {
				t.Fatalf("shared namespace keeps %d vectors: %v", left[tc.shared], left)
			}
			// After the deletion the copies still verify by their recorded counts.
			vr, err = m.VerifyVectors(ctx, opts)
			if err != nil || kinds(vr)[legacy.DiscrepancyVector] != 1 || kinds(vr)[legacy.DiscrepancyUnmatched] != wantUnmatched {
				t.Fatalf("verify after deletion:\n%s (%v)", vr, err)
			}
		})
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
