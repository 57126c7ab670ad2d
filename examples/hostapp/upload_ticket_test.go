package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/internal/s3test"
)

// POST /v1/uploads on S3 with CLONEISO_S3_ROLE_ARN returns a ticket signed by the
// clone's STS session (a session token and an access key that is not the
// application's), not by the application's own key.
func TestUploadTicketSignedByCloneSession(t *testing.T) {
	env := s3test.Require(t)
	app := newTestAppWith(t, true, nil)
	if app.cfg.S3Bucket == "" || app.cfg.S3RoleARN == "" {
		t.Fatal("the real configuration does not use S3 with a role")
	}
	c := client{app}
	a, err := c.newActor(t.Context(), "A")
	if err != nil {
		t.Fatal(err)
	}
	var tk struct {
		Upload, URL string
		Fields      map[string]string
	}
	if err := c.json(t.Context(), a, http.MethodPost, "/v1/uploads", map[string]string{"content_type": "text/plain"}, &tk); err != nil {
		t.Fatal(err)
	}
	key, _, _ := strings.Cut(tk.Fields["X-Amz-Credential"], "/")
	if tk.Fields["X-Amz-Security-Token"] == "" || key == "" || key == env.AccessKey {
		t.Fatalf("upload ticket not signed by the clone's session: access key %q (application %q), session token %t",
			key, env.AccessKey, tk.Fields["X-Amz-Security-Token"] != "")
	}
}
