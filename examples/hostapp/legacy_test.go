package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/ingest/embed"
	"github.com/cloneiso/cloneiso/internal/legacye2e"
	"github.com/cloneiso/cloneiso/isolationtest"
)

// TestMigratedLegacyDeployment (issue 21, item 8): the host app, started on a legacy
// deployment migrated with MIGRATION_GUIDE.md (PostgreSQL as the application role, its
// own migrations run as the owner at start-up; objects on MinIO; vectors in the
// Pinecone emulator), signs each legacy user in to the migrated clone, lists the
// migrated document to its owner only, and — once the documents are re-ingested as the
// guide says — answers the owner's question over POST /v1/chat from the owner's
// document, cited, while the other user's clone, asked the same, never gets it.
func TestMigratedLegacyDeployment(t *testing.T) {
	ctx := context.Background()
	emb, err := embed.NewLocal(nil)
	if err != nil {
		t.Fatal(err)
	}
	dep := legacye2e.Migrate(t, emb)
	app := newTestAppWith(t, false, func(c *Config) {
		c.DatabaseURL, c.MigrateURL = dep.DB.AppURL, dep.DB.OwnerURL
		c.PineconeHost = dep.Pinecone.Host()
		c.S3Bucket, c.S3Endpoint = dep.Bucket, dep.S3.Endpoint
		t.Setenv("AWS_ACCESS_KEY_ID", dep.S3.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", dep.S3.SecretKey)
		t.Setenv("AWS_REGION", dep.S3.Region)
	})
	c := client{app}
	falcon := legacye2e.FalconDoc.String()
	actors := map[string]isolationtest.Actor{}
	for _, u := range []string{"u001", "u002"} {
		status, token := c.do(ctx, isolationtest.Actor{}, http.MethodGet, "/dev/token?sub="+u, nil, nil)
		if status != http.StatusOK {
			t.Fatalf("dev token of %s: %d %s", u, status, token)
		}
		a := isolationtest.Actor{Name: u, Token: token}
		var me struct {
			TenantID string `json:"tenant_id"`
			CloneID  string `json:"clone_id"`
		}
		if err := c.json(ctx, a, http.MethodGet, "/v1/me", nil, &me); err != nil {
			t.Fatal(err)
		}
		if me.TenantID != dep.Clones[u].TenantID().String() || me.CloneID != dep.Clones[u].CloneID().String() {
			t.Fatalf("%s signs in to clone %s; want the migrated %s", u, me.CloneID, dep.Clones[u].CloneID())
		}
		actors[u] = a
	}
	// The migrated document is its owner's, and only its owner's.
	if status, body := c.do(ctx, actors["u001"], http.MethodGet, "/v1/documents", nil, nil); status != http.StatusOK || !strings.Contains(body, falcon) {
		t.Fatalf("u001's documents: %d %s", status, body)
	}
	if status, body := c.do(ctx, actors["u002"], http.MethodGet, "/v1/documents", nil, nil); status != http.StatusOK || strings.Contains(body, falcon) {
		t.Fatalf("u002's documents: %d %s", status, body)
	}
	if status, body := c.do(ctx, actors["u002"], http.MethodGet, "/v1/documents/"+falcon, nil, nil); status != http.StatusNotFound {
		t.Fatalf("u002 reading u001's document: %d %s", status, body)
	}

	// As migrated, nothing is answered from the legacy vectors.
	stream, _, err := c.chat(ctx, actors["u001"], legacye2e.Question)
	if err != nil || strings.Contains(stream, falcon) {
		t.Fatalf("u001's chat before the re-ingestion cites the document (%v):\n%s", err, stream)
	}
	for _, u := range []string{"u001", "u002"} {
		if rep, err := app.sdk.Pipeline().IngestMigrated(ctx, dep.Clones[u]); err != nil || rep.Err() != nil || rep.Ingested != 1 {
			t.Fatalf("re-ingesting %s's documents: %+v, %v", u, rep, err)
		}
	}
	stream, _, err = c.chat(ctx, actors["u001"], legacye2e.Question)
	if err != nil || !strings.Contains(stream, falcon) || !strings.Contains(stream, "Ziggy is a peregrine falcon") {
		t.Fatalf("u001's chat does not answer from, and cite, the migrated document (%v):\n%s", err, stream)
	}
	stream, _, err = c.chat(ctx, actors["u002"], legacye2e.Question)
	if err != nil || strings.Contains(stream, falcon) || strings.Contains(stream, "peregrine") || strings.Contains(stream, "north tower") {
		t.Fatalf("u002's chat reaches u001's document (%v):\n%s", err, stream)
	}
}
