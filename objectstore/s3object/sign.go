package s3object

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

// signingCredentials returns the credentials to sign for scope (a clone prefix) with a
// URL living expiry: nil (the client's own) unless scoped signing is configured, else
// cached STS credentials for that prefix that outlive the URL.
func (b *s3Bucket) signingCredentials(ctx context.Context, scope string, expiry time.Duration) (aws.CredentialsProvider, error) {
	if b.scoped == nil {
		return nil, nil
	}
	if expiry+time.Minute > b.scoped.Duration {
		return nil, errs.New(errs.InvalidInput, "s3object.SignedURL", "expiry must be at least a minute shorter than Scoped.Duration (%s)", b.scoped.Duration)
	}
	b.mu.Lock()
	c, ok := b.creds[scope]
	b.mu.Unlock()
	if ok && time.Until(c.Expires) > expiry+time.Minute {
		return credentials.StaticCredentialsProvider{Value: c}, nil
	}
	c, err := assume(ctx, b.sts, b.bucket, scope, *b.scoped)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	if len(b.creds) > 10000 { // bound the cache; entries are cheap to re-create
		clear(b.creds)
	}
	b.creds[scope] = c
	b.mu.Unlock()
	return credentials.StaticCredentialsProvider{Value: c}, nil
}

// assume calls STS AssumeRole with SessionPolicy(bucket, prefix).
func assume(ctx context.Context, client *sts.Client, bucket, prefix string, o ScopedOptions) (aws.Credentials, error) {
	policy, err := SessionPolicy(bucket, prefix)
	if err != nil {
		return aws.Credentials{}, err
	}
	sum := sha256.Sum256([]byte(prefix))
	in := &sts.AssumeRoleInput{
		RoleArn:         aws.String(o.RoleARN),
		RoleSessionName: aws.String("cloneiso-" + hex.EncodeToString(sum[:12])),
		DurationSeconds: aws.Int32(int32(o.Duration / time.Second)),
		Policy:          aws.String(policy),
	}
	if o.TagSession {
		parts := strings.Split(prefix, "/") // tenants/{tenant}/clones/{clone}/, checked by SessionPolicy
		in.Tags = []ststypes.Tag{
			{Key: aws.String(TenantTagKey), Value: aws.String(parts[1])},
			{Key: aws.String(CloneTagKey), Value: aws.String(parts[3])},
		}
	}
	out, err := client.AssumeRole(ctx, in)
	if err != nil {
		return aws.Credentials{}, err
	}
	if out.Credentials == nil {
		return aws.Credentials{}, errs.New(errs.Unavailable, "s3object.AssumeRole", "STS returned no credentials")
	}
	return aws.Credentials{
		AccessKeyID:     aws.ToString(out.Credentials.AccessKeyId),
		SecretAccessKey: aws.ToString(out.Credentials.SecretAccessKey),
		SessionToken:    aws.ToString(out.Credentials.SessionToken),
		Source:          "cloneiso-scoped-sts",
		CanExpire:       true,
		Expires:         aws.ToTime(out.Credentials.Expiration),
	}, nil
}

func withCredentials(p aws.CredentialsProvider) []func(*s3.Options) {
	return []func(*s3.Options){func(o *s3.Options) {
		if p != nil {
			o.Credentials = p
		}
		// A presigned request has no body to checksum; without this the SDK would sign
		// a checksum of the empty body that every real upload then fails.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}}
}

// SignedURL presigns GetObject or PutObject for key, with clone-scoped credentials
// when configured. For PUT, the content type and metadata are signed headers the
// client must send (S3 refuses the upload otherwise).
func (b *s3Bucket) SignedURL(ctx context.Context, scope, key string, opts *driver.SignedURLOptions) (*driver.SignedRequest, error) {
	if err := driver.CheckKey("s3object.SignedURL", scope, key); err != nil {
		return nil, err
	}
	creds, err := b.signingCredentials(ctx, scope, opts.Expiry)
	if err != nil {
		return nil, err
	}
	po := func(o *s3.PresignOptions) {
		o.Expires = opts.Expiry
		o.ClientOptions = append(o.ClientOptions, withCredentials(creds)...)
	}
	var r *v4.PresignedHTTPRequest
	switch opts.Method {
	case http.MethodGet:
		r, err = b.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key}, po)
	case http.MethodPut:
		r, err = b.presign.PresignPutObject(ctx, &s3.PutObjectInput{
			Bucket: &b.bucket, Key: &key, ContentType: optString(opts.ContentType), Metadata: opts.Metadata,
		}, po)
	default:
		return nil, errs.New(errs.InvalidInput, "s3object.SignedURL", "unsupported method")
	}
	if err != nil {
		return nil, err
	}
	h := r.SignedHeader.Clone()
	h.Del("Host")
	return &driver.SignedRequest{URL: r.URL, Header: h}, nil
}

// UploadTicket builds an S3 POST policy: the key is fixed (eq), the content type and
// every owner-stamp metadata field are fixed (eq), and the body must fall in
// content-length-range; S3 refuses anything else. Signed with clone-scoped credentials
// when configured.
func (b *s3Bucket) UploadTicket(ctx context.Context, scope, key string, opts *driver.UploadTicketOptions) (*driver.UploadTicket, error) {
	if err := driver.CheckKey("s3object.UploadTicket", scope, key); err != nil {
		return nil, err
	}
	creds, err := b.signingCredentials(ctx, scope, opts.Expiry)
	if err != nil {
		return nil, err
	}
	conds := []any{
		map[string]string{"key": key},
		[]any{"eq", "$Content-Type", opts.ContentType},
		[]any{"content-length-range", opts.MinSize, opts.MaxSize},
	}
	fields := map[string]string{"Content-Type": opts.ContentType}
	for k, v := range opts.Metadata {
		f := "x-amz-meta-" + k
		conds = append(conds, []any{"eq", "$" + f, v})
		fields[f] = v
	}
	r, err := b.presign.PresignPostObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &key}, func(o *s3.PresignPostOptions) {
		o.Expires = opts.Expiry
		o.Conditions = conds
		o.ClientOptions = append(o.ClientOptions, withCredentials(creds)...)
	})
	if err != nil {
		return nil, err
	}
	for k, v := range r.Values {
		fields[k] = v
	}
	return &driver.UploadTicket{URL: r.URL, Fields: fields}, nil
}
