package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/internal/legacytest"
	"github.com/cloneiso/cloneiso/vectorstore"
	"github.com/cloneiso/cloneiso/vectorstore/driver"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector"
	"github.com/cloneiso/cloneiso/vectorstore/pineconevector/pineconetest"
)

// TestCLIVectors runs the vector decisions of MIGRATION_GUIDE.md on the Pinecone
// emulator (namespace per user), with legacy vectors written through the raw driver: the
// plan counts and foresees an oversized vector and a namespace of no user; copy reports
// them (exit 1) and copies the rest; the operator excludes them; a vector the legacy
// application writes after the copy is left behind by delete-legacy (exit 1, listed)
// until copy --restart; no AWS SDK line reaches stderr.
func TestCLIVectors(t *testing.T) {
	ctx := context.Background()
	db := fixtureDB(t)
	cfgFile := writeConfig(t, legacytest.Config())
	c := &cli{t: t, env: map[string]string{"CLONEISO_MIGRATE_DATABASE_URL": db.OwnerURL, "CLONEISO_CONFIG": cfgFile}}
	srv := pineconetest.Start(t, &pineconetest.Options{Dimension: legacytest.VectorDimension})
	raw, err := pineconevector.NewDriver(srv.Host(), legacytest.VectorDimension, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	vec := func(id string, md map[string]any) driver.Vector {
		return driver.Vector{ID: id, Values: []float32{1, 2, 3, 4, 5, 6, 7, float32(len(id))}, Metadata: md}
	}
	big := map[string]any{"text": ""}
	j, _ := json.Marshal(big)
	big["text"] = strings.Repeat("x", vectorstore.MaxMetadataBytes-40-len(j)) // fits alone, not with the clone stamps
	put := func(ns string, vs ...driver.Vector) {
		t.Helper()
		if err := raw.Upsert(ctx, ns, vs); err != nil {
			t.Fatal(err)
		}
	}
	put("user-u001", vec("a1", map[string]any{"doc": "a"}), vec("a-big", big))
	put("user-", vec("x1", map[string]any{"doc": "x"}))
	vf := func(args ...string) []string {
		return append(args, "--pinecone-host", srv.Host(), "--dimension", "8", "--namespace-template", "user-{user_id}")
	}
	noSDKLines := func(stderr string) {
		t.Helper()
		if strings.Contains(stderr, "SDK") {
			t.Fatalf("AWS SDK lines on stderr:\n%s", stderr)
		}
	}

	c.run(exitOK, "up")
	c.run(exitDiscrepancy, "backfill") // the fixture has rows without a user
	out, errOut := c.run(exitOK, vf("plan")...)
	mustContain(t, out, "vectors (dry run): 1 to copy", "u001 1 vectors", "problem: a-big (user \"u001\"): ", "over the limit", "problem: user- ")
	noSDKLines(errOut)

	out, errOut = c.run(exitDiscrepancy, vf("vectors", "copy")...)
	mustContain(t, out, "vectors copy: 1 copied", "problem: a-big", "problem: user- ")
	noSDKLines(errOut)
	c.run(exitUsage, vf("vectors", "exclude", "--vector-ids", "a-big", "--vector-namespace", "user-u001")...) // no reason
	_, errOut = c.run(exitUsage, vf("vectors", "exclude", "--vector-ids", "a1", "--vector-namespace", "user-u001", "--reason", "x")...)
	mustContain(t, errOut, "not refused by vectors copy", "a1")
	out, _ = c.run(exitOK, vf("vectors", "exclude", "--vector-ids", "a-big", "--vector-namespace", "user-u001", "--reason", "bulk text, re-embedded later")...)
	mustContain(t, out, "1 excluded")
	c.run(exitOK, vf("vectors", "exclude", "--vector-namespace", "user-", "--reason", "test data of nobody")...)
	out, _ = c.run(exitOK, vf("vectors", "copy")...)
	mustContain(t, out, "0 copied", "2 excluded", "0 problems")
	out, _ = c.run(exitOK, vf("vectors", "verify")...)
	mustContain(t, out, "vectors: OK")

	// The legacy application writes after the copy: delete-legacy leaves it, and says so.
	put("user-u001", vec("a2", map[string]any{"doc": "a2"}))
	out, _ = c.run(exitDiscrepancy, vf("vectors", "delete-legacy")...)
	mustContain(t, out, "1 deleted", "left behind in the legacy layout: 1 vectors", "left: user-u001 a2")
	out, _ = c.run(exitOK, vf("vectors", "copy", "--restart")...)
	mustContain(t, out, "1 copied")
	out, errOut = c.run(exitOK, vf("vectors", "delete-legacy")...)
	mustContain(t, out, "1 deleted", "2 excluded")
	noSDKLines(errOut)
	out, _ = c.run(exitOK, "status")
	mustContain(t, out, "vectors copied: 2 (legacy deleted: 2)")
}
