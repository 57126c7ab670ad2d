package objectstore

import (
	"context"
	"errors"
	"io"
	"mime"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/clone/audit"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

// Presigned URL and upload ticket lifetimes.
const (
	// DefaultURLExpiry is the lifetime of a signed URL or upload ticket when the caller
	// asks for none.
	DefaultURLExpiry = 15 * time.Minute
	// DefaultMaxURLExpiry is the longest lifetime a caller may ask for unless
	// [Options.MaxURLExpiry] says otherwise.
	DefaultMaxURLExpiry = time.Hour
	// HardMaxURLExpiry is the longest lifetime [Options.MaxURLExpiry] may allow: the
	// limit of AWS Signature Version 4.
	HardMaxURLExpiry = 7 * 24 * time.Hour
)

// Reserved metadata keys. Every object written through a [Bucket] carries its owner's
// tenant and clone IDs under these keys; reads compare them with the clone context.
// Callers cannot set metadata keys starting with "cloneiso-".
const (
	MetaTenantID = "cloneiso-tenant-id"
	MetaCloneID  = "cloneiso-clone-id"
)

// MaxMetadataSize is the largest total size (keys plus values, in bytes) of the user
// metadata of one object, as in S3.
const MaxMetadataSize = 2048

// Options configure a [Bucket]. A nil *Options means all defaults.
type Options struct {
	// Audit receives one event per denial (invalid name, foreign key) and per clone
	// wipe; nil means audit.DefaultSink (slog.Default()). A sink failure never changes
	// the outcome; it is logged with the whole event and counted (audit.Emit). Use
	// audit.Discard to record nothing.
	Audit audit.Sink
	// MaxURLExpiry caps the lifetime of signed URLs and upload tickets. Zero means
	// [DefaultMaxURLExpiry]; values above [HardMaxURLExpiry] are refused by NewBucket.
	MaxURLExpiry time.Duration
	// Now returns the current time; nil means time.Now. Tests use it.
	Now func() time.Time
	// CheckClone, if set, is called with the operation's name (e.g.
	// "objectstore.Put") before every operation whose clone context is valid. A
	// non-nil error is returned as is and nothing is touched. Hosts use it so that only
	// provisioned, active clones are usable: return clone.ErrNotFound for a clone that
	// was never provisioned (a typo must not create a prefix) and clone.ErrSuspended
	// for a suspended one (typically still allowing "objectstore.DeleteClone").
	CheckClone func(ctx context.Context, cc clone.CloneContext, op string) error
}

// Bucket is a clone-scoped view of an object store. Every operation takes the
// [clone.CloneContext] of the clone it acts for and touches only objects under that
// clone's prefix
//
//	tenants/{tenant_id}/clones/{clone_id}/{kind}/{name}
//
// where the IDs come from the context and kind and name are validated by
// [ValidateKind] and [ValidateName] before anything reaches the driver. Keys that come
// back from the store (listings) are re-checked against the prefix, and the owner stamps
// stored in each object's metadata are compared with the context on every read.
//
// An object of another clone is never reachable: asking for one is answered as
// [clone.ErrNotFound], exactly like a missing object, so IDs cannot be probed.
//
// Every error carries one of the kinds of package clone (test with errors.Is); errors
// of the backend stay reachable with [Bucket.ErrorAs] or errors.As.
//
// A Bucket is safe for concurrent use.
type Bucket struct {
	d         driver.Bucket
	sink      audit.Sink
	maxExpiry time.Duration
	now       func() time.Time
	check     func(ctx context.Context, cc clone.CloneContext, op string) error
}

// NewBucket returns a Bucket over d. Backend packages (fileobject, s3object) call it;
// applications use their constructors.
func NewBucket(d driver.Bucket, opts *Options) (*Bucket, error) {
	if d == nil {
		return nil, errs.New(errs.InvalidInput, "objectstore.NewBucket", "nil driver")
	}
	if opts == nil {
		opts = &Options{}
	}
	b := &Bucket{d: d, sink: opts.Audit, maxExpiry: opts.MaxURLExpiry, now: opts.Now, check: opts.CheckClone}
	if b.maxExpiry == 0 {
		b.maxExpiry = DefaultMaxURLExpiry
	}
	if b.maxExpiry < 0 || b.maxExpiry > HardMaxURLExpiry {
		return nil, errs.New(errs.InvalidInput, "objectstore.NewBucket", "MaxURLExpiry must be between 0 and %s", HardMaxURLExpiry)
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b, nil
}

// Attributes describe an object of a clone.
type Attributes struct {
	// Kind and Name locate the object inside its clone.
	Kind, Name string
	// Size is the object's length in bytes.
	Size int64
	// ContentType is the object's MIME type ("" if none was stored).
	ContentType string
	// Metadata is the user metadata (without the reserved owner stamps).
	Metadata map[string]string
	// ModTime is when the object was last written.
	ModTime time.Time
	// ETag is an opaque version tag ("" if the backend has none).
	ETag string
}

// Prefix returns the key prefix of cc's objects,
// "tenants/{tenant_id}/clones/{clone_id}/". It is exported for operators writing
// policies and for tests; applications never need to build keys.
func Prefix(cc clone.CloneContext) (string, error) {
	if err := cc.Validate("objectstore.Prefix"); err != nil {
		return "", err
	}
	return prefixOf(cc), nil
}

func prefixOf(cc clone.CloneContext) string {
	return "tenants/" + cc.TenantID().String() + "/clones/" + cc.CloneID().String() + "/"
}

// Key returns the full object key of (kind, name) for cc after validating all three.
func Key(cc clone.CloneContext, kind, name string) (string, error) {
	if err := cc.Validate("objectstore.Key"); err != nil {
		return "", err
	}
	if err := ValidateKind(kind); err != nil {
		return "", err
	}
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return prefixOf(cc) + kind + "/" + name, nil
}

// NewName returns a fresh random object name (a UUID), for callers that let the SDK
// name their objects.
func NewName() string { return uuid.NewString() }

// key checks cc, kind and name for op, auditing a denial, and returns the object key.
func (b *Bucket) key(ctx context.Context, op string, cc clone.CloneContext, kind, name string) (string, error) {
	if err := b.validate(ctx, op, cc); err != nil {
		return "", err
	}
	if err := ValidateKind(kind); err != nil {
		b.deny(ctx, op, cc, "invalid object kind", nil)
		return "", relabel(err, op)
	}
	if err := ValidateName(name); err != nil {
		b.deny(ctx, op, cc, "invalid object name (possible traversal attempt)", map[string]string{"problem": nameProblem(name)})
		return "", relabel(err, op)
	}
	return prefixOf(cc) + kind + "/" + name, nil
}

// validate checks cc (auditing a denial) and runs the host's CheckClone hook.
func (b *Bucket) validate(ctx context.Context, op string, cc clone.CloneContext) error {
	if err := cc.Validate(op); err != nil {
		b.deny(ctx, op, cc, "no valid clone context", nil)
		return err
	}
	if b.check != nil {
		if err := b.check(ctx, cc, op); err != nil {
			if errs.KindOf(err) == errs.Unknown {
				return errs.Wrap(errs.Unavailable, op, err, "checking the clone")
			}
			return err
		}
	}
	return nil
}

// relabel re-attributes a validation error to op, keeping its kind and message.
func relabel(err error, op string) error {
	var e *errs.Error
	if errors.As(err, &e) {
		return &errs.Error{Kind: e.Kind, Op: op, Msg: e.Msg, Err: e.Err}
	}
	return err
}

func (b *Bucket) deny(ctx context.Context, op string, cc clone.CloneContext, reason string, detail map[string]string) {
	b.record(ctx, op, cc, audit.Denied, reason, detail)
}

func (b *Bucket) record(ctx context.Context, op string, cc clone.CloneContext, outcome audit.Outcome, reason string, detail map[string]string) {
	ev := audit.Event{Action: op, Outcome: outcome, Reason: reason, Detail: detail}
	if cc.Valid() {
		ev.TenantID, ev.CloneID, ev.Actor = cc.TenantID(), cc.CloneID(), cc.Principal().Subject
	}
	audit.Emit(ctx, b.sink, ev) // a sink failure must not change the outcome; Emit logs and counts it
}

// driverErr is [Bucket.wrap] for an error of a driver call made for cc; a driver
// refusing a key outside cc's scope means a check above it failed, which is recorded
// as a violation.
func (b *Bucket) driverErr(ctx context.Context, op string, cc clone.CloneContext, err error, format string, args ...any) error {
	if errors.Is(err, driver.ErrOutOfScope) {
		b.record(ctx, op, cc, audit.Violation, "driver refused a key outside the clone's scope", nil)
	}
	return b.wrap(op, err, format, args...)
}

// wrap classifies a driver error for op.
func (b *Bucket) wrap(op string, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var e *errs.Error
	if errors.As(err, &e) && e.Kind != errs.Unknown {
		return err // already classified by us
	}
	kind := errs.Unknown
	if k := b.d.ErrorKind(err); k != nil {
		kind = errs.KindOf(k)
	}
	if kind == errs.Unknown {
		kind, _ = errs.ContextKind(err)
	}
	return errs.Wrap(kind, op, err, format, args...)
}

// ownerCheck verifies the owner stamps of attributes read back from the store.
func (b *Bucket) ownerCheck(ctx context.Context, op string, cc clone.CloneContext, key string, a *driver.Attributes) error {
	if a.Key != "" && a.Key != key {
		b.record(ctx, op, cc, audit.Violation, "store returned a different key", nil)
		return errs.New(errs.IsolationViolation, op, "store returned a different object")
	}
	t, hasT := a.Metadata[MetaTenantID]
	c, hasC := a.Metadata[MetaCloneID]
	if (hasT && t != cc.TenantID().String()) || (hasC && c != cc.CloneID().String()) {
		b.record(ctx, op, cc, audit.Violation, "object under the clone's prefix carries another owner's stamps", map[string]string{"stamp_tenant_id": t, "stamp_clone_id": c})
		return errs.New(errs.IsolationViolation, op, "object owner does not match the clone context")
	}
	return nil
}

func (b *Bucket) attrs(kind, name string, a *driver.Attributes) *Attributes {
	md := make(map[string]string, len(a.Metadata))
	for k, v := range a.Metadata {
		if !strings.HasPrefix(k, "cloneiso-") {
			md[k] = v
		}
	}
	return &Attributes{Kind: kind, Name: name, Size: a.Size, ContentType: a.ContentType, Metadata: md, ModTime: a.ModTime, ETag: a.ETag}
}

// WriteOptions control [Bucket.Put] and [Bucket.Create]. A nil *WriteOptions means
// no content type and no metadata.
type WriteOptions struct {
	// ContentType is stored with the object, e.g. "application/pdf". It must parse as
	// a media type.
	ContentType string
	// Metadata is stored with the object. Keys must be 1-64 bytes of lower-case ASCII
	// letters, digits and '-', and must not start with "cloneiso-"; values must be
	// printable ASCII. Keys and values together may use at most [MaxMetadataSize] bytes.
	Metadata map[string]string
	// Size is the body's length if known (lets the S3 driver stream without
	// buffering); 0 means unknown unless the body is empty.
	Size int64
}

func validateWrite(op string, o *WriteOptions) error {
	if o.ContentType != "" {
		if _, _, err := mime.ParseMediaType(o.ContentType); err != nil {
			return errs.Wrap(errs.InvalidInput, op, err, "invalid content type")
		}
	}
	total := 0
	for k, v := range o.Metadata {
		if len(k) == 0 || len(k) > 64 || strings.HasPrefix(k, "cloneiso-") {
			return errs.New(errs.InvalidInput, op, "invalid or reserved metadata key")
		}
		for i := 0; i < len(k); i++ {
			c := k[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return errs.New(errs.InvalidInput, op, "metadata keys may only contain a-z, 0-9 and '-'")
			}
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return errs.New(errs.InvalidInput, op, "metadata values must be printable ASCII")
			}
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataSize {
		return errs.New(errs.TooLarge, op, "metadata larger than %d bytes", MaxMetadataSize)
	}
	if o.Size < 0 {
		return errs.New(errs.InvalidInput, op, "negative size")
	}
	return nil
}

func stamps(cc clone.CloneContext, md map[string]string) map[string]string {
	out := make(map[string]string, len(md)+2)
	for k, v := range md {
		out[k] = v
	}
	out[MetaTenantID] = cc.TenantID().String()
	out[MetaCloneID] = cc.CloneID().String()
	return out
}

// Put stores r's content as object name of the given kind in cc's clone, replacing any
// existing object of that name. The write is atomic. The object's metadata is stamped
// with cc's tenant and clone IDs.
func (b *Bucket) Put(ctx context.Context, cc clone.CloneContext, kind, name string, r io.Reader, opts *WriteOptions) (*Attributes, error) {
	const op = "objectstore.Put"
	key, err := b.key(ctx, op, cc, kind, name)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &WriteOptions{}
	}
	if err := validateWrite(op, opts); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errs.New(errs.InvalidInput, op, "nil reader")
	}
	size := opts.Size
	if size == 0 {
		size = -1
	}
	a, err := b.d.Put(ctx, prefixOf(cc), key, r, &driver.WriteOptions{ContentType: opts.ContentType, Metadata: stamps(cc, opts.Metadata), Size: size})
	if err != nil {
		return nil, b.driverErr(ctx, op, cc, err, "writing %s/%s", kind, name)
	}
	return b.attrs(kind, name, a), nil
}

// Create is [Bucket.Put] under a fresh name chosen by [NewName]; the returned
// Attributes carry the name.
func (b *Bucket) Create(ctx context.Context, cc clone.CloneContext, kind string, r io.Reader, opts *WriteOptions) (*Attributes, error) {
	return b.Put(ctx, cc, kind, NewName(), r, opts)
}

// ReadOptions control [Bucket.Get]. A nil *ReadOptions reads the whole object.
type ReadOptions struct {
	// Offset is the first byte to read.
	Offset int64
	// Length is the number of bytes to read; 0 or negative means to the end.
	Length int64
}

// Reader reads an object. Close it when done.
type Reader struct {
	r     driver.Reader
	attrs *Attributes
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) { return r.r.Read(p) }

// Close implements io.Closer.
func (r *Reader) Close() error { return r.r.Close() }

// Attributes returns the object's attributes (Size is the whole object's size).
func (r *Reader) Attributes() *Attributes { return r.attrs }

// Get opens object name of the given kind in cc's clone for reading. A missing object,
// like one of another clone, is [clone.ErrNotFound].
func (b *Bucket) Get(ctx context.Context, cc clone.CloneContext, kind, name string, opts *ReadOptions) (*Reader, error) {
	const op = "objectstore.Get"
	key, err := b.key(ctx, op, cc, kind, name)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ReadOptions{}
	}
	if opts.Offset < 0 {
		return nil, errs.New(errs.InvalidInput, op, "negative offset")
	}
	length := opts.Length
	if length <= 0 {
		length = -1
	}
	r, err := b.d.Get(ctx, prefixOf(cc), key, opts.Offset, length)
	if err != nil {
		return nil, b.driverErr(ctx, op, cc, err, "reading %s/%s", kind, name)
	}
	a := r.Attributes()
	if err := b.ownerCheck(ctx, op, cc, key, a); err != nil {
		r.Close()
		return nil, err
	}
	return &Reader{r: r, attrs: b.attrs(kind, name, a)}, nil
}

// ReadAll returns the whole content of object name of the given kind in cc's clone.
func (b *Bucket) ReadAll(ctx context.Context, cc clone.CloneContext, kind, name string) ([]byte, error) {
	r, err := b.Get(ctx, cc, kind, name, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, b.wrap("objectstore.ReadAll", err, "reading %s/%s", kind, name)
	}
	return data, nil
}

// Head returns the attributes of object name of the given kind in cc's clone.
func (b *Bucket) Head(ctx context.Context, cc clone.CloneContext, kind, name string) (*Attributes, error) {
	const op = "objectstore.Head"
	key, err := b.key(ctx, op, cc, kind, name)
	if err != nil {
		return nil, err
	}
	a, err := b.d.Head(ctx, prefixOf(cc), key)
	if err != nil {
		return nil, b.driverErr(ctx, op, cc, err, "reading attributes of %s/%s", kind, name)
	}
	if err := b.ownerCheck(ctx, op, cc, key, a); err != nil {
		return nil, err
	}
	return b.attrs(kind, name, a), nil
}

// Delete removes object name of the given kind from cc's clone. A missing object is
// [clone.ErrNotFound]. On a versioned bucket older versions remain until
// [Bucket.DeleteClone].
func (b *Bucket) Delete(ctx context.Context, cc clone.CloneContext, kind, name string) error {
	const op = "objectstore.Delete"
	key, err := b.key(ctx, op, cc, kind, name)
	if err != nil {
		return err
	}
	return b.driverErr(ctx, op, cc, b.d.Delete(ctx, prefixOf(cc), key), "deleting %s/%s", kind, name)
}

// Copy copies object (srcKind, srcName) to (dstKind, dstName), both in cc's clone:
// there is no way to name another clone's object.
func (b *Bucket) Copy(ctx context.Context, cc clone.CloneContext, dstKind, dstName, srcKind, srcName string) error {
	const op = "objectstore.Copy"
	src, err := b.key(ctx, op, cc, srcKind, srcName)
	if err != nil {
		return err
	}
	dst, err := b.key(ctx, op, cc, dstKind, dstName)
	if err != nil {
		return err
	}
	// The source's owner stamps are copied with it; check them before duplicating.
	if a, err := b.d.Head(ctx, prefixOf(cc), src); err != nil {
		return b.driverErr(ctx, op, cc, err, "reading %s/%s", srcKind, srcName)
	} else if err := b.ownerCheck(ctx, op, cc, src, a); err != nil {
		return err
	}
	return b.driverErr(ctx, op, cc, b.d.Copy(ctx, prefixOf(cc), dst, src), "copying %s/%s to %s/%s", srcKind, srcName, dstKind, dstName)
}

// ListOptions control [Bucket.List]. A nil *ListOptions lists the first page of
// everything.
type ListOptions struct {
	// Kind restricts the listing to one kind; "" lists every kind of the clone.
	Kind string
	// NamePrefix restricts the listing to names starting with it (needs Kind). It is
	// validated like a name, except that it may end in "/" or in the middle of a
	// segment.
	NamePrefix string
	// PageSize is the maximum number of objects per page: 1 to 1000, 0 means 100.
	PageSize int
	// PageToken continues a previous listing ("" starts at the beginning).
	PageToken string
}

// ListPage is one page of a listing.
type ListPage struct {
	// Objects are in ascending (kind, name) order.
	Objects []*Attributes
	// NextPageToken is "" on the last page.
	NextPageToken string
}

// List returns one page of the objects of cc's clone. Only the clone's prefix is ever
// asked for, and every key the store returns is checked again: a key outside the
// prefix fails the call with [clone.ErrIsolationViolation] (and an audit event) rather
// than being returned.
func (b *Bucket) List(ctx context.Context, cc clone.CloneContext, opts *ListOptions) (*ListPage, error) {
	const op = "objectstore.List"
	if err := b.validate(ctx, op, cc); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &ListOptions{}
	}
	base := prefixOf(cc)
	prefix := base
	if opts.Kind != "" {
		if err := ValidateKind(opts.Kind); err != nil {
			b.deny(ctx, op, cc, "invalid object kind", nil)
			return nil, relabel(err, op)
		}
		prefix += opts.Kind + "/"
		if np := opts.NamePrefix; np != "" {
			if why := namePrefixProblem(np); why != "" {
				b.deny(ctx, op, cc, "invalid name prefix (possible traversal attempt)", map[string]string{"problem": why})
				return nil, errs.New(errs.InvalidInput, op, "invalid name prefix: %s", why)
			}
			prefix += np
		}
	} else if opts.NamePrefix != "" {
		return nil, errs.New(errs.InvalidInput, op, "NamePrefix needs a Kind")
	}
	size := opts.PageSize
	switch {
	case size == 0:
		size = 100
	case size < 0 || size > 1000:
		return nil, errs.New(errs.InvalidInput, op, "PageSize must be between 1 and 1000")
	}
	if len(opts.PageToken) > 2048 || !utf8.ValidString(opts.PageToken) || strings.ContainsFunc(opts.PageToken, unicode.IsControl) {
		return nil, errs.New(errs.InvalidInput, op, "invalid page token")
	}
	p, err := b.d.List(ctx, prefixOf(cc), prefix, size, opts.PageToken)
	if err != nil {
		return nil, b.driverErr(ctx, op, cc, err, "listing")
	}
	out := &ListPage{NextPageToken: p.NextPageToken, Objects: make([]*Attributes, 0, len(p.Objects))}
	for _, a := range p.Objects {
		kind, name, ok := splitKey(base, prefix, a.Key)
		if !ok {
			b.record(ctx, op, cc, audit.Violation, "store listed a key outside the clone's prefix", nil)
			return nil, errs.New(errs.IsolationViolation, op, "store listed an object outside the clone's prefix")
		}
		out.Objects = append(out.Objects, b.attrs(kind, name, a))
	}
	return out, nil
}

// splitKey checks that key is under prefix (which starts with base) and is a valid
// kind/name of base, and splits it.
func splitKey(base, prefix, key string) (kind, name string, ok bool) {
	if !strings.HasPrefix(key, prefix) {
		return "", "", false
	}
	rest := key[len(base):]
	kind, name, found := strings.Cut(rest, "/")
	if !found || ValidateKind(kind) != nil || ValidateName(name) != nil {
		return "", "", false
	}
	return kind, name, true
}

// DeleteReport says what [Bucket.DeleteClone] removed.
type DeleteReport = driver.DeleteAllResult

// DeleteClone removes every object of cc's clone: on versioned buckets every version
// and delete marker too, and every unfinished multipart upload. It then lists the
// prefix again (including versions) and fails unless nothing is left. It records an
// audit event either way.
//
// A write racing with the wipe can land after it; offboarding therefore first makes
// the clone unusable ([Options.CheckClone] refusing everything but DeleteClone), then
// calls DeleteClone, and retries it if it reports objects left behind.
func (b *Bucket) DeleteClone(ctx context.Context, cc clone.CloneContext) (*DeleteReport, error) {
	const op = "objectstore.DeleteClone"
	if err := b.validate(ctx, op, cc); err != nil {
		return nil, err
	}
	res, err := b.d.DeleteAll(ctx, prefixOf(cc), prefixOf(cc))
	if err != nil {
		b.record(ctx, op, cc, audit.Failed, "deleting the clone's objects failed", nil)
		return nil, b.driverErr(ctx, op, cc, err, "deleting the clone's objects")
	}
	b.record(ctx, op, cc, audit.Allowed, "deleted every object of the clone", map[string]string{
		"objects": strconv.Itoa(res.Objects), "delete_markers": strconv.Itoa(res.DeleteMarkers), "uploads": strconv.Itoa(res.Uploads),
	})
	return res, nil
}

// Codes of [Bucket.CheckExposure]'s findings.
const (
	ExposureAnonymousList = "bucket-anonymous-list" // an unauthenticated client can list the store
	ExposurePublicPolicy  = "bucket-public-policy"  // the store's policy grants everyone access
)

// CheckExposure reports the ways the whole store is reachable beyond the application:
// anonymous listing, a bucket policy that allows everyone. It is a deployment check (the
// doctor runs it), not a per-clone operation. A driver that cannot check answers
// clone.ErrUnsupported; a probe that cannot tell is an error, never a clean result.
func (b *Bucket) CheckExposure(ctx context.Context) ([]driver.Exposure, error) {
	const op = "objectstore.CheckExposure"
	c, ok := b.d.(driver.ExposureChecker)
	if !ok {
		return nil, errs.New(errs.Unsupported, op, "this object store driver cannot check its exposure")
	}
	found, err := c.CheckExposure(ctx)
	if err != nil {
		return nil, b.wrap(op, err, "checking the store's exposure")
	}
	return found, nil
}

// As exposes the driver's vendor type (for example *s3.Client for s3object); see the
// driver package's documentation for what it supports.
func (b *Bucket) As(i any) bool { return b.d.As(i) }

// ErrorAs is errors.As for the backend's error types, for errors returned by b.
func (b *Bucket) ErrorAs(err error, i any) bool {
	if err == nil {
		return false
	}
	if errors.As(err, i) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if b.d.ErrorAs(e, i) {
			return true
		}
	}
	return false
}

// Close releases the driver's resources.
func (b *Bucket) Close() error { return b.wrap("objectstore.Close", b.d.Close(), "closing") }
