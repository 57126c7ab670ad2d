package s3object_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
)

// Open a clone-scoped bucket on an S3-compatible server and hand out a presigned URL
// signed with STS credentials that only reach the calling clone's prefix.
func ExampleOpenBucket() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		panic(err)
	}
	b, err := s3object.OpenBucket(ctx, cfg, "cloneiso-objects", &s3object.Options{
		Endpoint:     "http://127.0.0.1:9000", // MinIO; "" for AWS
		UsePathStyle: true,
		Scoped:       &s3object.ScopedOptions{RoleARN: "arn:aws:iam::123456789012:role/cloneiso-app", Duration: time.Hour},
	})
	if err != nil {
		panic(err)
	}
	cc, _ := clone.FromContext(ctx) // set by the clone middleware in a real handler
	if _, err := b.Put(ctx, cc, "documents", "cv.pdf", strings.NewReader("%PDF-1.7 ..."), &objectstore.WriteOptions{ContentType: "application/pdf"}); err != nil {
		fmt.Println(clone.HTTPStatus(err)) // 401 here: there is no clone context
		return
	}
	u, _ := b.SignedURL(ctx, cc, "documents", "cv.pdf", &objectstore.SignedURLOptions{Method: http.MethodGet, Expiry: 10 * time.Minute})
	fmt.Println(u)
}

// The policies an operator applies: the bucket policy once per bucket, the session
// policy (built by the driver per clone) for illustration.
func ExampleBucketPolicy() {
	policy, err := s3object.BucketPolicy(s3object.BucketPolicyOptions{
		Bucket:            "cloneiso-objects",
		AppPrincipals:     []string{"arn:aws:iam::123456789012:role/cloneiso-app"},
		TenantConfinement: true,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.Count(policy, `"Sid"`), "statements")
	cc, _ := clone.Parse("6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f", "0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718", clone.Principal{})
	prefix, _ := objectstore.Prefix(cc)
	session, _ := s3object.SessionPolicy("cloneiso-objects", prefix)
	fmt.Println(session)
	// Output:
	// 6 statements
	// {"Version":"2012-10-17","Statement":[{"Sid":"CloneObjects","Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::cloneiso-objects/tenants/6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f/clones/0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718/*"]},{"Sid":"CloneListing","Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::cloneiso-objects"],"Condition":{"StringLike":{"s3:prefix":["tenants/6f1c1a52-8a57-4c1e-9a0e-1d2b3c4d5e6f/clones/0b7e2a10-5c3d-4e8f-a1b2-c3d4e5f60718/*"]}}}]}
}
