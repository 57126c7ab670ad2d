package legacy_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/migrate/legacy"
	"github.com/cloneiso/cloneiso/migrate/legacy/legacytest"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

var errKilledVec = errors.New("killed")

// TestVectorMigration runs both legacy layouts against the Pinecone emulator through
// the real go-pinecone client: dry run, a run killed mid-way and resumed, a no-op second
// run, verification (counts per clone and content), a damaged copy caught, and the
// separate deletion of the legacy vectors.
func TestVectorMigration(t *testing.T) {
	for _, layout := range []string{legacy.LayoutNamespacePerUser, legacy.LayoutShared} {
		t.Run(layout, func(t *testing.T) {
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
			perUser := layout == legacy.LayoutNamespacePerUser
			per, err := legacytest.PutVectors(ctx, raw, perUser, "legacy-shared")
			if err != nil {
				t.Fatal(err)
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
			opts := &legacy.VectorOptions{Source: raw, Layout: layout, NamespaceTemplate: "user-{user_id}",
				SharedNamespace: "legacy-shared", Target: target, BatchSize: 7}

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
			if perUser && rep.Skipped == 0 || rep.Copied == 0 || rep.Copied >= total {
				t.Fatalf("resume: skipped %d users, copied %d of %d vectors", rep.Skipped, rep.Copied, total)
			}
			again, err := m.MigrateVectors(ctx, opts)
			if err != nil || again.Copied != 0 {
				t.Fatalf("second run copied %d (%v)", again.Copied, err)
			}

			vr, err := m.VerifyVectors(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			wantUnmatched := 0
			if !perUser {
				wantUnmatched = len(legacytest.UnmatchedVectors)
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
			// Deleting keeps the damaged user's legacy vectors and deletes the others'.
			del, err := m.DeleteLegacyVectors(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(del.Problems) != 1 || del.Problems[0].UserID != "u003" || del.Deleted != total-int64(per["u003"]) {
				t.Fatalf("delete: deleted %d of %d, problems %v", del.Deleted, total, del.Problems)
			}
			left := srv.Namespaces()
			if perUser {
				for ns, n := range left {
					if strings.HasPrefix(ns, "user-") && (ns != "user-u003" || n != per["u003"]) {
						t.Fatalf("legacy namespace %s (%d vectors) left", ns, n)
					}
				}
			} else if left["legacy-shared"] != per["u003"]+len(legacytest.UnmatchedVectors) {
				t.Fatalf("shared namespace keeps %d vectors", left["legacy-shared"])
			}
			// After the deletion the copies still verify by their recorded counts.
			vr, err = m.VerifyVectors(ctx, opts)
			if err != nil || kinds(vr)[legacy.DiscrepancyVector] != 1 {
				t.Fatalf("verify after deletion:\n%s (%v)", vr, err)
			}
		})
	}
}
