package s3object

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

var _ driver.ExposureChecker = (*s3Bucket)(nil)

// CheckExposure tries to list the bucket without credentials and reads its policy. The
// anonymous listing must be refused (HTTP 401 or 403): any other failure means the
// probe proved nothing, and is an error rather than a pass. A policy statement that
// allows a principal of "*" (in any spelling) without conditions is reported.
func (b *s3Bucket) CheckExposure(ctx context.Context) ([]driver.Exposure, error) {
	var found []driver.Exposure
	anon := s3.New(b.client.Options(), func(o *s3.Options) { o.Credentials = aws.AnonymousCredentials{} })
	_, err := anon.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b.bucket), MaxKeys: aws.Int32(1)})
	var re *smithyhttp.ResponseError
	switch {
	case err == nil:
		found = append(found, driver.Exposure{Code: objectstore.ExposureAnonymousList,
			Detail: fmt.Sprintf("anyone can list bucket %s without credentials", b.bucket)})
	case errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusForbidden || re.HTTPStatusCode() == http.StatusUnauthorized):
		// Refused: as it should be.
	default:
		return nil, fmt.Errorf("anonymous listing probe of bucket %s was neither allowed nor refused: %w", b.bucket, err)
	}
	out, err := b.client.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(b.bucket)})
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NoSuchBucketPolicy" || ae.ErrorCode() == "NotImplemented") {
		return found, nil
	}
	if err != nil {
		return nil, err
	}
	var policy struct {
		Statement []struct {
			Effect    string
			Principal any
			Action    any
			Condition map[string]any
		}
	}
	if err := json.Unmarshal([]byte(aws.ToString(out.Policy)), &policy); err != nil {
		return nil, fmt.Errorf("parse the policy of bucket %s: %w", b.bucket, err)
	}
	for _, st := range policy.Statement {
		if strings.EqualFold(st.Effect, "Allow") && everyone(st.Principal) && len(st.Condition) == 0 {
			found = append(found, driver.Exposure{Code: objectstore.ExposurePublicPolicy,
				Detail: fmt.Sprintf("bucket %s's policy allows %v to everyone without conditions", b.bucket, st.Action)})
		}
	}
	return found, nil
}

// everyone reports whether a policy principal is "*" in any of its spellings.
func everyone(p any) bool {
	switch v := p.(type) {
	case string:
		return v == "*"
	case []any:
		for _, x := range v {
			if everyone(x) {
				return true
			}
		}
	case map[string]any:
		for _, x := range v {
			if everyone(x) {
				return true
			}
		}
	}
	return false
}
