package s3object_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/internal/s3test"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
)

const testRole = "arn:aws:iam::000000000000:role/cloneiso-test"

func newClones(t testing.TB) (a, b clone.CloneContext) {
	t.Helper()
	tenant := clone.NewID()
	a, err1 := clone.New(tenant, clone.NewID(), clone.Principal{Subject: "alice"})
	b, err2 := clone.New(tenant, clone.NewID(), clone.Principal{Subject: "bob"})
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func open(t testing.TB, env s3test.Env, bucket string, opts *s3object.Options) *objectstore.Bucket {
	t.Helper()
	if opts == nil {
		opts = &s3object.Options{}
	}
	opts.Endpoint, opts.UsePathStyle = env.Endpoint, true
	b, err := s3object.OpenBucket(context.Background(), env.Config(), bucket, opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The server itself, not only our key checks, refuses clone A's scoped credentials
// for clone B's objects.
func TestScopedCredentialsAreRefusedByTheServer(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	b := open(t, env, bucket, nil)
	ca, cb := newClones(t)
	for _, cc := range []clone.CloneContext{ca, cb} {
		if _, err := b.Put(ctx, cc, "docs", "secret.txt", strings.NewReader("secret of "+cc.CloneID().String()), nil); err != nil {
			t.Fatal(err)
		}
	}
	keyA, _ := objectstore.Key(ca, "docs", "secret.txt")
	keyB, _ := objectstore.Key(cb, "docs", "secret.txt")
	prefixA, _ := objectstore.Prefix(ca)
	prefixB, _ := objectstore.Prefix(cb)

	stsClient := sts.NewFromConfig(env.Config(), func(o *sts.Options) { o.BaseEndpoint = aws.String(env.Endpoint) })
	creds, err := s3object.CloneCredentials(ctx, stsClient, bucket, ca, s3object.ScopedOptions{RoleARN: testRole, Duration: 15 * time.Minute, TagSession: true})
	if err != nil {
		t.Fatal(err)
	}
	if creds.SessionToken == "" || time.Until(creds.Expires) > 16*time.Minute {
		t.Fatalf("credentials are not short-lived session credentials: %+v", creds.Expires)
	}
	cfg := env.Config()
	cfg.Credentials = credentials.StaticCredentialsProvider{Value: creds}
	scoped := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(env.Endpoint); o.UsePathStyle = true })

	// A reaches A's object...
	out, err := scoped.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &keyA})
	if err != nil {
		t.Fatalf("A's credentials cannot read A's object: %v", err)
	}
	out.Body.Close()
	if _, err := scoped.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(prefixA + "docs/new"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("A's credentials cannot write in A's prefix: %v", err)
	}
	if _, err := scoped.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefixA}); err != nil {
		t.Fatalf("A's credentials cannot list A's prefix: %v", err)
	}
	// ...and MinIO answers AccessDenied for everything of B, and outside any clone.
	if _, err := scoped.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &keyB}); apiCode(err) != "AccessDenied" {
		t.Errorf("A's credentials reading B's object: %v, want AccessDenied", err)
	}
	if _, err := scoped.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(prefixB + "docs/planted"), Body: strings.NewReader("x")}); apiCode(err) != "AccessDenied" {
		t.Errorf("A's credentials writing into B's prefix: %v, want AccessDenied", err)
	}
	if _, err := scoped.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String("tenants/outside"), Body: strings.NewReader("x")}); apiCode(err) != "AccessDenied" {
		t.Errorf("A's credentials writing outside clones: %v, want AccessDenied", err)
	}
	if _, err := scoped.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefixB}); apiCode(err) != "AccessDenied" {
		t.Errorf("A's credentials listing B's prefix: %v, want AccessDenied", err)
	}
	if _, err := scoped.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &bucket}); apiCode(err) != "AccessDenied" {
		t.Errorf("A's credentials listing the bucket: %v, want AccessDenied", err)
	}
	if _, err := scoped.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: &keyA}); apiCode(err) != "AccessDenied" {
		t.Errorf("scoped credentials may delete: %v, want AccessDenied", err)
	}

	// A URL presigned with A's credentials for B's key, as if every check of ours had
	// failed, is refused by the server.
	presign := s3.NewPresignClient(scoped)
	good, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &keyA})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, good.URL); code != http.StatusOK || body != "secret of "+ca.CloneID().String() {
		t.Fatalf("A's presigned URL for A's object: %d %q", code, body)
	}
	bad, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &keyB})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := httpGet(t, bad.URL); code != http.StatusForbidden || !strings.Contains(body, "AccessDenied") {
		t.Errorf("A's presigned URL for B's object: %d %q, want 403 AccessDenied", code, body)
	}

	if _, err := s3object.SessionPolicy(bucket, "tenants/*/clones/*/"); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("SessionPolicy accepted a wildcard prefix: %v", err)
	}
}

// Signed URLs from a bucket with scoped signing carry STS session credentials.
func TestScopedSigning(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	b := open(t, env, bucket, &s3object.Options{Scoped: &s3object.ScopedOptions{RoleARN: testRole, Duration: 20 * time.Minute}})
	ca, _ := newClones(t)
	if _, err := b.Put(ctx, ca, "docs", "a", strings.NewReader("A"), nil); err != nil {
		t.Fatal(err)
	}
	u, err := b.SignedURL(ctx, ca, "docs", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "X-Amz-Security-Token=") {
		t.Errorf("signed URL not signed with session credentials: %s", u)
	}
	if code, body := httpGet(t, u); code != http.StatusOK || body != "A" {
		t.Errorf("scoped URL: %d %q", code, body)
	}
	// Credentials are cached per clone, never shared: B's URL is signed by another
	// session, and each works for its own object.
	_, cb := newClones(t)
	if _, err := b.Put(ctx, cb, "docs", "a", strings.NewReader("B"), nil); err != nil {
		t.Fatal(err)
	}
	ub, err := b.SignedURL(ctx, cb, "docs", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := b.SignedURL(ctx, ca, "docs", "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accessKey(t, u) != accessKey(t, u2) || accessKey(t, u) == accessKey(t, ub) {
		t.Errorf("credential reuse wrong: A %s, A again %s, B %s", accessKey(t, u), accessKey(t, u2), accessKey(t, ub))
	}
	if code, body := httpGet(t, ub); code != http.StatusOK || body != "B" {
		t.Errorf("B's scoped URL: %d %q", code, body)
	}
	// The credentials must outlive the URL: 15 min URL + 1 min margin needs > 16 min.
	if _, err := b.SignedURL(ctx, ca, "docs", "a", &objectstore.SignedURLOptions{Expiry: 20 * time.Minute}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("URL outliving its credentials: %v", err)
	}
}

func TestVersionedWipeLeavesNothing(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, true)
	sink := &audit.Memory{}
	b := open(t, env, bucket, &s3object.Options{Bucket: &objectstore.Options{Audit: sink}})
	ca, cb := newClones(t)
	raw := env.Client()
	for i := range 3 {
		for _, cc := range []clone.CloneContext{ca, cb} {
			if _, err := b.Put(ctx, cc, "docs", "versions.txt", strings.NewReader(strings.Repeat("v", i+1)), nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := b.Put(ctx, ca, "docs", "deleted.txt", strings.NewReader("gone?"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, ca, "docs", "deleted.txt"); err != nil {
		t.Fatal(err)
	}
	prefixA, _ := objectstore.Prefix(ca)
	// A plain Delete on a versioned bucket leaves the data: prove it, then wipe.
	v, err := raw.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &prefixA})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Versions) != 4 || len(v.DeleteMarkers) != 1 {
		t.Fatalf("before wipe: %d versions, %d markers; want 4 and 1", len(v.Versions), len(v.DeleteMarkers))
	}
	// An unfinished upload (e.g. a crashed overwrite). MinIO lists unfinished uploads
	// only by exact key, not by prefix, so the driver also asks per listed key.
	if _, err := raw.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: aws.String(prefixA + "docs/versions.txt")}); err != nil {
		t.Fatal(err)
	}
	res, err := b.DeleteClone(ctx, ca)
	if err != nil {
		t.Fatal(err)
	}
	if res.Objects != 4 || res.DeleteMarkers != 1 || res.Uploads != 1 {
		t.Errorf("DeleteClone report %+v, want 4 objects, 1 marker, 1 upload", res)
	}
	v, err = raw.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &prefixA})
	if err != nil {
		t.Fatal(err)
	}
	u, err := raw.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: aws.String(prefixA + "docs/versions.txt")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(v.Versions) + len(v.DeleteMarkers) + len(u.Uploads); n != 0 {
		t.Errorf("after wipe %d versions, %d markers, %d uploads remain", len(v.Versions), len(v.DeleteMarkers), len(u.Uploads))
	}
	if got, err := b.ReadAll(ctx, cb, "docs", "versions.txt"); err != nil || string(got) != "vvv" {
		t.Errorf("B's object after wiping A: %q, %v", got, err)
	}
	prefixB, _ := objectstore.Prefix(cb)
	if v, _ := raw.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket, Prefix: &prefixB}); len(v.Versions) != 3 {
		t.Errorf("B's versions after wiping A: %d, want 3", len(v.Versions))
	}
	if ev := sink.Events(); len(ev) != 1 || ev[0].Outcome != audit.Allowed || ev[0].Detail["objects"] != "4" {
		t.Errorf("audit = %+v", ev)
	}
}

func TestMultipartPutOfUnknownLength(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	b := open(t, env, bucket, &s3object.Options{PartSize: 5 << 20})
	ca, _ := newClones(t)
	data := make([]byte, 11<<20+17)
	rand.Read(data)
	// io.MultiReader hides the Seeker: the driver must stream it in parts.
	a, err := b.Put(ctx, ca, "docs", "big.bin", io.MultiReader(bytes.NewReader(data)), &objectstore.WriteOptions{ContentType: "application/octet-stream"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != int64(len(data)) {
		t.Errorf("Put size %d", a.Size)
	}
	got, err := b.ReadAll(ctx, ca, "docs", "big.bin")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	h, err := b.Head(ctx, ca, "docs", "big.bin")
	if err != nil || h.ContentType != "application/octet-stream" {
		t.Errorf("Head = %+v, %v", h, err)
	}
	// A reader failing after two parts leaves neither an object nor an upload.
	r := io.MultiReader(bytes.NewReader(data[:11<<20]), iotest.ErrReader(errors.New("client went away")))
	if _, err := b.Put(ctx, ca, "docs", "broken.bin", r, nil); err == nil {
		t.Fatal("Put of a failing reader succeeded")
	}
	if _, err := b.Head(ctx, ca, "docs", "broken.bin"); !errors.Is(err, clone.ErrNotFound) {
		t.Errorf("failed multipart Put left an object: %v", err)
	}
	u, err := env.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil || len(u.Uploads) != 0 {
		t.Errorf("failed multipart Put left %d uploads (%v)", len(u.Uploads), err)
	}
}

func TestBucketPolicyAppliesOnMinIO(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	policy, err := s3object.BucketPolicy(s3object.BucketPolicyOptions{Bucket: bucket, AppPrincipals: []string{"arn:aws:iam::000000000000:role/cloneiso-app"}})
	if err != nil {
		t.Fatal(err)
	}
	raw := env.Client()
	if _, err := raw.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: &policy}); err != nil {
		t.Fatalf("MinIO refused the generated policy: %v\n%s", err, policy)
	}
	got, err := raw.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	var doc s3object.PolicyDocument
	if err := json.Unmarshal([]byte(aws.ToString(got.Policy)), &doc); err != nil || len(doc.Statement) != 5 {
		t.Errorf("policy read back: %d statements, %v", len(doc.Statement), err)
	}
	// MinIO does not evaluate principal tags; the optional tenant statement is for AWS.
	withTags, _ := s3object.BucketPolicy(s3object.BucketPolicyOptions{Bucket: bucket, AppPrincipals: []string{"arn:aws:iam::000000000000:role/cloneiso-app"}, TenantConfinement: true})
	if _, err := raw.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: &withTags}); err != nil {
		t.Logf("as documented, MinIO refuses the TenantConfinement statement: %v", err)
	}
	if _, err := raw.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &bucket, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	// Plain-HTTP anonymous access is refused.
	if code, _ := httpGet(t, env.Endpoint+"/"+bucket+"/tenants/x"); code != http.StatusForbidden {
		t.Errorf("anonymous GET over HTTP: %d, want 403", code)
	}
}

func TestErrorsAreClassifiedAndVendorErrorsReachable(t *testing.T) {
	env := s3test.Require(t)
	ctx := context.Background()
	bucket := s3test.NewBucket(t, env, false)
	b := open(t, env, bucket, nil)
	ca, _ := newClones(t)
	_, err := b.Get(ctx, ca, "docs", "missing", nil)
	if !errors.Is(err, clone.ErrNotFound) || clone.HTTPStatus(err) != http.StatusNotFound {
		t.Fatalf("missing object: %v", err)
	}
	var nsk *types.NoSuchKey
	if !b.ErrorAs(err, &nsk) {
		t.Errorf("ErrorAs does not reach *types.NoSuchKey in %v", err)
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "NoSuchKey" {
		t.Errorf("errors.As does not reach smithy.APIError in %v", err)
	}
	if _, err := b.Head(ctx, ca, "docs", "missing"); !errors.Is(err, clone.ErrNotFound) {
		t.Errorf("Head of missing: %v", err)
	}
	var client *s3.Client
	if !b.As(&client) || client == nil {
		t.Error("As(**s3.Client) failed")
	}
	gone := open(t, env, "cloneiso-no-such-bucket", nil)
	if _, err := gone.Put(ctx, ca, "docs", "x", strings.NewReader("x"), nil); !errors.Is(err, clone.ErrUnavailable) {
		t.Errorf("Put to a missing bucket: %v, want ErrUnavailable", err)
	}
	if _, err := gone.Get(ctx, ca, "docs", "x", &objectstore.ReadOptions{Offset: 1}); !errors.Is(err, clone.ErrUnavailable) && !errors.Is(err, clone.ErrNotFound) {
		t.Errorf("Get from a missing bucket: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Head(cctx, ca, "docs", "x"); !errors.Is(err, clone.ErrCanceled) {
		t.Errorf("cancelled context: %v, want ErrCanceled", err)
	}
}

func accessKey(t *testing.T, u string) string {
	t.Helper()
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	cred := pu.Query().Get("X-Amz-Credential")
	key, _, _ := strings.Cut(cred, "/")
	if key == "" {
		t.Fatalf("no credential in %s", u)
	}
	return key
}
