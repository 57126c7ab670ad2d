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

// scopedSigner is a presign client built with one clone scope's STS credentials.
type scopedSigner struct {
	creds   aws.Credentials
	presign *s3.PresignClient
}

// maxSigners bounds the per-scope signer cache; entries are cheap to re-create.
const maxSigners = 10000

// signer returns the presign client that signs for scope (a clone prefix) a request
// living expiry. Without scoped signing it is the bucket's own presign client (the
// application's credentials). With scoped signing it is a presign client BUILT with
// STS credentials confined to scope, cached per scope until the credentials would no
// longer outlive the request, and never shared between scopes.
//
// Credentials are never passed per call: aws-sdk-go-v2's PresignPostObject builds its
// request from the presign client's own options and ignores
// PresignPostOptions.ClientOptions, so a per-call override would silently sign upload
// tickets with the application's key. Building the client with the credentials makes
// every presign method (GET, PUT, POST policy, and any added later) use them.
func (b *s3Bucket) signer(ctx context.Context, op, scope string, expiry time.Duration) (*s3.PresignClient, error) {
	if b.scoped == nil {
		return b.presign, nil
	}
	if expiry+time.Minute > b.scoped.Duration {
		return nil, errs.New(errs.InvalidInput, op, "expiry must be at least a minute shorter than Scoped.Duration (%s)", b.scoped.Duration)
	}
	b.mu.Lock()
	sg, ok := b.signers[scope]
	b.mu.Unlock()
	if ok && time.Until(sg.creds.Expires) > expiry+time.Minute {
		return sg.presign, nil
	}
	c, err := assume(ctx, b.sts, b.bucket, scope, *b.scoped)
	if err != nil {
		return nil, err
	}
	if c.SessionToken == "" || c.AccessKeyID == "" {
		return nil, errs.New(errs.Unavailable, op, "STS returned credentials without a session token")
	}
	sg = &scopedSigner{creds: c, presign: b.newPresignClient(credentials.StaticCredentialsProvider{Value: c})}
	b.mu.Lock()
	if len(b.signers) >= maxSigners {
		clear(b.signers)
	}
	b.signers[scope] = sg
	b.mu.Unlock()
	return sg.presign, nil
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

// SignedURL presigns GetObject or PutObject for key, with clone-scoped credentials
// when configured. For PUT, the content type and metadata are signed headers the
// client must send (S3 refuses the upload otherwise).
func (b *s3Bucket) SignedURL(ctx context.Context, scope, key string, opts *driver.SignedURLOptions) (*driver.SignedRequest, error) {
	if err := driver.CheckKey("s3object.SignedURL", scope, key); err != nil {
		return nil, err
	}
	presign, err := b.signer(ctx, "s3object.SignedURL", scope, opts.Expiry)
	if err != nil {
		return nil, err
	}
	po := func(o *s3.PresignOptions) { o.Expires = opts.Expiry }
	var r *v4.PresignedHTTPRequest
	switch opts.Method {
	case http.MethodGet:
		r, err = presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key}, po)
	case http.MethodPut:
		r, err = presign.PresignPutObject(ctx, &s3.PutObjectInput{
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
	presign, err := b.signer(ctx, "s3object.UploadTicket", scope, opts.Expiry)
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
	r, err := presign.PresignPostObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &key}, func(o *s3.PresignPostOptions) {
		o.Expires = opts.Expiry
		o.Conditions = conds
		if b.now != nil {
			o.PostPresigner = clockPostPresigner{next: o.PostPresigner, now: b.now}
		}
	})
	if err != nil {
		return nil, err
	}
	for k, v := range r.Values {
		fields[k] = v
	}
	return &driver.UploadTicket{URL: r.URL, Fields: fields}, nil
}

// newPresignClient returns a presign client signing with creds, dated by Options.Now
// when it is set.
func (b *s3Bucket) newPresignClient(creds aws.CredentialsProvider) *s3.PresignClient {
	c := b.newClient(creds)
	if b.now == nil {
		return s3.NewPresignClient(c)
	}
	return s3.NewPresignClient(c, func(o *s3.PresignOptions) {
		// The S3 client's own default signer (s3.newDefaultV4Signer): S3 keys are not
		// escaped twice.
		signer := v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true })
		o.Presigner = clockPresigner{next: signer, now: b.now}
	})
}

// clockPresigner signs URLs at Options.Now instead of the SDK's clock.
type clockPresigner struct {
	next s3.HTTPPresignerV4
	now  func() time.Time
}

func (p clockPresigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, _ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.next.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.now().UTC(), optFns...)
}

// clockPostPresigner signs POST policies at Options.Now, moving their expiration with
// the signing time.
type clockPostPresigner struct {
	next s3.PresignPost
	now  func() time.Time
}

func (p clockPostPresigner) PresignPost(creds aws.Credentials, bucket, key, region, service string, signingTime time.Time, conditions []any, expiration time.Time, optFns ...func(*v4.SignerOptions)) (map[string]string, error) {
	at := p.now().UTC()
	return p.next.PresignPost(creds, bucket, key, region, service, at, conditions, expiration.Add(at.Sub(signingTime)), optFns...)
}
