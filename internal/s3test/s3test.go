// Package s3test gives tests a real S3-compatible server (MinIO in CI) through the
// environment variables written by internal/ci/minio.sh:
//
//	CLONEISO_TEST_S3_ENDPOINT    e.g. http://127.0.0.1:9000
//	CLONEISO_TEST_S3_ACCESS_KEY
//	CLONEISO_TEST_S3_SECRET_KEY
//	CLONEISO_TEST_S3_REGION      default us-east-1
//
// Without them (or when the server does not answer) tests are skipped, or fail when
// CLONEISO_REQUIRE_SERVICES=1 (see internal/testenv).
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/cloneiso/cloneiso/internal/testenv"
)

// Env is the location and root credentials of the test server.
type Env struct {
	Endpoint, AccessKey, SecretKey, Region string
}

// Lookup reads the environment; ok is false if the endpoint or credentials are unset.
func Lookup() (e Env, ok bool) {
	e = Env{
		Endpoint:  os.Getenv("CLONEISO_TEST_S3_ENDPOINT"),
		AccessKey: os.Getenv("CLONEISO_TEST_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("CLONEISO_TEST_S3_SECRET_KEY"),
		Region:    os.Getenv("CLONEISO_TEST_S3_REGION"),
	}
	if e.Region == "" {
		e.Region = "us-east-1"
	}
	return e, e.Endpoint != "" && e.AccessKey != "" && e.SecretKey != ""
}

// Require returns the test server's Env after checking that it answers, or skips t
// (fails it when services are required).
func Require(t testing.TB) Env {
	t.Helper()
	e, ok := Lookup()
	if !ok {
		testenv.Missing(t, "MinIO", "CLONEISO_TEST_S3_ENDPOINT, _ACCESS_KEY and _SECRET_KEY are not set (internal/ci/minio.sh start <dir> writes them)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.Client().ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		testenv.Missing(t, "MinIO", "server at "+e.Endpoint+" does not answer: "+err.Error())
	}
	return e
}

// Config returns an aws.Config with e's root credentials and region.
func (e Env) Config() aws.Config {
	return aws.Config{
		Region:      e.Region,
		Credentials: credentials.NewStaticCredentialsProvider(e.AccessKey, e.SecretKey, ""),
	}
}

// Client returns a path-style S3 client for e with its root credentials.
func (e Env) Client() *s3.Client {
	return s3.NewFromConfig(e.Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(e.Endpoint)
		o.UsePathStyle = true
	})
}

// NewBucket creates a uniquely named bucket (with versioning enabled if versioned)
// and removes it, with every version and upload in it, when t ends.
func NewBucket(t testing.TB, e Env, versioned bool) string {
	t.Helper()
	var rnd [8]byte
	rand.Read(rnd[:])
	name := "cloneiso-test-" + hex.EncodeToString(rnd[:])
	c := e.Client()
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	t.Cleanup(func() { Destroy(t, c, name) })
	if versioned {
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  &name,
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
		}); err != nil {
			t.Fatalf("enabling versioning on %s: %v", name, err)
		}
	}
	return name
}

// Destroy deletes every version, delete marker and multipart upload in bucket, then
// the bucket.
func Destroy(t testing.TB, c *s3.Client, bucket string) {
	t.Helper()
	ctx := context.Background()
	for {
		out, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &bucket})
		if err != nil {
			t.Errorf("cleaning up %s: %v", bucket, err)
			return
		}
		var ids []types.ObjectIdentifier
		for _, v := range out.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		for _, m := range out.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			break
		}
		if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			t.Errorf("cleaning up %s: %v", bucket, err)
			return
		}
	}
	if ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket}); err == nil {
		for _, u := range ups.Uploads {
			c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
		t.Errorf("deleting bucket %s: %v", bucket, err)
	}
}
