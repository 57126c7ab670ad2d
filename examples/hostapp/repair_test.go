package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/ingest"
)

// TestRepair: a clone's vectors are lost while its documents stay ready (the issue's
// scenario); the chat then misses the document. The tenant admin's POST /v1/repair,
// and the start-up repair, restore them; another clone's repair touches nothing of it.
func TestRepair(t *testing.T) {
	var logs bytes.Buffer
	app := newTestAppWith(t, false, nil)
	app.log = slog.New(slog.NewTextHandler(&logs, nil))
	c := client{app}
	ctx := t.Context()
	a, err := c.newActor(ctx, "A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.newActor(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	body, hdr := multipartDocument("dog", "Our office dog is called Biscuit.")
	if status, text := c.do(ctx, a, http.MethodPost, "/v1/documents", body, hdr); status != http.StatusCreated {
		t.Fatalf("upload: %d %s", status, text)
	}
	answers := func() bool {
		t.Helper()
		stream, _, err := c.chat(ctx, a, "What is the dog called?")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Contains(stream, "Biscuit")
	}
	lose := func() {
		t.Helper()
		if err := app.index.DeleteAll(ctx, a.CC); err != nil {
			t.Fatal(err)
		}
		if answers() {
			t.Fatal("answered from a document without vectors")
		}
	}
	if !answers() {
		t.Fatal("not answered before the loss")
	}

	lose()
	var rep ingest.ReconcileReport
	if err := c.json(ctx, b, http.MethodPost, "/v1/repair", nil, &rep); err != nil || rep != (ingest.ReconcileReport{}) {
		t.Fatalf("B's repair: %+v, %v", rep, err)
	}
	if answers() {
		t.Fatal("B's repair restored A's vectors")
	}
	if err := c.json(ctx, a, http.MethodPost, "/v1/repair", nil, &rep); err != nil || rep.VectorsRestored == 0 || rep.DocumentsRepaired != 1 {
		t.Fatalf("A's repair: %+v, %v", rep, err)
	}
	if !answers() {
		t.Fatal("not answered after the repair")
	}

	lose()
	if err := app.repairAll(ctx); err != nil {
		t.Fatal(err)
	}
	if !answers() {
		t.Fatal("not answered after the start-up repair")
	}
	var done map[string]any
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, `msg="start-up repair done"`) {
			done = map[string]any{"line": line}
		}
	}
	if done == nil || !strings.Contains(done["line"].(string), "documents_repaired=1") {
		t.Fatalf("start-up repair logs:\n%s", logs.String())
	}
}
