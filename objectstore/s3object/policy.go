package s3object

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
)

// PolicyDocument is an IAM / S3 bucket policy document.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a [PolicyDocument].
type Statement struct {
	Sid         string                    `json:"Sid,omitempty"`
	Effect      string                    `json:"Effect"`
	Principal   map[string][]string       `json:"Principal,omitempty"`
	Action      []string                  `json:"Action"`
	Resource    []string                  `json:"Resource,omitempty"`
	NotResource []string                  `json:"NotResource,omitempty"`
	Condition   map[string]map[string]any `json:"Condition,omitempty"`
}

func validBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// clonePrefix checks that prefix is exactly "tenants/{uuid}/clones/{uuid}/" in
// canonical form, so nothing (no "*", "?" or "${...}") can widen a policy built from it.
func clonePrefix(prefix string) bool {
	parts := strings.Split(prefix, "/")
	if len(parts) != 5 || parts[0] != "tenants" || parts[2] != "clones" || parts[4] != "" {
		return false
	}
	_, err1 := clone.ParseID(parts[1])
	_, err2 := clone.ParseID(parts[3])
	return err1 == nil && err2 == nil
}

// SessionPolicy returns the inline session policy that confines STS credentials to one
// clone's prefix (as returned by objectstore.Prefix) in bucket: s3:GetObject and
// s3:PutObject on "{prefix}*", and s3:ListBucket only with an s3:prefix under it. A
// session policy can only narrow the assumed role's permissions, never widen them.
func SessionPolicy(bucket, prefix string) (string, error) {
	const op = "s3object.SessionPolicy"
	if !validBucketName(bucket) {
		return "", errs.New(errs.InvalidInput, op, "invalid bucket name")
	}
	if !clonePrefix(prefix) {
		return "", errs.New(errs.InvalidInput, op, "prefix must be tenants/{tenant_id}/clones/{clone_id}/")
	}
	doc := PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		{
			Sid: "CloneObjects", Effect: "Allow",
			Action:   []string{"s3:GetObject", "s3:PutObject"},
			Resource: []string{"arn:aws:s3:::" + bucket + "/" + prefix + "*"},
		},
		{
			Sid: "CloneListing", Effect: "Allow",
			Action:    []string{"s3:ListBucket"},
			Resource:  []string{"arn:aws:s3:::" + bucket},
			Condition: map[string]map[string]any{"StringLike": {"s3:prefix": []string{prefix + "*"}}},
		},
	}}
	js, err := json.Marshal(doc)
	return string(js), err
}

// CloneCredentials returns short-lived credentials (STS AssumeRole of opts.RoleARN for
// opts.Duration, 15 minutes to 12 hours, 0 meaning one hour; session tags if
// opts.TagSession) whose session policy ([SessionPolicy]) only reaches cc's objects in
// bucket. Hand them to a clone-side process that talks to S3 directly; the server
// refuses every other clone's objects with AccessDenied. On MinIO the role ARN is
// ignored and the session derives from the caller's own identity.
func CloneCredentials(ctx context.Context, client *sts.Client, bucket string, cc clone.CloneContext, opts ScopedOptions) (aws.Credentials, error) {
	const op = "s3object.CloneCredentials"
	prefix, err := objectstore.Prefix(cc)
	if err != nil {
		return aws.Credentials{}, err
	}
	if client == nil || opts.RoleARN == "" {
		return aws.Credentials{}, errs.New(errs.InvalidInput, op, "an STS client and a role ARN are required")
	}
	if opts.Duration == 0 {
		opts.Duration = time.Hour
	}
	if opts.Duration < 15*time.Minute || opts.Duration > 12*time.Hour {
		return aws.Credentials{}, errs.New(errs.InvalidInput, op, "duration must be between 15 minutes and 12 hours")
	}
	c, err := assume(ctx, client, bucket, prefix, opts)
	if err != nil {
		var e *errs.Error
		if errorsAs(err, &e) {
			return aws.Credentials{}, err
		}
		return aws.Credentials{}, errs.Wrap(kindOf(err), op, err, "AssumeRole")
	}
	return c, nil
}

// Session tags set by [ScopedOptions.TagSession]. TenantTagKey (also usable as an IAM
// principal tag) carries the tenant's ID for [BucketPolicy]'s per-tenant confinement;
// CloneTagKey carries the clone's ID, for the operator's own policies and logs.
const (
	TenantTagKey = "cloneiso-tenant-id"
	CloneTagKey  = "cloneiso-clone-id"
)

// BucketPolicyOptions describe the bucket policy an operator applies.
type BucketPolicyOptions struct {
	// Bucket is the bucket's name.
	Bucket string
	// AppPrincipals are the IAM principal ARNs of the application (its role). They get
	// object and listing access to "tenants/*" only.
	AppPrincipals []string
	// TenantConfinement adds a statement that denies any principal carrying the
	// session tag [TenantTagKey] access outside "tenants/${aws:PrincipalTag/...}/".
	// AWS supports it; MinIO does not evaluate principal tags, so leave it off there.
	TenantConfinement bool
}

// BucketPolicy returns the JSON bucket policy for the SDK's bucket:
//
//   - DenyInsecureTransport: every request over plain HTTP is denied (aws:SecureTransport).
//   - AppTenantsObjects / AppTenantsListing / AppListUploads: the application's
//     principals may read, write and delete objects (with versions and multipart
//     uploads) under "tenants/*", list objects and versions only with an s3:prefix
//     under "tenants/", and list unfinished uploads (an action without a prefix
//     condition key).
//   - AppDenyOutsideTenants: the same principals are denied object access anywhere
//     else, whatever their IAM policies say.
//   - TenantConfinement (optional): principals with a tenant session tag are denied
//     objects outside their tenant's prefix (policy variables).
//
// Per-clone confinement is the job of [SessionPolicy], because clone IDs are too many
// for static policies.
func BucketPolicy(opts BucketPolicyOptions) (string, error) {
	const op = "s3object.BucketPolicy"
	if !validBucketName(opts.Bucket) {
		return "", errs.New(errs.InvalidInput, op, "invalid bucket name")
	}
	if len(opts.AppPrincipals) == 0 {
		return "", errs.New(errs.InvalidInput, op, "at least one application principal is required")
	}
	for _, p := range opts.AppPrincipals {
		if !strings.HasPrefix(p, "arn:") || strings.ContainsAny(p, "*? \"") {
			return "", errs.New(errs.InvalidInput, op, "application principals must be IAM ARNs without wildcards")
		}
	}
	arn := "arn:aws:s3:::" + opts.Bucket
	objectActions := []string{
		"s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion",
		"s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
	}
	app := map[string][]string{"AWS": opts.AppPrincipals}
	doc := PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		{
			Sid: "DenyInsecureTransport", Effect: "Deny", Principal: map[string][]string{"AWS": {"*"}},
			Action: []string{"s3:*"}, Resource: []string{arn, arn + "/*"},
			Condition: map[string]map[string]any{"Bool": {"aws:SecureTransport": "false"}},
		},
		{
			Sid: "AppTenantsObjects", Effect: "Allow", Principal: app,
			Action: objectActions, Resource: []string{arn + "/tenants/*"},
		},
		{
			Sid: "AppTenantsListing", Effect: "Allow", Principal: app,
			Action:    []string{"s3:ListBucket", "s3:ListBucketVersions"},
			Resource:  []string{arn},
			Condition: map[string]map[string]any{"StringLike": {"s3:prefix": []string{"tenants/*"}}},
		},
		{
			// s3:prefix is not a condition key of ListBucketMultipartUploads.
			Sid: "AppListUploads", Effect: "Allow", Principal: app,
			Action: []string{"s3:ListBucketMultipartUploads"}, Resource: []string{arn},
		},
		{
			Sid: "AppDenyOutsideTenants", Effect: "Deny", Principal: app,
			Action: objectActions, NotResource: []string{arn + "/tenants/*"},
		},
	}}
	if opts.TenantConfinement {
		doc.Statement = append(doc.Statement, Statement{
			Sid: "TenantConfinement", Effect: "Deny", Principal: map[string][]string{"AWS": {"*"}},
			Action:      objectActions,
			NotResource: []string{arn + "/tenants/${aws:PrincipalTag/" + TenantTagKey + "}/*"},
			Condition:   map[string]map[string]any{"Null": {"aws:PrincipalTag/" + TenantTagKey: "false"}},
		})
	}
	js, err := json.MarshalIndent(doc, "", "  ")
	return string(js), err
}
