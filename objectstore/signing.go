package objectstore

import (
	"context"
	"mime"
	"net/http"
	"time"

	"github.com/cloneiso/cloneiso/clone"
	"github.com/cloneiso/cloneiso/internal/errs"
	"github.com/cloneiso/cloneiso/objectstore/driver"
)

// SignedURLOptions control [Bucket.SignedURL]. A nil *SignedURLOptions means a GET URL
// valid for [DefaultURLExpiry].
type SignedURLOptions struct {
	// Method is http.MethodGet (the default) or http.MethodPut.
	Method string
	// Expiry is the URL's lifetime: 0 means [DefaultURLExpiry]; more than the bucket's
	// maximum ([Options.MaxURLExpiry], by default [DefaultMaxURLExpiry]) is refused with
	// [clone.ErrInvalidInput].
	Expiry time.Duration
	// ContentType, for PUT, is the content type the uploader must send. A PUT URL cannot
	// cap the upload's size; use [Bucket.UploadTicket] for uploads from untrusted
	// clients.
	ContentType string
}

func (b *Bucket) expiry(op string, d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		d = DefaultURLExpiry
		if d > b.maxExpiry {
			d = b.maxExpiry
		}
	case d < time.Second:
		return 0, errs.New(errs.InvalidInput, op, "expiry must be at least one second")
	case d > b.maxExpiry:
		return 0, errs.New(errs.InvalidInput, op, "expiry %s exceeds the maximum of %s", d, b.maxExpiry)
	}
	return d, nil
}

// SignedRequest is a presigned request: whoever holds it can perform Method on URL,
// sending Header, until Expires.
type SignedRequest struct {
	Method string
	URL    string
	// Header holds the headers the client must send with exactly these values (for a
	// PUT: the content type and the owner-stamp metadata bound into the signature).
	Header  http.Header
	Expires time.Time
}

// SignedURL returns a URL through which anyone holding it can read (GET) or write (PUT)
// object name of the given kind in cc's clone, and nothing else, until it expires. The
// key is built from cc; backends that can (S3 with scoped credentials) sign it with
// credentials confined to the clone's prefix, so the store itself refuses anything
// outside it.
//
// A PUT URL needs no headers but the content type; objects written through it on S3
// carry no owner stamps. Use [Bucket.SignRequest] to have them stamped, or
// [Bucket.UploadTicket] for uploads from untrusted clients.
func (b *Bucket) SignedURL(ctx context.Context, cc clone.CloneContext, kind, name string, opts *SignedURLOptions) (string, error) {
	r, err := b.sign(ctx, "objectstore.SignedURL", cc, kind, name, opts, false)
	if err != nil {
		return "", err
	}
	return r.URL, nil
}

// SignRequest is [Bucket.SignedURL] returning the whole request: for a PUT the owner
// stamps (cc's tenant and clone IDs) are bound into the signature as metadata headers
// that the client must send, so the stored object carries them like one written by
// [Bucket.Put].
func (b *Bucket) SignRequest(ctx context.Context, cc clone.CloneContext, kind, name string, opts *SignedURLOptions) (*SignedRequest, error) {
	return b.sign(ctx, "objectstore.SignRequest", cc, kind, name, opts, true)
}

func (b *Bucket) sign(ctx context.Context, op string, cc clone.CloneContext, kind, name string, opts *SignedURLOptions, stamp bool) (*SignedRequest, error) {
	key, err := b.key(ctx, op, cc, kind, name)
	if err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &SignedURLOptions{}
	}
	method := opts.Method
	switch method {
	case "":
		method = http.MethodGet
	case http.MethodGet, http.MethodPut:
	default:
		return nil, errs.New(errs.InvalidInput, op, "method must be GET or PUT")
	}
	exp, err := b.expiry(op, opts.Expiry)
	if err != nil {
		return nil, err
	}
	if opts.ContentType != "" {
		if method != http.MethodPut {
			return nil, errs.New(errs.InvalidInput, op, "ContentType applies to PUT only")
		}
		if _, _, err := mime.ParseMediaType(opts.ContentType); err != nil {
			return nil, errs.Wrap(errs.InvalidInput, op, err, "invalid content type")
		}
	}
	do := &driver.SignedURLOptions{Method: method, Expiry: exp, ContentType: opts.ContentType}
	if stamp && method == http.MethodPut {
		do.Metadata = stamps(cc, nil)
	}
	expires := b.now().Add(exp)
	r, err := b.d.SignedURL(ctx, prefixOf(cc), key, do)
	if err != nil {
		return nil, b.driverErr(ctx, op, cc, err, "signing a URL for %s/%s", kind, name)
	}
	h := r.Header
	if h == nil {
		h = http.Header{}
	}
	return &SignedRequest{Method: method, URL: r.URL, Header: h, Expires: expires}, nil
}

// MaxUploadSize is the largest MaxSize of an upload ticket: 5 GiB, the S3 limit of a
// single POST upload.
const MaxUploadSize = 5 << 30

// UploadTicketOptions control [Bucket.UploadTicket]. ContentType and MaxSize are
// required.
type UploadTicketOptions struct {
	// Name is the object's name; "" lets the SDK choose one ([NewName]), which is
	// recommended: [Bucket.VerifyUpload] deletes whatever it finds under the name if it
	// does not match the ticket, including an older object the client never replaced.
	Name string
	// ContentType is the exact content type the upload must carry.
	ContentType string
	// MinSize and MaxSize bound the upload's length in bytes, inclusive. MaxSize must be
	// between 1 and [MaxUploadSize].
	MinSize, MaxSize int64
	// Expiry is the ticket's lifetime, as in [SignedURLOptions].
	Expiry time.Duration
}

// UploadTicket is a form upload (an S3 POST policy, or its filesystem equivalent)
// that lets an untrusted client upload one object to a fixed key with a fixed content
// type and a size within bounds. The client POSTs multipart/form-data to URL with every
// entry of Fields as a form field, then the file as the last field, named "file".
//
// Keep the ticket on the server (or at least the fields below URL) and pass it to
// [Bucket.VerifyUpload] after the client reports success.
type UploadTicket struct {
	// URL and Fields are what the client needs.
	URL    string
	Fields map[string]string
	// Kind and Name locate the object in the clone.
	Kind, Name string
	// ContentType, MinSize and MaxSize are the ticket's constraints.
	ContentType      string
	MinSize, MaxSize int64
	// Expires is when the ticket stops working.
	Expires time.Time
}

// UploadTicket returns a ticket through which a client can upload object (kind,
// opts.Name) into cc's clone. The store enforces the key, the content type, the size
// range, the owner stamps and the expiry; call [Bucket.VerifyUpload] before using the
// file anyway.
func (b *Bucket) UploadTicket(ctx context.Context, cc clone.CloneContext, kind string, opts *UploadTicketOptions) (*UploadTicket, error) {
	const op = "objectstore.UploadTicket"
	if opts == nil {
		return nil, errs.New(errs.InvalidInput, op, "options with ContentType and MaxSize are required")
	}
	name := opts.Name
	if name == "" {
		name = NewName()
	}
	key, err := b.key(ctx, op, cc, kind, name)
	if err != nil {
		return nil, err
	}
	if opts.ContentType == "" {
		return nil, errs.New(errs.InvalidInput, op, "ContentType is required")
	}
	if _, _, err := mime.ParseMediaType(opts.ContentType); err != nil {
		return nil, errs.Wrap(errs.InvalidInput, op, err, "invalid content type")
	}
	if opts.MaxSize < 1 || opts.MaxSize > MaxUploadSize {
		return nil, errs.New(errs.InvalidInput, op, "MaxSize must be between 1 and %d", int64(MaxUploadSize))
	}
	if opts.MinSize < 0 || opts.MinSize > opts.MaxSize {
		return nil, errs.New(errs.InvalidInput, op, "MinSize must be between 0 and MaxSize")
	}
	exp, err := b.expiry(op, opts.Expiry)
	if err != nil {
		return nil, err
	}
	expires := b.now().Add(exp)
	t, err := b.d.UploadTicket(ctx, prefixOf(cc), key, &driver.UploadTicketOptions{
		Expiry: exp, ContentType: opts.ContentType, MinSize: opts.MinSize, MaxSize: opts.MaxSize,
		Metadata: stamps(cc, nil),
	})
	if err != nil {
		return nil, b.driverErr(ctx, op, cc, err, "creating an upload ticket for %s/%s", kind, name)
	}
	return &UploadTicket{
		URL: t.URL, Fields: t.Fields, Kind: kind, Name: name, ContentType: opts.ContentType,
		MinSize: opts.MinSize, MaxSize: opts.MaxSize, Expires: expires,
	}, nil
}

// VerifyUpload checks the object a client uploaded with ticket t into cc's clone: it
// must exist, carry cc's owner stamps and exactly t's content type, and have a size in
// t's range. If it does not, the object is deleted and an error is returned
// ([clone.ErrNotFound] if nothing was uploaded, [clone.ErrTooLarge] for an oversized
// object, [clone.ErrInvalidInput] otherwise). Ingestion calls it before accepting a
// file.
func (b *Bucket) VerifyUpload(ctx context.Context, cc clone.CloneContext, t *UploadTicket) (*Attributes, error) {
	const op = "objectstore.VerifyUpload"
	if t == nil {
		return nil, errs.New(errs.InvalidInput, op, "nil ticket")
	}
	key, err := b.key(ctx, op, cc, t.Kind, t.Name)
	if err != nil {
		return nil, err
	}
	a, err := b.d.Head(ctx, prefixOf(cc), key)
	if err != nil {
		return nil, b.driverErr(ctx, op, cc, err, "reading the upload %s/%s", t.Kind, t.Name)
	}
	if err := b.ownerCheck(ctx, op, cc, key, a); err != nil {
		return nil, err
	}
	var problem error
	switch {
	case a.Metadata[MetaTenantID] == "" || a.Metadata[MetaCloneID] == "":
		problem = errs.New(errs.InvalidInput, op, "upload carries no owner stamps")
	case a.Size > t.MaxSize:
		problem = errs.New(errs.TooLarge, op, "upload of %d bytes exceeds %d", a.Size, t.MaxSize)
	case a.Size < t.MinSize:
		problem = errs.New(errs.InvalidInput, op, "upload of %d bytes is below %d", a.Size, t.MinSize)
	case a.ContentType != t.ContentType:
		problem = errs.New(errs.InvalidInput, op, "upload has content type %q, want %q", a.ContentType, t.ContentType)
	}
	if problem != nil {
		b.deny(ctx, op, cc, "upload failed verification and was deleted", map[string]string{"kind": t.Kind, "name": t.Name})
		if err := b.d.Delete(ctx, prefixOf(cc), key); err != nil && errs.KindOf(b.wrap(op, err, "")) != errs.NotFound {
			return nil, b.driverErr(ctx, op, cc, err, "deleting a rejected upload")
		}
		return nil, problem
	}
	return b.attrs(t.Kind, t.Name, a), nil
}
