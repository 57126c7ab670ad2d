package s3object_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/s3object"
)

func TestSessionPolicy(t *testing.T) {
	cc, _ := clone.New(clone.NewID(), clone.NewID(), clone.Principal{})
	prefix, _ := objectstore.Prefix(cc)
	js, err := s3object.SessionPolicy("my-bucket", prefix)
	if err != nil {
		t.Fatal(err)
	}
	var doc s3object.PolicyDocument
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Statement) != 2 || doc.Statement[0].Resource[0] != "arn:aws:s3:::my-bucket/"+prefix+"*" {
		t.Errorf("policy = %s", js)
	}
	if strings.Count(js, "*") != 2 {
		t.Errorf("unexpected wildcards in %s", js)
	}
	for _, p := range []string{"", "tenants/", prefix + "docs/", strings.ToUpper(prefix), "tenants/*/clones/*/", prefix[:len(prefix)-1]} {
		if _, err := s3object.SessionPolicy("my-bucket", p); !errors.Is(err, clone.ErrInvalidInput) {
			t.Errorf("SessionPolicy(%q) = %v", p, err)
		}
	}
	if _, err := s3object.SessionPolicy("my*bucket", prefix); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("wildcard bucket accepted: %v", err)
	}
}

func TestBucketPolicy(t *testing.T) {
	_, err := s3object.BucketPolicy(s3object.BucketPolicyOptions{Bucket: "b", AppPrincipals: []string{"arn:aws:iam::1:role/app"}})
	if err == nil {
		t.Fatal("3-char minimum bucket name not enforced")
	}
	js, err := s3object.BucketPolicy(s3object.BucketPolicyOptions{Bucket: "bucket", AppPrincipals: []string{"arn:aws:iam::1:role/app"}, TenantConfinement: true})
	if err != nil {
		t.Fatal(err)
	}
	var doc s3object.PolicyDocument
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatal(err)
	}
	sids := map[string]s3object.Statement{}
	for _, s := range doc.Statement {
		sids[s.Sid] = s
	}
	if s := sids["DenyInsecureTransport"]; s.Effect != "Deny" || s.Condition["Bool"]["aws:SecureTransport"] != "false" {
		t.Errorf("no TLS enforcement: %+v", s)
	}
	if s := sids["AppTenantsObjects"]; s.Effect != "Allow" || s.Resource[0] != "arn:aws:s3:::bucket/tenants/*" {
		t.Errorf("app statement: %+v", s)
	}
	if s := sids["AppDenyOutsideTenants"]; s.Effect != "Deny" || s.NotResource[0] != "arn:aws:s3:::bucket/tenants/*" {
		t.Errorf("app deny: %+v", s)
	}
	if s := sids["TenantConfinement"]; !strings.Contains(s.NotResource[0], "${aws:PrincipalTag/cloneiso-tenant-id}") {
		t.Errorf("tenant confinement: %+v", s)
	}
	if _, err := s3object.BucketPolicy(s3object.BucketPolicyOptions{Bucket: "bucket", AppPrincipals: []string{"*"}}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("wildcard principal accepted: %v", err)
	}
}

func TestCloneCredentialsValidatesBeforeCallingSTS(t *testing.T) {
	ctx := t.Context()
	cc, _ := clone.New(clone.NewID(), clone.NewID(), clone.Principal{})
	if _, err := s3object.CloneCredentials(ctx, nil, "bucket", cc, s3object.ScopedOptions{RoleARN: "arn:aws:iam::1:role/r"}); !errors.Is(err, clone.ErrInvalidInput) {
		t.Errorf("nil client: %v", err)
	}
	if _, err := s3object.CloneCredentials(ctx, nil, "bucket", clone.CloneContext{}, s3object.ScopedOptions{RoleARN: "arn:aws:iam::1:role/r"}); !errors.Is(err, clone.ErrNoCloneContext) {
		t.Errorf("no clone context: %v", err)
	}
}
