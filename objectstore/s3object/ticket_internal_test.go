package s3object

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/objectstore"
)

// postForm POSTs fields and content as a browser form upload would and returns the
// status and body.
func postForm(t *testing.T, url string, fields map[string]string, content string) (int, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := mw.CreateFormFile("file", "upload")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(fw, content)
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Upload tickets of a scoped bucket are signed with the clone's STS session
// credentials, not the application's (aws-sdk-go-v2's PresignPostObject ignores
// per-call client options), and those credentials are confined by the server: a POST
// policy widened to the whole bucket and signed with the very same credentials is
// refused by MinIO for another clone's key.
func TestUploadTicketSignedWithCloneCredentials(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	d, err := openDriver(ctx, env.Config(), bucket, &Options{Endpoint: env.Endpoint, UsePathStyle: true,
		Scoped: &ScopedOptions{RoleARN: "arn:aws:iam::000000000000:role/cloneiso-test", Duration: 20 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := objectstore.NewBucket(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	tenant := clone.NewID()
	ca, err1 := clone.New(tenant, clone.NewID(), clone.Principal{Subject: "alice"})
	cb, err2 := clone.New(tenant, clone.NewID(), clone.Principal{Subject: "bob"})
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	prefixA, _ := objectstore.Prefix(ca)
	prefixB, _ := objectstore.Prefix(cb)

	tk, err := b.UploadTicket(ctx, ca, "uploads", &objectstore.UploadTicketOptions{Name: "a.txt", ContentType: "text/plain", MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	// What the ticket carries: a session token and an access key that is not the
	// application's, both those of the clone's cached STS session.
	ticketKey, _, _ := strings.Cut(tk.Fields["X-Amz-Credential"], "/")
	token := tk.Fields["X-Amz-Security-Token"]
	if token == "" || ticketKey == "" || ticketKey == env.AccessKey {
		t.Fatalf("upload ticket signed with the application's credentials: access key %q (application %q), session token %t", ticketKey, env.AccessKey, token != "")
	}
	d.mu.Lock()
	sg := d.signers[prefixA]
	d.mu.Unlock()
	if sg == nil || sg.creds.AccessKeyID != ticketKey || sg.creds.SessionToken != token {
		t.Fatalf("ticket credentials are not the clone's STS session")
	}
	// Signed links use the same session.
	u, err := b.SignedURL(ctx, ca, "uploads", "a.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "X-Amz-Credential="+ticketKey+"%2F") || !strings.Contains(u, "X-Amz-Security-Token=") {
		t.Errorf("signed URL not signed by the clone's session: %s", u)
	}
	// Another clone's ticket is signed by another session.
	tkB, err := b.UploadTicket(ctx, cb, "uploads", &objectstore.UploadTicketOptions{ContentType: "text/plain", MaxSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if keyB, _, _ := strings.Cut(tkB.Fields["X-Amz-Credential"], "/"); keyB == ticketKey || tkB.Fields["X-Amz-Security-Token"] == token {
		t.Errorf("two clones' tickets share credentials %s", keyB)
	}
	// The ticket works for its own key.
	if code, body := postForm(t, tk.URL, tk.Fields, "hello"); code/100 != 2 {
		t.Fatalf("POST with the ticket: %d %s", code, body)
	}
	if _, err := b.VerifyUpload(ctx, ca, tk); err != nil {
		t.Fatal(err)
	}

	// The attacker's view: the ticket's own credentials (here taken from the cache, as
	// if they had leaked) sign a POST policy that allows any key in the bucket.
	widened := func(t *testing.T, creds aws.Credentials, key string) (int, string) {
		t.Helper()
		cfg := env.Config()
		cfg.Credentials = credentials.StaticCredentialsProvider{Value: creds}
		client := s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.BaseEndpoint = aws.String(env.Endpoint)
			o.UsePathStyle = true
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		})
		r, err := s3.NewPresignClient(client).PresignPostObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key}, func(o *s3.PresignPostOptions) {
			o.Expires = 5 * time.Minute
			o.Conditions = []any{[]any{"starts-with", "$key", ""}, []any{"content-length-range", 0, 1000}}
		})
		if err != nil {
			t.Fatal(err)
		}
		return postForm(t, r.URL, r.Values, "planted by "+creds.AccessKeyID)
	}
	// Control: the widened policy is well-formed and accepted inside A's prefix...
	if code, body := widened(t, sg.creds, prefixA+"uploads/widened.txt"); code/100 != 2 {
		t.Fatalf("widened policy inside A's prefix: %d %s (the test's own signing is broken)", code, body)
	}
	// ...and the server, not any check of ours, refuses it for B's prefix and outside
	// any clone: the session policy confines the credentials.
	for _, key := range []string{prefixB + "uploads/planted.txt", "tenants/planted.txt", "planted.txt"} {
		code, body := widened(t, sg.creds, key)
		if code != http.StatusForbidden || !strings.Contains(body, "AccessDenied") {
			t.Errorf("widened policy signed with A's session for %q: %d %s, want 403 AccessDenied", key, code, body)
		}
		if _, err := env.Client().HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key}); err == nil {
			t.Errorf("object %q was stored through A's widened policy", key)
		}
	}
	// The same widened policy signed with the application's credentials is accepted:
	// the refusal above is the session policy's doing.
	app, err := env.Config().Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := widened(t, app, prefixB+"uploads/by-app.txt"); code/100 != 2 {
		t.Errorf("widened policy signed by the application: %d %s, want success", code, body)
	}
}

// Clones racing through a cold signer cache never get each other's credentials.
func TestSignersNeverSharedAcrossClones(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	d, err := openDriver(ctx, env.Config(), bucket, &Options{Endpoint: env.Endpoint, UsePathStyle: true,
		Scoped: &ScopedOptions{RoleARN: "arn:aws:iam::000000000000:role/cloneiso-test", Duration: 20 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := objectstore.NewBucket(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	const clones, perClone = 4, 3
	ccs := make([]clone.CloneContext, clones)
	tenant := clone.NewID()
	for i := range ccs {
		if ccs[i], err = clone.New(tenant, clone.NewID(), clone.Principal{Subject: "user"}); err != nil {
			t.Fatal(err)
		}
	}
	type result struct {
		clone int
		tk    *objectstore.UploadTicket
		err   error
	}
	start := make(chan struct{})
	results := make(chan result, clones*perClone)
	for i := range clones {
		for range perClone {
			go func() {
				<-start
				tk, err := b.UploadTicket(ctx, ccs[i], "uploads", &objectstore.UploadTicketOptions{ContentType: "text/plain", MaxSize: 100})
				results <- result{i, tk, err}
			}()
		}
	}
	close(start)
	owner := map[string]int{} // access key -> clone
	check := func(r result) {
		t.Helper()
		if r.err != nil {
			t.Fatal(r.err)
		}
		key, _, _ := strings.Cut(r.tk.Fields["X-Amz-Credential"], "/")
		if key == "" || key == env.AccessKey || r.tk.Fields["X-Amz-Security-Token"] == "" {
			t.Fatalf("clone %d's ticket is not signed by a session: %q", r.clone, key)
		}
		if o, seen := owner[key]; seen && o != r.clone {
			t.Fatalf("clones %d and %d share the signing credentials %s", o, r.clone, key)
		}
		owner[key] = r.clone
		if code, body := postForm(t, r.tk.URL, r.tk.Fields, "x"); code/100 != 2 {
			t.Errorf("clone %d's ticket: %d %s", r.clone, code, body)
		}
	}
	for range clones * perClone {
		check(<-results)
	}
	// Then once more each, from the warm cache.
	for i := range clones {
		tk, err := b.UploadTicket(ctx, ccs[i], "uploads", &objectstore.UploadTicketOptions{ContentType: "text/plain", MaxSize: 100})
		check(result{i, tk, err})
	}
}
