// Package driver defines the contract between the portable [objectstore.Bucket] and the
// backends that store its objects (filesystem, S3).
//
// Drivers are deliberately unaware of clones: the portable type builds every key from a
// clone context, validates it and re-checks every key that comes back. A driver stores
// bytes under the keys it is given, lists what is under a prefix and reports its errors
// honestly. Every call that names a key or a prefix also carries the scope it must stay
// in (the clone's prefix, "tenants/{tenant_id}/clones/{clone_id}/"), and the driver
// refuses, before any I/O, a key or prefix outside it ([CheckKey], [CheckPrefix],
// [ErrOutOfScope]): defense in depth beneath the portable type's own checks, so that a
// bug above the driver cannot reach another clone's objects. The comments on each
// method are the contract; package objectstore/drivertest checks it, including the
// scope refusals, by calling the driver directly.
//
// [objectstore.Bucket]: https://pkg.go.dev/github.com/cloneiso/cloneiso/objectstore#Bucket
package driver

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Attributes describe a stored object.
type Attributes struct {
	// Key is the full object key.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ContentType is the MIME type stored with the object ("" if none).
	ContentType string
	// Metadata holds the user metadata stored with the object. Keys are lower case.
	Metadata map[string]string
	// ModTime is when the object was last written.
	ModTime time.Time
	// ETag is an opaque version tag of the content ("" if the backend has none).
	ETag string
}

// WriteOptions control [Bucket.Put].
type WriteOptions struct {
	// ContentType is stored with the object; "" stores none.
	ContentType string
	// Metadata is stored with the object; keys are lower-case ASCII.
	Metadata map[string]string
	// Size is the body's length if known, or -1. Drivers may use it to avoid buffering.
	Size int64
}

// Reader reads an object's content.
type Reader interface {
	io.ReadCloser
	// Attributes returns the object's attributes (Size is the whole object's size, not
	// the length of the range being read).
	Attributes() *Attributes
}

// ListPage is one page of a listing.
type ListPage struct {
	// Objects are in ascending key order. Listed attributes may leave ContentType
	// and Metadata empty (S3 listings do not carry them).
	Objects []*Attributes
	// NextPageToken is "" on the last page; otherwise pass it to the next List call.
	NextPageToken string
}

// DeleteAllResult reports what [Bucket.DeleteAll] removed.
type DeleteAllResult struct {
	// Objects counts removed object versions (current and non-current).
	Objects int
	// DeleteMarkers counts removed delete markers (versioned buckets).
	DeleteMarkers int
	// Uploads counts aborted unfinished multipart uploads.
	Uploads int
}

// SignedURLOptions control [Bucket.SignedURL].
type SignedURLOptions struct {
	// Method is "GET" or "PUT".
	Method string
	// Expiry is how long the URL stays valid; the portable type has already capped it.
	Expiry time.Duration
	// ContentType, for PUT, is the content type the uploader must send ("" = any).
	ContentType string
	// Metadata, for PUT, is metadata the stored object must carry (the owner stamps),
	// or nil. Drivers bind it into the signature as required headers, or apply it
	// themselves when they serve the upload.
	Metadata map[string]string
}

// SignedRequest is a presigned request.
type SignedRequest struct {
	// URL carries the signature.
	URL string
	// Header holds the headers the client must send with exactly these values (for
	// example Content-Type and metadata bound into the signature); it may be empty.
	Header http.Header
}

// UploadTicketOptions control [Bucket.UploadTicket].
type UploadTicketOptions struct {
	// Expiry is how long the ticket stays valid; already capped by the portable type.
	Expiry time.Duration
	// ContentType is the exact content type the upload must carry.
	ContentType string
	// MinSize and MaxSize bound the upload's length in bytes (inclusive).
	MinSize, MaxSize int64
	// Metadata must be stored with the upload exactly as given (the owner stamps).
	Metadata map[string]string
}

// UploadTicket is an HTML-form style upload: POST a multipart/form-data body to URL
// with every entry of Fields as a form field, followed by the file as the last field,
// named "file".
type UploadTicket struct {
	URL    string
	Fields map[string]string
}

// Bucket is the interface a backend implements. Methods must be safe for concurrent
// use.
//
// Scope: every method that takes a key or prefix takes the scope it must stay in
// first. Before doing anything else the driver checks it with [CheckKey] (keys) or
// [CheckPrefix] (prefixes) and returns that error, wrapping [ErrOutOfScope], if the
// key or prefix is outside the scope or the scope is malformed. Keys inside a valid
// scope are non-empty UTF-8 without "." or ".." segments, control characters or
// backslashes, at most [MaxKeyLen] bytes. A List prefix may end in the middle of a
// segment ("tenants/.../docs/rep").
//
// Errors: every method may return any error; [Bucket.ErrorKind] classifies it, and
// classifies errors wrapping [ErrOutOfScope] as clone.ErrIsolationViolation.
type Bucket interface {
	// Put stores r's content under key, replacing any existing object. The write is
	// atomic: readers see the old object or the new one, never a partial one. If r
	// returns an error, nothing is stored and Put returns that error.
	Put(ctx context.Context, scope, key string, r io.Reader, opts *WriteOptions) (*Attributes, error)

	// Get opens the object for reading from offset (>= 0) for length bytes, or to the
	// end if length is negative. A missing object is an error classified as NotFound.
	// An offset at or past the end of a non-empty object is classified InvalidInput.
	Get(ctx context.Context, scope, key string, offset, length int64) (Reader, error)

	// Head returns the object's attributes; missing objects are classified NotFound.
	Head(ctx context.Context, scope, key string) (*Attributes, error)

	// List returns the objects whose keys start with prefix, in ascending key order,
	// at most pageSize (> 0) per page, starting after the page token (opaque, from a
	// previous call; "" for the first page).
	List(ctx context.Context, scope, prefix string, pageSize int, pageToken string) (*ListPage, error)

	// Delete removes the object. Deleting a missing object is classified NotFound.
	// On a versioned store Delete may leave older versions; DeleteAll removes them.
	Delete(ctx context.Context, scope, key string) error

	// Copy copies the object at src (content, content type and metadata) to dst, both
	// inside scope. A missing src is classified NotFound.
	Copy(ctx context.Context, scope, dst, src string) error

	// DeleteAll removes everything stored under prefix: every object, every
	// non-current version, every delete marker and every unfinished multipart upload.
	// It returns only when a fresh listing under prefix (including versions) is empty,
	// or with an error saying it is not.
	DeleteAll(ctx context.Context, scope, prefix string) (*DeleteAllResult, error)

	// SignedURL returns a request through which the object at key can be read (GET)
	// or written (PUT) without further credentials until opts.Expiry has passed. A PUT
	// through it must store opts.ContentType and opts.Metadata. Drivers that can mint
	// narrower credentials (S3 with STS) sign with credentials confined to scope, so
	// that the store itself refuses the URL for any key outside it.
	SignedURL(ctx context.Context, scope, key string, opts *SignedURLOptions) (*SignedRequest, error)

	// UploadTicket returns a form upload that can only store an object at key, with
	// exactly opts.ContentType and opts.Metadata, of a size in [MinSize, MaxSize],
	// until opts.Expiry has passed. The store itself must reject anything else. It is
	// signed like [Bucket.SignedURL], with credentials confined to scope if the driver
	// can mint them.
	UploadTicket(ctx context.Context, scope, key string, opts *UploadTicketOptions) (*UploadTicket, error)

	// ErrorKind classifies an error returned by this driver as one of the sentinel
	// errors of package clone (clone.ErrNotFound, clone.ErrInvalidInput,
	// clone.ErrUnavailable, clone.ErrForbidden, clone.ErrTooLarge, clone.ErrConflict,
	// clone.ErrUnsupported, clone.ErrIsolationViolation for [ErrOutOfScope]), or nil if
	// it cannot.
	ErrorKind(err error) error

	// As converts i to a driver-specific type (for example the vendor client). It
	// returns false if i is not supported.
	As(i any) bool

	// ErrorAs converts err to a driver-specific error type, as errors.As does.
	ErrorAs(err error, i any) bool

	// Close releases the driver's resources.
	Close() error
}

// Exposure is a way the whole store is reachable beyond the application, found by a
// [ExposureChecker]: Code is stable (one of the objectstore.Exposure* constants),
// Detail says what was seen.
type Exposure struct {
	Code   string
	Detail string
}

// ExposureChecker is implemented by drivers that can tell whether their store is open to
// clients other than the application (anonymous listing, a policy granting everyone).
// It is for deployment checks, never for serving a clone, and takes no scope: it looks
// at the store as a whole. CheckExposure must fail, not pass, when a probe cannot tell
// (a probe refused is a pass only if the store said so).
type ExposureChecker interface {
	CheckExposure(ctx context.Context) ([]Exposure, error)
}
