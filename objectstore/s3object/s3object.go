// Package s3object is the objectstore driver for Amazon S3 and S3-compatible servers
// (MinIO and others), on aws-sdk-go-v2.
//
// Open a bucket with [OpenBucket]; every key it touches is built by the portable
// objectstore.Bucket from a clone context. On top of the portable guarantees this
// driver can sign URLs and upload tickets with short-lived STS credentials whose inline
// session policy only allows the clone's prefix ([Options.Scoped]), so even a URL built
// for a wrong key would be refused by the server with AccessDenied. [SessionPolicy]
// and [BucketPolicy] generate the JSON policies involved.
//
// [Bucket.As] (objectstore) supports **s3.Client and **sts.Client; ErrorAs supports
// the aws-sdk-go-v2 and smithy error types (smithy.APIError, *types.NoSuchKey, ...).
package s3object

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

// Options configure the S3 driver. A nil *Options means AWS defaults and signing with
// cfg's own credentials.
type Options struct {
	// Endpoint is the S3 endpoint URL for S3-compatible servers, e.g.
	// "http://127.0.0.1:9000"; "" means AWS. It is also the STS endpoint unless
	// Scoped.STSEndpoint says otherwise.
	Endpoint string
	// UsePathStyle addresses buckets as Endpoint/bucket/key instead of
	// bucket.Endpoint/key; S3-compatible servers usually need it.
	UsePathStyle bool
	// Scoped, if set, makes signed URLs and upload tickets use STS AssumeRole
	// credentials confined to the clone's prefix.
	Scoped *ScopedOptions
	// PartSize is the part size of multipart uploads of bodies of unknown length; 0
	// means 8 MiB (minimum 5 MiB).
	PartSize int64
	// Bucket configures the portable type (audit sink, URL lifetime cap).
	Bucket *objectstore.Options
	// Now is the clock that dates signed URLs and upload tickets (their signing time,
	// from which their expiry counts); nil means time.Now. It dates signatures only:
	// the lifetime of Scoped credentials is judged by real time. Tests set it in the
	// past to issue links that have already expired, instead of waiting.
	Now func() time.Time
}

// ScopedOptions configure clone-scoped signing credentials.
type ScopedOptions struct {
	// RoleARN is the role to assume. On AWS it must allow s3:GetObject and
	// s3:PutObject on the bucket's "tenants/*" and trust the caller; the session policy
	// narrows it to one clone. MinIO ignores the role and derives the session from the
	// caller's own identity (root or user), still narrowed by the session policy.
	RoleARN string
	// Duration is the credentials' lifetime: 0 means one hour; at least 15 minutes
	// (the STS minimum). Signed URLs never outlive the credentials that signed them,
	// so credentials are renewed when less than the URL's expiry plus a minute is left.
	Duration time.Duration
	// STSEndpoint overrides the STS endpoint ("" means Options.Endpoint, or AWS).
	STSEndpoint string
	// TagSession adds the session tags [TenantTagKey] and [CloneTagKey] (the clone's
	// IDs) to the assumed session, so that a bucket policy with
	// BucketPolicyOptions.TenantConfinement confines it to its tenant as well. On AWS
	// the role's trust policy must allow sts:TagSession.
	TagSession bool
}

// OpenBucket returns a clone-scoped bucket over the S3 bucket named bucket.
// The bucket must exist. cfg provides region, credentials and HTTP client.
func OpenBucket(ctx context.Context, cfg aws.Config, bucket string, opts *Options) (*objectstore.Bucket, error) {
	d, err := openDriver(ctx, cfg, bucket, opts)
	if err != nil {
		return nil, err
	}
	var bo *objectstore.Options
	if opts != nil {
		bo = opts.Bucket
	}
	return objectstore.NewBucket(d, bo)
}

// OpenDriver returns the raw driver (for the conformance suite and for wrapping).
// Applications use [OpenBucket].
func OpenDriver(ctx context.Context, cfg aws.Config, bucket string, opts *Options) (driver.Bucket, error) {
	return openDriver(ctx, cfg, bucket, opts)
}

type s3Bucket struct {
	client *s3.Client
	// newClient builds an S3 client like client with other credentials (for signing).
	newClient func(aws.CredentialsProvider) *s3.Client
	// presign signs with the application's own credentials; nil when Scoped is set.
	presign  *s3.PresignClient
	sts      *sts.Client // nil unless scoped
	bucket   string
	region   string
	scoped   *ScopedOptions
	partSize int64
	now      func() time.Time // Options.Now; nil: the SDK's own clock

	mu      sync.Mutex
	signers map[string]*scopedSigner // by clone prefix
}

func openDriver(_ context.Context, cfg aws.Config, bucket string, opts *Options) (*s3Bucket, error) {
	const op = "s3object.OpenBucket"
	if bucket == "" {
		return nil, errs.New(errs.InvalidInput, op, "empty bucket name")
	}
	if opts == nil {
		opts = &Options{}
	}
	if cfg.Region == "" {
		return nil, errs.New(errs.InvalidInput, op, "aws.Config has no region")
	}
	b := &s3Bucket{bucket: bucket, region: cfg.Region, partSize: opts.PartSize, now: opts.Now, signers: map[string]*scopedSigner{}}
	if b.partSize == 0 {
		b.partSize = 8 << 20
	}
	if b.partSize < 5<<20 {
		return nil, errs.New(errs.InvalidInput, op, "PartSize must be at least 5 MiB")
	}
	b.client = s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.UsePathStyle
	})
	b.newClient = func(creds aws.CredentialsProvider) *s3.Client {
		return s3.NewFromConfig(cfg, func(o *s3.Options) {
			if opts.Endpoint != "" {
				o.BaseEndpoint = aws.String(opts.Endpoint)
			}
			o.UsePathStyle = opts.UsePathStyle
			o.Credentials = creds
			// A presigned request has no body to checksum; without this the SDK would
			// sign a checksum of the empty body that every real upload then fails.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		})
	}
	if s := opts.Scoped; s != nil {
		sc := *s
		if sc.RoleARN == "" {
			return nil, errs.New(errs.InvalidInput, op, "Scoped.RoleARN is required")
		}
		if sc.Duration == 0 {
			sc.Duration = time.Hour
		}
		if sc.Duration < 15*time.Minute || sc.Duration > 12*time.Hour {
			return nil, errs.New(errs.InvalidInput, op, "Scoped.Duration must be between 15 minutes and 12 hours")
		}
		ep := sc.STSEndpoint
		if ep == "" {
			ep = opts.Endpoint
		}
		b.sts = sts.NewFromConfig(cfg, func(o *sts.Options) {
			if ep != "" {
				o.BaseEndpoint = aws.String(ep)
			}
		})
		b.scoped = &sc
	} else {
		// Only an unscoped bucket gets a signer with the application's credentials; a
		// scoped one signs only through signer, with a clone's STS credentials.
		b.presign = b.newPresignClient(cfg.Credentials)
	}
	return b, nil
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func lowerKeys(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

func etag(s *string) string { return strings.Trim(aws.ToString(s), `"`) }

// Put uploads r. Seekable bodies go out in one PutObject; other bodies are read a part
// at a time: one PutObject if they fit in a part, else a multipart upload that is
// completed only after the whole body was read (and aborted otherwise), so a failing
// reader never leaves an object behind.
func (b *s3Bucket) Put(ctx context.Context, scope, key string, r io.Reader, opts *driver.WriteOptions) (*driver.Attributes, error) {
	if err := driver.CheckKey("s3object.Put", scope, key); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &driver.WriteOptions{Size: -1}
	}
	in := &s3.PutObjectInput{Bucket: &b.bucket, Key: &key, ContentType: optString(opts.ContentType), Metadata: opts.Metadata}
	attrs := &driver.Attributes{Key: key, ContentType: opts.ContentType, Metadata: opts.Metadata}
	if rs, ok := r.(io.ReadSeeker); ok {
		size := opts.Size
		if size < 0 {
			cur, err := rs.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, err
			}
			end, err := rs.Seek(0, io.SeekEnd)
			if err != nil {
				return nil, err
			}
			if _, err := rs.Seek(cur, io.SeekStart); err != nil {
				return nil, err
			}
			size = end - cur
		}
		in.Body, in.ContentLength = rs, aws.Int64(size)
		out, err := b.client.PutObject(ctx, in)
		if err != nil {
			return nil, err
		}
		attrs.Size, attrs.ETag, attrs.ModTime = size, etag(out.ETag), time.Now()
		return attrs, nil
	}
	first := make([]byte, b.partSize)
	n, err := io.ReadFull(r, first)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		in.Body, in.ContentLength = bytes.NewReader(first[:n]), aws.Int64(int64(n))
		out, err := b.client.PutObject(ctx, in)
		if err != nil {
			return nil, err
		}
		attrs.Size, attrs.ETag, attrs.ModTime = int64(n), etag(out.ETag), time.Now()
		return attrs, nil
	case err != nil:
		return nil, err
	}
	return b.multipart(ctx, in, first, r, attrs)
}

func (b *s3Bucket) multipart(ctx context.Context, in *s3.PutObjectInput, first []byte, r io.Reader, attrs *driver.Attributes) (_ *driver.Attributes, err error) {
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, ContentType: in.ContentType, Metadata: in.Metadata,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			// Best effort with a fresh context: ctx may be why we failed.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId})
		}
	}()
	var parts []types.CompletedPart
	var total int64
	buf := first
	for num := int32(1); ; num++ {
		if num > 10000 {
			return nil, errs.New(errs.TooLarge, "s3object.Put", "body exceeds 10000 parts")
		}
		out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf), ContentLength: aws.Int64(int64(len(buf))),
		})
		if err != nil {
			return nil, err
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		total += int64(len(buf))
		n, rerr := io.ReadFull(r, buf[:cap(buf)])
		if rerr == io.EOF {
			break
		}
		if rerr != nil && rerr != io.ErrUnexpectedEOF {
			return nil, rerr
		}
		buf = buf[:n]
	}
	out, err := b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: in.Bucket, Key: in.Key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return nil, err
	}
	attrs.Size, attrs.ETag, attrs.ModTime = total, etag(out.ETag), time.Now()
	return attrs, nil
}

var errRange = errors.New("s3object: offset outside the object")

type reader struct {
	io.ReadCloser
	attrs *driver.Attributes
}

func (r *reader) Attributes() *driver.Attributes { return r.attrs }

func (b *s3Bucket) Get(ctx context.Context, scope, key string, offset, length int64) (driver.Reader, error) {
	if err := driver.CheckKey("s3object.Get", scope, key); err != nil {
		return nil, err
	}
	if length == 0 {
		a, err := b.head(ctx, key)
		if err != nil {
			return nil, err
		}
		if offset > 0 && offset >= a.Size {
			return nil, errRange
		}
		return &reader{ReadCloser: io.NopCloser(strings.NewReader("")), attrs: a}, nil
	}
	in := &s3.GetObjectInput{Bucket: &b.bucket, Key: &key}
	if offset > 0 || length > 0 {
		rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
		if length > 0 {
			rng += strconv.FormatInt(offset+length-1, 10)
		}
		in.Range = &rng
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		return nil, err
	}
	size := aws.ToInt64(out.ContentLength)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				size = n
			}
		}
	}
	return &reader{ReadCloser: out.Body, attrs: &driver.Attributes{
		Key: key, Size: size, ContentType: aws.ToString(out.ContentType), Metadata: lowerKeys(out.Metadata),
		ModTime: aws.ToTime(out.LastModified), ETag: etag(out.ETag),
	}}, nil
}

func (b *s3Bucket) Head(ctx context.Context, scope, key string) (*driver.Attributes, error) {
	if err := driver.CheckKey("s3object.Head", scope, key); err != nil {
		return nil, err
	}
	return b.head(ctx, key)
}

func (b *s3Bucket) head(ctx context.Context, key string) (*driver.Attributes, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		return nil, err
	}
	return &driver.Attributes{
		Key: key, Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType),
		Metadata: lowerKeys(out.Metadata), ModTime: aws.ToTime(out.LastModified), ETag: etag(out.ETag),
	}, nil
}

// List uses the last key of the previous page as the page token (StartAfter) rather
// than S3's opaque continuation token: a forged token then only moves the start of a
// listing that S3 still confines to prefix, instead of failing on the server.
func (b *s3Bucket) List(ctx context.Context, scope, prefix string, pageSize int, token string) (*driver.ListPage, error) {
	if err := driver.CheckPrefix("s3object.List", scope, prefix); err != nil {
		return nil, err
	}
	out, err := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: &b.bucket, Prefix: &prefix, MaxKeys: aws.Int32(int32(pageSize)), StartAfter: optString(token),
	})
	if err != nil {
		return nil, err
	}
	p := &driver.ListPage{Objects: make([]*driver.Attributes, 0, len(out.Contents))}
	for _, o := range out.Contents {
		p.Objects = append(p.Objects, &driver.Attributes{
			Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified), ETag: etag(o.ETag),
		})
	}
	if aws.ToBool(out.IsTruncated) && len(p.Objects) > 0 {
		p.NextPageToken = p.Objects[len(p.Objects)-1].Key
	}
	return p, nil
}

// Delete removes the current version. S3 answers success for a missing key, so the
// key is looked up first to honor the NotFound contract.
func (b *s3Bucket) Delete(ctx context.Context, scope, key string) error {
	if err := driver.CheckKey("s3object.Delete", scope, key); err != nil {
		return err
	}
	if _, err := b.head(ctx, key); err != nil {
		return err
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &key})
	return err
}

func (b *s3Bucket) Copy(ctx context.Context, scope, dst, src string) error {
	if err := driver.CheckKey("s3object.Copy", scope, dst); err != nil {
		return err
	}
	if err := driver.CheckKey("s3object.Copy", scope, src); err != nil {
		return err
	}
	_, err := b.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: &b.bucket, Key: &dst, CopySource: aws.String(b.bucket + "/" + escapeKey(src)),
		MetadataDirective: types.MetadataDirectiveCopy,
	})
	return err
}

// escapeKey percent-encodes everything but unreserved characters and "/", as the
// x-amz-copy-source header needs ("+" must not be read as a space).
func escapeKey(key string) string {
	const hex = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/", c) >= 0 {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hex[c>>4])
		sb.WriteByte(hex[c&15])
	}
	return sb.String()
}

// DeleteAll deletes, in batches of up to 1000, every object version and delete marker
// under prefix, aborts every unfinished multipart upload under it, and then lists
// versions and uploads again; it fails unless both listings are empty.
//
// Unfinished uploads are found by listing uploads under the prefix (AWS) and, because
// MinIO lists uploads only by exact key, also for every key that had a version. An
// upload to a key that never had a version is therefore invisible on MinIO; MinIO
// removes such stale uploads itself (after 24 hours by default), and they are never
// readable as objects.
func (b *s3Bucket) DeleteAll(ctx context.Context, scope, prefix string) (*driver.DeleteAllResult, error) {
	if err := driver.CheckPrefix("s3object.DeleteAll", scope, prefix); err != nil {
		return nil, err
	}
	res := &driver.DeleteAllResult{}
	keys := map[string]bool{}
	for round := 0; ; round++ {
		if round > 10000 {
			return res, errs.New(errs.Unavailable, "s3object.DeleteAll", "objects keep appearing under the prefix")
		}
		out, err := b.client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &b.bucket, Prefix: &prefix, MaxKeys: aws.Int32(1000)})
		if err != nil {
			return res, err
		}
		var ids []types.ObjectIdentifier
		for _, v := range out.Versions {
			ids = append(ids, types.ObjectIdentifier{Key: v.Key, VersionId: v.VersionId})
		}
		nObjects := len(ids)
		for _, m := range out.DeleteMarkers {
			ids = append(ids, types.ObjectIdentifier{Key: m.Key, VersionId: m.VersionId})
		}
		if len(ids) == 0 {
			break
		}
		if len(ids) > 1000 { // versions and markers are limited to 1000 together, but be safe
			ids = ids[:1000]
		}
		for _, id := range ids {
			if len(keys) < 100000 {
				keys[aws.ToString(id.Key)] = true
			}
		}
		del, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &b.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return res, err
		}
		if len(del.Errors) > 0 {
			e := del.Errors[0]
			return res, errs.New(errs.Unavailable, "s3object.DeleteAll", "deleting %d versions failed, first: %s %s", len(del.Errors), aws.ToString(e.Code), aws.ToString(e.Message))
		}
		res.Objects += min(nObjects, len(ids))
		res.DeleteMarkers += len(ids) - min(nObjects, len(ids))
	}
	if err := b.abortUploads(ctx, prefix, res); err != nil {
		return res, err
	}
	for k := range keys {
		if err := b.abortUploads(ctx, k, res); err != nil {
			return res, err
		}
	}
	// Verify with fresh listings that nothing is left.
	v, err := b.client.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: &b.bucket, Prefix: &prefix, MaxKeys: aws.Int32(1)})
	if err != nil {
		return res, err
	}
	u, err := b.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: &prefix, MaxUploads: aws.Int32(1)})
	if err != nil {
		return res, err
	}
	if len(v.Versions)+len(v.DeleteMarkers)+len(u.Uploads) > 0 {
		return res, errs.New(errs.Conflict, "s3object.DeleteAll", "data left under the prefix after deleting (concurrent writes?)")
	}
	return res, nil
}

// abortUploads aborts every unfinished multipart upload listed under prefix.
func (b *s3Bucket) abortUploads(ctx context.Context, prefix string, res *driver.DeleteAllResult) error {
	for range 1000 {
		out, err := b.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &b.bucket, Prefix: &prefix})
		if err != nil {
			return err
		}
		aborted := 0
		for _, u := range out.Uploads {
			if !strings.HasPrefix(aws.ToString(u.Key), prefix) {
				continue // never abort outside the prefix, whatever the server lists
			}
			if _, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.bucket, Key: u.Key, UploadId: u.UploadId}); err != nil && !isCode(err, "NoSuchUpload") {
				return err
			}
			res.Uploads++
			aborted++
		}
		if aborted == 0 {
			return nil
		}
	}
	return errs.New(errs.Unavailable, "s3object.DeleteAll", "multipart uploads keep appearing under the prefix")
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		for _, c := range codes {
			if ae.ErrorCode() == c {
				return true
			}
		}
	}
	return false
}

// ErrorKind classifies S3 and transport errors.
func (b *s3Bucket) ErrorKind(err error) error {
	switch {
	case errors.Is(err, driver.ErrOutOfScope):
		return clone.ErrIsolationViolation
	case errors.Is(err, errRange):
		return clone.ErrInvalidInput
	case isCode(err, "NoSuchKey", "NotFound", "NoSuchVersion", "NoSuchUpload"):
		return clone.ErrNotFound
	case isCode(err, "InvalidRange"):
		return clone.ErrInvalidInput
	case isCode(err, "EntityTooLarge"):
		return clone.ErrTooLarge
	case isCode(err, "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "InvalidToken", "AllAccessDisabled"):
		return clone.ErrForbidden
	case isCode(err, "PreconditionFailed", "OperationAborted", "ConditionalRequestConflict"):
		return clone.ErrConflict
	case isCode(err, "NoSuchBucket", "SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "XMinioServerNotInitialized"):
		return clone.ErrUnavailable
	case isCode(err, "NotImplemented"):
		return clone.ErrUnsupported
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch s := re.HTTPStatusCode(); {
		case s == http.StatusNotFound:
			return clone.ErrNotFound
		case s == http.StatusForbidden:
			return clone.ErrForbidden
		case s == http.StatusRequestedRangeNotSatisfiable, s == http.StatusBadRequest:
			return clone.ErrInvalidInput
		case s == http.StatusTooManyRequests, s >= 500:
			return clone.ErrUnavailable
		}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return clone.ErrUnavailable
	}
	return nil
}

// As supports **s3.Client and **sts.Client (nil unless Options.Scoped is set).
func (b *s3Bucket) As(i any) bool {
	switch p := i.(type) {
	case **s3.Client:
		*p = b.client
		return true
	case **sts.Client:
		if b.sts == nil {
			return false
		}
		*p = b.sts
		return true
	}
	return false
}

// ErrorAs is errors.As: aws-sdk-go-v2 errors implement the standard wrapping.
func (b *s3Bucket) ErrorAs(err error, i any) bool {
	defer func() { recover() }() // errors.As panics on a bad target; report false instead
	return errors.As(err, i)
}

func (b *s3Bucket) Close() error { return nil }

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// kindOf classifies an AWS error into an errs.Kind.
func kindOf(err error) errs.Kind {
	if k := (&s3Bucket{}).ErrorKind(err); k != nil {
		return errs.KindOf(k)
	}
	return errs.Unknown
}
